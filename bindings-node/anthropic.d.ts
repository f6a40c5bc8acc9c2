/*! `wrapAnthropic`: the Anthropic SDK (npm `@anthropic-ai/sdk`) through ratewise, with the same
 * attempt loop as `wrapOpenAI` (calls.ts). Anthropic reports `input_tokens` without the prompt
 * cache's reads and writes, so the input settled is their sum, and the cache reads are the cached
 * input tokens (which `count_cached: false` quotas do not count). The SDK is never loaded here. */
import type { Engine } from './ratewise.js';
import { type SdkCall, type WrapOptions } from './calls.js';
import type { WrappedChatCreate } from './openai.js';
/** Options of `wrapAnthropic` (see `WrapOptions`). */
export type AnthropicWrapOptions = WrapOptions;
/** The part of an `Anthropic` client the wrapper uses. */
export interface AnthropicClientLike {
    messages: {
        create(body: never, options?: never): SdkCall<unknown>;
        stream(body: never, options?: never): unknown;
    };
}
/** What `wrapAnthropic` returns: the client's shape for the calls it wraps. */
export interface WrappedAnthropic<C extends AnthropicClientLike = AnthropicClientLike> {
    readonly messages: {
        /** The SDK's `messages.create`, through ratewise: a `Message`, or for `stream: true` a
         *  `RatewiseStream` of the SDK's events. */
        readonly create: WrappedChatCreate<C['messages']['create']>;
        /** The SDK's `messages.stream`, through ratewise: the SDK's own `MessageStream` (events,
         *  `on('text')`, `finalMessage()`, `abort()`), whose request waits for a permit first. */
        readonly stream: C['messages']['stream'];
    };
    /** The client given, for the calls ratewise does not wrap. */
    readonly client: C;
}
/**
 * Wraps an Anthropic client so that every `messages.create` and `messages.stream` goes through
 * `engine`, with the semantics of `wrapOpenAI`: `model` names a capability, the call goes to
 * `permit.model` with the SDK's retries off, and settles with its usage and headers; 429, 529
 * (overloaded), 5xx and timeouts are retried where the engine says; other errors are thrown
 * unchanged, sent once. The input estimate is `estimateTokens({ system, messages, tools })`, the
 * output estimate `max_tokens`.
 *
 * Usage comes from the `Message` (or from `message_start` and `message_delta`, the delta's counts
 * winning): `inputTokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`,
 * `cachedInputTokens = cache_read_input_tokens`, `cacheWriteInputTokens =
 * cache_creation_input_tokens` (priced at `cache_write_input_per_mtok`). A stream cut, aborted or abandoned before
 * `message_stop` settles `interrupted` with the input seen and, unless a `message_delta` reported
 * it, the output estimate charged.
 *
 * Through `messages.stream()`, errors reach you as the SDK's `MessageStream` reports them: the
 * SDK's own errors unchanged, a ratewise error (no permit within `timeoutMs`) as an
 * `AnthropicError` whose `cause` is the `NoAvailableProviderError`, an abort as `APIUserAbortError`.
 *
 * @example
 * ```ts
 * import Anthropic from '@anthropic-ai/sdk'
 * import { Engine, wrapAnthropic } from 'ratewise'
 *
 * const client = wrapAnthropic(new Anthropic(), Engine.fromFile('ratewise.json'))
 * const message = await client.messages.create({ model: 'chat', max_tokens: 400, messages: [{ role: 'user', content: 'Hi' }] })
 * const stream = client.messages.stream({ model: 'chat', max_tokens: 400, messages })
 * stream.on('text', (text) => process.stdout.write(text))
 * const final = await stream.finalMessage()
 * ```
 */
export declare function wrapAnthropic<C extends AnthropicClientLike>(client: C, engine: Engine, options?: AnthropicWrapOptions | null): WrappedAnthropic<C>;
