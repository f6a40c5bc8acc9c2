/*! `wrapOpenAI`: the OpenAI SDK (npm `openai`, v4 and later) through ratewise. Each call waits for
 * a permit, goes to the deployment the engine picks (`model: permit.model`), with the SDK's own
 * retries off, and settles its permit with the usage and the rate-limit headers; retryable
 * failures go to the next deployment, or to the same one after its hold. The SDK is never loaded
 * here: the wrapper uses the client it is given. */

import type { AbortSignalLike, Engine } from './ratewise.js'
import { errorFor } from './errors.js'
import { Caller, count, estimateTokens, type RatewiseStream, type SdkCall, type SdkStream, type StreamWatch, type Usage, type WrapOptions } from './calls.js'

/** Options of `wrapOpenAI` (see `WrapOptions`). */
export type OpenAIWrapOptions = WrapOptions

/** The part of an `OpenAI` client (or `AzureOpenAI`) the wrapper uses. */
export interface OpenAIClientLike {
  chat: { completions: { create(body: never, options?: never): SdkCall<unknown> } }
  embeddings: { create(body: never, options?: never): SdkCall<unknown> }
}

/** What the wrapper reads of the SDK's request options (the rest passes through unchanged). */
export interface SdkRequestOptions {
  /** Aborts this call: its wait, or the HTTP call (settled `interrupted`). */
  signal?: AbortSignalLike | null
  /** Ignored: the wrapper always sends with `maxRetries: 0` (ratewise retries, elsewhere). */
  maxRetries?: number
}

/** The item type of an SDK stream. */
export type StreamItem<S> = S extends AsyncIterable<infer I> ? I : unknown

/** The SDK's three `create` overloads (non-streaming, streaming, either), as the wrapper reads them. */
type CreateOverloads<BJ, RJ, BS, RS, BB, O> = {
  (body: BJ, options?: O): SdkCall<RJ>
  (body: BS, options?: O): SdkCall<RS>
  (body: BB, options?: O): SdkCall<unknown>
}

/** A body the wrapper can read when the client's types are unknown. */
export interface ChatBodyLike {
  model: string
  messages: unknown[]
  max_tokens?: number | null
  max_completion_tokens?: number | null
  stream?: boolean | null
  stream_options?: { include_usage?: boolean | null } | null
  tools?: unknown[]
  n?: number | null
  [key: string]: unknown
}

/** `chat.completions.create` as wrapped: the SDK's own body and options, the SDK's
 *  `ChatCompletion`, or for `stream: true` a `RatewiseStream` of the SDK's chunks. */
export type WrappedChatCreate<F> = F extends CreateOverloads<infer BJ, infer RJ, infer BS, infer RS, infer BB, infer O>
  ? {
      (body: BJ, options?: O): Promise<RJ>
      (body: BS, options?: O): Promise<RatewiseStream<StreamItem<RS>>>
      (body: BB, options?: O): Promise<RJ | RatewiseStream<StreamItem<RS>>>
    }
  : (body: ChatBodyLike, options?: SdkRequestOptions) => Promise<unknown>

/** A one-signature SDK method as wrapped: the same body and options, a promise of the data. */
export type WrappedCall<F> = F extends (body: infer B, options?: infer O) => SdkCall<infer R>
  ? (body: B, options?: O) => Promise<R>
  : (body: { model: string; [key: string]: unknown }, options?: SdkRequestOptions) => Promise<unknown>

