"""`ratewise serve` as a fleet runs it: virtual keys' budgets, two gateways sharing one Redis,
configuration reload (SIGHUP), graceful shutdown (SIGTERM), and a load test against hidden
limits below the configuration.

Each test starts its own mock (tests/mockllm) and gateway(s). The Redis test needs
RATEWISE_REDIS_URL (scripts/test-all.sh starts one); without it, it is skipped unless
RATEWISE_REQUIRE_GATEWAY=1.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import pytest

import gw_fixture as gwf
from gw_fixture import ADMIN_KEY, KEY_A, KEY_B, Gateway, MockServer, request, sha256

MESSAGES = [{"role": "user", "content": "Say something about lighthouses."}]


def chat(gw: Any, key: str = KEY_A, timeout_ms: int | None = None, **body: Any) -> gwf.Resp:
    headers = {"Authorization": f"Bearer {key}"}
    if timeout_ms is not None:
        headers["x-ratewise-timeout-ms"] = str(timeout_ms)
    payload = {"model": "chat", "messages": MESSAGES, "max_tokens": 20, **body}
    return request(gw, "POST", "/v1/chat/completions", payload, headers=headers)


def config(mock_url: str, quotas: List[Dict[str, Any]], keys: List[Dict[str, Any]], **gateway: Any) -> Dict[str, Any]:
    return {
        "providers": [{"name": "p", "model": "gpt-a", "quotas": quotas,
                       "price": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
        "gateway": gwf.gateway_section({"p": gwf.upstream("openai", mock_url)}, keys=keys, **gateway),
    }


@pytest.fixture
def mock():
    m = MockServer({"models": {"gpt-a": {"api": "openai", "output_tokens": 10}}}).start()
    yield m
    m.stop()


@pytest.fixture
def started(gateway_bin, tmp_path):
    gateways: List[Gateway] = []

    def start(cfg: Dict[str, Any], name: str = "gw") -> Gateway:
        d = tmp_path / name
        d.mkdir()
        gw = Gateway(gateway_bin, cfg, d)
        gateways.append(gw)
        return gw

    yield start
    for g in gateways:
        g.stop()


def key(name: str, secret: str, **extra: Any) -> Dict[str, Any]:
    return {"name": name, "sha256": sha256(secret), **extra}


# -- budgets ------------------------------------------------------------------------------------


def test_a_key_budget_in_requests_admits_exactly_its_limit(mock, started):
    """5 requests a day for team-a: the 6th and 7th are 429 with the key named, never sent."""
    gw = started(config(mock.url, [gwf.day_tokens()], [
        key("team-a", KEY_A, quotas=[gwf.day_requests(5)]),
        key("team-b", KEY_B),
    ]))
    codes = [chat(gw, timeout_ms=0).status for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    refused = chat(gw, timeout_ms=0)
    assert "team-a" in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert gwf.model_stats(mock, "gpt-a")["received"] == 5
    # Another key is not limited by team-a's budget.
    assert chat(gw, KEY_B, timeout_ms=0).status == 200


def test_a_cost_budget_settles_the_exact_cost_of_what_was_served(mock, started):
    """A cost budget (micro-USD) is charged the provider's price times the reported usage."""
    gw = started(config(mock.url, [gwf.day_tokens()], [
        key("team-a", KEY_A, quotas=[{"dimension": "cost", "limit": 10_000_000, "window": "day",
                                      "algorithm": "fixed_window"}]),
    ]))
    spent = 0.0
    for _ in range(3):
        r = chat(gw)
        assert r.status == 200, r
        u = r.json()["usage"]
        spent += (u["prompt_tokens"] * 1000.0 + u["completion_tokens"] * 2000.0) / 1e6
        assert float(r.headers["x-ratewise-cost-usd"]) == pytest.approx(
            (u["prompt_tokens"] * 1000.0 + u["completion_tokens"] * 2000.0) / 1e6)
    snap = gwf.snapshot(gw)
    budget = snap["key_budgets"]["providers"]["vk:team-a:p"]["quotas"][0]
    assert budget["dimension"] == "cost"
    assert budget["capacity"] - budget["remaining"] == round(spent * 1e6)


