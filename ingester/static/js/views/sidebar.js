// Sidebar: Totals, Groups, Ingester health and one card per visible process:
// live ones (the only ones the totals count), then recently stopped ones,
// marked STOPPED with their shutdown reason and time.
// Cards are keyed by pid and reused; only cards on screen are refreshed
// (IntersectionObserver), the rest are refreshed when scrolled into view.

import { h, $, setText, reconcile } from '../dom.js';
import { rollup, stateCounts } from '../stats.js';
import { fmtRespMs, fmtCores, humanBytes, fmtCount, fmtClock, fmtUptime } from '../format.js';

// Number.toLocaleString builds an ICU formatter per call: keep one.
const NUM = new Intl.NumberFormat();
const COLLATE = new Intl.Collator().compare;
// Past this much of a frame (from its start) the cards are drawn next frame.
const CARDS_SPLIT_MS = 4;

export class Sidebar {
  constructor(app) {
    this.app = app;
    this.cards = new Map(); // pid → {el, parts, onScreen, key}
    this.order = '';
    this.observer =
      'IntersectionObserver' in window
        ? new IntersectionObserver(
            (entries) => {
              let any = false;
              for (const e of entries) {
                const c = this.cards.get(Number(e.target.dataset.pid));
                if (!c) continue;
                c.onScreen = e.isIntersecting;
                if (c.onScreen && c.stale) any = true;
              }
              if (any) {
                app.sideKey = null;
                app.schedule(true);
              }
            },
            { root: $('#sidebar') },
          )
        : null;
  }

  draw(ctx) {
    const app = this.app;
    const perf = app.perf;
    const t0 = performance.now();
    const entries = ctx.visible.map((p) => app.stats(p));
    const r = rollup(entries);
    const t1 = performance.now();
    perf.recordSection('sidebar.rollup', t1 - t0);
    // Totals
    setText($('#totals-head'), `${fmtCount(Math.round(r.rpm))} rpm · resp ${r.respMs == null ? '-' : fmtRespMs(r.respMs)} ms`);
    const hosts = [...r.hosts].sort();
    setText($('#totals-host'), hosts.length ? `host: ${hosts.join(', ')}${hosts.length > 1 ? ' (multi-host)' : ''}` : '');
    setText($('#totals-cpu'), `cpu ${fmtCores(r.cpu)} · ${r.rssMb.toFixed(0)} MB`);
    const stopped = ctx.stopped.length ? ` · ${ctx.stopped.length} stopped (not counted)` : '';
    setText($('#totals-procs'), `${r.n} proc${r.n === 1 ? '' : 's'} across ${r.groups.size} group${r.groups.size === 1 ? '' : 's'}${stopped}`);
    setText($('#totals-states'), stateCounts(r));
    this.drawGroups(ctx, entries, r);
    this.drawHealth(ctx);
    const t2 = performance.now();
    perf.recordSection('sidebar.groups', t2 - t1);
    // The cards wait for the next frame when this one is already long.
    if (ctx.t0 != null && t2 - ctx.t0 > CARDS_SPLIT_MS && !ctx.force) this.cardsPending = true;
    else this.drawCards(ctx, this.cardEntries(ctx, entries));
    const hidden = ctx.live.length - ctx.visible.length;
    setText($('#filtered-out'), hidden > 0 ? `${hidden} filtered out` : '');
  }

  drawGroups(ctx, entries, r) {
    const sec = $('#groups-section');
    const show = this.app.ui.group === '*' && r.groups.size > 1;
    sec.hidden = !show;
    if (!show) return;
    const names = [...r.groups.keys()].sort((a, b) => (a === '' ? -1 : b === '' ? 1 : COLLATE(a, b)));
    const byGroup = new Map(names.map((g) => [g, []]));
    for (const e of entries) byGroup.get(e.proc.group || '')?.push(e);
    const lines = names.map((g) => {
      const sub = rollup(byGroup.get(g));
      return [g || '(embedded)', `${fmtCount(Math.round(sub.rpm))} rpm · cpu ${fmtCores(sub.cpu)} · ${sub.n} proc${sub.n === 1 ? '' : 's'} · ${stateCounts(sub)}`];
    });
    const sig = JSON.stringify(lines);
    if (sec.dataset.sig === sig) return;
    sec.dataset.sig = sig;
    $('#groups-body').replaceChildren(...lines.map(([n, t]) => h('div', { class: 'gline' }, h('b', { text: n }), h('br'), h('span', { class: 'muted', text: t }))));
  }

  drawHealth() {
    const s = this.app.store;
    const lines = [
      `datagrams received: ${NUM.format(s.datagrams)}`,
      `decode errors: ${NUM.format(s.decodeErrors)}`,
      `sequence gaps (lost datagrams): ${NUM.format(s.seqGaps)}`,
    ];
    if (s.extra.receive_pauses) lines.push(`receiver paused (ingest behind): ${s.extra.receive_pauses}×`);
    if (s.extra.slow_evicted) lines.push(`slow entries evicted: ${s.extra.slow_evicted}`);
    if (s.extra.history_evicted_for_bytes) lines.push(`history records evicted (4 MiB per process): ${s.extra.history_evicted_for_bytes}`);
    if (s.historyTruncated) lines.push('history before connect was shortened');
    const body = $('#health-body');
    const sig = lines.join('\n');
    if (body.dataset.sig === sig) return;
    body.dataset.sig = sig;
    body.replaceChildren(
      ...lines.map((t) => h('div', { class: /^(decode errors|sequence gaps): [1-9]/.test(t) || /overflow|evicted/.test(t) ? 'warn' : '', text: t })),
    );
  }

