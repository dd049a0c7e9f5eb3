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
//! * a child that runs no Python (`WSGIRestrictEmbedded On`): all three,
//!   except the handler when there are daemon groups (it names this child
//!   in the daemons' slow records);
//! * requests accounted from mod_wsgi's own calls: the handler
//!   (`embedded::mod_wsgi_calls` wraps mod_wsgi's own entry) and
//!   `insert_error_filter` (they serve the filters); `pre_connection` too
//!   unless `MaxConnectionsPerChild` is set (its count only tells the
//!   `maximum_requests` stop reason apart).
//!
//! Must never: touch an array in the Apache parent or after worker threads
//! started, or an array whose element is not an `ap_LINK_*_t`.

use apache_headers as ap;

use crate::hookarray::remove;

/// Our hook functions, as httpd holds them.
pub(super) struct Ours {
    pub(super) handler: usize,
    pub(super) pre_connection: usize,
    pub(super) insert_error_filter: usize,
}

/// Removes, in this process, our `insert_error_filter` entry, our
/// `handler` entry unless `keep_handler`, and our `pre_connection` entry
/// unless `keep_pre_connection`.
///
/// # Safety
/// Only in an MPM child's `child_init` (httpd's arrays, copied at the fork,
/// no request running).
pub(super) unsafe fn drop_unused(ours: &Ours, keep_handler: bool, keep_pre_connection: bool) {
    // SAFETY: (all three) httpd's live arrays of this process, no request
    // running (the caller's contract).
    unsafe {
        if !keep_handler {
            remove(ap::ap_hook_get_handler(), ours.handler);
        }
        remove(
            ap::ap_hook_get_insert_error_filter(),
            ours.insert_error_filter,
        );
        if !keep_pre_connection {
            remove(ap::ap_hook_get_pre_connection(), ours.pre_connection);
        }
    }
}
