#!/usr/bin/env bash
# Every check and every test of the project, as CI runs them (.ci/run calls this script).
# Installs what it needs on a fresh machine: a Python venv (.venv) with the suite tool's
# dependencies, apt packages (redis, postgresql, chromium, valgrind, pkg-config, cmake), the
# packaging tools (PyPI: maturin, zig) and the local registries (pypiserver, verdaccio); the Rust
# toolchain is the machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s  (%ss)\n' "$*" "$SECONDS"; }

step "tools"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check jsonschema==4.26.0
export PATH="$root/.venv/bin:$PATH"
cargo --version
python --version

# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh # pg_bindir, pg_start, and scripts/redis.sh's redis_start, free_port, on_exit
mkdir -p target

# Work that later steps need, run in the background at a lower CPU priority while the steps
# before them run: a step that compiles or tests leaves a core idle much of the time (a link, a
# crate the others wait for, a test that waits on a server), and the background work takes that
# time instead of a step of its own. The steps themselves are unchanged; each waits for what it
# needs (bg_wait). $1: a name (the log is target/bg-$1.log); $2: the niceness; the rest: the
# command (a function of this script is fine). Each job has its own process group, killed when
# this script exits early.
declare -A bg_pid=()
bg_start() {
  local name=$1 niceness=$2
  shift 2
  set -m
  ( renice -n "$niceness" -p "$BASHPID" >/dev/null; "$@" ) </dev/null >"target/bg-$name.log" 2>&1 &
  bg_pid[$name]=$!
  set +m
  on_exit "[ -z \"\${bg_pid[$name]:-}\" ] || kill -- -\${bg_pid[$name]} 2>/dev/null || true"
  echo "background: $name (log in target/bg-$name.log)"
}
# $1: the name; $2: "print" to show the log when it succeeded too (it is shown when it failed).
bg_wait() {
  local name=$1 rc=0 t0=$SECONDS
  wait "${bg_pid[$name]}" || rc=$?
  unset "bg_pid[$name]"
  if [ "$rc" != 0 ] || [ "${2:-}" = print ]; then cat "target/bg-$name.log"; fi
  [ "$rc" = 0 ] || { echo "background job $name failed (exit $rc)" >&2; exit 1; }
  echo "background: $name done (waited $((SECONDS - t0)) s for it)"
}

# What apt installs when missing, in one `apt-get update` and one install (on a fresh machine
# both take minutes; the packages are first needed by the Rust tests):
# - redis-server and redis-cli: the shared store's tests (the Rust tests start servers of their
#   own; the bindings' tests and the fleet test use one started here, on a free loopback port,
#   without persistence, stopped when this script ends);
# - PostgreSQL: the ledger's fleet store (ledger/tests, the gateway's two-instance test), a
#   throw-away cluster on a free loopback port;
# - curl: the local package registries' readiness checks (scripts/registries.sh);
# - openssl: core/tests/redis_transport.rs makes a throw-away CA and certificates for its TLS tests;
# - chromium: tests/gateway/test_gateway_dashboard.py renders the dashboard in headless Chromium
#   (RATEWISE_CHROMIUM names another browser binary);
# - valgrind, pkg-config, cmake: the C library's tests and examples.
apt_missing=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_missing+=(redis-server redis-tools)
[ -n "$(pg_bindir || true)" ] || apt_missing+=(postgresql)
command -v curl >/dev/null || apt_missing+=(curl)
command -v openssl >/dev/null || apt_missing+=(openssl)
[ -n "${RATEWISE_CHROMIUM:-}" ] || command -v chromium >/dev/null || apt_missing+=(chromium)
for tool in valgrind pkg-config cmake; do command -v "$tool" >/dev/null || apt_missing+=("$tool"); done
apt_install() { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}"; }
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "apt: installing ${apt_missing[*]}"
  bg_start apt 0 apt_install
fi
apt_wait() { if [ -n "${bg_pid[apt]:-}" ]; then bg_wait apt; fi; }
# The release artifacts (scripts/package.sh, in dist/: the wheels, the addon, the C library, fat
# LTO) are needed first after the Rust tests. (They build in target/x86_64-unknown-linux-gnu/dist,
# a folder and a cargo lock of their own, so they do not wait for the debug builds.)
bg_start packages 10 scripts/package.sh
# The release builds only the last steps use (the fleet and soak workers, the CLI the README's
# first command and `cargo install` run), at the lowest priority: target/release has its own lock.
release_builds() {
  cargo build --release --quiet -p ratewise --features redis --example fleet_worker --example soak_worker
  cargo build --release --quiet -p ratewise-cli
}
bg_start release 19 release_builds

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet -p ratewise

