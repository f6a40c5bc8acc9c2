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
export { RatewiseError, InvalidConfigError, InvalidArgumentError, UnknownCapabilityError, UnknownProviderError, UnknownPermitError, NoAvailableProviderError, StoreUnavailableError, StoreConflictError, } from './errors.js';
export { wrapOpenAI, type OpenAIWrapOptions, type WrappedOpenAI, type OpenAIClientLike, type WrappedChatCreate, type WrappedCall, type ChatBodyLike, type SdkRequestOptions, type StreamItem, } from './openai.js';
export { wrapAnthropic, type AnthropicWrapOptions, type WrappedAnthropic, type AnthropicClientLike } from './anthropic.js';
export { estimateTokens, RatewiseStream, type WrapOptions, type ResponseLike, type SdkCall, type AbortControllerLike } from './calls.js';
/** The class of a call's outcome. */
export type OutcomeStatus = 'success' | 'client_error' | 'rate_limited' | 'forbidden' | 'server_error' | 'overloaded' | 'timeout'
/** The call reached the provider and stopped before finishing (a stream cut, a consumer that
 *  gave up): tokens settle as for success (reported usage, else the estimates stay charged);
 *  health and the circuit do not change. */
 | 'interrupted';
/** The stable error codes (the core's `Error::CODES`; test/error-codes.test.mjs checks this list). */
export type ErrorCode = 'invalid_config' | 'invalid_argument' | 'unknown_capability' | 'unknown_provider' | 'unknown_permit' | 'no_available_provider' | 'store_unavailable' | 'store_conflict';
/** One provider that was not chosen, and why (`held`, `circuit_open`, `quota:tokens`, ...). */
export interface SkippedProvider {
    provider: string;
    reason: string;
}
/** What a quota counts. */
export type QuotaDimension = 'requests' | 'tokens' | 'input_tokens' | 'output_tokens' | 'concurrency' | 'cost';
/** Response headers: a plain object, or anything iterable as [name, value] (fetch Headers, Map, pairs). */
export type HeadersInput = Record<string, string> | Iterable<readonly [string, string]> | null | undefined;
/** One quota of a provider (docs/configuration.md). */
export interface QuotaConfig {
    dimension: QuotaDimension;
    limit: number;
    window?: 'second' | 'minute' | 'hour' | 'day';
    window_ms?: number;
    algorithm?: 'token_bucket' | 'fixed_window';
    settle?: 'actual' | 'reserved';
    key?: string;
    offset_ms?: number;
    count_cached?: boolean;
}
/** A provider: its quotas, cooldown and price (docs/configuration.md). */
export interface ProviderConfig {
    name: string;
    quotas?: QuotaConfig[];
    cooldown_ms?: number;
    /** USD per million tokens; `cached_input_per_mtok` and `cache_write_input_per_mtok` (each
     * default: `input_per_mtok`) price input read from and written to the provider's prompt cache. */
    price?: {
        input_per_mtok: number;
        output_per_mtok: number;
        cached_input_per_mtok?: number;
        cache_write_input_per_mtok?: number;
    };
    /** The upstream model to call (default: the provider's name), returned on every decision. */
    model?: string;
}
/** A capability: the providers that can serve it, with their priorities. */
export interface CapabilityConfig {
    name: string;
    providers?: Array<{
        provider: string;
        priority?: number;
    }>;
}
/** A lane: a priority class of waiting requests. */
export interface LaneConfig {
    name: string;
    headroom?: number;
    aging_ms?: number;
}
/** How outcomes move a provider's health and circuit. */
export interface HealthConfig {
    half_life_ms?: number;
    min_health?: number;
    boost_success?: number;
    penalty_rate_limited?: number;
    penalty_forbidden?: number;
    penalty_server_error?: number;
    penalty_overloaded?: number;
    penalty_timeout?: number;
    overload_hold_ms?: number;
    /** The longest hold any retry-after may set (default 3600000, one hour). */
    max_hold_ms?: number;
    cooldown_after?: number;
    cooldown_multiplier?: number;
    max_cooldown_ms?: number;
}
/** Where quota state lives: in this process, or shared through Redis. */
export type StoreConfig = {
    kind: 'memory';
} | {
    kind: 'redis';
    url?: string;
    prefix?: string;
    /** Bounds each whole call to Redis (connect, script load and one retry included). */
    timeout_ms?: number;
    /** Bounds opening a connection (default and at most `timeout_ms`). */
    connect_timeout_ms?: number;
    on_error?: 'local' | 'open' | 'closed';
    local_share?: number;
    /** For `rediss://` URLs: a private CA, and a client certificate with its key (PEM files). */
    tls?: {
        ca_file?: string;
        cert_file?: string;
        key_file?: string;
    };
};
/** The configuration document (docs/configuration.md). */
export interface EngineConfig {
    providers?: ProviderConfig[];
    capabilities?: CapabilityConfig[];
    lanes?: LaneConfig[];
    scoring?: {
        quota?: number;
        health?: number;
        priority?: number;
        latency?: number;
        cost?: number;
    };
    health?: HealthConfig;
    anticipation?: {
        rate_tau_ms?: number;
    };
    permit_ttl_ms?: number;
    store?: StoreConfig;
}
/** What the caller wants to send. */
export interface RequestOptions {
    /** Lane name (default 'normal'). */
    lane?: string | null;
    /** Estimated input tokens. */
    inputTokens?: number | null;
    /** Estimated output tokens (usually the call's max_tokens). */
    outputTokens?: number | null;
    /** Providers not wanted now (e.g. the one that just answered 529). */
    exclude?: string[] | null;
}
/** A request that may wait (`acquireAsync`). */
export interface WaitOptions extends RequestOptions {
    /** How long to wait at most, in ms (> 0). */
    timeoutMs: number;
    /** Aborting it withdraws the request. */
    signal?: AbortSignalLike;
}
/** What `acquireAsync` uses of an `AbortSignal` (declared here so that these types need neither
 *  the DOM library nor `@types/node`; a real `AbortSignal` fits). */