  /** Cards left over by the previous redraw (see draw). */
  pending() {
    return !!this.cardsPending;
  }

  drawPending(ctx) {
    if (!this.cardsPending) return;
    this.drawCards(ctx, this.cardEntries(ctx, ctx.visible.map((p) => this.app.stats(p))));
  }

  /** Live entries, then one per recently stopped process. */
  cardEntries(ctx, entries) {
    return ctx.stopped.length ? entries.concat(ctx.stopped.map((proc) => ({ proc, stopped: true }))) : entries;
  }

  drawCards(ctx, entries) {
    const t0 = performance.now();
    this.cardsPending = false;
    this.drawCardsNow(ctx, entries);
    this.app.perf.recordSection('sidebar.cards', performance.now() - t0);
  }

  drawCardsNow(ctx, entries) {
    const box = $('#proc-cards');
    const pids = entries.map((e) => e.proc.pid);
    const order = pids.join(',');
    const wanted = new Set(pids);
    for (const [pid, c] of this.cards) {
      if (!wanted.has(pid) || c.proc !== this.app.store.procs.get(pid)) {
        if (this.observer) this.observer.unobserve(c.el);
        c.el.remove();
        this.cards.delete(pid);
      }
    }
    for (const e of entries) {
      if (!this.cards.has(e.proc.pid)) this.cards.set(e.proc.pid, this.makeCard(e.proc));
    }
    if (order !== this.order) {
      reconcile(box, entries.map((e) => this.cards.get(e.proc.pid).el));
      this.order = order;
    }
    for (const e of entries) {
      const c = this.cards.get(e.proc.pid);
      if (this.observer && !c.onScreen && !ctx.force) {
        c.stale = true;
        continue;
      }
      c.stale = false;
      this.fillCard(c, e);
    }
  }

  makeCard(p) {
    const parts = {
      pid: h('span', { class: 'pid' }),
      flag: h('span'),
      ident: h('div', { class: 'muted' }),
      l1: h('div'),
      l2: h('div'),
      l3: h('div'),
      l4: h('div', { class: 'warn' }),
    };
    const el = h('div', { class: 'pcard', dataset: { pid: String(p.pid) }, style: { borderLeftColor: p.color } },
      h('div', null, parts.pid, parts.flag), parts.ident, parts.l1, parts.l2, parts.l3, parts.l4);
    const c = { el, parts, proc: p, onScreen: !this.observer, stale: true };
    if (this.observer) this.observer.observe(el);
    return c;
  }

  fillCard(c, e) {
    if (c.el.classList.contains('stopped') !== !!e.stopped) c.el.classList.toggle('stopped', !!e.stopped);
    if (e.stopped) return this.fillStoppedCard(c, e.proc);
    const { proc: p, stats: s, verdict } = e;
    const P = c.parts;
    setText(P.pid, `pid ${p.pid}`);
    setText(P.flag, verdict.state === 'saturated' ? ' SATURATED' : verdict.state === 'cpugil' ? ' CPU/GIL-BOUND' : '');
    P.flag.className = 'state-' + verdict.state;
    setText(P.ident, p.group ? `${p.hostname || '?'} [${p.group}]` : `${p.hostname || '?'} (embedded)`);
    setText(P.l1, `${fmtCount(Math.round(s.rpm))} rpm · cap ${Math.round(s.capMean * 100)}% · resp ${s.respMs == null ? '-' : fmtRespMs(s.respMs)} ms`);
    setText(P.l2, `cpu ${Math.round(s.cpuMean * 100)}% · ${s.rssMb.toFixed(0)} MB`);
    setText(P.l3, s.inBytes || s.outBytes ? `in ${humanBytes(s.inRate)}/s · out ${humanBytes(s.outRate)}/s` : '');
    const lost = p.dropsServer + p.dropsClient;
    setText(P.l4, lost > 0 ? `${lost} datagram${lost === 1 ? '' : 's'} lost (seq gaps)` : '');
  }

  /** A process that sent STOPPED: when, why, and its lifetime figures. */
  fillStoppedCard(c, p) {
    const P = c.parts;
    const r = this.app.store.life.get(p.pid);
    setText(P.pid, `pid ${p.pid}`);
    setText(P.flag, ' STOPPED');
    P.flag.className = 'state-stopped';
    setText(P.ident, p.group ? `${p.hostname || '?'} [${p.group}]` : `${p.hostname || '?'} (embedded)`);
    setText(P.l1, `stopped at ${fmtClock(p.stoppedAt)} · ${(r && r.reason) || '(unknown)'}`);
    const life = [];
    if (r && r.uptime != null) life.push(`uptime ${fmtUptime(r.uptime)}`);
    if (r && r.requests != null) life.push(`${fmtCount(r.requests)} request${r.requests === 1 ? '' : 's'}`);
    if (r && r.inflightExit) life.push(`${r.inflightExit} in flight at exit`);
    setText(P.l2, life.join(' · '));
    setText(P.l3, '');
    const lost = p.dropsServer + p.dropsClient;
    setText(P.l4, lost > 0 ? `${lost} datagram${lost === 1 ? '' : 's'} lost (seq gaps)` : '');
  }
}
