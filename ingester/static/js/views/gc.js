// GC tab: per process and interpreter — status row, overhead, collections
// per second, event timeline, pause distribution and generation pressure.
// Each GC event belongs to exactly one (pid, interpreter) series, so a
// multi-interpreter process's pauses are not counted twice
// (docs/compatibility.md C31).

import { $, h, setText, setOptions, reconcile } from '../dom.js';
import { LineChart, drawHistogram, fitCanvas, setFont, AXIS_TEXT, GRID } from '../charts.js';
import { NBUCKETS } from '../hist.js';
import { GC_SUM_BIN_S, GC_SNAP_FIELDS, gcSecBins, gcWindow, gcPausePercentile } from '../store.js';

// Field indexes in the store's GC snapshot ring.
const F = Object.fromEntries(GC_SNAP_FIELDS.map((k, i) => [k, i]));
import { fmtMs, fmtMsFine, fmtAxis } from '../format.js';
import { GC_DROPPED_LABEL } from '../helptext.js';

const GEN_COLORS = ['#4fc3f7', '#ffb74d', '#e57373'];
// A frame draws panels while it stays under PANEL_BUDGET_MS; when the
// setup (series, windows) already took SETUP_BUDGET_MS, panels start next frame.
const PANEL_BUDGET_MS = 6;
const SETUP_BUDGET_MS = 3;

const interpLabel = (n) => (n === '' ? '(main)' : n);

export class GcView {
  constructor(app) {
    this.app = app;
    this.ui = { proc: '*', interp: '*', window: 60 };
    this.paused = null;
    this.key = null;
    this.overhead = new LineChart($('#ch-gc-overhead'));
    this.rate = new LineChart($('#ch-gc-rate'));
    const ch = (sel, k, num) =>
      $(sel).addEventListener('change', (e) => {
        this.ui[k] = num ? Number(e.target.value) : e.target.value;
        this.key = null;
        app.schedule(true);
      });
    ch('#gc-proc', 'proc');
    ch('#gc-interp', 'interp');
    ch('#gc-window', 'window', true);
    $('#gc-pause').addEventListener('click', (e) => {
      this.paused = this.paused == null ? app.store.now : null;
      setText(e.target, this.paused == null ? 'Pause' : 'Resume');
      this.key = null;
      app.schedule(true);
    });
  }

  /** (pid, interpreter) series of visible processes passing the selectors. */
  series(ctx) {
    const out = [];
    const interps = new Set();
    const pidsWithGc = [];
    for (const p of ctx.visible) {
      if (!p.gc.size) continue;
      pidsWithGc.push(p.pid);
      for (const n of p.gc.keys()) interps.add(n);
      if (this.ui.proc !== '*' && String(p.pid) !== this.ui.proc) continue;
      const names = p.gc.size === 1 ? [...p.gc.keys()] : [...p.gc.keys()].sort();
      for (const n of names) {
        if (this.ui.interp !== '*' && n !== this.ui.interp) continue;
        out.push({ p, interp: n, gs: p.gc.get(n), color: p.color });
      }
    }
    this.ui.proc = setOptions($('#gc-proc'), [{ value: '*', label: 'All' }, ...pidsWithGc.map((pid) => ({ value: String(pid), label: `pid ${pid}` }))], '*');
    const showInterp = interps.size > 1;
    $('#gc-interp-wrap').hidden = !showInterp;
    this.ui.interp = setOptions($('#gc-interp'), [{ value: '*', label: 'All' }, ...[...interps].sort().map((n) => ({ value: n, label: interpLabel(n) }))], '*');
    return out;
  }

