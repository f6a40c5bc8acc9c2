#!/usr/bin/env python3
"""Cache-hit latency through `ratewise serve` (issue 18's budget: a hit in <= 100 µs p50).

A hit never reaches a provider, so the figure is the whole latency a client sees through the
gateway, next to the same client's latency direct to the mock provider (a miss's floor) in the
same run. Same harness as run.py: the mock and the load generator on CPU 0, the gateway on CPU
1, the open-loop Rust load generator (rw-loadgen).

The floor of any answer served from CPU 1 is measured beside it: a second mock provider pinned
to the gateway's CPU, a bare hyper server answering the same request with no upstream ("bare
server on CPU 1"). Direct to the mock on CPU 0 the client and the server share a CPU; every
request to CPU 1 also pays a cross-CPU wake-up, which on this machine kind (a guest whose idle
vCPUs halt) is most of a hit's latency. The gateway's own share of a hit is hit − that floor.

    cargo build --release -p ratewise-cli -p ratewise-bench-gateway
    python3 bench/gateway/cache.py [--rounds 3] [--keep-awake]

Scenarios: 2,000 sequential requests on one connection, 1,000 RPS open loop for 10 s (JSON), and
500 sequential streams (the entry replayed as SSE; direct, the mock paces its tokens). Raw numbers go to
target/bench-gateway-cache.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as h  # noqa: E402  (the harness of run.py)

BODY = {"model": "chat", "messages": h.PROMPT, "max_tokens": 16, "temperature": 0}


class HitTarget(h.Target):
    """The gateway with a body the capability caches (temperature 0)."""

    def __init__(self, name: str, url: str, proc: h.Proc):
        super().__init__(name, url, "chat", proc=proc)
        self.body.write_text(json.dumps(BODY))
        self.stream_body.write_text(json.dumps({**BODY, "stream": True}))


def one(t: h.Target, rounds: int, **kw) -> dict:
    runs = [h.load(t, **kw) for _ in range(rounds)]
    return h.median_result(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--keep-awake", action="store_true")
    ap.add_argument("--out", default=str(h.ROOT / "target" / "bench-gateway-cache.json"))
    a = ap.parse_args()
    if not h.preflight((h.RATEWISE, h.MOCK, h.LOADGEN)):
        return 2
    procs: list = []
    results: dict = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "scenarios": {}}
    try:
        mport, direct = h.start_harness(procs, a.keep_awake)
        bare, bport = h.start_mock(h.TARGET_CPU, "mock-cpu1")
        procs.append(bare)
        floor = h.Target("bare-cpu1", f"http://127.0.0.1:{bport}/v1/chat/completions", "gpt-bench")
        h.load(floor, sequential=500)
        gw, t = h.start_ratewise(mport, None, None)
        procs.append(gw)
        hit = HitTarget("ratewise-hit", t.url, gw)
        # The first request stores the entry (JSON); the stream reads the same one.
        h.load(hit, sequential=50)
        before = h.http("GET", f"http://127.0.0.1:{mport}/_mock/stats")
        for name, kw in (
            ("sequential", {"sequential": 2000}),
            ("1000 RPS", {"rps": 1000, "duration": 10.0, "warmup": 1.0}),
            ("sequential stream", {"sequential": 500, "stream": True}),
        ):
            d = one(direct, a.rounds, **kw)
            # Streams: the mock paces its tokens, so it is no floor for a replayed entry.
            f = None if kw.get("stream") else one(floor, a.rounds, **kw)
            g = one(hit, a.rounds, **kw)
            results["scenarios"][name] = {"direct": d, "floor": f, "hit": g}
            fl = f"floor p50 {f['latency_us']['p50']:>7} p99 {f['latency_us']['p99']:>8} | " if f else ""
            h.log(f"  {name:<18} direct p50 {d['latency_us']['p50']:>7} p99 {d['latency_us']['p99']:>8} | {fl}"
                  f"hit p50 {g['latency_us']['p50']:>7} p99 {g['latency_us']['p99']:>8} µs | errors {g['errors'] or '-'}")
        after = h.http("GET", f"http://127.0.0.1:{mport}/_mock/stats")
        results["mock_requests_during_hits"] = [before[1][:200].decode(), after[1][:200].decode()]
        status, metrics = h.http("GET", t.url.replace("/v1/chat/completions", "/metrics"))
        results["cache_metrics"] = [line for line in metrics.decode().splitlines()
                                    if line.startswith("ratewise_gateway_cache_requests_total")]
    finally:
        for p in procs:
            p.stop()
    Path(a.out).write_text(json.dumps(results, indent=1))
    print("\n| scenario | direct to the mock (CPU 0) p50 / p99 | bare server on CPU 1 (floor) p50 / p99 "
          "| cache hit through ratewise p50 / p99 | hit − floor, p50 |")
    print("|---|---|---|---|---|")
    for name, r in results["scenarios"].items():
        d, g = r["direct"]["latency_us"], r["hit"]["latency_us"]
        f = r["floor"]["latency_us"] if r["floor"] else None
        fc = f"{f['p50']:.0f} / {f['p99']:.0f} µs" if f else "—"
        gap = f"{g['p50'] - f['p50']:.0f} µs" if f else "—"
        print(f"| {name} | {d['p50']:.0f} / {d['p99']:.0f} µs | {fc} | {g['p50']:.0f} / {g['p99']:.0f} µs | {gap} |")
    print("\n" + "\n".join(results["cache_metrics"]))
    print(f"\nraw numbers: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
