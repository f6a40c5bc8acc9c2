// estimateTokens counts plain values in JS and sends anything else to the core as JSON text
// (src-ts/calls.ts). These tests hold the two ways equal: on fixed cases, and on random values
// (every kind of string, number, nesting and the values JSON drops or refuses), where the core's
// count of the value's JSON text is the reference.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
const rw = require(process.env.RATEWISE_NODE_PACKAGE || join(here, '..'))
// The addon's own function, which estimateTokens falls back to: the reference.
const native = require(join(process.env.RATEWISE_NODE_PACKAGE || join(here, '..'), 'native.js'))
const addon = native.default ?? native

/** The core's count of `value`'s JSON text, or the string 'error' when JSON or the core refuses it. */
function reference(value) {
  let text
  try {
    text = JSON.stringify(value)
  } catch {
    return 'error'
  }
  if (typeof text !== 'string') return 'error'
  try {
    return addon.estimateTokensJson(text)
  } catch {
    return 'error'
  }
}

/** A value as text for a failure's message (JSON cannot write every one). */
function show(value) {
  try {
    return String(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)))
  } catch {
    return String(value)
  }
}

function measured(value) {
  try {
    return rw.estimateTokens(value)
  } catch (e) {
    assert.ok(e instanceof rw.InvalidArgumentError, `${e}`)
    return 'error'
  }
}

test('fixed cases count as the core counts them', () => {
  const cases = [
    [], [{ role: 'user', content: 'Hello, how are you today?' }], 'abc', '日本', 'é', '😀', 'a😀b', 0, -0, -12345,
    Number.MAX_SAFE_INTEGER, 2 ** 53, 1e21, 0.5, -1.25e-7, NaN, Infinity, true, null,
    { system: 'abc', max_tokens: 100, messages: [{ role: 'user', content: 'abc' }] },
    { system: undefined, messages: [{ role: 'user', content: 'hi' }], tools: undefined },
    [{ role: 'user', content: [{ type: 'text', text: 'abcdef' }, { type: 'image_url', image_url: { url: 'data:,AAAA' } }] }],
    [{ type: 'image', source: { data: 1.5 } }], [{ type: 'input_image', n: 1n }],
    JSON.parse('{"__proto__": "abcdef", "messages": []}'), Object.create(null),
    [1, , 3], [undefined], [() => 1], { f: () => 1, s: Symbol('x') }, new Date(0), new Map([[1, 2]]),
    new Uint8Array([1, 2]), new String('abc'), Object(5), { toJSON: () => 'abcdef' }, { toJSON: 'abcdef' },
    '\ud800', 'a\udc00', '\ud800\ud800', 'x\ud83d', { n: 1n }, undefined, () => 1, Symbol('s'),
  ]
  for (const value of cases) assert.equal(measured(value), reference(value), show(typeof value === 'symbol' ? 'a symbol' : value))
})

test('a value nested deeper than the walk goes, or than the core parses, is the core\'s to count or refuse', () => {
  for (const depth of [63, 64, 65, 126, 127, 128, 129, 200]) {
    let v = ['abc']
    for (let i = 0; i < depth; i++) v = [v]
    assert.equal(measured(v), reference(v), `depth ${depth}`)
    let o = { messages: [] }
    for (let i = 0; i < depth; i++) o = { o }
    assert.equal(measured(o), reference(o), `object depth ${depth}`)
  }
  const cycle = { messages: [] }
  cycle.self = cycle
  assert.equal(measured(cycle), 'error')
})

// A small seeded generator, so that a failure can be replayed.
function rng(seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function randomString(r) {
  const n = Math.floor(r() * 12)
  let s = ''
  for (let i = 0; i < n; i++) {
    const k = r()
    if (k < 0.5) s += String.fromCharCode(32 + Math.floor(r() * 95))
    else if (k < 0.6) s += String.fromCharCode(Math.floor(r() * 0x80)) // control characters too
    else if (k < 0.7) s += String.fromCharCode(0x80 + Math.floor(r() * 0x780)) // two bytes
    else if (k < 0.8) s += String.fromCharCode(0x800 + Math.floor(r() * 0xd000)) // three bytes, some surrogates
    else if (k < 0.9) s += String.fromCodePoint(0x10000 + Math.floor(r() * 0xfffff)) // four bytes
    else if (k < 0.93) s += String.fromCharCode(0xd800 + Math.floor(r() * 0x800)) // a surrogate alone
    else s += ['image', 'image_url', 'input_image', 'text', 'messages', 'type'][Math.floor(r() * 6)]
  }
  return s
}

function randomNumber(r) {
  const k = r()
  if (k < 0.4) return Math.floor(r() * 1000) - 500
  if (k < 0.5) return Math.floor(r() * 2 ** 53) * (r() < 0.5 ? -1 : 1)
  if (k < 0.6) return 2 ** 53 + Math.floor(r() * 1e6) * 2
  if (k < 0.7) return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20)
  if (k < 0.8) return 10 ** Math.floor(r() * 30)
  return [0, -0, NaN, Infinity, -Infinity, 0.1, 1e21, 1e-7, 5e-324][Math.floor(r() * 9)]
}

function randomValue(r, depth) {
  const k = r()
  if (depth > 4 || k < 0.3) return randomString(r)
  if (k < 0.45) return randomNumber(r)
  if (k < 0.5) return r() < 0.5
  if (k < 0.53) return null
  if (k < 0.535) return [undefined, 1n, new Date(1), new Map(), () => 1, Symbol('x')][Math.floor(r() * 6)]
  const n = Math.floor(r() * 5)
  if (k < 0.75) {
    const a = []
    for (let i = 0; i < n; i++) a.push(randomValue(r, depth + 1))
    return a
  }
  const o = r() < 0.05 ? Object.create(null) : {}
  for (let i = 0; i < n; i++) {
    const key = r() < 0.3 ? ['type', 'messages', 'content', 'role', '__proto__'][Math.floor(r() * 5)] : randomString(r)
    const v = key === 'type' && r() < 0.5 ? ['image', 'image_url', 'input_image', 'text'][Math.floor(r() * 4)] : randomValue(r, depth + 1)
    if (key === '__proto__') Object.defineProperty(o, key, { value: v, enumerable: true, configurable: true, writable: true })
    else o[key] = r() < 0.05 ? undefined : v
  }
  return o
}

test('random values count as the core counts their JSON text', () => {
  const seed = Number(process.env.RATEWISE_ESTIMATE_SEED || 20261204)
  const r = rng(seed)
  let walked = 0
  for (let i = 0; i < 20_000; i++) {
    const v = randomValue(r, 0)
    const want = reference(v)
    assert.equal(measured(v), want, `seed ${seed}, value ${i}: ${show(v)}`)
    if (want !== 'error') walked++
  }
  assert.ok(walked > 10_000, `only ${walked} values were counted`)
})