export interface AbortSignalLike {
    readonly aborted: boolean;
    readonly reason?: unknown;
    addEventListener(type: 'abort', listener: () => void, options?: {
        once?: boolean;
    }): void;
    removeEventListener(type: 'abort', listener: () => void): void;
}
/** How a call went. Token counts left out are "not reported". */
export interface OutcomeOptions {
    /** A class name or an HTTP status code. */
    status: OutcomeStatus | number;
    /** Observed latency in ms (Permit#complete: default the time since acquire). */
    latencyMs?: number | null;
    inputTokens?: number | null;
    outputTokens?: number | null;
    /** Input tokens served from the provider's prompt cache (part of inputTokens). */
    cachedInputTokens?: number | null;
    /** Input tokens written to the provider's prompt cache (part of inputTokens; Anthropic's
     * cache_creation_input_tokens), priced at `cache_write_input_per_mtok`. */
    cacheWriteInputTokens?: number | null;
    /** The provider's retry-after, in ms. */
    retryAfterMs?: number | null;
    headers?: HeadersInput;
}
/** How a call made without a permit went: absent token counts are 0. */
export interface ObserveOptions extends OutcomeOptions {
    /** Requests made (default 1). */
    requests?: number | null;
}
/** What one poll of the waiting requests did: ticket ids granted (each now a permit of the same
 *  id) and expired, in rank order. */
