/*! ratewise for Node.js: the public classes, thin over the native functions of the addon (built by
 * napi-rs, loaded by native.ts). Arguments are checked and converted here; every decision is made by the
 * Rust core. Numbers go to the addon in one reused Float64Array (NaN: absent), which is much
 * cheaper than napi reading option objects field by field (bench/README.md).
 *
 * The package's entry. It re-exports the error classes (errors.ts), the SDK wrappers (openai.ts,
 * anthropic.ts) and what they share (calls.ts); none of them loads an SDK.
 *
 * Written in src-ts/; tsc (tsconfig.json, run by `npm run build`) compiles each module into a .js
 * and a .d.ts beside package.json, which are committed. Edit the .ts files: CI fails when a build
 * changes the compiled ones. */

// A CommonJS module (package.json has no "type"): tsc turns each `export` into `exports.Name = ...`,
// which Node's ESM loader detects, so `require('ratewise')` and `import { Engine } from 'ratewise'`
// both work; tsc also sets a non-enumerable `__esModule` flag.
import addon from './native.js'
import { errorFor, fromNative } from './errors.js'

export {
  RatewiseError,
  InvalidConfigError,
  InvalidArgumentError,
  UnknownCapabilityError,
  UnknownProviderError,
  UnknownPermitError,
  NoAvailableProviderError,
  StoreUnavailableError,
  StoreConflictError,
} from './errors.js'
export {
  wrapOpenAI,
  type OpenAIWrapOptions,
  type WrappedOpenAI,
  type OpenAIClientLike,
  type WrappedChatCreate,
  type WrappedCall,
  type ChatBodyLike,
  type SdkRequestOptions,
  type StreamItem,
} from './openai.js'
export { wrapAnthropic, type AnthropicWrapOptions, type WrappedAnthropic, type AnthropicClientLike } from './anthropic.js'
export { estimateTokens, RatewiseStream, type WrapOptions, type ResponseLike, type SdkCall, type AbortControllerLike } from './calls.js'

/** The addon's functions, each converting the errors it throws (or rejects with) into the
 *  classes of errors.ts. One call frame and a try block, which cost nothing measurable. */
const native: typeof addon = (() => {
  const out: Record<string, unknown> = {}
  for (const [name, f] of Object.entries(addon)) {
    if (typeof f !== 'function') out[name] = f
    else if (name.endsWith('Task')) {
      out[name] = (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, g: unknown) =>
        (f as (...args: unknown[]) => Promise<unknown>)(a, b, c, d, e, g).then(undefined, (err: unknown) => {
          throw fromNative(err)
        })
    } else {
      out[name] = (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, g: unknown) => {
        try {
          return (f as (...args: unknown[]) => unknown)(a, b, c, d, e, g)
        } catch (err) {
          throw fromNative(err)
        }
      }
    }
  }
  return out as typeof addon
})()

// ---------------------------------------------------------------------------------------------
// The public types

/** The class of a call's outcome. */
export type OutcomeStatus =
  | 'success'
  | 'client_error'
  | 'rate_limited'
  | 'forbidden'
  | 'server_error'
  | 'overloaded'
  | 'timeout'
  /** The call reached the provider and stopped before finishing (a stream cut, a consumer that
   *  gave up): tokens settle as for success (reported usage, else the estimates stay charged);
   *  health and the circuit do not change. */
  | 'interrupted'

/** The stable error codes (the core's `Error::CODES`; test/error-codes.test.mjs checks this list). */
export type ErrorCode =
  | 'invalid_config'
  | 'invalid_argument'
  | 'unknown_capability'
  | 'unknown_provider'
  | 'unknown_permit'
  | 'no_available_provider'
  | 'store_unavailable'
  | 'store_conflict'

/** One provider that was not chosen, and why (`held`, `circuit_open`, `quota:tokens`, ...). */
export interface SkippedProvider {
  provider: string
  reason: string
}

/** What a quota counts. */
export type QuotaDimension = 'requests' | 'tokens' | 'input_tokens' | 'output_tokens' | 'concurrency' | 'cost'

