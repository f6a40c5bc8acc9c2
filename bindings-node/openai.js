"use strict";
/*! `wrapOpenAI`: the OpenAI SDK (npm `openai`, v4 and later) through ratewise. Each call waits for
 * a permit, goes to the deployment the engine picks (`model: permit.model`), with the SDK's own
 * retries off, and settles its permit with the usage and the rate-limit headers; retryable
 * failures go to the next deployment, or to the same one after its hold. The SDK is never loaded
 * here: the wrapper uses the client it is given. */
Object.defineProperty(exports, "__esModule", { value: true });
exports.wrapOpenAI = wrapOpenAI;
const errors_js_1 = require("./errors.js");
const calls_js_1 = require("./calls.js");
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
function wrapOpenAI(client, engine, options) {
    const caller = new calls_js_1.Caller(client, engine, options, 'wrapOpenAI');
    const completions = client.chat?.completions;
    const embeddings = client.embeddings;
    if (typeof completions?.create !== 'function')
        throw (0, errors_js_1.errorFor)('invalid_argument', 'wrapOpenAI: client.chat.completions.create is not a function');
    return {
        client,
        chat: { completions: { create: (body, opts) => chatCreate(caller, completions, body, opts) } },
        embeddings: { create: (body, opts) => embed(caller, embeddings, body, opts) },
    };
}
function usageOf(u) {
    if (!u)
        return {};
    return { inputTokens: (0, calls_js_1.count)(u.prompt_tokens), outputTokens: (0, calls_js_1.count)(u.completion_tokens), cachedInputTokens: (0, calls_js_1.count)(u.prompt_tokens_details?.cached_tokens) };
}
function checkBody(body) {
    if (body === null || typeof body !== 'object')
        throw (0, errors_js_1.errorFor)('invalid_argument', 'the request body must be an object');
}
/** The SDK's request options with retries off and the combined signal. */
function sdkOptions(opts, signal) {
    return signal === null ? { ...opts, maxRetries: 0 } : { ...opts, maxRetries: 0, signal };
}
async function chatCreate(c, api, body, opts) {
    checkBody(body);
    const capability = c.capabilityOf(body);
    const input = (0, calls_js_1.estimateTokens)(body.tools ? { messages: body.messages, tools: body.tools } : body.messages);
    const n = typeof body.n === 'number' && body.n > 1 ? body.n : 1; // n choices: n answers to charge
    const output = n * ((0, calls_js_1.count)(body.max_completion_tokens) ?? (0, calls_js_1.count)(body.max_tokens) ?? c.defaultOutputTokens);
    const signal = c.signalFor(opts?.signal);
    const options = sdkOptions(opts, signal);
    if (body.stream === true) {
        const hide = body.stream_options?.include_usage !== true;
        const b = hide ? { ...body, stream_options: { ...body.stream_options, include_usage: true } } : body;
        const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...b, model }, options));
        return c.stream(sent, new ChunkWatch(hide));
    }
    const sent = await c.send(capability, input, output, signal, (model) => api.create({ ...body, model }, options));
    const settled = c.done(sent, usageOf(sent.data?.usage));
    if (settled)
        await settled;
    return sent.data;
}
async function embed(c, api, body, opts) {
    if (typeof api?.create !== 'function')
        throw (0, errors_js_1.errorFor)('invalid_argument', 'wrapOpenAI: client.embeddings.create is not a function');
    checkBody(body);
    const capability = c.capabilityOf(body);
    const input = (0, calls_js_1.estimateTokens)(body.input ?? null);
    const signal = c.signalFor(opts?.signal);
    const options = sdkOptions(opts, signal);
    const sent = await c.send(capability, input, 0, signal, (model) => api.create({ ...body, model }, options));
    const u = sent.data?.usage;
    const settled = c.done(sent, u ? { inputTokens: (0, calls_js_1.count)(u.prompt_tokens), outputTokens: 0 } : {});
    if (settled)
        await settled;
    return sent.data;
}
/** Reads chat completion chunks: a finish reason ends the answer; the usage chunk (no choices)
 *  carries the usage, and is hidden when ratewise asked for it. */
class ChunkWatch {
    constructor(hide) {
        this.finished = false;
        this._usage = {};
        this._hide = hide;
    }
    see(chunk) {
        const choices = chunk?.choices;
        if (chunk?.usage) {
            this._usage = usageOf(chunk.usage);
            this.finished = true; // the usage chunk is the last one
        }
        if (choices && choices.length > 0) {
            for (const choice of choices)
                if (choice?.finish_reason)
                    this.finished = true;
            return false;
        }
        return this._hide && chunk?.usage != null;
    }
    usage() {
        return this._usage;
    }
}
