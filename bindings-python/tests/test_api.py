"""The public API of the installed package: construction, decisions, permits, signals."""

import json
import pathlib

import pytest

import ratewise


def test_config_as_dict_json_text_and_path(config, tmp_path, clock):
    path = tmp_path / "ratewise.json"
    path.write_text(json.dumps(config))
    for source in (config, json.dumps(config), path, str(path.read_text())):
        engine = ratewise.Engine(source, clock=clock)
        assert engine.select("chat").provider in ("gpt-4o", "claude")
    assert ratewise.Engine.from_json(json.dumps(config), clock=clock).select("chat").provider == "gpt-4o"


def test_bad_config_names_the_json_path(config):
    config["providers"][1]["quotas"][0]["limit"] = 0
    with pytest.raises(ratewise.InvalidConfigError) as err:
        ratewise.Engine(config)
    assert str(err.value) == "providers[1].quotas[0].limit: must be > 0"
    assert err.value.code == "invalid_config"
    assert isinstance(err.value, ValueError)
    with pytest.raises(ratewise.InvalidConfigError):
        ratewise.Engine(pathlib.Path("/nonexistent/ratewise.json"))
    with pytest.raises(ratewise.InvalidConfigError):
        ratewise.Engine({"providers": [{"name": "a", "weight": object()}]})


def test_select_decision(engine):
    d = engine.select("chat", input_tokens=100, output_tokens=50)
    assert d.provider == "gpt-4o"
    assert 0.0 <= d.score <= 1.0
    assert set(d.breakdown) == {"quota", "health", "priority", "latency", "cost"}
    assert [p for p, _ in d.alternatives] == ["claude"]
    assert d.skipped == []
    assert repr(d).startswith("Decision(provider='gpt-4o', score=")
    assert engine.remaining("gpt-4o", "requests") == 100, "select reserves nothing"


def test_exclude_and_lanes(engine):
    d = engine.select("chat", exclude=["gpt-4o"])
    assert d.provider == "claude" and d.skipped == [("gpt-4o", "excluded")]
    with pytest.raises(ratewise.InvalidArgumentError):
        engine.select("chat", lane="vip")
    with pytest.raises(ratewise.UnknownCapabilityError):
        engine.select("nope")
    with pytest.raises(ratewise.InvalidArgumentError):
        engine.select("chat", input_tokens=-1)


def test_acquire_complete_settles(engine):
    permit = engine.acquire("chat", input_tokens=1000, output_tokens=500)
    assert permit.provider == "gpt-4o"
    assert engine.remaining("gpt-4o", "tokens") == 98500
    permit.complete("success", latency_ms=120, input_tokens=900, output_tokens=100)
    assert engine.remaining("gpt-4o", "tokens") == 99000
    with pytest.raises(ratewise.UnknownPermitError):
        permit.complete("success")
    assert engine.snapshot()["providers"]["gpt-4o"]["latency_ms"] == 120.0


def test_cancel_refunds(engine):
    permit = engine.acquire("chat", input_tokens=1000)
    permit.cancel()
    assert engine.remaining("gpt-4o", "tokens") == 100000
    assert engine.remaining("gpt-4o", "requests") == 100


def test_status_as_http_code(engine):
    permit = engine.acquire("chat")
    permit.complete(529)
    assert engine.select("chat").skipped == [("gpt-4o", "held")]
    with pytest.raises(ratewise.InvalidArgumentError):
        engine.acquire("chat").complete(600)
    with pytest.raises(ratewise.InvalidArgumentError):
        engine.acquire("chat").complete("exploded")


def test_context_manager_success_uses_estimates(engine):
    with engine.acquire("chat", input_tokens=700, output_tokens=300) as permit:
        assert engine.snapshot()["providers"][permit.provider]["in_flight"] == 1
    assert engine.remaining("gpt-4o", "tokens") == 99000
    assert engine.snapshot()["providers"]["gpt-4o"]["in_flight"] == 0
    # Completing inside the block wins; the exit does nothing more.
    with engine.acquire("chat", input_tokens=700, output_tokens=300) as permit:
        permit.complete("success", input_tokens=10, output_tokens=0)
    assert engine.remaining("gpt-4o", "tokens") == 98990


