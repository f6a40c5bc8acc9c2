/*! The native addon's loader. The addon ships in one npm package per platform, napi-rs's layout:
 * `ratewise` lists `@ratewise/<platform>` (`@ratewise/linux-x64-gnu`, ...) as optional
 * dependencies, npm installs the one whose `os`, `cpu` and `libc` match the machine, and this
 * module loads it. A checkout that built the addon itself (`npm run build`) has
 * `ratewise.<platform>.node` beside this file, which is loaded first.
 *
 * When neither is there, the error names the package to install, instead of a bare "Cannot find
 * module". The platform names are napi-rs's (`napi.targets` in package.json lists those built). */
import type * as Addon from './index.js';
/** The running platform in napi-rs's naming: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`... */
export declare function platformName(platform?: string, arch?: string, musl?: boolean): string;
declare const addon: typeof Addon;
export default addon;
