// Custom tab: the application's own metrics (mod_wsgi_telemetry's incr /
// set / record), summed across processes by the ingester. Polls
// GET /api/stats/detail once a second while the tab is shown (no
// WebSocket traffic: the figures are totals, one small JSON a second is
// enough), keeps the last minute of each name for its sparkline, and
// shows a table: value, rate for counters, p50/p95/p99 for distributions.

import { $, h, setText, setOptions } from '../dom.js';
import { fmtCount, fmtMs } from '../format.js';

const POLL_MS = 1000;
const HISTORY = 60; // points per sparkline

/** The sparkline's figure of one metric: counters by rate, gauges by
 * level, distributions by p95. */
function figure(m, rate) {
  if (m.type === 'counter') return rate;
  if (m.type === 'gauge') return m.value;
  return m.p95;
}

/** An SVG polyline of `points` (null = no point yet), scaled to its range. */
export function sparkline(points, w = 120, hgt = 20) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', w);
  svg.setAttribute('height', hgt);
  svg.setAttribute('class', 'spark');
  const vals = points.filter((v) => v != null && Number.isFinite(v));
  if (vals.length < 2) return svg;
  const lo = Math.min(...vals);
  const hi = Math.max(...vals);
  const span = hi - lo || 1;
  const step = w / (HISTORY - 1);
  const off = HISTORY - points.length;
  const pts = [];
  points.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) return;
    const y = hgt - 1 - ((v - lo) / span) * (hgt - 2);
    pts.push(`${((off + i) * step).toFixed(1)},${y.toFixed(1)}`);
  });
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts.join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', 'currentColor');
  svg.append(line);
  return svg;
}

function fmtValue(v) {
  if (v == null) return '–';
  if (Number.isInteger(v)) return fmtCount(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4);
}

export class CustomView {
  constructor(app) {
    this.app = app;
    this.data = null;
    this.error = '';
    this.group = '*';
    this.prev = new Map(); // name -> [time ms, counter value]
    this.history = new Map(); // name -> figures, oldest first
    this.inflight = false;
    const sel = $('#custom-group');
    if (sel) {
      sel.addEventListener('change', () => {
        this.group = sel.value;
        this.prev.clear();
        this.history.clear();
        this.poll();
      });
    }
    setInterval(() => {
      if (this.app.ui.tab === 'custom') this.poll();
    }, POLL_MS);
  }

  url() {
    let q = '';
    if (this.group !== '*') {
      const [host, group] = JSON.parse(this.group);
      q = `?host=${encodeURIComponent(host)}&group=${encodeURIComponent(group)}`;
    }
    return `${this.app.base}/api/stats/detail${q}`;
  }

  async poll() {
    if (this.inflight) return;
    this.inflight = true;
    try {
      const r = await fetch(this.url(), { cache: 'no-store' });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      this.take(await r.json(), performance.now());
      this.error = '';
    } catch (e) {
      this.error = String(e.message || e);
    } finally {
      this.inflight = false;
    }
    this.render();
  }

  /** Folds one answer in: rates of counters, sparkline points. */
  take(data, now) {
    this.data = data;
    for (const m of data.metrics) {
      let rate = null;
      if (m.type === 'counter') {
        const p = this.prev.get(m.name);
        if (p && now > p[0]) rate = Math.max(0, ((m.value - p[1]) * 1000) / (now - p[0]));
        this.prev.set(m.name, [now, m.value]);
      }
      m.rate = rate;
      let hist = this.history.get(m.name);
      if (!hist) this.history.set(m.name, (hist = []));
      hist.push(figure(m, rate));
      if (hist.length > HISTORY) hist.shift();
    }
  }

  draw() {
    // Fresh data arrives by polling; a tab switch shows the last answer
    // and asks for a new one at once.
    if (!this.data && !this.inflight) this.poll();
  }

  render() {
    const sel = $('#custom-group');
    if (sel && this.data) {
      const opts = [{ value: '*', label: 'All groups' }].concat(
        this.data.groups.map((g) => ({
          value: JSON.stringify([g.host, g.process_group]),
          label: `${g.host} / ${g.process_group || '(embedded)'}`,
        })),
      );
      this.group = setOptions(sel, opts, '*');
    }
    const body = $('#custom-table tbody');
    if (!body) return;
    const rows = (this.data ? this.data.metrics : []).map((m) => {
      const dist = m.type === 'distribution';
      return h(
        'tr',
        { dataset: { name: m.name } },
        h('td', { class: 'mono', text: m.name }),
        h('td', { text: m.type }),
        h('td', { class: 'num', text: dist ? fmtCount(m.count) : fmtValue(m.value) }),
        h('td', { class: 'num', text: m.type === 'counter' && m.rate != null ? `${fmtValue(Math.round(m.rate * 100) / 100)}/s` : '' }),
        h('td', { class: 'num', text: dist ? fmtMs(m.p50 * 1000) : '' }),
        h('td', { class: 'num', text: dist ? fmtMs(m.p95 * 1000) : '' }),
        h('td', { class: 'num', text: dist ? fmtMs(m.p99 * 1000) : '' }),
        h('td', null, sparkline(this.history.get(m.name) || [])),
      );
    });
    body.replaceChildren(...rows);
    const empty = $('#custom-empty');
    if (empty) {
      const msg = this.error
        ? `cannot read /api/stats: ${this.error}`
        : 'no application metrics (WSGITelemetryOptions +AppMetrics, docs/app-metrics.md)';
      setText(empty, msg);
      empty.style.display = rows.length ? 'none' : '';
    }
  }
}