class FakeResponse:
    def __init__(self, status_code, headers):
        self.status_code = status_code
        self.headers = headers


class RateLimitError(Exception):
    """Shaped like openai.RateLimitError: status_code, response (with headers) and body."""

    def __init__(self, headers, body=None):
        super().__init__("429")
        self.status_code = 429
        self.response = FakeResponse(429, headers)
        self.body = body


class HTTPStatusError(Exception):
    """Shaped like httpx.HTTPStatusError: only response.status_code."""

    def __init__(self, code):
        super().__init__(str(code))
        self.response = FakeResponse(code, {})


class APITimeoutError(Exception):
    pass


def test_context_manager_exception_with_status_and_headers(engine):
    with pytest.raises(RateLimitError):
        with engine.acquire("chat", input_tokens=500):
            raise RateLimitError({"retry-after": "20", "x-ratelimit-remaining-tokens": "42"})
    assert engine.select("chat").skipped == [("gpt-4o", "held")]
    assert engine.health("gpt-4o") == 1.0, "a 429 with retry-after only holds"
    assert engine.remaining("gpt-4o", "tokens") == 42
    assert engine.snapshot()["providers"]["gpt-4o"]["held_ms"] == 20000


def test_context_manager_insufficient_quota_is_forbidden(engine):
    with pytest.raises(RateLimitError):
        with engine.acquire("chat"):
            raise RateLimitError({}, body={"error": {"type": "insufficient_quota"}})
    assert engine.health("gpt-4o") == 0.5


def test_context_manager_httpx_style_status(engine):
    with pytest.raises(HTTPStatusError):
        with engine.acquire("chat"):
            raise HTTPStatusError(500)
    assert engine.health("gpt-4o") == pytest.approx(0.9)


def test_context_manager_timeouts(engine):
    for exc in (TimeoutError(), APITimeoutError()):
        with pytest.raises(type(exc)):
            with engine.acquire("chat") as permit:
                provider = permit.provider
                raise exc
        # Each timeout costs its provider penalty_timeout (0.2); the second call may go elsewhere.
        assert engine.health(provider) == pytest.approx(0.8)


def test_context_manager_other_exception_cancels(engine):
    with pytest.raises(KeyError):
        with engine.acquire("chat", input_tokens=500):
            raise KeyError("bug before the call")
    assert engine.remaining("gpt-4o", "tokens") == 100000
    assert engine.remaining("gpt-4o", "requests") == 100
    assert engine.health("gpt-4o") == 1.0


def test_refusal_carries_retry_after_and_skipped(clock):
    engine = ratewise.Engine({
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window": "second"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "a"}]}],
    }, clock=clock)
    engine.acquire("chat")
    with pytest.raises(ratewise.NoAvailableProviderError) as err:
        engine.acquire("chat")
    assert err.value.retry_after_ms == 1000
    assert err.value.skipped == [("a", "quota:requests")]
    clock.advance(1000)
    assert engine.acquire("chat").provider == "a"


def test_observe_and_signals(engine):
    engine.observe("claude", "success", latency_ms=80, requests=3)
    assert engine.remaining("claude", "requests") == 47
    engine.observe("gpt-4o", 429, retry_after_ms=5000)
    assert engine.snapshot()["providers"]["gpt-4o"]["held_ms"] == 5000
    with pytest.raises(ratewise.UnknownProviderError):
        engine.observe("nobody", "success")


class Headers:
    """A case-preserving mapping like httpx.Headers (has .items())."""

    def __init__(self, pairs):
        self._pairs = pairs

    def items(self):
        return list(self._pairs)


