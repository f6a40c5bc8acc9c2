// Compiled with `tsc --noEmit --strict` in CI: the public declarations (ratewise.d.ts) must
// describe real use without casts. Not run.
import { Engine, ManualClock, statusFromHttp, type EngineConfig, type RatewiseError, type OutcomeStatus, type Permit, type WaitOptions, type AbortSignalLike, type PollReport } from '../ratewise'

const config: EngineConfig = {
  providers: [{ name: 'gpt-4o', quotas: [{ dimension: 'tokens', limit: 150000, window: 'minute', settle: 'reserved' }] }],
  capabilities: [{ name: 'chat', providers: [{ provider: 'gpt-4o', priority: 10 }] }],
  lanes: [{ name: 'normal' }, { name: 'batch', headroom: 0.3, aging_ms: 30000 }],
}
const engine = new Engine(config, new ManualClock(0))
const decision = engine.select('chat', { inputTokens: 100, outputTokens: 50, lane: 'batch' })
const name: string = decision.provider
const score: number = decision.score + decision.breakdown.quota
const alternatives: string[] = decision.alternatives.map((a) => a.provider)
const permit = engine.acquire('chat', { inputTokens: 1200 })
permit.complete({ status: 'success', latencyMs: 820, inputTokens: 1150, outputTokens: 230, headers: new Map([['retry-after', '1']]) })
engine.observe(permit.provider, { status: 429, headers: { 'retry-after': '2' }, requests: 1 })
engine.syncHeaders('gpt-4o', [['x-ratelimit-remaining-tokens', '100']])
const left: number | null = engine.remaining('gpt-4o', 'tokens')
const circuit: 'closed' | 'open' | 'half_open' = engine.circuit('gpt-4o')
const held: number = engine.snapshot().providers['gpt-4o'].held_ms
const status: OutcomeStatus = statusFromHttp(529)
try {
  engine.acquire('chat')
} catch (e) {
  const err = e as RatewiseError
  if (err.code === 'no_available_provider') void [err.retryAfterMs, err.skipped?.map((s) => s.reason)]
}
const waited = engine.enqueue('chat', { timeoutMs: 1000, lane: 'batch' })
const granted: number[] = waited.granted.concat(engine.poll().expired)
const wake: number | null = engine.nextWake()
void [name, score, alternatives, left, circuit, held, status, granted, wake, waited.ticket]

// Waiting: acquireAsync resolves to a Permit; options are typed.
async function waitForPermit(engine: Engine): Promise<string> {
  let aborted = false
  const signal: AbortSignalLike = {
    get aborted() { return aborted },
    addEventListener: () => { aborted = false },
    removeEventListener: () => {},
  }
  const options: WaitOptions = { lane: 'critical', timeoutMs: 5_000, signal }
  const permit: Permit = await engine.acquireAsync('chat', options)
  permit.complete({ status: 'success' })
  return permit.provider
}
void waitForPermit

// The *Async forms (thread pool; with a Redis store they keep the event loop free).
async function offTheLoop(e: Engine): Promise<boolean> {
  const p: Permit = await e.acquireAsync('chat', { inputTokens: 10 })
  await p.completeAsync({ status: 'success' })
  const report: PollReport = await e.cancelAsync(p.id)
  await e.observeAsync('gpt-4o', { status: 429, retryAfterMs: 100 })
  await e.syncHeadersAsync('gpt-4o', { 'x-ratelimit-remaining-requests': '5' })
  return e.shared && report.granted.length === 0
}
void offTheLoop
