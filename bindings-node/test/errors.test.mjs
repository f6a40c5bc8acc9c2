// The error classes: every error the package throws, from the addon or from the JS layer, sync or
// async, is an instance of its code's class and of RatewiseError and Error, and keeps code,
// message, retryAfterMs and skipped. And the package loads without the SDKs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
const pkg = process.env.RATEWISE_NODE_PACKAGE || join(here, '..')
const rw = require(pkg)

const classes = {
  invalid_config: 'InvalidConfigError',
  invalid_argument: 'InvalidArgumentError',
  unknown_capability: 'UnknownCapabilityError',
  unknown_provider: 'UnknownProviderError',
  unknown_permit: 'UnknownPermitError',
  no_available_provider: 'NoAvailableProviderError',
  store_unavailable: 'StoreUnavailableError',
  store_conflict: 'StoreConflictError',
}

const config = (limit = 1) => ({
  providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit, window: 'second' }] }],
  capabilities: [{ name: 'chat', providers: [{ provider: 'a' }] }],
})
const engine = () => new rw.Engine(config(), new rw.ManualClock(0))

function isClass(err, code) {
  const name = classes[code]
  assert.ok(err instanceof rw[name], `${err?.name}: ${err?.message} is not a ${name}`)
  assert.ok(err instanceof rw.RatewiseError)
  assert.ok(err instanceof Error)
  assert.equal(err.code, code)
  assert.equal(err.name, name)
  assert.ok(typeof err.message === 'string' && err.message.length > 0)
  assert.ok(err.stack.startsWith(name), err.stack.split('\n')[0])
  return true
}

test('every code has its exported class', () => {
  assert.deepEqual(Object.keys(classes).sort(), [...require(join(pkg, 'native.js')).default.errorCodes()].sort())
  for (const name of Object.values(classes)) {
    assert.equal(typeof rw[name], 'function', name)
    assert.ok(rw[name].prototype instanceof rw.RatewiseError, name)
  }
})

const sync = {
  invalid_config: [
    ['the core refuses a limit of 0', () => new rw.Engine({ providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit: 0 }] }] })],
    ['the core refuses text that is not JSON', () => rw.Engine.fromJson('{')],
    ['the JS layer refuses a BigInt', () => new rw.Engine({ providers: [{ name: 'a', limit: 1n }] })],
    ['a file that does not exist', () => rw.Engine.fromFile('/nonexistent/ratewise.json')],
  ],
  invalid_argument: [
    ['an unknown lane', () => engine().select('chat', { lane: 'vip' })],
    ['a negative estimate (addon)', () => engine().select('chat', { inputTokens: -1 })],
    ['a capability that is not a string (JS layer)', () => engine().select(42)],
    ['estimateTokens of a BigInt', () => rw.estimateTokens({ n: 1n })],
    ['statusFromHttp(700)', () => rw.statusFromHttp(700)],
  ],
  unknown_capability: [['select of an unknown capability', () => engine().select('nope')]],
  unknown_provider: [['health of an unknown provider', () => engine().health('nobody')]],
  unknown_permit: [['a second cancel', () => { const p = engine().acquire('chat'); p.cancel(); p.cancel() }]],
  no_available_provider: [['a second request in a 1-request window', () => { const e = engine(); e.acquire('chat'); e.acquire('chat') }]],
  store_unavailable: [['Redis refuses, on_error closed', () => new rw.Engine({ ...config(), store: { kind: 'redis', url: 'redis://127.0.0.1:1/0', on_error: 'closed' } })]],
}
for (const [code, cases] of Object.entries(sync)) {
  for (const [what, call] of cases) test(`${classes[code]}: ${what}`, () => assert.throws(call, (err) => isClass(err, code)))
}

test('NoAvailableProviderError keeps retryAfterMs and skipped', () => {
  const e = engine()
  e.acquire('chat')
  assert.throws(() => e.acquire('chat'), (err) => {
    isClass(err, 'no_available_provider')
    assert.equal(err.retryAfterMs, 1000)
    assert.deepEqual(err.skipped, [{ provider: 'a', reason: 'quota:requests' }])
    return true
  })
})

