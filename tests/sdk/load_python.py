#!/usr/bin/env python3
"""Load through ``ratewise.wrap_openai`` / ``wrap_anthropic`` with the real SDKs against the mock
provider (tests/mockllm, run as its own process), whose hidden limits ratewise does not know:
the ratewise configuration is 4x too generous (window "second"), so the engine must learn the
real limits from the response headers (docs/design.md §7).

Runs (N requests each, default 2,000):
  1. openai.OpenAI from 8 threads;
  2. openai.AsyncOpenAI from asyncio, 16 calls in flight;
  3. anthropic.Anthropic from 8 threads (skip with --no-anthropic).

Each run passes when:
  - 0 requests are lost (every call returns a completion),
  - at most 0.5% of the requests are answered 429 by the mock (each one retried by the wrapper),
  - the wall time is within 10% of the floor the hidden limits set: (N - burst) / rate, taken
    over every hidden bucket (requests and tokens) from the mock's configuration.

Prints a table of the figures; exits non-zero when a run fails.

    target/py-venv/bin/python tests/sdk/load_python.py [--requests 2000] [--threads 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mockllm"))

import anthropic  # noqa: E402
import openai  # noqa: E402
from mockllm import count_input_tokens  # noqa: E402

import ratewise  # noqa: E402

RATE = 200  # hidden: requests per second (per deployment)
# The asyncio run's deployment is slower: on this project's 2-core machines one event loop
# driving AsyncOpenAI tops out at ~230-270 calls/s with the bare SDK (its own CPU), so a
# 200 req/s limit would measure the SDK, not the pacing.
ASYNC_RATE = 150
TOKENS = 50_000  # hidden: tokens per second
BURST_S = 1.0
GENEROUS = 4  # ratewise's configuration is this many times too high
OUTPUT = 20  # the mock's output tokens (and the calls' max_tokens)
MAX_429_SHARE = 0.005
# The target is 1.10; CI, on a shared machine, passes a generous bound instead
# (RATEWISE_LOAD_MAX_WALL=1.5): the figure is printed either way and recorded in bench/README.md.
MAX_WALL_OVER_FLOOR = float(os.environ.get("RATEWISE_LOAD_MAX_WALL", "1.10"))

MOCK_CONFIG = {
    "models": {
        "gpt-a": {"api": "openai", "requests_per_s": RATE, "tokens_per_s": TOKENS, "burst_s": BURST_S,
                  "latency_ms": 5, "output_tokens": OUTPUT},
        "gpt-async": {"api": "openai", "requests_per_s": ASYNC_RATE, "tokens_per_s": TOKENS, "burst_s": BURST_S,
                      "latency_ms": 5, "output_tokens": OUTPUT},
        "claude-a": {"api": "anthropic", "requests_per_s": RATE, "input_tokens_per_s": TOKENS,
                     "output_tokens_per_s": TOKENS // 5, "burst_s": BURST_S, "latency_ms": 5,
                     "output_tokens": OUTPUT},
    }
}


class Mock:
    """tests/mockllm/mockllm.py in its own process (its own GIL), controlled over HTTP."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "mockllm" / "mockllm.py"), "--port", "0",
             "--config", json.dumps(MOCK_CONFIG)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("mockllm did not start")
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"

    def _call(self, method: str, path: str) -> Any:
        data = b"{}" if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> Dict[str, Any]:
        return self._call("GET", "/_mock/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("POST", "/_mock/reset")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def floor_s(model: str, n: int, need: Dict[str, int]) -> float:
    """The least wall time the hidden buckets allow for ``n`` requests of ``need`` units each."""
    cfg = MOCK_CONFIG["models"][model]
    floor = 0.0
    for dimension, key in (("requests", "requests_per_s"), ("tokens", "tokens_per_s"),
                           ("input-tokens", "input_tokens_per_s"), ("output-tokens", "output_tokens_per_s")):
        rate = cfg.get(key)
        if rate is None or dimension not in need:
            continue
        capacity = rate * cfg.get("burst_s", 1.0)
        floor = max(floor, (n * need[dimension] - capacity) / rate)
    return floor


def messages(i: int) -> List[Dict[str, str]]:
    return [{"role": "user", "content": f"Request {i}: say something short."}]


def openai_engine(model: str = "gpt-a", rate: int = RATE) -> ratewise.Engine:
    return ratewise.Engine({
        "providers": [{"name": "gpt-a-eu", "model": model, "quotas": [
            {"dimension": "requests", "limit": rate * GENEROUS, "window": "second"},
            {"dimension": "tokens", "limit": TOKENS * GENEROUS, "window": "second"},
        ]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-a-eu"}]}],
    })


def anthropic_engine() -> ratewise.Engine:
    # Anthropic limits input and output tokens separately: so does the configuration.
    return ratewise.Engine({
        "providers": [{"name": "claude-a-eu", "model": "claude-a", "quotas": [
            {"dimension": "requests", "limit": RATE * GENEROUS, "window": "second"},
            {"dimension": "input_tokens", "limit": TOKENS * GENEROUS, "window": "second", "count_cached": False},
            {"dimension": "output_tokens", "limit": TOKENS // 5 * GENEROUS, "window": "second"},
        ]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "claude-a-eu"}]}],
    })


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.lost: List[str] = []

    def success(self) -> None:
        with self.lock:
            self.ok += 1

    def failure(self, i: int, exc: BaseException) -> None:
        with self.lock:
            self.lost.append(f"request {i}: {type(exc).__name__}: {exc}"[:200])


def run_threads(n: int, threads: int, call: Any) -> Tuple[Tally, float]:
    tally = Tally()
    counter = iter(range(n))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                call(i)
                tally.success()
            except Exception as exc:  # a lost request
                tally.failure(i, exc)

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return tally, time.monotonic() - started


def openai_threads(mock: Mock, n: int, threads: int) -> Dict[str, Any]:
    engine = openai_engine()
    client = ratewise.wrap_openai(openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-load"), engine,
                                  timeout_ms=60_000)

    def call(i: int) -> None:
        completion = client.chat.completions.create(model="chat", messages=messages(i), max_tokens=OUTPUT)
        assert completion.object == "chat.completion"

    tally, wall = run_threads(n, threads, call)
    need = {"requests": 1, "tokens": count_input_tokens({"messages": messages(0)}, "openai") + OUTPUT}
    return figures(f"openai, {threads} threads", mock, "gpt-a", n, tally, wall, floor_s("gpt-a", n, need), engine)


def openai_asyncio(mock: Mock, n: int, concurrency: int) -> Dict[str, Any]:
    engine = openai_engine("gpt-async", ASYNC_RATE)
    tally = Tally()

    async def main() -> float:
        async with openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="sk-load") as sdk:
            client = ratewise.wrap_openai(sdk, engine, timeout_ms=60_000)
            counter = iter(range(n))

            async def worker() -> None:
                for i in counter:
                    try:
                        completion = await client.chat.completions.create(
                            model="chat", messages=messages(i), max_tokens=OUTPUT)
                        assert completion.object == "chat.completion"
                        tally.success()
                    except Exception as exc:
                        tally.failure(i, exc)

            started = time.monotonic()
            await asyncio.gather(*[worker() for _ in range(concurrency)])
            return time.monotonic() - started

    wall = asyncio.run(main())
    need = {"requests": 1, "tokens": count_input_tokens({"messages": messages(0)}, "openai") + OUTPUT}
    return figures(f"openai asyncio, {concurrency} in flight", mock, "gpt-async", n, tally, wall,
                   floor_s("gpt-async", n, need), engine)


def anthropic_threads(mock: Mock, n: int, threads: int) -> Dict[str, Any]:
    engine = anthropic_engine()
    client = ratewise.wrap_anthropic(anthropic.Anthropic(base_url=mock.url, api_key="sk-ant-load"), engine,
                                     timeout_ms=60_000)

    def call(i: int) -> None:
        message = client.messages.create(model="chat", max_tokens=OUTPUT, messages=messages(i))
        assert message.type == "message"

    tally, wall = run_threads(n, threads, call)
    need = {"requests": 1, "input-tokens": count_input_tokens({"messages": messages(0)}, "anthropic"),
            "output-tokens": OUTPUT}
    return figures(f"anthropic, {threads} threads", mock, "claude-a", n, tally, wall,
                   floor_s("claude-a", n, need), engine)


def figures(name: str, mock: Mock, model: str, n: int, tally: Tally, wall: float, floor: float,
            engine: ratewise.Engine) -> Dict[str, Any]:
    stats = mock.stats()["models"][model]
    too_many = stats["status"].get("429", 0)
    provider = next(iter(engine.snapshot()["providers"].values()))
    learned = {q["dimension"]: q["learned_limit"] for q in provider["quotas"]}
    result = {
        "run": name, "n": n, "ok": tally.ok, "lost": len(tally.lost), "received": stats["received"],
        "429": too_many, "429_share": too_many / n, "other_errors": sum(
            v for k, v in stats["status"].items() if k not in ("200", "429")),
        "wall_s": wall, "floor_s": floor, "ratio": wall / floor if floor > 0 else math.inf,
        "learned": learned, "lost_examples": tally.lost[:5],
    }
    result["pass"] = (result["lost"] == 0 and tally.ok == n and result["429_share"] <= MAX_429_SHARE
                      and result["ratio"] <= MAX_WALL_OVER_FLOOR)
    mock.reset()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-anthropic", action="store_true")
    args = parser.parse_args()

    mock = Mock()
    results = []
    try:
        results.append(openai_threads(mock, args.requests, args.threads))
        results.append(openai_asyncio(mock, args.requests, args.concurrency))
        if not args.no_anthropic:
            results.append(anthropic_threads(mock, args.requests, args.threads))
    finally:
        mock.stop()

    print(f"hidden limits: {RATE} req/s ({ASYNC_RATE} for asyncio), {TOKENS} tokens/s, burst {BURST_S:g} s; "
          f"ratewise configured {GENEROUS}x higher (window: second)")
    print(f"| {'run':<30} | {'ok':>5} | {'lost':>4} | {'received':>8} | {'429':>4} | {'429 %':>5} "
          f"| {'other':>5} | {'wall s':>6} | {'floor s':>7} | {'wall/floor':>10} | {'verdict':<7} |")
    print("|" + "|".join("-" * (w + 2) for w in (30, 5, 4, 8, 4, 5, 5, 6, 7, 10, 7)) + "|")
    for r in results:
        print(f"| {r['run']:<30} | {r['ok']:>5} | {r['lost']:>4} | {r['received']:>8} | {r['429']:>4} "
              f"| {100 * r['429_share']:>5.2f} | {r['other_errors']:>5} | {r['wall_s']:>6.2f} | {r['floor_s']:>7.2f} "
              f"| {r['ratio']:>10.3f} | {'pass' if r['pass'] else 'FAIL':<7} |")
    for r in results:
        print(f"{r['run']}: learned limits {r['learned']}")
        for line in r["lost_examples"]:
            print(f"  lost: {line}")
    failed = [r["run"] for r in results if not r["pass"]]
    if failed:
        print(f"FAILED: {', '.join(failed)} (need 0 lost, <= {100 * MAX_429_SHARE:g}% 429, "
              f"wall <= {MAX_WALL_OVER_FLOOR:g} x floor)")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
