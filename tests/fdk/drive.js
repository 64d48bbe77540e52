'use strict'

// Drives a running event-gateway with the unmodified @serverless/fdk client,
// as its users call it. Run by TestFDKClient in tests/fdk_test.go, which
// starts the gateway and the HTTP function and checks what the function
// received. Exits 0 when every step gave the expected result; otherwise prints
// "FAIL: <step>: <reason>" to stderr and exits 1.
//
// Environment:
//   EG_EVENTS_URL    base URL of the Events API, e.g. http://127.0.0.1:4000
//   EG_CONFIG_URL    base URL of the Configuration API (random port, so it is
//                    passed explicitly as configurationUrl)
//   EG_FUNCTION_URL  URL of the HTTP function to register
//   EG_RECEIVED_URL  URL answering GET with {"<event name>": <count>} of the
//                    envelopes the function has received
//   EG_FUNCTION_ID   id to register the function under (default "fdk-hello")

const assert = require('assert')
const http = require('http')
const fdk = require('@serverless/fdk')

const env = name => {
  const v = process.env[name]
  if (!v) {
    console.error(`FAIL: setup: environment variable ${name} is not set`)
    process.exit(1)
  }
  return v
}

const eventsUrl = env('EG_EVENTS_URL')
const configUrl = env('EG_CONFIG_URL')
const functionUrl = env('EG_FUNCTION_URL')
const receivedUrl = env('EG_RECEIVED_URL')
const functionId = process.env.EG_FUNCTION_ID || 'fdk-hello'

// What the Go function answers to every call.
const functionResponse = { hello: 'fdk' }
const invokeData = { greeting: 'hi', n: 1 }
const eventData = { name: 'Max' }

// The FDK exactly as users construct it: its default fetch (isomorphic-fetch).
const eg = fdk.eventGateway({ url: eventsUrl, configurationUrl: configUrl })

let current = 'setup'
const step = name => {
  current = name
}
const ok = what => console.log(`ok: ${current}${what ? `: ${what}` : ''}`)
const fail = reason => {
  throw new Error(reason)
}
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// expectReject runs fn, which must reject with an Error whose message
// matches every pattern, and returns that message.
async function expectReject(fn, ...patterns) {
  let v
  try {
    v = await fn()
  } catch (err) {
    if (!(err instanceof Error)) fail(`rejected with a non-Error ${JSON.stringify(err)}`)
    for (const p of patterns) {
      const hit = p instanceof RegExp ? p.test(err.message) : err.message.includes(p)
      if (!hit) fail(`error message ${JSON.stringify(err.message)} does not contain ${p}`)
    }
    return err.message
  }
  return fail(`resolved with ${JSON.stringify(v)}, want a rejection`)
}

// eventuallyDo retries fn while it rejects with a message matching
// retryable, for up to 10 s, and returns what it resolves to.
async function eventuallyDo(fn, retryable) {
  const deadline = Date.now() + 10000
  for (let tries = 1; ; tries++) {
    try {
      return { value: await fn(), tries }
    } catch (e) {
      if (!retryable.test(e.message) || Date.now() > deadline) throw e
    }
    await sleep(10)
  }
}

// received asks the Go test how many envelopes of each event the function got.
function received() {
  return new Promise((resolve, reject) => {
    http
      .get(receivedUrl, res => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', c => {
          body += c
        })
        res.on('end', () => {
          try {
            resolve(JSON.parse(body))
          } catch (e) {
            reject(new Error(`received endpoint answered ${res.statusCode} ${body}`))
          }
        })
      })
      .on('error', reject)
  })
}

