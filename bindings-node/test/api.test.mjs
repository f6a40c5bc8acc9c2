// The public API of the package: construction, decisions, permits, signals, errors and codes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(here, '..'))

const config = () => ({
  providers: [
    { name: 'gpt-4o', quotas: [
      { dimension: 'requests', limit: 100, window: 'minute' },
      { dimension: 'tokens', limit: 100000, window: 'minute' },
      { dimension: 'concurrency', limit: 20 },
    ] },
    { name: 'claude', quotas: [{ dimension: 'requests', limit: 50, window: 'minute' }] },
  ],
  capabilities: [{ name: 'chat', providers: [{ provider: 'gpt-4o', priority: 10 }, { provider: 'claude', priority: 8 }] }],
})
const make = () => {
  const clock = new rw.ManualClock(1_000_000)
  return { clock, engine: new rw.Engine(config(), clock) }
}

test('config as object, JSON text and file', () => {
  const clock = new rw.ManualClock(0)
  const dir = mkdtempSync(join(tmpdir(), 'ratewise-'))
  const file = join(dir, 'ratewise.json')
  writeFileSync(file, JSON.stringify(config()))
  for (const engine of [new rw.Engine(config(), clock), new rw.Engine(JSON.stringify(config()), clock),
    rw.Engine.fromJson(JSON.stringify(config()), clock), rw.Engine.fromFile(file, clock)]) {
    assert.equal(engine.select('chat').provider, 'gpt-4o')
  }
})

test('bad config names the JSON path, with a stable code', () => {
  const c = config()
  c.providers[1].quotas[0].limit = 0
  assert.throws(() => new rw.Engine(c), (err) => err instanceof Error && err.code === 'invalid_config' &&
    err.message === 'providers[1].quotas[0].limit: must be > 0')
  assert.throws(() => rw.Engine.fromFile('/nonexistent/ratewise.json'), { code: 'invalid_config' })
  assert.throws(() => rw.Engine.fromJson('{'), { code: 'invalid_config' })
  assert.throws(() => new rw.Engine({ store: { kind: 'redis', url: 'redis://127.0.0.1:1/0', on_error: 'closed' } }), { code: 'store_unavailable' })
})

test('select is a decision with lazy fields, and reserves nothing', () => {
  const { engine } = make()
  const d = engine.select('chat', { inputTokens: 100, outputTokens: 50 })
  assert.equal(d.provider, 'gpt-4o')
  assert.ok(d.score > 0 && d.score <= 1)
  assert.deepEqual(Object.keys(d.breakdown).sort(), ['cost', 'health', 'latency', 'priority', 'quota'])
  assert.deepEqual(d.alternatives.map((a) => a.provider), ['claude'])
  assert.deepEqual(d.skipped, [])
  assert.equal(engine.remaining('gpt-4o', 'requests'), 100)
})

test('exclude, lanes and unknown names', () => {
  const { engine } = make()
  const d = engine.select('chat', { exclude: ['gpt-4o'] })
  assert.equal(d.provider, 'claude')
  assert.deepEqual(d.skipped, [{ provider: 'gpt-4o', reason: 'excluded' }])
  assert.throws(() => engine.select('chat', { lane: 'vip' }), { code: 'invalid_argument' })
  assert.throws(() => engine.select('nope'), { code: 'unknown_capability' })
  assert.throws(() => engine.select('chat', { inputTokens: -1 }), { code: 'invalid_argument' })
})

test('acquire, complete with usage, second completion is unknown_permit', () => {
  const { engine } = make()
  const permit = engine.acquire('chat', { inputTokens: 1000, outputTokens: 500 })
  assert.equal(permit.provider, 'gpt-4o')
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 98500)
  permit.complete({ status: 'success', latencyMs: 120, inputTokens: 900, outputTokens: 100 })
  assert.equal(permit.done, true)
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 99000)
  assert.throws(() => permit.complete({ status: 'success' }), { code: 'unknown_permit' })
  assert.equal(engine.snapshot().providers['gpt-4o'].latency_ms, 120)
})

test('cancel refunds everything', () => {
  const { engine } = make()
  const permit = engine.acquire('chat', { inputTokens: 1000 })
  permit.cancel()
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 100000)
  assert.equal(engine.remaining('gpt-4o', 'requests'), 100)
  assert.throws(() => permit.cancel(), { code: 'unknown_permit' })
})

