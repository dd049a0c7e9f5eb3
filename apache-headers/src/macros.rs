//! Safe(r) Rust forms of httpd/APR APIs that exist only as C macros.
//!
//! Each function documents the pointer contract its caller must uphold.

use crate::*;
use std::os::raw::{c_int, c_void};

/// `GLOBAL_ONLY` from http_config.h.
pub const GLOBAL_ONLY: c_int = (NOT_IN_VIRTUALHOST | NOT_IN_LIMIT | NOT_IN_DIR_CONTEXT) as c_int;

/// `ap_get_module_config(v, m)`: the slot `m->module_index` of a config vector.
///
/// # Safety
/// `cv` must be a live config vector (e.g. `r->request_config`) with at least
/// `module_index + 1` entries, which httpd guarantees for loaded modules.
pub unsafe fn get_module_config(cv: *mut ap_conf_vector_t, m: *const module) -> *mut c_void {
    // SAFETY: per the contract; a config vector is an array of void*.
    unsafe { *(cv as *mut *mut c_void).offset((*m).module_index as isize) }
}

/// `ap_set_module_config(v, m, val)`.
///
/// # Safety
/// As [`get_module_config`].
pub unsafe fn set_module_config(cv: *mut ap_conf_vector_t, m: *const module, val: *mut c_void) {
    // SAFETY: per the contract.
    unsafe { *(cv as *mut *mut c_void).offset((*m).module_index as isize) = val }
}

/// `apr_pcalloc(p, size)`.
///
/// # Safety
/// `p` must be a live pool.
pub unsafe fn pcalloc(p: *mut apr_pool_t, size: usize) -> *mut c_void {
    // SAFETY: apr_palloc returns `size` bytes owned by `p`; we zero them.
    unsafe {
        let m = apr_palloc(p, size as apr_size_t);
        if !m.is_null() {
            std::ptr::write_bytes(m as *mut u8, 0, size);
        }
        m
    }
}

/// `APR_BRIGADE_SENTINEL(bb)`.
///
/// # Safety
/// `bb` must be a live brigade.
pub unsafe fn brigade_sentinel(bb: *mut apr_bucket_brigade) -> *mut apr_bucket {
    let off = std::mem::offset_of!(apr_bucket, link);
    // SAFETY: the ring head in the brigade is laid out like a bucket's `link`
    // member; APR's own macro does the same arithmetic.
    unsafe { (std::ptr::addr_of_mut!((*bb).list) as *mut u8).sub(off) as *mut apr_bucket }
}

/// `APR_BRIGADE_FIRST(bb)`.
///
/// # Safety
/// `bb` must be a live brigade.
pub unsafe fn brigade_first(bb: *mut apr_bucket_brigade) -> *mut apr_bucket {
    // SAFETY: per the contract.
    unsafe { (*bb).list.next }
}

/// `APR_BUCKET_NEXT(e)`.
///
/// # Safety
/// `e` must be a live bucket in a brigade.
pub unsafe fn bucket_next(e: *mut apr_bucket) -> *mut apr_bucket {
    // SAFETY: per the contract.
    unsafe { (*e).link.next }
}

/// `APR_BUCKET_IS_EOS(e)`.
///
/// # Safety
/// `e` must be a live bucket.
pub unsafe fn bucket_is_eos(e: *const apr_bucket) -> bool {
    // SAFETY: per the contract; comparing type pointers only.
    unsafe { std::ptr::eq((*e).type_, std::ptr::addr_of!(apr_bucket_type_eos)) }
}

/// `APR_BUCKET_IS_METADATA(e)`.
///
/// # Safety
/// `e` must be a live bucket.
pub unsafe fn bucket_is_metadata(e: *const apr_bucket) -> bool {
    // SAFETY: per the contract.
    unsafe { (*(*e).type_).is_metadata == apr_bucket_type_t_APR_BUCKET_METADATA }
}

/// `apr_table_elts(t)` as a slice of entries (in insertion order; empty
/// for NULL).
///
/// # Safety
/// `t` must be NULL or a live table that is not modified while the slice
/// is used.
pub unsafe fn table_entries<'a>(t: *const apr_table_t) -> &'a [apr_table_entry_t] {
    if t.is_null() {
        return &[];
    }
    // SAFETY: per the contract; an apr_table_t starts with its
    // apr_array_header_t of apr_table_entry_t (the `apr_table_elts` macro).
    unsafe {
        let a = &*(t as *const apr_array_header_t);
        if a.elts.is_null() || a.nelts <= 0 {
            return &[];
        }
        std::slice::from_raw_parts(a.elts as *const apr_table_entry_t, a.nelts as usize)
    }
}

/// Reads a NUL-terminated C string as bytes (empty for NULL).
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string that outlives `'a`.
pub unsafe fn cstr<'a>(p: *const std::os::raw::c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: per the contract.
    unsafe { std::ffi::CStr::from_ptr(p).to_bytes() }
}
