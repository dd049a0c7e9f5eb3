//! Which terminating signal ended this process, for the shutdown reason.
//! mod_wsgi's daemon handlers (and prefork's child handlers) only set a
//! flag or exit, so the reason (SIGUSR1 = graceful, SIGTERM/SIGINT/SIGHUP =
//! shutdown) is read by a spy installed in front of them that records the
//! number and calls the original handler.
//!
//! Must never: replace a default or ignored disposition, or an
//! `SA_SIGINFO` handler.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering::*};

/// The first terminating signal seen (0 = none).
static SIGNAL_SEEN: AtomicI32 = AtomicI32::new(0);

/// The signals spied on.
const SPIED: [c_int; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR1,
    libc::SIGXCPU,
    libc::SIGHUP,
];
/// The handler each spy calls on (NULL: none).
static PREV_HANDLERS: [AtomicPtr<c_void>; 5] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 5];

/// The first terminating signal this process received (0 = none), once
/// [`install_signal_spies`] ran.
pub(super) fn signal_seen() -> c_int {
    SIGNAL_SEEN.load(Relaxed)
}

extern "C" fn spy(sig: c_int) {
    let _ = SIGNAL_SEEN.compare_exchange(0, sig, Relaxed, Relaxed);
    if let Some(i) = SPIED.iter().position(|&s| s == sig) {
        let h = PREV_HANDLERS[i].load(Relaxed);
        if !h.is_null() && h as usize != libc::SIG_IGN && h as usize != libc::SIG_DFL {
            // SAFETY: the plain `void (*)(int)` handler that was installed
            // before ours (SA_SIGINFO handlers are never wrapped).
            let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(h) };
            f(sig);
        }
    }
}

/// Puts [`spy`] in front of the installed handlers (mod_wsgi's in a
/// daemon, prefork's in an MPM child); default and ignored dispositions are
/// left alone.
pub(super) fn install_signal_spies() {
    for (i, &sig) in SPIED.iter().enumerate() {
        // SAFETY: querying and setting signal dispositions with valid
        // structs; only plain (non-SA_SIGINFO) handlers are wrapped.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let h = old.sa_sigaction;
            if h == libc::SIG_DFL || h == libc::SIG_IGN || h == spy as *const () as usize {
                continue;
            }
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                continue;
            }
            PREV_HANDLERS[i].store(h as *mut c_void, Relaxed);
            let mut new = old;
            new.sa_sigaction = spy as *const () as usize;
            libc::sigaction(sig, &new, std::ptr::null_mut());
        }
    }
}
