/*! `wrapAnthropic`: the Anthropic SDK (npm `@anthropic-ai/sdk`) through ratewise, with the same
 * attempt loop as `wrapOpenAI` (calls.ts). Anthropic reports `input_tokens` without the prompt
 * cache's reads and writes, so the input settled is their sum, and the cache reads are the cached
 * input tokens (which `count_cached: false` quotas do not count). The SDK is never loaded here. */

import type { Engine } from './ratewise.js'
import { errorFor } from './errors.js'
import { Caller, count, estimateTokens, type RatewiseStream, type SdkCall, type SdkStream, type StreamWatch, type Usage, type WrapOptions } from './calls.js'
import type { SdkRequestOptions, WrappedChatCreate } from './openai.js'

/** Options of `wrapAnthropic` (see `WrapOptions`). */
export type AnthropicWrapOptions = WrapOptions

/** The part of an `Anthropic` client the wrapper uses. */
export interface AnthropicClientLike {
  messages: {
    create(body: never, options?: never): SdkCall<unknown>
    stream(body: never, options?: never): unknown
  }
}

/** What `wrapAnthropic` returns: the client's shape for the calls it wraps. */
export interface WrappedAnthropic<C extends AnthropicClientLike = AnthropicClientLike> {
  readonly messages: {
    /** The SDK's `messages.create`, through ratewise: a `Message`, or for `stream: true` a
     *  `RatewiseStream` of the SDK's events. */
    readonly create: WrappedChatCreate<C['messages']['create']>
    /** The SDK's `messages.stream`, through ratewise: the SDK's own `MessageStream` (events,
     *  `on('text')`, `finalMessage()`, `abort()`), whose request waits for a permit first. */
    readonly stream: C['messages']['stream']
  }
  /** The client given, for the calls ratewise does not wrap. */
  readonly client: C
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
export function wrapAnthropic<C extends AnthropicClientLike>(client: C, engine: Engine, options?: AnthropicWrapOptions | null): WrappedAnthropic<C> {
  const caller = new Caller(client, engine, options, 'wrapAnthropic')
  const messages = (client as unknown as { messages: Api }).messages
  if (typeof messages?.create !== 'function') throw errorFor('invalid_argument', 'wrapAnthropic: client.messages.create is not a function')
  return {
    client,
    messages: {
      create: (body: Body, opts?: Opts) => create(caller, messages, body, opts),
      stream: (body: Body, opts?: Opts) => stream(caller, messages, body, opts),
    },
  } as unknown as WrappedAnthropic<C>
}

// ---------------------------------------------------------------------------------------------

type Opts = SdkRequestOptions & Record<string, unknown>
type Api = {
  create(body: Record<string, unknown>, options: Record<string, unknown>): SdkCall<unknown>
  stream?(body: unknown, options?: unknown): unknown
}
type Body = { model?: string; messages?: unknown; system?: unknown; tools?: unknown; max_tokens?: number; stream?: boolean; [key: string]: unknown }
type AnthropicUsage = {
  input_tokens?: number | null
  output_tokens?: number | null
  cache_read_input_tokens?: number | null
  cache_creation_input_tokens?: number | null
}
type Event = { type?: string; message?: { usage?: AnthropicUsage }; usage?: AnthropicUsage }

function usageOf(u: AnthropicUsage | null | undefined): Usage {
  if (!u) return {}
  const input = count(u.input_tokens)
  const read = count(u.cache_read_input_tokens)
  const written = count(u.cache_creation_input_tokens)
  return {
    inputTokens: input === undefined ? undefined : input + (read ?? 0) + (written ?? 0),
    outputTokens: count(u.output_tokens),
    cachedInputTokens: input === undefined ? undefined : read,
    cacheWriteInputTokens: input === undefined ? undefined : written,
  }
}

function checkBody(body: unknown): asserts body is Body {
  if (body === null || typeof body !== 'object') throw errorFor('invalid_argument', 'the request body must be an object')
}

/** Sends a streaming body (`stream: true`) and returns the stream that settles it. */
async function send(c: Caller, api: Api, body: Body, opts: Opts | undefined): Promise<RatewiseStream<Event> | unknown> {
  checkBody(body)
  const capability = c.capabilityOf(body)
  const input = estimateTokens({ system: body.system, messages: body.messages, tools: body.tools })
  const output = count(body.max_tokens) ?? c.defaultOutputTokens
  const signal = c.signalFor(opts?.signal)
  const options = signal === null ? { ...opts, maxRetries: 0 } : { ...opts, maxRetries: 0, signal }
  if (body.stream === true) {
    const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...body, model }, options) as SdkCall<SdkStream<Event>>)
    return c.stream(sent, new EventWatch())
  }
  const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...body, model }, options) as SdkCall<{ usage?: AnthropicUsage }>)
  const settled = c.done(sent, usageOf(sent.data?.usage))
  if (settled) await settled
  return sent.data
}

function create(c: Caller, api: Api, body: Body, opts: Opts | undefined): Promise<unknown> {
  return send(c, api, body, opts)
}

/** The SDK's own `messages.stream`, run on a view of the client's `messages` whose `create` is
 *  the wrapped one: the SDK's `MessageStream` then does everything it does (events, `text`,
 *  `finalMessage()`, `abort()`), and its one request waits for a permit and settles through
 *  ratewise. */
function stream(c: Caller, api: Api, body: Body, opts: Opts | undefined): unknown {
  if (typeof api.stream !== 'function') throw errorFor('invalid_argument', 'wrapAnthropic: client.messages.stream is not a function')
  checkBody(body)
  c.capabilityOf(body) // a missing capability throws here, not inside the stream
  const view = Object.create(api) as Api
  view.create = (params: Record<string, unknown>, options: Record<string, unknown>) => ({
    withResponse: () =>
      (send(c, api, params as Body, options as Opts) as Promise<RatewiseStream<Event>>).then((s) => ({ data: s, response: s.response })),
  })
  return api.stream.call(view, body, opts)
}

/** Reads message stream events: `message_start` and `message_delta` carry the usage (the delta's
 *  counts win), `message_stop` ends the answer. */
class EventWatch implements StreamWatch<Event> {
  finished = false
  private _raw: AnthropicUsage = {}
  private _delta = false

  see(event: Event): boolean {
    switch (event?.type) {
      case 'message_start':
        if (event.message?.usage) this._raw = { ...event.message.usage }
        break
      case 'message_delta': {
        const u = event.usage
        if (u) {
          this._delta = true
          for (const k of ['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens'] as const) {
            if (typeof u[k] === 'number') this._raw[k] = u[k]
          }
        }
        break
      }
      case 'message_stop':
        this.finished = true
        break
    }
    return false
  }

  usage(): Usage {
    const u = usageOf(this._raw)
    // message_start's output count is a placeholder (1 or so): an answer cut before its
    // message_delta keeps the output estimate charged.
    if (!this._delta) u.outputTokens = this.finished ? u.outputTokens : undefined
    return u
  }
}