test('statuses as HTTP codes; bad ones are invalid_argument', () => {
  const { engine } = make()
  engine.acquire('chat').complete({ status: 529 })
  assert.deepEqual(engine.select('chat').skipped, [{ provider: 'gpt-4o', reason: 'held' }])
  assert.throws(() => engine.acquire('chat').complete({ status: 600 }), { code: 'invalid_argument' })
  assert.throws(() => engine.acquire('chat').complete({ status: 'exploded' }), { code: 'invalid_argument' })
  assert.throws(() => engine.acquire('chat').complete({ status: 429.5 }), { code: 'invalid_argument' })
})

test('a refusal carries retryAfterMs and skipped', () => {
  const clock = new rw.ManualClock(0)
  const engine = new rw.Engine({
    providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit: 1, window: 'second' }] }],
    capabilities: [{ name: 'chat', providers: [{ provider: 'a' }] }],
  }, clock)
  engine.acquire('chat')
  assert.throws(() => engine.acquire('chat'), (err) => err.code === 'no_available_provider' && err.retryAfterMs === 1000 &&
    JSON.stringify(err.skipped) === JSON.stringify([{ provider: 'a', reason: 'quota:requests' }]))
  clock.advance(1000)
  assert.equal(engine.acquire('chat').provider, 'a')
  assert.throws(() => clock.advance(-1), { code: 'invalid_argument' })
})

test('headers: plain object, fetch Headers, Map, pairs; malformed values are counted', () => {
  const { engine } = make()
  engine.syncHeaders('gpt-4o', { 'x-ratelimit-remaining-tokens': '5000' })
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 5000)
  engine.syncHeaders('gpt-4o', new Headers({ 'X-RateLimit-Remaining-Requests': '7' }))
  assert.equal(engine.remaining('gpt-4o', 'requests'), 7)
  engine.syncHeaders('gpt-4o', new Map([['x-ratelimit-limit-tokens', '8000']]))
  assert.equal(engine.snapshot().providers['gpt-4o'].quotas[1].learned_limit, 8000)
  engine.syncHeaders('gpt-4o', [['retry-after', '3']])
  assert.equal(engine.snapshot().providers['gpt-4o'].held_ms, 3000)
  engine.syncHeaders('gpt-4o', { 'x-ratelimit-remaining-tokens': 'lots' })
  assert.equal(engine.snapshot().counters.header_errors, 1)
  assert.throws(() => engine.syncHeaders('gpt-4o', 42), { code: 'invalid_argument' })
  assert.throws(() => engine.syncHeaders('nobody', {}), { code: 'unknown_provider' })
})

test('headers cross as one string: several at once, empty values, line breaks inside one', () => {
  const { engine } = make()
  engine.syncHeaders('gpt-4o', [['x-request-id', ''], ['x-ratelimit-remaining-tokens', '4000'], ['server', 'a:b'],
    ['x-ratelimit-remaining-requests', '9']])
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 4000)
  assert.equal(engine.remaining('gpt-4o', 'requests'), 9)
  // A line break cannot be in an HTTP header: read as a space, it takes nothing apart.
  engine.syncHeaders('gpt-4o', { 'x-note': 'one\ntwo', 'x-ratelimit-remaining-tokens': '3000\n' })
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 3000)
  engine.syncHeaders('gpt-4o', { 'x-ratelimit-remaining-tokens\nx-ratelimit-remaining-requests': '1' })
  assert.equal(engine.remaining('gpt-4o', 'requests'), 9)
  assert.equal(engine.snapshot().counters.header_errors, 0)
  engine.syncHeaders('gpt-4o', {})
  engine.syncHeaders('gpt-4o', [])
})

test('complete with a 429 response: headers hold without a penalty', () => {
  const { engine } = make()
  const permit = engine.acquire('chat', { inputTokens: 500 })
  permit.complete({ status: 429, headers: new Headers({ 'retry-after': '20', 'x-ratelimit-remaining-tokens': '42' }) })
  assert.equal(engine.health('gpt-4o'), 1)
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 42)
  assert.equal(engine.snapshot().providers['gpt-4o'].held_ms, 20000)
})

