//! Daemon mode, the plain-Rust part: the `WSGIDaemonProcess` settings we
//! need (read from httpd's parsed configuration tree), the per-request
//! events the attach code forwards from mod_wsgi's `subscribe_events`, and
//! the shutdown reason. The Apache/Python side is the module's `ffi/daemon/`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering::*};

use crate::accum::{Accounting, Claim, Detail, Finished, Io, SlowText};

/// mod_wsgi's default `threads=` for a daemon group.
pub const DEFAULT_THREADS: u32 = 15;
/// Group names longer than this are cut (field 7 carries at most 63).
pub const GROUP_NAME_MAX: usize = 63;
/// Daemon groups remembered from the configuration.
pub const MAX_GROUPS: usize = 64;

/// What we use of one `WSGIDaemonProcess` directive. `Copy` and heap-free,
/// so the Apache parent can keep a table of them without owning memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupConf {
    name: [u8; GROUP_NAME_MAX],
    name_len: u8,
    /// `threads=` (worker threads = slots on the wire).
    pub threads: u32,
    /// `maximum-requests=` (0 = none).
    pub maximum_requests: u64,
    /// `restart-interval=` seconds (0 = none).
    pub restart_interval: f64,
    /// `request-timeout=` seconds (0 = none).
    pub request_timeout: f64,
}

impl GroupConf {
    const EMPTY: GroupConf = GroupConf {
        name: [0; GROUP_NAME_MAX],
        name_len: 0,
        threads: DEFAULT_THREADS,
        maximum_requests: 0,
        restart_interval: 0.0,
        request_timeout: 0.0,
    };

    /// The group name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len as usize]
    }
}

