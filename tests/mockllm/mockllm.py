#!/usr/bin/env python3
"""mockllm -- an honest mock upstream LLM provider (OpenAI + Anthropic shapes).

Hidden, continuous token-bucket rate limits per model ("deployment"), the real
rate-limit header formats, the real error bodies, real SSE streams, injectable
faults (status storms, cut streams, latency) and counters for tests.

Python 3.11 standard library only.  See README.md beside this file.

    python3 tests/mockllm/mockllm.py [--host 127.0.0.1] [--port 0] [--config FILE_OR_JSON]

prints exactly one line ``{"port": N}`` and serves until SIGTERM/SIGINT.

    from mockllm import MockServer
    with MockServer({"models": {...}}) as mock:
        mock.url, mock.port, mock.stats(), mock.set_faults({...}), mock.reset()
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import math
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import zlib
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MockServer", "DEFAULT_CONFIG", "go_duration", "rfc3339", "count_input_tokens",
           "tool_arguments", "embedding_vector"]

LOG_MAX = 2000  # requests kept by GET /_mock/log (the newest)
UNLIMITED = 1e9  # a rate at or above this is "unlimited": no bucket, no headers
EPS = 1e-9

DEFAULT_CONFIG = {
    "models": {
        "gpt-a": {"api": "openai"},
        "claude-a": {"api": "anthropic"},
    },
    "header_style": "default",
}

MODEL_DEFAULTS = {
    "api": "openai",
    "requests_per_s": None,
    "tokens_per_s": None,
    "input_tokens_per_s": None,
    "output_tokens_per_s": None,
    "burst_s": 1.0,
    "latency_ms": 0.0,
    "output_tokens": 16,
    "chunk_ms": 0.0,
    "headers": True,
}

_JSON_SEP = (",", ":")


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=_JSON_SEP).encode("utf-8")


# --------------------------------------------------------------------------
# formatting helpers


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String() at millisecond precision
    (rounded up), as OpenAI's x-ratelimit-reset-* headers: 1s, 6m0s,
    1.428s, 20ms, 1h2m3.5s, 0s."""
    ms = int(math.ceil(max(0.0, seconds) * 1000.0 - 1e-6))
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rem = divmod(ms, 3_600_000)
    m, sms = divmod(rem, 60_000)
    whole, frac = divmod(sms, 1000)
    s = str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def rfc3339(epoch_s: float) -> str:
    """UTC RFC 3339 instant at second precision, rounded up (Anthropic resets)."""
    t = math.ceil(epoch_s - 1e-6)
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _req_id(prefix: str = "req_") -> str:
    return prefix + os.urandom(12).hex()


# --------------------------------------------------------------------------
# token accounting (deterministic)


def _collect_text(v, out: list) -> None:
    if isinstance(v, str):
        out.append(v)
    elif isinstance(v, list):
        for x in v:
            _collect_text(x, out)
    elif isinstance(v, dict):
        if "text" in v:
            _collect_text(v["text"], out)
        if "content" in v:
            _collect_text(v["content"], out)


def _text_tokens(v) -> int:
    out: list = []
    _collect_text(v, out)
    return math.ceil(sum(len(s) for s in out) / 4)


def count_input_tokens(body: dict, api: str) -> int:
    """3 + sum over messages of (4 + ceil(len(text)/4)), + ceil(len(system)/4)
    (Anthropic), + ceil(len(json.dumps(tools))/4) when tools is present."""
    total = 3
    msgs = body.get("messages")
    if isinstance(msgs, list):
        for m in msgs:
            total += 4 + _text_tokens(m.get("content") if isinstance(m, dict) else None)
    if api == "anthropic" and body.get("system") is not None:
        total += _text_tokens(body["system"])
    if body.get("tools") is not None:
        total += math.ceil(len(json.dumps(body["tools"])) / 4)
    return total


_CACHED_MARK = re.compile(r"\[\[mock_cached=(\d+)\]\]")
_CACHE_WRITE_MARK = re.compile(r"\[\[mock_cache_write=(\d+)\]\]")


def _marked_cached(body: dict, mark=_CACHED_MARK):
    """N from a ``[[mock_cached=N]]`` marker (or another ``mark``) in any message text (or the
    system prompt), or None.  Unlike ``metadata.mock_cached`` it survives a gateway translating
    the request."""
    out: list = []
    _collect_text(body.get("messages"), out)
    _collect_text(body.get("system"), out)
    for t in out:
        m = mark.search(t)
        if m:
            return int(m.group(1))
    return None


def _stop_sequences(body: dict, api: str) -> list:
    v = body.get("stop_sequences") if api == "anthropic" else body.get("stop")
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str)]
    return []


def _forced_tool(body: dict, api: str):
    """The tool a request forces (``tool_choice`` required/any or naming one): its
    (name, JSON schema), or None.  ``auto``/``none``/absent: no tool call."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    tc = body.get("tool_choice")
    entries = []
    for t in tools:
        if not isinstance(t, dict):
            continue
        if api == "openai":
            fn = t.get("function") if isinstance(t.get("function"), dict) else {}
            entries.append((fn.get("name"), fn.get("parameters") or {}))
        else:
            entries.append((t.get("name"), t.get("input_schema") or {}))
    entries = [e for e in entries if isinstance(e[0], str)]
    if not entries:
        return None
    want = None
    if api == "openai":
        if tc == "required":
            return entries[0]
        if isinstance(tc, dict) and tc.get("type") == "function":
            want = (tc.get("function") or {}).get("name")
    else:
        if isinstance(tc, dict) and tc.get("type") == "any":
            return entries[0]
        if isinstance(tc, dict) and tc.get("type") == "tool":
            want = tc.get("name")
    for e in entries:
        if e[0] == want:
            return e
    return None


def tool_arguments(schema) -> dict:
    """The deterministic arguments of a mock tool call: one value per property of the
    schema, in order: string -> enum[0] or "mock-<name>", integer/number -> 42,
    boolean -> true, array -> [], object -> {}, anything else -> null."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    out = {}
    if not isinstance(props, dict):
        return out
    for name, ps in props.items():
        ps = ps if isinstance(ps, dict) else {}
        t = ps.get("type")
        if isinstance(ps.get("enum"), list) and ps["enum"]:
            out[name] = ps["enum"][0]
        elif t == "string":
            out[name] = f"mock-{name}"
        elif t in ("integer", "number"):
            out[name] = 42
        elif t == "boolean":
            out[name] = True
        elif t == "array":
            out[name] = []
        elif t == "object":
            out[name] = {}
        else:
            out[name] = None
    return out


