/*! The native addon's loader. The addon ships in one npm package per platform, napi-rs's layout:
 * `ratewise` lists `@ratewise/<platform>` (`@ratewise/linux-x64-gnu`, ...) as optional
 * dependencies, npm installs the one whose `os`, `cpu` and `libc` match the machine, and this
 * module loads it. A checkout that built the addon itself (`npm run build`) has
 * `ratewise.<platform>.node` beside this file, which is loaded first.
 *
 * When neither is there, the error names the package to install, instead of a bare "Cannot find
 * module". The platform names are napi-rs's (`napi.targets` in package.json lists those built). */

import type * as Addon from './index.js'

// The few Node.js globals used here (the package compiles without @types/node).
declare const require: (id: string) => unknown
declare const __dirname: string
declare const process: {
  platform: string
  arch: string
  report?: { getReport(): unknown }
}
const { existsSync, readFileSync } = require('node:fs') as {
  existsSync(path: string): boolean
  readFileSync(path: string, encoding: 'utf8'): string
}
const { join } = require('node:path') as { join(...parts: string[]): string }

/** The running platform in napi-rs's naming: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`... */
export function platformName(
  platform: string = process.platform,
  arch: string = process.arch,
  musl: boolean = isMusl(),
): string {
  switch (platform) {
    case 'linux':
      return `linux-${arch}-${musl ? 'musl' : arch === 'arm' ? 'gnueabihf' : 'gnu'}`
    case 'win32':
      return `win32-${arch}-msvc`
    case 'darwin':
    case 'freebsd':
    case 'android':
      return arch === 'arm' && platform === 'android' ? 'android-arm-eabi' : `${platform}-${arch}`
    default:
      return `${platform}-${arch}`
  }
}

/** Whether this Linux's C library is musl (Alpine): the glibc build does not load there. */
function isMusl(): boolean {
  if (process.platform !== 'linux') return false
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    if (report?.header) return !report.header.glibcVersionRuntime
  } catch {
    // A report can be refused (policy); fall back to the filesystem.
  }
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    return false
  }
}

function isMissing(err: unknown, specifier: string): boolean {
  const e = err as { code?: string; message?: string } | null
  return e?.code === 'MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${specifier}'`)
}

function load(): typeof Addon {
  const name = platformName()
  const local = join(__dirname, `ratewise.${name}.node`)
  if (existsSync(local)) return require(local) as typeof Addon
  const pkg = `@ratewise/${name}`
  let binding: typeof Addon
  try {
    binding = require(pkg) as typeof Addon
  } catch (err) {
    if (!isMissing(err, pkg)) {
      throw new Error(`ratewise: the native addon ${pkg} is installed but failed to load: ${(err as Error).message}`, {
        cause: err,
      })
    }
    throw new Error(
      `ratewise: no native addon for this platform (${name}). ratewise loads it from the package ${pkg}, ` +
        `which npm installs as an optional dependency of ratewise; it is not installed. Reinstall without ` +
        `--omit=optional / --no-optional (\`npm install ratewise\`), or, if ${pkg} does not exist, build the addon ` +
        `from a checkout of the repository (bindings-node: \`npm run build\`).`,
      { cause: err },
    )
  }
  const own = (JSON.parse(readFileSync(join(__dirname, 'package.json'), 'utf8')) as { version: string }).version
  const theirs = (require(`${pkg}/package.json`) as { version: string }).version
  if (theirs !== own) {
    throw new Error(
      `ratewise ${own} needs ${pkg} ${own}, but ${theirs} is installed: reinstall ratewise so that both match.`,
    )
  }
  return binding
}

const addon: typeof Addon = load()
export default addon
