"""The spend ledger under load (docs/gateway.md, "The spend ledger and the availability log",
"Prices", "Alerts"): exact cost per key after 1,000 mixed requests (SQLite and PostgreSQL), what
a SIGKILL loses, and one webhook per circuit opening in a 529 storm.

Each test starts a gateway of its own on the module's mock, with fresh key, capability and
provider names (a PostgreSQL database outlives the run; the mock is reset before each test).
Prices come from the bundled table (`gateway/data/prices.json`): the load test's providers have a
table model name and no `price` key, and the expected costs are computed here from that file with
the engine's formula `ceil((in·round(p_in·10⁶) + out·round(p_out·10⁶)) / 10⁶)` per request.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import secrets
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import anthropic
import openai
import pytest

import gw_fixture as g
from gw_fixture import ADMIN_KEY, Gateway, request, sha256

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TABLE = json.loads((g.REPO / "gateway" / "data" / "prices.json").read_text())["models"]

OUT = 24       # output tokens of the load test's answering models
CUT_OUT = 40   # the slow stream models: 40 tokens 25 ms apart, abandoned after the first text
CUT_CHUNK_MS = 25

MOCK_MODELS: Dict[str, Dict[str, Any]] = {
    # (1) every model is named as in the bundled price table
    "gpt-4o-mini": {"api": "openai", "output_tokens": OUT},          # OpenAI primary: 429s, 500s
    "gpt-4.1-nano": {"api": "openai", "output_tokens": OUT},         # OpenAI fallback
    "claude-haiku-4-5": {"api": "anthropic", "output_tokens": OUT},  # Anthropic primary: 529s
    "claude-3-5-haiku": {"api": "anthropic", "output_tokens": OUT},  # Anthropic fallback
    "gpt-4.1-mini": {"api": "openai", "output_tokens": OUT},         # the cached capability
    "gpt-5-mini": {"api": "openai", "output_tokens": OUT},           # always 500: requests end as errors
    "gpt-5-nano": {"api": "openai", "output_tokens": CUT_OUT, "chunk_ms": CUT_CHUNK_MS},
    "claude-sonnet-4-5": {"api": "anthropic", "output_tokens": CUT_OUT, "chunk_ms": CUT_CHUNK_MS},
    # (2)
    "kill-m": {"api": "openai", "output_tokens": 5, "latency_ms": 2},
    # (3)
    "storm-529": {"api": "anthropic", "output_tokens": 5},
    "storm-ok": {"api": "anthropic", "output_tokens": 5},
    "idle": {"api": "openai", "output_tokens": 1},
}


def gateway_config(mock_url, tmp):
    """The module's gateway (conftest starts one) is not used: each test runs its own."""
    return {"providers": [{"name": "idle", "model": "idle", "price": None}],
            "capabilities": [{"name": "idle", "providers": [{"provider": "idle"}]}],
            "gateway": g.gateway_section({"idle": g.upstream("openai", mock_url)}, ledger=False)}


def micro_cost(model: str, i: int, o: int) -> int:
    """The table's price of `model`, by the engine's formula."""
    p = TABLE[model]
    return g.micro_cost({"input_per_mtok": p["input"], "output_per_mtok": p["output"]}, i, o)


def rid(tag: str) -> str:
    return f"ll-{tag}-{secrets.token_hex(6)}"


def usage(gw, query: str) -> Dict[str, Any]:
    r = request(gw, "GET", "/admin/usage?" + query, headers=ADMIN)
    assert r.status == 200, r
    return r.json()


def provider_rows(gw, providers: List[str]) -> Dict[str, Dict[str, Any]]:
    r = request(gw, "GET", "/admin/availability?window=1h", headers=ADMIN)
    assert r.status == 200, r
    return {p["provider"]: p for p in r.json()["providers"] if p["provider"] in providers}


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(g.gateway_binary()), *args], capture_output=True, text=True, timeout=timeout,
                          env=g.gateway_env(), cwd=str(g.REPO), stdin=subprocess.DEVNULL)


def postgres_url_or_skip() -> str:
    url = os.environ.get("RATEWISE_POSTGRES_URL")
    if not url:
        if os.environ.get("RATEWISE_REQUIRE_POSTGRES") == "1":
            pytest.fail("RATEWISE_REQUIRE_POSTGRES=1 but RATEWISE_POSTGRES_URL is not set")
        pytest.skip("RATEWISE_POSTGRES_URL is not set (scripts/postgres.sh starts a PostgreSQL)")
    return url


