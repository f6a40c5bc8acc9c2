"""The engine is shared across threads without a Python-level lock."""

import threading

import ratewise


def test_race_for_the_last_unit_has_one_winner():
    for _ in range(50):
        engine = ratewise.Engine({
            "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window": "day"}]}],
            "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
        }, clock=ratewise.ManualClock(0))
        barrier = threading.Barrier(8)
        wins = []

        def contend():
            barrier.wait()
            try:
                engine.acquire("c")
                wins.append(1)
            except ratewise.NoAvailableProviderError:
                pass

        threads = [threading.Thread(target=contend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1


def test_many_threads_never_over_admit():
    engine = ratewise.Engine({
        "providers": [{"name": "a", "quotas": [{"dimension": "tokens", "limit": 5000, "window": "day"},
                                               {"dimension": "concurrency", "limit": 3}]}],
        "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
    }, clock=ratewise.ManualClock(0))
    admitted = []
    errors = []

    def work():
        for i in range(400):
            try:
                with engine.acquire("c", input_tokens=1 + i % 5):
                    admitted.append(1 + i % 5)
            except ratewise.NoAvailableProviderError:
                pass
            except Exception as exc:  # anything else is a bug
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(admitted) <= 5000
    assert engine.remaining("a", "concurrency") == 3
    assert engine.snapshot()["providers"]["a"]["in_flight"] == 0


def test_the_gil_is_released_while_redis_does_not_answer():
    # A "Redis" that accepts connections and never answers (as a hung server does).
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    config = {
        "providers": [{"name": "a"}],
        "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
        "store": {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0", "timeout_ms": 500, "on_error": "closed"},
    }
    errors = []

    def build():
        try:
            ratewise.Engine(config)
        except ratewise.StoreUnavailableError as e:
            errors.append(e)

    t = threading.Thread(target=build)
    t.start()
    ticks = 0
    while t.is_alive():
        ticks += 1  # runs only if the waiting thread released the GIL
    t.join()
    listener.close()
    assert len(errors) == 1 and errors[0].code == "store_unavailable"
    assert ticks > 10_000, ticks


def test_a_redis_store_is_shared_by_two_engines():
    import os

    import pytest

    url = os.environ.get("RATEWISE_REDIS_URL")
    if not url:
        pytest.skip("RATEWISE_REDIS_URL is not set")
    config = {
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 10, "window": "hour"}]}],
        "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
        "store": {"kind": "redis", "url": url, "prefix": f"py-test-{os.getpid()}", "on_error": "closed"},
    }
    one, two = ratewise.Engine(config), ratewise.Engine(config)
    assert one.snapshot()["store"] == {
        "kind": "redis",
        "mode": "shared",
        "resets": 0,
        "unsent": 0,
        "unsent_dropped": 0,
    }
    admitted = 0
    for engine in [one, two] * 10:
        try:
            engine.acquire("c").complete("success", latency_ms=1)
            admitted += 1
        except ratewise.NoAvailableProviderError:
            pass
    assert admitted == 10
