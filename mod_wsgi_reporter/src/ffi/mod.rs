//! The module's FFI: everything that touches httpd, mod_wsgi or Python
//! types. Each `extern "C"` entry point catches panics, turns httpd types
//! into small Rust values and calls `reporter_core`. Nothing here keeps
//! threads or destructor-bearing state in the Apache parent: the
//! configuration is `Copy` values re-derived on every (re)load, and
//! reporter threads exist only in MPM children and daemon processes.
//!
//! Layers, lowest first; a module imports only from layers below it:
//! 1. `base`: panic guard, error log, configuration access, `dlsym` and
//!    function-pointer helpers, the `Request` wrapper, our module
//!    record's address;
//! 2. `process` (this process's reporter), `signals` (signal spies);
//! 3. `request`: per-request state, its place in `r->pool`, our filters;
//! 4. the two accounting paths: `embedded` (MPM children) and `daemon`
//!    (mod_wsgi daemon processes);
//! 5. `lifecycle` (server phases, child start and end), `directives`, and
//!    `app_abi` (the C functions the application's metrics package calls);
//! 6. `module`: the module record and hook registration.

mod app_abi;
mod base;
mod daemon;
mod directives;
mod embedded;
mod lifecycle;
mod module;
mod process;
mod request;
mod signals;
