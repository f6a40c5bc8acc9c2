"use strict";
/*! `wrapAnthropic`: the Anthropic SDK (npm `@anthropic-ai/sdk`) through ratewise, with the same
 * attempt loop as `wrapOpenAI` (calls.ts). Anthropic reports `input_tokens` without the prompt
 * cache's reads and writes, so the input settled is their sum, and the cache reads are the cached
 * input tokens (which `count_cached: false` quotas do not count). The SDK is never loaded here. */
Object.defineProperty(exports, "__esModule", { value: true });
exports.wrapAnthropic = wrapAnthropic;
const errors_js_1 = require("./errors.js");
const calls_js_1 = require("./calls.js");
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
function wrapAnthropic(client, engine, options) {
    const caller = new calls_js_1.Caller(client, engine, options, 'wrapAnthropic');
    const messages = client.messages;
    if (typeof messages?.create !== 'function')
        throw (0, errors_js_1.errorFor)('invalid_argument', 'wrapAnthropic: client.messages.create is not a function');
    return {
        client,
        messages: {
            create: (body, opts) => create(caller, messages, body, opts),
            stream: (body, opts) => stream(caller, messages, body, opts),
        },
    };
}
function usageOf(u) {
    if (!u)
        return {};
    const input = (0, calls_js_1.count)(u.input_tokens);
    const read = (0, calls_js_1.count)(u.cache_read_input_tokens);
    const written = (0, calls_js_1.count)(u.cache_creation_input_tokens);
    return {
        inputTokens: input === undefined ? undefined : input + (read ?? 0) + (written ?? 0),
        outputTokens: (0, calls_js_1.count)(u.output_tokens),
        cachedInputTokens: input === undefined ? undefined : read,
        cacheWriteInputTokens: input === undefined ? undefined : written,
    };
}
function checkBody(body) {
    if (body === null || typeof body !== 'object')
        throw (0, errors_js_1.errorFor)('invalid_argument', 'the request body must be an object');
}
/** Sends a streaming body (`stream: true`) and returns the stream that settles it. */
async function send(c, api, body, opts) {
    checkBody(body);
    const capability = c.capabilityOf(body);
    const input = (0, calls_js_1.estimateTokens)({ system: body.system, messages: body.messages, tools: body.tools });
    const output = (0, calls_js_1.count)(body.max_tokens) ?? c.defaultOutputTokens;
    const signal = c.signalFor(opts?.signal);
    const options = signal === null ? { ...opts, maxRetries: 0 } : { ...opts, maxRetries: 0, signal };
    if (body.stream === true) {
        const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...body, model }, options));
        return c.stream(sent, new EventWatch());
    }
    const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...body, model }, options));
    const settled = c.done(sent, usageOf(sent.data?.usage));
    if (settled)
        await settled;
    return sent.data;
}
function create(c, api, body, opts) {
    return send(c, api, body, opts);
}
/** The SDK's own `messages.stream`, run on a view of the client's `messages` whose `create` is
 *  the wrapped one: the SDK's `MessageStream` then does everything it does (events, `text`,
 *  `finalMessage()`, `abort()`), and its one request waits for a permit and settles through
 *  ratewise. */
function stream(c, api, body, opts) {
    if (typeof api.stream !== 'function')
        throw (0, errors_js_1.errorFor)('invalid_argument', 'wrapAnthropic: client.messages.stream is not a function');
    checkBody(body);
    c.capabilityOf(body); // a missing capability throws here, not inside the stream
    const view = Object.create(api);
    view.create = (params, options) => ({
        withResponse: () => send(c, api, params, options).then((s) => ({ data: s, response: s.response })),
    });
    return api.stream.call(view, body, opts);
}
/** Reads message stream events: `message_start` and `message_delta` carry the usage (the delta's
 *  counts win), `message_stop` ends the answer. */
class EventWatch {
    constructor() {
        this.finished = false;
        this._raw = {};
        this._delta = false;
    }
    see(event) {
        switch (event?.type) {
            case 'message_start':
                if (event.message?.usage)
                    this._raw = { ...event.message.usage };
                break;
            case 'message_delta': {
                const u = event.usage;
                if (u) {
                    this._delta = true;
                    for (const k of ['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens']) {
                        if (typeof u[k] === 'number')
                            this._raw[k] = u[k];
                    }
                }
                break;
            }
            case 'message_stop':
                this.finished = true;
                break;
        }
        return false;
    }
    usage() {
        const u = usageOf(this._raw);
        // message_start's output count is a placeholder (1 or so): an answer cut before its
        // message_delta keeps the output estimate charged.
        if (!this._delta)
            u.outputTokens = this.finished ? u.outputTokens : undefined;
        return u;
    }
}
