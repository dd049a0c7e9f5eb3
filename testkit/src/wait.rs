//! Waiting with a deadline: poll a condition until it holds, fail with a
//! message that says what was awaited and what was seen instead.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How long a server gets to start, a condition to come true or a process
/// to exit before the test fails: a hang guard for a loaded machine, not a
/// timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How often [`poll`] looks again.
const EVERY: Duration = Duration::from_millis(20);

/// Polls `probe` every 20 ms until it gives `Ok`; panics with `what` and the
/// last `Err` (what it saw instead) after [`PATIENCE`].
pub fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(seen) => assert!(
                t0.elapsed() < PATIENCE,
                "timed out waiting for {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(EVERY);
    }
}

/// Like [`poll`] for a condition that comes true by steps (datagrams taken
/// in, records written): `probe` gives `Err((progress, seen))` until it
/// holds, and the [`PATIENCE`] deadline starts again whenever `progress`
/// grows. So a loaded machine that is slow but moving does not fail the
/// test; one that stops moving for [`PATIENCE`] does.
pub fn poll_progress<T>(what: &str, mut probe: impl FnMut() -> Result<T, (u64, String)>) -> T {
    let mut since = Instant::now();
    let mut best = None;
    loop {
        match probe() {
            Ok(v) => return v,
            Err((progress, seen)) => {
                if best.is_none_or(|b| progress > b) {
                    best = Some(progress);
                    since = Instant::now();
                }
                assert!(
                    since.elapsed() < PATIENCE,
                    "timed out waiting for {what}: no progress for {PATIENCE:?}; last seen: {seen}"
                );
            }
        }
        std::thread::sleep(EVERY);
    }
}

/// Polls `done` until it holds (see [`poll`]).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    poll(what, || {
        if done() {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str) {
    poll(&format!("{what} to listen on 127.0.0.1:{port}"), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

/// Waits until `path` exists (a UNIX socket being bound, a file written).
pub fn wait_for_path(path: &Path, what: &str) {
    wait_until(&format!("{what} at {}", path.display()), || path.exists())
}

/// Waits for a child that should exit by itself; kills it (by pid) and
/// panics after [`PATIENCE`].
pub fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait on our child") {
            return st;
        }
        if t0.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {PATIENCE:?}");
        }
        std::thread::sleep(EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_first_ok() {
        let mut n = 0;
        let v = poll("the third try", || {
            n += 1;
            if n == 3 {
                Ok(n)
            } else {
                Err(format!("try {n}"))
            }
        });
        assert_eq!(v, 3);
    }

    #[test]
    fn poll_progress_waits_while_progress_is_made() {
        // Each try moves by one: the deadline keeps starting again, and
        // the last value is returned.
        let mut n = 0u64;
        let v = poll_progress("ten steps", || {
            n += 1;
            if n == 10 {
                Ok(n)
            } else {
                Err((n, format!("step {n}")))
            }
        });
        assert_eq!(v, 10);
    }

    #[test]
    fn wait_for_port_sees_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        wait_for_port(l.local_addr().unwrap().port(), "the test's listener");
    }
}
