// ratewise from Node.js: the Python benchmark's scenario (3 providers with requests, tokens and
// concurrency quotas, one capability, N select+observe pairs on a manual clock advanced 1 ms per
// pair), plus acquire+complete. Prints a table of the median of R runs.
// Run: node bench/node/bench.mjs [pairs] [runs]   (after building bindings-node)
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bindings-node'))
const pairs = Number(process.argv[2] ?? 200000)
const runs = Number(process.argv[3] ?? 5)

function engine() {
  const quotas = [
    { dimension: 'requests', limit: 1000000, window: 'minute' },
    { dimension: 'tokens', limit: 100000000, window: 'minute' },
    { dimension: 'concurrency', limit: 100 },
  ]
  const clock = new rw.ManualClock(0)
  const e = new rw.Engine({
    providers: ['p1', 'p2', 'p3'].map((name) => ({ name, quotas })),
    capabilities: [{ name: 'chat', providers: [{ provider: 'p1', priority: 10 }, { provider: 'p2', priority: 8 }, { provider: 'p3', priority: 5 }] }],
  }, clock)
  return { e, clock }
}

function selectObserve(n) {
  const { e, clock } = engine()
  const request = { inputTokens: 100, outputTokens: 50 }
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    clock.advance(1)
    const d = e.select('chat', request)
    e.observe(d.provider, { status: 'success', latencyMs: 120, inputTokens: 100, outputTokens: 50 })
  }
  return Number(process.hrtime.bigint() - start) / n / 1000
}

function acquireComplete(n) {
  const { e, clock } = engine()
  const request = { inputTokens: 100, outputTokens: 50 }
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    clock.advance(1)
    const p = e.acquire('chat', request)
    p.complete({ status: 'success', latencyMs: 120, inputTokens: 100, outputTokens: 50 })
  }
  return Number(process.hrtime.bigint() - start) / n / 1000
}

const median = (fn) => {
  const xs = Array.from({ length: runs }, () => fn(pairs)).sort((a, b) => a - b)
  return xs[Math.floor(xs.length / 2)]
}
selectObserve(20000) // warm up
const so = median(selectObserve)
const ac = median(acquireComplete)
console.log(`${pairs} pairs, median of ${runs} runs, manual clock +1 ms per pair (Node ${process.version})\n`)
console.log(`${'benchmark'.padEnd(28)} ${'us/pair'.padStart(9)} ${'budget'.padStart(8)}  verdict`)
console.log(`${'select+observe'.padEnd(28)} ${so.toFixed(3).padStart(9)} ${'<= 3.0'.padStart(8)}  ${so <= 3 ? 'met' : 'MISSED'}`)
console.log(`${'acquire+complete'.padEnd(28)} ${ac.toFixed(3).padStart(9)}`)
