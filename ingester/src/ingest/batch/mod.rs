//! The batched live stream of our own UI (`/ws?batch=MS`): one frame per
//! interval carrying what changed, instead of one message per datagram.
//!
//! Fed by the same state-change path as the per-datagram stream
//! ([`crate::ingest::receive::Shared`] hands every [`Update`] of a datagram to
//! [`Batches::feed`] under the state lock), so a frame holds exactly the
//! datagrams applied since the previous one. A frame is serialised once per
//! interval and the same bytes go to every client of that interval (one
//! broadcast per interval length, started with its first client, retired
//! after its last).
//!
//! What a frame carries (`{"type":"batch", ...}`):
//! - `seq` (frames of one interval are numbered) and `interval_ms`;
//! - `total_received`, `decode_errors`, `seq_gaps`: the server's totals
//!   after the frame's last datagram;
//! - `samples`: the per-datagram stream's sample messages in arrival order,
//!   except that each request-time histogram (`*_buckets`) is
//!   `[index, count, ...]` of its non-zero buckets (`"histograms":"pairs"`
//!   in the frame says so): most of the 65 counts are zero, and they were
//!   a third of a frame's bytes;
//! - `gc_snapshots`, `lifecycle`: the per-datagram stream's own messages,
//!   verbatim, in arrival order (serialised once: when both kinds of client
//!   are connected the same text serves both);
//! - `gc`: GC events as aggregates per (pid, interpreter, second of the
//!   event's start): collections per generation, pause time, longest pause,
//!   objects collected and uncollectable, and the pause histogram on the
//!   65-bucket grid of `duration × PAUSE_SCALE` (`[bucket, count, ...]`);
//! - `gc_events`: the individual events the GC timeline draws, per
//!   (pid, interpreter): all of them while the frame's events fit
//!   [`EVENTS_PER_SECOND`], else the longest pauses of each series;
//!   `omitted` counts those left out and `cut` is the newest start among
//!   them (the client's raw events of that series are complete only after
//!   it);
//! - `slow_requests`: the newest entry of each slow-request key that
//!   changed, in update order, after `slow_clear` (the clear's message,
//!   verbatim) when the list was cleared within the frame.
//!
//! A client joining a stream gets a snapshot (taken under the state lock)
//! whose `batch_seq` names the first frame to apply: the pending frame is
//! cut at that moment, so no frame mixes datagrams before and after the
//! snapshot.
//!
//! Must never: wait on anything but its own short locks while the state lock
//! is held, or serialise a frame under the state lock.

use crate::ingest::json as messages;
use crate::ingest::json::Msg;
use crate::ingest::state::{SlowEntry, SlowKey, State, Update};
use indexmap::IndexMap;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};
use wire::{id, Kind};

/// Shortest interval a client may ask for.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest interval a client may ask for.
pub const MAX_INTERVAL: Duration = Duration::from_millis(5_000);
/// Individual GC events sent per second in all (the GC timeline draws at
/// most ~2,000 dots; counts, times and pauses come from the aggregates).
pub const EVENTS_PER_SECOND: usize = 2_000;
/// Individual GC events one series keeps per frame at most (the UI keeps
/// the newest 240 events of a process).
pub const EVENTS_PER_SERIES: usize = 240;
/// Pause histograms bucket `duration × PAUSE_SCALE` on the 65-bucket grid
/// (GC pauses are mostly far below the grid's first millisecond).
pub const PAUSE_SCALE: f64 = 64.0;
/// Frames a client may fall behind before it is disconnected (it then
/// reconnects and starts again from a snapshot: a batched client never
/// silently misses a frame).
pub const FRAMES_BUFFERED: usize = 16;

/// Parses `?batch=MS`: whole milliseconds within the allowed range.
pub fn parse_interval(v: &str) -> Result<Duration, String> {
    let (lo, hi) = (MIN_INTERVAL.as_millis(), MAX_INTERVAL.as_millis());
    match v.trim().parse::<u64>() {
        Ok(ms) if (lo..=hi).contains(&(ms as u128)) => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "batch must be milliseconds between {lo} and {hi}, got '{}'",
            v.escape_debug()
        )),
    }
}

