"""What an exception raised inside ``with engine.acquire(...) as permit:`` says about the call.

The SDKs' errors carry the HTTP status (``status_code`` on openai and anthropic errors,
``status`` on some clients, ``response.status_code`` on httpx errors) and the response and its
headers; their timeouts are classes whose name contains ``Timeout`` (``httpx.TimeoutException``,
``openai.APITimeoutError``).

Transport failures are told apart by *when* they happened, walking the exception and its
``__cause__`` chain (the SDKs wrap httpx errors in ``APIConnectionError``):

- before anything was sent (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``, a proxy or
  URL error, a refused connection, a certificate that does not verify): the permit is
  cancelled and every reservation refunded (a ``ConnectTimeout`` completes ``timeout``, a sign
  the provider is unreachable);
- after the request may have reached the provider (``RemoteProtocolError`` such as an
  incomplete chunked read, ``ReadError``, ``WriteError``, a reset connection, a body that does
  not decode, or an SDK ``APIConnectionError`` whose cause is unknown): the permit completes
  ``interrupted``, so the estimates stay charged. The provider may have charged the call, and
  ratewise never refunds what a provider may have charged.

An SDK error that arrives on a 2xx response (an ``event: error`` in the middle of an Anthropic
stream, a body that does not validate) also completes ``interrupted``. Anything else (a bug in
the block, ``KeyboardInterrupt``) means nothing is known to have reached the provider: cancel.

Names are matched on the class hierarchy, so the same rules hold for ``httpx``, ``httpx2`` and
any client that follows their naming, and nothing here imports them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, cast

from ._native import status_from_error_event, status_from_http

# Class names (anywhere in an exception's MRO) of transport failures by phase.
_BEFORE_SENT = frozenset({
    "ConnectError",
    "PoolTimeout",
    "UnsupportedProtocol",
    "ProxyError",
    "InvalidURL",
    "LocalProtocolError",
    "ConnectionRefusedError",
    "SSLCertVerificationError",
    "ClientConnectorError",  # aiohttp
})
_CONNECT_TIMEOUT = frozenset({"ConnectTimeout"})
_AFTER_SENT = frozenset({
    "RemoteProtocolError",
    "ReadError",
    "WriteError",
    "CloseError",
    "DecodingError",
    "ProtocolError",
    "NetworkError",
    "TransportError",
    "IncompleteRead",
    "EndOfStream",
    "BrokenResourceError",
    "ClosedResourceError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "BrokenPipeError",
    "ChunkedEncodingError",  # requests
    "ServerDisconnectedError",  # aiohttp
    "ClientPayloadError",  # aiohttp
})
_SDK_CONNECTION = frozenset({"APIConnectionError"})
# Error types a provider sends inside a 200 (an SSE `event: error`) that mean it did no work.
def _status_code(exc: BaseException) -> Optional[int]:
    for candidate in (getattr(exc, "status_code", None), getattr(exc, "status", None)):
        if isinstance(candidate, int) and not isinstance(candidate, bool):
            return candidate
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return None


def _error_type(exc: BaseException) -> Optional[str]:
    """The error body's type (OpenAI: {"error": {"type": ...}}; Anthropic: {"error": {"type": ...}})."""
    body: Any = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner: Any = cast(Dict[str, Any], body).get("error", body)
        if isinstance(inner, dict):
            fields = cast(Dict[str, Any], inner)
            kind: Any = fields.get("type") or fields.get("code")
            if isinstance(kind, str):
                return kind
    return None


# The names the wrappers use (ratewise._wrap).
status_code = _status_code
error_type = _error_type


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or any("Timeout" in cls.__name__ for cls in type(exc).__mro__)


def _chain(exc: BaseException) -> List[BaseException]:
    """``exc`` and its explicit causes (``raise ... from err``), as the SDKs and httpx chain them."""
    seen: List[BaseException] = []
    current: Optional[BaseException] = exc
    while current is not None and len(seen) < 16 and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__
    return seen


def transport_phase(exc: BaseException) -> Optional[str]:
    """``"before_sent"``, ``"connect_timeout"``, ``"timeout"``, ``"after_sent"`` or ``None``.

    SDK wrappers (``APIConnectionError``, ``APITimeoutError``) are looked through to their
    cause; the first other exception in the chain whose class is recognised decides. An SDK
    connection error with no recognised cause counts as ``"timeout"`` when it is a timeout
    class, else ``"after_sent"`` (conservative: the request may have reached the provider).
    """
    sdk: Optional[BaseException] = None
    for e in _chain(exc):
        names = {cls.__name__ for cls in type(e).__mro__}
        if names & _SDK_CONNECTION:
            sdk = sdk or e
            continue
        if names & _CONNECT_TIMEOUT:
            return "connect_timeout"
        if names & _BEFORE_SENT:
            return "before_sent"
        if _is_timeout(e):
            return "timeout"
        if names & _AFTER_SENT:
            return "after_sent"
    if sdk is not None:
        return "timeout" if _is_timeout(sdk) else "after_sent"
    return None


def status_of_response_error(exc: BaseException, code: int) -> str:
    """The outcome status of an SDK error that carries HTTP status ``code``."""
    if 200 <= code < 300:
        # An error inside a successful response: the provider answered, the call did not finish.
        return "interrupted"
    return status_from_http(code, _error_type(exc))


def event_error_status(exc: BaseException) -> Optional[str]:
    """For an error event received on a 2xx response before any data: its class by its error
    type, as the core decides it in every language (``overloaded_error`` -> ``overloaded``...),
    else ``None`` (no type: a body that does not parse)."""
    return status_from_error_event(_error_type(exc))


def outcome_from_exception(exc: BaseException) -> Optional[Tuple[str, Any]]:
    """``(status, headers)`` to complete the permit with, or ``None`` to cancel it."""
    code = _status_code(exc)
    if code is not None and 100 <= code <= 599:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        return status_of_response_error(exc, code), headers
    phase = transport_phase(exc)
    if phase == "after_sent":
        return "interrupted", None
    if phase == "before_sent":
        return None
    if phase in ("timeout", "connect_timeout") or _is_timeout(exc):
        return "timeout", None
    return None
