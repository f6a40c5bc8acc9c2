/*! The error classes of ratewise: one base class, `RatewiseError`, with a stable `code`, and one
 * subclass per code, so that `instanceof` and `err.code` both work. The addon throws plain
 * `Error`s carrying `code` (src/error.rs); the public layer converts them where they cross into
 * JS (`fromNative`), by swapping the prototype: nothing is copied and the success path pays
 * nothing. */

import type { ErrorCode, SkippedProvider } from './ratewise.js'

/**
 * Base class of every error ratewise throws: an `Error` with a stable `code`, the same string in
 * every language (Rust `Error::code()`, Python `exc.code`, C `rw_result_name`).
 *
 * @example
 * ```ts
 * try {
 *   engine.acquire('chat')
 * } catch (e) {
 *   if (e instanceof NoAvailableProviderError) console.log(e.retryAfterMs, e.skipped)
 *   else if (e instanceof RatewiseError) console.log(e.code, e.message)
 *   else throw e
 * }
 * ```
 */
export class RatewiseError extends Error {
  /** The stable error code. */
  code: ErrorCode
  /** For `no_available_provider`: ms until a provider is predicted to be ready, or null. */
  retryAfterMs?: number | null
  /** For `no_available_provider`: every provider of the capability, with the reason it was skipped. */
  skipped?: SkippedProvider[]

  /** An error with `message` and `code` (`options.cause`: the error that led to it). */
  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** The configuration was refused; the message names the JSON path (`providers[1].quotas[0].limit: must be > 0`). */
export class InvalidConfigError extends RatewiseError {
  declare code: 'invalid_config'
  /** An error with `message`. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'invalid_config', options)
  }
}

/** An argument was out of its domain: an unknown lane or status, a negative count, a value that is not JSON... */
export class InvalidArgumentError extends RatewiseError {
  declare code: 'invalid_argument'
  /** An error with `message`. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'invalid_argument', options)
  }
}

/** No capability of that name is configured. */
export class UnknownCapabilityError extends RatewiseError {
  declare code: 'unknown_capability'
  /** An error with `message`. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'unknown_capability', options)
  }
}

/** No provider of that name is registered. */
export class UnknownProviderError extends RatewiseError {
  declare code: 'unknown_provider'
  /** An error with `message`. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'unknown_provider', options)
  }
}

/** The permit was already completed or cancelled, or has expired. */
export class UnknownPermitError extends RatewiseError {
  declare code: 'unknown_permit'
  /** An error with `message`. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'unknown_permit', options)
  }
}

/**
 * No provider can take the request now (or, for a wait, before its timeout).
 *
 * @example
 * ```ts
 * try {
 *   await engine.acquireAsync('chat', { timeoutMs: 5_000 })
 * } catch (e) {
 *   if (e instanceof NoAvailableProviderError) res.setHeader('retry-after', Math.ceil((e.retryAfterMs ?? 1000) / 1000))
 *   throw e
 * }
 * ```
 */
export class NoAvailableProviderError extends RatewiseError {
  declare code: 'no_available_provider'
  /** The earliest time from now, in ms, at which a provider is predicted to be ready; null when
   *  nothing is predictable (e.g. every provider is blocked by concurrency). */
  declare retryAfterMs: number | null
  /** Every provider of the capability, in capability order, with the reason it was skipped. */
  declare skipped: SkippedProvider[]
  /** An error with its prediction and the skipped providers. */
  constructor(message: string, details?: { retryAfterMs?: number | null; skipped?: SkippedProvider[] }, options?: { cause?: unknown }) {
    super(message, 'no_available_provider', options)
    this.retryAfterMs = details?.retryAfterMs ?? null
    this.skipped = details?.skipped ?? []
  }
}

/** The shared store (Redis) did not answer and `on_error` is `closed`. */
export class StoreUnavailableError extends RatewiseError {
  declare code: 'store_unavailable'
  /** An error with `message`. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'store_unavailable', options)
  }
}

/** The shared store holds a bucket whose limit, window, algorithm or settle disagree with this configuration. */
export class StoreConflictError extends RatewiseError {
  declare code: 'store_conflict'
  /** An error with `message`. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'store_conflict', options)
  }
}

const classes: Record<ErrorCode, new (message: string) => RatewiseError> = {
  invalid_config: InvalidConfigError,
  invalid_argument: InvalidArgumentError,
  unknown_capability: UnknownCapabilityError,
  unknown_provider: UnknownProviderError,
  unknown_permit: UnknownPermitError,
  no_available_provider: NoAvailableProviderError,
  store_unavailable: StoreUnavailableError,
  store_conflict: StoreConflictError,
}
// `err.name` is the class's name (on the prototype, so that the addon's errors get it too).
for (const cls of [RatewiseError, ...Object.values(classes)]) {
  Object.defineProperty(cls.prototype, 'name', { value: cls.name, writable: true, configurable: true })
}

/**
 * The addon's error (a plain `Error` with `code`, and for `no_available_provider` also
 * `retryAfterMs` and `skipped`) as an instance of its class: the same object, with the class's
 * prototype. Anything else (a signal's abort reason, a bug) is returned unchanged. Not exported
 * from the package.
 */
export function fromNative(err: unknown): unknown {
  if (err instanceof RatewiseError || !(err instanceof Error)) return err
  const cls = classes[(err as { code?: unknown }).code as ErrorCode] as (typeof classes)[ErrorCode] | undefined
  if (cls === undefined) return err
  Object.setPrototypeOf(err, cls.prototype)
  if (cls === NoAvailableProviderError) {
    const e = err as NoAvailableProviderError
    if (e.retryAfterMs === undefined) e.retryAfterMs = null
    if (e.skipped === undefined) e.skipped = []
  }
  return err
}

/** An error of the class for `code` (the public layer's own argument checks). Not exported from the package. */
export function errorFor(code: ErrorCode, message: string): RatewiseError {
  return new classes[code](message)
}
