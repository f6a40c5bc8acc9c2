"""Helpers of the end-to-end tests of `ratewise serve` (tests/gateway/README.md).

A test module declares ``MOCK_MODELS`` (the mock upstream's deployments, tests/mockllm) and
``gateway_config(mock_url, tmp)`` (the engine's JSON plus its ``gateway`` object); conftest.py
starts one mock and one gateway for the module and resets the mock before each test.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
MOCK_DIR = REPO / "tests" / "mockllm"
if str(MOCK_DIR) not in sys.path:
    sys.path.insert(0, str(MOCK_DIR))

from mockllm import MockServer, count_input_tokens, embedding_vector, tool_arguments  # noqa: E402,F401

# --------------------------------------------------------------------------------------------
# keys: fresh for each run, so that a leak is a unique string to look for

OPENAI_KEY_ENV = "RW_TEST_UPSTREAM_OPENAI_KEY"
ANTHROPIC_KEY_ENV = "RW_TEST_UPSTREAM_ANTHROPIC_KEY"
UPSTREAM_OPENAI_KEY = "sk-upstream-oa-" + secrets.token_hex(12)
UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-" + secrets.token_hex(12)
UPSTREAM_FILE_KEY = "sk-upstream-file-" + secrets.token_hex(12)
UPSTREAM_KEYS = (UPSTREAM_OPENAI_KEY, UPSTREAM_ANTHROPIC_KEY, UPSTREAM_FILE_KEY)

KEY_A = "rw-team-a-" + secrets.token_hex(8)  # every capability, any lane
KEY_B = "rw-team-b-" + secrets.token_hex(8)  # a few capabilities, lanes ["batch", "normal"]
KEY_UNKNOWN = "rw-nobody-" + secrets.token_hex(8)
ADMIN_KEY = "rw-admin-" + secrets.token_hex(8)

REQUIRE_ENV = "RATEWISE_REQUIRE_GATEWAY"


def micro_cost(price: Optional[Dict[str, float]], i: int, o: int, cached: int = 0, written: int = 0) -> int:
    """The engine's cost formula (docs/design.md §3): ceil(((i − cached − written)·p_in +
    cached·p_cached + written·p_write + o·p_out) / 1e6), each p = round(price_per_mtok·1e6),
    p_cached and p_write = p_in without cached_input_per_mtok / cache_write_input_per_mtok;
    0 unpriced."""
    if price is None:
        return 0
    p_in, p_out = round(price["input_per_mtok"] * 1e6), round(price["output_per_mtok"] * 1e6)
    p_cached = round(price.get("cached_input_per_mtok", price["input_per_mtok"]) * 1e6)
    p_write = round(price.get("cache_write_input_per_mtok", price["input_per_mtok"]) * 1e6)
    return -(-((i - cached - written) * p_in + cached * p_cached + written * p_write + o * p_out) // 1_000_000)


def sha256(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# the binary


def gateway_binary() -> Path:
    p = Path(os.environ.get("RATEWISE_BIN", "target/debug/ratewise"))
    return p if p.is_absolute() else REPO / p


_UNAVAILABLE: Dict[str, Optional[str]] = {}


def gateway_unavailable() -> Optional[str]:
    """Why the gateway cannot be tested (None when `ratewise serve --help` exits 0)."""
    b = gateway_binary()
    key = str(b)
    if key not in _UNAVAILABLE:
        reason = None
        if not b.is_file() or not os.access(b, os.X_OK):
            reason = f"the gateway binary is missing ({b}; build it or set RATEWISE_BIN)"
        else:
            try:
                r = subprocess.run([str(b), "serve", "--help"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=30)
                if r.returncode != 0:
                    reason = f"{b} has no `serve` subcommand (`serve --help` exited {r.returncode})"
            except (OSError, subprocess.TimeoutExpired) as e:
                reason = f"{b} serve --help failed: {e}"
        _UNAVAILABLE[key] = reason
    return _UNAVAILABLE[key]


def require_gateway() -> Path:
    reason = gateway_unavailable()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return gateway_binary()


def gateway_env() -> Dict[str, str]:
    env = dict(os.environ)
    env[OPENAI_KEY_ENV] = UPSTREAM_OPENAI_KEY
    env[ANTHROPIC_KEY_ENV] = UPSTREAM_ANTHROPIC_KEY
    return env


# --------------------------------------------------------------------------------------------
# the gateway process

LISTEN_RE = re.compile(r"^127\.0\.0\.1:(\d+)$")


class Gateway:
    """`ratewise serve CONFIG` started on a free port; ``url`` once it printed its line and
    /readyz answers 200."""

    def __init__(self, binary: Path, config: Dict[str, Any], workdir: Path,
                 start_timeout: float = 20.0):
        self.workdir = Path(workdir)
        self.config = config
        self.config_path = self.workdir / "gateway.json"
        self.config_path.write_text(json.dumps(config, indent=1))
        self.stderr_path = self.workdir / "gateway.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([str(binary), "serve", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=gateway_env(), cwd=str(REPO))
        self.stdout_lines: List[str] = []
        self._line = threading.Event()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.returncode: Optional[int] = None
        if not self._line.wait(start_timeout):
            self.stop()
            raise RuntimeError(f"the gateway printed no line in {start_timeout}s; stderr:\n"
                               + self.stderr_tail())
        if not self.stdout_lines:
            self.stop()
            raise RuntimeError("the gateway exited before printing its line "
                               f"(exit {self.proc.poll()}); stderr:\n" + self.stderr_tail())
        self.first_line = self.stdout_lines[0]
        self.listening = json.loads(self.first_line)["listening"]
        m = LISTEN_RE.match(self.listening)
        if not m:
            raise RuntimeError(f"unexpected listening line {self.first_line!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: self._ready(), 10.0, "the gateway's /readyz to answer 200")

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
            self._line.set()
        self._line.set()

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the gateway exited ({self.proc.returncode}); stderr:\n"
                               + self.stderr_tail())
        try:
            return request(self, "GET", "/readyz", timeout=2).status == 200
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code (SIGKILL and -9 after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self.returncode = self.proc.returncode
        return self.returncode

    def stop(self) -> int:
        rc = self.terminate()
        if not self._stderr.closed:
            self._stderr.close()
        return rc

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            self._stderr.flush()
        except (ValueError, OSError):
            pass
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# HTTP without an SDK


class Resp:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Resp {self.status} {self.body[:300]!r}>"


def _headers(msg: http.client.HTTPResponse) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for k, v in msg.getheaders():
        k = k.lower()
        out[k] = v if k not in out else out[k] + ", " + v
    return out


def request(gw: Any, method: str, path: str, body: Any = None,
            headers: Optional[Dict[str, str]] = None, timeout: float = 15.0) -> Resp:
    """One request on a fresh connection. ``body``: a dict/list (sent as JSON), bytes or str
    (sent as is), or None. ``gw``: a Gateway or a URL."""
    url = gw.url if hasattr(gw, "url") else str(gw)
    m = re.match(r"^http://([^:/]+):(\d+)", url)
    assert m, url
    c = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
    h = dict(headers or {})
    data: Optional[bytes]
    if body is None:
        data = None
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = json.dumps(body).encode("utf-8")
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        try:
            payload = r.read()
        except http.client.IncompleteRead as e:
            payload = e.partial
        return Resp(r.status, _headers(r), payload)
    finally:
        c.close()


def oa_headers(key: Optional[str] = KEY_A, **extra: str) -> Dict[str, str]:
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(extra)
    return h


def an_headers(key: Optional[str] = KEY_A, **extra: str) -> Dict[str, str]:
    h = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    if key is not None:
        h["x-api-key"] = key
    h.update(extra)
    return h


class RawStream:
    """A streaming POST over a raw socket, to read part of it and then hang up."""

    def __init__(self, gw: Any, path: str, body: Dict[str, Any], headers: Dict[str, str]):
        raw = json.dumps(body).encode("utf-8")
        self.sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()
                       if k.lower() not in ("content-length", "connection"))
        self.sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n{head}"
                           f"Content-Length: {len(raw)}\r\n\r\n").encode("latin-1") + raw)
        self.received = b""

    def read_until(self, needle: bytes, timeout: float = 5.0) -> bytes:
        end = time.monotonic() + timeout
        while needle not in self.received:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not received in {timeout}s: {self.received[:500]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed before {needle!r}: {self.received[:500]!r}")
            self.received += chunk
        return self.received

    def close(self) -> float:
        """Hang up at once (an RST-free close); returns the monotonic time of the close."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        return time.monotonic()


