"""ratewise: decide, before every LLM API call, where it goes and whether it may go now.

>>> import ratewise
>>> engine = ratewise.Engine({
...     "providers": [{"name": "gpt-4o", "quotas": [{"dimension": "tokens", "limit": 150000}]}],
...     "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-4o"}]}],
... })
>>> with engine.acquire("chat", input_tokens=1200, output_tokens=400) as permit:
...     permit.provider
'gpt-4o'
"""

from ._native import Decision, Engine, ManualClock, Permit, __version__, estimate_tokens, status_from_http
from .errors import (
    InvalidArgumentError,
    InvalidConfigError,
    NoAvailableProviderError,
    RatewiseError,
    StoreConflictError,
    StoreUnavailableError,
    UnknownCapabilityError,
    UnknownPermitError,
    UnknownProviderError,
)

__all__ = [
    "Decision",
    "Engine",
    "ManualClock",
    "Permit",
    "status_from_http",
    "estimate_tokens",
    "__version__",
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
