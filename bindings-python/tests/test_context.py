"""What ``with engine.acquire(...) as permit:`` settles when the block raises.

The regression: a stream cut after its 200 was treated as "nothing reached the provider" and
refunded, though the provider had charged it. Such a failure now settles ``interrupted`` (the
estimates stay charged, health unchanged); a failure to connect still refunds.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

import ratewise
from ratewise._context import outcome_from_exception

from mock_fixture import charged, engine_config, in_flight, make_engine, require, start_mock


class _Lazy:
    """An SDK module imported on first use, so the tests that need none run without them."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)  # what pytest's collection asks of module globals
        return getattr(require(self._name), attr)


openai = _Lazy("openai")
anthropic = _Lazy("anthropic")
httpx2 = _Lazy("httpx2")

MESSAGES = [{"role": "user", "content": "Tell me a story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def mock():
    server = start_mock()
    yield server
    server.stop()


@pytest.fixture
def fresh(mock):
    mock.reset()
    return mock


def one_provider(model="gpt-a"):
    return make_engine(engine_config([{"name": "p", "model": model}]))


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def test_a_stream_cut_after_the_200_stays_charged(fresh):
    fresh.set_faults({"model": "gpt-a", "cut_stream_after": 3, "count": 1})
    engine = one_provider()
    client = openai.OpenAI(base_url=fresh.url + "/v1", api_key="sk-test", max_retries=0)
    got = []
    with pytest.raises(openai.APIConnectionError):
        with engine.acquire("chat", input_tokens=100, output_tokens=500) as permit:
            stream = client.chat.completions.create(model=permit.model, messages=MESSAGES, stream=True)
            for chunk in stream:
                got.append(chunk)
    assert len(got) == 3
    assert fresh.stats()["models"]["gpt-a"]["streams_cut"] == 1
    # The provider charged it: the reservation stands (a refund would leave 0 charged).
    assert charged(engine, "p") == 600
    assert charged(engine, "p", "requests") == 1
    assert in_flight(engine, "p") == 0
    assert engine.health("p") == 1.0  # interrupted says nothing about the provider's health


def test_an_anthropic_stream_cut_after_the_200_stays_charged(fresh):
    fresh.set_faults({"model": "claude-a", "cut_stream_after": 2, "count": 1})
    engine = one_provider("claude-a")
    client = anthropic.Anthropic(base_url=fresh.url, api_key="sk-ant-test", max_retries=0)
    with pytest.raises(Exception) as raised:
        with engine.acquire("chat", input_tokens=50, output_tokens=300) as permit:
            with client.messages.stream(model=permit.model, max_tokens=300, messages=MESSAGES) as stream:
                for _ in stream:
                    pass
    assert outcome_from_exception(raised.value) == ("interrupted", None)
    assert charged(engine, "p") == 350
    assert in_flight(engine, "p") == 0


def test_a_connection_refused_still_refunds():
    engine = one_provider()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.APIConnectionError) as raised:
        with engine.acquire("chat", input_tokens=100, output_tokens=500) as permit:
            client.chat.completions.create(model=permit.model, messages=MESSAGES)
    assert isinstance(raised.value.__cause__, httpx2.ConnectError)
    assert charged(engine, "p") == 0  # nothing was sent: refunded
    assert in_flight(engine, "p") == 0


def test_a_400_settles_as_a_client_error(fresh):
    engine = one_provider()
    client = openai.OpenAI(base_url=fresh.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        with engine.acquire("chat", input_tokens=100, output_tokens=500) as permit:
            client.chat.completions.create(model=permit.model, messages=MESSAGES, temperature=5)
    assert charged(engine, "p") == 0  # a client error: the provider did no work
    assert charged(engine, "p", "requests") == 1


def _request() -> "httpx2.Request":
    return httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _wrapped(sdk_error_cls, cause):
    try:
        try:
            raise cause
        except Exception as err:
            raise sdk_error_cls(request=_request()) from err
    except Exception as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ConnectError", None),
        ("PoolTimeout", None),
        ("ConnectTimeout", ("timeout", None)),
        ("ReadTimeout", ("timeout", None)),
        ("RemoteProtocolError", ("interrupted", None)),  # e.g. an incomplete chunked read
        ("ReadError", ("interrupted", None)),
        ("WriteError", ("interrupted", None)),
        ("ConnectionResetError", ("interrupted", None)),
    ],
)
def test_transport_failures_by_phase(name, expected):
    cause = ConnectionResetError(104, "reset") if name == "ConnectionResetError" else getattr(httpx2, name)(name)
    assert outcome_from_exception(cause) == expected
    assert outcome_from_exception(_wrapped(openai.APIConnectionError, cause)) == expected
    assert outcome_from_exception(_wrapped(anthropic.APIConnectionError, cause)) == expected


