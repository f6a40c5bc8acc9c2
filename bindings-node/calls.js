"use strict";
/*! What the SDK wrappers (openai.ts, anthropic.ts) share: token estimates, the attempt loop
 * (wait for a permit, call with the SDK's retries off, settle, try again on a retryable failure),
 * the classification of SDK errors, and the stream that settles its permit when it ends.
 *
 * Nothing here loads an SDK: the wrappers take the client the user made, and read its errors by
 * duck-typing (`err.status`, `err.headers`, the class names in the prototype chain), so that
 * `require('ratewise')` works without `openai` or `@anthropic-ai/sdk` installed. */
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.Caller = exports.RatewiseStream = void 0;
exports.estimateTokens = estimateTokens;
exports.failureStatus = failureStatus;
exports.rateHeaders = rateHeaders;
exports.warn = warn;
exports.count = count;
const native_js_1 = __importDefault(require("./native.js"));
const errors_js_1 = require("./errors.js");
// ---------------------------------------------------------------------------------------------
// Public types and functions
/**
 * A conservative estimate of the input tokens of any JSON value: a messages array, or an object
 * such as `{ system, messages, tools }`, counted as the core counts it in every language
 * (docs/design.md §12): about one token per 3 ASCII characters, plus a few per message and per
 * request. Use it as `inputTokens` when you acquire a permit yourself; the SDK wrappers call it
 * for you.
 *
 * @example
 * ```ts
 * const messages = [{ role: 'user', content: 'Hello, how are you today?' }]
 * estimateTokens(messages) // 18
 * const permit = await engine.acquireAsync('chat', { inputTokens: estimateTokens(messages), outputTokens: 400, timeoutMs: 30_000 })
 * ```
 *
 * @throws InvalidArgumentError when `value` cannot be written as JSON (a BigInt, a cycle, `undefined`).
 */
function estimateTokens(value) {
    // Plain values (what a request body holds) are counted here, in JS; anything else (a float, a
    // Date, a Map, a typed array, a value nested deeper than the walk goes, a lone surrogate, a
    // cycle, a BigInt...) crosses as its JSON text to the core, which counts it or names the error.
    // test/estimate.test.mjs holds the two ways equal on random values.
    const text = walkText(value, 0);
    if (text >= 0)
        return REQUEST_TOKENS + text + MESSAGE_TOKENS * messageCount(value);
    return estimateTokensJson(value);
}
/** `estimateTokens` through the value's JSON text, counted by the core. */
function estimateTokensJson(value) {
    let text;
    try {
        text = JSON.stringify(value);
    }
    catch (e) {
        throw (0, errors_js_1.errorFor)('invalid_argument', `estimateTokens: the value is not JSON-serialisable: ${e.message}`);
    }
    if (typeof text !== 'string')
        throw (0, errors_js_1.errorFor)('invalid_argument', `estimateTokens: ${typeof value} is not a JSON value`);
    try {
        return native_js_1.default.estimateTokensJson(text);
    }
    catch (e) {
        throw (0, errors_js_1.fromNative)(e);
    }
}
// The core's rule (core/src/estimate.rs, docs/design.md §12), read from the addon once.
const RULE = native_js_1.default.estimateRule();
const IMAGE_TOKENS = RULE.imageTokens;
const MESSAGE_TOKENS = RULE.messageTokens;
const REQUEST_TOKENS = RULE.requestTokens;
const IMAGE_PART_TYPES = new Set(RULE.imagePartTypes);
/** How deep the walk goes before it leaves a value to the core (whose JSON parser stops at 128). */
const WALK_DEPTH = 64;
/** The messages `estimateTokens` counts: an array's elements, else an object's `messages` array's. */
function messageCount(value) {
    if (Array.isArray(value))
        return value.length;
    const messages = value !== null && typeof value === 'object' ? value.messages : undefined;
    return Array.isArray(messages) ? messages.length : 0;
}
/** The text tokens of a plain JSON value, as the core counts them once the value is JSON text;
 *  -1 when the value holds anything else (then its JSON text goes to the core). Plain: strings
 *  without lone surrogates, safe integers, booleans, null, arrays and objects whose prototype is
 *  Array's, Object's or null (without `toJSON`), and `undefined` as an object's value (which
 *  JSON drops). */
