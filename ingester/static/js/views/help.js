// Help modal: renders the reference Markdown, copies it or a Markdown
// snapshot of the current stats (for pasting into a chat or a ticket).

import { $, h } from '../dom.js';
import { HELP_MD } from '../helptext.js';
import { statsSnapshot } from '../snapshot.js';

/** Minimal Markdown: ## headings, bullets with indented continuations, paragraphs, `code`, **bold**. */
export function renderMarkdown(md) {
  const out = [];
  let list = null;
  let para = null;
  const inline = (text) => {
    const nodes = [];
    const re = /(`[^`]+`|\*\*[^*]+\*\*)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) nodes.push(text.slice(last, m.index));
      const t = m[0];
      nodes.push(t.startsWith('`') ? h('code', { text: t.slice(1, -1) }) : h('b', { text: t.slice(2, -2) }));
      last = m.index + t.length;
    }
    if (last < text.length) nodes.push(text.slice(last));
    return nodes;
  };
  const flush = () => {
    if (para) out.push(h('p', null, ...inline(para)));
    para = null;
  };
  let item = null;
  const endList = () => {
    if (item) list.push(item);
    if (list) out.push(h('ul', null, ...list.map((t) => h('li', null, ...inline(t)))));
    list = null;
    item = null;
  };
  for (const line of md.split('\n')) {
    if (line.startsWith('## ')) {
      flush();
      endList();
      out.push(h('h2', { text: line.slice(3) }));
    } else if (line.startsWith('- ')) {
      flush();
      if (!list) list = [];
      if (item) list.push(item);
      item = line.slice(2);
    } else if (/^\s+\S/.test(line) && item != null) {
      item += ' ' + line.trim();
    } else if (!line.trim()) {
      flush();
      endList();
    } else {
      endList();
      para = para ? para + ' ' + line : line;
    }
  }
  flush();
  endList();
  return h('div', null, ...out);
}

async function copyText(text, btn) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    const ta = h('textarea', { style: { position: 'fixed', left: '-9999px' } });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
  }
  const old = btn.textContent;
  btn.textContent = ok ? 'Copied' : 'Copy failed';
  setTimeout(() => (btn.textContent = old), 1200);
}

export class Help {
  constructor(app) {
    this.app = app;
    $('#help-btn').addEventListener('click', () => this.open());
  }

  open() {
    const b1 = h('button', { class: 'btn', text: 'Copy help' });
    const b2 = h('button', { class: 'btn', id: 'copy-stats', text: 'Copy current stats (last 1 min)' });
    b1.addEventListener('click', () => copyText(HELP_MD, b1));
    b2.addEventListener('click', () => {
      const text = statsSnapshot(this.app);
      this.app.lastStatsSnapshot = text;
      copyText(text, b2);
    });
    this.app.modal.open('help', 'mod_wsgi telemetry: reference', [b1, b2], renderMarkdown(HELP_MD));
  }
}
