"""`ratewise serve`'s spend ledger and availability log (docs/gateway.md, "The spend ledger and
the availability log"): one record per request with the upstream's reported usage and its cost
at the engine's price formula (JSON and streams, both SDKs, a stream written when it ends, a
client that leaves), cache hits and degraded answers, requests refused before routing, the
availability events of a failover and of a circuit opening and closing, the reports
(`/admin/usage`, `/admin/availability`, their auth and 400s, and `ratewise usage` /
`ratewise availability --json` agreeing with them), two gateways on one PostgreSQL (the
password never shown), the default SQLite file, and `"ledger": false`.

Records are written off the request path (`flush_ms` 20 here): every check polls until the
record (or event) it expects is in, then waits a little more and checks there is exactly that
many. A single record's fields are read from the module gateway's SQLite file (read-only, by
the `x-request-id` the test sent); the totals from `/admin/usage` and `/admin/availability`.
Each test uses capabilities and providers of its own, so the totals of one are not touched by
another.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional

import anthropic
import openai
import pytest

import gw_fixture as g
from gw_fixture import ADMIN_KEY, KEY_A, KEY_B, KEY_UNKNOWN, Gateway, micro_cost, model_stats, request, sha256, words

OUT = 7
FLUSH_MS = 20
SETTLE_S = 0.15  # after the expected rows arrived: long enough for a duplicate to show up

PRICE = {"input_per_mtok": 1.25, "output_per_mtok": 3.3}      # ceil() matters: 3.3 * 7 = 23.1
PRICE_2 = {"input_per_mtok": 0.5, "output_per_mtok": 1.75}
PRICE_CR = {"input_per_mtok": 1.25, "output_per_mtok": 3.3, "cached_input_per_mtok": 0.125}
_TABLE = json.loads((g.REPO / "gateway" / "data" / "prices.json").read_text())["models"]["gpt-4o-mini"]
PRICE_TABLE = {"input_per_mtok": _TABLE["input"], "output_per_mtok": _TABLE["output"],
               "cached_input_per_mtok": _TABLE["cache_read"]}
# Prompt-cache writes at 1.25× the input price, as Anthropic's 5-minute cache.
PRICE_CW = {**PRICE_CR, "cache_write_input_per_mtok": 1.5625}
_TABLE_AN = json.loads((g.REPO / "gateway" / "data" / "prices.json").read_text())["models"]["claude-sonnet-4-5"]
PRICE_TABLE_AN = {"input_per_mtok": _TABLE_AN["input"], "output_per_mtok": _TABLE_AN["output"],
                  "cached_input_per_mtok": _TABLE_AN["cache_read"],
                  "cache_write_input_per_mtok": _TABLE_AN["cache_write"]}
# A cost quota whose refill over a test (1 micro-USD per 1,000 s) cannot blur an exact charge.
COST_QUOTA = {"dimension": "cost", "limit": 1_000_000, "window_ms": 1_000_000_000_000}
STATIC = "The assistant is resting; try again in a minute."

MOCK_MODELS = {
    **{m: {"api": "openai", "output_tokens": OUT}
       for m in ("l-oa", "l-free", "l-cache", "l-deg", "l-stale", "l-fo429-1", "l-fo429-2",
                 "l-circ", "l-bad", "l-rep", "l-pg", "l-off")},
    **{m: {"api": "anthropic", "output_tokens": OUT} for m in ("l-an", "l-fo529-1", "l-fo529-2")},
    "l-oa-s": {"api": "openai", "output_tokens": 8, "chunk_ms": 40},
    "l-an-s": {"api": "anthropic", "output_tokens": 8, "chunk_ms": 40},
    "l-hang": {"api": "openai", "output_tokens": 30, "chunk_ms": 100},
    "l-hang-an": {"api": "anthropic", "output_tokens": 30, "chunk_ms": 100},
    "l-gone": {"api": "openai", "output_tokens": OUT, "latency_ms": 1500},
    "l-cr": {"api": "openai", "output_tokens": OUT},
    "gpt-4o-mini": {"api": "openai", "output_tokens": OUT},
    "l-cr-an": {"api": "anthropic", "output_tokens": OUT},
    "l-cw-an": {"api": "anthropic", "output_tokens": OUT},
    "claude-sonnet-4-5": {"api": "anthropic", "output_tokens": OUT},
}

# capability -> [(provider, mock model, priority, price or None)]
CAPS: Dict[str, List[Any]] = {
    "l-oa": [("lp-oa", "l-oa", 10, PRICE)],
    "l-free": [("lp-free", "l-free", 10, None)],
    "l-an": [("lp-an", "l-an", 10, PRICE)],
    "l-oa-s": [("lp-oa-s", "l-oa-s", 10, PRICE)],
    "l-an-s": [("lp-an-s", "l-an-s", 10, PRICE_2)],
    "l-hang": [("lp-hang", "l-hang", 10, PRICE)],
    "l-hang-an": [("lp-hang-an", "l-hang-an", 10, PRICE)],
    "l-gone": [("lp-gone", "l-gone", 10, PRICE)],
    "l-cache": [("lp-cache", "l-cache", 10, PRICE)],
    "l-deg": [("lp-deg", "l-deg", 10, PRICE)],
    "l-stale": [("lp-stale", "l-stale", 10, PRICE)],
    "l-fo429": [("lp-fo429-1", "l-fo429-1", 10, PRICE), ("lp-fo429-2", "l-fo429-2", 5, PRICE_2)],
    "l-fo529": [("lp-fo529-1", "l-fo529-1", 10, PRICE), ("lp-fo529-2", "l-fo529-2", 5, PRICE_2)],
    "l-circ": [("lp-circ", "l-circ", 10, PRICE)],
    "l-bad": [("lp-bad", "l-bad", 10, PRICE)],
    "l-rep": [("lp-rep", "l-rep", 10, PRICE)],
    "l-off": [("lp-off", "l-off", 10, PRICE)],
    "l-cr": [("lp-cr", "l-cr", 10, PRICE_CR)],
    "l-cr-tbl": [("lp-cr-tbl", "gpt-4o-mini", 10, None)],  # no price key: the bundled table's
    "l-cr-an": [("lp-cr-an", "l-cr-an", 10, PRICE_CR)],
    "l-cw-an": [("lp-cw-an", "l-cw-an", 10, PRICE_CW)],
    "l-cw-tbl": [("lp-cw-tbl", "claude-sonnet-4-5", 10, None)],  # the bundled table's
}
CAP_SETTINGS = {
    "l-deg": {"degraded": {"static": {"default": STATIC}}},
    "l-stale": {"cache": {"ttl_s": 1, "max_stale_s": 3600}, "degraded": {"static": {"default": STATIC}}},
}
PROVIDER_EXTRA: Dict[str, Dict[str, Any]] = {
    "lp-circ": {"cooldown_ms": 300},
    **{p: {"quotas": [g.day_requests(), g.day_tokens(), COST_QUOTA]} for p in ("lp-cr", "lp-cr-tbl", "lp-cr-an", "lp-cw-an", "lp-cw-tbl")},
}


def keys(caps) -> List[Dict[str, Any]]:
    """alpha: every capability; beta: l-rep only (and only where l-rep exists)."""
    out = [{"name": "alpha", "sha256": sha256(KEY_A)}]
    if "l-rep" in caps:
        out.append({"name": "beta", "sha256": sha256(KEY_B), "capabilities": ["l-rep"]})
    return out


_ABSENT = object()  # build_config(ledger=_ABSENT): no `ledger` key at all


def build_config(mock_url: str, caps: Dict[str, List[Any]], ledger: Any,
                 extra_keys: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    providers, upstreams = [], {}
    for entries in caps.values():
        for prov, model, _, price in entries:
            p: Dict[str, Any] = {"name": prov, "model": model,
                                 "quotas": [g.day_requests(), g.day_tokens()], **PROVIDER_EXTRA.get(prov, {})}
            if price is not None:
                p["price"] = price
            providers.append(p)
            upstreams[prov] = g.upstream(MOCK_MODELS[model]["api"], mock_url)
    gw = g.gateway_section(upstreams, keys(caps) + (extra_keys or []),
                           capabilities={c: s for c, s in CAP_SETTINGS.items() if c in caps})
    if ledger is not _ABSENT:
        gw["ledger"] = ledger
    return {
        "providers": providers,
        "capabilities": [{"name": c, "providers": [{"provider": p, "priority": pr} for p, _, pr, _ in entries]}
                         for c, entries in caps.items()],
        "gateway": gw,
    }


def gateway_config(mock_url, tmp):
    return build_config(mock_url, CAPS, {"url": f"sqlite:{Path(tmp) / 'ledger.db'}", "flush_ms": FLUSH_MS})


USER = [{"role": "user", "content": "Tell me about ledgers."}]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def rid(tag: str) -> str:
    return f"lt-{tag}-{secrets.token_hex(6)}"


def oa_client(gw, key=KEY_A):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=15)


def an_client(gw, key=KEY_A):
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=15)


# --------------------------------------------------------------------------------------------
# reading the ledger


def db_path(gw) -> str:
    return gw.config["gateway"]["ledger"]["url"][len("sqlite:"):]


def db_rows(gw, where: str, args=()) -> List[Dict[str, Any]]:
    con = sqlite3.connect(f"file:{db_path(gw)}?mode=ro", uri=True, timeout=5)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(f"SELECT * FROM ratewise_requests WHERE {where}", args)]
    finally:
        con.close()


def record(gw, request_id: str, timeout: float = 10.0) -> Dict[str, Any]:
    """The one record of a request: waits for it, then checks no second one follows."""
    g.wait_until(lambda: db_rows(gw, "request_id = ?", (request_id,)), timeout,
                 f"the ledger record of {request_id}", 0.02)
    time.sleep(SETTLE_S)
    rows = db_rows(gw, "request_id = ?", (request_id,))
    assert len(rows) == 1, f"{len(rows)} records for {request_id}: {rows}"
    return rows[0]


def no_record_yet(gw, request_id: str) -> None:
    time.sleep(max(0.15, 6 * FLUSH_MS / 1000))
    assert db_rows(gw, "request_id = ?", (request_id,)) == [], f"{request_id} was written early"


def usage(gw, query: str = "", headers=ADMIN):
    r = request(gw, "GET", "/admin/usage" + (("?" + query) if query else ""), headers=headers)
    assert r.status == 200, r
    return r.json()


def availability(gw, query: str = "") -> Dict[str, Any]:
    r = request(gw, "GET", "/admin/availability" + (("?" + query) if query else ""), headers=ADMIN)
    assert r.status == 200, r
    return r.json()


def usage_rows(gw, group_by: str, **match: str) -> List[Dict[str, Any]]:
    rows = usage(gw, f"group_by={group_by}&window=1h")["rows"]
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def capability_row(gw, capability: str, requests: int, timeout: float = 10.0) -> Dict[str, Any]:
    """The capability's usage row once it counts `requests` (and still does a moment later)."""
    def got():
        rows = usage_rows(gw, "capability", capability=capability)
        return rows and rows[0]["requests"] >= requests

    g.wait_until(got, timeout, f"{requests} requests of {capability} in /admin/usage", 0.02)
    time.sleep(SETTLE_S)
    rows = usage_rows(gw, "capability", capability=capability)
    assert len(rows) == 1 and rows[0]["requests"] == requests, rows
    return rows[0]


