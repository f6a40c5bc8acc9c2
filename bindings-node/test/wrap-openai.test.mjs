// wrapOpenAI with the real `openai` SDK against the mock provider (tests/mockllm): usage settled
// from JSON and streams, a 400 sent once, 529 storms and 429 holds moved to the other
// deployment, cut and abandoned streams charged, aborts. Skipped when the SDK or python3 is
// missing, unless RATEWISE_REQUIRE_SDKS=1 (then those fail).
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
    require.resolve('openai')
  } catch {
    return 'the openai SDK is not installed (npm install in bindings-node)'
  }
  if (spawnSync('python3', ['--version']).status !== 0) return 'python3 is needed for tests/mockllm'
  return null
}
const why = missing()
if (why && process.env.RATEWISE_REQUIRE_SDKS === '1') throw new Error(`RATEWISE_REQUIRE_SDKS=1 but ${why}`)
const skip = why ? `skipped: ${why}` : false
const OpenAI = why ? null : require('openai')

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
  'gpt-a': { api: 'openai', latency_ms: 2, output_tokens: 20 },
  'gpt-b': { api: 'openai', latency_ms: 2, output_tokens: 20 },
  'emb-a': { api: 'openai' },
}
let mock
before(async () => { if (!skip) mock = await startMock({ models }) })
after(async () => { if (mock) await mock.stop() })
beforeEach(async () => { if (mock) await mock.reset() })

// A day-long fixed window: no refill during a test, so `remaining` shows exactly what was charged.
const L = 1_000_000
const tokens = { dimension: 'tokens', limit: L, window: 'day', algorithm: 'fixed_window' }
const engineFor = (extra = {}) => new rw.Engine({
  providers: [
    { name: 'primary', model: 'gpt-a', quotas: [tokens], ...extra.primary },
    { name: 'secondary', model: 'gpt-b', quotas: [tokens], ...extra.secondary },
    { name: 'embedder', model: 'emb-a', quotas: [tokens] },
  ],
  capabilities: [
    { name: 'chat', providers: [{ provider: 'primary', priority: 10 }, { provider: 'secondary', priority: 5 }] },
    { name: 'embed', providers: [{ provider: 'embedder' }] },
  ],
  ...extra.engine,
})
const sdk = (opts = {}) => new OpenAI({ apiKey: 'sk-test', baseURL: `${mock.url}/v1`, ...opts })
const messages = [{ role: 'user', content: 'Say something about rate limits, briefly.' }]
const used = (engine, provider) => L - engine.remaining(provider, 'tokens')
const inFlight = (engine, provider) => engine.snapshot().providers[provider].in_flight

test('a JSON call goes to permit.model and settles its reported usage', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  const completion = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50 })
  assert.equal(completion.model, 'gpt-a')
  assert.equal(completion.object, 'chat.completion')
  const { prompt_tokens, completion_tokens } = completion.usage
  assert.equal(used(engine, 'primary'), prompt_tokens + completion_tokens)
  assert.equal(inFlight(engine, 'primary'), 0)
  const stats = (await mock.stats()).models['gpt-a']
  assert.equal(stats.received, 1)
  assert.equal(stats.input_tokens_charged + stats.output_tokens_charged, prompt_tokens + completion_tokens)
})

test('cached prompt tokens are reported as cachedInputTokens', { skip }, async () => {
  const engine = new rw.Engine({
    providers: [{ name: 'p', model: 'gpt-a', quotas: [{ ...tokens, dimension: 'input_tokens', count_cached: false }] }],
    capabilities: [{ name: 'chat', providers: [{ provider: 'p' }] }],
  })
  const client = rw.wrapOpenAI(sdk(), engine)
  const c = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 5, metadata: { mock_cached: '4' } })
  const cached = c.usage.prompt_tokens_details.cached_tokens
  assert.ok(cached > 0, `mock reported ${cached} cached tokens`)
  assert.equal(L - engine.remaining('p', 'input_tokens'), c.usage.prompt_tokens - cached)
})

