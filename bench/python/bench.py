"""ratewise vs grate-limiter (the peer from the seeds) on the same scenario, from Python.

3 providers, each with requests, tokens and concurrency quotas; one capability; N select +
observe pairs on a manual clock advancing 1 ms per pair. Also acquire + complete (the peer has
no reservation API). Prints a table of the median of R runs. Run via bench/python/run.sh.
"""

from __future__ import annotations

import argparse
import statistics
import time


def ratewise_engine():
    import ratewise

    quotas = [
        {"dimension": "requests", "limit": 1_000_000, "window": "minute"},
        {"dimension": "tokens", "limit": 100_000_000, "window": "minute"},
        {"dimension": "concurrency", "limit": 100},
    ]
    config = {
        "providers": [{"name": name, "quotas": quotas} for name in ("p1", "p2", "p3")],
        "capabilities": [{"name": "chat", "providers": [
            {"provider": "p1", "priority": 10}, {"provider": "p2", "priority": 8}, {"provider": "p3", "priority": 5}]}],
    }
    clock = ratewise.ManualClock(0)
    return ratewise.Engine(config, clock=clock), clock


def ratewise_select_observe(n: int) -> float:
    engine, clock = ratewise_engine()
    select, observe, advance = engine.select, engine.observe, clock.advance
    start = time.perf_counter()
    for _ in range(n):
        advance(1)
        d = select("chat", input_tokens=100, output_tokens=50)
        observe(d.provider, "success", latency_ms=120, input_tokens=100, output_tokens=50)
    return (time.perf_counter() - start) / n


def ratewise_acquire_complete(n: int) -> float:
    engine, clock = ratewise_engine()
    acquire, advance = engine.acquire, clock.advance
    start = time.perf_counter()
    for _ in range(n):
        advance(1)
        p = acquire("chat", input_tokens=100, output_tokens=50)
        p.complete("success", latency_ms=120, input_tokens=100, output_tokens=50)
    return (time.perf_counter() - start) / n


def peer_select_observe(n: int) -> float:
    from grate_limiter import (
        CapabilityConfig, CapabilityProvider, Dimension, EngineConfig, GrateLimiter, MockClock, Observation,
        Outcome, ProviderConfig, StatusClass, Usage, Window,
    )
    from grate_limiter.models import QuotaConfig

    clock = MockClock()
    engine = GrateLimiter(EngineConfig(clock=clock))
    for name, priority in (("p1", 10), ("p2", 8), ("p3", 5)):
        engine.upsert_provider(ProviderConfig(name=name, priority=priority, quotas=[
            QuotaConfig(dimension=Dimension.REQUESTS, limit=1_000_000, window=Window.MINUTE),
            QuotaConfig(dimension=Dimension.TOKENS, limit=100_000_000, window=Window.MINUTE),
            QuotaConfig(dimension=Dimension.CONCURRENCY, limit=100),
        ]))
    engine.upsert_capability(CapabilityConfig(name="chat", providers=[
        CapabilityProvider(provider="p1", priority=10), CapabilityProvider(provider="p2", priority=8),
        CapabilityProvider(provider="p3", priority=5)]))
    start = time.perf_counter()
    for _ in range(n):
        clock.advance_ms(1)
        d = engine.select("chat")
        engine.observe(Observation(provider=d.provider, capability="chat", usage=Usage(requests=1, tokens=150),
                                   outcome=Outcome(status=StatusClass.SUCCESS, latency_ms=120)))
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-pairs", type=int, default=None, help="pairs for the (slow) peer; default: --pairs")
    args = parser.parse_args()
    peer_pairs = args.peer_pairs or args.pairs

    def median(fn, n):
        return statistics.median(fn(n) for _ in range(args.runs)) * 1e6

    rw_pair = median(ratewise_select_observe, args.pairs)
    rw_acq = median(ratewise_acquire_complete, args.pairs)
    peer = median(peer_select_observe, peer_pairs)
    print(f"{args.pairs} pairs (peer: {peer_pairs}), median of {args.runs} runs, manual clock +1 ms per pair\n")
    print(f"{'implementation':<36} {'us/pair':>9} {'budget':>8}  verdict")
    print(f"{'ratewise select+observe':<36} {rw_pair:>9.3f} {'<= 2.0':>8}  {'met' if rw_pair <= 2.0 else 'MISSED'}")
    print(f"{'ratewise acquire+complete':<36} {rw_acq:>9.3f} {'':>8}")
    print(f"{'grate-limiter 0.1.1 select+observe':<36} {peer:>9.3f} {'':>8}")
    ratio = peer / rw_pair
    print(f"\nratewise is {ratio:.0f}x faster than the peer per select+observe pair (budget >= 30x: "
          f"{'met' if ratio >= 30 else 'MISSED'})")


if __name__ == "__main__":
    main()
