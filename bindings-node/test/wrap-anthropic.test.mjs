// wrapAnthropic with the real `@anthropic-ai/sdk` against the mock provider (tests/mockllm):
// usage settled from a Message, from `stream: true` events and from `messages.stream()` (the
// SDK's MessageStream), cache tokens, a 400 sent once, 529 moved to the other deployment, cut and
// abandoned streams charged. Skipped when the SDK or python3 is missing, unless
// RATEWISE_REQUIRE_SDKS=1 (then those fail).
import { test, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(here, '..'))
const MOCK = join(here, '..', '..', 'tests', 'mockllm', 'mockllm.py')

function missing() {
  try {
    require.resolve('@anthropic-ai/sdk')
  } catch {
    return 'the @anthropic-ai/sdk SDK is not installed (npm install in bindings-node)'
  }
  if (spawnSync('python3', ['--version']).status !== 0) return 'python3 is needed for tests/mockllm'
  return null
}
const why = missing()
if (why && process.env.RATEWISE_REQUIRE_SDKS === '1') throw new Error(`RATEWISE_REQUIRE_SDKS=1 but ${why}`)
const skip = why ? `skipped: ${why}` : false
const Anthropic = why ? null : require('@anthropic-ai/sdk')

/** Starts tests/mockllm/mockllm.py on a free port; resolves when it prints {"port": N}. */
async function startMock(config) {
  const child = spawn('python3', [MOCK, '--port', '0', '--config', JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)).port)
    })
    child.once('exit', (code) => reject(new Error(`mockllm exited with ${code}`)))
  })
  const url = `http://127.0.0.1:${port}`
  const post = (path, body) => fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) }).then((r) => r.json())
  return {
    url,
    stats: () => fetch(url + '/_mock/stats').then((r) => r.json()),
    faults: (spec) => post('/_mock/faults', spec),
    reset: () => post('/_mock/reset'),
    stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM') }),
  }
}

const models = {
  'claude-a': { api: 'anthropic', latency_ms: 2, output_tokens: 20 },
  'claude-b': { api: 'anthropic', latency_ms: 2, output_tokens: 20 },
}
let mock
before(async () => { if (!skip) mock = await startMock({ models }) })
after(async () => { if (mock) await mock.stop() })
beforeEach(async () => { if (mock) await mock.reset() })

// Day-long fixed windows: no refill during a test, so `remaining` shows exactly what was charged.
const L = 1_000_000
const q = (dimension, extra) => ({ dimension, limit: L, window: 'day', algorithm: 'fixed_window', ...extra })
const quotas = [q('input_tokens', { count_cached: false }), q('output_tokens')]
const engineFor = () => new rw.Engine({
  providers: [
    { name: 'primary', model: 'claude-a', quotas },
    { name: 'secondary', model: 'claude-b', quotas },
  ],
  capabilities: [{ name: 'chat', providers: [{ provider: 'primary', priority: 10 }, { provider: 'secondary', priority: 5 }] }],
})
const sdk = () => new Anthropic({ apiKey: 'sk-ant-test', baseURL: mock.url })
const system = 'You are terse.'
const messages = [{ role: 'user', content: 'Say something about rate limits, briefly.' }]
const body = { model: 'chat', system, messages, max_tokens: 50 }
const usedIn = (engine, p = 'primary') => L - engine.remaining(p, 'input_tokens')
const usedOut = (engine, p = 'primary') => L - engine.remaining(p, 'output_tokens')
const inFlight = (engine, p = 'primary') => engine.snapshot().providers[p].in_flight
const estimate = () => rw.estimateTokens({ system, messages })

test('a Message settles its usage, cache reads as cached input', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  const m = await client.messages.create({ ...body, metadata: { mock_cached: 5 } })
  assert.equal(m.model, 'claude-a')
  assert.equal(m.type, 'message')
  const u = m.usage
  assert.equal(u.cache_read_input_tokens, 5)
  // input settled = input_tokens + cache reads + cache writes; count_cached: false leaves the reads out
  assert.equal(usedIn(engine), u.input_tokens + u.cache_creation_input_tokens)
  assert.equal(usedOut(engine), u.output_tokens)
  assert.equal(inFlight(engine), 0)
  assert.equal((await mock.stats()).models['claude-a'].received, 1)
})

test('cache writes reach the engine apart: a cost quota prices them at cache_write_input_per_mtok', { skip }, async () => {
  const price = { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, cache_write_input_per_mtok: 3.75 }
  const engine = new rw.Engine({
    providers: [{ name: 'primary', model: 'claude-a', price, quotas: [q('cost'), q('input_tokens', { count_cached: false })] }],
    capabilities: [{ name: 'chat', providers: [{ provider: 'primary' }] }],
  })
  const client = rw.wrapAnthropic(sdk(), engine)
  const metadata = { mock_cached: 4, mock_cache_write: 6 }
  const m = await client.messages.create({ ...body, metadata })
  const u = m.usage
  assert.deepEqual([u.cache_read_input_tokens, u.cache_creation_input_tokens], [4, 6])
  // ceil((input_tokens·3 + 4·0.3 + 6·3.75 + output·15) µUSD), in pico-USD per token
  const cost = Math.ceil((u.input_tokens * 3e6 + 4 * 3e5 + 6 * 3.75e6 + u.output_tokens * 15e6) / 1e6)
  assert.equal(L - engine.remaining('primary', 'cost'), cost)
  // count_cached: false leaves the reads out, never the writes
  assert.equal(usedIn(engine), u.input_tokens + 6)
  const stream = await client.messages.create({ ...body, metadata, stream: true })
  for await (const event of stream) void event
  assert.equal(L - engine.remaining('primary', 'cost'), 2 * cost)
})

