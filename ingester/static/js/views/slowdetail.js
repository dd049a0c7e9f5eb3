// The slow-request detail panel (table rows and the drill-down modal).

import { h } from '../dom.js';
import { humanBytes, fmtMsFine as fmtMs, fmtCount } from '../format.js';
import { fullUrl } from './capacity.js';

const PHASE_COLORS = { server: '#90a4ae', queue: '#ffb74d', daemon: '#ba68c8', application: '#4fc3f7' };

function row(k, v, cls) {
  return [h('div', { class: 'k', text: k }), v instanceof Node ? v : h('div', { class: 'v ' + (cls || ''), text: v })];
}

function ioLine(bytes, count, word, active) {
  if (!bytes && !count) return null;
  const avg = count > 0 ? bytes / count : 0;
  const parts = [h('span', { text: `${humanBytes(bytes)} / ${fmtCount(count)} ${word}${count === 1 ? '' : 's'}` })];
  if (count > 0) parts.push(' (≈ ', h('span', { class: avg < 64 ? 'amber' : '', text: `${humanBytes(avg)}/${word}` }), ')');
  if (active) parts.push(h('span', { class: 'muted', text: ' (in flight; counters partial)' }));
  return h('div', { class: 'v' }, ...parts);
}

/** Detail rows for a slow entry; `proc` (may be undefined) gives identity and thread maximum. */
export function detailPanel(entry, proc) {
  const en = entry;
  const active = en.state !== 1;
  const rows = [];
  const group = proc ? proc.group : null;
  rows.push(row('Group', group == null ? '-' : group || '(embedded)'));
  const httpd = [proc && proc.ppid ? String(proc.ppid) : '', proc && proc.hostname ? proc.hostname : ''].filter(Boolean).join(' · ');
  rows.push(row('HTTPD', httpd || '-'));
  if (en.server_pid > 0 && en.server_pid !== en.pid) {
    rows.push(row('proxy', String(en.server_pid)));
    rows.push(row('daemon', `${en.pid} · thread ${en.thread_id}`));
  } else {
    rows.push(row('embedded', `${en.pid} · thread ${en.thread_id}`));
  }
  rows.push(row('URL', `${en.method || '-'} ${fullUrl(en)}`));
  if (en.peer_ip || en.protocol) rows.push(row('Client', [en.peer_ip, en.protocol].filter(Boolean).join(' · ')));
  if (en.user_agent) rows.push(row('User-Agent', en.user_agent));
  rows.push(row('Log ID', en.log_id || '-'));
  const phases = [
    ['server', en.server_time],
    ['queue', en.queue_time],
    ['daemon', en.daemon_time],
    ['application', en.application_time],
  ];
  const tot = phases.reduce((a, [, v]) => a + (v || 0), 0);
  if (tot > 0) {
    let lastNZ = -1;
    phases.forEach(([, v], i) => { if (v > 0) lastNZ = i; });
    const bar = h('div', { class: 'phasebar' },
      ...phases.map(([n, v], i) => h('span', { class: active && i === lastNZ ? 'dim' : '', title: n, style: { width: ((v || 0) / tot) * 100 + '%', background: PHASE_COLORS[n] } })));
    const legend = h('div', { class: 'muted' }, phases.map(([n, v]) => h('span', null, h('i', { class: 'sw', style: { background: PHASE_COLORS[n] } }), `${n} ${fmtMs((v || 0) * 1000)}  `)));
    rows.push(row('Phases', h('div', { class: 'v' }, bar, legend, active ? h('div', { class: 'muted', text: 'still accumulating' }) : null)));
  }
  if (en.gil_wait_time > 0) {
    rows.push(row('GIL wait', `${fmtMs(en.gil_wait_time * 1000)} · ${en.gil_wait_count} event${en.gil_wait_count === 1 ? '' : 's'} (${en.duration > 0 ? ((en.gil_wait_time / en.duration) * 100).toFixed(1) : '0'}% of duration)`));
  }
  const max = proc && proc.samples.last() ? proc.samples.last().thMax : 0;
  const withMax = (n) => (max ? `${n} / ${max}` : String(n));
  rows.push(row('Concurrency', active ? `${withMax(en.active_at_start)} at start (in flight)` : `${withMax(en.active_at_start)} at start → ${withMax(en.active_at_completion)} at completion`));
  const bin = ioLine(en.input_bytes, en.input_reads, 'read', active);
  const bout = ioLine(en.output_bytes, en.output_writes, 'write', active);
  if (!bin && !bout && !active) {
    rows.push(row('Body', '(no body in or out)'));
  } else {
    rows.push(row('Body in', bin || '-'));
    rows.push(row('Body out', bout || '-'));
  }
  if (en.input_read_time > 0) rows.push(row('Input read time', `${fmtMs(en.input_read_time * 1000)} (${((en.input_read_time / en.duration) * 100).toFixed(1)}%)`));
  if (en.output_write_time > 0) rows.push(row('Output write time', `${fmtMs(en.output_write_time * 1000)} (${((en.output_write_time / en.duration) * 100).toFixed(1)}%)`));
  const cpu = (en.cpu_user_time || 0) + (en.cpu_system_time || 0);
  if (active) rows.push(row('CPU', '- (reported at completion)'));
  else if (cpu === 0) rows.push(row('CPU', '0 ms (no CPU consumed)'));
  else {
    const share = en.duration > 0 ? cpu / en.duration : 0;
    const cls = share >= 1 ? 'multi' : share >= 0.8 ? 'amber' : '';
    rows.push(row('CPU', `${fmtMs(cpu * 1000)} (${Math.round(share * 100)}% of wall)${share >= 1 ? ' (multi-core / GIL released)' : ''}`, cls));
    rows.push(row('CPU split', `user ${fmtMs(en.cpu_user_time * 1000)} · system ${fmtMs(en.cpu_system_time * 1000)}`));
  }
  return h('div', { class: 'kv' }, ...rows.flat());
}