def ro_rows(path: Path, sql: str, args=()) -> List[Dict[str, Any]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def run_threads(n: int, target: Callable[[int], None]) -> List[BaseException]:
    """Runs target(k) in n threads; returns what they raised."""
    errors: List[BaseException] = []

    def wrap(k):
        try:
            target(k)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(k,), daemon=True) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "a load thread did not finish"
    return errors


# --------------------------------------------------------------------------------------------
# (1) mixed load, exact cost per key

N_REQUESTS = 1000
N_THREADS = 4
WORDS = ("ledger", "invoice", "spend", "token", "budget", "gateway", "provider", "cost", "micro", "dollar")
CACHE_PROMPTS = ("What is a ledger?", "Explain double-entry bookkeeping, briefly.", "Name three currencies.")
CACHE_MAX = 17

# kind -> (client, what it does, capability role, weight in %)
KINDS: Dict[str, Tuple[str, str, str, int]] = {
    "oa-json": ("oa", "json", "oa", 18),
    "oa-stream": ("oa", "stream", "oa", 9),
    "an-json": ("an", "json", "an", 14),
    "an-stream": ("an", "stream", "an", 9),
    "oa-json>an": ("oa", "json", "an", 5),
    "oa-stream>an": ("oa", "stream", "an", 3),
    "an-json>oa": ("an", "json", "oa", 4),
    "an-stream>oa": ("an", "stream", "oa", 4),
    "cache-oa-json": ("oa", "json", "cache", 8),
    "cache-oa-stream": ("oa", "stream", "cache", 4),
    "cache-an-json": ("an", "json", "cache", 5),
    "cache-an-stream": ("an", "stream", "cache", 3),
    "err-oa": ("oa", "json", "err", 3),
    "err-an": ("an", "json", "err", 2),
    "cut-oa": ("oa", "cut", "cut-oa", 4),
    "cut-an": ("an", "cut", "cut-an", 3),
    "cut-oa>an": ("oa", "cut", "cut-an", 1),
    "cut-an>oa": ("an", "cut", "cut-oa", 1),
}
assert sum(k[3] for k in KINDS.values()) == 100

# capability role -> [(provider role, mock model, priority)]
ROLES = {
    "oa": [("oa-1", "gpt-4o-mini", 10), ("oa-2", "gpt-4.1-nano", 5)],
    "an": [("an-1", "claude-haiku-4-5", 10), ("an-2", "claude-3-5-haiku", 5)],
    "cache": [("cache", "gpt-4.1-mini", 10)],
    "err": [("err", "gpt-5-mini", 10)],
    "cut-oa": [("cut-oa", "gpt-5-nano", 10)],
    "cut-an": [("cut-an", "claude-sonnet-4-5", 10)],
}
PROVIDER_EXTRA = {"oa-1": {"cooldown_ms": 200}, "an-1": {"cooldown_ms": 200}, "err": {"cooldown_ms": 60_000}}
# (mock model, status, count), set in turn every FAULT_EVERY_S while the load runs
FAULTS = [("gpt-4o-mini", 429, 2), ("claude-haiku-4-5", 529, 2), ("gpt-4o-mini", 500, 2)]
FAULT_EVERY_S = 0.15


class LoadNames:
    def __init__(self):
        self.tag = secrets.token_hex(4)
        self.cap = {r: f"ll-{r}-{self.tag}" for r in ROLES}
        self.prov = {p: f"llp-{p}-{self.tag}" for entries in ROLES.values() for p, _, _ in entries}
        self.model_of = {self.prov[p]: m for entries in ROLES.values() for p, m, _ in entries}
        self.keys = [(f"ll-key{k}-{self.tag}", f"rw-ll-{k}-" + secrets.token_hex(8)) for k in range(3)]


