// Unit tests of the pure JS modules (node --test), fed with the anchor
// corpus as the server would send it. Run: node --test ingester/static/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store, RETAIN_S, HIST_FIELDS, BATCH_STEP_SAMPLES } from '../js/store.js';
import { processStats, findSlowRuns, classify, deriveSample } from '../js/stats.js';
import { percentile, bucketIndex, bucketLower, bucketUpper } from '../js/hist.js';
import { fmtMs, humanBytes, fmtCount, fmtAxis } from '../js/format.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const corpusDir = process.env.TELEMETRY_CORPUS_DIR || path.join(here, '../../../tests/fixtures/corpus');

function loadCorpus() {
  const text = fs.readFileSync(path.join(corpusDir, 'anchor-6.1.1-mixed.json'), 'utf8');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l.replace(/,\s*$/, '')));
}

const SLOW = ['pid', 'thread_id', 'server_pid', 'log_id', 'method', 'scheme', 'hostname', 'script_name', 'path_info', 'peer_ip', 'protocol', 'user_agent', 'start_stamp', 'duration', 'state', 'input_bytes', 'input_reads', 'output_bytes', 'output_writes', 'cpu_user_time', 'cpu_system_time', 'server_time', 'queue_time', 'daemon_time', 'application_time', 'gil_wait_time', 'gil_wait_count', 'input_read_time', 'output_write_time', 'active_at_start', 'active_at_completion', 'status'];

/** A decoded corpus record as the ingester's WebSocket message (ingester/src/ingest/json/live.rs). */
function toMessage(r, shift = 0) {
  const f = r.fields;
  const stamp = r.stamp + shift;
  switch (r.kind_name) {
    case 'request_metrics':
      return { type: 'sample', kind: r.kind_name, pid: r.pid, seq: r.seq, stamp, fields: f };
    case 'process_started':
    case 'process_stopping':
    case 'process_stopped':
      return {
        type: 'lifecycle',
        event: {
          kind: r.kind_name, pid: r.pid, stamp, hostname: f.hostname || '', process_group: f.process_group || '',
          process_parent_pid: f.process_parent_pid || 0, shutdown_reason: f.shutdown_reason || '',
          process_uptime: f.process_uptime || 0, lifetime_request_count: f.lifetime_request_count || 0,
          active_requests_at_decision: f.active_requests_at_decision || 0, active_requests_at_exit: f.active_requests_at_exit || 0,
          graceful_drain: f.graceful_drain || 0,
        },
      };
    case 'gc_snapshot':
    case 'gc_event':
      return { type: r.kind_name, pid: r.pid, interpreter: f.interpreter_name || '', stamp, fields: f };
    case 'slow_request': {
      const entry = {};
      for (const k of SLOW) {
        const w = k === 'state' ? 'slow_record_state' : k === 'pid' ? null : 'slow_' + k;
        entry[k] = k === 'pid' ? r.pid : f[w] ?? (typeof f[w] === 'string' ? '' : 0);
      }
      if (entry.start_stamp) entry.start_stamp += shift;
      const key = entry.log_id ? [r.pid, entry.log_id] : [r.pid, entry.thread_id, entry.start_stamp];
      return { type: 'slow_request', key, entry, stamp };
    }
    default:
      return null;
  }
}

const corpus = loadCorpus();

function replay(shift = 0, count = corpus.length) {
  const st = new Store();
  for (const r of corpus.slice(0, count)) {
    const m = toMessage(r, shift);
    if (m) st.apply(m);
  }
  return st;
}

const livePids = (st) => [...st.procs.values()].filter((p) => st.isLive(p)).map((p) => p.pid).sort();
const stoppedPids = (st) => [...st.procs.values()].filter((p) => st.isRecentlyStopped(p)).map((p) => p.pid).sort();