def provider_rows(gw, providers: List[str]) -> Dict[str, Dict[str, Any]]:
    return {p["provider"]: p for p in availability(gw)["providers"] if p["provider"] in providers}


def settled_availability(gw, providers: List[str], pred, timeout: float = 10.0) -> Dict[str, Dict[str, Any]]:
    g.wait_until(lambda: pred(provider_rows(gw, providers)), timeout,
                 f"the availability events of {providers}", 0.02)
    time.sleep(SETTLE_S)
    return provider_rows(gw, providers)


def avail_row(provider: str, **over: Any) -> Dict[str, Any]:
    row = {"provider": provider, "outcomes": 0, "successes": 0, "availability": None,
           "latency_p50_ms": None, "latency_p99_ms": None, "rate_limited": 0, "overloaded": 0,
           "server_errors": 0, "timeouts": 0, "fallbacks": 0, "circuit_opened": 0, "circuit_closed": 0}
    row.update(over)
    return row


def usage_row(**over: Any) -> Dict[str, Any]:
    row = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost_micro_usd": 0,
           "cost_usd": 0.0, "errors": 0, "cache_hits": 0, "degraded": 0}
    row.update(over)
    row["cost_usd"] = row["cost_micro_usd"] / 1e6
    return row


def cli(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(g.gateway_binary()), *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else g.gateway_env(), cwd=str(g.REPO),
                          stdin=subprocess.DEVNULL)


def window_now(back_s: int = 3600):
    now = int(time.time())
    return now - back_s, now + 60


def assert_times(rec: Dict[str, Any], t0_ms: int, t1_ms: int) -> None:
    assert t0_ms - 5 <= rec["ts_ms"] <= t1_ms, (rec["ts_ms"], t0_ms, t1_ms)
    assert 0 <= rec["latency_ms"] <= t1_ms - t0_ms + 5, (rec["latency_ms"], t1_ms - t0_ms)


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------
# (1) JSON answers: tokens, cost, key, capability, provider, model


