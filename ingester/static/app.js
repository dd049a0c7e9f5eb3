// Entry point: wires the store, the connection, the controls and the views,
// and batches redraws on requestAnimationFrame.
//
// Update path: WebSocket message → JSON.parse → Store.apply (incremental,
// bounded; a batched frame in steps of a few ms, spread over tasks) → mark
// dirty. The page asks for the batched stream (one frame
// per BATCH_MS carrying what changed, applied in one pass); `?stream=datagram`
// in the page's URL asks for the per-datagram stream instead (one message
// per datagram, as the reference's clients get), `?batch=MS` for another
// interval. Redraw path: at most one redraw per animation frame
// and, for data-driven redraws, at most one every DATA_REDRAW_MS; only the
// active tab and the sidebar are drawn, and each view skips what has not
// changed since its last draw. Both paths are timed with performance.now()
// and exposed as window.__telemetryPerf for the benchmark.

import { Store } from './js/store.js';
import { processStats, classify } from './js/stats.js';
import { Connection } from './js/conn.js';
import { Perf } from './js/perf.js';
import { Sidebar } from './js/views/sidebar.js';
import { Overview } from './js/views/overview.js';
import { Capacity } from './js/views/capacity.js';
import { Processes } from './js/views/processes.js';
import { GcView } from './js/views/gc.js';
import { SlowView } from './js/views/slow.js';
import { CustomView } from './js/views/custom.js';
import { Help } from './js/views/help.js';
import { Modal } from './js/views/modal.js';
import { HistoryView } from './js/views/history.js';
import { $, setText, setOptions } from './js/dom.js';
import { fmtCount } from './js/format.js';
import { setResizeHook } from './js/charts.js';

// A process reports once a second: a data redraw more often than that
// mostly redraws the same picture (and costs the browser as much again).
const DATA_REDRAW_MS = 1000;
const BATCH_MS = 500;
const FRAME_BUDGET_MS = 5;
const SIDEBAR_DATA_MS = 1000;
// Applying messages: a task stops taking more steps past this (a step is
// Store.BATCH_STEP_SAMPLES samples, or statistics of STATS_STEP processes).
const APPLY_SLICE_MS = 4;
const STATS_STEP = 64;
export const WINDOW_S = 60;

class App {
  constructor() {
    this.base = typeof window.TELEMETRY_BASE === 'string' ? window.TELEMETRY_BASE : '';
    this.store = new Store();
    this.perf = new Perf();
    window.__telemetryPerf = this.perf;
    window.__telemetry = this; // for tests and debugging
    this.ui = {
      group: '*',
      markers: loadMarkers(),
      tab: 'overview',
      stuckThr: 1,
    };
    this.rafPending = false;
    this.timer = null;
    this.lastRedraw = 0;
    this.forceNext = true;
    this.statsCache = new Map();
    this.inbox = []; // messages received, not yet applied (applyQueued)
    this.applying = null; // the batched frame being applied, in steps
    this.applyPosted = false;
    this.redrawAfterApply = false;
    this.applyChannel = new MessageChannel();
    this.applyChannel.port1.onmessage = () => this.applyQueued();
    this.modal = new Modal(this);
    this.views = {
      overview: new Overview(this),
      capacity: new Capacity(this),
      processes: new Processes(this),
      gc: new GcView(this),
      slow: new SlowView(this),
      custom: new CustomView(this),
    };
    this.sidebar = new Sidebar(this);
    this.help = new Help(this);
    this.history = new HistoryView(this);
    this.bindControls();
    setText($('#version'), window.TELEMETRY_VERSION ? 'v' + window.TELEMETRY_VERSION : '');
    this.conn = new Connection(this.wsUrl(), {
      onMessage: (data) => this.onMessage(data),
      onState: (state) => this.onConnState(state),
    });
    this.conn.open();
    // Text-only freshness indicator (browser clock compared with browser clock).
    setInterval(() => this.updateFreshness(), 1000);
    this.schedule(true);
  }

