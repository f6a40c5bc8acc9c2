"""`ratewise serve` end to end with the Anthropic SDK on /v1/messages: to an Anthropic upstream
(passed through) and to an OpenAI upstream (translated), plus x-api-key auth, refusals and
bad input in Anthropic's error shape, and exact accounting.
"""

from __future__ import annotations

import json

import pytest

import gw_fixture as g
from gw_fixture import (KEY_A, KEY_B, KEY_UNKNOWN, UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY,
                        count_input_tokens, log_for, model_stats, request, sha256, text_of,
                        tool_arguments, words)

anthropic = pytest.importorskip("anthropic")

OUT = 8
MOCK_MODELS = {
    "claude-a": {"api": "anthropic", "output_tokens": OUT},
    "gpt-x": {"api": "openai", "output_tokens": OUT},
    "claude-acct": {"api": "anthropic", "output_tokens": OUT},
    "gpt-acct": {"api": "openai", "output_tokens": OUT},
    "claude-tiny": {"api": "anthropic", "output_tokens": 2},
}
PRICE_AN = {"input_per_mtok": 3000.0, "output_per_mtok": 15000.0}
ACCT_LIMIT = 1_000_000
CAPS = {"claude": ("an-1", "claude-a"), "claude-x": ("oa-x", "gpt-x"),
        "acct1": ("acct-an", "claude-acct"), "acct2": ("acct-oa", "gpt-acct"),
        "tiny": ("tiny-an", "claude-tiny")}


def gateway_config(mock_url, tmp):
    providers = [
        {"name": "an-1", "model": "claude-a", "quotas": [g.day_tokens()], "price": PRICE_AN},
        {"name": "oa-x", "model": "gpt-x", "quotas": [g.day_tokens()]},
        {"name": "acct-an", "model": "claude-acct", "quotas": [g.day_tokens(ACCT_LIMIT)]},
        {"name": "acct-oa", "model": "gpt-acct", "quotas": [g.day_tokens(ACCT_LIMIT)]},
        {"name": "tiny-an", "model": "claude-tiny",
         "quotas": [{"dimension": "requests", "limit": 1, "window": "minute"}]},
    ]
    upstreams = {p["name"]: g.upstream("openai" if p["model"].startswith("gpt") else "anthropic",
                                       mock_url) for p in providers}
    keys = [{"name": "team-a", "sha256": sha256(KEY_A)},
            {"name": "team-b", "sha256": sha256(KEY_B), "capabilities": ["claude-x"]}]
    return {
        "providers": providers,
        "capabilities": [{"name": c, "providers": [{"provider": p, "priority": 10}]}
                         for c, (p, _) in CAPS.items()],
        "lanes": g.LANES,
        "gateway": g.gateway_section(upstreams, keys),
    }


def client(gw, key=KEY_A, **kw):
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=gw.url, api_key=key, timeout=15, **kw)


@pytest.fixture
def an(gw):
    c = client(gw)
    yield c
    c.close()


USER = [{"role": "user", "content": "hello there"}]
TOOL_SCHEMA = {"type": "object",
               "properties": {"city": {"type": "string"},
                              "unit": {"type": "string", "enum": ["c", "f"]},
                              "days": {"type": "integer"}},
               "required": ["city"]}