/** Response headers: a plain object, or anything iterable as [name, value] (fetch Headers, Map, pairs). */
export type HeadersInput = Record<string, string> | Iterable<readonly [string, string]> | null | undefined

/** One quota of a provider (docs/configuration.md). */
export interface QuotaConfig {
  dimension: QuotaDimension
  limit: number
  window?: 'second' | 'minute' | 'hour' | 'day'
  window_ms?: number
  algorithm?: 'token_bucket' | 'fixed_window'
  settle?: 'actual' | 'reserved'
  key?: string
  offset_ms?: number
  count_cached?: boolean
}

/** A provider: its quotas, cooldown and price (docs/configuration.md). */
export interface ProviderConfig {
  name: string
  quotas?: QuotaConfig[]
  cooldown_ms?: number
  /** USD per million tokens; `cached_input_per_mtok` and `cache_write_input_per_mtok` (each
   * default: `input_per_mtok`) price input read from and written to the provider's prompt cache. */
  price?: { input_per_mtok: number; output_per_mtok: number; cached_input_per_mtok?: number; cache_write_input_per_mtok?: number }
  /** The upstream model to call (default: the provider's name), returned on every decision. */
  model?: string
}

/** A capability: the providers that can serve it, with their priorities. */
export interface CapabilityConfig {
  name: string
  providers?: Array<{ provider: string; priority?: number }>
}

/** A lane: a priority class of waiting requests. */
export interface LaneConfig {
  name: string
  headroom?: number
  aging_ms?: number
}

/** How outcomes move a provider's health and circuit. */
export interface HealthConfig {
  half_life_ms?: number
  min_health?: number
  boost_success?: number
  penalty_rate_limited?: number
  penalty_forbidden?: number
  penalty_server_error?: number
  penalty_overloaded?: number
  penalty_timeout?: number
  overload_hold_ms?: number
  /** The longest hold any retry-after may set (default 3600000, one hour). */
  max_hold_ms?: number
  cooldown_after?: number
  cooldown_multiplier?: number
  max_cooldown_ms?: number
}

/** Where quota state lives: in this process, or shared through Redis. */
export type StoreConfig =
  | { kind: 'memory' }
  | {
      kind: 'redis'
      url?: string
      prefix?: string
      /** Bounds each whole call to Redis (connect, script load and one retry included). */
      timeout_ms?: number
      /** Bounds opening a connection (default and at most `timeout_ms`). */
      connect_timeout_ms?: number
      on_error?: 'local' | 'open' | 'closed'
      local_share?: number
      /** For `rediss://` URLs: a private CA, and a client certificate with its key (PEM files). */
      tls?: { ca_file?: string; cert_file?: string; key_file?: string }
    }

/** The configuration document (docs/configuration.md). */
export interface EngineConfig {
  providers?: ProviderConfig[]
  capabilities?: CapabilityConfig[]
  lanes?: LaneConfig[]
  scoring?: { quota?: number; health?: number; priority?: number; latency?: number; cost?: number }
  health?: HealthConfig
  anticipation?: { rate_tau_ms?: number }
  permit_ttl_ms?: number
  store?: StoreConfig
}

/** What the caller wants to send. */
export interface RequestOptions {
  /** Lane name (default 'normal'). */
  lane?: string | null
  /** Estimated input tokens. */
  inputTokens?: number | null
  /** Estimated output tokens (usually the call's max_tokens). */
  outputTokens?: number | null
  /** Providers not wanted now (e.g. the one that just answered 529). */
  exclude?: string[] | null
}

/** A request that may wait (`acquireAsync`). */
export interface WaitOptions extends RequestOptions {
  /** How long to wait at most, in ms (> 0). */
  timeoutMs: number
  /** Aborting it withdraws the request. */
  signal?: AbortSignalLike
}

/** What `acquireAsync` uses of an `AbortSignal` (declared here so that these types need neither
 *  the DOM library nor `@types/node`; a real `AbortSignal` fits). */
export interface AbortSignalLike {
  readonly aborted: boolean
  readonly reason?: unknown
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: () => void): void
}