  draw(ctx) {
    const app = this.app;
    const now = this.paused ?? ctx.now;
    // GC data moves in reporter seconds (snapshots each tick, 10 s sums):
    // the panels follow the clock, not every one of hundreds of events/s.
    const key = [Math.floor(now), app.ui.group, this.ui.proc, this.ui.interp, this.ui.window, ctx.visible.length].join('|');
    this.frameT0 = ctx.t0 ?? performance.now();
    if (!ctx.force && key === this.key) {
      if (this.pending()) this.runQueue();
      return;
    }
    this.key = key;
    const from = now - this.ui.window;
    const series = this.series(ctx);
    const empty = series.length === 0;
    $('#gc-empty').hidden = !empty;
    $('#gc-grid').hidden = empty;
    $('#gc-pressure').parentElement.hidden = empty;
    if (empty) {
      $('#gc-status').replaceChildren();
      return;
    }
    const ring = app.store.gcSnaps;
    const bySid = new Map();
    for (const s of series) {
      s.events = []; // slots in the process's event ring
      const evs = s.p.gcEvents;
      for (let i = evs.lowerBound(from), n = evs.length; i < n; i++) {
        const j = evs.slot(i);
        if (evs.t[j] <= now && evs.sid[j] === s.gs.sid) s.events.push(j);
      }
      // 10 s sums (offsets into gs.sec) for the overhead chart; the
      // window's counts, time and pauses (the bin the window's start cuts
      // counted from raw events, not whole)
      s.secs = gcSecBins(s.gs, from - GC_SUM_BIN_S, now);
      s.w = gcWindow(s.p, s.gs, from, now, now >= app.store.now);
      s.win = []; // physical slots of this series' snapshots in the window
      bySid.set(s.gs.sid, s);
    }
    // One pass over the window of the store-wide snapshot ring (arrival
    // order is near time order: start a little early, filter exactly).
    for (let i = ring.lowerBound(from - 5), n = ring.length; i < n; i++) {
      const j = ring.slot(i);
      const t = ring.t[j];
      if (t < from || t > now) continue;
      const s = bySid.get(ring.sid[j]);
      if (s) s.win.push(j);
    }
    for (const s of series) {
      if (s.win.length > 1) s.win.sort((a, b) => ring.t[a] - ring.t[b]);
      s.latest = s.win.length ? s.win[s.win.length - 1] : ring.latestOf(s.gs);
      if (s.latest < 0) s.latest = null;
    }
    this.ring = ring;
    this.job = { series, from, now };
    this.queue = ['status', 'overhead', 'rates', 'timeline', 'pauses', 'pressure'];
    this.runQueue();
  }

  pending() {
    return this.queue && this.queue.length > 0;
  }

  /**
   * Draws panels while the frame (from its start, setup included) stays
   * under the budget, judged by each panel's previous cost; at least one
   * panel per frame. A panel left over is drawn next frame (pending()).
   */
  runQueue() {
    const t0 = this.frameT0 ?? performance.now();
    const { series, from, now } = this.job;
    const cost = this.cost || (this.cost = {});
    let drawn = 0;
    while (this.queue && this.queue.length) {
      const task = this.queue[0];
      const ts = performance.now();
      if (ts - t0 + (cost[task] ?? 3) > PANEL_BUDGET_MS && (drawn > 0 || (ts - t0 > SETUP_BUDGET_MS && !this.skipped))) {
        if (!drawn) this.skipped = true; // next frame draws one whatever it costs
        break;
      }
      this.skipped = false;
      this.queue.shift();
      drawn++;
      if (task === 'status') this.drawStatus(series, from, now);
      else if (task === 'overhead') this.drawOverhead(series, from, now);
      else if (task === 'rates') this.drawRates(series, from, now);
      else if (task === 'timeline') this.drawTimeline(series, from, now);
      else if (task === 'pauses') this.drawPauses(series);
      else if (task === 'pressure') this.drawPressure(series);
      const te = performance.now();
      cost[task] = te - ts;
      this.app.perf.recordSection('gc.' + task, te - ts);
    }
  }

  drawStatus(series) {
    const ring = this.ring;
    const latest = series.map((s) => s.latest).filter((j) => j != null);
    const fv = (j, k) => ring.field(j, F[k]);
    const parts = [];
    if (latest.length) {
      const enabled = latest.filter((j) => fv(j, 'gc_is_enabled')).length;
      parts.push(enabled === 0 ? 'GC disabled' : enabled === latest.length ? 'GC enabled' : 'GC enabled (some processes disabled)');
      const th = (j) => `${fv(j, 'gc_threshold0')}/${fv(j, 'gc_threshold1')}/${fv(j, 'gc_threshold2')}`;
      const t0 = th(latest[0]);
      parts.push(`thresholds ${t0}${latest.some((j) => th(j) !== t0) ? ' (varies)' : ''}`);
      const sum = (k) => latest.reduce((a, j) => a + fv(j, k), 0);
      parts.push(`counts ${sum('gc_count0')}/${sum('gc_count1')}/${sum('gc_count2')}`);
      parts.push(`cumulative ${sum('gc_collections0')}/${sum('gc_collections1')}/${sum('gc_collections2')}`);
      parts.push(`frozen ${sum('gc_freeze_count')}`);
    } else parts.push('no GC snapshots in window');
    const dropped = series.reduce((a, s) => a + s.win.reduce((b, j) => b + fv(j, 'gc_dropped_events'), 0), 0);
    parts.push(`${GC_DROPPED_LABEL}: ${dropped}`);
    parts.push(`series ${series.length}`);
    // Reuse the spans: only changed text is written.
    const box = $('#gc-status');
    while (box.children.length < parts.length) box.append(h('span'));
    while (box.children.length > parts.length) box.lastElementChild.remove();
    parts.forEach((t, i) => {
      const el = box.children[i];
      setText(el, t);
      const cls = t.startsWith(GC_DROPPED_LABEL) && dropped > 0 ? 'warn' : '';
      if (el.className !== cls) el.className = cls;
    });
  }

