"""The attempt loop shared by ``ratewise.openai`` and ``ratewise.anthropic``.

One call through a wrapper is: acquire a permit in the lane (waiting at most until the call's
deadline), send with ``model=permit.model`` on a client whose own retries are off, and settle.
A failure is settled as what it says (``failure`` below) and, when another attempt can help,
tried again: the engine then routes around the provider (a 429's retry-after or a 529 holds it;
a failed provider is excluded from the next acquire when another one can take the call at once).

Nothing here imports an SDK.
"""

from __future__ import annotations

# Arguments are checked at run time for callers that do not type-check.
# pyright: reportUnnecessaryIsInstance=false

from time import monotonic
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar, cast

from ._context import error_type, event_error_status, status_code, transport_phase
from ._native import Engine, Permit, estimate_tokens, is_retryable, status_from_http
from .errors import InvalidArgumentError, NoAvailableProviderError, UnknownPermitError

T = TypeVar("T")


class Policy:
    """What one wrapped client was configured with (immutable)."""

    __slots__ = ("engine", "capability", "lane", "timeout_s", "max_attempts", "default_output_tokens")

    def __init__(
        self,
        engine: Engine,
        capability: Optional[str],
        lane: Optional[str],
        timeout_ms: int,
        max_attempts: int,
        default_output_tokens: int,
    ) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(f"engine must be a ratewise.Engine, not {type(engine).__name__}")
        if capability is not None and not isinstance(capability, str):
            raise TypeError("capability must be a str (a capability of the engine's configuration) or None")
        if lane is not None and not isinstance(lane, str):
            raise TypeError("lane must be a str or None")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 0:
            raise ValueError(f"timeout_ms must be an int >= 0, not {timeout_ms!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, not {max_attempts!r}")
        if isinstance(default_output_tokens, bool) or not isinstance(default_output_tokens, int) \
                or default_output_tokens < 0:
            raise ValueError(f"default_output_tokens must be an int >= 0, not {default_output_tokens!r}")
        self.engine = engine
        self.capability = capability
        self.lane = lane
        self.timeout_s = timeout_ms / 1000.0
        self.max_attempts = max_attempts
        self.default_output_tokens = default_output_tokens

    def capability_for(self, model: Any, method: str) -> str:
        if self.capability is not None:
            return self.capability
        if isinstance(model, str):
            return model
        raise TypeError(
            f"{method}() needs model= naming a ratewise capability, or wrap the client with capability=..."
        )


def elapsed_ms(t0: float) -> int:
    return int((monotonic() - t0) * 1000.0)


def failure(exc: BaseException, response_seen: bool) -> Tuple[Optional[str], Any, bool]:
    """``(status, headers, retry)`` for an attempt that raised ``exc``; status ``None`` = cancel.

    ``response_seen``: the provider had already answered 200 (an error while reading the first
    chunk of a stream).
    """
    code = status_code(exc)
    if code is not None and 100 <= code <= 599 and not 200 <= code < 300:
        status = status_from_http(code, error_type(exc))
        response = getattr(exc, "response", None)
        return status, getattr(response, "headers", None), is_retryable(status)
    # No HTTP response: classified as docs/design.md §6 says, as the Node wrapper and the gateway do.
    phase = transport_phase(exc)
    if phase == "before_sent":
        return None, None, True  # nothing reached the provider: refund, try again
    if phase == "timeout" or phase == "connect_timeout":
        return "timeout", None, True
    if phase == "after_sent":
        if response_seen:
            return "interrupted", None, True  # the 200 came, the first chunk did not reach the caller
        return "server_error", None, True  # lost after sending: keep the estimates, tell health
    if code is not None or response_seen:
        # An error inside a 200 (an SSE error event, a body that does not parse).
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        event = event_error_status(exc)
        if event is not None:
            return event, headers, is_retryable(event)
        return "interrupted", headers, False
    if isinstance(exc, Exception):
        return None, None, False  # a bad argument or a bug before sending: refund, raise
    # KeyboardInterrupt, a cancelled task...: the request may be on the wire.
    return "interrupted", None, False


def settle(permit: Permit, status: Optional[str], headers: Any, t0: float) -> None:
    """Complete (or cancel, when ``status`` is None) ``permit``; an expired permit is ignored."""
    if status is None:
        try:
            permit.cancel()
        except UnknownPermitError:
            pass  # expired (permit_ttl_ms): its charges stand
    else:
        permit._settle(status, elapsed_ms(t0), None, None, None, None, headers)


def _remaining_ms(deadline: float) -> int:
    return int((deadline - monotonic()) * 1000.0)


def acquire(
    policy: Policy,
    capability: str,
    input_tokens: int,
    output_tokens: int,
    deadline: float,
    tried: Optional[List[str]],
    last: Optional[BaseException],
) -> Permit:
    engine = policy.engine
    lane = policy.lane
    try:
        try:
            # A permit free now, without queueing (a waiting acquire costs several times more);
            # a non-waiting acquire obeys the waiting queue's order, so it never jumps the line.
            # On a retry: another provider that can take it now, rather than the one that failed.
            return engine.acquire(
                capability, lane=lane, input_tokens=input_tokens, output_tokens=output_tokens, exclude=tried
            )
        except NoAvailableProviderError:
            pass
        remaining = _remaining_ms(deadline)
        if remaining <= 0:
            return engine.acquire(capability, lane=lane, input_tokens=input_tokens, output_tokens=output_tokens)
        return engine.acquire(
            capability, lane=lane, input_tokens=input_tokens, output_tokens=output_tokens, timeout_ms=remaining
        )
    except NoAvailableProviderError as refused:
        if last is not None:
            raise refused from last
        raise