/** What `wrapOpenAI` returns: the client's shape for the calls it wraps. */
export interface WrappedOpenAI<C extends OpenAIClientLike = OpenAIClientLike> {
  readonly chat: { readonly completions: { readonly create: WrappedChatCreate<C['chat']['completions']['create']> } }
  readonly embeddings: { readonly create: WrappedCall<C['embeddings']['create']> }
  /** The client given, for the calls ratewise does not wrap. */
  readonly client: C
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
export function wrapOpenAI<C extends OpenAIClientLike>(client: C, engine: Engine, options?: OpenAIWrapOptions | null): WrappedOpenAI<C> {
  const caller = new Caller(client, engine, options, 'wrapOpenAI')
  const completions = (client as unknown as { chat: { completions: Api } }).chat?.completions
  const embeddings = (client as unknown as { embeddings: Api }).embeddings
  if (typeof completions?.create !== 'function') throw errorFor('invalid_argument', 'wrapOpenAI: client.chat.completions.create is not a function')
  return {
    client,
    chat: { completions: { create: (body: ChatBody, opts?: Opts) => chatCreate(caller, completions, body, opts) } },
    embeddings: { create: (body: EmbeddingBody, opts?: Opts) => embed(caller, embeddings, body, opts) },
  } as unknown as WrappedOpenAI<C>
}

// ---------------------------------------------------------------------------------------------

type Opts = SdkRequestOptions & Record<string, unknown>
type Api = { create(body: Record<string, unknown>, options: Record<string, unknown>): SdkCall<unknown> }
type ChatBody = ChatBodyLike
type EmbeddingBody = { model?: string; input?: unknown; [key: string]: unknown }
type OpenAIUsage = { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null }
type Chunk = { choices?: Array<{ finish_reason?: string | null }>; usage?: OpenAIUsage | null }

function usageOf(u: OpenAIUsage | null | undefined): Usage {
  if (!u) return {}
  return { inputTokens: count(u.prompt_tokens), outputTokens: count(u.completion_tokens), cachedInputTokens: count(u.prompt_tokens_details?.cached_tokens) }
}

function checkBody(body: unknown): asserts body is Record<string, unknown> {
  if (body === null || typeof body !== 'object') throw errorFor('invalid_argument', 'the request body must be an object')
}

/** The SDK's request options with retries off and the combined signal. */
function sdkOptions(opts: Opts | undefined, signal: AbortSignalLike | null): Record<string, unknown> {
  return signal === null ? { ...opts, maxRetries: 0 } : { ...opts, maxRetries: 0, signal }
}

async function chatCreate(c: Caller, api: Api, body: ChatBody, opts: Opts | undefined): Promise<unknown> {
  checkBody(body)
  const capability = c.capabilityOf(body)
  const input = estimateTokens(body.tools ? { messages: body.messages, tools: body.tools } : body.messages)
  const n = typeof body.n === 'number' && body.n > 1 ? body.n : 1 // n choices: n answers to charge
  const output = n * (count(body.max_completion_tokens) ?? count(body.max_tokens) ?? c.defaultOutputTokens)
  const signal = c.signalFor(opts?.signal)
  const options = sdkOptions(opts, signal)
  if (body.stream === true) {
    const hide = body.stream_options?.include_usage !== true
    const b = hide ? { ...body, stream_options: { ...body.stream_options, include_usage: true } } : body
    const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...b, model }, options) as SdkCall<SdkStream<Chunk>>)
    return c.stream(sent, new ChunkWatch(hide))
  }
  const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...body, model }, options) as SdkCall<{ usage?: OpenAIUsage }>)
  const settled = c.done(sent, usageOf(sent.data?.usage))
  if (settled) await settled
  return sent.data
}

async function embed(c: Caller, api: Api | undefined, body: EmbeddingBody, opts: Opts | undefined): Promise<unknown> {
  if (typeof api?.create !== 'function') throw errorFor('invalid_argument', 'wrapOpenAI: client.embeddings.create is not a function')
  checkBody(body)
  const capability = c.capabilityOf(body)
  const input = estimateTokens(body.input ?? null)
  const signal = c.signalFor(opts?.signal)
  const options = sdkOptions(opts, signal)
  const sent = await c.send(capability, input, 0, signal, (model) => api.create({ ...body, model }, options) as SdkCall<{ usage?: OpenAIUsage }>)
  const u = sent.data?.usage
  const settled = c.done(sent, u ? { inputTokens: count(u.prompt_tokens), outputTokens: 0 } : {})
  if (settled) await settled
  return sent.data
}

/** Reads chat completion chunks: a finish reason ends the answer; the usage chunk (no choices)
 *  carries the usage, and is hidden when ratewise asked for it. */
class ChunkWatch implements StreamWatch<Chunk> {
  finished = false
  private _usage: Usage = {}
  private readonly _hide: boolean

  constructor(hide: boolean) {
    this._hide = hide
  }

  see(chunk: Chunk): boolean {
    const choices = chunk?.choices
    if (chunk?.usage) {
      this._usage = usageOf(chunk.usage)
      this.finished = true // the usage chunk is the last one
    }
    if (choices && choices.length > 0) {
      for (const choice of choices) if (choice?.finish_reason) this.finished = true
      return false
    }
    return this._hide && chunk?.usage != null
  }

  usage(): Usage {
    return this._usage
  }
}