  drawOverhead(series, from, now) {
    const out = [];
    let total = 0;
    let maxPct = 0;
    for (const s of series) {
      const t = [];
      const v = [];
      const sec = s.gs.sec;
      // time in collections per 10 s bin, plotted at the bin's end
      let sum = 0;
      for (const o of s.secs) {
        const end = sec[o] + GC_SUM_BIN_S;
        sum += sec[o + 1];
        if (end > now + GC_SUM_BIN_S) continue;
        // the newest bin is still filling: its share of the time elapsed so far
        const span = Math.min(GC_SUM_BIN_S, Math.max(1, now - sec[o]));
        t.push(Math.min(end, now));
        v.push((sec[o + 1] / span) * 100);
      }
      total += sum;
      maxPct = Math.max(maxPct, (sum / this.ui.window) * 100);
      out.push({ color: s.color, t, v });
    }
    this.overhead.draw({ series: out, from, to: now });
    setText($('#ro-gc-overhead'), `mean ${fmtAxis((total / this.ui.window / series.length) * 100)}% · max ${fmtAxis(maxPct)}% of wall`);
  }

  drawRates(series, from, now) {
    const out = [];
    const delta = [0, 0, 0];
    let span = 0;
    const ring = this.ring;
    for (const s of series) {
      const w = s.win;
      for (let g = 0; g < 3; g++) {
        const t = [];
        const v = [];
        const k = F['gc_collections' + g];
        for (let i = 1; i < w.length; i++) {
          const dt = ring.t[w[i]] - ring.t[w[i - 1]];
          const dc = ring.field(w[i], k) - ring.field(w[i - 1], k);
          if (dt <= 0 || dc < 0) continue;
          t.push(ring.t[w[i]]);
          v.push(dc / dt);
        }
        out.push({ color: GEN_COLORS[g], t, v });
        if (w.length >= 2) {
          const d = ring.field(w[w.length - 1], k) - ring.field(w[0], k);
          if (d > 0) delta[g] += d;
        }
      }
      if (w.length >= 2) span = Math.max(span, ring.t[w[w.length - 1]] - ring.t[w[0]]);
    }
    // All three generations in one frame (one path per generation colour):
    // split over frames, generation 0 showed alone for a frame or two.
    this.rate.draw({ series: out, from, to: now });
    const el = $('#ro-gc-rate');
    el.replaceChildren(...[0, 1, 2].flatMap((g) => [h('span', { style: { color: GEN_COLORS[g] }, text: `gen${g}` }), ` ${span > 0 ? fmtAxis(delta[g] / span) : '0'}/s `]));
  }

