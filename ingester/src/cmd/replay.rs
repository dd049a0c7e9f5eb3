//! `mod_wsgi-telemetry replay`: send the datagrams of a capture file
//! (the format of `tests/fixtures/corpus/README.md`) to a datagram socket — how tests,
//! benchmarks and demos feed the ingester.
//!
//! Datagrams that nothing asks to change go out byte-identical. Rewrites
//! (`--processes`, `--restamp`, `--loop`, `--drop-field`) are prepared once
//! per capture datagram (field offsets found, dropped fields re-encoded with
//! the `wire` crate), so the send loop only patches fixed offsets in a copy.
//! Sends are blocking, which on a UNIX datagram socket means lossless: the
//! kernel makes the sender wait while the receiver's queue
//! (`net.unix.max_dgram_qlen`, often only 10) is full.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use wire::{Kind, Tag, HEADER_LEN};

/// Options of `replay`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Loops continue each process: in pass k every seq is shifted by k times that \
pid's highest seq in the capture and every stamp by k times the capture's \
span plus one second, so each (synthetic) process looks like one long run. \
With --processes N, capture process i (in order of first appearance) is \
played as the synthetic processes i, i+P, i+2P, … below N (P = processes \
in the capture): copy 0 keeps the original pid, copy c gets pid + c*4194304. \
If N < P, only the first N capture processes are played. The copies play in \
step (all copies of a capture process start and stop together) unless \
--stagger: then copy c of C runs c/C of the capture's span ahead of copy 0 \
(it starts in the middle of the capture and wraps round to its start), so \
about N times the capture's share of live processes are live at every \
moment.")]
pub(crate) struct ReplayArgs {
    /// Capture file: `u32 LE length` + datagram, repeated.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Datagram socket to send to: `unix:<path>` or a bare path.
    #[arg(long, value_name = "SPEC", value_parser = parse_target)]
    pub(crate) socket: PathBuf,
    /// Datagrams per second (0 = as fast as the receiver takes them, without loss).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0.0,
        conflicts_with = "realtime"
    )]
    pub(crate) rate: f64,
    /// Pace by the header stamps (as the datagrams were originally sent).
    #[arg(long)]
    pub(crate) realtime: bool,
    /// Speed factor for --realtime (2 = twice as fast).
    #[arg(long, value_name = "F", default_value_t = 1.0, requires = "realtime")]
    pub(crate) speed: f64,
    /// Rewrite pids so the capture stands for N processes.
    #[arg(long, value_name = "N")]
    pub(crate) processes: Option<u32>,
    /// Shift header stamps and stamp fields (slow_start_stamp,
    /// gc_event_start_stamp) so the capture starts now.
    #[arg(long)]
    pub(crate) restamp: bool,
    /// Start again at the end of the capture (until --count, --duration or Ctrl-C).
    #[arg(long = "loop")]
    pub(crate) loop_: bool,
    /// Stop after this many seconds (0 = no limit).
    #[arg(long, value_name = "S", default_value_t = 0.0)]
    pub(crate) duration: f64,
    /// Remove a field (id or name), optionally only from one kind (name or
    /// number), e.g. `8` or `interpreter_name:gc_event`. Repeatable.
    #[arg(long, value_name = "ID[:KIND]", value_parser = parse_drop_field)]
    pub(crate) drop_field: Vec<DropField>,
    /// Stop after sending N datagrams (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) count: u64,
    /// Spread the copies of --processes over the capture's span instead of
    /// playing them in step: a steady number of live processes.
    #[arg(long, requires = "loop_")]
    pub(crate) stagger: bool,
}

/// One `--drop-field`: a field id, optionally restricted to one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DropField {
    /// Field id.
    pub(crate) field: u16,
    /// Only datagrams of this kind (all kinds when `None`).
    pub(crate) kind: Option<Kind>,
}

impl DropField {
    fn applies(&self, kind: Kind, field: u16) -> bool {
        self.field == field && self.kind.is_none_or(|k| k == kind)
    }
}