/// Splits directive arguments as httpd's `ap_getword_conf` does: blanks
/// separate words, a word may be wrapped in single or double quotes.
fn words(args: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        while i < args.len() && args[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= args.len() {
            break;
        }
        let q = args[i];
        let mut w = Vec::new();
        if q == b'"' || q == b'\'' {
            i += 1;
            while i < args.len() && args[i] != q {
                if args[i] == b'\\' && i + 1 < args.len() && args[i + 1] == q {
                    i += 1;
                }
                w.push(args[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < args.len() && !args[i].is_ascii_whitespace() {
                w.push(args[i]);
                i += 1;
            }
        }
        out.push(w);
    }
    out
}

/// Parses the arguments of `WSGIDaemonProcess name [option=value ...]`.
/// Unknown options and unparsable values are ignored (mod_wsgi has already
/// validated the directive by the time we read it).
pub fn parse_daemon_args(args: &[u8]) -> Option<GroupConf> {
    let w = words(args);
    let name = w.first()?;
    if name.is_empty() {
        return None;
    }
    let mut g = GroupConf::EMPTY;
    let n = name.len().min(GROUP_NAME_MAX);
    g.name[..n].copy_from_slice(&name[..n]);
    g.name_len = n as u8;
    for opt in &w[1..] {
        let Some(eq) = opt.iter().position(|&c| c == b'=') else {
            continue;
        };
        let (k, v) = (&opt[..eq], &opt[eq + 1..]);
        let v = std::str::from_utf8(v).unwrap_or("");
        match k {
            b"threads" => {
                if let Ok(t) = v.parse::<u32>() {
                    g.threads = t;
                }
            }
            b"maximum-requests" => g.maximum_requests = v.parse().unwrap_or(0),
            b"restart-interval" => g.restart_interval = v.parse().unwrap_or(0.0),
            b"request-timeout" => g.request_timeout = v.parse().unwrap_or(0.0),
            _ => {}
        }
    }
    Some(g)
}

/// The daemon groups of the configuration being run.
#[derive(Clone, Copy)]
pub struct GroupTable {
    groups: [GroupConf; MAX_GROUPS],
    len: usize,
}

impl GroupTable {
    /// Whether no `WSGIDaemonProcess` was found.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// No groups.
    pub const EMPTY: GroupTable = GroupTable {
        groups: [GroupConf::EMPTY; MAX_GROUPS],
        len: 0,
    };

    /// Adds (or replaces, by name) a group.
    pub fn add(&mut self, g: GroupConf) {
        if let Some(x) = self.groups[..self.len]
            .iter_mut()
            .find(|x| x.name() == g.name())
        {
            *x = g;
        } else if self.len < MAX_GROUPS {
            self.groups[self.len] = g;
            self.len += 1;
        }
    }

    /// A group by name.
    pub fn get(&self, name: &[u8]) -> Option<GroupConf> {
        self.groups[..self.len]
            .iter()
            .find(|x| x.name() == name)
            .copied()
    }
}

/// The reasons mod_wsgi 4.x itself names when it starts a daemon's
/// shutdown (`wsgi_shutdown_reason`, handed to its `process_stopping`
/// event), as the shutdown-reason strings mod_wsgi 6.x sends.
const MOD_WSGI_REASONS: [&[u8]; 8] = [
    b"request_timeout",
    b"startup_timeout",
    b"restart_interval",
    b"inactivity_timeout",
    b"cpu_time_limit",
    b"graceful_signal",
    b"deadlock_timeout",
    b"script_reload",
];

/// Why a daemon process is stopping when mod_wsgi told us its own reason
/// (`published`; empty when it names none: a signal from Apache, or the
/// `maximum-requests` budget, which 4.9 does not name). Unknown strings
/// count as none. None when nothing was published.
pub fn published_stop_reason(
    published: Option<&[u8]>,
    signal: Option<i32>,
    g: &GroupConf,
    lifetime_requests: u64,
) -> Option<&'static [u8]> {
    let p = published?;
    if let Some(r) = MOD_WSGI_REASONS.iter().find(|r| **r == p) {
        return Some(r);
    }
    if g.maximum_requests > 0 && lifetime_requests >= g.maximum_requests {
        return Some(b"maximum_requests");
    }
    Some(signal_reason(signal))
}

/// The reason a terminating signal stands for, labelled as mod_wsgi 6.x
/// does: SIGUSR1 `graceful_signal`, SIGXCPU `cpu_time_limit`, anything else
/// (Apache's SIGTERM on stop and restart) `shutdown_signal`.
fn signal_reason(signal: Option<i32>) -> &'static [u8] {
    match signal {
        Some(libc::SIGUSR1) => b"graceful_signal",
        Some(libc::SIGXCPU) => b"cpu_time_limit",
        _ => b"shutdown_signal",
    }
}

/// Index of a reason in [`MOD_WSGI_REASONS`] + 1 (0 = none of them).
pub fn mod_wsgi_reason_code(published: &[u8]) -> u8 {
    MOD_WSGI_REASONS
        .iter()
        .position(|r| *r == published)
        .map_or(0, |i| i as u8 + 1)
}

/// The reason of a [`mod_wsgi_reason_code`] (empty for 0).
pub fn mod_wsgi_reason(code: u8) -> &'static [u8] {
    match code {
        0 => b"",
        c => MOD_WSGI_REASONS.get(c as usize - 1).copied().unwrap_or(b""),
    }
}

/// Why a daemon process is stopping (mod_wsgi 6.x's reason strings), when
/// mod_wsgi published no reason (see [`published_stop_reason`]). mod_wsgi
/// 4.9 ends a daemon for its own reasons by signalling itself, so those
/// are checked first: the `maximum-requests` budget spent, a request older
/// than `request-timeout`, `restart-interval` elapsed. Otherwise the signal
/// we saw decides, labelled as mod_wsgi 6.x does: SIGUSR1 is
/// `graceful_signal`, SIGXCPU `cpu_time_limit`, anything else (Apache's
/// SIGTERM on stop and restart) `shutdown_signal`.
pub fn stop_reason(
    signal: Option<i32>,
    g: &GroupConf,
    lifetime_requests: u64,
    uptime_s: f64,
    oldest_in_flight_s: f64,
) -> &'static [u8] {
    if g.maximum_requests > 0 && lifetime_requests >= g.maximum_requests {
        return b"maximum_requests";
    }
    if g.request_timeout > 0.0 && oldest_in_flight_s >= g.request_timeout {
        return b"request_timeout";
    }
    if g.restart_interval > 0.0 && uptime_s + 0.5 >= g.restart_interval {
        return b"restart_interval";
    }
    signal_reason(signal)
}

