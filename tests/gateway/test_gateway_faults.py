"""`ratewise serve` under upstream faults and client misbehaviour: failover before the first
byte (429/529/503/500/timeout, across APIs, capped by max_attempts), no retry once a byte was
sent (cut streams), 503 when every circuit is open, the wait budget on a concurrency quota,
clients hanging up (JSON and streams), graceful SIGTERM, and a gateway with no keys.
Raw HTTP (http.client / sockets) unless a test says otherwise; no auth is configured here.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

import gw_fixture as g
from gw_fixture import model_stats, request, words

OUT = 4
FAILOVER_STATUSES = (529, 503, 500, 429)

MOCK_MODELS = {
    **{f"m{s}-{k}": {"api": "openai", "output_tokens": OUT} for s in FAILOVER_STATUSES for k in (1, 2)},
    "fs-1": {"api": "openai", "output_tokens": OUT}, "fs-2": {"api": "openai", "output_tokens": OUT},
    "to-1": {"api": "openai", "output_tokens": OUT}, "to-2": {"api": "openai", "output_tokens": OUT},
    "cut-1": {"api": "openai", "output_tokens": OUT}, "cut-2": {"api": "openai", "output_tokens": OUT},
    "cuta-1": {"api": "anthropic", "output_tokens": OUT},
    "cuta-2": {"api": "anthropic", "output_tokens": OUT},
    "claude-m1": {"api": "anthropic", "output_tokens": OUT},
    "gpt-m2": {"api": "openai", "output_tokens": OUT},
    "gpt-m3": {"api": "openai", "output_tokens": OUT},
    "claude-m4": {"api": "anthropic", "output_tokens": OUT},
    **{f"ma-{k}": {"api": "openai", "output_tokens": OUT} for k in (1, 2, 3, 4)},
    "dead-1": {"api": "openai", "output_tokens": OUT},
    "gpt-conc": {"api": "openai", "output_tokens": OUT, "latency_ms": 500},
    "slow-1": {"api": "openai", "output_tokens": OUT, "latency_ms": 1200},
    "slow-s": {"api": "openai", "output_tokens": 20, "chunk_ms": 250},
    "slow-a": {"api": "anthropic", "output_tokens": 20, "chunk_ms": 250},
    "grace": {"api": "openai", "output_tokens": OUT, "latency_ms": 600},
    "plain": {"api": "openai", "output_tokens": OUT},
}

# capability -> [(provider, mock model, priority)]
CAPS = {
    **{f"f{s}": [(f"p{s}-1", f"m{s}-1", 10), (f"p{s}-2", f"m{s}-2", 5)] for s in FAILOVER_STATUSES},
    "fstream": [("fs-p1", "fs-1", 10), ("fs-p2", "fs-2", 5)],
    "timeout": [("to-p1", "to-1", 10), ("to-p2", "to-2", 5)],
    "cut": [("cut-p1", "cut-1", 10), ("cut-p2", "cut-2", 5)],
    "cut-an": [("cuta-p1", "cuta-1", 10), ("cuta-p2", "cuta-2", 5)],
    "mixed-oa": [("mix-1", "claude-m1", 10), ("mix-2", "gpt-m2", 5)],
    "mixed-an": [("mix-3", "gpt-m3", 10), ("mix-4", "claude-m4", 5)],
    "many": [(f"ma-p{k}", f"ma-{k}", 50 - 10 * k) for k in (1, 2, 3, 4)],
    "dead": [("dead-p1", "dead-1", 10)],
    "conc": [("conc-1", "gpt-conc", 10)],
    "slow": [("slow-p1", "slow-1", 10)],
    "slow-stream": [("slow-ps", "slow-s", 10)],
    "slow-an": [("slow-pa", "slow-a", 10)],
    "plain": [("plain-1", "plain", 10)],
}
READ_TIMEOUT_MS = 1500


def _providers(caps, mock_url):
    providers, upstreams = [], {}
    for entries in caps.values():
        for prov, model, _ in entries:
            p = {"name": prov, "model": model, "quotas": [g.day_requests(), g.day_tokens()]}
            if prov == "conc-1":
                p["quotas"].append({"dimension": "concurrency", "limit": 1})
            if prov == "dead-p1":
                p["cooldown_ms"] = 60_000
            providers.append(p)
            upstreams[prov] = g.upstream(MOCK_MODELS[model]["api"], mock_url)
    return providers, upstreams


def gateway_config(mock_url, tmp, caps=CAPS):
    providers, upstreams = _providers(caps, mock_url)
    return {
        "providers": providers,
        "capabilities": [{"name": c, "providers": [{"provider": p, "priority": pr}
                                                    for p, _, pr in entries]}
                         for c, entries in caps.items()],
        "lanes": g.LANES,
        "gateway": g.gateway_section(upstreams, None, read_timeout_ms=READ_TIMEOUT_MS),
    }


USER = [{"role": "user", "content": "hello there"}]
OA = {"Content-Type": "application/json"}
AN = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}


def chat(model, **kw):
    return {"model": model, "messages": USER, **kw}


def msg(model, **kw):
    return {"model": model, "max_tokens": 100, "messages": USER, **kw}


def oa_text(r):
    """The text of an OpenAI chat answer, JSON or SSE."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        out = ""
        for _, d in g.sse_events(r.body):
            try:
                c = json.loads(d)
            except ValueError:
                continue
            for ch in c.get("choices") or []:
                out += (ch.get("delta") or {}).get("content") or ""
        return out
    return r.json()["choices"][0]["message"]["content"]


