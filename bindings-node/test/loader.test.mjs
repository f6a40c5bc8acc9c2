// The addon's loader (native.ts): napi-rs's platform names, the platform package it loads, and
// the error that names the missing package instead of a bare "Cannot find module".
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))
const pkg = process.env.RATEWISE_NODE_PACKAGE || join(here, '..')
const { platformName } = require(join(pkg, 'native.js'))

test('platform names are napi-rs target names', () => {
  assert.equal(platformName('linux', 'x64', false), 'linux-x64-gnu')
  assert.equal(platformName('linux', 'x64', true), 'linux-x64-musl')
  assert.equal(platformName('linux', 'arm64', false), 'linux-arm64-gnu')
  assert.equal(platformName('linux', 'arm', false), 'linux-arm-gnueabihf')
  assert.equal(platformName('darwin', 'arm64', false), 'darwin-arm64')
  assert.equal(platformName('win32', 'x64', false), 'win32-x64-msvc')
  assert.equal(platformName('freebsd', 'x64', false), 'freebsd-x64')
  assert.equal(platformName('android', 'arm', false), 'android-arm-eabi')
  // This machine: the package CI builds and publishes.
  assert.equal(platformName(), 'linux-x64-gnu')
})

// The package's JavaScript without any addon: what a user gets after `--omit=optional`.
function copyWithoutAddon() {
  const dir = mkdtempSync(join(tmpdir(), 'rw-loader-'))
  const dest = join(dir, 'node_modules', 'ratewise')
  mkdirSync(dest, { recursive: true })
  for (const f of readdirSync(pkg)) {
    if (f.endsWith('.js') || f.endsWith('.d.ts') || f === 'package.json') cpSync(join(pkg, f), join(dest, f))
  }
  return { dir, dest }
}

test('without its platform package, loading names the package to install', () => {
  const { dir, dest } = copyWithoutAddon()
  try {
    assert.throws(() => createRequire(join(dir, 'x.js'))('ratewise'), (err) => {
      assert.match(err.message, /no native addon for this platform \(linux-x64-gnu\)/)
      assert.match(err.message, /@ratewise\/linux-x64-gnu/)
      assert.match(err.message, /--omit=optional/)
      assert.equal(err.cause?.code, 'MODULE_NOT_FOUND')
      return true
    })
    assert.ok(readFileSync(join(dest, 'package.json'), 'utf8').includes('"@ratewise/linux-x64-gnu"'),
      'the main package lists its platform package as an optional dependency')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a platform package of another version is refused, naming both versions', () => {
  const { dir } = copyWithoutAddon()
  try {
    const platform = join(dir, 'node_modules', '@ratewise', 'linux-x64-gnu')
    mkdirSync(platform, { recursive: true })
    writeFileSync(join(platform, 'package.json'), JSON.stringify({ name: '@ratewise/linux-x64-gnu', version: '0.0.1', main: 'addon.js' }))
    writeFileSync(join(platform, 'addon.js'), 'module.exports = {}')
    assert.throws(() => createRequire(join(dir, 'x.js'))('ratewise'), /needs @ratewise\/linux-x64-gnu \d+\.\d+\.\d+, but 0\.0\.1 is installed/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
