'use strict'

// Driver for the SDK releases written against gateway 0.9 (0.10.x, 0.11.x):
// functions, event types, subscriptions and CORS (create, update, delete,
// list with filters) and emit (a CloudEvents 0.1 JSON body, 0.11 with a
// path and extra headers). Two local clients, space "default" and space
// "sdk-b", create the same ids and paths; a third client in the SDK's
// hosted mode (URL <space>.slsgateway.com) reaches space sdk-b through the
// Host header, the only way these releases address a space on the Events
// API. See CALLS.md.

const {
  EVENTS_URL, CONFIG_URL, fnURL, check, needs, finish, httpRequest, deliver, retry,
  never, rejects, parsedError, hostedFetch, find, checkSpace, assert, received
} = require('./lib')

const HOSTED_DOMAIN = 'slsgateway.com'

// A CloudEvents 0.1 event as the SDK documents it; marker tells the
// deliveries apart.
let seq = 0
const cloudEvent = (eventType, marker) => ({
  eventID: `sdk-e2e-${process.pid}-${++seq}`,
  eventType,
  cloudEventsVersion: '0.1',
  source: '/sdk-e2e',
  eventTime: new Date().toISOString(),
  contentType: 'application/json',
  data: { marker: `${process.pid}-${marker}` }
})
const isEvent = (type, marker) => b => b.eventType === type && b.data && b.data.marker === `${process.pid}-${marker}`

