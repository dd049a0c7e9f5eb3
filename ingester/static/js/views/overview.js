// Overview tab: six line charts with restart markers and the time
// distribution histogram with p50/p95/p99.

import { $, h, setText, showTooltip, hideTooltip } from '../dom.js';
import { LineChart, drawHistogram, PCT_COLORS } from '../charts.js';
import { throughputValue, PHASE_KEYS, reasonCategory, CATEGORY_COLORS, gilContention } from '../stats.js';
import { percentile, bucketPosition, bucketRangeText, bucketLower, bucketUpper } from '../hist.js';
import { fmtMs, humanBytes, fmtAxis, fmtClock } from '../format.js';

const W = 60;
// Charts are drawn while the frame (from its start) stays under this.
const FRAME_BUDGET_MS = 6;

const CHARTS = [
  { id: 'throughput', value: (d, ui) => throughputValue(d, ui.thrMode) },
  { id: 'capacity', value: (d) => d.cap },
  { id: 'cpu', value: (d) => d.cpu },
  { id: 'resp', value: (d) => (d.resp == null ? null : d.resp * 1000) },
  { id: 'rss', value: (d) => d.rss / 1048576 },
  { id: 'phase', value: (d, ui) => { const v = d[PHASE_KEYS[ui.phase]]; return v == null || (!d.hasApp) ? null : v * 1000; } },
];

export class Overview {
  constructor(app) {
    this.app = app;
    this.ui = { thrMode: 'requests', phase: 'application', histField: 'request_time', histWindow: 60 };
    this.charts = {};
    for (const c of CHARTS) {
      const canvas = $('#ch-' + c.id);
      const chart = new LineChart(canvas);
      this.charts[c.id] = chart;
      canvas.addEventListener('mousemove', (e) => {
        const r = canvas.getBoundingClientRect();
        const info = chart.markerAt(e.clientX - r.left);
        if (info) showTooltip(e.clientX, e.clientY, info);
        else hideTooltip();
      });
      canvas.addEventListener('mouseleave', hideTooltip);
    }
    const bind = (sel, key, num) =>
      $(sel).addEventListener('change', (e) => {
        this.ui[key] = num ? Number(e.target.value) : e.target.value;
        this.key = null;
        app.schedule(true);
      });
    bind('#thr-mode', 'thrMode');
    bind('#phase-mode', 'phase');
    bind('#hist-field', 'histField');
    bind('#hist-window', 'histWindow', true);
    const hc = $('#ch-hist');
    this.histHover = null;
    hc.addEventListener('mousemove', (e) => {
      const r = hc.getBoundingClientRect();
      this.histHover = { x: e.clientX - r.left, cx: e.clientX, cy: e.clientY };
      this.histTooltip();
    });
    hc.addEventListener('mouseleave', () => {
      this.histHover = null;
      hideTooltip();
    });
    this.key = null;
  }

  /** True while a redraw is spread over frames. */
  pending() {
    return this.queue && this.queue.length > 0;
  }

  draw(ctx) {
    const app = this.app;
    const st = app.store;
    const key = [st.rev.samples, st.rev.life, st.rev.hist, ctx.now, app.ui.group, JSON.stringify(app.ui.markers), ctx.visible.length].join('|');
    if (ctx.force || key !== this.key) {
      this.key = key;
      const from = ctx.now - W;
      const lists = ctx.visible.map((p) => st.samplesSince(p, from));
      const latest = [];
      for (const list of lists) if (list.length) latest.push(list[list.length - 1]);
      this.job = { from, now: ctx.now, visible: ctx.visible, lists, latest, markers: this.markers(from, ctx.now) };
      // Restart the queue; charts not yet drawn are drawn with the new data.
      this.queue = [...CHARTS, 'hist'];
    }
    // Draw charts while the frame (from its start, sidebar included) stays
    // under the budget, judged by each chart's previous cost; at least one.
    const t0 = ctx.t0 ?? performance.now();
    const cost = this.cost || (this.cost = {});
    let drawn = 0;
    while (this.queue && this.queue.length) {
      const c = this.queue[0];
      const name = c === 'hist' ? 'hist' : c.id;
      const ts = performance.now();
      if (drawn > 0 && ts - t0 + (cost[name] ?? 2) > FRAME_BUDGET_MS) break;
      this.queue.shift();
      drawn++;
      if (c === 'hist') this.drawHistogram(ctx);
      else this.drawChart(c, this.job);
      cost[name] = performance.now() - ts;
    }
  }

