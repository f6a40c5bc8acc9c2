"use strict";
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
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.Permit = exports.Decision = exports.ManualClock = exports.Engine = exports.RatewiseStream = exports.estimateTokens = exports.wrapAnthropic = exports.wrapOpenAI = exports.StoreConflictError = exports.StoreUnavailableError = exports.NoAvailableProviderError = exports.UnknownPermitError = exports.UnknownProviderError = exports.UnknownCapabilityError = exports.InvalidArgumentError = exports.InvalidConfigError = exports.RatewiseError = void 0;
exports.statusFromHttp = statusFromHttp;
exports.isRetryable = isRetryable;
// A CommonJS module (package.json has no "type"): tsc turns each `export` into `exports.Name = ...`,
// which Node's ESM loader detects, so `require('ratewise')` and `import { Engine } from 'ratewise'`
// both work; tsc also sets a non-enumerable `__esModule` flag.
const native_js_1 = __importDefault(require("./native.js"));
const errors_js_1 = require("./errors.js");
var errors_js_2 = require("./errors.js");
Object.defineProperty(exports, "RatewiseError", { enumerable: true, get: function () { return errors_js_2.RatewiseError; } });
Object.defineProperty(exports, "InvalidConfigError", { enumerable: true, get: function () { return errors_js_2.InvalidConfigError; } });
Object.defineProperty(exports, "InvalidArgumentError", { enumerable: true, get: function () { return errors_js_2.InvalidArgumentError; } });
Object.defineProperty(exports, "UnknownCapabilityError", { enumerable: true, get: function () { return errors_js_2.UnknownCapabilityError; } });
Object.defineProperty(exports, "UnknownProviderError", { enumerable: true, get: function () { return errors_js_2.UnknownProviderError; } });
Object.defineProperty(exports, "UnknownPermitError", { enumerable: true, get: function () { return errors_js_2.UnknownPermitError; } });
Object.defineProperty(exports, "NoAvailableProviderError", { enumerable: true, get: function () { return errors_js_2.NoAvailableProviderError; } });
Object.defineProperty(exports, "StoreUnavailableError", { enumerable: true, get: function () { return errors_js_2.StoreUnavailableError; } });
Object.defineProperty(exports, "StoreConflictError", { enumerable: true, get: function () { return errors_js_2.StoreConflictError; } });
var openai_js_1 = require("./openai.js");
Object.defineProperty(exports, "wrapOpenAI", { enumerable: true, get: function () { return openai_js_1.wrapOpenAI; } });
var anthropic_js_1 = require("./anthropic.js");
Object.defineProperty(exports, "wrapAnthropic", { enumerable: true, get: function () { return anthropic_js_1.wrapAnthropic; } });
var calls_js_1 = require("./calls.js");
Object.defineProperty(exports, "estimateTokens", { enumerable: true, get: function () { return calls_js_1.estimateTokens; } });
Object.defineProperty(exports, "RatewiseStream", { enumerable: true, get: function () { return calls_js_1.RatewiseStream; } });
/** The addon's functions, each converting the errors it throws (or rejects with) into the
 *  classes of errors.ts. One call frame and a try block, which cost nothing measurable. */
const native = (() => {
    const out = {};
    for (const [name, f] of Object.entries(native_js_1.default)) {
        if (typeof f !== 'function')
            out[name] = f;
        else if (name.endsWith('Task')) {
            out[name] = (a, b, c, d, e, g) => f(a, b, c, d, e, g).then(undefined, (err) => {
                throw (0, errors_js_1.fromNative)(err);
            });
        }
        else {
            out[name] = (a, b, c, d, e, g) => {
                try {
                    return f(a, b, c, d, e, g);
                }
                catch (err) {
                    throw (0, errors_js_1.fromNative)(err);
                }
            };
        }
    }
    return out;
})();
const nums = new Float64Array(7);
/** `"<granted ids>;<expired ids>"` from the addon as {granted, expired} id arrays. */
function report(text) {
    const [g, e] = text.split(';');
    const ids = (s) => (s ? s.split(',').map(Number) : []);
    return { granted: ids(g), expired: ids(e) };
}
function ratewiseError(code, message) {
    return (0, errors_js_1.errorFor)(code, message);
}
function number(name, value) {
    if (value === undefined || value === null)
        return NaN;
    if (typeof value !== 'number' || Number.isNaN(value)) {
        throw ratewiseError('invalid_argument', `${name} must be a number, got ${typeof value}`);
    }
    return value;
}
function text(name, value) {
    if (typeof value !== 'string')
        throw ratewiseError('invalid_argument', `${name} must be a string, got ${typeof value}`);
    return value;
}
function optionalText(name, value) {
    return value === undefined || value === null ? null : text(name, value);
}
function texts(name, value) {
    if (value === undefined || value === null)
        return null;
    if (!Array.isArray(value))
        throw ratewiseError('invalid_argument', `${name} must be an array of strings`);
    return value.map((v) => text(name, v));
}
function status(value) {
    if (typeof value === 'string' || typeof value === 'number')
        return value;
    throw ratewiseError('invalid_argument', 'status must be a class name (string) or an HTTP code (number)');
}
/** Headers from a plain object, a fetch Headers, a Map or pairs, as the addon takes them: one
 *  string, each name and value followed by a line break (a line break inside one, which no HTTP
 *  header can hold, is written as a space). */
