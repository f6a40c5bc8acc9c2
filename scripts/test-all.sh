#!/usr/bin/env bash
# Every check and every test of the project, as CI runs them (.ci/run calls this script).
# Installs what it needs on a fresh machine: a Python venv (.venv) with the suite tool's
# dependencies; the Rust toolchain is the machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "tools"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check jsonschema==4.26.0
export PATH="$root/.venv/bin:$PATH"
cargo --version
python --version

# Redis for the shared store's tests: installed with apt when missing. The Rust tests start
# servers of their own; the bindings' tests and the fleet test use one started here, on a free
# loopback port, without persistence, stopped when this script ends.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null
fi
redis-server --version
# openssl: core/tests/redis_transport.rs makes a throw-away CA and certificates for its TLS tests.
if ! command -v openssl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi
# shellcheck source=scripts/redis.sh
. scripts/redis.sh
redis_start "$root/target/redis"
echo "redis-server on $redis_url"

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet -p ratewise

step "conformance files (schema, unique ids, canonical formatting)"
python conformance/suite check

step "Rust tests (unit, conformance, properties, doc)"
cargo test --workspace

step "Python package: pip install ./bindings-python into a clean venv, then its tests"
rm -rf target/py-venv
python3 -m venv target/py-venv
target/py-venv/bin/python -m pip install --quiet --disable-pip-version-check \
  pytest==9.2.0 mypy==2.4.1 typing_extensions==4.16.0 openai==3.57.0 anthropic==2.16.0
target/py-venv/bin/python -m pip install --quiet --disable-pip-version-check ./bindings-python
# From target/, so that nothing but the installed wheel can be imported as `ratewise`.
# The SDK wrappers' tests run against the real openai and anthropic SDKs (pinned above) and the
# mock provider of tests/mockllm; RATEWISE_REQUIRE_SDKS makes a missing SDK a failure, not a skip.
target/py-venv/bin/python -m pytest -q -p no:cacheprovider tests/mockllm/test_mockllm.py
(cd target && RATEWISE_REQUIRE_SDKS=1 RATEWISE_REDIS_URL="$redis_url" py-venv/bin/python -m pytest -q -p no:cacheprovider ../bindings-python/tests)
(cd target && py-venv/bin/python -m mypy.stubtest ratewise._native)
# A typed user of the API (`with ... return`, `async with`): mypy --strict reports nothing.
(cd target && py-venv/bin/python -m mypy --strict --no-incremental ../bindings-python/tests/typing/usage.py)
# The load test: 2,000 calls through each wrapper from 8 threads and from asyncio, against hidden
# limits 4x below the configuration: 0 lost, <= 0.5% 429s; the wall time against its floor is
# printed (target 1.10, bench/README.md), bounded generously here.
(cd target && RATEWISE_LOAD_MAX_WALL=1.5 py-venv/bin/python ../tests/sdk/load_python.py)

step "Node.js package: build the addon, check the generated files, test, pack and install"
# `npm run build`: the addon and its loader (napi build: index.js, index.d.ts), then the public
# layer (tsc: src-ts/ratewise.ts into ratewise.js, ratewise.d.ts). All four are committed.
(cd bindings-node && npm install --no-audit --no-fund --loglevel=error \
  && CARGO_TARGET_DIR="$root/target" npm run build)
node_built=(bindings-node/index.js bindings-node/index.d.ts)
for m in ratewise errors calls openai anthropic; do node_built+=("bindings-node/$m.js" "bindings-node/$m.d.ts"); done
if ! git diff --exit-code --stat -- "${node_built[@]}"; then
  echo "${node_built[*]}: changed when built (edit src/ and src-ts/, not these): commit the rebuilt files" >&2
  exit 1
fi
(cd bindings-node && RATEWISE_REQUIRE_SDKS=1 node --test test/ \
  && npx tsc --noEmit --strict --target es2022 --module nodenext --moduleResolution nodenext --lib es2022 test/types-check.ts \
  && RATEWISE_LOAD_MAX_WALL=1.5 node ../tests/sdk/load_node.mjs)
rm -rf target/node-pack target/node-install && mkdir -p target/node-pack target/node-install
(cd bindings-node && npm pack --silent --pack-destination "$root/target/node-pack" >/dev/null)
(cd target/node-install && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error ../node-pack/ratewise-*.tgz \
  && node -e "const { Engine } = require('ratewise'); new Engine({}); console.log('require: ok')" \
  && node --input-type=module -e "import { Engine, statusFromHttp } from 'ratewise'; new Engine('{}'); console.log('import: ok', statusFromHttp(529))")
RATEWISE_REDIS_URL="$redis_url" RATEWISE_NODE_PACKAGE="$root/target/node-install/node_modules/ratewise" node --test bindings-node/test/

step "the gateway (ratewise serve): the real openai and anthropic SDKs, Python and Node, against the mock upstream"
# The binary that cargo test built; the examples' configurations must validate.
cargo build -p ratewise-cli
OPENAI_API_KEY=sk-check ANTHROPIC_API_KEY=sk-check target/debug/ratewise check examples/gateway.json >/dev/null
OPENAI_API_KEY=sk-check ANTHROPIC_API_KEY=sk-check target/debug/ratewise check examples/gateway-local.json >/dev/null
RATEWISE_REQUIRE_GATEWAY=1 RATEWISE_REDIS_URL="$redis_url" target/py-venv/bin/python -m pytest -q -p no:cacheprovider tests/gateway
RATEWISE_REQUIRE_GATEWAY=1 node --test tests/gateway/sdk_node.test.mjs

step "C library: build, tests dynamic and static, valgrind, the example with pkg-config"
# (The header is regenerated and diffed by bindings-c/tests/header.rs, in cargo test above.)
missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release -p ratewise-c
bindings-c/tests/run.sh
sed -e "s|@PREFIX@|$root|" -e "s|@VERSION@|$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)|" \
  bindings-c/ratewise.pc.in > target/release/ratewise.pc
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror examples/c/quickstart.c $(PKG_CONFIG_PATH=target/release pkg-config --cflags --libs ratewise) \
  -o target/c/quickstart && target/c/quickstart
gcc -std=c11 -Wall -Wextra -Werror examples/c/quickstart.c -Ibindings-c/include target/release/libratewise.a \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o target/c/quickstart-static && target/c/quickstart-static

step "conformance across languages"
conformance/run-all

step "the Redis store: four processes in four languages share one quota"
cargo build --release --quiet -p ratewise --features redis --example fleet_worker
gcc -std=c11 -Wall -Wextra -Werror -O2 tests/fleet/worker.c -Ibindings-c/include target/release/libratewise.a \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o target/c/fleet-worker
python tests/fleet/run.py --redis-port "$redis_port" --python target/py-venv/bin/python \
  --node-package "$root/target/node-install/node_modules/ratewise" \
  --c-worker target/c/fleet-worker --rust-worker target/release/examples/fleet_worker

step "the Redis store under chaos: 8 processes in two languages for 60 s (restarts, pauses, kills, flushes)"
cargo build --release --quiet -p ratewise --features redis --example soak_worker
python tests/soak/run.py --python target/py-venv/bin/python --rust-worker target/release/examples/soak_worker \
  --seconds 60 --seed 1

step "the README's first command (the simulation of examples/, on the in-memory store)"
# Read from the README itself, so that the command a newcomer copies is the one that runs here.
readme_cmd=$(sed -n '/^## Try it/,/^## /p' README.md | grep -m1 '^cargo run ')
echo "$readme_cmd"
eval "$readme_cmd --out target/readme-report"
test -s target/readme-report/report.json && test -s target/readme-report/report.svg
