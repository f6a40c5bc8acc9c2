// Waiting in real time with acquireAsync: lane order, the engine's timer, AbortSignal, timeouts.
// Order, completeness and what is held afterwards are asserted, never timings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(here, '..'))

const LANES = ['critical', 'normal', 'batch']
const lanes = LANES.map((name) => ({ name })) // no aging: the order is the lane order
const paced = () => new rw.Engine({
  providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit: 1, window_ms: 20 }] }],
  capabilities: [{ name: 'c', providers: [{ provider: 'a' }] }],
  lanes,
})
const singleSlot = () => new rw.Engine({
  providers: [{ name: 'a', quotas: [{ dimension: 'concurrency', limit: 1 }] }],
  capabilities: [{ name: 'c', providers: [{ provider: 'a' }] }],
  lanes,
})
const waiting = (engine) => LANES.reduce((n, l) => n + engine.snapshot().lanes[l].waiting, 0)
const ordered = (ranks) => ranks.every((r, i) => i === 0 || ranks[i - 1] <= r)

test('async waiters are granted in lane order by the engine timer', async () => {
  const engine = paced()
  const first = engine.acquire('c') // this window's only request
  const order = []
  const waits = Array.from({ length: 12 }, (_, i) => {
    const lane = LANES[i % 3]
    return engine.acquireAsync('c', { lane, timeoutMs: 60_000 }).then((permit) => {
      order.push([LANES.indexOf(lane), permit.id])
      permit.complete({ status: 'success' })
    })
  })
  assert.equal(waiting(engine), 12)
  // Nobody completes anything: only the timer grants, as each window refills.
  await Promise.all(waits)
  first.complete({ status: 'success' })
  assert.equal(order.length, 12)
  assert.ok(ordered(order.map((o) => o[0])), `lane order: ${order.map((o) => o[0])}`)
  assert.equal(new Set(order.map((o) => o[1])).size, 12)
})

test('completing a permit grants the next waiter', async () => {
  const engine = singleSlot()
  const held = engine.acquire('c')
  const next = engine.acquireAsync('c', { timeoutMs: 10_000, inputTokens: 5 })
  held.complete({ status: 'success' })
  const permit = await next
  assert.equal(permit.provider, 'a')
  assert.equal(engine.remaining('a', 'concurrency'), 0)
  permit.cancel()
  assert.equal(engine.remaining('a', 'concurrency'), 1)
})

test('a wait times out with no_available_provider', async () => {
  const engine = singleSlot()
  const held = engine.acquire('c')
  await assert.rejects(engine.acquireAsync('c', { timeoutMs: 30 }), (e) => e.code === 'no_available_provider' && Array.isArray(e.skipped))
  assert.equal(waiting(engine), 0)
  held.complete({ status: 'success' })
  assert.equal(engine.remaining('a', 'concurrency'), 1)
})

test('aborting a wait withdraws it and loses nothing', async () => {
  const engine = singleSlot()
  const held = engine.acquire('c')
  const ac = new AbortController()
  const p = engine.acquireAsync('c', { timeoutMs: 60_000, signal: ac.signal })
  assert.equal(waiting(engine), 1)
  ac.abort(new Error('user went away'))
  await assert.rejects(p, /user went away/)
  assert.equal(waiting(engine), 0)
  held.complete({ status: 'success' })
  assert.equal(engine.remaining('a', 'concurrency'), 1)

  // Granted, then aborted before the grant reaches JS: the permit is returned.
  const held2 = engine.acquire('c')
  const ac2 = new AbortController()
  const p2 = engine.acquireAsync('c', { timeoutMs: 60_000, signal: ac2.signal })
  held2.complete({ status: 'success' }) // grants the waiter; delivery is on a later turn
  ac2.abort()
  await assert.rejects(p2, { name: 'AbortError' })
  await sleep(10)
  assert.equal(engine.remaining('a', 'concurrency'), 1)

  // Already aborted: nothing is queued.
  await assert.rejects(engine.acquireAsync('c', { timeoutMs: 1000, signal: AbortSignal.abort() }), { name: 'AbortError' })
  assert.equal(waiting(engine), 0)
})

test('bad arguments reject with their codes', async () => {
  const engine = singleSlot()
  await assert.rejects(engine.acquireAsync('c', { timeoutMs: 0 }), { code: 'invalid_argument' })
  await assert.rejects(engine.acquireAsync('c', { timeoutMs: 1.5 }), { code: 'invalid_argument' })
  await assert.rejects(engine.acquireAsync('c', { timeoutMs: 10, signal: {} }), { code: 'invalid_argument' })
  await assert.rejects(engine.acquireAsync('nope', { timeoutMs: 10 }), { code: 'unknown_capability' })
  await assert.rejects(engine.acquireAsync('c', { timeoutMs: 10, lane: 'vip' }), { code: 'invalid_argument' })
  assert.equal(waiting(engine), 0)
  assert.equal(engine.remaining('a', 'concurrency'), 1)
})
