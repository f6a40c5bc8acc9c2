# Sourced by scripts/test-all.sh: `pg_start DIR` starts a throw-away PostgreSQL cluster in DIR on
# a free loopback port (trust authentication, loopback only), sets `postgres_port` and
# `postgres_url`, waits until it accepts connections, and stops it when the sourcing shell exits.
# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user (created
# by the apt package) and its commands run through runuser.
# shellcheck source=scripts/redis.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis.sh" # free_port, on_exit
pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}
pg_start() {
  local dir=$1 bin as=()
  bin=$(pg_bindir || true)
  if [ -z "$bin" ]; then
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bindir)
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    as=(runuser -u postgres --)
  fi
  postgres_port=$(free_port)
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log"; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $postgres_port -k $dir -h 127.0.0.1 -c fsync=off" start >/dev/null
  on_exit "${as[*]} $bin/pg_ctl -D $dir/data -m fast stop >/dev/null 2>&1 || true"
  postgres_url="postgres://postgres@127.0.0.1:$postgres_port/postgres"
}