export interface PollReport {
    granted: number[];
    expired: number[];
}
/** A decision's score terms, each in [0, 1]. */
export interface Breakdown {
    quota: number;
    health: number;
    priority: number;
    latency: number;
    cost: number;
}
/** An eligible provider that was not chosen, with its score. */
export interface Alternative {
    provider: string;
    score: number;
}
/** One quota in a snapshot. */
export interface QuotaSnapshot {
    key: string;
    dimension: QuotaDimension;
    remaining: number;
    capacity: number;
    learned_limit: number | null;
    drain_per_s: number | null;
}
/** One provider in a snapshot. */
export interface ProviderSnapshot {
    health: number;
    circuit: 'closed' | 'open' | 'half_open';
    held_ms: number;
    in_flight: number;
    latency_ms: number | null;
    quotas: QuotaSnapshot[];
}
/** One lane in a snapshot. */
export interface LaneSnapshot {
    waiting: number;
    granted: number;
    expired: number;
    wait_p50_ms: number | null;
    wait_p99_ms: number | null;
    wait_max_ms: number | null;
}
/** engine.snapshot(): the stable paths of docs/design.md section 9. */
export interface Snapshot {
    providers: Record<string, ProviderSnapshot>;
    lanes: Record<string, LaneSnapshot>;
    counters: {
        selects: number;
        acquires: number;
        grants: number;
        refusals: number;
        permits_expired: number;
        header_errors: number;
    };
    store: {
        kind: string;
        mode: string;
    };
}
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
export declare class Engine {
    private _h;
    /** From a configuration object or JSON text, on the system clock or `clock`. */
    constructor(config: EngineConfig | string, clock?: ManualClock | null);
    /** An engine from JSON configuration text. */
    static fromJson(source: string, clock?: ManualClock | null): Engine;
    /** An engine from a JSON configuration file. */
    static fromFile(path: string, clock?: ManualClock | null): Engine;
    /** The engine's clock reading in Unix ms. */
    nowMs(): number;
    /** Which provider a request would go to now; changes no state. */
    select(capability: string, options?: RequestOptions | null): Decision;
    /** Selects and reserves atomically; returns a Permit to complete or cancel. */
    acquire(capability: string, options?: RequestOptions | null): Permit;
    /** Waits at most `options.timeoutMs` for a permit, in the lane's priority order, without
     *  blocking the event loop: resolves with a Permit, or rejects with `no_available_provider`
     *  when the timeout passes. `options.signal` (an AbortSignal) withdraws the request, or returns
     *  the permit if it was granted meanwhile; the promise then rejects with the signal's reason.
     *  Without `timeoutMs` it decides now, on the thread pool (with a Redis store an acquire is a
     *  network round trip). */
    acquireAsync(capability: string, options?: WaitOptions | RequestOptions | null): Promise<Permit>;
    /** `acquireAsync` without `timeoutMs`: decides now, on the thread pool (with a Redis store an
     *  acquire is a network round trip, which must not block the event loop). */
    private _acquireNowAsync;
    /** As `complete`, on the thread pool (never blocks the event loop). */
    completeAsync(permitId: number, outcome: OutcomeOptions): Promise<PollReport>;
    /** As `cancel`, on the thread pool. */
    cancelAsync(permitId: number): Promise<PollReport>;
    /** As `observe`, on the thread pool. */
    observeAsync(provider: string, outcome: ObserveOptions): Promise<void>;
    /** As `syncHeaders`, on the thread pool. */
    syncHeadersAsync(provider: string, headers: HeadersInput): Promise<void>;
    /** Whether state is shared through Redis: then acquire, complete, cancel, observe and
     *  syncHeaders are network round trips (each at most the store's timeout_ms); their `*Async`
     *  forms run them off the event loop. */
    get shared(): boolean;
    /** Completes a permit by id (for callers that keep ids rather than Permit objects); returns
     *  what the poll it triggers did ({granted, expired} ticket ids). */
    complete(permitId: number, outcome: OutcomeOptions): PollReport;
    /** Cancels a permit, or withdraws a waiting ticket, by id; returns what the poll did. */
    cancel(permitId: number): PollReport;
    /** Adds a waiting request for at most `options.timeoutMs`, then polls. Returns the ticket and
     *  what the poll did; a granted ticket is a permit of the same id. */
    enqueue(capability: string, options: RequestOptions & {
        timeoutMs: number;
    }): {
        ticket: number;
    } & PollReport;
    /** Grants waiting requests as capacity allows and expires those past their deadline. */
    poll(): PollReport;
    /** When a poll could next change something (Unix ms), or null when nothing waits. */
    nextWake(): number | null;
    /** Records a call made without a permit (absent token counts are 0, requests 1). */
    observe(provider: string, outcome: ObserveOptions): void;
    /** Feeds a provider's response headers (retry-after, OpenAI and Anthropic rate-limit headers). */
    syncHeaders(provider: string, headers: HeadersInput): void;
    /** Health of a provider now, in [0, 1]. */
    health(provider: string): number;
    /** Units left in a dimension (the minimum over the provider's quotas of it), or null when the
     *  provider has no quota of it. */
    remaining(provider: string, dimension: QuotaDimension): number | null;
    /** The provider's circuit: 'closed', 'open' or 'half_open'. */
    circuit(provider: string): 'closed' | 'open' | 'half_open';
    /** The engine's state as a plain object. */
    snapshot(): Snapshot;
    /** The snapshot as JSON text (for logs). */
    snapshotJson(): string;
    /** Adds or replaces a provider (an object as in providers[], or JSON text). */
    upsertProvider(provider: ProviderConfig | string): void;
    /** Adds or replaces a capability (an object as in capabilities[], or JSON text). */
    upsertCapability(capability: CapabilityConfig | string): void;
    /** Removes a provider; it stays listed in its capabilities as unregistered. */
    removeProvider(name: string): void;
    /** Removes a capability. */
    removeCapability(name: string): void;
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
export declare class ManualClock {
    private readonly _h;
    /** A clock reading `startMs` (default 0). */
    constructor(startMs?: number);
    /** Moves the clock forward by `ms` milliseconds. */
    advance(ms: number): void;
    /** The current time in milliseconds. */
    get nowMs(): number;
}
/** Where a request goes, and why. `provider` and `model` are read at once; the rest when first used.
 *
 * @example
 * ```ts
 * const d = engine.select('chat', { inputTokens: 1200, outputTokens: 400 })
 * console.log(d.provider, d.model, d.score, d.skipped)
 * ```
 */
export declare class Decision {
    /** The chosen provider. */
    readonly provider: string;
    /** The upstream model to call on it (the provider's `model`, default its name). */
    readonly model: string;
    private readonly _rest;
    private _parsed;
    private constructor();
    private _get;
    /** Its score in [0, 1]. */
    get score(): number;
    /** Its score terms: quota, health, priority, latency, cost. */
    get breakdown(): Breakdown;
    /** Other eligible providers, best first. */
    get alternatives(): Alternative[];
    /** Ineligible providers, in capability order, with the reason. */
    get skipped(): SkippedProvider[];
    /** The provider, the model and every parsed field, for `JSON.stringify`. */
    toJSON(): {
        provider: string;
        model: string;
        score: number;
        breakdown: Breakdown;
        alternatives: Alternative[];
        skipped: SkippedProvider[];
    };
}
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
export declare class Permit {
    private readonly _engine;
    /** The permit's id (completing or cancelling it twice throws unknown_permit). */
    readonly id: number;
    /** The decision that granted it. */
    readonly decision: Decision;
    /** The estimates given at acquire: [inputTokens, outputTokens]. */
    readonly estimates: [number, number];
    /** Whether it was completed or cancelled. */
    readonly done: boolean;
    private readonly _started;
    private constructor();
    /** The provider the call must go to. */
    get provider(): string;
    /** The upstream model to call (the provider's `model`, by default its name). */
    get model(): string;
    /** Settles the permit with the call's outcome (`latencyMs` defaults to the time since acquire). */
    complete(outcome: OutcomeOptions): void;
    /** The call was never sent: refunds every reservation. */
    cancel(): void;
    /** As `complete`, on the thread pool: never blocks the event loop (with a Redis store,
     *  settlement is a network round trip). */
    completeAsync(outcome: OutcomeOptions): Promise<void>;
    /** As `cancel`, on the thread pool. */
    cancelAsync(): Promise<void>;
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
export declare function statusFromHttp(code: number, errorType?: string | null): OutcomeStatus;
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
export declare function isRetryable(status: OutcomeStatus): boolean;
