"""Fixtures of the `ratewise serve` end-to-end tests: one mock upstream and one gateway per
test module (the module's MOCK_MODELS and gateway_config), the mock reset before each test.

Skipped when the binary is missing or has no `serve`, unless RATEWISE_REQUIRE_GATEWAY=1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gw_fixture as gwf  # noqa: E402


class Stack:
    def __init__(self, mock, gw):
        self.mock = mock
        self.gw = gw


@pytest.fixture(scope="session")
def gateway_bin():
    return gwf.require_gateway()


@pytest.fixture(scope="module")
def stack(request, gateway_bin, tmp_path_factory):
    mod = request.module
    mock = gwf.MockServer({"models": mod.MOCK_MODELS}).start()
    tmp = tmp_path_factory.mktemp(mod.__name__.rsplit(".", 1)[-1])
    try:
        gw = gwf.Gateway(gateway_bin, mod.gateway_config(mock.url, tmp), tmp)
    except Exception:
        mock.stop()
        raise
    s = Stack(mock, gw)
    yield s
    gw.stop()
    mock.stop()


@pytest.fixture
def mock(stack):
    """The module's mock upstream, reset (counters, buckets, faults, log)."""
    stack.mock.reset()
    return stack.mock


@pytest.fixture
def gw(stack, mock):
    if not stack.gw.alive():
        pytest.fail("the gateway process has exited; stderr:\n" + stack.gw.stderr_tail())
    return stack.gw


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        g = item.funcargs.get("gw") if hasattr(item, "funcargs") else None
        if g is not None:
            rep.sections.append(("gateway stderr (tail)", g.stderr_tail(3000)))
