//! `mod_wsgi_telemetry.so`: an Apache httpd 2.4 module that reports live
//! telemetry for WSGI applications run by the OS-packaged mod_wsgi (4.9,
//! embedded mode), in mod_wsgi 6.x's wire format.
//!
//! Data flow: request hooks and filters (`ffi`) -> per-slot accumulators
//! (`accum`) -> reporter thread (`runtime`, `reporter`) -> `wire` encoder ->
//! non-blocking UNIX datagram socket (`sys`).
//!
//! All `unsafe` Apache glue lives in `ffi` (`sys` and `got` hold the OS-level
//! unsafe: syscalls, and redirecting mod_wsgi.so's calls in a daemon); everything else is plain Rust,
//! unit-tested without Apache. The request path never allocates on the heap,
//! never waits for the reporter and never makes a syscall of its own
//! (unless `WSGISlowRequests` asks for per-request CPU, see docs/module.md).

pub mod accum;
pub mod app_metrics;
pub mod config;
pub mod daemon;
pub mod gc;
pub mod got;
pub mod hookarray;
pub mod reporter;
pub mod runtime;
pub mod sys;

#[cfg(not(test))]
mod ffi;
