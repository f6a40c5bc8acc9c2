// Wake-up lateness of acquireAsync (issue 7): how long after a unit frees the waiter's code runs.
// One provider admits 1 request per 20 ms window; N promises wait, the k-th is due k windows after
// the first acquire. Lateness = when its continuation runs minus when its unit was due.
//   node bench/node/waiting.mjs [waiters]
import { createRequire } from 'node:module'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'

const require = createRequire(import.meta.url)
const rw = require(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bindings-node'))
const WINDOW_MS = 20
const n = Number(process.argv[2] ?? 30)
const engine = new rw.Engine({
  providers: [{ name: 'a', quotas: [{ dimension: 'requests', limit: 1, window_ms: WINDOW_MS }] }],
  capabilities: [{ name: 'c', providers: [{ provider: 'a' }] }],
})
engine.acquire('c')
const t0 = performance.now()
const times = await Promise.all(Array.from({ length: n }, () =>
  engine.acquireAsync('c', { timeoutMs: 60_000 }).then(() => performance.now())))
const late = times.sort((a, b) => a - b).map((t, k) => t - t0 - (k + 1) * WINDOW_MS)
const mean = late.reduce((a, b) => a + b, 0) / n
console.log(`acquireAsync ${n} waiters: mean lateness ${mean.toFixed(2)} ms, max ${Math.max(...late).toFixed(2)} ms`)
