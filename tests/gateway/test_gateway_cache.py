"""`ratewise serve`'s response cache and degraded answers (docs/gateway.md, "The response
cache" and "Degraded answers"): a miss then a hit with one upstream request, the canonical key
(same and different requests), which requests are stored, the per-request controls, tenants
(keys and teams), one entry serving JSON and SSE in both APIs, what is never stored (errors,
cut and abandoned streams), tool calls replayed, the Redis tier shared by two gateways, a
capability with the cache off, and the degraded answers: stale, static (rules and default, both
APIs, JSON and streams), the refusal, the switches per capability and per key, and a caller's
error that is never degraded. Metrics count all of it.

The clients are the real `openai` and `anthropic` SDKs where a test reads an answer as a user
would, raw HTTP where it sends exact bytes or reads exact headers.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from typing import Any, Dict, List

import anthropic
import openai
import pytest

import gw_fixture as g
from gw_fixture import (KEY_A, KEY_B, Gateway, model_stats, request, sha256,
                        tool_arguments, words)

OUT = 6
KEY_C = "rw-team-c-" + secrets.token_hex(8)  # no team: a tenant of its own
KEY_D = "rw-team-d-" + secrets.token_hex(8)  # degraded answers off

MOCK_MODELS = {
    **{m: {"api": "openai", "output_tokens": OUT}
       for m in ("c-oa", "c-all", "c-off", "c-err", "c-cut", "c-hang", "c-tool", "c-ten",
                 "c-ctl", "d-stale", "d-static", "d-nodef", "d-off", "d-key", "d-bad")},
    **{m: {"api": "anthropic", "output_tokens": OUT} for m in ("c-an", "d-static-an")},
    "c-slow": {"api": "openai", "output_tokens": 20, "chunk_ms": 150},
}

RULES = {"rules": [{"contains": ["refund", "invoice"], "answer": "Billing is down right now."},
                   {"contains": ["password"], "answer": "Reset it at /account."}],
         "default": "We are having trouble answering. Please try again shortly."}

# capability -> (mock model, gateway.capabilities settings)
CAPS: Dict[str, Any] = {
    "c-oa": ("c-oa", {}),
    "c-an": ("c-an", {}),
    "c-all": ("c-all", {"cache": {"requests": "all"}}),
    "c-off": ("c-off", {"cache": {"enabled": False}}),
    "c-err": ("c-err", {}),
    "c-cut": ("c-cut", {}),
    "c-hang": ("c-slow", {}),
    "c-tool": ("c-tool", {}),
    "c-ten": ("c-ten", {}),
    "c-ctl": ("c-ctl", {}),
    "d-stale": ("d-stale", {"cache": {"ttl_s": 1, "max_stale_s": 3600}, "degraded": {"static": RULES}}),
    "d-static": ("d-static", {"degraded": {"static": RULES}}),
    "d-static-an": ("d-static-an", {"degraded": {"static": RULES}}),
    "d-nodef": ("d-nodef", {"degraded": {"static": {"rules": RULES["rules"]}}}),
    "d-off": ("d-off", {"degraded": {"enabled": False, "static": RULES}}),
    "d-key": ("d-key", {"degraded": {"static": RULES}}),
    "d-bad": ("d-bad", {"degraded": {"static": RULES}}),
}

PRICE = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}


def keys() -> List[Dict[str, Any]]:
    return [{"name": "a", "sha256": sha256(KEY_A), "team": "t1"},
            {"name": "b", "sha256": sha256(KEY_B), "team": "t1"},
            {"name": "c", "sha256": sha256(KEY_C)},
            {"name": "d", "sha256": sha256(KEY_D), "degraded": False}]


def gateway_config(mock_url, tmp, cache=None):
    providers, upstreams = [], {}
    for cap, (model, _) in CAPS.items():
        prov = "p-" + cap
        providers.append({"name": prov, "model": model, "price": PRICE,
                          "quotas": [g.day_requests(), g.day_tokens()]})
        upstreams[prov] = g.upstream(MOCK_MODELS[model]["api"], mock_url)
    gw = g.gateway_section(upstreams, keys(), max_attempts=2, read_timeout_ms=3000,
                           capabilities={c: s for c, (_, s) in CAPS.items() if s})
    if cache is not None:
        gw["cache"] = cache
    return {
        "providers": providers,
        "capabilities": [{"name": c, "providers": [{"provider": "p-" + c}]} for c in CAPS],
        "gateway": gw,
    }


USER = [{"role": "user", "content": "Tell me about lighthouses."}]


def oa_client(gw, key=KEY_A):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=15)


def an_client(gw, key=KEY_A):
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=15)


def chat(gw, model, key=KEY_A, headers=None, **body):
    payload = {"model": model, "messages": USER, "temperature": 0, **body}
    return request(gw, "POST", "/v1/chat/completions", payload,
                   headers=g.oa_headers(key, **(headers or {})))


def messages(gw, model, key=KEY_A, headers=None, **body):
    payload = {"model": model, "max_tokens": 64, "messages": USER, "temperature": 0, **body}
    return request(gw, "POST", "/v1/messages", payload, headers=g.an_headers(key, **(headers or {})))


def received(mock, model):
    return model_stats(mock, model)["received"]


def oa_stream_chunks(r):
    assert r.headers["content-type"].startswith("text/event-stream"), r
    ev = g.sse_events(r.body)
    assert ev[-1][1] == "[DONE]", ev[-3:]
    return [json.loads(d) for _, d in ev[:-1]]


def oa_stream_text(r):
    return "".join((ch.get("delta") or {}).get("content") or ""
                   for c in oa_stream_chunks(r) for ch in c.get("choices") or [])


def an_stream_text(r):
    assert r.headers["content-type"].startswith("text/event-stream"), r
    out = ""
    for ev, d in g.sse_events(r.body):
        obj = json.loads(d)
        if ev == "content_block_delta" and obj["delta"]["type"] == "text_delta":
            out += obj["delta"]["text"]
    return out


def cache_count(gw, capability, result):
    return g.metric_sum(g.metrics(gw), "ratewise_gateway_cache_requests_total",
                        capability=capability, result=result)


def wait_stored(gw, capability, n=1):
    """A stream is stored when it ends (after the client saw its last byte): wait for it."""
    g.wait_until(lambda: cache_count(gw, capability, "stored") >= n, 5.0,
                 f"{n} stored entries for {capability}")


# --------------------------------------------------------------------------------------------
# miss, hit, and the key


def test_miss_then_hit_with_one_upstream_request_usage_zero_and_the_saving_counted(gw, mock):
    """The real openai SDK asks twice: the first is a miss and reaches the mock, the second is a
    hit with the same text, usage 0, cost 0 and an `age`, and never reaches the mock."""
    oa = oa_client(gw)
    before = g.metrics(gw)
    first = oa.chat.completions.with_raw_response.create(model="c-oa", messages=USER, temperature=0)
    a = first.parse()
    assert first.headers["x-ratewise-cache"] == "miss"
    assert "age" not in first.headers
    second = oa.chat.completions.with_raw_response.create(model="c-oa", messages=USER, temperature=0)
    b = second.parse()
    assert second.headers["x-ratewise-cache"] == "hit"
    assert int(second.headers["age"]) >= 0
    assert float(second.headers["x-ratewise-cost-usd"]) == 0.0
    assert "x-ratewise-provider" not in second.headers
    assert b.choices[0].message.content == a.choices[0].message.content == words(OUT)
    assert b.id == a.id
    assert (b.usage.prompt_tokens, b.usage.completion_tokens, b.usage.total_tokens) == (0, 0, 0)
    assert received(mock, "c-oa") == 1
    after = g.metrics(gw)

    def delta(name, **labels):
        return g.metric_sum(after, name, **labels) - g.metric_sum(before, name, **labels)

    assert delta("ratewise_gateway_cache_requests_total", capability="c-oa", result="miss") == 1
    assert delta("ratewise_gateway_cache_requests_total", capability="c-oa", result="stored") == 1
    assert delta("ratewise_gateway_cache_requests_total", capability="c-oa", result="hit") == 1
    i, o = a.usage.prompt_tokens, a.usage.completion_tokens
    assert delta("ratewise_gateway_cache_saved_tokens_total", capability="c-oa", kind="input") == i
    assert delta("ratewise_gateway_cache_saved_tokens_total", capability="c-oa", kind="output") == o
    assert delta("ratewise_gateway_cache_saved_usd_total", capability="c-oa") == pytest.approx(
        g.mtok_cost(PRICE, i, o), rel=1e-9)
    assert g.metric_sum(after, "ratewise_gateway_cache_bytes", capability="c-oa") > 0
    # A hit takes no permit: the provider's requests quota counts only the miss.
    assert g.charged(g.snapshot(gw), "p-c-oa", "requests") == 1


def test_the_key_is_canonical_json_without_the_fields_that_do_not_change_the_answer(gw, mock):
    """Keys in another order, 0 written as 0.0, and another `user`, `metadata`, `stream_options`
    or `store`: one entry. Every field that changes the answer: a new entry."""
    base = ('{"model": "c-ctl", "messages": [{"role": "user", "content": "Tell me about lighthouses."}],'
            ' "temperature": 0, "max_tokens": 50}')
    same = ('{"max_tokens": 50.0, "user": "u-1", "metadata": {"trace": "x"}, "store": false,'
            ' "temperature": 0.0, "messages": [{"content": "Tell me about lighthouses.", "role": "user"}],'
            ' "model": "c-ctl"}')
    h = g.oa_headers(KEY_A)
    r1 = request(gw, "POST", "/v1/chat/completions", base, headers=h)
    r2 = request(gw, "POST", "/v1/chat/completions", same, headers=h)
    assert (r1.headers["x-ratewise-cache"], r2.headers["x-ratewise-cache"]) == ("miss", "hit")
    assert r2.json()["choices"] == r1.json()["choices"]
    assert received(mock, "c-ctl") == 1
    body = json.loads(base)
    changes = [{"max_tokens": 51}, {"top_p": 0.5}, {"stop": ["\n"]},
               {"messages": [{"role": "user", "content": "Tell me about lighthouses!"}]},
               {"response_format": {"type": "json_object"}},
               {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
               {"seed": 7}]
    for change in changes:
        r = request(gw, "POST", "/v1/chat/completions", {**body, **change}, headers=h)
        assert r.status == 200, (change, r)
        assert r.headers["x-ratewise-cache"] == "miss", change
    assert received(mock, "c-ctl") == 1 + len(changes)


def test_only_deterministic_requests_are_stored_unless_the_request_or_capability_opts_in(gw, mock):
    """temperature 0.7 and no seed: `bypass`, twice to the mock. A seed makes it deterministic.
    `x-ratewise-cache: ttl=N` opts one request in; `requests: all` opts a capability in."""
    r1 = chat(gw, "c-ctl", temperature=0.7)
    r2 = chat(gw, "c-ctl", temperature=0.7)
    assert (r1.headers["x-ratewise-cache"], r2.headers["x-ratewise-cache"]) == ("bypass", "bypass")
    assert received(mock, "c-ctl") == 2
    s1 = chat(gw, "c-ctl", temperature=0.7, seed=42)
    s2 = chat(gw, "c-ctl", temperature=0.7, seed=42)
    assert (s1.headers["x-ratewise-cache"], s2.headers["x-ratewise-cache"]) == ("miss", "hit")
    assert received(mock, "c-ctl") == 3
    t1 = chat(gw, "c-ctl", temperature=0.9, headers={"x-ratewise-cache": "ttl=60"})
    t2 = chat(gw, "c-ctl", temperature=0.9, headers={"x-ratewise-cache": "ttl=60"})
    assert (t1.headers["x-ratewise-cache"], t2.headers["x-ratewise-cache"]) == ("miss", "hit")
    assert received(mock, "c-ctl") == 4
    a1 = chat(gw, "c-all", temperature=1.0)
    a2 = chat(gw, "c-all", temperature=1.0)
    assert (a1.headers["x-ratewise-cache"], a2.headers["x-ratewise-cache"]) == ("miss", "hit")
    assert received(mock, "c-all") == 1


def test_a_short_ttl_expires_the_entry(gw, mock):
    """ttl=1: fresh for a second, then a miss again."""
    h = {"x-ratewise-cache": "ttl=1"}
    assert chat(gw, "c-ctl", headers=h, max_tokens=11).headers["x-ratewise-cache"] == "miss"
    assert chat(gw, "c-ctl", headers=h, max_tokens=11).headers["x-ratewise-cache"] == "hit"
    time.sleep(1.1)
    assert chat(gw, "c-ctl", headers=h, max_tokens=11).headers["x-ratewise-cache"] == "miss"
    assert received(mock, "c-ctl") == 2


def test_bypass_no_cache_and_no_store(gw, mock):
    """bypass / Cache-Control: no-cache skip the read and refresh the entry; no-store /
    Cache-Control: no-store serve a stored entry but never store; a value the gateway does not
    know is a 400 that reaches nothing."""
    assert chat(gw, "c-ctl", max_tokens=12, headers={"x-ratewise-cache": "no-store"}).headers[
        "x-ratewise-cache"] == "miss"
    assert chat(gw, "c-ctl", max_tokens=12, headers={"Cache-Control": "no-store"}).headers[
        "x-ratewise-cache"] == "miss"
    assert received(mock, "c-ctl") == 2
    assert chat(gw, "c-ctl", max_tokens=12).headers["x-ratewise-cache"] == "miss"  # stored now
    assert chat(gw, "c-ctl", max_tokens=12, headers={"x-ratewise-cache": "no-store"}).headers[
        "x-ratewise-cache"] == "hit"
    assert received(mock, "c-ctl") == 3
    for h in ({"x-ratewise-cache": "bypass"}, {"Cache-Control": "no-cache"}):
        r = chat(gw, "c-ctl", max_tokens=12, headers=h)
        assert r.status == 200 and r.headers["x-ratewise-cache"] == "bypass", (h, r.headers)
    assert received(mock, "c-ctl") == 5
    assert chat(gw, "c-ctl", max_tokens=12).headers["x-ratewise-cache"] == "hit"
    bad = chat(gw, "c-ctl", max_tokens=12, headers={"x-ratewise-cache": "sometimes"})
    assert bad.status == 400, bad
    assert "x-ratewise-cache" in bad.json()["error"]["message"]
    assert received(mock, "c-ctl") == 5


def test_tenants_never_share_an_entry_unless_one_team_names_both_keys(gw, mock):
    """Keys a and b are team t1: b is served a's entry. Key c (no team) is its own tenant."""
    assert chat(gw, "c-ten", KEY_A).headers["x-ratewise-cache"] == "miss"
    assert chat(gw, "c-ten", KEY_B).headers["x-ratewise-cache"] == "hit"
    assert received(mock, "c-ten") == 1
    c1 = chat(gw, "c-ten", KEY_C)
    assert c1.headers["x-ratewise-cache"] == "miss"
    assert chat(gw, "c-ten", KEY_C).headers["x-ratewise-cache"] == "hit"
    assert chat(gw, "c-ten", KEY_A).headers["x-ratewise-cache"] == "hit"
    assert received(mock, "c-ten") == 2
    # The same request to another capability is another entry.
    assert chat(gw, "c-ctl", KEY_A).headers["x-ratewise-cache"] == "miss"


