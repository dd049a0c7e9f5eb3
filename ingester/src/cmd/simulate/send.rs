//! Sending: datagrams to the target socket (blocking with a limit), the
//! clock ticks are stamped with, and the stop flag SIGINT/SIGTERM set.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) static STOP: AtomicBool = AtomicBool::new(false);

pub(super) extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub(super) fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Sends datagrams, counting failures; reports the first failure of a run
/// of failures (the ingester may simply not be up yet).
pub(super) struct Sender {
    sock: UnixDatagram,
    target: PathBuf,
    pub(super) sent: u64,
    pub(super) failed: u64,
    failing: bool,
    quiet: bool,
}

impl Sender {
    pub(super) fn new(target: &Path, quiet: bool) -> io::Result<Sender> {
        let sock = UnixDatagram::unbound()?;
        // Blocking with a limit: lossless against a live ingester, never
        // stuck forever behind a stalled one.
        sock.set_write_timeout(Some(Duration::from_secs(1)))?;
        Ok(Sender {
            sock,
            target: target.to_path_buf(),
            sent: 0,
            failed: 0,
            failing: false,
            quiet,
        })
    }

    pub(super) fn send(&mut self, d: &[u8]) {
        match self.sock.send_to(d, &self.target) {
            Ok(_) => {
                self.sent += 1;
                self.failing = false;
            }
            Err(e) => {
                self.failed += 1;
                if !self.failing && !self.quiet {
                    eprintln!("sendto failed: {e}");
                }
                self.failing = true;
            }
        }
    }
}
