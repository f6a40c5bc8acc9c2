"""ratewise: decide, before every LLM API call, where it goes and whether it may go now.

>>> import ratewise
>>> engine = ratewise.Engine({
...     "providers": [{"name": "gpt-4o", "quotas": [{"dimension": "tokens", "limit": 150000}]}],
...     "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-4o"}]}],
... })
>>> with engine.acquire("chat", input_tokens=1200, output_tokens=400) as permit:
...     permit.provider
'gpt-4o'

With an SDK, wrap the client instead (``ratewise.openai``, ``ratewise.anthropic``): every call
then waits for its permit, goes to ``permit.model``, retries 429/529/5xx elsewhere and settles
with the reported usage::

    client = ratewise.wrap_openai(openai.OpenAI(), engine)
    client.chat.completions.create(model="chat", messages=[...], max_completion_tokens=400)

Importing ``ratewise`` imports no SDK: ``wrap_openai`` / ``wrap_anthropic`` work on the client
they are given.
"""

from ._native import Decision, Engine, ManualClock, Permit, __version__, estimate_tokens, is_retryable, status_from_http
from ._waiting import PendingPermit
from .anthropic import wrap_anthropic
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
from .openai import wrap_openai

__all__ = [
    "Decision",
    "Engine",
    "ManualClock",
    "Permit",
    "PendingPermit",
    "status_from_http",
    "is_retryable",
    "estimate_tokens",
    "wrap_openai",
    "wrap_anthropic",
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