def test_a_capability_with_the_cache_off_has_no_header_and_always_calls(gw, mock):
    for _ in range(2):
        r = chat(gw, "c-off")
        assert r.status == 200 and "x-ratewise-cache" not in r.headers, r.headers
    assert received(mock, "c-off") == 2


def test_embeddings_are_not_cached(gw, mock):
    for _ in range(2):
        r = request(gw, "POST", "/v1/embeddings", {"model": "c-oa", "input": "hi"}, headers=g.oa_headers())
        assert "x-ratewise-cache" not in r.headers, r.headers


# --------------------------------------------------------------------------------------------
# one entry for JSON and streams


def test_openai_json_entry_replayed_as_a_stream_and_usage_only_when_asked(gw, mock):
    """Stored from a JSON answer, served to the SDK's stream: the same text, the SSE shape, and
    the usage chunk (zeros) only with include_usage."""
    oa = oa_client(gw)
    first = oa.chat.completions.create(model="c-oa", messages=USER, temperature=0, max_tokens=33)
    raw = oa.chat.completions.with_raw_response.create(model="c-oa", messages=USER, temperature=0,
                                                       max_tokens=33, stream=True)
    assert raw.headers["x-ratewise-cache"] == "hit"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks)
    with_usage = list(oa.chat.completions.create(model="c-oa", messages=USER, temperature=0, max_tokens=33,
                                                 stream=True, stream_options={"include_usage": True}))
    assert with_usage[-1].choices == []
    assert (with_usage[-1].usage.prompt_tokens, with_usage[-1].usage.completion_tokens) == (0, 0)
    assert received(mock, "c-oa") == 1


