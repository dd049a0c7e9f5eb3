// Capacity tab: per-process worker-slot heatmaps with slow-request runs.
// Cards are keyed by pid; only cards on screen are redrawn, and only when
// their process got data, the window moved or a control changed.

import { $, h, setText, setOptions, showTooltip, hideTooltip, reconcile } from '../dom.js';
import { fitCanvas, setFont, boxSize, assumeWidthOf, AXIS_TEXT } from '../charts.js';
import { findSlowRuns, processStats, classify } from '../stats.js';
import { fmtSecShort, fmtThreshold, cut } from '../format.js';

const W = 60;
const LADDER = [0.5, 1, 2, 5, 10, 30];
const PAD = { l: 32, r: 4, t: 4, b: 14 };
// Cards are drawn while the frame (from its start) stays under this.
const CARD_BUDGET_MS = 5;
const PLOT_BG = '#151a16';

/** Column (CSS px) of time t in a heat ring `pw` wide holding one window. */
function ringX(t, pw) {
  return ((((t % W) + W) % W) / W) * pw;
}

/** Start of cell i of a window's cells: its predecessor's stamp, or one period before its own. */
function cellStart(cells, i, from) {
  const d = cells[i];
  return i > 0 ? cells[i - 1].t : Math.max(from, d.t - d.period);
}

const HEAT_CACHE = new Array(101);

/** Busy fraction → colour (piecewise-linear, clamped), cached per 1 %. */
export function heatColor(f) {
  if (!(f >= 0.05)) return '#1e2820';
  const k = Math.min(100, Math.round(f * 100));
  return HEAT_CACHE[k] || (HEAT_CACHE[k] = heatColorExact(k / 100));
}

function heatColorExact(f) {
  const stops = [
    [0, 30, 40, 32],
    [0.4, 76, 175, 80],
    [0.75, 255, 183, 77],
    [1.0, 229, 115, 115],
  ];
  const x = Math.min(1, f);
  for (let i = 1; i < stops.length; i++) {
    const [x1, r1, g1, b1] = stops[i];
    const [x0, r0, g0, b0] = stops[i - 1];
    if (x <= x1) {
      const k = (x - x0) / (x1 - x0);
      return `rgb(${Math.round(r0 + (r1 - r0) * k)},${Math.round(g0 + (g1 - g0) * k)},${Math.round(b0 + (b1 - b0) * k)})`;
    }
  }
  return 'rgb(229,115,115)';
}

/**
 * Slow runs of a process's cells with estimated bounds and matched records
 * (a run is matched to a record of the same slot and time). cells: samples
 * in the window, time-ordered.
 */
export function slowRunsOf(store, p, cells, threshold, now, records = null) {
  const runs = [];
  if (!cells.length) return runs;
  const slots = slotCount(cells);
  const e = new Array(cells.length);
  const m = new Array(cells.length);
  for (let slot = 0; slot < slots; slot++) {
    let any = false;
    for (let i = 0; i < cells.length; i++) {
      e[i] = cells[i].elapsed ? cells[i].elapsed[slot] ?? 0 : 0;
      m[i] = cells[i].maxDur ? cells[i].maxDur[slot] ?? 0 : 0;
      if (e[i] >= threshold || m[i] >= threshold) any = true;
    }
    if (!any) continue;
    for (const r of findSlowRuns(e, m, threshold)) {
      let start, end, endKnown;
      const lastT = cells[r.last].t;
      if (r.viaMax) {
        end = lastT;
        start = end - m[r.last];
        endKnown = true;
      } else {
        start = cells[r.first].t - e[r.first];
        const prev = r.last > r.first ? e[r.last - 1] : 0;
        if (m[r.last] > 0 && m[r.last] >= prev) {
          end = Math.max(start + m[r.last], lastT);
          endKnown = true;
        } else {
          end = lastT;
          endKnown = false;
        }
      }
      const run = { slot, first: r.first, last: r.last, viaMax: r.viaMax, start, end, endKnown, record: null };
      const rec = matchRecord(records || store.slow.values(), p.pid, slot, start, end, now);
      if (rec) {
        run.record = rec.ks;
        run.start = rec.entry.start_stamp;
        if (rec.entry.state === 1) {
          run.end = rec.entry.start_stamp + rec.entry.duration;
          run.endKnown = true;
        } else {
          run.end = lastT;
          run.endKnown = false;
        }
      }
      run.duration = rec ? rec.entry.duration : Math.max(0, (run.endKnown ? run.end : lastT) - run.start);
      run.active = rec ? rec.entry.state !== 1 : !run.endKnown;
      run.lastCell = cells[r.last];
      runs.push(run);
    }
  }
  return runs;
}

