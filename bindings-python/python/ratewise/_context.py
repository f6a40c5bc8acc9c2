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


def outcome_from_exception(exc: BaseException) -> Optional[Tuple[str, Any]]:
    """``(status, headers)`` to complete the permit with, or ``None`` to cancel it."""
    code = _status_code(exc)
    if code is not None and 100 <= code <= 599:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        return status_from_http(code, _error_type(exc)), headers
    if _is_timeout(exc):
        return "timeout", None
    return None
