// Update/redraw timing (performance.now()) and heap readings for the
// smoothness benchmark: window.__telemetryPerf.

class Series {
  constructor(cap) {
    this.buf = new Float64Array(cap);
    this.n = 0;
    this.total = 0;
  }
  push(v) {
    this.buf[this.n % this.buf.length] = v;
    this.n++;
    this.total++;
  }
  values() {
    const k = Math.min(this.n, this.buf.length);
    return Array.from(this.buf.subarray(0, k));
  }
  /** Values pushed since the previous call (up to the ring's capacity). */
  since() {
    const from = this.mark || 0;
    this.mark = this.n;
    const k = Math.min(this.n - from, this.buf.length);
    const out = [];
    for (let i = this.n - k; i < this.n; i++) out.push(this.buf[i % this.buf.length]);
    return out;
  }
  quantile(q) {
    const v = this.values().sort((a, b) => a - b);
    if (!v.length) return null;
    return v[Math.min(v.length - 1, Math.floor(q * v.length))];
  }
  reset() {
    this.n = 0;
    this.mark = 0;
  }
}

function q(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null;
}

export class Perf {
  constructor() {
    this.update = new Series(20000);
    this.redraw = new Series(4000);
    // Live processes shown at each redraw: the benchmark reports the
    // window's mean and range (with `replay --processes` in step, without
    // --stagger, one reading says little: the count swings within seconds).
    this.shown = new Series(4000);
    this.updates = 0;
    this.redraws = 0;
    this.badMessages = 0;
    this.bytes = 0; // message text received (UTF-16 code units)
    this.lastRedrawTab = '';
    this.lastVisible = 0;
    this.byType = {};
    this.sections = {};
  }
  /** Time of one part of a redraw (sidebar, the active view, …). */
  recordSection(name, ms) {
    if (!this.sections[name]) this.sections[name] = new Series(4000);
    this.sections[name].push(ms);
  }
  /** Time of one task applying messages (a batched frame may take several). */
  recordUpdate(ms) {
    this.update.push(ms);
    this.updates++;
  }
  /** Messages applied, by type. */
  countMessage(type) {
    this.byType[type] = (this.byType[type] || 0) + 1;
  }
  recordRedraw(ms, tab, visible) {
    this.redraw.push(ms);
    this.shown.push(visible);
    this.redraws++;
    this.lastRedrawTab = tab;
    this.lastVisible = visible;
  }
  /** Forget collected timings (the benchmark calls this after warm-up). */
  reset() {
    this.update.reset();
    this.redraw.reset();
    this.shown.reset();
    for (const k of Object.keys(this.sections)) this.sections[k].reset();
  }
  heap() {
    const m = performance.memory;
    return m ? { used: m.usedJSHeapSize, total: m.totalJSHeapSize } : null;
  }
  /** Redraw quantiles over the redraws since the previous call (benchmark intervals). */
  interval() {
    const v = this.redraw.since().sort((a, b) => a - b);
    const shown = this.shown.since();
    const mean = shown.length ? shown.reduce((a, b) => a + b, 0) / shown.length : null;
    return {
      n: v.length, p50: q(v, 0.5), p95: q(v, 0.95), max: q(v, 1),
      shownMean: mean, shownMin: shown.length ? Math.min(...shown) : null, shownMax: shown.length ? Math.max(...shown) : null,
    };
  }
  summary() {
    return {
      updates: this.updates,
      redraws: this.redraws,
      bytes: this.bytes,
      updateP50: this.update.quantile(0.5),
      updateP95: this.update.quantile(0.95),
      updateMax: this.update.quantile(1),
      redrawP50: this.redraw.quantile(0.5),
      redrawP95: this.redraw.quantile(0.95),
      redrawMax: this.redraw.quantile(1),
      redrawSamples: Math.min(this.redraw.n, this.redraw.buf.length),
      tab: this.lastRedrawTab,
      visible: this.lastVisible,
      heap: this.heap(),
      byType: this.byType,
      sectionsP95: Object.fromEntries(Object.entries(this.sections).map(([k, v]) => [k, v.quantile(0.95)])),
    };
  }
}
