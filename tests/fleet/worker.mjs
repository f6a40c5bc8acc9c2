// Fleet worker (Node.js): as worker.py. Usage: node worker.mjs CONFIG_FILE START_MS STOP_MS,
// with RATEWISE_NODE_PACKAGE naming the installed package (default: 'ratewise').
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Engine } = require(process.env.RATEWISE_NODE_PACKAGE || 'ratewise')
const [configFile, startMs, stopMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
const engine = new Engine(readFileSync(configFile, 'utf8'))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
while (engine.nowMs() < startMs) await sleep(Math.min(50, startMs - engine.nowMs()))
let admitted = 0
while (engine.nowMs() < stopMs) {
  let permit
  try {
    permit = engine.acquire('chat')
  } catch (e) {
    if (e.code !== 'no_available_provider') throw e
    await sleep(Math.max(1, Math.min(e.retryAfterMs ?? 1, 50)))
    continue
  }
  admitted += 1
  permit.complete({ status: 'success', latencyMs: 1 })
}
console.log(JSON.stringify({ lang: 'node', admitted, end_ms: engine.nowMs(), mode: engine.snapshot().store.mode }))