async def acquire_async(
    policy: Policy,
    capability: str,
    input_tokens: int,
    output_tokens: int,
    deadline: float,
    tried: Optional[List[str]],
    last: Optional[BaseException],
) -> Permit:
    engine = policy.engine
    lane = policy.lane
    try:
        try:
            # As `acquire`: a permit free now costs no queueing and no trip through the loop.
            return engine.acquire(
                capability, lane=lane, input_tokens=input_tokens, output_tokens=output_tokens, exclude=tried
            )
        except NoAvailableProviderError:
            pass
        remaining = _remaining_ms(deadline)
        if remaining <= 0:
            return engine.acquire(capability, lane=lane, input_tokens=input_tokens, output_tokens=output_tokens)
        return await engine.acquire_async(
            capability, lane=lane, input_tokens=input_tokens, output_tokens=output_tokens, timeout_ms=remaining
        )
    except NoAvailableProviderError as refused:
        if last is not None:
            raise refused from last
        raise


def run(
    policy: Policy,
    capability: str,
    input_tokens: int,
    output_tokens: int,
    send: Callable[[Permit], T],
    seen: Optional[Callable[[], bool]] = None,
) -> Tuple[Permit, T, float]:
    """Attempt ``send(permit)`` until it returns; ``(permit, its result, send start time)``.

    ``send`` raises what the SDK raised; ``seen()`` says whether the provider had answered 200
    when it did (streams). The permit is settled on failure here, on success by the caller.
    """
    deadline = monotonic() + policy.timeout_s
    tried: Optional[List[str]] = None
    last: Optional[BaseException] = None
    attempt = 0
    while True:
        attempt += 1
        permit = acquire(policy, capability, input_tokens, output_tokens, deadline, tried, last)
        t0 = monotonic()
        try:
            return permit, send(permit), t0
        except BaseException as exc:
            status, headers, retry = failure(exc, seen() if seen is not None else False)
            settle(permit, status, headers, t0)
            if not retry or attempt >= policy.max_attempts or monotonic() >= deadline:
                raise
            last = exc
            tried = [permit.provider] if tried is None else tried + [permit.provider]


async def run_async(
    policy: Policy,
    capability: str,
    input_tokens: int,
    output_tokens: int,
    send: Callable[[Permit], Awaitable[T]],
    seen: Optional[Callable[[], bool]] = None,
) -> Tuple[Permit, T, float]:
    """``run`` for async SDK clients: waiting for a permit never blocks the event loop."""
    deadline = monotonic() + policy.timeout_s
    tried: Optional[List[str]] = None
    last: Optional[BaseException] = None
    attempt = 0
    while True:
        attempt += 1
        permit = await acquire_async(policy, capability, input_tokens, output_tokens, deadline, tried, last)
        t0 = monotonic()
        try:
            return permit, await send(permit), t0
        except BaseException as exc:
            status, headers, retry = failure(exc, seen() if seen is not None else False)
            settle(permit, status, headers, t0)
            if not retry or attempt >= policy.max_attempts or monotonic() >= deadline:
                raise
            last = exc
            tried = [permit.provider] if tried is None else tried + [permit.provider]


def complete_usage(
    permit: Permit,
    status: str,
    latency_ms: int,
    headers: Any,
    input_tokens: Optional[int],
    output_tokens: Optional[int],
    cached_input_tokens: Optional[int],
    cache_write_input_tokens: Optional[int] = None,
) -> None:
    """Complete with the usage the provider reported (``None`` = not reported). Usage that is
    not ints >= 0, or that the engine refuses (more cached than input), settles on the
    estimates; an expired permit is ignored (its charges stand). Of an httpx ``Headers``, only
    the headers the engine reads cross into it."""
    permit._settle(status, latency_ms, input_tokens, output_tokens, cached_input_tokens, cache_write_input_tokens, headers)


def as_list(value: Any) -> Any:
    """``messages`` as given, or as a list when it is a one-shot iterable (it is read twice)."""
    if value is None or isinstance(value, (list, tuple, dict, str)):
        return cast(Any, value)
    return list(value)


def int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def untyped(value: Any) -> Any:
    """``value`` as ``Any`` again (after an ``isinstance`` that narrowed it to unknown items)."""
    return value


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-like copy of ``value`` for the estimate (SDK models, tuples, bytes...)."""
    if depth > 64:
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        mapping: Dict[Any, Any] = untyped(value)
        return {str(k): _plain(v, depth + 1) for k, v in mapping.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in cast(List[Any], value)]
    if isinstance(value, (bytes, bytearray)):
        return "x" * len(cast(bytes, value))  # counted as text of its size (base64: a third more)
    dump = getattr(value, "model_dump", None) or getattr(value, "to_dict", None)
    if callable(dump):
        try:
            return _plain(dump(), depth + 1)
        except Exception:
            pass
    return str(value)


def estimate(value: Any) -> int:
    """``estimate_tokens(value)``, converting what JSON cannot hold instead of refusing it."""
    try:
        return estimate_tokens(value)
    except InvalidArgumentError:
        return estimate_tokens(_plain(value))
