// GC tab: per process and interpreter — status row, overhead, collections
// per second, event timeline, pause distribution and generation pressure.
// Each GC event belongs to exactly one (pid, interpreter) series, so a
// multi-interpreter process's pauses are not counted twice (gap 33).

import { $, h, setText, setOptions, reconcile } from '../dom.js';
import { LineChart, drawHistogram, fitCanvas, FONT, AXIS_TEXT, GRID } from '../charts.js';
import { NBUCKETS, percentile } from '../hist.js';
import { GC_SUM_BIN_S, GC_HIST_BIN_S, GC_PAUSE_SCALE } from '../store.js';
import { fmtMs, fmtMsFine, fmtAxis } from '../format.js';

const GEN_COLORS = ['#4fc3f7', '#ffb74d', '#e57373'];

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
      const names = new Set(p.gcSnaps.keys());
      for (const n of p.gcBins.keys()) names.add(n);
      if (!names.size) continue;
      pidsWithGc.push(p.pid);
      for (const n of names) interps.add(n);
      if (this.ui.proc !== '*' && String(p.pid) !== this.ui.proc) continue;
      for (const n of [...names].sort()) {
        if (this.ui.interp !== '*' && n !== this.ui.interp) continue;
        out.push({ p, interp: n, snaps: p.gcSnaps.get(n), color: p.color });
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
    const key = [app.store.rev.gc, now, app.ui.group, this.ui.proc, this.ui.interp, this.ui.window, ctx.visible.length].join('|');
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
    for (const s of series) {
      s.events = [];
      const evs = s.p.gcEvents;
      for (let i = evs.lowerBound(from, (e) => e.t); i < evs.length; i++) {
        const e = evs.at(i);
        if (e.t <= now && e.interp === s.interp) s.events.push(e);
      }
      const bins = s.p.gcBins.get(s.interp);
      s.secs = [];
      s.hists = [];
      if (bins) {
        for (let i = bins.sec.lowerBound(from - GC_SUM_BIN_S, (b) => b.sec); i < bins.sec.length; i++) {
          const b = bins.sec.at(i);
          if (b.sec <= now) s.secs.push(b);
        }
        for (let i = bins.hist.lowerBound(from - GC_HIST_BIN_S, (b) => b.sec); i < bins.hist.length; i++) s.hists.push(bins.hist.at(i));
      }
      s.win = [];
      if (s.snaps) for (let i = s.snaps.lowerBound(from, (x) => x.t); i < s.snaps.length; i++) {
        const x = s.snaps.at(i);
        if (x.t <= now) s.win.push(x);
      }
      s.latest = s.win.length ? s.win[s.win.length - 1] : s.snaps ? s.snaps.last() : null;
    }
    this.job = { series, from, now };
    this.queue = ['status', 'overhead', 'rates', 'timeline', 'pauses', 'pressure'];
    this.runQueue();
  }

  pending() {
    return this.queue && this.queue.length > 0;
  }

  /** Draws panels until the frame budget is used (at least one per frame). */
  runQueue() {
    const t0 = performance.now();
    const { series, from, now } = this.job;
    while (this.queue && this.queue.length) {
      const task = this.queue.shift();
      if (task === 'status') this.drawStatus(series, from, now);
      else if (task === 'overhead') this.drawOverhead(series, from, now);
      else if (task === 'rates') this.drawRates(series, from, now);
      else if (task === 'timeline') this.drawTimeline(series, from, now);
      else if (task === 'pauses') this.drawPauses(series, from);
      else if (task === 'pressure') this.drawPressure(series);
      if (performance.now() - t0 > 6) break;
    }
  }

  drawStatus(series) {
    const latest = series.map((s) => s.latest).filter(Boolean);
    const parts = [];
    if (latest.length) {
      const enabled = latest.filter((x) => x.f.gc_is_enabled).length;
      parts.push(enabled === 0 ? 'GC disabled' : enabled === latest.length ? 'GC enabled' : 'GC enabled (some processes disabled)');
      const th = (x) => `${x.f.gc_threshold0}/${x.f.gc_threshold1}/${x.f.gc_threshold2}`;
      const t0 = th(latest[0]);
      parts.push(`thresholds ${t0}${latest.some((x) => th(x) !== t0) ? ' (varies)' : ''}`);
      const sum = (k) => latest.reduce((a, x) => a + (x.f[k] || 0), 0);
      parts.push(`counts ${sum('gc_count0')}/${sum('gc_count1')}/${sum('gc_count2')}`);
      parts.push(`cumulative ${sum('gc_collections0')}/${sum('gc_collections1')}/${sum('gc_collections2')}`);
      parts.push(`frozen ${sum('gc_freeze_count')}`);
    } else parts.push('no GC snapshots in window');
    const dropped = series.reduce((a, s) => a + s.win.reduce((b, x) => b + (x.f.gc_dropped_events || 0), 0), 0);
    parts.push(`events not sent by the reporter (cap 64/tick): ${dropped}`);
    parts.push(`series ${series.length}`);
    $('#gc-status').replaceChildren(...parts.map((t) => h('span', { text: t, class: /not sent.*: [1-9]/.test(t) ? 'warn' : '' })));
  }

  drawOverhead(series, from, now) {
    const out = [];
    let total = 0;
    let maxPct = 0;
    for (const s of series) {
      const t = [];
      const v = [];
      const bins = s.secs;
      // time in collections per 10 s bin, plotted at the bin's end
      for (const b of bins) {
        const end = b.sec + GC_SUM_BIN_S;
        if (end > now + GC_SUM_BIN_S) continue;
        t.push(Math.min(end, now));
        v.push((b.dur / GC_SUM_BIN_S) * 100);
      }
      const sum = bins.reduce((a, b) => a + b.dur, 0);
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
    for (const s of series) {
      for (let g = 0; g < 3; g++) {
        const t = [];
        const v = [];
        const k = 'gc_collections' + g;
        for (let i = 1; i < s.win.length; i++) {
          const a = s.win[i - 1];
          const b = s.win[i];
          const dt = b.t - a.t;
          const dc = (b.f[k] || 0) - (a.f[k] || 0);
          if (dt <= 0 || dc < 0) continue;
          t.push(b.t);
          v.push(dc / dt);
        }
        out.push({ color: GEN_COLORS[g], t, v });
        if (s.win.length >= 2) {
          const d = (s.win[s.win.length - 1].f[k] || 0) - (s.win[0].f[k] || 0);
          if (d > 0) delta[g] += d;
        }
      }
      if (s.win.length >= 2) span = Math.max(span, s.win[s.win.length - 1].t - s.win[0].t);
    }
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
      for (const b of s.secs) {
        n += b.n0 + b.n1 + b.n2;
        total += b.dur;
      }
      for (const e of s.events) {
        if (e.gen === 2) max2 = Math.max(max2, e.dur);
        else max01 = Math.max(max01, e.dur);
      }
    }
    max2 = max2 > 0 ? max2 * 1.1 : 0.001;
    max01 = max01 > 0 ? max01 * 1.1 : 0.001;
    ctx.font = FONT;
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
    // At most ~4000 dots in all: the newest events of each series.
    const perSeries = Math.max(20, Math.floor(4000 / Math.max(1, series.length)));
    for (const s of series) {
      ctx.fillStyle = s.color;
      ctx.beginPath();
      const evs = s.events.length > perSeries ? s.events.slice(-perSeries) : s.events;
      for (const e of evs) {
        const band = e.gen === 2 ? top : bot;
        const mx = e.gen === 2 ? max2 : max01;
        const x = X(e.t);
        const y = band.y + band.h - (e.dur / mx) * band.h;
        ctx.rect(x - 1, y - 1, 2.5, 2.5);
      }
      ctx.fill();
    }
    setText($('#ro-gc-events'), `events ${n} (newest ${series.reduce((a, s) => a + s.events.length, 0)} drawn) gc time ${fmtAxis((total / this.ui.window / Math.max(1, series.length)) * 100)}%`);
  }

  drawPauses(series, from) {
    const counts = new Float64Array(NBUCKETS);
    let max = 0;
    for (const s of series) {
      for (const b of s.hists) if (b.sec + GC_HIST_BIN_S > from) for (let i = 0; i < NBUCKETS; i++) counts[i] += b.h[i];
      for (const b of s.secs) if (b.max > max) max = b.max;
    }
    let n = 0;
    for (let i = 0; i < NBUCKETS; i++) n += counts[i];
    drawHistogram($('#ch-gc-pauses'), counts, [], { noLabels: true, color: '#81c784', empty: 'no GC events in window' });
    const q = (p) => fmtMsFine(percentile(counts, p) / GC_PAUSE_SCALE);
    setText($('#ro-gc-pauses'), n ? `n ${n} p50 ${q(0.5)} p95 ${q(0.95)} p99 ${q(0.99)} max ${fmtMsFine(max * 1000)}` : 'n 0');
  }

  drawPressure(series) {
    if (!this.pressureRows) this.pressureRows = new Map();
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
        r = { bars, sig: '', el: h('div', { class: 'pressure-row' }, h('span', { class: 'lab', style: { color: s.color }, text: `pid ${s.p.pid} · ${interpLabel(s.interp)}` }), ...bars.map((b) => b.el)) };
        this.pressureRows.set(key, r);
      }
      const f = s.latest ? s.latest.f : {};
      const sig = [0, 1, 2].map((g) => `${f['gc_count' + g] || 0}/${f['gc_threshold' + g] || 0}`).join(' ');
      if (sig !== r.sig) {
        r.sig = sig;
        [0, 1, 2].forEach((g) => {
          const c = f['gc_count' + g] || 0;
          const t = f['gc_threshold' + g] || 0;
          const b = r.bars[g];
          b.fill.style.width = (t > 0 ? Math.min(1, c / t) : 0) * 100 + '%';
          b.bar.title = `${c} / ${t}`;
          b.txt.textContent = ` ${c}/${t}`;
        });
      }
      rows.push(r.el);
    }
    for (const k of this.pressureRows.keys()) if (!seen.has(k)) this.pressureRows.delete(k);
    reconcile($('#gc-pressure'), rows);
  }
}
