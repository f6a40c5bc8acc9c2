#!/usr/bin/env bash
# Builds a separate bench venv (the peer is installed there only), installs ratewise from
# ./bindings-python (release build) and grate-limiter==0.1.1, and runs bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check grate-limiter==0.1.1
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings-python
cd target && exec bench-venv/bin/python ../bench/python/bench.py "$@"
