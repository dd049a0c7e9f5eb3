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
pub struct LifecycleEvent {
    /// Kind name.
    pub kind: &'static str,
    /// Header pid.
    pub pid: u32,
    /// Header stamp.
    pub stamp: f64,
    /// Field 5.
    pub hostname: String,
    /// Field 6.
    pub process_group: String,
    /// Field 7.
    pub process_parent_pid: u64,
    /// Field 130.
    pub shutdown_reason: String,
    /// Field 131.
    pub process_uptime: f64,
    /// Field 132.
    pub lifetime_request_count: u64,
    /// Field 133.
    pub active_requests_at_decision: u64,
    /// Field 134.
    pub active_requests_at_exit: u64,
    /// Field 135.
    pub graceful_drain: u64,
}

/// Correlation key of a slow-request record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SlowKey {
    /// `(pid, log_id)` when the record carries a log id.
    LogId(u32, String),
    /// `(pid, thread_id, start_stamp bits)` otherwise.
    Slot(u32, u64, u64),
}

/// One slow-request entry (keys as the reference's `SlowEntry.to_dict`).
#[derive(Clone, Debug, PartialEq)]
pub struct SlowEntry {
    /// Header pid.
    pub pid: u32,
    /// 203.
    pub thread_id: u64,
    /// 205.
    pub server_pid: u64,
    /// Text fields 204, 210–217.
    pub log_id: String,
    /// 210.
    pub method: String,
    /// 211.
    pub scheme: String,
    /// 212.
    pub hostname: String,
    /// 213.
    pub script_name: String,
    /// 214.
    pub path_info: String,
    /// 216.
    pub peer_ip: String,
    /// 215.
    pub protocol: String,
    /// 217.
    pub user_agent: String,
    /// 201.
    pub start_stamp: f64,
    /// 202.
    pub duration: f64,
    /// 200.
    pub state: u64,
    /// 230.
    pub input_bytes: u64,
    /// 231.
    pub input_reads: u64,
    /// 232.
    pub output_bytes: u64,
    /// 233.
    pub output_writes: u64,
    /// 250.
    pub cpu_user_time: f64,
    /// 251.
    pub cpu_system_time: f64,
    /// 220.
    pub server_time: f64,
    /// 221.
    pub queue_time: f64,
    /// 222.
    pub daemon_time: f64,
    /// 223.
    pub application_time: f64,
    /// 224.
    pub gil_wait_time: f64,
    /// 225.
    pub gil_wait_count: u64,
    /// 234.
    pub input_read_time: f64,
    /// 235.
    pub output_write_time: f64,
    /// 260.
    pub active_at_start: u64,
    /// 261.
    pub active_at_completion: u64,
    /// 240.
    pub status: u64,
    /// Arrival time (not serialised).
    pub last_seen: Instant,
}
