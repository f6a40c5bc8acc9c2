"use strict";
/*! The error classes of ratewise: one base class, `RatewiseError`, with a stable `code`, and one
 * subclass per code, so that `instanceof` and `err.code` both work. The addon throws plain
 * `Error`s carrying `code` (src/error.rs); the public layer converts them where they cross into
 * JS (`fromNative`), by swapping the prototype: nothing is copied and the success path pays
 * nothing. */
Object.defineProperty(exports, "__esModule", { value: true });
exports.StoreConflictError = exports.StoreUnavailableError = exports.NoAvailableProviderError = exports.UnknownPermitError = exports.UnknownProviderError = exports.UnknownCapabilityError = exports.InvalidArgumentError = exports.InvalidConfigError = exports.RatewiseError = void 0;
exports.fromNative = fromNative;
exports.errorFor = errorFor;
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
class RatewiseError extends Error {
    /** An error with `message` and `code` (`options.cause`: the error that led to it). */
    constructor(message, code, options) {
        super(message, options);
        this.code = code;
    }
}
exports.RatewiseError = RatewiseError;
/** The configuration was refused; the message names the JSON path (`providers[1].quotas[0].limit: must be > 0`). */
class InvalidConfigError extends RatewiseError {
    /** An error with `message`. */
    constructor(message, options) {
        super(message, 'invalid_config', options);
    }
}
exports.InvalidConfigError = InvalidConfigError;
/** An argument was out of its domain: an unknown lane or status, a negative count, a value that is not JSON... */
class InvalidArgumentError extends RatewiseError {
    /** An error with `message`. */
    constructor(message, options) {
        super(message, 'invalid_argument', options);
    }
}
exports.InvalidArgumentError = InvalidArgumentError;
/** No capability of that name is configured. */
class UnknownCapabilityError extends RatewiseError {
    /** An error with `message`. */
    constructor(message, options) {
        super(message, 'unknown_capability', options);
    }
}
exports.UnknownCapabilityError = UnknownCapabilityError;
/** No provider of that name is registered. */
class UnknownProviderError extends RatewiseError {
    /** An error with `message`. */
    constructor(message, options) {
        super(message, 'unknown_provider', options);
    }
}
exports.UnknownProviderError = UnknownProviderError;
/** The permit was already completed or cancelled, or has expired. */
class UnknownPermitError extends RatewiseError {
    /** An error with `message`. */
    constructor(message, options) {
        super(message, 'unknown_permit', options);
    }
}
exports.UnknownPermitError = UnknownPermitError;
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
class NoAvailableProviderError extends RatewiseError {
    /** An error with its prediction and the skipped providers. */
    constructor(message, details, options) {
        super(message, 'no_available_provider', options);
        this.retryAfterMs = details?.retryAfterMs ?? null;
        this.skipped = details?.skipped ?? [];
    }
}
exports.NoAvailableProviderError = NoAvailableProviderError;
/** The shared store (Redis) did not answer and `on_error` is `closed`. */
class StoreUnavailableError extends RatewiseError {
    /** An error with `message`. */
    constructor(message, options) {
        super(message, 'store_unavailable', options);
    }
}
exports.StoreUnavailableError = StoreUnavailableError;
/** The shared store holds a bucket whose limit, window, algorithm or settle disagree with this configuration. */
class StoreConflictError extends RatewiseError {
    /** An error with `message`. */
    constructor(message, options) {
        super(message, 'store_conflict', options);
    }
}
exports.StoreConflictError = StoreConflictError;
const classes = {
    invalid_config: InvalidConfigError,
    invalid_argument: InvalidArgumentError,
    unknown_capability: UnknownCapabilityError,
    unknown_provider: UnknownProviderError,
    unknown_permit: UnknownPermitError,
    no_available_provider: NoAvailableProviderError,
    store_unavailable: StoreUnavailableError,
    store_conflict: StoreConflictError,
};
// `err.name` is the class's name (on the prototype, so that the addon's errors get it too).
for (const cls of [RatewiseError, ...Object.values(classes)]) {
    Object.defineProperty(cls.prototype, 'name', { value: cls.name, writable: true, configurable: true });
}
/**
 * The addon's error (a plain `Error` with `code`, and for `no_available_provider` also
 * `retryAfterMs` and `skipped`) as an instance of its class: the same object, with the class's
 * prototype. Anything else (a signal's abort reason, a bug) is returned unchanged. Not exported
 * from the package.
 */
function fromNative(err) {
    if (err instanceof RatewiseError || !(err instanceof Error))
        return err;
    const cls = classes[err.code];
    if (cls === undefined)
        return err;
    Object.setPrototypeOf(err, cls.prototype);
    if (cls === NoAvailableProviderError) {
        const e = err;
        if (e.retryAfterMs === undefined)
            e.retryAfterMs = null;
        if (e.skipped === undefined)
            e.skipped = [];
    }
    return err;
}
/** An error of the class for `code` (the public layer's own argument checks). Not exported from the package. */
function errorFor(code, message) {
    return new classes[code](message);
}