  drawTimeline(series, from, now) {
    const canvas = $('#ch-gc-events');
    const { ctx, w, h: H } = fitCanvas(canvas);
    const pad = { l: 40, r: 6, t: 4, b: 14 };
    const pw = w - pad.l - pad.r;
    const ph = H - pad.t - pad.b;
    const X = (t) => pad.l + ((t - from) / (now - from)) * pw;
    const top = { y: pad.t, h: ph * 0.3 };
    const bot = { y: pad.t + ph * 0.34, h: ph * 0.66 };
    let max2 = 0;
    let max01 = 0;
    let n = 0;
    let total = 0;
    for (const s of series) {
      n += s.w.n;
      total += s.w.dur;
      const ring = s.p.gcEvents;
      for (const j of s.events) {
        if (ring.gen[j] === 2) max2 = Math.max(max2, ring.dur[j]);
        else max01 = Math.max(max01, ring.dur[j]);
      }
    }
    max2 = max2 > 0 ? max2 * 1.1 : 0.001;
    max01 = max01 > 0 ? max01 * 1.1 : 0.001;
    setFont(ctx);
    ctx.strokeStyle = GRID;
    ctx.fillStyle = AXIS_TEXT;
    for (const [band, mx, label] of [[top, max2, 'gen2'], [bot, max01, 'gen0+1']]) {
      ctx.strokeRect(pad.l + 0.5, band.y + 0.5, pw, band.h);
      ctx.textAlign = 'right';
      ctx.textBaseline = 'top';
      ctx.fillText(fmtMs(mx * 1000), pad.l - 3, band.y);
      ctx.textAlign = 'left';
      ctx.fillText(label, pad.l + 4, band.y + 2);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.fillText(`-${this.ui.window}s`, pad.l, pad.t + ph + 1);
    ctx.textAlign = 'right';
    ctx.fillText('now', pad.l + pw, pad.t + ph + 1);
    // At most ~2000 dots in all (the newest events of each series), drawn
    // as plain rectangles batched by colour (no path to fill).
    const perSeries = Math.max(5, Math.floor(2000 / Math.max(1, series.length)));
    const byColor = new Map();
    for (const s of series) {
      let l = byColor.get(s.color);
      if (!l) byColor.set(s.color, (l = []));
      const evs = s.events;
      const ring = s.p.gcEvents;
      for (let i = Math.max(0, evs.length - perSeries); i < evs.length; i++) {
        const j = evs[i];
        const g2 = ring.gen[j] === 2;
        const band = g2 ? top : bot;
        const mx = g2 ? max2 : max01;
        l.push(X(ring.t[j]) - 1, band.y + band.h - (ring.dur[j] / mx) * band.h - 1);
      }
    }
    for (const [color, l] of byColor) {
      ctx.fillStyle = color;
      for (let k = 0; k < l.length; k += 2) ctx.fillRect(l[k], l[k + 1], 2.5, 2.5);
    }
    setText($('#ro-gc-events'), `events ${Math.round(n)} (newest ${series.reduce((a, s) => a + s.events.length, 0)} drawn) gc time ${fmtAxis((total / this.ui.window / Math.max(1, series.length)) * 100)}%`);
  }

  drawPauses(series) {
    const all = { counts: new Float64Array(NBUCKETS), max: 0 };
    for (const s of series) {
      for (let i = 0; i < NBUCKETS; i++) all.counts[i] += s.w.counts[i];
      if (s.w.max > all.max) all.max = s.w.max;
    }
    let n = 0;
    for (let i = 0; i < NBUCKETS; i++) n += all.counts[i];
    n = Math.round(n);
    drawHistogram($('#ch-gc-pauses'), all.counts, [], { noLabels: true, color: '#81c784', empty: 'no GC events in window' });
    const q = (p) => fmtMsFine(gcPausePercentile(all, p) * 1000);
    setText($('#ro-gc-pauses'), n ? `n ${n} p50 ${q(0.5)} p95 ${q(0.95)} p99 ${q(0.99)} max ${fmtMsFine(all.max * 1000)}` : 'n 0');
  }

  drawPressure(series) {
    if (!this.pressureRows) {
      this.pressureRows = new Map();
      // Rows off screen keep their old bars until scrolled into view: with
      // hundreds of series, writing every bar each second dominated the tab.
      this.pressureObserver = new IntersectionObserver(
        (entries) => {
          let stale = false;
          for (const en of entries) {
            const r = en.target.__row;
            if (!r) continue;
            r.onScreen = en.isIntersecting;
            if (r.onScreen && r.stale) stale = true;
          }
          if (stale) {
            this.key = null;
            this.app.schedule(true);
          }
        },
        { root: $('#content') },
      );
    }
    const rows = [];
    const seen = new Set();
    for (const s of series) {
      const key = `${s.p.pid}|${s.interp}|${s.color}`;
      seen.add(key);
      let r = this.pressureRows.get(key);
      if (!r) {
        const bars = [0, 1, 2].map((g) => {
          const fill = h('i', { style: { background: GEN_COLORS[g] } });
          const bar = h('span', { class: 'pbar' }, fill);
          const txt = h('span');
          return { fill, bar, txt, el: h('span', null, h('span', { class: 'muted', text: `g${g} ` }), bar, txt) };
        });
        r = { bars, sig: '', onScreen: false, stale: true, el: h('div', { class: 'pressure-row' }, h('span', { class: 'lab', style: { color: s.color }, text: `pid ${s.p.pid} · ${interpLabel(s.interp)}` }), ...bars.map((b) => b.el)) };
        r.el.__row = r;
        this.pressureRows.set(key, r);
        this.pressureObserver.observe(r.el);
      }
      rows.push(r.el);
      if (!r.onScreen) {
        r.stale = true;
        continue;
      }
      r.stale = false;
      const fv = (k) => (s.latest == null ? 0 : this.ring.field(s.latest, F[k]));
      const sig = [0, 1, 2].map((g) => `${fv('gc_count' + g)}/${fv('gc_threshold' + g)}`).join(' ');
      if (sig !== r.sig) {
        r.sig = sig;
        [0, 1, 2].forEach((g) => {
          const c = fv('gc_count' + g);
          const t = fv('gc_threshold' + g);
          const b = r.bars[g];
          b.fill.style.width = (t > 0 ? Math.min(1, c / t) : 0) * 100 + '%';
          b.bar.title = `${c} / ${t}`;
          b.txt.textContent = ` ${c}/${t}`;
        });
      }
    }
    for (const [k, r] of this.pressureRows) {
      if (seen.has(k)) continue;
      this.pressureObserver.unobserve(r.el);
      this.pressureRows.delete(k);
    }
    reconcile($('#gc-pressure'), rows);
  }
}