test('the whole corpus applies; counters and live set at the end', () => {
  const st = replay();
  assert.equal(st.datagrams, 11888);
  assert.equal(st.procs.size, 22);
  assert.equal(st.seqGaps, 0, 'no gaps: non-sample datagrams fill the shared seq');
  // The capture ends with every process stopping: none is live, the five
  // that sent STOPPED in its last 10 s are listed as stopped.
  assert.deepEqual(livePids(st), []);
  assert.deepEqual(stoppedPids(st), [20710, 20711, 20712, 20713, 20714]);
  assert.equal(st.life.size, 22);
  assert.equal(st.lifecycle.length, 66);
  const p = st.procs.get(20713);
  assert.equal(p.group, '');
  assert.deepEqual([...p.gc.keys()].sort(), ['', '127.0.0.1:18000|/embedded']);
  // the newest GC snapshot of each interpreter is in the store-wide ring
  for (const gs of p.gc.values()) {
    const j = st.gcSnaps.latestOf(gs);
    assert.ok(j >= 0, 'newest snapshot kept');
    assert.equal(st.gcSnaps.object(j).f.gc_threshold0, 700);
  }
  assert.equal(st.procs.get(20710).group, 'app');
});

test('windows follow the reporter clock, not the browser clock (skew-proof)', () => {
  const skewed = replay(-86400 * 365); // a year in the past
  assert.deepEqual(stoppedPids(skewed), [20710, 20711, 20712, 20713, 20714]);
  // Before the final shutdown (datagram 11,787 is its first STOPPING) the
  // same five are live, and three stopped less than 10 s earlier.
  const before = replay(-86400 * 365, 11787);
  assert.deepEqual(livePids(before), [20710, 20711, 20712, 20713, 20714]);
  assert.deepEqual(stoppedPids(before), [20235, 20269, 20610]);
});

test('a process that sent STOPPED is not live, and listed as stopped for 10 s', () => {
  const st = replay(0, 11787);
  assert.ok(st.isLive(st.procs.get(20714)));
  const rest = corpus.slice(11787);
  const at = rest.findIndex((r) => r.pid === 20714 && r.kind_name === 'process_stopped');
  for (const r of rest.slice(0, at + 1)) {
    const m = toMessage(r);
    if (m) st.apply(m);
  }
  const p = st.procs.get(20714);
  assert.ok(!st.isLive(p), 'STOPPED ends liveness at once');
  assert.ok(st.isRecentlyStopped(p));
  const tick = (t) => st.apply({ type: 'sample', kind: 'request_metrics', pid: 99, seq: 1e6 + Math.round(t), stamp: t, fields: { sample_period: 1, request_count: 0 } });
  tick(p.stoppedAt + 10);
  assert.ok(st.isRecentlyStopped(p));
  tick(p.stoppedAt + 10.5);
  assert.ok(!st.isRecentlyStopped(p) && !st.isLive(p), 'gone after 10 s');
});

test('a missing datagram is counted as a sequence gap', () => {
  const st = new Store();
  let dropped = false;
  for (const r of corpus) {
    if (!dropped && r.pid === 20710 && r.kind_name === 'gc_snapshot' && r.seq > 10) {
      dropped = true;
      continue;
    }
    const m = toMessage(r);
    if (m) st.apply(m);
  }
  assert.equal(st.procs.get(20710).dropsClient, 1);
  assert.equal(st.seqGaps, 1);
});

test('dead processes leave live views after the grace period and are forgotten later', () => {
  const st = replay();
  const last = st.now;
  const tick = (t, pid) => st.apply({ type: 'sample', kind: 'request_metrics', pid, seq: 1e6 + Math.round(t), stamp: t, fields: { sample_period: 1, request_count: 0 } });
  for (let t = last + 1; t <= last + 12; t++) tick(t, 99);
  assert.deepEqual(livePids(st), [99]);
  assert.deepEqual(stoppedPids(st), []);
  assert.ok(st.procs.has(20710), 'samples kept for a while');
  for (let t = last + 13; t <= last + RETAIN_S + 20; t++) tick(t, 99);
  assert.ok(!st.procs.has(20710), 'dead process forgotten');
  assert.ok(st.life.has(20710), 'its lifecycle record stays for the Processes tab');
});

test('histogram bins sum the buckets of every sample', () => {
  const st = replay();
  let expected = 0;
  for (const r of corpus) if (r.kind_name === 'request_metrics' && r.fields.request_time_buckets) expected += r.fields.request_time_buckets.reduce((a, b) => a + b, 0);
  const h = st.histogram('request_time', 600, () => true);
  assert.equal(h.n, expected);
  const emb = st.histogram('request_time', 600, (g) => g === '');
  const app = st.histogram('request_time', 600, (g) => g === 'app');
  assert.ok(emb.n > 0 && app.n > 0 && emb.n + app.n < h.n);
  assert.ok(h.min > 0 && h.max > h.min);
});

