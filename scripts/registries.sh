# Sourced by scripts/test-all.sh: local package registries on loopback ports, to install the
# packages of dist/ (scripts/package.sh) the way users install them. Each starter waits until
# its server answers and stops it when the sourcing shell exits.
#
#   pypi_start DIR PACKAGES   pypiserver serving the folder PACKAGES; sets pypi_url (…/simple/)
#   npm_registry_start DIR    verdaccio with no uplinks (it serves only what is published to it)
#                             and a user; sets npm_registry_url and npm_userconfig (its token)
# shellcheck source=scripts/redis.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis.sh" # free_port, on_exit

_wait_http() { # url, log
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from $1; its log:" >&2
  tail -n 30 "$2" >&2
  return 1
}

pypi_start() {
  local dir=$1 packages=$2 port
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -x "$dir/venv/bin/pypi-server" ] || python3 -m venv "$dir/venv"
  "$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check pypiserver==2.4.2
  port=$(free_port)
  "$dir/venv/bin/pypi-server" run --host 127.0.0.1 --port "$port" --disable-fallback "$packages" \
    >"$dir/pypiserver.log" 2>&1 &
  on_exit "kill $! 2>/dev/null || true"
  pypi_url="http://127.0.0.1:$port/simple/"
  _wait_http "$pypi_url" "$dir/pypiserver.log"
}

npm_registry_start() {
  local dir=$1 port token
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # verdaccio 6.10 wants Node 22; 6.8.0 runs on Node 20 with node-fetch pinned to 2.7.0.
  cat >"$dir/package.json" <<'JSON'
{ "private": true, "dependencies": { "verdaccio": "6.8.0" }, "overrides": { "node-fetch": "2.7.0" } }
JSON
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  rm -rf "$dir/storage" "$dir/htpasswd"
  cat >"$dir/config.yaml" <<'YAML'
storage: ./storage
auth:
  htpasswd:
    file: ./htpasswd
    max_users: 10
uplinks: {}
packages:
  '@ratewise/*':
    access: $all
    publish: $authenticated
  'ratewise':
    access: $all
    publish: $authenticated
  '**':
    access: $all
log: { type: stdout, format: pretty, level: warn }
YAML
  port=$(free_port)
  (cd "$dir" && exec node node_modules/verdaccio/bin/verdaccio --config ./config.yaml --listen "127.0.0.1:$port") \
    >"$dir/verdaccio.log" 2>&1 &
  on_exit "kill $! 2>/dev/null || true"
  npm_registry_url="http://127.0.0.1:$port"
  _wait_http "$npm_registry_url/-/ping" "$dir/verdaccio.log"
  # A user for publishing: verdaccio's htpasswd plugin creates it and answers with a token.
  token=$(curl -fsS -X PUT -H 'content-type: application/json' \
    -d '{"name": "ci", "password": "ci-only-password"}' \
    "$npm_registry_url/-/user/org.couchdb.user:ci" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  npm_userconfig="$dir/npmrc"
  printf '//127.0.0.1:%s/:_authToken=%s\n' "$port" "$token" >"$npm_userconfig"
}