test('stream: true returns the SDK\'s events and settles message_start + message_delta usage', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  const stream = await client.messages.create({ ...body, stream: true })
  const types = []
  for await (const event of stream) types.push(event.type)
  assert.equal(types[0], 'message_start')
  assert.equal(types.at(-1), 'message_stop')
  const stats = (await mock.stats()).models['claude-a']
  assert.equal(usedIn(engine), stats.input_tokens_charged)
  assert.equal(usedOut(engine), stats.output_tokens_charged)
  assert.equal(stats.output_tokens_charged, 20)
  assert.equal(inFlight(engine), 0)
})

test('messages.stream() is the SDK\'s MessageStream: text events, finalMessage, settled usage', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  const stream = client.messages.stream(body)
  let text = ''
  stream.on('text', (t) => { text += t })
  const final = await stream.finalMessage()
  assert.equal(final.model, 'claude-a')
  assert.ok(text.startsWith('tok0 '), text)
  assert.equal(usedIn(engine), final.usage.input_tokens + final.usage.cache_creation_input_tokens + final.usage.cache_read_input_tokens)
  assert.equal(usedOut(engine), final.usage.output_tokens)
  assert.equal(inFlight(engine), 0)
})

test('messages.stream() iterates events too', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  const types = []
  for await (const event of client.messages.stream(body)) types.push(event.type)
  assert.ok(types.includes('content_block_delta') && types.at(-1) === 'message_stop', types.join())
  assert.equal(inFlight(engine), 0)
  assert.equal(usedOut(engine), 20)
})

test('a 400 is sent once and thrown as the SDK\'s BadRequestError', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  await assert.rejects(client.messages.create({ ...body, temperature: 1.5 }), (err) => err instanceof Anthropic.BadRequestError && err.status === 400)
  const stats = await mock.stats()
  assert.equal(stats.models['claude-a'].received, 1)
  assert.equal(stats.models['claude-b'].received, 0)
  assert.equal(usedIn(engine), 0)
})

test('529 overloaded moves to the second deployment', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  await mock.faults({ model: 'claude-a', status: 529, count: 100 })
  const results = await Promise.all(Array.from({ length: 6 }, () => client.messages.create(body)))
  assert.ok(results.every((m) => m.model === 'claude-b'))
  const stats = await mock.stats()
  const storms = stats.models['claude-a'].status['529'] ?? 0
  assert.ok(storms >= 1 && storms <= 10, `${storms} 529s`)
  assert.ok(engine.snapshot().providers.primary.held_ms > 0)
})

test('messages.stream() retries a 529 before its first event', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  await mock.faults({ model: 'claude-a', status: 529, count: 1 })
  const final = await client.messages.stream(body).finalMessage()
  assert.equal(final.model, 'claude-b')
})

test('a cut stream keeps the input seen and the output estimate charged', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  await mock.faults({ model: 'claude-a', cut_stream_after: 4, count: 1 })
  const stream = await client.messages.create({ ...body, stream: true })
  let start = null
  await assert.rejects((async () => { for await (const e of stream) if (e.type === 'message_start') start = e.message.usage })())
  assert.ok(start, 'message_start arrived before the cut')
  assert.equal(usedIn(engine), start.input_tokens + start.cache_read_input_tokens + start.cache_creation_input_tokens)
  assert.equal(usedOut(engine), 50) // no message_delta: the estimate (max_tokens) stays
  assert.equal(inFlight(engine), 0)
  assert.equal(engine.health('primary'), 1)
  const stats = await mock.stats()
  assert.equal(stats.models['claude-a'].streams_cut, 1)
  assert.equal(stats.models['claude-b'].received, 0)
})

test('an abandoned stream settles interrupted', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  const stream = await client.messages.create({ ...body, stream: true })
  for await (const event of stream) if (event.type === 'content_block_delta') break
  assert.equal(inFlight(engine), 0)
  assert.equal(usedOut(engine), 50)
  assert.ok(usedIn(engine) > 0 && usedIn(engine) < estimate() + 1000)
})

test('MessageStream.abort() settles interrupted', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  await mock.faults({ model: 'claude-a', chunk_ms: 20 })
  const stream = client.messages.stream(body)
  await new Promise((resolve) => stream.on('text', resolve))
  stream.abort()
  await assert.rejects(stream.finalMessage(), (err) => err instanceof Anthropic.APIUserAbortError)
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(inFlight(engine), 0)
  assert.equal(usedOut(engine), 50)
})

test('messages.stream(): a 400 is sent once; the SDK reports it as its own error', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapAnthropic(sdk(), engine)
  await assert.rejects(client.messages.stream({ ...body, temperature: 1.5 }).finalMessage(), (err) => err instanceof Anthropic.BadRequestError)
  assert.equal((await mock.stats()).models['claude-a'].received, 1)
  assert.equal(inFlight(engine), 0)
})

test('messages.stream(): no permit in time arrives as the SDK\'s error, caused by NoAvailableProviderError', { skip }, async () => {
  const engine = new rw.Engine({
    providers: [{ name: 'p', model: 'claude-a', quotas: [{ dimension: 'concurrency', limit: 1 }] }],
    capabilities: [{ name: 'chat', providers: [{ provider: 'p' }] }],
  })
  const holder = engine.acquire('chat')
  const client = rw.wrapAnthropic(sdk(), engine, { timeoutMs: 50 })
  await assert.rejects(client.messages.stream(body).finalMessage(), (err) => err instanceof Anthropic.AnthropicError && err.cause instanceof rw.NoAvailableProviderError)
  await assert.rejects(client.messages.create(body), rw.NoAvailableProviderError)
  holder.cancel()
  assert.equal((await mock.stats()).models['claude-a'].received, 0)
})
