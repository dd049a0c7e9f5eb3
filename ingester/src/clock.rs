//! What every subcommand needs from the process: the wall clock, and a stop
//! flag that SIGINT/SIGTERM set (`dump`, `replay` and `simulate` poll it
//! between datagrams; `serve` has its own shutdown through tokio).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set the flag [`stopping`] reads, without
/// SA_RESTART: a blocked send or receive returns EINTR, so the loop can stop
/// and print its summary.
pub(crate) fn stop_on_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sa` is fully initialised (zeroed, then handler and empty
        // mask set); the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// SIGINT or SIGTERM came since [`stop_on_signals`].
pub(crate) fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}
