// "Copy current stats": a Markdown snapshot of live visible processes over
// the last 60 s, for pasting into a ticket or an LLM.

import { rollup, stateCounts, reasonCategory, gilContention } from './stats.js';
import { percentile, bucketLower, bucketUpper, bucketRangeText } from './hist.js';
import { fmtMs, humanBytes, fmtCores, fmtThreshold } from './format.js';
import { HIST_FIELDS } from './store.js';

const W = 60;

function statusLine(s) {
  const tot = s.s1 + s.s2 + s.s3 + s.s4 + s.s5;
  if (!tot) return '- response status: no requests completed in window';
  const p = (x) => `${x} (${((x / tot) * 100).toFixed(1)}%)`;
  const parts = [];
  if (s.s1) parts.push(`1xx ${s.s1} (${((s.s1 / tot) * 100).toFixed(1)}%, PEP 3333 violation)`);
  parts.push(`2xx ${p(s.s2)}`, `3xx ${p(s.s3)}`, `4xx ${p(s.s4)}`, `5xx ${p(s.s5)}`);
  return `- response status: ${parts.join(', ')}`;
}

function share(x) {
  const v = x * 100;
  if (v >= 10) return Math.round(v) + '%';
  if (v >= 0.1) return v.toFixed(1) + '%';
  return '<0.1%';
}