# --------------------------------------------------------------------------------------------
# failover


@pytest.mark.parametrize("status", FAILOVER_STATUSES)
def test_failover_before_first_byte(gw, mock, status):
    """An upstream error before any byte reached the client: the next provider answers;
    x-ratewise-attempts is 2; each upstream saw one request."""
    mock.set_faults({"model": f"m{status}-1", "status": status, "count": 1})
    r = request(gw, "POST", "/v1/chat/completions", chat(f"f{status}"), headers=OA)
    assert r.status == 200, r
    assert r.headers["x-ratewise-provider"] == f"p{status}-2"
    assert r.headers["x-ratewise-model"] == f"m{status}-2"
    assert r.headers["x-ratewise-attempts"] == "2"
    assert oa_text(r) == words(OUT)
    s1, s2 = model_stats(mock, f"m{status}-1"), model_stats(mock, f"m{status}-2")
    assert (s1["received"], s1["status"], s1["admitted"]) == (1, {str(status): 1}, 0)
    assert (s2["received"], s2["ok"]) == (1, 1)


def test_failover_stream_before_first_byte(gw, mock):
    """A stream whose first upstream fails before its first byte is served whole by the next."""
    mock.set_faults({"model": "fs-1", "status": 503, "count": 1})
    r = request(gw, "POST", "/v1/chat/completions", chat("fstream", stream=True), headers=OA)
    assert r.status == 200, r
    assert r.headers["x-ratewise-provider"] == "fs-p2"
    assert r.headers["x-ratewise-attempts"] == "2"
    assert oa_text(r) == words(OUT, trailing=True)
    assert g.sse_events(r.body)[-1][1] == "[DONE]"
    assert (model_stats(mock, "fs-1")["received"], model_stats(mock, "fs-2")["ok"]) == (1, 1)


def test_failover_on_upstream_timeout(gw, mock):
    """An upstream that does not answer within read_timeout_ms: the next provider answers,
    and the slow upstream's request is dropped."""
    mock.set_faults({"model": "to-1", "latency_ms": 3000})
    t0 = time.monotonic()
    r = request(gw, "POST", "/v1/chat/completions", chat("timeout"), headers=OA)
    dt = time.monotonic() - t0
    assert r.status == 200, r
    assert r.headers["x-ratewise-provider"] == "to-p2"
    assert r.headers["x-ratewise-attempts"] == "2"
    assert oa_text(r) == words(OUT)
    assert dt < 2.9, dt  # before the slow upstream would have answered
    g.wait_until(lambda: model_stats(mock, "to-1")["aborted"] == 1, 3.0,
                 "the timed-out upstream request to be closed")
    assert model_stats(mock, "to-1")["ok"] == 0