/// Parses `ID[:KIND]`: a field id or wire name, then a kind name or number.
pub(crate) fn parse_drop_field(s: &str) -> Result<DropField, String> {
    let (f, k) = match s.split_once(':') {
        Some((f, k)) => (f, Some(k)),
        None => (s, None),
    };
    let field = f
        .parse::<u16>()
        .ok()
        .or_else(|| wire::field_id(f))
        .ok_or_else(|| format!("unknown field '{f}' (expected a field id or name)"))?;
    let kind = match k {
        None => None,
        Some(k) => Some(
            k.parse::<u8>()
                .ok()
                .map(Kind)
                .or_else(|| Kind::from_name(k))
                .ok_or_else(|| format!("unknown kind '{k}' (expected a kind name or number)"))?,
        ),
    };
    Ok(DropField { field, kind })
}

/// Parses `--socket`: `unix:<path>` or a bare path; other schemes refused.
pub(crate) fn parse_target(s: &str) -> Result<PathBuf, String> {
    if s.starts_with("unix:") {
        return crate::cmd::args::parse_unix_spec(s);
    }
    if let Some((scheme, _)) = s.split_once(':') {
        if !scheme.is_empty()
            && !scheme.contains('/')
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return crate::cmd::args::parse_unix_spec(s);
        }
    }
    if s.is_empty() {
        return Err("empty socket path".into());
    }
    Ok(PathBuf::from(s))
}

/// Pid offset between copies of one capture process: Linux's PID_MAX_LIMIT,
/// so a copy never collides with a real pid or another copy.
pub(crate) const PID_STRIDE: u32 = 1 << 22;

/// The synthetic pids for each capture process (`originals` in order of
/// first appearance) when the capture must stand for `n` processes: process
/// `i` is played as `i, i+P, i+2P, … < n`; copy `c` has pid `orig + c *
/// PID_STRIDE` (copy 0 keeps the original pid).
pub(crate) fn pid_plan(originals: &[u32], n: u32) -> Result<Vec<Vec<u32>>, String> {
    let p = originals.len() as u64;
    let mut plan = Vec::with_capacity(originals.len());
    for (i, &orig) in originals.iter().enumerate() {
        let mut pids = Vec::new();
        let mut j = i as u64;
        while j < n as u64 {
            let c = j / p.max(1);
            let pid = if c == 0 {
                orig
            } else {
                if orig >= PID_STRIDE {
                    return Err(format!(
                        "pid {orig} is too large to make copies of (limit {PID_STRIDE})"
                    ));
                }
                u32::try_from(orig as u64 + c * PID_STRIDE as u64).map_err(|_| {
                    format!(
                        "--processes {n}: too many copies of {p} capture processes for 32-bit pids"
                    )
                })?
            };
            pids.push(pid);
            j += p;
        }
        plan.push(pids);
    }
    Ok(plan)
}

/// The seq of a datagram in loop pass `pass`: shifted by whole runs of that
/// pid's highest capture seq, so each pid's seq keeps increasing by one.
pub(crate) fn looped_seq(seq: u32, pass: u64, max_seq: u32) -> u32 {
    seq.wrapping_add((pass as u32).wrapping_mul(max_seq))
}

/// The stamp shift for loop pass `pass`. `restamp_base` is `now − first
/// stamp` at the start of the pass when restamping (else `None`); `prev` the
/// shift of the previous pass; `span` the capture's stamp span plus a gap. A
/// pass never starts before the previous one ended in stamp time.
pub(crate) fn pass_offset(
    pass: u64,
    restamp_base: Option<f64>,
    prev: Option<f64>,
    span: f64,
) -> f64 {
    let follow = prev.map(|p| p + span);
    match (restamp_base, follow) {
        (Some(now), Some(f)) => now.max(f),
        (Some(now), None) => now,
        (None, Some(f)) => f,
        (None, None) => span * pass as f64,
    }
}

/// One datagram of a pass: a template, the copy of its process that sends
/// it, the shift of its stamps within the pass (added to the pass's
/// offset), and whether it belongs to that copy's next run through the
/// capture (its seq is then one pass further on).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Slot {
    pub(crate) template: usize,
    pub(crate) copy: usize,
    pub(crate) shift: f64,
    pub(crate) next_pass: bool,
}

/// The copies in step: each template in capture order, sent by every copy
/// of its process (`copies[t]` of them) at the template's own stamp.
pub(crate) fn in_step(copies: &[usize]) -> impl Iterator<Item = Slot> + '_ {
    copies.iter().enumerate().flat_map(|(template, &n)| {
        (0..n).map(move |copy| Slot {
            template,
            copy,
            shift: 0.0,
            next_pass: false,
        })
    })
}

