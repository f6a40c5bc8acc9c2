"""Soak worker (Python) of tests/soak/run.py; the twin of core/examples/soak_worker.rs.

Usage: worker.py CONFIG_FILE START_MS STOP_MS SEED. Waits until the engine's clock (the Redis
server's) reads START_MS, then until STOP_MS loops: acquire, hold the permit a random 1-20 ms,
complete (success); when refused, sleeps the predicted wait (clamped to 1-50 ms). Prints one
JSON line (format documented in run.py): one record per admission, the longest call, the
seconds spent degraded and the store's counters.
"""

import json
import random
import sys
import time

import ratewise

MODES = {"shared": 0, "local": 1, "open": 2, "unavailable": 3}


def main() -> None:
    config_file, start, stop, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    engine = ratewise.Engine(open(config_file).read())
    rng = random.Random(seed)
    base_us = start * 1000

    def wall_us() -> int:
        # The host's wall clock, which is also the Redis server's (one host).
        return time.time_ns() // 1000 - base_us

    while engine.now_ms() < start:
        time.sleep(min(0.05, max(0.001, (start - engine.now_ms()) / 1000)))

    state = {"last": time.monotonic(), "degraded": False, "degraded_s": 0.0, "resets": 0}
    spans: list = []
    resets_at: list = []

    def sample() -> int:
        store = engine.snapshot()["store"]
        mode = MODES.get(store["mode"], 9)
        now = time.monotonic()
        if state["degraded"]:
            state["degraded_s"] += now - state["last"]
        state["last"] = now
        w = wall_us()
        degraded = mode != 0
        if degraded and not state["degraded"]:
            spans.append([w, w])
        if spans and state["degraded"]:
            spans[-1][1] = w
        state["degraded"] = degraded
        if store.get("resets", 0) > state["resets"]:
            state["resets"] = store["resets"]
            resets_at.append([engine.now_ms() - start, w, store["resets"]])
        return mode

    longest = {"us": 0, "what": "", "at": 0}
    slow = [0]

    def note(what: str, t0: int, t1: int) -> None:
        if t1 - t0 > longest["us"]:
            longest.update(us=t1 - t0, what=what, at=t0)
        if t1 - t0 > 95_000:
            slow[0] += 1

    sample()
    records = []
    errors: dict = {}
    refused = 0
    while engine.now_ms() < stop:
        e0 = engine.now_ms()
        w0 = wall_us()
        try:
            permit = engine.acquire("chat")
            failure = None
        except ratewise.NoAvailableProviderError as e:
            permit, failure = None, e
        except ratewise.RatewiseError as e:
            permit, failure = None, e
        w1 = wall_us()
        e1 = engine.now_ms()
        note("acquire", w0, w1)
        mode = sample()
        if permit is not None:
            hold = rng.randint(1, 20)
            time.sleep(hold / 1000)
            e2 = engine.now_ms()
            w2 = wall_us()
            try:
                permit.complete("success", latency_ms=hold)
            except ratewise.RatewiseError as e:
                key = f"complete:{e.code}"
                errors[key] = errors.get(key, 0) + 1
            w3 = wall_us()
            note("complete", w2, w3)
            sample()
            records.append([e0 - start, e2 - start, mode, w0, w1, w2, w3, e1 - start])
        elif isinstance(failure, ratewise.NoAvailableProviderError):
            refused += 1
            wait = failure.retry_after_ms if failure.retry_after_ms is not None else 2
            time.sleep(max(1, min(wait, 50)) / 1000)
        else:
            key = f"acquire:{failure.code}"
            errors[key] = errors.get(key, 0) + 1
            time.sleep(0.005)
    sample()
    store = engine.snapshot()["store"]
    print(json.dumps({
        "lang": "python",
        "records": records,
        "refused": refused,
        "errors": errors,
        "longest_call_us": longest["us"],
        "longest_call": longest["what"],
        "longest_call_at_us": longest["at"],
        "slow_calls": slow[0],
        "degraded_s": state["degraded_s"],
        "degraded_spans_us": spans,
        "resets_at": resets_at,
        "resets": store.get("resets"),
        "unsent": store.get("unsent"),
        "unsent_dropped": store.get("unsent_dropped"),
        "mode": store.get("mode"),
        "end_ms": engine.now_ms() - start,
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
