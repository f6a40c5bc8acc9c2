"""A typed user of the public API: `mypy --strict` (CI) must find nothing to report."""

from pathlib import Path

import ratewise


def first_provider(engine: ratewise.Engine) -> str:
    # `Permit.__exit__` returns None: no "missing return statement" after the with block.
    with engine.acquire("chat", input_tokens=ratewise.estimate_tokens([{"role": "user", "content": "hi"}])) as p:
        return p.model


async def answer(engine: ratewise.Engine) -> str:
    async with engine.acquire_async("chat", timeout_ms=1_000) as permit:
        return permit.provider


async def awaited(engine: ratewise.Engine) -> int:
    permit = await engine.acquire_async("chat", timeout_ms=1_000)
    permit.complete("interrupted", output_tokens=3)
    return permit.id


def load() -> ratewise.Engine:
    return ratewise.Engine.from_file(Path("ratewise.json"))