function headerList(headers) {
    if (headers === undefined || headers === null)
        return null;
    let out = '';
    const add = (name, value) => {
        let n = String(name);
        let v = String(value);
        if (n.includes('\n'))
            n = n.replaceAll('\n', ' ');
        if (v.includes('\n'))
            v = v.replaceAll('\n', ' ');
        out += n + '\n' + v + '\n';
    };
    if (typeof headers === 'object' && (Array.isArray(headers) || typeof headers[Symbol.iterator] === 'function')) {
        for (const pair of headers) {
            if (!pair || pair.length !== 2)
                throw ratewiseError('invalid_argument', 'headers pairs must be [name, value]');
            add(pair[0], pair[1]);
        }
        return out;
    }
    if (typeof headers === 'object') {
        for (const name of Object.keys(headers))
            add(name, headers[name]);
        return out;
    }
    throw ratewiseError('invalid_argument', 'headers must be an object, a Headers, a Map or [name, value] pairs');
}
/** The path (as the core names paths) of the first NaN or infinity in `value`, if any:
 * JSON.stringify would write it as `null`, which the configuration reads as absent. */
function nonFinite(value, path) {
    if (typeof value === 'number')
        return Number.isFinite(value) ? null : path;
    if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
            const found = nonFinite(value[i], `${path}[${i}]`);
            if (found !== null)
                return found;
        }
    }
    else if (value !== null && typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) {
            const found = nonFinite(v, path ? `${path}.${k}` : k);
            if (found !== null)
                return found;
        }
    }
    return null;
}
function json(value, what) {
    if (typeof value === 'string')
        return value;
    const bad = nonFinite(value, what === 'config' ? '' : what);
    if (bad !== null)
        throw ratewiseError('invalid_config', `${bad || what}: must be a finite number`);
    let text;
    try {
        text = JSON.stringify(value);
    }
    catch (e) {
        throw ratewiseError('invalid_config', `${what} is not JSON-serialisable: ${e.message}`);
    }
    if (typeof text !== 'string')
        throw ratewiseError('invalid_config', `${what} must be an object or JSON text`);
    return text;
}
function requestArgs(options) {
    const o = options || {};
    nums[0] = number('inputTokens', o.inputTokens);
    nums[1] = number('outputTokens', o.outputTokens);
    return o;
}
function outcomeArgs(o) {
    if (!o || typeof o !== 'object')
        throw ratewiseError('invalid_argument', 'an outcome must be an object with a status');
    nums[0] = number('latencyMs', o.latencyMs);
    nums[1] = number('inputTokens', o.inputTokens);
    nums[2] = number('outputTokens', o.outputTokens);
    nums[3] = number('cachedInputTokens', o.cachedInputTokens);
    nums[4] = number('retryAfterMs', o.retryAfterMs);
    nums[5] = number('requests', o.requests);
    nums[6] = number('cacheWriteInputTokens', o.cacheWriteInputTokens);
}
// What the classes below open to each other and to no one else (set in their static blocks, so
// that their constructors and handles stay private in the declarations).
let clockHandle;
let newDecision;
let newPermit;
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
class Engine {
    /** From a configuration object or JSON text, on the system clock or `clock`. */
    constructor(config, clock) {
        this._h = native.engineNew(json(config, 'config'), clock ? clockHandle(clock) : null);
    }
    /** An engine from JSON configuration text. */
    static fromJson(source, clock) {
        return new Engine(text('text', source), clock);
    }
    /** An engine from a JSON configuration file. */
    static fromFile(path, clock) {
        const engine = Object.create(Engine.prototype);
        engine._h = native.engineFromFile(text('path', path), clock ? clockHandle(clock) : null);
        return engine;
    }
    /** The engine's clock reading in Unix ms. */
    nowMs() {
        return native.engineNow(this._h);
    }
    /** Which provider a request would go to now; changes no state. */
    select(capability, options) {
        const o = requestArgs(options);
        return decisionFrom(native.engineSelect(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude)), 0);
    }
    /** Selects and reserves atomically; returns a Permit to complete or cancel. */
    acquire(capability, options) {
        const o = requestArgs(options);
        const decision = native.engineAcquire(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude));
        return newPermit(this, decision, o.inputTokens, o.outputTokens);
    }
    /** Waits at most `options.timeoutMs` for a permit, in the lane's priority order, without
     *  blocking the event loop: resolves with a Permit, or rejects with `no_available_provider`
     *  when the timeout passes. `options.signal` (an AbortSignal) withdraws the request, or returns
     *  the permit if it was granted meanwhile; the promise then rejects with the signal's reason.
     *  Without `timeoutMs` it decides now, on the thread pool (with a Redis store an acquire is a
     *  network round trip). */
    acquireAsync(capability, options) {
        if (options == null || options.timeoutMs === undefined)
            return this._acquireNowAsync(capability, options);
        // Every failure, bad arguments included, is a rejection (the executor's throws reject).
        return new Promise((resolve, reject) => {
            const o = requestArgs(options);
            nums[2] = number('timeoutMs', o.timeoutMs);
            const signal = o.signal;
            if (signal != null && (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function')) {
                throw ratewiseError('invalid_argument', 'signal must be an AbortSignal');
            }
            if (signal?.aborted)
                throw signal.reason;
            let settled = false;
            let ticket = null;
            const onAbort = () => {
                if (settled)
                    return;
                settled = true;
                try {
                    this.cancel(ticket); // withdraws the waiter, or cancels the permit granted meanwhile
                }
                catch { }
                reject(signal.reason);
            };
            const done = (error, reply) => {
                signal?.removeEventListener('abort', onAbort);
                if (settled)
                    return; // aborted: onAbort withdrew the ticket or cancelled its permit
                settled = true;
                if (error)
                    reject((0, errors_js_1.fromNative)(error));
                else
                    resolve(newPermit(this, reply, o.inputTokens, o.outputTokens));
            };
            ticket = native.engineEnqueueNotify(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude), done);
            signal?.addEventListener('abort', onAbort, { once: true });
        });
    }
    /** `acquireAsync` without `timeoutMs`: decides now, on the thread pool (with a Redis store an
     *  acquire is a network round trip, which must not block the event loop). */
    async _acquireNowAsync(capability, options) {
        const o = requestArgs(options);
        if (options?.signal != null)
            throw ratewiseError('invalid_argument', 'signal needs timeoutMs');
        const reply = await native.engineAcquireTask(this._h, text('capability', capability), optionalText('lane', o.lane), Float64Array.from(nums), texts('exclude', o.exclude));
        return newPermit(this, reply, o.inputTokens, o.outputTokens);
    }
    /** As `complete`, on the thread pool (never blocks the event loop). */
    async completeAsync(permitId, outcome) {
        outcomeArgs(outcome);
        return report(await native.engineCompleteTask(this._h, number('permitId', permitId), status(outcome.status), Float64Array.from(nums), headerList(outcome.headers)));
    }
    /** As `cancel`, on the thread pool. */
    async cancelAsync(permitId) {
        return report(await native.engineCancelTask(this._h, number('permitId', permitId)));
    }
    /** As `observe`, on the thread pool. */
    async observeAsync(provider, outcome) {
        outcomeArgs(outcome);
        await native.engineObserveTask(this._h, text('provider', provider), status(outcome.status), Float64Array.from(nums), headerList(outcome.headers));
    }
    /** As `syncHeaders`, on the thread pool. */
    async syncHeadersAsync(provider, headers) {
        await native.engineSyncHeadersTask(this._h, text('provider', provider), headerList(headers) ?? '');
    }
    /** Whether state is shared through Redis: then acquire, complete, cancel, observe and
     *  syncHeaders are network round trips (each at most the store's timeout_ms); their `*Async`
     *  forms run them off the event loop. */
    get shared() {
        return native.engineIsShared(this._h);
    }
    /** Completes a permit by id (for callers that keep ids rather than Permit objects); returns
     *  what the poll it triggers did ({granted, expired} ticket ids). */
    complete(permitId, outcome) {
        outcomeArgs(outcome);
        return report(native.engineComplete(this._h, number('permitId', permitId), status(outcome.status), nums, headerList(outcome.headers)));
    }
    /** Cancels a permit, or withdraws a waiting ticket, by id; returns what the poll did. */
    cancel(permitId) {
        return report(native.engineCancel(this._h, number('permitId', permitId)));
    }
    /** Adds a waiting request for at most `options.timeoutMs`, then polls. Returns the ticket and
     *  what the poll did; a granted ticket is a permit of the same id. */
    enqueue(capability, options) {
        const o = requestArgs(options);
        nums[2] = number('timeoutMs', o.timeoutMs);
        const reply = native.engineEnqueue(this._h, text('capability', capability), optionalText('lane', o.lane), nums, texts('exclude', o.exclude));
        const semi = reply.indexOf(';');
        return { ticket: Number(reply.slice(0, semi)), ...report(reply.slice(semi + 1)) };
    }
    /** Grants waiting requests as capacity allows and expires those past their deadline. */
    poll() {
        return report(native.enginePoll(this._h));
    }
    /** When a poll could next change something (Unix ms), or null when nothing waits. */
    nextWake() {
        return native.engineNextWake(this._h);
    }
    /** Records a call made without a permit (absent token counts are 0, requests 1). */
    observe(provider, outcome) {
        outcomeArgs(outcome);
        native.engineObserve(this._h, text('provider', provider), status(outcome.status), nums, headerList(outcome.headers));
    }
    /** Feeds a provider's response headers (retry-after, OpenAI and Anthropic rate-limit headers). */
    syncHeaders(provider, headers) {
        native.engineSyncHeaders(this._h, text('provider', provider), headerList(headers) ?? '');
    }
    /** Health of a provider now, in [0, 1]. */
    health(provider) {
        return native.engineHealth(this._h, text('provider', provider));
    }
    /** Units left in a dimension (the minimum over the provider's quotas of it), or null when the
     *  provider has no quota of it. */
    remaining(provider, dimension) {
        return native.engineRemaining(this._h, text('provider', provider), text('dimension', dimension));
    }
    /** The provider's circuit: 'closed', 'open' or 'half_open'. */
    circuit(provider) {
        return native.engineCircuit(this._h, text('provider', provider));
    }
    /** The engine's state as a plain object. */
    snapshot() {
        return JSON.parse(native.engineSnapshotJson(this._h));
    }
    /** The snapshot as JSON text (for logs). */
    snapshotJson() {
        return native.engineSnapshotJson(this._h);
    }
    /** Adds or replaces a provider (an object as in providers[], or JSON text). */
    upsertProvider(provider) {
        native.engineUpsertProvider(this._h, json(provider, 'provider'));
    }
    /** Adds or replaces a capability (an object as in capabilities[], or JSON text). */
    upsertCapability(capability) {
        native.engineUpsertCapability(this._h, json(capability, 'capability'));
    }
    /** Removes a provider; it stays listed in its capabilities as unregistered. */
    removeProvider(name) {
        native.engineRemoveProvider(this._h, text('name', name));
    }
    /** Removes a capability. */
    removeCapability(name) {
        native.engineRemoveCapability(this._h, text('name', name));
    }
}
exports.Engine = Engine;
/** A settable clock for tests and simulations.
 *
 * @example
 * ```ts
 * const clock = new ManualClock(0)
 * const engine = new Engine(config, clock)
 * clock.advance(1000) // one second later, for the engine
 * ```
 */
