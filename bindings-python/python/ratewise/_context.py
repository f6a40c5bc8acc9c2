"""What an exception raised inside ``with engine.acquire(...) as permit:`` says about the call.

The SDKs' errors carry the HTTP status (``status_code`` on openai and anthropic errors,
``status`` on some clients, ``response.status_code`` on httpx errors) and the response and its
headers; their timeouts are classes whose name contains ``Timeout`` (``httpx.TimeoutException``,
``openai.APITimeoutError``). Anything else means nothing is known to have reached the provider.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from ._native import status_from_http


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
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            kind = inner.get("type") or inner.get("code")
            if isinstance(kind, str):
                return kind
    return None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or any("Timeout" in cls.__name__ for cls in type(exc).__mro__)


# A connection that broke after the request was sent (a stream cut after its 200, a body cut
# short): the provider has the request and charged it. httpx/httpx2 name these ReadError,
# RemoteProtocolError, WriteError; http.client IncompleteRead; requests ChunkedEncodingError.
_SENT = ("ReadError", "RemoteProtocolError", "IncompleteRead", "ChunkedEncodingError", "ProtocolError")


def _chain(exc: BaseException) -> "list[BaseException]":
    out: "list[BaseException]" = []
    seen: BaseException | None = exc
    while seen is not None and seen not in out and len(out) < 16:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def _was_sent(exc: BaseException) -> bool:
    return any(cls.__name__ in _SENT for e in _chain(exc) for cls in type(e).__mro__)


def outcome_from_exception(exc: BaseException) -> Optional[Tuple[str, Any]]:
    """``(status, headers)`` to complete the permit with, or ``None`` to cancel it.

    An HTTP status gives its class; a timeout ``timeout``; a connection broken after the request
    was sent (a cut stream: the provider charged it) ``interrupted``, which keeps the tokens
    charged; anything else (a refused connection, an error in the caller's own code before the
    call) cancels: nothing is known to have reached the provider.
    """
    code = _status_code(exc)
    if code is not None and 100 <= code <= 599:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        return status_from_http(code, _error_type(exc)), headers
    if _is_timeout(exc):
        return "timeout", None
    if _was_sent(exc):
        return "interrupted", None
    return None
