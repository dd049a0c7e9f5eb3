// Time ranges for the Overview and Capacity tabs: "live" is the WebSocket's
// window (the tabs' own charts); 1 h, 6 h, 24 h and 7 d read the tiered
// history from GET /api/history with the page's group filter and replace
// the tab's content with six line charts. A ranged view is fetched again
// once per step of its answer (a new point at most that often), never per
// frame; its points are not kept beyond the one answer being shown.
//
// window.__telemetryHistory exposes what was last drawn (range, request,
// step, and per chart its point count, time span and axis labels) for the
// browser tests.

import { $, h, setText } from '../dom.js';
import { LineChart, PCT_COLORS } from '../charts.js';
import { fmtAxis, fmtMs } from '../format.js';

export const RANGES = ['live', '1h', '6h', '24h', '7d'];
const TABS = new Set(['overview', 'capacity']);
// A step shorter than this is fetched no more often (a 1 h range has 12 s).
const MIN_REFRESH_S = 5;

const STATUS_COLORS = ['#90a4ae', '#66bb6a', '#4fc3f7', '#ffb74d', '#e57373'];
const MB = 1048576;

// Each chart: its title and its series as (colour, label, value of a point
// and the step, or null); the readout is the last series' largest value.
const CHARTS = [
  {
    id: 'throughput',
    title: 'Throughput',
    series: [['#4fc3f7', 'req/s', (p) => p.rate]],
  },
  {
    id: 'latency',
    title: 'Response time percentiles (ms)',
    series: ['p50', 'p95', 'p99'].map((k) => [
      PCT_COLORS[k],
      k,
      (p) => (p.latency.total.count > 0 && p.latency.total[k] != null ? p.latency.total[k] * 1000 : null),
    ]),
  },
  {
    id: 'status',
    title: 'Status classes (/s)',
    series: [0, 1, 2, 3, 4].map((i) => [STATUS_COLORS[i], `${i + 1}xx`, (p, step) => p.status[i] / step]),
  },
  {
    id: 'cpu',
    title: 'CPU (cores)',
    series: [
      ['#ffb74d', 'system', (p) => p.cpu_system],
      ['#4fc3f7', 'user+system', (p) => p.cpu_user + p.cpu_system],
    ],
  },
  {
    id: 'capacity',
    title: 'Capacity utilization (%)',
    ymax: 100,
    series: [['#81c784', 'busy', (p) => (p.capacity_utilization == null ? null : p.capacity_utilization * 100)]],
  },
  {
    id: 'memory',
    title: 'Memory RSS (MB)',
    peak: 'peak',
    series: [
      ['#5c6bc0', 'min', (p) => p.gauges.rss_bytes.min / MB],
      ['#4fc3f7', 'mean', (p) => p.gauges.rss_bytes.mean / MB],
      ['#5c6bc0', 'max', (p) => p.gauges.rss_bytes.max / MB],
    ],
  },
];

/** Axis label of a stamp: "HH:MM" within a day's range, else "MM-DD HH:MM". */
export function axisLabel(stamp, span) {
  const d = new Date(stamp * 1000);
  const p = (n) => String(n).padStart(2, '0');
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  return span > 86400 ? `${p(d.getMonth() + 1)}-${p(d.getDate())} ${hm}` : hm;
}

/**
 * Series for LineChart from an answer's points: one run per colour and
 * stretch without gaps (a step with no point breaks the line rather than
 * joining across it).
 */
export function chartSeries(spec, points, step) {
  const out = [];
  for (const [color, , value] of spec.series) {
    let run = null;
    let last = -Infinity;
    for (const p of points) {
      const v = value(p, step);
      if (v == null || !Number.isFinite(v)) {
        run = null;
        continue;
      }
      if (!run || p.t - last > step) {
        run = { color, t: [], v: [] };
        out.push(run);
      }
      run.t.push(p.t);
      run.v.push(v);
      last = p.t;
    }
  }
  return out;
}