/// One `request_started` event (times in µs since the epoch).
#[derive(Clone, Copy, Debug, Default)]
pub struct Started<'a> {
    /// mod_wsgi's 1-based worker thread number.
    pub thread_id: u32,
    /// `r->request_time` of the Apache child.
    pub request_start_us: u64,
    /// The Apache child started talking to the daemon.
    pub queue_start_us: u64,
    /// The daemon picked the request up.
    pub daemon_start_us: u64,
    /// The WSGI callable was invoked.
    pub application_start_us: u64,
    /// The Apache child that accepted the request (0 unknown).
    pub server_pid: u64,
    /// Strings for slow records, by `accum::text` index.
    pub strings: [&'a [u8]; 9],
    /// Kernel thread id of the worker.
    pub tid: i32,
}

/// One `request_finished` event.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ended {
    /// Same thread number as at start.
    pub thread_id: u32,
    /// HTTP status (0 = none sent: counted as 5xx).
    pub status: i32,
    /// End of the response, µs.
    pub finish_us: u64,
    /// When the WSGI callable was invoked, if only known at the end
    /// (0: as given at start).
    pub application_start_us: u64,
    /// `wsgi.input` and output.
    pub io: Io,
    /// Per-request CPU (user, system) µs when mod_wsgi gave it.
    pub cpu_us: Option<(u64, u64)>,
}

/// One slot's stamps between the events (a line of its own: the slots'
/// threads write theirs at once).
#[derive(Default)]
#[repr(align(64))]
struct SlotReq {
    generation: AtomicU64,
    request_start_us: AtomicU64,
    queue_start_us: AtomicU64,
    daemon_start_us: AtomicU64,
    application_start_us: AtomicU64,
}

/// Per-slot state between a request's start and end events, plus owned
/// copies of the slow-record strings (a Python string handed over by the
/// attach code lives only for the call).
pub struct DaemonRequests {
    slots: Box<[SlotReq]>,
    texts: Box<[UnsafeCell<SlowText>]>,
}

// SAFETY: `texts[i]` is written only by the worker thread that owns slot i,
// before it claims the slot (no `Detail` points at it then: the previous
// request's finish reset the slot's detail); readers go through the slot's
// `Detail`, under the slot lock, while the claim holds.
unsafe impl Sync for DaemonRequests {}

impl DaemonRequests {
    /// For `acc.slot_count()` slots (plus the shared overflow slot).
    pub fn new(acc: &Accounting) -> DaemonRequests {
        let n = acc.slot_count() + 1;
        DaemonRequests {
            slots: (0..n).map(|_| SlotReq::default()).collect(),
            texts: (0..n)
                .map(|_| UnsafeCell::new(SlowText::default()))
                .collect(),
        }
    }

    #[inline]
    fn slot(&self, acc: &Accounting, thread_id: u32) -> usize {
        (thread_id.max(1) as usize - 1).min(acc.slot_count())
    }

    /// Claims the worker's slot for a request starting (with its strings
    /// when slow requests are on) and returns the claim, which
    /// [`Accounting::finish`] takes with the request's [`Finished`]. The
    /// daemon's request hooks keep the stamps with the request; the event
    /// path keeps them here ([`DaemonRequests::started`]).
    #[inline]
    pub fn claim(&self, acc: &Accounting, s: &Started<'_>) -> Claim {
        let i = self.slot(acc, s.thread_id);
        let slow = acc.slow_threshold_us > 0 && i < acc.slot_count();
        let mut detail = Detail::default();
        if slow {
            // SAFETY: see the Sync impl: this thread owns slot i's text.
            let t = unsafe { &mut *self.texts[i].get() };
            for (k, v) in s.strings.iter().enumerate() {
                t.set(k, v);
                detail.strings[k] = (t.get(k).as_ptr(), t.get(k).len());
            }
            detail.active_at_start = acc.active() + 1;
            detail.queue_start_us = s.queue_start_us;
            detail.daemon_start_us = s.daemon_start_us;
            detail.server_pid = s.server_pid;
        }
        acc.claim(
            i as u32,
            s.tid,
            s.request_start_us,
            s.application_start_us,
            slow.then_some(&detail),
        )
    }

