"""Typed use of ratewise's public API, checked with ``mypy --strict`` and pyright strict.

Never run: it is read by the type checkers only (see README.md beside it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import List, Optional

import anthropic
import openai
from anthropic.types import Message
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

import ratewise
from ratewise.anthropic import AsyncRatewiseAnthropic, MessageStream, RatewiseAnthropic
from ratewise.openai import AsyncChatCompletionStream, AsyncRatewiseOpenAI, ChatCompletionStream, RatewiseOpenAI

CONFIG = {
    "providers": [{"name": "gpt-4o", "model": "gpt-4o-mini", "quotas": [{"dimension": "tokens", "limit": 150000}]}],
    "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-4o"}]}],
}


def engines() -> List[ratewise.Engine]:
    clock = ratewise.ManualClock(0)
    return [
        ratewise.Engine(CONFIG),
        ratewise.Engine(CONFIG, clock=clock),
        ratewise.Engine.from_file(Path("ratewise.json")),
        ratewise.Engine.from_file("ratewise.json"),
    ]


def provider_for(engine: ratewise.Engine, prompt: str) -> str:
    tokens: int = ratewise.estimate_tokens([{"role": "user", "content": prompt}])
    with engine.acquire("chat", input_tokens=tokens, output_tokens=400, timeout_ms=5_000) as permit:
        return permit.model  # no "missing return": Permit.__exit__ returns None


def explicit(engine: ratewise.Engine) -> Optional[int]:
    permit = engine.acquire("chat", lane="batch")
    permit.complete(
        "success", latency_ms=120, input_tokens=10, output_tokens=5, headers={"x-ratelimit-limit-tokens": "1"}
    )
    decision: ratewise.Decision = permit.decision
    assert decision.model == permit.model
    return engine.remaining(permit.provider, "tokens")


async def waits(engine: ratewise.Engine) -> str:
    async with engine.acquire_async("chat", timeout_ms=30_000, input_tokens=100) as permit:
        model: str = permit.model
    pending: ratewise.PendingPermit = engine.acquire_async("chat", timeout_ms=1_000)
    second: ratewise.Permit = await pending
    second.cancel()
    task: asyncio.Task[ratewise.Permit] = asyncio.create_task(engine.acquire_async("chat", timeout_ms=1_000))
    (await task).complete("success")
    return model


def refused(engine: ratewise.Engine) -> Optional[int]:
    try:
        engine.acquire("chat")
    except ratewise.NoAvailableProviderError as err:
        skipped: List[tuple[str, str]] = err.skipped
        assert skipped or err.code == "no_available_provider"
        return err.retry_after_ms
    return None


MESSAGES: List[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


def with_openai(engine: ratewise.Engine) -> str:
    client: RatewiseOpenAI = ratewise.wrap_openai(openai.OpenAI(), engine, lane="normal", timeout_ms=10_000)
    completion: ChatCompletion = client.chat.completions.create(
        model="chat", messages=MESSAGES, max_completion_tokens=200
    )
    stream: ChatCompletionStream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    with stream:
        for chunk in stream:
            first: ChatCompletionChunk = chunk
            print(first.choices)
    vectors: CreateEmbeddingResponse = client.embeddings.create(model="embed", input=["a", "b"])
    print(len(vectors.data), client.with_options(timeout=5.0).engine is engine)
    return completion.choices[0].message.content or ""


async def with_async_openai(engine: ratewise.Engine) -> int:
    client: AsyncRatewiseOpenAI = ratewise.wrap_openai(openai.AsyncOpenAI(), engine, capability="chat")
    completion: ChatCompletion = await client.chat.completions.create(messages=MESSAGES)
    stream: AsyncChatCompletionStream = await client.chat.completions.create(messages=MESSAGES, stream=True)
    async with stream:
        async for chunk in stream:
            print(chunk.id)
    vectors = await client.embeddings.create(input="a")
    return len(vectors.data) + len(completion.choices)


def with_anthropic(engine: ratewise.Engine) -> str:
    client: RatewiseAnthropic = ratewise.wrap_anthropic(anthropic.Anthropic(), engine, max_attempts=2)
    message: Message = client.messages.create(
        model="chat", max_tokens=512, messages=[{"role": "user", "content": "Hello"}]
    )
    for event in client.messages.create(
        model="chat", max_tokens=512, messages=[{"role": "user", "content": "Hello"}], stream=True
    ):
        print(event.type)
    with client.messages.stream(model="chat", max_tokens=512, messages=[{"role": "user", "content": "Hi"}]) as stream:
        proxied: MessageStream = stream
        text = "".join(proxied.text_stream)
        final: Message = stream.get_final_message()
    print(final.usage.output_tokens, message.usage.input_tokens)
    return text


async def with_async_anthropic(engine: ratewise.Engine) -> str:
    client: AsyncRatewiseAnthropic = ratewise.wrap_anthropic(anthropic.AsyncAnthropic(), engine)
    message = await client.messages.create(model="chat", max_tokens=64, messages=[{"role": "user", "content": "Hi"}])
    async with client.messages.stream(model="chat", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]) as s:
        parts = [text async for text in s.text_stream]
        await s.until_done()
    return "".join(parts) + message.id
