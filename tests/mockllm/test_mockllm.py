"""Self-test of the mock upstream (stdlib + pytest only, no SDKs).

    python3 -m pytest -q tests/mockllm/test_mockllm.py
"""

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from mockllm import MockServer, count_input_tokens, go_duration, rfc3339  # noqa: E402

OA = {"Authorization": "Bearer sk-test", "Content-Type": "application/json"}
AN = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01",
      "Content-Type": "application/json"}


def post(mock, path, body, headers=OA, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    c.request("POST", path, body=json.dumps(body), headers=headers)
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r, data


def chat(model="gpt-a", **kw):
    b = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    b.update(kw)
    return b


def msg(model="claude-a", **kw):
    b = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}]}
    b.update(kw)
    return b


@pytest.fixture
def mock():
    cfg = {"models": {
        "gpt-a": {"api": "openai", "requests_per_s": 50, "tokens_per_s": 20000,
                  "output_tokens": 5},
        "claude-a": {"api": "anthropic", "requests_per_s": 50, "input_tokens_per_s": 20000,
                     "output_tokens_per_s": 5000, "output_tokens": 5},
        "tiny": {"api": "openai", "requests_per_s": 1, "burst_s": 2, "output_tokens": 2},
        "tinytok": {"api": "anthropic", "input_tokens_per_s": 20, "output_tokens": 2},
        "free": {"api": "openai"},
    }}
    with MockServer(cfg) as m:
        yield m


def test_formats():
    assert go_duration(0) == "0s"
    assert go_duration(0.02) == "20ms"
    assert go_duration(1) == "1s"
    assert go_duration(1.428) == "1.428s"
    assert go_duration(360) == "6m0s"
    assert go_duration(3723.5) == "1h2m3.5s"
    assert rfc3339(1796205600.2) == "2026-12-02T10:00:01Z"
    body = {"messages": [{"role": "user", "content": "abcde"},
                         {"role": "user", "content": [{"type": "text", "text": "abcd"}]}]}
    assert count_input_tokens(body, "openai") == 3 + (4 + 2) + (4 + 1)
    body["system"] = "12345678"
    assert count_input_tokens(body, "anthropic") == 3 + 6 + 5 + 2


def test_openai_json(mock):
    r, data = post(mock, "/v1/chat/completions", chat())
    assert r.status == 200
    j = json.loads(data)
    assert j["object"] == "chat.completion" and j["id"].startswith("chatcmpl-")
    ch = j["choices"][0]
    assert ch["message"] == {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4",
                             "refusal": None}
    assert ch["finish_reason"] == "stop"
    i = 3 + 4 + 3
    assert j["usage"]["prompt_tokens"] == i and j["usage"]["completion_tokens"] == 5
    assert j["usage"]["total_tokens"] == i + 5
    h = r.headers
    assert h["x-ratelimit-limit-requests"] == "50"
    assert h["x-ratelimit-remaining-requests"] == "49"
    assert h["x-ratelimit-limit-tokens"] == "20000"
    assert h["x-ratelimit-remaining-tokens"] == str(20000 - i - 5)
    assert re.fullmatch(r"\d+ms", h["x-ratelimit-reset-requests"])
    assert h["x-request-id"] and h["date"]
    assert int(h["content-length"]) == len(data)
    # max_tokens cap -> finish_reason length
    r, data = post(mock, "/v1/chat/completions", chat(max_tokens=2))
    j = json.loads(data)
    assert j["choices"][0]["finish_reason"] == "length" and j["usage"]["completion_tokens"] == 2
    # unlimited model: no rate-limit headers
    r, _ = post(mock, "/v1/chat/completions", chat("free"))
    assert r.status == 200 and "x-ratelimit-limit-requests" not in r.headers


