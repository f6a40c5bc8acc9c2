// Every stable error code of the core (ratewise::Error::CODES, exposed by the addon as
// errorCodes()) reaches JS as its own `err.code`: each is produced here by a real failure, and the
// published ErrorCode type lists each exactly once. A code added to the core fails this file until
// it gets a producer below (and a place in ErrorCode, src-ts/ratewise.ts).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
const pkg = process.env.RATEWISE_NODE_PACKAGE || join(here, '..')
const rw = require(pkg)
// The native layer, as published (native.js loads the addon; it is in the package's files).
const native = require(join(pkg, 'native.js')).default
const redisUrl = process.env.RATEWISE_REDIS_URL

const config = (limit = 1) => ({
  providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit, window: 'second' }] }],
  capabilities: [{ name: 'chat', providers: [{ provider: 'a' }] }],
})
const engine = () => new rw.Engine(config(), new rw.ManualClock(0))

// For each code, calls that must fail with it: from the core, and from the JS layer's own checks
// where it has some. Each is named, so that a failure says which one.
const producers = {
  invalid_config: {
    'a limit of 0 (core)': () => new rw.Engine({ providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit: 0 }] }] }),
    'JSON that does not parse (core)': () => rw.Engine.fromJson('{'),
    'a config JSON.stringify refuses (JS layer)': () => new rw.Engine({ providers: [{ name: 'a', limit: 1n }] }),
  },
  invalid_argument: {
    'an unknown lane (core)': () => engine().select('chat', { lane: 'vip' }),
    'a negative token estimate (addon)': () => engine().select('chat', { inputTokens: -1 }),
    'a capability that is not a string (JS layer)': () => engine().select(42),
  },
  unknown_capability: {
    'select of an unknown capability': () => engine().select('nope'),
  },
  unknown_provider: {
    'observe of an unknown provider': () => engine().observe('nobody', { status: 'success' }),
  },
  unknown_permit: {
    'cancel of an id never issued': () => engine().cancel(424242),
    'a second completion': () => {
      const p = engine().acquire('chat')
      p.complete({ status: 'success' })
      p.complete({ status: 'success' })
    },
  },
  no_available_provider: {
    'a second request in a 1-request window': () => {
      const e = engine()
      e.acquire('chat')
      e.acquire('chat')
    },
  },
  store_unavailable: {
    // Port 1 refuses the connection: no Redis server needed.
    'a Redis store that refuses, on_error closed': () =>
      new rw.Engine({ ...config(), store: { kind: 'redis', url: 'redis://127.0.0.1:1/0', on_error: 'closed' } }),
  },
}
// Codes that need a Redis server: produced in the test at the end when RATEWISE_REDIS_URL is set.
const needsRedis = ['store_conflict']

const codes = native.errorCodes()

test('the addon lists the core codes, each once', () => {
  assert.ok(Array.isArray(codes) && codes.length >= 8, `errorCodes() returned ${JSON.stringify(codes)}`)
  assert.ok(codes.every((c) => typeof c === 'string' && /^[a-z_]+$/.test(c)), JSON.stringify(codes))
  assert.equal(new Set(codes).size, codes.length, `duplicate codes in ${JSON.stringify(codes)}`)
})

test('every core code has a producer here, and every producer a core code', () => {
  const covered = [...Object.keys(producers), ...needsRedis]
  assert.deepEqual([...covered].sort(), [...codes].sort())
  assert.equal(new Set(covered).size, covered.length)
})

for (const [code, cases] of Object.entries(producers)) {
  for (const [what, call] of Object.entries(cases)) {
    test(`${code}: ${what}`, () => {
      assert.throws(call, (err) => {
        assert.ok(err instanceof Error, `not an Error: ${err}`)
        assert.equal(err.code, code, `${what}: ${err.message}`)
        assert.equal(typeof err.message, 'string')
        assert.ok(err.message.length > 0)
        return true
      })
    })
  }
}

test('the published ErrorCode type lists every core code exactly once', () => {
  const dts = readFileSync(join(pkg, 'ratewise.d.ts'), 'utf8')
  const decl = /export type ErrorCode =([^;]*);/.exec(dts)
  assert.ok(decl, 'no `export type ErrorCode = ...;` in ratewise.d.ts')
  const listed = [...decl[1].matchAll(/'([^']*)'/g)].map((m) => m[1])
  assert.equal(new Set(listed).size, listed.length, `ErrorCode lists a code twice: ${listed}`)
  assert.deepEqual([...listed].sort(), [...codes].sort())
})

test('store_conflict: two engines that disagree on a shared bucket', { skip: !redisUrl && 'needs RATEWISE_REDIS_URL' }, () => {
  const store = { kind: 'redis', url: redisUrl, prefix: `node-codes-${process.pid}`, on_error: 'closed' }
  const first = new rw.Engine({ ...config(10), store })
  assert.equal(first.shared, true)
  assert.throws(() => new rw.Engine({ ...config(20), store }), (err) => {
    assert.ok(err instanceof Error)
    assert.equal(err.code, 'store_conflict', err.message)
    return true
  })
})
