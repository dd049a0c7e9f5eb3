//! The thin unsafe layer: the module record, hooks, filters and directive
//! handlers. Each `extern "C"` entry point catches panics, turns httpd
//! types into small Rust values and calls the safe code in the other
//! modules. Nothing here keeps threads or destructor-bearing state in the
//! Apache parent: the config is a `Copy` value re-derived on every (re)load,
//! and the reporter thread exists only in MPM children.

mod daemon;
mod daemon_hooks;
mod direct;
mod glue;
mod hooks;
mod python;
