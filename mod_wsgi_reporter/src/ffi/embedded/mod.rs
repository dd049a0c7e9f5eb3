//! Embedded mode: accounting requests mod_wsgi runs in an MPM child.
//!
//! Two ways, chosen once per child in `child_init`:
//! * `mod_wsgi_calls`: mod_wsgi's handler and three of its calls are
//!   wrapped, the request's state lives in the wrapper's stack frame (no
//!   pool allocation, cleanup or filter per request);
//! * `filter_mode` (the fallback, or when `MOD_WSGI_TELEMETRY_FILTERS` is
//!   set): our handler hook claims the request and our filters
//!   (`request::filters`) count its I/O and end it.
//!
//! Both claim through `claim` and name this child in daemons' slow records
//! through `server_pid`.
//!
//! Must never: claim a request mod_wsgi hands to a daemon process, or
//! record a request twice.

pub(super) mod claim;
pub(super) mod filter_mode;
pub(super) mod mod_wsgi_calls;
pub(super) mod server_pid;
