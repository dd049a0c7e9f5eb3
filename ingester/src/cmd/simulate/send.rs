//! Sending: datagrams to the target socket (blocking with a limit), the
//! stop flag and the clock come from `crate::clock`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
