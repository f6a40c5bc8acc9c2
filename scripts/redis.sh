# Sourced by scripts/test-all.sh and bench/redis/run.sh: `redis_start DIR` starts a redis-server
# on a free loopback port, without persistence, keeping its pid file and log in DIR; it sets
# `redis_port` and `redis_url`, waits until the server answers, and stops it when the sourcing
# shell exits.
# shellcheck source=scripts/on-exit.sh
. "$(dirname "${BASH_SOURCE[0]}")/on-exit.sh"
# A free loopback TCP port (also used by scripts/registries.sh).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
redis_start() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd) # redis-server changes into --dir before opening the log file
  redis_port=$(free_port)
  redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$redis_port" --daemonize yes \
    --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
  on_exit "redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true"
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  redis_url="redis://127.0.0.1:$redis_port/0"
}
