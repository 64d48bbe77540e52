'use strict'

// Driver for the SDK releases written against gateway 0.6 (0.2.x, 0.3.x):
// registerFunction, deleteFunction, listFunctions, subscribe, unsubscribe,
// listSubscriptions, emit (Event header) and invoke (Event: invoke +
// Function-ID). Two clients, space "default" and space "sdk-b", register
// the same function id and the same subscriptions; the checks show the two
// spaces stay apart. See CALLS.md.

const {
  EVENTS_URL, CONFIG_URL, fnURL, check, needs, finish, deliver, retry, rejects,
  parsedError, find, checkSpace, assert
} = require('./lib')

// eventName and eventData read a received event in either envelope the
// gateway may deliver: the 0.6 one ({event, id, data, dataType}) or a
// CloudEvent ({eventType, eventID, data, contentType}).
const eventName = b => (b.event !== undefined ? b.event : b.eventType)
const eventData = b => b.data

// run drives one release. opts: SDK (the module), keyOption (the
// constructor's API key option), invokeSendsSpace (whether invoke sends the
// client's space in a Space header: 0.3.0 does, 0.2.0 does not).
module.exports = async function run ({ SDK, keyOption, invokeSendsSpace }) {
  const id = 'greeter'
  const spaces = [
    { space: 'default', fn: 'a-greeter', sdk: new SDK({ url: EVENTS_URL, configurationUrl: CONFIG_URL }) },
    // The second client also sets the API key option: the SDK then sends
    // Authorization: bearer <key> on configuration calls, which a -dev
    // gateway must accept.
    { space: 'sdk-b', fn: 'b-greeter', sdk: new SDK({ url: EVENTS_URL, configurationUrl: CONFIG_URL, space: 'sdk-b', [keyOption]: 'sdk-test-key' }) }
  ]
  const [A, B] = spaces

  for (const s of spaces) {
    await check(`registerFunction (${s.space})`, async () => {
      const f = await s.sdk.registerFunction({ functionId: id, provider: { type: 'http', url: fnURL(s.fn) } })
      assert.strictEqual(f.functionId, id)
      checkSpace(f, s.space)
      assert.strictEqual(f.provider && f.provider.url, fnURL(s.fn), `provider of ${JSON.stringify(f)}`)
    })
  }

  for (const s of spaces) {
    await check(`listFunctions (${s.space})`, async () => {
      const fs = await s.sdk.listFunctions()
      const f = find(fs, 'functionId', id)
      assert.ok(f, `${id} missing from ${JSON.stringify(fs)}`)
      assert.strictEqual(fs.filter(x => x.functionId === id).length, 1, `one ${id} in ${JSON.stringify(fs)}`)
      checkSpace(f, s.space)
      assert.strictEqual(f.provider && f.provider.url, fnURL(s.fn), `${s.space} lists the other space's function: ${JSON.stringify(f)}`)
    })
  }

  await check('registerFunction error (duplicate)', () =>
    needs('registerFunction (default)') || rejects(A.sdk.registerFunction({ functionId: id, provider: { type: 'http', url: fnURL(A.fn) } }), parsedError))

  // Same subscriptions in both spaces: the custom event on / (emit always
  // posts to the Events API's root) and invoke on /.
  for (const s of spaces) {
    s.subs = []
    for (const event of ['user.created', 'invoke']) {
      await check(`subscribe ${event} (${s.space})`, async () => {
        const sub = await s.sdk.subscribe({ functionId: id, event, path: '/' })
        assert.ok(typeof sub.subscriptionId === 'string' && sub.subscriptionId !== '', `subscriptionId in ${JSON.stringify(sub)}`)
        assert.strictEqual(sub.functionId, id)
        assert.strictEqual(sub.event, event)
        checkSpace(sub, s.space)
        s.subs.push(sub.subscriptionId)
      })
    }
  }

  await check('subscribe error (unknown function)', () =>
    needs('subscribe user.created (default)') || rejects(A.sdk.subscribe({ functionId: 'no-such-function', event: 'user.created', path: '/' }), parsedError))

  for (const s of spaces) {
    await check(`listSubscriptions (${s.space})`, async () => {
      const subs = await s.sdk.listSubscriptions()
      assert.ok(Array.isArray(subs), `not an array: ${JSON.stringify(subs)}`)
      assert.deepStrictEqual(subs.map(x => x.event).sort(), ['invoke', 'user.created'], `subscriptions ${JSON.stringify(subs)}`)
      for (const sub of subs) {
        assert.strictEqual(sub.functionId, id)
        checkSpace(sub, s.space)
      }
    })
  }

  // emit: JSON data (the default), then text data with a dataType. The
  // request carries no space; the default space's subscriber must get it.
  await check('emit (JSON data)', async () => {
    const data = { name: 'Max', marker: 'emit-json' }
    const { result, body } = await deliver(A.fn,
      () => A.sdk.emit({ event: 'user.created', data }),
      b => eventName(b) === 'user.created' && eventData(b) && eventData(b).marker === 'emit-json',
      'the emitted user.created event')
    assert.strictEqual(result.status, 202)
    assert.deepStrictEqual(eventData(body), data)
  })

  await check('emit (dataType text/plain)', async () => {
    const text = 'hello from the SDK'
    const b64 = Buffer.from(text).toString('base64')
    const { result, body } = await deliver(A.fn,
      () => A.sdk.emit({ event: 'user.created', data: text, dataType: 'text/plain' }),
      b => eventName(b) === 'user.created' && (eventData(b) === b64 || eventData(b) === text),
      'the emitted text/plain event')
    assert.strictEqual(result.status, 202)
    const type = body.dataType !== undefined ? body.dataType : body.contentType
    assert.strictEqual(type, 'text/plain')
  })

  // invoke: synchronous; resolves to the fetch Response of the function's
  // answer. It retries while the subscription reaches the router.
  await check('invoke (default)', async () => {
    const data = { q: 'invoke-a' }
    const resp = await retry(() => A.sdk.invoke({ functionId: id, data }))
    assert.strictEqual(resp.status, 200)
    assert.deepStrictEqual(await resp.json(), { fn: A.fn })
    await deliver(A.fn, async () => {}, b => eventName(b) === 'invoke' && eventData(b) && eventData(b).q === 'invoke-a', 'the invoke event')
  })

  if (invokeSendsSpace) {
    await check('invoke (sdk-b, Space header)', async () => {
      const resp = await retry(() => B.sdk.invoke({ functionId: id, data: { q: 'invoke-b' } }))
      assert.strictEqual(resp.status, 200)
      assert.deepStrictEqual(await resp.json(), { fn: B.fn }, 'the sdk-b client must reach the sdk-b function')
    })
  } else {
    // 0.2.0 sends no Space header whatever the client's space: the gateway
    // takes the default space.
    await check('invoke (sdk-b client, no Space header: default space)', async () => {
      const resp = await retry(() => B.sdk.invoke({ functionId: id, data: { q: 'invoke-b' } }))
      assert.strictEqual(resp.status, 200)
      assert.deepStrictEqual(await resp.json(), { fn: A.fn })
    })
  }

  await check('invoke error (unknown function)', () =>
    needs('invoke (default)') || rejects(A.sdk.invoke({ functionId: 'no-such-function', data: {} }), /due the error: \S/))

  await check('deleteFunction error (unknown function)', () =>
    needs('listFunctions (default)') || rejects(A.sdk.deleteFunction({ functionId: 'no-such-function' }), parsedError))

  for (const s of spaces) {
    await check(`unsubscribe (${s.space})`, async () => {
      assert.strictEqual(s.subs.length, 2, 'both subscriptions were created')
      for (const sid of s.subs) assert.strictEqual(await s.sdk.unsubscribe({ subscriptionId: sid }), undefined)
      assert.deepStrictEqual(await s.sdk.listSubscriptions(), [])
    })
  }

  await check('unsubscribe error (unknown subscription)', () =>
    needs('unsubscribe (default)') || rejects(A.sdk.unsubscribe({ subscriptionId: 'no-such-subscription' }), parsedError))

  for (const s of spaces) {
    await check(`deleteFunction (${s.space})`, async () => {
      assert.strictEqual(await s.sdk.deleteFunction({ functionId: id }), undefined)
      const fs = await s.sdk.listFunctions()
      assert.ok(!find(fs, 'functionId', id), `${id} still listed: ${JSON.stringify(fs)}`)
    })
  }

  finish()
}
