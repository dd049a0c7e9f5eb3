//! `mod_wsgi_telemetry.so`: an Apache httpd 2.4 module that reports live
//! telemetry for WSGI applications run by the OS-packaged mod_wsgi (4.9;
//! embedded mode and daemon processes), in mod_wsgi 6.x's wire format.
//!
//! Data flow: request hooks, filters and wrappers of mod_wsgi's calls
//! (`ffi`) -> per-slot accumulators -> reporter thread -> `wire` encoder ->
//! non-blocking UNIX datagram socket; everything after the hooks is the
//! plain-Rust crate `reporter_core`, unit-tested without Apache.
//!
//! This crate holds only what touches the process's other objects, all of
//! it `unsafe` at the edges, each block saying why it holds:
//! * `ffi`: httpd, mod_wsgi and Python (see its layer map);
//! * `got`: redirecting another object's calls through its global offset
//!   table (used by `ffi` on mod_wsgi.so, after the fork);
//! * `hookarray`: removing entries from httpd's hook arrays.
//!
//! `got` and `hookarray` are unit-tested here; `ffi` needs httpd's symbols,
//! so it is built only into the module (tested by the real-httpd tests in
//! `tests/`). The request path never allocates on the heap, never waits
//! for the reporter and never makes a syscall of its own (unless
//! `WSGISlowRequests` asks for per-request CPU, see docs/module.md).

// Without `ffi` (unit tests) only their tests use them.
#[cfg_attr(test, allow(dead_code))]
mod got;
#[cfg_attr(test, allow(dead_code))]
mod hookarray;

#[cfg(not(test))]
mod ffi;
