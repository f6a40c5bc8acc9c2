"""``ratewise.wrap_openai`` with the real ``openai`` SDK against the mock provider.

What is asserted is what the engine settled (its quota levels on a manual clock, exact) and
what the mock received (its counters), never timings, except where moving on "quickly" is the
behaviour under test (a bound of seconds against a retry-after of 20 s).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import ratewise

from mock_fixture import charged, collect, engine_config, in_flight, make_engine, quota, require, start_mock

openai = require("openai")

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three lighthouses on the coast of Brittany."},
]
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


def mock_input_tokens(messages=MESSAGES, **body):
    from mockllm import count_input_tokens

    return count_input_tokens({"messages": messages, **body}, "openai")


def client_for(mock, **options):
    return openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-test", **options)


def async_client_for(mock, **options):
    return openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="sk-test", **options)


def one(model="gpt-a", manual_clock=True):
    return make_engine(engine_config([{"name": "p", "model": model}]), manual_clock)


def two(manual_clock=False):
    # east is preferred (priority); both are deployments of the same capability.
    return make_engine(engine_config([{"name": "east", "model": "gpt-a"}, {"name": "west", "model": "gpt-b"}]),
                       manual_clock)


def received(mock, model):
    return mock.stats()["models"][model]["received"]


def statuses(mock, model):
    return mock.stats()["models"][model]["status"]


# -- JSON --------------------------------------------------------------------------------------


def test_a_completion_settles_the_reported_usage(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    completion = client.chat.completions.create(model="chat", messages=MESSAGES, max_completion_tokens=100)
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.model == "gpt-a"  # sent as permit.model, not the capability's name
    assert completion.usage.completion_tokens == OUT
    # Reserved: estimate + 100; settled: exactly what the provider reported.
    assert charged(engine, "p") == mock_input_tokens() + OUT
    assert charged(engine, "p", "requests") == 1
    assert in_flight(engine, "p") == 0
    assert received(fresh, "gpt-a") == 1


def test_cached_tokens_are_reported(fresh):
    engine = make_engine({
        "providers": [{"name": "p", "model": "gpt-a", "quotas": [
            {"dimension": "input_tokens", "limit": 1_000_000, "window": "day", "count_cached": False}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
    })
    client = ratewise.wrap_openai(client_for(fresh), engine)
    completion = client.chat.completions.create(model="chat", messages=MESSAGES, metadata={"mock_cached": "10"})
    assert completion.usage.prompt_tokens_details.cached_tokens == 10
    assert charged(engine, "p", "input_tokens") == mock_input_tokens() - 10


def test_capability_fixes_the_capability(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine, capability="chat")
    client.chat.completions.create(model="anything", messages=MESSAGES)
    assert received(fresh, "gpt-a") == 1


def test_no_capability_is_a_type_error(fresh):
    client = ratewise.wrap_openai(client_for(fresh), one())
    with pytest.raises(TypeError, match="capability"):
        client.chat.completions.create(messages=MESSAGES)


def test_an_unknown_capability_is_refused_before_sending(fresh):
    client = ratewise.wrap_openai(client_for(fresh), one())
    with pytest.raises(ratewise.UnknownCapabilityError):
        client.chat.completions.create(model="gpt-a", messages=MESSAGES)
    assert fresh.stats()["total"]["received"] == 0


def test_the_default_output_estimate_is_reserved(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine, default_output_tokens=777)
    fresh.set_faults({"model": "gpt-a", "latency_ms": 300})
    seen = []

    def peek():
        # While the call is in flight (the mock answers after 300 ms), read what it reserved.
        deadline = time.monotonic() + 10
        while in_flight(engine, "p") == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        seen.append(charged(engine, "p"))

    t = threading.Thread(target=peek)
    t.start()
    client.chat.completions.create(model="chat", messages=MESSAGES)
    t.join()
    assert seen == [ratewise.estimate_tokens(MESSAGES) + 777]
    assert charged(engine, "p") == mock_input_tokens() + OUT


def test_a_400_is_sent_once_and_raised_as_the_sdk_error(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="chat", messages=MESSAGES, temperature=5)
    assert raised.value.status_code == 400
    assert received(fresh, "gpt-a") == 1  # never retried
    assert charged(engine, "p") == 0  # the provider did no work: refunded
    assert charged(engine, "p", "requests") == 1
    assert in_flight(engine, "p") == 0


def test_a_529_storm_on_the_primary_loses_nothing(fresh):
    engine = two()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    fresh.set_faults({"model": "gpt-a", "status": 529, "count": 1000})
    for _ in range(30):
        completion = client.chat.completions.create(model="chat", messages=MESSAGES, max_completion_tokens=50)
        assert completion.model == "gpt-b"
    assert statuses(fresh, "gpt-a").get("529", 0) <= 10
    assert statuses(fresh, "gpt-a").get("200", 0) == 0
    assert fresh.stats()["models"]["gpt-b"]["ok"] == 30
    assert in_flight(engine, "east") == 0 and in_flight(engine, "west") == 0


def test_a_429_with_retry_after_moves_to_the_other_deployment_at_once(fresh):
    engine = two()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    fresh.set_faults({"model": "gpt-a", "status": 429, "count": 100, "retry_after_s": 20})
    started = time.monotonic()
    for _ in range(5):
        assert client.chat.completions.create(model="chat", messages=MESSAGES).model == "gpt-b"
    assert time.monotonic() - started < 5  # the SDK's own retries (sleeping 20 s) are off
    assert received(fresh, "gpt-a") == 1  # held for 20 s after its 429
    assert engine.snapshot()["providers"]["east"]["held_ms"] > 10_000


def test_after_the_last_attempt_the_last_sdk_error_is_raised(fresh):
    engine = two()
    client = ratewise.wrap_openai(client_for(fresh), engine, max_attempts=2)
    fresh.set_faults([{"model": "gpt-a", "status": 500, "count": 10}, {"model": "gpt-b", "status": 500, "count": 10}])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert received(fresh, "gpt-a") + received(fresh, "gpt-b") == 2
    assert received(fresh, "gpt-a") == 1 and received(fresh, "gpt-b") == 1  # the retry went elsewhere


def test_a_refusal_is_chained_to_the_last_sdk_error(fresh):
    engine = one(manual_clock=False)
    client = ratewise.wrap_openai(client_for(fresh), engine, timeout_ms=300)
    fresh.set_faults({"model": "gpt-a", "status": 529, "count": 10})
    with pytest.raises(ratewise.NoAvailableProviderError) as raised:
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert isinstance(raised.value.__cause__, openai.InternalServerError)
    assert raised.value.__cause__.status_code == 529
    assert received(fresh, "gpt-a") == 1  # held (overload_hold_ms) past the deadline


def test_connection_refused_is_refunded_and_retried():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    engine = one()
    client = ratewise.wrap_openai(openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk"), engine)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert charged(engine, "p") == 0
    assert charged(engine, "p", "requests") == 0  # never sent: everything refunded
    assert in_flight(engine, "p") == 0


def test_a_connection_lost_after_sending_is_a_server_error_and_stays_charged():
    """docs/design.md §6: written, then no response: `server_error` (health counts it, the
    estimates stay charged), retried; here the one attempt allowed then raises."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def hang_up() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)  # the whole request arrived
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        engine = one()
        client = ratewise.wrap_openai(
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk"), engine, max_attempts=1
        )
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=50)
        assert charged(engine, "p") == ratewise.estimate_tokens(MESSAGES) + 50  # it was sent: kept
        assert in_flight(engine, "p") == 0
        assert engine.health("p") < 1.0  # a failure of the provider, unlike `interrupted`
    finally:
        server.close()


