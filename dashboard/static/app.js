// The dashboard: a hash-routed single page over the Configuration API.
import { call, sse, enc, token, setToken, clearToken, ApiError } from './api.js';
import { h, view, Form, dialog, table, pre, fmtTime, errorBox, announce, confirmThen } from './ui.js';
import { chart } from './chart.js';

const SPACE = 'eg.space';
const PAGE = 50; // rows per page of a list

const state = {
  get space() { return sessionStorage.getItem(SPACE) || 'default'; },
  set space(s) { sessionStorage.setItem(SPACE, s); },
  // abort ends what the current view started (streams, timers).
  abort: new AbortController(),
};

const sp = () => `/v1/spaces/${enc(state.space)}`;

// --- routing -------------------------------------------------------------

const routes = [
  [/^#\/spaces$/, spacesView],
  [/^#\/functions$/, functionsView],
  [/^#\/functions\/([^/]+)\/stats$/, statsView],
  [/^#\/subscriptions$/, subscriptionsView],
  [/^#\/eventtypes$/, eventTypesView],
  [/^#\/tail$/, tailView],
  [/^#\/trail(?:\/(.+))?$/, trailView],
  [/^#\/deadletters$/, deadLettersView],
  [/^#\/instances$/, instancesView],
];

async function render() {
  state.abort.abort();
  state.abort = new AbortController();
  const signal = state.abort.signal;
  state.inLogin = token() === null;
  if (state.inLogin) return loginView();
  showChrome(true);
  const hash = location.hash || '#/functions';
  for (const a of document.querySelectorAll('#nav a')) {
    if (hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, fn] of routes) {
    const m = hash.match(re);
    if (m) {
      try { await fn(signal, ...m.slice(1).map(x => x && decodeURIComponent(x))); } catch (err) {
        if (err.name !== 'AbortError') document.getElementById('main').append(errorBox(err.message));
      }
      return;
    }
  }
  location.hash = '#/functions';
}

function showChrome(on) {
  document.getElementById('nav').hidden = !on;
  document.getElementById('session').hidden = !on;
}

async function loadSpaces() {
  const sel = document.getElementById('space-select');
  let names = [state.space];
  try { names = (await call('GET', '/v1/spaces')).spaces; } catch { /* older gateway: the current space only */ }
  if (!names.includes(state.space)) names.push(state.space);
  sel.replaceChildren(...names.map(n => h('option', { value: n, selected: n === state.space }, n)));
}

// --- login ---------------------------------------------------------------

function loginView() {
  showChrome(false);
  const form = new Form([
    { name: 'token', label: 'Configuration API token', type: 'password', hint: 'The gateway\'s -config-token, or a configuration key of a space. Kept in this browser tab only (sessionStorage). Leave empty if the gateway has no token.' },
    { name: 'space', label: 'Space', value: state.space },
  ], {
    submit: 'Log in',
    onsubmit: async v => {
      setToken(v.token);
      state.space = v.space || 'default';
      try {
        await call('GET', `${sp()}/functions?limit=1`);
      } catch (err) {
        clearToken();
        if (err.status === 401) return form.field('token', 'This token is not accepted: ' + err.message);
        throw err;
      }
      await loadSpaces();
      announce('Logged in');
      if (!location.hash || location.hash === '#/login') location.hash = '#/functions';
      else render();
    },
  });
  view('Log in', h('p', {}, 'The dashboard calls the gateway\'s Configuration API with your token.'), form.el);
  form.inputs.token.focus();
}

// --- paged lists ---------------------------------------------------------

// paged shows a list a page at a time (?limit=&cursor=), with Previous and
// Next; only the page shown is requested.
function paged(container, { path, key, caption, cols, empty, signal }) {
  const cursors = [''];
  let page = 0;
  const body = h('div');
  const prev = h('button', { type: 'button', onclick: () => { page--; load(); } }, 'Previous page');
  const next = h('button', { type: 'button', onclick: () => { page++; load(); } }, 'Next page');
  const label = h('span', { class: 'page-label', 'aria-live': 'polite' });
  container.append(body, h('nav', { class: 'pager', 'aria-label': `${caption} pages` }, prev, label, next));
  async function load() {
    const cur = cursors[page];
    const q = `limit=${PAGE}` + (cur ? `&cursor=${enc(cur)}` : '');
    body.setAttribute('aria-busy', 'true');
    try {
      const data = await call('GET', `${path}?${q}`, undefined, { signal });
      const rows = data[key] || [];
      if (data.next) cursors[page + 1] = data.next; else cursors.length = page + 1;
      body.replaceChildren(table(`${caption}, page ${page + 1}`, cols, rows, { empty }));
      label.textContent = `Page ${page + 1}` + (rows.length ? `, ${rows.length} shown` : '');
      prev.disabled = page === 0;
      next.disabled = !data.next;
    } catch (err) {
      if (err.name !== 'AbortError') body.replaceChildren(errorBox(err.message));
    } finally { body.removeAttribute('aria-busy'); }
  }
  load();
  return { reload: load };
}

// --- spaces --------------------------------------------------------------

async function spacesView(signal) {
  const list = h('div');
  const open = new Form([{ name: 'space', label: 'Space name', hint: 'A space exists once something is created in it.' }], {
    submit: 'Open space',
    onsubmit: async v => {
      await call('GET', `/v1/spaces/${enc(v.space)}/functions?limit=1`, undefined, { signal });
      useSpace(v.space);
    },
  });
  view('Spaces', h('p', {}, 'Current space: ', h('strong', {}, state.space)), list, h('h2', {}, 'Open or create a space'), open.el);
  const { spaces } = await call('GET', '/v1/spaces', undefined, { signal });
  list.replaceChildren(table('Spaces', [
    { label: 'Name', cell: s => s },
    { label: 'Actions', cell: s => h('span', { class: 'row-actions' },
      h('button', { type: 'button', onclick: () => useSpace(s), disabled: s === state.space }, s === state.space ? 'Current' : `Use ${s}`),
      h('button', { type: 'button', class: 'danger', onclick: confirmThen(`Delete every subscription, event type, CORS configuration, key and function of space ${s}?`, 'Delete space', () => deleteSpace(s)) }, `Delete ${s}`)) },
  ], spaces));
}

function useSpace(s) {
  state.space = s;
  loadSpaces();
  announce(`Space ${s}`);
  location.hash = '#/functions';
}

// deleteSpace deletes what a space holds, dependents first.
async function deleteSpace(s) {
  const root = `/v1/spaces/${enc(s)}`;
  const all = async (path, key, id) => ((await call('GET', `${root}/${path}`))[key] || []).map(id);
  for (const id of await all('subscriptions', 'subscriptions', x => x.subscriptionId)) await call('DELETE', `${root}/subscriptions/${enc(id)}`);
  for (const id of await all('eventtypes', 'eventTypes', x => x.name)) await call('DELETE', `${root}/eventtypes/${enc(id)}`);
  for (const id of await all('cors', 'cors', x => x.corsId)) await call('DELETE', `${root}/cors/${enc(id)}`);
  for (const id of await all('keys', 'keys', x => x.keyId || x.id)) await call('DELETE', `${root}/keys/${enc(id)}`);
  for (const id of await all('functions', 'functions', x => x.functionId)) await call('DELETE', `${root}/functions/${enc(id)}`);
  announce(`Space ${s} deleted`);
  if (state.space === s) state.space = 'default';
  await loadSpaces();
  render();
}

// --- functions -----------------------------------------------------------

const providerSummary = f => f.provider && (f.provider.url || f.provider.arn || f.provider.functionName || JSON.stringify(f.provider));

async function functionsView(signal) {
  const box = h('div');
  const add = h('button', { type: 'button', class: 'primary', onclick: () => functionDialog(null, () => list.reload()) }, 'Register a function');
  view(`Functions in ${state.space}`, h('div', { class: 'toolbar' }, add), box);
  const list = paged(box, {
    path: `${sp()}/functions`, key: 'functions', caption: 'Functions', signal, empty: 'No functions yet.',
    cols: [
      { label: 'Function', cell: f => f.functionId },
      { label: 'Type', cell: f => f.type },
      { label: 'Provider', cell: f => h('code', {}, providerSummary(f)) },
      { label: 'Timeout', cell: f => f.timeout || '' },
      { label: 'Actions', cell: f => h('span', { class: 'row-actions' },
        h('a', { href: `#/functions/${enc(f.functionId)}/stats` }, h('span', { class: 'visually-hidden' }, `${f.functionId} `), 'charts'),
        h('button', { type: 'button', onclick: () => functionDialog(f, () => list.reload()) }, 'Edit', h('span', { class: 'visually-hidden' }, ` ${f.functionId}`)),
        h('button', { type: 'button', class: 'danger', onclick: confirmThen(`Delete function ${f.functionId}?`, 'Delete', async () => {
          try { await call('DELETE', `${sp()}/functions/${enc(f.functionId)}`); announce('Function deleted'); list.reload(); } catch (err) { dialog('Not deleted', errorBox(err.message)); }
        }) }, 'Delete', h('span', { class: 'visually-hidden' }, ` ${f.functionId}`))) },
    ],
  });
}

function functionDialog(f, done) {
  const edit = !!f;
  let d;
  const form = new Form([
    { name: 'functionId', label: 'Function ID', value: f?.functionId, readonly: edit, required: true },
    { name: 'type', label: 'Provider type', type: 'select', options: ['http', 'awslambda', 'emulator'], value: f?.type || 'http' },
    { name: 'provider', label: 'Provider (JSON)', type: 'textarea', aliases: ['url', 'arn', 'region'], value: JSON.stringify(f?.provider || { url: 'http://' }, null, 2), hint: 'http: {"url": "…"}; awslambda: {"arn": "…", "region": "…"}.' },
    { name: 'timeout', label: 'Timeout', value: f?.timeout || '', hint: 'A duration such as 5s; empty for the default.' },
    { name: 'maxInFlight', label: 'Max in flight', type: 'number', value: f?.maxInFlight || '', hint: 'Deliveries at once; empty for the default.' },
  ], {
    submit: edit ? 'Save function' : 'Register function',
    onsubmit: async v => {
      let provider;
      try { provider = JSON.parse(v.provider); } catch (e) { return form.field('provider', `provider is not valid JSON: ${e.message}`); }
      const body = { functionId: v.functionId, type: v.type, provider, timeout: v.timeout || undefined, maxInFlight: v.maxInFlight ? Number(v.maxInFlight) : undefined };
      if (edit) await call('PUT', `${sp()}/functions/${enc(f.functionId)}`, body);
      else await call('POST', `${sp()}/functions`, body);
      d.close();
      announce(edit ? 'Function saved' : `Function ${v.functionId} registered`);
      done();
    },
  });
  d = dialog(edit ? `Edit function ${f.functionId}` : 'Register a function', form.el);
}

// --- function charts -----------------------------------------------------

async function statsView(signal, id) {
  const box = h('div', { 'aria-live': 'off' });
  view(`Function ${id}: last hour`, h('p', {}, h('a', { href: '#/functions' }, 'Back to functions'), ' · Figures of the calls this gateway instance made, a point per minute; refreshed every 15 seconds.'), box);
  const load = async () => {
    const data = await call('GET', `${sp()}/functions/${enc(id)}/stats`, undefined, { signal });
    const m = data.minutes;
    const sum = k => m.reduce((a, p) => a + p[k], 0);
    box.replaceChildren(
      h('p', { class: 'summary' }, `${sum('calls')} calls, ${sum('errors')} failed, in the last hour.`),
      chart('Calls per minute', m, [{ key: 'calls', label: 'calls', cls: 's1' }, { key: 'errors', label: 'errors', cls: 's2' }], ''),
      chart('Errors per minute', m, [{ key: 'errors', label: 'errors', cls: 's2' }], ''),
      chart('Latency (ms)', m, [{ key: 'p50', label: 'p50', cls: 's1' }, { key: 'p99', label: 'p99', cls: 's3' }], ' ms'),
    );
  };
  await load();
  const t = setInterval(() => load().catch(() => {}), 15000);
  signal.addEventListener('abort', () => clearInterval(t));
}

// --- subscriptions -------------------------------------------------------

async function subscriptionsView(signal) {
  const box = h('div');
  const add = h('button', { type: 'button', class: 'primary', onclick: () => subscriptionDialog(null, () => list.reload()) }, 'Create a subscription');
  view(`Subscriptions in ${state.space}`, h('div', { class: 'toolbar' }, add), box);
  const list = paged(box, {
    path: `${sp()}/subscriptions`, key: 'subscriptions', caption: 'Subscriptions', signal, empty: 'No subscriptions yet.',
    cols: [
      { label: 'Subscription', cell: s => h('code', {}, s.subscriptionId) },
      { label: 'Type', cell: s => s.type },
      { label: 'Event type', cell: s => s.eventType },
      { label: 'Function', cell: s => s.functionId },
      { label: 'Route', cell: s => `${s.method} ${s.path}` },
      { label: 'Pipeline', cell: s => [s.filter && 'filter', s.transform && 'transform', s.transformResponse && 'transformResponse'].filter(Boolean).join(', ') },
      { label: 'Actions', cell: s => h('span', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => subscriptionDialog(s, () => list.reload()) }, 'Edit', h('span', { class: 'visually-hidden' }, ` ${s.subscriptionId}`)),
        h('button', { type: 'button', class: 'danger', onclick: confirmThen(`Delete subscription ${s.subscriptionId}?`, 'Delete', async () => {
          try { await call('DELETE', `${sp()}/subscriptions/${enc(s.subscriptionId)}`); announce('Subscription deleted'); list.reload(); } catch (err) { dialog('Not deleted', errorBox(err.message)); }
        }) }, 'Delete', h('span', { class: 'visually-hidden' }, ` ${s.subscriptionId}`))) },
    ],
  });
}

function subscriptionDialog(s, done) {
  const edit = !!s;
  let d;
  const form = new Form([
    { name: 'type', label: 'Type', type: 'select', options: ['async', 'sync'], value: s?.type || 'async', readonly: edit },
    { name: 'eventType', label: 'Event type', value: s?.eventType, readonly: edit, required: true, aliases: ['event'] },
    { name: 'functionId', label: 'Function ID', value: s?.functionId, readonly: edit, required: true, aliases: ['function'] },
    { name: 'method', label: 'Method', value: s?.method || 'POST', readonly: edit },
    { name: 'path', label: 'Path', value: s?.path || '/', readonly: edit },
    { name: 'filter', label: 'Filter (JSON pattern)', type: 'textarea', value: s?.filter ? JSON.stringify(s.filter, null, 2) : '', hint: 'Delivered only when the event matches; empty for every event. See docs/transformations.md.', aliases: ['pattern'] },
    { name: 'transform', label: 'Transform (JavaScript)', type: 'textarea', value: s?.transform || '', hint: 'Rewrites the event before delivery; return null to drop it.' },
    { name: 'transformResponse', label: 'Transform response (JavaScript)', type: 'textarea', value: s?.transformResponse || '', hint: 'Rewrites a sync function\'s response.' },
    { name: 'sample', label: 'Sample event for Try (JSON)', type: 'textarea', value: '{"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "/dashboard", "eventID": "sample", "data": {}}', hint: 'Not saved: Try runs the filter and scripts on it.', aliases: ['event'] },
  ], {
    submit: edit ? 'Save subscription' : 'Create subscription',
    extra: [h('button', { type: 'button', onclick: () => tryIt() }, 'Try filter and scripts')],
    onsubmit: async v => {
      let filter;
      if (v.filter.trim()) {
        try { filter = JSON.parse(v.filter); } catch (e) { return form.field('filter', `filter is not valid JSON: ${e.message}`); }
      }
      if (edit) {
        await call('PUT', `${sp()}/subscriptions/${enc(s.subscriptionId)}`, { filter: filter ?? null, transform: v.transform, transformResponse: v.transformResponse });
      } else {
        const body = { type: v.type, eventType: v.eventType, functionId: v.functionId, method: v.method, path: v.path };
        if (filter !== undefined) body.filter = filter;
        if (v.transform) body.transform = v.transform;
        if (v.transformResponse) body.transformResponse = v.transformResponse;
        await call('POST', `${sp()}/subscriptions`, body);
      }
      d.close();
      announce(edit ? 'Subscription saved' : 'Subscription created');
      done();
    },
  });
  const out = h('div', { class: 'try-result', 'aria-live': 'polite' });
  async function tryIt() {
    form.clearErrors();
    const v = form.values();
    const body = { transform: v.transform, transformResponse: v.transformResponse };
    try {
      if (v.filter.trim()) body.filter = JSON.parse(v.filter);
    } catch (e) { return form.field('filter', `filter is not valid JSON: ${e.message}`); }
    try { body.event = JSON.parse(v.sample); } catch (e) { return form.field('sample', `the sample event is not valid JSON: ${e.message}`); }
    try {
      const r = await call('POST', `${sp()}/try`, body);
      if (r.error) {
        const where = r.error.line ? ` (line ${r.error.line}, column ${r.error.column})` : r.error.path ? ` (at ${r.error.path})` : '';
        const field = r.error.stage === 'filter' ? 'filter' : r.error.stage;
        form.field(field in form.inputs ? field : 'sample', `${r.error.stage}: ${r.error.message}${where}`);
      }
      out.replaceChildren(h('p', {}, r.matched ? (r.dropped ? 'The filter matches; the transform drops the event.' : 'The filter matches: the function would receive:') : 'The filter does not match: the function would receive nothing.'),
        r.event ? pre(r.event) : '');
      out.scrollIntoView({ block: 'nearest' });
    } catch (err) { form.showErrors(err); }
  }
  d = dialog(edit ? `Edit subscription ${s.subscriptionId}` : 'Create a subscription', h('div', {}, form.el, out));
}

// --- event types ---------------------------------------------------------

async function eventTypesView(signal) {
  const box = h('div');
  const add = h('button', { type: 'button', class: 'primary', onclick: () => eventTypeDialog(null, () => list.reload()) }, 'Create an event type');
  view(`Event types in ${state.space}`, h('div', { class: 'toolbar' }, add), box);
  const list = paged(box, {
    path: `${sp()}/eventtypes`, key: 'eventTypes', caption: 'Event types', signal, empty: 'No event types yet.',
    cols: [
      { label: 'Name', cell: e => e.name },
      { label: 'Authorizer', cell: e => e.authorizerId || '' },
      { label: 'Actions', cell: e => h('span', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => eventTypeDialog(e, () => list.reload()) }, 'Edit', h('span', { class: 'visually-hidden' }, ` ${e.name}`)),
        h('button', { type: 'button', class: 'danger', onclick: confirmThen(`Delete event type ${e.name}?`, 'Delete', async () => {
          try { await call('DELETE', `${sp()}/eventtypes/${enc(e.name)}`); announce('Event type deleted'); list.reload(); } catch (err) { dialog('Not deleted', errorBox(err.message)); }
        }) }, 'Delete', h('span', { class: 'visually-hidden' }, ` ${e.name}`))) },
    ],
  });
}

function eventTypeDialog(e, done) {
  const edit = !!e;
  let d;
  const form = new Form([
    { name: 'name', label: 'Name', value: e?.name, readonly: edit, required: true },
    { name: 'authorizerId', label: 'Authorizer function ID', value: e?.authorizerId || '', hint: 'A function of this space that authorizes events of this type; empty for none.', aliases: ['authorizer'] },
  ], {
    submit: edit ? 'Save event type' : 'Create event type',
    onsubmit: async v => {
      const body = { name: v.name, authorizerId: v.authorizerId || undefined, metadata: e?.metadata };
      if (edit) await call('PUT', `${sp()}/eventtypes/${enc(e.name)}`, body);
      else await call('POST', `${sp()}/eventtypes`, body);
      d.close();
      announce(edit ? 'Event type saved' : 'Event type created');
      done();
    },
  });
  d = dialog(edit ? `Edit event type ${e.name}` : 'Create an event type', form.el);
}

// --- live tail -----------------------------------------------------------

const MAX_TAIL = 500;

function tailView(signal) {
  const filter = h('input', { id: 'tail-filter', type: 'search', placeholder: 'type, id, function…', autocomplete: 'off' });
  const kind = h('select', { id: 'tail-kind' }, h('option', { value: '' }, 'Events and system events'), h('option', { value: 'event' }, 'Events only'), h('option', { value: 'system' }, 'System events only'));
  const pause = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Pause');
  const clear = h('button', { type: 'button' }, 'Clear');
  const conn = h('p', { class: 'conn', role: 'status' }, 'Connecting…');
  const log = h('ol', { class: 'tail', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Live events' });
  let paused = false;
  const matches = li => {
    const q = filter.value.trim().toLowerCase();
    return (!kind.value || li.dataset.kind === kind.value || li.dataset.kind === 'notice') && (!q || li.dataset.text.includes(q));
  };
  const refilter = () => { for (const li of log.children) li.hidden = !matches(li); };
  filter.addEventListener('input', refilter);
  kind.addEventListener('change', refilter);
  pause.addEventListener('click', () => { paused = !paused; pause.setAttribute('aria-pressed', String(paused)); pause.textContent = paused ? 'Resume' : 'Pause'; });
  clear.addEventListener('click', () => log.replaceChildren());
  view(`Live tail of ${state.space}`,
    h('p', { class: 'note' }, 'What this gateway instance receives and calls, as it happens. Each instance tails its own traffic: behind a load balancer, open the dashboard of each instance to see all.'),
    h('div', { class: 'toolbar' },
      h('span', { class: 'inline-field' }, h('label', { for: 'tail-filter' }, 'Filter'), filter),
      h('span', { class: 'inline-field' }, h('label', { for: 'tail-kind' }, 'Show'), kind),
      pause, clear),
    conn, log);

  const add = (li) => {
    if (paused) return;
    li.hidden = !matches(li);
    log.prepend(li);
    while (log.children.length > MAX_TAIL) log.lastElementChild.remove();
  };
  const onEvent = (name, data) => {
    if (name === 'dropped') {
      const n = JSON.parse(data).dropped;
      add(h('li', { class: 'notice', dataset: { kind: 'notice', text: '' } }, `${n} items not shown: this browser fell behind the gateway.`));
      return;
    }
    if (name !== 'item') return;
    const it = JSON.parse(data);
    const text = [it.type, it.id, it.functionId, it.error, it.path].filter(Boolean).join(' ').toLowerCase();
    add(h('li', { class: `item ${it.kind} ${it.error ? 'failed' : ''}`, dataset: { kind: it.kind, text } },
      h('time', { datetime: new Date(it.time).toISOString() }, new Date(it.time).toLocaleTimeString()),
      h('span', { class: 'badge' }, it.kind === 'event' ? 'event' : 'system'),
      h('span', { class: 'type' }, it.type),
      it.functionId && h('span', {}, ` → ${it.functionId}`),
      it.id && h('a', { href: `#/trail/${enc(it.id)}`, class: 'trail-link' }, 'trail', h('span', { class: 'visually-hidden' }, ` of event ${it.id}`)),
      it.error && h('span', { class: 'err' }, it.error),
      h('details', {}, h('summary', {}, 'Event'), pre(it.event))));
  };
  (async () => {
    while (!signal.aborted) {
      try {
        await sse(`${sp()}/tail`, onEvent, signal, () => { conn.textContent = 'Connected: new events appear at the top.'; });
        conn.textContent = 'The stream ended; reconnecting…';
      } catch (err) {
        if (signal.aborted) return;
        conn.textContent = `Not connected: ${err.message}. Retrying…`;
        if (err instanceof ApiError && err.status === 401) return;
      }
      await new Promise(r => setTimeout(r, 2000));
    }
  })();
}

// --- trail ---------------------------------------------------------------

async function trailView(signal, id) {
  const out = h('div', { 'aria-live': 'polite' });
  const recent = h('div');
  const form = new Form([{ name: 'id', label: 'Event ID', value: id || '', aliases: ['event'] }], {
    submit: 'Show trail',
    onsubmit: async v => { location.hash = `#/trail/${enc(v.id.trim())}`; },
  });
  view(id ? `Trail of event ${id}` : 'Event trail', form.el, out, recent);
  if (id) {
    try {
      out.replaceChildren(renderTrail(await call('GET', `${sp()}/events/${enc(id)}`, undefined, { signal })));
    } catch (err) {
      if (err.name === 'AbortError') return;
      out.replaceChildren(errorBox(err.noEndpoint
        ? 'This gateway does not record event trails: it has no GET /v1/spaces/{space}/events/{id} endpoint.'
        : err.status === 404 ? `No trail of event ${id}: ${err.message}. Trails are kept for a while only (the gateway's trail retention), and only where the trail is on.` : err.message));
    }
  }
  try {
    const data = await call('GET', `${sp()}/events?limit=20`, undefined, { signal });
    const evs = data.events || [];
    recent.replaceChildren(h('h2', {}, 'Recent events'), table('Recent events', [
      { label: 'Event', cell: e => h('a', { href: `#/trail/${enc(e.eventId || e.id)}` }, e.eventId || e.id) },
      { label: 'Type', cell: e => e.type },
      { label: 'Received', cell: e => fmtTime(e.acceptedAt || e.receivedAt) },
      { label: 'Outcome', cell: e => e.outcome || '' },
    ], evs, { empty: 'No recent events.' }));
  } catch (err) {
    if (err.noEndpoint) recent.replaceChildren(h('p', { class: 'note' }, 'This gateway does not list recent events (no GET /v1/spaces/{space}/events endpoint).'));
  }
}

function renderTrail(t) {
  const ev = t.event && typeof t.event === 'object' && !Array.isArray(t.event) && t.event.id ? { ...t, ...t.event } : t;
  const subs = t.subscribers || [];
  const matched = t.matched || subs.filter(s => !(s.skipped || s.matched === false || s.outcome === 'skipped'));
  const skipped = t.skipped || subs.filter(s => s.skipped || s.matched === false || s.outcome === 'skipped');
  let attempts = t.attempts || [];
  for (const s of [...matched, ...subs]) for (const a of s.attempts || []) attempts.push({ subscriptionId: s.subscriptionId, functionId: s.functionId, ...a });
  attempts = [...new Map(attempts.map(a => [JSON.stringify(a), a])).values()];
  const dur = a => a.durationMs ?? (a.duration !== undefined ? a.duration : '');
  return h('div', { class: 'trail' },
    h('dl', { class: 'facts' },
      h('dt', {}, 'Event ID'), h('dd', {}, h('code', {}, ev.eventId || ev.id || '')),
      h('dt', {}, 'Type'), h('dd', {}, ev.type || ev.eventType || ''),
      h('dt', {}, 'Space'), h('dd', {}, ev.space || state.space),
      h('dt', {}, 'Received'), h('dd', {}, fmtTime(ev.acceptedAt || ev.receivedAt)),
      h('dt', {}, 'Outcome'), h('dd', {}, outcome(ev.outcome))),
    h('h2', {}, 'Subscribers matched'),
    table('Subscribers matched', [
      { label: 'Subscription', cell: s => h('code', {}, s.subscriptionId || s.id || '') },
      { label: 'Function', cell: s => s.functionId || '' },
      { label: 'Outcome', cell: s => outcome(s.outcome) },
    ], matched, { empty: 'No subscriber matched this event.' }),
    h('h2', {}, 'Skipped by their filter'),
    table('Subscribers skipped', [
      { label: 'Subscription', cell: s => h('code', {}, s.subscriptionId || s.id || '') },
      { label: 'Function', cell: s => s.functionId || '' },
      { label: 'Reason', cell: s => s.reason || 'filter' },
    ], skipped, { empty: 'No subscriber was skipped.' }),
    h('h2', {}, 'Delivery attempts'),
    table('Delivery attempts', [
      { label: 'Time', cell: a => fmtTime(a.time || a.at) },
      { label: 'Subscription', cell: a => h('code', {}, a.subscriptionId || '') },
      { label: 'Function', cell: a => a.functionId || '' },
      { label: 'Duration (ms)', cell: dur },
      { label: 'Attempt', cell: a => String(a.attempt ?? '') },
      { label: 'Result or error', cell: a => a.error ? h('span', { class: 'err' }, a.error) : String(a.result ?? a.status ?? '') },
      { label: 'Outcome', cell: a => outcome(a.outcome) },
    ], attempts, { empty: 'No delivery attempt yet.' }));
}

const outcome = o => o ? h('span', { class: `outcome ${o}` }, o) : '';

// --- dead letters --------------------------------------------------------

async function deadLettersView(signal) {
  const filters = new Form([
    { name: 'subscriptionId', label: 'Subscription ID', aliases: ['subscription'] },
    { name: 'functionId', label: 'Function ID', aliases: ['function'] },
  ], { submit: 'Filter', onsubmit: async () => { after = ['']; page = 0; await load(); } });
  const body = h('div');
  const prev = h('button', { type: 'button', onclick: () => { page--; load(); } }, 'Previous page');
  const next = h('button', { type: 'button', onclick: () => { page++; load(); } }, 'Next page');
  const replayAll = h('button', { type: 'button' }, 'Replay all listed subscriptions');
  let after = [''], page = 0, shown = [];
  view(`Dead letters of ${state.space}`,
    h('p', { class: 'note' }, 'Deliveries that failed every attempt. Replaying one delivers it again, with its attempts counted afresh.'),
    filters.el, h('div', { class: 'toolbar' }, replayAll), body,
    h('nav', { class: 'pager', 'aria-label': 'Dead letter pages' }, prev, next));
  replayAll.addEventListener('click', confirmThen('Replay every dead letter of the subscriptions listed?', 'Replay all', async () => {
    let n = 0;
    for (const sub of new Set(shown.map(d => d.subscriptionId))) n += (await call('POST', `/v1/subscriptions/${enc(sub)}/deadletters/replay`)).replayed;
    announce(`${n} dead letters replayed`);
    await load();
    body.prepend(h('p', { class: 'ok', role: 'status' }, `${n} dead letters replayed.`));
  }));
  async function load() {
    const v = filters.values();
    const q = new URLSearchParams({ space: state.space, limit: String(PAGE) });
    if (v.subscriptionId) q.set('subscriptionId', v.subscriptionId);
    if (v.functionId) q.set('functionId', v.functionId);
    if (after[page]) q.set('after', after[page]);
    const data = await call('GET', `/v1/deadletters?${q}`, undefined, { signal });
    shown = data.deadletters;
    if (data.next) after[page + 1] = data.next; else after.length = page + 1;
    prev.disabled = page === 0;
    next.disabled = !data.next;
    replayAll.disabled = !shown.length;
    body.replaceChildren(table('Dead letters', [
      { label: 'Event', cell: d => d.event },
      { label: 'Event ID', cell: d => h('a', { href: `#/trail/${enc(d.eventId)}` }, d.eventId) },
      { label: 'Subscription', cell: d => h('code', {}, d.subscriptionId) },
      { label: 'Function', cell: d => d.functionId },
      { label: 'Attempts', cell: d => d.attempts },
      { label: 'Last error', cell: d => h('span', { class: 'err' }, d.lastError) },
      { label: 'Failed', cell: d => fmtTime(d.failedAt) },
      { label: 'Actions', cell: d => h('span', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => dialog(`Dead letter ${d.id}`, pre(d)) }, 'Inspect', h('span', { class: 'visually-hidden' }, ` ${d.id}`)),
        h('button', { type: 'button', onclick: async () => {
          try { await call('POST', `/v1/deadletters/${enc(d.id)}/replay`); announce('Dead letter replayed'); await load(); body.prepend(h('p', { class: 'ok', role: 'status' }, `Dead letter ${d.id} replayed.`)); } catch (err) { body.prepend(errorBox(err.message)); }
        } }, 'Replay', h('span', { class: 'visually-hidden' }, ` ${d.id}`)),
        h('button', { type: 'button', class: 'danger', onclick: confirmThen(`Delete dead letter ${d.id}? Its event will not be delivered.`, 'Delete', async () => {
          try { await call('DELETE', `/v1/deadletters/${enc(d.id)}`); announce('Dead letter deleted'); await load(); } catch (err) { body.prepend(errorBox(err.message)); }
        }) }, 'Delete', h('span', { class: 'visually-hidden' }, ` ${d.id}`))) },
    ], shown, { empty: 'No dead letters.' }));
  }
  try { await load(); } catch (err) {
    body.replaceChildren(errorBox(err.noEndpoint ? 'This gateway keeps no dead letters (no durable queue).' : err.message));
  }
}

// --- instances -----------------------------------------------------------

async function instancesView(signal) {
  const body = h('div');
  view('Instances', h('p', { class: 'note' }, 'The gateways of this cluster, as each registers itself in etcd; refreshed every 5 seconds. An instance that stops leaves the list within 15 seconds.'), body);
  const load = async () => {
    const { instances } = await call('GET', '/v1/instances', undefined, { signal });
    body.replaceChildren(table('Instances', [
      { label: 'Instance', cell: i => i.id },
      { label: 'Ready', cell: i => h('span', { class: `badge ${i.ready ? 'ready' : 'not-ready'}` }, i.ready ? 'ready' : 'not ready') },
      { label: 'Configuration API', cell: i => h('a', { href: `${i.configUrl}/dashboard/` }, i.configUrl) },
      { label: 'Events API', cell: i => i.eventsUrl },
      { label: 'Version', cell: i => i.version },
      { label: 'Revision', cell: i => i.revision },
      { label: 'Started', cell: i => fmtTime(i.started) },
      { label: 'Updated', cell: i => fmtTime(i.updated) },
    ], instances, { empty: 'No instance registered.' }));
  };
  await load();
  const t = setInterval(() => load().catch(() => {}), 5000);
  signal.addEventListener('abort', () => clearInterval(t));
}

// --- start ---------------------------------------------------------------

document.getElementById('logout').addEventListener('click', () => {
  clearToken();
  announce('Logged out');
  location.hash = '#/login';
  render();
});
document.getElementById('space-select').addEventListener('change', e => { state.space = e.target.value; announce(`Space ${state.space}`); render(); });
// A token refused mid-session (changed, or a key deleted): log in again.
document.addEventListener('unauthorized', () => { if (!state.inLogin) { clearToken(); render(); } });
window.addEventListener('hashchange', render);
if (token() !== null) loadSpaces();
render();