def load_config(mock_url: str, n: LoadNames, ledger_url: str) -> Dict[str, Any]:
    providers, upstreams = [], {}
    for entries in ROLES.values():
        for p, model, _ in entries:
            # no "price": the bundled table prices the provider by its model's name
            providers.append({"name": n.prov[p], "model": model, **PROVIDER_EXTRA.get(p, {}),
                              "quotas": [g.day_requests(), g.day_tokens()]})
            upstreams[n.prov[p]] = g.upstream(MOCK_MODELS[model]["api"], mock_url)
    caps = {n.cap[r]: {"cache": {"enabled": r == "cache"}} for r in ROLES}
    gw = g.gateway_section(upstreams, [{"name": name, "sha256": sha256(secret)} for name, secret in n.keys],
                           capabilities=caps, ledger={"url": ledger_url, "flush_ms": 50})
    return {"providers": providers,
            "capabilities": [{"name": n.cap[r], "providers": [{"provider": n.prov[p], "priority": pr}
                                                               for p, _, pr in entries]}
                             for r, entries in ROLES.items()],
            # priority alone picks: a primary is tried first whenever it may be, so every fault
            # set on it is met (and the call fails over)
            "scoring": {"quota": 0.0, "health": 0.0, "priority": 1.0, "latency": 0.0, "cost": 0.0},
            "health": {"half_life_ms": 1000, "overload_hold_ms": 100},
            "gateway": gw}


def make_plan(seed: int) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    kinds = [k for k, v in KINDS.items() for _ in range(v[3] * N_REQUESTS // 100)]
    assert len(kinds) == N_REQUESTS
    rng.shuffle(kinds)
    plan = []
    for idx, kind in enumerate(kinds):
        client, _, role, _ = KINDS[kind]
        item = {"idx": idx, "kind": kind, "key": idx % 3, "rid": rid(f"load{idx}")}
        if role == "cache":
            item.update(prompt=CACHE_PROMPTS[rng.randrange(len(CACHE_PROMPTS))], max_tokens=CACHE_MAX,
                        temperature=0)
        else:
            item["prompt"] = f"[{item['rid']}] " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))
            choices = (None, 5, 11, 64) if client == "oa" else (5, 11, 64)
            item["max_tokens"] = rng.choice(choices)
        plan.append(item)
    return plan


class Clients:
    def __init__(self, gw, keys):
        self.oa = [openai.OpenAI(base_url=gw.url + "/v1", api_key=s, max_retries=0, timeout=30) for _, s in keys]
        self.an = [anthropic.Anthropic(base_url=gw.url, api_key=s, max_retries=0, timeout=30) for _, s in keys]


def run_one(cl: Clients, n: LoadNames, it: Dict[str, Any]) -> Dict[str, Any]:
    """Sends one planned request; returns what the client received: status, the headers that
    matter, the usage it was told (input counts cache reads and writes, as the ledger does)."""
    client, what, role, _ = KINDS[it["kind"]]
    cap = n.cap[role]
    res: Dict[str, Any] = {**it, "status": None, "provider": None, "cache": None, "in": 0, "out": 0,
                           "usage_seen": False, "interrupted": False}
    msgs = [{"role": "user", "content": it["prompt"]}]
    hdrs = {"x-request-id": it["rid"]}
    extra: Dict[str, Any] = {}
    if it.get("temperature") is not None:
        extra["temperature"] = it["temperature"]

    def take_headers(h):
        res["provider"] = h.get("x-ratewise-provider")
        res["cache"] = h.get("x-ratewise-cache")
        res["attempts"] = h.get("x-ratewise-attempts")
        assert h.get("x-request-id") == it["rid"], (h.get("x-request-id"), it["rid"])

    try:
        if client == "oa":
            oa = cl.oa[it["key"]]
            if it["max_tokens"] is not None:
                extra["max_tokens"] = it["max_tokens"]
            if what == "json":
                raw = oa.chat.completions.with_raw_response.create(model=cap, messages=msgs, extra_headers=hdrs,
                                                                   **extra)
                take_headers(raw.headers)
                u = raw.parse().usage
                res.update(status=raw.status_code, usage_seen=True,
                           **{"in": u.prompt_tokens, "out": u.completion_tokens})
            else:
                raw = oa.chat.completions.with_raw_response.create(
                    model=cap, messages=msgs, stream=True, stream_options={"include_usage": True},
                    extra_headers=hdrs, **extra)
                take_headers(raw.headers)
                res["status"] = raw.status_code
                stream = raw.parse()
                if what == "cut":
                    for chunk in stream:
                        assert chunk.usage is None
                        if chunk.choices and chunk.choices[0].delta.content:
                            break
                    stream.close()
                    res["interrupted"] = True
                else:
                    for chunk in stream:
                        if chunk.usage is not None:
                            res.update(usage_seen=True, **{"in": chunk.usage.prompt_tokens,
                                                           "out": chunk.usage.completion_tokens})
        else:
            an = cl.an[it["key"]]
            mt = it["max_tokens"]
            if extra:  # this anthropic SDK has no `temperature` parameter
                extra = {"extra_body": extra}
            if what == "json":
                raw = an.messages.with_raw_response.create(model=cap, max_tokens=mt, messages=msgs,
                                                           extra_headers=hdrs, **extra)
                take_headers(raw.headers)
                u = raw.parse().usage
                res.update(status=raw.status_code, usage_seen=True, **{
                    "in": u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
                    "out": u.output_tokens})
            else:
                with an.messages.stream(model=cap, max_tokens=mt, messages=msgs, extra_headers=hdrs,
                                        **extra) as st:
                    take_headers(st.response.headers)
                    res["status"] = st.response.status_code
                    if what == "cut":
                        next(iter(st.text_stream))
                        res["interrupted"] = True
                    else:
                        for _ in st.text_stream:
                            pass
                        u = st.get_final_message().usage
                        res.update(usage_seen=True, **{
                            "in": u.input_tokens + (u.cache_read_input_tokens or 0)
                            + (u.cache_creation_input_tokens or 0),
                            "out": u.output_tokens})
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        take_headers(e.response.headers)
        res["status"] = e.status_code
    return res