/// Every batched stream, by interval.
#[derive(Default)]
pub struct Batches {
    /// Streams running (read without the lock on every datagram).
    running: AtomicUsize,
    streams: Mutex<Vec<Arc<Stream>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Batches {
    /// True while any batched client is connected.
    pub fn active(&self) -> bool {
        self.running.load(Ordering::Relaxed) > 0
    }

    /// Adds one datagram's update to every stream's pending frame; `json`
    /// is its per-datagram message when one was written already. Called
    /// with the state lock held, after the update was applied to `st`.
    pub fn feed(&self, st: &State, u: &Update, json: Option<&str>) {
        let streams = lock(&self.streams);
        if streams.is_empty() {
            return;
        }
        // The message text (samples, GC snapshots, lifecycle events), written
        // once for every stream; GC events and slow records are kept as data.
        // Samples carry their histograms as pairs (not the per-datagram text).
        let verbatim = match u {
            Update::Lifecycle(_) => true,
            Update::Gc { sample, .. } => sample.header.kind != Kind::GC_EVENT,
            Update::Sample(_) | Update::Slow { .. } | Update::Nothing => false,
        };
        let owned;
        let json = match u {
            Update::Sample(s) => {
                owned = Some(messages::sample_pairs_json(s));
                owned.as_deref()
            }
            _ if !verbatim => None,
            _ => match json {
                Some(j) => Some(j),
                None => {
                    owned = messages::update_json(u);
                    owned.as_deref()
                }
            },
        };
        for s in streams.iter() {
            lock(&s.frames).pending.add(st, u, json);
        }
    }

    /// Records a clear of the slow-request list (its `kept` entries).
    pub fn slow_clear(&self, kept: &[(SlowKey, Arc<SlowEntry>)]) {
        let streams = lock(&self.streams);
        if streams.is_empty() {
            return;
        }
        let msg = messages::slow_clear_json(kept);
        for s in streams.iter() {
            let mut f = lock(&s.frames);
            f.pending.slow.clear();
            f.pending.slow_clear = Some(msg.clone());
        }
    }

    /// Joins the stream of `interval` (starting it on the tokio runtime if
    /// none runs): the receiver of its frames and the `seq` of the first
    /// frame the joining client applies. Call with the state lock held and
    /// take the client's snapshot under the same lock.
    pub fn subscribe(self: &Arc<Self>, interval: Duration) -> (broadcast::Receiver<Msg>, u64) {
        let mut streams = lock(&self.streams);
        let stream = match streams.iter().find(|s| s.interval == interval) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(Stream::new(interval));
                streams.push(s.clone());
                self.running.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(run(self.clone(), s.clone()));
                s
            }
        };
        let rx = stream.tx.subscribe();
        let mut f = lock(&stream.frames);
        // Datagrams already pending are in the snapshot: they go out in a
        // frame of their own, which this client skips.
        if !f.pending.is_empty() {
            f.cut();
            stream.wake.notify_one();
        }
        (rx, f.pending.seq)
    }

    /// Removes `stream` if nobody listens any more (true: it stops).
    fn retire_if_unused(&self, stream: &Arc<Stream>) -> bool {
        let mut streams = lock(&self.streams);
        if stream.tx.receiver_count() > 0 {
            return false;
        }
        streams.retain(|s| !Arc::ptr_eq(s, stream));
        self.running.fetch_sub(1, Ordering::Relaxed);
        true
    }
}

/// One interval's stream.
struct Stream {
    interval: Duration,
    tx: broadcast::Sender<Msg>,
    frames: Mutex<Frames>,
    /// Wakes the stream's task to send a frame cut early.
    wake: Notify,
}

/// The frame being filled and the frames cut but not yet sent, in order.
struct Frames {
    pending: Pending,
    queue: VecDeque<Pending>,
}

impl Frames {
    /// Ends the pending frame; the next one gets the following `seq`.
    fn cut(&mut self) {
        let next = Pending::new(self.pending.seq + 1);
        self.queue
            .push_back(std::mem::replace(&mut self.pending, next));
    }
}

impl Stream {
    fn new(interval: Duration) -> Stream {
        Stream {
            interval,
            tx: broadcast::channel(FRAMES_BUFFERED).0,
            frames: Mutex::new(Frames {
                pending: Pending::new(1),
                queue: VecDeque::new(),
            }),
            wake: Notify::new(),
        }
    }
}

/// The stream's task: cuts a frame every interval and sends the cut
/// frames in order, serialised here (not under any lock); ends once no
/// client listens.
async fn run(batches: Arc<Batches>, stream: Arc<Stream>) {
    let mut tick = tokio::time::interval(stream.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let interval_ms = stream.interval.as_millis() as u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut f = lock(&stream.frames);
                if !f.pending.is_empty() {
                    f.cut();
                }
            }
            _ = stream.wake.notified() => {}
        }
        loop {
            let next = lock(&stream.frames).queue.pop_front();
            let Some(frame) = next else { break };
            let _ = stream.tx.send(Arc::from(frame.into_json(interval_ms)));
        }
        if batches.retire_if_unused(&stream) {
            break;
        }
    }
}

/// GC events of one (pid, interpreter, start second), summed.
struct GcAgg {
    n: [u64; 3],
    time: f64,
    max: f64,
    collected: u64,
    uncollectable: u64,
    pauses: [u32; wire::histogram::BUCKETS],
}

