#!/usr/bin/env bash
# The Redis store's benchmark: starts a redis-server of its own on a free loopback port (no
# persistence), runs core/examples/redis_bench.rs against it (PING, ratewise acquire+complete
# with 1 and 8 threads, the seeds' sorted-set script and GET/SET counter), stops the server.
# Usage: bench/redis/run.sh [PAIRS] (default 20000). Results: bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${1:-20000}
cargo build --release --quiet -p ratewise --features redis --example redis_bench
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$port" --daemonize yes \
  --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
target/release/examples/redis_bench "redis://127.0.0.1:$port/0" "$pairs"