  drawChart(c, job) {
    // One pass per process into reused scratch arrays (no per-redraw garbage
    // proportional to processes × samples beyond the small series records).
    const series = this.scratch || (this.scratch = []);
    const n = job.visible.length;
    for (let k = 0; k < n; k++) {
      const list = job.lists[k];
      let s = series[k];
      if (!s) s = series[k] = { color: '', t: new Float64Array(128), v: new Float64Array(128), len: 0 };
      if (s.t.length < list.length) {
        s.t = new Float64Array(list.length * 2);
        s.v = new Float64Array(list.length * 2);
      }
      let m = 0;
      for (let i = 0; i < list.length; i++) {
        const d = list[i];
        const y = c.value(d, this.ui);
        if (y == null || !Number.isFinite(y)) continue;
        s.t[m] = d.t;
        s.v[m] = y;
        m++;
      }
      s.len = m;
      s.color = job.visible[k].color;
    }
    series.length = n;
    this.charts[c.id].draw({ series, from: job.from, to: job.now, markers: job.markers });
    this.readout(c.id, job.latest);
  }

  markers(from, to) {
    const app = this.app;
    const out = [];
    const ring = app.store.lifecycle;
    for (let i = 0; i < ring.length; i++) {
      const ev = ring.at(i);
      if (ev.kind !== 'process_stopping' || ev.stamp < from || ev.stamp > to) continue;
      if (!app.groupOk(ev.process_group || '')) continue;
      const cat = reasonCategory(ev.shutdown_reason || '');
      if (!app.ui.markers[cat]) continue;
      const info = [
        `restart marker · ${cat}`,
        ['time', new Date(ev.stamp * 1000).toLocaleTimeString()],
        ['reason', ev.shutdown_reason || '(unknown)'],
        ['pid', ev.pid],
      ];
      if (ev.process_group) info.push(['group', ev.process_group]);
      info.push(['in-flight at decision', ev.active_requests_at_decision ?? 0]);
      out.push({ t: ev.stamp, color: CATEGORY_COLORS[cat], info });
    }
    return out;
  }

  readout(id, latest) {
    const el = $('#ro-' + id);
    const n = latest.length;
    const sum = (f) => latest.reduce((a, d) => a + (f(d) || 0), 0);
    if (!n) return el.replaceChildren();
    const weighted = (f) => {
      let rc = 0;
      let acc = 0;
      for (const d of latest) {
        const v = f(d);
        if (v == null || !d.rc) continue;
        rc += d.rc;
        acc += v * d.rc;
      }
      return rc > 0 ? acc / rc : null;
    };
    switch (id) {
      case 'throughput': {
        const mode = this.ui.thrMode;
        const tot = sum((d) => throughputValue(d, mode));
        const unit = mode === 'requests' ? 'req/s' : mode === '5xx' || mode === '4xx' ? '/s' : null;
        const fmt = (v) => (unit ? fmtAxis(v) + ' ' + unit : humanBytes(v) + '/s');
        const parts = [`total ${fmt(tot)} · mean ${fmt(tot / n)}`];
        const nodes = [h('span', { text: parts[0] })];
        if (mode === 'requests') {
          const rc = sum((d) => d.rc);
          const s1 = sum((d) => d.s1);
          const s4 = sum((d) => d.s4);
          const s5 = sum((d) => d.s5);
          const share = (x) => (rc > 0 ? ((x / rc) * 100).toFixed(1) : '0.0') + '%';
          if (s1 > 0) nodes.push(' · ', h('span', { class: 'amber', text: `1xx ${s1}` }));
          nodes.push(` · 4xx ${share(s4)} · `, h('span', { class: s5 > 0 ? 'red' : '', text: `5xx ${share(s5)}` }));
        }
        el.replaceChildren(...nodes);
        return;
      }
      case 'capacity':
        return setText(el, `mean ${(sum((d) => d.cap) / n * 100).toFixed(0)}%`);
      case 'cpu': {
        const t = sum((d) => d.cpu);
        return setText(el, `total ${t.toFixed(2)} · mean ${(t / n).toFixed(2)} cores`);
      }
      case 'resp': {
        const m = weighted((d) => d.resp);
        return setText(el, m == null ? 'no requests' : `mean ${fmtMs(m * 1000)} (request-weighted)`);
      }
      case 'rss': {
        const t = sum((d) => d.rss) / 1048576;
        return setText(el, `total ${t.toFixed(0)} MB · mean ${(t / n).toFixed(0)} MB`);
      }
      case 'phase': {
        const k = PHASE_KEYS[this.ui.phase];
        const m = weighted((d) => d[k]);
        return setText(el, m == null ? 'no data' : `mean ${fmtMs(m * 1000)}`);
      }
    }
  }

