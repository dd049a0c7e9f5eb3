//! Raw FFI bindings to httpd 2.4 and APR, generated at build time from the
//! installed headers, plus the few macro-only APIs written once as Rust
//! functions. This crate does FFI only: no policy, no state.

#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

// bindgen's output: its accessors have no safety comments of ours.
#[allow(
    unnecessary_transmutes,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]
mod raw {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}
pub use raw::*;

pub mod macros;
