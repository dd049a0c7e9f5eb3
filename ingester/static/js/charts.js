// Canvas chart primitives: line charts with restart markers and the
// 65-bucket histogram. Each chart owns its canvas, resizes it only when its
// box changes, and draws one path per colour (not per process), so 200
// processes cost 8 strokes, not 200.

import { fmtAxis } from './format.js';
import { bucketLabel, NBUCKETS } from './hist.js';

export const GRID = '#333';
export const AXIS_TEXT = '#888';
export const FONT = '10px system-ui, sans-serif';

// Element sizes (CSS px) kept by a ResizeObserver, so a redraw never reads
// layout after the same frame wrote to the DOM (each such read forces a
// synchronous layout of the whole page, 200 sidebar cards included). An
// element is measured directly once (or while it has no size, e.g. in a
// hidden tab); later changes arrive through the observer, which asks for a
// full redraw (setResizeHook).
const sizes = new WeakMap();
let resizeHook = null;
const observer =
  typeof ResizeObserver === 'undefined'
    ? null
    : new ResizeObserver((entries) => {
        let changed = false;
        for (const e of entries) {
          const w = Math.round(e.contentRect.width);
          const h = Math.round(e.contentRect.height);
          const old = sizes.get(e.target);
          if (!old || old.w !== w || old.h !== h) {
            sizes.set(e.target, { w, h });
            // Heights of heatmaps and the timeline are set by their views
            // (and passed to fitCanvas): only a new width needs a redraw.
            if (old && w > 0 && h > 0 && old.w !== w) changed = true;
          }
        }
        if (changed && resizeHook) resizeHook();
      });

/** Called (once per batch) when an observed element changed size. */
export function setResizeHook(fn) {
  resizeHook = fn;
}

/**
 * {w, h} of an element's content box in CSS px (its clientWidth/Height for
 * elements without padding), without a layout read when known.
 */
export function boxSize(el) {
  let s = sizes.get(el);
  if (!s || s.w <= 0 || s.h <= 0) {
    s = { w: Math.round(el.clientWidth), h: Math.round(el.clientHeight) };
    sizes.set(el, s);
    if (observer && !el.__observed) {
      observer.observe(el);
      el.__observed = true;
    }
  }
  return s;
}

/**
 * Takes `like`'s known width as `el`'s (same-width grid cells) when `el`
 * has not been measured, so a new element costs no synchronous layout; the
 * ResizeObserver corrects it (and asks for a redraw) if it differs.
 */
export function assumeWidthOf(el, like) {
  if (sizes.has(el) || !like) return;
  const s = sizes.get(like);
  if (!s || s.w <= 0) return;
  sizes.set(el, { w: s.w, h: s.h });
  if (observer && !el.__observed) {
    observer.observe(el);
    el.__observed = true;
  }
}

/**
 * Matches the canvas backing store to its CSS box; returns {ctx, w, h,
 * resized}. `cssH`: the height the caller just set (its style), when it
 * sets one. `keep`: do not clear (the caller repaints only what changed;
 * `resized` says the backing store was reset, i.e. everything is blank).
 */
export function fitCanvas(canvas, cssH, keep = false) {
  const dpr = window.devicePixelRatio || 1;
  const box = boxSize(canvas);
  const w = Math.max(1, box.w);
  const h = Math.max(1, cssH ?? box.h);
  let resized = false;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    resized = true;
  }
  const ctx = canvas.getContext('2d');
  if (resized) ctx.__font = null; // a new backing store resets the context's state
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  if (!keep) ctx.clearRect(0, 0, w, h);
  return { ctx, w, h, resized };
}

/**
 * Sets the chart font once per context state. Assigning ctx.font, even the
 * same string, makes Chromium bring the document's style up to date first:
 * after the DOM writes of the same frame (readouts, selects) that was a
 * forced style recalculation of the whole page, 0.5-5 ms per chart.
 */
export function setFont(ctx) {
  if (ctx.__font === FONT) return;
  ctx.font = FONT;
  ctx.__font = FONT;
}

/**
 * An offscreen canvas (w × h CSS px at the device pixel ratio) holding what
 * `paint(g)` draws, kept on `owner` and repainted only when `key` or the
 * ratio changes: axes, grid and fixed labels, copied with one drawImage.
 */
export function staticLayer(owner, key, w, h, paint) {
  const dpr = window.devicePixelRatio || 1;
  const k = `${key}|${dpr}`;
  let l = owner.__layer;
  if (!l || l.key !== k) {
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(w * dpr));
    canvas.height = Math.max(1, Math.round(h * dpr));
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    paint(g);
    owner.__layer = l = { key: k, canvas };
  }
  return l.canvas;
}

