// `ratewise serve` end to end with the npm `openai` client (resolved from bindings-node): JSON
// and streamed chat to an OpenAI upstream and to an Anthropic upstream (translated), the usage
// chunk only when asked, a forced tool call, RateLimitError with Retry-After, 401.
// Skipped when the binary is missing or has no `serve`, unless RATEWISE_REQUIRE_GATEWAY=1.
//
//   node --test tests/gateway/sdk_node.test.mjs
import { test, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, isAbsolute } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const BIN = (() => {
  const b = process.env.RATEWISE_BIN || 'target/debug/ratewise'
  return isAbsolute(b) ? b : join(root, b)
})()
const MOCK = join(root, 'tests', 'mockllm', 'mockllm.py')
const venvPython = join(root, 'target', 'py-venv', 'bin', 'python')
const PYTHON = existsSync(venvPython) ? venvPython : 'python3'

function missing() {
  if (!existsSync(BIN)) return `the gateway binary is missing (${BIN}; build it or set RATEWISE_BIN)`
  const r = spawnSync(BIN, ['serve', '--help'], { stdio: 'ignore', timeout: 30000 })
  if (r.status !== 0) return `${BIN} has no \`serve\` subcommand (\`serve --help\` exited ${r.status})`
  return null
}
const why = missing()
if (why && process.env.RATEWISE_REQUIRE_GATEWAY === '1') throw new Error(`RATEWISE_REQUIRE_GATEWAY=1 but ${why}`)
const requireNode = createRequire(join(root, 'bindings-node', 'package.json'))
let OpenAI = null
let whyNoSdk = null
try {
  OpenAI = requireNode('openai')
} catch {
  whyNoSdk = 'the openai npm package is not installed (npm install in bindings-node)'
}
if (!why && whyNoSdk && process.env.RATEWISE_REQUIRE_GATEWAY === '1') throw new Error(whyNoSdk)
const skip = why ? `skipped: ${why}` : whyNoSdk ? `skipped: ${whyNoSdk}` : false

const hex = (n) => randomBytes(n).toString('hex')
const sha256 = (s) => createHash('sha256').update(s).digest('hex')
const KEY = `rw-node-${hex(8)}`
const ADMIN = `rw-admin-${hex(8)}`
const UP_OA = `sk-upstream-oa-${hex(12)}`
const UP_AN = `sk-ant-upstream-${hex(12)}`
const OUT = 6
const words = (n, trailing = false) =>
  trailing ? Array.from({ length: n }, (_, k) => `tok${k} `).join('') : Array.from({ length: n }, (_, k) => `tok${k}`).join(' ')

