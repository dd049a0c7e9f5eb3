// The client's data model: applies server messages (snapshot, sample, ...)
// incrementally and keeps everything bounded. No DOM in here.
//
// Time: "now" is the newest reporter stamp seen, never the browser clock,
// so a skewed browser clock cannot hide processes (docs/compatibility.md C27).
// Liveness: a process is live while its newest sample is within
// max(10 s, 3 × sample_period) of now and it has not sent STOPPED. A
// process that sent STOPPED is listed as stopped (sidebar, Processes tab)
// for STOPPED_GRACE_S and counted in no total; dead processes then leave the
// views and their samples are dropped after RETAIN_S, while their lifecycle
// records stay for the Processes tab's timeline and log
// (docs/compatibility.md C26).

import { deriveSample, reasonCategory } from './stats.js';
import { NBUCKETS, bucketIndex, percentile } from './hist.js';

export const PALETTE = ['#4fc3f7', '#ff8a65', '#81c784', '#ba68c8', '#fff176', '#4db6ac', '#e57373', '#9575cd'];
export const STOPPED_GRACE_S = 10; // listed as stopped this long after STOPPED
export const RETAIN_S = 90; // per-process samples kept (the 60 s views, with room for a paused view)
export const HIST_RETAIN_S = 600; // histogram time bins (10 m window)
export const GC_RETAIN_S = 300;
export const GC_EVENTS_MAX = 240; // raw events per process (timeline dots); totals come from bins
export const GC_SUM_BIN_S = 10; // GC time / count bin width
export const GC_HIST_BIN_S = GC_SUM_BIN_S; // pause-histogram bin width (aligned with the sums)
// GC pauses are mostly sub-millisecond: their histogram uses the 65-bucket
// grid on durations × 64 (bucket 0 < 20 µs, overflow ≥ 1.024 s).
export const GC_PAUSE_SCALE = 64;
// GC snapshots of all processes share one time-ordered ring of typed
// arrays, allocated once with the store: 2^16 snapshots are 5 minutes of
// ~200 interpreters reporting every second; beyond that the GC tab's 5 m
// window starts later. Only the fields the GC tab reads are kept.
export const GC_SNAP_CAP = 65536;
export const GC_SNAP_FIELDS = [
  'gc_is_enabled', 'gc_threshold0', 'gc_threshold1', 'gc_threshold2',
  'gc_count0', 'gc_count1', 'gc_count2',
  'gc_collections0', 'gc_collections1', 'gc_collections2',
  'gc_freeze_count', 'gc_dropped_events',
];
const GC_NF = GC_SNAP_FIELDS.length;
// Per (pid, interpreter) bins live in fixed rings indexed by bin start
// time, allocated with the series: no growth while a process lives.
const GC_SEC_SLOTS = Math.ceil(GC_RETAIN_S / GC_SUM_BIN_S) + 2;
const GC_HIST_SLOTS = Math.ceil(GC_RETAIN_S / GC_HIST_BIN_S) + 2;
export const GC_SEC_STRIDE = 6; // sec, dur, n0, n1, n2, max
export const LIFECYCLE_MAX = 500;
export const LIFECYCLE_AGE_S = 600;
export const LIFE_RECORDS_MAX = 2000;
export const SLOW_MAX = 5000;
// Completed slow records are kept 120 s on the client (the table shows them
// for 15 s, heatmap runs look back 60 s); the server keeps them longer.
export const SLOW_COMPLETED_KEEP_S = 120;
// Samples applied per step of a batched frame (Store.batchSteps): about
// 1 ms of work on a 2-core machine.
export const BATCH_STEP_SAMPLES = 48;

export const HIST_FIELDS = [
  'request_time', 'application_time', 'daemon_time', 'queue_time', 'server_time',
  'gil_wait_time', 'input_read_time', 'output_write_time',
];

/** Append-only array trimmed from the front without shift(). */
export class Ring {
  constructor() {
    this.a = [];
    this.start = 0;
  }
  get length() {
    return this.a.length - this.start;
  }
  push(x) {
    this.a.push(x);
  }
  at(i) {
    return this.a[this.start + i];
  }
  last() {
    return this.a.length > this.start ? this.a[this.a.length - 1] : undefined;
  }
  first() {
    return this.a.length > this.start ? this.a[this.start] : undefined;
  }
  /** Drop leading items while pred(item) is true. */
  dropWhile(pred) {
    while (this.start < this.a.length && pred(this.a[this.start])) {
      this.a[this.start] = undefined;
      this.start++;
    }
    if (this.start > 64 && this.start * 2 > this.a.length) {
      this.a = this.a.slice(this.start);
      this.start = 0;
    }
  }
  /** Live view as a plain array (a copy only after compaction would be needed). */
  view() {
    return this.start === 0 ? this.a : this.a.slice(this.start);
  }
  /** Index of the first item with key(item) ≥ v (binary search, items sorted by key). */
  lowerBound(v, key) {
    let lo = this.start;
    let hi = this.a.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (key(this.a[mid]) < v) lo = mid + 1;
      else hi = mid;
    }
    return lo - this.start;
  }
  clear() {
    this.a = [];
    this.start = 0;
  }
}