def test_errors(mock):
    r, data = post(mock, "/v1/chat/completions", chat(), headers={"Content-Type": "application/json"})
    assert r.status == 401 and json.loads(data)["error"]["type"] == "invalid_request_error"
    r, data = post(mock, "/v1/chat/completions", chat("claude-a"))
    assert r.status == 404
    assert json.loads(data) == {"error": {
        "message": "The model `claude-a` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
    r, data = post(mock, "/v1/messages", msg("nope"), headers=AN)
    assert r.status == 404
    assert json.loads(data) == {"type": "error", "error": {"type": "not_found_error",
                                                           "message": "model: nope"}}
    r, data = post(mock, "/v1/chat/completions", chat(temperature=3))
    assert r.status == 400 and json.loads(data)["error"]["param"] == "temperature"
    b = msg()
    del b["max_tokens"]
    r, data = post(mock, "/v1/messages", b, headers=AN)
    assert r.status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"
    r, data = post(mock, "/v1/messages", msg(), headers={"Content-Type": "application/json"})
    assert r.status == 401 and json.loads(data)["error"]["type"] == "authentication_error"


def test_openai_sse_include_usage(mock):
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    c.request("POST", "/v1/chat/completions",
              body=json.dumps(chat(stream=True, stream_options={"include_usage": True})),
              headers=OA)
    r = c.getresponse()
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    text = r.read().decode()
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks[:-1]) == \
        "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(ch["usage"] is None for ch in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    # connection is reusable (keep-alive after a chunked stream)
    c.request("POST", "/v1/chat/completions", body=json.dumps(chat()), headers=OA)
    assert c.getresponse().read()
    c.close()


def test_anthropic_json_and_sse(mock):
    r, data = post(mock, "/v1/messages", msg(system="be brief", metadata={"mock_cached": 4}),
                   headers=AN)
    assert r.status == 200
    j = json.loads(data)
    assert j["type"] == "message" and j["content"][0]["text"] == "tok0 tok1 tok2 tok3 tok4"
    assert j["stop_reason"] == "end_turn"
    assert j["usage"]["cache_read_input_tokens"] == 4
    assert j["usage"]["input_tokens"] == 3 + 4 + 3 + 2 - 4
    assert r.headers["anthropic-ratelimit-requests-limit"] == "50"
    assert r.headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        r.headers["anthropic-ratelimit-input-tokens-reset"])
    assert "anthropic-ratelimit-tokens-limit" not in r.headers
    assert r.headers["request-id"]
    r, data = post(mock, "/v1/messages", msg(stream=True, max_tokens=3), headers=AN)
    types = re.findall(r"^event: (\S+)$", data.decode(), re.M)
    assert types == ["message_start", "content_block_start", "ping"] + \
        ["content_block_delta"] * 3 + ["content_block_stop", "message_delta", "message_stop"]
    datas = [json.loads(x) for x in re.findall(r"^data: (.*)$", data.decode(), re.M)]
    assert datas[-2]["delta"]["stop_reason"] == "max_tokens"
    assert datas[-2]["usage"] == {"output_tokens": 3}