/**
 * The stored record (among `records`: the store's, or that pid's) of the
 * same pid and slot with the largest overlap, or null.
 */
export function matchRecord(records, pid, slot, estStart, estEnd, now) {
  let best = null;
  let bestOv = 0;
  const lo = estStart - 1;
  const hi = estEnd + 1;
  for (const s of records) {
    const en = s.entry;
    if (en.pid !== pid || en.thread_id !== slot + 1) continue;
    const a = en.start_stamp;
    const b = en.state === 1 ? a + en.duration : Math.max(a + en.duration, now);
    const ov = Math.min(b, hi) - Math.max(a, lo);
    if (ov > bestOv) {
      bestOv = ov;
      best = s;
    }
  }
  return best;
}

function slotCount(cells) {
  const last = cells[cells.length - 1];
  const n = last.busy ? last.busy.length : last.completed ? last.completed.length : last.elapsed ? last.elapsed.length : 0;
  return Math.max(1, n);
}

export class Capacity {
  constructor(app) {
    this.app = app;
    this.cards = new Map();
    this.paused = null;
    this.order = '';
    this.observer = new IntersectionObserver(
      (entries) => {
        let any = false;
        for (const en of entries) {
          const c = this.cards.get(Number(en.target.dataset.pid));
          if (!c) continue;
          c.onScreen = en.isIntersecting;
          // an off-screen card keeps no heat ring (a full repaint on return)
          if (!c.onScreen) c.ring = null;
          if (c.onScreen && c.dirty) any = true;
        }
        if (any) app.schedule(true);
      },
      { root: $('#content') },
    );
    $('#stuck-threshold').addEventListener('change', (e) => {
      app.ui.stuckThr = Number(e.target.value);
      app.forceNext = true;
      app.schedule(true);
    });
    $('#cap-pause').addEventListener('click', (e) => {
      this.paused = this.paused == null ? app.store.now : null;
      setText(e.target, this.paused == null ? 'Pause' : 'Resume');
      app.forceNext = true;
      app.schedule(true);
    });
  }

  thresholdOptions(ctx) {
    let S = null;
    for (const p of ctx.visible) if (p.slowThr != null && (S == null || p.slowThr > S)) S = p.slowThr;
    const values = S == null || S === 0 ? LADDER : [S, ...LADDER.filter((v) => v > S)];
    const opts = values.map((v) => ({ value: String(v), label: fmtThreshold(v) }));
    const sel = $('#stuck-threshold');
    const cur = String(this.app.ui.stuckThr);
    const v = setOptions(sel, opts, opts.some((o) => o.value === cur) ? cur : opts[0].value);
    const n = Number(v);
    if (n !== this.app.ui.stuckThr) {
      this.app.ui.stuckThr = n;
      this.app.statsCache.clear();
    }
  }

