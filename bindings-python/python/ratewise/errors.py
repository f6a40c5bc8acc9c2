"""Exceptions raised by ratewise. Every one has a stable ``code``, the same string in every
language ratewise ships to (Rust ``Error::code()``, Node ``err.code``, C ``RW_RESULT_*``).

Bad input (a refused configuration, an invalid argument, an unknown name) also subclasses
``ValueError``. Every exception pickles.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

__all__ = [
    "RatewiseError",
    "InvalidConfigError",
    "InvalidArgumentError",
    "UnknownCapabilityError",
    "UnknownProviderError",
    "UnknownPermitError",
    "NoAvailableProviderError",
    "StoreUnavailableError",
    "StoreConflictError",
]


class RatewiseError(Exception):
    """Base class of every ratewise error; ``code`` is the stable error code."""

    code: str = "ratewise_error"

    def __init__(self, message: str = "", code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __reduce__(self):  # type: ignore[override]
        if type(self).code != self.code:
            return (type(self), (self.message, self.code))
        return (type(self), (self.message,))


class InvalidConfigError(RatewiseError, ValueError):
    """The configuration was refused; the message names the JSON path."""

    code = "invalid_config"


class InvalidArgumentError(RatewiseError, ValueError):
    """An argument was out of its domain (an unknown lane or status, a negative count...)."""

    code = "invalid_argument"


class UnknownCapabilityError(RatewiseError, ValueError):
    """No capability of that name is configured."""

    code = "unknown_capability"


class UnknownProviderError(RatewiseError, ValueError):
    """No provider of that name is registered."""

    code = "unknown_provider"


class UnknownPermitError(RatewiseError, ValueError):
    """The permit was already completed, cancelled, or has expired."""

    code = "unknown_permit"


class NoAvailableProviderError(RatewiseError):
    """No provider can take the request now.

    ``retry_after_ms`` is the earliest time from now at which one is predicted to be ready
    (``None`` when nothing is predictable); ``skipped`` lists every provider of the capability
    with its reason, as ``(provider, reason)`` pairs.
    """

    code = "no_available_provider"

    def __init__(
        self,
        message: str = "",
        retry_after_ms: Optional[int] = None,
        skipped: Optional[List[Tuple[str, str]]] = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.skipped: List[Tuple[str, str]] = [tuple(s) for s in (skipped or [])]  # type: ignore[misc]

    def __reduce__(self):  # type: ignore[override]
        return (type(self), (self.message, self.retry_after_ms, self.skipped))


class StoreUnavailableError(RatewiseError):
    """The shared store could not be reached and the configuration says to fail closed."""

    code = "store_unavailable"


class StoreConflictError(RatewiseError):
    """The shared store holds state written with a different configuration."""

    code = "store_conflict"