  wsUrl() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams(location.search);
    const ms = Number(q.get('batch'));
    const batch = q.get('stream') === 'datagram' ? '' : `?batch=${Number.isInteger(ms) && ms >= 100 && ms <= 5000 ? ms : BATCH_MS}`;
    return `${proto}//${location.host}${this.base}/ws${batch}`;
  }

  groupOk(g) {
    return this.ui.group === '*' || (g || '') === this.ui.group;
  }

  onMessage(data) {
    const t0 = performance.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.perf.badMessages++;
      return;
    }
    this.perf.bytes += data.length;
    this.inbox.push(msg);
    this.applyQueued(t0);
  }

  /**
   * Applies queued messages while this task has used less than
   * APPLY_SLICE_MS (at least one step): a batched frame goes in steps
   * (Store.batchSteps, then the statistics of its processes), so a large
   * frame is spread over several short tasks instead of one long one, and
   * what is left continues in the next task. Messages are applied in
   * arrival order, and no redraw draws a half-applied frame (requestFrame).
   */
  applyQueued(t0 = performance.now()) {
    this.applyPosted = false;
    let worked = false;
    do {
      if (!this.applying) {
        const msg = this.inbox.shift();
        if (!msg) break;
        worked = true;
        if (msg.type === 'batch') this.applying = this.frameSteps(msg);
        else {
          this.applyMessage(msg);
          continue;
        }
      }
      worked = true;
      if (this.applying.next().done) {
        this.applying = null;
        if (this.redrawAfterApply) {
          this.redrawAfterApply = false;
          this.requestFrame();
        }
      }
    } while (performance.now() - t0 < APPLY_SLICE_MS);
    if (worked) this.perf.recordUpdate(performance.now() - t0);
    if ((this.applying || this.inbox.length) && !this.applyPosted) {
      this.applyPosted = true;
      this.applyChannel.port2.postMessage(null);
    }
  }

  /** One frame of the batched stream, in steps (see applyQueued). */
  *frameSteps(msg) {
    this.perf.countMessage('batch');
    const changed = yield* this.store.batchSteps(msg);
    if (!changed) return;
    // Statistics once per process per frame, not per sample.
    let k = 0;
    for (const pid of this.store.batchPids) {
      const p = this.store.procs.get(pid);
      if (p) this.stats(p);
      if (++k % STATS_STEP === 0) yield;
    }
    if (msg.slow_clear) {
      this.perf.countMessage('slow_clear');
      this.views.slow.onClear();
    }
    this.schedule(false);
  }

  /** A message of the per-datagram stream, or a snapshot. */
  applyMessage(msg) {
    this.perf.countMessage(msg.type);
    const changed = this.store.apply(msg);
    if (msg.type === 'sample') {
      const p = this.store.procs.get(msg.pid);
      if (p) this.stats(p);
    }
    if (msg.type === 'slow_clear') this.views.slow.onClear();
    if (msg.type === 'snapshot') {
      this.statsCache.clear();
      this.forceNext = true;
      this.schedule(true);
    } else if (changed) this.schedule(false);
  }

  onConnState(state) {
    const pill = $('#conn');
    const text = { open: 'connected', closed: 'disconnected, reconnecting…', error: 'error', connecting: 'connecting…' }[state] || state;
    setText(pill, text);
    pill.className = 'pill ' + (state === 'open' ? 'ok' : state === 'connecting' ? 'warn' : 'bad');
  }

  updateFreshness() {
    const el = $('#freshness');
    const last = this.store.lastArrival;
    if (!last || this.conn.state !== 'open') return setText(el, '');
    const age = (performance.now() - last) / 1000;
    setText(el, age > 5 ? `no data for ${Math.round(age)} s` : '');
  }

  /** Requests a redraw: immediately on the next frame, or rate-limited for data. */
  schedule(immediate) {
    if (immediate) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      this.requestFrame();
      return;
    }
    if (this.rafPending || this.timer) return;
    const wait = this.lastRedraw + DATA_REDRAW_MS - performance.now();
    if (wait <= 0) this.requestFrame();
    else
      this.timer = setTimeout(() => {
        this.timer = null;
        this.requestFrame();
      }, wait);
  }

  requestFrame() {
    if (this.rafPending) return;
    this.rafPending = true;
    requestAnimationFrame(() => {
      this.rafPending = false;
      // A frame half applied is drawn when it is complete.
      if (this.applying) this.redrawAfterApply = true;
      else this.redraw();
    });
  }

  /**
   * Per-process window statistics over the 60 s before that process's newest
   * sample, cached by (sample revision, threshold). They are computed when a
   * sample arrives (update path), so a redraw only reads them; a process
   * that stops sending leaves the live views within max(10 s, 3 intervals).
   */
  stats(p) {
    const key = `${p.rev}|${this.ui.stuckThr}`;
    const c = this.statsCache.get(p.pid);
    if (c && c.key === key && c.proc === p) return c;
    const end = p.lastT ?? this.store.now;
    const stats = processStats(this.store.samplesSince(p, end - WINDOW_S), end - WINDOW_S, end, this.ui.stuckThr);
    const verdict = classify(stats);
    const entry = { key, proc: p, stats, verdict };
    this.statsCache.set(p.pid, entry);
    return entry;
  }

  /** Redraw context shared by every view during one redraw. */
  context() {
    const store = this.store;
    const live = [];
    const stoppedAll = [];
    for (const p of store.procs.values()) {
      if (store.isLive(p)) live.push(p);
      else if (store.isRecentlyStopped(p)) stoppedAll.push(p);
    }
    live.sort((a, b) => a.pid - b.pid);
    const visible = live.filter((p) => this.groupOk(p.group));
    // Listed as stopped (sidebar, Processes tab), newest stop first; no
    // total counts them.
    const stopped = stoppedAll.filter((p) => this.groupOk(p.group)).sort((a, b) => b.stoppedAt - a.stoppedAt || a.pid - b.pid);
    for (const pid of this.statsCache.keys()) if (!store.procs.has(pid)) this.statsCache.delete(pid);
    return { now: store.now, live, visible, stoppedAll, stopped, force: this.forceNext };
  }

  redraw() {
    const t0 = performance.now();
    this.lastRedraw = t0;
    const perf = this.perf;
    const ctx = this.context();
    ctx.t0 = t0; // frame start, for views that budget their work
    this.forceNext = false;
    this.updateCounter();
    this.updateGroupOptions(ctx);
    const t1 = performance.now();
    perf.recordSection('context', t1 - t0);
    // The sidebar redraws only when its inputs changed, and for data at
    // most once a second: its figures are 1-minute rollups, not worth
    // redrawing for each of hundreds of samples a second. A throttled
    // change is drawn by a later redraw (scheduled here).
    const dataKey = this.sideDataKey();
    const ctlKey = `${this.ui.group}|${this.ui.stuckThr}`;
    if (this.sidebar.pending()) this.guard('sidebar', () => this.sidebar.drawPending(ctx));
    if (ctx.force || ctlKey !== this.sideCtlKey || this.sideKey === null) {
      this.sideDraw(ctx, dataKey, ctlKey, t0);
    } else if (dataKey !== this.sideKey) {
      const wait = this.sideAt + SIDEBAR_DATA_MS - t0;
      if (wait <= 0) this.sideDraw(ctx, dataKey, ctlKey, t0);
      else if (!this.sideTimer) {
        this.sideTimer = setTimeout(() => {
          this.sideTimer = null;
          this.schedule(true);
        }, wait);
      }
    }
    const t2 = performance.now();
    perf.recordSection('sidebar', t2 - t1);
    const view = this.views[this.ui.tab];
    // Frame budget: when the sidebar used it up, the view draws next frame.
    if (view && t2 - t0 > FRAME_BUDGET_MS && !ctx.force) this.requestFrame();
    else if (view) this.guard(this.ui.tab, () => view.draw(ctx));
    // Views may spread a large redraw over several frames.
    if ((view && view.pending && view.pending()) || this.sidebar.pending()) this.requestFrame();
    const t3 = performance.now();
    perf.recordSection(this.ui.tab, t3 - t2);
    this.guard('modal', () => this.modal.refresh(ctx));
    perf.recordRedraw(performance.now() - t0, this.ui.tab, ctx.visible.length);
  }

  /** What the sidebar's figures depend on in the store. */
  sideDataKey() {
    const st = this.store;
    return `${st.rev.samples}|${st.rev.procs}|${st.now}|${st.datagrams}|${st.decodeErrors}`;
  }

  /**
   * True when what the page shows is up to date: the active tab drawn by
   * the last redraw, no redraw scheduled or spread over frames, and the
   * sidebar drawn from the newest data (tests wait on it).
   */
  settled() {
    const view = this.views[this.ui.tab];
    return (
      !this.applying &&
      this.inbox.length === 0 &&
      !this.redrawAfterApply &&
      this.perf.lastRedrawTab === this.ui.tab &&
      !this.rafPending &&
      !this.timer &&
      !this.sideTimer &&
      this.sideKey === this.sideDataKey() &&
      !(view && view.pending && view.pending()) &&
      !this.sidebar.pending()
    );
  }

  sideDraw(ctx, dataKey, ctlKey, t) {
    this.sideKey = dataKey;
    this.sideCtlKey = ctlKey;
    this.sideAt = t;
    this.guard('sidebar', () => this.sidebar.draw(ctx));
  }

  /**
   * Runs one part of a redraw; an exception is recorded (window.__telemetryErrors,
   * the console) instead of aborting the other parts and every later redraw.
   */
  guard(part, fn) {
    try {
      fn();
    } catch (e) {
      const msg = `${part}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`;
      const errs = window.__telemetryErrors || (window.__telemetryErrors = []);
      if (errs.length < 50) errs.push(msg);
      console.error(msg);
    }
  }

  updateCounter() {
    const s = this.store;
    const el = $('#counter');
    let text = `${fmtCount(s.datagrams)} datagrams`;
    if (s.decodeErrors > 0) text += ` · ${fmtCount(s.decodeErrors)} decode errors`;
    const gaps = s.seqGaps;
    if (gaps > 0) text += ` · ${fmtCount(gaps)} lost`;
    setText(el, text);
    el.classList.toggle('bad', s.decodeErrors > 0 || gaps > 0);
  }

  updateGroupOptions(ctx) {
    const groups = new Set();
    for (const p of ctx.live) groups.add(p.group || '');
    for (const p of ctx.stoppedAll) groups.add(p.group || '');
    if (this.ui.group !== '*') groups.add(this.ui.group); // keep a chosen group offered
    const named = [...groups].filter((g) => g !== '').sort();
    const opts = [{ value: '*', label: 'All' }, { value: '', label: '(embedded)' }, ...named.map((g) => ({ value: g, label: g }))];
    const v = setOptions($('#group-filter'), opts, '*');
    if (v !== this.ui.group) this.ui.group = v;
  }

  bindControls() {
    $('#group-filter').addEventListener('change', (e) => {
      this.ui.group = e.target.value;
      this.forceNext = true;
      this.schedule(true);
    });
    for (const cb of document.querySelectorAll('.markers input[type=checkbox]')) {
      cb.checked = this.ui.markers[cb.dataset.cat] !== false;
      cb.addEventListener('change', () => {
        this.ui.markers[cb.dataset.cat] = cb.checked;
        try {
          localStorage.setItem('mod_wsgi.markerFilters', JSON.stringify(this.ui.markers));
        } catch {
          /* storage unavailable: keep in memory */
        }
        this.forceNext = true;
        this.schedule(true);
      });
    }
    for (const b of document.querySelectorAll('.tab-btn')) {
      b.addEventListener('click', () => this.selectTab(b.dataset.tab));
    }
    window.addEventListener('resize', () => {
      this.forceNext = true;
      this.schedule(true);
    });
    // A chart's box changed size (tab shown, sidebar scrollbar, …).
    setResizeHook(() => {
      this.forceNext = true;
      this.schedule(true);
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.modal.close();
    });
  }

  selectTab(tab) {
    this.ui.tab = tab;
    for (const b of document.querySelectorAll('.tab-btn')) b.classList.toggle('active', b.dataset.tab === tab);
    for (const s of document.querySelectorAll('.tab')) s.classList.toggle('active', s.id === 'tab-' + tab);
    this.forceNext = true;
    this.schedule(true);
  }
}

function loadMarkers() {
  const def = { planned: true, tuning: true, unplanned: true };
  try {
    const v = JSON.parse(localStorage.getItem('mod_wsgi.markerFilters') || 'null');
    if (v && typeof v === 'object') {
      for (const k of Object.keys(def)) if (typeof v[k] === 'boolean') def[k] = v[k];
    }
  } catch {
    /* corrupt storage ignored */
  }
  return def;
}

new App();