/// Individual events of one (pid, interpreter) kept for the timeline:
/// `(start, duration, generation)`.
#[derive(Default)]
struct Picked {
    events: Vec<(f64, f64, u8)>,
    omitted: u64,
    /// Newest start among the omitted events.
    cut: Option<f64>,
}

impl Picked {
    fn omit(&mut self, start: f64) {
        self.omitted += 1;
        self.cut = Some(self.cut.map_or(start, |c| c.max(start)));
    }

    /// Keeps the `k` longest events (in arrival order), omitting the rest.
    fn keep_longest(&mut self, k: usize) {
        if self.events.len() <= k {
            return;
        }
        let mut order: Vec<usize> = (0..self.events.len()).collect();
        order.sort_by(|&a, &b| {
            self.events[b]
                .1
                .total_cmp(&self.events[a].1)
                .then(a.cmp(&b))
        });
        let mut keep = vec![false; self.events.len()];
        for &i in &order[..k] {
            keep[i] = true;
        }
        let events = std::mem::take(&mut self.events);
        for (i, e) in events.into_iter().enumerate() {
            if keep[i] {
                self.events.push(e);
            } else {
                self.omit(e.0);
            }
        }
    }
}

/// A frame being filled.
struct Pending {
    seq: u64,
    datagrams: u64,
    total_received: u64,
    decode_errors: u64,
    seq_gaps: u64,
    /// Comma-separated messages (the inside of a JSON array).
    samples: String,
    gc_snapshots: String,
    lifecycle: String,
    gc: IndexMap<(u32, Arc<str>, i64), GcAgg>,
    events: IndexMap<(u32, Arc<str>), Picked>,
    slow: IndexMap<SlowKey, (Arc<SlowEntry>, f64)>,
    slow_clear: Option<String>,
}