# --------------------------------------------------------------------------------------------
# SSE


def sse_events(data: bytes) -> List[Tuple[Optional[str], str]]:
    """(event, data) of each SSE event in ``data`` (comments and empty events skipped)."""
    out: List[Tuple[Optional[str], str]] = []
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        ev = None
        datas = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                datas.append(line[5:].lstrip(" "))
        if datas:
            out.append((ev, "\n".join(datas)))
    return out


def dechunk(data: bytes) -> bytes:
    """The body of a (possibly incomplete) chunked HTTP/1.1 response, after its head."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return b""
    if b"transfer-encoding: chunked" not in head.lower():
        return rest
    out = b""
    while rest:
        line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            n = int(line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if n == 0:
            break
        out += rest[:n]
        rest = rest[n + 2:]
    return out


# --------------------------------------------------------------------------------------------
# the engine and the metrics


def snapshot(gw: Any) -> Dict[str, Any]:
    r = request(gw, "GET", "/admin/engine", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status == 200, r
    return r.json()  # type: ignore[no-any-return]


def quota(snap: Dict[str, Any], provider: str, dimension: str) -> Dict[str, Any]:
    qs = [q for q in snap["providers"][provider]["quotas"] if q["dimension"] == dimension]
    assert len(qs) == 1, f"{provider} has {len(qs)} {dimension} quotas: {snap['providers'][provider]}"
    return qs[0]  # type: ignore[no-any-return]


def charged(snap: Dict[str, Any], provider: str, dimension: str = "tokens") -> int:
    q = quota(snap, provider, dimension)
    return int(q["capacity"] - q["remaining"])


def settled(gw: Any, providers: List[str], timeout: float = 5.0) -> Dict[str, Any]:
    """The snapshot once every provider named has no permit in flight."""
    box: Dict[str, Any] = {}

    def ok() -> bool:
        box["s"] = snapshot(gw)
        return all(box["s"]["providers"][p]["in_flight"] == 0 for p in providers)

    wait_until(ok, timeout, f"in_flight 0 on {providers}")
    return box["s"]


_METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(gw: Any) -> List[Tuple[str, Dict[str, str], float]]:
    r = request(gw, "GET", "/metrics")
    assert r.status == 200, r
    out = []
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(3) or ""))
            out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric_sum(samples: List[Tuple[str, Dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples
               if n == name and all(ls.get(k) == want for k, want in labels.items()))


# --------------------------------------------------------------------------------------------
# misc


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def model_stats(mock: Any, model: str) -> Dict[str, Any]:
    return mock.stats()["models"][model]  # type: ignore[no-any-return]


def log_for(mock: Any, model: Optional[str] = None) -> List[Dict[str, Any]]:
    entries = mock.log()
    if model is None:
        return entries  # type: ignore[no-any-return]
    return [e for e in entries if isinstance(e["body"], dict) and e["body"].get("model") == model]


def text_of(content: Any) -> str:
    """The text of a message content (a string, or a list of text blocks/parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def mtok_cost(price: Dict[str, float], i: int, o: int) -> float:
    return (i * price["input_per_mtok"] + o * price["output_per_mtok"]) / 1e6


def words(n: int, sep: str = " ", trailing: bool = False) -> str:
    """The mock's answer of n output tokens: "tok0 tok1 …" (a stream ends each with a space)."""
    ws = [f"tok{k}" for k in range(n)]
    return "".join(w + " " for w in ws) if trailing else sep.join(ws)


def retry_after_ok(headers: Any) -> Tuple[int, int]:
    """Checks Retry-After (integer seconds) = ceil(retry-after-ms / 1000); returns both."""
    ra = headers.get("retry-after")
    ms = headers.get("retry-after-ms")
    assert ra is not None and re.fullmatch(r"\d+", ra), f"Retry-After {ra!r}"
    assert ms is not None and re.fullmatch(r"\d+", ms), f"retry-after-ms {ms!r}"
    assert int(ra) == math.ceil(int(ms) / 1000), (ra, ms)
    return int(ra), int(ms)


def assert_no_secret(where: str, text: str) -> None:
    for k in UPSTREAM_KEYS:
        assert k not in text, f"an upstream API key appears in {where}"


def upstream(api: str, mock_url: str, key: str = "env", headers: Optional[Dict[str, str]] = None,
             key_file: Optional[Path] = None) -> Dict[str, Any]:
    """A `gateway.upstreams` entry for the mock: base_url as the SDKs take it."""
    u: Dict[str, Any] = {"api": api, "base_url": mock_url + "/v1" if api == "openai" else mock_url}
    if key == "file":
        assert key_file is not None
        u["api_key_file"] = str(key_file)
    else:
        u["api_key_env"] = OPENAI_KEY_ENV if api == "openai" else ANTHROPIC_KEY_ENV
    if headers:
        u["headers"] = headers
    return u


def day_tokens(limit: int = 10_000_000) -> Dict[str, Any]:
    return {"dimension": "tokens", "limit": limit, "window": "day", "algorithm": "fixed_window"}


def day_requests(limit: int = 1_000_000) -> Dict[str, Any]:
    return {"dimension": "requests", "limit": limit, "window": "day", "algorithm": "fixed_window"}


def gateway_section(upstreams: Dict[str, Any], keys: Optional[List[Dict[str, Any]]] = None,
                    **over: Any) -> Dict[str, Any]:
    g: Dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "upstreams": upstreams,
        "admin_key_sha256": sha256(ADMIN_KEY),
        "timeout_ms": 5000,
        "max_attempts": 3,
        "max_body_bytes": 65536,
        "connect_timeout_ms": 1000,
        "read_timeout_ms": 5000,
        "default_max_tokens": 4096,
    }
    if keys is not None:
        g["keys"] = keys
    g.update(over)
    return g


LANES = [{"name": "critical", "headroom": 0.0},
         {"name": "normal", "headroom": 0.0, "aging_ms": 30000},
         {"name": "batch", "headroom": 0.3, "aging_ms": 30000}]
