//! From the socket to the model and the messages, in the order a datagram
//! travels: [`socket`] binds the datagram socket; [`receive`] drains it on
//! its own thread, decodes each datagram with the `wire` crate and applies
//! it to [`state`] (the bounded per-process model: pure data, no I/O); when
//! WebSocket clients listen, [`json`] serialises each change once into the
//! message every subscriber receives, and captures snapshots for new
//! clients, and [`batch`] gathers the changes into the batched frames of
//! our own UI.
//!
//! Beside the per-process model, fed from the same receive path:
//! [`app_metrics`] (the applications' own metrics, kind 10, summed per
//! host and process group) and [`history`] (tiers of points beyond the
//! live window), which [`persist`] writes to the state directory and loads
//! back at start; [`counters`] are the merge-by-addition counters that the
//! state's totals and the history's points share.
//! Nothing here knows of HTTP or terminals (that is `api` and `top`).

pub(crate) mod app_metrics;
pub(crate) mod batch;
pub(crate) mod counters;
pub mod history;
pub(crate) mod json;
pub(crate) mod persist;
pub mod receive;
pub mod socket;
pub mod state;
