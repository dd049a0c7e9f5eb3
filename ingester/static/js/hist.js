// The 65-bucket latency histogram grid (bucket bounds as wire/src/histogram.rs) and percentiles.

export const NBUCKETS = 65;

/** Lower bound of bucket i in ms (bucket 0 starts at 0, overflow at 65 536). */
export function bucketLower(i) {
  if (i <= 0) return 0;
  if (i >= 64) return 65536;
  return 2 ** Math.floor(i / 4) * (1 + (i % 4) / 4);
}

/** Upper bound of bucket i in ms (∞ for the overflow bucket). */
export function bucketUpper(i) {
  if (i >= 64) return Infinity;
  return 2 ** Math.floor(i / 4) * (1 + ((i % 4) + 1) / 4);
}

/** Bucket index of a duration in milliseconds. */
export function bucketIndex(ms) {
  if (!(ms >= 1)) return 0;
  if (ms >= 65536) return 64;
  const o = Math.min(15, Math.floor(Math.log2(ms)));
  let oo = o;
  // guard against log2 rounding just below a power of two
  if (2 ** oo > ms) oo -= 1;
  else if (2 ** (oo + 1) <= ms) oo += 1;
  const sub = Math.min(3, Math.floor((ms / 2 ** oo - 1) * 4));
  return 4 * oo + sub;
}

/** Interpolated percentile (ms) of bucket counts, or null when empty. */
export function percentile(counts, p) {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total <= 0) return null;
  const target = total * p;
  let cum = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c > 0 && cum + c >= target) {
      if (i >= 64) return 65536;
      const lo = bucketLower(i);
      const hi = bucketUpper(i);
      return lo + ((target - cum) / c) * (hi - lo);
    }
    cum += c;
  }
  return 65536;
}

/** Fractional bucket position (for drawing a marker inside its bar) of a percentile value. */
export function bucketPosition(ms) {
  if (ms == null) return null;
  if (ms >= 65536) return 64.5;
  const i = bucketIndex(ms);
  const lo = bucketLower(i);
  const hi = bucketUpper(i);
  return i + (hi > lo ? (ms - lo) / (hi - lo) : 0);
}

/** Octave labels under the 4th bar of each octave; `>65k` under the overflow bar. */
export function bucketLabel(i) {
  if (i === 64) return '>65k';
  if (i % 4 !== 3) return '';
  const v = 2 ** (Math.floor(i / 4) + 1);
  if (v === 65536) return '';
  return v >= 1024 ? v / 1024 + 'k' : String(v);
}

/** Tooltip range text of bucket i. */
export function bucketRangeText(i) {
  const f = (ms) => (ms >= 1000 ? (ms / 1000).toFixed(ms >= 10000 ? 1 : 2) + 's' : (ms < 10 ? ms.toFixed(2).replace(/0$/, '') : ms.toFixed(0)) + 'ms');
  if (i === 0) return '≤ ' + f(bucketUpper(0));
  if (i >= 64) return '> ' + f(65536);
  return f(bucketLower(i)) + ' – ' + f(bucketUpper(i));
}