class ManualClock {
    static {
        clockHandle = (clock) => clock._h;
    }
    /** A clock reading `startMs` (default 0). */
    constructor(startMs = 0) {
        this._h = native.clockNew(number('startMs', startMs));
    }
    /** Moves the clock forward by `ms` milliseconds. */
    advance(ms) {
        native.clockAdvance(this._h, number('ms', ms));
    }
    /** The current time in milliseconds. */
    get nowMs() {
        return native.clockNow(this._h);
    }
}
exports.ManualClock = ManualClock;
/** Splits the addon's decision string `<provider length>:<provider><model length>:<model><rest
 *  JSON>` (lengths in UTF-16 code units), starting at `from`. */
function decisionFrom(text, from) {
    let colon = text.indexOf(':', from);
    let start = colon + 1;
    let end = start + Number(text.slice(from, colon));
    const provider = text.slice(start, end);
    colon = text.indexOf(':', end);
    start = colon + 1;
    const modelEnd = start + Number(text.slice(end, colon));
    return newDecision(provider, text.slice(start, modelEnd), text.slice(modelEnd));
}
/** Where a request goes, and why. `provider` and `model` are read at once; the rest when first used.
 *
 * @example
 * ```ts
 * const d = engine.select('chat', { inputTokens: 1200, outputTokens: 400 })
 * console.log(d.provider, d.model, d.score, d.skipped)
 * ```
 */
