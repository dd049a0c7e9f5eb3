// Processes tab: Gantt-style lifetimes (STARTED → STOPPED, tick at
// STOPPING) and the event log, linked both ways. Dead processes stay here
// (from the lifecycle records) after they have left the live views; above
// them, the live count and the recently stopped processes (the sidebar's
// STOPPED cards) with their shutdown reason and time.

import { $, h, setText, showTooltip, hideTooltip, reconcile } from '../dom.js';
import { fitCanvas, setFont, boxSize, AXIS_TEXT, GRID } from '../charts.js';
import { CATEGORY_COLORS, reasonCategory } from '../stats.js';
import { fmtClock, fmtClockMs, fmtUptime } from '../format.js';
import { STOPPED_GRACE_S } from '../store.js';

const ROW = 22;
const AXIS = 22;
const GUTTER = 150;
const RUNNING = '#3a4d5e';
const LOG_MAX_ROWS = 150;
const COLLATE = new Intl.Collator().compare;

export class Processes {
  constructor(app) {
    this.app = app;
    this.window = 60;
    this.paused = null;
    this.key = null;
    this.highlight = null; // {pid, until}
    $('#life-window').addEventListener('change', (e) => {
      this.window = Number(e.target.value);
      this.key = null;
      app.schedule(true);
    });
    $('#life-pause').addEventListener('click', (e) => {
      this.paused = this.paused == null ? app.store.now : null;
      setText(e.target, this.paused == null ? 'Pause' : 'Resume');
      this.key = null;
      app.schedule(true);
    });
    const c = $('#gantt');
    this.trs = new WeakMap(); // lifecycle event → its log row (rows are reused)
    this.rows = new WeakMap(); // lifecycle record → its timeline row
    // The timeline canvas only covers the visible rows: redraw on scroll.
    // The scroll position is remembered here, so a redraw does not read it
    // back from the DOM (a forced layout after the sidebar's writes).
    this.ganttScroll = 0;
    $('#gantt-wrap').addEventListener('scroll', (e) => {
      this.ganttScroll = e.target.scrollTop;
      this.key = null;
      app.schedule(true);
    });
    c.addEventListener('mousemove', (e) => this.hover(e));
    c.addEventListener('mouseleave', hideTooltip);
    c.addEventListener('click', (e) => {
      const r = this.rowAt(e);
      if (r) this.highlightPid(r.pid, 'log');
    });
  }

  highlightPid(pid, scrollWhat) {
    this.highlight = { pid, until: performance.now() + 2500 };
    this.scrollTo = scrollWhat;
    this.key = null;
    this.app.schedule(true);
    setTimeout(() => {
      this.key = null;
      this.app.schedule(true);
    }, 2600);
  }

  records(now, from) {
    const app = this.app;
    const store = app.store;
    const out = [];
    const livePids = new Set();
    for (const p of store.procs.values()) if (store.isLive(p)) livePids.add(p.pid);
    for (const r of store.life.values()) {
      const live = livePids.has(r.pid);
      if (!live && !((r.started ?? -Infinity) >= from || (r.stopping ?? -Infinity) >= from || (r.stopped ?? -Infinity) >= from)) continue;
      const group = r.group || (store.procs.get(r.pid)?.group ?? '');
      if (!app.groupOk(group)) continue;
      if (r.category && !app.ui.markers[r.category]) continue;
      // One row object per lifecycle record, refreshed in place (no copy per redraw).
      let row = this.rows.get(r);
      if (!row) this.rows.set(r, (row = {}));
      Object.assign(row, r);
      row.group = group;
      row.live = live;
      out.push(row);
    }
    for (const pid of livePids) {
      if (store.life.has(pid)) continue;
      const p = store.procs.get(pid);
      if (!app.groupOk(p.group)) continue;
      out.push({ pid, started: null, stopping: null, stopped: null, group: p.group, ppid: p.ppid, reason: '', category: null, firstT: p.samples.first()?.t ?? now, live: true });
    }
    out.sort((a, b) => (a.group === b.group ? 0 : COLLATE(a.group || '', b.group || '')) || a.firstT - b.firstT || a.pid - b.pid);
    return out;
  }