def test_failover_across_apis_openai_client(gw, mock):
    """An OpenAI client: an Anthropic upstream's 529 fails over to an OpenAI upstream."""
    mock.set_faults({"model": "claude-m1", "status": 529, "count": 1})
    r = request(gw, "POST", "/v1/chat/completions", chat("mixed-oa"), headers=OA)
    assert r.status == 200, r
    assert (r.headers["x-ratewise-provider"], r.headers["x-ratewise-attempts"]) == ("mix-2", "2")
    assert oa_text(r) == words(OUT)
    assert model_stats(mock, "claude-m1")["status"] == {"529": 1}


def test_failover_across_apis_anthropic_client(gw, mock):
    """An Anthropic client: an OpenAI upstream's 503 fails over to an Anthropic upstream."""
    mock.set_faults({"model": "gpt-m3", "status": 503, "count": 1})
    r = request(gw, "POST", "/v1/messages", msg("mixed-an"), headers=AN)
    assert r.status == 200, r
    assert (r.headers["x-ratewise-provider"], r.headers["x-ratewise-attempts"]) == ("mix-4", "2")
    j = r.json()
    assert j["type"] == "message" and j["content"][0]["text"] == words(OUT)
    assert j["stop_reason"] == "end_turn"
    assert model_stats(mock, "gpt-m3")["status"] == {"503": 1}


def test_max_attempts_caps_failover(gw, mock):
    """With every upstream failing, the gateway stops after max_attempts (3) upstream requests."""
    mock.set_faults([{"model": f"ma-{k}", "status": 503, "for_ms": 10_000} for k in (1, 2, 3, 4)])
    r = request(gw, "POST", "/v1/chat/completions", chat("many"), headers=OA)
    assert r.status >= 500, r
    assert set(r.json()["error"]) >= {"message", "type"}
    assert r.headers["x-ratewise-attempts"] == "3"
    assert sum(model_stats(mock, f"ma-{k}")["received"] for k in (1, 2, 3, 4)) == 3


# --------------------------------------------------------------------------------------------
# never after a byte was sent


def test_stream_cut_midway_not_retried(gw, mock):
    """A stream cut after its first events reaches the client truncated (no [DONE]), and no
    other provider is tried."""
    mock.set_faults({"model": "cut-1", "cut_stream_after": 3, "count": 1})
    r = request(gw, "POST", "/v1/chat/completions", chat("cut", stream=True), headers=OA)
    assert r.status == 200, r
    assert (r.headers["x-ratewise-provider"], r.headers["x-ratewise-attempts"]) == ("cut-p1", "1")
    assert "[DONE]" not in [d for _, d in g.sse_events(r.body)]
    assert oa_text(r) == "tok0 tok1 "  # the 3 events sent: role, tok0, tok1
    assert model_stats(mock, "cut-1")["streams_cut"] == 1
    assert model_stats(mock, "cut-2")["received"] == 0
    assert mock.stats()["total"]["received"] == 1
    g.settled(gw, ["cut-p1"])


def test_anthropic_stream_cut_midway_not_retried(gw, mock):
    """An Anthropic stream cut mid-way reaches the client without message_stop; no retry."""
    mock.set_faults({"model": "cuta-1", "cut_stream_after": 4, "count": 1})
    r = request(gw, "POST", "/v1/messages", msg("cut-an", stream=True), headers=AN)
    assert r.status == 200, r
    assert r.headers["x-ratewise-attempts"] == "1"
    evs = g.sse_events(r.body)
    types = [json.loads(d).get("type") for _, d in evs]
    assert "message_stop" not in types
    assert types[:4] == ["message_start", "content_block_start", "ping", "content_block_delta"]
    assert model_stats(mock, "cuta-2")["received"] == 0
    assert mock.stats()["total"]["received"] == 1
    g.settled(gw, ["cuta-p1"])


