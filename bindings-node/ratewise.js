'use strict'
// ratewise for Node.js: the public classes, thin over the native functions of index.js (generated
// by napi-rs). Arguments are checked and converted here; every decision is made by the Rust core.
// Numbers go to the addon in one reused Float64Array (NaN: absent), which is much cheaper than
// napi reading option objects field by field (bench/README.md).

const native = require('./index.js')

const nums = new Float64Array(6)

/** `"<granted ids>;<expired ids>"` from the addon as {granted, expired} id arrays. */
function report(text) {
  const [g, e] = text.split(';')
  const ids = (s) => (s ? s.split(',').map(Number) : [])
  return { granted: ids(g), expired: ids(e) }
}

function ratewiseError(code, message) {
  const err = new Error(message)
  err.code = code
  return err
}

function number(name, value) {
  if (value === undefined || value === null) return NaN
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw ratewiseError('invalid_argument', `${name} must be a number, got ${typeof value}`)
  }
  return value
}

function text(name, value) {
  if (typeof value !== 'string') throw ratewiseError('invalid_argument', `${name} must be a string, got ${typeof value}`)
  return value
}

function optionalText(name, value) {
  return value === undefined || value === null ? null : text(name, value)
}

function texts(name, value) {
  if (value === undefined || value === null) return null
  if (!Array.isArray(value)) throw ratewiseError('invalid_argument', `${name} must be an array of strings`)
  return value.map((v) => text(name, v))
}

function status(value) {
  if (typeof value === 'string' || typeof value === 'number') return value
  throw ratewiseError('invalid_argument', 'status must be a class name (string) or an HTTP code (number)')
}

/** Headers as [name, value, name, value, ...] from a plain object, a fetch Headers, a Map or pairs. */
function headerList(headers) {
  if (headers === undefined || headers === null) return null
  const out = []
  if (typeof headers === 'object' && (Array.isArray(headers) || typeof headers[Symbol.iterator] === 'function')) {
    for (const pair of headers) {
      if (!pair || pair.length !== 2) throw ratewiseError('invalid_argument', 'headers pairs must be [name, value]')
      out.push(String(pair[0]), String(pair[1]))
    }
    return out
  }
  if (typeof headers === 'object') {
    for (const name of Object.keys(headers)) out.push(name, String(headers[name]))
    return out
  }
  throw ratewiseError('invalid_argument', 'headers must be an object, a Headers, a Map or [name, value] pairs')
}

function json(value, what) {
  if (typeof value === 'string') return value
  let text
  try {
    text = JSON.stringify(value)
  } catch (e) {
    throw ratewiseError('invalid_config', `${what} is not JSON-serialisable: ${e.message}`)
  }
  if (typeof text !== 'string') throw ratewiseError('invalid_config', `${what} must be an object or JSON text`)
  return text
}

function requestArgs(options) {
  const o = options || {}
  nums[0] = number('inputTokens', o.inputTokens)
  nums[1] = number('outputTokens', o.outputTokens)
  return o
}

function outcomeArgs(o) {
  if (!o || typeof o !== 'object') throw ratewiseError('invalid_argument', 'an outcome must be an object with a status')
  nums[0] = number('latencyMs', o.latencyMs)
  nums[1] = number('inputTokens', o.inputTokens)
  nums[2] = number('outputTokens', o.outputTokens)
  nums[3] = number('cachedInputTokens', o.cachedInputTokens)
  nums[4] = number('retryAfterMs', o.retryAfterMs)
  nums[5] = number('requests', o.requests)
}

/** A settable clock for tests and simulations. */
class ManualClock {
  constructor(startMs = 0) {
    this._h = native.clockNew(number('startMs', startMs))
  }

  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms) {
    native.clockAdvance(this._h, number('ms', ms))
  }

  /** The current time in milliseconds. */
  get nowMs() {
    return native.clockNow(this._h)
  }
}

/** Splits the addon's decision string `<provider length>:<provider><rest JSON>`. */
function decisionFrom(text, from) {
  const colon = text.indexOf(':', from)
  const start = colon + 1
  const end = start + Number(text.slice(from, colon))
  return new Decision(text.slice(start, end), text.slice(end))
}

/** Where a request goes, and why. `provider` is read at once; the rest when first used. */
class Decision {
  constructor(provider, rest) {
    this.provider = provider
    this._rest = rest
    this._parsed = null
  }

  _get() {
    if (this._parsed === null) this._parsed = JSON.parse(this._rest)
    return this._parsed
  }

  /** Its score in [0, 1]. */
  get score() {
    return this._get().score
  }

  /** Its score terms: quota, health, priority, latency, cost. */
  get breakdown() {
    return this._get().breakdown
  }

  /** Other eligible providers, best first. */
  get alternatives() {
    return this._get().alternatives
  }

