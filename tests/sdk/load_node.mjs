// Load through wrapOpenAI with the real `openai` SDK against the mock provider (tests/mockllm),
// whose hidden limits ratewise does not know: its configuration is 4x too generous (window
// "second"), so it must learn the real limits from the response headers (docs/design.md §7).
//
// N requests (default 2,000) from C concurrent callers (default 8). Passes when:
//   - 0 requests are lost (every call returns a completion),
//   - at most 0.5% of the requests sent are answered 429 (each is retried by the wrapper),
//   - the wall time is within 10% of the floor the hidden limits set: (N - burst) / rate.
// Prints the figures; exits non-zero on a failure.
//
//   node tests/sdk/load_node.mjs [N] [C]
//
// Needs the addon built and `npm install` in bindings-node (openai is a devDependency there).
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(join(root, 'bindings-node', 'package.json'))
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(root, 'bindings-node'))
const OpenAI = require('openai')

const N = Number(process.argv[2] || 2000)
const C = Number(process.argv[3] || 8)
const RATE = 200 // hidden: requests per second
const TOKENS = 50_000 // hidden: tokens per second
const BURST_S = 1.0
const GENEROUS = 4 // ratewise's configuration is this many times too high

const mockConfig = {
  models: { 'gpt-a': { api: 'openai', requests_per_s: RATE, tokens_per_s: TOKENS, burst_s: BURST_S, latency_ms: 5, output_tokens: 20 } },
}
const child = spawn('python3', [join(root, 'tests', 'mockllm', 'mockllm.py'), '--port', '0', '--config', JSON.stringify(mockConfig)], {
  stdio: ['ignore', 'pipe', 'inherit'],
})
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

const engine = new rw.Engine({
  providers: [{
    name: 'gpt-a-eu',
    model: 'gpt-a',
    quotas: [
      { dimension: 'requests', limit: RATE * GENEROUS, window: 'second' },
      { dimension: 'tokens', limit: TOKENS * GENEROUS, window: 'second' },
    ],
  }],
  capabilities: [{ name: 'chat', providers: [{ provider: 'gpt-a-eu' }] }],
})
const client = rw.wrapOpenAI(new OpenAI({ apiKey: 'sk-load', baseURL: `${url}/v1` }), engine, { timeoutMs: 60_000 })

let next = 0
let ok = 0
const lost = []
const t0 = performance.now()
await Promise.all(Array.from({ length: C }, async () => {
  while (next < N) {
    const i = next++
    try {
      const r = await client.chat.completions.create({
        model: 'chat',
        messages: [{ role: 'user', content: `Request ${i}: say something short.` }],
        max_tokens: 20,
      })
      if (r.object === 'chat.completion') ok++
      else lost.push(`request ${i}: ${JSON.stringify(r).slice(0, 100)}`)
    } catch (e) {
      lost.push(`request ${i}: ${e?.constructor?.name} ${e?.status ?? ''} ${e?.message}`)
    }
  }
}))
const wall = (performance.now() - t0) / 1000
const stats = await fetch(`${url}/_mock/stats`).then((r) => r.json())
await new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM') })

const m = stats.models['gpt-a']
const r429 = m.status['429'] ?? 0
const floor = (N - RATE * BURST_S) / RATE
const snap = engine.snapshot()
const quota = snap.providers['gpt-a-eu'].quotas
console.log(`load_node: ${N} requests, ${C} concurrent, hidden ${RATE} req/s + ${TOKENS} tok/s (burst ${BURST_S}s), ratewise configured ${GENEROUS}x higher`)
console.log(`  received ${m.received}  ok ${m.ok}  429 ${r429} (${((100 * r429) / Math.max(1, m.received)).toFixed(2)}%)  other ${JSON.stringify(m.status)}`)
console.log(`  lost ${lost.length}  wall ${wall.toFixed(2)} s  floor ${floor.toFixed(2)} s  (${((100 * wall) / floor).toFixed(1)}% of the floor)`)
console.log(`  engine counters ${JSON.stringify(snap.counters)}`)
console.log(`  learned limits: ${quota.map((q) => `${q.dimension} ${q.learned_limit ?? '-'} (configured ${q.capacity})`).join(', ')}`)
for (const l of lost.slice(0, 5)) console.log(`  lost: ${l}`)

const failures = []
if (lost.length > 0 || ok !== N) failures.push(`${lost.length} lost, ${ok} of ${N} ok`)
if (r429 > 0.005 * m.received) failures.push(`${r429} 429s, more than 0.5% of ${m.received}`)
// The target is 1.10; CI, on a shared machine, passes a generous bound (RATEWISE_LOAD_MAX_WALL=1.5).
const maxWall = Number(process.env.RATEWISE_LOAD_MAX_WALL || 1.1)
if (wall > maxWall * floor) failures.push(`wall ${wall.toFixed(2)} s is more than ${maxWall} x the floor ${floor.toFixed(2)} s`)
if (snap.providers['gpt-a-eu'].in_flight !== 0) failures.push(`${snap.providers['gpt-a-eu'].in_flight} permits left in flight`)
if (failures.length) {
  console.log(`FAIL: ${failures.join('; ')}`)
  process.exit(1)
}
console.log('PASS')
