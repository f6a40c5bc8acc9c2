#!/usr/bin/env bash
# Times `ratewise simulate` on the example hour (all four policies, then each alone) and prints
# the median of RUNS runs per line. Budget (issue 9): the whole hour, >= 100,000 requests, in
# under 2 s on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-5}
cargo build --release --quiet -p ratewise-cli
bin=target/release/ratewise
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
config=examples/config.json
time_it() {
  local pin=()
  if [ "${1:-}" = "--one-core" ]; then pin=(taskset -c 0); shift; fi
  for _ in $(seq "$runs"); do
    s=$(date +%s.%N)
    ${pin[@]+"${pin[@]}"} "$bin" simulate "$config" --workload examples/workload.json --out "$out" "$@" >/dev/null
    e=$(date +%s.%N)
    echo "$e - $s" | bc
  done | median
}
requests=$("$bin" simulate examples/config.json --workload examples/workload.json --out "$out" --policies retry | head -1 | cut -d, -f1-2 | cut -d' ' -f1-4)
echo "workload: $requests"
printf '%-28s %s\n' "policies" "median of $runs runs (s)"
printf '%-28s %s\n' "all four (one thread each)" "$(time_it)"
printf '%-28s %s\n' "all four, pinned to 1 core" "$(time_it --one-core)"
for p in naive retry cascade ratewise; do
  printf '%-28s %s\n' "$p" "$(time_it --policies "$p")"
done
# The same hour where a per-minute org pool, shared with gpt-4o, learns gpt-4o's 4M limit from
# its headers: the batch flood then queues (~200 waiters for ~15 minutes) behind it.
config=bench/cli/queued-config.json
printf '%-28s %s\n' "ratewise, flood queued" "$(time_it --policies ratewise)"