# --------------------------------------------------------------------------------------------
# refusals


def test_503_when_every_circuit_is_open(gw, mock):
    """Once the only provider's circuit is open: 503 with Retry-After in each client's shape,
    and nothing more reaches the upstream."""
    mock.set_faults({"model": "dead-1", "status": 500, "for_ms": 20_000})
    hdr = dict(OA, **{"x-ratewise-timeout-ms": "0"})
    for _ in range(10):
        before = model_stats(mock, "dead-1")["received"]
        r = request(gw, "POST", "/v1/chat/completions", chat("dead"), headers=hdr)
        if r.status == 503 and model_stats(mock, "dead-1")["received"] == before:
            break
    else:
        pytest.fail(f"no 503 without an upstream request after 10 calls (last: {r})")
    seen = model_stats(mock, "dead-1")["received"]
    assert seen >= 3  # cooldown_after defaults to 3 consecutive failures
    r = request(gw, "POST", "/v1/chat/completions", chat("dead"), headers=hdr)
    assert r.status == 503, r
    ra, _ = g.retry_after_ok(r.headers)
    assert 1 <= ra <= 60  # cooldown_ms 60000
    assert set(r.json()["error"]) >= {"message", "type", "code"}
    r = request(gw, "POST", "/v1/messages", msg("dead"), headers=dict(AN, **{"x-ratewise-timeout-ms": "0"}))
    assert r.status == 503, r
    g.retry_after_ok(r.headers)
    j = r.json()
    assert j["type"] == "error" and set(j["error"]) >= {"type", "message"}
    assert model_stats(mock, "dead-1")["received"] == seen
    models = request(gw, "GET", "/v1/models").json()["data"]
    (dead,) = [m for m in models if m["id"] == "dead"]
    assert dead["providers"][0]["circuit"] == "open"


def test_wait_budget_on_concurrency(gw, mock):
    """Concurrency 1 taken: x-ratewise-timeout-ms 0 is refused (429) at once,
    a budget of 3 s waits for the slot and succeeds."""
    first = []
    t = threading.Thread(target=lambda: first.append(
        request(gw, "POST", "/v1/chat/completions", chat("conc"), headers=OA)))
    t.start()
    try:
        g.wait_until(lambda: model_stats(mock, "gpt-conc")["received"] == 1, 3.0,
                     "the first call to reach the upstream")
        t0 = time.monotonic()
        r = request(gw, "POST", "/v1/chat/completions", chat("conc"),
                    headers=dict(OA, **{"x-ratewise-timeout-ms": "0"}))
        assert r.status == 429, r
        assert time.monotonic() - t0 < 0.4  # refused at once, not after the first call ended
        assert set(r.json()["error"]) >= {"message", "type", "code"}
        refused = r
        r = request(gw, "POST", "/v1/chat/completions", chat("conc"),
                    headers=dict(OA, **{"x-ratewise-timeout-ms": "3000"}))
        assert r.status == 200, r
        assert r.headers["x-ratewise-attempts"] == "1"
    finally:
        t.join(10)
    assert first and first[0].status == 200
    st = model_stats(mock, "gpt-conc")
    assert st["received"] == 2 and st["ok"] == 2
    g.settled(gw, ["conc-1"])
    # A concurrency slot has no predictable free time: no Retry-After (docs/gateway.md,
    # "Refusals"); the SDK falls back on its own backoff.
    assert "retry-after" not in refused.headers and "retry-after-ms" not in refused.headers


# --------------------------------------------------------------------------------------------
# clients hanging up