def test_openai_stream_entry_served_as_json(gw, mock):
    """Stored once the stream ended normally, served whole as JSON with usage 0."""
    s = chat(gw, "c-oa", max_tokens=34, stream=True)
    assert s.headers["x-ratewise-cache"] == "miss"
    streamed = oa_stream_text(s)
    assert streamed == words(OUT, trailing=True)
    wait_stored(gw, "c-oa", 1)
    j = chat(gw, "c-oa", max_tokens=34)
    assert j.headers["x-ratewise-cache"] == "hit", j.headers
    body = j.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": streamed} or (
        body["choices"][0]["message"]["content"] == streamed)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == body["usage"]["completion_tokens"] == 0
    again = chat(gw, "c-oa", max_tokens=34, stream=True)
    assert again.headers["x-ratewise-cache"] == "hit"
    assert oa_stream_text(again) == streamed
    assert received(mock, "c-oa") == 1


def test_anthropic_json_and_stream_share_one_entry(gw, mock):
    """The real anthropic SDK: JSON stored, then streamed back (text, stop reason, usage 0);
    a stream stored, then served as JSON."""
    an = an_client(gw)
    raw = an.messages.with_raw_response.create(model="c-an", max_tokens=40, messages=USER, extra_body={"temperature": 0})
    first = raw.parse()
    assert raw.headers["x-ratewise-cache"] == "miss"
    with an.messages.stream(model="c-an", max_tokens=40, messages=USER, extra_body={"temperature": 0}) as st:
        streamed = "".join(st.text_stream)
        final = st.get_final_message()
    assert streamed == first.content[0].text == words(OUT)
    assert final.stop_reason == first.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (0, 0)
    assert received(mock, "c-an") == 1
    s = messages(gw, "c-an", max_tokens=41, stream=True)
    assert s.headers["x-ratewise-cache"] == "miss"
    text = an_stream_text(s)
    wait_stored(gw, "c-an", 2)
    hit = an.messages.with_raw_response.create(model="c-an", max_tokens=41, messages=USER, extra_body={"temperature": 0})
    assert hit.headers["x-ratewise-cache"] == "hit"
    m = hit.parse()
    assert m.content[0].text == text
    assert (m.usage.input_tokens, m.usage.output_tokens) == (0, 0)
    assert received(mock, "c-an") == 2


