// Canonical transcript JSON (docs/design.md section 12) for the Node runner. JS numbers do not remember
// whether they were floats, so floats are wrapped (F) and the snapshot is read from its JSON
// text with a parser that keeps that distinction.

/** A float, written with exactly 9 decimals. */
export class F {
  constructor(value) {
    this.value = value
  }
}

/** `x` with exactly 9 digits after the point, rounded half to even on its exact binary value
 *  (as Rust, Python and C printf do; Number#toFixed rounds ties away from -infinity). */
export function fixed9(x) {
  if (!Number.isFinite(x)) throw new Error(`cannot write ${x}`)
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  const bits = view.getBigUint64(0)
  const negative = bits >> 63n === 1n
  const exponent = Number((bits >> 52n) & 0x7ffn)
  let mantissa = bits & ((1n << 52n) - 1n)
  let shift
  if (exponent === 0) {
    shift = 1074
  } else {
    mantissa |= 1n << 52n
    shift = 1075 - exponent
  }
  // |x| = mantissa / 2^shift (shift may be negative for large numbers).
  let num = mantissa * 10n ** 9n
  let den = 1n
  if (shift >= 0) den = 1n << BigInt(shift)
  else num <<= BigInt(-shift)
  let q = num / den
  const r = num % den
  if (r * 2n > den || (r * 2n === den && q % 2n === 1n)) q += 1n
  const digits = q.toString().padStart(10, '0')
  const text = `${digits.slice(0, -9)}.${digits.slice(-9)}`
  return negative && q !== 0n ? `-${text}` : text
}

export function canonical(v) {
  if (v === null || v === undefined) return 'null'
  if (v instanceof F) return fixed9(v.value)
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`unmarked float ${v} in a transcript`)
    return String(v)
  }
  if (typeof v === 'string') return JSON.stringify(v)
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  const keys = Object.keys(v).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
}

/** JSON.parse, except that numbers written with a fraction or exponent become F. */
export function parseKeepingFloats(text) {
  let i = 0
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++
  }
  const value = () => {
    ws()
    const c = text[i]
    if (c === '{') {
      i++
      const out = {}
      ws()
      if (text[i] === '}') return i++, out
      for (;;) {
        ws()
        const k = string()
        ws()
        i++ // :
        out[k] = value()
        ws()
        if (text[i++] === '}') return out
      }
    }
    if (c === '[') {
      i++
      const out = []
      ws()
      if (text[i] === ']') return i++, out
      for (;;) {
        out.push(value())
        ws()
        if (text[i++] === ']') return out
      }
    }
    if (c === '"') return string()
    if (text.startsWith('true', i)) return (i += 4), true
    if (text.startsWith('false', i)) return (i += 5), false
    if (text.startsWith('null', i)) return (i += 4), null
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))
    if (!m) throw new Error(`bad JSON at ${i}`)
    i += m[0].length
    return m[1] || m[2] ? new F(Number(m[0])) : Number(m[0])
  }
  const string = () => {
    const start = i
    i++
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1
    i++
    return JSON.parse(text.slice(start, i))
  }
  return value()
}

/** Strips the float markers, for comparisons. */
export function plain(v) {
  if (v instanceof F) return v.value
  if (Array.isArray(v)) return v.map(plain)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  return v
}

/** JSON.parse that keeps integers beyond 2^53 exact (as BigInt), so that configuration read from
 *  a scenario file reaches the engine as the file wrote it. */
export function parseLossless(text) {
  return JSON.parse(text.replace(/("(?:[^"\\]|\\.)*")|(-?\d{16,})(?![.eE\d])/g, (m, str, big) =>
    str !== undefined || Number.isSafeInteger(Number(big)) ? m : `{"__bigint__":"${big}"}`), (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.__bigint__ === 'string'
      ? BigInt(v.__bigint__)
      : v)
}

/** JSON text of a value that may hold BigInt (written as its digits). */
export function stringifyLossless(v) {
  if (typeof v === 'bigint') return v.toString()
  if (Array.isArray(v)) return `[${v.map(stringifyLossless).join(',')}]`
  if (v && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${stringifyLossless(x)}`).join(',')}}`
  return JSON.stringify(v)
}