step "conformance files (schema, unique ids, canonical formatting)"
python conformance/suite check

apt_wait
redis-server --version
redis_start "$root/target/redis"
echo "redis-server on $redis_url"
pg_start "$root/target/postgres"
echo "postgres on $postgres_url"
export RATEWISE_POSTGRES_URL="$postgres_url" RATEWISE_REQUIRE_POSTGRES=1

step "Rust tests (unit, conformance, properties, doc)"
cargo test --workspace

step "packages: scripts/package.sh builds every artifact into dist/ and checks their sizes"
# (It checks first that every package has the one version and the licenses.) The tests below
# install these artifacts as users do: from local registries, or by make install. (Started in the
# background at the beginning: bg_start packages.)
bg_wait packages print
# The Node.js files napi-rs generates (index.d.ts) and tsc compiles (src-ts/ -> *.js, *.d.ts) are
# committed; the package build above regenerated them.
node_built=(bindings-node/index.d.ts)
for m in ratewise native errors calls openai anthropic; do node_built+=("bindings-node/$m.js" "bindings-node/$m.d.ts"); done
if ! git diff --exit-code --stat -- "${node_built[@]}"; then
  echo "${node_built[*]}: changed when built (edit src/ and src-ts/, not these): commit the rebuilt files" >&2
  exit 1
fi
version=$(scripts/check-versions.py --print)
py_test_deps=(pytest==9.2.0 mypy==2.4.1 typing_extensions==4.16.0 openai==3.57.0 anthropic==2.16.0)
# The sdist, in a venv of its own: pip builds it with maturin (from PyPI) and Rust, in a fresh
# build folder of its own, in the background until its tests below.
sdist_install() {
  rm -rf target/py-sdist
  python3 -m venv target/py-sdist
  target/py-sdist/bin/python -m pip install --quiet --disable-pip-version-check "${py_test_deps[@]}"
  target/py-sdist/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir "dist/python/ratewise-$version.tar.gz"
}
bg_start sdist 15 sdist_install
# shellcheck source=scripts/registries.sh
. scripts/registries.sh
# What a machine without Rust sees: the PATH without cargo, rustc or rustup.
no_rust_path=$(tr ':' '\n' <<<"$PATH" | grep -v -e '/\.cargo/' -e '/\.rustup/' | paste -sd: -)
if env PATH="$no_rust_path" sh -c 'command -v cargo || command -v rustc'; then
  echo "cannot hide Rust from the PATH for the install tests" >&2
  exit 1
fi

step "Python: pip install ratewise from a local index (pypiserver), no Rust on the PATH; its tests"
pypi_start target/registry/pypi dist/python
echo "pypiserver on $pypi_url"
# Only in target/py-venv, for the gateway tests: Pillow decodes the dashboard's screenshot.
gateway_test_deps=(pillow==13.0.0)
# $1: the venv; $2: the wheel tag it must hold.
py_check_tag() {
  local tag
  tag=$("$1/bin/python" -c 'import importlib.metadata as m; d = m.distribution("ratewise"); print(next(l.split(": ", 1)[1] for l in d.read_text("WHEEL").splitlines() if l.startswith("Tag: ")))')
  echo "installed: ratewise $("$1/bin/python" -c 'import ratewise; print(ratewise.__version__)') ($tag)"
  [ "$tag" = "$2" ] || { echo "expected the $2 wheel, got $tag" >&2; exit 1; }
}
# $1: a venv under target/; $2: 1 to make a missing SDK a failure. From target/, so that nothing
# but the installed package can be imported as `ratewise`.
py_suite() {
  (cd target && RATEWISE_REQUIRE_SDKS="$2" RATEWISE_REDIS_URL="$redis_url" "$1/bin/python" -m pytest -q -p no:cacheprovider ../bindings-python/tests)
}
py_tag=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
rm -rf target/py-venv
python3 -m venv target/py-venv
target/py-venv/bin/python -m pip install --quiet --disable-pip-version-check "${py_test_deps[@]}" "${gateway_test_deps[@]}"
# The SDKs are installed already, so the extras resolve without leaving the local index.
env PATH="$no_rust_path" target/py-venv/bin/python -m pip install --quiet --disable-pip-version-check \
  "ratewise[openai,anthropic]==$version" --index-url "$pypi_url"