def test_mixed_load_cost_per_key_is_exact_to_the_micro_dollar(stack, mock, gateway_bin, tmp_path, request_backend):
    """1,000 requests from 4 threads over 3 keys: JSON and streams through both SDKs, both ways
    across the APIs, temperature-0 repeats on the cached capability, primaries that answer 429,
    500 and 529 (faults set in turn while the load runs: the calls fail over), a capability whose
    provider always answers 500 (its requests end as errors: a 500 after 3 attempts, then 503s
    while its circuit is open), and streams the client abandons after their first text.

    "The mock's usage" of a request, the ground truth priced here, is:
    - an answer the client received whole (JSON, or a stream read to its end): the usage the mock
      reported in it, as the client received it (passed through or translated by the gateway);
      per mock model, these plus the abandoned streams' charges equal the mock's own counters
      (`admitted`, `input_tokens_charged`, `output_tokens_charged`), checked below;
    - a cache hit, a refusal, an injected 429/500/529: the mock served and charged nothing (0);
    - a stream abandoned after its first text: what the mock had reported before the client
      left, i.e. what the gateway could have seen. An OpenAI upstream reports usage only in its
      last chunk (40 tokens, 25 ms apart, away): nothing, (0, 0). An Anthropic upstream reports
      it in `message_start`: input_tokens (the prompt as the mock counted it, from the body in
      its log) and output_tokens 1.
    Each request is priced with its answering provider's table price (`x-ratewise-provider`).
    The ledger's per-key rows (/admin/usage group_by=key, and `ratewise usage --json`) must be
    exactly these sums: requests, tokens, cost_micro_usd, errors (status ≥ 400), cache_hits
    (`x-ratewise-cache: hit`)."""
    backend = request_backend
    n = LoadNames()
    if backend == "postgres":
        ledger_url = postgres_url_or_skip()
    else:
        ledger_url = f"sqlite:{tmp_path / 'load.db'}"
    cfg = load_config(mock.url, n, ledger_url)
    mock.set_faults({"model": "gpt-5-mini", "status": 500, "for_ms": 600_000})
    gw = Gateway(gateway_bin, cfg, tmp_path)
    try:
        plan = make_plan(seed=20260101)
        work: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        for it in plan:
            work.put(it)
        cl = Clients(gw, n.keys)
        results: List[Dict[str, Any]] = []
        done = threading.Event()

        def worker(_k):
            while True:
                try:
                    it = work.get_nowait()
                except queue.Empty:
                    return
                results.append(run_one(cl, n, it))

        def faults():
            k = 0
            while not done.wait(FAULT_EVERY_S):
                model, status, count = FAULTS[k % len(FAULTS)]
                mock.set_faults({"model": model, "status": status, "count": count})
                k += 1

        fth = threading.Thread(target=faults, daemon=True)
        fth.start()
        t0 = time.monotonic()
        try:
            errors = run_threads(N_THREADS, worker)
        finally:
            done.set()
            fth.join(5)
        load_s = time.monotonic() - t0
        assert not errors, errors[:3]
        assert len(results) == N_REQUESTS
        print(f"\n[{backend}] {N_REQUESTS} requests in {load_s:.1f} s")

        # ---- what the mock recorded
        stats = mock.stats()["models"]
        log = mock.log()
        assert len(log) < 2000, "the mock's log dropped entries"
        body_of: Dict[str, Dict[str, Any]] = {}
        for e in log:
            m = re.search(r"\[(ll-load\d+-[0-9a-f]+)\]", json.dumps(e["body"]))
            if m and e["body"].get("model") in ("gpt-5-nano", "claude-sonnet-4-5"):
                assert m.group(1) not in body_of, "an abandoned stream was sent upstream twice"
                body_of[m.group(1)] = e["body"]

        load_models = {m for entries in ROLES.values() for _, m, _ in entries}
        by_model: Dict[str, Dict[str, int]] = {m: {"admitted": 0, "in": 0, "out": 0} for m in load_models}
        expected = {name: {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
                           "cost_micro_usd": 0, "errors": 0, "cache_hits": 0, "degraded": 0}
                    for name, _ in n.keys}
        attempts_seen: Dict[str, int] = {}
        for r in results:
            e = expected[n.keys[r["key"]][0]]
            e["requests"] += 1
            assert r["status"] is not None, r
            if r["status"] >= 400:
                e["errors"] += 1
                assert KINDS[r["kind"]][2] == "err", r  # only the err capability fails
                continue
            assert r["status"] == 200, r
            if r["cache"] == "hit":
                e["cache_hits"] += 1
                assert (r["in"], r["out"]) == (0, 0), r  # a hit carries usage 0
                continue
            model = n.model_of[r["provider"]]
            st = by_model[model]
            st["admitted"] += 1
            if r["interrupted"]:
                body = body_of[r["rid"]]
                api = MOCK_MODELS[model]["api"]
                full_in = g.count_input_tokens(body, api)
                mt = body.get("max_tokens") if api == "anthropic" else (
                    body.get("max_completion_tokens") or body.get("max_tokens"))
                st["in"] += full_in
                st["out"] += min(mt, CUT_OUT) if mt is not None else CUT_OUT
                seen = (full_in, 1) if api == "anthropic" else (0, 0)
            else:
                assert r["usage_seen"], r
                st["in"] += r["in"]
                st["out"] += r["out"]
                seen = (r["in"], r["out"])
                attempts_seen[r["attempts"]] = attempts_seen.get(r["attempts"], 0) + 1
            e["input_tokens"] += seen[0]
            e["output_tokens"] += seen[1]
            e["cost_micro_usd"] += micro_cost(model, *seen)

        # the mock's counters agree with the usage the clients were given
        for model, st in by_model.items():
            ms = stats[model]
            assert (ms["admitted"], ms["input_tokens_charged"], ms["output_tokens_charged"]) == (
                st["admitted"], st["in"], st["out"]), (model, ms, st)
        for model in ("gpt-5-nano", "claude-sonnet-4-5"):  # each abandoned stream was dropped upstream
            assert stats[model]["admitted"] > 0 and stats[model]["ok"] == 0, (model, stats[model])
            g.wait_until(lambda: g.model_stats(mock, model)["aborted"] == stats[model]["admitted"], 10.0,
                         f"the abandoned streams of {model} to be dropped", 0.02)
        # the mix happened: failovers on each fault kind, errors, hits, abandoned streams
        assert stats["gpt-4o-mini"]["status"].get("429", 0) > 0 and stats["gpt-4o-mini"]["status"].get("500", 0) > 0
        assert stats["claude-haiku-4-5"]["status"].get("529", 0) > 0
        assert stats["gpt-4.1-nano"]["admitted"] > 0 and stats["claude-3-5-haiku"]["admitted"] > 0
        assert any(a not in (None, "1") for a in attempts_seen), attempts_seen
        assert stats["gpt-5-mini"]["admitted"] == 0 and stats["gpt-5-mini"]["status"].get("500", 0) >= 3
        assert sum(e["errors"] for e in expected.values()) == 50
        assert sum(e["cache_hits"] for e in expected.values()) > 100
        print(f"[{backend}] expected per key: {expected}")

        # ---- the ledger: /admin/usage by key
        names = {name for name, _ in n.keys}

        def rows():
            got = {r["key"]: r for r in usage(gw, "group_by=key&window=1h")["rows"] if r["key"] in names}
            return got if sum(r["requests"] for r in got.values()) >= N_REQUESTS else None

        g.wait_until(rows, 30.0, "the 1,000 records in /admin/usage", 0.1)
        time.sleep(0.5)
        got = rows()
        assert got is not None
        want = {k: {"key": k, **v, "cost_usd": v["cost_micro_usd"] / 1e6} for k, v in expected.items()}
        assert got == want
        # `ratewise usage --json` reads the same database
        out = cli("usage", str(gw.config_path), "--group-by", "key", "--window", "1h", "--json")
        assert out.returncode == 0, out.stderr
        cli_rows = {r["key"]: r for r in json.loads(out.stdout)["rows"] if r["key"] in names}
        assert cli_rows == want
        # every request is one record (read from the file, SQLite only)
        if backend == "sqlite":
            recs = ro_rows(tmp_path / "load.db", "SELECT request_id FROM ratewise_requests WHERE key IN (?, ?, ?)",
                           tuple(sorted(names)))
            ids = [r["request_id"] for r in recs]
            assert len(ids) == N_REQUESTS and set(ids) == {r["rid"] for r in results}
        # availability: every fault the mock sent is one outcome of its kind
        p = n.prov
        sent_faults = {(p["oa-1"], "rate_limited"): stats["gpt-4o-mini"]["status"].get("429", 0),
                       (p["oa-1"], "server_errors"): stats["gpt-4o-mini"]["status"].get("500", 0),
                       (p["an-1"], "overloaded"): stats["claude-haiku-4-5"]["status"].get("529", 0),
                       (p["err"], "server_errors"): stats["gpt-5-mini"]["status"]["500"]}

        def availability_in():
            rows = provider_rows(gw, list(p.values()))
            return rows if all(rows.get(pr, {}).get(k) == v for (pr, k), v in sent_faults.items()) else None

        g.wait_until(availability_in, 10.0, "the availability events of the faults", 0.05)
        time.sleep(0.2)
        av = provider_rows(gw, list(p.values()))
        assert av[p["oa-1"]]["rate_limited"] == stats["gpt-4o-mini"]["status"].get("429", 0), av[p["oa-1"]]
        assert av[p["oa-1"]]["server_errors"] == stats["gpt-4o-mini"]["status"].get("500", 0), av[p["oa-1"]]
        assert av[p["an-1"]]["overloaded"] == stats["claude-haiku-4-5"]["status"].get("529", 0), av[p["an-1"]]
        assert av[p["err"]]["server_errors"] == stats["gpt-5-mini"]["status"]["500"], av[p["err"]]
        assert av[p["oa-1"]]["fallbacks"] > 0 and av[p["an-1"]]["fallbacks"] > 0
        assert gw.alive()
    finally:
        gw.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def request_backend(request):
    return request.param