    /// `request_started`: claims the worker's slot and keeps the stamps
    /// until `request_finished`.
    #[inline]
    pub fn started(&self, acc: &Accounting, s: &Started<'_>) {
        let c = self.claim(acc, s);
        let r = &self.slots[c.slot as usize];
        r.request_start_us.store(s.request_start_us, Relaxed);
        r.queue_start_us.store(s.queue_start_us, Relaxed);
        r.daemon_start_us.store(s.daemon_start_us, Relaxed);
        r.application_start_us
            .store(s.application_start_us, Relaxed);
        r.generation.store(c.generation, Relaxed);
    }

    /// `request_finished`: records the request and frees the slot.
    #[inline]
    pub fn ended(&self, acc: &Accounting, e: &Ended) {
        let i = self.slot(acc, e.thread_id);
        let r = &self.slots[i];
        let claim = Claim {
            slot: i as u32,
            generation: r.generation.load(Relaxed),
        };
        let f = Finished {
            request_start_us: r.request_start_us.load(Relaxed),
            queue_start_us: r.queue_start_us.load(Relaxed),
            daemon_start_us: r.daemon_start_us.load(Relaxed),
            claim_us: if e.application_start_us > 0 {
                e.application_start_us
            } else {
                r.application_start_us.load(Relaxed)
            },
            finish_us: e.finish_us,
            io: e.io,
            status: e.status,
            cpu_us: e.cpu_us,
        };
        acc.finish(claim, &f);
    }
}

/// Keys of a daemon request's environment (`r->subprocess_env`, or the WSGI
/// environ), in `accum::text` order, for slow records.
pub const SLOW_ENV_KEYS: [&std::ffi::CStr; 9] = [
    c"mod_wsgi.request_id",
    c"REQUEST_METHOD",
    c"REQUEST_SCHEME",
    c"HTTP_HOST",
    c"SCRIPT_NAME",
    c"PATH_INFO",
    c"SERVER_PROTOCOL",
    c"REMOTE_ADDR",
    c"HTTP_USER_AGENT",
];

/// Keys of the daemon request's environment read for every request, in
/// [`EnvKeys`] order: mod_wsgi's µs stamps and the Apache child's pid
/// (sent only with slow records on). All start with `m`, which lets one
/// pass over the table skip most entries at their first byte.
pub const STAMP_KEYS: [&std::ffi::CStr; 5] = [
    c"mod_wsgi.request_start",
    c"mod_wsgi.queue_start",
    c"mod_wsgi.daemon_start",
    c"mod_wsgi.script_start",
    c"mod_wsgi_telemetry.server_pid",
];

/// Indexes into [`STAMP_KEYS`].
pub struct EnvKeys;
impl EnvKeys {
    /// `mod_wsgi.request_start`.
    pub const REQUEST_START: usize = 0;
    /// `mod_wsgi.queue_start`.
    pub const QUEUE_START: usize = 1;
    /// `mod_wsgi.daemon_start`.
    pub const DAEMON_START: usize = 2;
    /// `mod_wsgi.script_start`.
    pub const SCRIPT_START: usize = 3;
    /// `mod_wsgi_telemetry.server_pid`.
    pub const SERVER_PID: usize = 4;
}

