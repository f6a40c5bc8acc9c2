/*! `wrapOpenAI`: the OpenAI SDK (npm `openai`, v4 and later) through ratewise. Each call waits for
 * a permit, goes to the deployment the engine picks (`model: permit.model`), with the SDK's own
 * retries off, and settles its permit with the usage and the rate-limit headers; retryable
 * failures go to the next deployment, or to the same one after its hold. The SDK is never loaded
 * here: the wrapper uses the client it is given. */
import type { AbortSignalLike, Engine } from './ratewise.js';
import { type RatewiseStream, type SdkCall, type WrapOptions } from './calls.js';
/** Options of `wrapOpenAI` (see `WrapOptions`). */
export type OpenAIWrapOptions = WrapOptions;
/** The part of an `OpenAI` client (or `AzureOpenAI`) the wrapper uses. */
export interface OpenAIClientLike {
    chat: {
        completions: {
            create(body: never, options?: never): SdkCall<unknown>;
        };
    };
    embeddings: {
        create(body: never, options?: never): SdkCall<unknown>;
    };
}
/** What the wrapper reads of the SDK's request options (the rest passes through unchanged). */
export interface SdkRequestOptions {
    /** Aborts this call: its wait, or the HTTP call (settled `interrupted`). */
    signal?: AbortSignalLike | null;
    /** Ignored: the wrapper always sends with `maxRetries: 0` (ratewise retries, elsewhere). */
    maxRetries?: number;
}
/** The item type of an SDK stream. */
export type StreamItem<S> = S extends AsyncIterable<infer I> ? I : unknown;
/** The SDK's three `create` overloads (non-streaming, streaming, either), as the wrapper reads them. */
type CreateOverloads<BJ, RJ, BS, RS, BB, O> = {
    (body: BJ, options?: O): SdkCall<RJ>;
    (body: BS, options?: O): SdkCall<RS>;
    (body: BB, options?: O): SdkCall<unknown>;
};
/** A body the wrapper can read when the client's types are unknown. */
export interface ChatBodyLike {
    model: string;
    messages: unknown[];
    max_tokens?: number | null;
    max_completion_tokens?: number | null;
    stream?: boolean | null;
    stream_options?: {
        include_usage?: boolean | null;
    } | null;
    tools?: unknown[];
    n?: number | null;
    [key: string]: unknown;
}
/** `chat.completions.create` as wrapped: the SDK's own body and options, the SDK's
 *  `ChatCompletion`, or for `stream: true` a `RatewiseStream` of the SDK's chunks. */
export type WrappedChatCreate<F> = F extends CreateOverloads<infer BJ, infer RJ, infer BS, infer RS, infer BB, infer O> ? {
    (body: BJ, options?: O): Promise<RJ>;
    (body: BS, options?: O): Promise<RatewiseStream<StreamItem<RS>>>;
    (body: BB, options?: O): Promise<RJ | RatewiseStream<StreamItem<RS>>>;
} : (body: ChatBodyLike, options?: SdkRequestOptions) => Promise<unknown>;
/** A one-signature SDK method as wrapped: the same body and options, a promise of the data. */
export type WrappedCall<F> = F extends (body: infer B, options?: infer O) => SdkCall<infer R> ? (body: B, options?: O) => Promise<R> : (body: {
    model: string;
    [key: string]: unknown;
}, options?: SdkRequestOptions) => Promise<unknown>;
/** What `wrapOpenAI` returns: the client's shape for the calls it wraps. */
export interface WrappedOpenAI<C extends OpenAIClientLike = OpenAIClientLike> {
    readonly chat: {
        readonly completions: {
            readonly create: WrappedChatCreate<C['chat']['completions']['create']>;
        };
    };
    readonly embeddings: {
        readonly create: WrappedCall<C['embeddings']['create']>;
    };
    /** The client given, for the calls ratewise does not wrap. */
    readonly client: C;
}
/**
 * Wraps an OpenAI client so that every `chat.completions.create` and `embeddings.create` goes
 * through `engine`:
 *
 * - `model` names a ratewise capability (unless `options.capability` fixes one); the call goes to
 *   the provider the engine picks, with `model: permit.model` (the provider's `model` field);
 * - the input estimate is `estimateTokens(messages)` (with `tools`), the output estimate
 *   `max_completion_tokens`, else `max_tokens`, else `defaultOutputTokens` (times `n`);
 * - it waits in `lane` for a permit, at most `timeoutMs` in all (then `NoAvailableProviderError`);
 * - it sends with the SDK's retries off (`maxRetries: 0`: an SDK retry would sleep holding the
 *   permit and retry the same deployment, unseen by ratewise) and settles with the reported usage
 *   (cached prompt tokens included), the latency and the response's rate-limit headers;
 * - a 429, 529, 503, other 5xx, timeout or connection error settles with its status and headers
 *   and is sent again (at most `maxAttempts` times) where the engine says: another deployment,
 *   or the same one after its hold; any other error (a 400, a 401...) settles and is thrown
 *   unchanged, sent exactly once;
 * - `stream: true` returns a `RatewiseStream` of the SDK's chunks; ratewise asks for
 *   `stream_options.include_usage` (and hides that usage chunk if you did not ask for it) and
 *   settles when the stream ends: `success`, or `interrupted` when it is cut, aborted or abandoned
 *   (its tokens stay charged). Nothing is retried once a chunk has reached you;
 * - a `signal` (in `options`, or the call's request options) withdraws a wait, or aborts the
 *   HTTP call (settled `interrupted`). A wait aborted rejects with the signal's reason; an HTTP
 *   call aborted with the SDK's `APIUserAbortError`.
 *
 * The SDK is not a dependency of ratewise: pass the client you built.
 *
 * @example
 * ```ts
 * import OpenAI from 'openai'
 * import { Engine, wrapOpenAI } from 'ratewise'
 *
 * const engine = Engine.fromFile('ratewise.json')   // providers with "model" fields, a capability "chat"
 * const client = wrapOpenAI(new OpenAI(), engine, { timeoutMs: 30_000 })
 * const completion = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 200 })
 * for await (const chunk of await client.chat.completions.create({ model: 'chat', messages, stream: true })) {
 *   process.stdout.write(chunk.choices[0]?.delta?.content ?? '')
 * }
 * ```
 */
export declare function wrapOpenAI<C extends OpenAIClientLike>(client: C, engine: Engine, options?: OpenAIWrapOptions | null): WrappedOpenAI<C>;
export {};
