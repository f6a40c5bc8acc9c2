// The Node conformance runner: one test per scenario id (conformance/README.md). Reads
// RATEWISE_CONFORMANCE_DIR (default: the repository's conformance/scenarios) and, when
// RATEWISE_TRANSCRIPT names a file, writes the transcript there, scenarios in discovery order.

import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative, sep, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

import { F, canonical, parseKeepingFloats, parseLossless, plain, stringifyLossless } from './transcript.mjs'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
// The package under test: RATEWISE_NODE_PACKAGE (an installed tarball) or this folder's build.
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(here, '..'))
const dir = process.env.RATEWISE_CONFORMANCE_DIR || join(here, '..', '..', 'conformance', 'scenarios')
const CODES = new Set([
  'invalid_config', 'invalid_argument', 'unknown_capability', 'unknown_provider', 'unknown_permit',
  'no_available_provider', 'store_unavailable', 'store_conflict',
])

function files(root) {
  const out = []
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (name.endsWith('.json')) out.push(relative(root, p).split(sep).join('/'))
    }
  }
  walk(root)
  // Bytewise order of the relative paths, as every runner sorts them.
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
}

const scenarios = []
for (const rel of files(dir)) {
  for (const s of parseLossless(readFileSync(join(dir, rel), 'utf8')).scenarios ?? []) scenarios.push({ rel, s })
}
const transcript = new Map()

const skippedList = (list) => list.map((x) => ({ provider: x.provider, reason: x.reason }))

function decisionResult(d) {
  const b = d.breakdown
  const alts = d.alternatives
  return {
    provider: d.provider,
    model: d.model,
    score: new F(d.score),
    breakdown: { quota: new F(b.quota), health: new F(b.health), priority: new F(b.priority), latency: new F(b.latency), cost: new F(b.cost) },
    alternatives: alts.map((a) => a.provider),
    alternative_scores: alts.map((a) => new F(a.score)),
    skipped: skippedList(d.skipped),
  }
}

function errorResult(err) {
  if (err.code === 'no_available_provider') {
    return { error: err.code, retry_after_ms: err.retryAfterMs ?? null, skipped: skippedList(err.skipped) }
  }
  return { error: err.code }
}

function resolve(doc, pointer) {
  let node = doc
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (node !== null && typeof node === 'object' && !(node instanceof F) && Object.hasOwn(node, key)) node = node[key]
    else return null
  }
  return node
}

class Unsupported extends Error {}

function outcome(step) {
  return {
    status: step.status,
    latencyMs: step.latency_ms,
    inputTokens: step.input_tokens,
    outputTokens: step.output_tokens,
    cachedInputTokens: step.cached_input_tokens,
    cacheWriteInputTokens: step.cache_write_input_tokens,
    retryAfterMs: step.retry_after_ms,
    headers: step.headers,
  }
}

function polled(permits, r) {
  const names = new Map([...permits].map(([k, v]) => [v, k]))
  return { granted: r.granted.map((i) => names.get(i) ?? i), expired: r.expired.map((i) => names.get(i) ?? i) }
}

function runStep(engine, clock, permits, step) {
  const request = { lane: step.lane, inputTokens: step.input_tokens, outputTokens: step.output_tokens, exclude: step.exclude }
  switch (step.op) {
    case 'advance':
      clock.advance(step.ms ?? 0)
      return {}
    case 'select':
      return decisionResult(engine.select(step.capability, request))
    case 'acquire': {
      const permit = engine.acquire(step.capability, request)
      if (step.permit !== undefined) permits.set(step.permit, permit.id)
      return decisionResult(permit.decision)
    }
    case 'complete':
      return polled(permits, engine.complete(permits.get(step.permit) ?? 0, { ...outcome(step), latencyMs: step.latency_ms ?? 0 }))
    case 'cancel':
      return polled(permits, engine.cancel(permits.get(step.permit) ?? 0))
    case 'enqueue': {
      const r = engine.enqueue(step.capability, { ...request, timeoutMs: step.timeout_ms ?? 0 })
      if (step.ticket !== undefined) permits.set(step.ticket, r.ticket)
      return polled(permits, r)
    }
    case 'poll':
      return polled(permits, engine.poll())
    case 'observe':
      engine.observe(step.provider, { ...outcome(step), latencyMs: step.latency_ms ?? 0, requests: step.requests })
      return {}
    case 'headers':
      engine.syncHeaders(step.provider, step.headers ?? {})
      return {}
    case 'health':
      return { value: new F(engine.health(step.provider)) }
    case 'circuit':
      return { value: engine.circuit(step.provider) }
    case 'remaining':
      return { value: engine.remaining(step.provider, step.dimension) }
    case 'snapshot': {
      const snap = parseKeepingFloats(engine.snapshotJson())
      const value = {}
      for (const pointer of Object.keys(step.expect ?? {})) value[pointer] = resolve(snap, pointer)
      return { value }
    }
    case 'estimate':
      // The messages as the file wrote them (floats kept), as estimateTokens would serialise them.
      return { value: rw.estimateTokens(JSON.parse(stringifyLossless(step.messages))) }
    case 'upsert_provider':
      engine.upsertProvider(stringifyLossless(step.provider))
      return {}
    case 'upsert_capability':
      engine.upsertCapability(stringifyLossless(step.capability))
      return {}
    case 'remove_provider':
      engine.removeProvider(step.provider)
      return {}
    case 'remove_capability':
      engine.removeCapability(step.capability)
      return {}
    default:
      throw new Unsupported(`op '${step.op}' is not supported by this runner`)
  }
}

