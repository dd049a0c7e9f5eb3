// Client-side statistics, pure functions over derived samples.
//
// Differences from the reference, on purpose: every mean of a per-request
// quantity is request-weighted (Σ value·count / Σ count), utilisations are
// time-weighted by sample_period, and one function computes a process's
// window statistics for every consumer (sidebar, heatmap card, snapshot),
// so the card tint and the sidebar counts cannot disagree
// (docs/compatibility.md C29, C30).

export const PHASES = ['server_time', 'queue_time', 'daemon_time', 'application_time'];

export const CATEGORY_COLORS = { planned: '#6ea66e', tuning: '#c8a23a', unplanned: '#c84a4a' };

const PLANNED = new Set(['restart_interval', 'maximum_requests', 'inactivity_timeout', 'script_reload']);
const TUNING = new Set(['request_timeout', 'cpu_time_limit', 'eviction_signal', 'graceful_signal', 'startup_timeout']);

/** Shutdown reason → marker category (any other or empty reason is unplanned). */
export function reasonCategory(reason) {
  if (PLANNED.has(reason)) return 'planned';
  if (TUNING.has(reason)) return 'tuning';
  return 'unplanned';
}

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function typed(a, Ctor) {
  return Array.isArray(a) ? Ctor.from(a) : null;
}

/**
 * A periodic sample reduced to what the views need, computed once on arrival.
 * Histograms are not kept here (they go to the store's time bins).
 */
export function deriveSample(msg) {
  const f = msg.fields || {};
  const period = num(f.sample_period) > 0 ? f.sample_period : 1;
  const rc = num(f.request_count) || 0;
  const srv = num(f.server_time);
  const que = num(f.queue_time);
  const dae = num(f.daemon_time);
  const app = num(f.application_time);
  const hasApp = app != null;
  const busy = typed(f.request_threads_busy_time, Float32Array);
  const cpuSlots = typed(f.request_threads_cpu_time, Float32Array);
  const completed = typed(f.request_threads_completed, Float32Array);
  const elapsed = typed(f.request_threads_current_elapsed, Float32Array);
  const maxDur = typed(f.request_threads_max_duration, Float32Array);
  let busySum = 0;
  let cpuSum = 0;
  if (busy) for (let i = 0; i < busy.length; i++) busySum += busy[i];
  if (cpuSlots) for (let i = 0; i < cpuSlots.length; i++) cpuSum += cpuSlots[i];
  // Longest current or finished request of any slot: a window where it
  // stays under the slow-run threshold has no slow run (countSlowRuns).
  let slotMax = 0;
  if (elapsed) for (let i = 0; i < elapsed.length; i++) if (elapsed[i] > slotMax) slotMax = elapsed[i];
  if (maxDur) for (let i = 0; i < maxDur.length; i++) if (maxDur[i] > slotMax) slotMax = maxDur[i];
  const slots = busy ? busy.length : completed ? completed.length : elapsed ? elapsed.length : 0;
  return {
    t: msg.stamp,
    seq: msg.seq,
    period,
    rc,
    thr: num(f.request_throughput) ?? rc / period,
    cap: num(f.capacity_utilization) ?? 0,
    cpu: num(f.cpu_utilization) ?? 0,
    cpuU: num(f.cpu_user_utilization) ?? 0,
    cpuS: num(f.cpu_system_utilization) ?? 0,
    rss: num(f.memory_rss) ?? 0,
    maxRss: num(f.memory_max_rss) ?? 0,
    hasApp,
    srv: srv ?? 0,
    que,
    dae,
    app: app ?? 0,
    // Response time excluding Apache's accept queue: server+queue+daemon+application.
    resp: hasApp ? (srv ?? 0) + (que ?? 0) + (dae ?? 0) + (app ?? 0) : null,
    gil: num(f.gil_wait_time),
    inRead: num(f.input_read_time),
    outWrite: num(f.output_write_time),
    inB: num(f.input_bytes_total) ?? 0,
    outB: num(f.output_bytes_total) ?? 0,
    inReads: num(f.input_reads_total) ?? 0,
    outWrites: num(f.output_writes_total) ?? 0,
    s1: num(f.status_1xx_total) ?? 0,
    s2: num(f.status_2xx_total) ?? 0,
    s3: num(f.status_3xx_total) ?? 0,
    s4: num(f.status_4xx_total) ?? 0,
    s5: num(f.status_5xx_total) ?? 0,
    thMax: num(f.request_threads_maximum) ?? 0,
    thActive: num(f.request_threads_active) ?? 0,
    slowThr: num(f.slow_requests_threshold),
    switchInt: num(f.switch_interval),
    slots,
    busySum,
    cpuSlotSum: cpuSum,
    busy,
    cpuSlots,
    completed,
    elapsed,
    maxDur,
    slotMax,
  };
}