test('a stream hides the usage chunk it asked for, and settles that usage at its end', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50, stream: true })
  assert.equal(stream.provider, 'primary')
  assert.equal(stream.model, 'gpt-a')
  assert.equal(inFlight(engine, 'primary'), 1)
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  assert.ok(chunks.length > 3)
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.choices.length > 0), 'a usage-only chunk reached the caller')
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop')
  const stats = (await mock.stats()).models['gpt-a']
  assert.equal(used(engine, 'primary'), stats.input_tokens_charged + stats.output_tokens_charged)
  assert.equal(inFlight(engine, 'primary'), 0)
  assert.equal(engine.health('primary'), 1)
})

test('a stream whose caller asked for usage keeps its usage chunk', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 7, stream: true, stream_options: { include_usage: true } })
  let usage = null
  for await (const chunk of stream) if (chunk.usage) usage = chunk.usage
  assert.ok(usage, 'no usage chunk')
  assert.equal(used(engine, 'primary'), usage.prompt_tokens + usage.completion_tokens)
})

test('embeddings settle their prompt tokens', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  const r = await client.embeddings.create({ model: 'embed', input: ['one text', 'and another one'] })
  assert.equal(r.data.length, 2)
  assert.equal(used(engine, 'embedder'), r.usage.prompt_tokens)
})

test('a 400 is sent exactly once and thrown as the SDK\'s own BadRequestError', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  await assert.rejects(
    client.chat.completions.create({ model: 'chat', messages, max_tokens: 50, temperature: 3 }),
    (err) => err instanceof OpenAI.BadRequestError && err.status === 400,
  )
  const stats = await mock.stats()
  assert.equal(stats.models['gpt-a'].received, 1)
  assert.equal(stats.models['gpt-b'].received, 0)
  assert.equal(used(engine, 'primary'), 0) // client_error: the provider did no work, tokens refunded
  assert.equal(inFlight(engine, 'primary'), 0)
})

test('the SDK client\'s own retries are off: a 429 is seen by ratewise once per attempt', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk({ maxRetries: 5 }), engine, { maxAttempts: 1 })
  await mock.faults({ model: 'gpt-a', status: 429, count: 5 })
  await assert.rejects(client.chat.completions.create({ model: 'chat', messages }), (err) => err instanceof OpenAI.RateLimitError)
  assert.equal((await mock.stats()).models['gpt-a'].received, 1)
})

test('a 529 storm on the primary moves traffic to the second deployment and loses nothing', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  await mock.faults({ model: 'gpt-a', status: 529, count: 1000 })
  const N = 40
  let next = 0
  const results = []
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < N) {
      next++
      results.push(await client.chat.completions.create({ model: 'chat', messages, max_tokens: 10 }))
    }
  }))
  assert.equal(results.length, N)
  assert.ok(results.every((r) => r.model === 'gpt-b'))
  const stats = await mock.stats()
  const storms = stats.models['gpt-a'].status['529'] ?? 0
  assert.ok(storms >= 1 && storms <= 10, `${storms} 529s before traffic moved`)
  assert.equal(stats.models['gpt-b'].ok, N)
  assert.ok(engine.snapshot().providers.primary.held_ms > 0, 'the primary is held')
  assert.equal(used(engine, 'primary'), 0) // overloaded: no work, nothing charged
})

test('a 429 with retry-after: 20 holds the primary and the call moves at once', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  await mock.faults({ model: 'gpt-a', status: 429, retry_after_s: 20, count: 1 })
  const t0 = Date.now()
  const r = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 10 })
  const elapsed = Date.now() - t0
  assert.equal(r.model, 'gpt-b')
  assert.ok(elapsed < 2000, `took ${elapsed} ms`)
  const held = engine.snapshot().providers.primary.held_ms
  assert.ok(held > 15_000 && held <= 20_000, `held ${held} ms`)
  const stats = await mock.stats()
  assert.deepEqual(stats.models['gpt-a'].status, { 429: 1 })
  assert.equal(stats.models['gpt-b'].ok, 1)
})

