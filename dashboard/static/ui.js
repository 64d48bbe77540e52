// Small DOM helpers: no framework, no innerHTML with data (every text goes
// through textContent).

let ids = 0;
export const uid = (p = 'id') => `${p}-${++ids}`;

// h builds an element: h('button', {type: 'button', onclick}, 'text', child…).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// announce tells screen readers something happened.
export function announce(msg) {
  const s = document.getElementById('status');
  s.textContent = '';
  setTimeout(() => { s.textContent = msg; }, 30);
}

// view replaces the main region with a titled view and moves the focus to
// its heading, as a page load would.
export function view(title, ...children) {
  const main = document.getElementById('main');
  const h1 = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(h1, ...children);
  document.title = `${title} · Event Gateway`;
  h1.focus();
  return main;
}

export function errorBox(msg) {
  return h('p', { class: 'error', role: 'alert' }, msg);
}

// Form builds a form of labelled fields. fields: [{name, label, type
// ('text'|'textarea'|'select'|'number'), options, value, hint, required,
// readonly}]. The API's error messages are shown next to the field they
// name (showErrors).
export class Form {
  constructor(fields, { submit = 'Save', onsubmit, extra = [] } = {}) {
    this.fields = fields;
    this.inputs = {};
    this.errs = {};
    this.formErr = h('div', { class: 'form-error', role: 'alert' });
    const rows = fields.map(f => this.row(f));
    this.el = h('form', { class: 'form', novalidate: true },
      rows, this.formErr,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, submit), extra));
    this.el.addEventListener('submit', async e => {
      e.preventDefault();
      this.clearErrors();
      const btn = this.el.querySelector('button[type=submit]');
      btn.disabled = true;
      try { await onsubmit(this.values()); } catch (err) { this.showErrors(err); } finally { btn.disabled = false; }
    });
  }

  row(f) {
    const id = uid(f.name);
    const errId = `${id}-err`;
    const hintId = f.hint ? `${id}-hint` : undefined;
    let input;
    const common = { id, name: f.name, 'aria-describedby': [hintId, errId].filter(Boolean).join(' '), required: f.required, readonly: f.readonly };
    if (f.type === 'textarea') input = h('textarea', { ...common, rows: f.rows || 4, spellcheck: 'false' });
    else if (f.type === 'select') input = h('select', common, f.options.map(o => h('option', { value: o }, o)));
    else input = h('input', { ...common, type: f.type || 'text', autocomplete: 'off' });
    if (f.value !== undefined && f.value !== null) input.value = f.value;
    this.inputs[f.name] = input;
    this.errs[f.name] = h('div', { id: errId, class: 'field-error' });
    return h('div', { class: 'field' },
      h('label', { for: id }, f.label),
      f.hint && h('div', { id: hintId, class: 'hint' }, f.hint),
      input, this.errs[f.name]);
  }

  values() {
    const v = {};
    for (const f of this.fields) v[f.name] = this.inputs[f.name].value;
    return v;
  }

  clearErrors() {
    this.formErr.textContent = '';
    for (const [name, el] of Object.entries(this.errs)) {
      el.textContent = '';
      this.inputs[name].removeAttribute('aria-invalid');
    }
  }

  // fieldOf finds the field an API message names: the longest field name
  // (or alias) that appears in it as a word.
  fieldOf(msg) {
    let best = null, len = 0;
    for (const f of this.fields) {
      for (const n of [f.name, ...(f.aliases || [])]) {
        const re = new RegExp(`(^|[^A-Za-z0-9])${n.replace('.', '\\.')}([^A-Za-z0-9]|$)`, 'i');
        if (re.test(msg) && n.length > len) { best = f.name; len = n.length; }
      }
    }
    return best;
  }

  showErrors(err) {
    const msgs = err.messages || [err.message];
    let first = null;
    for (const m of msgs) {
      const name = this.fieldOf(m);
      if (name) {
        this.errs[name].textContent = m;
        this.inputs[name].setAttribute('aria-invalid', 'true');
        first = first || this.inputs[name];
      } else {
        this.formErr.append(h('p', {}, m));
      }
    }
    (first || this.el.querySelector('button[type=submit]')).focus();
  }

  field(name, msg) {
    this.errs[name].textContent = msg;
    this.inputs[name].setAttribute('aria-invalid', 'true');
    this.inputs[name].focus();
  }
}

// dialog opens a modal dialog holding content; the focus goes into it and
// back to where it was when it closes (Escape closes it).
export function dialog(title, content) {
  const back = document.activeElement;
  const titleId = uid('dlg');
  const close = () => d.close();
  const d = h('dialog', { 'aria-labelledby': titleId },
    h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', onclick: close }, '×')),
    content);
  d.addEventListener('close', () => { d.remove(); if (back && back.focus) back.focus(); });
  document.body.append(d);
  d.showModal();
  const first = d.querySelector('input:not([readonly]), textarea, select, button.primary');
  if (first) first.focus();
  return d;
}

// table renders rows as a table with a caption; cols: [{label, cell(row)}].
export function table(caption, cols, rows, { empty = 'Nothing here yet.' } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, cols.map(c => h('th', { scope: 'col' }, c.label)))),
      h('tbody', {}, rows.map(r => h('tr', {}, cols.map((c, i) => i === 0 ? h('th', { scope: 'row' }, c.cell(r)) : h('td', {}, c.cell(r))))))));
}

export function pre(v) {
  return h('pre', { class: 'json' }, typeof v === 'string' ? v : JSON.stringify(v, null, 2));
}

export function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

// confirmThen returns a click handler that asks, in a dialog, before a
// destructive action.
export function confirmThen(msg, label, fn) {
  return () => {
    const ok = h('button', { type: 'button', class: 'primary danger' }, label);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const d = dialog('Are you sure?', h('div', {}, h('p', {}, msg), h('div', { class: 'actions' }, ok, cancel)));
    cancel.addEventListener('click', () => d.close());
    ok.addEventListener('click', async () => { d.close(); await fn(); });
    ok.focus();
  };
}
