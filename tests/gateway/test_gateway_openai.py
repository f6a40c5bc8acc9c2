"""`ratewise serve` end to end with the OpenAI SDK on /v1/chat/completions, /v1/embeddings and
/v1/models: to an OpenAI upstream (passed through) and to an Anthropic upstream (translated),
plus auth, lanes, refusals, bad input, the admin and metrics endpoints, and exact accounting.
"""

from __future__ import annotations

import json
import math
import time

import pytest

import gw_fixture as g
from gw_fixture import (ADMIN_KEY, KEY_A, KEY_B, KEY_UNKNOWN, UPSTREAM_FILE_KEY,
                        UPSTREAM_OPENAI_KEY, count_input_tokens, log_for, model_stats, request,
                        sha256, text_of, tool_arguments, words)

openai = pytest.importorskip("openai")

OUT = 8  # output tokens of every mock model here
MOCK_MODELS = {
    "gpt-a": {"api": "openai", "output_tokens": OUT},
    "claude-a": {"api": "anthropic", "output_tokens": OUT},
    "emb-a": {"api": "openai"},
    "gpt-acct": {"api": "openai", "output_tokens": OUT},
    "claude-acct": {"api": "anthropic", "output_tokens": OUT},
    "gpt-lane": {"api": "openai", "output_tokens": 2},
    "gpt-tiny": {"api": "openai", "output_tokens": 2},
    "gpt-retry": {"api": "openai", "output_tokens": 2},
}

PRICE_OA = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
PRICE_AN = {"input_per_mtok": 3000.0, "output_per_mtok": 5000.0}
ACCT_LIMIT = 1_000_000

# capability -> provider -> mock model
CAPS = {"chat": ("oa-1", "gpt-a"), "chat-x": ("an-1", "claude-a"), "embed": ("emb-1", "emb-a"),
        "acct1": ("acct-oa", "gpt-acct"), "acct2": ("acct-an", "claude-acct"),
        "lanes": ("lane-1", "gpt-lane"), "tiny": ("tiny-1", "gpt-tiny"),
        "retry": ("retry-1", "gpt-retry")}


def gateway_config(mock_url, tmp):
    key_file = tmp / "anthropic.key"
    key_file.write_text(UPSTREAM_FILE_KEY)
    providers = [
        {"name": "oa-1", "model": "gpt-a", "quotas": [g.day_tokens()], "price": PRICE_OA},
        {"name": "an-1", "model": "claude-a", "quotas": [g.day_tokens()], "price": PRICE_AN},
        {"name": "emb-1", "model": "emb-a", "quotas": [g.day_tokens()]},
        {"name": "acct-oa", "model": "gpt-acct", "quotas": [g.day_tokens(ACCT_LIMIT)]},
        {"name": "acct-an", "model": "claude-acct", "quotas": [g.day_tokens(ACCT_LIMIT)]},
        {"name": "lane-1", "model": "gpt-lane", "quotas": [g.day_tokens()]},
        {"name": "tiny-1", "model": "gpt-tiny",
         "quotas": [{"dimension": "requests", "limit": 1, "window": "minute"}]},
        {"name": "retry-1", "model": "gpt-retry",
         "quotas": [{"dimension": "requests", "limit": 1, "window": "second"}]},
    ]
    api = {"claude-a": "anthropic", "claude-acct": "anthropic"}
    upstreams = {}
    for p in providers:
        a = api.get(p["model"], "openai")
        if a == "anthropic":
            upstreams[p["name"]] = g.upstream(a, mock_url, key="file", key_file=key_file)
        else:
            upstreams[p["name"]] = g.upstream(a, mock_url, headers={"x-extra-oa": "on"})
    keys = [{"name": "team-a", "sha256": sha256(KEY_A)},
            {"name": "team-b", "sha256": sha256(KEY_B), "capabilities": ["embed", "lanes"],
             "lanes": ["batch", "normal"]}]
    return {
        "providers": providers,
        "capabilities": [{"name": c, "providers": [{"provider": p, "priority": 10}]}
                         for c, (p, _) in CAPS.items()],
        "lanes": g.LANES,
        "gateway": g.gateway_section(upstreams, keys),
    }


@pytest.fixture
def oa(gw):
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY_A, max_retries=0, timeout=15)
    yield c
    c.close()


def client(gw, key=KEY_A, **kw):
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, timeout=15, **kw)