test('maxAttempts bounds the attempts; the last SDK error is thrown', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine, { maxAttempts: 2 })
  await mock.faults([{ model: 'gpt-a', status: 500, count: 10 }, { model: 'gpt-b', status: 500, count: 10 }])
  await assert.rejects(client.chat.completions.create({ model: 'chat', messages }), (err) => err instanceof OpenAI.InternalServerError)
  const stats = await mock.stats()
  assert.equal(stats.models['gpt-a'].received + stats.models['gpt-b'].received, 2)
})

test('a stream cut mid-way is thrown, charged (not refunded) and never retried', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  await mock.faults({ model: 'gpt-a', cut_stream_after: 3, count: 1 })
  const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50, stream: true })
  const seen = []
  await assert.rejects((async () => { for await (const c of stream) seen.push(c) })())
  assert.ok(seen.length >= 1 && seen.length <= 3, `${seen.length} chunks before the cut`)
  // interrupted, no usage seen: the estimates stay charged
  assert.equal(used(engine, 'primary'), rw.estimateTokens(messages) + 50)
  assert.equal(inFlight(engine, 'primary'), 0)
  assert.equal(engine.health('primary'), 1) // an interrupted call says nothing of the provider's health
  const stats = await mock.stats()
  assert.equal(stats.models['gpt-a'].streams_cut, 1)
  assert.equal(stats.models['gpt-a'].received, 1)
  assert.equal(stats.models['gpt-b'].received, 0)
})

test('an abandoned stream (break) settles interrupted: charged, slot freed', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50, stream: true })
  for await (const chunk of stream) {
    assert.ok(chunk.choices)
    break
  }
  assert.equal(inFlight(engine, 'primary'), 0)
  assert.equal(used(engine, 'primary'), rw.estimateTokens(messages) + 50)
  assert.equal(engine.health('primary'), 1)
})

test('a stream aborted through its controller settles interrupted', { skip }, async () => {
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk(), engine)
  const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50, stream: true })
  stream.controller.abort()
  assert.equal(inFlight(engine, 'primary'), 0)
  assert.equal(used(engine, 'primary'), rw.estimateTokens(messages) + 50)
})

test('a signal withdraws a wait: nothing is sent, nothing stays reserved', { skip }, async () => {
  const engine = engineFor({ primary: { quotas: [tokens, { dimension: 'concurrency', limit: 1 }] } })
  const client = rw.wrapOpenAI(sdk(), engine, { capability: 'solo' })
  engine.upsertCapability({ name: 'solo', providers: [{ provider: 'primary' }] })
  const holder = engine.acquire('solo')
  const ac = new AbortController()
  const call = client.chat.completions.create({ model: 'ignored', messages }, { signal: ac.signal })
  setTimeout(() => ac.abort(new Error('user went away')), 30)
  await assert.rejects(call, /user went away/)
  holder.cancel()
  assert.equal(engine.snapshot().lanes.normal.waiting, 0)
  assert.equal(inFlight(engine, 'primary'), 0)
  assert.equal(used(engine, 'primary'), 0)
  assert.equal((await mock.stats()).models['gpt-a'].received, 0)
})

test('a signal aborting the HTTP call settles it interrupted and throws the SDK\'s abort error', { skip }, async () => {
  const engine = engineFor()
  const ac = new AbortController()
  const client = rw.wrapOpenAI(sdk(), engine, { signal: ac.signal })
  await mock.faults({ model: 'gpt-a', latency_ms: 3000, count: 1 })
  const call = client.chat.completions.create({ model: 'chat', messages, max_tokens: 50 })
  setTimeout(() => ac.abort(), 100)
  await assert.rejects(call, (err) => err instanceof OpenAI.APIUserAbortError)
  assert.equal(inFlight(engine, 'primary'), 0)
  assert.equal(used(engine, 'primary'), rw.estimateTokens(messages) + 50) // sent: charged
  assert.equal(engine.health('primary'), 1)
  assert.equal((await mock.stats()).models['gpt-b'].received, 0) // not retried
})