/** Value plotted by a throughput-selector mode. */
export function throughputValue(d, mode) {
  switch (mode) {
    case 'in': return d.inB / d.period;
    case 'out': return d.outB / d.period;
    case 'inout': return (d.inB + d.outB) / d.period;
    case '5xx': return d.s5 / d.period;
    case '4xx': return d.s4 / d.period;
    default: return d.thr;
  }
}

export const PHASE_KEYS = {
  application: 'app', daemon: 'dae', queue: 'que', server: 'srv',
  gil: 'gil', input: 'inRead', output: 'outWrite',
};

/**
 * Window statistics of one process over derived samples `list`
 * (time-ordered) with `from ≤ t ≤ to`; `threshold` is the slow-run
 * threshold in seconds (null/0: no slow-run count).
 */
export function processStats(list, from, to, threshold) {
  const s = {
    n: 0, rc: 0, period: 0, rpm: 0, capMean: 0, cpuMean: 0, cpuPeak: 0,
    respMs: null, srvMs: null, queMs: null, daeMs: null, appMs: null,
    hasQueue: false, hasDaemon: false, queuePeakMs: 0, daemonPeakMs: 0,
    gilMs: null, inReadMs: null, outWriteMs: null, gilFrac: null,
    busyMean: 0, busyPeak: 0, cpuSlotMean: 0, slotRatio: null, slots: 0,
    inRate: 0, outRate: 0, inBytes: 0, outBytes: 0, inReads: 0, outWrites: 0,
    s1: 0, s2: 0, s3: 0, s4: 0, s5: 0, rssMb: 0, nThreads: 0, slowRuns: 0,
    slowThr: null, switchInt: null, first: null, last: null,
  };
  let capW = 0, cpuW = 0;
  let appRc = 0, resp = 0, srv = 0, app = 0;
  let queRc = 0, que = 0, daeRc = 0, dae = 0;
  let gilRc = 0, gil = 0, inRc = 0, inr = 0, outRc = 0, outw = 0;
  let slotN = 0, busyAcc = 0, cpuSlotAcc = 0, busyAll = 0, cpuAll = 0;
  for (let i = 0; i < list.length; i++) {
    const d = list[i];
    if (d.t < from || d.t > to) continue;
    if (s.first == null) s.first = d;
    s.last = d;
    s.n++;
    s.rc += d.rc;
    s.period += d.period;
    capW += d.cap * d.period;
    cpuW += d.cpu * d.period;
    if (d.cpu > s.cpuPeak) s.cpuPeak = d.cpu;
    if (d.hasApp && d.rc > 0) {
      appRc += d.rc;
      resp += d.resp * d.rc;
      srv += d.srv * d.rc;
      app += d.app * d.rc;
    }
    if (d.que != null) {
      s.hasQueue = true;
      if (d.rc > 0) { queRc += d.rc; que += d.que * d.rc; }
      if (d.que * 1000 > s.queuePeakMs) s.queuePeakMs = d.que * 1000;
    }
    if (d.dae != null) {
      s.hasDaemon = true;
      if (d.rc > 0) { daeRc += d.rc; dae += d.dae * d.rc; }
      if (d.dae * 1000 > s.daemonPeakMs) s.daemonPeakMs = d.dae * 1000;
    }
    if (d.gil != null && d.rc > 0) { gilRc += d.rc; gil += d.gil * d.rc; }
    if (d.inRead != null && d.rc > 0) { inRc += d.rc; inr += d.inRead * d.rc; }
    if (d.outWrite != null && d.rc > 0) { outRc += d.rc; outw += d.outWrite * d.rc; }
    if (d.slots > 0 && d.busy) {
      const b = d.busySum / d.slots / d.period;
      busyAcc += b;
      cpuSlotAcc += d.cpuSlotSum / d.slots / d.period;
      if (b > s.busyPeak) s.busyPeak = b;
      busyAll += d.busySum;
      cpuAll += d.cpuSlotSum;
      slotN++;
      s.slots = d.slots;
    }
    s.inBytes += d.inB;
    s.outBytes += d.outB;
    s.inReads += d.inReads;
    s.outWrites += d.outWrites;
    s.s1 += d.s1; s.s2 += d.s2; s.s3 += d.s3; s.s4 += d.s4; s.s5 += d.s5;
    if (d.thMax > s.nThreads) s.nThreads = d.thMax;
    if (d.slowThr != null) s.slowThr = d.slowThr;
    if (d.switchInt != null) s.switchInt = d.switchInt;
  }
  if (s.n === 0) return s;
  s.rpm = s.period > 0 ? (s.rc / s.period) * 60 : 0;
  s.capMean = s.period > 0 ? capW / s.period : 0;
  s.cpuMean = s.period > 0 ? cpuW / s.period : 0;
  if (appRc > 0) {
    s.respMs = (resp / appRc) * 1000;
    s.srvMs = (srv / appRc) * 1000;
    s.appMs = (app / appRc) * 1000;
  }
  s.appRc = appRc;
  if (queRc > 0) s.queMs = (que / queRc) * 1000;
  if (daeRc > 0) s.daeMs = (dae / daeRc) * 1000;
  if (gilRc > 0) s.gilMs = (gil / gilRc) * 1000;
  if (inRc > 0) s.inReadMs = (inr / inRc) * 1000;
  if (outRc > 0) s.outWriteMs = (outw / outRc) * 1000;
  if (s.gilMs != null && s.appMs) s.gilFrac = s.gilMs / s.appMs;
  if (slotN > 0) {
    s.busyMean = busyAcc / slotN;
    s.cpuSlotMean = cpuSlotAcc / slotN;
    s.slotRatio = busyAll > 0 ? cpuAll / busyAll : 0;
  }
  s.inRate = s.period > 0 ? s.inBytes / s.period : 0;
  s.outRate = s.period > 0 ? s.outBytes / s.period : 0;
  s.rssMb = s.last.rss / 1048576;
  // Counted on first read: only the state classification of a busy
  // process and the "copy current stats" text need it, and it costs more
  // than everything above together.
  if (threshold > 0) {
    let runs = null;
    Object.defineProperty(s, 'slowRuns', {
      enumerable: true,
      get: () => (runs ??= countSlowRuns(list, from, to, threshold)),
    });
  }
  return s;
}

