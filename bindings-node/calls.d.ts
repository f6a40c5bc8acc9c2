/*! What the SDK wrappers (openai.ts, anthropic.ts) share: token estimates, the attempt loop
 * (wait for a permit, call with the SDK's retries off, settle, try again on a retryable failure),
 * the classification of SDK errors, and the stream that settles its permit when it ends.
 *
 * Nothing here loads an SDK: the wrappers take the client the user made, and read its errors by
 * duck-typing (`err.status`, `err.headers`, the class names in the prototype chain), so that
 * `require('ratewise')` works without `openai` or `@anthropic-ai/sdk` installed. */
import type { AbortSignalLike, Engine, OutcomeOptions, OutcomeStatus, Permit } from './ratewise.js';
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
export declare function estimateTokens(value: unknown): number;
/** Options of `wrapOpenAI` and `wrapAnthropic`. */
export interface WrapOptions {
    /** The capability every call asks for. Default: the body's `model` names the capability. */
    capability?: string | null;
    /** The lane calls wait in (default `normal`). */
    lane?: string | null;
    /** How long one call may wait for permits and retries in all, in ms (default 30000). It bounds
     *  the waiting, not an HTTP call in flight: that is the SDK's own `timeout`. */
    timeoutMs?: number;
    /** How many times one call may be sent (default 3): retryable failures (429, 529, 503, other
     *  5xx, timeouts, connection errors) are retried on the provider the engine picks next, or on
     *  the same one after its hold. */
    maxAttempts?: number;
    /** The output estimate when the body gives no `max_tokens` / `max_completion_tokens` (default 1024). */
    defaultOutputTokens?: number;
    /** Aborts every call of the wrapper: a wait is withdrawn; a call in flight is aborted and settled
     *  (`interrupted`). A call's own `signal` (in its request options) works the same way. */
    signal?: AbortSignalLike | null;
}
/** What the wrappers read of an HTTP response: its status and headers (a fetch `Response` fits). */
export interface ResponseLike {
    readonly status: number;
    readonly headers: {
        get(name: string): string | null;
    };
}
/** What the wrappers need of an SDK call: the SDK's promise, with `withResponse()` giving the
 *  parsed data and the raw response (openai v4+, @anthropic-ai/sdk). */