test('observe, health, circuit, snapshot', () => {
  const { engine, clock } = make()
  engine.observe('claude', { status: 'success', latencyMs: 80, requests: 3 })
  assert.equal(engine.remaining('claude', 'requests'), 47)
  for (let i = 0; i < 3; i++) engine.observe('gpt-4o', { status: 'server_error' })
  assert.equal(engine.circuit('gpt-4o'), 'open')
  assert.ok(Math.abs(engine.health('gpt-4o') - 0.7) < 1e-12)
  clock.advance(30000)
  assert.equal(engine.circuit('gpt-4o'), 'half_open')
  const snap = engine.snapshot()
  assert.deepEqual(snap.store, { kind: 'memory', mode: 'normal' })
  assert.equal(snap.providers['gpt-4o'].quotas[0].key, 'gpt-4o/requests/60000')
  assert.deepEqual(JSON.parse(engine.snapshotJson()).counters, snap.counters)
  assert.equal(engine.remaining('claude', 'tokens'), null)
  assert.throws(() => engine.remaining('claude', 'bytes'), { code: 'invalid_argument' })
  assert.throws(() => engine.observe('nobody', { status: 'success' }), { code: 'unknown_provider' })
})

test('run-time configuration', () => {
  const { engine } = make()
  engine.upsertProvider({ name: 'mini', quotas: [{ dimension: 'requests', limit: 10 }] })
  engine.upsertCapability(JSON.stringify({ name: 'cheap', providers: [{ provider: 'mini' }] }))
  assert.equal(engine.select('cheap').provider, 'mini')
  engine.removeProvider('mini')
  assert.throws(() => engine.select('cheap'), (err) => err.code === 'no_available_provider' &&
    err.skipped[0].reason === 'unregistered')
  engine.removeCapability('cheap')
  assert.throws(() => engine.removeCapability('cheap'), { code: 'unknown_capability' })
  assert.throws(() => engine.upsertCapability({ name: 'x', providers: [{ provider: 'ghost' }] }), { code: 'invalid_config' })
})

test('statusFromHttp', () => {
  assert.equal(rw.statusFromHttp(200), 'success')
  assert.equal(rw.statusFromHttp(429), 'rate_limited')
  assert.equal(rw.statusFromHttp(429, 'insufficient_quota'), 'forbidden')
  assert.equal(rw.statusFromHttp(529), 'overloaded')
  assert.throws(() => rw.statusFromHttp(99), { code: 'invalid_argument' })
})

test('system clock engine', () => {
  const engine = new rw.Engine(config())
  assert.ok(engine.nowMs() > 1_700_000_000_000)
})

test('provider names beyond ASCII survive the trip (the decision string counts UTF-16 units)', () => {
  const names = ['modèle-é', 'fusée-🚀', 'a:b:c', '長い名前']
  const engine = new rw.Engine({
    providers: names.map((name) => ({ name })),
    capabilities: [{ name: 'chat', providers: names.map((provider, i) => ({ provider, priority: 10 - i })) }],
  }, new rw.ManualClock(0))
  const d = engine.select('chat', { exclude: [names[0]] })
  assert.equal(d.provider, names[1])
  assert.deepEqual(d.alternatives.map((a) => a.provider), names.slice(2))
  assert.deepEqual(d.skipped, [{ provider: names[0], reason: 'excluded' }])
  const p = engine.acquire('chat')
  assert.equal(p.provider, names[0])
  assert.ok(Number.isInteger(p.id) && p.id > 0)
})

test('wrong argument types are invalid_argument, not napi errors', () => {
  const { engine } = make()
  assert.throws(() => engine.select(42), { code: 'invalid_argument' })
  assert.throws(() => engine.select('chat', { inputTokens: '100' }), { code: 'invalid_argument' })
  assert.throws(() => engine.select('chat', { exclude: 'gpt-4o' }), { code: 'invalid_argument' })
  assert.throws(() => engine.observe('gpt-4o', { status: true }), { code: 'invalid_argument' })
  assert.throws(() => engine.observe('gpt-4o'), { code: 'invalid_argument' })
  assert.throws(() => engine.acquire('chat').complete({ status: 'success', inputTokens: 1.5 }), { code: 'invalid_argument' })
  assert.throws(() => new rw.Engine({ weight: 10n }), { code: 'invalid_config' })
})

