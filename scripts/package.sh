#!/usr/bin/env bash
# Builds every release artifact into dist/ (README, "Building the packages"):
#
#   dist/python/  ratewise-V-cpXY-cpXY-manylinux_2_28_x86_64.whl  one per CPython in RATEWISE_PYTHONS
#                 ratewise-V-cp39-abi3-manylinux_2_28_x86_64.whl  the stable-ABI fallback (3.9+)
#                 ratewise-V.tar.gz                               the sdist (builds with Rust)
#   dist/node/    ratewise-linux-x64-gnu-V.tgz (@ratewise/linux-x64-gnu), ratewise-V.tgz
#   dist/c/       ratewise-c-V-linux-x86_64.tar.gz                `make install PREFIX=...`
#   dist/rust/    ratewise-V.crate                                `cargo package -p ratewise`
#
# then prints each artifact's size against its budget and fails when one is over.
#
#   scripts/package.sh                                   CPython: python3 only
#   RATEWISE_PYTHONS="python3.10 python3.11" scripts/package.sh
#
# Every native binary is linked by zig against glibc 2.28 (manylinux_2_28: Debian 10, RHEL 8,
# Ubuntu 18.10 and later), built with the `dist` profile (fat LTO) and stripped. Needs Rust, Python 3 and Node/npm;
# maturin, zig and cargo-zigbuild come from PyPI into target/pkg-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dist="$root/dist"
triple=x86_64-unknown-linux-gnu
glibc=2.28
zig_out="$root/target/$triple/dist"

step() { printf '\n==> package: %s\n' "$*"; }

step "versions and licenses agree"
python3 scripts/check-versions.py
version=$(python3 scripts/check-versions.py --print)

step "tools (target/pkg-venv: maturin, zig, cargo-zigbuild)"
if [ ! -x target/pkg-venv/bin/python ]; then
  python3 -m venv target/pkg-venv
fi
target/pkg-venv/bin/python -m pip install --quiet --disable-pip-version-check \
  maturin==1.16.0 ziglang==0.14.1 cargo-zigbuild==0.24.0 twine==7.0.0 'readme-renderer[md]==46.0'
# cargo-zigbuild finds zig through `python -m ziglang` (the venv's python, first on PATH).
export PATH="$root/target/pkg-venv/bin:$PATH"
rm -rf "$dist" && mkdir -p "$dist"/{python,node,c,rust}

step "Python: manylinux_2_28 wheels per CPython, the abi3 wheel, the sdist"
(
  cd bindings-python
  for py in ${RATEWISE_PYTHONS:-python3}; do
    maturin build --quiet --profile dist --zig --compatibility "manylinux_$(tr . _ <<<"$glibc")" -i "$py" --out "$dist/python"
  done
  maturin build --quiet --profile dist --zig --compatibility "manylinux_$(tr . _ <<<"$glibc")" --features abi3 \
    -i python3 --out "$dist/python"
  maturin sdist --out "$dist/python"
)
# The metadata as PyPI would take it, the README rendered standalone (PyPI shows it alone).
twine check --strict "$dist"/python/*

step "Node.js: the addon into @ratewise/linux-x64-gnu, the main package"
# `napi build` (-x: through cargo-zigbuild) writes the addon and regenerates index.d.ts; CI then
# checks that the generated and compiled files are the committed ones.
(
  cd bindings-node
  npm install --no-audit --no-fund --loglevel=error
  CARGO_TARGET_DIR="$root/target" npx napi build --platform --profile dist -x --target "$triple.$glibc" \
    --no-js --dts index.d.ts
  npx tsc -p tsconfig.json
  cp ratewise.linux-x64-gnu.node npm/linux-x64-gnu/
  npm pack --silent --pack-destination "$dist/node" ./npm/linux-x64-gnu >/dev/null
  npm pack --silent --pack-destination "$dist/node" >/dev/null
)

step "C: libratewise.so.$version (SONAME libratewise.so.${version%%.*}), libratewise.a, header, pkg-config, CMake"
cargo zigbuild --quiet --profile dist -p ratewise-c --target "$triple.$glibc"
name="ratewise-c-$version-linux-x86_64"
stage="$root/target/c-stage/$name"
rm -rf "$stage" && mkdir -p "$stage/lib" "$stage/include"
cp "$zig_out/libratewise.so" "$stage/lib/libratewise.so.$version"
ln -s "libratewise.so.$version" "$stage/lib/libratewise.so.${version%%.*}"
ln -s "libratewise.so.${version%%.*}" "$stage/lib/libratewise.so"
# The static library's objects keep their debug sections (the release profile strips only
# linked outputs): strip them here, keeping the symbols a linker needs.
strip --strip-debug -o "$stage/lib/libratewise.a" "$zig_out/libratewise.a"
cp bindings-c/include/ratewise.h "$stage/include/"
cp LICENSE-MIT LICENSE-APACHE "$stage/"
IFS=. read -r major minor _ <<<"${version%%-*}"
for f in Makefile README.md ratewise.pc.in ratewiseConfig.cmake.in ratewiseConfigVersion.cmake.in; do
  # The version now; the paths (@PREFIX@, @LIBDIR@, @INCLUDEDIR@) when `make install` runs.
  sed -e "s/@VERSION@/$version/g" -e "s/@MAJOR@/$major/g" -e "s/@MINOR@/$minor/g" "bindings-c/dist/$f" > "$stage/$f"
done
mv "$stage/ratewiseConfigVersion.cmake.in" "$stage/ratewiseConfigVersion.cmake"
tar -C "$root/target/c-stage" -czf "$dist/c/$name.tar.gz" "$name"

step "Rust: cargo package -p ratewise (built from the packaged sources)"
# --allow-dirty: a local artifact, never published from here; CI runs on a clean clone.
cargo package --quiet --allow-dirty --all-features -p ratewise
cp "target/package/ratewise-$version.crate" "$dist/rust/"

step "sizes against their budgets (issue 19)"
python3 scripts/check-versions.py --sizes "$dist" "$stage/lib/libratewise.so.$version"
