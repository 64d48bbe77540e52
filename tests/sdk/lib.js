'use strict'

// Shared helpers of the run-<version>.js drivers (see tests/sdk_test.go and
// CALLS.md). They never touch the SDK: each driver calls its release exactly
// as a user would and uses these only to check results.
//
// Environment (set by TestSDKClients):
//   EVENTS_URL     base URL of the Events API, e.g. http://127.0.0.1:41234
//   CONFIG_URL     base URL of the Configuration API
//   FUNCTIONS_URL  prefix of the HTTP functions: FUNCTIONS_URL + <name> is a
//                  function answering {"fn":"<name>"}
//   RECEIVED_URL   RECEIVED_URL + <name> answers the JSON array of requests
//                  function <name> received: [{method, path, host, headers,
//                  body}], headers lower-cased, body a string

const assert = require('assert')
const http = require('http')

const env = name => {
  const v = process.env[name]
  if (!v) {
    console.log(`FAIL setup: environment variable ${name} is not set`)
    console.log('0 passed, 1 failed')
    process.exit(2)
  }
  return v
}

const EVENTS_URL = env('EVENTS_URL')
const CONFIG_URL = env('CONFIG_URL')
const FUNCTIONS_URL = env('FUNCTIONS_URL')
const RECEIVED_URL = env('RECEIVED_URL')

const fnURL = name => FUNCTIONS_URL + name

let passed = 0
let failed = 0
const passedNames = new Set()

// check runs one named call with its checks and prints its result line.
// It returns what fn returned, or undefined when it failed.
async function check (name, fn) {
  try {
    const v = await fn()
    passed++
    passedNames.add(name)
    console.log(`ok ${name}`)
    return v
  } catch (e) {
    failed++
    const reason = (e && e.message ? e.message : String(e)).replace(/\s+/g, ' ')
    console.log(`FAIL ${name}: ${reason}`)
    return undefined
  }
}

// needs fails the current check unless every named check passed: an error
// case proves nothing when the endpoint it probes does not exist, and a
// "did not arrive" check nothing when nothing was sent.
function needs (...names) {
  const missing = names.filter(n => !passedNames.has(n))
  if (missing.length) throw new Error(`not checked: it needs ${missing.map(n => JSON.stringify(n)).join(', ')} to pass first`)
}

// finish prints the summary line and sets the exit code.
function finish () {
  console.log(`${passed} passed, ${failed} failed`)
  process.exitCode = failed === 0 ? 0 : 1
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// httpRequest makes a plain request with node's http module and resolves to
// {status, headers, body}. Used for checks outside the SDK (preflights,
// what the functions received) and by hostedFetch.
function httpRequest (url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, res => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.setTimeout(30000, () => req.destroy(new Error(`${method} ${url}: timed out`)))
    if (body !== undefined && body !== null) req.write(body)
    req.end()
  })
}

// received returns the requests function name has received so far.
async function received (name) {
  const r = await httpRequest(RECEIVED_URL + name)
  if (r.status !== 200) throw new Error(`GET ${RECEIVED_URL + name}: status ${r.status}`)
  return JSON.parse(r.body)
}

// parseBody parses a received request's body as JSON.
function parseBody (req) {
  try {
    return JSON.parse(req.body)
  } catch (e) {
    throw new Error(`function received a body that is not JSON: ${JSON.stringify(req.body)}`)
  }
}

// deliver calls send, then waits until function name has received a
// request that match accepts (a parsed body), calling send again every
// second while it has not, for up to 10 s: configuration reaches the
// router asynchronously. Resolves to {result, req, body} of the send that
// delivered. send rejecting stops at once.
async function deliver (name, send, match, what) {
  const deadline = Date.now() + 10000
  let result
  for (;;) {
    result = await send()
    const until = Math.min(Date.now() + 1000, deadline)
    do {
      for (const req of await received(name)) {
        let body
        try {
          body = JSON.parse(req.body)
        } catch (e) {
          continue
        }
        if (match(body)) return { result, req, body }
      }
      await sleep(50)
    } while (Date.now() < until)
    if (Date.now() >= deadline) {
      const got = (await received(name)).map(r => r.body)
      throw new Error(`function ${name} did not receive ${what} within 10s; it received ${JSON.stringify(got)}`)
    }
  }
}