export function statsSnapshot(app) {
  const store = app.store;
  const ctx = app.context();
  const entries = ctx.visible.map((p) => app.stats(p));
  const r = rollup(entries);
  const L = [];
  const now = store.now;
  const at = new Date(now * 1000);
  L.push('# mod_wsgi telemetry: current state');
  L.push(`Snapshot at ${at.toISOString()} (local: ${at.toString()}).  Window: last ${W} s (reporter clock).`);
  L.push(`Filter: ${app.ui.group === '*' ? 'all process groups' : app.ui.group === '' ? '(embedded) only' : `group "${app.ui.group}" only`}`);
  L.push('');
  L.push('## Environment');
  const combos = new Map();
  for (const { proc: p } of entries) {
    const k = [p.hostname, p.mod_wsgi_version, p.python_version, p.apache_version, p.mpm_name].join('|');
    if (!combos.has(k)) combos.set(k, []);
    combos.get(k).push(p.pid);
  }
  for (const [k, pids] of combos) {
    const [host, mw, py, ap, mpm] = k.split('|');
    if (combos.size > 1) L.push(`### pids ${pids.join(', ')}`);
    L.push(`- host: ${host || '-'}`, `- mod_wsgi ${mw || '-'}, Python ${py || '-'}, ${ap || 'Apache -'}, MPM ${mpm || '-'}`);
  }
  if (!combos.size) L.push('- no live processes');
  L.push('');
  L.push('## Totals');
  L.push(`- hosts: ${[...r.hosts].join(', ') || '-'}${r.hosts.size > 1 ? ' (multi-host: tuning advice applies per host)' : ''}`);
  L.push(`- throughput: ${Math.round(r.rpm)} requests/min`);
  L.push(`- cpu: ${fmtCores(r.cpu)} (≈${Math.round(r.cpu * 100)}% of one core)`);
  L.push(`- RSS: ${r.rssMb.toFixed(0)} MB`);
  L.push(`- response time (request-weighted mean): ${r.respMs == null ? '-' : fmtMs(r.respMs)}`);
  const daemonGroups = [...r.groups.keys()].filter((g) => g !== '');
  const embeddedN = (r.groups.get('') || []).length;
  L.push(`- processes: ${r.n} across ${r.groups.size} group(s); mode: ${daemonGroups.length ? `${r.n - embeddedN} daemon process(es) in ${daemonGroups.length} group(s)` : 'no daemon processes'}${embeddedN ? `, ${embeddedN} embedded Apache child(ren)` : ''}`);
  L.push(`- states: ${stateCounts(r) || '-'}`);
  L.push(`- slow-request runs (≥ ${fmtThreshold(app.ui.stuckThr)}): ${entries.reduce((n, e) => n + e.stats.slowRuns, 0)}`);
  L.push(statusLine(r));
  L.push(`- body in ${humanBytes(r.inRate)}/s, out ${humanBytes(r.outRate)}/s`);
  L.push('');
  if (app.ui.group === '*' && r.groups.size > 1) {
    L.push('## Groups');
    for (const [g, pids] of r.groups) {
      const sub = rollup(entries.filter((e) => (e.proc.group || '') === g));
      L.push(`- ${g || '(embedded)'}: ${pids.length} proc(s), ${Math.round(sub.rpm)} rpm, cpu ${fmtCores(sub.cpu)}, resp ${sub.respMs == null ? '-' : fmtMs(sub.respMs)}, ${stateCounts(sub)}`);
    }
    L.push('');
  }
  L.push('## Process lifecycle');
  const evs = [];
  for (let i = 0; i < store.lifecycle.length; i++) evs.push(store.lifecycle.at(i));
  const kinds = { process_started: 0, process_stopping: 0, process_stopped: 0 };
  const byCat = { planned: 0, tuning: 0, unplanned: 0 };
  const byReason = new Map();
  const stoppingAt = new Map();
  const drains = [];
  let nonGraceful = 0;
  let inflightLost = 0;
  for (const ev of evs) {
    kinds[ev.kind] = (kinds[ev.kind] || 0) + 1;
    if (ev.kind === 'process_stopping') {
      const cat = reasonCategory(ev.shutdown_reason || '');
      byCat[cat]++;
      const k = ev.shutdown_reason || '(unknown)';
      byReason.set(k, (byReason.get(k) || 0) + 1);
      if (!stoppingAt.has(ev.pid)) stoppingAt.set(ev.pid, []);
      stoppingAt.get(ev.pid).push(ev.stamp);
    } else if (ev.kind === 'process_stopped') {
      const q = stoppingAt.get(ev.pid);
      if (q && q.length) drains.push(ev.stamp - q.shift());
      if (!ev.graceful_drain) {
        nonGraceful++;
        inflightLost += ev.active_requests_at_exit || 0;
      }
    }
  }
  L.push(`- events (last ${Math.round(Math.min(600, now - (evs[0]?.stamp ?? now)))} s): started ${kinds.process_started}, stopping ${kinds.process_stopping}, stopped ${kinds.process_stopped}`);
  L.push(`- restarts by category: planned ${byCat.planned}, tuning ${byCat.tuning}, unplanned ${byCat.unplanned}`);
  if (byReason.size) L.push(`- restarts by reason: ${[...byReason].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  L.push(`- drain quality: ${kinds.process_stopped - nonGraceful} graceful, ${nonGraceful} not graceful; requests in flight at non-graceful exit: ${inflightLost}`);
  if (drains.length) {
    const mean = drains.reduce((a, b) => a + b, 0) / drains.length;
    L.push(`- drain (STOPPING→STOPPED): mean ${fmtMs(mean * 1000)}, max ${fmtMs(Math.max(...drains) * 1000)}, total ${fmtMs(drains.reduce((a, b) => a + b, 0) * 1000)}`);
  }
  L.push('');
  L.push('## Processes');
  for (const { proc: p, stats: s, verdict: v } of entries) {
    L.push(`### pid ${p.pid} (${p.group || 'embedded'})`);
    L.push(`- ${Math.round(s.rpm)} rpm, ${s.nThreads} threads, capacity ${Math.round(s.capMean * 100)}%, cpu ${Math.round(s.cpuMean * 100)}%, response ${s.respMs == null ? '-' : fmtMs(s.respMs)}, RSS ${s.rssMb.toFixed(0)} MB`);
    const phases = [['server', s.srvMs], ['queue', s.queMs], ['daemon', s.daeMs], ['application', s.appMs]].filter(([, x]) => x != null);
    if (phases.length && s.respMs) L.push(`- phases: ${phases.map(([n, x]) => `${n} ${fmtMs(x)} (${share(x / s.respMs)})`).join(', ')}`);
    const extra = [['gil wait', s.gilMs], ['input read', s.inReadMs], ['output write', s.outWriteMs]].filter(([, x]) => x != null);
    if (extra.length) L.push(`- overlapping the application phase: ${extra.map(([n, x]) => `${n} ${fmtMs(x)}`).join(', ')}`);
    if (s.inBytes || s.outBytes) L.push(`- body in ${humanBytes(s.inRate)}/s (${s.inReads ? humanBytes(s.inBytes / s.inReads) : '-'} per read), out ${humanBytes(s.outRate)}/s (${s.outWrites ? humanBytes(s.outBytes / s.outWrites) : '-'} per write)`);
    L.push(statusLine(s));
    L.push('#### State');
    L.push(`- ${v.state === 'saturated' ? 'SATURATED: ' + v.reasons.join(', ') : v.state === 'cpugil' ? `CPU/GIL-BOUND: ${v.cpuReasons.join(', ')} - ${v.lean}` : 'normal'}`);
    L.push(`- signals used: busy ${Math.round(s.busyMean * 100)}%, cpu ${Math.round(s.cpuMean * 100)}%, slow runs ${s.slowRuns}, slot cpu/busy ${s.slotRatio == null ? '-' : s.slotRatio.toFixed(2)}, daemon ${s.daeMs == null ? '-' : fmtMs(s.daeMs)}, queue ${s.queMs == null ? '-' : fmtMs(s.queMs)}, gil wait ${s.gilMs == null ? '-' : fmtMs(s.gilMs)}`);
  }
  if (!entries.length) L.push('- none');
  L.push('');
  L.push('## Time distributions');
  for (const name of HIST_FIELDS) {
    const hst = store.histogram(name, W, (g) => app.groupOk(g));
    if (!hst.n) continue;
    const pc = (q) => fmtMs(percentile(hst.counts, q));
    L.push(`### ${name.replace('_time', '')}`);
    L.push(`- requests ${Math.round(hst.n)}; p50 ${pc(0.5)}, p90 ${pc(0.9)}, p95 ${pc(0.95)}, p99 ${pc(0.99)}; min ${hst.min == null ? '-' : fmtMs(hst.min * 1000)}, max ${hst.max == null ? '-' : fmtMs(hst.max * 1000)} (exact)`);
    if (name === 'gil_wait_time' && hst.switchInt != null) {
      const q = gilContention(hst.counts, hst.switchInt, bucketLower, bucketUpper);
      L.push(`- switch interval ${fmtMs(hst.switchInt * 1000)}; q ${q ? `${q.kind === 'fallback' ? '~' : ''}${q.q.toFixed(2)} (${q.label}), bands ${q.bands.join('/')}` : '-'}`);
    }
    const nz = [];
    for (let i = 0; i < 65; i++) if (hst.counts[i] > 0) nz.push(`${bucketRangeText(i)}: ${Math.round(hst.counts[i])} (${share(hst.counts[i] / hst.n)})`);
    L.push(`- buckets: ${nz.join('; ')}`);
  }
  L.push('');
  L.push('## Notes');
  L.push('- Windows end at the newest reporter timestamp. Means of per-request times are request-weighted; utilisations are time-weighted.');
  L.push('- Response time = server + queue + daemon + application (excludes the accept queue). GIL wait / input read / output write overlap the application phase.');
  L.push('- gil_wait_time is a lower bound (only mod_wsgi\'s own GIL release points). Status classes count only what the application set.');
  L.push(`- Ingester: ${store.datagrams} datagrams received, ${store.decodeErrors} decode errors, ${store.seqGaps} lost (sequence gaps).`);
  if (r.hosts.size > 1) L.push('- Several hosts: totals are sums; tune per host.');
  const allNormal = entries.length > 0 && entries.every((e) => e.verdict.state === 'normal');
  if (daemonGroups.length && allNormal && r.respMs != null && r.respMs < 50 && r.rpm > 100) {
    L.push('');
    L.push('## Tuning suggestion: throughput ceiling');
    L.push('- Every process is normal with fast responses: the daemon groups have headroom. To find the ceiling, raise load until a process turns SATURATED or CPU/GIL-BOUND, then size processes × threads from that point.');
  }
  return L.join('\n') + '\n';
}