def test_429_retry_after(mock):
    codes = []
    for _ in range(3):
        r, data = post(mock, "/v1/chat/completions", chat("tiny"))
        codes.append(r.status)
    assert codes == [200, 200, 429]
    j = json.loads(data)
    assert j["error"]["code"] == "rate_limit_exceeded" and j["error"]["type"] == "requests"
    assert j["error"]["message"].startswith("Rate limit reached for requests")
    assert int(r.headers["retry-after"]) >= 1
    assert 0 < int(r.headers["retry-after-ms"]) <= 1000
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    # Anthropic input-token bucket: capacity 20, a request costs 10 -> 2 fit
    codes = []
    for _ in range(3):
        r, data = post(mock, "/v1/messages", msg("tinytok"), headers=AN)
        codes.append(r.status)
    assert codes == [200, 200, 429]
    assert json.loads(data)["error"]["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
    s = mock.stats()["models"]["tiny"]
    assert s["status"] == {"200": 2, "429": 1} and s["admitted"] == 2


def test_fault_529_and_storm(mock):
    mock.set_faults({"model": "claude-a", "status": 529, "count": 2, "retry_after_s": 20})
    got = []
    for _ in range(3):
        r, data = post(mock, "/v1/messages", msg(), headers=AN)
        got.append(r.status)
    assert got == [529, 529, 200]
    # HTTP endpoint, time-based storm
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    c.request("POST", "/_mock/faults", body=json.dumps({"model": "gpt-a", "status": 503,
                                                          "for_ms": 150}))
    assert c.getresponse().read()
    r, data = post(mock, "/v1/chat/completions", chat())
    assert r.status == 503 and json.loads(data)["error"]["type"] == "server_error"
    time.sleep(0.2)
    r, _ = post(mock, "/v1/chat/completions", chat())
    assert r.status == 200
    s = mock.stats()["models"]["claude-a"]
    assert s["status"]["529"] == 2 and s["admitted"] == 1


def test_fault_body_has_retry_after(mock):
    mock.set_faults({"model": "claude-a", "status": 529, "count": 1, "retry_after_s": 20})
    r, data = post(mock, "/v1/messages", msg(), headers=AN)
    assert r.status == 529 and r.headers["retry-after"] == "20"
    assert json.loads(data) == {"type": "error", "error": {"type": "overloaded_error",
                                                           "message": "Overloaded"}}


def test_cut_stream(mock):
    mock.set_faults({"model": "gpt-a", "cut_stream_after": 2, "count": 1})
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    c.request("POST", "/v1/chat/completions", body=json.dumps(chat(stream=True)), headers=OA)
    r = c.getresponse()
    assert r.status == 200
    with pytest.raises(http.client.IncompleteRead) as ei:
        r.read()
    assert ei.value.partial.count(b"data: ") == 2
    c.close()
    # next stream is whole
    r, data = post(mock, "/v1/chat/completions", chat(stream=True))
    assert data.endswith(b"data: [DONE]\n\n")
    s = mock.stats()["models"]["gpt-a"]
    assert s["streams"] == 2 and s["streams_cut"] == 1 and s["ok"] == 1
    assert s["admitted"] == 2 and s["output_tokens_charged"] == 10


def test_stats_and_reset(mock):
    for _ in range(3):
        post(mock, "/v1/chat/completions", chat())
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    c.request("GET", "/_mock/stats")
    st = json.loads(c.getresponse().read())
    g = st["models"]["gpt-a"]
    assert g["received"] == 3 and g["ok"] == 3 and g["status"] == {"200": 3}
    assert g["input_tokens_charged"] == 30 and g["output_tokens_charged"] == 15
    assert g["first_ms"] <= g["last_ms"]
    assert g["limits"]["requests_per_s"] == 50 and g["limits"]["tokens_per_s"] == 20000
    assert st["total"]["received"] == 3
    c.request("POST", "/_mock/reset", body=b"{}")
    assert c.getresponse().read()
    assert mock.stats()["models"]["gpt-a"]["received"] == 0
    c.close()


def test_cli_prints_port():
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "mockllm.py"), "--config",
                          '{"models": {"m": {"api": "openai"}}}'],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        port = json.loads(line)["port"]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/_mock/health")
        assert json.loads(c.getresponse().read()) == {"ok": True}
        c.close()
    finally:
        p.terminate()
        assert p.wait(10) == 0