def test_an_sdk_connection_error_without_a_known_cause_is_conservative():
    assert outcome_from_exception(openai.APIConnectionError(request=_request())) == ("interrupted", None)
    assert outcome_from_exception(openai.APITimeoutError(request=_request())) == ("timeout", None)


def test_an_error_event_inside_a_200_is_interrupted():
    response = httpx2.Response(200, request=_request())
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    err = anthropic.APIStatusError("overloaded", response=response, body=body)
    status, _headers = outcome_from_exception(err)
    assert status == "interrupted"  # output may have been produced: never refunded


def test_anything_else_still_cancels():
    assert outcome_from_exception(ValueError("a bug in the block")) is None
    assert outcome_from_exception(KeyboardInterrupt()) is None


def test_async_with_a_cut_stream_stays_charged(fresh):
    fresh.set_faults({"model": "gpt-a", "cut_stream_after": 2, "count": 1})
    engine = one_provider()

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=fresh.url + "/v1", api_key="sk-test", max_retries=0)
        async with engine.acquire_async("chat", timeout_ms=5_000, input_tokens=40, output_tokens=60) as permit:
            stream = await client.chat.completions.create(model=permit.model, messages=MESSAGES, stream=True)
            async for _ in stream:
                pass

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(main())
    assert charged(engine, "p") == 100
    assert in_flight(engine, "p") == 0


# -- async with engine.acquire_async(...) ------------------------------------------------------


def test_acquire_async_returns_a_pending_permit_that_settles_on_exit():
    engine = one_provider()

    async def main() -> str:
        pending = engine.acquire_async("chat", timeout_ms=1_000, input_tokens=30, output_tokens=20)
        assert isinstance(pending, ratewise.PendingPermit)
        async with pending as permit:
            assert isinstance(permit, ratewise.Permit)
            assert in_flight(engine, "p") == 1
            return permit.model

    assert asyncio.run(main()) == "gpt-a"
    assert in_flight(engine, "p") == 0
    assert charged(engine, "p") == 50  # a success with the estimates


def test_async_with_settles_what_the_exception_says():
    engine = one_provider()

    async def main() -> None:
        async with engine.acquire_async("chat", timeout_ms=1_000, input_tokens=30, output_tokens=20):
            raise ValueError("a bug before sending")

    with pytest.raises(ValueError):
        asyncio.run(main())
    assert charged(engine, "p") == 0  # cancelled: refunded
    assert charged(engine, "p", "requests") == 0
    assert in_flight(engine, "p") == 0


def test_await_still_works_and_a_pending_permit_is_single_use():
    engine = one_provider()

    async def main() -> None:
        pending = engine.acquire_async("chat", timeout_ms=1_000)
        permit = await pending
        permit.complete("success", input_tokens=3, output_tokens=4)
        with pytest.raises(RuntimeError):
            await pending

    asyncio.run(main())
    assert charged(engine, "p") == 7


def test_cancelling_an_async_with_that_waits_withdraws_it():
    engine = make_engine(
        {"providers": [{"name": "p", "model": "gpt-a", "quotas": [{"dimension": "concurrency", "limit": 1}]}],
         "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}]},
        manual_clock=False,
    )
    held = engine.acquire("chat")
    entered = []

    async def waiter() -> None:
        async with engine.acquire_async("chat", timeout_ms=60_000):
            entered.append(True)

    async def main() -> None:
        task = asyncio.ensure_future(waiter())
        for _ in range(100):
            await asyncio.sleep(0.005)
            if engine.snapshot()["lanes"]["normal"]["waiting"] == 1:
                break
        assert engine.snapshot()["lanes"]["normal"]["waiting"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert entered == []
    assert engine.snapshot()["lanes"]["normal"]["waiting"] == 0
    held.complete("success")
    assert in_flight(engine, "p") == 0


def test_an_unawaited_pending_permit_holds_nothing():
    engine = one_provider()
    engine.acquire_async("chat", timeout_ms=1_000)
    assert engine.snapshot()["lanes"]["normal"]["waiting"] == 0
    assert charged(engine, "p", "requests") == 0
