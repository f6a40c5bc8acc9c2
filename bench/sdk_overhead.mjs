// The SDK wrapper's own cost per call: `wrapOpenAI(client).chat.completions.create` against the
// bare `client.chat.completions.create`, with no network. The client's `fetch` answers at once
// with a canned Response (a chat completion with usage, and OpenAI's rate-limit headers), so
// both sides pay the same SDK work (request building, JSON parsing) and the difference is
// ratewise: the estimate, the permit, the body copy, the settlement with usage and headers.
// Blocks of bare, by-hand and wrapped calls alternate; each figure is its median block. The
// by-hand side makes the wrapper's engine calls itself, which splits the overhead into the
// engine's calls and the wrapper's own JS.
//
//   node bench/sdk_overhead.mjs [calls per block = 2000] [blocks per side = 15]
//
// RATEWISE_NODE_BEFORE=<a package folder> adds a fourth side: the same wrapped call through that
// package (say, a copy of bindings-node at an earlier commit, built), in the same blocks'
// rotation, so that a change is measured against its parent in one run rather than across runs
// (this machine's run-to-run spread is larger than most changes).
//
// Budget (issue 16): <= 50 us per call in Node. Needs the addon built and `npm install` in
// bindings-node (the openai SDK is a devDependency there).
import { createRequire } from 'node:module'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'bindings-node', 'package.json'))
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(root, 'bindings-node'))
const OpenAI = require('openai')

const perBlock = Number(process.argv[2] || 2000)
const blocks = Number(process.argv[3] || 15)

const completion = JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Rate limits are quotas.' }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 31, completion_tokens: 6, total_tokens: 37, prompt_tokens_details: { cached_tokens: 0 } },
})
// What OpenAI sends (names and shapes), with limits large enough never to bind here.
const headers = {
  'content-type': 'application/json',
  date: new Date().toUTCString(),
  'openai-processing-ms': '312',
  'openai-version': '2020-10-01',
  'x-request-id': 'req_0123456789abcdef',
  'x-ratelimit-limit-requests': '1000000000',
  'x-ratelimit-remaining-requests': '999999999',
  'x-ratelimit-reset-requests': '1ms',
  'x-ratelimit-limit-tokens': '30000000000',
  'x-ratelimit-remaining-tokens': '29999999000',
  'x-ratelimit-reset-tokens': '2ms',
  'cf-cache-status': 'DYNAMIC',
  server: 'cloudflare',
}
const fetch = async () => new Response(completion, { status: 200, headers })
const client = new OpenAI({ apiKey: 'sk-bench', baseURL: 'http://127.0.0.1:9/v1', fetch, maxRetries: 0 })

const config = {
  providers: [{
    name: 'gpt-4o-mini-eu', model: 'gpt-4o-mini',
    quotas: [
      { dimension: 'requests', limit: 1_000_000_000, window: 'minute' },
      { dimension: 'tokens', limit: 30_000_000_000, window: 'minute' },
      { dimension: 'concurrency', limit: 1000 },
    ],
  }],
  capabilities: [{ name: 'chat', providers: [{ provider: 'gpt-4o-mini-eu' }] }],
}
const engine = new rw.Engine(config)
const wrapped = rw.wrapOpenAI(client, engine)

const messages = [
  { role: 'system', content: 'You are a helpful assistant. Answer in one sentence.' },
  { role: 'user', content: 'What is a rate limit, and why do LLM APIs have them?' },
]
const bare = () => client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 200 })
const viaRatewise = () => wrapped.chat.completions.create({ model: 'chat', messages, max_tokens: 200 })
// The same engine calls written by hand around the bare call: the estimate, the permit, the
// settlement with usage and the rate-limit headers. Wrapped minus this is the wrapper's own JS.
const rateHeaders = (h) => [...h].filter(([k]) => k.startsWith('x-ratelimit-'))
const byHand = async () => {
  const permit = engine.acquire('chat', { inputTokens: rw.estimateTokens(messages), outputTokens: 200 })
  const t = Date.now()
  const { data, response } = await client.chat.completions.create({ model: permit.model, messages, max_tokens: 200 }, { maxRetries: 0 }).withResponse()
  permit.complete({ status: 'success', latencyMs: Date.now() - t, inputTokens: data.usage.prompt_tokens, outputTokens: data.usage.completion_tokens, headers: rateHeaders(response.headers) })
  return data
}

// The other package's wrapper, on an engine of its own (same configuration).
const before = process.env.RATEWISE_NODE_BEFORE ? require(process.env.RATEWISE_NODE_BEFORE) : null
const wrappedBefore = before ? before.wrapOpenAI(client, new before.Engine(config)) : null
const viaBefore = () => wrappedBefore.chat.completions.create({ model: 'chat', messages, max_tokens: 200 })

async function block(call) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < perBlock; i++) await call()
  return Number(process.hrtime.bigint() - t0) / 1e3 / perBlock // us per call
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

const sides = [bare, byHand, viaRatewise, ...(before ? [viaBefore] : [])]
// Warm up every path (JIT, the SDK's lazy imports, the engine's buckets).
for (let i = 0; i < 3; i++) for (const side of sides) await block(side)
// Each block round runs every side once, starting from a different side each round.
const times = sides.map(() => [])
for (let i = 0; i < blocks; i++) {
  for (let k = 0; k < sides.length; k++) {
    const s = (i + k) % sides.length
    times[s].push(await block(sides[s]))
  }
}
const [b, h, w, v] = times
const snap = engine.snapshot()
if (snap.providers['gpt-4o-mini-eu'].in_flight !== 0) throw new Error('a permit was left in flight')
const mb = median(b)
const mw = median(w)
const diffs = b.map((x, i) => w[i] - x)
console.log(`calls: ${blocks} blocks x ${perBlock} per side, node ${process.version}, openai ${OpenAI.VERSION ?? require('openai/version').VERSION}`)
console.log(`bare SDK call          ${mb.toFixed(1)} us/call (blocks ${Math.min(...b).toFixed(1)}-${Math.max(...b).toFixed(1)})`)
console.log(`through wrapOpenAI     ${mw.toFixed(1)} us/call (blocks ${Math.min(...w).toFixed(1)}-${Math.max(...w).toFixed(1)})`)
const mh = median(h)
console.log(`engine calls by hand   ${mh.toFixed(1)} us/call (blocks ${Math.min(...h).toFixed(1)}-${Math.max(...h).toFixed(1)})`)
console.log(`wrapper overhead       ${(mw - mb).toFixed(1)} us/call (median of paired blocks: ${median(diffs).toFixed(1)}; budget 50)`)
console.log(`  of which engine calls ${(mh - mb).toFixed(1)} us (estimateTokens, acquire, complete with headers), wrapper JS ${(mw - mh).toFixed(1)} us`)
if (v) {
  const mv = median(v)
  console.log(`RATEWISE_NODE_BEFORE   ${mv.toFixed(1)} us/call (blocks ${Math.min(...v).toFixed(1)}-${Math.max(...v).toFixed(1)}): adds ${(mv - mb).toFixed(1)} us (median of paired blocks: ${median(b.map((x, i) => v[i] - x)).toFixed(1)}); this package against it: ${(mw - mv).toFixed(1)} us (paired: ${median(w.map((x, i) => x - v[i])).toFixed(1)})`)
}