function walkText(value, depth) {
    switch (typeof value) {
        case 'string':
            return stringTokens(value);
        case 'number':
            // An integer's JSON text is its digits (and '-'): ASCII. A float's text is the core's to write.
            return Number.isSafeInteger(value) ? Math.ceil(String(value).length / 3) : -1;
        case 'boolean':
            return 1;
        case 'object':
            break;
        default:
            return -1;
    }
    if (value === null)
        return 0;
    if (depth >= WALK_DEPTH)
        return -1;
    let total = 0;
    const proto = Object.getPrototypeOf(value);
    if (proto === Array.prototype) {
        const items = value;
        for (let i = 0; i < items.length; i++) {
            const t = walkText(items[i], depth + 1); // a hole or undefined (JSON: null) goes to the core
            if (t < 0)
                return -1;
            total += t;
        }
        return total;
    }
    if ((proto !== Object.prototype && proto !== null) || typeof value.toJSON === 'function')
        return -1;
    const keys = Object.keys(value);
    for (let i = 0; i < keys.length; i++) {
        const key = keys[i];
        // (An own "__proto__" key, which JSON.parse makes, shadows the accessor: this reads its value.)
        const v = value[key];
        if (v === undefined)
            continue;
        if (stringTokens(key) < 0)
            return -1; // keys are not counted, but a lone surrogate is refused
        const t = walkText(v, depth + 1);
        if (t < 0)
            return -1;
        total += t;
    }
    // An image part counts IMAGE_TOKENS whatever it holds (its values were walked only to be sure
    // that they are plain, as JSON text of them must be).
    return IMAGE_PART_TYPES.has(value.type) ? IMAGE_TOKENS : total;
}
/** `⌈(a + 2n) / 3⌉` for `a` ASCII bytes and `n` other bytes of the string's UTF-8; -1 for a lone
 *  surrogate (which JSON text escapes and the core refuses). */
function stringTokens(s) {
    let units = 0;
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c < 0x80)
            units += 1;
        else if (c < 0x800)
            units += 4; // two bytes
        else if (c < 0xd800 || c > 0xdfff)
            units += 6; // three bytes
        else if (c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
            units += 8; // a surrogate pair: four bytes
            i++;
        }
        else
            return -1;
    }
    return Math.ceil(units / 3);
}
// Opened to Caller#stream by the class's static block (its constructor stays private).
let newStream;
/**
 * A streamed answer: iterate it with `for await`, as the SDK's own stream (the items are the SDK's
 * own chunks or events). ratewise settles the call's permit when the stream ends: `success` with
 * the reported usage; `interrupted` when it is cut, aborted (`controller.abort()`) or abandoned
 * (`break`), which keeps the call's tokens charged. A stream that is never iterated nor aborted
 * holds its permit until the engine's `permit_ttl_ms`. It is not the SDK's `Stream` class: it
 * iterates once, and has no `tee()` or `toReadableStream()`.
 *
 * @example
 * ```ts
 * const stream = await client.chat.completions.create({ model: 'chat', messages, stream: true })
 * for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '')
 * ```
 */