test('means are request-weighted; idle ticks do not pull them down', () => {
  const mk = (t, rc, app) => ({ t, period: 1, rc, hasApp: app != null, app: app ?? 0, srv: 0, que: null, dae: null, resp: app, cap: 0.5, cpu: 0.2, rss: 0, slots: 0, busySum: 0, cpuSlotSum: 0, inB: 0, outB: 0, inReads: 0, outWrites: 0, s1: 0, s2: rc, s3: 0, s4: 0, s5: 0, thMax: 4 });
  const s = processStats([mk(1, 100, 0.01), mk(2, 0, null), mk(3, 300, 0.03)], 0, 10, 0);
  assert.ok(Math.abs(s.respMs - 25) < 1e-9, `respMs ${s.respMs}`);
  assert.equal(s.rpm, (400 / 3) * 60);
  assert.equal(classify(s).state, 'normal');
});

test('slow runs: monotone elapsed, completion tick via max, max-only runs', () => {
  assert.deepEqual(findSlowRuns([0, 0.6, 1.6, 2.6, 0], [0, 0, 0, 0, 2.9], 0.5), [{ first: 1, last: 4, viaMax: false }]);
  assert.deepEqual(findSlowRuns([0, 0.6, 0.7, 0.6], null, 0.5), [{ first: 1, last: 2, viaMax: false }, { first: 3, last: 3, viaMax: false }]);
  assert.deepEqual(findSlowRuns([0, 0, 0], [0, 0.7, 0.1], 0.5), [{ first: 1, last: 1, viaMax: true }]);
});

test('the slow runs of a window are counted over every slot, when read', () => {
  // Two slots: slot 0 runs 0.6 → 1.6 s and finishes (max 1.9); slot 1 has
  // a request of 1.2 s seen only as a max; a third sample is idle.
  const mk = (t, elapsed, maxDur, period = 1) => deriveSample({ stamp: t, seq: t, fields: { sample_period: period, request_threads_current_elapsed: elapsed, request_threads_max_duration: maxDur } });
  const list = [mk(1, [0.6, 0], [0, 0]), mk(2, [1.6, 0], [0, 1.2]), mk(3, [0, 0], [1.9, 0]), mk(4, [0, 0], [0, 0])];
  assert.equal(processStats(list, 0, 10, 0.5).slowRuns, 2);
  assert.equal(processStats(list, 0, 10, 1).slowRuns, 2);
  assert.equal(processStats(list, 0, 10, 2).slowRuns, 0);
  assert.equal(processStats(list, 3.5, 10, 0.5).slowRuns, 0, 'only the idle sample');
  assert.equal(processStats(list, 0, 10, 0).slowRuns, 0, 'no threshold');
  assert.deepEqual(JSON.parse(JSON.stringify(processStats(list, 0, 10, 0.5))).slowRuns, 2, 'enumerable');
});

test('histogram grid and percentiles', () => {
  assert.equal(bucketIndex(0.5), 0);
  assert.equal(bucketIndex(1.25), 1);
  assert.equal(bucketIndex(4), 8);
  assert.equal(bucketIndex(65536), 64);
  assert.equal(bucketLower(13), 10);
  assert.equal(bucketUpper(12), 10);
  const c = new Array(65).fill(0);
  c[8] = 10;
  assert.equal(percentile(c, 0.5), 4.5);
  assert.equal(percentile(new Array(65).fill(0), 0.5), null);
  c[64] = 1000;
  assert.equal(percentile(c, 0.99), 65536);
});

test('formatting', () => {
  assert.equal(fmtMs(Infinity), '>65s');
  assert.equal(fmtMs(1500), '1.5s');
  assert.equal(fmtMs(12.4), '12ms');
  assert.equal(fmtMs(1.24), '1.2ms');
  assert.equal(humanBytes(1000), '1000 B');
  assert.equal(humanBytes(1536), '1.50 KB');
  assert.equal(humanBytes(50 * 1048576), '50.0 MB');
  assert.equal(fmtCount(1234), '1.2k');
  assert.equal(fmtCount(12345), '12k');
  assert.equal(fmtAxis(0.25), '0.25');
});

