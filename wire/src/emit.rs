//! Per-kind emission rules of the 6.x reporter: which
//! fields each kind carries, in which order, and under which conditions.
//! Following them byte for byte keeps our datagrams indistinguishable in
//! format from mod_wsgi 6.x's. Everything here writes into a caller-owned
//! buffer; nothing allocates.

use crate::histogram::BUCKETS;
use crate::registry::id;
use crate::truncate::{truncate_into, SlowStringCap};
use crate::{EncodeError, Encoder, Header, Kind, MAX_SLOTS};

/// Identity strings are cut to these many bytes without a marker.
const CUT_MOD_WSGI_VERSION: usize = 31;
const CUT_PYTHON_VERSION: usize = 63;
const CUT_APACHE_VERSION: usize = 63;
const CUT_MPM_NAME: usize = 31;
pub(crate) const CUT_HOSTNAME: usize = 127;
pub(crate) const CUT_PROCESS_GROUP: usize = 63;
const CUT_INTERPRETER_NAME: usize = 127;

fn cut(s: &[u8], max: usize) -> &[u8] {
    &s[..s.len().min(max)]
}

/// Who is reporting. Empty strings are omitted from the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity<'a> {
    /// e.g. `4.9.4`.
    pub mod_wsgi_version: &'a [u8],
    /// e.g. `3.11.2`.
    pub python_version: &'a [u8],
    /// e.g. `Apache/2.4.62`.
    pub apache_version: &'a [u8],
    /// `event`, `worker`, `prefork`, …
    pub mpm_name: &'a [u8],
    /// `gethostname()`.
    pub hostname: &'a [u8],
    /// Daemon process group; empty in embedded mode.
    pub process_group: &'a [u8],
    /// Apache parent pid.
    pub process_parent_pid: u64,
    /// `sys.getswitchinterval()`; omitted when not > 0.
    pub switch_interval: f64,
}

/// One phase's per-interval aggregate.
#[derive(Clone, Copy, Debug)]
pub struct Phase<'a> {
    /// Sum of per-request durations, seconds.
    pub sum: f64,
    /// Requests recorded for this phase; 0 means min/max are omitted.
    pub count: u64,
    /// Exact minimum, seconds.
    pub min: f64,
    /// Exact maximum, seconds.
    pub max: f64,
    /// 65 bucket counts.
    pub buckets: &'a [i32; BUCKETS],
}

impl Phase<'_> {
    /// Mean per recorded request (0.0 when none).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

/// The five per-slot arrays (110–114); each as long as the slot count
/// (at most [`MAX_SLOTS`] entries are sent).
#[derive(Clone, Copy, Debug)]
pub struct Slots<'a> {
    /// 110 requests completed per slot.
    pub completed: &'a [i32],
    /// 111 busy seconds per slot.
    pub busy_time: &'a [f64],
    /// 112 CPU seconds of requests completed per slot.
    pub cpu_time: &'a [f64],
    /// 113 age of the in-flight request per slot.
    pub current_elapsed: &'a [f64],
    /// 114 longest request completed per slot.
    pub max_duration: &'a [f64],
}

/// Everything one REQUEST tick carries.
#[derive(Clone, Copy, Debug)]
pub struct RequestTick<'a> {
    /// Identity (sent on every tick, as 6.x does).
    pub identity: &'a Identity<'a>,
    /// 10.
    pub sample_period: f64,
    /// 11.
    pub telemetry_interval: f64,
    /// 12.
    pub slow_requests_threshold: f64,
    /// 19 (extension): datagrams this process could not send so far.
    pub reporter_dropped_datagrams: Option<u64>,
    /// 20.
    pub request_count: u64,
    /// 21.
    pub request_throughput: f64,
    /// 22.
    pub capacity_utilization: f64,
    /// 30.
    pub cpu_user_utilization: f64,
    /// 31.
    pub cpu_system_utilization: f64,
    /// 32.
    pub cpu_utilization: f64,
    /// 40.
    pub memory_rss: u64,
    /// 41.
    pub memory_max_rss: u64,
    /// 50.
    pub request_threads_maximum: u64,
    /// 51.
    pub request_threads_started: u64,
    /// 52.
    pub request_threads_active: u64,
    /// 60/70/80/90.
    pub server: Phase<'a>,
    /// 63/73/83/93.
    pub application: Phase<'a>,
    /// 64/74/84/94.
    pub request: Phase<'a>,
    /// 65/75/85/95; `None` where GIL waits cannot be observed (the fields
    /// are then absent, not zero).
    pub gil_wait: Option<Phase<'a>>,
    /// 66/76/86/96.
    pub input_read: Phase<'a>,
    /// 67/77/87/97.
    pub output_write: Phase<'a>,
    /// Queue (61/71/81/91) and daemon (62/72/82/92) phases: "daemon timing",
    /// only in daemon mode and only with at least one request this interval.
    pub queue_daemon: Option<(Phase<'a>, Phase<'a>)>,
    /// 100.
    pub input_bytes_total: u64,
    /// 101.
    pub input_reads_total: u64,
    /// 102.
    pub output_bytes_total: u64,
    /// 103.
    pub output_writes_total: u64,
    /// 120..124: 1xx, 2xx, 3xx, 4xx, 5xx (always sent).
    pub status: [u64; 5],
    /// 110..114.
    pub slots: Slots<'a>,
}

