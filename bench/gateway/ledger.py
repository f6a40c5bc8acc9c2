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
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as h  # noqa: E402  (the harness of run.py)

SCENARIOS = (
    ("sequential, 1,000 requests", {"sequential": 1000}),
    ("open loop 1,000 RPS, 5 s", {"rps": 1000, "duration": 5.0, "warmup": 1.0}),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--keep-awake", action="store_true")
    ap.add_argument("--out", default=str(h.ROOT / "target" / "bench-gateway-ledger.json"))
    a = ap.parse_args()
    missing = [str(p) for p in (h.RATEWISE, h.MOCK, h.LOADGEN) if not p.exists()]
    if missing:
        print(f"missing release binaries: {', '.join(missing)}\nbuild them first: {h.BUILD_HINT}", file=sys.stderr)
        return 2
    if not shutil.which("taskset"):
        print("taskset (util-linux) is required", file=sys.stderr)
        return 2
    h.WORK.mkdir(parents=True, exist_ok=True)
    for f in h.WORK.glob("ratewise-ledger.db*"):
        f.unlink()
    procs: list = []
    results: dict = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "scenarios": {}}
    try:
        if a.keep_awake:
            procs += h.start_keep_awake()
        mock, mport = h.start_mock()
        procs.append(mock)
        direct = h.Target("direct", f"http://127.0.0.1:{mport}/v1/chat/completions", "gpt-bench")
        h.load(direct, sequential=500)
        off_p, off = h.start_ratewise(mport, None, None, ledger=False)
        on_p, on = h.start_ratewise(mport, None, None, ledger=True)
        procs += [off_p, on_p]
        for t in (off, on):
            h.load(t, sequential=500)
        for name, kw in SCENARIOS:
            rounds = []
            for i in range(a.rounds):
                order = (("off", off), ("on", on)) if i % 2 == 0 else (("on", on), ("off", off))
                got = {}
                for label, t in (*order, ("direct", direct)):
                    r = h.load(t, **kw)
                    if r["errors"]:  # a latency over failed requests compares nothing
                        raise SystemExit(f"{name}, round {i}, {label}: errors {r['errors']}")
                    got[label] = r["latency_us"]
                rounds.append(got)
            row: dict = {"rounds": rounds}
            for k in ("p50", "p99"):
                diffs = sorted(r["on"][k] - r["off"][k] for r in rounds)
                row[f"ledger_adds_{k}"] = {"median": round(statistics.median(diffs), 1),
                                           "min": round(diffs[0], 1), "max": round(diffs[-1], 1)}
                for label in ("off", "on"):
                    row.setdefault(f"added_{label}", {})[k] = round(
                        statistics.median(r[label][k] - r["direct"][k] for r in rounds), 1)
            results["scenarios"][name] = row
            d50 = row["ledger_adds_p50"]
            h.log(f"  {name:<28} added p50 off {row['added_off']['p50']:.0f} on {row['added_on']['p50']:.0f} µs | "
                  f"ledger adds p50 {d50['median']} µs (rounds {d50['min']} .. {d50['max']})")
        status, metrics = h.http("GET", on.url.replace("/v1/chat/completions", "/metrics"))
        results["ledger_metrics"] = [ln for ln in metrics.decode().splitlines() if ln.startswith("ratewise_gateway_ledger")]
    finally:
        for p in procs:
            p.stop()
    Path(a.out).write_text(json.dumps(results, indent=1))
    print("\n| scenario | added, ledger off (p50 / p99) | added, ledger on (p50 / p99) "
          "| the ledger adds, p50 (paired median; lowest .. highest round) | p99 |")
    print("|---|---|---|---|---|")
    for name, r in results["scenarios"].items():
        d50, d99 = r["ledger_adds_p50"], r["ledger_adds_p99"]
        print(f"| {name} | {r['added_off']['p50']:.0f} / {r['added_off']['p99']:.0f} µs | {r['added_on']['p50']:.0f} / "
              f"{r['added_on']['p99']:.0f} µs | {d50['median']} µs ({d50['min']} .. {d50['max']}) | {d99['median']} µs |")
    print("\n" + "\n".join(results["ledger_metrics"]))
    print(f"\nraw numbers: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
