#!/usr/bin/env python3
"""The wrappers' own cost per call: ``ratewise.wrap_openai`` / ``wrap_anthropic`` over the bare
SDK call, with no network (budget: <= 30 us per call in Python, docs: issue 16).

The SDK clients get an ``httpx2.Client`` whose ``MockTransport`` answers at once with a fixed
200 (a chat completion / a message, with the rate-limit headers a real provider sends, which
the wrapper hands to the engine). Bare and wrapped calls alternate one by one, each timed on
its own, and the figures are medians: a busy machine (preemption, a build next door) shows up
as outliers, which the median ignores, and drift hits both kinds alike.

    target/py-venv/bin/python bench/sdk_overhead.py [--calls 3000]

Needs ``openai`` and ``anthropic`` (and their ``httpx2``) installed next to ratewise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

import anthropic
import httpx2
import openai

import ratewise

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name three lighthouses on the coast of Brittany, one line each."},
]

OPENAI_BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-a",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Phare du Creac'h.", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 41, "completion_tokens": 9, "total_tokens": 50,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}).encode()
OPENAI_HEADERS = {
    "content-type": "application/json",
    "x-request-id": "req_bench",
    "x-ratelimit-limit-requests": "100000", "x-ratelimit-remaining-requests": "99999",
    "x-ratelimit-reset-requests": "1ms",
    "x-ratelimit-limit-tokens": "100000000", "x-ratelimit-remaining-tokens": "99999950",
    "x-ratelimit-reset-tokens": "1ms",
}
ANTHROPIC_BODY = json.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-a",
    "content": [{"type": "text", "text": "Phare du Creac'h."}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 41, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
}).encode()
ANTHROPIC_HEADERS = {
    "content-type": "application/json",
    "request-id": "req_bench",
    "anthropic-ratelimit-requests-limit": "100000", "anthropic-ratelimit-requests-remaining": "99999",
    "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z",
}


def responder(body: bytes, headers: Dict[str, str]) -> Callable[[httpx2.Request], httpx2.Response]:
    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, content=body)

    return handle


def engine_for(model: str) -> ratewise.Engine:
    # Limits far above what the run uses: every acquire is granted, every call does the full work.
    quotas = [
        {"dimension": "requests", "limit": 100_000_000, "window": "minute"},
        {"dimension": "tokens", "limit": 2_000_000_000, "window": "minute"},
        {"dimension": "concurrency", "limit": 1000},
    ]
    return ratewise.Engine({
        "providers": [{"name": "p", "model": model, "quotas": quotas}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
    })


def measure(pairs: List[Tuple[str, Callable[[], Any]]], calls: int) -> Dict[str, List[float]]:
    """us of each call of each callable, alternating between them call by call."""
    times: Dict[str, List[float]] = {name: [] for name, _ in pairs}
    clock = time.perf_counter
    for _ in range(calls):
        for name, fn in pairs:
            started = clock()
            fn()
            times[name].append((clock() - started) * 1e6)
    return times


def measure_async(pairs: List[Tuple[str, Callable[[], Any]]], calls: int) -> Dict[str, List[float]]:
    times: Dict[str, List[float]] = {name: [] for name, _ in pairs}
    clock = time.perf_counter

    async def run() -> None:
        for _ in range(calls):
            for name, fn in pairs:
                started = clock()
                await fn()
                times[name].append((clock() - started) * 1e6)

    asyncio.run(run())
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls of each kind (default 3000)")
    args = parser.parse_args()

    rows: List[Tuple[str, float, float]] = []

    # OpenAI, sync
    transport = httpx2.MockTransport(responder(OPENAI_BODY, OPENAI_HEADERS))
    sdk = openai.OpenAI(api_key="sk-bench", base_url="http://bench.invalid/v1", max_retries=0,
                        http_client=httpx2.Client(transport=transport))
    wrapped = ratewise.wrap_openai(sdk, engine_for("gpt-a"))
    bare_create = sdk.chat.completions.create
    wrapped_create = wrapped.chat.completions.create
    pairs = [
        ("bare", lambda: bare_create(model="gpt-a", messages=MESSAGES, max_completion_tokens=100)),
        ("wrapped", lambda: wrapped_create(model="chat", messages=MESSAGES, max_completion_tokens=100)),
    ]
    measure(pairs, 200)  # warm up
    got = measure(pairs, args.calls)
    rows.append(("openai chat.completions.create", statistics.median(got["bare"]), statistics.median(got["wrapped"])))

    # OpenAI, async
    async_transport = httpx2.MockTransport(responder(OPENAI_BODY, OPENAI_HEADERS))
    asdk = openai.AsyncOpenAI(api_key="sk-bench", base_url="http://bench.invalid/v1", max_retries=0,
                              http_client=httpx2.AsyncClient(transport=async_transport))
    awrapped = ratewise.wrap_openai(asdk, engine_for("gpt-a"))
    abare = asdk.chat.completions.create
    awrap = awrapped.chat.completions.create
    apairs = [
        ("bare", lambda: abare(model="gpt-a", messages=MESSAGES, max_completion_tokens=100)),
        ("wrapped", lambda: awrap(model="chat", messages=MESSAGES, max_completion_tokens=100)),
    ]
    measure_async(apairs, 200)
    got = measure_async(apairs, args.calls)
    rows.append(("AsyncOpenAI chat.completions.create", statistics.median(got["bare"]),
                 statistics.median(got["wrapped"])))

    # Anthropic, sync
    an = anthropic.Anthropic(api_key="sk-ant-bench", base_url="http://bench.invalid", max_retries=0,
                             http_client=httpx2.Client(transport=httpx2.MockTransport(
                                 responder(ANTHROPIC_BODY, ANTHROPIC_HEADERS))))
    anw = ratewise.wrap_anthropic(an, engine_for("claude-a"))
    an_bare = an.messages.create
    an_wrap = anw.messages.create
    system, turns = MESSAGES[0]["content"], MESSAGES[1:]
    pairs = [
        ("bare", lambda: an_bare(model="claude-a", max_tokens=100, messages=turns, system=system)),
        ("wrapped", lambda: an_wrap(model="chat", max_tokens=100, messages=turns, system=system)),
    ]
    measure(pairs, 200)
    got = measure(pairs, args.calls)
    rows.append(("anthropic messages.create", statistics.median(got["bare"]), statistics.median(got["wrapped"])))

    print(f"{args.calls} calls of each kind, alternating, median per call; "
          f"python {sys.version.split()[0]}, openai {openai.__version__}, anthropic {anthropic.__version__}")
    print(f"| {'call':<38} | {'bare us/call':>12} | {'wrapped us/call':>15} | {'overhead us':>11} |")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 17}|{'-' * 13}|")
    worst = 0.0
    for name, bare, wrapped_us in rows:
        worst = max(worst, wrapped_us - bare)
        print(f"| {name:<38} | {bare:>12.1f} | {wrapped_us:>15.1f} | {wrapped_us - bare:>11.1f} |")
    print(f"budget: <= 30 us per call; worst overhead {worst:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