test('waiting: enqueue, poll, nextWake, a ticket completed by id', () => {
  const clock = new rw.ManualClock(0)
  const engine = new rw.Engine({
    providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit: 1, window: 'second' }] }],
    capabilities: [{ name: 'chat', providers: [{ provider: 'a' }] }],
  }, clock)
  engine.acquire('chat')
  assert.equal(engine.nextWake(), null)
  const { ticket, granted, expired } = engine.enqueue('chat', { timeoutMs: 5000 })
  assert.deepEqual([granted, expired], [[], []])
  assert.equal(engine.nextWake(), 1000)
  assert.throws(() => engine.acquire('chat'), (err) => err.code === 'no_available_provider' && err.skipped[0].reason === 'queued')
  clock.advance(1000)
  assert.deepEqual(engine.poll(), { granted: [ticket], expired: [] })
  assert.deepEqual(engine.complete(ticket, { status: 'success' }), { granted: [], expired: [] })
  assert.throws(() => engine.enqueue('chat', { timeoutMs: 0 }), { code: 'invalid_argument' })
  assert.throws(() => engine.enqueue('chat', {}), { code: 'invalid_argument' })
})

test('the *Async forms run on the thread pool and answer as the sync calls do', async () => {
  const { engine } = make()
  assert.equal(engine.shared, false)
  const permit = await engine.acquireAsync('chat', { inputTokens: 100, outputTokens: 50 })
  assert.equal(permit.provider, 'gpt-4o')
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 100000 - 150)
  await permit.completeAsync({ status: 'success', inputTokens: 80, outputTokens: 20 })
  assert.equal(permit.done, true)
  assert.equal(engine.remaining('gpt-4o', 'tokens'), 100000 - 100)
  const second = await engine.acquireAsync('chat')
  assert.deepEqual(await engine.cancelAsync(second.id), { granted: [], expired: [] })
  await assert.rejects(engine.completeAsync(second.id, { status: 'success' }), { code: 'unknown_permit' })
  await assert.rejects(engine.acquireAsync('nope'), { code: 'unknown_capability' })
  await assert.rejects(engine.acquireAsync('chat', { inputTokens: -1 }), { code: 'invalid_argument' })
  await engine.observeAsync('claude', { status: 429, retryAfterMs: 1000 })
  assert.equal(engine.snapshot().providers.claude.held_ms, 1000)
  await engine.syncHeadersAsync('gpt-4o', { 'x-ratelimit-remaining-requests': '7' })
  assert.equal(engine.remaining('gpt-4o', 'requests'), 7)
})

test('a Redis store: shared by two engines, off the event loop', { skip: !process.env.RATEWISE_REDIS_URL }, async () => {
  const store = { kind: 'redis', url: process.env.RATEWISE_REDIS_URL, prefix: `node-test-${process.pid}`, on_error: 'closed' }
  const cfg = { ...config(), store }
  const one = new rw.Engine(cfg)
  const two = new rw.Engine(cfg)
  assert.equal(one.shared, true)
  assert.equal(one.snapshot().store.kind, 'redis')
  const permits = await Promise.all(Array.from({ length: 10 }, () => one.acquireAsync('chat', { inputTokens: 10 })))
  const p = await two.acquireAsync('chat')
  // A newcomer sees all eleven requests, whichever engine and provider took them.
  const three = new rw.Engine(cfg)
  const used = (e) => (100 - e.remaining('gpt-4o', 'requests')) + (50 - e.remaining('claude', 'requests'))
  assert.equal(used(three), 11)
  assert.equal(two.remaining(p.provider, 'requests'), three.remaining(p.provider, 'requests'))
  await Promise.all([...permits, p].map((x) => x.completeAsync({ status: 'success', latencyMs: 5 })))
})

test('NaN or Infinity in a config object is invalid_config naming its path, not a silent default', () => {
  assert.throws(
    () => new rw.Engine({ providers: [{ name: 'a' }], capabilities: [{ name: 'c', providers: [{ provider: 'a', priority: NaN }] }] }),
    (e) => e.code === 'invalid_config' && e.message.includes('capabilities[0].providers[0].priority: must be a finite number'),
  )
  const engine = new rw.Engine({ providers: [{ name: 'a' }] })
  assert.throws(
    () => engine.upsertProvider({ name: 'a', quotas: [{ dimension: 'tokens', limit: Infinity }] }),
    (e) => e.code === 'invalid_config' && e.message.includes('provider.quotas[0].limit: must be a finite number'),
  )
})

test('a key written twice in JSON text is invalid_config naming its path', () => {
  const engine = new rw.Engine({ providers: [{ name: 'a' }] })
  assert.throws(
    () => engine.upsertProvider('{"name": "a", "quotas": [], "quotas": []}'),
    (e) => e.code === 'invalid_config' && e.message.includes('provider.quotas: duplicate key'),
  )
})