/** Number of slow runs over all slots (elapsed runs plus max-duration-only runs). */
export function countSlowRuns(list, from, to, threshold) {
  const cells = [];
  let any = false;
  for (const d of list) {
    if (d.t >= from && d.t <= to && d.elapsed) {
      cells.push(d);
      // A run starts only at a cell at or over the threshold.
      if (!(d.slotMax < threshold)) any = true;
    }
  }
  if (!any) return 0;
  const slots = cells[cells.length - 1].elapsed.length;
  let n = 0;
  const e = new Float64Array(cells.length);
  const m = new Float64Array(cells.length);
  for (let slot = 0; slot < slots; slot++) {
    let any = false;
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i];
      const ev = slot < c.elapsed.length ? c.elapsed[slot] : 0;
      const mv = c.maxDur && slot < c.maxDur.length ? c.maxDur[slot] : 0;
      e[i] = ev;
      m[i] = mv;
      if (ev >= threshold || mv >= threshold) any = true;
    }
    if (any) n += findSlowRuns(e, m, threshold).length;
  }
  return n;
}

/**
 * Slow runs of one slot: `e` current elapsed per cell, `m` max
 * duration per cell (optional), threshold T. Returns [{first, last, viaMax}].
 */
export function findSlowRuns(e, m, T) {
  const runs = [];
  const claimed = new Uint8Array(e.length);
  let i = 0;
  while (i < e.length) {
    if (!(e[i] >= T)) { i++; continue; }
    let j = i;
    while (j + 1 < e.length && e[j + 1] >= T && e[j + 1] >= e[j]) j++;
    let last = j;
    if (m && j + 1 < e.length && m[j + 1] >= e[j] && !(e[j + 1] >= T && e[j + 1] >= e[j])) {
      last = j + 1;
    }
    for (let k = i; k <= last; k++) claimed[k] = 1;
    runs.push({ first: i, last, viaMax: false });
    i = last + 1;
  }
  if (m) {
    for (let k = 0; k < e.length; k++) {
      if (!claimed[k] && m[k] >= T) runs.push({ first: k, last: k, viaMax: true });
    }
    runs.sort((a, b) => a.first - b.first);
  }
  return runs;
}