def test_sync_headers_accepts_mappings_and_pairs(engine):
    engine.sync_headers("gpt-4o", {"x-ratelimit-remaining-tokens": "5000"})
    assert engine.remaining("gpt-4o", "tokens") == 5000
    engine.sync_headers("gpt-4o", Headers([("X-RateLimit-Remaining-Requests", "7")]))
    assert engine.remaining("gpt-4o", "requests") == 7
    engine.sync_headers("gpt-4o", [("x-ratelimit-limit-tokens", "8000")])
    assert engine.snapshot()["providers"]["gpt-4o"]["quotas"][1]["learned_limit"] == 8000
    engine.sync_headers("gpt-4o", {"x-ratelimit-remaining-tokens": "lots"})
    assert engine.snapshot()["counters"]["header_errors"] == 1
    with pytest.raises(ratewise.InvalidArgumentError):
        engine.sync_headers("gpt-4o", 42)


def test_health_circuit_snapshot(engine, clock):
    for _ in range(3):
        engine.observe("gpt-4o", "server_error")
    assert engine.circuit("gpt-4o") == "open"
    assert engine.health("gpt-4o") == pytest.approx(0.7)
    clock.advance(30000)
    assert engine.circuit("gpt-4o") == "half_open"
    snap = engine.snapshot()
    assert snap["store"] == {"kind": "memory", "mode": "normal"}
    assert snap["providers"]["gpt-4o"]["quotas"][0]["key"] == "gpt-4o/requests/60000"
    assert engine.remaining("claude", "tokens") is None
    with pytest.raises(ratewise.InvalidArgumentError):
        engine.remaining("claude", "bytes")


def test_runtime_configuration(engine):
    engine.upsert_provider({"name": "mini", "quotas": [{"dimension": "requests", "limit": 10}]})
    engine.upsert_capability(json.dumps({"name": "cheap", "providers": [{"provider": "mini"}]}))
    assert engine.select("cheap").provider == "mini"
    engine.remove_provider("mini")
    with pytest.raises(ratewise.NoAvailableProviderError) as err:
        engine.select("cheap")
    assert err.value.skipped == [("mini", "unregistered")]
    engine.remove_capability("cheap")
    with pytest.raises(ratewise.UnknownCapabilityError):
        engine.remove_capability("cheap")
    with pytest.raises(ratewise.InvalidConfigError):
        engine.upsert_capability({"name": "x", "providers": [{"provider": "ghost"}]})


def test_status_from_http():
    assert ratewise.status_from_http(200) == "success"
    assert ratewise.status_from_http(429) == "rate_limited"
    assert ratewise.status_from_http(429, "insufficient_quota") == "forbidden"
    assert ratewise.status_from_http(529) == "overloaded"
    assert ratewise.status_from_http(404) == "client_error"
    with pytest.raises(ratewise.InvalidArgumentError):
        ratewise.status_from_http(99)


def test_manual_clock(clock):
    assert clock.now_ms == 1_000_000
    clock.advance(5)
    assert clock.now_ms == 1_000_005
    with pytest.raises(ratewise.InvalidArgumentError):
        clock.advance(-1)
    assert repr(clock) == "ManualClock(now_ms=1000005)"


def test_system_clock_engine(config):
    engine = ratewise.Engine(config)
    assert engine.clock is None
    assert engine.now_ms() > 1_700_000_000_000


def test_waiting_low_level_api(clock):
    engine = ratewise.Engine({
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window": "second"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "a"}]}],
    }, clock=clock)
    engine.acquire("chat")
    assert engine.next_wake() is None
    ticket, granted, expired = engine.enqueue("chat", timeout_ms=5000)
    assert (granted, expired) == ([], [])
    assert engine.next_wake() == clock.now_ms + 1000
    with pytest.raises(ratewise.NoAvailableProviderError) as err:
        engine.acquire("chat")
    assert err.value.skipped == [("a", "queued")]
    clock.advance(1000)
    assert engine.poll() == ([ticket], [])
    assert engine.complete(ticket, "success") == ([], [])
    with pytest.raises(ratewise.InvalidArgumentError):
        engine.enqueue("chat", timeout_ms=0)