fn identity_strings(e: &mut Encoder<'_>, i: &Identity<'_>) -> Result<(), EncodeError> {
    e.bytes_if_nonempty(
        id::MOD_WSGI_VERSION,
        cut(i.mod_wsgi_version, CUT_MOD_WSGI_VERSION),
    )?;
    e.bytes_if_nonempty(
        id::PYTHON_VERSION,
        cut(i.python_version, CUT_PYTHON_VERSION),
    )?;
    e.bytes_if_nonempty(
        id::APACHE_VERSION,
        cut(i.apache_version, CUT_APACHE_VERSION),
    )?;
    e.bytes_if_nonempty(id::MPM_NAME, cut(i.mpm_name, CUT_MPM_NAME))?;
    e.bytes_if_nonempty(id::HOSTNAME, cut(i.hostname, CUT_HOSTNAME))?;
    e.bytes_if_nonempty(id::PROCESS_GROUP, cut(i.process_group, CUT_PROCESS_GROUP))
}

pub(crate) fn host_and_group(
    e: &mut Encoder<'_>,
    hostname: &[u8],
    group: &[u8],
) -> Result<(), EncodeError> {
    e.bytes_if_nonempty(id::HOSTNAME, cut(hostname, CUT_HOSTNAME))?;
    e.bytes_if_nonempty(id::PROCESS_GROUP, cut(group, CUT_PROCESS_GROUP))
}

