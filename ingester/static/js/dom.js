// Tiny DOM helpers. Data never goes through innerHTML: request URLs, user
// agents and group names are attacker-controlled text.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Sets textContent only when it differs (avoids needless layout work). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function $(sel, root = document) {
  return root.querySelector(sel);
}

/**
 * Makes the options of a <select> `options` (keyed by value: options that
 * stay are kept, so a pid list that changes by one process each second
 * costs one insertion, not hundreds of new elements to style); keeps the
 * value if still offered.
 */
export function setOptions(select, options, fallback) {
  const cur = select.value;
  const sig = options.map((o) => o.value + '\u0000' + o.label).join('\u0001');
  if (select.__sig !== sig) {
    const old = select.__opts || new Map();
    const els = new Map();
    for (const o of options) {
      let el = old.get(o.value);
      if (!el) el = h('option', { value: o.value, text: o.label });
      else setText(el, o.label);
      els.set(o.value, el);
    }
    reconcile(select, [...els.values()]);
    select.__opts = els;
    select.__sig = sig;
  }
  const v = options.some((o) => o.value === cur) ? cur : fallback ?? options[0]?.value;
  if (select.value !== v) select.value = v;
  return select.value;
}

const tip = () => document.getElementById('tooltip');

/**
 * Shows the shared tooltip near (x, y) page coordinates. `lines` is an array
 * of strings or [label, value] pairs or {text, cls}.
 */
export function showTooltip(x, y, lines, cls) {
  const t = tip();
  if (!t) return;
  t.replaceChildren(
    ...lines.map((l, i) => {
      if (Array.isArray(l)) return h('div', null, h('span', { class: 'tl', text: l[0] }), ' ', h('span', { class: 'tv', text: String(l[1]) }));
      if (l && typeof l === 'object') return h('div', { class: l.cls || '', text: l.text });
      return h('div', { class: i === 0 ? 'tt-title' : '', text: l });
    }),
  );
  t.className = 'tooltip' + (cls ? ' ' + cls : '');
  t.hidden = false;
  const r = t.getBoundingClientRect();
  let left = x + 14;
  let top = y + 14;
  if (left + r.width > window.innerWidth - 4) left = x - r.width - 14;
  if (top + r.height > window.innerHeight - 4) top = y - r.height - 14;
  t.style.left = Math.max(4, left) + 'px';
  t.style.top = Math.max(4, top) + 'px';
}

export function hideTooltip() {
  const t = tip();
  if (t) t.hidden = true;
}

/**
 * Makes `parent`'s children exactly `wanted` (in order), moving only the
 * elements that are out of place; nodes not in `wanted` must have been
 * removed by the caller or are removed here.
 */
export function reconcile(parent, wanted) {
  const keep = new Set(wanted);
  for (const c of [...parent.children]) if (!keep.has(c)) c.remove();
  let cur = parent.firstElementChild;
  for (const el of wanted) {
    if (cur === el) {
      cur = cur.nextElementSibling;
      continue;
    }
    parent.insertBefore(el, cur);
  }
}