def _pieces(s: str, n: int = 3) -> list:
    """``s`` in ``n`` pieces (a streamed tool call's argument fragments)."""
    k = max(1, math.ceil(len(s) / n))
    return [s[i:i + k] for i in range(0, len(s), k)] or [""]


def _embedding_inputs(inp):
    """Returns list of (kind, value) and token count, or None if invalid."""
    if isinstance(inp, str):
        items = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
        items = [inp]  # one pre-tokenised input
    elif isinstance(inp, list) and inp:
        items = inp
    else:
        return None
    tokens = 0
    for it in items:
        if isinstance(it, str):
            tokens += math.ceil(len(it) / 4) + 1
        elif isinstance(it, list) and all(isinstance(x, int) for x in it):
            tokens += len(it)
        else:
            return None
    return items, tokens


def embedding_vector(item, dims: int = 8) -> list:
    """The vector the mock answers for one embeddings input (a string or token list)."""
    return _embedding_vector(item, 0, dims)


def _embedding_vector(item, index: int, dims: int) -> list:
    seed = zlib.crc32(json.dumps(item).encode("utf-8"))
    vals = []
    for k in range(dims):
        seed = (seed * 1103515245 + 12345 + k) & 0xFFFFFFFF
        vals.append((seed / 0xFFFFFFFF) * 2.0 - 1.0)
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return [round(v / norm, 6) for v in vals]


# --------------------------------------------------------------------------
# buckets and models


class Bucket:
    __slots__ = ("key", "rate", "capacity", "level", "last")

    def __init__(self, key: str, rate: float, burst_s: float, now: float):
        self.key = key
        self.rate = rate
        self.capacity = rate * burst_s
        self.level = self.capacity
        self.last = now

    def refill(self, now: float) -> None:
        if now > self.last:
            self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
            self.last = now

    def wait_for(self, amount: float) -> float:
        short = amount - self.level
        return 0.0 if short <= EPS else short / self.rate

    def to_full(self) -> float:
        return max(0.0, (self.capacity - self.level) / self.rate)

    def fill(self, now: float) -> None:
        self.level = self.capacity
        self.last = now


_BUCKET_LABEL = {
    "requests": ("requests", "RPS"),
    "tokens": ("tokens", "TPS"),
    "input-tokens": ("input tokens", "ITPS"),
    "output-tokens": ("output tokens", "OTPS"),
}


def _rate(v):
    if v is None:
        return None
    v = float(v)
    if v <= 0:
        raise ValueError("rates must be > 0 (omit a rate for unlimited)")
    return None if v >= UNLIMITED else v


def _new_stats() -> dict:
    return {
        "received": 0,
        "ok": 0,
        "admitted": 0,
        "status": {},
        "streams": 0,
        "streams_cut": 0,
        "aborted": 0,
        "input_tokens_charged": 0,
        "output_tokens_charged": 0,
        "first_ms": None,
        "last_ms": None,
        "last_done_ms": None,
        "last_aborted_ms": None,
    }


