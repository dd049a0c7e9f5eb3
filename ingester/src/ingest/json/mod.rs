//! The JSON messages of the HTTP/WebSocket API, exactly the reference's keys
//! and shapes, plus a few extra keys (a superset: `docs/compatibility.md`
//! section 2).
//!
//! Every message is serialised once, by the ingest thread, and the same
//! bytes go to every subscriber. Snapshots are assembled from shared,
//! immutable pieces captured under the state lock and serialised outside it.
//! BYTES values are always written as text (UTF-8 with replacement), also
//! inside GC fields (the reference crashes there, `docs/compatibility.md` C11).
//!
//! [`live`] holds the per-update messages (serde), [`snapshot`] the
//! snapshot capture and its budget, [`writer`] the direct writer snapshots
//! are written with.

mod live;
mod snapshot;
mod writer;

#[cfg(test)]
mod serde_oracle;
#[cfg(test)]
mod tests;

/// A published message (serialised once, shared by every subscriber).
pub(crate) type Msg = std::sync::Arc<str>;

pub(crate) use live::{sample_pairs_json, slow_clear_json, update_json};
pub(crate) use snapshot::{capture, write_snapshot, SnapshotRefs};
