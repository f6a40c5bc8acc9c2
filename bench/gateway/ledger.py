#!/usr/bin/env python3
"""What the spend ledger adds to a request through `ratewise serve` (issue 18's budget: the
ledger adds <= 10 µs p50).

The same gateway configuration twice, the ledger off (`"ledger": false`) and on (the default:
SQLite next to the configuration, WAL, batches every 200 ms), each measured direct-to-mock and
through, back to back, alternating `--rounds` times; the figure is the difference of the added
latencies (through - direct). Same harness as run.py (the mock and the load generator on CPU 0,
the gateway on CPU 1; the ledger's writer thread shares CPU 1 with the gateway).

    cargo build --release -p ratewise-cli -p ratewise-bench-gateway
    python3 bench/gateway/ledger.py [--rounds 3]
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
    ("sequential, 2,000 requests", {"sequential": 2000}),
    ("open loop 1,000 RPS, 10 s", {"rps": 1000, "duration": 10.0, "warmup": 1.0}),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
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
            added: dict = {"off": [], "on": []}
            for _ in range(a.rounds):
                for label, t in (("off", off), ("on", on)):
                    d = h.load(direct, **kw)
                    g = h.load(t, **kw)
                    added[label].append(h.added(d, g))
            row = {label: {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99")}
                   for label, runs in added.items()}
            row["ledger_adds"] = {k: round(row["on"][k] - row["off"][k], 1) for k in ("p50", "p99")}
            results["scenarios"][name] = row
            h.log(f"  {name:<28} added p50/p99 off {row['off']['p50']:.0f}/{row['off']['p99']:.0f} µs | "
                  f"on {row['on']['p50']:.0f}/{row['on']['p99']:.0f} µs | ledger adds {row['ledger_adds']['p50']} µs p50")
        status, metrics = h.http("GET", on.url.replace("/v1/chat/completions", "/metrics"))
        results["ledger_metrics"] = [ln for ln in metrics.decode().splitlines() if ln.startswith("ratewise_gateway_ledger")]
    finally:
        for p in procs:
            p.stop()
    Path(a.out).write_text(json.dumps(results, indent=1))
    print("\n| scenario | added, ledger off (p50 / p99) | added, ledger on (p50 / p99) | the ledger adds (p50) |")
    print("|---|---|---|---|")
    for name, r in results["scenarios"].items():
        print(f"| {name} | {r['off']['p50']:.0f} / {r['off']['p99']:.0f} µs | {r['on']['p50']:.0f} / "
              f"{r['on']['p99']:.0f} µs | {r['ledger_adds']['p50']} µs |")
    print("\n" + "\n".join(results["ledger_metrics"]))
    print(f"\nraw numbers: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