TOOLS = [{"name": "get_weather", "description": "Weather for a city", "input_schema": TOOL_SCHEMA}]
TOOL_ARGS = tool_arguments(TOOL_SCHEMA)
CONV = [{"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "hi, how can I help"},
        {"role": "user", "content": "tell me more"}]


def only(entries):
    assert len(entries) == 1, f"expected one upstream request, the mock saw {len(entries)}"
    return entries[0]


def texts(msg):
    return [b.text for b in msg.content if b.type == "text"]


def stream_events(stream):
    evs = list(stream)
    text = "".join(e.delta.text for e in evs
                   if e.type == "content_block_delta" and e.delta.type == "text_delta")
    return evs, text


def stream_usage(evs):
    """(input, output, cache_read) of a stream: message_start's, updated by message_delta's."""
    start = [e for e in evs if e.type == "message_start"]
    deltas = [e for e in evs if e.type == "message_delta"]
    assert len(start) == 1 and len(deltas) == 1, [e.type for e in evs]
    u0, u1 = start[0].message.usage, deltas[0].usage
    inp = u1.input_tokens if getattr(u1, "input_tokens", None) else u0.input_tokens
    cache = getattr(u1, "cache_read_input_tokens", None) or u0.cache_read_input_tokens or 0
    return inp, u1.output_tokens, cache


# --------------------------------------------------------------------------------------------
# Anthropic upstream: passed through


def test_messages_json_exact(gw, mock, an):
    """A JSON messages call: exact text, stop reason, usage and x-ratewise headers, cost."""
    raw = an.messages.with_raw_response.create(model="claude", max_tokens=100, system="be terse",
                                               messages=USER)
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant"
    assert texts(m) == [words(OUT)]
    assert m.stop_reason == "end_turn"
    i, o = model_stats(mock, "claude-a")["input_tokens_charged"], OUT
    assert i == count_input_tokens({"messages": USER, "system": "be terse"}, "anthropic")
    assert (m.usage.input_tokens, m.usage.output_tokens) == (i, o)
    h = raw.headers
    assert h["x-ratewise-provider"] == "an-1"
    assert h["x-ratewise-model"] == "claude-a"
    assert h["x-ratewise-attempts"] == "1"
    assert h["x-request-id"]
    assert 0 <= int(h["x-ratewise-overhead-us"]) < 1_000_000
    assert float(h["x-ratewise-cost-usd"]) == pytest.approx(g.mtok_cost(PRICE_AN, i, o), rel=1e-9)


def test_upstream_gets_model_and_key(gw, mock, an):
    """The mock sees /v1/messages with the provider's model and the upstream key, not the client's."""
    an.messages.create(model="claude", max_tokens=50, messages=CONV,
                       extra_body={"temperature": 0.3})
    e = only(log_for(mock))
    assert e["path"] == "/v1/messages"
    b = e["body"]
    assert b["model"] == "claude-a" and b["max_tokens"] == 50 and b["temperature"] == 0.3
    assert [(m["role"], text_of(m["content"])) for m in b["messages"]] == \
        [(m["role"], m["content"]) for m in CONV]
    assert e["auth"] == {"header": "x-api-key", "sha256": sha256(UPSTREAM_ANTHROPIC_KEY)}
    assert KEY_A not in json.dumps(e)


def test_stream_events(gw, mock, an):
    """A stream: message_start .. message_stop, exact text, stop reason, usage from
    message_start and message_delta."""
    raw = an.messages.with_raw_response.create(model="claude", max_tokens=100, messages=USER,
                                               stream=True)
    assert raw.headers["x-ratewise-provider"] == "an-1"
    evs, text = stream_events(raw.parse())
    types = [e.type for e in evs]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types.count("content_block_start") == 1 and types.count("content_block_stop") == 1
    assert text == words(OUT, trailing=True)
    (d,) = [e for e in evs if e.type == "message_delta"]
    assert d.delta.stop_reason == "end_turn"
    i = model_stats(mock, "claude-a")["input_tokens_charged"]
    assert stream_usage(evs) == (i, OUT, 0)
    # The mock counts a stream done just before its last chunk's terminator, and the SDK stops
    # at the last event: the count may trail the client by a moment.
    g.wait_until(lambda: model_stats(mock, "claude-a")["ok"] == 1, 5.0, "the mock to count the stream done")


def test_max_tokens_stop_reason(gw, mock, an):
    """max_tokens below the answer: stop_reason max_tokens and that many tokens."""
    m = an.messages.create(model="claude", max_tokens=3, messages=USER)
    assert texts(m) == ["tok0 tok1 tok2"]
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 3


def test_stop_sequences(gw, mock, an):
    """stop_sequences: stop_reason stop_sequence and the sequence that matched."""
    m = an.messages.create(model="claude", max_tokens=100, messages=USER, stop_sequences=["tok2"])
    assert texts(m) == ["tok0 tok1"]
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "tok2"
    assert only(log_for(mock))["body"]["stop_sequences"] == ["tok2"]


def test_tool_use_and_result(gw, mock, an):
    """A forced tool comes back as a tool_use block; its tool_result goes up on the next turn."""
    q = [{"role": "user", "content": "weather in Paris?"}]
    m = an.messages.create(model="claude", max_tokens=100, messages=q, tools=TOOLS,
                           tool_choice={"type": "tool", "name": "get_weather"})
    assert m.stop_reason == "tool_use"
    (use,) = [b for b in m.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == TOOL_ARGS and use.id.startswith("toolu_")
    msgs = q + [{"role": "assistant", "content": [{"type": "tool_use", "id": use.id,
                                                   "name": use.name, "input": use.input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                              "content": "sunny, 21C"}]}]
    m2 = an.messages.create(model="claude", max_tokens=100, messages=msgs, tools=TOOLS)
    assert texts(m2) == [words(OUT)] and m2.stop_reason == "end_turn"
    up = log_for(mock)
    assert len(up) == 2 and up[0]["body"]["tools"] == TOOLS
    assert up[1]["body"]["messages"][2]["content"][0]["tool_use_id"] == use.id


def test_cached_usage(gw, mock, an):
    """Cache reads reported by the upstream reach the client (input excludes them)."""
    msgs = [{"role": "user", "content": "a long prompt [[mock_cached=3]]"}]
    m = an.messages.create(model="claude", max_tokens=100, messages=msgs)
    full = count_input_tokens({"messages": msgs}, "anthropic")
    assert m.usage.cache_read_input_tokens == 3
    assert m.usage.input_tokens == full - 3


# --------------------------------------------------------------------------------------------
# OpenAI upstream: translated


def test_translate_json_system_multiturn(gw, mock, an):
    """An Anthropic call to an OpenAI upstream: system as the first message, the turns,
    max_tokens; the answer, stop reason and usage back in Anthropic's shape."""
    raw = an.messages.with_raw_response.create(model="claude-x", max_tokens=100,
                                               system="be terse", messages=CONV)
    m = raw.parse()
    e = only(log_for(mock))
    assert e["path"] == "/v1/chat/completions"
    b = e["body"]
    assert b["model"] == "gpt-x"
    assert [(x["role"], text_of(x["content"])) for x in b["messages"]] == \
        [("system", "be terse")] + [(x["role"], x["content"]) for x in CONV]
    assert b.get("max_tokens", b.get("max_completion_tokens")) == 100
    assert e["auth"] == {"header": "authorization", "sha256": sha256(UPSTREAM_OPENAI_KEY)}
    assert m.type == "message" and m.role == "assistant"
    assert texts(m) == [words(OUT)]
    assert m.stop_reason == "end_turn"
    i = model_stats(mock, "gpt-x")["input_tokens_charged"]
    assert i == count_input_tokens(b, "openai")
    assert (m.usage.input_tokens, m.usage.output_tokens) == (i, OUT)
    assert raw.headers["x-ratewise-provider"] == "oa-x"
    assert raw.headers["x-ratewise-model"] == "gpt-x"
    assert raw.headers["x-ratewise-attempts"] == "1"
    assert "x-ratewise-cost-usd" not in raw.headers  # oa-x has no price


def test_translate_max_tokens_and_stop(gw, mock, an):
    """finish `length` -> stop_reason max_tokens; stop_sequences -> stop."""
    m = an.messages.create(model="claude-x", max_tokens=5, messages=USER)
    assert texts(m) == [words(5)] and m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 5
    m = an.messages.create(model="claude-x", max_tokens=100, messages=USER, stop_sequences=["tok2"])
    assert texts(m) == ["tok0 tok1"]
    assert m.stop_reason in ("end_turn", "stop_sequence")  # OpenAI does not say which stopped it
    assert m.usage.output_tokens == 2
    up = log_for(mock)
    assert up[1]["body"]["stop"] == ["tok2"]


def test_translate_tools_use_and_result(gw, mock, an):
    """Anthropic tools and tool_choice to OpenAI functions; tool_calls back as tool_use; the
    tool_result up as a `tool` message with the same id."""
    q = [{"role": "user", "content": "weather in Paris?"}]
    m = an.messages.create(model="claude-x", max_tokens=100, messages=q, tools=TOOLS,
                           tool_choice={"type": "tool", "name": "get_weather"})
    assert m.stop_reason == "tool_use"
    (use,) = [b for b in m.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == TOOL_ARGS
    assert use.id.startswith("call_")  # the upstream's id, kept
    b0 = only(log_for(mock))["body"]
    (tool,) = b0["tools"]
    assert tool["type"] == "function"
    assert (tool["function"]["name"], tool["function"]["description"],
            tool["function"]["parameters"]) == ("get_weather", "Weather for a city", TOOL_SCHEMA)
    assert b0["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    mock.reset()
    msgs = q + [{"role": "assistant", "content": [{"type": "tool_use", "id": use.id,
                                                   "name": use.name, "input": use.input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                              "content": "sunny, 21C"}]}]
    m2 = an.messages.create(model="claude-x", max_tokens=100, messages=msgs, tools=TOOLS)
    assert texts(m2) == [words(OUT)] and m2.stop_reason == "end_turn"
    up = only(log_for(mock))["body"]["messages"]
    assert [x["role"] for x in up] == ["user", "assistant", "tool"]
    (tc,) = up[1]["tool_calls"]
    assert tc["id"] == use.id and tc["type"] == "function"
    assert tc["function"]["name"] == "get_weather"
    assert json.loads(tc["function"]["arguments"]) == TOOL_ARGS
    assert up[2]["tool_call_id"] == use.id
    assert text_of(up[2]["content"]) == "sunny, 21C"


def test_translate_tool_choice_any(gw, mock, an):
    """tool_choice {"type": "any"} becomes OpenAI's "required"."""
    m = an.messages.create(model="claude-x", max_tokens=100, messages=USER, tools=TOOLS,
                           tool_choice={"type": "any"})
    assert m.stop_reason == "tool_use"
    assert only(log_for(mock))["body"]["tool_choice"] == "required"


def test_translate_stream(gw, mock, an):
    """An Anthropic stream from an OpenAI upstream: the event sequence, exact text, stop
    reason, and usage (input and output) in message_start/message_delta."""
    evs, text = stream_events(an.messages.create(model="claude-x", max_tokens=100, messages=USER,
                                                 stream=True))
    b = only(log_for(mock))["body"]
    assert b["stream"] is True and b["stream_options"]["include_usage"] is True
    types = [e.type for e in evs if e.type != "ping"]
    assert types == ["message_start", "content_block_start"] + \
        ["content_block_delta"] * len([e for e in evs if e.type == "content_block_delta"]) + \
        ["content_block_stop", "message_delta", "message_stop"]
    assert text == words(OUT, trailing=True)
    (d,) = [e for e in evs if e.type == "message_delta"]
    assert d.delta.stop_reason == "end_turn"
    i = model_stats(mock, "gpt-x")["input_tokens_charged"]
    assert stream_usage(evs) == (i, OUT, 0)


def test_translate_stream_tool_use(gw, mock, an):
    """A streamed OpenAI tool call arrives as a tool_use block with input_json_delta fragments."""
    evs = list(an.messages.create(model="claude-x", max_tokens=100, messages=USER, tools=TOOLS,
                                  tool_choice={"type": "tool", "name": "get_weather"},
                                  stream=True))
    starts = [e for e in evs if e.type == "content_block_start"]
    uses = [e for e in starts if e.content_block.type == "tool_use"]
    assert len(uses) == 1 and uses[0].content_block.name == "get_weather"
    idx = uses[0].index
    part = "".join(e.delta.partial_json for e in evs
                   if e.type == "content_block_delta" and e.index == idx
                   and e.delta.type == "input_json_delta")
    assert json.loads(part) == TOOL_ARGS
    (d,) = [e for e in evs if e.type == "message_delta"]
    assert d.delta.stop_reason == "tool_use"


def test_translate_cached_usage(gw, mock, an):
    """OpenAI cached_tokens become cache_read_input_tokens, and input_tokens excludes them."""
    msgs = [{"role": "user", "content": "a long prompt [[mock_cached=4]]"}]
    m = an.messages.create(model="claude-x", max_tokens=100, messages=msgs)
    full = count_input_tokens(only(log_for(mock))["body"], "openai")
    assert model_stats(mock, "gpt-x")["input_tokens_charged"] == full
    assert m.usage.cache_read_input_tokens == 4
    assert m.usage.input_tokens == full - 4
    assert m.usage.output_tokens == OUT


def test_translate_upstream_error_in_anthropic_shape(gw, mock, an):
    """An OpenAI 400 reaches the Anthropic client as a 400 in Anthropic's shape, sent once."""
    mock.set_faults({"model": "gpt-x", "status": 400, "count": 1})
    with pytest.raises(anthropic.BadRequestError) as ei:
        an.messages.create(model="claude-x", max_tokens=100, messages=USER)
    j = ei.value.response.json()
    assert j["type"] == "error" and j["error"]["type"] == "invalid_request_error"
    assert isinstance(j["error"]["message"], str) and j["error"]["message"]
    assert model_stats(mock, "gpt-x")["received"] == 1


# --------------------------------------------------------------------------------------------
# auth, refusals, bad input


def test_auth_x_api_key(gw, mock):
    """x-api-key: missing or unknown 401, a capability not in the key's list 403, in Anthropic's
    shape; the mock receives nothing for those."""
    r = request(gw, "POST", "/v1/messages",
                {"model": "claude", "max_tokens": 10, "messages": USER}, headers=g.an_headers(None))
    assert r.status == 401, r
    j = r.json()
    assert j["type"] == "error" and j["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        client(gw, KEY_UNKNOWN).messages.create(model="claude", max_tokens=10, messages=USER)
    with pytest.raises(anthropic.PermissionDeniedError) as ei:
        client(gw, KEY_B).messages.create(model="claude", max_tokens=10, messages=USER)
    j = ei.value.response.json()
    assert ei.value.status_code == 403
    assert j["type"] == "error" and j["error"]["type"] == "permission_error"
    assert mock.stats()["total"]["received"] == 0
    m = client(gw, KEY_B).messages.create(model="claude-x", max_tokens=10, messages=USER)
    assert m.stop_reason == "end_turn"
    assert mock.stats()["total"]["received"] == 1


def test_refusal_429_anthropic_shape(gw, mock, an):
    """No quota before the deadline: 429 in Anthropic's shape with Retry-After and
    retry-after-ms; the SDK raises RateLimitError; the refused call never reaches the mock."""
    an.messages.create(model="tiny", max_tokens=10, messages=USER)
    with pytest.raises(anthropic.RateLimitError) as ei:
        an.messages.create(model="tiny", max_tokens=10, messages=USER,
                           extra_headers={"x-ratewise-timeout-ms": "0"})
    resp = ei.value.response
    assert resp.status_code == 429
    ra, ms = g.retry_after_ok(resp.headers)
    assert 58 <= ra <= 60 and 57_000 <= ms <= 60_000
    j = resp.json()
    assert j["type"] == "error" and j["error"]["type"] == "rate_limit_error"
    assert isinstance(j["error"]["message"], str)
    assert model_stats(mock, "claude-tiny")["received"] == 1


def test_invalid_json_400(gw, mock):
    """An invalid JSON body on /v1/messages: 400 invalid_request_error in Anthropic's shape."""
    r = request(gw, "POST", "/v1/messages", b'{"model": "claude", ', headers=g.an_headers())
    assert r.status == 400, r
    j = r.json()
    assert j["type"] == "error" and j["error"]["type"] == "invalid_request_error"
    assert mock.stats()["total"]["received"] == 0


def test_unknown_model_404(gw, mock, an):
    """An unknown model on /v1/messages: 404 not_found_error in Anthropic's shape."""
    with pytest.raises(anthropic.NotFoundError) as ei:
        an.messages.create(model="no-such-model", max_tokens=10, messages=USER)
    j = ei.value.response.json()
    assert j["type"] == "error" and j["error"]["type"] == "not_found_error"
    assert mock.stats()["total"]["received"] == 0


def test_body_over_limit_413(gw, mock):
    """A body over max_body_bytes on /v1/messages: 413; nothing sent upstream."""
    big = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "y" * 70_000}]}
    r = request(gw, "POST", "/v1/messages", big, headers=g.an_headers())
    assert r.status == 413, r
    assert mock.stats()["total"]["received"] == 0


def test_upstream_keys_never_leak(gw, mock, an):
    """No upstream key in Anthropic-side responses, errors, streams, /metrics or /admin/engine."""
    seen = []
    for model in ("claude", "claude-x"):
        raw = an.messages.with_raw_response.create(model=model, max_tokens=10, messages=USER)
        seen += [("headers", json.dumps(dict(raw.headers))), ("body", raw.http_response.text)]
        r = request(gw, "POST", "/v1/messages", {"model": model, "max_tokens": 10,
                                                  "messages": USER, "stream": True},
                    headers=g.an_headers())
        seen += [("stream", r.text), ("stream headers", json.dumps(r.headers))]
    mock.set_faults([{"model": "claude-a", "status": 400, "count": 1},
                     {"model": "gpt-x", "status": 400, "count": 1}])
    for model in ("claude", "claude-x"):
        r = request(gw, "POST", "/v1/messages", {"model": model, "max_tokens": 10, "messages": USER},
                    headers=g.an_headers())
        assert r.status == 400, r
        seen += [("error", r.text), ("error headers", json.dumps(r.headers))]
    for path, h in (("/metrics", {}), ("/admin/engine", {"Authorization": f"Bearer {g.ADMIN_KEY}"}),
                    ("/v1/models", g.oa_headers())):
        r = request(gw, "GET", path, headers=h)
        seen += [(path, r.text), (path + " headers", json.dumps(r.headers))]
    for where, text in seen:
        g.assert_no_secret(where, text)
    hashes = {e["auth"]["sha256"] for e in mock.log() if e["auth"]}
    assert {sha256(UPSTREAM_OPENAI_KEY), sha256(UPSTREAM_ANTHROPIC_KEY)} <= hashes


# --------------------------------------------------------------------------------------------
# accounting


def test_exact_accounting(gw, mock, an):
    """After Anthropic JSON calls and streams to both upstream APIs, each day-long fixed-window
    tokens quota = limit - what the mock charged."""
    for model in ("acct1", "acct2"):
        an.messages.create(model=model, max_tokens=3, messages=USER)
        for k in (1, 2):
            an.messages.create(model=model, max_tokens=3 + k, system="s" * (k * 5),
                               messages=[{"role": "user", "content": "q" * (1 + k * 11)}])
    for model in ("acct1", "acct2"):
        list(an.messages.create(model=model, max_tokens=100, messages=CONV, stream=True))
        list(an.messages.create(model=model, max_tokens=4, system="sys", messages=USER, stream=True))
    s = g.settled(gw, ["acct-an", "acct-oa"])
    for prov, model in (("acct-an", "claude-acct"), ("acct-oa", "gpt-acct")):
        st = model_stats(mock, model)
        assert st["ok"] == 5
        spent = st["input_tokens_charged"] + st["output_tokens_charged"]
        assert g.quota(s, prov, "tokens")["remaining"] == ACCT_LIMIT - spent, prov