def test_tool_calls_are_stored_and_replayed(gw, mock):
    """A forced tool call stored from JSON comes back from a stream with the same id, name and
    arguments; stored from a stream it comes back as JSON."""
    params = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
              "required": ["city"]}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": params}}]
    oa = oa_client(gw)
    first = oa.chat.completions.create(model="c-tool", messages=USER, temperature=0, tools=tools,
                                       tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == tool_arguments(params)
    stream = list(oa.chat.completions.create(model="c-tool", messages=USER, temperature=0, tools=tools,
                                             tool_choice="required", stream=True))
    deltas = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == call.id and deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas) == call.function.arguments
    assert [c.choices[0].finish_reason for c in stream if c.choices][-1] == "tool_calls"
    assert received(mock, "c-tool") == 1
    s = chat(gw, "c-tool", stream=True, tools=tools, tool_choice="required", max_tokens=20)
    assert s.headers["x-ratewise-cache"] == "miss"
    wait_stored(gw, "c-tool", 2)
    j = chat(gw, "c-tool", tools=tools, tool_choice="required", max_tokens=20)
    assert j.headers["x-ratewise-cache"] == "hit"
    msg = j.json()["choices"][0]
    assert msg["finish_reason"] == "tool_calls"
    assert json.loads(msg["message"]["tool_calls"][0]["function"]["arguments"]) == tool_arguments(params)
    assert received(mock, "c-tool") == 2