def test_openai_sdk_json_record_has_the_reported_usage_and_the_exact_cost(gw, mock):
    """The real openai SDK; the mock reports cached tokens too. The record: the usage the
    upstream reported (= what the mock charged and counts in the body it received), the cost
    by the engine's formula, the key's name, the capability, provider and upstream model, 200
    `ok`, one attempt, no ttft. /admin/usage sums the same."""
    oa = oa_client(gw)
    msgs = [{"role": "user", "content": "Tell me about ledgers. [[mock_cached=3]]"}]
    r_id = rid("oa")
    t0 = now_ms()
    raw = oa.chat.completions.with_raw_response.create(model="l-oa", messages=msgs,
                                                       extra_headers={"x-request-id": r_id})
    t1 = now_ms()
    c = raw.parse()
    assert raw.headers["x-request-id"] == r_id
    i, o = c.usage.prompt_tokens, c.usage.completion_tokens
    assert (o, c.usage.prompt_tokens_details.cached_tokens) == (OUT, 3)
    st = model_stats(mock, "l-oa")
    assert (st["input_tokens_charged"], st["output_tokens_charged"]) == (i, o)
    assert g.count_input_tokens(g.log_for(mock, "l-oa")[0]["body"], "openai") == i
    cost = micro_cost(PRICE, i, o)
    assert cost == -(-(i * 1_250_000 + o * 3_300_000) // 1_000_000)
    rec = record(gw, r_id)
    assert {k: rec[k] for k in ("key", "capability", "provider", "model", "input_tokens", "output_tokens",
                                "cached_tokens", "cost_micro_usd", "status", "domain", "ttft_ms",
                                "degraded", "attempts")} == {
        "key": "alpha", "capability": "l-oa", "provider": "lp-oa", "model": "l-oa", "input_tokens": i,
        "output_tokens": o, "cached_tokens": 3, "cost_micro_usd": cost, "status": 200, "domain": "ok",
        "ttft_ms": None, "degraded": "", "attempts": 1}
    assert rec["cache"] == raw.headers["x-ratewise-cache"]
    assert_times(rec, t0, t1)
    row = capability_row(gw, "l-oa", 1)
    assert row == {"capability": "l-oa", **usage_row(requests=1, input_tokens=i, output_tokens=o,
                                                     cached_tokens=3, cost_micro_usd=cost)}
    # A provider without a price: the tokens, and cost 0.
    r2 = rid("free")
    f = oa.chat.completions.create(model="l-free", messages=USER, extra_headers={"x-request-id": r2})
    rec2 = record(gw, r2)
    assert (rec2["provider"], rec2["input_tokens"], rec2["output_tokens"], rec2["cost_micro_usd"]) == (
        "lp-free", f.usage.prompt_tokens, OUT, 0)


def test_anthropic_sdk_json_record_counts_cache_reads_in_the_input(gw, mock):
    """The real anthropic SDK, passed through to an Anthropic upstream that reports a cache read:
    the record's input is input_tokens + cache_read_input_tokens (cached as part of the input),
    its cost the formula on that input."""
    an = an_client(gw)
    r_id = rid("an")
    msgs = [{"role": "user", "content": "Tell me about ledgers. [[mock_cached=4]]"}]
    t0 = now_ms()
    raw = an.messages.with_raw_response.create(model="l-an", max_tokens=64, messages=msgs,
                                               extra_headers={"x-request-id": r_id})
    t1 = now_ms()
    m = raw.parse()
    assert raw.headers["x-request-id"] == r_id
    u = m.usage
    assert (u.cache_read_input_tokens, u.output_tokens) == (4, OUT)
    i = u.input_tokens + u.cache_read_input_tokens + (u.cache_creation_input_tokens or 0)
    body = g.log_for(mock, "l-an")[0]["body"]
    assert g.count_input_tokens(body, "anthropic") == i
    st = model_stats(mock, "l-an")
    assert (st["input_tokens_charged"], st["output_tokens_charged"]) == (u.input_tokens, OUT)
    cost = micro_cost(PRICE, i, OUT)
    rec = record(gw, r_id)
    assert {k: rec[k] for k in ("key", "capability", "provider", "model", "input_tokens", "output_tokens",
                                "cached_tokens", "cost_micro_usd", "status", "domain", "attempts")} == {
        "key": "alpha", "capability": "l-an", "provider": "lp-an", "model": "l-an", "input_tokens": i,
        "output_tokens": OUT, "cached_tokens": 4, "cost_micro_usd": cost, "status": 200, "domain": "ok",
        "attempts": 1}
    assert_times(rec, t0, t1)
    assert capability_row(gw, "l-an", 1) == {"capability": "l-an", **usage_row(
        requests=1, input_tokens=i, output_tokens=OUT, cached_tokens=4, cost_micro_usd=cost)}


def test_cache_reads_cost_the_cache_read_price_in_the_record_the_header_and_the_engine(gw, mock):
    """A price's `cached_input_per_mtok` (docs/design.md §3): the input read from the prompt
    cache costs that, the rest the input price, and one figure is everywhere: the record, the
    `x-ratewise-cost-usd` header and the engine's cost quota. Through the openai SDK to a
    provider priced in the configuration and to one priced by the bundled table (gpt-4o-mini's
    cache-read price), and through the anthropic SDK streaming (cache_read_input_tokens)."""
    oa, an = oa_client(gw), an_client(gw)
    for cap, prov, price in (("l-cr", "lp-cr", PRICE_CR), ("l-cr-tbl", "lp-cr-tbl", PRICE_TABLE)):
        before = g.charged(g.settled(gw, [prov]), prov, "cost")
        r_id = rid("cr")
        msgs = [{"role": "user", "content": words(300) + " [[mock_cached=200]]"}]
        raw = oa.chat.completions.with_raw_response.create(model=cap, messages=msgs,
                                                           extra_headers={"x-request-id": r_id})
        c = raw.parse()
        i, o, k = c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.prompt_tokens_details.cached_tokens
        assert (k, o) == (200, OUT) and i > 300, c.usage
        cost = micro_cost(price, i, o, cached=k)
        assert cost < micro_cost({**price, "cached_input_per_mtok": price["input_per_mtok"]}, i, o, cached=k)
        rec = record(gw, r_id)
        assert (rec["provider"], rec["input_tokens"], rec["cached_tokens"], rec["cost_micro_usd"]) == (prov, i, k, cost)
        usd = ((i - k) * price["input_per_mtok"] + k * price["cached_input_per_mtok"]
               + o * price["output_per_mtok"]) / 1e6
        assert float(raw.headers["x-ratewise-cost-usd"]) == pytest.approx(usd, rel=1e-6, abs=1e-9)
        assert g.charged(g.settled(gw, [prov]), prov, "cost") - before == cost
    before = g.charged(g.settled(gw, ["lp-cr-an"]), "lp-cr-an", "cost")
    r_id = rid("cr-an")
    with an.messages.stream(model="l-cr-an", max_tokens=64, extra_headers={"x-request-id": r_id},
                            messages=[{"role": "user", "content": words(300) + " [[mock_cached=250]]"}]) as s:
        m = s.get_final_message()
    u = m.usage
    assert (u.cache_read_input_tokens, u.output_tokens) == (250, OUT), u
    i = u.input_tokens + u.cache_read_input_tokens + (u.cache_creation_input_tokens or 0)
    cost = micro_cost(PRICE_CR, i, OUT, cached=250)
    rec = record(gw, r_id)
    assert (rec["input_tokens"], rec["cached_tokens"], rec["cost_micro_usd"]) == (i, 250, cost)
    assert g.charged(g.settled(gw, ["lp-cr-an"]), "lp-cr-an", "cost") - before == cost


def test_cache_writes_cost_the_cache_write_price_in_the_record_the_header_and_the_engine(gw, mock):
    """A price's `cache_write_input_per_mtok` (docs/design.md §3): input the provider wrote to
    its prompt cache (Anthropic's cache_creation_input_tokens) costs that, reads the read price,
    the rest the input price; the record, `x-ratewise-cost-usd` and the engine's cost quota agree.
    Through the anthropic SDK (JSON) to a provider priced in the configuration, streaming to one
    priced by the bundled table (claude-sonnet-4-5: writes at 3.75, 1.25× its input), and through
    the openai SDK to an Anthropic deployment (translated: OpenAI's usage has no write count, the
    cost still has it)."""
    oa, an = oa_client(gw), an_client(gw)
    prompt = words(300) + " [[mock_cached=100]] [[mock_cache_write=150]]"

    def check(prov, price, r_id, i, usd_header=None):
        cost = micro_cost(price, i, OUT, cached=100, written=150)
        # Writes priced as input would be cheaper: the write price is what moved the figure.
        assert cost > micro_cost({**price, "cache_write_input_per_mtok": price["input_per_mtok"]}, i, OUT,
                                 cached=100, written=150)
        rec = record(gw, r_id)
        assert (rec["provider"], rec["input_tokens"], rec["cached_tokens"], rec["cost_micro_usd"]) == (
            prov, i, 100, cost)
        if usd_header is not None:
            usd = ((i - 250) * price["input_per_mtok"] + 100 * price["cached_input_per_mtok"]
                   + 150 * price["cache_write_input_per_mtok"] + OUT * price["output_per_mtok"]) / 1e6
            assert float(usd_header) == pytest.approx(usd, rel=1e-6, abs=1e-9)
        return cost

    before = g.charged(g.settled(gw, ["lp-cw-an"]), "lp-cw-an", "cost")
    r_id = rid("cw-an")
    raw = an.messages.with_raw_response.create(model="l-cw-an", max_tokens=64, extra_headers={"x-request-id": r_id},
                                               messages=[{"role": "user", "content": prompt}])
    u = raw.parse().usage
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (100, 150, OUT), u
    i = u.input_tokens + 250
    cost = check("lp-cw-an", PRICE_CW, r_id, i, raw.headers["x-ratewise-cost-usd"])
    assert g.charged(g.settled(gw, ["lp-cw-an"]), "lp-cw-an", "cost") - before == cost

    before = g.charged(g.settled(gw, ["lp-cw-tbl"]), "lp-cw-tbl", "cost")
    r_id = rid("cw-tbl")
    with an.messages.stream(model="l-cw-tbl", max_tokens=64, extra_headers={"x-request-id": r_id},
                            messages=[{"role": "user", "content": prompt}]) as s:
        u = s.get_final_message().usage
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (100, 150), u
    cost = check("lp-cw-tbl", PRICE_TABLE_AN, r_id, u.input_tokens + 250)
    assert g.charged(g.settled(gw, ["lp-cw-tbl"]), "lp-cw-tbl", "cost") - before == cost

    before = g.charged(g.settled(gw, ["lp-cw-an"]), "lp-cw-an", "cost")
    r_id = rid("cw-oa")
    raw = oa.chat.completions.with_raw_response.create(model="l-cw-an", max_tokens=64,
                                                       messages=[{"role": "user", "content": prompt}],
                                                       extra_headers={"x-request-id": r_id})
    c = raw.parse()
    assert c.usage.prompt_tokens_details.cached_tokens == 100, c.usage
    cost = check("lp-cw-an", PRICE_CW, r_id, c.usage.prompt_tokens, raw.headers["x-ratewise-cost-usd"])
    assert g.charged(g.settled(gw, ["lp-cw-an"]), "lp-cw-an", "cost") - before == cost


# --------------------------------------------------------------------------------------------
# (2) streams


def test_openai_sdk_stream_is_recorded_when_it_ends_with_its_usage_and_ttft(gw, mock):
    """A stream of 8 chunks 40 ms apart, read by the openai SDK (no include_usage): nothing is
    written while it runs; at its end one record with the usage the upstream reported, the
    cost, a ttft, and a latency that covers the whole stream."""
    oa = oa_client(gw)
    r_id = rid("oas")
    t0 = now_ms()
    stream = oa.chat.completions.create(model="l-oa-s", messages=USER, stream=True,
                                        extra_headers={"x-request-id": r_id})
    it = iter(stream)
    first = next(it)
    t_first = time.monotonic()
    assert first.choices
    no_record_yet(gw, r_id)
    rest = list(it)
    t_end = time.monotonic()
    t1 = now_ms()
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == words(8, trailing=True)
    assert all(c.usage is None for c in [first, *rest])  # the client did not ask for it
    st = model_stats(mock, "l-oa-s")
    i, o = st["input_tokens_charged"], st["output_tokens_charged"]
    assert o == 8 and i == g.count_input_tokens(g.log_for(mock, "l-oa-s")[0]["body"], "openai")
    rec = record(gw, r_id)
    # Not the domain: the SDK hangs up at [DONE], racing the upstream's end of body, and the
    # gateway may then say caller_closed (a bug: test_a_stream_closed_right_after_done_is_ok).
    assert {k: rec[k] for k in ("key", "capability", "provider", "model", "input_tokens", "output_tokens",
                                "cost_micro_usd", "status", "attempts")} == {
        "key": "alpha", "capability": "l-oa-s", "provider": "lp-oa-s", "model": "l-oa-s", "input_tokens": i,
        "output_tokens": o, "cost_micro_usd": micro_cost(PRICE, i, o), "status": 200, "attempts": 1}
    assert rec["ttft_ms"] is not None and 0 <= rec["ttft_ms"] < rec["latency_ms"], rec
    # Written at the end: the latency covers what the client read after the first chunk.
    assert rec["latency_ms"] - rec["ttft_ms"] >= (t_end - t_first) * 1000 - 40, (rec, t_end - t_first)
    assert_times(rec, t0, t1)
    # A client that reads the stream to the connection's end: `ok`, with the same usage.
    r2 = rid("oas-raw")
    r = request(gw, "POST", "/v1/chat/completions", {"model": "l-oa-s", "messages": USER, "stream": True},
                headers=g.oa_headers(KEY_A, **{"x-request-id": r2}))
    assert g.sse_events(r.body)[-1][1] == "[DONE]"
    rec2 = record(gw, r2)
    assert (rec2["domain"], rec2["status"], rec2["input_tokens"], rec2["output_tokens"]) == ("ok", 200, i, o)
    assert rec2["ttft_ms"] is not None and rec2["ttft_ms"] < rec2["latency_ms"]


def test_anthropic_sdk_stream_is_recorded_when_it_ends_with_its_usage_and_ttft(gw, mock):
    """The anthropic SDK's messages.stream: input from message_start, output from message_delta,
    in one record written when the stream ended."""
    an = an_client(gw)
    r_id = rid("ans")
    with an.messages.stream(model="l-an-s", max_tokens=64, messages=USER,
                            extra_headers={"x-request-id": r_id}) as st:
        it = iter(st.text_stream)
        got = next(it)
        t_first = time.monotonic()
        no_record_yet(gw, r_id)
        got += "".join(it)
        final = st.get_final_message()
    t_end = time.monotonic()
    assert got == words(8, trailing=True)
    i, o = final.usage.input_tokens, final.usage.output_tokens
    assert o == 8 and i == g.count_input_tokens(g.log_for(mock, "l-an-s")[0]["body"], "anthropic")
    rec = record(gw, r_id)
    assert {k: rec[k] for k in ("key", "capability", "provider", "model", "input_tokens", "output_tokens",
                                "cached_tokens", "cost_micro_usd", "status", "domain")} == {
        "key": "alpha", "capability": "l-an-s", "provider": "lp-an-s", "model": "l-an-s", "input_tokens": i,
        "output_tokens": o, "cached_tokens": 0, "cost_micro_usd": micro_cost(PRICE_2, i, o), "status": 200,
        "domain": "ok"}
    assert rec["ttft_ms"] is not None and 0 <= rec["ttft_ms"] < rec["latency_ms"], rec
    assert rec["latency_ms"] - rec["ttft_ms"] >= (t_end - t_first) * 1000 - 40, (rec, t_end - t_first)


class HoldingUpstream:
    """An OpenAI-compatible upstream whose stream sends everything up to `data: [DONE]` at once,
    then keeps the response open `hold_s` before its last (empty) chunk: the moment between a
    whole answer and the end of the body, made long enough to see."""

    def __init__(self, hold_s: float):
        outer = self
        self.hold_s = hold_s
        self.bodies: List[Dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: A002
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                outer.bodies.append(body)
                base = {"id": "chatcmpl-hold", "object": "chat.completion.chunk", "created": 1,
                        "model": body.get("model")}
                chunks = [
                    {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]},
                    {**base, "choices": [{"index": 0, "delta": {"content": "hello "}, "finish_reason": None}]},
                    {**base, "choices": [{"index": 0, "delta": {"content": "world"}, "finish_reason": None}]},
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2,
                                                      "total_tokens": 13}},
                ]
                data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    time.sleep(outer.hold_s)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_stream_closed_right_after_done_is_ok(gateway_bin, tmp_path):
    """The upstream sends the whole stream, [DONE] included, then holds its body open 1 s. The
    openai SDK reads to [DONE] and closes at once: it has the whole answer, settled as a success,
    with its usage. The record's domain should be `ok` (caller_closed is "the client left: before
    the answer, or mid-stream"). A raw client that waits for the end gets `ok`."""
    up = HoldingUpstream(1.0)
    cfg = {"providers": [{"name": "lp-hold", "model": "hold-model", "price": PRICE}],
           "capabilities": [{"name": "l-hold", "providers": [{"provider": "lp-hold"}]}],
           "gateway": g.gateway_section({"lp-hold": {"api": "openai", "base_url": up.url + "/v1",
                                                     "api_key_env": g.OPENAI_KEY_ENV}},
                                        keys({}), ledger={"url": f"sqlite:{tmp_path / 'l.db'}", "flush_ms": FLUSH_MS})}
    gw = Gateway(gateway_bin, cfg, tmp_path)
    try:
        r_id = rid("done")
        t0 = time.monotonic()
        chunks = list(oa_client(gw).chat.completions.create(model="l-hold", messages=USER, stream=True,
                                                            extra_headers={"x-request-id": r_id}))
        assert time.monotonic() - t0 < 0.9  # the SDK did not wait for the end of the body
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello world"
        rec = record(gw, r_id)
        assert (rec["status"], rec["input_tokens"], rec["output_tokens"], rec["cost_micro_usd"]) == (
            200, 11, 2, micro_cost(PRICE, 11, 2))
        assert rec["domain"] == "ok", rec
    finally:
        gw.stop()
        up.stop()


