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