test('async failures reject with the classes too', async () => {
  const e = new rw.Engine(config())
  e.acquire('chat')
  // a wait that times out (the addon's callback error)
  await assert.rejects(e.acquireAsync('chat', { timeoutMs: 20 }), (err) => isClass(err, 'no_available_provider') && Array.isArray(err.skipped))
  // a decision on the thread pool
  await assert.rejects(e.acquireAsync('nope'), (err) => isClass(err, 'unknown_capability'))
  await assert.rejects(e.completeAsync(987654, { status: 'success' }), (err) => isClass(err, 'unknown_permit'))
  await assert.rejects(e.observeAsync('nobody', { status: 'success' }), (err) => isClass(err, 'unknown_provider'))
  // the JS layer's own checks, inside the promise
  await assert.rejects(e.acquireAsync('chat', { timeoutMs: 'soon' }), (err) => isClass(err, 'invalid_argument'))
})

test('an interrupted outcome is accepted and keeps the estimates charged', () => {
  const e = new rw.Engine({
    providers: [{ name: 'a', quotas: [{ dimension: 'tokens', limit: 1000, window: 'day', algorithm: 'fixed_window' }] }],
    capabilities: [{ name: 'chat', providers: [{ provider: 'a' }] }],
  })
  e.acquire('chat', { inputTokens: 100, outputTokens: 50 }).complete({ status: 'interrupted' })
  assert.equal(e.remaining('a', 'tokens'), 850)
  assert.equal(e.health('a'), 1)
})

test('the classes can be built and thrown by users, with a cause', () => {
  const cause = new Error('upstream')
  const err = new rw.NoAvailableProviderError('busy', { retryAfterMs: 5, skipped: [{ provider: 'a', reason: 'held' }] }, { cause })
  isClass(err, 'no_available_provider')
  assert.equal(err.retryAfterMs, 5)
  assert.equal(err.cause, cause)
  const bad = new rw.InvalidArgumentError('nope')
  isClass(bad, 'invalid_argument')
  const base = new rw.RatewiseError('generic', 'store_conflict')
  assert.ok(base instanceof rw.RatewiseError && !(base instanceof rw.StoreConflictError))
  assert.equal(base.code, 'store_conflict')
})

test('signal reasons and SDK errors pass through unchanged', async () => {
  const e = new rw.Engine(config())
  e.acquire('chat')
  const ac = new AbortController()
  const reason = new Error('gone')
  const p = e.acquireAsync('chat', { timeoutMs: 10_000, signal: ac.signal })
  ac.abort(reason)
  await assert.rejects(p, (err) => err === reason && !(err instanceof rw.RatewiseError))
})

test('the package loads, and wraps a client, without openai or @anthropic-ai/sdk installed', () => {
  // A child process whose resolver cannot see node_modules: only the package and its addon.
  const script = `
    const Module = require('module')
    const resolve = Module._resolveFilename
    Module._resolveFilename = function (request, ...rest) {
      if (request === 'openai' || request.startsWith('@anthropic-ai/')) throw new Error('SDK loaded: ' + request)
      return resolve.call(this, request, ...rest)
    }
    const rw = require(${JSON.stringify(pkg)})
    const engine = new rw.Engine({})
    const fake = { chat: { completions: { create() {} } }, embeddings: { create() {} }, messages: { create() {}, stream() {} } }
    rw.wrapOpenAI(fake, engine)
    rw.wrapAnthropic(fake, engine)
    const loaded = Object.keys(require.cache).filter((f) => /node_modules[\\\\/](openai|@anthropic-ai)/.test(f))
    if (loaded.length) throw new Error('loaded ' + loaded)
    console.log('ok')
  `
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'ok')
})

const redisUrl = process.env.RATEWISE_REDIS_URL
test('StoreConflictError: two engines that disagree on a shared bucket', { skip: !redisUrl && 'needs RATEWISE_REDIS_URL' }, () => {
  const store = { kind: 'redis', url: redisUrl, prefix: `node-classes-${process.pid}`, on_error: 'closed' }
  const first = new rw.Engine({ ...config(10), store })
  assert.equal(first.shared, true)
  assert.throws(() => new rw.Engine({ ...config(20), store }), (err) => isClass(err, 'store_conflict'))
})
