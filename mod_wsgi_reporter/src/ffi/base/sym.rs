//! Symbols of the other objects loaded in this process (mod_wsgi, httpd,
//! Python), looked up by name at run time: the module links against none
//! of mod_wsgi's or Python's.

use std::ffi::{c_int, c_void, CStr};

/// The address of exported symbol `name` (NULL if no loaded object exports
/// it). httpd loads modules `RTLD_GLOBAL`, so mod_wsgi's and Python's
/// exports are visible.
pub(in crate::ffi) fn sym(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// A function pointer from a `dlsym` address.
///
/// # Safety
/// `p` is the address of a function whose C signature is `F`.
pub(in crate::ffi) unsafe fn fnptr<F: Copy>(p: *mut c_void) -> F {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>()) };
    // SAFETY: same size; the caller vouches for the signature.
    unsafe { std::mem::transmute_copy(&p) }
}

/// Reads an exported `int` variable at `addr` (0 when `addr` is NULL).
///
/// # Safety
/// `addr` is NULL or the address of an `int` variable of a loaded object.
pub(in crate::ffi) unsafe fn read_int(addr: *const c_void) -> c_int {
    let a = addr as *const c_int;
    if a.is_null() {
        return 0;
    }
    // SAFETY: per the contract; volatile, since another thread of the
    // object that owns it may write it.
    unsafe { a.read_volatile() }
}

/// Reads an exported pointer variable at `addr` (NULL when `addr` is NULL).
///
/// # Safety
/// `addr` is NULL or the address of a pointer variable of a loaded object.
pub(in crate::ffi) unsafe fn read_ptr(addr: *const c_void) -> *const c_void {
    let a = addr as *const *const c_void;
    if a.is_null() {
        return std::ptr::null();
    }
    // SAFETY: per the contract; volatile as above.
    unsafe { a.read_volatile() }
}