  draw(ctx) {
    const app = this.app;
    const tDraw = performance.now();
    this.thresholdOptions(ctx);
    const now = this.paused ?? ctx.now;
    const from = now - W;
    const shown = ctx.visible.filter((p) => {
      const last = p.samples.last();
      return !!last && last.t >= from && !!(last.busy || last.elapsed);
    });
    $('#cap-empty').hidden = shown.length > 0;
    const pids = new Set(shown.map((p) => p.pid));
    for (const [pid, c] of this.cards) {
      if (!pids.has(pid) || c.proc !== app.store.procs.get(pid)) {
        this.observer.unobserve(c.el);
        c.el.remove();
        this.cards.delete(pid);
      }
    }
    for (const p of shown) if (!this.cards.has(p.pid)) this.cards.set(p.pid, this.makeCard(p));
    const order = shown.map((p) => p.pid).join(',');
    if (order !== this.order) {
      reconcile($('#cap-cards'), shown.map((p) => this.cards.get(p.pid).el));
      this.order = order;
    }
    // One layout read per redraw (all grid cells have the same width).
    const width = boxSize($('#cap-cards')).w;
    const tSetup = performance.now();
    // A card follows its own samples and the clock; slow records arrive
    // with the process's samples, so only a server-side clear is extra.
    // Cards share a frame budget: the ones left over are drawn next frame
    // (pending()), so a second with many cards on screen is not one long frame.
    const t0 = ctx.t0 ?? performance.now();
    let drawn = 0;
    this.more = false;
    for (const p of shown) {
      const c = this.cards.get(p.pid);
      const key = `${p.rev}|${now}|${app.ui.stuckThr}|${app.store.rev.slowClear}|${width}`;
      if (key === c.key && !ctx.force) continue;
      if (!c.onScreen && !ctx.force) {
        c.dirty = true;
        continue;
      }
      // stop before a card that would likely overrun the frame budget
      if (drawn > 0 && performance.now() - t0 + (c.cost ?? 2) > CARD_BUDGET_MS) {
        this.more = true;
        continue;
      }
      c.dirty = false;
      c.key = key;
      if (ctx.force) c.heatLabels = null;
      const tc = performance.now();
      this.drawCard(c, p, now);
      if (!c.onScreen) c.ring = null;
      c.cost = performance.now() - tc;
      app.perf.recordSection('capacity.card', c.cost);
      drawn++;
    }
    app.perf.recordSection('capacity.cards', drawn);
    app.perf.recordSection('capacity.setup', tSetup - tDraw);
  }

  pending() {
    return !!this.more;
  }

  /**
   * The pid's slow records: an index built at most once per change of the
   * store's slow table (a card matches its runs against its own records,
   * not against every record of every process).
   */
  slowOf(pid) {
    const store = this.app.store;
    if (this.slowRev !== store.rev.slow || !this.slowByPid) {
      this.slowRev = store.rev.slow;
      this.slowByPid = new Map();
      for (const s of store.slow.values()) {
        const l = this.slowByPid.get(s.entry.pid);
        if (l) l.push(s);
        else this.slowByPid.set(s.entry.pid, [s]);
      }
    }
    return this.slowByPid.get(pid) || [];
  }

  makeCard(p) {
    const title = h('span', { class: 'chead' });
    const flag = h('span');
    const meta = h('div', { class: 'cmeta' });
    const canvas = h('canvas');
    const el = h('div', { class: 'ccard', dataset: { pid: String(p.pid) } }, h('div', null, title, flag), meta, canvas);
    const c = { el, title, flag, meta, canvas, proc: p, onScreen: false, dirty: true, key: null, geom: null };
    canvas.addEventListener('mousemove', (e) => this.hover(c, e));
    canvas.addEventListener('mouseleave', () => {
      canvas.style.cursor = '';
      hideTooltip();
    });
    canvas.addEventListener('click', (e) => {
      const hit = this.hit(c, e);
      if (hit && hit.run) this.app.modal.openRun(c.proc, hit.run);
    });
    this.observer.observe(el);
    return c;
  }