const LIVE_LABELS = ['-60s', 'now'];

/**
 * A time-series chart over [from, to] with one line per series.
 * series: [{color, t: number[], v: number[]}]; markers: [{t, color, info}].
 */
export class LineChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.markers = [];
    this.geom = null;
  }

  /**
   * `ymax`: the scale (else 1.1 × the largest value); `labels`: the time
   * axis's left and right ends (the live window's by default).
   */
  draw({ series, from, to, markers = [], ymax: scale = null, labels = LIVE_LABELS }) {
    const { ctx, w, h } = fitCanvas(this.canvas);
    const pad = { l: 40, r: 6, t: 10, b: 14 };
    const pw = Math.max(1, w - pad.l - pad.r);
    const ph = Math.max(1, h - pad.t - pad.b);
    const len = (s) => (s.len ?? s.t.length);
    let ymax = 0;
    if (scale != null) ymax = scale;
    else {
      for (const s of series) for (let i = 0, n = len(s); i < n; i++) if (s.v[i] > ymax) ymax = s.v[i];
      ymax = ymax > 0 ? ymax * 1.1 : 1;
    }
    const span = Math.max(1e-9, to - from);
    const X = (t) => pad.l + ((t - from) / span) * pw;
    this.geom = { pad, pw, ph, w, h };
    this.drawFrame(ctx, pad, pw, ph, ymax, labels);
    this.drawLines(ctx, series, len, pad, pw, ph, ymax, from, span);
    this.drawMarkers(ctx, markers, pad, ph, X, from, to);
  }

  drawFrame(ctx, pad, pw, ph, ymax, labels) {
    // The frame and the fixed labels only change with the canvas size: they
    // are painted once into a layer and copied; only the scale is text.
    const { w, h } = this.geom;
    const layer = staticLayer(this, `${w}|${h}|${labels[0]}|${labels[1]}`, w, h, (g) => {
      g.strokeStyle = GRID;
      g.lineWidth = 1;
      g.beginPath();
      g.moveTo(pad.l + 0.5, pad.t);
      g.lineTo(pad.l + 0.5, pad.t + ph + 0.5);
      g.lineTo(pad.l + pw, pad.t + ph + 0.5);
      g.moveTo(pad.l, pad.t + 0.5);
      g.lineTo(pad.l + pw, pad.t + 0.5);
      g.stroke();
      g.fillStyle = AXIS_TEXT;
      g.font = FONT;
      g.textAlign = 'right';
      g.textBaseline = 'bottom';
      g.fillText('0', pad.l - 4, pad.t + ph + 2);
      g.textAlign = 'left';
      g.textBaseline = 'top';
      g.fillText(labels[0], pad.l + 2, pad.t + ph + 2);
      g.textAlign = 'right';
      g.fillText(labels[1], pad.l + pw, pad.t + ph + 2);
    });
    ctx.drawImage(layer, 0, 0, w, h);
    ctx.fillStyle = AXIS_TEXT;
    setFont(ctx);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'top';
    ctx.fillText(fmtAxis(ymax), pad.l - 4, pad.t - 2);
  }

  drawLines(ctx, series, len, pad, pw, ph, ymax, from, span) {
    // lines, batched by colour (one path per colour, not per process)
    const byColor = new Map();
    for (const s of series) {
      if (!len(s)) continue;
      let l = byColor.get(s.color);
      if (!l) byColor.set(s.color, (l = []));
      l.push(s);
    }
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.l, pad.t - 1, pw, ph + 2);
    ctx.clip();
    ctx.lineWidth = 1;
    const kx = pw / span;
    const ky = ph / ymax;
    const y0 = pad.t + ph;
    for (const [color, list] of byColor) {
      ctx.strokeStyle = color;
      ctx.beginPath();
      for (const s of list) {
        const n = len(s);
        const t = s.t;
        const v = s.v;
        if (n === 1) {
          const x = pad.l + (t[0] - from) * kx;
          const y = y0 - v[0] * ky;
          ctx.moveTo(x - 1.5, y);
          ctx.lineTo(x + 1.5, y);
          continue;
        }
        ctx.moveTo(pad.l + (t[0] - from) * kx, y0 - v[0] * ky);
        for (let i = 1; i < n; i++) ctx.lineTo(pad.l + (t[i] - from) * kx, y0 - v[i] * ky);
      }
      ctx.stroke();
    }
    ctx.restore();
  }

  drawMarkers(ctx, markers, pad, ph, X, from, to) {
    // restart markers: one path of lines and one of triangles per colour
    // (a path per marker cost ~0.7 ms a chart with 150 restarts in the window)
    this.markers = [];
    const byColor = new Map();
    for (const m of markers) {
      if (m.t < from || m.t > to) continue;
      const x = Math.round(X(m.t)) + 0.5;
      let l = byColor.get(m.color);
      if (!l) byColor.set(m.color, (l = []));
      l.push(x);
      this.markers.push({ x, info: m.info });
    }
    for (const [color, xs] of byColor) {
      ctx.globalAlpha = 0.45;
      ctx.strokeStyle = color;
      ctx.beginPath();
      for (const x of xs) {
        ctx.moveTo(x, pad.t);
        ctx.lineTo(x, pad.t + ph);
      }
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.fillStyle = color;
      ctx.beginPath();
      for (const x of xs) {
        ctx.moveTo(x - 4, pad.t - 6);
        ctx.lineTo(x + 4, pad.t - 6);
        ctx.lineTo(x, pad.t);
        ctx.closePath();
      }
      ctx.fill();
    }
  }

  /** Marker info within 6 px of canvas-relative x, or null. */
  markerAt(x) {
    let best = null;
    let bd = 7;
    for (const m of this.markers) {
      const d = Math.abs(m.x - x);
      if (d < bd) {
        bd = d;
        best = m;
      }
    }
    return best ? best.info : null;
  }
}

