#!/usr/bin/env python3
"""What the spend ledger adds to a request through `ratewise serve` (issue 18's budget: the
ledger adds <= 10 µs p50).

The same gateway configuration twice, the ledger off (`"ledger": false`) and on (the default:
SQLite next to the configuration, WAL, batches every 200 ms), both in front of one mock. Each
round measures the two gateways back to back, in ABBA order over a pair of rounds (off, on,
then on, off) so that a drift of the machine weighs on both alike, plus the mock direct once.
The figure is the **median over the rounds of the paired difference** of the latency through
the two gateways (on − off, p50 and p99), with its spread (the lowest and highest round);
the added latency of each (through − direct, medians) is shown beside it. Same harness as
run.py (the mock and the load generator on CPU 0, the gateways on CPU 1; the ledger's writer
thread shares CPU 1 with its gateway). `--keep-awake`: as in run.py.

    cargo build --release -p ratewise-cli -p ratewise-bench-gateway
    python3 bench/gateway/ledger.py [--rounds 8] [--keep-awake]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as h  # noqa: E402  (the harness of run.py)
from compare import paired, print_table  # noqa: E402  (the paired ABBA rounds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--keep-awake", action="store_true")
    ap.add_argument("--out", default=str(h.ROOT / "target" / "bench-gateway-ledger.json"))
    a = ap.parse_args()
    if not h.preflight((h.RATEWISE, h.MOCK, h.LOADGEN)):
        return 2
    for f in h.WORK.glob("ratewise-ledger.db*"):
        f.unlink()
    procs: list = []
    results: dict = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "scenarios": {}}
    try:
        mport, direct = h.start_harness(procs, a.keep_awake)
        off_p, off = h.start_ratewise(mport, None, None, ledger=False)
        on_p, on = h.start_ratewise(mport, None, None, ledger=True)
        procs += [off_p, on_p]
        for t in (off, on):
            h.load(t, sequential=500)
        results["scenarios"] = paired({"off": off, "on": on}, direct, a.rounds)
        status, metrics = h.http("GET", on.url.replace("/v1/chat/completions", "/metrics"))
        results["ledger_metrics"] = [ln for ln in metrics.decode().splitlines() if ln.startswith("ratewise_gateway_ledger")]
    finally:
        for p in procs:
            p.stop()
    Path(a.out).write_text(json.dumps(results, indent=1))
    print_table(results["scenarios"], "off", "on", "the ledger adds")
    print("\n" + "\n".join(results["ledger_metrics"]))
    print(f"\nraw numbers: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