  /** Ineligible providers, in capability order, with the reason. */
  get skipped() {
    return this._get().skipped
  }

  toJSON() {
    return { provider: this.provider, ...this._get() }
  }
}

/** A reservation on one provider: complete it with what happened, or cancel it if the call was
 *  never sent. */
class Permit {
  constructor(engine, text, inputTokens, outputTokens) {
    const colon = text.indexOf(':')
    this._engine = engine
    this.id = Number(text.slice(0, colon))
    this.decision = decisionFrom(text, colon + 1)
    this.estimates = [inputTokens ?? 0, outputTokens ?? 0]
    this.done = false
    this._started = Date.now()
  }

  /** The provider the call must go to. */
  get provider() {
    return this.decision.provider
  }

  /** Settles the permit (`latencyMs` defaults to the time since acquire). */
  complete(outcome) {
    const o = outcome && typeof outcome === 'object' && outcome.latencyMs === undefined
      ? { ...outcome, latencyMs: Date.now() - this._started }
      : outcome
    this._engine.complete(this.id, o)
    this.done = true
  }

  /** The call was never sent: refunds every reservation. */
  cancel() {
    this._engine.cancel(this.id)
    this.done = true
  }

  /** As `complete`, on the thread pool: never blocks the event loop (with a Redis store,
   *  settlement is a network round trip). */
  async completeAsync(outcome) {
    const o = outcome && typeof outcome === 'object' && outcome.latencyMs === undefined
      ? { ...outcome, latencyMs: Date.now() - this._started }
      : outcome
    await this._engine.completeAsync(this.id, o)
    this.done = true
  }

  /** As `cancel`, on the thread pool. */
  async cancelAsync() {
    await this._engine.cancelAsync(this.id)
    this.done = true
  }
}

/** The engine. One instance serves every caller of the process. */
class Engine {
  /** From a configuration object or JSON text, on the system clock or `clock`. */
  constructor(config, clock) {
    this._h = native.engineNew(json(config, 'config'), clock ? clock._h : null)
  }

  /** An engine from JSON configuration text. */
  static fromJson(source, clock) {
    return new Engine(text('text', source), clock)
  }

  /** An engine from a JSON configuration file. */
  static fromFile(path, clock) {
    const engine = Object.create(Engine.prototype)
    engine._h = native.engineFromFile(text('path', path), clock ? clock._h : null)
    return engine
  }

  /** The engine's clock reading in Unix ms. */
  nowMs() {
    return native.engineNow(this._h)
  }