/// Encodes a REQUEST datagram (kind 2) into `buf`; returns its length.
pub fn request(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    t: &RequestTick<'_>,
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::REQUEST, pid, seq, stamp));
    identity_strings(&mut e, t.identity)?;
    e.u64(id::PROCESS_PARENT_PID, t.identity.process_parent_pid)?;
    e.f64(id::SAMPLE_PERIOD, t.sample_period)?;
    e.f64(id::TELEMETRY_INTERVAL, t.telemetry_interval)?;
    e.f64(id::SLOW_REQUESTS_THRESHOLD, t.slow_requests_threshold)?;
    if t.identity.switch_interval > 0.0 {
        e.f64(id::SWITCH_INTERVAL, t.identity.switch_interval)?;
    }
    if let Some(d) = t.reporter_dropped_datagrams {
        e.u64(id::REPORTER_DROPPED_DATAGRAMS, d)?;
    }
    e.u64(id::REQUEST_COUNT, t.request_count)?;
    e.f64(id::REQUEST_THROUGHPUT, t.request_throughput)?;
    e.f64(id::CAPACITY_UTILIZATION, t.capacity_utilization)?;
    e.f64(id::CPU_USER_UTILIZATION, t.cpu_user_utilization)?;
    e.f64(id::CPU_SYSTEM_UTILIZATION, t.cpu_system_utilization)?;
    e.f64(id::CPU_UTILIZATION, t.cpu_utilization)?;
    e.u64(id::MEMORY_RSS, t.memory_rss)?;
    e.u64(id::MEMORY_MAX_RSS, t.memory_max_rss)?;
    e.u64(id::REQUEST_THREADS_MAXIMUM, t.request_threads_maximum)?;
    e.u64(id::REQUEST_THREADS_STARTED, t.request_threads_started)?;
    e.u64(id::REQUEST_THREADS_ACTIVE, t.request_threads_active)?;

    // Means: fixed phases first, then queue/daemon only with daemon timing.
    e.f64(id::SERVER_TIME, t.server.mean())?;
    e.f64(id::APPLICATION_TIME, t.application.mean())?;
    e.f64(id::REQUEST_TIME, t.request.mean())?;
    if let Some(g) = &t.gil_wait {
        e.f64(id::GIL_WAIT_TIME, g.mean())?;
    }
    e.f64(id::INPUT_READ_TIME, t.input_read.mean())?;
    e.f64(id::OUTPUT_WRITE_TIME, t.output_write.mean())?;
    if let Some((q, d)) = &t.queue_daemon {
        e.f64(id::QUEUE_TIME, q.mean())?;
        e.f64(id::DAEMON_TIME, d.mean())?;
    }

    // Min/max pairs, only for phases that recorded something.
    let min_max = |e: &mut Encoder<'_>, p: &Phase<'_>, min_id: u16| -> Result<(), EncodeError> {
        if p.count > 0 {
            e.f64(min_id, p.min)?;
            e.f64(min_id + 10, p.max)?;
        }
        Ok(())
    };
    min_max(&mut e, &t.server, id::SERVER_TIME_MIN)?;
    min_max(&mut e, &t.application, id::APPLICATION_TIME_MIN)?;
    min_max(&mut e, &t.request, id::REQUEST_TIME_MIN)?;
    if let Some(g) = &t.gil_wait {
        min_max(&mut e, g, id::GIL_WAIT_TIME_MIN)?;
    }
    min_max(&mut e, &t.input_read, id::INPUT_READ_TIME_MIN)?;
    min_max(&mut e, &t.output_write, id::OUTPUT_WRITE_TIME_MIN)?;
    if let Some((q, d)) = &t.queue_daemon {
        min_max(&mut e, q, id::QUEUE_TIME_MIN)?;
        min_max(&mut e, d, id::DAEMON_TIME_MIN)?;
    }

    // Histograms.
    e.i32_array(id::SERVER_TIME_BUCKETS, t.server.buckets)?;
    e.i32_array(id::APPLICATION_TIME_BUCKETS, t.application.buckets)?;
    if let Some((q, d)) = &t.queue_daemon {
        e.i32_array(id::QUEUE_TIME_BUCKETS, q.buckets)?;
        e.i32_array(id::DAEMON_TIME_BUCKETS, d.buckets)?;
    }
    e.i32_array(id::REQUEST_TIME_BUCKETS, t.request.buckets)?;
    if let Some(g) = &t.gil_wait {
        e.i32_array(id::GIL_WAIT_TIME_BUCKETS, g.buckets)?;
    }
    e.i32_array(id::INPUT_READ_TIME_BUCKETS, t.input_read.buckets)?;
    e.i32_array(id::OUTPUT_WRITE_TIME_BUCKETS, t.output_write.buckets)?;

    e.u64(id::INPUT_BYTES_TOTAL, t.input_bytes_total)?;
    e.u64(id::INPUT_READS_TOTAL, t.input_reads_total)?;
    e.u64(id::OUTPUT_BYTES_TOTAL, t.output_bytes_total)?;
    e.u64(id::OUTPUT_WRITES_TOTAL, t.output_writes_total)?;

    for (k, v) in t.status.iter().enumerate() {
        e.u64(id::STATUS_1XX_TOTAL + k as u16, *v)?;
    }

    let s = &t.slots;
    let n = s.completed.len().min(MAX_SLOTS);
    if n > 0 {
        let lim = |len: usize| len.min(n);
        e.i32_array(id::REQUEST_THREADS_COMPLETED, &s.completed[..n])?;
        e.f64_array(
            id::REQUEST_THREADS_BUSY_TIME,
            &s.busy_time[..lim(s.busy_time.len())],
        )?;
        e.f64_array(
            id::REQUEST_THREADS_CPU_TIME,
            &s.cpu_time[..lim(s.cpu_time.len())],
        )?;
        e.f64_array(
            id::REQUEST_THREADS_CURRENT_ELAPSED,
            &s.current_elapsed[..lim(s.current_elapsed.len())],
        )?;
        e.f64_array(
            id::REQUEST_THREADS_MAX_DURATION,
            &s.max_duration[..lim(s.max_duration.len())],
        )?;
    }
    Ok(e.finish())
}