def test_is_retryable_names_what_another_attempt_can_fix():
    statuses = ["success", "client_error", "rate_limited", "forbidden", "server_error", "overloaded", "timeout",
                "interrupted"]
    assert [s for s in statuses if ratewise.is_retryable(s)] == ["rate_limited", "server_error", "overloaded",
                                                                  "timeout"]
    with pytest.raises(ratewise.InvalidArgumentError):
        ratewise.is_retryable("nonsense")


def test_the_response_headers_reach_the_engine(fresh):
    engine = one("gpt-h")
    client = ratewise.wrap_openai(client_for(fresh), engine)
    client.chat.completions.create(model="chat", messages=MESSAGES)
    # The mock's hidden token bucket (500,000) is below the configured 10,000,000: learned.
    assert quota(engine, "p", "tokens")["learned_limit"] == 500_000


def test_embeddings_settle_the_reported_usage(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    result = client.embeddings.create(model="chat", input=["a lighthouse", "a keeper"])
    assert len(result.data) == 2
    assert charged(engine, "p") == result.usage.prompt_tokens
    assert in_flight(engine, "p") == 0


# -- streams -----------------------------------------------------------------------------------


def test_a_stream_settles_its_usage_and_hides_the_usage_chunk(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    chunks = list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk the wrapper asked for is hidden
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.count("tok") == OUT
    assert charged(engine, "p") == mock_input_tokens() + OUT  # usage reported, not the estimate
    assert in_flight(engine, "p") == 0


def test_a_caller_who_asked_for_usage_gets_the_usage_chunk(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    chunks = list(client.chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == OUT
    assert charged(engine, "p") == mock_input_tokens() + OUT


def test_a_stream_is_a_context_manager(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    with client.chat.completions.create(model="chat", messages=MESSAGES, stream=True) as stream:
        n = sum(1 for _ in stream)
    assert n == OUT + 2
    assert charged(engine, "p") == mock_input_tokens() + OUT
    assert stream.response.status_code == 200


def test_a_stream_cut_midway_is_charged_not_refunded(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    fresh.set_faults({"model": "gpt-a", "cut_stream_after": 3, "count": 1})
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True, max_completion_tokens=300):
            got.append(chunk)
    assert len(got) == 3
    assert received(fresh, "gpt-a") == 1  # no retry after a chunk reached the caller
    # interrupted without usage: the estimates stay charged
    assert charged(engine, "p") == ratewise.estimate_tokens(MESSAGES) + 300
    assert engine.health("p") == 1.0
    assert in_flight(engine, "p") == 0


def test_a_stream_cut_before_its_first_chunk_is_retried(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    fresh.set_faults({"model": "gpt-a", "cut_stream_after": 0, "count": 1})
    chunks = list(client.chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, max_completion_tokens=300))
    assert len(chunks) == OUT + 2
    stats = fresh.stats()["models"]["gpt-a"]
    assert stats["streams"] == 2 and stats["streams_cut"] == 1
    # the cut attempt keeps its estimates; the second settles what was reported
    assert charged(engine, "p") == (ratewise.estimate_tokens(MESSAGES) + 300) + (mock_input_tokens() + OUT)
    assert charged(engine, "p", "requests") == 2


def test_an_abandoned_stream_settles_interrupted(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    stream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True, max_completion_tokens=300)
    next(stream)
    assert in_flight(engine, "p") == 1
    del stream
    collect()
    assert in_flight(engine, "p") == 0
    assert charged(engine, "p") == ratewise.estimate_tokens(MESSAGES) + 300  # no usage seen: estimates


def test_a_stream_closed_early_settles_interrupted(fresh):
    engine = one()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    with client.chat.completions.create(model="chat", messages=MESSAGES, stream=True, max_completion_tokens=300) as s:
        next(s)
    assert in_flight(engine, "p") == 0
    assert charged(engine, "p") == ratewise.estimate_tokens(MESSAGES) + 300
    assert engine.health("p") == 1.0
    with pytest.raises(StopIteration):
        next(s)


def test_a_stream_refused_with_529_moves_elsewhere(fresh):
    engine = two()
    client = ratewise.wrap_openai(client_for(fresh), engine)
    fresh.set_faults({"model": "gpt-a", "status": 529, "count": 5})
    chunks = list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    assert chunks[0].model == "gpt-b"
    assert received(fresh, "gpt-a") == 1


# -- async -------------------------------------------------------------------------------------


def test_async_completion_and_stream(fresh):
    engine = one()

    async def main():
        async with async_client_for(fresh) as sdk:
            client = ratewise.wrap_openai(sdk, engine)
            assert isinstance(client, ratewise.openai.AsyncRatewiseOpenAI)
            completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
            stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            chunks = [c async for c in stream]
            embedding = await client.embeddings.create(model="chat", input="a lighthouse")
            return completion, chunks, embedding

    completion, chunks, embedding = asyncio.run(main())
    assert completion.usage.completion_tokens == OUT
    assert all(c.choices for c in chunks)
    assert charged(engine, "p") == 2 * (mock_input_tokens() + OUT) + embedding.usage.prompt_tokens
    assert in_flight(engine, "p") == 0


def test_async_529_storm_with_concurrent_calls_loses_nothing(fresh):
    engine = two()
    fresh.set_faults({"model": "gpt-a", "status": 529, "count": 1000})

    async def main():
        sdk = async_client_for(fresh)
        client = ratewise.wrap_openai(sdk, engine)
        gate = asyncio.Semaphore(8)  # 8 calls in flight: at most 8 can meet the storm at once

        async def call():
            async with gate:
                return await client.chat.completions.create(model="chat", messages=MESSAGES)

        try:
            return await asyncio.gather(*[call() for _ in range(40)])
        finally:
            await sdk.close()

    results = asyncio.run(main())
    assert len(results) == 40 and all(r.model == "gpt-b" for r in results)
    assert statuses(fresh, "gpt-a").get("529", 0) <= 10
    assert in_flight(engine, "east") == 0 and in_flight(engine, "west") == 0


def test_async_cut_stream_and_abandoned_stream(fresh):
    engine = one()
    fresh.set_faults({"model": "gpt-a", "cut_stream_after": 3, "count": 1})

    async def main():
        async with async_client_for(fresh) as sdk:
            client = ratewise.wrap_openai(sdk, engine)
            with pytest.raises(openai.APIConnectionError):
                stream = await client.chat.completions.create(
                    model="chat", messages=MESSAGES, stream=True, max_completion_tokens=300)
                async for _ in stream:
                    pass
            async with await client.chat.completions.create(
                    model="chat", messages=MESSAGES, stream=True, max_completion_tokens=300) as stream:
                await stream.__anext__()

    asyncio.run(main())
    assert charged(engine, "p") == 2 * (ratewise.estimate_tokens(MESSAGES) + 300)
    assert in_flight(engine, "p") == 0


def test_async_400_is_raised_unchanged(fresh):
    engine = one()

    async def main():
        async with async_client_for(fresh) as sdk:
            client = ratewise.wrap_openai(sdk, engine)
            await client.chat.completions.create(model="chat", messages=MESSAGES, temperature=5)

    with pytest.raises(openai.BadRequestError):
        asyncio.run(main())
    assert received(fresh, "gpt-a") == 1
    assert charged(engine, "p") == 0


def test_importing_ratewise_imports_no_sdk():
    import subprocess
    import sys

    code = "import sys, ratewise, ratewise.openai, ratewise.anthropic; " \
           "print(any(m in sys.modules for m in ('openai', 'anthropic', 'httpx', 'httpx2')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