class Model:
    def __init__(self, name: str, cfg: dict, header_style: str, now: float):
        unknown = set(cfg) - set(MODEL_DEFAULTS)
        if unknown:
            raise ValueError(f"model {name!r}: unknown keys {sorted(unknown)}")
        c = dict(MODEL_DEFAULTS)
        c.update(cfg)
        if c["api"] not in ("openai", "anthropic"):
            raise ValueError(f"model {name!r}: api must be 'openai' or 'anthropic'")
        self.name = name
        self.api = c["api"]
        self.cfg = c
        self.burst_s = float(c["burst_s"])
        if self.burst_s <= 0:
            raise ValueError(f"model {name!r}: burst_s must be > 0")
        self.latency_s = float(c["latency_ms"]) / 1000.0
        self.chunk_s = float(c["chunk_ms"]) / 1000.0
        self.output_tokens = int(c["output_tokens"])
        self.send_headers = bool(c["headers"]) and header_style != "none"
        keys = [("requests", c["requests_per_s"])]
        if self.api == "openai":
            keys.append(("tokens", c["tokens_per_s"]))
        else:
            keys += [
                ("input-tokens", c["input_tokens_per_s"]),
                ("output-tokens", c["output_tokens_per_s"]),
                ("tokens", c["tokens_per_s"]),
            ]
        self.buckets = []
        for key, r in keys:
            r = _rate(r)
            if r is not None:
                self.buckets.append(Bucket(key, r, self.burst_s, now))
        self.lock = threading.Lock()
        self.faults: dict = {}
        self.stats = _new_stats()

    # -- limits / public views --------------------------------------------
    def limits(self) -> dict:
        c = self.cfg
        out = {"api": self.api}
        for k in ("requests_per_s", "tokens_per_s", "input_tokens_per_s", "output_tokens_per_s"):
            if self.api == "openai" and k in ("input_tokens_per_s", "output_tokens_per_s"):
                continue
            r = c[k]
            out[k] = None if r is None or float(r) >= UNLIMITED else float(r)
        out.update(burst_s=self.burst_s, latency_ms=c["latency_ms"],
                   output_tokens=self.output_tokens, chunk_ms=c["chunk_ms"],
                   headers=self.send_headers)
        return out

    def snapshot(self, t0: float, now: float) -> dict:
        with self.lock:
            s = json.loads(json.dumps(self.stats))
            buckets = {}
            for b in self.buckets:
                b.refill(now)
                buckets[b.key] = {"capacity": b.capacity, "level": round(b.level, 3),
                                  "rate": b.rate}
            s["limits"] = self.limits()
            s["buckets"] = buckets
            s["faults"] = self._faults_view(now)
        return s

    def _faults_view(self, now: float) -> dict:
        out = {}
        f = self.faults
        if "status" in f:
            sf = f["status"]
            v = {"status": sf["status"]}
            if sf.get("until") is not None:
                v["remaining_ms"] = max(0, round((sf["until"] - now) * 1000))
            else:
                v["remaining"] = sf["remaining"]
            if sf.get("retry_after_s") is not None:
                v["retry_after_s"] = sf["retry_after_s"]
            out["status"] = v
        if "cut" in f:
            out["cut_stream_after"] = f["cut"]["after"]
            out["cut_remaining"] = f["cut"]["remaining"]
        if "latency_s" in f:
            out["latency_ms"] = f["latency_s"] * 1000.0
        if "chunk_s" in f:
            out["chunk_ms"] = f["chunk_s"] * 1000.0
        return out

    # -- stats (caller holds no lock) ------------------------------------
    def count(self, field: str, n: int = 1) -> None:
        with self.lock:
            self.stats[field] += n

    def uncount_ok(self, ms: float | None = None) -> None:
        with self.lock:
            self.stats["ok"] -= 1
            self.stats["aborted"] += 1
            self.stats["last_aborted_ms"] = ms

    def count_aborted(self, ms: float) -> None:
        """The client closed its connection before the answer was complete."""
        with self.lock:
            self.stats["aborted"] += 1
            self.stats["last_aborted_ms"] = ms

    def count_status(self, code: int, done_ms: float | None = None, ok: bool = False) -> None:
        with self.lock:
            st = self.stats["status"]
            k = str(code)
            st[k] = st.get(k, 0) + 1
            if ok:
                self.stats["ok"] += 1
            if done_ms is not None:
                self.stats["last_done_ms"] = done_ms

    # -- headers (caller holds lock) ------------------------------------
    def _rl_headers(self, wall: float) -> list:
        if not self.send_headers:
            return []
        h = []
        for b in self.buckets:
            lim = str(int(math.floor(b.capacity + EPS)))
            rem = str(max(0, int(math.floor(b.level + EPS))))
            ttf = b.to_full()
            if self.api == "openai":
                h.append((f"x-ratelimit-limit-{b.key}", lim))
                h.append((f"x-ratelimit-remaining-{b.key}", rem))
                h.append((f"x-ratelimit-reset-{b.key}", go_duration(ttf)))
            else:
                h.append((f"anthropic-ratelimit-{b.key}-limit", lim))
                h.append((f"anthropic-ratelimit-{b.key}-remaining", rem))
                h.append((f"anthropic-ratelimit-{b.key}-reset", rfc3339(wall + ttf)))
        return h

    # -- the decision -----------------------------------------------------
    def decide(self, need: dict, stream: bool, now: float, t0: float) -> dict:
        """Atomically: consume a status fault, or admit+charge, or refuse."""
        wall = time.time()
        with self.lock:
            for b in self.buckets:
                b.refill(now)
            f = self.faults
            sf = f.get("status")
            if sf is not None:
                active = False
                if sf.get("until") is not None:
                    active = now < sf["until"]
                    if not active:
                        del f["status"]
                elif sf["remaining"] > 0:
                    sf["remaining"] -= 1
                    active = True
                    if sf["remaining"] <= 0:
                        del f["status"]
                if active:
                    return {"kind": "fault", "status": sf["status"],
                            "retry_after_s": sf.get("retry_after_s"),
                            "headers": self._rl_headers(wall) if sf["status"] == 429 else []}
            # admission
            fail = None
            wait = 0.0
            for b in self.buckets:
                amt = need.get(b.key, 0)
                if amt <= 0:
                    continue
                if b.level + EPS < amt:
                    if amt > b.capacity + EPS:
                        w = max(b.to_full(), 1.0)
                        too_large = True
                    else:
                        w = b.wait_for(amt)
                        too_large = False
                    if fail is None or (too_large and not fail[2]):
                        fail = (b, amt, too_large)  # "too large" wins: retrying won't help
                    wait = max(wait, w)
            if fail is not None:
                b, amt, too_large = fail
                return {"kind": "limited", "bucket": b.key, "capacity": b.capacity,
                        "rate": b.rate, "used": max(0, int(math.ceil(b.capacity - b.level - EPS))),
                        "requested": amt, "too_large": too_large, "wait_s": wait,
                        "headers": self._rl_headers(wall),
                        "computed_retry": self.send_headers}
            for b in self.buckets:
                amt = need.get(b.key, 0)
                if amt > 0:
                    b.level -= amt
            st = self.stats
            ms = round((now - t0) * 1000.0, 3)
            st["admitted"] += 1
            if st["first_ms"] is None:
                st["first_ms"] = ms
            st["last_ms"] = ms
            st["input_tokens_charged"] += need.get("_in", 0)
            st["output_tokens_charged"] += need.get("_out", 0)
            cut = None
            if stream:
                st["streams"] += 1
                cf = f.get("cut")
                if cf is not None and cf["remaining"] > 0:
                    cf["remaining"] -= 1
                    cut = cf["after"]
                    if cf["remaining"] <= 0:
                        del f["cut"]
            return {"kind": "ok", "headers": self._rl_headers(wall), "cut": cut,
                    "latency_s": f.get("latency_s", self.latency_s),
                    "chunk_s": f.get("chunk_s", self.chunk_s)}

    # -- faults -----------------------------------------------------------
    def apply_fault(self, spec: dict, now: float) -> None:
        with self.lock:
            f = self.faults
            if spec.get("clear"):
                f.clear()
            count = int(spec.get("count", 1))
            if "status" in spec:
                status = int(spec["status"])
                if not 400 <= status <= 599:
                    raise ValueError("status must be a 4xx/5xx code")
                sf = {"status": status, "remaining": count, "until": None,
                      "retry_after_s": spec.get("retry_after_s")}
                if spec.get("for_ms") is not None:
                    sf["until"] = now + float(spec["for_ms"]) / 1000.0
                    sf["remaining"] = None
                f["status"] = sf
            if "cut_stream_after" in spec:
                f["cut"] = {"after": max(0, int(spec["cut_stream_after"])), "remaining": count}
            if "latency_ms" in spec:
                if spec["latency_ms"] is None:
                    f.pop("latency_s", None)
                else:
                    f["latency_s"] = float(spec["latency_ms"]) / 1000.0
            if "chunk_ms" in spec:
                if spec["chunk_ms"] is None:
                    f.pop("chunk_s", None)
                else:
                    f["chunk_s"] = float(spec["chunk_ms"]) / 1000.0

    def reset(self, now: float) -> None:
        with self.lock:
            for b in self.buckets:
                b.fill(now)
            self.faults.clear()
            self.stats = _new_stats()