# --------------------------------------------------------------------------------------------
# (2) SIGKILL mid-load

KILL_FLUSH_MS = 200
KILL_MARGIN_MS = 150   # a batch being written, and the client's view of "answered" vs "queued"
KILL_AFTER_S = 1.5
KILL_THREADS = 3


def test_sigkill_mid_load_loses_at_most_the_last_flush(stack, mock, gateway_bin, tmp_path, capsys):
    """A steady JSON load (3 threads, openai SDK) on a gateway with `flush_ms` 200, SIGKILLed
    after 1.5 s. Afterwards, the SQLite file: every record is of a request that was sent, at
    most once; every request a client received whole before the kill and that is missing from
    the file was answered within the last flush_ms + 150 ms before the kill. The figures are
    printed."""
    tag = secrets.token_hex(4)
    key_name, key = f"ll-kill-{tag}", "rw-ll-kill-" + secrets.token_hex(8)
    prov, cap = f"llp-kill-{tag}", f"ll-kill-{tag}"
    db = tmp_path / "kill.db"
    cfg = {"providers": [{"name": prov, "model": "kill-m", "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}],
           "capabilities": [{"name": cap, "providers": [{"provider": prov}]}],
           "gateway": g.gateway_section({prov: g.upstream("openai", mock.url)},
                                        [{"name": key_name, "sha256": sha256(key)}],
                                        capabilities={cap: {"cache": {"enabled": False}}},
                                        ledger={"url": f"sqlite:{db}", "flush_ms": KILL_FLUSH_MS})}
    gw = Gateway(gateway_bin, cfg, tmp_path)
    try:
        sent: List[str] = []
        answered: Dict[str, float] = {}
        failed_before_kill: List[str] = []
        killed = threading.Event()
        msgs = [{"role": "user", "content": "Count the ledger."}]

        def worker(k):
            oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=10)
            j = 0
            while not killed.is_set():
                r_id = f"ll-kill-{tag}-{k}-{j}"
                j += 1
                sent.append(r_id)
                try:
                    c = oa.chat.completions.create(model=cap, messages=msgs, extra_headers={"x-request-id": r_id})
                    t_done = time.monotonic()
                    assert c.usage.completion_tokens == 5
                    answered[r_id] = t_done
                except (openai.APIConnectionError, openai.APIStatusError):
                    if not killed.is_set():
                        failed_before_kill.append(r_id)
                    return

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(KILL_THREADS)]
        for t in threads:
            t.start()
        time.sleep(KILL_AFTER_S)
        t_kill = time.monotonic()
        gw.proc.kill()
        killed.set()
        gw.proc.wait(10)
        for t in threads:
            t.join(20)
        assert gw.proc.returncode == -9
        assert not failed_before_kill, failed_before_kill[:5]
        assert len(answered) >= 50, f"too little load: {len(answered)} answered"

        recs = ro_rows(db, "SELECT request_id, key, status FROM ratewise_requests WHERE capability = ?", (cap,))
        ids = [r["request_id"] for r in recs]
        assert len(ids) == len(set(ids)), "a request was recorded twice"
        assert set(ids) <= set(sent), sorted(set(ids) - set(sent))[:5]
        assert all(r["key"] == key_name and r["status"] == 200 for r in recs)
        in_file = set(ids)
        missing = {r for r in answered if r not in in_file}
        window_s = (KILL_FLUSH_MS + KILL_MARGIN_MS) / 1000
        recent = {r for r, t in answered.items() if t >= t_kill - window_s}
        last_flush = {r for r, t in answered.items() if t >= t_kill - KILL_FLUSH_MS / 1000}
        oldest_ms = max(((t_kill - answered[r]) * 1000 for r in missing), default=0.0)
        rate = len(answered) / KILL_AFTER_S
        with capsys.disabled():  # shown even without -s
            print(f"\nSIGKILL after {KILL_AFTER_S} s (flush_ms {KILL_FLUSH_MS}): sent {len(sent)}, "
                  f"answered {len(answered)} (~{rate:.0f}/s), records in the file {len(in_file)} "
                  f"(of which {len(in_file - set(answered))} not answered), answered but lost {len(missing)}; "
                  f"answered within the last flush_ms {len(last_flush)}, within flush_ms + {KILL_MARGIN_MS} ms "
                  f"{len(recent)}; the oldest lost was answered {oldest_ms:.0f} ms before the kill")
        assert len(missing) <= len(recent), (len(missing), len(recent))
        assert missing <= recent, f"a record answered {oldest_ms:.0f} ms before the kill was lost"
        assert len(in_file) > 0
    finally:
        gw.stop()


