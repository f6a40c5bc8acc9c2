#!/usr/bin/env bash
# Builds libratewise (release) and the C benchmark, linked statically, and runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release -q -p ratewise-c
mkdir -p target/c
gcc -std=c11 -O2 -Wall -Wextra -Werror -Ibindings-c/include bench/c/bench.c target/release/libratewise.a \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o target/c/bench
target/c/bench "$@"