# --------------------------------------------------------------------------
# error bodies


def _oa_err(message, typ, param=None, code=None) -> dict:
    return {"error": {"message": message, "type": typ, "param": param, "code": code}}


def _an_err(typ, message) -> dict:
    return {"type": "error", "error": {"type": typ, "message": message}}


def _fault_body(api: str, status: int) -> dict:
    if api == "anthropic":
        if status == 529:
            return _an_err("overloaded_error", "Overloaded")
        if status == 429:
            return _an_err("rate_limit_error", "Number of request tokens has exceeded your rate limit (injected fault).")
        if status == 500:
            return _an_err("api_error", "Internal server error")
        if status == 503:
            return _an_err("api_error", "Service unavailable")
        if status < 500:
            return _an_err("invalid_request_error", f"Injected error {status}")
        return _an_err("api_error", f"Injected error {status}")
    if status in (503, 529):
        return _oa_err("The server is overloaded or not ready yet.", "server_error")
    if status == 429:
        return _oa_err("Rate limit reached for requests (injected fault). Please try again later.",
                       "requests", None, "rate_limit_exceeded")
    if status == 500:
        return _oa_err("The server had an error while processing your request. Sorry about that!",
                       "server_error")
    if status < 500:
        return _oa_err(f"Injected error {status}", "invalid_request_error")
    return _oa_err(f"Injected error {status}", "server_error")


_AUTH_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")


def _log_entry(seq: int, ms: float, method: str, path: str, headers: dict, raw: bytes) -> dict:
    """One request as ``GET /_mock/log`` shows it.  Credentials are never kept: the value of
    an auth header is replaced by "[redacted]" and only its sha256 is recorded (of the token
    after "Bearer " for Authorization), so a test can check which key arrived."""
    hs = {}
    auth = None
    for k, v in headers.items():
        if k in _AUTH_HEADERS:
            hs[k] = "[redacted]"
            tok = v[7:].strip() if k.endswith("authorization") and v.startswith("Bearer ") else v.strip()
            if auth is None:
                auth = {"header": k, "sha256": hashlib.sha256(tok.encode("utf-8")).hexdigest()}
        else:
            hs[k] = v
    return {"seq": seq, "ms": ms, "method": method, "path": path, "headers": hs, "auth": auth,
            "raw": raw}


def _log_view(e: dict) -> dict:
    raw = e["raw"]
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    out = {k: v for k, v in e.items() if k != "raw"}
    out["body"] = body
    out["body_bytes"] = len(raw)
    if body is None and raw:
        out["body_text"] = raw[:4096].decode("utf-8", "replace")
    return out


ROUTES = {
    "/v1/chat/completions": ("openai", "chat"),
    "/v1/embeddings": ("openai", "embeddings"),
    "/v1/messages": ("anthropic", "messages"),
}


class _Headers(dict):
    """Case-insensitive request headers (keys stored lower-case)."""

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key):
        return dict.get(self, key.lower())

    def __contains__(self, key):
        return dict.__contains__(self, key.lower())


class _Reply(Exception):
    """Short-circuit: send this JSON error."""

    def __init__(self, status: int, body: dict, headers=None):
        self.status = status
        self.body = body
        self.headers = headers or []