/** How a call went. Token counts left out are "not reported". */
export interface OutcomeOptions {
  /** A class name or an HTTP status code. */
  status: OutcomeStatus | number
  /** Observed latency in ms (Permit#complete: default the time since acquire). */
  latencyMs?: number | null
  inputTokens?: number | null
  outputTokens?: number | null
  /** Input tokens served from the provider's prompt cache (part of inputTokens). */
  cachedInputTokens?: number | null
  /** Input tokens written to the provider's prompt cache (part of inputTokens; Anthropic's
   * cache_creation_input_tokens), priced at `cache_write_input_per_mtok`. */
  cacheWriteInputTokens?: number | null
  /** The provider's retry-after, in ms. */
  retryAfterMs?: number | null
  headers?: HeadersInput
}

/** How a call made without a permit went: absent token counts are 0. */
export interface ObserveOptions extends OutcomeOptions {
  /** Requests made (default 1). */
  requests?: number | null
}

/** What one poll of the waiting requests did: ticket ids granted (each now a permit of the same
 *  id) and expired, in rank order. */
export interface PollReport {
  granted: number[]
  expired: number[]
}

/** A decision's score terms, each in [0, 1]. */
export interface Breakdown {
  quota: number
  health: number
  priority: number
  latency: number
  cost: number
}

/** An eligible provider that was not chosen, with its score. */
export interface Alternative {
  provider: string
  score: number
}

/** One quota in a snapshot. */
export interface QuotaSnapshot {
  key: string
  dimension: QuotaDimension
  remaining: number
  capacity: number
  learned_limit: number | null
  drain_per_s: number | null
}

/** One provider in a snapshot. */
export interface ProviderSnapshot {
  health: number
  circuit: 'closed' | 'open' | 'half_open'
  held_ms: number
  in_flight: number
  latency_ms: number | null
  quotas: QuotaSnapshot[]
}

/** One lane in a snapshot. */
export interface LaneSnapshot {
  waiting: number
  granted: number
  expired: number
  wait_p50_ms: number | null
  wait_p99_ms: number | null
  wait_max_ms: number | null
}

/** engine.snapshot(): the stable paths of docs/design.md section 9. */
export interface Snapshot {
  providers: Record<string, ProviderSnapshot>
  lanes: Record<string, LaneSnapshot>
  counters: {
    selects: number
    acquires: number
    grants: number
    refusals: number
    permits_expired: number
    header_errors: number
  }
  store: { kind: string; mode: string }
}

// ---------------------------------------------------------------------------------------------
// Argument checks and conversions (not exported)

/** Decision fields parsed from the addon's JSON when first read. */
interface DecisionDetails {
  score: number
  breakdown: Breakdown
  alternatives: Alternative[]
  skipped: SkippedProvider[]
}

const nums = new Float64Array(7)

/** `"<granted ids>;<expired ids>"` from the addon as {granted, expired} id arrays. */
function report(text: string): PollReport {
  const [g, e] = text.split(';')
  const ids = (s: string | undefined): number[] => (s ? s.split(',').map(Number) : [])
  return { granted: ids(g), expired: ids(e) }
}

function ratewiseError(code: ErrorCode, message: string): Error {
  return errorFor(code, message)
}

function number(name: string, value: unknown): number {
  if (value === undefined || value === null) return NaN
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw ratewiseError('invalid_argument', `${name} must be a number, got ${typeof value}`)
  }
  return value
}

function text(name: string, value: unknown): string {
  if (typeof value !== 'string') throw ratewiseError('invalid_argument', `${name} must be a string, got ${typeof value}`)
  return value
}

function optionalText(name: string, value: unknown): string | null {
  return value === undefined || value === null ? null : text(name, value)
}

function texts(name: string, value: unknown): string[] | null {
  if (value === undefined || value === null) return null
  if (!Array.isArray(value)) throw ratewiseError('invalid_argument', `${name} must be an array of strings`)
  return value.map((v: unknown) => text(name, v))
}

function status(value: unknown): string | number {
  if (typeof value === 'string' || typeof value === 'number') return value
  throw ratewiseError('invalid_argument', 'status must be a class name (string) or an HTTP code (number)')
}

