#!/usr/bin/env python3
"""Two builds of `ratewise serve` against each other: the latency one change adds or saves.

Two gateways with the same configuration, one per binary (A and B), both in front of one mock;
each round measures the two back to back, in ABBA order over a pair of rounds (A, B, then B, A)
so that a drift of the machine weighs on both alike, plus the mock direct once. The figure is
the **median over the rounds of the paired difference** B − A of the latency through them
(p50 and p99), with its spread (the lowest and highest round); the added latency of each
(through − direct, medians) is shown beside it. Across separate runs of run.py this machine
moves by more than most changes; paired rounds in one run do not. Same harness as run.py (the
mock and the load generator on CPU 0, the gateways on CPU 1), as bench/gateway/ledger.py pairs
its two gateways.

    cargo build --release -p ratewise-cli -p ratewise-bench-gateway
    cp target/release/ratewise /tmp/ratewise-before     # then change something and rebuild
    python3 bench/gateway/compare.py /tmp/ratewise-before target/release/ratewise [--rounds 8] [--keep-awake]
    # one binary, two settings: --a-gateway / --b-gateway JSON merged into that gateway's object
    python3 bench/gateway/compare.py target/release/ratewise target/release/ratewise --b-gateway '{"busy_poll_us": 250}'

Both gateways run without the spend ledger (one thread less on CPU 1, and two ledgers would
write one SQLite file); bench/gateway/ledger.py measures the ledger itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as h  # noqa: E402  (the harness of run.py)

SCENARIOS = (
    ("sequential, 1,000 requests", {"sequential": 1000}),
    ("open loop 1,000 RPS, 5 s", {"rps": 1000, "duration": 5.0, "warmup": 1.0}),
)


def paired(targets: dict, direct, rounds: int, scenarios=SCENARIOS) -> dict:
    """Each scenario through the two `targets` (label -> Target; the first is the reference) in
    ABBA rounds, and the mock `direct` once per round: {scenario: row}, a row holding the
    rounds, `diff_p50` / `diff_p99` (second − first: paired median, lowest, highest) and
    `added_<label>` (through − direct, medians)."""
    (la, ta), (lb, tb) = targets.items()
    out: dict = {}
    for name, kw in scenarios:
        rounds_seen = []
        for i in range(rounds):
            order = ((la, ta), (lb, tb)) if i % 2 == 0 else ((lb, tb), (la, ta))
            got = {}
            for label, t in (*order, ("direct", direct)):
                r = h.load(t, **kw)
                if r["errors"]:  # a latency over failed requests compares nothing
                    raise SystemExit(f"{name}, round {i}, {label}: errors {r['errors']}")
                got[label] = r["latency_us"]
            rounds_seen.append(got)
        row: dict = {"rounds": rounds_seen}
        for k in ("p50", "p99"):
            diffs = sorted(r[lb][k] - r[la][k] for r in rounds_seen)
            row[f"diff_{k}"] = {"median": round(statistics.median(diffs), 1),
                                "min": round(diffs[0], 1), "max": round(diffs[-1], 1)}
            for label in (la, lb):
                row.setdefault(f"added_{label}", {})[k] = round(
                    statistics.median(r[label][k] - r["direct"][k] for r in rounds_seen), 1)
        out[name] = row
        d50 = row["diff_p50"]
        h.log(f"  {name:<28} added p50 {la} {row[f'added_{la}']['p50']:.0f} {lb} {row[f'added_{lb}']['p50']:.0f} µs | "
              f"{lb} − {la} p50 {d50['median']} µs (rounds {d50['min']} .. {d50['max']})")
    return out


def print_table(scenarios: dict, la: str, lb: str, diff: str) -> None:
    """The rows of `paired` as a Markdown table; `diff` names the difference's column."""
    print(f"\n| scenario | added, {la} (p50 / p99) | added, {lb} (p50 / p99) "
          f"| {diff}, p50 (paired median; lowest .. highest round) | {diff}, p99 |")
    print("|---|---|---|---|---|")
    for name, r in scenarios.items():
        d50, d99 = r["diff_p50"], r["diff_p99"]
        a, b = r[f"added_{la}"], r[f"added_{lb}"]
        print(f"| {name} | {a['p50']:.0f} / {a['p99']:.0f} µs | {b['p50']:.0f} / {b['p99']:.0f} µs "
              f"| {d50['median']} µs ({d50['min']} .. {d50['max']}) | {d99['median']} µs |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="binary A (the reference)")
    ap.add_argument("b", help="binary B")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--keep-awake", action="store_true", help="as in run.py")
    ap.add_argument("--a-gateway", type=json.loads, default={}, metavar="JSON",
                    help="settings added to A's gateway object, e.g. '{\"busy_poll_us\": 250}'")
    ap.add_argument("--b-gateway", type=json.loads, default={}, metavar="JSON", help="the same for B")
    ap.add_argument("--out", default=str(h.ROOT / "target" / "bench-gateway-compare.json"))
    a = ap.parse_args()
    binaries = {"A": Path(a.a), "B": Path(a.b)}
    if not h.preflight((*binaries.values(), h.MOCK, h.LOADGEN)):
        return 2
    procs: list = []
    results: dict = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "scenarios": {}}
    try:
        mport, direct = h.start_harness(procs, a.keep_awake)
        targets = {}
        for label, binary in binaries.items():
            h.RATEWISE = binary  # start_ratewise runs the harness's RATEWISE
            extra = a.a_gateway if label == "A" else a.b_gateway
            p, t = h.start_ratewise(mport, None, None, ledger=False, gateway=extra, tag="-" + label)
            procs.append(p)
            targets[label] = t
        for t in targets.values():
            h.load(t, sequential=500)
        results["scenarios"] = paired(targets, direct, a.rounds)
    finally:
        for p in procs:
            p.stop()
    Path(a.out).write_text(json.dumps(results, indent=1))
    print(f"\nA = {a.a} {json.dumps(a.a_gateway) if a.a_gateway else ''}\n"
          f"B = {a.b} {json.dumps(a.b_gateway) if a.b_gateway else ''}\n{a.rounds} rounds, ledger off")
    print_table(results["scenarios"], "A", "B", "B − A")
    print(f"\nraw numbers: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