def test_a_stream_the_openai_sdk_abandons_is_a_caller_closed_record_and_no_outcome(gw, mock):
    """The SDK closes its stream after the first chunk: the upstream request is dropped, one
    record (200 head, domain caller_closed, a ttft) and no availability outcome (an interrupted
    call is not the provider's)."""
    oa = oa_client(gw)
    r_id = rid("hang")
    stream = oa.chat.completions.create(model="l-hang", messages=USER, stream=True,
                                        extra_headers={"x-request-id": r_id})
    first = next(iter(stream))
    assert first.choices
    stream.close()
    g.wait_until(lambda: model_stats(mock, "l-hang")["aborted"] == 1, 5.0, "the upstream to be dropped")
    rec = record(gw, r_id)
    assert {k: rec[k] for k in ("key", "capability", "provider", "model", "status", "domain", "attempts")} == {
        "key": "alpha", "capability": "l-hang", "provider": "lp-hang", "model": "l-hang", "status": 200,
        "domain": "caller_closed", "attempts": 1}
    assert rec["ttft_ms"] is not None
    assert rec["output_tokens"] < 30
    time.sleep(SETTLE_S)
    assert provider_rows(gw, ["lp-hang"]).get("lp-hang", avail_row("lp-hang"))["outcomes"] == 0