  draw(ctx) {
    const app = this.app;
    const now = this.paused ?? ctx.now;
    const hl = this.highlight && this.highlight.until > performance.now() ? this.highlight.pid : null;
    const key = [app.store.rev.life, app.store.rev.procs, now, this.window, app.ui.group, JSON.stringify(app.ui.markers), hl, boxSize($('#gantt')).w].join('|');
    if (!ctx.force && key === this.key) {
      if (this.pending()) this.runQueue(ctx.t0);
      return;
    }
    this.key = key;
    const from = now - this.window;
    const tr = performance.now();
    const recs = this.records(now, from);
    this.drawStopped(ctx);
    app.perf.recordSection('processes.records', performance.now() - tr);
    this.recs = recs;
    this.job = { from, now, hl };
    // The timeline first; the log in the next frame if this one is used up.
    this.queue = ['gantt', 'log'];
    this.runQueue(ctx.t0);
  }

  pending() {
    return this.queue && this.queue.length > 0;
  }

  /** "N live · M stopped", then one line per recently stopped process. */
  drawStopped(ctx) {
    const life = this.app.store.life;
    const lines = ctx.stopped.map((p) => {
      const r = life.get(p.pid);
      const reason = (r && r.reason) || '(unknown)';
      return [`pid ${p.pid} ${p.group ? `[${p.group}]` : '(embedded)'} stopped at ${fmtClockMs(p.stoppedAt)} · `, reason, 'cat-' + reasonCategory(r ? r.reason : '')];
    });
    const head = `${ctx.visible.length} live · ${ctx.stopped.length} stopped`;
    const el = $('#life-stopped');
    const sig = head + JSON.stringify(lines);
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    el.replaceChildren(
      h('div', { class: 'muted', text: lines.length ? `${head} (listed ${STOPPED_GRACE_S} s after STOPPED, counted in no total):` : head }),
      ...lines.map(([t, reason, cls]) => h('div', null, h('span', { text: t }), h('span', { class: cls, text: reason }))),
    );
  }

  /**
   * Draws the parts while the frame (from its start `t0`, sidebar included)
   * stays under 6 ms, judged by each part's previous cost; at least one.
   */
  runQueue(t0 = performance.now()) {
    const { from, now, hl } = this.job;
    const cost = this.cost || (this.cost = {});
    let drawn = 0;
    while (this.queue.length) {
      const task = this.queue[0];
      const ts = performance.now();
      if (drawn > 0 && ts - t0 + (cost[task] ?? 3) > 6) break;
      this.queue.shift();
      drawn++;
      if (task === 'gantt') this.drawGantt(this.recs, from, now, hl);
      else this.drawLog(from, now, hl);
      const te = performance.now();
      cost[task] = te - ts;
      this.app.perf.recordSection('processes.' + task, te - ts);
    }
  }

