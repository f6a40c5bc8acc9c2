"""Wake-up lateness of waiting acquires (issue 7): how long after a unit frees a waiter runs.

One provider admits 1 request per 20 ms window; N waiters queue (blocking threads, or asyncio
tasks), and the k-th is due k windows after the first acquire. Lateness = when the waiter's own
code resumes minus when its unit was due; reported as mean and max over the waiters.

    target/py-venv/bin/python bench/python/waiting.py [--waiters 30]
"""

import argparse
import asyncio
import threading
import time

import ratewise

WINDOW_MS = 20


def engine():
    return ratewise.Engine({
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window_ms": WINDOW_MS}]}],
        "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
    })


def waiting(e):
    return sum(lane["waiting"] for lane in e.snapshot()["lanes"].values())


def report(kind, t0, times):
    late = [(t - t0) * 1000 - (k + 1) * WINDOW_MS for k, t in enumerate(sorted(times))]
    print(f"{kind:9} {len(late)} waiters: mean lateness {sum(late) / len(late):6.2f} ms, max {max(late):6.2f} ms")


def blocking(n):
    e = engine()
    times, lock = [], threading.Lock()

    def wait():
        e.acquire("c", timeout_ms=60_000)
        with lock:
            times.append(time.monotonic())

    e.acquire("c")
    t0 = time.monotonic()
    threads = [threading.Thread(target=wait) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report("blocking", t0, times)


def asynchronous(n):
    e = engine()

    async def main():
        times = []

        async def wait():
            await e.acquire_async("c", timeout_ms=60_000)
            times.append(time.monotonic())

        e.acquire("c")
        t0 = time.monotonic()
        await asyncio.gather(*(wait() for _ in range(n)))
        return t0, times

    t0, times = asyncio.run(main())
    report("asyncio", t0, times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--waiters", type=int, default=30)
    args = parser.parse_args()
    blocking(args.waiters)
    asynchronous(args.waiters)