def test_a_stream_the_anthropic_sdk_abandons_is_a_caller_closed_record(gw, mock):
    """Leaving messages.stream's block after the first text: caller_closed, and the input the
    upstream already reported (message_start) is kept."""
    an = an_client(gw)
    r_id = rid("hang-an")
    with an.messages.stream(model="l-hang-an", max_tokens=64, messages=USER,
                            extra_headers={"x-request-id": r_id}) as st:
        assert next(iter(st.text_stream)).startswith("tok0")
    g.wait_until(lambda: model_stats(mock, "l-hang-an")["aborted"] == 1, 5.0, "the upstream to be dropped")
    rec = record(gw, r_id)
    assert (rec["status"], rec["domain"], rec["provider"], rec["capability"]) == (
        200, "caller_closed", "lp-hang-an", "l-hang-an")
    i = g.count_input_tokens(g.log_for(mock, "l-hang-an")[0]["body"], "anthropic")
    assert rec["input_tokens"] == i, rec
    assert rec["output_tokens"] < 30


def test_a_client_leaving_before_the_answer_is_499_caller_closed(gw, mock):
    """A JSON request whose client hangs up while the upstream thinks (1.5 s): one record, 499
    caller_closed, written at once (not when the upstream would have answered)."""
    r_id = rid("gone")
    body = {"model": "l-gone", "messages": USER}
    rs = g.RawStream(gw, "/v1/chat/completions", body, g.oa_headers(KEY_A, **{"x-request-id": r_id}))
    g.wait_until(lambda: model_stats(mock, "l-gone")["received"] == 1, 5.0, "the upstream request")
    t_close = rs.close()
    rec = record(gw, r_id, timeout=1.2)
    assert time.monotonic() - t_close < 1.3
    assert (rec["status"], rec["domain"], rec["key"], rec["capability"], rec["model"], rec["cost_micro_usd"],
            rec["ttft_ms"]) == (499, "caller_closed", "alpha", "l-gone", "l-gone", 0, None)
    g.wait_until(lambda: model_stats(mock, "l-gone")["aborted"] == 1, 5.0, "the upstream request to be dropped")


def test_a_client_leaving_before_the_answer_records_the_attempt_made(gw, mock):
    """docs/gateway.md: `attempts` is the upstream attempts made: here one."""
    r_id = rid("gone-attempts")
    rs = g.RawStream(gw, "/v1/chat/completions", {"model": "l-gone", "messages": USER},
                     g.oa_headers(KEY_A, **{"x-request-id": r_id}))
    g.wait_until(lambda: model_stats(mock, "l-gone")["received"] == 1, 5.0, "the upstream request")
    rs.close()
    rec = record(gw, r_id)
    assert rec["status"] == 499
    assert rec["attempts"] == 1, rec


# --------------------------------------------------------------------------------------------
# (3) cache hits and degraded answers


def test_a_cache_hit_is_a_record_with_zero_tokens_and_cost_counted_in_cache_hits(gw, mock):
    """temperature 0 twice (openai SDK): a miss with the upstream's usage, then a hit with 0
    tokens, 0 cost, no provider or model and no attempt; /admin/usage counts one cache hit."""
    oa = oa_client(gw)
    ids = [rid("miss"), rid("hit")]
    raws = [oa.chat.completions.with_raw_response.create(model="l-cache", messages=USER, temperature=0,
                                                         extra_headers={"x-request-id": i}) for i in ids]
    assert [r.headers["x-ratewise-cache"] for r in raws] == ["miss", "hit"]
    first = raws[0].parse()
    i, o = first.usage.prompt_tokens, first.usage.completion_tokens
    assert model_stats(mock, "l-cache")["received"] == 1
    miss, hit = record(gw, ids[0]), record(gw, ids[1])
    assert (miss["cache"], miss["provider"], miss["input_tokens"], miss["output_tokens"], miss["attempts"]) == (
        "miss", "lp-cache", i, o, 1)
    assert {k: hit[k] for k in ("cache", "provider", "model", "input_tokens", "output_tokens", "cached_tokens",
                                "cost_micro_usd", "status", "domain", "degraded", "attempts", "key")} == {
        "cache": "hit", "provider": "", "model": "", "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
        "cost_micro_usd": 0, "status": 200, "domain": "ok", "degraded": "", "attempts": 0, "key": "alpha"}
    assert capability_row(gw, "l-cache", 2) == {"capability": "l-cache", **usage_row(
        requests=2, input_tokens=i, output_tokens=o, cost_micro_usd=micro_cost(PRICE, i, o), cache_hits=1)}


def test_a_static_degraded_answer_is_a_record_counted_in_degraded(gw, mock):
    """Every attempt fails (500): the static answer, 200, degraded `static`, no provider, no
    tokens, not an error; /admin/usage counts it in `degraded`."""
    mock.set_faults({"model": "l-deg", "status": 500, "for_ms": 60_000})
    oa = oa_client(gw)
    ids = [rid("deg1"), rid("deg2")]
    for i in ids:
        raw = oa.chat.completions.with_raw_response.create(model="l-deg", messages=USER,
                                                           extra_headers={"x-request-id": i})
        assert raw.headers["x-ratewise-degraded"] == "static"
        assert raw.parse().choices[0].message.content == STATIC
    recs = [record(gw, i) for i in ids]
    for rec in recs:
        assert {k: rec[k] for k in ("status", "degraded", "provider", "input_tokens", "output_tokens",
                                    "cost_micro_usd", "capability", "key")} == {
            "status": 200, "degraded": "static", "provider": "", "input_tokens": 0, "output_tokens": 0,
            "cost_micro_usd": 0, "capability": "l-deg", "key": "alpha"}, rec
    assert recs[0]["attempts"] == 3  # max_attempts, all failing
    assert capability_row(gw, "l-deg", 2) == {"capability": "l-deg", **usage_row(requests=2, degraded=2)}


def test_a_stale_answer_counts_as_a_cache_hit_and_as_degraded(gw, mock):
    """ttl_s 1: the entry goes stale; with every attempt failing it is served (cache `stale`,
    degraded `stale`): a cache hit and a degraded answer. Another request gets the static one."""
    oa = oa_client(gw)
    ids = [rid("fresh"), rid("stale"), rid("static")]
    first = oa.chat.completions.create(model="l-stale", messages=USER, temperature=0,
                                       extra_headers={"x-request-id": ids[0]})
    time.sleep(1.15)
    mock.set_faults({"model": "l-stale", "status": 500, "for_ms": 60_000})
    stale = oa.chat.completions.with_raw_response.create(model="l-stale", messages=USER, temperature=0,
                                                         extra_headers={"x-request-id": ids[1]})
    assert (stale.headers["x-ratewise-cache"], stale.headers["x-ratewise-degraded"]) == ("stale", "stale")
    static = oa.chat.completions.with_raw_response.create(model="l-stale", messages=USER, temperature=0,
                                                          max_tokens=5, extra_headers={"x-request-id": ids[2]})
    assert static.headers["x-ratewise-degraded"] == "static"
    r_stale = record(gw, ids[1])
    assert (r_stale["cache"], r_stale["degraded"], r_stale["provider"], r_stale["input_tokens"],
            r_stale["cost_micro_usd"], r_stale["status"]) == ("stale", "stale", "", 0, 0, 200)
    assert record(gw, ids[2])["degraded"] == "static"
    i, o = first.usage.prompt_tokens, first.usage.completion_tokens
    assert capability_row(gw, "l-stale", 3) == {"capability": "l-stale", **usage_row(
        requests=3, input_tokens=i, output_tokens=o, cost_micro_usd=micro_cost(PRICE, i, o),
        cache_hits=1, degraded=2)}


