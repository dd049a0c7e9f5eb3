//! What both accounting paths (`embedded/`, `daemon/`) share about one
//! request: its state ([`state::ReqState`]), where that state lives while
//! httpd runs the request (`r->pool` and `r->request_config`), and our
//! input and output filters, which count the application's I/O and, in
//! embedded mode, end the request at the end of its response.
//!
//! Must never: allocate on the heap, wait for the reporter, or make a
//! syscall beyond the clock read (served by the vDSO).

pub(super) mod filters;
pub(super) mod state;