/// The copies staggered (`--stagger`): copy c of C (C = the most copies of
/// any capture process) starts its pass at c/C of the capture's span and
/// wraps round to the capture's start, so the copies of a capture process
/// are spread evenly over the span instead of starting and stopping
/// together. The sends of all copies are merged in time order (the
/// capture's own order within each copy).
pub(crate) struct Staggered<'a> {
    /// Each template's stamp relative to the capture's first stamp.
    rel: &'a [f64],
    copies: &'a [usize],
    span: f64,
    phase: Vec<f64>,
    /// First template of each copy's pass (`rel.len()`: it starts wrapped).
    start: Vec<usize>,
    /// Templates each copy has gone through.
    done: Vec<usize>,
    /// (time within the pass in µs, copy) of each copy's next template.
    next: BinaryHeap<Reverse<(i64, usize)>>,
}

impl<'a> Staggered<'a> {
    pub(crate) fn new(rel: &'a [f64], copies: &'a [usize], span: f64) -> Self {
        let c_max = copies.iter().copied().max().unwrap_or(0);
        let phase: Vec<f64> = (0..c_max).map(|c| span * c as f64 / c_max as f64).collect();
        let start: Vec<usize> = phase
            .iter()
            .map(|&ph| rel.iter().position(|&r| r >= ph).unwrap_or(rel.len()))
            .collect();
        let mut s = Staggered {
            rel,
            copies,
            span,
            phase,
            start,
            done: vec![0; c_max],
            next: BinaryHeap::with_capacity(c_max),
        };
        if !rel.is_empty() {
            for c in 0..c_max {
                let (_, _, at) = s.nth_send(c, 0);
                s.next.push(Reverse((micros(at), c)));
            }
        }
        s
    }

    /// Template, whether wrapped, and time within the pass of copy c's
    /// j-th template.
    fn nth_send(&self, c: usize, j: usize) -> (usize, bool, f64) {
        let n = self.rel.len();
        let k = (self.start[c] + j) % n;
        let wrapped = self.start[c] + j >= n;
        let at = self.rel[k] - self.phase[c] + if wrapped { self.span } else { 0.0 };
        (k, wrapped, at)
    }
}

fn micros(s: f64) -> i64 {
    (s * 1e6).round() as i64
}

impl Iterator for Staggered<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        loop {
            let Reverse((_, c)) = self.next.pop()?;
            let j = self.done[c];
            self.done[c] += 1;
            if self.done[c] < self.rel.len() {
                let (_, _, at) = self.nth_send(c, j + 1);
                self.next.push(Reverse((micros(at), c)));
            }
            let (k, wrapped, at) = self.nth_send(c, j);
            // Processes with fewer copies than the most have none here.
            if c < self.copies[k] {
                return Some(Slot {
                    template: k,
                    copy: c,
                    shift: at - self.rel[k],
                    next_pass: wrapped,
                });
            }
        }
    }
}

/// Byte offsets of the values of F64 records with one of `ids` in a
/// well-formed datagram (the walk stops at anything malformed).
pub(crate) fn f64_value_offsets(d: &[u8], ids: &[u16]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while off + 3 <= d.len() {
        let id = u16::from_le_bytes([d[off], d[off + 1]]);
        let tag = Tag::from_u8(d[off + 2]);
        off += 3;
        let len = match tag {
            Some(Tag::U64 | Tag::F64 | Tag::I64) => 8,
            Some(t) => {
                if off + 2 > d.len() {
                    break;
                }
                let count = u16::from_le_bytes([d[off], d[off + 1]]) as usize;
                let width = match t {
                    Tag::Bytes => 1,
                    Tag::I32Array => 4,
                    _ => 8,
                };
                2 + count * width
            }
            None => break,
        };
        if off + len > d.len() {
            break;
        }
        if tag == Some(Tag::F64) && ids.contains(&id) {
            out.push(off);
        }
        off += len;
    }
    out
}

/// Removes the fields `drops` name for this datagram's kind and re-encodes
/// it; `None` when nothing is to be removed (or it does not decode), so the
/// original bytes stay as they are.
pub(crate) fn drop_fields(d: &[u8], drops: &[DropField]) -> Option<Vec<u8>> {
    if drops.is_empty() {
        return None;
    }
    let mut s = wire::decode(d).ok()?;
    let kind = s.header.kind;
    let before = s.fields.len();
    s.fields
        .retain(|(id, _)| !drops.iter().any(|x| x.applies(kind, *id)));
    if s.fields.len() == before {
        return None;
    }
    s.encode().ok()
}