def test_a_static_answer_keeps_the_cache_label_of_its_lookup(gw, mock):
    """The capability's cache is on and the temperature-0 request was looked up (a miss): the
    record's `cache` should say `miss`, as the header of a refusal does."""
    mock.set_faults({"model": "l-deg", "status": 500, "for_ms": 60_000})
    r_id = rid("deg-label")
    r = request(gw, "POST", "/v1/chat/completions", {"model": "l-deg", "messages": USER, "temperature": 0,
                                                     "max_tokens": 9},
                headers=g.oa_headers(KEY_A, **{"x-request-id": r_id}))
    assert r.status == 200 and r.headers["x-ratewise-degraded"] == "static", r
    assert record(gw, r_id)["cache"] == "miss"


# --------------------------------------------------------------------------------------------
# (4) refused before routing


def test_an_unknown_or_missing_key_is_a_record_without_key_or_capability(gw, mock):
    """The openai SDK with an unknown key, and raw HTTP with no key: 401 each, each one record
    (key `-`, capability `-`, caller_auth, nothing upstream), counted as errors."""
    def minus_row():
        rows = usage_rows(gw, "key,capability", key="-", capability="-")
        return rows[0] if rows else usage_row()

    before = minus_row()
    t0 = now_ms()
    with pytest.raises(openai.AuthenticationError) as ei:
        oa_client(gw, KEY_UNKNOWN).chat.completions.create(model="l-oa", messages=USER)
    id1 = ei.value.response.headers["x-request-id"]
    r = request(gw, "POST", "/v1/chat/completions", {"model": "l-oa", "messages": USER}, headers=g.oa_headers(None))
    assert r.status == 401, r
    id2 = r.headers["x-request-id"]
    assert id1 != id2 and id1.startswith("rw-") and id2.startswith("rw-")
    for i in (id1, id2):
        rec = record(gw, i)
        assert {k: rec[k] for k in ("key", "capability", "provider", "model", "status", "domain", "input_tokens",
                                    "output_tokens", "cost_micro_usd", "attempts", "cache", "degraded",
                                    "ttft_ms")} == {
            "key": "-", "capability": "-", "provider": "", "model": "", "status": 401, "domain": "caller_auth",
            "input_tokens": 0, "output_tokens": 0, "cost_micro_usd": 0, "attempts": 0, "cache": "",
            "degraded": "", "ttft_ms": None}
        assert_times(rec, t0, now_ms())
    assert mock.log() == []  # nothing went upstream
    after = minus_row()
    assert (after["requests"] - before["requests"], after["errors"] - before["errors"]) == (2, 2)


def test_a_refusal_after_authentication_keeps_the_key_name(gw, mock):
    """docs/gateway.md: key is `-` only with no keys configured or when refused before a key was
    known. Key beta is known in each of these refusals."""
    cases = [({"model": "l-oa", "messages": USER}, 403), (b"{not json", 400),
             ({"model": "no-such-model", "messages": USER}, 404)]
    keys_recorded = {}
    for body, status in cases:
        r_id = rid(f"refused{status}")
        r = request(gw, "POST", "/v1/chat/completions", body, headers=g.oa_headers(KEY_B, **{"x-request-id": r_id}))
        assert r.status == status, r
        rec = record(gw, r_id)
        assert rec["status"] == status
        keys_recorded[status] = rec["key"]
    assert keys_recorded == {403: "beta", 400: "beta", 404: "beta"}


# --------------------------------------------------------------------------------------------
# (5) the availability log


@pytest.mark.parametrize("status,kind,api", [(429, "rate_limited", "openai"), (529, "overloaded", "anthropic")])
def test_failover_shows_in_availability_exactly(gw, mock, status, kind, api):
    """The first provider answers 429 (openai SDK) / 529 (anthropic SDK) once; the second
    answers. Availability: the first has one outcome of that kind, availability 0 and one
    fallback; the second one success, availability 1, its latency. The record: two attempts,
    the second provider, its usage and price."""
    cap = f"l-fo{status}"
    p1, p2 = f"lp-fo{status}-1", f"lp-fo{status}-2"
    mock.set_faults({"model": f"l-fo{status}-1", "status": status, "count": 1})
    r_id = rid(f"fo{status}")
    if api == "openai":
        raw = oa_client(gw).chat.completions.with_raw_response.create(model=cap, messages=USER,
                                                                      extra_headers={"x-request-id": r_id})
        i, o = raw.parse().usage.prompt_tokens, raw.parse().usage.completion_tokens
    else:
        raw = an_client(gw).messages.with_raw_response.create(model=cap, max_tokens=64, messages=USER,
                                                              extra_headers={"x-request-id": r_id})
        i, o = raw.parse().usage.input_tokens, raw.parse().usage.output_tokens
    assert (raw.headers["x-ratewise-provider"], raw.headers["x-ratewise-attempts"]) == (p2, "2")
    assert model_stats(mock, f"l-fo{status}-1")["status"] == {str(status): 1}
    rows = settled_availability(gw, [p1, p2], lambda rs: p1 in rs and p2 in rs and rs[p2]["successes"] >= 1
                                and rs[p1]["fallbacks"] >= 1)
    assert rows[p1] == avail_row(p1, outcomes=1, availability=0.0, fallbacks=1, **{
        "rate_limited" if kind == "rate_limited" else "overloaded": 1})
    lat = rows[p2]["latency_p50_ms"]
    assert lat is not None and lat >= 0 and rows[p2]["latency_p99_ms"] == lat
    assert rows[p2] == avail_row(p2, outcomes=1, successes=1, availability=1.0, latency_p50_ms=lat,
                                 latency_p99_ms=lat)
    rec = record(gw, r_id)
    assert {k: rec[k] for k in ("provider", "model", "attempts", "status", "domain", "input_tokens",
                                "output_tokens", "cost_micro_usd")} == {
        "provider": p2, "model": f"l-fo{status}-2", "attempts": 2, "status": 200, "domain": "ok",
        "input_tokens": i, "output_tokens": o, "cost_micro_usd": micro_cost(PRICE_2, i, o)}


def test_a_circuit_opening_and_closing_are_events(gw, mock):
    """Three 500s in a row (one request, max_attempts 3) open lp-circ's circuit: three
    server_error outcomes, two fallbacks, one circuit_opened. After its 300 ms cooldown the
    half-open probe succeeds: one success, one circuit_closed. Availability 1/4."""
    mock.set_faults({"model": "l-circ", "status": 500, "count": 3})
    r_id = rid("circ")
    r = request(gw, "POST", "/v1/chat/completions", {"model": "l-circ", "messages": USER},
                headers=g.oa_headers(KEY_A, **{"x-request-id": r_id}))
    assert r.status == 500 and r.headers["x-ratewise-attempts"] == "3", r
    rec = record(gw, r_id)
    assert (rec["status"], rec["domain"], rec["attempts"], rec["input_tokens"]) == (500, "provider_error", 3, 0)
    g.wait_until(lambda: g.snapshot(gw)["providers"]["lp-circ"]["circuit"] in ("open", "half_open"), 5.0,
                 "lp-circ's circuit to open")
    time.sleep(0.35)
    ok = request(gw, "POST", "/v1/chat/completions", {"model": "l-circ", "messages": USER}, headers=g.oa_headers())
    assert ok.status == 200, ok
    rows = settled_availability(gw, ["lp-circ"], lambda rs: "lp-circ" in rs and rs["lp-circ"]["circuit_closed"] >= 1)
    lat = rows["lp-circ"]["latency_p50_ms"]
    assert rows["lp-circ"] == avail_row("lp-circ", outcomes=4, successes=1, availability=0.25, server_errors=3,
                                        fallbacks=2, circuit_opened=1, circuit_closed=1, latency_p50_ms=lat,
                                        latency_p99_ms=lat)
    assert lat is not None


def test_a_providers_client_error_is_no_availability_outcome(gw, mock):
    """A 400 from the provider is the caller's: forwarded, recorded as an error, and no event."""
    mock.set_faults({"model": "l-bad", "status": 400, "count": 1})
    r_id = rid("bad")
    r = request(gw, "POST", "/v1/chat/completions", {"model": "l-bad", "messages": USER},
                headers=g.oa_headers(KEY_A, **{"x-request-id": r_id}))
    assert r.status == 400, r
    rec = record(gw, r_id)
    assert (rec["status"], rec["provider"], rec["attempts"]) == (400, "lp-bad", 1)
    assert capability_row(gw, "l-bad", 1)["errors"] == 1
    assert "lp-bad" not in provider_rows(gw, ["lp-bad"])


