#!/usr/bin/env bash
# Builds the C tests against libratewise, dynamically (rpath) and statically, runs them, and runs
# the dynamic ones under valgrind memcheck (zero errors, zero leaks). Then the C conformance
# runner, which conformance/run-all also uses (target/c/conformance).
#   bindings-c/tests/run.sh                          after cargo build --release -p ratewise-c
#   RATEWISE_C_PREFIX=PREFIX bindings-c/tests/run.sh  against an installed package (make install)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${RATEWISE_C_PREFIX:-}" ]; then
  lib="$RATEWISE_C_PREFIX/lib"
  include="$RATEWISE_C_PREFIX/include"
else
  lib="$root/target/release"
  include="$root/bindings-c/include"
  # The library's SONAME is libratewise.so.MAJOR (bindings-c/build.rs): what the programs load.
  soname=$(readelf -d "$lib/libratewise.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  ln -sfn libratewise.so "$lib/$soname"
fi
out="$root/target/c"
mkdir -p "$out"
cflags=(-std=c11 -pthread -Wall -Wextra -Werror -O1 -g -I"$include")
static_libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)
for t in smoke errors conformance waiting; do
  gcc "${cflags[@]}" "$root/bindings-c/tests/c/$t.c" -L"$lib" -lratewise -Wl,-rpath,"$lib" -lm -o "$out/$t"
  gcc "${cflags[@]}" "$root/bindings-c/tests/c/$t.c" "$lib/libratewise.a" "${static_libs[@]}" -o "$out/$t-static"
done
for t in smoke errors waiting; do
  echo "== $t (dynamic)"; "$out/$t"
  echo "== $t (static)"; "$out/$t-static"
  [ "${RATEWISE_C_VALGRIND:-1}" = 1 ] || continue
  echo "== $t (valgrind)"
  valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect "$out/$t"
done
flat=$(mktemp)
python3 "$root/conformance/suite" flatten > "$flat"
echo "== conformance (static)"; "$out/conformance-static" < "$flat" | tail -n 1
if [ "${RATEWISE_C_VALGRIND:-1}" = 1 ]; then
  echo "== conformance (valgrind)"
  valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect "$out/conformance" < "$flat" | tail -n 1
fi
rm -f "$flat"