# --------------------------------------------------------------------------
# HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mockllm/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted socket

    # never log anything (keys included)
    def log_message(self, format, *args):  # noqa: A002
        pass

    _date_cache = (0, "")

    def date_time_string(self, timestamp=None):
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        c = _Handler._date_cache
        if c[0] != now:
            c = (now, super().date_time_string(now))
            _Handler._date_cache = c
        return c[1]

    def parse_request(self):
        """http.server's parse_request minus the slow email.parser header
        parsing (the mock must not be the bottleneck).  Same semantics for
        what the clients here send: HTTP/1.0/1.1, keep-alive, Expect."""
        self.command = None
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            self.send_error(400, "Bad request syntax")
            return False
        command, path, version = words
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            self.send_error(505, "Invalid HTTP version")
            return False
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        self.command, self.path, self.request_version = command, path, version
        headers = _Headers()
        readline = self.rfile.readline
        for _ in range(101):
            line = readline(65537)
            if len(line) > 65536:
                self.send_error(431, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            k, sep, v = line.decode("iso-8859-1").partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers
        conn = headers.get("connection", "").lower()
        if "close" in conn:
            self.close_connection = True
        elif "keep-alive" in conn or version == "HTTP/1.1":
            self.close_connection = False
        if (headers.get("expect", "").lower() == "100-continue"
                and version == "HTTP/1.1"):
            if not self.handle_expect_100():
                return False
        return True

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    @property
    def mock(self) -> "MockServer":
        return self.server.mock

    def _wait_watching(self, seconds: float) -> bool:
        """Sleep ``seconds`` while watching the connection: False at once if the client
        closed it (EOF or reset), True when the time is up."""
        end = time.monotonic() + seconds
        sock = self.connection
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return True
            try:
                r, _, _ = select.select([sock], [], [], left)
            except (OSError, ValueError):
                return False
            if not r:
                return True
            try:
                data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return False
            if not data:
                return False
            # bytes of a next (pipelined) request: nothing to watch for any more
            time.sleep(max(0.0, end - time.monotonic()))
            return True

    # -- low-level writers ----------------------------------------------
    def _send_json(self, status: int, obj, headers=(), api: str | None = None,
                   model: "Model | None" = None, ok: bool = False):
        """Send a whole JSON reply in one write.  Counters are updated before
        the bytes leave, so a client that has its reply sees them in stats."""
        body = _dumps(obj)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self._id_headers(api)
        for k, v in headers:
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        if model is not None:
            model.count_status(status, self.mock._ms(), ok=ok)
        try:
            self.flush_headers()
        except OSError:
            if model is not None and ok:
                model.uncount_ok()
            raise

    def _id_headers(self, api):
        if api == "openai":
            self.send_header("x-request-id", _req_id())
            self.send_header("openai-processing-ms", "1")
        elif api == "anthropic":
            self.send_header("request-id", _req_id())

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # -- dispatch ---------------------------------------------------------
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        m = self.mock
        if path == "/_mock/stats":
            return self._send_json(200, m.stats())
        if path == "/_mock/faults":
            return self._send_json(200, m.faults())
        if path == "/_mock/health":
            return self._send_json(200, {"ok": True})
        if path == "/_mock/config":
            return self._send_json(200, m.config)
        if path == "/_mock/log":
            return self._send_json(200, m.log())
        self._read_body()
        api = "anthropic" if path.startswith("/v1/messages") else "openai"
        self._not_found(api, "GET", path)

    def do_DELETE(self):
        self._read_body()
        path = self.path.split("?", 1)[0]
        self._not_found("openai", "DELETE", path)

    def _not_found(self, api, method, path):
        if api == "anthropic":
            body = _an_err("not_found_error", "Not Found")
        else:
            body = _oa_err(f"Invalid URL ({method} {path})", "invalid_request_error")
        self._send_json(404, body, api=api)

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if path.startswith("/_mock/"):
            return self._mock_post(path, raw)
        self.mock._log(self.command, self.path, self.headers, raw)
        route = ROUTES.get(path)
        if route is None:
            api = "anthropic" if path.startswith("/v1/messages") else "openai"
            self.mock._count_unknown(404)
            return self._not_found(api, "POST", path)
        api, kind = route
        model = None
        try:
            self._serve(api, kind, raw)
        except _Reply as r:
            model = getattr(self, "_model", None)
            if model is None:
                self.mock._count_unknown(r.status)
            self._send_json(r.status, r.body, r.headers, api=api, model=model)
        except OSError:  # client went away
            self.close_connection = True
        except Exception:  # a mock bug: say so loudly, drop the connection
            import traceback
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True

    def _mock_post(self, path, raw):
        m = self.mock
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return self._send_json(400, {"error": "invalid JSON"})
        if path == "/_mock/faults":
            try:
                m.set_faults(data)
            except (ValueError, KeyError, TypeError) as e:
                return self._send_json(400, {"error": str(e)})
            return self._send_json(200, m.faults())
        if path == "/_mock/reset":
            m.reset()
            return self._send_json(200, {"ok": True})
        return self._send_json(404, {"error": f"unknown mock endpoint {path}"})

    # -- the provider ------------------------------------------------------
    def _serve(self, api: str, kind: str, raw: bytes):
        self._model = None
        h = self.headers
        # auth
        if api == "openai":
            auth = h.get("Authorization") or ""
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                raise _Reply(401, _oa_err(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error"))
        else:
            key = h.get("x-api-key") or ""
            auth = h.get("Authorization") or ""
            if not key.strip() and not (auth.startswith("Bearer ") and auth[7:].strip()):
                raise _Reply(401, _an_err("authentication_error", "x-api-key header is required"))
        # body
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            if api == "openai":
                raise _Reply(400, _oa_err(
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly.)", "invalid_request_error"))
            raise _Reply(400, _an_err("invalid_request_error", "There was an issue with the request body: invalid JSON"))
        name = body.get("model")
        if not isinstance(name, str) or not name:
            if api == "openai":
                raise _Reply(400, _oa_err("you must provide a model parameter", "invalid_request_error"))
            raise _Reply(400, _an_err("invalid_request_error", "model: Field required"))
        model = self.mock.models.get(name)
        if model is None or model.api != api:
            if api == "openai":
                raise _Reply(404, _oa_err(
                    f"The model `{name}` does not exist or you do not have access to it.",
                    "invalid_request_error", None, "model_not_found"))
            raise _Reply(404, _an_err("not_found_error", f"model: {name}"))
        self._model = model
        model.count("received")
        if kind == "embeddings":
            return self._embeddings(model, body)
        return self._generate(api, model, body)

    def _validate(self, api, model, body):
        def bad(msg, param, code="invalid_value"):
            if api == "openai":
                return _Reply(400, _oa_err(msg, "invalid_request_error", param, code))
            return _Reply(400, _an_err("invalid_request_error", msg))

        msgs = body.get("messages")
        if not isinstance(msgs, list) or (api == "anthropic" and not msgs):
            if api == "openai":
                raise bad("Missing required parameter: 'messages'.", "messages",
                          "missing_required_parameter")
            raise bad("messages: Field required", "messages")
        t = body.get("temperature")
        if t is not None:
            hi = 2.0 if api == "openai" else 1.0  # the real ranges
            if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0 or t > hi:
                if api == "openai":
                    raise bad(f"Invalid 'temperature': decimal above maximum value. Expected a "
                              f"value <= 2, but got {t} instead.", "temperature")
                raise bad("temperature: range: 0..1", "temperature")
        if api == "anthropic":
            mt = body.get("max_tokens")
            if mt is None:
                raise bad("max_tokens: Field required", "max_tokens")
        else:
            mt = body.get("max_completion_tokens")
            if mt is None:
                mt = body.get("max_tokens")
        if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
            p = "max_tokens" if body.get("max_completion_tokens") is None else "max_completion_tokens"
            raise bad(f"Invalid '{p}': integer below minimum value. Expected a value >= 1, "
                      f"but got {mt} instead." if api == "openai"
                      else "max_tokens: Input should be greater than or equal to 1", p)
        return mt

    def _refuse(self, api, model, d, need_name):
        """Turn a 'limited' or 'fault' decision into a _Reply."""
        if d["kind"] == "fault":
            hdrs = list(d["headers"])
            ra = d.get("retry_after_s")
            if ra is not None:
                hdrs.append(("retry-after", str(int(math.ceil(float(ra))))))
            raise _Reply(d["status"], _fault_body(api, d["status"]), hdrs)
        hdrs = list(d["headers"])
        wait = d["wait_s"]
        if d["computed_retry"]:
            hdrs.append(("retry-after", str(max(1, int(math.ceil(wait - 1e-6))))))
            if api == "openai":
                hdrs.append(("retry-after-ms", str(max(1, int(math.ceil(wait * 1000 - 1e-6))))))
        key = d["bucket"]
        label, abbr = _BUCKET_LABEL[key]
        cap = int(math.floor(d["capacity"] + EPS))
        if api == "openai":
            typ = "requests" if key == "requests" else "tokens"
            if d["too_large"]:
                msg = (f"Request too large for {model.name} in organization org-mock on {label} "
                       f"per second ({abbr}): Limit {cap}, Requested {d['requested']}. The input "
                       f"or output tokens must be reduced in order to run successfully.")
            else:
                msg = (f"Rate limit reached for {label} per second ({abbr}) on {model.name} in "
                       f"organization org-mock: Limit {cap}, Used {d['used']}, Requested "
                       f"{d['requested']}. Please try again in {go_duration(wait)}. Visit "
                       f"https://platform.openai.com/account/rate-limits to learn more.")
            raise _Reply(429, _oa_err(msg, typ, None, "rate_limit_exceeded"), hdrs)
        msg = (f"This request would exceed the rate limit for your organization (org-mock) of "
               f"{d['rate']:g} {label} per second (bucket capacity {cap}). For details, refer to: "
               f"https://docs.claude.com/en/api/rate-limits. You can see the response headers for "
               f"current usage. Please reduce the prompt length or the maximum tokens requested, "
               f"or try again later.")
        raise _Reply(429, _an_err("rate_limit_error", msg), hdrs)

    def _embeddings(self, model, body):
        parsed = _embedding_inputs(body.get("input"))
        if parsed is None:
            raise _Reply(400, _oa_err("'$.input' is invalid. Please check the API reference: "
                                      "https://platform.openai.com/docs/api-reference.",
                                      "invalid_request_error", "input", "invalid_value"))
        items, n = parsed
        dims = body.get("dimensions") or 8
        if not isinstance(dims, int) or dims < 1 or dims > 4096:
            raise _Reply(400, _oa_err("Invalid 'dimensions'.", "invalid_request_error",
                                      "dimensions", "invalid_value"))
        mock = self.mock
        d = model.decide({"requests": 1, "tokens": n, "_in": n}, False, time.monotonic(), mock.t0)
        if d["kind"] != "ok":
            self._refuse("openai", model, d, "tokens")
        if d["latency_s"] > 0 and not self._wait_watching(d["latency_s"]):
            self.close_connection = True
            model.count_aborted(mock._ms())
            return
        b64 = body.get("encoding_format") == "base64"
        data = []
        for k, it in enumerate(items):
            vec = _embedding_vector(it, k, dims)
            if b64:
                vec = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": k, "embedding": vec})
        out = {"object": "list", "data": data, "model": model.name,
               "usage": {"prompt_tokens": n, "total_tokens": n}}
        self._send_json(200, out, d["headers"], api="openai", model=model, ok=True)

    def _generate(self, api, model, body):
        mt = self._validate(api, model, body)
        i = count_input_tokens(body, api)
        o = model.output_tokens if mt is None else min(mt, model.output_tokens)
        o = max(0, o)
        truncated = mt is not None and mt < model.output_tokens
        tool = _forced_tool(body, api)
        stop_hit = None
        if tool is None:
            stops = set(_stop_sequences(body, api))
            for k in range(o):
                if f"tok{k}" in stops:
                    o, stop_hit, truncated = k, f"tok{k}", False
                    break
        cached = 0
        md = body.get("metadata")
        mark = _marked_cached(body)
        if isinstance(md, dict) and md.get("mock_cached") is not None:
            try:
                cached = max(0, min(int(md["mock_cached"]), i))
            except (TypeError, ValueError):
                cached = 0
        elif mark is not None:
            cached = max(0, min(mark, i))
        # Prompt-cache writes: Anthropic reports them (cache_creation_input_tokens, priced above
        # the input price, counted by ITPM); OpenAI neither reports nor charges them.
        written = 0
        wmark = _marked_cached(body, _CACHE_WRITE_MARK)
        if api == "anthropic":
            if isinstance(md, dict) and md.get("mock_cache_write") is not None:
                try:
                    written = max(0, min(int(md["mock_cache_write"]), i - cached))
                except (TypeError, ValueError):
                    written = 0
            elif wmark is not None:
                written = max(0, min(wmark, i - cached))
        stream = bool(body.get("stream"))
        if api == "openai":
            need = {"requests": 1, "tokens": i + o, "_in": i, "_out": o}
        else:
            ic = i - cached  # cache reads don't count toward Anthropic ITPM
            need = {"requests": 1, "input-tokens": ic, "output-tokens": o, "tokens": ic + o,
                    "_in": ic, "_out": o}
        mock = self.mock
        d = model.decide(need, stream, time.monotonic(), mock.t0)
        if d["kind"] != "ok":
            self._refuse(api, model, d, None)
        if d["latency_s"] > 0 and not self._wait_watching(d["latency_s"]):
            self.close_connection = True
            model.count_aborted(mock._ms())
            return
        words = [f"tok{k}" for k in range(o)]
        call = None
        if tool is not None:
            call = {"id": _req_id("call_" if api == "openai" else "toolu_"), "name": tool[0],
                    "input": tool_arguments(tool[1])}
            truncated = False
        if not stream:
            if api == "openai":
                msg = {"role": "assistant", "content": " ".join(words), "refusal": None}
                finish = "length" if truncated else "stop"
                if call is not None:
                    msg["content"] = None
                    msg["tool_calls"] = [{"id": call["id"], "type": "function", "function": {
                        "name": call["name"], "arguments": json.dumps(call["input"])}}]
                    finish = "tool_calls"
                out = {
                    "id": _req_id("chatcmpl-"), "object": "chat.completion",
                    "created": int(time.time()), "model": model.name,
                    "choices": [{"index": 0,
                                 "message": msg,
                                 "logprobs": None,
                                 "finish_reason": finish}],
                    "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
                              "prompt_tokens_details": {"cached_tokens": cached},
                              "completion_tokens_details": {"reasoning_tokens": 0}},
                    "system_fingerprint": "fp_mock",
                }
            else:
                content = [{"type": "text", "text": " ".join(words)}]
                reason = "max_tokens" if truncated else "end_turn"
                if call is not None:
                    content = [{"type": "tool_use", "id": call["id"], "name": call["name"],
                                "input": call["input"]}]
                    reason = "tool_use"
                elif stop_hit is not None:
                    reason = "stop_sequence"
                out = {
                    "id": _req_id("msg_"), "type": "message", "role": "assistant",
                    "model": model.name,
                    "content": content,
                    "stop_reason": reason,
                    "stop_sequence": stop_hit,
                    "usage": {"input_tokens": i - cached - written, "output_tokens": o,
                              "cache_creation_input_tokens": written,
                              "cache_read_input_tokens": cached},
                }
            self._send_json(200, out, d["headers"], api=api, model=model, ok=True)
            return
        if api == "openai":
            events = self._oa_events(model, body, i, o, cached, truncated, call)
        else:
            events = self._an_events(model, i, o, cached, truncated, call, stop_hit, written)
        self._stream(api, model, d, events)

    # -- streams -----------------------------------------------------------
    def _oa_events(self, model, body, i, o, cached, truncated, call=None):
        cid = _req_id("chatcmpl-")
        created = int(time.time())
        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and bool(so.get("include_usage"))

        def chunk(delta, finish=None):
            c = {"id": cid, "object": "chat.completion.chunk", "created": created,
                 "model": model.name, "system_fingerprint": "fp_mock",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}]}
            if include_usage:
                c["usage"] = None
            return b"data: " + _dumps(c) + b"\n\n"

        if call is not None:
            args = json.dumps(call["input"])
            yield chunk({"role": "assistant", "content": None, "tool_calls": [{
                "index": 0, "id": call["id"], "type": "function",
                "function": {"name": call["name"], "arguments": ""}}]})
            for piece in _pieces(args):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            yield chunk({}, "tool_calls")
        else:
            yield chunk({"role": "assistant", "content": ""})
            for k in range(o):
                yield chunk({"content": f"tok{k} "})
            yield chunk({}, "length" if truncated else "stop")
        if include_usage:
            c = {"id": cid, "object": "chat.completion.chunk", "created": created,
                 "model": model.name, "system_fingerprint": "fp_mock", "choices": [],
                 "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
                           "prompt_tokens_details": {"cached_tokens": cached},
                           "completion_tokens_details": {"reasoning_tokens": 0}}}
            yield b"data: " + _dumps(c) + b"\n\n"
        yield b"data: [DONE]\n\n"

    def _an_events(self, model, i, o, cached, truncated, call=None, stop_hit=None, written=0):
        def ev(obj):
            return b"event: " + obj["type"].encode() + b"\ndata: " + _dumps(obj) + b"\n\n"

        yield ev({"type": "message_start", "message": {
            "id": _req_id("msg_"), "type": "message", "role": "assistant", "model": model.name,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": i - cached - written, "output_tokens": 1,
                      "cache_creation_input_tokens": written, "cache_read_input_tokens": cached}}})
        if call is not None:
            yield ev({"type": "content_block_start", "index": 0,
                      "content_block": {"type": "tool_use", "id": call["id"],
                                        "name": call["name"], "input": {}}})
            yield ev({"type": "ping"})
            for piece in _pieces(json.dumps(call["input"])):
                yield ev({"type": "content_block_delta", "index": 0,
                          "delta": {"type": "input_json_delta", "partial_json": piece}})
            reason = "tool_use"
        else:
            yield ev({"type": "content_block_start", "index": 0,
                      "content_block": {"type": "text", "text": ""}})
            yield ev({"type": "ping"})
            for k in range(o):
                yield ev({"type": "content_block_delta", "index": 0,
                          "delta": {"type": "text_delta", "text": f"tok{k} "}})
            reason = "max_tokens" if truncated else (
                "stop_sequence" if stop_hit is not None else "end_turn")
        yield ev({"type": "content_block_stop", "index": 0})
        yield ev({"type": "message_delta",
                  "delta": {"stop_reason": reason, "stop_sequence": stop_hit},
                  "usage": {"output_tokens": o}})
        yield ev({"type": "message_stop"})

    def _stream(self, api, model, d, events):
        mock = self.mock
        cut = d["cut"]
        chunk_s = d["chunk_s"]
        w = self.wfile
        counted = False
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self._id_headers(api)
            for k, v in d["headers"]:
                self.send_header(k, v)
            self.end_headers()
            sent = 0
            for data in events:
                if cut is not None and sent >= cut:
                    break
                if sent and chunk_s > 0 and not self._wait_watching(chunk_s):
                    raise ConnectionResetError("client closed the stream")
                w.write(b"%x\r\n%s\r\n" % (len(data), data))
                sent += 1
            if cut is not None:
                # abrupt end: no terminating zero-length chunk
                self.close_connection = True
                model.count("streams_cut")
                model.count_status(200, mock._ms())
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            counted = True
            model.count_status(200, mock._ms(), ok=True)
            w.write(b"0\r\n\r\n")
        except OSError:  # client went away (broken pipe, reset, timeout)
            self.close_connection = True
            if counted:
                model.uncount_ok(mock._ms())
            else:
                model.count_aborted(mock._ms())
                model.count_status(200, mock._ms())


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, addr, handler, mock):
        self.mock = mock
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)

    def track(self, conn, add: bool):
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_all(self):
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # a client that went away is normal; anything else is a mock bug:
        # print the traceback (never request data, so never keys)
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        import traceback
        traceback.print_exc(file=sys.stderr)