def _hang_up_and_check(gw, mock, model, provider, cap_path, body, headers, read_first):
    s0 = g.settled(gw, [provider])
    rs = g.RawStream(gw, cap_path, body, headers)
    try:
        if read_first:
            rs.read_until(read_first)
        else:
            g.wait_until(lambda: model_stats(mock, model)["received"] == 1, 3.0,
                         "the upstream request")
    finally:
        t_close = rs.close()
    g.wait_until(lambda: model_stats(mock, model)["aborted"] == 1, 1.0,
                 "the mock to see its request's connection closed")
    dt = time.monotonic() - t_close
    st = model_stats(mock, model)
    assert st["ok"] == 0 and st["admitted"] == 1 and st["streams_cut"] == 0
    assert dt < 1.0
    s1 = g.settled(gw, [provider], timeout=3.0)
    assert g.charged(s1, provider, "requests") - g.charged(s0, provider, "requests") == 1
    assert g.charged(s1, provider, "tokens") - g.charged(s0, provider, "tokens") > 0
    return st


def test_client_disconnect_json(gw, mock):
    """A JSON client hanging up mid-request: the upstream request is dropped at once (before its
    1.2 s latency ends), in_flight returns to 0, and the call stays charged."""
    _hang_up_and_check(gw, mock, "slow-1", "slow-p1", "/v1/chat/completions",
                       chat("slow"), OA, None)


def test_client_disconnect_openai_stream(gw, mock):
    """An OpenAI stream client hanging up after its first token: the upstream stream is dropped
    at once, in_flight returns to 0, and the call stays charged."""
    st = _hang_up_and_check(gw, mock, "slow-s", "slow-ps", "/v1/chat/completions",
                            chat("slow-stream", stream=True), OA, b"tok0")
    assert st["streams"] == 1


def test_client_disconnect_anthropic_stream(gw, mock):
    """An Anthropic stream client hanging up after its first token: same, on /v1/messages."""
    st = _hang_up_and_check(gw, mock, "slow-a", "slow-pa", "/v1/messages",
                            msg("slow-an", stream=True), AN, b"tok0")
    assert st["streams"] == 1


# --------------------------------------------------------------------------------------------
# process, auth


def test_no_keys_means_no_auth(gw, mock):
    """With no `keys` configured, requests without a key (or with any key) are served."""
    r = request(gw, "POST", "/v1/chat/completions", chat("plain"), headers=OA)
    assert r.status == 200 and oa_text(r) == words(OUT)
    r = request(gw, "POST", "/v1/chat/completions", chat("plain"),
                headers=dict(OA, Authorization="Bearer whatever"))
    assert r.status == 200
    r = request(gw, "POST", "/v1/messages", msg("plain"), headers=dict(AN, **{"x-api-key": "k"}))
    assert r.status == 200 and r.json()["content"][0]["text"] == words(OUT)
    assert model_stats(mock, "plain")["ok"] == 3


def test_sigterm_is_graceful(gateway_bin, stack, mock, tmp_path):
    """A second gateway: exactly one stdout line {"listening": ...}; SIGTERM lets the call in
    flight finish, then it exits 0."""
    caps = {"grace": [("grace-1", "grace", 10)]}
    gw2 = g.Gateway(gateway_bin, gateway_config(stack.mock.url, tmp_path, caps), tmp_path)
    try:
        line = json.loads(gw2.first_line)
        assert list(line) == ["listening"] and line["listening"] == f"127.0.0.1:{gw2.port}"
        assert gw2.port not in (0, stack.gw.port)
        out = []
        t = threading.Thread(target=lambda: out.append(
            request(gw2, "POST", "/v1/chat/completions", chat("grace"), headers=OA)))
        t.start()
        g.wait_until(lambda: model_stats(mock, "grace")["received"] == 1, 3.0, "the call in flight")
        gw2.proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert out and out[0].status == 200, out
        assert oa_text(out[0]) == words(OUT)
        assert gw2.proc.wait(10) == 0
        gw2._reader.join(5)
        assert gw2.stdout_lines == [gw2.first_line]
    finally:
        gw2.stop()