py_check_tag target/py-venv "$py_tag-$py_tag-manylinux_2_28_x86_64"
# From target/, so that nothing but the installed wheel can be imported as `ratewise`.
# The SDK wrappers' tests run against the real openai and anthropic SDKs (pinned above) and the
# mock provider of tests/mockllm; RATEWISE_REQUIRE_SDKS makes a missing SDK a failure, not a skip.
target/py-venv/bin/python -m pytest -q -p no:cacheprovider tests/mockllm/test_mockllm.py
py_suite py-venv 1
(cd target && py-venv/bin/python -m mypy.stubtest ratewise._native)
# A typed user of the API (`with ... return`, `async with`): mypy --strict reports nothing.
(cd target && py-venv/bin/python -m mypy --strict --no-incremental ../bindings-python/tests/typing/usage.py)
# The load test: 2,000 calls through each wrapper from 8 threads and from asyncio, against hidden
# limits 4x below the configuration: 0 lost, <= 0.5% 429s; the wall time against its floor is
# printed (target 1.10, bench/README.md), bounded generously here.
(cd target && RATEWISE_LOAD_MAX_WALL=1.5 py-venv/bin/python ../tests/sdk/load_python.py)

step "Python: the abi3 wheel (by file) and the sdist (built from scratch), each with the tests"
rm -rf target/py-abi3
python3 -m venv target/py-abi3
target/py-abi3/bin/python -m pip install --quiet --disable-pip-version-check "${py_test_deps[@]}"
env PATH="$no_rust_path" target/py-abi3/bin/python -m pip install --quiet --disable-pip-version-check \
  dist/python/ratewise-"$version"-cp39-abi3-manylinux_2_28_x86_64.whl
py_check_tag target/py-abi3 cp39-abi3-manylinux_2_28_x86_64
py_suite py-abi3 1
# The oldest CPython the abi3 wheel is for, when this machine has it: pip picks that wheel from
# the index by itself. The SDKs need 3.10, so their tests skip there.
py39=""
for candidate in "$HOME"/.pyenv/versions/3.9*/bin/python3.9 "$(command -v python3.9 || true)"; do
  # (A pyenv shim exists even where it cannot run: try each.)
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then
    py39=$candidate
    break
  fi
done
if [ -n "$py39" ]; then
  rm -rf target/py-39 && "$py39" -m venv target/py-39
  target/py-39/bin/python -m pip install --quiet --disable-pip-version-check pytest==8.4.2
  env PATH="$no_rust_path" target/py-39/bin/python -m pip install --quiet --disable-pip-version-check \
    --only-binary :all: "ratewise==$version" --index-url "$pypi_url"
  py_check_tag target/py-39 cp39-abi3-manylinux_2_28_x86_64
  py_suite py-39 ""
else
  echo "(no CPython 3.9 here: the abi3 wheel was tested on $(python3 --version) only)"
fi
# The sdist, built from scratch by pip (bg_start sdist, above).
bg_wait sdist
py_check_tag target/py-sdist "$py_tag-$py_tag-linux_x86_64"
py_suite py-sdist 1

step "Node.js: the addon's tests in the checkout, then npm install ratewise from a local registry (verdaccio)"
(cd bindings-node && RATEWISE_REQUIRE_SDKS=1 node --test test/ \
  && npx tsc --noEmit --strict --target es2022 --module nodenext --moduleResolution nodenext --lib es2022 test/types-check.ts \
  && RATEWISE_LOAD_MAX_WALL=1.5 node ../tests/sdk/load_node.mjs)
npm_registry_start target/registry/npm
echo "verdaccio on $npm_registry_url"
for t in dist/node/ratewise-linux-x64-gnu-"$version".tgz dist/node/ratewise-"$version".tgz; do
  npm publish "$t" --registry "$npm_registry_url" --userconfig "$npm_userconfig" --access public --loglevel=error