# --------------------------------------------------------------------------------------------
# (6) the reports: auth, 400s, windows, grouping, and the CLI


def test_report_endpoints_need_the_admin_key(gw, mock):
    for path in ("/admin/usage", "/admin/availability"):
        for headers in ({}, {"Authorization": "Bearer wrong-" + ADMIN_KEY}, {"Authorization": f"Bearer {KEY_A}"},
                        {"x-api-key": KEY_A}):
            r = request(gw, "GET", path, headers=headers)
            assert r.status == 401, (path, headers, r)
            assert "admin key" in r.json()["error"]["message"], r
        assert request(gw, "GET", path, headers={"x-api-key": ADMIN_KEY}).status == 200


@pytest.mark.parametrize("path,query,names", [
    ("/admin/usage", "group_by=key,team", ["team"]),
    ("/admin/usage", "group_by=tenant", ["tenant"]),
    ("/admin/usage", "from=yesterday", ["from", "yesterday"]),
    ("/admin/usage", "to=soon", ["to", "soon"]),
    ("/admin/usage", "window=5parsecs", ["window"]),
    ("/admin/usage", "window=0s", ["window"]),
    ("/admin/usage", "from=1000&window=1h", ["from", "window"]),
    ("/admin/usage", "from=2000&to=1000", ["from", "to"]),
    ("/admin/availability", "window=soon", ["window"]),
    ("/admin/availability", "from=2026-13-45T00:00:00Z", ["from"]),
])
def test_bad_report_parameters_are_400_naming_them(gw, mock, path, query, names):
    r = request(gw, "GET", f"{path}?{query}", headers=ADMIN)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    for n in names:
        assert n in err["message"], (n, err["message"])


