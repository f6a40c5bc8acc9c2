"""``Engine.acquire_async``: a waiter granted by the engine, delivered to the event loop.

The engine calls back from whichever thread grants or expires the ticket (its timer thread, or
a thread completing another permit); the callback hands the outcome to the loop with
``call_soon_threadsafe``. Cancelling the awaiting task withdraws the ticket, or cancels the
permit if it was granted meanwhile, so no reservation is left behind.
"""

from __future__ import annotations

import asyncio
import collections.abc
from types import TracebackType
from typing import TYPE_CHECKING, Any, Coroutine, Generator, List, Optional, Type

from .errors import UnknownPermitError

if TYPE_CHECKING:
    from ._native import Permit


def _settle(future: "asyncio.Future[Any]", permit: Any, error: Optional[BaseException]) -> None:
    if future.done():
        # The task was cancelled; `acquire` below has withdrawn the ticket or cancelled the permit.
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(permit)


class PendingPermit(collections.abc.Coroutine):  # type: ignore[type-arg]
    """What ``engine.acquire_async(...)`` returns: a coroutine resolving to the ``Permit``
    (``await`` it, or give it to ``asyncio.run`` / ``create_task``), and an async context manager:
    ``async with engine.acquire_async(...) as permit:`` settles the permit on the way out exactly
    as ``with permit:`` does (success, the exception's status, or a cancel).
    """

    __slots__ = ("_coro", "_permit")

    def __init__(self, coro: "Coroutine[Any, Any, Permit]") -> None:
        self._coro = coro
        self._permit: Optional[Permit] = None

    def __await__(self) -> "Generator[Any, None, Permit]":
        return self._coro.__await__()

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    async def __aenter__(self) -> Permit:
        self._permit = await self._coro
        return self._permit

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._permit is not None:
            self._permit.__exit__(exc_type, exc, tb)


def acquire(
    engine: Any,
    capability: str,
    timeout_ms: int,
    lane: Optional[str],
    input_tokens: int,
    output_tokens: int,
    exclude: Optional[List[str]],
) -> PendingPermit:
    return PendingPermit(_acquire(engine, capability, timeout_ms, lane, input_tokens, output_tokens, exclude))


async def _acquire(
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