/// One slow-request record (kind 4), active or completed.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlowRecord<'a> {
    /// 200: 0 active, 1 completed.
    pub state: u64,
    /// 201.
    pub start_stamp: f64,
    /// 202.
    pub duration: f64,
    /// 203: 1-based worker slot.
    pub thread_id: u64,
    /// 205.
    pub server_pid: u64,
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
    /// 204 (cut to 63 bytes with `...`).
    pub log_id: &'a [u8],
    /// 210.
    pub method: &'a [u8],
    /// 211 (always sent; `http` when empty).
    pub scheme: &'a [u8],
    /// 212.
    pub hostname: &'a [u8],
    /// 213.
    pub script_name: &'a [u8],
    /// 214 (never with the query string).
    pub path_info: &'a [u8],
    /// 215.
    pub protocol: &'a [u8],
    /// 216.
    pub peer_ip: &'a [u8],
    /// 217 (only with `+CaptureUserAgent`).
    pub user_agent: &'a [u8],
}

/// Encodes a SLOW_REQUEST datagram (kind 4); strings are cut as in
/// [`crate::truncate_into`].
pub fn slow_request(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    r: &SlowRecord<'_>,
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::SLOW_REQUEST, pid, seq, stamp));
    e.u64(id::SLOW_RECORD_STATE, r.state)?;
    e.f64(id::SLOW_START_STAMP, r.start_stamp)?;
    e.f64(id::SLOW_DURATION, r.duration)?;
    e.u64(id::SLOW_THREAD_ID, r.thread_id)?;
    e.u64(id::SLOW_SERVER_PID, r.server_pid)?;
    e.u64(id::SLOW_INPUT_BYTES, r.input_bytes)?;
    e.u64(id::SLOW_INPUT_READS, r.input_reads)?;
    e.u64(id::SLOW_OUTPUT_BYTES, r.output_bytes)?;
    e.u64(id::SLOW_OUTPUT_WRITES, r.output_writes)?;
    e.f64(id::SLOW_CPU_USER_TIME, r.cpu_user_time)?;
    e.f64(id::SLOW_CPU_SYSTEM_TIME, r.cpu_system_time)?;
    e.f64(id::SLOW_SERVER_TIME, r.server_time)?;
    e.f64(id::SLOW_QUEUE_TIME, r.queue_time)?;
    e.f64(id::SLOW_DAEMON_TIME, r.daemon_time)?;
    e.f64(id::SLOW_APPLICATION_TIME, r.application_time)?;
    e.f64(id::SLOW_GIL_WAIT_TIME, r.gil_wait_time)?;
    e.u64(id::SLOW_GIL_WAIT_COUNT, r.gil_wait_count)?;
    e.f64(id::SLOW_INPUT_READ_TIME, r.input_read_time)?;
    e.f64(id::SLOW_OUTPUT_WRITE_TIME, r.output_write_time)?;
    e.u64(id::SLOW_ACTIVE_AT_START, r.active_at_start)?;
    e.u64(id::SLOW_ACTIVE_AT_COMPLETION, r.active_at_completion)?;
    e.u64(id::SLOW_STATUS, r.status)?;
    let scheme: &[u8] = if r.scheme.is_empty() {
        b"http"
    } else {
        r.scheme
    };
    let mut tmp = [0u8; 512];
    for (fid, s, cap) in [
        (id::SLOW_LOG_ID, r.log_id, SlowStringCap::LogId),
        (id::SLOW_METHOD, r.method, SlowStringCap::Short),
        (id::SLOW_SCHEME, scheme, SlowStringCap::Short),
        (id::SLOW_HOSTNAME, r.hostname, SlowStringCap::Name),
        (id::SLOW_SCRIPT_NAME, r.script_name, SlowStringCap::Name),
        (id::SLOW_PATH_INFO, r.path_info, SlowStringCap::Long),
        (id::SLOW_PROTOCOL, r.protocol, SlowStringCap::Short),
        (id::SLOW_PEER_IP, r.peer_ip, SlowStringCap::PeerIp),
        (id::SLOW_USER_AGENT, r.user_agent, SlowStringCap::Long),
    ] {
        let n = truncate_into(s, cap as usize, &mut tmp);
        e.bytes_if_nonempty(fid, &tmp[..n])?;
    }
    Ok(e.finish())
}