/** State classification of a stats object. */
export function classify(s) {
  const requestRpm = s.rpm;
  const gated = requestRpm >= 3;
  const reasons = [];
  let score = 0;
  if (gated) {
    if (s.busyMean > 0.8) {
      score += Math.min((s.busyMean - 0.8) * 5, 1);
      reasons.push(`busy ${Math.round(s.busyMean * 100)}% sustained`);
    }
    if (s.hasQueue && s.queMs != null && s.queMs > 50) {
      score += Math.min((s.queMs - 50) / 200, 1);
      reasons.push(`queue time ${Math.round(s.queMs)} ms`);
    }
    if (s.busyMean >= 0.7 && s.slowRuns >= 3) {
      score += Math.min((s.slowRuns - 2) / 8, 1);
      reasons.push(`${s.slowRuns} slow requests under load`);
    }
  }
  const saturated = score >= 1.0;
  const multiCore = s.cpuMean > 1.2 && s.busyMean > 0.5;
  const ratioVal = s.cpuSlotMean / Math.max(s.busyMean, 0.01);
  const ratio = s.busyMean > 0.5 && ratioVal < 0.5;
  const daemon = s.hasDaemon && s.daeMs != null && s.daeMs > 50;
  const peg = s.cpuMean > 0.9 && s.nThreads >= 2 && s.busyMean > 0.3;
  const gilDirect = s.gilFrac != null && s.gilFrac >= 0.15 && s.busyMean > 0.3;
  const cpuGil = gated && !multiCore && (ratio || daemon || peg || gilDirect);
  const cpuReasons = [];
  if (peg) cpuReasons.push(`cpu ${Math.round(s.cpuMean * 100)}% on ${s.nThreads} threads`);
  if (ratio) cpuReasons.push(`slot cpu / slot busy ${ratioVal < 0.01 ? '~0' : ratioVal.toFixed(2)}`);
  if (daemon) cpuReasons.push(`daemon handoff ${Math.round(s.daeMs)} ms`);
  if (gilDirect) cpuReasons.push(`gil_wait ${Math.round(s.gilFrac * 100)}% of app time`);
  let lean = '';
  if (cpuGil) {
    const sr = s.slotRatio ?? 0;
    if (gilDirect) lean = `gil_wait ${Math.round(s.gilFrac * 100)}% of app time confirms GIL serialisation: add processes for more cores`;
    else if (sr >= 0.7) lean = 'threads burning CPU under GIL serialisation: add processes for more cores';
    else if (sr < 0.4 && (daemon || sr > 0)) lean = 'threads waiting on GIL or I/O, not on CPU: add processes to reduce contention';
    else lean = 'one core saturated with multiple threads: add processes, not threads';
  }
  const state = saturated ? 'saturated' : cpuGil ? 'cpugil' : 'normal';
  return { state, saturated, cpuGil: cpuGil && !saturated, reasons, cpuReasons, lean, score };
}