# --------------------------------------------------------------------------------------------
# never stored


def test_errors_are_never_stored(gw, mock):
    """A 400 from the provider is answered as it is, and the next identical request calls
    again."""
    mock.set_faults({"model": "c-err", "status": 400, "count": 1})
    assert chat(gw, "c-err").status == 400
    r = chat(gw, "c-err")
    assert r.status == 200 and r.headers["x-ratewise-cache"] == "miss"
    assert chat(gw, "c-err").headers["x-ratewise-cache"] == "hit"
    assert received(mock, "c-err") == 2


def test_a_cut_stream_is_never_stored(gw, mock):
    """The provider cuts the stream after 2 events: the client sees it truncated, nothing is
    stored, and the next request calls again."""
    mock.set_faults({"model": "c-cut", "cut_stream_after": 2, "count": 1})
    cut = chat(gw, "c-cut", stream=True)
    assert cut.status == 200
    assert b"[DONE]" not in cut.body
    time.sleep(0.3)
    assert cache_count(gw, "c-cut", "stored") == 0
    r = chat(gw, "c-cut")
    assert r.headers["x-ratewise-cache"] == "miss"
    assert received(mock, "c-cut") == 2


def test_a_stream_the_client_abandons_is_never_stored(gw, mock):
    """The client hangs up after the first chunk: the upstream request is dropped, nothing is
    stored, and the next identical request is a miss."""
    body = {"model": "c-hang", "messages": USER, "temperature": 0, "stream": True}
    rs = g.RawStream(gw, "/v1/chat/completions", body, g.oa_headers())
    rs.read_until(b"tok0")
    rs.close()
    g.wait_until(lambda: model_stats(mock, "c-slow")["aborted"] == 1, 5.0, "the upstream to be dropped")
    g.settled(gw, ["p-c-hang"])
    assert cache_count(gw, "c-hang", "stored") == 0
    r = chat(gw, "c-hang")
    assert r.headers["x-ratewise-cache"] == "miss"
    assert received(mock, "c-slow") == 2


