#!/usr/bin/env bash
# The Redis store's benchmark: starts a redis-server of its own on a free loopback port (no
# persistence), runs core/examples/redis_bench.rs against it (PING, ratewise acquire+complete
# with 1 and 8 threads, the seeds' sorted-set script and GET/SET counter), stops the server.
# Usage: bench/redis/run.sh [PAIRS] (default 20000). Results: bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${1:-20000}
cargo build --release --quiet -p ratewise --features redis --example redis_bench
# shellcheck source=scripts/redis.sh
. scripts/redis.sh
redis_start target/redis-bench
target/release/examples/redis_bench "$redis_url" "$pairs"