  drawCard(c, p, now) {
    const app = this.app;
    const store = app.store;
    const from = now - W;
    const cells = store.samplesSince(p, from).filter((d) => d.t <= now && (d.busy || d.elapsed));
    const stats = this.paused == null ? app.stats(p).stats : processStats(p.samples.view(), from, now, app.ui.stuckThr);
    const verdict = this.paused == null ? app.stats(p).verdict : classify(stats);
    const runs = slowRunsOf(store, p, cells, app.ui.stuckThr, now, this.slowOf(p.pid));
    setText(c.title, `pid ${p.pid}`);
    setText(c.flag, verdict.state === 'saturated' ? ' SATURATED' : verdict.state === 'cpugil' ? ' CPU/GIL-BOUND' : '');
    c.flag.className = verdict.state === 'saturated' ? 'flag-sat' : 'flag-cpu';
    c.el.className = 'ccard' + (verdict.state === 'saturated' ? ' saturated' : verdict.state === 'cpugil' ? ' cpugil' : '');
    c.title.parentElement.title =
      verdict.state === 'saturated' ? `Saturated: ${verdict.reasons.join(', ')}` : verdict.state === 'cpugil' ? `CPU/GIL-bound: ${verdict.cpuReasons.join(', ')} - ${verdict.lean}` : '';
    const parts = [
      p.group || 'embedded',
      `busy ${Math.round(stats.busyMean * 100)}% (peak ${Math.round(stats.busyPeak * 100)}%)`,
      `cpu ${Math.round(stats.cpuMean * 100)}% (peak ${Math.round(stats.cpuPeak * 100)}%)`,
    ];
    if (stats.hasQueue) parts.push(`queue ${fmtSecShort((stats.queMs ?? 0) / 1000)} (peak ${fmtSecShort(stats.queuePeakMs / 1000)})`);
    if (stats.hasDaemon) parts.push(`daemon ${fmtSecShort((stats.daeMs ?? 0) / 1000)} (peak ${fmtSecShort(stats.daemonPeakMs / 1000)})`);
    parts.push(`${runs.length} slow request${runs.length === 1 ? '' : 's'}`);
    setText(c.meta, parts.join(' · '));
    // heatmap
    const slots = cells.length ? slotCount(cells) : 1;
    const rowH = slots <= 10 ? 18 : Math.max(8, Math.floor(240 / slots));
    const cssH = PAD.t + PAD.b + rowH * slots;
    if (c.canvas.style.height !== cssH + 'px') c.canvas.style.height = cssH + 'px';
    // The slot labels and the time axis only change with the canvas or the
    // slot count: text is the dearest thing to draw, so they stay painted
    // and each redraw repaints the (opaque) plot area only.
    // A new card's canvas is as wide as the others (no layout read).
    assumeWidthOf(c.canvas, this.measured);
    const { ctx, w, resized } = fitCanvas(c.canvas, cssH, true);
    this.measured = c.canvas;
    const pw = Math.max(1, w - PAD.l - PAD.r);
    const X = (t) => PAD.l + ((t - from) / W) * pw;
    const labelsKey = `${slots}|${rowH}|${w}|${cssH}`;
    if (resized || c.labelsKey !== labelsKey) {
      c.labelsKey = labelsKey;
      ctx.clearRect(0, 0, w, cssH);
      setFont(ctx);
      ctx.fillStyle = AXIS_TEXT;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      for (let s = 0; s < slots; s++) {
        if (rowH >= 10 || s % 2 === 0) ctx.fillText(String(s + 1), PAD.l - 4, PAD.t + s * rowH + rowH / 2);
      }
      ctx.textBaseline = 'top';
      ctx.textAlign = 'left';
      ctx.fillText('-60s', PAD.l, PAD.t + slots * rowH + 1);
      ctx.textAlign = 'right';
      ctx.fillText('now', PAD.l + pw, PAD.t + slots * rowH + 1);
    }
    // Heat cells: painted incrementally into the card's ring canvas, then
    // copied into the (opaque) plot area.
    this.paintHeat(c, cells, from, now, pw, slots, rowH, resized || c.labelsKey !== c.heatLabels);
    c.heatLabels = c.labelsKey;
    const r = c.ring;
    const a = ringX(from, pw);
    ctx.imageSmoothingEnabled = false;
    if (pw - a > 0) ctx.drawImage(r.canvas, a * r.dpr, 0, (pw - a) * r.dpr, r.canvas.height, PAD.l, PAD.t, pw - a, slots * rowH);
    if (a > 0) ctx.drawImage(r.canvas, 0, 0, a * r.dpr, r.canvas.height, PAD.l + pw - a, PAD.t, a, slots * rowH);
    const runRects = [];
    for (const r of runs) {
      const xs = X(r.start);
      const xe = X(r.end);
      let a = Math.max(PAD.l, xs);
      let b = Math.min(PAD.l + pw, xe);
      if (b - a < 1) b = a + 1;
      const y = PAD.t + r.slot * rowH;
      ctx.fillStyle = '#ff0000';
      ctx.fillRect(a, y, b - a, rowH - 1);
      ctx.strokeStyle = '#a01818';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(a, y + 0.5);
      ctx.lineTo(b, y + 0.5);
      ctx.moveTo(a, y + rowH - 1.5);
      ctx.lineTo(b, y + rowH - 1.5);
      if (xs >= PAD.l) {
        ctx.moveTo(a + 0.5, y);
        ctx.lineTo(a + 0.5, y + rowH - 1);
      }
      if (r.endKnown && xe <= PAD.l + pw) {
        ctx.moveTo(b - 0.5, y);
        ctx.lineTo(b - 0.5, y + rowH - 1);
      }
      ctx.stroke();
      if (r.record && b - a >= 8) {
        ctx.fillStyle = '#fff';
        ctx.fillRect(a + 2, y + 2, 3, 3);
      }
      runRects.push({ x0: a, x1: b, y0: y, y1: y + rowH, run: r });
    }
    c.geom = { cells, from, runRects, rowH, slots, pw };
    c.proc = p;
  }