export const PCT_COLORS = { p50: '#81c784', p95: '#ff8a65', p99: '#ba68c8' };

/**
 * 65 equal-width bars scaled to the tallest, octave labels, percentile
 * markers at fractional bucket positions. Returns geometry for hit-testing.
 */
export function drawHistogram(canvas, counts, marks, opts = {}) {
  const { ctx, w, h } = fitCanvas(canvas);
  const pad = { l: 40, r: 8, t: opts.noLabels ? 4 : 14, b: opts.noLabels ? 4 : 26 };
  const pw = Math.max(1, w - pad.l - pad.r);
  const ph = Math.max(1, h - pad.t - pad.b);
  const bw = pw / NBUCKETS;
  let max = 0;
  for (let i = 0; i < NBUCKETS; i++) if (counts[i] > max) max = counts[i];
  const axes = (g) => {
    g.strokeStyle = GRID;
    g.beginPath();
    g.moveTo(pad.l + 0.5, pad.t);
    g.lineTo(pad.l + 0.5, pad.t + ph + 0.5);
    g.lineTo(pad.l + pw, pad.t + ph + 0.5);
    g.stroke();
  };
  setFont(ctx);
  if (max <= 0) {
    axes(ctx);
    ctx.fillStyle = AXIS_TEXT;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(opts.empty || 'no data yet', pad.l + pw / 2, pad.t + ph / 2);
    return { pad, pw, ph, bw };
  }
  // Axes and bucket labels depend on the size only: a cached layer.
  const layer = staticLayer(canvas, `${w}|${h}|${!!opts.noLabels}`, w, h, (g) => {
    axes(g);
    if (opts.noLabels) return;
    g.font = FONT;
    g.fillStyle = AXIS_TEXT;
    g.textBaseline = 'bottom';
    g.textAlign = 'right';
    g.fillText('0', pad.l - 4, pad.t + ph);
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let i = 0; i < NBUCKETS; i++) {
      const lab = bucketLabel(i);
      if (lab) g.fillText(lab, pad.l + (i + 0.5) * bw, pad.t + ph + 2);
    }
    g.textAlign = 'left';
    g.fillText('<= ms', 2, pad.t + ph + 13);
  });
  ctx.drawImage(layer, 0, 0, w, h);
  ctx.fillStyle = opts.color || '#4fc3f7';
  for (let i = 0; i < NBUCKETS; i++) {
    const c = counts[i];
    if (c <= 0) continue;
    const bh = Math.max(1, (c / max) * ph);
    ctx.fillRect(pad.l + i * bw + 0.5, pad.t + ph - bh, Math.max(1, bw - 1), bh);
  }
  if (!opts.noLabels) {
    ctx.fillStyle = AXIS_TEXT;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'top';
    ctx.fillText(fmtAxis(max), pad.l - 4, pad.t - 2);
  }
  for (const m of marks || []) {
    if (m.pos == null) continue;
    const x = pad.l + m.pos * bw;
    ctx.strokeStyle = m.color;
    ctx.fillStyle = m.color;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(x, pad.t);
    ctx.lineTo(x, pad.t + ph);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(x - 4, pad.t - 7);
    ctx.lineTo(x + 4, pad.t - 7);
    ctx.lineTo(x, pad.t - 1);
    ctx.closePath();
    ctx.fill();
  }
  return { pad, pw, ph, bw };
}
