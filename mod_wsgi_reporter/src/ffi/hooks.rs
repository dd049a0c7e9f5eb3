//! Taking our own per-request and per-connection hooks out of httpd's hook
//! arrays in an MPM child that has no use for them, so that they cost
//! nothing there, not even a call (docs/module.md "The request path").
//!
//! httpd registers hooks once, before the configuration is read, so every
//! child gets our handler, `pre_connection` and `insert_error_filter`
//! entries. In `child_init` (after the fork, before any request; the arrays
//! are this process's copy) [`drop_unused`] removes those this child will
//! not call on:
//! * no `WSGITelemetryService`: all three;
//! * direct mode: the handler (direct.rs wraps mod_wsgi's own entry) and
//!   `insert_error_filter` (they serve the filters); `pre_connection` too
//!   unless `MaxConnectionsPerChild` is set (its count only tells the
//!   `maximum_requests` stop reason apart).
//!
//! Must never: touch an array in the Apache parent or after worker threads
//! started, or an array whose element is not an `ap_LINK_*_t`.

use apache_headers as ap;

use crate::hookarray::remove;

/// Which of our hooks a child keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keep {
    /// Not configured: none.
    Nothing,
    /// Direct mode: `pre_connection` only when its count is needed.
    Direct { count_connections: bool },
}

/// Our hook functions, as httpd holds them.
pub(super) struct Ours {
    pub(super) handler: usize,
    pub(super) pre_connection: usize,
    pub(super) insert_error_filter: usize,
}

/// Removes, in this process, our entries that `keep` does not need; returns
/// how many were removed.
///
/// # Safety
/// Only in an MPM child's `child_init` (httpd's arrays, copied at the fork,
/// no request running).
pub(super) unsafe fn drop_unused(ours: &Ours, keep: Keep) -> usize {
    let mut n = 0;
    // SAFETY (all three): httpd's live arrays of this process, no request
    // running (the caller's contract).
    unsafe {
        n += remove(ap::ap_hook_get_handler(), ours.handler);
        n += remove(
            ap::ap_hook_get_insert_error_filter(),
            ours.insert_error_filter,
        );
        if !matches!(
            keep,
            Keep::Direct {
                count_connections: true
            }
        ) {
            n += remove(ap::ap_hook_get_pre_connection(), ours.pre_connection);
        }
    }
    n
}
