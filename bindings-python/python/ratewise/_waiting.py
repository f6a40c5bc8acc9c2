"""``Engine.acquire_async``: a waiter granted by the engine, delivered to the event loop.

The engine calls back from whichever thread grants or expires the ticket (its timer thread, or
a thread completing another permit); the callback hands the outcome to the loop with
``call_soon_threadsafe``. Cancelling the awaiting task withdraws the ticket, or cancels the
permit if it was granted meanwhile, so no reservation is left behind.
"""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from .errors import UnknownPermitError


def _settle(future: "asyncio.Future[Any]", permit: Any, error: Optional[BaseException]) -> None:
    if future.done():
        # The task was cancelled; `acquire` below has withdrawn the ticket or cancelled the permit.
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(permit)


async def acquire(
    engine: Any,
    capability: str,
    timeout_ms: int,
    lane: Optional[str],
    input_tokens: int,
    output_tokens: int,
    exclude: Optional[List[str]],
) -> Any:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    ticket = engine._enqueue_async(
        loop, future, _settle, capability, timeout_ms, lane, input_tokens, output_tokens, exclude
    )
    try:
        return await future
    except asyncio.CancelledError:
        try:
            engine.cancel(ticket)
        except UnknownPermitError:
            pass  # it expired meanwhile: nothing is held
        raise