def test_a_provider_failure_is_refunded_to_the_key(mock, started):
    """A 500 from the provider costs the key nothing (its budget is for work done)."""
    gw = started(config(mock.url, [gwf.day_tokens()], [key("team-a", KEY_A, quotas=[gwf.day_requests(2)])],
                        max_attempts=1))
    mock.set_faults({"model": "gpt-a", "status": 500, "count": 1})  # more would open the circuit
    assert chat(gw, timeout_ms=0).status == 500
    assert [chat(gw, timeout_ms=0).status for _ in range(3)] == [200, 200, 429]


def test_a_request_that_can_never_fit_is_refused_at_once_without_blocking_others(mock, started):
    """A request bigger than every quota is a 400 at once (it would only block the queue until
    its deadline), and a normal call right after it goes through."""
    gw = started(config(mock.url, [{"dimension": "tokens", "limit": 1000, "window": "minute"}], [key("team-a", KEY_A)]))
    t0 = time.monotonic()
    r = chat(gw, timeout_ms=10_000, max_tokens=5000)
    assert r.status == 400, r
    assert time.monotonic() - t0 < 2.0
    assert "retry-after" not in r.headers
    assert "quota:tokens:too_large" in r.json()["error"]["message"]
    assert chat(gw, timeout_ms=1000).status == 200
    assert gwf.model_stats(mock, "gpt-a")["received"] == 1


def test_an_unknown_lane_is_a_400_and_never_a_metric_label(mock, started):
    """x-ratewise-lane must name a configured lane: free text never becomes a label."""
    gw = started(config(mock.url, [gwf.day_tokens()], [key("team-a", KEY_A)]))
    r = request(gw, "POST", "/v1/chat/completions", {"model": "chat", "messages": MESSAGES},
                headers={"Authorization": f"Bearer {KEY_A}", "x-ratewise-lane": "lane-abc123"})
    assert r.status == 400, r
    assert "lane-abc123" not in request(gw, "GET", "/metrics").text
    assert gwf.model_stats(mock, "gpt-a")["received"] == 0


# -- two gateways, one Redis ----------------------------------------------------------------------


@pytest.fixture
def redis_url():
    url = os.environ.get("RATEWISE_REDIS_URL")
    if not url:
        if os.environ.get(gwf.REQUIRE_ENV) == "1":
            pytest.fail("RATEWISE_REQUIRE_GATEWAY=1 but RATEWISE_REDIS_URL is not set")
        pytest.skip("RATEWISE_REDIS_URL is not set (scripts/test-all.sh starts a Redis)")
    return url


def test_two_gateways_on_one_redis_share_key_budgets_and_provider_quotas(mock, started, redis_url):
    """Provider quota 30 a day, team-a's budget 20: across two gateway processes, exactly 20
    team-a calls and 30 calls in all are admitted, and the mock sees exactly 30."""
    prefix = "gwtest" + secrets.token_hex(4)
    cfg = config(mock.url, [gwf.day_requests(30)], [key("team-a", KEY_A, quotas=[gwf.day_requests(20)]),
                                                    key("team-b", KEY_B)])
    cfg["store"] = {"kind": "redis", "url": redis_url, "prefix": prefix, "timeout_ms": 2000}
    one, two = started(cfg, "one"), started(cfg, "two")
    with ThreadPoolExecutor(8) as pool:
        a = list(pool.map(lambda i: chat(one if i % 2 else two, KEY_A, timeout_ms=0).status, range(26)))
        b = list(pool.map(lambda i: chat(one if i % 2 else two, KEY_B, timeout_ms=0).status, range(16)))
    assert a.count(200) == 20 and a.count(429) == 6, a
    assert b.count(200) == 10 and b.count(429) == 6, b
    assert gwf.model_stats(mock, "gpt-a")["received"] == 30
    for gw in (one, two):
        snap = gwf.snapshot(gw)
        assert gwf.quota(snap, "p", "requests")["remaining"] == 0
        assert snap["key_budgets"]["providers"]["vk:team-a:p"]["quotas"][0]["remaining"] == 0


