import sys
from pathlib import Path

import pytest

# These tests exercise the installed wheel: refuse to run against the source tree by accident.
_SOURCE = Path(__file__).resolve().parents[1] / "python"


def pytest_configure(config):
    import ratewise

    origin = Path(ratewise.__file__).resolve()
    if _SOURCE in origin.parents:
        raise pytest.UsageError(f"ratewise was imported from the source tree ({origin}); install the wheel into a venv")


@pytest.fixture
def clock():
    import ratewise

    return ratewise.ManualClock(1_000_000)


@pytest.fixture
def config():
    return {
        "providers": [
            {"name": "gpt-4o", "quotas": [
                {"dimension": "requests", "limit": 100, "window": "minute"},
                {"dimension": "tokens", "limit": 100000, "window": "minute"},
                {"dimension": "concurrency", "limit": 20},
            ]},
            {"name": "claude", "quotas": [{"dimension": "requests", "limit": 50, "window": "minute"}]},
        ],
        "capabilities": [{"name": "chat", "providers": [
            {"provider": "gpt-4o", "priority": 10}, {"provider": "claude", "priority": 8}]}],
    }


@pytest.fixture
def engine(config, clock):
    import ratewise

    return ratewise.Engine(config, clock=clock)


sys.dont_write_bytecode = True