/** Starts a child and resolves with its first stdout line (parsed as JSON). */
function startChild(cmd, args, env) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  let err = ''
  child.stderr.on('data', (d) => { err = (err + d).slice(-4000) })
  const lines = []
  const first = new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      let nl
      while ((nl = out.indexOf('\n')) >= 0) {
        lines.push(out.slice(0, nl))
        out = out.slice(nl + 1)
        if (lines.length === 1) resolve(JSON.parse(lines[0]))
      }
    })
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}: ${err}`)))
    setTimeout(() => reject(new Error(`${cmd} printed no line in 20 s: ${err}`)), 20000).unref()
  })
  const exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig)))
  return { child, first, lines, exited, stderr: () => err }
}

let mock, gw, mockUrl, gwUrl

const mockGet = (path) => fetch(mockUrl + path).then((r) => r.json())
const mockPost = (path, body) =>
  fetch(mockUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) }).then((r) => r.json())
const stats = async (model) => (await mockGet('/_mock/stats')).models[model]
const client = (key = KEY, opts = {}) => new OpenAI({ baseURL: gwUrl + '/v1', apiKey: key, maxRetries: 0, timeout: 15000, ...opts })

before(async () => {
  if (skip) return
  const models = {
    'gpt-n': { api: 'openai', output_tokens: OUT },
    'claude-n': { api: 'anthropic', output_tokens: OUT },
    'gpt-tiny': { api: 'openai', output_tokens: 2 },
  }
  mock = startChild(PYTHON, [MOCK, '--port', '0', '--config', JSON.stringify({ models })], process.env)
  mockUrl = `http://127.0.0.1:${(await mock.first).port}`
  const day = { dimension: 'tokens', limit: 10000000, window: 'day', algorithm: 'fixed_window' }
  const config = {
    providers: [
      { name: 'oa-n', model: 'gpt-n', quotas: [day] },
      { name: 'an-n', model: 'claude-n', quotas: [day] },
      { name: 'tiny-n', model: 'gpt-tiny', quotas: [{ dimension: 'requests', limit: 1, window: 'minute' }] },
    ],
    capabilities: [
      { name: 'chat', providers: [{ provider: 'oa-n', priority: 10 }] },
      { name: 'chat-x', providers: [{ provider: 'an-n', priority: 10 }] },
      { name: 'tiny', providers: [{ provider: 'tiny-n', priority: 10 }] },
    ],
    lanes: [{ name: 'normal', headroom: 0 }],
    gateway: {
      listen: '127.0.0.1:0',
      upstreams: {
        'oa-n': { api: 'openai', base_url: mockUrl + '/v1', api_key_env: 'RW_NODE_UP_OA' },
        'an-n': { api: 'anthropic', base_url: mockUrl, api_key_env: 'RW_NODE_UP_AN' },
        'tiny-n': { api: 'openai', base_url: mockUrl + '/v1', api_key_env: 'RW_NODE_UP_OA' },
      },
      keys: [{ name: 'node', sha256: sha256(KEY) }],
      admin_key_sha256: sha256(ADMIN),
      timeout_ms: 5000,
      max_attempts: 3,
      max_body_bytes: 65536,
      connect_timeout_ms: 1000,
      read_timeout_ms: 5000,
      default_max_tokens: 4096,
    },
  }
  const dir = mkdtempSync(join(tmpdir(), 'rw-gw-node-'))
  const file = join(dir, 'gateway.json')
  writeFileSync(file, JSON.stringify(config))
  gw = startChild(BIN, ['serve', file], { ...process.env, RW_NODE_UP_OA: UP_OA, RW_NODE_UP_AN: UP_AN })
  const line = await gw.first
  assert.deepEqual(Object.keys(line), ['listening'])
  assert.match(line.listening, /^127\.0\.0\.1:\d+$/)
  gwUrl = `http://${line.listening}`
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(gwUrl + '/readyz')).status === 200) break
    } catch {}
    if (i > 500) throw new Error('the gateway never became ready')
    await new Promise((r) => setTimeout(r, 20))
  }
})

after(async () => {
  if (gw) {
    gw.child.kill('SIGTERM')
    const code = await gw.exited
    assert.equal(code, 0, `the gateway exited with ${code} on SIGTERM: ${gw.stderr()}`)
    assert.equal(gw.lines.length, 1, 'the gateway printed more than its one stdout line')
  }
  if (mock) {
    mock.child.kill('SIGTERM')
    await mock.exited
  }
})

beforeEach(async () => { if (!skip) await mockPost('/_mock/reset') })

const USER = [{ role: 'user', content: 'hello there' }]

test('JSON chat: exact text, finish reason, usage and x-ratewise headers', { skip }, async () => {
  const { data, response } = await client().chat.completions.create({ model: 'chat', messages: USER }).withResponse()
  assert.equal(data.choices[0].message.content, words(OUT))
  assert.equal(data.choices[0].finish_reason, 'stop')
  const s = await stats('gpt-n')
  assert.equal(data.usage.prompt_tokens, s.input_tokens_charged)
  assert.equal(data.usage.completion_tokens, OUT)
  assert.equal(response.headers.get('x-ratewise-provider'), 'oa-n')
  assert.equal(response.headers.get('x-ratewise-model'), 'gpt-n')
  assert.equal(response.headers.get('x-ratewise-attempts'), '1')
  const log = await mockGet('/_mock/log')
  assert.equal(log.length, 1)
  assert.equal(log[0].body.model, 'gpt-n')
  assert.deepEqual(log[0].auth, { header: 'authorization', sha256: sha256(UP_OA) })
})