  /**
   * Keeps the card's heat cells painted in a ring canvas one window wide,
   * in which a time has a fixed column (ringX): a redraw paints only the
   * cells that arrived since the previous one and blanks the time after the
   * newest cell (that column last showed a time one window ago), so a second
   * costs one column instead of the 60 × slots cells of a full repaint.
   * Cells are contiguous (each spans from its predecessor's stamp), so every
   * column of the window was painted or blanked within the last window.
   */
  paintHeat(c, cells, from, now, pw, slots, rowH, full) {
    const dpr = window.devicePixelRatio || 1;
    const ph = slots * rowH;
    const bw = Math.max(1, Math.round(pw * dpr));
    const bh = Math.max(1, Math.round(ph * dpr));
    let r = c.ring;
    if (!r) r = c.ring = { canvas: document.createElement('canvas'), dpr, lastT: -Infinity, now: -Infinity };
    if (r.canvas.width !== bw || r.canvas.height !== bh || r.dpr !== dpr) {
      r.canvas.width = bw;
      r.canvas.height = bh;
      r.dpr = dpr;
      full = true;
    }
    const g = r.canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    // A jump of half a window or more (a card back on screen), time going
    // back, or a process silent since before the window: repaint it all.
    if (full || now < r.now || now - r.now >= W / 2 || r.lastT < from) {
      g.fillStyle = PLOT_BG;
      g.fillRect(0, 0, pw, ph);
      r.lastT = -Infinity;
    }
    // [t0, t1] as one or two (wrapped) column ranges of the ring.
    const cols = (t0, t1, extra, fn) => {
      const x0 = ringX(t0, pw);
      const len = Math.min(pw, Math.max(1, ((t1 - t0) / W) * pw) + extra);
      if (x0 + len <= pw) fn(x0, len);
      else {
        fn(x0, pw - x0);
        fn(0, x0 + len - pw);
      }
    };
    // Cells grouped by colour: one fillStyle (a CSS colour parse) per colour.
    const byColor = new Map();
    let newest = r.lastT;
    for (let i = 0; i < cells.length; i++) {
      const d = cells[i];
      if (d.t <= r.lastT) continue;
      newest = d.t;
      const t0 = cellStart(cells, i, from);
      for (let s = 0; s < slots; s++) {
        const busy = d.busy ? d.busy[s] ?? 0 : 0;
        const color = heatColor(busy / d.period);
        let l = byColor.get(color);
        if (!l) byColor.set(color, (l = []));
        cols(t0, d.t, 0.5, (x, w) => l.push(x, s, w));
      }
      // blank the column first: it may show a time one window ago
      g.fillStyle = PLOT_BG;
      cols(t0, d.t, 0.5, (x, w) => g.fillRect(x, 0, w, ph));
    }
    for (const [color, l] of byColor) {
      g.fillStyle = color;
      for (let k = 0; k < l.length; k += 3) g.fillRect(l[k], l[k + 1] * rowH, l[k + 2], rowH - 1);
    }
    r.lastT = newest;
    // nothing yet after the newest cell
    const blankFrom = Math.max(from, Number.isFinite(newest) ? newest : from);
    if (now > blankFrom) {
      g.fillStyle = PLOT_BG;
      cols(blankFrom, now, 0, (x, w) => g.fillRect(x, 0, w, ph));
    }
    r.now = now;
  }

