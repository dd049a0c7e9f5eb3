// Number, time and byte formatting shared by every view (pure, no DOM).

/** Milliseconds: ∞ → ">65s"; ≥ 1000 → "x.xs"; ≥ 10 → integer "ms"; else one decimal. */
export function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return '-';
  if (!Number.isFinite(ms)) return '>65s';
  if (ms >= 1000) return (ms / 1000).toFixed(1) + 's';
  if (ms >= 10) return Math.round(ms) + 'ms';
  return ms.toFixed(1) + 'ms';
}

/** Like fmtMs, but sub-millisecond values in µs (detail panels). */
export function fmtMsFine(ms) {
  if (ms != null && ms > 0 && ms < 1) return Math.round(ms * 1000) + ' µs';
  return fmtMs(ms);
}

/** Response time headline: integer when ≥ 10 else one decimal (no unit). */
export function fmtRespMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return '-';
  return ms >= 10 ? String(Math.round(ms)) : ms.toFixed(1);
}

/** Bytes, base 1024: "N B", then KB/MB/GB/TB with 2 decimals below 10, 1 below 100. */
export function humanBytes(n) {
  if (n == null || !Number.isFinite(n)) return '-';
  if (Math.abs(n) < 1024) return Math.round(n) + ' B';
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  const d = Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0;
  return v.toFixed(d) + ' ' + units[u];
}

/** Durations in seconds for cards: "x.x s" ≥ 1 s, integer ms ≥ 10 ms, else two decimals. */
export function fmtSecShort(s) {
  if (s == null || !Number.isFinite(s)) return '-';
  if (s >= 1) return s.toFixed(1) + ' s';
  const ms = s * 1000;
  if (ms >= 10) return Math.round(ms) + ' ms';
  return ms.toFixed(2) + ' ms';
}

/** Slow-request elapsed: "x.xx s" ≥ 1 s else "N ms". */
export function fmtElapsed(s) {
  if (s == null || !Number.isFinite(s)) return '-';
  return s >= 1 ? s.toFixed(2) + ' s' : Math.round(s * 1000) + ' ms';
}

/** Uptime: "x.x s" < 60 s, "x.x m" < 1 h, else "x.xx h". */
export function fmtUptime(s) {
  if (s == null || !Number.isFinite(s)) return '-';
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return (s / 60).toFixed(1) + ' m';
  return (s / 3600).toFixed(2) + ' h';
}

/** Counts: 999, 1.2k, 12k, 1.5M. */
export function fmtCount(n) {
  if (n == null || !Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  if (a < 10000) return (n / 1000).toFixed(1) + 'k';
  if (a < 1e6) return Math.round(n / 1000) + 'k';
  if (a < 1e7) return (n / 1e6).toFixed(1) + 'M';
  return Math.round(n / 1e6) + 'M';
}

/** Axis value with adaptive decimals: 0 for ≥10, 1 for ≥1, 2 for ≥0.1, then 3, 4, 5. */
export function fmtAxis(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 10) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  if (a >= 0.1) return v.toFixed(2);
  if (a >= 0.01) return v.toFixed(3);
  if (a >= 0.001) return v.toFixed(4);
  return v.toFixed(5);
}

/** CPU in cores: "N.N cores" when ≥ 1, else "NN%". */
export function fmtCores(c) {
  if (c == null || !Number.isFinite(c)) return '-';
  return c >= 1 ? c.toFixed(1) + ' cores' : Math.round(c * 100) + '%';
}

export function pct(x, digits = 0) {
  if (x == null || !Number.isFinite(x)) return '-';
  return (x * 100).toFixed(digits) + '%';
}

function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}

/** Reporter stamp (s since epoch) → local "HH:MM:SS.mmm". */
export function fmtClockMs(stamp) {
  const d = new Date(stamp * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Reporter stamp → local "HH:MM:SS". */
export function fmtClock(stamp) {
  const d = new Date(stamp * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Reporter stamp → UTC ISO. */
export function fmtIso(stamp) {
  if (!Number.isFinite(stamp)) return '-';
  return new Date(stamp * 1000).toISOString();
}

/** Threshold labels: sub-second up to two decimals, whole seconds bare, else one decimal. */
export function fmtThreshold(s) {
  if (s < 1) return String(Math.round(s * 100) / 100) + ' s';
  if (Number.isInteger(s)) return s + ' s';
  return s.toFixed(1) + ' s';
}

/** Cut a string to `max` characters with an ellipsis. */
export function cut(s, max = 60) {
  if (!s) return '';
  return s.length > max ? s.slice(0, max - 3) + '…' : s;
}