// run drives one release. opts: SDK (the module), emitOptions (whether
// emit takes a second argument {path, headers}: 0.11).
module.exports = async function run ({ SDK, emitOptions }) {
  const id = 'greeter'
  const responder = 'responder'
  const authorizer = 'authorizer'
  const spaces = [
    { space: 'default', fn: 'a-greeter', sync: 'sync-a', authz: 'authz-a', sdk: new SDK({ url: EVENTS_URL, configurationUrl: CONFIG_URL }) },
    { space: 'sdk-b', fn: 'b-greeter', sync: 'sync-b', authz: 'authz-b', sdk: new SDK({ url: EVENTS_URL, configurationUrl: CONFIG_URL, space: 'sdk-b' }) }
  ]
  const [A, B] = spaces
  // Hosted mode: space from the subdomain, Configuration API at
  // https://config.slsgateway.com, Authorization: bearer <accessKey> on
  // configuration calls. hostedFetch sends it all to this gateway.
  const H = new SDK({ url: `http://sdk-b.${HOSTED_DOMAIN}`, accessKey: 'sdk-test-key', fetch: hostedFetch(HOSTED_DOMAIN) })

  // Functions.
  for (const s of spaces) {
    for (const [fid, name] of [[id, s.fn], [responder, s.sync], [authorizer, s.authz]]) {
      await check(`createFunction ${fid} (${s.space})`, async () => {
        const f = await s.sdk.createFunction({ functionId: fid, type: 'http', provider: { url: fnURL(name) } })
        assert.strictEqual(f.functionId, fid)
        checkSpace(f, s.space)
        assert.strictEqual(f.type, 'http', `type of ${JSON.stringify(f)}`)
        assert.strictEqual(f.provider && f.provider.url, fnURL(name), `provider of ${JSON.stringify(f)}`)
      })
    }
  }

  await check('createFunction error (duplicate)', () =>
    needs('createFunction greeter (default)') || rejects(A.sdk.createFunction({ functionId: id, type: 'http', provider: { url: fnURL(A.fn) } }), parsedError))

  for (const s of spaces) {
    await check(`updateFunction (${s.space})`, async () => {
      const f = await s.sdk.updateFunction({ functionId: id, type: 'http', provider: { url: fnURL(s.fn) }, metadata: { service: `users-${s.space}` } })
      assert.strictEqual(f.functionId, id)
      checkSpace(f, s.space)
      assert.deepStrictEqual(f.metadata, { service: `users-${s.space}` })
    })
  }

  await check('updateFunction error (unknown function)', () =>
    needs('updateFunction (default)') || rejects(A.sdk.updateFunction({ functionId: 'no-such-function', type: 'http', provider: { url: fnURL(A.fn) } }), parsedError))

  for (const s of spaces) {
    await check(`listFunctions (${s.space})`, async () => {
      const fs = await s.sdk.listFunctions()
      assert.deepStrictEqual(fs.map(f => f.functionId).sort(), [authorizer, id, responder], `functions ${JSON.stringify(fs)}`)
      const f = find(fs, 'functionId', id)
      checkSpace(f, s.space)
      assert.strictEqual(f.provider && f.provider.url, fnURL(s.fn), `${s.space} lists another space's function: ${JSON.stringify(f)}`)
    })
  }

  await check('listFunctions (metadata filter)', async () => {
    const fs = await A.sdk.listFunctions({ 'metadata.service': 'users-default' })
    assert.deepStrictEqual(fs.map(f => f.functionId), [id], `filtered functions ${JSON.stringify(fs)}`)
    assert.deepStrictEqual(await A.sdk.listFunctions({ 'metadata.service': 'users-sdk-b' }), [])
  })

  // Event types: user.created (custom) and http.request (built in, but
  // registered like any other before it can be subscribed to).
  for (const s of spaces) {
    for (const name of ['user.created', 'http.request']) {
      await check(`createEventType ${name} (${s.space})`, async () => {
        const et = await s.sdk.createEventType({ name, metadata: { team: s.space } })
        assert.strictEqual(et.name, name)
        checkSpace(et, s.space)
      })
    }
  }

  await check('createEventType error (duplicate)', () =>
    needs('createEventType user.created (default)') || rejects(A.sdk.createEventType({ name: 'user.created' }), parsedError))

  for (const s of spaces) {
    await check(`listEventTypes (${s.space})`, async () => {
      const ets = await s.sdk.listEventTypes()
      assert.deepStrictEqual(ets.map(e => e.name).sort(), ['http.request', 'user.created'], `event types ${JSON.stringify(ets)}`)
      ets.forEach(e => checkSpace(e, s.space))
      const filtered = await s.sdk.listEventTypes({ 'metadata.team': s.space })
      assert.strictEqual(filtered.length, 2, `filtered event types ${JSON.stringify(filtered)}`)
    })
  }

  // Subscriptions: async user.created on / (and on /sdk-path for 0.11's
  // emit path), sync http.request on GET /hello, same in both spaces.
  const subsWanted = [
    { type: 'async', eventType: 'user.created', functionId: id, path: '/', method: 'POST', metadata: { kind: 'custom' } },
    { type: 'sync', eventType: 'http.request', functionId: responder, path: '/hello', method: 'GET', metadata: { kind: 'http' } }
  ]
  if (emitOptions) subsWanted.push({ type: 'async', eventType: 'user.created', functionId: id, path: '/sdk-path', method: 'POST', metadata: { kind: 'custom' } })
  for (const s of spaces) {
    s.subs = []
    for (const want of subsWanted) {
      await check(`subscribe ${want.type} ${want.eventType} ${want.method} ${want.path} (${s.space})`, async () => {
        const sub = await s.sdk.subscribe(want)
        assert.ok(typeof sub.subscriptionId === 'string' && sub.subscriptionId !== '', `subscriptionId in ${JSON.stringify(sub)}`)
        checkSpace(sub, s.space)
        for (const k of ['type', 'eventType', 'functionId', 'path', 'method']) assert.strictEqual(sub[k], want[k], `${k} of ${JSON.stringify(sub)}`)
        s.subs.push(sub.subscriptionId)
      })
    }
  }

  await check('subscribe error (unregistered event type)', () =>
    needs('subscribe async user.created POST / (default)') || rejects(A.sdk.subscribe({ type: 'async', eventType: 'never.registered', functionId: id, path: '/', method: 'POST' }), parsedError))

  await check('subscribe error (second sync subscription on the same endpoint)', () =>
    needs('subscribe sync http.request GET /hello (default)') || rejects(A.sdk.subscribe({ type: 'sync', eventType: 'http.request', functionId: id, path: '/hello', method: 'GET' }), parsedError))

  for (const s of spaces) {
    await check(`listSubscriptions (${s.space})`, async () => {
      const subs = await s.sdk.listSubscriptions()
      assert.deepStrictEqual(subs.map(x => x.subscriptionId).sort(), [...s.subs].sort(), `subscriptions ${JSON.stringify(subs)}`)
      subs.forEach(x => checkSpace(x, s.space))
      const filtered = await s.sdk.listSubscriptions({ 'metadata.kind': 'http' })
      assert.deepStrictEqual(filtered.map(x => x.eventType), ['http.request'], `filtered subscriptions ${JSON.stringify(filtered)}`)
    })
  }

  await check('deleteFunction error (function in use)', () =>
    needs('subscribe async user.created POST / (default)') || rejects(A.sdk.deleteFunction({ functionId: id }), parsedError))

  await check('deleteEventType error (event type in use)', () =>
    needs('subscribe async user.created POST / (default)') || rejects(A.sdk.deleteEventType({ name: 'user.created' }), parsedError))

  // emit: the request carries no space; the default space's subscriber
  // gets it.
  await check('emit (default)', async () => {
    const ev = cloudEvent('user.created', 'emit-a')
    const { result, body } = await deliver(A.fn, () => A.sdk.emit(ev), isEvent('user.created', 'emit-a'), 'the emitted event')
    assert.strictEqual(result.status, 202)
    assert.strictEqual(body.eventID, ev.eventID)
    assert.strictEqual(body.cloudEventsVersion, '0.1')
    assert.strictEqual(body.source, ev.source)
    assert.deepStrictEqual(body.data, ev.data)
  })

  if (emitOptions) {
    await check('emit with path and headers (default)', async () => {
      const ev = cloudEvent('user.created', 'emit-path-a')
      const { result } = await deliver(A.fn,
        () => A.sdk.emit(ev, { path: 'sdk-path', headers: { 'X-Sdk-Test': 'yes' } }),
        isEvent('user.created', 'emit-path-a'), 'the event emitted on /sdk-path')
      assert.strictEqual(result.status, 202)
    })
  }

  // The sync http.request subscription, reached without the SDK.
  await check('sync subscription answers GET /hello (default)', async () => {
    const r = await retry(async () => {
      const r = await httpRequest(EVENTS_URL.replace(/\/$/, '') + '/hello')
      if (r.status !== 200) throw new Error(`GET /hello: status ${r.status} ${r.body}`)
      return r
    })
    assert.deepStrictEqual(JSON.parse(r.body), { fn: A.sync })
  })

  // Authorizer: update the event type to name one, then an emitted event
  // goes through it.
  await check('updateEventType with authorizerId (default)', async () => {
    const et = await A.sdk.updateEventType({ name: 'user.created', authorizerId: authorizer, metadata: { team: 'default' } })
    assert.strictEqual(et.name, 'user.created')
    assert.strictEqual(et.authorizerId, authorizer)
    checkSpace(et, 'default')
  })

  await check('emit through the authorizer (default)', async () => {
    const ev = cloudEvent('user.created', 'emit-authorized')
    await deliver(A.fn, () => A.sdk.emit(ev), isEvent('user.created', 'emit-authorized'), 'the authorized event')
    const calls = await received(A.authz)
    assert.ok(calls.some(c => c.body.includes(`${process.pid}-emit-authorized`)), `the authorizer was not called with the event: ${JSON.stringify(calls)}`)
  })

  await check('updateEventType error (unknown event type)', () =>
    needs('updateEventType with authorizerId (default)') || rejects(A.sdk.updateEventType({ name: 'never.registered' }), parsedError))

  // CORS.
  for (const s of spaces) {
    await check(`createCORS (${s.space})`, async () => {
      const c = await s.sdk.createCORS({ method: 'GET', path: '/hello', allowedOrigins: [`http://${s.space}.example`] })
      assert.ok(typeof c.corsId === 'string' && c.corsId !== '', `corsId in ${JSON.stringify(c)}`)
      checkSpace(c, s.space)
      assert.strictEqual(c.method, 'GET')
      assert.strictEqual(c.path, '/hello')
      assert.deepStrictEqual(c.allowedOrigins, [`http://${s.space}.example`])
      s.corsId = c.corsId
    })
  }

  await check('createCORS error (duplicate)', () =>
    needs('createCORS (default)') || rejects(A.sdk.createCORS({ method: 'GET', path: '/hello' }), parsedError))

  await check('CORS preflight allowed (default)', async () => {
    await retry(async () => {
      const r = await httpRequest(EVENTS_URL.replace(/\/$/, '') + '/hello', {
        method: 'OPTIONS',
        headers: { Origin: 'http://default.example', 'Access-Control-Request-Method': 'GET' }
      })
      assert.strictEqual(r.headers['access-control-allow-origin'], 'http://default.example', `preflight answered ${r.status} ${JSON.stringify(r.headers)}`)
    })
  })

  await check('updateCORS (default)', async () => {
    const c = await A.sdk.updateCORS({ corsId: A.corsId, method: 'GET', path: '/hello', allowedOrigins: ['http://other.example'], allowCredentials: true })
    assert.strictEqual(c.corsId, A.corsId)
    assert.deepStrictEqual(c.allowedOrigins, ['http://other.example'])
    assert.strictEqual(c.allowCredentials, true)
  })

  await check('updateCORS error (unknown id)', () =>
    needs('updateCORS (default)') || rejects(A.sdk.updateCORS({ corsId: 'no-such-cors', method: 'GET', path: '/nowhere' }), parsedError))

  for (const s of spaces) {
    await check(`listCORS (${s.space})`, async () => {
      const cs = await s.sdk.listCORS()
      assert.deepStrictEqual(cs.map(c => c.corsId), [s.corsId], `CORS configurations ${JSON.stringify(cs)}`)
      checkSpace(cs[0], s.space)
      const want = s.space === 'default' ? 'http://other.example' : 'http://sdk-b.example'
      assert.deepStrictEqual(cs[0].allowedOrigins, [want], `${s.space} sees another space's CORS: ${JSON.stringify(cs)}`)
    })
  }

  // Hosted mode: the space is the subdomain of the Events API host.
  await check('hosted listFunctions (sdk-b from the host name)', async () => {
    const fs = await H.listFunctions()
    const f = find(fs, 'functionId', id)
    assert.ok(f, `${id} missing from ${JSON.stringify(fs)}`)
    checkSpace(f, 'sdk-b')
    assert.strictEqual(f.provider && f.provider.url, fnURL(B.fn))
  })

  await check('hosted emit (sdk-b)', async () => {
    const ev = cloudEvent('user.created', 'emit-hosted-b')
    const { result } = await deliver(B.fn, () => H.emit(ev), isEvent('user.created', 'emit-hosted-b'), 'the event emitted to sdk-b')
    assert.strictEqual(result.status, 202)
    await never(A.fn, isEvent('user.created', 'emit-hosted-b'), 'the event emitted to sdk-b')
  })

  if (emitOptions) {
    await check('hosted emit with path (sdk-b)', async () => {
      const ev = cloudEvent('user.created', 'emit-hosted-path-b')
      await deliver(B.fn, () => H.emit(ev, { path: '/sdk-path' }), isEvent('user.created', 'emit-hosted-path-b'), 'the event emitted to sdk-b on /sdk-path')
      await never(A.fn, isEvent('user.created', 'emit-hosted-path-b'), 'the event emitted to sdk-b')
    })
  }

  await check('hosted sync subscription answers GET /hello (sdk-b)', async () => {
    const r = await retry(async () => {
      const r = await httpRequest(EVENTS_URL.replace(/\/$/, '') + '/hello', { headers: { Host: `sdk-b.${HOSTED_DOMAIN}` } })
      if (r.status !== 200) throw new Error(`GET /hello: status ${r.status} ${r.body}`)
      return r
    })
    assert.deepStrictEqual(JSON.parse(r.body), { fn: B.sync }, 'GET /hello on sdk-b must reach the sdk-b function')
  })

  // The default space's emit never reached sdk-b.
  await check('default emits stay out of sdk-b', () =>
    needs('emit (default)', 'hosted emit (sdk-b)') || never(B.fn, b => b.data && typeof b.data.marker === 'string' && !b.data.marker.endsWith('-b'), 'an event emitted to the default space'))

  // Tear down, checking each removal.
  for (const s of spaces) {
    await check(`deleteCORS (${s.space})`, async () => {
      assert.strictEqual(await s.sdk.deleteCORS({ corsId: s.corsId }), undefined)
      assert.deepStrictEqual(await s.sdk.listCORS(), [])
    })
  }

  await check('deleteCORS error (unknown id)', () =>
    needs('deleteCORS (default)') || rejects(A.sdk.deleteCORS({ corsId: 'no-such-cors' }), parsedError))

  for (const s of spaces) {
    await check(`unsubscribe (${s.space})`, async () => {
      assert.strictEqual(s.subs.length, subsWanted.length, 'every subscription was created')
      for (const sid of s.subs) assert.strictEqual(await s.sdk.unsubscribe({ subscriptionId: sid }), undefined)
      assert.deepStrictEqual(await s.sdk.listSubscriptions(), [])
    })
  }

  await check('unsubscribe error (unknown subscription)', () =>
    needs('unsubscribe (default)') || rejects(A.sdk.unsubscribe({ subscriptionId: 'no-such-subscription' }), parsedError))

  for (const s of spaces) {
    await check(`deleteEventType (${s.space})`, async () => {
      for (const name of ['user.created', 'http.request']) assert.strictEqual(await s.sdk.deleteEventType({ name }), undefined)
      assert.deepStrictEqual(await s.sdk.listEventTypes(), [])
    })
  }

  await check('deleteEventType error (unknown event type)', () =>
    needs('deleteEventType (default)') || rejects(A.sdk.deleteEventType({ name: 'never.registered' }), parsedError))

  for (const s of spaces) {
    await check(`deleteFunction (${s.space})`, async () => {
      for (const fid of [id, responder, authorizer]) assert.strictEqual(await s.sdk.deleteFunction({ functionId: fid }), undefined)
      assert.deepStrictEqual(await s.sdk.listFunctions(), [])
    })
  }

  await check('deleteFunction error (unknown function)', () =>
    needs('deleteFunction (default)') || rejects(A.sdk.deleteFunction({ functionId: 'no-such-function' }), parsedError))

  finish()
}
