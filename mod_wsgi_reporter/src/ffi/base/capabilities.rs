//! What this module uses beside the loaded mod_wsgi: its version (from
//! httpd's server description, where mod_wsgi's `post_config` adds
//! `mod_wsgi/<version>` before it forks any daemon) and the symbols it
//! exports, decided by `reporter_core::capabilities`. Read the same way in
//! the Apache parent (for the start-up line), in each MPM child and in each
//! daemon process (which inherit the description), so all agree.
//!
//! Must never: be called before mod_wsgi's `post_config` has run (the
//! description then lacks mod_wsgi's version).

use apache_headers as ap;
use apache_headers::macros as m;
use reporter_core::capabilities::{decide, Capabilities, Found};
use reporter_core::reporter::parse_server_description;

use super::sym::sym;

/// mod_wsgi's version as httpd's server description names it (empty when
/// no `mod_wsgi/` component is there).
pub(in crate::ffi) fn mod_wsgi_version() -> Vec<u8> {
    // SAFETY: httpd returns a static NUL-terminated string.
    let desc = unsafe { m::cstr(ap::ap_get_server_description()) };
    parse_server_description(desc).1
}

/// The capabilities for the loaded mod_wsgi, and its version.
pub(in crate::ffi) fn capabilities() -> (Capabilities, Vec<u8>) {
    let version = mod_wsgi_version();
    let found = Found {
        direct_mode_symbols: !sym(c"wsgi_start_request").is_null(),
        filters_forced: std::env::var_os("MOD_WSGI_TELEMETRY_FILTERS").is_some(),
        daemon_symbols: !sym(c"wsgi_daemon_process").is_null()
            && !sym(c"wsgi_daemon_group").is_null()
            && !sym(c"wsgi_daemon_shutdown").is_null(),
        python_symbols: !sym(c"wsgi_python_initialized").is_null()
            && !sym(c"PyGILState_Ensure").is_null(),
        publish_symbol: !sym(c"wsgi_publish_process_stopping").is_null(),
    };
    (decide(&version, found), version)
}