USER = [{"role": "user", "content": "hello there"}]
TOOL_PARAMS = {"type": "object",
               "properties": {"city": {"type": "string"},
                              "unit": {"type": "string", "enum": ["c", "f"]},
                              "days": {"type": "integer"}},
               "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather",
                                           "description": "Weather for a city",
                                           "parameters": TOOL_PARAMS}}]
TOOL_ARGS = tool_arguments(TOOL_PARAMS)


def only(entries):
    assert len(entries) == 1, f"expected one upstream request, the mock saw {len(entries)}"
    return entries[0]


def charged_in_out(mock, model):
    s = model_stats(mock, model)
    return s["input_tokens_charged"], s["output_tokens_charged"]


# --------------------------------------------------------------------------------------------
# OpenAI upstream: passed through


def test_chat_json_exact(gw, mock, oa):
    """A JSON chat call: exact text, finish reason, usage, and every x-ratewise header."""
    raw = oa.chat.completions.with_raw_response.create(model="chat", messages=USER)
    r = raw.parse()
    assert r.choices[0].message.content == words(OUT)
    assert r.choices[0].finish_reason == "stop"
    i, o = charged_in_out(mock, "gpt-a")
    assert (i, o) == (count_input_tokens({"messages": USER}, "openai"), OUT)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (i, o, i + o)
    h = raw.headers
    assert h["x-ratewise-provider"] == "oa-1"
    assert h["x-ratewise-model"] == "gpt-a"
    assert h["x-ratewise-attempts"] == "1"
    assert h["x-request-id"]
    assert 0 <= int(h["x-ratewise-overhead-us"]) < 1_000_000
    assert float(h["x-ratewise-cost-usd"]) == pytest.approx(g.mtok_cost(PRICE_OA, i, o), rel=1e-9)
    raw2 = oa.chat.completions.with_raw_response.create(model="chat", messages=USER)
    assert raw2.headers["x-request-id"] != h["x-request-id"]
    assert model_stats(mock, "gpt-a")["received"] == 2


def test_upstream_gets_provider_model_and_upstream_key(gw, mock, oa):
    """The mock sees the provider's model, the messages, the configured extra header and the
    upstream key from api_key_env, never the client's key."""
    oa.chat.completions.create(model="chat", messages=USER, temperature=0.5)
    e = only(log_for(mock))
    assert e["path"] == "/v1/chat/completions"
    assert e["body"]["model"] == "gpt-a"
    assert e["body"]["messages"] == USER
    assert e["body"]["temperature"] == 0.5
    assert e["auth"] == {"header": "authorization", "sha256": sha256(UPSTREAM_OPENAI_KEY)}
    assert e["headers"].get("x-extra-oa") == "on"
    assert KEY_A not in json.dumps(e)


def test_stream_without_usage_hides_usage_chunk(gw, mock, oa):
    """A stream whose client did not ask for usage: the gateway asks upstream for it and hides
    the usage chunk; the text joins exactly."""
    raw = oa.chat.completions.with_raw_response.create(model="chat", messages=USER, stream=True)
    assert raw.headers["x-ratewise-provider"] == "oa-1"
    assert raw.headers["x-ratewise-attempts"] == "1"
    chunks = list(raw.parse())
    assert all(c.choices for c in chunks), "a chunk with choices [] reached a client that did not ask"
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == words(OUT, trailing=True)
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    body = only(log_for(mock))["body"]
    assert body["stream"] is True
    assert body["stream_options"]["include_usage"] is True
    # The mock counts a stream done just before its last chunk's terminator, and the SDK stops
    # at the last event: the count may trail the client by a moment.
    g.wait_until(lambda: model_stats(mock, "gpt-a")["ok"] == 1, 5.0, "the mock to count the stream done")