/// Overwrites pid, seq and stamp in a datagram's header.
pub(crate) fn patch_header(d: &mut [u8], pid: u32, seq: u32, stamp: f64) {
    d[8..12].copy_from_slice(&pid.to_le_bytes());
    d[12..16].copy_from_slice(&seq.to_le_bytes());
    d[16..24].copy_from_slice(&stamp.to_bits().to_le_bytes());
}

/// Adds `delta` to the F64 value at `off`.
pub(crate) fn shift_f64_at(d: &mut [u8], off: usize, delta: f64) {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[off..off + 8]);
    let v = f64::from_bits(u64::from_le_bytes(b)) + delta;
    d[off..off + 8].copy_from_slice(&v.to_bits().to_le_bytes());
}

/// One capture datagram, ready to be sent (possibly many times).
struct Template {
    bytes: Vec<u8>,
    /// Index of its pid among the capture's processes; `None` when the
    /// header does not decode (sent as it is, once per pass).
    process: Option<usize>,
    seq: u32,
    stamp: f64,
    stamp_fields: Vec<usize>,
}

/// Field ids holding epoch stamps that `--restamp` and loops shift.
const STAMP_FIELDS: [u16; 2] = [wire::id::SLOW_START_STAMP, wire::id::GC_EVENT_START_STAMP];

#[derive(Default)]
struct Tally {
    sent: u64,
    bytes: u64,
    errors: u64,
    retries: u64,
}

/// Sends one datagram; waits and retries while the kernel has no buffer
/// space, so nothing is lost. Returns false on a hard error.
fn send_one(sock: &UnixDatagram, d: &[u8], t: &mut Tally) -> Result<bool, io::Error> {
    let mut backoff = Duration::from_micros(200);
    loop {
        match sock.send(d) {
            Ok(_) => {
                t.sent += 1;
                t.bytes += d.len() as u64;
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if crate::clock::stopping() {
                    return Ok(false);
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                t.retries += 1;
                if crate::clock::stopping() {
                    return Ok(false);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(50));
            }
            // The receiver went away: nothing further can arrive.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED | libc::ENOENT | libc::ENOTCONN | libc::ECONNRESET)
                ) =>
            {
                t.errors += 1;
                return Err(e);
            }
            Err(e) => {
                t.errors += 1;
                eprintln!("replay: send failed ({} bytes): {e}", d.len());
                return Ok(true);
            }
        }
    }
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now + Duration::from_micros(500) {
        std::thread::sleep(deadline - now);
    }
}