test('no permit within timeoutMs is a NoAvailableProviderError', { skip }, async () => {
  const engine = new rw.Engine({
    providers: [{ name: 'p', model: 'gpt-a', quotas: [{ dimension: 'concurrency', limit: 1 }] }],
    capabilities: [{ name: 'chat', providers: [{ provider: 'p' }] }],
  })
  const holder = engine.acquire('chat')
  const client = rw.wrapOpenAI(sdk(), engine, { timeoutMs: 50 })
  await assert.rejects(client.chat.completions.create({ model: 'chat', messages }), (err) =>
    err instanceof rw.NoAvailableProviderError && err.code === 'no_available_provider' && Array.isArray(err.skipped))
  holder.cancel()
  assert.equal((await mock.stats()).models['gpt-a'].received, 0)
})

test('bad wrapper arguments are InvalidArgumentError', { skip }, () => {
  const engine = engineFor()
  assert.throws(() => rw.wrapOpenAI(null, engine), rw.InvalidArgumentError)
  assert.throws(() => rw.wrapOpenAI(sdk(), {}), rw.InvalidArgumentError)
  assert.throws(() => rw.wrapOpenAI(sdk(), engine, { maxAttempts: 0 }), rw.InvalidArgumentError)
  const client = rw.wrapOpenAI(sdk(), engine)
  return assert.rejects(client.chat.completions.create({ messages }), rw.InvalidArgumentError)
})

const redisUrl = process.env.RATEWISE_REDIS_URL
test('with a shared (Redis) store: JSON and stream calls settle through the async forms', { skip: skip || (!redisUrl && 'needs RATEWISE_REDIS_URL') }, async () => {
  const store = { kind: 'redis', url: redisUrl, prefix: `node-wrap-${process.pid}-${Date.now()}`, on_error: 'closed' }
  const engine = engineFor({ engine: { store } })
  assert.equal(engine.shared, true)
  const client = rw.wrapOpenAI(sdk(), engine)
  const c = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50 })
  assert.equal(used(engine, 'primary'), c.usage.prompt_tokens + c.usage.completion_tokens)
  const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50, stream: true })
  for await (const chunk of stream) void chunk
  await new Promise((resolve) => setTimeout(resolve, 50)) // the stream settles on the thread pool
  const stats = (await mock.stats()).models['gpt-a']
  assert.equal(used(engine, 'primary'), stats.input_tokens_charged + stats.output_tokens_charged)
  assert.equal(inFlight(engine, 'primary'), 0)
})

test('a refused connection is refunded and retried on the other deployment', { skip }, async () => {
  // The primary's model is sent to a port nothing listens on (through the client's `fetch`):
  // the request never left, so nothing is charged, and the next attempt goes elsewhere.
  const net = await import('node:net')
  const closed = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
  const route = (url, init) => {
    const target = JSON.parse(init.body).model === 'gpt-a' ? `http://127.0.0.1:${closed}` : mock.url
    return fetch(String(url).replace(mock.url, target), init)
  }
  const engine = engineFor()
  const client = rw.wrapOpenAI(sdk({ fetch: route }), engine)
  const completion = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 50 })
  assert.equal(completion.model, 'gpt-b')
  assert.equal(used(engine, 'primary'), 0) // never sent: refunded
  assert.equal(inFlight(engine, 'primary'), 0)
  assert.equal(used(engine, 'secondary'), completion.usage.prompt_tokens + completion.usage.completion_tokens)
})

test('isRetryable: the statuses another attempt can fix', () => {
  assert.deepEqual(
    ['success', 'client_error', 'rate_limited', 'forbidden', 'server_error', 'overloaded', 'timeout', 'interrupted'].filter(rw.isRetryable),
    ['rate_limited', 'server_error', 'overloaded', 'timeout'],
  )
})