test('a pid that starts again after STOPPED is live again', () => {
  const st = new Store();
  const ev = (kind, stamp) => ({ type: 'lifecycle', event: { kind, pid: 7, stamp, process_group: 'g', shutdown_reason: 'maximum_requests' } });
  const sample = (t) => ({ type: 'sample', kind: 'request_metrics', pid: 7, seq: t, stamp: t, fields: { sample_period: 1, request_count: 1 } });
  st.apply(ev('process_started', 100));
  st.apply(sample(101));
  st.apply(ev('process_stopping', 102));
  st.apply(ev('process_stopped', 103));
  for (let t = 104; t < 130; t++) st.apply(sample(t)); // keep "now" moving
  st.apply(ev('process_started', 130));
  st.apply(sample(131));
  assert.ok(st.isLive(st.procs.get(7)));
  assert.equal(st.life.get(7).stopped, null, 'new lifetime record');
});

test('GC pauses: binned with sub-millisecond resolution, counted once per interpreter', async () => {
  const { GC_PAUSE_SCALE, gcSecBins, gcHistBins } = await import('../js/store.js');
  const st = new Store();
  for (let i = 0; i < 100; i++) {
    const interp = i % 2 ? 'sub' : '';
    st.apply({ type: 'gc_event', pid: 5, interpreter: interp, stamp: 1000 + i / 10, fields: { gc_event_start_stamp: 1000 + i / 10, gc_event_duration: 0.0001, gc_event_generation: 0 } });
  }
  const p = st.procs.get(5);
  let n = 0;
  const counts = new Array(65).fill(0);
  assert.equal(p.gc.size, 2);
  for (const [, g] of p.gc) {
    for (const o of gcSecBins(g, 900, 1100)) n += g.sec[o + 2];
    for (const k of gcHistBins(g, 900, 1100)) for (let i = 0; i < 65; i++) counts[i] += g.hist[k * 65 + i];
  }
  assert.equal(n, 100);
  const p50 = percentile(counts, 0.5) / GC_PAUSE_SCALE;
  assert.ok(p50 > 0.08 && p50 < 0.125, `p50 ${p50} ms`);
});

test('GC storage does not grow while a process lives (fixed rings)', async () => {
  const { GC_SNAP_CAP, gcSecBins } = await import('../js/store.js');
  const st = new Store();
  const snap = (t) => ({ type: 'gc_snapshot', pid: 9, interpreter: '', stamp: t, fields: { gc_is_enabled: true, gc_threshold0: 700, gc_collections0: t } });
  const gcev = (t) => ({ type: 'gc_event', pid: 9, interpreter: '', stamp: t, fields: { gc_event_start_stamp: t, gc_event_duration: 0.002, gc_event_generation: 0 } });
  for (let t = 1000; t < 2000; t++) {
    st.apply(snap(t));
    st.apply(gcev(t));
  }
  const gs = st.procs.get(9).gc.get('');
  const evs = st.procs.get(9).gcEvents;
  const arrays = [st.gcSnaps.t, st.gcSnaps.f, gs.sec, gs.hist, evs.t, evs.dur];
  const sizes = arrays.map((a) => a.length);
  for (let t = 2000; t < 2000 + GC_SNAP_CAP + 10; t++) {
    st.apply(snap(t));
    st.apply(gcev(t));
  }
  const now = [st.gcSnaps.t, st.gcSnaps.f, gs.sec, gs.hist, evs.t, evs.dur];
  assert.deepEqual(now.map((a) => a.length), sizes);
  assert.ok(now.every((a, i) => a === arrays[i]), 'same arrays');
  assert.equal(evs.length, 240, 'newest events only');
  assert.equal(evs.t[evs.slot(evs.length - 1)], 2000 + GC_SNAP_CAP + 9);
  assert.equal(evs.lowerBound(2000 + GC_SNAP_CAP + 9 - 59), 240 - 60);
  assert.equal(st.gcSnaps.length, GC_SNAP_CAP);
  const last = 2000 + GC_SNAP_CAP + 9;
  assert.equal(st.gcSnaps.object(st.gcSnaps.latestOf(gs)).f.gc_collections0, last);
  assert.equal(st.gcSnaps.lowerBound(last - 59), GC_SNAP_CAP - 60);
  // the newest 10 s bins each count their 10 events
  const bins = gcSecBins(gs, last - 40, last);
  assert.ok(bins.length >= 4);
  for (const o of bins.slice(0, -1)) assert.equal(gs.sec[o + 2], 10);
});

