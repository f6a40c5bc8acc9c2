// Compiled with `tsc --noEmit --strict` in CI: the public declarations (ratewise.d.ts) must
// describe real use without casts. Not run.
//
// The SDKs' own declarations name fetch's `Response` and `Headers`, so this file (not ratewise's
// declarations, which tsconfig.json compiles with no DOM or Node types) needs the DOM library.
/// <reference lib="dom" />
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import {
  Engine, ManualClock, statusFromHttp, estimateTokens, wrapOpenAI, wrapAnthropic,
  RatewiseError, NoAvailableProviderError, InvalidConfigError, RatewiseStream,
  type EngineConfig, type OutcomeStatus, type Permit, type WaitOptions, type AbortSignalLike, type PollReport,
  type ErrorCode, type WrapOptions, type WrappedOpenAI, type WrappedAnthropic,
} from '../ratewise'

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

// Decisions and permits name the upstream model; `interrupted` is an outcome.
function models(e: Engine): string {
  const p = e.acquire('chat')
  const m: string = p.model + e.select('chat').model + p.decision.toJSON().model
  p.complete({ status: 'interrupted' satisfies OutcomeStatus })
  return m
}
void models
const withModel: EngineConfig = { providers: [{ name: 'gpt-4o-eu', model: 'gpt-4o' }] }
void withModel

// Error classes: instanceof narrows, the fields are typed.
function handle(e: unknown): number | null {
  if (e instanceof NoAvailableProviderError) {
    const code: 'no_available_provider' = e.code
    const reasons: string[] = e.skipped.map((s) => s.reason)
    void [code, reasons]
    return e.retryAfterMs
  }
  if (e instanceof InvalidConfigError) return e.message.length
  if (e instanceof RatewiseError) {
    const code: ErrorCode = e.code
    return code.length
  }
  throw new RatewiseError('not ours', 'invalid_argument', { cause: e })
}
void handle
const tokens: number = estimateTokens([{ role: 'user', content: 'Hi' }]) + estimateTokens({ system: 'terse', messages: [] })
void tokens

// The wrappers keep the SDKs' own types: bodies, results, chunks, events and options.
async function wrapped(engine: Engine, signal: AbortSignal): Promise<string> {
  const options: WrapOptions = { lane: 'batch', timeoutMs: 60_000, maxAttempts: 3, defaultOutputTokens: 512, signal }
  const openai: WrappedOpenAI<OpenAI> = wrapOpenAI(new OpenAI({ apiKey: 'sk-x' }), engine, options)
  const completion = await openai.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 }, { signal })
  const content: string | null = completion.choices[0].message.content
  const usage: number | undefined = completion.usage?.prompt_tokens
  // @ts-expect-error the result is the SDK's ChatCompletion, not `any`
  const notAny: number = completion.choices
  // @ts-expect-error the body is the SDK's: `messages` is required
  void openai.chat.completions.create({ model: 'chat' })
  const stream = await openai.chat.completions.create({ model: 'chat', messages: [], stream: true })
  const typed: RatewiseStream<OpenAI.Chat.Completions.ChatCompletionChunk> = stream
  let text = ''
  for await (const chunk of typed) text += chunk.choices[0]?.delta?.content ?? ''
  stream.controller.abort()
  const embedding: number[] = (await openai.embeddings.create({ model: 'embed', input: 'text' })).data[0].embedding

  const anthropic: WrappedAnthropic<Anthropic> = wrapAnthropic(new Anthropic({ apiKey: 'sk-ant-x' }), engine, { capability: 'claude' })
  const message = await anthropic.messages.create({ model: 'ignored', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] })
  const outputTokens: number = message.usage.output_tokens
  const events = await anthropic.messages.create({ model: 'chat', max_tokens: 100, messages: [], stream: true })
  for await (const event of events) if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text
  const ms = anthropic.messages.stream({ model: 'chat', max_tokens: 100, messages: [] })
  ms.on('text', (delta: string) => { text += delta })
  const final: Anthropic.Message = await ms.finalMessage()
  void [content, usage, embedding, outputTokens, final, notAny]
  return text
}
void wrapped