def test_stream_with_usage_gets_usage_chunk(gw, mock, oa):
    """A stream whose client asked for usage gets the usage chunk (choices []) with exact counts."""
    chunks = list(oa.chat.completions.create(model="chat", messages=USER, stream=True,
                                             stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == []
    i, o = charged_in_out(mock, "gpt-a")
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (i, o)
    assert last.usage.total_tokens == i + o
    assert sum(1 for c in chunks if not c.choices) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        words(OUT, trailing=True)


def test_model_naming_a_provider_pins_it(gw, mock, oa):
    """`model` set to a provider's name pins that provider (and its upstream model)."""
    raw = oa.chat.completions.with_raw_response.create(model="oa-1", messages=USER)
    assert raw.headers["x-ratewise-provider"] == "oa-1"
    assert raw.parse().choices[0].message.content == words(OUT)
    assert only(log_for(mock))["body"]["model"] == "gpt-a"


def test_max_tokens_finish_length(gw, mock, oa):
    """max_tokens reaches the upstream; a cut answer finishes with `length`."""
    r = oa.chat.completions.create(model="chat", messages=USER, max_tokens=3)
    assert r.choices[0].message.content == "tok0 tok1 tok2"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    body = only(log_for(mock))["body"]
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 3


def test_stop_sequence(gw, mock, oa):
    """`stop` reaches the upstream and ends the answer there."""
    r = oa.chat.completions.create(model="chat", messages=USER, stop=["tok3"])
    assert r.choices[0].message.content == "tok0 tok1 tok2"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 3
    assert only(log_for(mock))["body"]["stop"] == ["tok3"]


def test_tool_call_and_result(gw, mock, oa):
    """A forced tool call comes back as tool_calls; the tool result goes up on the next turn."""
    r = oa.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "weather in Paris?"}], tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    (tc,) = ch.message.tool_calls
    assert tc.type == "function" and tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == TOOL_ARGS
    assert tc.id.startswith("call_")
    msgs = [{"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": tc.id, "type": "function",
                 "function": {"name": "get_weather", "arguments": tc.function.arguments}}]},
            {"role": "tool", "tool_call_id": tc.id, "content": "sunny, 21C"}]
    r2 = oa.chat.completions.create(model="chat", messages=msgs, tools=TOOLS)
    assert r2.choices[0].message.content == words(OUT)
    assert r2.choices[0].finish_reason == "stop"
    up = log_for(mock)
    assert len(up) == 2
    assert up[0]["body"]["tools"] == TOOLS
    sent = up[1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == tc.id
    assert sent[2] == {"role": "tool", "tool_call_id": tc.id, "content": "sunny, 21C"}


def test_cached_usage_passthrough(gw, mock, oa):
    """Cached prompt tokens reported by the upstream reach the client."""
    msgs = [{"role": "user", "content": "a long prompt [[mock_cached=3]]"}]
    r = oa.chat.completions.create(model="chat", messages=msgs)
    assert r.usage.prompt_tokens == count_input_tokens({"messages": msgs}, "openai")
    assert r.usage.prompt_tokens_details.cached_tokens == 3


# --------------------------------------------------------------------------------------------
# Anthropic upstream: translated


CONV = [{"role": "system", "content": "be terse"},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "hi, how can I help"},
        {"role": "user", "content": "tell me more"}]


def test_translate_json_system_multiturn(gw, mock, oa):
    """An OpenAI chat call to an Anthropic upstream: system prompt, turns, default max_tokens,
    the upstream key from api_key_file, and the answer, finish reason, usage and cost back."""
    raw = oa.chat.completions.with_raw_response.create(model="chat-x", messages=CONV)
    r = raw.parse()
    e = only(log_for(mock))
    assert e["path"] == "/v1/messages"
    b = e["body"]
    assert b["model"] == "claude-a"
    assert text_of(b["system"]) == "be terse"
    assert [(m["role"], text_of(m["content"])) for m in b["messages"]] == [
        ("user", "hello there"), ("assistant", "hi, how can I help"), ("user", "tell me more")]
    assert b["max_tokens"] == 4096
    assert e["auth"] == {"header": "x-api-key", "sha256": sha256(UPSTREAM_FILE_KEY)}
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == words(OUT)
    assert r.choices[0].finish_reason == "stop"
    i, o = charged_in_out(mock, "claude-a")
    assert i == count_input_tokens(b, "anthropic")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (i, o, i + o)
    assert raw.headers["x-ratewise-provider"] == "an-1"
    assert raw.headers["x-ratewise-model"] == "claude-a"
    assert raw.headers["x-ratewise-attempts"] == "1"
    assert float(raw.headers["x-ratewise-cost-usd"]) == pytest.approx(
        g.mtok_cost(PRICE_AN, i, o), rel=1e-9)


def test_translate_max_tokens_and_stop(gw, mock, oa):
    """max_tokens -> max_tokens and `length`; stop -> stop_sequences and `stop`."""
    r = oa.chat.completions.create(model="chat-x", messages=USER, max_tokens=5)
    assert r.choices[0].message.content == words(5)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    r = oa.chat.completions.create(model="chat-x", messages=USER, stop=["tok2"])
    assert r.choices[0].message.content == "tok0 tok1"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 2
    up = log_for(mock)
    assert up[0]["body"]["max_tokens"] == 5
    assert up[1]["body"]["stop_sequences"] == ["tok2"]