# --------------------------------------------------------------------------------------------
# (3) a 529 storm: one webhook per circuit opening


class Receiver:
    """A webhook: records each POST (path, headers, body)."""

    def __init__(self):
        outer = self
        self.posts: List[Dict[str, Any]] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: A002
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.posts.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self) -> List[Dict[str, Any]]:
        with self.lock:
            return list(self.posts)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STORM_REQUESTS = 100


def test_a_529_storm_fires_exactly_one_webhook_per_circuit_opening(stack, mock, gateway_bin, tmp_path):
    """The first provider answers 529 to every call (cooldown_after 2, overload_hold_ms 0, a
    50 ms cooldown that does not grow, min_health 0 so health never hides it, scoring by priority
    alone so it is always tried first when it may be); the second answers. 100 requests (the
    anthropic SDK, 2 threads) all get the second's answer. /admin/availability shows the storm:
    the first's overloaded = outcomes = the 529s the mock sent = its fallbacks, no success, C ≥ 1
    circuit openings; the receiver (`gateway.alerts.webhook_url`, min_interval_s 0) gets exactly C
    `circuit_opened` alerts about it, each the JSON of docs/gateway.md "Alerts"."""
    rx = Receiver()
    tag = secrets.token_hex(4)
    bad, good, cap = f"llp-storm529-{tag}", f"llp-stormok-{tag}", f"ll-storm-{tag}"
    key_name, key = f"ll-storm-{tag}", "rw-ll-storm-" + secrets.token_hex(8)
    hook_token = secrets.token_hex(8)
    cfg = {"providers": [{"name": bad, "model": "storm-529", "cooldown_ms": 50},
                         {"name": good, "model": "storm-ok"}],
           "capabilities": [{"name": cap, "providers": [{"provider": bad, "priority": 10},
                                                       {"provider": good, "priority": 1}]}],
           "health": {"cooldown_after": 2, "overload_hold_ms": 0, "cooldown_multiplier": 1.0, "min_health": 0.0},
           "scoring": {"quota": 0.0, "health": 0.0, "priority": 1.0, "latency": 0.0, "cost": 0.0},
           "gateway": g.gateway_section({bad: g.upstream("anthropic", mock.url),
                                         good: g.upstream("anthropic", mock.url)},
                                        [{"name": key_name, "sha256": sha256(key)}],
                                        capabilities={cap: {"cache": {"enabled": False}}},
                                        ledger={"url": f"sqlite:{tmp_path / 'storm.db'}", "flush_ms": 20},
                                        alerts={"webhook_url": f"{rx.url}/hook/{hook_token}", "min_interval_s": 0})}
    mock.set_faults({"model": "storm-529", "status": 529, "for_ms": 600_000})
    gw = Gateway(gateway_bin, cfg, tmp_path)
    try:
        answers: List[Tuple[int, str]] = []

        def worker(_k):
            an = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
            for _ in range(STORM_REQUESTS // 2):
                raw = an.messages.with_raw_response.create(model=cap, max_tokens=16,
                                                           messages=[{"role": "user", "content": "storm?"}])
                answers.append((raw.status_code, raw.headers.get("x-ratewise-provider")))
                time.sleep(0.01)

        errors = run_threads(2, worker)
        assert not errors, errors[:3]
        assert answers == [(200, good)] * STORM_REQUESTS, answers
        st = mock.stats()["models"]
        n529 = st["storm-529"]["status"].get("529", 0)
        assert st["storm-529"]["admitted"] == 0 and n529 >= 2, st["storm-529"]
        assert st["storm-ok"]["ok"] == STORM_REQUESTS

        def settled():
            rows = provider_rows(gw, [bad, good])
            ok = (bad in rows and good in rows and rows[good]["successes"] == STORM_REQUESTS
                  and rows[bad]["overloaded"] == n529 and rows[bad]["fallbacks"] == n529)
            return rows if ok else None

        g.wait_until(settled, 15.0, "the storm's events in /admin/availability", 0.05)
        time.sleep(0.3)
        rows = provider_rows(gw, [bad, good])
        b = rows[bad]
        opened = b["circuit_opened"]
        print(f"\n529 storm: {n529} 529s, {opened} circuit openings, alerts received "
              f"{len(rx.snapshot())}")
        assert {k: b[k] for k in ("outcomes", "successes", "availability", "overloaded", "rate_limited",
                                  "server_errors", "timeouts", "fallbacks", "circuit_closed")} == {
            "outcomes": n529, "successes": 0, "availability": 0.0, "overloaded": n529, "rate_limited": 0,
            "server_errors": 0, "timeouts": 0, "fallbacks": n529, "circuit_closed": 0}, b
        assert opened >= 1
        assert rows[good]["outcomes"] == STORM_REQUESTS and rows[good]["circuit_opened"] == 0

        def circuit_alerts():
            out = []
            for p in rx.snapshot():
                v = json.loads(p["body"])
                if v.get("kind") == "circuit_opened":
                    out.append((p, v))
            return out

        g.wait_until(lambda: len(circuit_alerts()) >= opened, 15.0, f"{opened} circuit_opened alerts", 0.05)
        time.sleep(1.0)  # a duplicate would arrive by now
        alerts = circuit_alerts()
        assert len(alerts) == opened, (len(alerts), opened)
        for p, v in alerts:
            assert p["path"] == f"/hook/{hook_token}"
            assert p["headers"].get("content-type", "").startswith("application/json"), p["headers"]
            assert set(v) == {"kind", "subject", "message", "time", "details"}, v
            assert v["subject"] == bad and bad in v["message"], v
            assert RFC3339_MS.match(v["time"]), v["time"]
            assert v["details"] == {"provider": bad, "last_outcome": "overloaded"}, v
        assert len(rx.snapshot()) == opened, [json.loads(p["body"])["kind"] for p in rx.snapshot()]
        sent = g.metric_sum(g.metrics(gw), "ratewise_gateway_alerts_total", kind="circuit_opened", result="sent")
        assert sent == opened
    finally:
        gw.stop()
        rx.stop()