done
rm -rf target/node-install && mkdir -p target/node-install
(cd target/node-install && npm init -y >/dev/null \
  && env PATH="$no_rust_path" npm install ratewise --registry "$npm_registry_url" --cache "$root/target/registry/npm-cache" \
    --no-audit --no-fund --loglevel=error \
  && test -f node_modules/@ratewise/linux-x64-gnu/ratewise.linux-x64-gnu.node \
  && ! ls node_modules/ratewise/*.node 2>/dev/null \
  && node -e "const { Engine } = require('ratewise'); new Engine({}); console.log('require: ok', require('ratewise/package.json').version)" \
  && node --input-type=module -e "import { Engine, statusFromHttp } from 'ratewise'; new Engine('{}'); console.log('import: ok', statusFromHttp(529))")
RATEWISE_REDIS_URL="$redis_url" RATEWISE_NODE_PACKAGE="$root/target/node-install/node_modules/ratewise" node --test bindings-node/test/

step "the gateway (ratewise serve): the real openai and anthropic SDKs, Python and Node, against the mock upstream"
# The binary that cargo test built; the examples' configurations must validate.
cargo build -p ratewise-cli
OPENAI_API_KEY=sk-check ANTHROPIC_API_KEY=sk-check target/debug/ratewise check examples/gateway.json >/dev/null
OPENAI_API_KEY=sk-check ANTHROPIC_API_KEY=sk-check target/debug/ratewise check examples/gateway-local.json >/dev/null
# RATEWISE_REQUIRE_BROWSER: no Chromium or no Pillow fails the dashboard's test instead of skipping it.
RATEWISE_REQUIRE_GATEWAY=1 RATEWISE_REQUIRE_BROWSER=1 RATEWISE_REDIS_URL="$redis_url" target/py-venv/bin/python -m pytest -q -p no:cacheprovider tests/gateway
RATEWISE_REQUIRE_GATEWAY=1 node --test tests/gateway/sdk_node.test.mjs

step "C: make install PREFIX=... from the package, then the tests and the example (pkg-config, CMake)"
c_prefix="$root/target/c-prefix"
rm -rf "$c_prefix" target/c-unpack target/c-cmake && mkdir -p target/c-unpack target/c
tar -xzf "dist/c/ratewise-c-$version-linux-x86_64.tar.gz" -C target/c-unpack
make -s -C "target/c-unpack/ratewise-c-$version-linux-x86_64" install PREFIX="$c_prefix"
# The SONAME, the symlinks, and stripped binaries (no symbol table; only the dynamic exports).
readelf -d "$c_prefix/lib/libratewise.so.$version" | grep -q "SONAME.*\[libratewise\.so\.${version%%.*}\]"
[ "$(readlink "$c_prefix/lib/libratewise.so")" = "libratewise.so.${version%%.*}" ]
nm "$c_prefix/lib/libratewise.so.$version" 2>&1 | grep -q "no symbols"
nm -D --defined-only "$c_prefix/lib/libratewise.so.$version" | grep -q " T rw_engine_new_from_json$"
if readelf -S "$c_prefix/lib/libratewise.a" 2>/dev/null | grep -q '\.debug_info'; then
  echo "libratewise.a carries debug info" >&2
  exit 1
fi
# The packaged library (zig, fat LTO, stripped) under the tests and valgrind memcheck.
RATEWISE_C_PREFIX="$c_prefix" bindings-c/tests/run.sh
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror examples/c/quickstart.c $(PKG_CONFIG_PATH="$c_prefix/lib/pkgconfig" pkg-config --cflags --libs ratewise) \
  -Wl,-rpath,"$c_prefix/lib" -o target/c/quickstart && target/c/quickstart
readelf -d target/c/quickstart | grep -q "NEEDED.*\[libratewise\.so\.${version%%.*}\]"
cmake -S examples/c -B target/c-cmake -DCMAKE_PREFIX_PATH="$c_prefix" >/dev/null
cmake --build target/c-cmake >/dev/null
target/c-cmake/quickstart >/dev/null && target/c-cmake/quickstart-static >/dev/null && echo "cmake: quickstart and quickstart-static ok"

step "conformance across languages"
conformance/run-all

step "the Redis store: four processes in four languages share one quota"
# The workers and the CLI in release (bg_start release, at the beginning).
bg_wait release print
gcc -std=c11 -Wall -Wextra -Werror -O2 tests/fleet/worker.c -I"$c_prefix/include" "$c_prefix/lib/libratewise.a" \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o target/c/fleet-worker
python tests/fleet/run.py --redis-port "$redis_port" --python target/py-venv/bin/python \
  --node-package "$root/target/node-install/node_modules/ratewise" \
  --c-worker target/c/fleet-worker --rust-worker target/release/examples/fleet_worker

step "the Redis store under chaos: 8 processes in two languages for 60 s (restarts, pauses, kills, flushes)"
python tests/soak/run.py --python target/py-venv/bin/python --rust-worker target/release/examples/soak_worker \
  --seconds 60 --seed 1

step "the README's first command (the simulation of examples/, on the in-memory store)"
# Read from the README itself, so that the command a newcomer copies is the one that runs here.
readme_cmd=$(sed -n '/^## Try it/,/^## /p' README.md | grep -m1 '^cargo run ')
echo "$readme_cmd"
eval "$readme_cmd --out target/readme-report"
test -s target/readme-report/report.json && test -s target/readme-report/report.svg

step "the CLI: cargo install --path cli"
cargo install --quiet --locked --path cli --root target/cli-install
target/cli-install/bin/ratewise --version
target/cli-install/bin/ratewise check examples/config.json >/dev/null && echo "ratewise check: ok"