def test_translate_tools_call_and_result(gw, mock, oa):
    """Tools, a forced tool_choice, the tool_use answer as tool_calls, and the tool result
    going back as a tool_result block with the same id."""
    q = [{"role": "user", "content": "weather in Paris?"}]
    r = oa.chat.completions.create(model="chat-x", messages=q, tools=TOOLS,
                                   tool_choice={"type": "function",
                                                "function": {"name": "get_weather"}})
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    (tc,) = ch.message.tool_calls
    assert tc.type == "function" and tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == TOOL_ARGS
    up0 = only(log_for(mock))["body"]
    (tool,) = up0["tools"]
    assert (tool["name"], tool["description"], tool["input_schema"]) == \
        ("get_weather", "Weather for a city", TOOL_PARAMS)
    assert (up0["tool_choice"]["type"], up0["tool_choice"]["name"]) == ("tool", "get_weather")
    assert tc.id.startswith("toolu_")  # the upstream's id, kept
    mock.reset()
    msgs = q + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": tc.id, "type": "function",
         "function": {"name": "get_weather", "arguments": tc.function.arguments}}]},
        {"role": "tool", "tool_call_id": tc.id, "content": "sunny, 21C"}]
    r2 = oa.chat.completions.create(model="chat-x", messages=msgs, tools=TOOLS)
    assert r2.choices[0].message.content == words(OUT)
    assert r2.choices[0].finish_reason == "stop"
    up = only(log_for(mock))["body"]["messages"]
    assert [m["role"] for m in up] == ["user", "assistant", "user"]
    (use,) = [b for b in up[1]["content"] if b.get("type") == "tool_use"]
    assert (use["id"], use["name"], use["input"]) == (tc.id, "get_weather", TOOL_ARGS)
    (res,) = [b for b in up[2]["content"] if b.get("type") == "tool_result"]
    assert res["tool_use_id"] == tc.id
    assert text_of(res["content"]) == "sunny, 21C"


def test_translate_tool_choice_required(gw, mock, oa):
    """tool_choice "required" becomes Anthropic's {"type": "any"}."""
    r = oa.chat.completions.create(model="chat-x", messages=USER, tools=TOOLS,
                                   tool_choice="required")
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert only(log_for(mock))["body"]["tool_choice"]["type"] == "any"