  hit(c, e) {
    const g = c.geom;
    if (!g) return null;
    const r = c.canvas.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    for (const rr of g.runRects) if (x >= rr.x0 - 1 && x <= rr.x1 + 1 && y >= rr.y0 && y < rr.y1) return { run: rr.run };
    const slot = Math.floor((y - PAD.t) / g.rowH);
    if (slot < 0 || slot >= g.slots) return null;
    const X = (t) => PAD.l + ((t - g.from) / W) * g.pw;
    const cells = g.cells;
    for (let i = 0; i < cells.length; i++) {
      const d = cells[i];
      const x0 = Math.max(PAD.l, X(cellStart(cells, i, g.from)));
      const x1 = Math.max(x0 + 1, X(d.t));
      if (x >= x0 && x <= x1) return { cell: d, slot };
    }
    return null;
  }

  hover(c, e) {
    const hit = this.hit(c, e);
    c.canvas.style.cursor = hit && hit.run ? 'pointer' : '';
    if (!hit) return hideTooltip();
    const p = c.proc;
    if (hit.run) {
      const r = hit.run;
      const lines = [`pid ${p.pid} · slot ${r.slot + 1} · slow request`, ['duration', fmtSecShort(r.duration) + (r.active ? ' (active)' : '')]];
      const rec = r.record ? this.app.store.slow.get(r.record) : null;
      if (rec) {
        const en = rec.entry;
        lines.push(`${en.method || '-'} ${cut(fullUrl(en), 60)}`);
        lines.push(['log id', en.log_id || '-']);
        lines.push(['cpu', en.state === 1 ? (en.duration > 0 ? Math.round(((en.cpu_user_time + en.cpu_system_time) / en.duration) * 100) + '%' : '-') : '(at completion)']);
      } else {
        lines.push({ text: 'no record: heuristic detection only', cls: 'muted' });
      }
      lines.push({ text: 'click: open details', cls: 'muted' });
      return showTooltip(e.clientX, e.clientY, lines, 'slow');
    }
    const d = hit.cell;
    const s = hit.slot;
    const busy = d.busy ? d.busy[s] ?? 0 : 0;
    const cpu = d.cpuSlots ? d.cpuSlots[s] ?? 0 : 0;
    const el = d.elapsed ? d.elapsed[s] ?? 0 : 0;
    const mx = d.maxDur ? d.maxDur[s] ?? 0 : 0;
    showTooltip(e.clientX, e.clientY, [
      `pid ${p.pid} · slot ${s + 1}`,
      ['busy', Math.round((busy / d.period) * 100) + '%'],
      ['cpu', Math.round((cpu / d.period) * 100) + '%'],
      ['count', d.completed ? d.completed[s] ?? 0 : 0],
      ['elapsed', el > 0 ? fmtSecShort(el) : '-'],
      ['max', mx > 0 ? fmtSecShort(mx) : '-'],
    ]);
  }
}

export function fullUrl(en) {
  const path = (en.script_name || '') + (en.path_info || '') || '/';
  return en.hostname ? `${en.scheme || 'http'}://${en.hostname}${path}` : path;
}
