"""Waiting in real time: blocking ``acquire(timeout_ms=...)`` and ``await acquire_async(...)``.

Order, completeness and what is held afterwards are asserted, never timings.
"""

import asyncio
import threading
import time

import pytest

import ratewise

LANES = ["critical", "normal", "batch"]


def paced_engine(window_ms=20):
    # One request per window: waiters are granted one by one as the window refills.
    return ratewise.Engine({
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window_ms": window_ms}]}],
        "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
        "lanes": [{"name": lane} for lane in LANES],  # no aging: the order is the lane order
    })


def single_slot_engine():
    return ratewise.Engine({
        "providers": [{"name": "a", "quotas": [{"dimension": "concurrency", "limit": 1}]}],
        "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
        "lanes": [{"name": lane} for lane in LANES],
    })


def waiting(engine):
    return sum(engine.snapshot()["lanes"][lane]["waiting"] for lane in LANES)


def wait_until_queued(engine, n):
    # Setup only: every waiter must be queued before the quota frees.
    deadline = time.monotonic() + 30
    while waiting(engine) < n and time.monotonic() < deadline:
        time.sleep(0.001)
    assert waiting(engine) == n


def test_blocking_waiters_are_granted_in_lane_order():
    engine = single_slot_engine()
    first = engine.acquire("c")
    order = []
    lock = threading.Lock()

    def wait(lane):
        permit = engine.acquire("c", lane=lane, timeout_ms=60_000)
        with lock:
            order.append((LANES.index(lane), permit.id))
        permit.complete("success")  # frees the slot for the next waiter

    threads = [threading.Thread(target=wait, args=(LANES[i % 3],)) for i in range(9)]
    for t in threads:
        t.start()
    wait_until_queued(engine, 9)
    first.complete("success")
    for t in threads:
        t.join(60)
    assert len(order) == 9
    assert [rank for rank, _ in order] == sorted(rank for rank, _ in order)
    assert len({permit_id for _, permit_id in order}) == 9
    assert engine.remaining("a", "concurrency") == 1
    assert waiting(engine) == 0


def test_a_blocked_thread_releases_the_gil():
    # The waiter can only be granted by this thread completing the held permit, which needs
    # the GIL while the waiter is blocked.
    engine = single_slot_engine()
    held = engine.acquire("c")
    got = []
    t = threading.Thread(target=lambda: got.append(engine.acquire("c", timeout_ms=10_000)))
    t.start()
    wait_until_queued(engine, 1)
    held.complete("success")
    t.join(20)
    assert len(got) == 1 and got[0].provider == "a"
    got[0].cancel()
    assert engine.remaining("a", "concurrency") == 1


def test_a_blocking_wait_times_out_with_the_predicted_wait():
    engine = single_slot_engine()
    held = engine.acquire("c")
    with pytest.raises(ratewise.NoAvailableProviderError):
        engine.acquire("c", timeout_ms=30)
    assert waiting(engine) == 0
    held.complete("success")
    assert engine.remaining("a", "concurrency") == 1


def test_a_timeout_must_be_positive():
    engine = single_slot_engine()
    with pytest.raises(ratewise.InvalidArgumentError, match="timeout_ms"):
        engine.acquire("c", timeout_ms=0)
    with pytest.raises(ratewise.InvalidArgumentError, match="timeout_ms"):
        asyncio.run(engine.acquire_async("c", timeout_ms=-5))
    with pytest.raises(ratewise.UnknownCapabilityError):
        asyncio.run(engine.acquire_async("nope", timeout_ms=5))
    assert waiting(engine) == 0


def test_async_waiters_are_granted_in_lane_order_by_the_timer():
    engine = paced_engine()

    async def main():
        first = engine.acquire("c")  # takes this window's only request
        order = []

        async def wait(lane):
            permit = await engine.acquire_async("c", lane=lane, timeout_ms=60_000)
            order.append((LANES.index(lane), permit.id))
            permit.complete("success")

        tasks = [asyncio.ensure_future(wait(LANES[i % 3])) for i in range(12)]
        # Nobody completes anything: only the engine's timer grants, as each window refills.
        while waiting(engine) < 12:
            await asyncio.sleep(0.001)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        first.complete("success")
        return order

    order = asyncio.run(main())
    assert len(order) == 12
    assert [rank for rank, _ in order] == sorted(rank for rank, _ in order)
    assert len({permit_id for _, permit_id in order}) == 12


def test_cancelling_an_async_wait_loses_nothing():
    engine = single_slot_engine()

    async def main():
        held = engine.acquire("c")
        task = asyncio.ensure_future(engine.acquire_async("c", timeout_ms=60_000))
        while waiting(engine) < 1:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waiting(engine) == 0
        held.complete("success")
        # The slot was not given to the cancelled waiter.
        assert engine.remaining("a", "concurrency") == 1
        # Granted and cancelled in the same turn: the permit is returned, not leaked.
        held = engine.acquire("c")
        task = asyncio.ensure_future(engine.acquire_async("c", timeout_ms=60_000))
        while waiting(engine) < 1:
            await asyncio.sleep(0.001)
        held.complete("success")  # grants the waiter; its result is delivered on the next turn
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert engine.remaining("a", "concurrency") == 1

    asyncio.run(main())


def test_an_async_wait_times_out():
    engine = single_slot_engine()

    async def main():
        held = engine.acquire("c")
        with pytest.raises(ratewise.NoAvailableProviderError):
            await engine.acquire_async("c", timeout_ms=30)
        held.complete("success")

    asyncio.run(main())
    assert engine.remaining("a", "concurrency") == 1
    assert waiting(engine) == 0


def test_an_async_permit_is_a_context_manager():
    engine = single_slot_engine()

    async def main():
        async def call():
            with await engine.acquire_async("c", timeout_ms=10_000) as permit:
                await asyncio.sleep(0.005)
                return permit.provider

        return await asyncio.gather(*(call() for _ in range(5)))

    assert asyncio.run(main()) == ["a"] * 5
    assert engine.remaining("a", "concurrency") == 1