/** Σ of a list of stats with a request-weighted response time. */
export function rollup(entries) {
  const r = {
    rpm: 0, cpu: 0, rssMb: 0, respMs: null, hosts: new Set(),
    groups: new Map(), sat: 0, cpugil: 0, normal: 0, n: 0,
    inRate: 0, outRate: 0, s1: 0, s2: 0, s3: 0, s4: 0, s5: 0, rc: 0,
  };
  let wRc = 0, wResp = 0;
  for (const { proc, stats, verdict } of entries) {
    r.n++;
    r.rpm += stats.rpm;
    r.cpu += stats.cpuMean;
    r.rssMb += stats.rssMb;
    if (proc.hostname) r.hosts.add(proc.hostname);
    const g = proc.group || '';
    if (!r.groups.has(g)) r.groups.set(g, []);
    r.groups.get(g).push(proc.pid);
    if (verdict.state === 'saturated') r.sat++;
    else if (verdict.state === 'cpugil') r.cpugil++;
    else r.normal++;
    r.inRate += stats.inRate;
    r.outRate += stats.outRate;
    r.s1 += stats.s1; r.s2 += stats.s2; r.s3 += stats.s3; r.s4 += stats.s4; r.s5 += stats.s5;
    r.rc += stats.rc;
    if (stats.respMs != null && stats.appRc > 0) {
      wRc += stats.appRc;
      wResp += stats.respMs * stats.appRc;
    }
  }
  if (wRc > 0) r.respMs = wResp / wRc;
  return r;
}

/** "K sat · K CPU/GIL · K normal" with zero parts omitted. */
export function stateCounts(r) {
  const parts = [];
  if (r.sat) parts.push(`${r.sat} sat`);
  if (r.cpugil) parts.push(`${r.cpugil} CPU/GIL`);
  if (r.normal) parts.push(`${r.normal} normal`);
  return parts.join(' · ');
}

/** GIL contention coefficient from gil_wait buckets and switch interval s (seconds). */
export function gilContention(buckets, s, lower, upper) {
  if (!buckets || !(s > 0)) return null;
  const sMs = s * 1000;
  const edges = [0.8, 1.8, 2.8, 3.8].map((k) => k * sMs);
  const c = [0, 0, 0, 0, 0];
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i];
    if (!n) continue;
    const mid = i >= 64 ? lower(64) : (lower(i) + upper(i)) / 2;
    let band = 4;
    for (let b = 0; b < 4; b++) if (mid < edges[b]) { band = b; break; }
    c[band] += n;
  }
  const fit = (ks, x0) => {
    const pts = ks.filter((k) => c[k] > 0).map((k) => ({ x: k - x0, y: Math.log(c[k]), w: c[k] }));
    if (pts.length < 2) return null;
    const W = pts.reduce((a, p) => a + p.w, 0);
    const mx = pts.reduce((a, p) => a + p.w * p.x, 0) / W;
    const my = pts.reduce((a, p) => a + p.w * p.y, 0) / W;
    let vx = 0, vy = 0, cxy = 0;
    for (const p of pts) {
      vx += p.w * (p.x - mx) ** 2;
      vy += p.w * (p.y - my) ** 2;
      cxy += p.w * (p.x - mx) * (p.y - my);
    }
    if (vx <= 0 || vy <= 0) return null;
    const slope = cxy / vx;
    if (slope >= 0) return null;
    const q = 1 - Math.exp(slope);
    if (!(q > 0 && q < 1)) return null;
    const r2 = (cxy * cxy) / (vx * vy);
    if (r2 < 0.5) return null;
    return { q, r2 };
  };
  let res = null;
  let kind = 'primary';
  if (c[1] >= c[2] && c[1] + c[2] + c[3] >= 100) res = fit([1, 2, 3], 1);
  if (!res && c[2] + c[3] + c[4] >= 100) {
    res = fit([2, 3, 4], 2);
    kind = 'fallback';
  }
  if (!res) return null;
  const label = res.q >= 0.7 ? 'transient' : res.q >= 0.4 ? 'compounding' : 'convoy';
  return { q: res.q, r2: res.r2, label, kind, bands: c };
}
