#!/usr/bin/env python3
"""The gateway benchmark, in one run: the latency `ratewise serve` ADDS between a client and an
LLM provider, measured as (through the gateway) - (direct to the mock provider), with the same
load generator in the same run, direct and through run back to back for each scenario.

Needs the release binaries:

    cargo build --release -p ratewise-cli -p ratewise-bench-gateway

CPU placement (2-core machine): the mock provider and the load generator on CPU 0, the gateway
under test (and each peer) on CPU 1, with `taskset -c`.

Targets: a no-op proxy (rw-passthrough: the floor of one proxy hop), ratewise, and with the
flags below the Redis store and the peers.

Scenarios: 2,000 sequential requests on one connection; open loop at 500, 1,000 and 2,000 RPS
(10 s each; 3 s with --quick); streaming (time to first byte and total); the gateway's RSS and
CPU-seconds per 1,000 requests; the highest rate one core sustains (raised until p99 explodes
or errors appear). --peers: the same for LiteLLM proxy and Portkey gateway (installed into
target/ on first use), at 1,000 RPS open loop and sequential. --redis: ratewise again with the
Redis store. --keep-awake: SCHED_IDLE busy loops keep the vCPUs from halting (an idle vCPU of
this machine kind can take hundreds of µs to wake). Prints a markdown table; raw numbers go to
target/bench-gateway.json.

Python 3.11, standard library only. See bench/gateway/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
RATEWISE = RELEASE / "ratewise"
MOCK = RELEASE / "rw-mockprovider"
LOADGEN = RELEASE / "rw-loadgen"
PASSTHROUGH = RELEASE / "rw-passthrough"
WORK = ROOT / "target" / "bench-gateway"
OUT = ROOT / "target" / "bench-gateway.json"
LITELLM_VENV = ROOT / "target" / "bench-litellm"
LITELLM_VERSION = "1.108.7"
PORTKEY_PREFIX = ROOT / "target" / "bench-portkey"
PORTKEY_VERSION = "1.15.2"
PORTKEY_START = PORTKEY_PREFIX / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"

BUILD_HINT = "cargo build --release -p ratewise-cli -p ratewise-bench-gateway"
HARNESS_CPU = "0"  # mock provider + load generator
TARGET_CPU = "1"  # the gateway under test, or a peer

# The mock's only model. Its hidden limits are far above anything the benchmark sends, yet
# finite, so that every answer carries real rate-limit headers for the gateway to parse; its
# capacity (rate x burst_s) is above the gateway's configured quotas so that the limits the
# gateway learns from those headers never lower them.
MOCK_CONFIG = {
    "models": {
        "gpt-bench": {
            "api": "openai",
            "requests_per_s": 2_000_000,
            "tokens_per_s": 2_000_000_000,
            "burst_s": 60,
            "latency_ms": 0,
            "output_tokens": 16,
            # Streams only: 1 ms between SSE events, so that the time to the first byte and
            # the total differ as they do with a real model.
            "chunk_ms": 1,
        }
    }
}

PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process we started (and stop, by its own pid only)."""

    def __init__(self, name: str, cmd: list, env: dict | None = None, log_file: Path | None = None,
                 first_line: bool = False, cwd: Path | None = None):
        self.name = name
        self.log_path = log_file or (WORK / f"{name}.log")
        self.log_fh = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE if first_line else self.log_fh,
            stderr=self.log_fh,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.pid = self.proc.pid

    def read_first_line(self, timeout: float) -> dict:
        """The JSON line a tool prints once it is bound."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not sel.select(0):
                raise RuntimeError(f"{self.name} did not start (see {self.log_path}): "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            if sel.select(left):
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited at start (see {self.log_path}): "
                                       f"{self.log_path.read_text(errors='replace')[-2000:]}")
                buf += chunk
        sel.close()
        return json.loads(buf.split(b"\n", 1)[0])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log_fh.close()


def tree_pids(root: int) -> list[int]:
    """`root` and its descendants (LiteLLM and Node may run helpers)."""
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(d)] = int(fields[1])
    out, frontier = [root], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """utime + stime of the process tree, seconds (from /proc/PID/stat)."""
    total = 0
    for pid in tree_pids(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def rss_mib(root: int) -> dict:
    """Resident memory of the tree now, and the root's peak (VmHWM), MiB."""
    rss = 0
    hwm = 0
    for pid in tree_pids(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:") and pid == root:
                hwm = int(line.split()[1])
    return {"rss_mib": round(rss / 1024, 1), "peak_rss_mib": round(hwm / 1024, 1)}


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 5.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json",
                                                                         **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(url: str, body: dict, headers: dict, proc: Proc, timeout: float) -> None:
    """Until one real request through `url` succeeds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited (see {proc.log_path})")
        try:
            status, raw = http("POST", url, body, headers, timeout=5)
            if status == 200:
                return
            last = f"HTTP {status}: {raw[:300]!r}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.5)
    raise RuntimeError(f"{proc.name} not ready after {timeout:.0f} s: {last} (see {proc.log_path})")


# --------------------------------------------------------------------------------------------
# the load generator


class Target:
    """Somewhere to send chat completions: the mock itself, or a gateway in front of it."""

    def __init__(self, name: str, url: str, model: str, headers: dict | None = None, proc: Proc | None = None):
        self.name = name
        self.url = url
        self.headers = headers or {}
        self.proc = proc
        self.body = WORK / f"body-{name}.json"
        self.stream_body = WORK / f"body-{name}-stream.json"
        self.body.write_text(json.dumps({"model": model, "messages": PROMPT, "max_tokens": 16}))
        self.stream_body.write_text(json.dumps({"model": model, "messages": PROMPT, "max_tokens": 16,
                                                "stream": True, "stream_options": {"include_usage": True}}))


def sequential_warmup(n: int) -> int:
    """The unmeasured requests `load` sends before `n` sequential ones."""
    return max(20, n // 10)


def load(t: Target, *, sequential: int | None = None, rps: float | None = None, duration: float = 0,
         warmup: float = 0, stream: bool = False, timeout_ms: int = 10_000) -> dict:
    cmd = ["taskset", "-c", HARNESS_CPU, str(LOADGEN), "--url", t.url,
           "--body", "@" + str(t.stream_body if stream else t.body), "--timeout-ms", str(timeout_ms)]
    for k, v in t.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if stream:
        cmd.append("--stream")
    if sequential is not None:
        cmd += ["--sequential", str(sequential), "--warmup", str(sequential_warmup(sequential))]
    else:
        cmd += ["--rps", str(rps), "--duration", str(duration), "--warmup-s", str(warmup),
                "--connections", str(max(2, int((rps or 0) / 500)))]
    cpu0 = cpu_seconds(t.proc.pid) if t.proc else None
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120 + (sequential or 0))
    if r.returncode != 0:
        raise RuntimeError(f"rw-loadgen failed ({' '.join(cmd)}): {r.stderr.strip()}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if t.proc:
        # The CPU of the whole run, warm-up included, per request sent in it.
        sent = res["count"] + (rps * warmup if rps else sequential_warmup(sequential or 0))
        res["target_cpu_s"] = round(cpu_seconds(t.proc.pid) - cpu0, 3)
        res["target_cpu_s_per_1k"] = round(res["target_cpu_s"] / sent * 1000, 4) if sent else None
    return res


def median_result(runs: list[dict]) -> dict:
    """One result from several rounds: the median of each latency figure (a single round is
    returned as is)."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[-1])
    for key in ("latency_us", "ttfb_us"):
        if key in runs[0]:
            out[key] = {k: statistics.median(r[key][k] for r in runs) for k in runs[0][key]}
    out["count"] = sum(r["count"] for r in runs)
    out["ok"] = sum(r["ok"] for r in runs)
    errors: dict = {}
    for r in runs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    out["errors"] = errors
    out["rounds"] = runs
    return out


def added(direct: dict, through: dict, key: str = "latency_us") -> dict:
    return {k: round(through[key][k] - direct[key][k], 1) for k in ("p50", "p90", "p99", "p99.9", "mean")}


def pair(direct: Target, t: Target, rounds: int, **kw) -> dict:
    """The same load direct and through `t`, alternating, `rounds` times."""
    d_runs, t_runs = [], []
    for _ in range(rounds):
        d_runs.append(load(direct, **kw))
        t_runs.append(load(t, **kw))
    d, g = median_result(d_runs), median_result(t_runs)
    out = {"direct": d, "through": g, "added_us": added(d, g)}
    if kw.get("stream"):
        out["added_ttfb_us"] = added(d, g, "ttfb_us")
    desc = f"seq {kw['sequential']}" if kw.get("sequential") else f"{kw.get('rps')} RPS"
    if kw.get("stream"):
        desc += " stream"
    log(f"  {t.name:<10} {desc:<16} direct p50 {d['latency_us']['p50']:>7} p99 {d['latency_us']['p99']:>8} | "
        f"through p50 {g['latency_us']['p50']:>8} p99 {g['latency_us']['p99']:>9} | added p50 "
        f"{out['added_us']['p50']:>8} p99 {out['added_us']['p99']:>9} µs | errors {g['errors'] or '-'}"
        + (f" | ttfb added p50 {out['added_ttfb_us']['p50']}" if kw.get("stream") else ""))
    return out


def settle(t: Target, timeout: float = 30.0) -> None:
    """After an overload: until the target's CPU is idle (it may still be working through
    requests the generator gave up on), so that the next measurement starts clean."""
    if not t.proc:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c0 = cpu_seconds(t.proc.pid)
        time.sleep(0.5)
        if cpu_seconds(t.proc.pid) - c0 < 0.05:
            return


def healthy(r: dict, rps: float, p99_limit_us: float) -> bool:
    return (not r["errors"] and r["achieved_rps"] >= 0.97 * rps and r["latency_us"]["p99"] <= p99_limit_us)


def max_rps(direct: Target, t: Target, steps: list[int], seconds: float) -> dict:
    """Raises the rate through `t` until p99 explodes (over 10x the first step's, and over
    5 ms), errors appear or the rate is not kept; then checks the harness alone at the
    failing rate, since the mock and the generator share one core too."""
    curve = []
    best = None
    limit = None
    failed_at = None
    for rps in steps:
        cpu0 = cpu_seconds(t.proc.pid) if t.proc else 0
        t0 = time.monotonic()
        r = load(t, rps=rps, duration=seconds, warmup=1)
        busy = (cpu_seconds(t.proc.pid) - cpu0) / (time.monotonic() - t0) if t.proc else None
        if limit is None:
            limit = max(5000.0, 10 * r["latency_us"]["p99"])
        ok = healthy(r, rps, limit)
        curve.append({"rps": rps, "ok": ok, "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
                      "achieved_rps": r["achieved_rps"], "errors": r["errors"],
                      "target_cpu_busy": None if busy is None else round(busy, 2)})
        log(f"  {t.name:<10} max-RPS step {rps:>6}: p50 {r['latency_us']['p50']} p99 {r['latency_us']['p99']} µs, "
            f"achieved {r['achieved_rps']}, errors {r['errors'] or '-'}, CPU busy {curve[-1]['target_cpu_busy']}"
            f" -> {'ok' if ok else 'over'}")
        if not ok:
            failed_at = rps
            settle(t)
            break
        best = rps
    harness = None
    if failed_at is not None:
        d = load(direct, rps=failed_at, duration=seconds, warmup=1)
        harness = {"rps": failed_at, "ok": healthy(d, failed_at, limit or 5000.0),
                   "p50_us": d["latency_us"]["p50"], "p99_us": d["latency_us"]["p99"],
                   "achieved_rps": d["achieved_rps"], "errors": d["errors"]}
        log(f"  direct     at {failed_at} RPS: p99 {d['latency_us']['p99']} µs, achieved {d['achieved_rps']} "
            f"-> harness {'fine' if harness['ok'] else 'ALSO over: the limit is the harness, not the target'}")
    return {"max_rps": best, "failed_at": failed_at, "p99_limit_us": limit, "curve": curve,
            "direct_at_failure": harness,
            "bound": None if failed_at is None else ("target" if harness and harness["ok"] else "harness"),
            "limit": "not reached: the steps ran out" if failed_at is None else None}


# --------------------------------------------------------------------------------------------
# systems under test


def start_mock(cpu: str = HARNESS_CPU, name: str = "mock") -> tuple[Proc, int]:
    p = Proc(name, ["taskset", "-c", cpu, str(MOCK), "--port", "0", "--threads", "1",
                    "--config", json.dumps(MOCK_CONFIG)], first_line=True)
    return p, p.read_first_line(10)["port"]


def start_keep_awake() -> list[Proc]:
    """One busy loop per CPU at SCHED_IDLE priority (`chrt -i 0`): it runs only when nothing
    else wants the CPU and is preempted at once when something does, so it never delays the
    processes measured — but it keeps the vCPUs from halting. On this machine kind an idle vCPU
    takes hundreds of µs to wake up (no cpuidle driver: the guest halts, the host must
    reschedule it), which at 500-1,000 RPS is paid on nearly every request and would be
    measured as the gateway's latency."""
    out = []
    for cpu in (HARNESS_CPU, TARGET_CPU):
        out.append(Proc(f"keep-awake-{cpu}", ["chrt", "-i", "0", "taskset", "-c", cpu, sys.executable, "-c",
                                              "while True: pass"]))
    return out


def preflight(binaries) -> bool:
    """Whether `binaries`, taskset and two CPUs are here (what is missing goes to stderr); makes
    WORK. Every script of this folder checks this first."""
    missing = [str(p) for p in binaries if not Path(p).exists()]
    if missing:
        print(f"missing: {', '.join(missing)}\nbuild them first: {BUILD_HINT}", file=sys.stderr)
        return False
    if not shutil.which("taskset"):
        print("taskset (util-linux) is required to pin the processes to CPUs", file=sys.stderr)
        return False
    if (os.cpu_count() or 1) < 2:
        print("needs at least 2 CPUs (harness on CPU 0, gateway on CPU 1)", file=sys.stderr)
        return False
    WORK.mkdir(parents=True, exist_ok=True)
    return True


def start_harness(procs: list, keep_awake: bool) -> tuple[int, "Target"]:
    """The keep-awake loops (when asked: they need chrt) and the mock on CPU 0, appended to
    `procs`; the mock's port and the mock as a Target, warmed with 500 sequential requests."""
    if keep_awake:
        if not shutil.which("chrt"):
            raise SystemExit("--keep-awake needs chrt (util-linux)")
        procs += start_keep_awake()
        log("keep-awake: a SCHED_IDLE busy loop on each CPU")
    mock, mport = start_mock()
    procs.append(mock)
    log(f"mock provider on port {mport} (CPU {HARNESS_CPU})")
    direct = Target("direct", f"http://127.0.0.1:{mport}/v1/chat/completions", "gpt-bench")
    # Warm the mock and the load generator's page cache before anything is measured.
    load(direct, sequential=500)
    return mport, direct


def start_passthrough(mock_port: int) -> tuple[Proc, Target]:
    p = Proc("passthrough", ["taskset", "-c", TARGET_CPU, str(PASSTHROUGH), "--port", "0",
                             "--upstream", f"http://127.0.0.1:{mock_port}"], first_line=True)
    port = p.read_first_line(10)["port"]
    t = Target("passthrough", f"http://127.0.0.1:{port}/v1/chat/completions", "gpt-bench", proc=p)
    wait_ready(t.url, {"model": "gpt-bench", "messages": PROMPT, "max_tokens": 16}, {}, p, 10)
    return p, t


def start_ratewise(mock_port: int, store: dict | None, log_level: str | None,
                   ledger: bool = True, gateway: dict | None = None, tag: str = "") -> tuple[Proc, Target]:
    """`ratewise serve` on CPU 1; with the ledger (the default: SQLite in WORK) unless
    `ledger` is false; `gateway` adds settings to the `gateway` object (`tag` names that
    variant's files)."""
    config = {
        "providers": [{"name": "p", "model": "gpt-bench", "quotas": [
            {"dimension": "requests", "limit": 100_000_000, "window": "minute"},
            {"dimension": "tokens", "limit": 100_000_000_000, "window": "minute"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
        "gateway": {"listen": "127.0.0.1:0",
                    "upstreams": {"p": {"api": "openai", "base_url": f"http://127.0.0.1:{mock_port}/v1"}}},
    }
    if store:
        config["store"] = store
    if not ledger:
        config["gateway"]["ledger"] = False
    config["gateway"].update(gateway or {})
    name = ("ratewise-redis" if store else "ratewise") + ("" if ledger else "-noledger") + tag
    path = WORK / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    env = {"RATEWISE_LOG": log_level} if log_level else {}
    p = Proc(name, ["taskset", "-c", TARGET_CPU, str(RATEWISE), "serve", str(path)], env=env, first_line=True)
    addr = p.read_first_line(20)["listening"]
    t = Target(name, f"http://{addr}/v1/chat/completions", "chat", proc=p)
    wait_ready(t.url, {"model": "chat", "messages": PROMPT, "max_tokens": 16}, {}, p, 20)
    return p, t


def ensure_litellm() -> None:
    if (LITELLM_VENV / "bin" / "litellm").exists():
        return
    log(f"installing LiteLLM {LITELLM_VERSION} into {LITELLM_VENV} (a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
                   check=True)


def start_litellm(mock_port: int) -> tuple[Proc, Target]:
    ensure_litellm()
    key = "sk-" + secrets.token_hex(16)
    cfg = WORK / "ll.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: chat\n"
        "    litellm_params:\n"
        "      model: openai/gpt-bench\n"
        f"      api_base: http://127.0.0.1:{mock_port}/v1\n"
        "      api_key: sk-x\n"
        "general_settings:\n"
        "  master_key: os.environ/LITELLM_MASTER_KEY\n")
    port = free_port()
    p = Proc("litellm", ["taskset", "-c", TARGET_CPU, str(LITELLM_VENV / "bin" / "litellm"), "--config", str(cfg),
                         "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
             env={"LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, cwd=WORK)
    headers = {"authorization": f"Bearer {key}"}
    t = Target("litellm", f"http://127.0.0.1:{port}/v1/chat/completions", "chat", headers, proc=p)
    wait_ready(t.url, {"model": "chat", "messages": PROMPT, "max_tokens": 16}, headers, p, 180)
    return p, t


def ensure_portkey() -> None:
    if PORTKEY_START.exists():
        return
    log(f"installing Portkey gateway {PORTKEY_VERSION} into {PORTKEY_PREFIX}")
    subprocess.run(["npm", "install", "--prefix", str(PORTKEY_PREFIX), f"@portkey-ai/gateway@{PORTKEY_VERSION}"],
                   check=True, stdout=subprocess.DEVNULL)


def start_portkey(mock_port: int) -> tuple[Proc, Target]:
    ensure_portkey()
    port = free_port()
    p = Proc("portkey", ["taskset", "-c", TARGET_CPU, "node", str(PORTKEY_START), f"--port={port}", "--headless"],
             cwd=WORK)
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1",
               "authorization": "Bearer sk-x"}
    t = Target("portkey", f"http://127.0.0.1:{port}/v1/chat/completions", "gpt-bench", headers, proc=p)
    wait_ready(t.url, {"model": "gpt-bench", "messages": PROMPT, "max_tokens": 16}, headers, p, 60)
    return p, t


def start_redis() -> tuple[int, Path]:
    port = free_port()
    pidfile = WORK / "redis.pid"
    pidfile.unlink(missing_ok=True)
    # On the harness CPU: the store stands for another machine, not for the gateway's own core.
    subprocess.run(["taskset", "-c", HARNESS_CPU, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "yes", "--pidfile", str(pidfile),
                    "--logfile", str(WORK / "redis.log")], check=True)
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return port, pidfile
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not start on port {port} (see {WORK / 'redis.log'})")


def stop_redis(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# the benchmark


def kept(r: dict, rps: float) -> bool:
    return not r["through"]["errors"] and r["through"]["achieved_rps"] >= 0.97 * rps


def bench_target(direct: Target, t: Target, a, full: bool, rates: list[int], steps: list[int],
                 restart=None) -> dict:
    """Every scenario on `t`. `restart` (peers) gives a fresh process after an overload: an
    overloaded peer keeps working through the requests the generator gave up on (LiteLLM for
    a minute after 10 s at 1,000 RPS), which would spoil every later measurement."""
    res: dict = {"name": t.name, "idle": rss_mib(t.proc.pid), "restarts": 0}
    # Rounds only where noise matters: a peer's figures are orders of magnitude above it.
    rounds = a.rounds if full else 1
    mem = {"rss_mib": 0.0, "peak_rss_mib": 0.0}

    def sample():
        m = rss_mib(t.proc.pid)
        mem["rss_mib"] = max(mem["rss_mib"], m["rss_mib"])
        mem["peak_rss_mib"] = max(mem["peak_rss_mib"], m["peak_rss_mib"])

    def recover():
        nonlocal t
        if restart is None:
            settle(t)
            return
        sample()
        log(f"  {t.name}: restarting it after the overload")
        t = restart()
        res["restarts"] += 1

    res["sequential"] = pair(direct, t, rounds, sequential=a.sequential)
    sample()
    res["open"] = {}
    for rps in rates:
        r = res["open"][str(rps)] = pair(direct, t, rounds, rps=rps, duration=a.duration, warmup=1)
        sample()
        if not kept(r, rps):
            log(f"  {t.name} could not keep {rps} RPS: {r['through']['errors']}, "
                f"achieved {r['through']['achieved_rps']}")
            recover()
    if not full and not any(kept(r, int(k)) for k, r in res["open"].items()):
        # A peer that cannot keep 1,000 RPS is measured at lower rates too, and says so.
        for rps in (500, 200, 100, 50, 20):
            r = res["open"][str(rps)] = pair(direct, t, rounds, rps=rps, duration=a.duration, warmup=1)
            sample()
            if kept(r, rps):
                break
            recover()
    kept_rates = [int(k) for k, r in res["open"].items() if kept(r, int(k))]
    # CPU per request from a run the target kept up with (an overloaded one goes on working
    # after the generator has stopped counting); the sequential run when none was kept.
    ref_rate = 1000 if 1000 in kept_rates else max(kept_rates, default=None)
    ref = res["open"][str(ref_rate)] if ref_rate else res["sequential"]
    res["cpu_s_per_1k"] = ref["through"].get("target_cpu_s_per_1k")
    res["cpu_ref"] = f"{ref_rate} RPS" if ref_rate else "sequential"
    if t.name != "portkey":  # its streaming fails on Node 20: compared without streams
        res["stream"] = pair(direct, t, rounds, sequential=a.stream_n, stream=True)
        sample()
    res["max"] = max_rps(direct, t, steps, a.step_s)
    sample()
    res["after"] = mem
    return res


def fmt_us(x) -> str:
    if x is None:
        return "—"
    if abs(x) >= 10_000:
        return f"{x / 1000:,.1f} ms"
    return f"{x:,.0f}"


def pair_cell(r: dict | None, key: str = "added_us") -> str:
    if not r:
        return "—"
    a = r[key]
    cell = f"{fmt_us(a['p50'])} / {fmt_us(a['p99'])}"
    e = r["through"]["errors"]
    if e:
        cell += f" ({sum(e.values())} errors: {', '.join(f'{k}×{v}' for k, v in e.items())})"
    elif r["through"].get("achieved_rps") and r["through"].get("target_rps") and \
            r["through"]["achieved_rps"] < 0.97 * r["through"]["target_rps"]:
        cell += f" (kept {r['through']['achieved_rps']:.0f} RPS only)"
    return cell


def table(results: dict) -> str:
    cols = [k for k in ("passthrough", "ratewise", "ratewise-busy", "ratewise-redis", "litellm", "portkey")
            if k in results["targets"]]
    names = {"passthrough": "no-op proxy (floor)", "ratewise": "ratewise",
             "ratewise-busy": f"ratewise, busy polling {results['params'].get('busy_poll_us')} µs",
             "ratewise-redis": "ratewise (Redis store)",
             "litellm": f"LiteLLM {LITELLM_VERSION}", "portkey": f"Portkey {PORTKEY_VERSION}"}
    rows = []

    def row(label, f):
        rows.append(f"| {label} | " + " | ".join(f(results["targets"][c]) for c in cols) + " |")

    rows.append("| added latency, µs (p50 / p99) | " + " | ".join(names[c] for c in cols) + " |")
    rows.append("|---" * (len(cols) + 1) + "|")
    row(f"sequential, {results['params']['sequential']:,} requests, 1 connection",
        lambda r: pair_cell(r["sequential"]))
    rates = sorted({int(k) for c in cols for k in results["targets"][c]["open"]})
    for rps in rates:
        row(f"open loop {rps:,} RPS", lambda r, rps=rps: pair_cell(r["open"].get(str(rps))))
    row("streaming: time to first byte", lambda r: pair_cell(r.get("stream"), "added_ttfb_us")
        if r.get("stream") else "not measured (fails on Node 20)")
    row("streaming: total", lambda r: pair_cell(r.get("stream")) if r.get("stream") else "—")
    row("RSS idle → largest after a run (peak), MiB",
        lambda r: f"{r['idle']['rss_mib']} → {r['after']['rss_mib']} ({r['after']['peak_rss_mib']})")
    row("CPU-seconds per 1,000 requests",
        lambda r: "—" if r["cpu_s_per_1k"] is None else
        f"{r['cpu_s_per_1k']:.3f}" + ("" if r["cpu_ref"] == "1000 RPS" else f" (at {r['cpu_ref']})"))

    def max_cell(r):
        m = r["max"]
        if m["max_rps"] is None:
            return f"< {m['failed_at']:,}"
        s = f"{m['max_rps']:,}"
        if m["failed_at"] is None:
            s = f"≥ {s} (steps ran out)"
        elif m["bound"] == "harness":
            s = f"≥ {s} (harness-bound at {m['failed_at']:,})"
        return s

    row("max RPS on one core", max_cell)
    base = results["targets"].get("ratewise")
    if base:
        def ratio(r):
            if r is base:
                return "1×"
            parts = []
            b = max(base["sequential"]["added_us"]["p50"], 1.0)
            parts.append(f"sequential {r['sequential']['added_us']['p50'] / b:,.1f}×")
            for rps in ("1000", "500", "200", "100", "50", "20"):
                if rps in r["open"] and rps in base["open"]:
                    b = max(base["open"][rps]["added_us"]["p50"], 1.0)
                    parts.append(f"{int(rps):,} RPS {r['open'][rps]['added_us']['p50'] / b:,.1f}×")
                    break
            return "; ".join(parts)
        row("added p50 / ratewise added p50", ratio)
    direct = ["", "Baseline (direct to the mock, same runs, ratewise's pairs), µs (p50 / p99):"]
    base = base or next(iter(results["targets"].values()), None)
    if base:
        d = [f"sequential {fmt_us(base['sequential']['direct']['latency_us']['p50'])} / "
             f"{fmt_us(base['sequential']['direct']['latency_us']['p99'])}"]
        for rps, r in base["open"].items():
            d.append(f"{int(rps):,} RPS {fmt_us(r['direct']['latency_us']['p50'])} / "
                     f"{fmt_us(r['direct']['latency_us']['p99'])}")
        if base.get("stream"):
            s = base["stream"]["direct"]
            d.append(f"stream TTFB {fmt_us(s['ttfb_us']['p50'])} / {fmt_us(s['ttfb_us']['p99'])}, "
                     f"total {fmt_us(s['latency_us']['p50'])} / {fmt_us(s['latency_us']['p99'])}")
        direct.append("; ".join(d) + ".")
    return "\n".join(rows + direct)


def verdicts(results: dict) -> list[str]:
    out = []
    rw = results["targets"].get("ratewise")
    if not rw or "1000" not in rw["open"]:
        return out
    a = rw["open"]["1000"]["added_us"]
    busy = results["targets"].get("ratewise-busy")
    for label, r in (("ratewise", rw), (f"ratewise, busy polling {results['params'].get('busy_poll_us')} µs,", busy)):
        if r and "1000" in r["open"]:
            x = r["open"]["1000"]["added_us"]
            out.append(f"{label} added p50 at 1,000 RPS: {x['p50']:.0f} µs (budget ≤ 100): "
                       f"{'met' if x['p50'] <= 100 else 'NOT met'}")
            out.append(f"{label} added p99 at 1,000 RPS: {x['p99']:.0f} µs (budget ≤ 500): "
                       f"{'met' if x['p99'] <= 500 else 'NOT met'}")
    floor = results["targets"].get("passthrough")
    if floor and "1000" in floor["open"]:
        f = floor["open"]["1000"]["added_us"]
        out.append(f"for reference, a no-op proxy hop (rw-passthrough) adds p50 {f['p50']:.0f} / p99 {f['p99']:.0f} µs "
                   f"at 1,000 RPS on this machine: ratewise's own share is p50 {a['p50'] - f['p50']:.0f} / "
                   f"p99 {a['p99'] - f['p99']:.0f} µs")
    for name, need in (("litellm", 20), ("portkey", 5)):
        r = results["targets"].get(name)
        if not r:
            continue
        for label, mine, theirs in (
                ("sequential", rw["sequential"], r["sequential"]),
                ("1,000 RPS", rw["open"]["1000"], r["open"].get("1000"))):
            if theirs is None:
                continue
            ratio = theirs["added_us"]["p50"] / max(mine["added_us"]["p50"], 1.0)
            kept = not theirs["through"]["errors"] and \
                theirs["through"]["achieved_rps"] >= 0.97 * (theirs["through"].get("target_rps") or 0)
            note = "" if kept or label == "sequential" else f" ({name} did not keep the rate: overloaded)"
            out.append(f"{name} added p50 / ratewise added p50, {label}: {ratio:,.1f}× (budget ≥ {need}×): "
                       f"{'met' if ratio >= need else 'NOT met'}{note}")
    return out


def main() -> int:
    global RATEWISE
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Build first: {BUILD_HINT}")
    ap.add_argument("--quick", action="store_true", help="3 s per rate, 500 sequential, 100 streams, 2 s max-RPS steps")
    ap.add_argument("--peers", action="store_true", help="also LiteLLM proxy and Portkey (installed on first use)")
    ap.add_argument("--redis", action="store_true", help="also ratewise with the Redis store")
    ap.add_argument("--keep-awake", action="store_true",
                    help="keep both vCPUs from halting with SCHED_IDLE busy loops (see README)")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the no-op proxy (rw-passthrough) that measures the floor of a proxy hop")
    ap.add_argument("--only-peers", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=1, help="direct/through alternations per scenario (median)")
    ap.add_argument("--gateway-log", default=None, help="RATEWISE_LOG for the gateway (default: its own, info)")
    ap.add_argument("--ratewise-bin", default=str(RATEWISE), help="the gateway binary (default: the release build)")
    ap.add_argument("--busy-poll-us", type=int, default=0,
                    help="also ratewise with gateway.busy_poll_us set to this (a column of its own)")
    ap.add_argument("--out", default=str(OUT), help=f"raw numbers (default {OUT.relative_to(ROOT)})")
    a = ap.parse_args()
    RATEWISE = Path(a.ratewise_bin).resolve()
    if not preflight((RATEWISE, MOCK, LOADGEN, PASSTHROUGH)):
        return 2
    a.sequential = 500 if a.quick else 2000
    a.duration = 3.0 if a.quick else 10.0
    a.stream_n = 100 if a.quick else 300
    a.step_s = 2.0 if a.quick else 3.0
    rates = [500, 1000, 2000]
    rw_steps = [2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 15000, 20000]
    peer_steps = [10, 20, 50, 100, 200, 300, 500, 700, 1000, 1500, 2000, 3000]
    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "cpu": next((line.split(":", 1)[1].strip() for line in
                                 Path("/proc/cpuinfo").read_text().splitlines()
                                 if line.startswith("model name")), None),
                    "loadavg_at_start": os.getloadavg()},
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "params": {"sequential": a.sequential, "duration_s": a.duration, "rates": rates,
                   "stream_sequential": a.stream_n, "rounds": a.rounds, "step_s": a.step_s,
                   "mock_config": MOCK_CONFIG, "harness_cpu": HARNESS_CPU, "target_cpu": TARGET_CPU,
                   "keep_awake": a.keep_awake, "busy_poll_us": a.busy_poll_us},
        "targets": {},
    }
    procs: list[Proc] = []
    redis_pid = None
    try:
        mport, direct = start_harness(procs, a.keep_awake)
        if not a.only_peers and not a.no_floor:
            fp, t = start_passthrough(mport)
            procs.append(fp)
            log(f"no-op proxy (floor) on {t.url} (CPU {TARGET_CPU})")
            results["targets"]["passthrough"] = bench_target(direct, t, a, True, rates, rw_steps)
            fp.stop()
        if not a.only_peers:
            gw, t = start_ratewise(mport, None, a.gateway_log)
            procs.append(gw)
            log(f"ratewise on {t.url} (CPU {TARGET_CPU})")
            results["targets"]["ratewise"] = bench_target(direct, t, a, True, rates, rw_steps)
            gw.stop()
            if a.busy_poll_us:
                gw, t = start_ratewise(mport, None, a.gateway_log, gateway={"busy_poll_us": a.busy_poll_us},
                                       tag="-busy")
                procs.append(gw)
                log(f"ratewise with busy polling ({a.busy_poll_us} µs) on {t.url} (CPU {TARGET_CPU})")
                results["targets"]["ratewise-busy"] = bench_target(direct, t, a, True, rates, rw_steps)
                gw.stop()
            if a.redis:
                rport, redis_pid = start_redis()
                store = {"kind": "redis", "url": f"redis://127.0.0.1:{rport}"}
                gw, t = start_ratewise(mport, store, a.gateway_log)
                procs.append(gw)
                log(f"ratewise with the Redis store (redis on port {rport}, CPU {HARNESS_CPU})")
                results["targets"]["ratewise-redis"] = bench_target(direct, t, a, True, rates, rw_steps)
                gw.stop()
                stop_redis(redis_pid)
                redis_pid = None
        if a.peers:
            for name, start in (("litellm", start_litellm), ("portkey", start_portkey)):
                current: list[Proc] = []

                def restart(start=start, current=current) -> Target:
                    for old in current:
                        old.stop()
                    current.clear()
                    p, t = start(mport)
                    procs.append(p)
                    current.append(p)
                    return t

                try:
                    t = restart()
                    log(f"{name} on {t.url} (CPU {TARGET_CPU})")
                    results["targets"][name] = bench_target(direct, t, a, False, [1000], peer_steps, restart)
                except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
                    log(f"{name}: not measured: {e}")
                    results["targets"][name + "-error"] = str(e)
                for p in current:
                    p.stop()
        status, raw = http("GET", f"http://127.0.0.1:{mport}/_mock/stats")
        results["mock_stats"] = json.loads(raw) if status == 200 else None
    finally:
        for p in procs:
            p.stop()
        if redis_pid:
            stop_redis(redis_pid)
    results["targets"] = {k: v for k, v in results["targets"].items() if isinstance(v, dict)} | {
        k: v for k, v in results["targets"].items() if not isinstance(v, dict)}
    results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    clean = {k: v for k, v in results["targets"].items() if isinstance(v, dict)}
    md = table({**results, "targets": clean})
    results["table_markdown"] = md
    results["verdicts"] = verdicts({**results, "targets": clean})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1))
    print(md)
    print()
    for v in results["verdicts"]:
        print(f"- {v}")
    print(f"\nraw numbers: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