// rawPost sends body to the Configuration API without the FDK and returns
// the status and parsed JSON body, to compare the FDK's error with.
function rawPost(path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${configUrl}${path}`,
      { method: 'POST', headers: { 'Content-Type': 'application/json' } },
      res => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', c => {
          text += c
        })
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode, body: JSON.parse(text) })
          } catch (e) {
            reject(new Error(`${path} answered ${res.statusCode} ${text}`))
          }
        })
      }
    )
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

const find = (list, pred) => (Array.isArray(list) ? list.filter(pred) : [])

async function main() {
  const fn = { functionId, provider: { type: 'http', url: functionUrl } }

  step('registerFunction')
  const registered = await eg.registerFunction(fn)
  assert.deepStrictEqual(
    { functionId: registered.functionId, provider: registered.provider },
    fn,
    `registerFunction resolved to ${JSON.stringify(registered)}, want ${JSON.stringify(fn)}`
  )
  ok(JSON.stringify(registered))

  step('registerFunction twice')
  {
    const msg = await expectReject(
      () => eg.registerFunction(fn),
      `Failed to register the function ${functionId} due the error: `
    )
    // The FDK reads error.error from the JSON body: the message must carry
    // the gateway's own text, not "couldn't parse error body".
    const raw = await rawPost('/v1/functions', fn)
    if (raw.status !== 409 || typeof raw.body.error !== 'string' || raw.body.error === '') {
      fail(`a duplicate registration without the FDK answered ${raw.status} ${JSON.stringify(raw.body)}`)
    }
    const want = `Failed to register the function ${functionId} due the error: ${raw.body.error}`
    if (msg !== want) fail(`error message ${JSON.stringify(msg)}, want ${JSON.stringify(want)}`)
    if (!msg.includes('already exists')) fail(`error message ${JSON.stringify(msg)} does not say "already exists"`)
    ok(msg)
  }

  step('listFunctions contains the function')
  {
    const list = await eg.listFunctions()
    const hits = find(list && list.functions, f => f.functionId === functionId)
    if (hits.length !== 1) fail(`listFunctions resolved to ${JSON.stringify(list)}`)
    assert.deepStrictEqual(hits[0].provider, fn.provider, `listed ${JSON.stringify(hits[0])}, want provider ${JSON.stringify(fn.provider)}`)
    ok()
  }

  step('subscribe user.created')
  const custom = await eg.subscribe({ functionId, event: 'user.created', path: '/' })
  if (!custom || typeof custom.subscriptionId !== 'string' || custom.subscriptionId === '' ||
      custom.event !== 'user.created' || custom.functionId !== functionId || custom.path !== '/') {
    fail(`subscribe resolved to ${JSON.stringify(custom)}`)
  }
  ok(JSON.stringify(custom))

  step('subscribe invoke')
  const invokeSub = await eg.subscribe({ functionId, event: 'invoke', path: '/' })
  if (!invokeSub || typeof invokeSub.subscriptionId !== 'string' || invokeSub.subscriptionId === '' ||
      invokeSub.event !== 'invoke' || invokeSub.functionId !== functionId ||
      invokeSub.subscriptionId === custom.subscriptionId) {
    fail(`subscribe resolved to ${JSON.stringify(invokeSub)}`)
  }
  ok(JSON.stringify(invokeSub))

  step('subscribe twice')
  ok(await expectReject(
    () => eg.subscribe({ functionId, event: 'user.created', path: '/' }),
    `Failed to subscribe the event user.created to the function ${functionId} due the error: `
  ))

  step('listSubscriptions contains both')
  {
    const list = await eg.listSubscriptions()
    const subs = list && list.subscriptions
    for (const want of [custom, invokeSub]) {
      const hits = find(subs, s => s.subscriptionId === want.subscriptionId)
      if (hits.length !== 1) fail(`subscription ${want.subscriptionId} missing: ${JSON.stringify(list)}`)
      assert.deepStrictEqual(hits[0], want, `listed ${JSON.stringify(hits[0])}, subscribe returned ${JSON.stringify(want)}`)
    }
    ok()
  }

  step('emit user.created')
  {
    // The router applies subscriptions from an etcd watch, within
    // milliseconds; an event that comes first is accepted and reaches no
    // one. Emit until the function has one.
    const deadline = Date.now() + 10000
    let emits = 0
    for (;;) {
      const res = await eg.emit({ event: 'user.created', data: eventData })
      emits++
      if (!res || res.status !== 202) fail(`emit resolved to status ${res && res.status}`)
      const waitUntil = Date.now() + 100
      let got = 0
      while (Date.now() < waitUntil) {
        got = (await received())['user.created'] || 0
        if (got > 0) break
        await sleep(5)
      }
      if (got > 0) break
      if (Date.now() > deadline) fail(`the function got no user.created event after ${emits} emits`)
    }
    ok(`202, delivered after ${emits} emit(s)`)
  }

  step('invoke')
  {
    const { value: res, tries } = await eventuallyDo(
      () => eg.invoke({ functionId, data: invokeData }),
      /no invoke subscription/
    )
    if (res.status !== 200) fail(`status ${res.status}`)
    const text = await res.text()
    let body
    try {
      body = JSON.parse(text)
    } catch (e) {
      fail(`response body ${JSON.stringify(text)} is not JSON`)
    }
    assert.deepStrictEqual(body, functionResponse,
      `invoke response body ${text}, want ${JSON.stringify(functionResponse)}`)
    ok(`${text} after ${tries} tries`)
  }

  step('invoke an unknown function')
  ok(await expectReject(
    () => eg.invoke({ functionId: 'no-such-function', data: {} }),
    'Failed to invoke function no-such-function due the error: ',
    'not found'
  ))

  step('deleteFunction while subscribed')
  ok(await expectReject(
    () => eg.deleteFunction({ functionId }),
    `Failed to delete the function ${functionId} due the error: `
  ))

  step('unsubscribe both')
  for (const s of [custom, invokeSub]) {
    const v = await eg.unsubscribe({ subscriptionId: s.subscriptionId })
    if (v !== undefined) fail(`unsubscribe resolved to ${JSON.stringify(v)}`)
  }
  ok()

  step('unsubscribe again')
  ok(await expectReject(
    () => eg.unsubscribe({ subscriptionId: custom.subscriptionId }),
    `Failed to unsubscribe the subscription ${custom.subscriptionId} due the error: `
  ))

  step('listSubscriptions no longer contains them')
  {
    const list = await eg.listSubscriptions()
    const left = find(list && list.subscriptions,
      s => s.subscriptionId === custom.subscriptionId || s.subscriptionId === invokeSub.subscriptionId)
    if (!list || !Array.isArray(list.subscriptions) || left.length !== 0) {
      fail(`listSubscriptions resolved to ${JSON.stringify(list)}`)
    }
    ok()
  }

  step('deleteFunction')
  {
    const v = await eg.deleteFunction({ functionId })
    if (v !== undefined) fail(`deleteFunction resolved to ${JSON.stringify(v)}`)
    ok()
  }

  step('deleteFunction again')
  ok(await expectReject(
    () => eg.deleteFunction({ functionId }),
    `Failed to delete the function ${functionId} due the error: `,
    'not found'
  ))

  step('listFunctions no longer contains it')
  {
    const list = await eg.listFunctions()
    if (!list || !Array.isArray(list.functions) ||
        find(list.functions, f => f.functionId === functionId).length !== 0) {
      fail(`listFunctions resolved to ${JSON.stringify(list)}`)
    }
    ok()
  }

  // configure and resetConfiguration are the FDK's bulk calls: they send
  // their requests concurrently.
  step('configure')
  {
    const ids = ['fdk-a', 'fdk-b']
    const res = await eg.configure({
      functions: ids.map(id => ({ functionId: id, provider: { type: 'http', url: functionUrl } })),
      subscriptions: ids.map(id => ({ functionId: id, event: 'fdk.configured', path: '/bulk' })),
    })
    if (!res || !Array.isArray(res.functions) || res.functions.length !== 2 ||
        !Array.isArray(res.subscriptions) || res.subscriptions.length !== 2) {
      fail(`configure resolved to ${JSON.stringify(res)}`)
    }
    const fns = (await eg.listFunctions()).functions.map(f => f.functionId).sort()
    const subs = (await eg.listSubscriptions()).subscriptions
    assert.deepStrictEqual(fns, ids, `functions after configure: ${JSON.stringify(fns)}, want ${JSON.stringify(ids)}`)
    if (subs.length !== 2 || subs.some(s => s.event !== 'fdk.configured' || s.path !== '/bulk')) {
      fail(`subscriptions after configure: ${JSON.stringify(subs)}`)
    }
    ok()
  }

  step('resetConfiguration')
  {
    const v = await eg.resetConfiguration()
    if (v !== undefined) fail(`resetConfiguration resolved to ${JSON.stringify(v)}`)
    const fns = (await eg.listFunctions()).functions
    const subs = (await eg.listSubscriptions()).subscriptions
    if (fns.length !== 0 || subs.length !== 0) {
      fail(`left after resetConfiguration: ${JSON.stringify({ fns, subs })}`)
    }
    ok()
  }

  console.log('PASS: all FDK calls behaved as expected')
}

main().catch(e => {
  console.error(`FAIL: ${current}: ${e && e.message ? e.message : e}`)
  if (e && e.stack) console.error(e.stack)
  process.exit(1)
})