class RatewiseStream {
    static {
        newStream = (caller, permit, started, source, response, watch) => new RatewiseStream(caller, permit, started, source, response, watch);
    }
    constructor(caller, permit, started, source, response, watch) {
        this.controller = source.controller;
        this.response = response;
        this.provider = permit.provider;
        this.model = permit.model;
        this._source = source;
        this._watch = watch;
        this._caller = caller;
        this._permit = permit;
        this._started = started;
        this._busy = false;
        // Aborted while nobody waits on `next()` (between items, or never iterated): settle now.
        // While a `next()` is out, it settles itself when the source returns or throws.
        this.controller.signal.addEventListener('abort', () => {
            if (!this._busy)
                this._end(this._stopStatus());
        }, { once: true });
    }
    /** Iterates the SDK's items (a hidden usage chunk that ratewise asked for is skipped). */
    [Symbol.asyncIterator]() {
        const it = this._source[Symbol.asyncIterator]();
        return {
            next: () => this._next(it),
            return: (value) => this._return(it, value),
        };
    }
    async _next(it) {
        this._busy = true;
        try {
            for (;;) {
                let r;
                try {
                    r = await it.next();
                }
                catch (err) {
                    this._end('interrupted'); // a cut stream: the provider charged it
                    throw err;
                }
                if (r.done) {
                    this._end(this._stopStatus());
                    return r;
                }
                if (!this._watch.see(r.value))
                    return r;
            }
        }
        finally {
            this._busy = false;
        }
    }
    async _return(it, value) {
        const status = this._stopStatus();
        this._busy = true; // the source's `return()` aborts its controller: settle here, once
        try {
            if (it.return)
                await it.return();
        }
        finally {
            this._busy = false;
            this._end(status);
        }
        return { done: true, value: value };
    }
    /** `success` once the provider finished its answer (and nothing aborted it), else `interrupted`. */
    _stopStatus() {
        return this._watch.finished && !this.controller.signal.aborted ? 'success' : 'interrupted';
    }
    _end(status) {
        const permit = this._permit;
        if (permit === null)
            return;
        this._permit = null;
        const u = this._watch.usage(status);
        const settled = this._caller.settle(permit, {
            status,
            latencyMs: Date.now() - this._started,
            inputTokens: u.inputTokens,
            outputTokens: u.outputTokens,
            cachedInputTokens: u.cachedInputTokens,
            cacheWriteInputTokens: u.cacheWriteInputTokens,
            headers: rateHeaders(this.response.headers),
        });
        if (settled)
            settled.then(undefined, warn);
    }
}
exports.RatewiseStream = RatewiseStream;
const positive = (name, value, fallback) => {
    if (value === undefined || value === null)
        return fallback;
    if (typeof value !== 'number' || !(value > 0))
        throw (0, errors_js_1.errorFor)('invalid_argument', `${name} must be a positive number`);
    return value;
};
/** A wrapper's settings, checked once, and its engine. */
class Caller {
    constructor(client, engine, options, what) {
        /** This wrapper's calls now waiting in the engine's queue. */
        this._waiting = 0;
        if (client === null || typeof client !== 'object')
            throw (0, errors_js_1.errorFor)('invalid_argument', `${what}: client must be an SDK client object`);
        if (engine === null || typeof engine !== 'object' || typeof engine.acquireAsync !== 'function') {
            throw (0, errors_js_1.errorFor)('invalid_argument', `${what}: engine must be a ratewise Engine`);
        }
        const o = options ?? {};
        if (o.capability != null && typeof o.capability !== 'string')
            throw (0, errors_js_1.errorFor)('invalid_argument', 'capability must be a string');
        if (o.lane != null && typeof o.lane !== 'string')
            throw (0, errors_js_1.errorFor)('invalid_argument', 'lane must be a string');
        this.engine = engine;
        this.capability = o.capability ?? null;
        this.lane = o.lane ?? null;
        this.timeoutMs = positive('timeoutMs', o.timeoutMs, 30_000);
        this.maxAttempts = Math.floor(positive('maxAttempts', o.maxAttempts, 3));
        if (this.maxAttempts < 1)
            throw (0, errors_js_1.errorFor)('invalid_argument', 'maxAttempts must be at least 1');
        this.defaultOutputTokens = o.defaultOutputTokens === 0 ? 0 : positive('defaultOutputTokens', o.defaultOutputTokens, 1024);
        this.signal = o.signal ?? null;
        this.shared = engine.shared;
    }
    /** The capability of a call: the fixed one, else the body's `model`. */
    capabilityOf(body) {
        const c = this.capability ?? body.model;
        if (typeof c !== 'string')
            throw (0, errors_js_1.errorFor)('invalid_argument', 'the body needs a `model` naming a capability (or give the wrapper a `capability`)');
        return c;
    }
    /**
     * A permit: at once when one is free, else after waiting in the lane for at most `remainingMs`.
     *
     * In memory, a non-waiting `acquire` is tried first: it costs a fraction of a wait that is
     * granted at once (no hop through the engine's notifier thread). A refused try counts in the
     * snapshot's `acquires` and `refusals`, so it is not made while a call of this wrapper is
     * already waiting (the queue would refuse it: those waiters rank first).
     */
    acquire(capability, inputTokens, outputTokens, remainingMs, signal, tried = null) {
        if (signal?.aborted)
            throw signal.reason;
        if (!this.shared && this._waiting === 0) {
            try {
                // On a retry: another provider that can take it now, rather than the one that failed.
                return this.engine.acquire(capability, { lane: this.lane, inputTokens, outputTokens, exclude: tried });
            }
            catch (e) {
                if (!(e instanceof errors_js_1.NoAvailableProviderError) || remainingMs <= 0)
                    throw e;
            }
        }
        this._waiting++;
        return this.engine.acquireAsync(capability, {
            lane: this.lane,
            inputTokens,
            outputTokens,
            timeoutMs: Math.max(1, Math.ceil(remainingMs)),
            signal: signal ?? undefined,
        }).then((permit) => {
            this._waiting--;
            return permit;
        }, (e) => {
            this._waiting--;
            throw e;
        });
    }
    /** Settles a permit; a failure to settle (an expired permit) is a warning, never the call's error. */
    settle(permit, outcome) {
        if (this.shared)
            return permit.completeAsync(outcome).then(undefined, warn);
        try {
            permit.complete(outcome);
        }
        catch (e) {
            warn(e);
        }
        return undefined;
    }
    /** Refunds a permit whose call was never sent. */
    cancel(permit) {
        if (this.shared)
            return permit.cancelAsync().then(undefined, warn);
        try {
            permit.cancel();
        }
        catch (e) {
            warn(e);
        }
        return undefined;
    }
    /** The wrapper's signal and a call's own, as one (either aborts). */
    signalFor(own) {
        const mine = this.signal;
        if (own == null)
            return mine;
        if (mine === null || own === mine)
            return own;
        if (typeof AbortSignal.any === 'function')
            return AbortSignal.any([mine, own]);
        const both = new AbortController();
        const abort = (s) => () => both.abort(s.reason);
        if (mine.aborted || own.aborted)
            both.abort(mine.aborted ? mine.reason : own.reason);
        mine.addEventListener('abort', abort(mine), { once: true });
        own.addEventListener('abort', abort(own), { once: true });
        return both.signal;
    }
    /**
     * Sends a call until it gets a response, at most `maxAttempts` times and until the deadline:
     * each attempt waits for a permit, calls `call(model, signal)` (the SDK, retries off), and on a
     * failure settles the permit with the failure (status, headers) and retries if it is
     * retryable; any other failure is thrown unchanged after settlement. The successful response's
     * permit is returned unsettled.
     */
    async send(capability, inputTokens, outputTokens, signal, call) {
        const deadline = Date.now() + this.timeoutMs;
        let last;
        let tried = null;
        for (let attempt = 1;; attempt++) {
            let permit;
            try {
                const p = this.acquire(capability, inputTokens, outputTokens, deadline - Date.now(), signal, tried);
                permit = p instanceof Promise ? await p : p;
            }
            catch (e) {
                // Out of time after a failure: the provider's error says why, the engine's what it predicts.
                if (last !== undefined && e instanceof errors_js_1.NoAvailableProviderError && e.cause === undefined)
                    e.cause = last;
                throw e;
            }
            if (signal?.aborted) {
                await this.cancel(permit);
                throw signal.reason;
            }
            const started = Date.now();
            let sent;
            try {
                sent = await call(permit.model).withResponse();
            }
            catch (err) {
                const status = failureStatus(err, signal);
                let again;
                if (status === null || status === 'not_sent') {
                    await this.cancel(permit);
                    again = status === 'not_sent'; // a refused connection: nothing reached the provider
                }
                else {
                    await this.settle(permit, { status, latencyMs: Date.now() - started, headers: rateHeaders(err.headers) });
                    again = native_js_1.default.isRetryable(status);
                }
                if (!again || attempt >= this.maxAttempts || Date.now() >= deadline || signal?.aborted)
                    throw err;
                (tried ??= []).push(permit.provider);
                last = err;
                continue;
            }
            return { permit, data: sent.data, response: sent.response, started };
        }
    }
    /** Settles a JSON answer's permit with its usage and headers. */
    done(sent, usage) {
        return this.settle(sent.permit, {
            status: 'success',
            latencyMs: Date.now() - sent.started,
            inputTokens: usage.inputTokens,
            outputTokens: usage.outputTokens,
            cachedInputTokens: usage.cachedInputTokens,
            cacheWriteInputTokens: usage.cacheWriteInputTokens,
            headers: rateHeaders(sent.response.headers),
        });
    }
    /** A stream over a successful streaming send, which settles its permit when it ends. */
    stream(sent, watch) {
        return newStream(this, sent.permit, sent.started, sent.data, sent.response, watch);
    }
}
exports.Caller = Caller;
/** Error codes of a connection that failed before the request was written (docs/design.md §6). */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED']);
/** The `code` of the first error in `err`'s cause chain that has one. */
function causeCode(err) {
    for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
        const c = e.code;
        if (typeof c === 'string' && NOT_SENT.has(c))
            return c;
        const errors = e.errors; // an AggregateError (happy eyeballs)
        if (Array.isArray(errors) && errors.some((x) => causeCode(x) !== null))
            return 'aggregate';
        e = e.cause;
    }
    return null;
}
/** How an SDK failure settles (docs/design.md §6): an HTTP class (or code); `not_sent` when the
 *  connection failed before the request was written (cancel, then retry); `timeout`;
 *  `server_error` when the connection was lost after sending; `interrupted` when the caller
 *  aborted; or null when it is not an SDK error (the permit is cancelled, nothing retried). */