test('GC window: exactly the events that started in the last minute; percentiles never above the max', async () => {
  const { gcWindow, gcPausePercentile, gcSecBins, GC_SUM_BIN_S } = await import('../js/store.js');
  const st = new Store();
  // One collection a second for 160 s (4.0 to 4.4 ms), reported 10 ms after it started.
  for (let t = 900; t < 1060; t++) {
    st.apply({ type: 'gc_event', pid: 9, interpreter: '', stamp: t + 0.51, fields: { gc_event_start_stamp: t + 0.5, gc_event_duration: 0.004 + (t % 3) * 0.0002, gc_event_generation: t % 10 === 0 ? 1 : 0 } });
  }
  st.apply({ type: 'sample', kind: 'request_metrics', pid: 9, seq: 1, stamp: 1059.51, fields: { sample_period: 1 } });
  const p = st.procs.get(9);
  const gs = p.gc.get('');
  const now = st.now;
  // The window's start cuts a 10 s bin: summing every bin it touches (as
  // the GC tab did) counted 80.
  let touched = 0;
  for (const o of gcSecBins(gs, now - 60 - GC_SUM_BIN_S, now)) touched += gs.sec[o + 2] + gs.sec[o + 3];
  assert.equal(touched, 80);
  const w = gcWindow(p, gs, now - 60, now, true);
  assert.equal(w.n, 60, 'starts 1000.5 … 1059.5');
  assert.ok(w.exact);
  assert.deepEqual(w.gen, [54, 6, 0]);
  assert.ok(Math.abs(w.dur - (20 * 0.004 + 20 * 0.0042 + 20 * 0.0044)) < 1e-9, `gc time ${w.dur}`);
  assert.ok(Math.abs(w.max - 0.0044) < 1e-9);
  assert.equal(w.counts.reduce((a, b) => a + b, 0), 60, 'the pause histogram holds the same 60');
  for (const q of [0.5, 0.95, 0.99, 1]) {
    const v = gcPausePercentile(w, q);
    assert.ok(v <= w.max && v >= 0.004, `p${q * 100} ${v * 1000} ms vs max ${w.max * 1000} ms`);
  }
  // A paused view (window ending before the newest event) counts only what started in it.
  assert.equal(gcWindow(p, gs, now - 70, now - 10, false).n, 60);
  // A 5 m window: all 160 events are still in the raw ring, so exact too.
  const w5 = gcWindow(p, gs, now - 155, now, true);
  assert.equal(w5.n, 155);
});

/**
 * The corpus's messages as frames of the batched stream (the shape
 * ingester/src/batch/mod.rs writes): a frame every `every` messages;
 * per-datagram messages verbatim, GC events as per-second aggregates,
 * each series' events for the timeline (`keep` at most, the longest, the
 * rest counted in `omitted` with `cut` their newest start), the newest
 * entry of each slow key.
 */
/** A sample as the batched stream carries it: each `*_buckets` as [index, count, ...] pairs. */
function pairsOf(m) {
  const fields = { ...m.fields };
  for (const [k, v] of Object.entries(fields)) {
    if (k.endsWith('_buckets') && Array.isArray(v)) fields[k] = v.flatMap((c, i) => (c ? [i, c] : []));
  }
  return { ...m, fields };
}