  drawHistogram() {
    const app = this.app;
    const field = this.ui.histField;
    const hist = app.store.histogram(field, this.ui.histWindow, (g) => app.groupOk(g));
    const p50 = percentile(hist.counts, 0.5);
    const p95 = percentile(hist.counts, 0.95);
    const p99 = percentile(hist.counts, 0.99);
    this.hist = hist;
    this.histGeom = drawHistogram($('#ch-hist'), hist.counts, [
      { pos: bucketPosition(p50), color: PCT_COLORS.p50 },
      { pos: bucketPosition(p95), color: PCT_COLORS.p95 },
      { pos: bucketPosition(p99), color: PCT_COLORS.p99 },
    ]);
    const el = $('#ro-hist');
    if (!hist.n) {
      el.replaceChildren(h('span', { class: 'muted', text: 'no data yet' }));
      return;
    }
    const ms = (s) => (s == null ? '-' : fmtMs(s * 1000));
    const nodes = [
      `n ${Math.round(hist.n).toLocaleString()} min ${ms(hist.min)} `,
      h('span', { class: 'p50', text: 'p50' }), ` ${fmtMs(p50)} `,
      h('span', { class: 'p95', text: 'p95' }), ` ${fmtMs(p95)} `,
      h('span', { class: 'p99', text: 'p99' }), ` ${fmtMs(p99)} `,
      `max ${ms(hist.max)}`,
    ];
    if (field === 'gil_wait_time') {
      const s = hist.switchInt;
      if (s != null) {
        const sm = s * 1000;
        nodes.push(` · switch ${sm < 1 ? sm.toFixed(3) : sm.toFixed(1)}ms`);
        const q = gilContention(hist.counts, s, bucketLower, bucketUpper);
        nodes.push(q ? ` · q ${q.kind === 'fallback' ? '~' : ''}${q.q.toFixed(2)} (${q.label})` : ' · q -');
      }
    }
    el.replaceChildren(...nodes);
    if (this.histHover) this.histTooltip();
  }

  histTooltip() {
    const g = this.histGeom;
    const hist = this.hist;
    const hv = this.histHover;
    if (!g || !hist || !hv || !hist.n) return hideTooltip();
    const i = Math.floor((hv.x - g.pad.l) / g.bw);
    if (i < 0 || i >= 65) return hideTooltip();
    let cum = 0;
    for (let k = 0; k <= i; k++) cum += hist.counts[k];
    const c = hist.counts[i];
    showTooltip(hv.cx, hv.cy, [
      bucketRangeText(i),
      ['count', Math.round(c).toLocaleString()],
      ['bucket', ((c / hist.n) * 100).toFixed(1) + '%'],
      ['cumulative', `${((cum / hist.n) * 100).toFixed(1)}% ≤ ${i >= 64 ? '∞' : fmtMs(bucketUpper(i))}`],
    ]);
  }
}

export { fmtClock };