/// An unsigned integer of the request environment (mod_wsgi's µs stamps,
/// pids); 0 if absent or malformed. (Per request: a digit loop, not
/// `str::parse`, which with its UTF-8 check and trim costs several times
/// as much.)
#[inline]
pub fn env_number(s: &[u8]) -> u64 {
    // mod_wsgi's µs stamps, four per daemon request, are exactly 16 digits
    // (until the year 2286): sixteen at a time, with no trim or sign
    // check; anything else goes the general way, out of line.
    if let Some(n) = s.first_chunk::<16>().filter(|_| s.len() == 16) {
        if let Some(v) = sixteen_digits(n) {
            return v;
        }
    }
    env_number_general(s)
}

/// [`env_number`] of anything but sixteen plain digits.
#[inline(never)]
fn env_number_general(s: &[u8]) -> u64 {
    let s = s.trim_ascii();
    let s = s.strip_prefix(b"+").unwrap_or(s);
    if let Some(n) = s.first_chunk::<16>().filter(|_| s.len() == 16) {
        return sixteen_digits(n).unwrap_or(0);
    }
    digit_loop(s)
}

/// [`env_number`] of a trimmed string without its sign, digit by digit.
fn digit_loop(s: &[u8]) -> u64 {
    if s.is_empty() {
        return 0;
    }
    let mut n: u64 = 0;
    if s.len() <= 19 {
        // 19 digits cannot overflow a u64.
        for &c in s {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return 0;
            }
            n = n * 10 + u64::from(d);
        }
        return n;
    }
    for &c in s {
        if !c.is_ascii_digit() {
            return 0;
        }
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
        {
            Some(n) => n,
            None => return 0,
        };
    }
    n
}

/// The value of sixteen ASCII digits (None if any byte is not a digit):
/// each half of eight checked and combined in one 64-bit word (digit
/// pairs, then pairs of pairs, then halves: three multiplications, no
/// loop), with one branch for both checks.
#[inline]
fn sixteen_digits(b: &[u8; 16]) -> Option<u64> {
    let (hi, lo) = b.split_at(8);
    let (hi, lo) = (
        u64::from_le_bytes(hi.try_into().ok()?),
        u64::from_le_bytes(lo.try_into().ok()?),
    );
    if not_digits(hi) | not_digits(lo) != 0 {
        return None;
    }
    Some(eight_digits(hi) * 100_000_000 + eight_digits(lo))
}