function framesOf(messages, every, keep = Infinity) {
  const frames = [];
  let f = null;
  let seq = 0;
  let total = 0;
  const flush = () => {
    if (!f) return;
    f.gc = [...f.aggs.values()];
    f.gc_events = [...f.picks.values()].map((s) => {
      const order = s.ev.map((e, i) => i).sort((a, b) => s.ev[b][1] - s.ev[a][1] || a - b);
      const kept = new Set(order.slice(0, keep));
      const out = { pid: s.pid, interpreter: s.interpreter, t: [], d: [], g: [], omitted: 0 };
      s.ev.forEach((e, i) => {
        if (kept.has(i)) {
          out.t.push(e[0]);
          out.d.push(e[1]);
          out.g.push(e[2]);
        } else {
          out.omitted++;
          out.cut = Math.max(out.cut ?? -Infinity, e[0]);
        }
      });
      return out;
    });
    f.slow_requests = [...f.slow.values()];
    delete f.aggs;
    delete f.picks;
    delete f.slow;
    frames.push(f);
    f = null;
  };
  messages.forEach((m, i) => {
    if (!f) f = { type: 'batch', seq: ++seq, histograms: 'pairs', datagrams: 0, lifecycle: [], samples: [], gc_snapshots: [], aggs: new Map(), picks: new Map(), slow: new Map() };
    f.datagrams++;
    f.total_received = ++total;
    f.decode_errors = 0;
    f.seq_gaps = 0;
    if (m.type === 'sample') f.samples.push(pairsOf(m));
    else if (m.type === 'lifecycle') f.lifecycle.push(m);
    else if (m.type === 'gc_snapshot') f.gc_snapshots.push(m);
    else if (m.type === 'slow_request') {
      const k = JSON.stringify(m.key);
      f.slow.delete(k);
      f.slow.set(k, { key: m.key, entry: m.entry, stamp: m.stamp });
    } else if (m.type === 'gc_event') {
      const x = m.fields;
      const start = typeof x.gc_event_start_stamp === 'number' ? x.gc_event_start_stamp : m.stamp;
      const dur = x.gc_event_duration || 0;
      const gen = x.gc_event_generation === 2 ? 2 : x.gc_event_generation === 1 ? 1 : 0;
      const sec = Math.floor(start);
      const ak = `${m.pid}|${m.interpreter}|${sec}`;
      let a = f.aggs.get(ak);
      if (!a) f.aggs.set(ak, (a = { pid: m.pid, interpreter: m.interpreter, sec, n: [0, 0, 0], time: 0, max: 0, h: new Map() }));
      a.n[gen]++;
      a.time += dur;
      a.max = Math.max(a.max, dur);
      const b = bucketIndex(dur * 1000 * 64);
      a.h.set(b, (a.h.get(b) || 0) + 1);
      a.pauses = [...a.h].flat();
      const sk = `${m.pid}|${m.interpreter}`;
      let s = f.picks.get(sk);
      if (!s) f.picks.set(sk, (s = { pid: m.pid, interpreter: m.interpreter, ev: [] }));
      s.ev.push([start, dur, gen]);
    }
    if ((i + 1) % every === 0) flush();
  });
  flush();
  for (const fr of frames) for (const a of fr.gc) delete a.h;
  return frames;
}

/** What the views read of a store (GC per series, samples, lifecycle, slow, counters). */
async function digest(st) {
  const { gcWindow } = await import('../js/store.js');
  const r = (x) => Math.round(x * 1e9) / 1e9;
  const procs = [...st.procs.values()].sort((a, b) => a.pid - b.pid).map((p) => ({
    pid: p.pid,
    samples: p.samples.length,
    lastT: p.lastT,
    stoppedAt: p.stoppedAt,
    gc: [...p.gc.entries()].sort().map(([n, gs]) => {
      const w = gcWindow(p, gs, st.now - 60, st.now, true);
      const w5 = gcWindow(p, gs, st.now - 300, st.now, true);
      return [n, gs.snaps, w.n, w.gen, r(w.dur), w.max, [...w.counts].join(' '), w5.n, r(w5.dur), w.exact];
    }),
  }));
  // The request-time histograms over 60 s and 10 min, every field, all groups.
  const hist = HIST_FIELDS.map((name) => [60, 600].map((w) => {
    const x = st.histogram(name, w, () => true);
    return [name, w, x.n, [...x.counts].join(' '), x.min, x.max];
  }));
  return { procs, hist, now: st.now, datagrams: st.datagrams, lifecycle: st.lifecycle.length, life: [...st.life.values()], slow: [...st.slow.keys()].sort() };
}

test('batched frames give the model per-datagram messages give', async () => {
  const messages = corpus.map((r) => toMessage(r)).filter(Boolean);
  const per = new Store();
  for (const m of messages) per.apply(m);
  for (const every of [1, 37, 500]) {
    const st = new Store();
    st.apply({ type: 'snapshot', processes: [], total_received: 0, batch_seq: 1 });
    for (const f of framesOf(messages, every)) assert.ok(st.apply(f));
    assert.ok(st.batched);
    assert.deepEqual(await digest(st), await digest(per), `a frame every ${every} messages`);
    // every event reached the timeline
    for (const [pid, p] of per.procs) assert.equal(st.procs.get(pid).gcEvents.n, p.gcEvents.n, `pid ${pid} events`);
  }
});