/** Headers from a plain object, a fetch Headers, a Map or pairs, as the addon takes them: one
 *  string, each name and value followed by a line break (a line break inside one, which no HTTP
 *  header can hold, is written as a space). */
function headerList(headers: unknown): string | null {
  if (headers === undefined || headers === null) return null
  let out = ''
  const add = (name: unknown, value: unknown): void => {
    let n = String(name)
    let v = String(value)
    if (n.includes('\n')) n = n.replaceAll('\n', ' ')
    if (v.includes('\n')) v = v.replaceAll('\n', ' ')
    out += n + '\n' + v + '\n'
  }
  if (typeof headers === 'object' && (Array.isArray(headers) || typeof (headers as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function')) {
    for (const pair of headers as Iterable<ArrayLike<unknown> | null | undefined>) {
      if (!pair || pair.length !== 2) throw ratewiseError('invalid_argument', 'headers pairs must be [name, value]')
      add(pair[0], pair[1])
    }
    return out
  }
  if (typeof headers === 'object') {
    for (const name of Object.keys(headers)) add(name, (headers as Record<string, unknown>)[name])
    return out
  }
  throw ratewiseError('invalid_argument', 'headers must be an object, a Headers, a Map or [name, value] pairs')
}

/** The path (as the core names paths) of the first NaN or infinity in `value`, if any:
 * JSON.stringify would write it as `null`, which the configuration reads as absent. */
function nonFinite(value: unknown, path: string): string | null {
  if (typeof value === 'number') return Number.isFinite(value) ? null : path
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nonFinite(value[i], `${path}[${i}]`)
      if (found !== null) return found
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = nonFinite(v, path ? `${path}.${k}` : k)
      if (found !== null) return found
    }
  }
  return null
}

function json(value: unknown, what: string): string {
  if (typeof value === 'string') return value
  const bad = nonFinite(value, what === 'config' ? '' : what)
  if (bad !== null) throw ratewiseError('invalid_config', `${bad || what}: must be a finite number`)
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (e) {
    throw ratewiseError('invalid_config', `${what} is not JSON-serialisable: ${(e as Error).message}`)
  }
  if (typeof text !== 'string') throw ratewiseError('invalid_config', `${what} must be an object or JSON text`)
  return text
}

/** Request options (any of RequestOptions, WaitOptions, or what plain JS passes). */
type AnyRequestOptions = RequestOptions & Partial<WaitOptions>

function requestArgs(options: AnyRequestOptions | null | undefined): AnyRequestOptions {
  const o = options || {}
  nums[0] = number('inputTokens', o.inputTokens)
  nums[1] = number('outputTokens', o.outputTokens)
  return o
}

function outcomeArgs(o: ObserveOptions): void {
  if (!o || typeof o !== 'object') throw ratewiseError('invalid_argument', 'an outcome must be an object with a status')
  nums[0] = number('latencyMs', o.latencyMs)
  nums[1] = number('inputTokens', o.inputTokens)
  nums[2] = number('outputTokens', o.outputTokens)
  nums[3] = number('cachedInputTokens', o.cachedInputTokens)
  nums[4] = number('retryAfterMs', o.retryAfterMs)
  nums[5] = number('requests', o.requests)
  nums[6] = number('cacheWriteInputTokens', o.cacheWriteInputTokens)
}

// What the classes below open to each other and to no one else (set in their static blocks, so
// that their constructors and handles stay private in the declarations).
let clockHandle: (clock: ManualClock) => ClockHandle
let newDecision: (provider: string, model: string, rest: string) => Decision
let newPermit: (engine: Engine, text: string, inputTokens?: number | null, outputTokens?: number | null) => Permit

// ---------------------------------------------------------------------------------------------
// The public classes

/** The engine. One instance serves every caller of the process.
 *
 * @example
 * ```ts
 * const engine = new Engine({
 *   providers: [{ name: 'gpt-4o-eu', model: 'gpt-4o', quotas: [{ dimension: 'tokens', limit: 150000, window: 'minute' }] }],
 *   capabilities: [{ name: 'chat', providers: [{ provider: 'gpt-4o-eu' }] }],
 * })
 * const permit = await engine.acquireAsync('chat', { inputTokens: 1200, outputTokens: 400, timeoutMs: 30_000 })
 * // ... call permit.model on permit.provider, then:
 * permit.complete({ status: 'success', inputTokens: 1150, outputTokens: 310, headers: response.headers })
 * ```
 */
