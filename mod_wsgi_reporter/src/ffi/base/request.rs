//! [`Request`]: a `request_rec` httpd or mod_wsgi handed this thread, with
//! its liveness checked once where it enters (a hook, a filter, a wrapper
//! of mod_wsgi's calls), so the functions it is passed on to need no
//! contract of their own.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;

use apache_headers as ap;
use apache_headers::macros as m;

/// A live request, used by this thread only, for `'a`.
#[derive(Clone, Copy)]
pub(in crate::ffi) struct Request<'a> {
    r: NonNull<ap::request_rec>,
    _live: PhantomData<&'a ap::request_rec>,
}

impl<'a> Request<'a> {
    /// `r` as a [`Request`] (None when NULL).
    ///
    /// # Safety
    /// `r` is NULL or a request whose pool is not destroyed during `'a`,
    /// and which no other thread uses meanwhile (httpd runs a request on
    /// one thread at a time).
    pub(in crate::ffi) unsafe fn new(r: *mut ap::request_rec) -> Option<Request<'a>> {
        NonNull::new(r).map(|r| Request {
            r,
            _live: PhantomData,
        })
    }

    /// The raw pointer, for httpd's functions.
    pub(in crate::ffi) fn as_ptr(self) -> *mut ap::request_rec {
        self.r.as_ptr()
    }

    /// The request's fields.
    pub(in crate::ffi) fn rec(self) -> &'a ap::request_rec {
        // SAFETY: live and used by this thread only for 'a (`new`'s
        // contract).
        unsafe { self.r.as_ref() }
    }

    /// `r->handler` ("" when NULL).
    pub(in crate::ffi) fn handler(self) -> &'a [u8] {
        // SAFETY: NULL or a NUL-terminated string of the live request.
        unsafe { m::cstr(self.rec().handler) }
    }

    /// The value of `key` in `table`, one of this request's tables ("" when
    /// absent).
    pub(in crate::ffi) fn get(self, table: *const ap::apr_table_t, key: &CStr) -> &'a [u8] {
        // SAFETY: `table` is one of the live request's tables (every
        // caller passes a field of `rec()`); values live in its pool.
        unsafe { m::cstr(ap::apr_table_get(table, key.as_ptr())) }
    }
}
