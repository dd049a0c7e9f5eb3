//! The `mod_wsgi-telemetry` ingester and its tools.
//!
//! Data flow, one directory per stage:
//! - [`ingest`]: [`ingest::socket`] binds the datagram socket,
//!   [`ingest::receive`] drains it on a dedicated thread and decodes with the
//!   `wire` crate, [`ingest::state`] keeps the bounded per-process model (it
//!   knows nothing of HTTP or terminals), and [`ingest::json`] turns state
//!   changes into the JSON messages of the API (serialised once, shared by
//!   every subscriber); the applications' metrics and the on-disk history
//!   are fed from the same path (see [`ingest`]);
//! - [`api`]: the HTTP listener, the UI's files, the JSON API, the WebSocket
//!   and the `/metrics` exposition, all read from the shared state;
//! - [`cmd`]: the command line and one module per subcommand (`serve` wires
//!   `ingest` to `api`; `dump`, `replay` and `simulate` are tools around the
//!   socket);
//! - `top`: the terminal monitor, a WebSocket client of `serve`
//!   (`client` -> `model` -> `view_model` -> `widgets`).
//!
//! Shared by the subcommands: `clock` (the wall clock and the SIGINT/SIGTERM
//! stop flag) and `printable` (makes datagram-supplied strings safe for the
//! terminal: `dump`'s text and `top`).

pub mod api;
pub(crate) mod clock;
pub mod cmd;
pub mod ingest;
pub(crate) mod printable;
pub(crate) mod top;