/// Runs `replay`; returns the exit status.
pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<i32> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a number >= 0, got {}", args.rate);
    }
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a number > 0, got {}", args.speed);
    }
    if !(args.duration >= 0.0 && args.duration.is_finite()) {
        bail!("--duration must be a number >= 0, got {}", args.duration);
    }
    if args.processes == Some(0) {
        bail!("--processes must be at least 1");
    }
    let raw = std::fs::read(&args.file)
        .with_context(|| format!("cannot read capture '{}'", args.file.display()))?;

    // Prepare templates: drop fields, find stamp offsets, index processes.
    let mut originals: Vec<u32> = Vec::new();
    let mut index_of: HashMap<u32, usize> = HashMap::new();
    let mut max_seq: Vec<u32> = Vec::new();
    let mut templates = Vec::new();
    let (mut first_stamp, mut last_stamp) = (f64::INFINITY, f64::NEG_INFINITY);
    for rec in wire::capture::records(&raw) {
        let d = rec.map_err(|off| {
            anyhow!(
                "capture '{}' is truncated: the record at offset {off} runs past the end",
                args.file.display()
            )
        })?;
        let bytes = drop_fields(d, &args.drop_field).unwrap_or_else(|| d.to_vec());
        let t = match wire::decode_header(&bytes) {
            Ok(h) => {
                let i = *index_of.entry(h.pid).or_insert_with(|| {
                    originals.push(h.pid);
                    max_seq.push(0);
                    originals.len() - 1
                });
                max_seq[i] = max_seq[i].max(h.seq);
                if h.stamp.is_finite() {
                    first_stamp = first_stamp.min(h.stamp);
                    last_stamp = last_stamp.max(h.stamp);
                }
                let stamp_fields = if wire::decode(&bytes).is_ok() {
                    f64_value_offsets(&bytes, &STAMP_FIELDS)
                } else {
                    Vec::new()
                };
                Template {
                    bytes,
                    process: Some(i),
                    seq: h.seq,
                    stamp: h.stamp,
                    stamp_fields,
                }
            }
            Err(_) => Template {
                bytes,
                process: None,
                seq: 0,
                stamp: f64::NAN,
                stamp_fields: Vec::new(),
            },
        };
        templates.push(t);
    }
    if templates.is_empty() {
        bail!("capture '{}' holds no datagrams", args.file.display());
    }
    if !first_stamp.is_finite() {
        first_stamp = 0.0;
        last_stamp = 0.0;
    }
    let span = (last_stamp - first_stamp) + 1.0;
    let plan: Vec<Vec<u32>> = match args.processes {
        Some(n) => pid_plan(&originals, n).map_err(|e| anyhow!(e))?,
        None => originals.iter().map(|&p| vec![p]).collect(),
    };
    // Copies per template (a datagram whose header does not decode is sent
    // once per pass) and stamps relative to the first (such a datagram takes
    // the one before it), for the order of the sends in a pass.
    let copies: Vec<usize> = templates
        .iter()
        .map(|t| t.process.map_or(1, |i| plan[i].len()))
        .collect();
    let mut prev_rel = 0.0;
    let rel: Vec<f64> = templates
        .iter()
        .map(|t| {
            if t.stamp.is_finite() {
                prev_rel = t.stamp - first_stamp;
            }
            prev_rel
        })
        .collect();

    let sock = UnixDatagram::unbound().context("cannot create a socket")?;
    sock.connect(&args.socket).with_context(|| {
        format!(
            "cannot send to '{}' (is an ingester listening there?)",
            args.socket.display()
        )
    })?;
    crate::clock::stop_on_signals();

    let mut tally = Tally::default();
    let start = Instant::now();
    let deadline = (args.duration > 0.0).then(|| start + Duration::from_secs_f64(args.duration));
    let mut buf = Vec::with_capacity(wire::MAX_DATAGRAM);
    let mut prev_offset: Option<f64> = None;
    let mut pass: u64 = 0;
    let mut fatal: Option<io::Error> = None;
    let mut realtime_base: Option<(Instant, f64)> = None;
    'outer: loop {
        let restamp_base = args.restamp.then(|| crate::clock::wall_now() - first_stamp);
        let offset = if pass == 0 && !args.restamp {
            0.0
        } else {
            pass_offset(pass, restamp_base, prev_offset, span)
        };
        prev_offset = Some(offset);
        let order: Box<dyn Iterator<Item = Slot>> = if args.stagger {
            Box::new(Staggered::new(&rel, &copies, span))
        } else {
            Box::new(in_step(&copies))
        };
        for slot in order {
            let t = &templates[slot.template];
            let pid = t.process.map_or(0, |i| plan[i][slot.copy]);
            if crate::clock::stopping()
                || (args.count > 0 && tally.sent + tally.errors >= args.count)
                || deadline.is_some_and(|d| Instant::now() >= d)
            {
                break 'outer;
            }
            let shift = offset + slot.shift;
            // Pacing.
            if args.rate > 0.0 {
                sleep_until(
                    start + Duration::from_secs_f64((tally.sent + tally.errors) as f64 / args.rate),
                );
            } else if args.realtime && t.stamp.is_finite() {
                let s = t.stamp + shift;
                let (t0, s0) = *realtime_base.get_or_insert((Instant::now(), s));
                let ahead = (s - s0) / args.speed;
                if ahead > 0.0 {
                    sleep_until(t0 + Duration::from_secs_f64(ahead));
                }
            }
            let d: &[u8] = match t.process {
                Some(i) if pid != originals[i] || shift != 0.0 => {
                    buf.clear();
                    buf.extend_from_slice(&t.bytes);
                    let seq_pass = pass + u64::from(slot.next_pass);
                    patch_header(
                        &mut buf,
                        pid,
                        looped_seq(t.seq, seq_pass, max_seq[i]),
                        t.stamp + shift,
                    );
                    if shift != 0.0 {
                        for &o in &t.stamp_fields {
                            shift_f64_at(&mut buf, o, shift);
                        }
                    }
                    &buf
                }
                _ => &t.bytes,
            };
            match send_one(&sock, d, &mut tally) {
                Ok(true) => {}
                Ok(false) => break 'outer,
                Err(e) => {
                    fatal = Some(e);
                    break 'outer;
                }
            }
        }
        pass += 1;
        if !args.loop_ {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate = if elapsed > 0.0 {
        tally.sent as f64 / elapsed
    } else {
        0.0
    };
    println!(
        "replay: sent {} datagrams ({} bytes) in {:.3} s, {:.0} datagrams/s, {} errors, {} retries{}",
        tally.sent,
        tally.bytes,
        elapsed,
        rate,
        tally.errors,
        tally.retries,
        if crate::clock::stopping() { " (interrupted)" } else { "" }
    );
    if let Some(e) = fatal {
        bail!("the receiver at '{}' went away: {e}", args.socket.display());
    }
    Ok(if tally.errors == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{Header, Sample, Value};

    #[test]
    fn pid_plan_copies_and_limits() {
        let plan = pid_plan(&[100, 200, 300], 7).unwrap();
        assert_eq!(
            plan,
            vec![
                vec![100, 100 + PID_STRIDE, 100 + 2 * PID_STRIDE],
                vec![200, 200 + PID_STRIDE],
                vec![300, 300 + PID_STRIDE],
            ]
        );
        let n: usize = plan.iter().map(Vec::len).sum();
        assert_eq!(n, 7);
        // fewer than the capture has: only the first N play
        assert_eq!(
            pid_plan(&[100, 200, 300], 2).unwrap(),
            vec![vec![100], vec![200], vec![]]
        );
        // all distinct
        let big = pid_plan(&[19867, 19868, 4_000_000], 1000).unwrap();
        let mut all: Vec<u32> = big.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000);
        assert!(pid_plan(&[PID_STRIDE + 1, 5], 4).is_err());
        assert!(pid_plan(&[5], 2000).is_err(), "copies past u32");
    }

    #[test]
    fn seq_and_stamp_offsets_per_pass() {
        assert_eq!(looped_seq(1, 0, 50), 1);
        assert_eq!(looped_seq(1, 1, 50), 51);
        assert_eq!(looped_seq(50, 2, 50), 150);
        assert_eq!(pass_offset(0, None, None, 82.0), 0.0);
        assert_eq!(pass_offset(1, None, Some(0.0), 82.0), 82.0);
        assert_eq!(pass_offset(0, Some(1000.0), None, 82.0), 1000.0);
        // replaying faster than real time: the next pass follows the last
        assert_eq!(pass_offset(1, Some(1010.0), Some(1000.0), 82.0), 1082.0);
        // slower: it starts now
        assert_eq!(pass_offset(1, Some(1200.0), Some(1000.0), 82.0), 1200.0);
    }

    /// A capture of span 10 s: process A sends at 0 and 1 s (live a fifth
    /// of the span), process B at 2..9 s; five copies of each.
    fn two_processes() -> (Vec<f64>, Vec<usize>, f64) {
        ((0..10).map(f64::from).collect(), vec![5; 10], 10.0)
    }

    /// Copies of A sending in each second of a pass.
    fn a_copies_per_second(slots: &[Slot], rel: &[f64]) -> Vec<usize> {
        let mut per = vec![0; 10];
        for s in slots.iter().filter(|s| s.template < 2) {
            per[(rel[s.template] + s.shift).floor() as usize] += 1;
        }
        per
    }

    #[test]
    fn in_step_copies_start_and_stop_together() {
        let (rel, copies, _) = two_processes();
        let slots: Vec<Slot> = in_step(&copies).collect();
        assert_eq!(slots.len(), 50);
        assert_eq!(
            a_copies_per_second(&slots, &rel),
            [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn staggered_copies_are_spread_over_the_span() {
        let (rel, copies, span) = two_processes();
        let slots: Vec<Slot> = Staggered::new(&rel, &copies, span).collect();
        // Every copy sends every template once per pass...
        assert_eq!(slots.len(), 50);
        for c in 0..5 {
            let mut t: Vec<usize> = slots
                .iter()
                .filter(|s| s.copy == c)
                .map(|s| s.template)
                .collect();
            t.sort();
            assert_eq!(t, (0..10).collect::<Vec<_>>());
        }
        // ...one copy of A is live in every second (in step: 5, then none).
        assert_eq!(a_copies_per_second(&slots, &rel), [1; 10]);
        // In time order within the pass, each copy c starting at 2c s.
        let at: Vec<f64> = slots.iter().map(|s| rel[s.template] + s.shift).collect();
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
        assert!(at.iter().all(|&a| (0.0..span).contains(&a)));
        for c in 0..5 {
            let first = slots.iter().find(|s| s.copy == c).unwrap();
            assert_eq!(first.template, 2 * c);
            assert!(!first.next_pass);
        }
        // A copy's seq keeps increasing: the templates before its start
        // come after the wrap, as the next run through the capture.
        for s in &slots {
            assert_eq!(s.next_pass, s.template < 2 * s.copy, "{s:?}");
        }
    }

    #[test]
    fn staggered_skips_copies_a_process_does_not_have() {
        // A has 3 copies, B 2 (N = 5 of 2 capture processes).
        let rel = [0.0, 1.0, 2.0, 3.0];
        let copies = [3, 3, 2, 2];
        let slots: Vec<Slot> = Staggered::new(&rel, &copies, 4.0).collect();
        assert_eq!(slots.len(), 10);
        assert!(slots.iter().all(|s| s.copy < copies[s.template]));
        assert!(Staggered::new(&[], &[], 1.0).next().is_none());
    }

    fn slow_sample() -> Sample {
        Sample {
            header: Header::new(Kind::SLOW_REQUEST, 42, 7, 1000.5),
            fields: vec![
                (wire::id::HOSTNAME, Value::Bytes(b"web1".to_vec())),
                (wire::id::SLOW_START_STAMP, Value::F64(999.25)),
                (wire::id::INTERPRETER_NAME, Value::Bytes(b"a|b".to_vec())),
                (70, Value::I32Array(vec![1, 2, 3])),
                (wire::id::GC_EVENT_START_STAMP, Value::F64(998.0)),
                (999, Value::U64(3)),
            ],
        }
    }

    #[test]
    fn stamp_fields_are_found_and_shifted() {
        let s = slow_sample();
        let mut d = s.encode().unwrap();
        let offs = f64_value_offsets(&d, &STAMP_FIELDS);
        assert_eq!(offs.len(), 2);
        patch_header(&mut d, 4242, 9, 2000.5);
        for o in offs {
            shift_f64_at(&mut d, o, 1000.0);
        }
        let back = wire::decode(&d).unwrap();
        assert_eq!(back.header.pid, 4242);
        assert_eq!(back.header.seq, 9);
        assert_eq!(back.header.stamp, 2000.5);
        assert_eq!(back.f64(wire::id::SLOW_START_STAMP), Some(1999.25));
        assert_eq!(back.f64(wire::id::GC_EVENT_START_STAMP), Some(1998.0));
        assert_eq!(back.fields.len(), s.fields.len());
        assert_eq!(back.get(70), s.get(70));
    }

    #[test]
    fn drop_field_by_kind() {
        let d = slow_sample().encode().unwrap();
        assert_eq!(drop_fields(&d, &[]), None);
        let only_gc = parse_drop_field("8:gc_event").unwrap();
        assert_eq!(drop_fields(&d, &[only_gc]), None, "other kinds untouched");
        let any = parse_drop_field("interpreter_name").unwrap();
        assert_eq!(
            any,
            DropField {
                field: 8,
                kind: None
            }
        );
        let out = wire::decode(&drop_fields(&d, &[any]).unwrap()).unwrap();
        assert!(out.get(8).is_none());
        assert_eq!(out.fields.len(), 5);
        assert_eq!(
            parse_drop_field("8:4").unwrap().kind,
            Some(Kind::SLOW_REQUEST)
        );
        assert!(parse_drop_field("nope").is_err());
        assert!(parse_drop_field("8:nokind").is_err());
    }

    #[test]
    fn target_forms() {
        assert_eq!(
            parse_target("unix:/tmp/a.sock").unwrap(),
            PathBuf::from("/tmp/a.sock")
        );
        assert_eq!(
            parse_target("/tmp/a.sock").unwrap(),
            PathBuf::from("/tmp/a.sock")
        );
        assert_eq!(
            parse_target("rel/a:b.sock").unwrap(),
            PathBuf::from("rel/a:b.sock")
        );
        assert!(parse_target("udp:1.2.3.4:5")
            .unwrap_err()
            .contains("unknown scheme"));
        assert!(parse_target("").is_err());
    }
}
