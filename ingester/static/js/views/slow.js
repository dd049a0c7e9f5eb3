// Slow requests tab: sortable table with state filter, per-URL cap, URL
// search, expandable detail rows, pause and clear.

import { $, h, setText, reconcile } from '../dom.js';
import { fmtElapsed } from '../format.js';
import { fullUrl } from './capacity.js';
import { detailPanel } from './slowdetail.js';

const MAX_ROWS = 200;

// fullUrl of a record's entry (an entry object is replaced, not changed,
// when the record updates): sorting, grouping and search reuse it.
const URLS = new WeakMap();
function urlOf(en) {
  let u = URLS.get(en);
  if (u === undefined) URLS.set(en, (u = fullUrl(en)));
  return u;
}

export class SlowView {
  constructor(app) {
    this.app = app;
    this.ui = { state: 'active', perUrl: 10, search: '', sort: 'duration', asc: false };
    this.open = new Set();
    this.trs = new Map(); // record key → {tr, sig}: rows are rebuilt only when their text changes
    this.paused = null;
    this.key = null;
    const ch = (sel, k, num) =>
      $(sel).addEventListener(sel === '#slow-search' ? 'input' : 'change', (e) => {
        this.ui[k] = num ? Number(e.target.value) : e.target.value;
        this.key = null;
        app.schedule(true);
      });
    ch('#slow-state', 'state');
    ch('#slow-perurl', 'perUrl', true);
    ch('#slow-search', 'search');
    $('#slow-pause').addEventListener('click', (e) => {
      this.paused = this.paused ? null : { entries: [...app.store.slow.values()], now: app.store.now };
      setText(e.target, this.paused ? 'Resume' : 'Pause');
      this.key = null;
      app.schedule(true);
    });
    $('#slow-clear').addEventListener('click', () => {
      // The table updates when the server's slow_clear message arrives.
      fetch(`${app.base}/api/slow/clear`, { method: 'POST' }).catch(() => {});
    });
    for (const th of document.querySelectorAll('#slow-table th.sortable')) {
      th.addEventListener('click', () => {
        const k = th.dataset.sort;
        if (this.ui.sort === k) this.ui.asc = !this.ui.asc;
        else {
          this.ui.sort = k;
          this.ui.asc = k === 'url' || k === 'method' || k === 'pid';
        }
        this.key = null;
        app.schedule(true);
      });
    }
    this.lastClearRev = -1;
  }

  /** Server cleared its slow table: collapse rows, refresh a paused copy. */
  onClear() {
    this.open.clear();
    if (this.paused) this.paused = { entries: [...this.app.store.slow.values()], now: this.app.store.now };
    this.key = null;
  }

  rows(ctx) {
    const app = this.app;
    const store = app.store;
    const now = this.paused ? this.paused.now : store.now;
    const all = this.paused ? this.paused.entries : [...store.slow.values()];
    const q = this.ui.search.trim().toLowerCase();
    let rows = all.filter((s) => {
      const en = s.entry;
      const p = store.procs.get(en.pid);
      const sp = p ? p.sp : 1;
      if (en.state === 1 && now - s.seen > Math.max(15, 5 * sp)) return false; // display freshness
      if (p && !app.groupOk(p.group)) return false; // entries of unknown pids pass
      if (this.ui.state === 'active' && en.state === 1) return false;
      if (this.ui.state === 'completed' && en.state !== 1) return false;
      if (q && !urlOf(en).toLowerCase().includes(q)) return false;
      return true;
    });
    rows.sort((a, b) => b.entry.duration - a.entry.duration);
    // rank within URL groups (by duration: the rows are in that order), then cap per URL
    const groups = new Map();
    const keys = rows.map((s) => {
      const k = `${s.entry.method} | ${urlOf(s.entry)}`;
      groups.set(k, (groups.get(k) || 0) + 1);
      return k;
    });
    const seen = new Map();
    const out = [];
    rows.forEach((s, i) => {
      const rank = (seen.get(keys[i]) || 0) + 1;
      seen.set(keys[i], rank);
      if (this.ui.perUrl > 0 && rank > this.ui.perUrl) return;
      out.push({ s, rank, total: groups.get(keys[i]) });
    });
    const dir = this.ui.asc ? 1 : -1;
    const val = {
      duration: (r) => r.s.entry.duration,
      state: (r) => r.s.entry.state,
      method: (r) => r.s.entry.method || '',
      status: (r) => r.s.entry.status,
      url: (r) => urlOf(r.s.entry),
      pid: (r) => r.s.entry.pid,
    }[this.ui.sort];
    out.sort((a, b) => {
      const x = val(a);
      const y = val(b);
      const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return c !== 0 ? c * dir : b.s.entry.duration - a.s.entry.duration;
    });
    return out.slice(0, MAX_ROWS);
  }

  draw(ctx) {
    const app = this.app;
    const key = [app.store.rev.slow, app.store.rev.procs, ctx.now, app.ui.group, this.open.size, !!this.paused].join('|');
    if (!ctx.force && key === this.key) return;
    this.key = key;
    const rows = this.rows(ctx);
    for (const th of document.querySelectorAll('#slow-table th.sortable')) {
      th.classList.toggle('sorted', th.dataset.sort === this.ui.sort);
      th.classList.toggle('asc', th.dataset.sort === this.ui.sort && this.ui.asc);
    }
    const shown = new Set(rows.map((r) => r.s.ks));
    for (const k of [...this.open]) if (!shown.has(k)) this.open.delete(k);
    const body = $('#slow-table tbody');
    const trs = [];
    const keep = new Map();
    for (const r of rows) {
      const en = r.s.entry;
      const ks = r.s.ks;
      const isOpen = this.open.has(ks);
      const url = urlOf(en);
      const dur = fmtElapsed(en.duration);
      const sig = `${isOpen}|${dur}|${en.state}|${en.method}|${en.status}|${url}|${r.rank}/${r.total}|${en.pid}|${en.log_id}`;
      let row = this.trs.get(ks);
      if (!row || row.sig !== sig) {
        const tr = h('tr', { class: 'row', dataset: { key: ks } },
          h('td', { text: isOpen ? '▾' : '▸' }),
          h('td', { text: dur }),
          h('td', { class: en.state === 1 ? 'st-completed' : 'st-active', text: en.state === 1 ? 'completed' : 'active' }),
          h('td', { text: en.method || '-' }),
          h('td', { class: en.status >= 500 || (en.state === 1 && en.status === 0) ? 's5xx' : '', text: en.status ? String(en.status) : '-' }),
          h('td', { class: 'url', title: url },
            h('span', { class: 'path', text: url }),
            h('span', { class: 'badge', title: `${r.rank} of ${r.total} slow requests with this URL`, text: `${r.rank}/${r.total}` })),
          h('td', { text: String(en.pid) }),
          h('td', { class: 'muted', text: en.log_id || '-' }));
        tr.addEventListener('click', () => {
          if (this.open.has(ks)) this.open.delete(ks);
          else this.open.add(ks);
          this.key = null;
          app.schedule(true);
        });
        row = { tr, sig };
      }
      keep.set(ks, row);
      trs.push(row.tr);
      if (isOpen) trs.push(h('tr', { class: 'detail' }, h('td'), h('td', { colspan: '7' }, detailPanel(en, app.store.procs.get(en.pid)))));
    }
    this.trs = keep;
    reconcile(body, trs);
    $('#slow-empty').hidden = rows.length > 0;
  }
}
