"""``ratewise.wrap_anthropic`` with the real ``anthropic`` SDK against the mock provider."""

from __future__ import annotations

import asyncio
import time

import pytest

import ratewise

from mock_fixture import charged, collect, engine_config, in_flight, make_engine, require, start_mock

anthropic = require("anthropic")

MESSAGES = [{"role": "user", "content": "Name three lighthouses on the coast of Brittany."}]
SYSTEM = "You are terse."
OUT = 8  # the mock's output_tokens for these models


@pytest.fixture(scope="module")
def mock():
    server = start_mock()
    yield server
    server.stop()


@pytest.fixture
def fresh(mock):
    mock.reset()
    return mock


def mock_input_tokens(**body):
    from mockllm import count_input_tokens

    return count_input_tokens({"messages": MESSAGES, **body}, "anthropic")


def client_for(mock):
    return anthropic.Anthropic(base_url=mock.url, api_key="sk-ant-test")


def async_client_for(mock):
    return anthropic.AsyncAnthropic(base_url=mock.url, api_key="sk-ant-test")


def one(model="claude-a", manual_clock=True):
    # Anthropic limits input and output tokens separately.
    return make_engine(engine_config([{"name": "p", "model": model}], token_dimension="split"), manual_clock)


def two():
    return make_engine(
        engine_config([{"name": "east", "model": "claude-a"}, {"name": "west", "model": "claude-b"}],
                      token_dimension="split"),
        manual_clock=False,
    )


def received(mock, model):
    return mock.stats()["models"][model]["received"]


def test_a_message_settles_the_reported_usage(fresh):
    engine = one()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    message = client.messages.create(model="chat", max_tokens=100, system=SYSTEM, messages=MESSAGES)
    assert isinstance(message, anthropic.types.Message)
    assert message.model == "claude-a"
    assert charged(engine, "p", "input_tokens") == mock_input_tokens(system=SYSTEM)
    assert charged(engine, "p", "output_tokens") == OUT
    assert charged(engine, "p", "requests") == 1
    assert in_flight(engine, "p") == 0


