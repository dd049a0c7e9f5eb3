// One modal host: the slow-request drill-down from a heatmap run and the
// help reference. The drill-down re-resolves its record by key on every
// redraw; a run without a record shows "no record" (the reference threw
// here and stopped redrawing: docs/compatibility.md C24).

import { $, h, setText } from '../dom.js';
import { fmtIso, fmtSecShort } from '../format.js';
import { detailPanel } from './slowdetail.js';

export class Modal {
  constructor(app) {
    this.app = app;
    this.kind = null;
    this.run = null;
    $('#modal-close').addEventListener('click', () => this.close());
    $('#modal-backdrop').addEventListener('click', (e) => {
      if (e.target.id === 'modal-backdrop') this.close();
    });
  }

  open(kind, title, buttons, body) {
    this.kind = kind;
    this.sig = null;
    const t = $('#modal-title');
    t.replaceChildren(...(Array.isArray(title) ? title : [title]));
    $('#modal-buttons').replaceChildren(...(buttons || []));
    setText($('#modal-meta'), '');
    $('#modal-body').replaceChildren(...(body ? [body] : []));
    $('#modal-backdrop').hidden = false;
  }

  close() {
    this.kind = null;
    this.run = null;
    $('#modal-backdrop').hidden = true;
  }

  /** Drill-down from a heatmap run. */
  openRun(proc, run) {
    this.run = { pid: proc.pid, slot: run.slot, key: run.record, start: run.start, end: run.end, endKnown: run.endKnown, duration: run.duration, heuristic: !run.record };
    this.open('run', '', null, null);
    this.fillRun();
  }

  refresh() {
    if (this.kind === 'run') this.fillRun();
  }

  fillRun() {
    const r = this.run;
    if (!r) return;
    const store = this.app.store;
    const rec = r.key ? store.slow.get(r.key) : null;
    const proc = store.procs.get(r.pid);
    const state = r.heuristic ? 'heuristic' : rec ? (rec.entry.state === 1 ? 'completed' : 'active') : 'completed';
    const dur = rec ? rec.entry.duration : r.duration;
    const title = [h('span', { class: 'state-pill ' + state, text: state }), h('span', { text: `pid ${r.pid} · slot ${r.slot + 1} · ${fmtSecShort(dur)}` })];
    const sig = JSON.stringify([state, dur, rec ? rec.entry : null, r.heuristic, proc ? proc.slowThr : null]);
    if (this.sig === sig) return;
    this.sig = sig;
    $('#modal-title').replaceChildren(...title);
    const start = rec ? rec.entry.start_stamp : r.start;
    const ended = rec ? (rec.entry.state === 1 ? fmtIso(rec.entry.start_stamp + rec.entry.duration) : '(active)') : r.endKnown ? fmtIso(r.end) : '(active)';
    setText($('#modal-meta'), `started ${fmtIso(start)} · ended ${ended}`);
    let body;
    if (rec) body = detailPanel(rec.entry, proc);
    else if (!r.heuristic) {
      body = h('div', { class: 'no-record', text: 'The slow-request record of this run has aged out of storage.' });
    } else {
      const thr = proc ? proc.slowThr : null;
      let note;
      if (thr == null) note = 'No configuration received from this process yet, so the server-side slow-request threshold is unknown.';
      else if (thr === 0) note = 'WSGISlowRequests is not configured for this process (threshold 0), so mod_wsgi sends no slow-request records: this run was detected from the per-slot elapsed times only.';
      else note = `A record should have existed: the run lasted about ${fmtSecShort(dur)} and the process's WSGISlowRequests threshold is ${fmtSecShort(thr)}. It may have been lost, pruned or cleared.`;
      body = h('div', null, h('div', { class: 'no-record' }, h('b', { text: 'no record' }), h('span', { text: ' — heuristic detection only.' })), h('p', { text: note }));
    }
    $('#modal-body').replaceChildren(body);
  }
}
