//! The module record (`LoadModule wsgi_telemetry_module ...`) and the
//! registration of every hook and filter: the top of the FFI, the only
//! module that names the others' entry points.

use std::ffi::{c_char, c_int};
use std::ptr::{null, null_mut};

use apache_headers as ap;

use super::base::{guard, set_this_module};
use super::daemon::start::post_config;
use super::directives::{Commands, COMMANDS};
use super::embedded::filter_mode::handler;
use super::lifecycle::stop::{child_stopping, pre_connection};
use super::lifecycle::{check_config, child_init, post_config_last, pre_config};
use super::request::filters::{self, insert_error_filter};

/// A NULL-terminated list of C strings for hook ordering.
struct PtrList([*const c_char; 2]);
// SAFETY: static string literals, read-only.
unsafe impl Sync for PtrList {}

/// The module record (`LoadModule wsgi_telemetry_module ...`).
#[no_mangle]
pub static mut wsgi_telemetry_module: ap::module = ap::module_struct {
    version: ap::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: ap::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    name: c"mod_wsgi_telemetry.c".as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: ap::MODULE_MAGIC_COOKIE as std::ffi::c_ulong,
    rewrite_args: None,
    create_dir_config: None,
    merge_dir_config: None,
    create_server_config: None,
    merge_server_config: None,
    cmds: &COMMANDS as *const Commands as *const ap::command_rec,
    register_hooks: Some(register_hooks),
    flags: 0,
};

/// # Safety
/// Only for httpd, as the module record's `register_hooks`.
unsafe extern "C" fn register_hooks(_p: *mut ap::apr_pool_t) {
    guard((), || {
        // Only the address is taken (no reference to the mutable static).
        set_this_module(std::ptr::addr_of_mut!(wsgi_telemetry_module));
        // Before mod_wsgi's handler (APR_HOOK_MIDDLE) so we see the start
        // of every request it will run.
        // SAFETY: registering hooks with valid function pointers during
        // register_hooks, as httpd expects.
        unsafe {
            ap::ap_hook_pre_config(Some(pre_config), null(), null(), ap::APR_HOOK_REALLY_FIRST);
            ap::ap_hook_check_config(
                Some(check_config),
                null(),
                null(),
                ap::APR_HOOK_MIDDLE as c_int,
            );
            ap::ap_hook_child_init(Some(child_init), null(), null(), ap::APR_HOOK_LAST as c_int);
            // Before mod_wsgi's post_config, which forks the daemon
            // processes on a restart.
            static BEFORE_MOD_WSGI: PtrList = PtrList([c"mod_wsgi.c".as_ptr(), null()]);
            ap::ap_hook_post_config(
                Some(post_config),
                null(),
                BEFORE_MOD_WSGI.0.as_ptr(),
                ap::APR_HOOK_REALLY_FIRST,
            );
            // After mod_wsgi's, which adds its version to the description.
            static AFTER_MOD_WSGI: PtrList = PtrList([c"mod_wsgi.c".as_ptr(), null()]);
            ap::ap_hook_post_config(
                Some(post_config_last),
                AFTER_MOD_WSGI.0.as_ptr(),
                null(),
                ap::APR_HOOK_REALLY_LAST as c_int,
            );
            ap::ap_hook_child_stopping(
                Some(child_stopping),
                null(),
                null(),
                ap::APR_HOOK_MIDDLE as c_int,
            );
            ap::ap_hook_pre_connection(
                Some(pre_connection),
                null(),
                null(),
                ap::APR_HOOK_REALLY_FIRST,
            );
            ap::ap_hook_handler(Some(handler), null(), null(), ap::APR_HOOK_REALLY_FIRST);
            ap::ap_hook_insert_error_filter(
                Some(insert_error_filter),
                null(),
                null(),
                ap::APR_HOOK_MIDDLE as c_int,
            );
        }
        filters::register();
    })
}
