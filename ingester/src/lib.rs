//! The `mod_wsgi-telemetry` ingester and its tools.
//!
//! Data flow: [`socket`] binds the datagram socket, [`recv`] drains it on a
//! dedicated thread and decodes with the `wire` crate, [`state`] keeps the
//! bounded per-process model (it knows nothing of HTTP or terminals),
//! [`messages`] turns state changes into the JSON messages of the API
//! (serialised once, shared by every subscriber), [`batch`] gathers them
//! into one frame per interval for the UI, and [`http`] serves the UI,
//! the JSON API and the WebSocket. `top` is a WebSocket client; `dump`,
//! `replay` and `simulate` are tools around the socket.

pub mod batch;
pub mod cli;
pub mod dump;
pub mod http;
pub mod messages;
pub mod metrics;
pub mod printable;
pub mod recv;
pub mod replay;
pub mod serve;
pub mod simulate;
pub mod socket;
pub mod state;
pub mod top;
pub mod ui_assets;

/// The anchor capture (`tests/fixtures/corpus/`), for unit tests;
/// `$TELEMETRY_CORPUS_DIR` points elsewhere.
#[cfg(test)]
pub(crate) fn test_corpus() -> Vec<u8> {
    let dir = match std::env::var_os("TELEMETRY_CORPUS_DIR") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/corpus"),
    };
    let path = dir.join("anchor-6.1.1-mixed.bin");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