  /** Which provider a request would go to now; changes no state. */
  select(capability, options) {
    const o = requestArgs(options)
    return decisionFrom(native.engineSelect(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude)), 0)
  }

  /** Selects and reserves atomically; returns a Permit to complete or cancel. */
  acquire(capability, options) {
    const o = requestArgs(options)
    const decision = native.engineAcquire(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude))
    return new Permit(this, decision, o.inputTokens, o.outputTokens)
  }

  /** Waits at most `options.timeoutMs` for a permit, in the lane's priority order, without
   *  blocking the event loop: resolves with a Permit, or rejects with `no_available_provider`
   *  when the timeout passes. `options.signal` (an AbortSignal) withdraws the request, or returns
   *  the permit if it was granted meanwhile; the promise then rejects with the signal's reason. */
  acquireAsync(capability, options) {
    if (options == null || options.timeoutMs === undefined) return this._acquireNowAsync(capability, options)
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
      let ticket = null
      const onAbort = () => {
        if (settled) return
        settled = true
        try {
          this.cancel(ticket) // withdraws the waiter, or cancels the permit granted meanwhile
        } catch {}
        reject(signal.reason)
      }
      const done = (error, reply) => {
        signal?.removeEventListener('abort', onAbort)
        if (settled) return // aborted: onAbort withdrew the ticket or cancelled its permit
        settled = true
        if (error) reject(error)
        else resolve(new Permit(this, reply, o.inputTokens, o.outputTokens))
      }
      ticket = native.engineEnqueueNotify(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude), done)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** `acquireAsync` without `timeoutMs`: decides now, on the thread pool (with a Redis store an
   *  acquire is a network round trip, which must not block the event loop). */
  async _acquireNowAsync(capability, options) {
    const o = requestArgs(options)
    if (options?.signal != null) throw ratewiseError('invalid_argument', 'signal needs timeoutMs')
    const reply = await native.engineAcquireTask(this._h, text('capability', capability), optionalText('lane', o.lane), Float64Array.from(nums), texts('exclude', o.exclude))
    return new Permit(this, reply, o.inputTokens, o.outputTokens)
  }

  /** As `complete`, on the thread pool (never blocks the event loop). */
  async completeAsync(permitId, outcome) {
    outcomeArgs(outcome)
    return report(await native.engineCompleteTask(this._h, number('permitId', permitId), status(outcome.status), Float64Array.from(nums), headerList(outcome.headers)))
  }

  /** As `cancel`, on the thread pool. */
  async cancelAsync(permitId) {
    return report(await native.engineCancelTask(this._h, number('permitId', permitId)))
  }

  /** As `observe`, on the thread pool. */
  async observeAsync(provider, outcome) {
    outcomeArgs(outcome)
    await native.engineObserveTask(this._h, text('provider', provider), status(outcome.status), Float64Array.from(nums), headerList(outcome.headers))
  }

  /** As `syncHeaders`, on the thread pool. */
  async syncHeadersAsync(provider, headers) {
    await native.engineSyncHeadersTask(this._h, text('provider', provider), headerList(headers) ?? [])
  }

  /** Whether state is shared through Redis: then acquire, complete, cancel, observe and
   *  syncHeaders are network round trips (each at most the store's timeout_ms); their `*Async`
   *  forms run them off the event loop. */
  get shared() {
    return native.engineIsShared(this._h)
  }

  /** Completes a permit by id (for callers that keep ids rather than Permit objects); returns
   *  what the poll it triggers did ({granted, expired} ticket ids). */
  complete(permitId, outcome) {
    outcomeArgs(outcome)
    return report(native.engineComplete(this._h, number('permitId', permitId), status(outcome.status), nums, headerList(outcome.headers)))
  }

  /** Cancels a permit, or withdraws a waiting ticket, by id; returns what the poll did. */
  cancel(permitId) {
    return report(native.engineCancel(this._h, number('permitId', permitId)))
  }

  /** Adds a waiting request for at most `options.timeoutMs`, then polls. Returns the ticket and
   *  what the poll did; a granted ticket is a permit of the same id. */
  enqueue(capability, options) {
    const o = requestArgs(options)
    nums[2] = number('timeoutMs', o.timeoutMs)
    const reply = native.engineEnqueue(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude))
    const semi = reply.indexOf(';')
    return { ticket: Number(reply.slice(0, semi)), ...report(reply.slice(semi + 1)) }
  }

  /** Grants waiting requests as capacity allows and expires those past their deadline. */
  poll() {
    return report(native.enginePoll(this._h))
  }

  /** When a poll could next change something (Unix ms), or null when nothing waits. */
  nextWake() {
    return native.engineNextWake(this._h)
  }

  /** Records a call made without a permit (absent token counts are 0, requests 1). */
  observe(provider, outcome) {
    outcomeArgs(outcome)
    native.engineObserve(this._h, text('provider', provider), status(outcome.status), nums, headerList(outcome.headers))
  }

  /** Feeds a provider's response headers (retry-after, OpenAI and Anthropic rate-limit headers). */
  syncHeaders(provider, headers) {
    native.engineSyncHeaders(this._h, text('provider', provider), headerList(headers) ?? [])
  }

  /** Health of a provider now, in [0, 1]. */
  health(provider) {
    return native.engineHealth(this._h, text('provider', provider))
  }

  /** Units left in a dimension (the minimum over the provider's quotas of it), or null. */
  remaining(provider, dimension) {
    return native.engineRemaining(this._h, text('provider', provider), text('dimension', dimension))
  }

  /** The provider's circuit: 'closed', 'open' or 'half_open'. */
  circuit(provider) {
    return native.engineCircuit(this._h, text('provider', provider))
  }

  /** The engine's state as a plain object. */
  snapshot() {
    return JSON.parse(native.engineSnapshotJson(this._h))
  }

  /** The snapshot as JSON text (for logs). */
  snapshotJson() {
    return native.engineSnapshotJson(this._h)
  }

  /** Adds or replaces a provider (an object as in providers[], or JSON text). */
  upsertProvider(provider) {
    native.engineUpsertProvider(this._h, json(provider, 'provider'))
  }

  /** Adds or replaces a capability (an object as in capabilities[], or JSON text). */
  upsertCapability(capability) {
    native.engineUpsertCapability(this._h, json(capability, 'capability'))
  }

  /** Removes a provider; it stays listed in its capabilities as unregistered. */
  removeProvider(name) {
    native.engineRemoveProvider(this._h, text('name', name))
  }

  /** Removes a capability. */
  removeCapability(name) {
    native.engineRemoveCapability(this._h, text('name', name))
  }
}

/** The class of an HTTP status code ('success', 'rate_limited', 'overloaded', ...); a 429 whose
 *  error type is 'insufficient_quota' is 'forbidden'. */
function statusFromHttp(code, errorType) {
  return native.statusFromHttp(number('code', code), optionalText('errorType', errorType))
}

module.exports = { Engine, ManualClock, Decision, Permit, statusFromHttp }