# --------------------------------------------------------------------------------------------
# degraded answers


def test_a_stale_entry_answers_when_every_attempt_fails(gw, mock):
    """ttl_s 1: after a second the entry is stale; with the provider failing, it is served,
    labelled stale (x-ratewise-degraded and x-ratewise-cache) with its age. A request with no
    entry gets the static answer, and so does `bypass` (it skips the stale entry only)."""
    first = chat(gw, "d-stale")
    assert first.headers["x-ratewise-cache"] == "miss"
    time.sleep(1.2)
    mock.set_faults({"model": "d-stale", "status": 500, "for_ms": 60_000})
    before = g.metrics(gw)
    r = chat(gw, "d-stale")
    assert r.status == 200, r
    assert r.headers["x-ratewise-degraded"] == "stale"
    assert r.headers["x-ratewise-cache"] == "stale"
    assert int(r.headers["age"]) >= 1
    assert r.json()["choices"] == first.json()["choices"]
    other = chat(gw, "d-stale", max_tokens=9)
    assert other.status == 200 and other.headers["x-ratewise-degraded"] == "static"
    assert other.json()["choices"][0]["message"]["content"] == RULES["default"]
    bypass = chat(gw, "d-stale", headers={"x-ratewise-cache": "bypass"})
    assert bypass.headers["x-ratewise-degraded"] == "static", bypass.headers
    after = g.metrics(gw)
    for kind, n in (("stale", 1), ("static", 2)):
        assert (g.metric_sum(after, "ratewise_gateway_degraded_total", capability="d-stale", kind=kind)
                - g.metric_sum(before, "ratewise_gateway_degraded_total", capability="d-stale", kind=kind)) == n
    assert "degraded answer" in gw.stderr_tail(20000)