export interface SdkCall<T> {
    withResponse(): PromiseLike<{
        data: T;
        response: ResponseLike;
    }>;
}
/** An `AbortController` as the SDK streams carry it. */
export interface AbortControllerLike {
    readonly signal: AbortSignalLike;
    abort(reason?: unknown): void;
}
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
export declare class RatewiseStream<T> implements AsyncIterable<T> {
    /** The SDK stream's controller: `abort()` stops the stream and settles it `interrupted`. */
    readonly controller: AbortControllerLike;
    /** The HTTP response (headers, status). */
    readonly response: ResponseLike;
    /** The provider the call went to. */
    readonly provider: string;
    /** The upstream model it called. */
    readonly model: string;
    private readonly _source;
    private readonly _watch;
    private readonly _caller;
    private _permit;
    private readonly _started;
    private _busy;
    private constructor();
    /** Iterates the SDK's items (a hidden usage chunk that ratewise asked for is skipped). */
    [Symbol.asyncIterator](): AsyncIterator<T>;
    private _next;
    private _return;
    /** `success` once the provider finished its answer (and nothing aborted it), else `interrupted`. */
    private _stopStatus;
    private _end;
}
/** An SDK stream: async-iterable, with its controller. */
export interface SdkStream<T> extends AsyncIterable<T> {
    readonly controller: AbortControllerLike;
}
/** Usage to report; an absent field is "not reported" (its estimate stays charged). */
export interface Usage {
    inputTokens?: number | undefined;
    outputTokens?: number | undefined;
    cachedInputTokens?: number | undefined;
    cacheWriteInputTokens?: number | undefined;
}
/** What a wrapper reads of the items of its SDK's stream. */
export interface StreamWatch<T> {
    /** Reads an item; true hides it from the caller (the usage chunk ratewise asked for). */
    see(item: T): boolean;
    /** Whether the provider finished its answer (a finish reason, `message_stop`). */
    readonly finished: boolean;
    /** The usage seen, to report with `status`. */
    usage(status: OutcomeStatus): Usage;
}
/** A successful send: the permit it holds, the SDK's data and the raw response. */
export interface Sent<T> {
    permit: Permit;
    data: T;
    response: ResponseLike;
    started: number;
}
/** A wrapper's settings, checked once, and its engine. */
export declare class Caller {
    readonly engine: Engine;
    readonly capability: string | null;
    readonly lane: string | null;
    readonly timeoutMs: number;
    readonly maxAttempts: number;
    readonly defaultOutputTokens: number;
    readonly signal: AbortSignalLike | null;
    /** With a shared (Redis) store, acquire and complete are network round trips: their async
     *  forms keep the event loop free. In memory, the synchronous ones are much cheaper. */
    readonly shared: boolean;
    /** This wrapper's calls now waiting in the engine's queue. */
    private _waiting;
    constructor(client: unknown, engine: Engine, options: WrapOptions | null | undefined, what: string);
    /** The capability of a call: the fixed one, else the body's `model`. */
    capabilityOf(body: {
        model?: unknown;
    }): string;
    /**
     * A permit: at once when one is free, else after waiting in the lane for at most `remainingMs`.
     *
     * In memory, a non-waiting `acquire` is tried first: it costs a fraction of a wait that is
     * granted at once (no hop through the engine's notifier thread). A refused try counts in the
     * snapshot's `acquires` and `refusals`, so it is not made while a call of this wrapper is
     * already waiting (the queue would refuse it: those waiters rank first).
     */
    acquire(capability: string, inputTokens: number, outputTokens: number, remainingMs: number, signal: AbortSignalLike | null, tried?: string[] | null): Permit | Promise<Permit>;
    /** Settles a permit; a failure to settle (an expired permit) is a warning, never the call's error. */
    settle(permit: Permit, outcome: OutcomeOptions): Promise<void> | undefined;
    /** Refunds a permit whose call was never sent. */
    cancel(permit: Permit): Promise<void> | undefined;
    /** The wrapper's signal and a call's own, as one (either aborts). */
    signalFor(own: AbortSignalLike | null | undefined): AbortSignalLike | null;
    /**
     * Sends a call until it gets a response, at most `maxAttempts` times and until the deadline:
     * each attempt waits for a permit, calls `call(model, signal)` (the SDK, retries off), and on a
     * failure settles the permit with the failure (status, headers) and retries if it is
     * retryable; any other failure is thrown unchanged after settlement. The successful response's
     * permit is returned unsettled.
     */
    send<T>(capability: string, inputTokens: number, outputTokens: number, signal: AbortSignalLike | null, call: (model: string) => SdkCall<T>): Promise<Sent<T>>;
    /** Settles a JSON answer's permit with its usage and headers. */
    done(sent: Sent<unknown>, usage: Usage): Promise<void> | undefined;
    /** A stream over a successful streaming send, which settles its permit when it ends. */
    stream<T>(sent: Sent<SdkStream<T>>, watch: StreamWatch<T>): RatewiseStream<T>;
}
/** How an SDK failure settles (docs/design.md §6): an HTTP class (or code); `not_sent` when the
 *  connection failed before the request was written (cancel, then retry); `timeout`;
 *  `server_error` when the connection was lost after sending; `interrupted` when the caller
 *  aborted; or null when it is not an SDK error (the permit is cancelled, nothing retried). */
export declare function failureStatus(err: unknown, signal: AbortSignalLike | null): OutcomeStatus | 'not_sent' | null;
/** The headers ratewise reads, as pairs: `retry-after(-ms)`, the OpenAI and Anthropic rate-limit
 *  families, and `date` when one of them may need it (an HTTP-date retry-after, Anthropic's reset
 *  instants). A response has dozens of others that need not cross into the addon. */
export declare function rateHeaders(headers: unknown): Array<[string, string]> | null;
/** A settlement that failed (an expired permit, a store that did not answer) is reported as a
 *  process warning: the call itself went through, and its answer must not be lost. */
export declare function warn(e: unknown): void;
/** A non-negative integer, or undefined (not reported). */
export declare function count(value: unknown): number | undefined;