def test_translate_stream_text_and_usage(gw, mock, oa):
    """An OpenAI stream from an Anthropic upstream: exact text, finish reason, and the usage
    chunk only for the client that asked for it."""
    chunks = list(oa.chat.completions.create(model="chat-x", messages=USER, stream=True,
                                             stream_options={"include_usage": True}))
    body = only(log_for(mock))["body"]
    assert body["stream"] is True and body["model"] == "claude-a"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == words(OUT, trailing=True)
    assert [c.choices[0].finish_reason for c in chunks
            if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = [c for c in chunks if not c.choices]
    assert len(usage) == 1 and usage[0] is chunks[-1]
    i, o = charged_in_out(mock, "claude-a")
    assert (usage[0].usage.prompt_tokens, usage[0].usage.completion_tokens) == (i, o)
    mock.reset()
    chunks = list(oa.chat.completions.create(model="chat-x", messages=USER, stream=True))
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == words(OUT, trailing=True)


def test_translate_stream_tool_call(gw, mock, oa):
    """A streamed tool_use from an Anthropic upstream arrives as tool_calls deltas whose
    arguments join into the tool's input."""
    chunks = list(oa.chat.completions.create(
        model="chat-x", messages=USER, tools=TOOLS, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls, "no tool_calls delta"
    assert calls[0].function.name == "get_weather" and calls[0].id
    assert {tc.index for tc in calls} == {0}
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == TOOL_ARGS
    assert [c.choices[0].finish_reason for c in chunks
            if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_translate_cached_usage(gw, mock, oa):
    """Anthropic cache reads become prompt_tokens (input + cached) and cached_tokens."""
    msgs = [{"role": "user", "content": "a long prompt [[mock_cached=4]]"}]
    r = oa.chat.completions.create(model="chat-x", messages=msgs)
    body = only(log_for(mock))["body"]
    full = count_input_tokens(body, "anthropic")
    assert model_stats(mock, "claude-a")["input_tokens_charged"] == full - 4
    assert r.usage.prompt_tokens == full
    assert r.usage.prompt_tokens_details.cached_tokens == 4
    assert r.usage.completion_tokens == OUT


def test_translate_upstream_error_in_openai_shape(gw, mock, oa):
    """An Anthropic 400 reaches the OpenAI client as a 400 in OpenAI's shape, sent once."""
    mock.set_faults({"model": "claude-a", "status": 400, "count": 1})
    with pytest.raises(openai.BadRequestError) as ei:
        oa.chat.completions.create(model="chat-x", messages=USER)
    assert ei.value.status_code == 400
    err = ei.value.response.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    assert model_stats(mock, "claude-a")["received"] == 1


# --------------------------------------------------------------------------------------------
# embeddings, models


def test_embeddings(gw, mock, oa):
    """Embeddings through the gateway: the mock's vectors (base64, the SDK's default), usage."""
    inputs = ["hello world", "abc"]
    raw = oa.embeddings.with_raw_response.create(model="embed", input=inputs)
    r = raw.parse()
    assert raw.headers["x-ratewise-provider"] == "emb-1"
    assert [d.index for d in r.data] == [0, 1]
    for d, s in zip(r.data, inputs):
        assert d.embedding == pytest.approx(g.embedding_vector(s), abs=1e-6)
    n = sum(math.ceil(len(s) / 4) + 1 for s in inputs)
    assert r.usage.prompt_tokens == n
    body = only(log_for(mock))["body"]
    assert body["model"] == "emb-a" and body["input"] == inputs


def test_models_list(gw, mock):
    """GET /v1/models lists the capabilities with their providers, in OpenAI's list shape."""
    r = request(gw, "GET", "/v1/models", headers=g.oa_headers())
    assert r.status == 200, r
    j = r.json()
    assert j["object"] == "list"
    assert sorted(m["id"] for m in j["data"]) == sorted(CAPS)
    for m in j["data"]:
        assert m["object"] == "model" and m["owned_by"] == "ratewise"
        (p,) = m["providers"]
        prov, model = CAPS[m["id"]]
        assert (p["name"], p["model"]) == (prov, model)
        assert p["api"] == ("anthropic" if model.startswith("claude") else "openai")
        assert isinstance(p["health"], (int, float)) and 0 <= p["health"] <= 1
        assert p["circuit"] == "closed"
    ids = sorted(m.id for m in client(gw).models.list())
    assert ids == sorted(CAPS)
    assert mock.stats()["total"]["received"] == 0


# --------------------------------------------------------------------------------------------
# auth, admin, metrics, health


def test_auth_missing_unknown_and_forbidden(gw, mock):
    """No key or an unknown key: 401; a capability not in the key's list: 403; the mock
    receives nothing."""
    r = request(gw, "POST", "/v1/chat/completions", {"model": "chat", "messages": USER},
                headers=g.oa_headers(None))
    assert r.status == 401, r
    assert set(r.json()["error"]) >= {"message", "type"}
    with pytest.raises(openai.AuthenticationError) as ei:
        client(gw, KEY_UNKNOWN).chat.completions.create(model="chat", messages=USER)
    assert ei.value.status_code == 401
    with pytest.raises(openai.PermissionDeniedError) as ei:
        client(gw, KEY_B).chat.completions.create(model="chat", messages=USER)
    assert ei.value.status_code == 403
    assert set(ei.value.response.json()["error"]) >= {"message", "type"}
    ok = client(gw, KEY_B).embeddings.create(model="embed", input="x", encoding_format="float")
    assert len(ok.data) == 1
    st = mock.stats()
    assert st["total"]["received"] == 1 and model_stats(mock, "gpt-a")["received"] == 0
    assert len(mock.log()) == 1


def test_admin_engine(gw, mock, oa):
    """/admin/engine: 401 without the admin key (a client key is not enough), else the snapshot."""
    for h in ({}, {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": "Bearer nope"}):
        assert request(gw, "GET", "/admin/engine", headers=h).status == 401
    s0 = g.settled(gw, ["lane-1"])
    oa.chat.completions.create(model="lanes", messages=USER)
    s = g.settled(gw, ["lane-1"])
    assert set(s["providers"]) == {p for p, _ in CAPS.values()}
    q = g.quota(s, "oa-1", "tokens")
    assert q["capacity"] == 10_000_000
    assert isinstance(s["providers"]["lane-1"]["health"], (int, float))
    i, o = charged_in_out(mock, "gpt-lane")
    assert i + o == count_input_tokens({"messages": USER}, "openai") + 2
    assert g.charged(s, "lane-1") - g.charged(s0, "lane-1") == i + o


def test_metrics_count_requests(gw, mock, oa):
    """/metrics: ratewise_gateway_requests_total{capability,provider,status,domain} goes up by
    exactly one per call."""
    name = "ratewise_gateway_requests_total"
    before = g.metric_sum(g.metrics(gw), name, capability="chat", provider="oa-1", status="200")
    oa.chat.completions.create(model="chat", messages=USER)
    samples = g.metrics(gw)
    after = g.metric_sum(samples, name, capability="chat", provider="oa-1", status="200")
    assert after - before == 1
    mine = [ls for n, ls, _ in samples if n == name and ls.get("provider") == "oa-1"]
    assert mine and all({"capability", "provider", "status", "domain"} <= set(ls) for ls in mine)


def test_healthz_readyz(gw, mock):
    """/healthz and /readyz answer 200 while serving."""
    assert request(gw, "GET", "/healthz").status == 200
    assert request(gw, "GET", "/readyz").status == 200


def test_upstream_keys_never_leak(gw, mock, oa):
    """No upstream API key in any response body or header, /metrics, /admin/engine or /v1/models."""
    seen = []
    raw = oa.chat.completions.with_raw_response.create(model="chat", messages=USER)
    seen.append(("chat headers", json.dumps(dict(raw.headers))))
    seen.append(("chat body", raw.http_response.text))
    mock.set_faults([{"model": "gpt-a", "status": 400, "count": 1},
                     {"model": "claude-a", "status": 400, "count": 1}])
    for model in ("chat", "chat-x"):
        r = request(gw, "POST", "/v1/chat/completions", {"model": model, "messages": USER},
                    headers=g.oa_headers())
        assert r.status == 400, r
        seen += [(f"{model} error headers", json.dumps(r.headers)), (f"{model} error body", r.text)]
        r = request(gw, "POST", "/v1/chat/completions",
                    {"model": model, "messages": USER, "stream": True}, headers=g.oa_headers())
        seen += [(f"{model} stream headers", json.dumps(r.headers)), (f"{model} stream", r.text)]
    for path, h in (("/metrics", {}), ("/v1/models", g.oa_headers()),
                    ("/admin/engine", {"Authorization": f"Bearer {ADMIN_KEY}"}),
                    ("/healthz", {}), ("/readyz", {})):
        r = request(gw, "GET", path, headers=h)
        seen += [(path, r.text), (path + " headers", json.dumps(r.headers))]
    for where, text in seen:
        g.assert_no_secret(where, text)
    # and the keys did reach the mock (so the check above is not vacuous)
    hashes = {e["auth"]["sha256"] for e in mock.log() if e["auth"]}
    assert {sha256(UPSTREAM_OPENAI_KEY), sha256(UPSTREAM_FILE_KEY)} <= hashes


# --------------------------------------------------------------------------------------------
# bad input


def test_invalid_json_400(gw, mock):
    """An invalid JSON body: 400 in OpenAI's error shape; nothing sent upstream."""
    r = request(gw, "POST", "/v1/chat/completions", b'{"model": "chat", "messages": [',
                headers=g.oa_headers())
    assert r.status == 400, r
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["type"] == "invalid_request_error"
    assert mock.stats()["total"]["received"] == 0


def test_unknown_model_404(gw, mock, oa):
    """An unknown model: 404 with code model_not_found."""
    with pytest.raises(openai.NotFoundError) as ei:
        oa.chat.completions.create(model="no-such-model", messages=USER)
    assert ei.value.status_code == 404
    err = ei.value.response.json()["error"]
    assert err["code"] == "model_not_found" and isinstance(err["message"], str)
    assert "type" in err
    assert mock.stats()["total"]["received"] == 0


def test_body_over_limit_413(gw, mock):
    """A body over max_body_bytes (64 KiB here): 413; nothing sent upstream."""
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 70_000}]}
    r = request(gw, "POST", "/v1/chat/completions", big, headers=g.oa_headers())
    assert r.status == 413, r
    ok = {"model": "chat", "messages": [{"role": "user", "content": "x" * 60_000}]}
    assert request(gw, "POST", "/v1/chat/completions", ok, headers=g.oa_headers()).status == 200
    assert mock.stats()["total"]["received"] == 1


# --------------------------------------------------------------------------------------------
# lanes, refusals


def test_lanes_header_and_key_default(gw, mock):
    """x-ratewise-lane picks the lane; without it a key's first lane (else `normal`) is used."""
    def granted():
        return {k: v["granted"] for k, v in g.snapshot(gw)["lanes"].items()}

    body = {"model": "lanes", "messages": USER}
    cases = [(g.oa_headers(KEY_A), "normal"),
             (g.oa_headers(KEY_A, **{"x-ratewise-lane": "batch"}), "batch"),
             (g.oa_headers(KEY_A, **{"x-ratewise-lane": "critical"}), "critical"),
             (g.oa_headers(KEY_B), "batch"),
             (g.oa_headers(KEY_B, **{"x-ratewise-lane": "normal"}), "normal")]
    for h, lane in cases:
        before = granted()
        r = request(gw, "POST", "/v1/chat/completions", body, headers=h)
        assert r.status == 200, r
        after = granted()
        delta = {k: after[k] - before.get(k, 0) for k in after}
        assert delta == {"critical": int(lane == "critical"), "normal": int(lane == "normal"),
                         "batch": int(lane == "batch")}, (h.get("x-ratewise-lane"), delta)


def test_refusal_429_quota(gw, mock):
    """No quota before the deadline: 429 in OpenAI's shape with Retry-After (rounded up) and
    retry-after-ms; the SDK raises RateLimitError; the mock sees only the admitted call."""
    c = client(gw)
    c.chat.completions.create(model="tiny", messages=USER)
    with pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model="tiny", messages=USER,
                                  extra_headers={"x-ratewise-timeout-ms": "0"})
    resp = ei.value.response
    assert resp.status_code == 429
    ra, ms = g.retry_after_ok(resp.headers)
    assert 58 <= ra <= 60 and 57_000 <= ms <= 60_000  # 1 request a minute, just used
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and isinstance(err["type"], str) and "code" in err
    assert model_stats(mock, "gpt-tiny")["received"] == 1


def test_sdk_default_retries_follow_retry_after(gw, mock):
    """The SDK's own retries (default max_retries) wait the gateway's retry-after and succeed."""
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY_A, timeout=15,
                      default_headers={"x-ratewise-timeout-ms": "0"})
    assert c.max_retries >= 1
    client(gw).chat.completions.create(model="retry", messages=USER)  # 1 a second: used up
    refusals0 = g.snapshot(gw)["counters"]["refusals"]
    t0 = time.monotonic()
    r = c.chat.completions.create(model="retry", messages=USER)
    dt = time.monotonic() - t0
    assert r.choices[0].message.content == "tok0 tok1"
    # one refusal, then one wait of retry-after-ms (~1 s); the SDK's own backoff (0.375-0.5 s)
    # would have been refused again
    assert g.snapshot(gw)["counters"]["refusals"] - refusals0 == 1
    assert 0.7 <= dt < 2.5, dt
    assert model_stats(mock, "gpt-retry")["received"] == 2


# --------------------------------------------------------------------------------------------
# accounting


def test_exact_accounting(gw, mock, oa):
    """After JSON calls and streams (usage asked for or not), on both upstream APIs, each
    day-long fixed-window tokens quota = limit - what the mock charged."""
    for k in range(3):
        oa.chat.completions.create(model="acct1", messages=[{"role": "user", "content": "q" * (1 + k * 7)}],
                                   max_tokens=3 + k)
        oa.chat.completions.create(model="acct2", messages=[{"role": "user", "content": "r" * (1 + k * 9)}],
                                   max_tokens=2 + k)
    for model in ("acct1", "acct2"):
        list(oa.chat.completions.create(model=model, messages=CONV, stream=True))
        list(oa.chat.completions.create(model=model, messages=USER, stream=True, max_tokens=6,
                                        stream_options={"include_usage": True}))
    s = g.settled(gw, ["acct-oa", "acct-an"])
    for prov, model in (("acct-oa", "gpt-acct"), ("acct-an", "claude-acct")):
        st = model_stats(mock, model)
        assert st["ok"] == 5
        spent = st["input_tokens_charged"] + st["output_tokens_charged"]
        assert g.quota(s, prov, "tokens")["remaining"] == ACCT_LIMIT - spent, prov
