"""``Permit._settle``: how the SDK wrappers settle a call, in one crossing (ratewise/_wrap.py).
It reads an httpx ``Headers``' raw list and copies only the headers the engine reads; usage it
cannot use settles on the estimates; an expired or settled permit is ignored.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

import pytest

import ratewise
from mock_fixture import charged, engine_config, in_flight, make_engine, quota, require

httpx2 = require("httpx2")  # the openai and anthropic SDKs' HTTP client

ESTIMATE_IN, ESTIMATE_OUT = 500, 100


def acquired() -> "tuple[Any, Any]":
    engine = make_engine(engine_config([{"name": "p", "model": "gpt-a"}]))
    permit = engine.acquire("chat", input_tokens=ESTIMATE_IN, output_tokens=ESTIMATE_OUT)
    return engine, permit


def test_reported_usage_replaces_the_estimates() -> None:
    engine, permit = acquired()
    permit._settle("success", 12, 40, 9, None, None, None)
    assert charged(engine, "p") == 49
    assert in_flight(engine, "p") == 0


class Index:
    """An integer type that is not an int (as numpy.int64): taken through ``__index__``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


def test_any_integer_type_is_usage() -> None:
    engine, permit = acquired()
    permit._settle("success", 12, Index(40), Index(9), Index(0), None, None)
    assert charged(engine, "p") == 49


def test_usage_it_cannot_use_settles_on_the_estimates() -> None:
    for usage in [("40", 9, None, None), (40, 9.0, None, None), (True, 9, None, None), (-1, 9, None, None),
                  (40, 9, 41, None), (40, 9, 30, 20), (2**64, 9, None, None)]:
        engine, permit = acquired()
        permit._settle("success", 12, *usage, None)
        assert charged(engine, "p") == ESTIMATE_IN + ESTIMATE_OUT, usage
        assert in_flight(engine, "p") == 0


def test_the_rate_limit_headers_of_an_httpx_response_calibrate() -> None:
    engine, permit = acquired()
    headers = httpx2.Headers({
        "Content-Type": "application/json",
        "X-RateLimit-Limit-Tokens": "10000000",
        "X-RateLimit-Remaining-Tokens": "1000",
        "x-ratelimit-reset-tokens": "not a duration",
        "x-request-id": "req_1",
    })
    before = engine.snapshot()["counters"]["header_errors"]
    permit._settle("success", 12, 40, 9, None, None, headers)
    # The provider saw 1,000 tokens left (of a limit equal to ours): the level follows it.
    assert quota(engine, "p", "tokens")["remaining"] <= 1000
    # A reset the engine reads, malformed, is counted: it crossed.
    assert engine.snapshot()["counters"]["header_errors"] == before + 1


def test_a_failure_reads_an_http_date_retry_after_against_the_date_header() -> None:
    engine, permit = acquired()
    now = 1_700_000_000
    headers = httpx2.Headers({"date": formatdate(now, usegmt=True), "retry-after": formatdate(now + 20, usegmt=True)})
    permit._settle("rate_limited", 12, None, None, None, None, headers)
    with pytest.raises(ratewise.NoAvailableProviderError) as refused:
        engine.acquire("chat", input_tokens=1, output_tokens=1)
    assert refused.value.retry_after_ms == 20_000


def test_a_mapping_or_pairs_are_read_too() -> None:
    engine, permit = acquired()
    permit._settle("success", 12, 40, 9, None, None, {"x-ratelimit-remaining-tokens": "2000",
                                                       "x-ratelimit-limit-tokens": "10000000"})
    assert quota(engine, "p", "tokens")["remaining"] <= 2000
    engine, permit = acquired()
    permit._settle("success", 12, 40, 9, None, None, [("x-ratelimit-remaining-tokens", "3000"),
                                                       ("x-ratelimit-limit-tokens", "10000000")])
    assert quota(engine, "p", "tokens")["remaining"] <= 3000


def test_a_settled_permit_is_ignored_and_a_bad_status_raises() -> None:
    engine, permit = acquired()
    permit._settle("success", 12, 40, 9, None, None, None)
    permit._settle("server_error", 12, None, None, None, None, None)  # already settled: its charges stand
    assert charged(engine, "p") == 49
    engine, other = acquired()
    with pytest.raises(ratewise.InvalidArgumentError):
        other._settle("no such status", 12, None, None, None, None, None)
    assert in_flight(engine, "p") == 1  # a failed call leaves the permit as it was
    other._settle("success", 12, 40, 9, None, None, None)
    assert in_flight(engine, "p") == 0


def test_a_permit_settled_inside_its_with_block_is_not_settled_again() -> None:
    engine, _ = acquired()
    with engine.acquire("chat", input_tokens=ESTIMATE_IN, output_tokens=ESTIMATE_OUT) as permit:
        permit._settle("success", 12, 40, 9, None, None, None)
    # 49 for this one, the estimates for the other (still in flight)
    assert charged(engine, "p") == 49 + ESTIMATE_IN + ESTIMATE_OUT
    assert in_flight(engine, "p") == 1