fn push_item(list: &mut String, json: Option<&str>) {
    if let Some(j) = json {
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(j);
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// A float as serde_json writes it (`null` when not finite).
fn json_f64(out: &mut String, v: f64) {
    out.push_str(&serde_json::to_string(&v).unwrap_or_else(|_| "null".into()));
}

impl Pending {
    fn new(seq: u64) -> Pending {
        Pending {
            seq,
            datagrams: 0,
            total_received: 0,
            decode_errors: 0,
            seq_gaps: 0,
            samples: String::new(),
            gc_snapshots: String::new(),
            lifecycle: String::new(),
            gc: IndexMap::new(),
            events: IndexMap::new(),
            slow: IndexMap::new(),
            slow_clear: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.datagrams == 0 && self.slow_clear.is_none()
    }

    fn add(&mut self, st: &State, u: &Update, json: Option<&str>) {
        self.datagrams += 1;
        self.total_received = st.total_received;
        self.decode_errors = st.decode_errors;
        self.seq_gaps = st.seq_gaps;
        match u {
            Update::Nothing => {}
            Update::Sample(_) => push_item(&mut self.samples, json),
            Update::Lifecycle(_) => push_item(&mut self.lifecycle, json),
            Update::Gc {
                sample,
                interpreter,
            } if sample.header.kind == Kind::GC_EVENT => {
                self.gc_event(sample, interpreter);
            }
            Update::Gc { .. } => push_item(&mut self.gc_snapshots, json),
            Update::Slow { key, entry, stamp } => {
                // Re-inserted: the order is that of the last update.
                self.slow.shift_remove(key);
                self.slow.insert(key.clone(), (entry.clone(), *stamp));
            }
        }
    }

    /// Adds a GC event to its aggregate and to the timeline's picks. The
    /// start, duration and generation are read as the UI reads them from
    /// the per-datagram message (a missing or non-finite start is the
    /// header's stamp; a missing duration is 0).
    fn gc_event(&mut self, s: &wire::Sample, interpreter: &Arc<str>) {
        let start = s
            .f64(id::GC_EVENT_START_STAMP)
            .filter(|v| v.is_finite())
            .unwrap_or(s.header.stamp);
        let dur = s
            .f64(id::GC_EVENT_DURATION)
            .filter(|v| v.is_finite())
            .unwrap_or(0.0);
        let gen = match s.u64(id::GC_EVENT_GENERATION) {
            Some(g @ (1 | 2)) => g as u8,
            _ => 0,
        };
        let pid = s.header.pid;
        let sec = if start.is_finite() {
            start.floor() as i64
        } else {
            0
        };
        let agg = self
            .gc
            .entry((pid, interpreter.clone(), sec))
            .or_insert_with(|| GcAgg {
                n: [0; 3],
                time: 0.0,
                max: 0.0,
                collected: 0,
                uncollectable: 0,
                pauses: [0; wire::histogram::BUCKETS],
            });
        agg.n[gen as usize] += 1;
        agg.time += dur;
        agg.max = agg.max.max(dur);
        agg.collected += s.u64(id::GC_EVENT_COLLECTED).unwrap_or(0);
        agg.uncollectable += s.u64(id::GC_EVENT_UNCOLLECTABLE).unwrap_or(0);
        agg.pauses[wire::histogram::bucket_index(dur * PAUSE_SCALE)] += 1;
        let picked = self.events.entry((pid, interpreter.clone())).or_default();
        if picked.events.len() < EVENTS_PER_SERIES {
            picked.events.push((start, dur, gen));
        } else {
            // Full: the shortest kept pause (or this one) is omitted.
            let (i, shortest) = picked
                .events
                .iter()
                .enumerate()
                .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
                .map(|(i, e)| (i, e.1))
                .unwrap_or((0, f64::INFINITY));
            if dur > shortest {
                let old = picked.events.remove(i);
                picked.omit(old.0);
                picked.events.push((start, dur, gen));
            } else {
                picked.omit(start);
            }
        }
    }

    /// The frame's JSON text.
    fn into_json(mut self, interval_ms: u64) -> String {
        let mut o = String::with_capacity(
            256 + self.samples.len() + self.gc_snapshots.len() + self.lifecycle.len(),
        );
        let _ = write!(
            o,
            "{{\"type\":\"batch\",\"seq\":{},\"interval_ms\":{interval_ms},\"histograms\":\"pairs\",\"datagrams\":{},\"total_received\":{},\"decode_errors\":{},\"seq_gaps\":{}",
            self.seq, self.datagrams, self.total_received, self.decode_errors, self.seq_gaps
        );
        if let Some(clear) = &self.slow_clear {
            o.push_str(",\"slow_clear\":");
            o.push_str(clear);
        }
        for (name, list) in [
            ("lifecycle", &self.lifecycle),
            ("samples", &self.samples),
            ("gc_snapshots", &self.gc_snapshots),
        ] {
            let _ = write!(o, ",\"{name}\":[{list}]");
        }
        o.push_str(",\"gc\":[");
        for (i, ((pid, interp, sec), a)) in self.gc.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"pid\":{pid},\"interpreter\":");
            json_str(&mut o, interp);
            let _ = write!(
                o,
                ",\"sec\":{sec},\"n\":[{},{},{}],\"time\":",
                a.n[0], a.n[1], a.n[2]
            );
            json_f64(&mut o, a.time);
            o.push_str(",\"max\":");
            json_f64(&mut o, a.max);
            let _ = write!(
                o,
                ",\"collected\":{},\"uncollectable\":{},\"pauses\":[",
                a.collected, a.uncollectable
            );
            let mut first = true;
            for (b, &c) in a.pauses.iter().enumerate() {
                if c > 0 {
                    if !first {
                        o.push(',');
                    }
                    first = false;
                    let _ = write!(o, "{b},{c}");
                }
            }
            o.push_str("]}");
        }
        o.push(']');
        // The timeline's share of this frame's event budget, per series.
        let series = self.events.len().max(1);
        let budget = (EVENTS_PER_SECOND as u128 * u128::from(interval_ms)).div_ceil(1000) as usize;
        let per_series = budget.div_ceil(series).clamp(1, EVENTS_PER_SERIES);
        o.push_str(",\"gc_events\":[");
        for (i, ((pid, interp), picked)) in self.events.iter_mut().enumerate() {
            picked.keep_longest(per_series);
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"pid\":{pid},\"interpreter\":");
            json_str(&mut o, interp);
            for (key, part) in [("t", 0), ("d", 1), ("g", 2)] {
                let _ = write!(o, ",\"{key}\":[");
                for (j, e) in picked.events.iter().enumerate() {
                    if j > 0 {
                        o.push(',');
                    }
                    match part {
                        0 => json_f64(&mut o, e.0),
                        1 => json_f64(&mut o, e.1),
                        _ => {
                            let _ = write!(o, "{}", e.2);
                        }
                    }
                }
                o.push(']');
            }
            let _ = write!(o, ",\"omitted\":{}", picked.omitted);
            if let Some(cut) = picked.cut {
                o.push_str(",\"cut\":");
                json_f64(&mut o, cut);
            }
            o.push('}');
        }
        o.push_str("],\"slow_requests\":[");
        for (i, (key, (entry, stamp))) in self.slow.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str(
                &serde_json::to_string(
                    &serde_json::json!({"key": key, "entry": &**entry, "stamp": stamp}),
                )
                .unwrap_or_else(|_| "null".into()),
            );
        }
        o.push_str("]}");
        o
    }
}

#[cfg(test)]
mod tests;
