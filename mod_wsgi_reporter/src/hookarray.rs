//! Removing entries from one of httpd's hook arrays (used by
//! `ffi/lifecycle/unused_hooks.rs` in MPM children; kept apart so it is
//! tested without httpd's symbols).

use std::ffi::c_int;

use apache_headers as ap;

/// Every `ap_LINK_<hook>_t` has this layout (`pFunc`, `szName`,
/// `aszPredecessors`, `aszSuccessors`, `nOrder`); only the function's type
/// differs, and only the address is compared here.
type Link = ap::ap_LINK_handler_t;

/// Removes every entry whose function is `f` from a hook array, keeping
/// the order of the others; returns how many. A NULL array, or one whose
/// element size is not an `ap_LINK_*_t`'s, is left alone.
///
/// # Safety
/// `arr` is NULL or a live `apr_array_header_t` of `ap_LINK_*_t` entries
/// that nobody else reads or writes during the call.
pub unsafe fn remove(arr: *mut ap::apr_array_header_t, f: usize) -> usize {
    // SAFETY: NULL or live (the caller's contract).
    let Some(a) = (unsafe { arr.as_mut() }) else {
        return 0;
    };
    if a.elt_size as usize != std::mem::size_of::<Link>() || a.elts.is_null() || a.nelts <= 0 {
        return 0;
    }
    let elts = a.elts as *mut Link;
    let n = a.nelts as usize;
    let mut kept = 0;
    for i in 0..n {
        // SAFETY: i < nelts and kept <= i: both within the array; the
        // copy moves an entry down over one already passed (or itself).
        unsafe {
            let e = elts.add(i);
            if (*e).pFunc.map(|g| g as usize) == Some(f) {
                continue;
            }
            if kept != i {
                std::ptr::copy_nonoverlapping(e, elts.add(kept), 1);
            }
        }
        kept += 1;
    }
    a.nelts = kept as c_int;
    n - kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_char;
    use std::ptr::null;

    /// # Safety
    /// Never called: the tests compare function addresses only.
    unsafe extern "C" fn f1(_r: *mut ap::request_rec) -> c_int {
        1
    }
    /// # Safety
    /// Never called: the tests compare function addresses only.
    unsafe extern "C" fn f2(_r: *mut ap::request_rec) -> c_int {
        2
    }
    /// # Safety
    /// Never called: the tests compare function addresses only.
    unsafe extern "C" fn f3(_r: *mut ap::request_rec) -> c_int {
        3
    }

    fn link(f: unsafe extern "C" fn(*mut ap::request_rec) -> c_int, name: &'static [u8]) -> Link {
        Link {
            pFunc: Some(f),
            szName: name.as_ptr() as *const c_char,
            aszPredecessors: null(),
            aszSuccessors: null(),
            nOrder: 0,
        }
    }

    fn array(v: &mut Vec<Link>, elt_size: usize) -> ap::apr_array_header_t {
        // SAFETY: all-zero is a valid apr_array_header_t (NULL pool).
        let mut a: ap::apr_array_header_t = unsafe { std::mem::zeroed() };
        a.elt_size = elt_size as c_int;
        a.nelts = v.len() as c_int;
        a.nalloc = v.capacity() as c_int;
        a.elts = v.as_mut_ptr() as *mut c_char;
        a
    }

    fn names(a: &ap::apr_array_header_t) -> Vec<&'static [u8]> {
        let elts = a.elts as *const Link;
        (0..a.nelts as usize)
            // SAFETY: within the array; names are static, NUL-terminated.
            .map(|i| unsafe { std::ffi::CStr::from_ptr((*elts.add(i)).szName).to_bytes() })
            .collect()
    }

    #[test]
    fn removes_every_entry_of_the_function_and_keeps_the_order() {
        let mut v = vec![
            link(f1, b"ours\0"),
            link(f2, b"core.c\0"),
            link(f1, b"ours again\0"),
            link(f3, b"mod_wsgi.c\0"),
        ];
        let mut a = array(&mut v, std::mem::size_of::<Link>());
        // SAFETY: a describes v, alive and not otherwise used.
        assert_eq!(unsafe { remove(&mut a, f1 as *const () as usize) }, 2);
        assert_eq!(names(&a), [&b"core.c"[..], b"mod_wsgi.c"]);
        // SAFETY: as above.
        assert_eq!(unsafe { remove(&mut a, f1 as *const () as usize) }, 0);
        assert_eq!(a.nelts, 2);
        // SAFETY: as above.
        assert_eq!(unsafe { remove(&mut a, f3 as *const () as usize) }, 1);
        assert_eq!(names(&a), [&b"core.c"[..]]);
    }

    #[test]
    fn leaves_an_array_of_another_element_size_or_null_alone() {
        let mut v = vec![link(f1, b"ours\0"), link(f2, b"core.c\0")];
        let mut a = array(&mut v, std::mem::size_of::<Link>() + 8);
        // SAFETY: a describes v (its element size is checked first).
        assert_eq!(unsafe { remove(&mut a, f1 as *const () as usize) }, 0);
        assert_eq!(a.nelts, 2);
        // SAFETY: NULL is allowed.
        let removed = unsafe { remove(std::ptr::null_mut(), f1 as *const () as usize) };
        assert_eq!(removed, 0);
    }
}
