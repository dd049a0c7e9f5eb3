// The ranged charts' series (js/views/history.js): one value per point,
// a step without a point breaks the line, percentiles only where the point
// had requests. Run: node --test ingester/static/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import { chartSeries, axisLabel } from '../js/views/history.js';

const point = (t, rate, count) => ({
  t,
  rate,
  latency: { total: { count, p50: 0.001, p95: 0.002, p99: 0.004 } },
});

test('history: a missing step splits the line, one run per colour', () => {
  const spec = { series: [['#fff', 'req/s', (p) => p.rate]] };
  const runs = chartSeries(spec, [point(0, 1, 1), point(10, 2, 1), point(30, 3, 1)], 10);
  assert.deepEqual(
    runs.map((r) => [r.t, r.v]),
    [
      [[0, 10], [1, 2]],
      [[30], [3]],
    ],
  );
});

test('history: percentiles are drawn only for points with requests', () => {
  const spec = {
    series: [['#a', 'p99', (p) => (p.latency.total.count > 0 ? p.latency.total.p99 * 1000 : null)]],
  };
  const runs = chartSeries(spec, [point(0, 0, 0), point(10, 5, 5), point(20, 5, 5)], 10);
  assert.deepEqual(runs.map((r) => [r.t, r.v]), [[[10, 20], [4, 4]]]);
});

test('history: axis labels carry the date beyond a day', () => {
  assert.match(axisLabel(1795316100, 3600), /^\d\d:\d\d$/);
  assert.match(axisLabel(1795316100, 7 * 86400), /^\d\d-\d\d \d\d:\d\d$/);
});
