"""``Engine.acquire_async``: a waiter granted by the engine, delivered to the event loop.

The engine calls back from whichever thread grants or expires the ticket (its timer thread, or
a thread completing another permit); the callback hands the outcome to the loop with
``call_soon_threadsafe``. Cancelling the awaiting task withdraws the ticket, or cancels the
permit if it was granted meanwhile, so no reservation is left behind.

``engine.acquire_async(...)`` returns a :class:`PendingPermit` at once; nothing is queued until
it is awaited or entered.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from collections.abc import Coroutine, Generator
from threading import get_ident
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Type, Union, overload

from .errors import UnknownPermitError

if TYPE_CHECKING:
    from ._native import Engine, Permit

__all__ = ["PendingPermit"]


class _Delivery:
    """What the engine is given as the event loop: it hands an outcome over with
    ``call_soon_threadsafe``. An outcome the engine decides while it is still enqueueing (a
    permit free at once), on the loop's own thread, is settled on the spot, so awaiting it
    costs no trip through the event loop; any other is scheduled on the loop."""

    __slots__ = ("loop", "thread", "enqueueing")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = get_ident()
        self.enqueueing = True

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Any:
        if self.enqueueing and get_ident() == self.thread:
            callback(*args)
            return None
        return self.loop.call_soon_threadsafe(callback, *args)


def _settle(future: "asyncio.Future[Any]", permit: Any, error: Optional[BaseException]) -> None:
    if future.done():
        # The task was cancelled; `_wait` below has withdrawn the ticket or cancelled the permit.
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(permit)


class PendingPermit(Coroutine[Any, Any, "Permit"]):
    """A permit being waited for: await it, or use it as an async context manager.

    >>> import asyncio, ratewise
    >>> engine = ratewise.Engine({
    ...     "providers": [{"name": "gpt-4o", "quotas": [{"dimension": "requests", "limit": 10}]}],
    ...     "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-4o"}]}],
    ... })
    >>> async def main() -> str:
    ...     async with engine.acquire_async("chat", timeout_ms=1_000) as permit:
    ...         return permit.provider  # settled as a success on leaving the block
    >>> asyncio.run(main())
    'gpt-4o'
    >>> async def plain() -> None:
    ...     permit = await engine.acquire_async("chat", timeout_ms=1_000)
    ...     permit.complete("success", input_tokens=10, output_tokens=5)
    >>> asyncio.run(plain())

    Leaving the ``async with`` block settles the permit exactly as ``with engine.acquire(...)``
    does (a success with the estimates, or what the exception says: see ``ratewise._context``).
    Cancelling the task while it waits withdraws the request; nothing stays reserved.

    It is a coroutine (``asyncio.run``, ``asyncio.create_task`` and ``asyncio.gather`` take it
    as they took the coroutine ``acquire_async`` used to return), so it is single use: awaiting
    or entering it a second time raises ``RuntimeError``. Nothing is queued until it is first
    awaited or entered; one that never is holds nothing.
    """

    __slots__ = ("_engine", "_capability", "_timeout_ms", "_lane", "_input_tokens", "_output_tokens",
                 "_exclude", "_coroutine", "_permit")

    def __init__(
        self,
        engine: "Engine",
        capability: str,
        timeout_ms: int,
        lane: Optional[str],
        input_tokens: int,
        output_tokens: int,
        exclude: Optional[List[str]],
    ) -> None:
        self._engine = engine
        self._capability = capability
        self._timeout_ms = timeout_ms
        self._lane = lane
        self._input_tokens = input_tokens
        self._output_tokens = output_tokens
        self._exclude = exclude
        self._coroutine: Optional[Coroutine[Any, Any, Permit]] = None
        self._permit: Optional[Permit] = None

    def __repr__(self) -> str:
        return f"PendingPermit(capability={self._capability!r}, timeout_ms={self._timeout_ms})"

    async def _wait(self) -> "Permit":
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Permit] = loop.create_future()
        enqueue = getattr(self._engine, "_enqueue_async")
        delivery = _Delivery(loop)
        try:
            ticket = enqueue(
                delivery, future, _settle, self._capability, self._timeout_ms, self._lane,
                self._input_tokens, self._output_tokens, self._exclude,
            )
        finally:
            delivery.enqueueing = False
        try:
            return await future
        except asyncio.CancelledError:
            try:
                self._engine.cancel(ticket)
            except UnknownPermitError:
                pass  # it expired meanwhile: nothing is held
            raise

    def _started(self) -> Coroutine[Any, Any, "Permit"]:
        if self._coroutine is None:
            self._coroutine = self._wait()
        return self._coroutine

    # The coroutine protocol, delegated to the one wait this object stands for.
    def __await__(self) -> Generator[Any, None, "Permit"]:
        return self._started().__await__()

    def send(self, value: Any, /) -> Any:
        return self._started().send(value)

    @overload
    def throw(
        self, typ: Type[BaseException], val: Union[BaseException, object] = None,
        tb: Optional[TracebackType] = None, /,
    ) -> Any: ...
    @overload
    def throw(self, typ: BaseException, val: None = None, tb: Optional[TracebackType] = None, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Optional[TracebackType] = None, /) -> Any:
        if val is None and tb is None:
            return self._started().throw(typ)
        return self._started().throw(typ, val, tb)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()

    async def __aenter__(self) -> "Permit":
        self._permit = await self._started()
        return self._permit

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        permit = self._permit
        if permit is not None:
            self._permit = None
            permit.__exit__(exc_type, exc, traceback)


def acquire(
    engine: "Engine",
    capability: str,
    timeout_ms: int,
    lane: Optional[str],
    input_tokens: int,
    output_tokens: int,
    exclude: Optional[List[str]],
) -> PendingPermit:
    """Called by ``Engine.acquire_async``: the pending permit, not yet queued."""
    return PendingPermit(engine, capability, timeout_ms, lane, input_tokens, output_tokens, exclude)