/// Encodes PROCESS_STARTED (kind 5). `stamp` is the reporter's start instant.
pub fn process_started(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    i: &Identity<'_>,
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::PROCESS_STARTED, pid, seq, stamp));
    identity_strings(&mut e, i)?;
    e.u64(id::PROCESS_PARENT_PID, i.process_parent_pid)?;
    if i.switch_interval > 0.0 {
        e.f64(id::SWITCH_INTERVAL, i.switch_interval)?;
    }
    Ok(e.finish())
}

/// PROCESS_STOPPING / PROCESS_STOPPED payload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lifecycle<'a> {
    /// 5.
    pub hostname: &'a [u8],
    /// 6.
    pub process_group: &'a [u8],
    /// 130, omitted when empty.
    pub shutdown_reason: &'a [u8],
    /// 133 (STOPPING).
    pub active_requests_at_decision: u64,
    /// 131 (STOPPED).
    pub process_uptime: f64,
    /// 132 (STOPPED).
    pub lifetime_request_count: u64,
    /// 134 (STOPPED).
    pub active_requests_at_exit: u64,
    /// 135 (STOPPED): 1 = drained gracefully.
    pub graceful_drain: bool,
}

/// Encodes PROCESS_STOPPING (kind 6).
pub fn process_stopping(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    l: &Lifecycle<'_>,
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::PROCESS_STOPPING, pid, seq, stamp));
    host_and_group(&mut e, l.hostname, l.process_group)?;
    e.bytes_if_nonempty(id::SHUTDOWN_REASON, l.shutdown_reason)?;
    e.u64(
        id::ACTIVE_REQUESTS_AT_DECISION,
        l.active_requests_at_decision,
    )?;
    Ok(e.finish())
}

/// Encodes PROCESS_STOPPED (kind 7).
pub fn process_stopped(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    l: &Lifecycle<'_>,
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::PROCESS_STOPPED, pid, seq, stamp));
    host_and_group(&mut e, l.hostname, l.process_group)?;
    e.bytes_if_nonempty(id::SHUTDOWN_REASON, l.shutdown_reason)?;
    e.f64(id::PROCESS_UPTIME, l.process_uptime)?;
    e.u64(id::LIFETIME_REQUEST_COUNT, l.lifetime_request_count)?;
    e.u64(id::ACTIVE_REQUESTS_AT_EXIT, l.active_requests_at_exit)?;
    e.u64(id::GRACEFUL_DRAIN, l.graceful_drain as u64)?;
    Ok(e.finish())
}

/// Encodes GC_SNAPSHOT (kind 8): `values` are fields 300..=317 in order;
/// `interpreter_name` only for a non-main interpreter of a process that has
/// more than one (the caller decides; empty means omit).
pub fn gc_snapshot(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    values: &[u64; 18],
    interpreter_name: &[u8],
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::GC_SNAPSHOT, pid, seq, stamp));
    for (k, v) in values.iter().enumerate() {
        e.u64(id::GC_COUNT0 + k as u16, *v)?;
    }
    e.bytes_if_nonempty(
        id::INTERPRETER_NAME,
        cut(interpreter_name, CUT_INTERPRETER_NAME),
    )?;
    Ok(e.finish())
}

/// One GC collection pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcEvent {
    /// 320.
    pub start_stamp: f64,
    /// 321.
    pub duration: f64,
    /// 322.
    pub generation: u64,
    /// 323.
    pub collected: u64,
    /// 324.
    pub uncollectable: u64,
}

/// Encodes GC_EVENT (kind 9); `interpreter_name` as for [`gc_snapshot`].
pub fn gc_event(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    ev: &GcEvent,
    interpreter_name: &[u8],
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::GC_EVENT, pid, seq, stamp));
    e.f64(id::GC_EVENT_START_STAMP, ev.start_stamp)?;
    e.f64(id::GC_EVENT_DURATION, ev.duration)?;
    e.u64(id::GC_EVENT_GENERATION, ev.generation)?;
    e.u64(id::GC_EVENT_COLLECTED, ev.collected)?;
    e.u64(id::GC_EVENT_UNCOLLECTABLE, ev.uncollectable)?;
    e.bytes_if_nonempty(
        id::INTERPRETER_NAME,
        cut(interpreter_name, CUT_INTERPRETER_NAME),
    )?;
    Ok(e.finish())
}