export class HistoryView {
  constructor(app) {
    this.app = app;
    this.range = 'live';
    this.tab = app.ui.tab;
    this.answer = null;
    this.timer = null;
    this.seq = 0;
    this.exposed = { range: 'live', url: null, drawnUrl: null, step: null, fetches: 0, error: null, drawn: {} };
    window.__telemetryHistory = this.exposed;
    this.grid = h('div', { class: 'grid history-grid', id: 'history-grid' });
    this.status = h('div', { class: 'muted history-status', id: 'history-status' });
    this.box = h('div', { class: 'history-box' }, this.status, this.grid);
    this.charts = {};
    for (const c of CHARTS) {
      const canvas = h('canvas', { class: 'chart', id: 'hch-' + c.id });
      const legend = c.series.map(([color, label]) => h('span', { class: 'hleg', style: `color:${color}`, text: label }));
      const panel = h(
        'div',
        { class: 'panel' },
        h('div', { class: 'panel-head' }, h('span', { class: 'ptitle', text: c.title }), ...legend, h('span', { class: 'readout', id: 'hro-' + c.id })),
        canvas,
      );
      this.grid.appendChild(panel);
      this.charts[c.id] = new LineChart(canvas);
    }
    const select = $('#range');
    select.addEventListener('change', (e) => this.setRange(e.target.value));
    // After the page's own handlers (which may be registered after these):
    // app.ui then holds the new group or tab.
    const later = (fn) => () => setTimeout(fn, 0);
    $('#group-filter').addEventListener('change', later(() => this.refetch()));
    for (const b of document.querySelectorAll('.tab-btn')) b.addEventListener('click', later(() => this.place()));
    window.addEventListener('resize', () => requestAnimationFrame(() => this.draw()));
    this.place();
  }

  setRange(range) {
    if (!RANGES.includes(range)) return;
    this.range = range;
    this.exposed.range = range;
    this.answer = null;
    this.place();
    this.refetch();
  }

  /** Shows the ranged charts in the active tab (Overview or Capacity) or nowhere. */
  place() {
    const tab = this.app.ui.tab;
    const ranged = this.range !== 'live';
    $('#range-ctl').hidden = !TABS.has(tab);
    for (const t of TABS) $('#tab-' + t).classList.toggle('ranged', ranged && t === tab);
    if (ranged && TABS.has(tab)) {
      const host = $('#tab-' + tab);
      if (this.box.parentNode !== host) host.prepend(this.box);
      requestAnimationFrame(() => this.draw());
    } else if (this.box.parentNode) this.box.remove();
  }

  url() {
    const q = new URLSearchParams({ range: this.range });
    if (this.app.ui.group !== '*') q.set('group', this.app.ui.group);
    return `${this.app.base}/api/history?${q}`;
  }

  refetch() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.range === 'live') return;
    const seq = ++this.seq;
    const url = this.url();
    this.exposed.url = url;
    fetch(url, { cache: 'no-store' })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (seq !== this.seq) return;
        if (!ok) throw new Error(body.error || 'history request refused');
        this.answer = body;
        this.answerUrl = url;
        this.exposed.error = null;
        this.exposed.step = body.step;
        this.exposed.fetches++;
        requestAnimationFrame(() => this.draw());
        this.timer = setTimeout(() => this.refetch(), Math.max(MIN_REFRESH_S, body.step) * 1000);
      })
      .catch((e) => {
        if (seq !== this.seq) return;
        this.answer = null;
        this.exposed.error = String(e.message || e);
        setText(this.status, `history not available: ${this.exposed.error}`);
        this.timer = setTimeout(() => this.refetch(), 10000);
      });
  }

  draw() {
    const a = this.answer;
    if (!a || !this.box.parentNode) return;
    const span = a.to - a.from;
    const labels = [axisLabel(a.from, span), axisLabel(a.to, span)];
    const n = a.points.length;
    setText(
      this.status,
      n
        ? `${this.range} · ${axisLabel(a.from, span)} – ${axisLabel(a.to, span)} · one point per ${fmtStep(a.step)} · ${a.series} series`
        : `${this.range} · no history in this range`,
    );
    const drawn = {};
    for (const c of CHARTS) {
      const series = chartSeries(c, a.points, a.step);
      this.charts[c.id].draw({ series, from: a.from, to: a.to, ymax: c.ymax ?? null, labels });
      drawn[c.id] = { points: series.reduce((s, r) => s + r.t.length, 0), from: a.from, to: a.to, labels };
      this.readout(c, a.points, a.step);
    }
    this.exposed.drawn = drawn;
    this.exposed.drawnUrl = this.answerUrl;
  }

  /** The largest value of the chart's last series (p99, 5xx, max RSS, …) in the range. */
  readout(c, points, step) {
    const el = $('#hro-' + c.id);
    const [, label, value] = c.series[c.series.length - 1];
    let max = null;
    for (const p of points) {
      const v = value(p, step);
      if (v != null && Number.isFinite(v) && (max == null || v > max)) max = v;
    }
    if (max == null) return setText(el, 'no data');
    setText(el, `${c.peak ?? label + ' max'} ${c.id === 'latency' ? fmtMs(max) : fmtAxis(max)}`);
  }
}

function fmtStep(s) {
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}