export class Engine {
  private _h: EngineHandle

  /** From a configuration object or JSON text, on the system clock or `clock`. */
  constructor(config: EngineConfig | string, clock?: ManualClock | null) {
    this._h = native.engineNew(json(config, 'config'), clock ? clockHandle(clock) : null)
  }

  /** An engine from JSON configuration text. */
  static fromJson(source: string, clock?: ManualClock | null): Engine {
    return new Engine(text('text', source), clock)
  }

  /** An engine from a JSON configuration file. */
  static fromFile(path: string, clock?: ManualClock | null): Engine {
    const engine = Object.create(Engine.prototype) as Engine
    engine._h = native.engineFromFile(text('path', path), clock ? clockHandle(clock) : null)
    return engine
  }

  /** The engine's clock reading in Unix ms. */
  nowMs(): number {
    return native.engineNow(this._h)
  }

  /** Which provider a request would go to now; changes no state. */
  select(capability: string, options?: RequestOptions | null): Decision {
    const o = requestArgs(options)
    return decisionFrom(native.engineSelect(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude)), 0)
  }

  /** Selects and reserves atomically; returns a Permit to complete or cancel. */
  acquire(capability: string, options?: RequestOptions | null): Permit {
    const o = requestArgs(options)
    const decision = native.engineAcquire(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude))
    return newPermit(this, decision, o.inputTokens, o.outputTokens)
  }

  /** Waits at most `options.timeoutMs` for a permit, in the lane's priority order, without
   *  blocking the event loop: resolves with a Permit, or rejects with `no_available_provider`
   *  when the timeout passes. `options.signal` (an AbortSignal) withdraws the request, or returns
   *  the permit if it was granted meanwhile; the promise then rejects with the signal's reason.
   *  Without `timeoutMs` it decides now, on the thread pool (with a Redis store an acquire is a
   *  network round trip). */
  acquireAsync(capability: string, options?: WaitOptions | RequestOptions | null): Promise<Permit> {
    if (options == null || (options as AnyRequestOptions).timeoutMs === undefined) return this._acquireNowAsync(capability, options)
    // Every failure, bad arguments included, is a rejection (the executor's throws reject).
    return new Promise((resolve, reject) => {
      const o = requestArgs(options)
      nums[2] = number('timeoutMs', o.timeoutMs)
      const signal = o.signal
      if (signal != null && (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function')) {
        throw ratewiseError('invalid_argument', 'signal must be an AbortSignal')
      }
      if (signal?.aborted) throw signal.reason
      let settled = false
      let ticket: number | null = null
      const onAbort = (): void => {
        if (settled) return
        settled = true
        try {
          this.cancel(ticket!) // withdraws the waiter, or cancels the permit granted meanwhile
        } catch {}
        reject(signal!.reason)
      }
      const done = (error: Error | null, reply: string | null): void => {
        signal?.removeEventListener('abort', onAbort)
        if (settled) return // aborted: onAbort withdrew the ticket or cancelled its permit
        settled = true
        if (error) reject(fromNative(error))
        else resolve(newPermit(this, reply!, o.inputTokens, o.outputTokens))
      }
      ticket = native.engineEnqueueNotify(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude), done)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** `acquireAsync` without `timeoutMs`: decides now, on the thread pool (with a Redis store an
   *  acquire is a network round trip, which must not block the event loop). */
  private async _acquireNowAsync(capability: string, options?: AnyRequestOptions | null): Promise<Permit> {
    const o = requestArgs(options)
    if (options?.signal != null) throw ratewiseError('invalid_argument', 'signal needs timeoutMs')
    const reply = await native.engineAcquireTask(this._h, text('capability', capability), optionalText('lane', o.lane), Float64Array.from(nums), texts('exclude', o.exclude))
    return newPermit(this, reply, o.inputTokens, o.outputTokens)
  }

  /** As `complete`, on the thread pool (never blocks the event loop). */
  async completeAsync(permitId: number, outcome: OutcomeOptions): Promise<PollReport> {
    outcomeArgs(outcome)
    return report(await native.engineCompleteTask(this._h, number('permitId', permitId), status(outcome.status), Float64Array.from(nums), headerList(outcome.headers)))
  }

  /** As `cancel`, on the thread pool. */
  async cancelAsync(permitId: number): Promise<PollReport> {
    return report(await native.engineCancelTask(this._h, number('permitId', permitId)))
  }

  /** As `observe`, on the thread pool. */
  async observeAsync(provider: string, outcome: ObserveOptions): Promise<void> {
    outcomeArgs(outcome)
    await native.engineObserveTask(this._h, text('provider', provider), status(outcome.status), Float64Array.from(nums), headerList(outcome.headers))
  }

  /** As `syncHeaders`, on the thread pool. */
  async syncHeadersAsync(provider: string, headers: HeadersInput): Promise<void> {
    await native.engineSyncHeadersTask(this._h, text('provider', provider), headerList(headers) ?? '')
  }

  /** Whether state is shared through Redis: then acquire, complete, cancel, observe and
   *  syncHeaders are network round trips (each at most the store's timeout_ms); their `*Async`
   *  forms run them off the event loop. */
  get shared(): boolean {
    return native.engineIsShared(this._h)
  }

  /** Completes a permit by id (for callers that keep ids rather than Permit objects); returns
   *  what the poll it triggers did ({granted, expired} ticket ids). */
  complete(permitId: number, outcome: OutcomeOptions): PollReport {
    outcomeArgs(outcome)
    return report(native.engineComplete(this._h, number('permitId', permitId), status(outcome.status), nums, headerList(outcome.headers)))
  }

  /** Cancels a permit, or withdraws a waiting ticket, by id; returns what the poll did. */
  cancel(permitId: number): PollReport {
    return report(native.engineCancel(this._h, number('permitId', permitId)))
  }

  /** Adds a waiting request for at most `options.timeoutMs`, then polls. Returns the ticket and
   *  what the poll did; a granted ticket is a permit of the same id. */
  enqueue(capability: string, options: RequestOptions & { timeoutMs: number }): { ticket: number } & PollReport {
    const o = requestArgs(options)
    nums[2] = number('timeoutMs', o.timeoutMs)
    const reply = native.engineEnqueue(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude))
    const semi = reply.indexOf(';')
    return { ticket: Number(reply.slice(0, semi)), ...report(reply.slice(semi + 1)) }
  }

  /** Grants waiting requests as capacity allows and expires those past their deadline. */
  poll(): PollReport {
    return report(native.enginePoll(this._h))
  }

  /** When a poll could next change something (Unix ms), or null when nothing waits. */
  nextWake(): number | null {
    return native.engineNextWake(this._h)
  }

  /** Records a call made without a permit (absent token counts are 0, requests 1). */
  observe(provider: string, outcome: ObserveOptions): void {
    outcomeArgs(outcome)
    native.engineObserve(this._h, text('provider', provider), status(outcome.status), nums, headerList(outcome.headers))
  }

  /** Feeds a provider's response headers (retry-after, OpenAI and Anthropic rate-limit headers). */
  syncHeaders(provider: string, headers: HeadersInput): void {
    native.engineSyncHeaders(this._h, text('provider', provider), headerList(headers) ?? '')
  }

  /** Health of a provider now, in [0, 1]. */
  health(provider: string): number {
    return native.engineHealth(this._h, text('provider', provider))
  }

  /** Units left in a dimension (the minimum over the provider's quotas of it), or null when the
   *  provider has no quota of it. */
  remaining(provider: string, dimension: QuotaDimension): number | null {
    return native.engineRemaining(this._h, text('provider', provider), text('dimension', dimension))
  }

  /** The provider's circuit: 'closed', 'open' or 'half_open'. */
  circuit(provider: string): 'closed' | 'open' | 'half_open' {
    return native.engineCircuit(this._h, text('provider', provider)) as 'closed' | 'open' | 'half_open'
  }

  /** The engine's state as a plain object. */
  snapshot(): Snapshot {
    return JSON.parse(native.engineSnapshotJson(this._h)) as Snapshot
  }

  /** The snapshot as JSON text (for logs). */
  snapshotJson(): string {
    return native.engineSnapshotJson(this._h)
  }

  /** Adds or replaces a provider (an object as in providers[], or JSON text). */
  upsertProvider(provider: ProviderConfig | string): void {
    native.engineUpsertProvider(this._h, json(provider, 'provider'))
  }

  /** Adds or replaces a capability (an object as in capabilities[], or JSON text). */
  upsertCapability(capability: CapabilityConfig | string): void {
    native.engineUpsertCapability(this._h, json(capability, 'capability'))
  }

  /** Removes a provider; it stays listed in its capabilities as unregistered. */
  removeProvider(name: string): void {
    native.engineRemoveProvider(this._h, text('name', name))
  }

  /** Removes a capability. */
  removeCapability(name: string): void {
    native.engineRemoveCapability(this._h, text('name', name))
  }
}

/** A settable clock for tests and simulations.
 *
 * @example
 * ```ts
 * const clock = new ManualClock(0)
 * const engine = new Engine(config, clock)
 * clock.advance(1000) // one second later, for the engine
 * ```
 */
export class ManualClock {
  private readonly _h: ClockHandle

  static {
    clockHandle = (clock) => clock._h
  }

  /** A clock reading `startMs` (default 0). */
  constructor(startMs = 0) {
    this._h = native.clockNew(number('startMs', startMs))
  }

  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void {
    native.clockAdvance(this._h, number('ms', ms))
  }

  /** The current time in milliseconds. */
  get nowMs(): number {
    return native.clockNow(this._h)
  }
}

/** Splits the addon's decision string `<provider length>:<provider><model length>:<model><rest
 *  JSON>` (lengths in UTF-16 code units), starting at `from`. */
function decisionFrom(text: string, from: number): Decision {
  let colon = text.indexOf(':', from)
  let start = colon + 1
  let end = start + Number(text.slice(from, colon))
  const provider = text.slice(start, end)
  colon = text.indexOf(':', end)
  start = colon + 1
  const modelEnd = start + Number(text.slice(end, colon))
  return newDecision(provider, text.slice(start, modelEnd), text.slice(modelEnd))
}

/** Where a request goes, and why. `provider` and `model` are read at once; the rest when first used.
 *
 * @example
 * ```ts
 * const d = engine.select('chat', { inputTokens: 1200, outputTokens: 400 })
 * console.log(d.provider, d.model, d.score, d.skipped)
 * ```
 */
export class Decision {
  /** The chosen provider. */
  readonly provider: string
  /** The upstream model to call on it (the provider's `model`, default its name). */
  readonly model: string
  private readonly _rest: string
  private _parsed: DecisionDetails | null

  static {
    newDecision = (provider, model, rest) => new Decision(provider, model, rest)
  }

  private constructor(provider: string, model: string, rest: string) {
    this.provider = provider
    this.model = model
    this._rest = rest
    this._parsed = null
  }

  private _get(): DecisionDetails {
    if (this._parsed === null) this._parsed = JSON.parse(this._rest) as DecisionDetails
    return this._parsed
  }

  /** Its score in [0, 1]. */
  get score(): number {
    return this._get().score
  }

  /** Its score terms: quota, health, priority, latency, cost. */
  get breakdown(): Breakdown {
    return this._get().breakdown
  }

  /** Other eligible providers, best first. */
  get alternatives(): Alternative[] {
    return this._get().alternatives
  }

  /** Ineligible providers, in capability order, with the reason. */
  get skipped(): SkippedProvider[] {
    return this._get().skipped
  }

  /** The provider, the model and every parsed field, for `JSON.stringify`. */
  toJSON(): { provider: string; model: string; score: number; breakdown: Breakdown; alternatives: Alternative[]; skipped: SkippedProvider[] } {
    return { provider: this.provider, model: this.model, ...this._get() }
  }
}

/** `done` is read-only to users; a permit sets it itself. */
type Settled = { done: boolean }

/** A reservation on one provider: complete it with what happened, or cancel it if the call was
 *  never sent.
 *
 * @example
 * ```ts
 * const permit = engine.acquire('chat', { inputTokens: 900, outputTokens: 300 })
 * try {
 *   const { data, response } = await openai.chat.completions.create({ model: permit.model, messages }).withResponse()
 *   permit.complete({ status: 'success', inputTokens: data.usage?.prompt_tokens, outputTokens: data.usage?.completion_tokens, headers: response.headers })
 * } catch (e) {
 *   permit.complete({ status: (e as { status?: number }).status ?? 'server_error' })
 *   throw e
 * }
 * ```
 */
export class Permit {
  private readonly _engine: Engine
  /** The permit's id (completing or cancelling it twice throws unknown_permit). */
  readonly id: number
  /** The decision that granted it. */
  readonly decision: Decision
  /** The estimates given at acquire: [inputTokens, outputTokens]. */
  readonly estimates: [number, number]
  /** Whether it was completed or cancelled. */
  readonly done: boolean
  private readonly _started: number

  static {
    newPermit = (engine, text, inputTokens, outputTokens) => new Permit(engine, text, inputTokens, outputTokens)
  }

  private constructor(engine: Engine, text: string, inputTokens?: number | null, outputTokens?: number | null) {
    const colon = text.indexOf(':')
    this._engine = engine
    this.id = Number(text.slice(0, colon))
    this.decision = decisionFrom(text, colon + 1)
    this.estimates = [inputTokens ?? 0, outputTokens ?? 0]
    this.done = false
    this._started = Date.now()
  }

  /** The provider the call must go to. */
  get provider(): string {
    return this.decision.provider
  }

  /** The upstream model to call (the provider's `model`, by default its name). */
  get model(): string {
    return this.decision.model
  }

  /** Settles the permit with the call's outcome (`latencyMs` defaults to the time since acquire). */
  complete(outcome: OutcomeOptions): void {
    const o = outcome && typeof outcome === 'object' && outcome.latencyMs === undefined
      ? { ...outcome, latencyMs: Date.now() - this._started }
      : outcome
    this._engine.complete(this.id, o)
    ;(this as Settled).done = true
  }

  /** The call was never sent: refunds every reservation. */
  cancel(): void {
    this._engine.cancel(this.id)
    ;(this as Settled).done = true
  }

  /** As `complete`, on the thread pool: never blocks the event loop (with a Redis store,
   *  settlement is a network round trip). */
  async completeAsync(outcome: OutcomeOptions): Promise<void> {
    const o = outcome && typeof outcome === 'object' && outcome.latencyMs === undefined
      ? { ...outcome, latencyMs: Date.now() - this._started }
      : outcome
    await this._engine.completeAsync(this.id, o)
    ;(this as Settled).done = true
  }

  /** As `cancel`, on the thread pool. */
  async cancelAsync(): Promise<void> {
    await this._engine.cancelAsync(this.id)
    ;(this as Settled).done = true
  }
}

/** The class of an HTTP status code ('success', 'rate_limited', 'overloaded', ...); a 429 whose
 *  error type is 'insufficient_quota' is 'forbidden'.
 *
 * @example
 * ```ts
 * statusFromHttp(529) // 'overloaded'
 * statusFromHttp(429, 'insufficient_quota') // 'forbidden'
 * ```
 */
export function statusFromHttp(code: number, errorType?: string | null): OutcomeStatus {
  return native.statusFromHttp(number('code', code), optionalText('errorType', errorType)) as OutcomeStatus
}

/** Whether another attempt can succeed after an outcome of `status`: 'rate_limited',
 *  'overloaded', 'server_error' and 'timeout' (the next decision may take it elsewhere, or after
 *  the hold). The SDK wrappers retry exactly these.
 *
 * @example
 * ```ts
 * isRetryable('overloaded') // true
 * isRetryable('client_error') // false
 * ```
 */
export function isRetryable(status: OutcomeStatus): boolean {
  return native.isRetryable(text('status', status))
}
