//! What `serve` offers over HTTP, all read from the shared model of
//! `ingest`: [`http`] (the listener with its limits, the routes, the JSON
//! API and the WebSocket), [`ui_assets`] (the browser UI's files, embedded)
//! [`metrics`] (the `/metrics` exposition for Prometheus) and [`stats`]
//! (the applications' own metrics as JSON). Below them: [`http_counters`]
//! (what the HTTP side refused, read by `http` and `metrics`) and [`reply`]
//! (the JSON answer of every route).

pub(crate) mod history;
pub(crate) mod http;
pub(crate) mod http_counters;
pub mod metrics;
pub(crate) mod reply;
pub(crate) mod stats;
pub(crate) mod ui_assets;