def test_cache_reads_count_as_input_and_cached(fresh):
    engine = make_engine({
        "providers": [{"name": "p", "model": "claude-a", "quotas": [
            {"dimension": "input_tokens", "limit": 1_000_000, "window": "day"},
            {"dimension": "input_tokens", "limit": 1_000_000, "window": "hour", "count_cached": False,
             "key": "uncached"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
    })
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    message = client.messages.create(model="chat", max_tokens=100, messages=MESSAGES, metadata={"mock_cached": 10})
    assert message.usage.cache_read_input_tokens == 10
    total = mock_input_tokens()
    assert message.usage.input_tokens == total - 10  # Anthropic's input_tokens excludes cache reads
    quotas = engine.snapshot()["providers"]["p"]["quotas"]
    assert quotas[0]["capacity"] - quotas[0]["remaining"] == total  # input = input + cache reads
    assert quotas[1]["capacity"] - quotas[1]["remaining"] == total - 10  # count_cached: false


def test_cache_writes_cost_the_cache_write_price(fresh):
    """cache_creation_input_tokens reach the engine as cache_write_input_tokens: a cost quota
    prices them at cache_write_input_per_mtok (docs/design.md §3), JSON and streamed alike; a
    count_cached: false quota counts them (only reads are left out)."""
    price = {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_per_mtok": 0.3,
             "cache_write_input_per_mtok": 3.75}
    engine = make_engine({
        "providers": [{"name": "p", "model": "claude-a", "price": price, "quotas": [
            {"dimension": "cost", "limit": 1_000_000_000, "window": "day"},
            {"dimension": "input_tokens", "limit": 1_000_000, "window": "hour", "count_cached": False}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
    })
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    meta = {"mock_cached": 4, "mock_cache_write": 6}
    total = mock_input_tokens()
    # ceil(((total − 10)·3 + 4·0.3 + 6·3.75 + 8·15) µUSD), in pico-USD per token.
    one_call = -(-((total - 10) * 3_000_000 + 4 * 300_000 + 6 * 3_750_000 + OUT * 15_000_000) // 1_000_000)
    message = client.messages.create(model="chat", max_tokens=100, messages=MESSAGES, metadata=meta)
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (4, 6)
    assert charged(engine, "p", "cost") == one_call
    with client.messages.stream(model="chat", max_tokens=100, messages=MESSAGES, metadata=meta) as s:
        assert s.get_final_message().usage.cache_creation_input_tokens == 6
    assert charged(engine, "p", "cost") == 2 * one_call
    assert charged(engine, "p", "input_tokens") == 2 * (total - 4)  # writes count, reads do not


def test_a_400_is_sent_once_and_raised_as_the_sdk_error(fresh):
    engine = one()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="chat", max_tokens=100, messages=MESSAGES, extra_body={"temperature": 1.5})
    assert received(fresh, "claude-a") == 1
    assert charged(engine, "p", "input_tokens") == 0 and charged(engine, "p", "output_tokens") == 0


def test_max_tokens_is_required(fresh):
    client = ratewise.wrap_anthropic(client_for(fresh), one())
    with pytest.raises(TypeError, match="max_tokens"):
        client.messages.create(model="chat", messages=MESSAGES)  # type: ignore[call-overload]


def test_a_529_storm_on_the_primary_loses_nothing(fresh):
    engine = two()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    fresh.set_faults({"model": "claude-a", "status": 529, "count": 1000})
    for _ in range(20):
        assert client.messages.create(model="chat", max_tokens=50, messages=MESSAGES).model == "claude-b"
    assert fresh.stats()["models"]["claude-a"]["status"].get("529", 0) <= 10
    assert fresh.stats()["models"]["claude-b"]["ok"] == 20


def test_a_429_with_retry_after_moves_on_at_once(fresh):
    engine = two()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    fresh.set_faults({"model": "claude-a", "status": 429, "count": 100, "retry_after_s": 20})
    started = time.monotonic()
    for _ in range(3):
        assert client.messages.create(model="chat", max_tokens=50, messages=MESSAGES).model == "claude-b"
    assert time.monotonic() - started < 5
    assert received(fresh, "claude-a") == 1


def test_create_stream_settles_from_message_start_and_delta(fresh):
    engine = one()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    events = list(client.messages.create(model="chat", max_tokens=300, messages=MESSAGES, stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert charged(engine, "p", "input_tokens") == mock_input_tokens()
    assert charged(engine, "p", "output_tokens") == OUT  # from message_delta, not message_start's 1
    assert in_flight(engine, "p") == 0


def test_messages_stream_behaves_like_the_sdks(fresh):
    engine = one()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    with client.messages.stream(model="chat", max_tokens=300, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "".join(f"tok{k} " for k in range(OUT))
    assert final.usage.output_tokens == OUT
    assert final.content[0].text == text
    assert charged(engine, "p", "input_tokens") == mock_input_tokens()
    assert charged(engine, "p", "output_tokens") == OUT
    assert in_flight(engine, "p") == 0
    with client.messages.stream(model="chat", max_tokens=300, messages=MESSAGES) as stream:
        assert stream.get_final_text() == text
        assert stream.current_message_snapshot.stop_reason == "end_turn"
    with client.messages.stream(model="chat", max_tokens=300, messages=MESSAGES) as stream:
        kinds = [event.type for event in stream]
    assert "text" in kinds and kinds[-1] == "message_stop"  # the SDK's own synthesized events
    assert in_flight(engine, "p") == 0


def test_a_stream_cut_midway_is_charged_with_the_usage_seen(fresh):
    engine = one()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    fresh.set_faults({"model": "claude-a", "cut_stream_after": 4, "count": 1})
    httpx2 = require("httpx2")
    # The SDK's stream raises httpx's own error, unchanged (an incomplete chunked read).
    with pytest.raises(httpx2.RemoteProtocolError):
        with client.messages.stream(model="chat", max_tokens=300, messages=MESSAGES) as stream:
            for _ in stream:
                pass
    assert received(fresh, "claude-a") == 1
    # message_start reported the input; the output was never reported: its estimate stands.
    assert charged(engine, "p", "input_tokens") == mock_input_tokens()
    assert charged(engine, "p", "output_tokens") == 300
    assert engine.health("p") == 1.0
    assert in_flight(engine, "p") == 0


def test_an_abandoned_stream_settles_interrupted(fresh):
    engine = one()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    stream = client.messages.create(model="chat", max_tokens=300, messages=MESSAGES, stream=True)
    next(stream)
    assert in_flight(engine, "p") == 1
    del stream
    collect()
    assert in_flight(engine, "p") == 0
    assert charged(engine, "p", "input_tokens") == mock_input_tokens()
    assert charged(engine, "p", "output_tokens") == 300


def test_a_stream_refused_with_529_moves_elsewhere(fresh):
    engine = two()
    client = ratewise.wrap_anthropic(client_for(fresh), engine)
    fresh.set_faults({"model": "claude-a", "status": 529, "count": 5})
    with client.messages.stream(model="chat", max_tokens=50, messages=MESSAGES) as stream:
        assert stream.get_final_message().model == "claude-b"
    assert received(fresh, "claude-a") == 1


def test_async_message_and_streams(fresh):
    engine = one()

    async def main():
        async with async_client_for(fresh) as sdk:
            client = ratewise.wrap_anthropic(sdk, engine)
            assert isinstance(client, ratewise.anthropic.AsyncRatewiseAnthropic)
            message = await client.messages.create(model="chat", max_tokens=100, messages=MESSAGES)
            events = [e async for e in await client.messages.create(
                model="chat", max_tokens=100, messages=MESSAGES, stream=True)]
            async with client.messages.stream(model="chat", max_tokens=100, messages=MESSAGES) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            return message, events, text, final

    message, events, text, final = asyncio.run(main())
    assert message.usage.output_tokens == OUT
    assert events[-1].type == "message_stop"
    assert final.content[0].text == text
    assert charged(engine, "p", "input_tokens") == 3 * mock_input_tokens()
    assert charged(engine, "p", "output_tokens") == 3 * OUT
    assert in_flight(engine, "p") == 0


def test_async_529_storm_loses_nothing(fresh):
    engine = two()
    fresh.set_faults({"model": "claude-a", "status": 529, "count": 1000})

    async def main():
        async with async_client_for(fresh) as sdk:
            client = ratewise.wrap_anthropic(sdk, engine)
            gate = asyncio.Semaphore(8)

            async def call():
                async with gate:
                    return await client.messages.create(model="chat", max_tokens=50, messages=MESSAGES)

            return await asyncio.gather(*[call() for _ in range(30)])

    results = asyncio.run(main())
    assert all(m.model == "claude-b" for m in results)
    assert fresh.stats()["models"]["claude-a"]["status"].get("529", 0) <= 10


def test_async_cut_stream_is_charged(fresh):
    engine = one()
    fresh.set_faults({"model": "claude-a", "cut_stream_after": 4, "count": 1})

    async def main():
        async with async_client_for(fresh) as sdk:
            client = ratewise.wrap_anthropic(sdk, engine)
            async with client.messages.stream(model="chat", max_tokens=300, messages=MESSAGES) as stream:
                async for _ in stream:
                    pass

    with pytest.raises(require("httpx2").RemoteProtocolError):
        asyncio.run(main())
    assert charged(engine, "p", "output_tokens") == 300
    assert in_flight(engine, "p") == 0