function matches(want, got) {
  if (want === null || typeof want === 'string' || typeof want === 'boolean') return want === got
  if (typeof want === 'number') return typeof got === 'number' && Math.abs(got - want) <= 1e-9
  if (Array.isArray(want)) return Array.isArray(got) && got.length === want.length && want.every((w, i) => matches(w, got[i]))
  const keys = Object.keys(want)
  if (keys.length === 2 && 'min' in want && 'max' in want && typeof got === 'number') return got >= want.min && got <= want.max
  return got !== null && typeof got === 'object' && keys.every((k) => matches(want[k], got[k] ?? null))
}

function check(op, expect, result) {
  const got = plain(result)
  if ('error' in got && !('error' in expect)) return 'unexpected error'
  if (op === 'snapshot') {
    for (const [pointer, want] of Object.entries(expect)) {
      if (!matches(want, got.value[pointer] ?? null)) return `${pointer}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got.value[pointer])}`
    }
    return null
  }
  for (const [key, want] of Object.entries(expect)) {
    if (!matches(want, got[key] ?? null)) return `${key}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got[key])}`
  }
  return null
}

const line = (id, op, step, result) => canonical({ op, result, scenario: id, step })

function runScenario(s) {
  const lines = []
  const failures = []
  const { start_ms: start = 0, ...setup } = s.setup ?? {}
  const clock = new rw.ManualClock(start)
  let engine
  try {
    // As JSON text, so that integers beyond 2^53 reach the core exactly.
    engine = rw.Engine.fromJson(stringifyLossless(setup), clock)
  } catch (err) {
    if (!CODES.has(err?.code)) throw err
    lines.push(line(s.id, 'construct', null, { error: err.code }))
    if (s.expect_error !== err.code) failures.push(`construction failed with ${err.code} (${err.message}), expected ${s.expect_error}`)
    return { lines, failures }
  }
  if (s.expect_error !== undefined) {
    failures.push(`construction succeeded, expected ${s.expect_error}`)
    return { lines, failures }
  }
  const permits = new Map()
  ;(s.steps ?? []).forEach((step, index) => {
    let result
    try {
      result = runStep(engine, clock, permits, step)
    } catch (err) {
      if (err instanceof Unsupported) {
        failures.push(`step ${index}: ${err.message}`)
        result = {}
      } else if (CODES.has(err?.code)) {
        result = errorResult(err)
      } else {
        throw err
      }
    }
    lines.push(line(s.id, step.op, index, result))
    const problem = check(step.op, step.expect ?? {}, result)
    if (problem) failures.push(`step ${index} (${step.op}): ${problem}; actual ${canonical(result)}`)
  })
  return { lines, failures }
}

test('scenarios are found', () => assert.ok(scenarios.length > 0, `no scenarios under ${dir}`))

scenarios.forEach(({ rel, s }, order) => {
  test(s.id, () => {
    const { lines, failures } = runScenario(s)
    transcript.set(order, lines)
    assert.deepEqual(failures, [], `${rel}: ${failures.join('\n  ')}`)
  })
})

after(() => {
  if (process.env.RATEWISE_TRANSCRIPT) {
    const text = [...transcript.keys()].sort((a, b) => a - b).flatMap((k) => transcript.get(k)).map((l) => `${l}\n`).join('')
    writeFileSync(process.env.RATEWISE_TRANSCRIPT, text)
  }
})