test('a frame applied in steps gives the model of one pass; its counters move at the last step', async () => {
  const messages = corpus.map((r) => toMessage(r)).filter(Boolean);
  // Frames of 2,000 messages: several hundred samples each.
  const frames = framesOf(messages, 2000);
  const whole = new Store();
  const stepped = new Store();
  for (const st of [whole, stepped]) st.apply({ type: 'snapshot', processes: [], total_received: 0, batch_seq: 1 });
  let most = 0;
  for (const f of frames) {
    assert.ok(whole.apply(f));
    const before = stepped.datagrams;
    const steps = stepped.batchSteps(f);
    let n = 0;
    let r;
    while (!(r = steps.next()).done) {
      n++;
      assert.equal(stepped.datagrams, before, 'counters only when the frame is complete');
    }
    assert.equal(r.value, true);
    const samples = f.samples.length;
    // One step per BATCH_STEP_SAMPLES samples (and one each for lifecycle, GC).
    assert.ok(n >= Math.ceil(samples / BATCH_STEP_SAMPLES), `${samples} samples in ${n} steps`);
    most = Math.max(most, samples);
  }
  assert.ok(most > 2 * BATCH_STEP_SAMPLES, `${most} samples in the largest frame`);
  assert.deepEqual(await digest(stepped), await digest(whole));
});

test('a frame from before the snapshot is skipped', () => {
  const messages = corpus.map((r) => toMessage(r)).filter(Boolean).slice(0, 200);
  const st = new Store();
  st.apply({ type: 'snapshot', processes: [], total_received: 0, batch_seq: 3 });
  const frames = framesOf(messages, 50);
  assert.equal(st.apply(frames[0]), false);
  assert.equal(st.apply(frames[1]), false);
  assert.equal(st.datagrams, 0);
  assert.ok(st.apply(frames[2]));
  assert.equal(st.datagrams, 150);
});

test('a thinned timeline keeps the window counts whole (bins), exact only after the cut', async () => {
  const { gcWindow } = await import('../js/store.js');
  // One series, an event every 0.1 s for 200 s, frames of 5 s keeping 4 events.
  const msgs = [];
  for (let i = 0; i < 2000; i++) {
    const t = 1000 + i / 10;
    msgs.push({ type: 'gc_event', pid: 7, interpreter: '', stamp: t, fields: { gc_event_start_stamp: t, gc_event_duration: 0.001 + (i % 7) * 0.0001, gc_event_generation: i % 50 === 0 ? 2 : 0 } });
  }
  msgs.push({ type: 'sample', kind: 'request_metrics', pid: 7, seq: 1, stamp: 1199.95, fields: { sample_period: 1 } });
  const per = new Store();
  for (const m of msgs) per.apply(m);
  const st = new Store();
  st.apply({ type: 'snapshot', processes: [], total_received: 0, batch_seq: 1 });
  for (const f of framesOf(msgs, 50, 4)) st.apply(f);
  const [p, q] = [per.procs.get(7), st.procs.get(7)];
  const [gp, gq] = [p.gc.get(''), q.gc.get('')];
  assert.ok(gq.rawFrom > 1190, `cut ${gq.rawFrom}`);
  // Windows made of whole 10 s bins count the same.
  const whole = (pp, g) => gcWindow(pp, g, 1100, 1200, true);
  assert.equal(whole(q, gq).n, whole(p, gp).n);
  assert.equal(whole(q, gq).n, 1000);
  assert.deepEqual(whole(q, gq).counts, whole(p, gp).counts);
  // A window cutting a bin (inside the per-datagram ring's 24 s): exact
  // per datagram, pro rata when thinned.
  const wp = gcWindow(p, gp, per.now - 20, per.now, true);
  const wq = gcWindow(q, gq, st.now - 20, st.now, true);
  assert.ok(wp.exact);
  assert.ok(!wq.exact);
  assert.ok(Math.abs(wq.n - wp.n) <= 10, `${wq.n} vs ${wp.n}`);
  // The timeline got the longest 4 of every 50.
  assert.equal(q.gcEvents.n, 40 * 4);
});