def test_static_answers_by_rule_and_default_in_openai_shape(gw, mock):
    """Every attempt fails: the first rule whose word is in the last user message answers, else
    the default; the real SDK reads it as an ordinary answer (usage 0), JSON and stream."""
    mock.set_faults({"model": "d-static", "status": 503, "for_ms": 60_000})
    oa = oa_client(gw)
    raw = oa.chat.completions.with_raw_response.create(
        model="d-static", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes?"},
                                    {"role": "user", "content": "Where is my INVOICE?"}])
    assert raw.headers["x-ratewise-degraded"] == "static"
    r = raw.parse()
    assert r.choices[0].message.content == "Billing is down right now."
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "d-static"
    assert r.usage.total_tokens == 0
    stream = list(oa.chat.completions.create(
        model="d-static", messages=[{"role": "user", "content": "I forgot my password"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Reset it at /account."
    d = oa.chat.completions.create(model="d-static", messages=[{"role": "user", "content": "What's the weather?"}])
    assert d.choices[0].message.content == RULES["default"]


def test_static_answers_in_anthropic_shape(gw, mock):
    """The same through /v1/messages with the anthropic SDK: JSON and a stream."""
    mock.set_faults({"model": "d-static-an", "status": 529, "for_ms": 60_000})
    an = an_client(gw)
    raw = an.messages.with_raw_response.create(
        model="d-static-an", max_tokens=50, messages=[{"role": "user", "content": "refund please"}])
    assert raw.headers["x-ratewise-degraded"] == "static"
    m = raw.parse()
    assert m.content[0].text == "Billing is down right now."
    assert m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (0, 0)
    with an.messages.stream(model="d-static-an", max_tokens=50,
                            messages=[{"role": "user", "content": "hello"}]) as st:
        assert "".join(st.text_stream) == RULES["default"]
        assert st.get_final_message().stop_reason == "end_turn"


def test_no_rule_and_no_default_is_the_refusal(gw, mock):
    """Rules only: a matching message gets its answer; another gets the refusal, unlabelled."""
    mock.set_faults({"model": "d-nodef", "status": 500, "for_ms": 60_000})
    assert chat(gw, "d-nodef", messages=[{"role": "user", "content": "refund?"}]).headers[
        "x-ratewise-degraded"] == "static"
    r = chat(gw, "d-nodef", max_tokens=7)
    assert r.status >= 500, r
    assert "x-ratewise-degraded" not in r.headers
    assert r.json()["error"]


def test_degraded_answers_switched_off_per_capability_and_per_key(gw, mock):
    """degraded.enabled false on d-off: the refusal. On d-key, key d (degraded false) is
    refused while key a gets the static answer."""
    mock.set_faults([{"model": "d-off", "status": 500, "for_ms": 60_000},
                     {"model": "d-key", "status": 500, "for_ms": 60_000}])
    off = chat(gw, "d-off")
    assert off.status >= 500 and "x-ratewise-degraded" not in off.headers, off
    # Once its circuit is open (a few failures), for longer than any deadline, the refusal
    # comes at once, not at the end of a 30 s wait.
    g.wait_until(lambda: chat(gw, "d-off").status == 503, 20.0, "d-off's circuit to open", 0)
    t0 = time.monotonic()
    again = chat(gw, "d-off", headers={"x-ratewise-timeout-ms": "30000"})
    assert again.status == 503 and time.monotonic() - t0 < 10, again
    assert "circuit_open" in again.json()["error"]["message"]
    g.retry_after_ok(again.headers)
    refused = chat(gw, "d-key", KEY_D)
    assert refused.status >= 500 and "x-ratewise-degraded" not in refused.headers, refused
    served = chat(gw, "d-key", KEY_A)
    assert served.status == 200 and served.headers["x-ratewise-degraded"] == "static"


def test_a_callers_error_is_never_degraded(gw, mock):
    """A 400 from the provider is the caller's error: answered as it is, even with a static
    answer configured."""
    mock.set_faults({"model": "d-bad", "status": 400, "count": 1})
    r = chat(gw, "d-bad")
    assert r.status == 400, r
    assert "x-ratewise-degraded" not in r.headers
    assert received(mock, "d-bad") == 1


# --------------------------------------------------------------------------------------------
# the Redis tier


@pytest.fixture
def redis_url():
    url = os.environ.get("RATEWISE_REDIS_URL")
    if not url:
        if os.environ.get(g.REQUIRE_ENV) == "1":
            pytest.fail("RATEWISE_REQUIRE_GATEWAY=1 but RATEWISE_REDIS_URL is not set")
        pytest.skip("RATEWISE_REDIS_URL is not set (scripts/test-all.sh starts a Redis)")
    return url


def test_two_gateways_share_the_redis_tier(gateway_bin, stack, mock, redis_url, tmp_path):
    """Gateway one stores; gateway two (its own process, memory empty) is served the entry
    from Redis; the mock saw one request. Each instance's memory then holds it too."""
    prefix = "rwcache" + secrets.token_hex(4) + ":"
    cfg = gateway_config(mock.url, tmp_path, cache={"redis_url": redis_url, "redis_prefix": prefix,
                                                    "redis_timeout_ms": 1000})
    gws = []
    try:
        for name in ("one", "two"):
            d = tmp_path / name
            d.mkdir()
            gws.append(Gateway(gateway_bin, cfg, d))
        one, two = gws
        assert chat(one, "c-oa", max_tokens=77).headers["x-ratewise-cache"] == "miss"
        assert cache_count(one, "c-oa", "stored") == 1
        time.sleep(0.3)  # the Redis write is off the request path
        r = chat(two, "c-oa", max_tokens=77)
        assert r.headers["x-ratewise-cache"] == "hit", r.headers
        assert chat(two, "c-oa", max_tokens=77).headers["x-ratewise-cache"] == "hit"
        # The same request from another tenant is not served from Redis either.
        assert chat(two, "c-oa", KEY_C, max_tokens=77).headers["x-ratewise-cache"] == "miss"
        assert received(mock, "c-oa") == 2
        assert cache_count(two, "c-oa", "hit") == 2
    finally:
        for gw in gws:
            gw.stop()

