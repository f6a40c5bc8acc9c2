/*! The error classes of ratewise: one base class, `RatewiseError`, with a stable `code`, and one
 * subclass per code, so that `instanceof` and `err.code` both work. The addon throws plain
 * `Error`s carrying `code` (src/error.rs); the public layer converts them where they cross into
 * JS (`fromNative`), by swapping the prototype: nothing is copied and the success path pays
 * nothing. */
import type { ErrorCode, SkippedProvider } from './ratewise.js';
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
export declare class RatewiseError extends Error {
    /** The stable error code. */
    code: ErrorCode;
    /** For `no_available_provider`: ms until a provider is predicted to be ready, or null. */
    retryAfterMs?: number | null;
    /** For `no_available_provider`: every provider of the capability, with the reason it was skipped. */
    skipped?: SkippedProvider[];
    /** An error with `message` and `code` (`options.cause`: the error that led to it). */
    constructor(message: string, code: ErrorCode, options?: {
        cause?: unknown;
    });
}
/** The configuration was refused; the message names the JSON path (`providers[1].quotas[0].limit: must be > 0`). */
export declare class InvalidConfigError extends RatewiseError {
    code: 'invalid_config';
    /** An error with `message`. */
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/** An argument was out of its domain: an unknown lane or status, a negative count, a value that is not JSON... */
export declare class InvalidArgumentError extends RatewiseError {
    code: 'invalid_argument';
    /** An error with `message`. */
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/** No capability of that name is configured. */
export declare class UnknownCapabilityError extends RatewiseError {
    code: 'unknown_capability';
    /** An error with `message`. */
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/** No provider of that name is registered. */
export declare class UnknownProviderError extends RatewiseError {
    code: 'unknown_provider';
    /** An error with `message`. */
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/** The permit was already completed or cancelled, or has expired. */
export declare class UnknownPermitError extends RatewiseError {
    code: 'unknown_permit';
    /** An error with `message`. */
    constructor(message: string, options?: {
        cause?: unknown;
    });
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
export declare class NoAvailableProviderError extends RatewiseError {
    code: 'no_available_provider';
    /** The earliest time from now, in ms, at which a provider is predicted to be ready; null when
     *  nothing is predictable (e.g. every provider is blocked by concurrency). */
    retryAfterMs: number | null;
    /** Every provider of the capability, in capability order, with the reason it was skipped. */
    skipped: SkippedProvider[];
    /** An error with its prediction and the skipped providers. */
    constructor(message: string, details?: {
        retryAfterMs?: number | null;
        skipped?: SkippedProvider[];
    }, options?: {
        cause?: unknown;
    });
}
/** The shared store (Redis) did not answer and `on_error` is `closed`. */
export declare class StoreUnavailableError extends RatewiseError {
    code: 'store_unavailable';
    /** An error with `message`. */
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/** The shared store holds a bucket whose limit, window, algorithm or settle disagree with this configuration. */
export declare class StoreConflictError extends RatewiseError {
    code: 'store_conflict';
    /** An error with `message`. */
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/**
 * The addon's error (a plain `Error` with `code`, and for `no_available_provider` also
 * `retryAfterMs` and `skipped`) as an instance of its class: the same object, with the class's
 * prototype. Anything else (a signal's abort reason, a bug) is returned unchanged. Not exported
 * from the package.
 */
export declare function fromNative(err: unknown): unknown;
/** An error of the class for `code` (the public layer's own argument checks). Not exported from the package. */
export declare function errorFor(code: ErrorCode, message: string): RatewiseError;