# -- reload and shutdown --------------------------------------------------------------------------


def test_sighup_reloads_keys_and_a_bad_file_keeps_the_old_configuration(mock, started):
    """A key added by a reload works; a broken file is refused and the old one keeps serving."""
    new_key = "rw-late-" + secrets.token_hex(6)
    cfg = config(mock.url, [gwf.day_tokens()], [key("team-a", KEY_A)])
    gw = started(cfg)
    assert chat(gw, new_key).status == 401
    cfg["gateway"]["keys"].append(key("late", new_key))
    gw.config_path.write_text(json.dumps(cfg))
    gw.proc.send_signal(signal.SIGHUP)
    gwf.wait_until(lambda: chat(gw, new_key).status == 200, 5.0, "the reloaded key to work")
    gw.config_path.write_text('{"providers": [{"name": "p", "quotas": [{"dimension": "requests", "limit": 0}]}]}')
    gw.proc.send_signal(signal.SIGHUP)
    gwf.wait_until(lambda: "reload refused" in gw.stderr_tail(), 5.0, "the reload to be refused")
    assert "providers[0].quotas[0].limit: must be > 0" in gw.stderr_tail()
    assert chat(gw, new_key).status == 200
    assert chat(gw, KEY_A).status == 200


def test_sigterm_lets_a_stream_in_flight_finish_and_exits_0(mock, started):
    """SIGTERM mid-stream: /readyz turns 503 at once, the stream still ends with [DONE], and the
    process exits 0 with nothing left in flight."""
    gw = started(config(mock.url, [gwf.day_tokens()], [key("team-a", KEY_A)]))
    mock.set_faults({"model": "gpt-a", "chunk_ms": 100})
    got: Dict[str, Any] = {}

    def stream() -> None:
        got["r"] = chat(gw, stream=True)

    t = threading.Thread(target=stream)
    t.start()
    gwf.wait_until(lambda: gwf.model_stats(mock, "gpt-a")["received"] == 1, 5.0, "the stream to start")
    time.sleep(0.2)
    gw.proc.send_signal(signal.SIGTERM)
    gwf.wait_until(lambda: _ready_status(gw) in (503, None), 2.0, "/readyz to say draining")
    t.join(10)
    r = got["r"]
    assert r.status == 200
    assert r.text.rstrip().endswith("data: [DONE]")
    assert gw.proc.wait(10) == 0


def _ready_status(gw: Gateway) -> int | None:
    try:
        return request(gw, "GET", "/readyz", timeout=1).status
    except OSError:
        return None  # already closed its listener


# -- load -----------------------------------------------------------------------------------------


def test_load_2000_requests_50_clients_hidden_limits_3x_lower_lose_nothing(started):
    """2,000 calls from 50 concurrent clients that may wait (30 s), against a mock allowing 200
    requests/s while ratewise is configured for 600/s: every call answers 200, none 429."""
    m = MockServer({"models": {"gpt-a": {"api": "openai", "requests_per_s": 200, "burst_s": 0.5,
                                         "output_tokens": 5}}}).start()
    try:
        gw = started(config(m.url, [{"dimension": "requests", "limit": 600, "window": "second"}],
                            [key("team-a", KEY_A)], timeout_ms=30_000, max_attempts=4))
        t0 = time.monotonic()
        with ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(lambda _: chat(gw, timeout_ms=30_000, max_tokens=5).status, range(2000)))
        wall = time.monotonic() - t0
        stats = gwf.model_stats(m, "gpt-a")
        floor = (2000 - 200 * 0.5) / 200
        print(f"load: 2000 calls, 50 clients: {codes.count(200)} ok, wall {wall:.2f} s (floor {floor:.2f} s), "
              f"mock received {stats['received']}, statuses {stats.get('status')}")
        assert codes.count(200) == 2000, {c: codes.count(c) for c in set(codes)}
        assert stats["ok"] == 2000
    finally:
        m.stop()
