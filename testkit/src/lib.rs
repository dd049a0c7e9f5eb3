//! The workspace's test kit: what the integration tests, the examples and
//! the benchmarks of every crate share, written once.
//!
//! - [`wait`]: deadline waits that fail with what they waited for and what
//!   they saw instead ([`PATIENCE`], [`poll`], [`wait_until`], a TCP port, a
//!   UNIX socket, a child's exit);
//! - [`net`]: free loopback ports and raw HTTP/1.0 exchanges;
//! - [`fixtures`]: the workspace root, the corpus capture (its datagrams and
//!   the reference decoder's JSON of them), `$TELEMETRY_CORPUS_DIR`;
//! - [`serve`]: our `mod_wsgi-telemetry serve` (the built binary) or the
//!   reference's (mod_wsgi-telemetry 1.1.0 from [`reference`]) on free ports
//!   with a socket in a temporary directory, stopped by pid when dropped;
//! - [`process`]: signals and process trees by pid;
//! - [`logs`]: reading and tail-searching log files;
//! - [`clock`]: the wall clock as the wire's stamps count it.
//!
//! Nothing here sleeps a fixed time and assumes something happened: a wait
//! polls for its condition and gives up only after [`PATIENCE`], a hang
//! guard and never a timing assertion. Every process started here is
//! stopped by its own pid.

#![deny(unsafe_code)]

pub mod app_metrics;
pub mod clock;
pub mod fixtures;
pub mod logs;
pub mod net;
pub mod process;
pub mod reference;
pub mod serve;
pub mod wait;

pub use app_metrics::DistTotals;
pub use clock::{utc_now, wall_now};
pub use fixtures::{
    corpus_capture, corpus_dir, corpus_path, corpus_records, reference_decoding, workspace_root,
};
pub use logs::{last_lines, read_lossy, wait_for_log};
pub use net::{free_port, http, http_get};
pub use process::{descendants, process_gone, run_ok, signal, KillTree};
pub use reference::{ref_venv, reference_exe, script_path};
pub use serve::{drop_counter, listen, sample_count, send_datagrams, state_summary, Serve};
pub use wait::{
    poll, poll_progress, wait_exit, wait_for_path, wait_for_port, wait_until, PATIENCE,
};
