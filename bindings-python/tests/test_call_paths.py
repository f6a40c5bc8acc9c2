"""The paths a call takes that lose nothing: a stream cut after the 200 is charged (settled
``interrupted``, never refunded), ``async with`` settles like ``with``, the upstream model comes
with every permit, and a configuration path given as text is told how to pass it."""

import asyncio
import json
from pathlib import Path
from typing import Any, Dict

import pytest

import ratewise
from ratewise import Engine

CONFIG: Dict[str, Any] = {
    "providers": [
        {"name": "east", "model": "gpt-4o-2024-08-06",
         "quotas": [{"dimension": "tokens", "limit": 10_000, "window": "minute"}]},
        {"name": "west", "quotas": [{"dimension": "tokens", "limit": 10_000, "window": "minute"}]},
    ],
    "capabilities": [{"name": "chat", "providers": [{"provider": "east", "priority": 2}, {"provider": "west"}]}],
}


def engine() -> Engine:
    return Engine(CONFIG, clock=ratewise.ManualClock(0))


class RemoteProtocolError(Exception):
    """Named as httpx names a body cut short (peer closed connection without sending the rest)."""


class APIConnectionError(Exception):
    """Named as the SDKs name the error they raise from it."""


class ConnectError(Exception):
    """Named as httpx names a connection that was never made."""


def test_a_stream_cut_after_the_200_stays_charged() -> None:
    e = engine()
    with pytest.raises(APIConnectionError):
        with e.acquire("chat", input_tokens=1_000, output_tokens=500):
            try:
                raise RemoteProtocolError("peer closed connection without sending complete message body")
            except RemoteProtocolError as cut:
                raise APIConnectionError("Connection error.") from cut
    assert e.remaining("east", "tokens") == 8_500
    assert e.snapshot()["providers"]["east"]["health"] == 1.0


def test_a_connection_never_made_is_refunded() -> None:
    e = engine()
    with pytest.raises(ConnectError):
        with e.acquire("chat", input_tokens=1_000, output_tokens=500):
            raise ConnectError("connection refused")
    assert e.remaining("east", "tokens") == 10_000


def test_interrupted_keeps_estimates_and_settles_reported_usage() -> None:
    e = engine()
    e.acquire("chat", input_tokens=1_000, output_tokens=500).complete("interrupted")
    assert e.remaining("east", "tokens") == 8_500
    e.acquire("chat", input_tokens=1_000, output_tokens=500).complete("interrupted", input_tokens=1_000, output_tokens=20)
    assert e.remaining("east", "tokens") == 7_480


def test_permits_and_decisions_name_the_upstream_model() -> None:
    e = engine()
    assert e.select("chat").model == "gpt-4o-2024-08-06"
    p = e.acquire("chat", exclude=["east"])
    assert (p.provider, p.model, p.decision.model) == ("west", "west", "west")
    p.cancel()


def test_exit_returns_none_so_exceptions_propagate() -> None:
    e = engine()
    p = e.acquire("chat")
    assert p.__exit__(None, None, None) is None


def test_async_with_settles_like_with() -> None:
    e = engine()

    async def run() -> None:
        async with e.acquire_async("chat", input_tokens=100, output_tokens=50, timeout_ms=1_000) as permit:
            assert permit.model == "gpt-4o-2024-08-06"
        with pytest.raises(ConnectError):
            async with e.acquire_async("chat", input_tokens=100, output_tokens=50, timeout_ms=1_000):
                raise ConnectError("refused")
        permit = await e.acquire_async("chat", input_tokens=100, output_tokens=50, timeout_ms=1_000)
        permit.cancel()

    asyncio.run(run())
    # The first settled as a success with its estimates; the second was refunded; so was the third.
    assert e.remaining("east", "tokens") == 9_850
    assert e.snapshot()["providers"]["east"]["in_flight"] == 0


def test_from_file_and_a_path_given_as_text(tmp_path: Path) -> None:
    path = tmp_path / "ratewise.json"
    path.write_text(json.dumps(CONFIG))
    assert Engine.from_file(path).select("chat").provider == "east"
    assert Engine.from_file(str(path)).select("chat").provider == "east"
    with pytest.raises(ratewise.InvalidConfigError, match=r"from_file"):
        Engine(str(path))
    with pytest.raises(ratewise.InvalidConfigError, match=r"from_file"):
        Engine("ratewise.json")


def test_estimate_tokens_is_the_cores() -> None:
    assert ratewise.estimate_tokens([{"role": "user", "content": "Hello, how are you today?"}]) == 18
    with pytest.raises(ratewise.InvalidArgumentError):
        ratewise.estimate_tokens([object()])