/// Non-zero unless every byte of `v` is an ASCII digit: a digit's high
/// nibble is 3, and adding 6 to its low nibble does not carry out of it.
#[inline]
fn not_digits(v: u64) -> u64 {
    let high = v & 0xF0F0_F0F0_F0F0_F0F0;
    let carry = (v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4;
    (high | carry) ^ 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits, `v` loaded little-endian (byte 0, the
/// most significant digit, lowest), checked by [`not_digits`].
#[inline]
fn eight_digits(v: u64) -> u64 {
    let v = (v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(10 * 256 + 1) >> 8;
    let v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 * 65_536 + 1) >> 16;
    (v & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 * (1 << 32) + 1) >> 32
}

/// Seconds since the epoch (as the Python events give them) to µs.
#[inline]
pub fn secs_to_us(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e6).round() as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accum::text;

    #[test]
    fn mod_wsgi_published_reasons_win() {
        let g = parse_daemon_args(b"g threads=2 maximum-requests=5 restart-interval=10").unwrap();
        let r = |p: Option<&[u8]>, sig, n| published_stop_reason(p, sig, &g, n);
        assert_eq!(r(None, None, 9), None);
        assert_eq!(
            r(Some(b"inactivity_timeout"), Some(libc::SIGTERM), 9),
            Some(&b"inactivity_timeout"[..])
        );
        assert_eq!(
            r(Some(b"restart_interval"), None, 0),
            Some(&b"restart_interval"[..])
        );
        // 4.9 names no reason for maximum-requests or Apache's signals.
        assert_eq!(
            r(Some(b""), Some(libc::SIGINT), 5),
            Some(&b"maximum_requests"[..])
        );
        assert_eq!(
            r(Some(b""), Some(libc::SIGTERM), 4),
            Some(&b"shutdown_signal"[..])
        );
        assert_eq!(
            r(Some(b"something new"), Some(libc::SIGUSR1), 0),
            Some(&b"graceful_signal"[..])
        );
        for code in 0..=8 {
            let s = mod_wsgi_reason(code);
            assert_eq!(mod_wsgi_reason_code(s), code);
        }
        assert_eq!(mod_wsgi_reason_code(b"nope"), 0);
    }

    #[test]
    fn environment_numbers() {
        assert_eq!(env_number(b"1764000000123456"), 1_764_000_000_123_456);
        assert_eq!(env_number(b""), 0);
        assert_eq!(env_number(b"12x"), 0);
        assert_eq!(env_number(b"-5"), 0);
        assert_eq!(env_number(b" 42\n"), 42);
        assert_eq!(env_number(b"+7"), 7);
        assert_eq!(env_number(b"+"), 0);
        assert_eq!(env_number(b"18446744073709551615"), u64::MAX);
        assert_eq!(env_number(b"18446744073709551616"), 0);
    }

    #[test]
    fn sixteen_digit_stamps_parse_as_the_digit_loop_does() {
        // The loop the 16-digit path stands in for.
        let by_loop = |s: &[u8]| {
            let s = s.trim_ascii();
            digit_loop(s.strip_prefix(b"+").unwrap_or(s))
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut cases: Vec<Vec<u8>> = vec![
            b"1764000000123456".to_vec(),
            b"0000000000000000".to_vec(),
            b"9999999999999999".to_vec(),
            b"1000000000000001".to_vec(),
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut s = format!("{:016}", x % 10_000_000_000_000_000).into_bytes();
            // Now and then one byte that is not a digit, anywhere.
            if x.is_multiple_of(3) {
                let bad = [b'/', b':', b' ', b'+', b'-', b'a', 0x80, 0xB9, 0x00, b'@'];
                s[(x >> 20) as usize % 16] = bad[(x >> 40) as usize % bad.len()];
            }
            cases.push(s);
        }
        for s in &cases {
            assert_eq!(
                env_number(s),
                by_loop(s),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
        assert_eq!(env_number(b" 1764000000123456\n"), 1_764_000_000_123_456);
        assert_eq!(env_number(b"176400000012345x"), 0);
        assert_eq!(env_number(b"+764000000123456"), 764_000_000_123_456);
        assert_eq!(env_number(b"+1764000000123456"), 1_764_000_000_123_456);
    }

    #[test]
    fn stamp_keys_all_start_with_m() {
        // The table pass skips every other entry at its first byte.
        assert!(STAMP_KEYS.iter().all(|k| k.to_bytes()[0] == b'm'));
    }

    #[test]
    fn parses_daemon_process_directive() {
        let g = parse_daemon_args(
            b"g processes=2 threads=4 maximum-requests=20 \"display-name=%{GROUP}\" \
              restart-interval=3600 request-timeout=60 python-path=/srv/app",
        )
        .unwrap();
        assert_eq!(g.name(), b"g");
        assert_eq!(g.threads, 4);
        assert_eq!(g.maximum_requests, 20);
        assert_eq!(g.restart_interval, 3600.0);
        assert_eq!(g.request_timeout, 60.0);
        let d = parse_daemon_args(b"'my group'").unwrap();
        assert_eq!(d.name(), b"my group");
        assert_eq!(d.threads, DEFAULT_THREADS);
        assert!(parse_daemon_args(b"   ").is_none());
        let mut t = GroupTable::EMPTY;
        t.add(g);
        t.add(d);
        t.add(parse_daemon_args(b"g threads=8").unwrap());
        assert_eq!(t.get(b"g").unwrap().threads, 8);
        assert!(t.get(b"h").is_none());
    }

    #[test]
    fn reasons() {
        let g = parse_daemon_args(b"g maximum-requests=20 request-timeout=30").unwrap();
        assert_eq!(stop_reason(None, &g, 20, 5.0, 0.0), b"maximum_requests");
        assert_eq!(stop_reason(None, &g, 3, 5.0, 31.0), b"request_timeout");
        assert_eq!(stop_reason(None, &g, 3, 5.0, 0.0), b"shutdown_signal");
        assert_eq!(
            stop_reason(Some(libc::SIGUSR1), &g, 20, 5.0, 0.0),
            b"maximum_requests",
            "mod_wsgi signals itself when the budget is spent"
        );
        assert_eq!(
            stop_reason(Some(libc::SIGUSR1), &g, 2, 5.0, 0.0),
            b"graceful_signal"
        );
        assert_eq!(
            stop_reason(Some(libc::SIGTERM), &g, 3, 5.0, 0.0),
            b"shutdown_signal"
        );
        let r = parse_daemon_args(b"g restart-interval=10").unwrap();
        assert_eq!(stop_reason(None, &r, 0, 10.2, 0.0), b"restart_interval");
    }

    #[test]
    fn a_daemon_request_is_split_into_its_phases() {
        let acc = Accounting::new(4, 1_000_000, 1.0);
        let d = DaemonRequests::new(&acc);
        let t0 = 1_700_000_000_000_000u64;
        let s = Started {
            thread_id: 2,
            request_start_us: t0,
            queue_start_us: t0 + 100,
            daemon_start_us: t0 + 300,
            application_start_us: t0 + 600,
            server_pid: 4242,
            strings: [
                b"id1",
                b"GET",
                b"http",
                b"h",
                b"/app",
                b"/x",
                b"HTTP/1.1",
                b"1.2.3.4",
                b"",
            ],
            tid: 77,
        };
        d.started(&acc, &s);
        // Active slow record while in flight, with the Apache child's pid.
        let mut act = Vec::new();
        acc.scan_active_slow(t0 + 2_000_000, &mut act);
        assert_eq!(act.len(), 1);
        assert_eq!(act[0].server_pid, 4242);
        assert_eq!(act[0].thread_id, 2);
        assert_eq!(act[0].text.get(text::PATH_INFO), b"/x");
        d.ended(
            &acc,
            &Ended {
                thread_id: 2,
                status: 200,
                finish_us: t0 + 2_500_000,
                io: Io {
                    output_bytes: 10,
                    output_writes: 1,
                    ..Io::default()
                },
                ..Ended::default()
            },
        );
        assert_eq!(acc.recorded_total(), 1);
        let mut snap = crate::accum::Snapshot::new(4);
        acc.snapshot(t0 + 3_000_000, &mut snap);
        assert_eq!(snap.request_count, 1);
        let ph = |i: usize| snap.phases[i].sum_us;
        assert_eq!(ph(crate::accum::SERVER), 100);
        assert_eq!(ph(crate::accum::QUEUE), 200);
        assert_eq!(ph(crate::accum::DAEMON), 300);
        assert_eq!(ph(crate::accum::APPLICATION), 2_500_000 - 600);
        assert_eq!(ph(crate::accum::REQUEST), 2_500_000);
        assert_eq!(snap.status[1], 1);
        assert_eq!(snap.completed[1], 1);
        let mut done = Vec::new();
        acc.take_completed_slow(&mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].daemon_start_us, t0 + 300);
        assert_eq!(done[0].text.get(text::LOG_ID), b"id1");
        // A thread number past `threads=` lands in the overflow slot.
        d.started(
            &acc,
            &Started {
                thread_id: 9,
                application_start_us: t0,
                ..Started::default()
            },
        );
        d.ended(
            &acc,
            &Ended {
                thread_id: 9,
                status: 500,
                finish_us: t0 + 10,
                ..Ended::default()
            },
        );
        acc.snapshot(t0 + 4_000_000, &mut snap);
        assert_eq!(snap.request_count, 1);
        assert_eq!(snap.status[4], 1);
    }

    #[test]
    fn seconds_to_micros() {
        assert_eq!(secs_to_us(1.5), 1_500_000);
        assert_eq!(secs_to_us(0.0), 0);
        assert_eq!(secs_to_us(f64::NAN), 0);
        assert_eq!(secs_to_us(-3.0), 0);
    }
}