class Decision {
    static {
        newDecision = (provider, model, rest) => new Decision(provider, model, rest);
    }
    constructor(provider, model, rest) {
        this.provider = provider;
        this.model = model;
        this._rest = rest;
        this._parsed = null;
    }
    _get() {
        if (this._parsed === null)
            this._parsed = JSON.parse(this._rest);
        return this._parsed;
    }
    /** Its score in [0, 1]. */
    get score() {
        return this._get().score;
    }
    /** Its score terms: quota, health, priority, latency, cost. */
    get breakdown() {
        return this._get().breakdown;
    }
    /** Other eligible providers, best first. */
    get alternatives() {
        return this._get().alternatives;
    }
    /** Ineligible providers, in capability order, with the reason. */
    get skipped() {
        return this._get().skipped;
    }
    /** The provider, the model and every parsed field, for `JSON.stringify`. */
    toJSON() {
        return { provider: this.provider, model: this.model, ...this._get() };
    }
}
exports.Decision = Decision;
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
class Permit {
    static {
        newPermit = (engine, text, inputTokens, outputTokens) => new Permit(engine, text, inputTokens, outputTokens);
    }
    constructor(engine, text, inputTokens, outputTokens) {
        const colon = text.indexOf(':');
        this._engine = engine;
        this.id = Number(text.slice(0, colon));
        this.decision = decisionFrom(text, colon + 1);
        this.estimates = [inputTokens ?? 0, outputTokens ?? 0];
        this.done = false;
        this._started = Date.now();
    }
    /** The provider the call must go to. */
    get provider() {
        return this.decision.provider;
    }
    /** The upstream model to call (the provider's `model`, by default its name). */
    get model() {
        return this.decision.model;
    }
    /** Settles the permit with the call's outcome (`latencyMs` defaults to the time since acquire). */
    complete(outcome) {
        const o = outcome && typeof outcome === 'object' && outcome.latencyMs === undefined
            ? { ...outcome, latencyMs: Date.now() - this._started }
            : outcome;
        this._engine.complete(this.id, o);
        this.done = true;
    }
    /** The call was never sent: refunds every reservation. */
    cancel() {
        this._engine.cancel(this.id);
        this.done = true;
    }
    /** As `complete`, on the thread pool: never blocks the event loop (with a Redis store,
     *  settlement is a network round trip). */
    async completeAsync(outcome) {
        const o = outcome && typeof outcome === 'object' && outcome.latencyMs === undefined
            ? { ...outcome, latencyMs: Date.now() - this._started }
            : outcome;
        await this._engine.completeAsync(this.id, o);
        this.done = true;
    }
    /** As `cancel`, on the thread pool. */
    async cancelAsync() {
        await this._engine.cancelAsync(this.id);
        this.done = true;
    }
}
exports.Permit = Permit;
/** The class of an HTTP status code ('success', 'rate_limited', 'overloaded', ...); a 429 whose
 *  error type is 'insufficient_quota' is 'forbidden'.
 *
 * @example
 * ```ts
 * statusFromHttp(529) // 'overloaded'
 * statusFromHttp(429, 'insufficient_quota') // 'forbidden'
 * ```
 */
function statusFromHttp(code, errorType) {
    return native.statusFromHttp(number('code', code), optionalText('errorType', errorType));
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
function isRetryable(status) {
    return native.isRetryable(text('status', status));
}
