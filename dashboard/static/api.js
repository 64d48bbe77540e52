// The Configuration API, called with the token the user typed. The token
// lives in sessionStorage only: it goes when the browser tab closes.

const TOKEN = 'eg.token';

export function token() { return sessionStorage.getItem(TOKEN); }
export function setToken(t) { sessionStorage.setItem(TOKEN, t); }
export function clearToken() { sessionStorage.removeItem(TOKEN); }

// ApiError carries the status and the API's messages ({"errors":[{message}]}).
export class ApiError extends Error {
  constructor(status, messages) {
    super(messages.join('; ') || `HTTP ${status}`);
    this.status = status;
    this.messages = messages;
  }
  // noEndpoint: the gateway has no such endpoint (an older gateway).
  get noEndpoint() { return this.status === 404 && this.messages.some(m => m.startsWith('no endpoint')); }
}

export function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// call sends a request and returns the decoded JSON answer (null for 204).
export async function call(method, path, body, { signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch(path, init);
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!resp.ok) {
    let msgs = (data && Array.isArray(data.errors)) ? data.errors.map(e => e.message) : [];
    if (!msgs.length && data && data.error) msgs = [data.error];
    if (!msgs.length) msgs = [text.trim() || resp.statusText];
    const err = new ApiError(resp.status, msgs);
    refused(path, resp.status);
    throw err;
  }
  return data;
}

export const enc = encodeURIComponent;

// refused tells the page that its token no longer works: a 401 on a path
// of a space, which every valid token opens. (The gateway-wide paths,
// such as /v1/deadletters, refuse a space's configuration key: that is no
// reason to log out.)
function refused(path, status) {
  if (status === 401 && path.startsWith('/v1/spaces/')) document.dispatchEvent(new CustomEvent('unauthorized'));
}

// sse reads a server-sent event stream with fetch (EventSource cannot send
// the Authorization header) and calls onEvent(name, data) for each event.
// onOpen is called once the gateway answers: from then on, nothing it sees
// is missed. It resolves when the stream ends or signal aborts.
export async function sse(path, onEvent, signal, onOpen) {
  const resp = await fetch(path, { headers: headers({ Accept: 'text/event-stream' }), signal });
  if (!resp.ok) {
    let msgs = [];
    try { msgs = (await resp.json()).errors.map(e => e.message); } catch { msgs = [resp.statusText]; }
    refused(path, resp.status);
    throw new ApiError(resp.status, msgs);
  }
  if (onOpen) onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  }
}