test('stream: exact text; the usage chunk only when the client asked', { skip }, async () => {
  let text = ''
  let empty = 0
  for await (const c of await client().chat.completions.create({ model: 'chat', messages: USER, stream: true })) {
    if (c.choices.length === 0) empty++
    else text += c.choices[0].delta.content ?? ''
  }
  assert.equal(text, words(OUT, true))
  assert.equal(empty, 0, 'a usage chunk reached a client that did not ask for it')
  const chunks = []
  for await (const c of await client().chat.completions.create({
    model: 'chat', messages: USER, stream: true, stream_options: { include_usage: true },
  })) chunks.push(c)
  const last = chunks[chunks.length - 1]
  assert.deepEqual(last.choices, [])
  assert.equal(last.usage.completion_tokens, OUT)
  assert.equal(last.usage.prompt_tokens, (await stats('gpt-n')).input_tokens_charged / 2)
})

test('translated to an Anthropic upstream: JSON and stream', { skip }, async () => {
  const r = await client().chat.completions.create({
    model: 'chat-x', messages: [{ role: 'system', content: 'be terse' }, ...USER], max_tokens: 4,
  })
  assert.equal(r.choices[0].message.content, words(4))
  assert.equal(r.choices[0].finish_reason, 'length')
  const log = await mockGet('/_mock/log')
  assert.equal(log[0].path, '/v1/messages')
  assert.equal(log[0].body.model, 'claude-n')
  assert.equal(log[0].body.max_tokens, 4)
  assert.deepEqual(log[0].auth, { header: 'x-api-key', sha256: sha256(UP_AN) })
  assert.equal(r.usage.prompt_tokens, (await stats('claude-n')).input_tokens_charged)
  let text = ''
  const finish = []
  for await (const c of await client().chat.completions.create({ model: 'chat-x', messages: USER, stream: true })) {
    assert.ok(c.choices.length > 0)
    text += c.choices[0].delta.content ?? ''
    if (c.choices[0].finish_reason) finish.push(c.choices[0].finish_reason)
  }
  assert.equal(text, words(OUT, true))
  assert.deepEqual(finish, ['stop'])
})

test('translated forced tool call comes back as tool_calls', { skip }, async () => {
  const parameters = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } }
  const r = await client().chat.completions.create({
    model: 'chat-x', messages: USER,
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters } }],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  })
  assert.equal(r.choices[0].finish_reason, 'tool_calls')
  const [tc] = r.choices[0].message.tool_calls
  assert.equal(tc.function.name, 'get_weather')
  assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'mock-city', days: 42 })
})

test('refusal: RateLimitError with Retry-After and retry-after-ms', { skip }, async () => {
  await client().chat.completions.create({ model: 'tiny', messages: USER })
  await assert.rejects(
    client().chat.completions.create({ model: 'tiny', messages: USER }, { headers: { 'x-ratewise-timeout-ms': '0' } }),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}`)
      assert.equal(err.status, 429)
      const ra = err.headers.get('retry-after')
      const ms = err.headers.get('retry-after-ms')
      assert.match(ra ?? '', /^\d+$/)
      assert.match(ms ?? '', /^\d+$/)
      assert.equal(Number(ra), Math.ceil(Number(ms) / 1000))
      assert.ok(Number(ra) >= 58 && Number(ra) <= 60, `Retry-After ${ra}`)
      assert.equal(typeof err.error?.message, 'string')
      return true
    },
  )
  assert.equal((await stats('gpt-tiny')).received, 1)
})

test('unknown key: AuthenticationError, nothing sent upstream', { skip }, async () => {
  await assert.rejects(client('rw-nobody').chat.completions.create({ model: 'chat', messages: USER }), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}`)
    assert.equal(err.status, 401)
    return true
  })
  assert.equal((await mockGet('/_mock/stats')).total.received, 0)
})
