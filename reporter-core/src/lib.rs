//! The plain-Rust core of the Apache module `mod_wsgi_telemetry.so`
//! (`mod_wsgi_reporter/`): everything that needs neither Apache nor Python,
//! unit-tested and benchmarked on its own.
//!
//! Data flow: the module's request hooks claim and finish requests in the
//! per-slot accumulators (`accum`) -> the reporter thread (`runtime`)
//! drains them every interval -> `reporter` composes datagrams with the
//! `wire` encoder -> a non-blocking UNIX datagram socket (`sys`).
//! `config` parses the three directives; `daemon` and `gc` keep the
//! bookkeeping of mod_wsgi daemon processes and of Python's garbage
//! collector that the module's FFI layer feeds; `app_metrics` is the
//! application's own counters (fed through the module's C ABI, drained by
//! the reporter thread into kind-10 datagrams); `capabilities` decides,
//! from the mod_wsgi version, which of mod_wsgi's internals the module
//! relies on.
//!
//! `unsafe` here is limited to: syscalls (`sys`), and the per-slot
//! `UnsafeCell`s of `accum` and `daemon` that a slot's spin lock (or its
//! owning thread) guards; each block says why it holds. The request-path
//! functions (`Accounting::claim`, `finish`, `sys::now_us`) never allocate,
//! never wait for the reporter and make no syscall (the vDSO serves the
//! clock).

pub mod accum;
pub mod app_metrics;
pub mod capabilities;
pub mod config;
pub mod daemon;
pub mod gc;
pub mod reporter;
pub mod runtime;
pub mod sys;