/** Fixed-capacity ring over typed columns with a time column `t` (set by subclasses). */
class TypedRing {
  constructor(cap) {
    this.cap = cap;
    this.t = new Float64Array(cap);
    this.n = 0;
  }
  get length() {
    return Math.min(this.n, this.cap);
  }
  /** Physical slot of logical index i (0 = oldest kept). */
  slot(i) {
    return (this.n - this.length + i) % this.cap;
  }
  /** First logical index with t ≥ v (binary search; arrival order is near time order). */
  lowerBound(v) {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[this.slot(mid)] < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * Store-wide ring of GC snapshots (time-ordered as they arrive), in typed
 * arrays allocated once. Logical index 0 is the oldest kept snapshot;
 * `slot(i)` is its physical position for `t`, `sid` and `field`.
 */
export class GcSnapRing extends TypedRing {
  constructor(cap = GC_SNAP_CAP) {
    super(cap);
    this.sid = new Int32Array(cap);
    this.f = new Uint32Array(cap * GC_NF);
  }
  push(t, sid, fields) {
    const j = this.n % this.cap;
    this.t[j] = t;
    this.sid[j] = sid;
    const o = j * GC_NF;
    for (let k = 0; k < GC_NF; k++) {
      const v = fields[GC_SNAP_FIELDS[k]];
      this.f[o + k] = v === true ? 1 : typeof v === 'number' && v > 0 ? v : 0;
    }
    this.n++;
    return j;
  }
  /** Field k (index in GC_SNAP_FIELDS) of the snapshot at physical slot j. */
  field(j, k) {
    return this.f[j * GC_NF + k];
  }
  /** Physical slot of series gs's newest snapshot, or -1 once overwritten. */
  latestOf(gs) {
    const j = gs.latest;
    return j >= 0 && this.n > 0 && this.sid[j] === gs.sid && this.t[j] === gs.latestT ? j : -1;
  }
  /** Snapshot at physical slot j as {t, f: {field: value}} (tests, tooltips). */
  object(j) {
    const f = {};
    for (let k = 0; k < GC_NF; k++) f[GC_SNAP_FIELDS[k]] = this.f[j * GC_NF + k];
    return { t: this.t[j], f };
  }
  clear() {
    this.n = 0;
  }
}

/** A process's newest GC events in typed arrays allocated with the process. */
export class GcEventRing extends TypedRing {
  constructor(cap) {
    super(cap);
    this.dur = new Float32Array(cap);
    this.gen = new Uint8Array(cap);
    this.sid = new Int32Array(cap);
  }
  push(t, dur, gen, sid) {
    const j = this.n % this.cap;
    this.t[j] = t;
    this.dur[j] = dur;
    this.gen[j] = gen;
    this.sid[j] = sid;
    this.n++;
  }
}

/** One (pid, interpreter) GC series: newest snapshot, 10 s sums and 10 s pause histograms. */
function newGcSeries(sid, interp) {
  return {
    sid,
    interp,
    latest: -1, // physical slot of the newest snapshot in the store's ring
    latestT: null,
    snaps: 0, // snapshots received
    // Raw events of this series are complete only after this start time
    // (the batched stream leaves some out when a frame has many).
    rawFrom: -Infinity,
    sec: new Float64Array(GC_SEC_SLOTS * GC_SEC_STRIDE).fill(NaN),
    histSec: new Float64Array(GC_HIST_SLOTS).fill(NaN),
    hist: new Uint32Array(GC_HIST_SLOTS * NBUCKETS),
  };
}

/** Offsets (into gs.sec) of the 10 s bins starting in [from, to], oldest first. */
export function gcSecBins(gs, from, to) {
  const out = [];
  for (let b = Math.floor(from / GC_SUM_BIN_S) * GC_SUM_BIN_S; b <= to; b += GC_SUM_BIN_S) {
    const o = ((Math.floor(b / GC_SUM_BIN_S) % GC_SEC_SLOTS) + GC_SEC_SLOTS) % GC_SEC_SLOTS * GC_SEC_STRIDE;
    if (gs.sec[o] === b) out.push(o);
  }
  return out;
}

/** Slot indexes (hist offset = slot × NBUCKETS) of the pause histograms starting in [from, to]. */
export function gcHistBins(gs, from, to) {
  const out = [];
  for (let b = Math.floor(from / GC_HIST_BIN_S) * GC_HIST_BIN_S; b <= to; b += GC_HIST_BIN_S) {
    const k = ((Math.floor(b / GC_HIST_BIN_S) % GC_HIST_SLOTS) + GC_HIST_SLOTS) % GC_HIST_SLOTS;
    if (gs.histSec[k] === b) out.push(k);
  }
  return out;
}

/**
 * GC figures of one (pid, interpreter) series over the window [from, to]
 * (event start times): {n, gen: [n0, n1, n2], dur, max, counts} where
 * counts is the pause histogram (durations × GC_PAUSE_SCALE). 10 s bins
 * inside the window count whole; a bin the window cuts is counted from the
 * process's raw events when its ring still holds that stretch (exact), else
 * in proportion to the overlap (`exact` false). `live`: no event is newer
 * than `to` (the window ends at the newest stamp, not at a pause).
 */
export function gcWindow(p, gs, from, to, live) {
  const out = { n: 0, gen: [0, 0, 0], dur: 0, max: 0, counts: new Float64Array(NBUCKETS), exact: true };
  const evs = p.gcEvents;
  // The ring holds every event newer than its oldest kept one (all, if
  // never overwritten), and after the series' newest left-out event.
  const rawFrom = Math.max(gs.rawFrom, evs.n <= evs.cap ? -Infinity : evs.length ? evs.t[evs.slot(0)] : Infinity);
  const W = GC_SUM_BIN_S;
  for (const o of gcSecBins(gs, from - W, to)) {
    const b = gs.sec[o];
    const lo = Math.max(b, from);
    const hi = Math.min(b + W, to);
    if (hi < lo) continue;
    const whole = b >= from && (b + W <= to || live);
    const k = ((Math.floor(b / W) % GC_HIST_SLOTS) + GC_HIST_SLOTS) % GC_HIST_SLOTS;
    const hasHist = gs.histSec[k] === b;
    if (!whole && rawFrom < lo) {
      for (let i = evs.lowerBound(lo), n = evs.length; i < n; i++) {
        const j = evs.slot(i);
        const t = evs.t[j];
        if (evs.sid[j] !== gs.sid || t < lo || t > hi) continue;
        const d = evs.dur[j];
        out.n++;
        out.gen[evs.gen[j] === 2 ? 2 : evs.gen[j] === 1 ? 1 : 0]++;
        out.dur += d;
        if (d > out.max) out.max = d;
        out.counts[bucketIndex(d * 1000 * GC_PAUSE_SCALE)]++;
      }
      continue;
    }
    const f = whole ? 1 : (hi - lo) / W;
    if (!whole) out.exact = false;
    for (let g = 0; g < 3; g++) {
      out.gen[g] += gs.sec[o + 2 + g] * f;
      out.n += gs.sec[o + 2 + g] * f;
    }
    out.dur += gs.sec[o + 1] * f;
    if (gs.sec[o + 5] > out.max) out.max = gs.sec[o + 5];
    if (hasHist) for (let i = 0, h = k * NBUCKETS; i < NBUCKETS; i++) out.counts[i] += gs.hist[h + i] * f;
  }
  return out;
}

/**
 * Pause percentile q (0..1) in seconds of a gcWindow result, or null. A
 * bucket's interpolation can pass the largest pause seen: never above it.
 */
export function gcPausePercentile(w, q) {
  const v = percentile(w.counts, q);
  if (v == null) return null;
  return Math.min(v / GC_PAUSE_SCALE / 1000, w.max);
}

/** Insert keeping time order (samples nearly always arrive in order). */
function pushSorted(ring, item) {
  const last = ring.last();
  if (!last || last.t <= item.t) {
    ring.push(item);
    return;
  }
  const arr = ring.view().slice();
  let i = arr.length;
  while (i > 0 && arr[i - 1].t > item.t) i--;
  arr.splice(i, 0, item);
  ring.a = arr;
  ring.start = 0;
}

export function slowKeyString(key) {
  return JSON.stringify(key);
}

const FINE_S = 60;
const COARSE_S = 10;

/** One bin of summed histograms (per group, per reporter second or 10 s). */
function newBin(sec) {
  return { sec, h: {}, min: {}, max: {}, switchInt: null, switchT: 0 };
}

function mergeBin(into, b) {
  for (const [name, h] of Object.entries(b.h)) {
    let t = into.h[name];
    if (!t) t = into.h[name] = new Uint32Array(NBUCKETS);
    for (let i = 0; i < NBUCKETS; i++) t[i] += h[i];
  }
  for (const [k, v] of Object.entries(b.min)) if (into.min[k] == null || v < into.min[k]) into.min[k] = v;
  for (const [k, v] of Object.entries(b.max)) if (into.max[k] == null || v > into.max[k]) into.max[k] = v;
  if (b.switchInt != null && b.switchT >= into.switchT) {
    into.switchInt = b.switchInt;
    into.switchT = b.switchT;
  }
}

export class Store {
  constructor() {
    this.reset();
  }

  reset() {
    this.procs = new Map();
    this.colorCount = 0;
    this.now = 0; // newest reporter stamp
    this.lastArrival = 0; // performance.now() of the newest datagram message
    this.datagramsAtSnapshot = 0;
    this.messagesSince = 0;
    this.decodeErrors = 0;
    this.seqGapsServer = 0;
    this.historyTruncated = false;
    this.extra = {};
    // Batched stream: frames before batchFrom are in the snapshot already.
    this.batched = false;
    this.batchFrom = 0;
    this.batchPids = new Set(); // pids with samples in the last frame
    this.lifecycle = new Ring();
    this.life = new Map(); // pid → lifecycle record
    this.slow = new Map(); // key string → {key, entry, seen}
    this.bins = new Map(); // group → Ring of bins
    this.groupsSeen = new Set();
    // Allocated once per page (a snapshot reuses it).
    if (!this.gcSnaps) this.gcSnaps = new GcSnapRing();
    this.gcSnaps.clear();
    this.gcSeriesCount = this.gcSeriesCount || 0;
    this.rev = { samples: 0, life: 0, gc: 0, slow: 0, slowClear: 0, procs: 0, hist: 0 };
    this.snapshotCount = (this.snapshotCount || 0) + 1;
  }

  /** Datagrams received by the ingester (server total at snapshot + datagram messages since). */
  get datagrams() {
    return this.datagramsAtSnapshot + this.messagesSince;
  }

  get seqGaps() {
    // Batched: the server's total (it sees every sequence number).
    if (this.batched) return this.seqGapsServer;
    let client = 0;
    for (const p of this.procs.values()) client += p.dropsClient;
    return this.seqGapsServer + client;
  }

  proc(pid, create = true) {
    let p = this.procs.get(pid);
    if (!p && create) {
      p = {
        pid,
        color: PALETTE[this.colorCount++ % PALETTE.length],
        hostname: '',
        group: '',
        mod_wsgi_version: '',
        python_version: '',
        apache_version: '',
        mpm_name: '',
        ppid: 0,
        samples: new Ring(),
        lastT: null,
        firstSeen: this.now,
        sp: 1,
        slowThr: null,
        switchInt: null,
        rev: 0,
        lastSeq: null,
        dropsServer: 0,
        dropsClient: 0,
        otherSince: 0,
        datagrams: 0,
        gc: new Map(), // interpreter → GC series (newGcSeries)
        gcEvents: new GcEventRing(GC_EVENTS_MAX), // newest raw events (timeline dots)
        gcRev: 0,
        startedAt: null,
        stoppingAt: null,
        stoppedAt: null,
        lastActivity: this.now,
      };
      this.procs.set(pid, p);
      this.rev.procs++;
    }
    return p;
  }

  latchIdentity(p, f) {
    let changed = false;
    for (const k of ['hostname', 'mod_wsgi_version', 'python_version', 'apache_version', 'mpm_name']) {
      if (f[k] && p[k] !== f[k]) {
        p[k] = f[k];
        changed = true;
      }
    }
    if (f.process_group && p.group !== f.process_group) {
      p.group = f.process_group;
      changed = true;
    }
    if (f.process_parent_pid > 0 && p.ppid !== f.process_parent_pid) {
      p.ppid = f.process_parent_pid;
      changed = true;
    }
    if (changed) this.rev.procs++;
  }

  advance(t) {
    if (Number.isFinite(t) && t > this.now) this.now = t;
  }

  /** Applies one server message; returns true if it changed anything. */
  apply(msg) {
    switch (msg.type) {
      case 'snapshot':
        this.applySnapshot(msg);
        return true;
      case 'sample':
        this.messagesSince++;
        this.addSample(msg, true);
        return true;
      case 'lifecycle':
        this.messagesSince++;
        this.addLifecycle(msg.event, true);
        return true;
      case 'gc_snapshot':
        this.messagesSince++;
        this.addGcSnapshot(msg.pid, msg.interpreter ?? '', msg.stamp, msg.fields || {}, true);
        return true;
      case 'gc_event':
        this.messagesSince++;
        this.addGcEvent(msg.pid, msg.interpreter ?? '', msg.stamp, msg.fields || {}, true);
        return true;
      case 'slow_request':
        this.messagesSince++;
        this.upsertSlow(msg.key, msg.entry, msg.stamp, true);
        return true;
      case 'slow_clear':
        this.slow.clear();
        for (const { key, entry } of msg.kept || []) this.upsertSlow(key, entry, null, false);
        this.rev.slow++;
        this.rev.slowClear++;
        return true;
      case 'batch':
        return this.applyBatch(msg);
      case 'stats':
        if (Number.isFinite(msg.total_received)) {
          this.datagramsAtSnapshot = msg.total_received;
          this.messagesSince = 0;
        }
        if (Number.isFinite(msg.decode_errors)) this.decodeErrors = msg.decode_errors;
        return true;
      default:
        return false;
    }
  }

  applySnapshot(m) {
    this.reset();
    this.datagramsAtSnapshot = m.total_received || 0;
    this.decodeErrors = m.decode_errors || 0;
    this.seqGapsServer = 0;
    this.historyTruncated = !!m.history_truncated;
    for (const k of ['receive_pauses', 'slow_evicted', 'history_evicted_for_bytes', 'seq_gaps']) if (k in m) this.extra[k] = m[k];
    // "now" first, so retention applies to the snapshot's own history.
    for (const pr of m.processes || []) {
      const s = pr.samples;
      if (s && s.length) this.advance(s[s.length - 1].stamp);
    }
    for (const ev of m.lifecycle_events || []) this.advance(ev.stamp);
    const procs = (m.processes || []).slice().sort((a, b) => a.pid - b.pid);
    for (const pr of procs) {
      const p = this.proc(pr.pid);
      this.latchIdentity(p, {
        hostname: pr.hostname,
        process_group: pr.process_group,
        mod_wsgi_version: pr.mod_wsgi_version,
        python_version: pr.python_version,
        apache_version: pr.apache_version,
        mpm_name: pr.mpm_name,
        process_parent_pid: pr.process_parent_pid,
      });
      p.dropsServer = pr.drops || 0;
      p.datagrams = pr.datagrams || 0;
      for (const s of pr.samples || []) this.addSample(s, false);
      // Seq gaps are counted from the first live sample after a snapshot.
      p.lastSeq = null;
      for (const [interp, list] of Object.entries(pr.gc_snapshots || {})) {
        for (const g of list) this.addGcSnapshot(pr.pid, interp, g.stamp, g.fields || {}, false);
      }
      for (const g of pr.gc_events || []) this.addGcEvent(pr.pid, g.interpreter ?? '', g.stamp, g.fields || {}, false);
      this.seqGapsServer += p.dropsServer;
    }
    for (const ev of m.lifecycle_events || []) this.addLifecycle(ev, false);
    for (const { key, entry } of m.slow_requests || []) this.upsertSlow(key, entry, null, false);
    if (Number.isFinite(m.batch_seq)) {
      this.batched = true;
      this.batchFrom = m.batch_seq;
      if (Number.isFinite(m.seq_gaps)) this.seqGapsServer = m.seq_gaps;
    }
    this.housekeep();
  }

  /**
   * Applies one frame of the batched stream (`/ws?batch=MS`) in one pass:
   * the per-datagram messages it carries (lifecycle, samples, GC
   * snapshots) through the same paths as live messages, GC events as
   * per-second aggregates into the series' 10 s bins and pause histograms,
   * the timeline's events into the rings, then slow-request changes and
   * the server's counters. Frames older than the snapshot are skipped.
   * Returns true if it changed anything.
   */
  applyBatch(m) {
    const steps = this.batchSteps(m);
    let r;
    while (!(r = steps.next()).done);
    return r.value;
  }

  /**
   * applyBatch in steps (a generator: each next() applies one part, about
   * BATCH_STEP_SAMPLES samples or one kind of record; its return value is
   * applyBatch's), so the page can spread a large frame over several tasks.
   * The counters come last: a frame is applied when `datagrams` moves.
   */
  *batchSteps(m) {
    if (!(m.seq >= this.batchFrom)) return false;
    this.batched = true;
    const pids = this.batchPids;
    pids.clear();
    if (m.slow_clear) this.apply(m.slow_clear);
    for (const l of m.lifecycle || []) this.addLifecycle(l.event, 'batch');
    const pairs = m.histograms === 'pairs';
    const samples = m.samples || [];
    for (let i = 0; i < samples.length; i++) {
      if (i > 0 && i % BATCH_STEP_SAMPLES === 0) yield;
      const s = samples[i];
      this.addSample(s, 'batch', pairs);
      pids.add(s.pid);
    }
    yield;
    for (const g of m.gc_snapshots || []) this.addGcSnapshot(g.pid, g.interpreter ?? '', g.stamp, g.fields || {}, 'batch');
    for (const a of m.gc || []) this.addGcAggregate(a);
    yield;
    // Timeline events: a process's ring is kept in start order across its
    // interpreters (the frame lists them series by series).
    const byPid = new Map();
    for (const e of m.gc_events || []) {
      const p = this.proc(e.pid);
      const gs = this.gcSeries(p, e.interpreter ?? '');
      if (e.omitted > 0 && Number.isFinite(e.cut) && e.cut > gs.rawFrom) gs.rawFrom = e.cut;
      let l = byPid.get(p);
      if (!l) byPid.set(p, (l = []));
      const t = e.t || [];
      for (let i = 0; i < t.length; i++) l.push([t[i], e.d[i] || 0, e.g[i] || 0, gs.sid]);
    }
    for (const [p, l] of byPid) {
      if (l.length > 1) l.sort((a, b) => a[0] - b[0]);
      for (const [t, d, g, sid] of l) p.gcEvents.push(t, d, g, sid);
      p.gcRev++;
    }
    for (const s of m.slow_requests || []) this.upsertSlow(s.key, s.entry, s.stamp, 'batch');
    if (Number.isFinite(m.total_received)) {
      this.datagramsAtSnapshot = m.total_received;
      this.messagesSince = 0;
    }
    if (Number.isFinite(m.decode_errors)) this.decodeErrors = m.decode_errors;
    if (Number.isFinite(m.seq_gaps)) this.seqGapsServer = m.seq_gaps;
    if (m.datagrams > 0) this.lastArrival = performance.now();
    if ((m.gc && m.gc.length) || byPid.size) this.rev.gc++;
    this.maybeHousekeep();
    return true;
  }

  /** GC events of one (pid, interpreter, start second) from a batched frame. */
  addGcAggregate(a) {
    const p = this.proc(a.pid);
    const gs = this.gcSeries(p, a.interpreter ?? '');
    const n = a.n || [0, 0, 0];
    const o = this.gcSumBin(gs, a.sec);
    if (o >= 0) {
      const b = gs.sec;
      b[o + 1] += a.time || 0;
      for (let g = 0; g < 3; g++) b[o + 2 + g] += n[g] || 0;
      if (a.max > b[o + 5]) b[o + 5] = a.max;
    }
    const h = this.gcHistBin(gs, a.sec);
    const pauses = a.pauses || [];
    if (h >= 0) for (let i = 0; i + 1 < pauses.length; i += 2) if (pauses[i] >= 0 && pauses[i] < NBUCKETS) gs.hist[h + pauses[i]] += pauses[i + 1];
    p.gcRev++;
  }

  /**
   * Offset in gs.sec of the 10 s bin holding start time `start` (a slot
   * holding an older bin is reused), or -1 when the slot holds a newer bin
   * (the event is out of the ring's reach).
   */
  gcSumBin(gs, start) {
    const sec = Math.floor(start / GC_SUM_BIN_S) * GC_SUM_BIN_S;
    const o = ((Math.floor(sec / GC_SUM_BIN_S) % GC_SEC_SLOTS) + GC_SEC_SLOTS) % GC_SEC_SLOTS * GC_SEC_STRIDE;
    const b = gs.sec;
    if (!(b[o] >= sec)) {
      b[o] = sec;
      b.fill(0, o + 1, o + GC_SEC_STRIDE);
    }
    return b[o] === sec ? o : -1;
  }

  /** Offset in gs.hist of the pause histogram holding start time `start`, or -1 (as gcSumBin). */
  gcHistBin(gs, start) {
    const s60 = Math.floor(start / GC_HIST_BIN_S) * GC_HIST_BIN_S;
    const k = ((Math.floor(s60 / GC_HIST_BIN_S) % GC_HIST_SLOTS) + GC_HIST_SLOTS) % GC_HIST_SLOTS;
    if (!(gs.histSec[k] >= s60)) {
      gs.histSec[k] = s60;
      gs.hist.fill(0, k * NBUCKETS, (k + 1) * NBUCKETS);
    }
    return gs.histSec[k] === s60 ? k * NBUCKETS : -1;
  }

  /** `pairs`: the histograms are `[index, count, ...]` of their non-zero buckets (batched frames). */
  addSample(m, live, pairs = false) {
    if (m.kind && m.kind !== 'request_metrics') {
      // Other periodic kinds are never sent by mod_wsgi 6.x; keep the counters right anyway.
      return;
    }
    const p = this.proc(m.pid);
    const f = m.fields || {};
    this.latchIdentity(p, f);
    if (live === true) {
      if (p.lastSeq != null && m.seq > p.lastSeq + 1 + p.otherSince) {
        p.dropsClient += m.seq - p.lastSeq - 1 - p.otherSince;
      }
      p.lastSeq = m.seq;
      p.otherSince = 0;
      p.datagrams++;
      this.lastArrival = performance.now();
    } else {
      // Snapshot, or a batched frame (the server counts the gaps).
      p.lastSeq = m.seq;
      if (live) p.datagrams++;
    }
    const d = deriveSample(m);
    this.advance(d.t);
    if (d.period > 0) p.sp = d.period;
    if (d.slowThr != null) p.slowThr = d.slowThr;
    if (d.switchInt != null) p.switchInt = d.switchInt;
    if (d.t < this.now - RETAIN_S) return; // too old to matter
    pushSorted(p.samples, d);
    if (p.lastT == null || d.t > p.lastT) p.lastT = d.t;
    p.lastActivity = Math.max(p.lastActivity, d.t);
    p.rev++;
    this.rev.samples++;
    this.addToBins(p, d.t, f, pairs);
    const cut = this.now - RETAIN_S;
    p.samples.dropWhile((x) => x.t < cut);
    if (live) this.maybeHousekeep();
  }

  addToBins(p, t, f, pairs) {
    if (t < this.now - HIST_RETAIN_S) return;
    const g = p.group || '';
    this.groupsSeen.add(g);
    let rings = this.bins.get(g);
    if (!rings) {
      // fine: 1 s bins for the last FINE_S seconds; coarse: 10 s bins up to
      // HIST_RETAIN_S, so memory stops growing after the first minute.
      rings = { fine: new Ring(), coarse: new Ring() };
      this.bins.set(g, rings);
    }
    const sec = Math.floor(t);
    let bin;
    if (sec <= this.now - FINE_S) {
      bin = this.coarseBin(rings, sec);
      if (!bin) return;
    } else {
      bin = rings.fine.last();
      if (!bin || bin.sec !== sec) {
        if (bin && bin.sec > sec) {
          bin = rings.fine.view().find((b) => b.sec === sec);
          if (!bin) return;
        } else {
          bin = newBin(sec);
          rings.fine.push(bin);
        }
      }
    }
    let any = false;
    for (const name of HIST_FIELDS) {
      const b = f[name + '_buckets'];
      if (Array.isArray(b) && (b.length || pairs)) {
        let h = bin.h[name];
        if (!h) h = bin.h[name] = new Uint32Array(NBUCKETS);
        if (pairs) {
          for (let i = 0; i + 1 < b.length; i += 2) if (b[i] >= 0 && b[i] < NBUCKETS) h[b[i]] += b[i + 1];
        } else {
          const n = Math.min(b.length, NBUCKETS);
          for (let i = 0; i < n; i++) h[i] += b[i];
        }
        any = true;
      }
      const mn = f[name + '_min'];
      const mx = f[name + '_max'];
      if (typeof mn === 'number' && (bin.min[name] == null || mn < bin.min[name])) bin.min[name] = mn;
      if (typeof mx === 'number' && (bin.max[name] == null || mx > bin.max[name])) bin.max[name] = mx;
    }
    if (typeof f.switch_interval === 'number' && t >= bin.switchT) {
      bin.switchInt = f.switch_interval;
      bin.switchT = t;
    }
    if (any) this.rev.hist++;
    // fold fine bins that left the fine horizon into coarse bins
    const fineCut = Math.floor(this.now - FINE_S);
    rings.fine.dropWhile((b) => {
      if (b.sec > fineCut) return false;
      const c = this.coarseBin(rings, b.sec);
      if (c) mergeBin(c, b);
      return true;
    });
    const cut = Math.floor(this.now - HIST_RETAIN_S);
    rings.coarse.dropWhile((b) => b.sec + COARSE_S <= cut);
  }

  coarseBin(rings, sec) {
    const c0 = Math.floor(sec / COARSE_S) * COARSE_S;
    let c = rings.coarse.last();
    if (!c || c.sec < c0) {
      c = newBin(c0);
      rings.coarse.push(c);
      return c;
    }
    if (c.sec === c0) return c;
    return rings.coarse.view().find((b) => b.sec === c0) || null;
  }

  /**
   * Histogram of field `name` over the last `windowS` seconds for groups
   * accepted by `groupOk(group)`: {counts, n, min, max, switchInt}.
   */
  histogram(name, windowS, groupOk) {
    const counts = new Float64Array(NBUCKETS);
    let min = null;
    let max = null;
    let switchInt = null;
    let switchT = -Infinity;
    const from = Math.floor(this.now - windowS) + 1;
    const add = (bin) => {
      const h = bin.h[name];
      if (h) for (let k = 0; k < NBUCKETS; k++) counts[k] += h[k];
      const mn = bin.min[name];
      const mx = bin.max[name];
      if (mn != null && (min == null || mn < min)) min = mn;
      if (mx != null && (max == null || mx > max)) max = mx;
      if (bin.switchInt != null && bin.switchT > switchT) {
        switchInt = bin.switchInt;
        switchT = bin.switchT;
      }
    };
    for (const [g, rings] of this.bins) {
      if (!groupOk(g)) continue;
      // coarse bins count when they start inside the window (10 s granularity beyond the last minute)
      for (let i = rings.coarse.lowerBound(from, (b) => b.sec); i < rings.coarse.length; i++) add(rings.coarse.at(i));
      for (let i = rings.fine.lowerBound(from, (b) => b.sec); i < rings.fine.length; i++) add(rings.fine.at(i));
    }
    let n = 0;
    for (let k = 0; k < NBUCKETS; k++) n += counts[k];
    return { counts, n, min, max, switchInt };
  }

  addLifecycle(ev, live) {
    if (!ev || !Number.isFinite(ev.pid)) return;
    this.advance(ev.stamp);
    const p = this.procs.get(ev.pid) || (ev.kind === 'process_started' ? this.proc(ev.pid) : null);
    if (p) {
      if (live) {
        p.otherSince++;
        p.datagrams++;
      }
      if (ev.kind === 'process_started') {
        // A pid can be reused (or a capture replayed in a loop): a new start
        // ends the previous lifetime.
        if (p.stoppedAt != null && ev.stamp >= p.stoppedAt) {
          p.stoppedAt = null;
          p.stoppingAt = null;
        }
        p.startedAt = ev.stamp;
        this.latchIdentity(p, ev);
      } else if (ev.kind === 'process_stopping') p.stoppingAt = ev.stamp;
      else if (ev.kind === 'process_stopped') p.stoppedAt = ev.stamp;
      p.lastActivity = Math.max(p.lastActivity, ev.stamp);
      this.rev.procs++;
    }
    if (live) this.lastArrival = performance.now();
    this.lifecycle.push(ev);
    const cut = this.now - LIFECYCLE_AGE_S;
    this.lifecycle.dropWhile((e) => e.stamp < cut);
    if (this.lifecycle.length > LIFECYCLE_MAX) {
      const excess = this.lifecycle.length - LIFECYCLE_MAX;
      let k = 0;
      this.lifecycle.dropWhile(() => k++ < excess);
    }
    // Per-pid record for the Gantt timeline.
    let r = this.life.get(ev.pid);
    if (r && ev.kind === 'process_started' && r.stopped != null && ev.stamp >= r.stopped) r = null; // pid reused
    if (!r) {
      r = {
        pid: ev.pid, started: null, stopping: null, stopped: null, group: '', ppid: 0, hostname: '',
        reason: '', uptime: null, requests: null, inflightDecision: null, inflightExit: null,
        graceful: null, firstT: ev.stamp, lastT: ev.stamp,
      };
      this.life.set(ev.pid, r);
    }
    if (ev.process_group) r.group = ev.process_group;
    if (ev.hostname) r.hostname = ev.hostname;
    if (ev.process_parent_pid > 0) r.ppid = ev.process_parent_pid;
    r.firstT = Math.min(r.firstT, ev.stamp);
    r.lastT = Math.max(r.lastT, ev.stamp);
    if (ev.kind === 'process_started') r.started = ev.stamp;
    else if (ev.kind === 'process_stopping') {
      r.stopping = ev.stamp;
      r.inflightDecision = ev.active_requests_at_decision ?? 0;
      if (ev.shutdown_reason) r.reason = ev.shutdown_reason;
    } else if (ev.kind === 'process_stopped') {
      r.stopped = ev.stamp;
      r.uptime = ev.process_uptime;
      r.requests = ev.lifetime_request_count;
      r.inflightExit = ev.active_requests_at_exit;
      r.graceful = ev.graceful_drain;
      if (ev.shutdown_reason) r.reason = ev.shutdown_reason;
    }
    r.category = r.stopping != null || r.stopped != null ? reasonCategory(r.reason) : null;
    this.rev.life++;
  }

  addGcSnapshot(pid, interp, stamp, f, live) {
    const p = this.proc(pid);
    if (live) {
      p.otherSince++;
      p.datagrams++;
      this.lastArrival = performance.now();
    }
    const gs = this.gcSeries(p, interp);
    const j = this.gcSnaps.push(stamp, gs.sid, f);
    if (gs.latestT == null || stamp >= gs.latestT) {
      gs.latest = j;
      gs.latestT = stamp;
    }
    gs.snaps++;
    p.lastActivity = Math.max(p.lastActivity, stamp);
    p.gcRev++;
    this.rev.gc++;
  }

  addGcEvent(pid, interp, stamp, f, live) {
    const p = this.proc(pid);
    if (live) {
      p.otherSince++;
      p.datagrams++;
      this.lastArrival = performance.now();
    }
    const gs = this.gcSeries(p, interp);
    const ev = {
      start: typeof f.gc_event_start_stamp === 'number' ? f.gc_event_start_stamp : stamp,
      dur: f.gc_event_duration || 0,
      gen: f.gc_event_generation || 0,
    };
    // Raw events only for the newest dots (a fixed typed ring per process);
    // counts, durations and the pause distribution go to per-second /
    // per-10 s bins, so a GC-heavy process (hundreds of collections per
    // second) costs O(1) per event and a fixed amount of memory.
    p.gcEvents.push(ev.start, ev.dur, ev.gen, gs.sid);
    // 10 s sums: slot by bin start; a slot holding an older bin is reused,
    // an event older than the slot's bin (out of the ring's reach) is dropped.
    const o = this.gcSumBin(gs, ev.start);
    if (o >= 0) {
      const b = gs.sec;
      b[o + 1] += ev.dur;
      b[o + 2 + (ev.gen === 2 ? 2 : ev.gen === 1 ? 1 : 0)]++;
      if (ev.dur > b[o + 5]) b[o + 5] = ev.dur;
    }
    const h = this.gcHistBin(gs, ev.start);
    if (h >= 0) gs.hist[h + bucketIndex(ev.dur * 1000 * GC_PAUSE_SCALE)]++;
    p.gcRev++;
    this.rev.gc++;
  }

  /** The (pid, interpreter) GC series, created on first use. */
  gcSeries(p, interp) {
    const name = typeof interp === 'string' ? interp : '';
    let gs = p.gc.get(name);
    if (!gs) {
      gs = newGcSeries(++this.gcSeriesCount, name);
      p.gc.set(name, gs);
    }
    return gs;
  }

  upsertSlow(key, entry, stamp, live) {
    if (!entry) return;
    const ks = slowKeyString(key);
    const seen = Number.isFinite(stamp) ? stamp : (entry.start_stamp || 0) + (entry.duration || 0);
    if (live) {
      this.advance(stamp);
      const p = this.procs.get(entry.pid);
      if (p) {
        p.otherSince++;
        p.datagrams++;
      }
      this.lastArrival = performance.now();
    }
    this.slow.delete(ks); // re-insert: Map order = last update order
    this.slow.set(ks, { key, ks, entry, seen });
    if (this.slow.size > SLOW_MAX) {
      const first = this.slow.keys().next().value;
      this.slow.delete(first);
    }
    this.rev.slow++;
  }

  /** Slow-entry TTLs (the reference UI's), in reporter time; entries of exited processes age out too. */
  pruneSlow() {
    let changed = false;
    for (const [ks, s] of this.slow) {
      const p = this.procs.get(s.entry.pid);
      const sp = p ? p.sp : 1;
      const ttl = s.entry.state === 1 ? Math.max(SLOW_COMPLETED_KEEP_S, 5 * sp) : Math.max(5, 3 * sp);
      let dead = this.now - s.seen > ttl;
      if (!dead && s.entry.state !== 1 && p && p.stoppedAt != null && this.now - p.stoppedAt > STOPPED_GRACE_S) dead = true;
      if (dead) {
        this.slow.delete(ks);
        changed = true;
      }
    }
    if (changed) this.rev.slow++;
    return changed;
  }

  maybeHousekeep() {
    const sec = Math.floor(this.now);
    if (sec !== this.lastHousekeep) this.housekeep();
  }

  /** Once per reporter second: forget long-dead processes and old lifecycle records. */
  housekeep() {
    this.lastHousekeep = Math.floor(this.now);
    for (const [pid, p] of this.procs) {
      if (!this.isLive(p) && this.now - p.lastActivity > RETAIN_S) {
        this.procs.delete(pid);
        this.rev.procs++;
        continue;
      }
      // Trimming only drops samples older than every window: no revision bump,
      // so cached statistics stay valid.
      const cut = this.now - RETAIN_S;
      p.samples.dropWhile((x) => x.t < cut);
    }
    if (this.life.size > 0) {
      const cut = this.now - LIFECYCLE_AGE_S;
      for (const [pid, r] of this.life) {
        if (r.lastT < cut && !this.procs.has(pid)) {
          this.life.delete(pid);
          this.rev.life++;
        }
      }
      if (this.life.size > LIFE_RECORDS_MAX) {
        const sorted = [...this.life.values()].sort((a, b) => a.lastT - b.lastT);
        for (const r of sorted.slice(0, this.life.size - LIFE_RECORDS_MAX)) this.life.delete(r.pid);
        this.rev.life++;
      }
    }
    this.pruneSlow();
  }

  staleAfter(p) {
    return Math.max(10, 3 * (p.sp || 1));
  }

  /** Live: recent samples and no STOPPED since its (latest) start. */
  isLive(p) {
    if (p.stoppedAt != null) return false;
    const last = p.lastT ?? p.startedAt;
    if (last == null) return false;
    return this.now - last <= this.staleAfter(p);
  }

  /** Sent STOPPED at most STOPPED_GRACE_S ago: listed as stopped, counted nowhere. */
  isRecentlyStopped(p) {
    return p.stoppedAt != null && this.now - p.stoppedAt <= STOPPED_GRACE_S;
  }

  /** Samples of p with t ≥ from (a plain array). */
  samplesSince(p, from) {
    const i0 = p.samples.lowerBound(from, (d) => d.t);
    const out = [];
    for (let i = i0; i < p.samples.length; i++) out.push(p.samples.at(i));
    return out;
  }
}