// retry calls fn until it resolves, for up to 10 s, and returns its value:
// for sync calls (invoke, sync subscriptions) that fail until the
// configuration has reached the router. The last rejection is rethrown.
async function retry (fn) {
  const deadline = Date.now() + 10000
  for (;;) {
    try {
      return await fn()
    } catch (e) {
      if (Date.now() >= deadline) throw e
      await sleep(100)
    }
  }
}

// never checks that function name received nothing matching match.
async function never (name, match, what) {
  for (const req of await received(name)) {
    let body
    try {
      body = JSON.parse(req.body)
    } catch (e) {
      continue
    }
    if (match(body)) throw new Error(`function ${name} received ${what}, which belongs to another space: ${req.body}`)
  }
}

// rejects checks that promise rejects with an Error whose message matches
// re, and returns the message.
async function rejects (promise, re) {
  let v
  try {
    v = await promise
  } catch (e) {
    if (!(e instanceof Error)) throw new Error(`rejected with a non-Error ${JSON.stringify(e)}`)
    if (!re.test(e.message)) throw new Error(`error message ${JSON.stringify(e.message)} does not match ${re}`)
    return e.message
  }
  throw new Error(`resolved with ${JSON.stringify(v)}, want a rejection`)
}

// parsedError is what every configuration call's error must match when the
// gateway answered with {"errors":[{"message": ...}]}: the SDK then quotes
// the message; otherwise it says it "couldn't parse error body".
const parsedError = /due the error: \S/

// hostedFetch returns a fetch function for the SDK's fetch option that
// sends a hosted-mode client's requests to this machine's gateway: requests
// to https://config.<domain>/... go to CONFIG_URL, requests to
// http(s)://<space>.<domain>/... go to EVENTS_URL with the Host header
// <space>.<domain> kept, so the gateway sees what the hosted service saw.
// Method, path, query, headers and body are passed unchanged.
function hostedFetch (domain) {
  return (url, opts = {}) => {
    const u = new URL(url)
    if (!u.hostname.endsWith('.' + domain)) return Promise.reject(new Error(`hostedFetch: unexpected URL ${url}`))
    const headers = Object.assign({}, opts.headers)
    let target
    if (u.hostname === 'config.' + domain) {
      target = CONFIG_URL
    } else {
      target = EVENTS_URL
      headers.Host = u.host
    }
    return httpRequest(target.replace(/\/$/, '') + u.pathname + u.search, { method: opts.method || 'GET', headers, body: opts.body })
      .then(r => ({
        status: r.status,
        ok: r.status >= 200 && r.status < 300,
        headers: { get: k => r.headers[k.toLowerCase()] },
        text: () => Promise.resolve(r.body),
        json: () => Promise.resolve().then(() => JSON.parse(r.body))
      }))
  }
}

// find returns the element of list whose key equals value.
function find (list, key, value) {
  if (!Array.isArray(list)) throw new Error(`not an array: ${JSON.stringify(list)}`)
  return list.find(x => x && x[key] === value)
}

// checkSpace checks an object's space field when it has one.
function checkSpace (obj, space) {
  if (obj && obj.space !== undefined) assert.strictEqual(obj.space, space, `space of ${JSON.stringify(obj)}`)
}

module.exports = {
  EVENTS_URL,
  CONFIG_URL,
  fnURL,
  check,
  needs,
  finish,
  sleep,
  httpRequest,
  received,
  parseBody,
  deliver,
  retry,
  never,
  rejects,
  parsedError,
  hostedFetch,
  find,
  checkSpace,
  assert
}