function failureStatus(err, signal) {
    if (err === null || typeof err !== 'object')
        return null;
    const e = err;
    if (typeof e.status === 'number') {
        const type = typeof e.type === 'string' ? e.type : typeof e.code === 'string' ? e.code : null;
        try {
            return native_js_1.default.statusFromHttp(e.status, type);
        }
        catch {
            return 'server_error'; // a status outside 100-599
        }
    }
    for (let p = Object.getPrototypeOf(err); p !== null && p !== Error.prototype && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
        const name = p.constructor?.name;
        if (name === 'APIUserAbortError')
            return 'interrupted';
        if (name === 'APIConnectionTimeoutError')
            return 'timeout';
        if (name === 'APIConnectionError')
            return causeCode(err) !== null ? 'not_sent' : 'server_error';
    }
    if (e.name === 'AbortError' || signal?.aborted)
        return 'interrupted';
    if (e.name === 'TimeoutError')
        return 'timeout';
    return null;
}
/** The headers ratewise reads, as pairs: `retry-after(-ms)`, the OpenAI and Anthropic rate-limit
 *  families, and `date` when one of them may need it (an HTTP-date retry-after, Anthropic's reset
 *  instants). A response has dozens of others that need not cross into the addon. */
function rateHeaders(headers) {
    if (headers === null || typeof headers !== 'object')
        return null;
    const out = [];
    let date = null;
    let dated = false;
    const take = (name, value) => {
        switch (name.charCodeAt(0)) {
            case 120: // x
                if (name.startsWith('x-ratelimit-'))
                    out.push([name, value]);
                break;
            case 97: // a
                if (name.startsWith('anthropic-ratelimit-')) {
                    out.push([name, value]);
                    dated = true;
                }
                break;
            case 114: // r
                if (name.startsWith('retry-after')) {
                    out.push([name, value]);
                    dated = true;
                }
                break;
            case 100: // d
                if (name === 'date')
                    date = value;
                break;
        }
    };
    if (typeof headers[Symbol.iterator] === 'function') {
        for (const [name, value] of headers)
            take(name, value);
    }
    else {
        for (const name of Object.keys(headers)) {
            const value = headers[name];
            if (value != null)
                take(name.toLowerCase(), String(value));
        }
    }
    if (dated && date !== null)
        out.push(['date', date]);
    return out;
}
/** A settlement that failed (an expired permit, a store that did not answer) is reported as a
 *  process warning: the call itself went through, and its answer must not be lost. */
function warn(e) {
    const message = `ratewise: could not settle a call: ${e?.message ?? String(e)}`;
    if (typeof process?.emitWarning === 'function')
        process.emitWarning(message, 'RatewiseWarning');
}
/** A non-negative integer, or undefined (not reported). */
function count(value) {
    return typeof value === 'number' && value >= 0 ? value : undefined;
}
