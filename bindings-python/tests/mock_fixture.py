"""Helpers for the tests that drive the real SDKs against the mock provider (tests/mockllm).

The SDKs are optional: a test module calls ``require("openai")``, which skips the module when
the SDK is missing, unless ``RATEWISE_REQUIRE_SDKS=1`` (CI), where a missing SDK fails.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional

import pytest

MOCK_DIR = Path(__file__).resolve().parents[2] / "tests" / "mockllm"


def require(name: str) -> ModuleType:
    """The SDK module ``name``: skipped when missing, a failure when RATEWISE_REQUIRE_SDKS=1."""
    if os.environ.get("RATEWISE_REQUIRE_SDKS") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name)


def mock_server_class() -> Any:
    if str(MOCK_DIR) not in sys.path:
        sys.path.insert(0, str(MOCK_DIR))
    try:
        from mockllm import MockServer
    except ImportError:
        if os.environ.get("RATEWISE_REQUIRE_SDKS") == "1":
            raise
        pytest.skip(f"the mock provider is not there ({MOCK_DIR})")
    return MockServer


# Hidden limits of the mock: generous enough that the tests never meet them unless they mean
# to (the load script sets its own). The rate-limit headers are off except on the `-h` models:
# the engine would calibrate its quotas from them, and the tests that check exact charges need
# the levels to move only by what was charged.
MOCK_MODELS: Dict[str, Dict[str, Any]] = {
    "gpt-a": {"api": "openai", "requests_per_s": 500, "tokens_per_s": 500_000, "output_tokens": 8,
              "headers": False},
    "gpt-b": {"api": "openai", "requests_per_s": 500, "tokens_per_s": 500_000, "output_tokens": 8,
              "headers": False},
    "gpt-h": {"api": "openai", "requests_per_s": 500, "tokens_per_s": 500_000, "output_tokens": 8},
    "claude-a": {"api": "anthropic", "requests_per_s": 500, "input_tokens_per_s": 500_000,
                 "output_tokens_per_s": 100_000, "output_tokens": 8, "headers": False},
    "claude-b": {"api": "anthropic", "requests_per_s": 500, "input_tokens_per_s": 500_000,
                 "output_tokens_per_s": 100_000, "output_tokens": 8, "headers": False},
    "claude-h": {"api": "anthropic", "requests_per_s": 500, "input_tokens_per_s": 500_000,
                 "output_tokens_per_s": 100_000, "output_tokens": 8},
}


def start_mock(models: Optional[Dict[str, Dict[str, Any]]] = None) -> Any:
    return mock_server_class()({"models": models or MOCK_MODELS}).start()


def engine_config(
    deployments: List[Dict[str, str]],
    *,
    capability: str = "chat",
    token_dimension: str = "tokens",
    window: str = "day",
) -> Dict[str, Any]:
    """An engine with one provider per deployment (``{"name", "model"}``), listed in priority
    order, with a token quota (daily by default, so refill is negligible during a test and the
    remaining level shows exactly what was charged)."""
    providers = []
    entries = []
    for rank, d in enumerate(deployments):
        quotas: List[Dict[str, Any]] = [{"dimension": "requests", "limit": 100_000, "window": window}]
        if token_dimension == "split":
            quotas.append({"dimension": "input_tokens", "limit": 10_000_000, "window": window})
            quotas.append({"dimension": "output_tokens", "limit": 10_000_000, "window": window})
        else:
            quotas.append({"dimension": "tokens", "limit": 10_000_000, "window": window})
        quotas.append({"dimension": "concurrency", "limit": 64})
        providers.append({"name": d["name"], "model": d["model"], "quotas": quotas})
        entries.append({"provider": d["name"], "priority": 10 * (len(deployments) - rank)})
    return {
        "providers": providers,
        "capabilities": [{"name": capability, "providers": entries}],
    }


def make_engine(config: Dict[str, Any], manual_clock: bool = True) -> Any:
    """An engine on a manual clock (so the levels are exact: nothing refills during a test),
    or on the system clock for tests that need holds to run out in real time."""
    import ratewise

    if manual_clock:
        return ratewise.Engine(config, clock=ratewise.ManualClock(1_000_000))
    return ratewise.Engine(config)


def quota(engine: Any, provider: str, dimension: str) -> Dict[str, Any]:
    for q in engine.snapshot()["providers"][provider]["quotas"]:
        if q["dimension"] == dimension:
            return q  # type: ignore[no-any-return]
    raise KeyError(f"{provider} has no {dimension} quota")


def charged(engine: Any, provider: str, dimension: str = "tokens") -> int:
    """Units charged on ``provider``'s ``dimension`` so far (exact on a manual clock)."""
    q = quota(engine, provider, dimension)
    return int(q["capacity"] - q["remaining"])


def in_flight(engine: Any, provider: str) -> int:
    return int(engine.snapshot()["providers"][provider]["in_flight"])


def collect() -> None:
    """Run the garbage collector until nothing more is freed (abandoned streams)."""
    for _ in range(3):
        gc.collect()
        time.sleep(0.01)