# --------------------------------------------------------------------------
# public API


def _load_config(arg):
    if arg is None:
        return json.loads(json.dumps(DEFAULT_CONFIG))
    s = arg.strip()
    if s.startswith("{"):
        return json.loads(s)
    with open(arg, "r", encoding="utf-8") as fh:
        return json.load(fh)


class MockServer:
    """Mock upstream.  Binds in the constructor (so .port/.url are known),
    serves from a background thread after .start()."""

    def __init__(self, config: dict | None = None, host: str = "127.0.0.1", port: int = 0):
        cfg = json.loads(json.dumps(config if config is not None else DEFAULT_CONFIG))
        models = cfg.get("models")
        if not isinstance(models, dict) or not models:
            raise ValueError("config needs a non-empty 'models' object")
        style = cfg.get("header_style", "default")
        if style not in ("default", "none"):
            raise ValueError("header_style must be 'default' or 'none'")
        self.config = cfg
        self.t0 = time.monotonic()
        now = self.t0
        self.models = {name: Model(name, mc or {}, style, now) for name, mc in models.items()}
        self._unknown_lock = threading.Lock()
        self._unknown = {"received": 0, "status": {}}
        self._log_lock = threading.Lock()
        self._log_entries: collections.deque = collections.deque(maxlen=LOG_MAX)
        self._log_seq = 0
        self._httpd = _HTTPServer((host, port), _Handler, self)
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = None

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

    def _ms(self) -> float:
        return round((time.monotonic() - self.t0) * 1000.0, 3)

    def _count_unknown(self, code: int):
        with self._unknown_lock:
            self._unknown["received"] += 1
            k = str(code)
            self._unknown["status"][k] = self._unknown["status"].get(k, 0) + 1

    def start(self) -> "MockServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name="mockllm", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self):
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.close_all()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- control ----------------------------------------------------------
    def stats(self) -> dict:
        now = time.monotonic()
        models = {name: m.snapshot(self.t0, now) for name, m in self.models.items()}
        total = _new_stats()
        for s in models.values():
            for k in ("received", "ok", "admitted", "streams", "streams_cut", "aborted",
                      "input_tokens_charged", "output_tokens_charged"):
                total[k] += s[k]
            for code, n in s["status"].items():
                total["status"][code] = total["status"].get(code, 0) + n
            for k, fn in (("first_ms", min), ("last_ms", max), ("last_done_ms", max),
                          ("last_aborted_ms", max)):
                if s[k] is not None:
                    total[k] = s[k] if total[k] is None else fn(total[k], s[k])
        with self._unknown_lock:
            unknown = json.loads(json.dumps(self._unknown))
        total["received"] += unknown["received"]
        for code, n in unknown["status"].items():
            total["status"][code] = total["status"].get(code, 0) + n
        return {"now_ms": round((now - self.t0) * 1000.0, 3), "models": models,
                "total": total, "unattributed": unknown}

    def _log(self, method: str, path: str, headers: dict, raw: bytes) -> None:
        with self._log_lock:
            self._log_seq += 1
            self._log_entries.append(_log_entry(self._log_seq, self._ms(), method, path,
                                                dict(headers), raw))

    def log(self) -> list:
        """What each API request carried, oldest first (``GET /_mock/log``): ``seq``, ``ms``,
        ``method``, ``path``, ``headers`` (auth values "[redacted]"), ``auth``
        (``{"header", "sha256"}`` or null), ``body`` (parsed JSON or null), ``body_bytes``."""
        with self._log_lock:
            entries = list(self._log_entries)
        return [_log_view(e) for e in entries]

    def faults(self) -> dict:
        now = time.monotonic()
        out = {}
        for name, m in self.models.items():
            with m.lock:
                v = m._faults_view(now)
            if v:
                out[name] = v
        return out

    def set_faults(self, spec) -> dict:
        """Apply one fault dict (or a list of them).  See README."""
        specs = spec if isinstance(spec, list) else [spec]
        now = time.monotonic()
        for s in specs:
            if not isinstance(s, dict):
                raise ValueError("fault must be an object")
            name = s.get("model")
            if name is None:
                if s.get("clear"):
                    for m in self.models.values():
                        m.apply_fault({"clear": True}, now)
                    continue
                raise ValueError("fault needs 'model' (or {'clear': true})")
            targets = list(self.models.values()) if name == "*" else [self.models.get(name)]
            if targets == [None]:
                raise ValueError(f"unknown model {name!r}")
            for m in targets:
                m.apply_fault(s, now)
        return self.faults()

    def reset(self) -> None:
        now = time.monotonic()
        for m in self.models.values():
            m.reset(now)
        with self._unknown_lock:
            self._unknown = {"received": 0, "status": {}}
        with self._log_lock:
            self._log_entries.clear()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="mock upstream LLM provider")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--config", default=None, help="JSON file or inline JSON object")
    a = ap.parse_args(argv)
    mock = MockServer(_load_config(a.config), host=a.host, port=a.port)
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    mock.start()
    sys.stdout.write(json.dumps({"port": mock.port}) + "\n")
    sys.stdout.flush()
    while not done.wait(0.5):
        pass
    mock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
