//! Harness for end-to-end tests of `mod_wsgi_telemetry.so`: a real Debian
//! 12 httpd 2.4 (`/usr/sbin/apache2`) with Debian's mod_wsgi 4.9, each test
//! in its own ServerRoot under a temp dir, listening on a free 127.0.0.1
//! port, run in the foreground so the test owns the parent pid and stops it
//! by that pid. Datagrams are received on the test's own UNIX datagram
//! socket and decoded with the `wire` crate.
//!
//! Data flow of a test, one module each:
//! - [`artifacts`]: the module `.so` under test (`$MOD_WSGI_TELEMETRY_SO`
//!   if set, else built once per test binary with `cargo build -p
//!   mod_wsgi_reporter` into `<target dir>/module-for-tests`, a separate
//!   target dir, so the nested cargo never waits for the outer `cargo
//!   test`'s lock), our ingester, mod_wsgi 6.1.1;
//! - [`backend`]: which httpd runs it, the bookworm image's when a Docker
//!   engine answers, else the host's (what the container shares with the
//!   host), with [`containers`] for the images and the other releases;
//! - [`httpd`]: the generated configuration and the running server, its
//!   crashes;
//! - [`collector`]: the test's receiver of the datagrams, sums over them;
//! - [`process_probes`]: the module's processes seen from `/proc` (threads,
//!   signal masks, reporter ticks) and a full receive queue;
//! - [`ingester_state`]: an ingester's `/api/state` read back;
//! - [`prometheus`]: a real Prometheus scraping `/metrics`.
//!
//! What is not about httpd (free ports, waits, our ingester and the
//! reference's, logs) comes from the workspace's test kit, re-exported here.

pub use testkit;
pub use testkit::{
    drop_counter, free_port, http_get, last_lines, read_lossy, reference_exe, signal,
    workspace_root, Serve, PATIENCE,
};
pub use wire;

pub mod artifacts;
pub mod backend;
pub mod collector;
pub mod containers;
pub mod httpd;
pub mod ingester_state;
pub mod process_probes;
pub mod prometheus;

pub use artifacts::{ingester_bin, mod_wsgi6, module_so};
pub use collector::*;
pub use httpd::*;
pub use ingester_state::*;
pub use process_probes::*;
pub use prometheus::*;

/// Generates `#[test]`s for both MPMs from `fn name(mpm: Mpm)`.
#[macro_export]
macro_rules! both_mpms {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn event() {
                    super::$name($crate::Mpm::Event)
                }
                #[test]
                fn prefork() {
                    super::$name($crate::Mpm::Prefork)
                }
            }
        )*
    };
}