def test_throughput_keepalive():
    n_threads, per = 8, 250
    with MockServer({"models": {"m": {"api": "openai", "output_tokens": 4}}}) as m:
        body = json.dumps(chat("m"))
        errors = []

        def worker():
            c = http.client.HTTPConnection("127.0.0.1", m.port, timeout=10)
            try:
                for _ in range(per):
                    c.request("POST", "/v1/chat/completions", body=body, headers=OA)
                    r = c.getresponse()
                    r.read()
                    if r.status != 200:
                        errors.append(r.status)
            finally:
                c.close()

        t0 = time.perf_counter()
        ts = [threading.Thread(target=worker) for _ in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.perf_counter() - t0
        print(f"\n{n_threads * per} requests, {n_threads} keep-alive clients: {dt:.3f}s")
        assert not errors
        assert m.stats()["models"]["m"]["ok"] == n_threads * per
        assert dt < 4.0  # target is well under 2 s; slack for loaded CI machines


def test_header_style_none_and_too_large():
    cfg = {"header_style": "none",
           "models": {"m": {"api": "openai", "requests_per_s": 1, "burst_s": 2,
                            "tokens_per_s": 10}}}
    with MockServer(cfg) as m:
        r, data = post(m, "/v1/chat/completions", chat("m", max_tokens=2))
        assert r.status == 200
        assert not [k for k in r.headers if k.lower().startswith("x-ratelimit")]
        r, data = post(m, "/v1/chat/completions", chat("m"))  # needs 10 + 16 > capacity 20
        assert r.status == 429 and "retry-after" not in r.headers
        assert json.loads(data)["error"]["message"].startswith("Request too large")
        assert m.set_faults({"model": "*", "latency_ms": 1}) == {"m": {"latency_ms": 1.0}}
        m.set_faults({"clear": True})
        assert m.faults() == {}


def test_request_log_redacts_keys(mock):
    import hashlib
    post(mock, "/v1/chat/completions", chat(), headers=dict(OA, **{"x-extra": "1"}))
    post(mock, "/v1/messages", msg(), headers=AN)
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    c.request("POST", "/v1/chat/completions", body=b"{not json", headers=OA)
    c.getresponse().read()
    c.request("GET", "/_mock/log")
    log = json.loads(c.getresponse().read())
    c.close()
    assert [e["path"] for e in log] == ["/v1/chat/completions", "/v1/messages",
                                        "/v1/chat/completions"]
    assert [e["seq"] for e in log] == [1, 2, 3]
    a, b, bad = log
    assert a["method"] == "POST" and a["body"] == chat() and a["headers"]["x-extra"] == "1"
    assert a["headers"]["authorization"] == "[redacted]"
    assert a["auth"] == {"header": "authorization",
                         "sha256": hashlib.sha256(b"sk-test").hexdigest()}
    assert b["auth"] == {"header": "x-api-key",
                         "sha256": hashlib.sha256(b"sk-ant-test").hexdigest()}
    assert b["headers"]["anthropic-version"] == "2023-06-01"
    assert bad["body"] is None and bad["body_text"] == "{not json" and bad["body_bytes"] == 9
    text = json.dumps(log)
    assert "sk-test" not in text and "sk-ant-test" not in text
    mock.reset()
    assert mock.log() == []


def test_tool_calls_forced(mock):
    from mockllm import tool_arguments
    params = {"type": "object", "properties": {"city": {"type": "string"},
                                               "unit": {"type": "string", "enum": ["c", "f"]},
                                               "days": {"type": "integer"}}}
    assert tool_arguments(params) == {"city": "mock-city", "unit": "c", "days": 42}
    tools = [{"type": "function", "function": {"name": "other", "parameters": {}}},
             {"type": "function", "function": {"name": "weather", "parameters": params}}]
    r, data = post(mock, "/v1/chat/completions", chat(
        tools=tools, tool_choice={"type": "function", "function": {"name": "weather"}}))
    j = json.loads(data)
    ch = j["choices"][0]
    assert ch["finish_reason"] == "tool_calls" and ch["message"]["content"] is None
    (tc,) = ch["message"]["tool_calls"]
    assert tc["id"].startswith("call_") and tc["type"] == "function"
    assert tc["function"]["name"] == "weather"
    assert json.loads(tc["function"]["arguments"]) == {"city": "mock-city", "unit": "c", "days": 42}
    # auto: a text answer
    r, data = post(mock, "/v1/chat/completions", chat(tools=tools, tool_choice="auto"))
    assert json.loads(data)["choices"][0]["finish_reason"] == "stop"
    # streamed: the argument fragments join into the same JSON
    r, data = post(mock, "/v1/chat/completions", chat(tools=tools, tool_choice="required",
                                                      stream=True))
    chunks = [json.loads(x) for x in re.findall(r"^data: (\{.*)$", data.decode(), re.M)]
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["function"] == {"name": "other", "arguments": ""}
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                   for c in chunks[1:-1])
    assert json.loads(args) == {} and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # Anthropic
    atools = [{"name": "weather", "input_schema": params}]
    r, data = post(mock, "/v1/messages", msg(tools=atools, tool_choice={"type": "any"}), headers=AN)
    j = json.loads(data)
    assert j["stop_reason"] == "tool_use"
    (blk,) = j["content"]
    assert blk["type"] == "tool_use" and blk["id"].startswith("toolu_")
    assert blk["name"] == "weather" and blk["input"] == {"city": "mock-city", "unit": "c", "days": 42}
    r, data = post(mock, "/v1/messages", msg(tools=atools, stream=True,
                                             tool_choice={"type": "tool", "name": "weather"}),
                   headers=AN)
    datas = [json.loads(x) for x in re.findall(r"^data: (.*)$", data.decode(), re.M)]
    assert datas[1]["content_block"]["type"] == "tool_use"
    part = "".join(d["delta"]["partial_json"] for d in datas
                   if d["type"] == "content_block_delta")
    assert json.loads(part) == blk["input"]
    assert datas[-2]["delta"]["stop_reason"] == "tool_use"