def test_usage_windows_grouping_and_the_cli_agree(gw, mock, tmp_path):
    """Three requests on l-rep (two keys). The default report: group_by [key], a 24 h window;
    availability's default window 5 m. from/to in RFC 3339 and in seconds give the same
    answer; group_by of several columns, of minute, and of nothing; a window before the
    requests is empty. `ratewise usage --json` and `ratewise availability --json` print
    exactly the endpoints' JSON for the same window; the text table has the rows."""
    oa_a, oa_b = oa_client(gw, KEY_A), oa_client(gw, KEY_B)
    t_start = int(time.time())
    usages = [oa_a.chat.completions.create(model="l-rep", messages=USER).usage,
              oa_a.chat.completions.create(model="l-rep", messages=USER, max_tokens=3).usage,
              oa_b.chat.completions.create(model="l-rep", messages=USER).usage]
    row = capability_row(gw, "l-rep", 3)
    i = sum(u.prompt_tokens for u in usages)
    o = sum(u.completion_tokens for u in usages)
    cost = sum(micro_cost(PRICE, u.prompt_tokens, u.completion_tokens) for u in usages)
    assert o == OUT + 3 + OUT
    assert row == {"capability": "l-rep", **usage_row(requests=3, input_tokens=i, output_tokens=o,
                                                      cost_micro_usd=cost)}
    d = usage(gw)
    assert d["group_by"] == ["key"] and d["to_ms"] - d["from_ms"] == 86_400_000
    assert abs(d["to_ms"] - now_ms()) < 5000
    a = availability(gw)
    assert a["to_ms"] - a["from_ms"] == 300_000
    # Several columns.
    q = "group_by=capability,provider,model,key&window=1h"
    by = {(r["capability"], r["key"]): r for r in usage(gw, q)["rows"] if r["capability"] == "l-rep"}
    assert set(by) == {("l-rep", "alpha"), ("l-rep", "beta")}
    assert by[("l-rep", "alpha")]["requests"] == 2 and by[("l-rep", "beta")]["requests"] == 1
    assert by[("l-rep", "beta")]["provider"] == "lp-rep" and by[("l-rep", "beta")]["model"] == "l-rep"
    assert usage(gw, q)["group_by"] == ["capability", "provider", "model", "key"]
    # Minute buckets: their start in ms, as text.
    mins = usage(gw, "group_by=minute,capability&window=1h")["rows"]
    rep = [r for r in mins if r["capability"] == "l-rep"]
    assert sum(r["requests"] for r in rep) == 3
    assert all(int(r["minute"]) % 60_000 == 0 for r in rep)
    # No grouping: one total row.
    tot = usage(gw, "group_by=&window=1h")
    assert tot["group_by"] == [] and len(tot["rows"]) == 1 and tot["rows"][0]["requests"] >= 3
    # A window that ended before the requests: nothing of l-rep.
    before = usage(gw, f"group_by=capability&from={t_start - 7200}&to={t_start - 3600}")
    assert before["from_ms"] == (t_start - 7200) * 1000 and before["to_ms"] == (t_start - 3600) * 1000
    assert [r for r in before["rows"] if r["capability"] == "l-rep"] == []
    # RFC 3339 and seconds are one window.
    f, t = window_now()
    rfc = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))  # noqa: E731
    secs = usage(gw, f"group_by=capability&from={f}&to={t}")
    assert usage(gw, f"group_by=capability&from={rfc(f)}&to={rfc(t)}") == secs
    assert (secs["from_ms"], secs["to_ms"]) == (f * 1000, t * 1000)
    # The CLI prints the endpoints' JSON for the same window.
    cfg = str(gw.config_path)
    for endpoint, args in (("/admin/usage?group_by=capability,provider,model,key&", ["usage", cfg, "--group-by",
                                                                                      "capability,provider,model,key"]),
                           ("/admin/usage?", ["usage", cfg]),
                           ("/admin/availability?", ["availability", cfg])):
        r = request(gw, "GET", f"{endpoint}from={f}&to={t}", headers=ADMIN)
        assert r.status == 200, r
        out = cli(*args, "--from", str(f), "--to", str(t), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == r.json(), (args, out.stdout[:500], r.text[:500])
    table = cli("usage", cfg, "--group-by", "capability,key", "--window", "1h")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["capability", "key", "requests", "input_tokens"]
    assert any(ln.split()[:3] == ["l-rep", "beta", "1"] for ln in lines), table.stdout
    assert lines[-1].startswith("total")
    bad = cli("usage", cfg, "--group-by", "key,team", "--json")
    assert bad.returncode == 2 and "team" in bad.stderr, (bad.returncode, bad.stderr)


def test_the_ledger_metrics_count_writes_and_no_drops(gw, mock):
    samples = g.metrics(gw)
    assert g.metric_sum(samples, "ratewise_gateway_ledger_written_total") > 0
    assert g.metric_sum(samples, "ratewise_gateway_ledger_dropped_total") == 0


# --------------------------------------------------------------------------------------------
# (7) two gateways on one PostgreSQL; the password never shown




@pytest.fixture
def postgres_url():
    url = os.environ.get("RATEWISE_POSTGRES_URL")
    if not url:
        if os.environ.get("RATEWISE_REQUIRE_POSTGRES") == "1":
            pytest.fail("RATEWISE_REQUIRE_POSTGRES=1 but RATEWISE_POSTGRES_URL is not set")
        pytest.skip("RATEWISE_POSTGRES_URL is not set (scripts/postgres.sh starts a PostgreSQL)")
    return url


def with_password(url: str, password: str) -> str:
    u = urllib.parse.urlsplit(url)
    netloc = f"{u.username or 'postgres'}:{password}@{u.hostname}" + (f":{u.port}" if u.port else "")
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def test_two_gateways_share_one_postgres_ledger(gateway_bin, stack, mock, postgres_url, tmp_path, monkeypatch):
    """Gateway one (url) and gateway two (url_env) write to one PostgreSQL; each serves N
    requests with a key of its own (fresh names and a fresh provider, so earlier runs on the
    same database do not count). /admin/usage on either shows both keys with N each, and
    /admin/availability 2N successes for the provider; `ratewise usage --json` agrees. The
    URL's password (trust auth ignores it) is in no stderr, stdout, /metrics or admin answer."""
    # Marked here, not on the function: RATEWISE_REQUIRE_POSTGRES=1 without a URL still fails.
    n = 4
    tag = secrets.token_hex(4)
    password = "s3cret-pw-" + secrets.token_hex(6)
    url = with_password(postgres_url, password)
    k1, k2 = "rw-pg-one-" + secrets.token_hex(8), "rw-pg-two-" + secrets.token_hex(8)
    n1, n2 = f"pg-one-{tag}", f"pg-two-{tag}"
    prov = f"lp-pg-{tag}"
    caps = {"l-pg": [(prov, "l-pg", 10, PRICE)]}
    extra = [{"name": n1, "sha256": sha256(k1)}, {"name": n2, "sha256": sha256(k2)}]
    env_var = "RW_TEST_LEDGER_URL_" + tag.upper()
    monkeypatch.setenv(env_var, url)
    configs = [build_config(mock.url, caps, {"url": url, "flush_ms": FLUSH_MS}, extra),
               build_config(mock.url, caps, {"url_env": env_var, "flush_ms": FLUSH_MS}, extra)]
    assert password not in json.dumps(configs[1])
    gws: List[Gateway] = []
    try:
        for k, cfg in enumerate(configs):
            d = tmp_path / f"gw{k}"
            d.mkdir()
            gws.append(Gateway(gateway_bin, cfg, d))
        one, two = gws
        expected_in = 0
        for gw_, key in ((one, k1), (two, k2)):
            oa = oa_client(gw_, key)
            for _ in range(n):
                c = oa.chat.completions.create(model="l-pg", messages=USER)
                expected_in += c.usage.prompt_tokens

        def both(gw_):
            rows = {r["key"]: r for r in usage(gw_, "group_by=key&window=1h")["rows"] if r["key"] in (n1, n2)}
            return rows if len(rows) == 2 and all(r["requests"] >= n for r in rows.values()) else None

        for gw_ in gws:
            rows = g.wait_until(lambda: both(gw_), 10.0, "both keys' records in PostgreSQL", 0.05)
        time.sleep(SETTLE_S)
        per = micro_cost(PRICE, expected_in // (2 * n), OUT)
        for gw_ in gws:
            rows = both(gw_)
            assert rows is not None
            assert {k: (r["requests"], r["output_tokens"], r["errors"]) for k, r in rows.items()} == {
                n1: (n, n * OUT, 0), n2: (n, n * OUT, 0)}
            assert rows[n1]["input_tokens"] + rows[n2]["input_tokens"] == expected_in
            assert rows[n1]["cost_micro_usd"] == n * per
            av = g.wait_until(lambda: provider_rows(gw_, [prov]).get(prov, {}).get("successes") == 2 * n
                              and provider_rows(gw_, [prov]), 10.0, "2N successes")
            assert av[prov]["outcomes"] == 2 * n and av[prov]["availability"] == 1.0
        f, t = window_now()
        r = request(one, "GET", f"/admin/usage?group_by=key&from={f}&to={t}", headers=ADMIN)
        out = cli("usage", str(one.config_path), "--from", str(f), "--to", str(t), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == r.json()
        out2 = cli("usage", str(two.config_path), "--from", str(f), "--to", str(t), "--json",
                   env={**g.gateway_env(), env_var: url})
        assert out2.returncode == 0 and json.loads(out2.stdout) == r.json(), out2.stderr
        # The password: nowhere.
        seen = {"cli stdout": out.stdout + out2.stdout, "cli stderr": out.stderr + out2.stderr}
        for k, gw_ in enumerate(gws):
            seen[f"gateway {k} stdout"] = "\n".join(gw_.stdout_lines)
            seen[f"gateway {k} /metrics"] = request(gw_, "GET", "/metrics").text
            for path in ("/admin/usage", "/admin/usage?group_by=key,capability,provider,model",
                         "/admin/availability", "/admin/engine", "/admin/", "/admin/usage?from=bad"):
                seen[f"gateway {k} {path}"] = request(gw_, "GET", path, headers=ADMIN).text
        for k, gw_ in enumerate(gws):
            gw_.stop()
            seen[f"gateway {k} stderr"] = gw_.stderr_tail(1_000_000)
        for where, text in seen.items():
            assert password not in text, f"the database password appears in {where}"
        masked = url.replace(f":{password}@", ":***@")
        for k in range(2):  # the URL is logged, masked
            assert masked in seen[f"gateway {k} stderr"], seen[f"gateway {k} stderr"][-2000:]
    finally:
        for gw_ in gws:
            gw_.stop()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_an_unreachable_postgres_stops_serve_without_showing_the_password(stack, mock, tmp_path):
    """The database is connected at start: nothing listens on the port, so `ratewise serve`
    exits non-zero with the reason (the URL redacted), printing no listening line; `ratewise
    usage` fails the same way. No PostgreSQL is needed for this one."""
    password = "s3cret-pw-" + secrets.token_hex(6)
    url = f"postgres://postgres:{password}@127.0.0.1:{free_port()}/postgres"
    cfg = build_config(mock.url, {"l-off": CAPS["l-off"]}, {"url": url})
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(cfg))
    r = cli("serve", str(path), timeout=30)
    u = cli("usage", str(path), "--json")
    for text in (r.stdout, r.stderr, u.stdout, u.stderr):
        assert password not in text
    assert u.returncode == 1 and "postgres://postgres:***@127.0.0.1" in u.stderr, u
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "listening" not in r.stdout
    assert "gateway.ledger" in r.stderr and "postgres://postgres:***@127.0.0.1" in r.stderr, r.stderr[-3000:]


# --------------------------------------------------------------------------------------------
# (8) the default, and off


def test_the_default_ledger_is_a_sqlite_file_next_to_the_config(gateway_bin, stack, mock, tmp_path):
    """No `ledger` key: ratewise-ledger.db next to the configuration file, default flush
    (200 ms); `ratewise usage` finds it from the same file."""
    cfg = build_config(mock.url, {"l-off": CAPS["l-off"]}, _ABSENT)
    gw = Gateway(gateway_bin, cfg, tmp_path)
    try:
        oa_client(gw).chat.completions.create(model="l-off", messages=USER)
        assert (tmp_path / "ratewise-ledger.db").is_file()

        def rows():
            return [r for r in usage(gw, "group_by=key,capability")["rows"] if r["capability"] == "l-off"]

        got = g.wait_until(rows, 10.0, "the record in the default ledger", 0.05)
        assert got[0]["key"] == "alpha" and got[0]["requests"] == 1 and got[0]["output_tokens"] == OUT
        out = cli("usage", str(gw.config_path), "--group-by", "key,capability", "--json")
        assert out.returncode == 0, out.stderr
        assert [r for r in json.loads(out.stdout)["rows"] if r["capability"] == "l-off"] == got
    finally:
        gw.stop()


def test_ledger_false_turns_the_reports_off_and_requests_still_work(gateway_bin, stack, mock, tmp_path):
    """`"ledger": false`: requests are answered; /admin/usage and /admin/availability are 404
    (401 still first without the admin key); no database file; `ratewise usage` says there is
    no ledger."""
    cfg = build_config(mock.url, {"l-off": CAPS["l-off"]}, False)
    gw = Gateway(gateway_bin, cfg, tmp_path)
    try:
        c = oa_client(gw).chat.completions.create(model="l-off", messages=USER)
        assert c.choices[0].message.content == words(OUT)
        with an_client(gw).messages.stream(model="l-off", max_tokens=64, messages=USER) as st:
            assert "".join(st.text_stream) == words(OUT, trailing=True)
        for path in ("/admin/usage", "/admin/availability", "/admin/usage?group_by=model"):
            r = request(gw, "GET", path, headers=ADMIN)
            assert r.status == 404, (path, r)
            assert "ledger" in r.json()["error"]["message"]
            assert request(gw, "GET", path).status == 401
        assert not list(tmp_path.glob("*.db"))
        out = cli("usage", str(gw.config_path), "--json")
        assert out.returncode == 1 and "ledger" in out.stderr, (out.returncode, out.stderr)
        assert gw.alive()
    finally:
        gw.stop()
