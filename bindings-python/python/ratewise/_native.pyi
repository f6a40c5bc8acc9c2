# Hand-written stub of the native module, checked against the binary by mypy.stubtest in CI.
import os
from types import TracebackType
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Tuple, Type, Union

from typing_extensions import final

from ._waiting import PendingPermit

__all__ = [
    "ERROR_CODES",
    "Decision",
    "Engine",
    "ManualClock",
    "Permit",
    "__version__",
    "estimate_tokens",
    "status_from_http",
    "is_retryable",
    "status_from_error_event",
]

ERROR_CODES: list[str]
__version__: str

_Status = Union[str, int]
_Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]
_ConfigInput = Union[Mapping[str, Any], str, "os.PathLike[str]"]

@final
class ManualClock:
    def __new__(cls, start_ms: int = 0) -> ManualClock: ...
    def advance(self, ms: int) -> None: ...
    @property
    def now_ms(self) -> int: ...

@final
class Decision:
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def breakdown(self) -> Dict[str, float]: ...
    @property
    def alternatives(self) -> List[Tuple[str, float]]: ...
    @property
    def skipped(self) -> List[Tuple[str, str]]: ...

@final
class Permit:
    @property
    def id(self) -> int: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def decision(self) -> Decision: ...
    def complete(
        self,
        status: _Status,
        *,
        latency_ms: Optional[int] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        cached_input_tokens: Optional[int] = None,
        cache_write_input_tokens: Optional[int] = None,
        retry_after_ms: Optional[int] = None,
        headers: _Headers = None,
    ) -> None: ...
    def cancel(self) -> None: ...
    # The SDK wrappers' settlement (ratewise/_wrap.py), positional; not public API.
    def _settle(
        self,
        status: _Status,
        latency_ms: int,
        input_tokens: object,
        output_tokens: object,
        cached_input_tokens: object,
        cache_write_input_tokens: object,
        headers: object,
        /,
    ) -> None: ...
    def __enter__(self) -> Permit: ...
    def __exit__(
        self,
        _exc_type: Optional[Type[BaseException]] = None,
        exc: Optional[BaseException] = None,
        _traceback: Optional[TracebackType] = None,
    ) -> None: ...

@final
class Engine:
    def __new__(cls, config: _ConfigInput, *, clock: Optional[ManualClock] = None) -> Engine: ...
    @staticmethod
    def from_json(text: str, *, clock: Optional[ManualClock] = None) -> Engine: ...
    @staticmethod
    def from_file(path: Union[str, "os.PathLike[str]"], *, clock: Optional[ManualClock] = None) -> Engine: ...
    @property
    def clock(self) -> Optional[ManualClock]: ...
    def now_ms(self) -> int: ...
    def select(
        self,
        capability: str,
        *,
        lane: Optional[str] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        exclude: Optional[List[str]] = None,
    ) -> Decision: ...
    def acquire(
        self,
        capability: str,
        *,
        lane: Optional[str] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        exclude: Optional[List[str]] = None,
        timeout_ms: Optional[int] = None,
    ) -> Permit: ...
    def acquire_async(
        self,
        capability: str,
        *,
        timeout_ms: int,
        lane: Optional[str] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        exclude: Optional[List[str]] = None,
    ) -> PendingPermit: ...
    def observe(
        self,
        provider: str,
        status: _Status,
        *,
        latency_ms: int = 0,
        requests: Optional[int] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        cached_input_tokens: Optional[int] = None,
        cache_write_input_tokens: Optional[int] = None,
        retry_after_ms: Optional[int] = None,
        headers: _Headers = None,
    ) -> None: ...
    def complete(
        self,
        permit_id: int,
        status: _Status,
        *,
        latency_ms: int = 0,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        cached_input_tokens: Optional[int] = None,
        cache_write_input_tokens: Optional[int] = None,
        retry_after_ms: Optional[int] = None,
        headers: _Headers = None,
    ) -> Tuple[List[int], List[int]]: ...
    def cancel(self, permit_id: int) -> Tuple[List[int], List[int]]: ...
    def enqueue(
        self,
        capability: str,
        *,
        timeout_ms: int,
        lane: Optional[str] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        exclude: Optional[List[str]] = None,
    ) -> Tuple[int, List[int], List[int]]: ...
    def poll(self) -> Tuple[List[int], List[int]]: ...
    def next_wake(self) -> Optional[int]: ...
    def sync_headers(self, provider: str, headers: _Headers) -> None: ...
    def health(self, provider: str) -> float: ...
    def remaining(self, provider: str, dimension: str) -> Optional[int]: ...
    def circuit(self, provider: str) -> Literal["closed", "open", "half_open"]: ...
    def snapshot(self) -> Dict[str, Any]: ...
    def upsert_provider(self, provider: Union[Mapping[str, Any], str]) -> None: ...
    def upsert_capability(self, capability: Union[Mapping[str, Any], str]) -> None: ...
    def remove_provider(self, name: str) -> None: ...
    def remove_capability(self, name: str) -> None: ...

def status_from_http(code: int, error_type: Optional[str] = None) -> str: ...
def is_retryable(status: str) -> bool: ...
def status_from_error_event(error_type: Optional[str] = None) -> Optional[str]: ...
def estimate_tokens(messages: Any) -> int: ...
