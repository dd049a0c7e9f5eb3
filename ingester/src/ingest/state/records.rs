//! The records the model keeps besides periodic samples: lifecycle events
//! and slow-request entries (with their keys), and how slow-request text
//! is held to the reporter's field sizes.

use std::borrow::Cow;
use std::time::Instant;

/// `t` cut to at most `most` bytes (on a character boundary).
pub(super) fn cut(t: &str, most: usize) -> Cow<'_, str> {
    if t.len() <= most {
        return Cow::Borrowed(t);
    }
    let mut end = most;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Borrowed(&t[..end])
}

/// `t` held to a slow-request field's buffer of `cap` bytes, cut as the
/// reporter cuts (its first `cap - 4` bytes and `...`): longer text is
/// forged.
pub(super) fn cut_slow(t: String, cap: wire::SlowStringCap) -> String {
    let cap = cap as usize;
    if t.len() < cap {
        return t;
    }
    let mut s = cut(&t, cap - 4).into_owned();
    s.push_str("...");
    s
}

/// Lifecycle event (`process_started` / `process_stopping` / `process_stopped`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LifecycleEvent {
    /// Kind name.
    pub(crate) kind: &'static str,
    /// Header pid.
    pub(crate) pid: u32,
    /// Header stamp.
    pub(crate) stamp: f64,
    /// Field 5.
    pub(crate) hostname: String,
    /// Field 6.
    pub(crate) process_group: String,
    /// Field 7.
    pub(crate) process_parent_pid: u64,
    /// Field 130.
    pub(crate) shutdown_reason: String,
    /// Field 131.
    pub(crate) process_uptime: f64,
    /// Field 132.
    pub(crate) lifetime_request_count: u64,
    /// Field 133.
    pub(crate) active_requests_at_decision: u64,
    /// Field 134.
    pub(crate) active_requests_at_exit: u64,
    /// Field 135.
    pub(crate) graceful_drain: u64,
}

/// Correlation key of a slow-request record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SlowKey {
    /// `(pid, log_id)` when the record carries a log id.
    LogId(u32, String),
    /// `(pid, thread_id, start_stamp bits)` otherwise.
    Slot(u32, u64, u64),
}

/// One slow-request entry (keys as the reference's `SlowEntry.to_dict`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SlowEntry {
    /// Header pid.
    pub(crate) pid: u32,
    /// 203.
    pub(crate) thread_id: u64,
    /// 205.
    pub(crate) server_pid: u64,
    /// Text fields 204, 210–217.
    pub(crate) log_id: String,
    /// 210.
    pub(crate) method: String,
    /// 211.
    pub(crate) scheme: String,
    /// 212.
    pub(crate) hostname: String,
    /// 213.
    pub(crate) script_name: String,
    /// 214.
    pub(crate) path_info: String,
    /// 216.
    pub(crate) peer_ip: String,
    /// 215.
    pub(crate) protocol: String,
    /// 217.
    pub(crate) user_agent: String,
    /// 201.
    pub(crate) start_stamp: f64,
    /// 202.
    pub(crate) duration: f64,
    /// 200.
    pub(crate) state: u64,
    /// 230.
    pub(crate) input_bytes: u64,
    /// 231.
    pub(crate) input_reads: u64,
    /// 232.
    pub(crate) output_bytes: u64,
    /// 233.
    pub(crate) output_writes: u64,
    /// 250.
    pub(crate) cpu_user_time: f64,
    /// 251.
    pub(crate) cpu_system_time: f64,
    /// 220.
    pub(crate) server_time: f64,
    /// 221.
    pub(crate) queue_time: f64,
    /// 222.
    pub(crate) daemon_time: f64,
    /// 223.
    pub(crate) application_time: f64,
    /// 224.
    pub(crate) gil_wait_time: f64,
    /// 225.
    pub(crate) gil_wait_count: u64,
    /// 234.
    pub(crate) input_read_time: f64,
    /// 235.
    pub(crate) output_write_time: f64,
    /// 260.
    pub(crate) active_at_start: u64,
    /// 261.
    pub(crate) active_at_completion: u64,
    /// 240.
    pub(crate) status: u64,
    /// Arrival time (not serialised).
    pub(crate) last_seen: Instant,
}