def test_stop_sequences_and_cached_marker(mock):
    r, data = post(mock, "/v1/chat/completions", chat(stop=["zzz", "tok3"]))
    j = json.loads(data)
    assert j["choices"][0]["message"]["content"] == "tok0 tok1 tok2"
    assert j["choices"][0]["finish_reason"] == "stop" and j["usage"]["completion_tokens"] == 3
    r, data = post(mock, "/v1/messages", msg(stop_sequences=["tok2"]), headers=AN)
    j = json.loads(data)
    assert j["content"][0]["text"] == "tok0 tok1" and j["stop_reason"] == "stop_sequence"
    assert j["stop_sequence"] == "tok2" and j["usage"]["output_tokens"] == 2
    r, data = post(mock, "/v1/messages", msg(stop_sequences=["tok1"], stream=True), headers=AN)
    datas = [json.loads(x) for x in re.findall(r"^data: (.*)$", data.decode(), re.M)]
    assert datas[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "tok1"}
    assert datas[-2]["usage"] == {"output_tokens": 1}
    text = "hello [[mock_cached=3]]"
    body = chat(messages=[{"role": "user", "content": text}])
    r, data = post(mock, "/v1/chat/completions", body)
    u = json.loads(data)["usage"]
    assert u["prompt_tokens_details"]["cached_tokens"] == 3
    assert u["prompt_tokens"] == count_input_tokens(body, "openai")
    body = msg(messages=[{"role": "user", "content": text}])
    r, data = post(mock, "/v1/messages", body, headers=AN)
    u = json.loads(data)["usage"]
    assert u["cache_read_input_tokens"] == 3
    assert u["input_tokens"] == count_input_tokens(body, "anthropic") - 3
    # Cache writes: Anthropic reports them apart (JSON and the stream's message_start); OpenAI
    # has no such count.
    text = "hello there [[mock_cached=3]] [[mock_cache_write=4]]"
    body = msg(messages=[{"role": "user", "content": text}])
    r, data = post(mock, "/v1/messages", body, headers=AN)
    u = json.loads(data)["usage"]
    assert (u["cache_read_input_tokens"], u["cache_creation_input_tokens"]) == (3, 4)
    assert u["input_tokens"] == count_input_tokens(body, "anthropic") - 7
    r, data = post(mock, "/v1/messages", {**body, "stream": True}, headers=AN)
    start = json.loads(re.findall(r"^data: (.*)$", data.decode(), re.M)[0])
    assert start["message"]["usage"]["cache_creation_input_tokens"] == 4
    body = chat(messages=[{"role": "user", "content": text}])
    r, data = post(mock, "/v1/chat/completions", body)
    u = json.loads(data)["usage"]
    assert u["prompt_tokens"] == count_input_tokens(body, "openai") and "cache_creation_input_tokens" not in u


def _open_and_close(mock, body, headers, read_first=False):
    import socket as _socket
    s = _socket.create_connection(("127.0.0.1", mock.port), timeout=5)
    raw = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    s.sendall((f"POST {body.get('_path', '/v1/chat/completions')} HTTP/1.1\r\nHost: x\r\n"
               f"{head}Content-Length: {len(raw)}\r\n\r\n").encode() + raw)
    if read_first:
        assert s.recv(65536)
    time.sleep(0.1)
    s.close()
    return time.monotonic()


def test_client_close_is_seen_at_once(mock):
    mock.set_faults({"model": "gpt-a", "latency_ms": 3000})
    t_close = _open_and_close(mock, chat(), OA)
    deadline = time.monotonic() + 2
    while mock.stats()["models"]["gpt-a"]["aborted"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = time.monotonic()
    s = mock.stats()["models"]["gpt-a"]
    assert s["aborted"] == 1 and s["ok"] == 0 and s["admitted"] == 1
    assert seen - t_close < 0.5 and s["last_aborted_ms"] is not None
    # a slow stream closed after its first bytes
    mock.set_faults([{"clear": True}, {"model": "gpt-a", "chunk_ms": 500}])
    t_close = _open_and_close(mock, chat(stream=True), OA, read_first=True)
    deadline = time.monotonic() + 2
    while mock.stats()["models"]["gpt-a"]["aborted"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    s = mock.stats()["models"]["gpt-a"]
    assert s["aborted"] == 2 and s["ok"] == 0 and s["streams"] == 1
    assert time.monotonic() - t_close < 0.5