  drawGantt(recs, from, now, hl) {
    const canvas = $('#gantt');
    const wrap = $('#gantt-wrap');
    const spacer = $('#gantt-spacer');
    $('#gantt-empty').hidden = recs.length > 0;
    canvas.hidden = recs.length === 0;
    if (!recs.length) {
      spacer.style.height = '0px';
      return;
    }
    // Scroll geometry from our own numbers: the wrap's content is the
    // canvas (viewH) plus the spacer (total - viewH), its height is viewH.
    const prevTotal = this.total || 0;
    const prevViewH = Math.min(prevTotal, 360);
    const stick = this.ganttScroll + prevViewH >= prevTotal - 6;
    const total = AXIS + recs.length * ROW + 2;
    const viewH = Math.min(total, 360);
    this.total = total;
    if (canvas.style.height !== viewH + 'px') canvas.style.height = viewH + 'px';
    const sp = total - viewH + 'px';
    if (spacer.style.height !== sp) spacer.style.height = sp;
    let target = this.ganttScroll;
    if (this.scrollTo === 'gantt' && hl != null) {
      const i = recs.findIndex((r) => r.pid === hl);
      if (i >= 0) target = AXIS + i * ROW - viewH / 2;
      this.scrollTo = null;
    } else if (stick) target = total - viewH;
    target = Math.max(0, Math.min(total - viewH, Math.round(target)));
    if (target !== this.ganttScroll) {
      // A scroll write needs layout: only when the position really moves.
      wrap.scrollTop = target;
      this.ganttScroll = target;
    }
    const scroll = target;
    this.scrollOffset = scroll;
    const { ctx, w } = fitCanvas(canvas, viewH);
    const pw = Math.max(1, w - GUTTER - 8);
    const X = (t) => GUTTER + ((t - from) / (now - from)) * pw;
    this.geom = { X, pw, from, now };
    setFont(ctx);
    ctx.textBaseline = 'middle';
    // rows visible in the viewport only
    const first = Math.max(0, Math.floor(scroll / ROW) - 1);
    const last = Math.min(recs.length - 1, Math.ceil((scroll + viewH) / ROW));
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, AXIS, w, viewH - AXIS);
    ctx.clip();
    for (let i = first; i <= last; i++) {
      const r = recs[i];
      const y = AXIS + i * ROW - scroll;
      if (r.pid === hl) {
        ctx.fillStyle = '#34404a';
        ctx.fillRect(0, y, w, ROW);
      } else if (i % 2) {
        ctx.fillStyle = '#282828';
        ctx.fillRect(0, y, w, ROW);
      }
      ctx.fillStyle = '#ddd';
      ctx.textAlign = 'left';
      ctx.fillText(ellipsis(ctx, `pid ${r.pid}  ${r.group || '(embedded)'}`, GUTTER - 8), 4, y + ROW / 2);
      const startKnown = r.started != null;
      const t0 = startKnown ? Math.max(r.started, from) : from;
      const t1 = r.stopped ?? r.stopping ?? now;
      if (t1 < from) continue;
      const x0 = X(t0);
      const x1 = Math.max(x0 + 2, X(Math.min(t1, now)));
      ctx.fillStyle = r.stopped != null ? CATEGORY_COLORS[r.category || reasonCategory(r.reason)] : RUNNING;
      const top = y + 4;
      const bh = ROW - 8;
      const notchL = !startKnown || r.started < from;
      const notchR = r.stopped == null;
      ctx.beginPath();
      ctx.moveTo(x0, top);
      ctx.lineTo(x1 - (notchR ? 5 : 0), top);
      if (notchR) ctx.lineTo(x1, top + bh / 2);
      ctx.lineTo(x1 - (notchR ? 5 : 0), top + bh);
      ctx.lineTo(x0, top + bh);
      if (notchL) ctx.lineTo(x0 + 5, top + bh / 2);
      ctx.closePath();
      ctx.fill();
      if (r.stopping != null && r.stopping >= from) {
        ctx.fillStyle = '#111';
        ctx.fillRect(X(r.stopping) - 1, top - 2, 2, bh + 4);
      }
    }
    // grid lines, then the axis (fixed at the top)
    ctx.strokeStyle = GRID;
    for (let i = 0; i < 6; i++) {
      const x = Math.round(X(from + ((now - from) * i) / 5)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, AXIS);
      ctx.lineTo(x, viewH);
      ctx.stroke();
    }
    ctx.restore();
    ctx.fillStyle = '#242424';
    ctx.fillRect(0, 0, w, AXIS);
    ctx.fillStyle = AXIS_TEXT;
    for (let i = 0; i < 6; i++) {
      const t = from + ((now - from) * i) / 5;
      ctx.textAlign = i === 0 ? 'left' : i === 5 ? 'right' : 'center';
      ctx.fillText(fmtClock(t), X(t), AXIS / 2);
    }
  }

  rowAt(e) {
    const c = $('#gantt');
    const r = c.getBoundingClientRect();
    const y = e.clientY - r.top;
    if (y < AXIS) return null;
    const i = Math.floor((y - AXIS + (this.scrollOffset || 0)) / ROW);
    return this.recs && i >= 0 && i < this.recs.length ? this.recs[i] : null;
  }

  hover(e) {
    const r = this.rowAt(e);
    if (!r) return hideTooltip();
    const store = this.app.store;
    const ppid = r.ppid || store.procs.get(r.pid)?.ppid || 0;
    const lines = [`pid ${r.pid} · parent ${ppid || '-'}`, ['group', r.group || '(embedded)']];
    if (r.started != null) lines.push(['started', fmtClockMs(r.started)]);
    if (r.stopping != null) lines.push(['stopping', fmtClockMs(r.stopping)]);
    if (r.stopped != null) lines.push(['stopped', fmtClockMs(r.stopped)]);
    if (r.stopping != null || r.stopped != null) {
      lines.push(['reason', `${r.reason || '(unknown)'} (${r.category})`]);
      if (r.uptime != null) lines.push(['uptime', fmtUptime(r.uptime)]);
      if (r.requests != null) lines.push(['requests', r.requests]);
      if (r.inflightDecision != null) lines.push(['in-flight at decision', r.inflightDecision]);
      if (r.inflightExit != null) lines.push(['in-flight at exit', r.inflightExit]);
      if (r.graceful != null) lines.push(['graceful drain', r.graceful ? 'yes' : 'no']);
    } else lines.push(['state', 'running']);
    showTooltip(e.clientX, e.clientY, lines);
  }

  drawLog(from, now, hl) {
    const app = this.app;
    const store = app.store;
    const wrap = $('#log-wrap');
    const rows = [];
    const startedPpid = new Map();
    for (let i = 0; i < store.lifecycle.length; i++) {
      const ev = store.lifecycle.at(i);
      if (ev.kind === 'process_started' && ev.process_parent_pid) startedPpid.set(ev.pid, ev.process_parent_pid);
    }
    const wanted = [];
    for (let i = 0; i < store.lifecycle.length; i++) {
      const ev = store.lifecycle.at(i);
      if (ev.stamp < from || ev.stamp > now) continue;
      const group = ev.process_group || store.life.get(ev.pid)?.group || '';
      if (!app.groupOk(group)) continue;
      const cat = reasonCategory(ev.shutdown_reason || '');
      if (ev.kind !== 'process_started' && !app.ui.markers[cat]) continue;
      wanted.push(ev);
    }
    const hidden = Math.max(0, wanted.length - LOG_MAX_ROWS);
    setText($('#log-note'), hidden ? `${hidden} older events in the window not listed` : '');
    let hlRow = null;
    for (const ev of wanted.slice(hidden)) {
      let tr = this.trs.get(ev);
      if (!tr) {
        tr = this.logRow(ev, startedPpid);
        this.trs.set(ev, tr);
      }
      const on = ev.pid === hl;
      if (tr.classList.contains('hl') !== on) tr.classList.toggle('hl', on);
      if (on && !hlRow) hlRow = tr;
      rows.push(tr);
    }
    reconcile($('#life-log tbody'), rows);
    // The log sticks to its newest row by CSS (a column-reverse scroll
    // box), so appending rows needs no scroll reads or writes here.
    if (this.scrollTo === 'log' && hlRow) {
      // (on a click only: reading layout here is fine)
      const top = hlRow.getBoundingClientRect().top - wrap.getBoundingClientRect().top;
      wrap.scrollTop += top - wrap.clientHeight / 2;
      this.scrollTo = null;
    }
  }

  logRow(ev, startedPpid) {
    const store = this.app.store;
    const group = ev.process_group || store.life.get(ev.pid)?.group || '';
    const cat = reasonCategory(ev.shutdown_reason || '');
    const ppid = ev.process_parent_pid || startedPpid.get(ev.pid) || store.procs.get(ev.pid)?.ppid || '-';
    const kind = ev.kind.replace('process_', '');
    const stopped = ev.kind === 'process_stopped';
    const tr = h('tr', null,
      h('td', { text: fmtClockMs(ev.stamp) }),
      h('td', null, h('span', { class: 'kind ' + ev.kind, text: kind })),
      h('td', { text: String(ev.pid) }),
      h('td', { text: String(ppid) }),
      h('td', { text: group || '(embedded)' }),
      h('td', { class: ev.kind === 'process_started' ? '' : 'cat-' + cat, text: ev.kind === 'process_started' ? '-' : ev.shutdown_reason || '(unknown)' }),
      h('td', { text: stopped ? fmtUptime(ev.process_uptime) : '' }),
      h('td', { text: stopped ? String(ev.lifetime_request_count) : '' }),
      h('td', { text: stopped ? String(ev.active_requests_at_exit) : ev.kind === 'process_stopping' ? String(ev.active_requests_at_decision) : '' }),
      h('td', { text: stopped ? (ev.graceful_drain ? 'yes' : 'no') : '' }));
    tr.addEventListener('click', () => this.highlightPid(ev.pid, 'gantt'));
    return tr;
  }
}

// Row labels repeat every redraw: measureText once per distinct label.
const fitted = new Map();

function ellipsis(ctx, s, max) {
  const key = `${max}|${s}`;
  const hit = fitted.get(key);
  if (hit !== undefined) return hit;
  let out = s;
  if (ctx.measureText(s).width > max) {
    while (out.length > 1 && ctx.measureText(out + '…').width > max) out = out.slice(0, -1);
    out += '…';
  }
  if (fitted.size > 4000) fitted.clear();
  fitted.set(key, out);
  return out;
}
