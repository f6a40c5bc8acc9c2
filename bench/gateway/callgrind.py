#!/usr/bin/env python3
"""Instructions per relayed call: `ratewise serve` under `valgrind --tool=callgrind`, against the
benchmark's mock, N sequential non-streaming calls (ledger off, memory store). Instruction
counts are deterministic, so a change to the request path shows here even when the machine's
timings are too noisy to tell.

    CARGO_TARGET_DIR=target/profiling CARGO_PROFILE_RELEASE_STRIP=none \\
      CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p ratewise-cli
    cargo build --release -p ratewise-bench-gateway
    python3 bench/gateway/callgrind.py --ratewise-bin target/profiling/release/ratewise [--calls 1000]

Prints the instructions per call; the profile stays in target/bench-gateway/callgrind.out.*
for `callgrind_annotate --inclusive=yes`. Needs valgrind. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (the benchmark's mock, load generator and helpers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratewise-bin", default=str(R.RATEWISE), help="the ratewise binary (with symbols for a readable profile)")
    ap.add_argument("--calls", type=int, default=1000, help="measured calls (rw-loadgen sends a tenth more first, unmeasured)")
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind is required", file=sys.stderr)
        return 1
    R.WORK.mkdir(parents=True, exist_ok=True)
    out = R.WORK / "callgrind.out"
    for old in R.WORK.glob("callgrind.out*"):
        old.unlink()
    mock, mock_port = R.start_mock()
    port = R.free_port()
    config = {
        "providers": [{"name": "p", "model": "gpt-bench", "quotas": [
            {"dimension": "requests", "limit": 100_000_000, "window": "minute"},
            {"dimension": "tokens", "limit": 100_000_000_000, "window": "minute"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
        "gateway": {"listen": f"127.0.0.1:{port}", "ledger": False,
                    "upstreams": {"p": {"api": "openai", "base_url": f"http://127.0.0.1:{mock_port}/v1"}}},
    }
    path = R.WORK / "callgrind.json"
    path.write_text(json.dumps(config))
    gw = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", a.ratewise_bin, "serve", str(path)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t = R.Target("ratewise", f"http://127.0.0.1:{port}/v1/chat/completions", "chat")
        deadline = time.monotonic() + 120
        while True:
            try:
                R.http("POST", t.url, {"model": "chat", "messages": R.PROMPT, "max_tokens": 16}, timeout=30)
                break
            except Exception:
                if time.monotonic() > deadline or gw.poll() is not None:
                    raise RuntimeError("the gateway under valgrind did not answer")
                time.sleep(0.5)
        R.load(t, sequential=100)  # warm: pools, caches, lazy statics
        subprocess.run(["callgrind_control", "-z", str(gw.pid)], check=True, capture_output=True)
        res = R.load(t, sequential=a.calls)
        subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
    finally:
        try:
            gw.send_signal(signal.SIGTERM)
            gw.wait(timeout=60)
        except subprocess.TimeoutExpired:
            gw.kill()
            gw.wait()
        finally:
            mock.stop()
    sent = a.calls + R.sequential_warmup(a.calls)
    dumps = sorted(R.WORK.glob("callgrind.out.*"))
    totals = []
    for d in dumps:
        text = subprocess.run(["callgrind_annotate", str(d)], capture_output=True, text=True).stdout
        m = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text)
        if m:
            totals.append((d, int(m.group(1).replace(",", ""))))
    if not totals or res["ok"] != res["count"]:
        print(f"no profile, or failed calls: {res}", file=sys.stderr)
        return 1
    dump, total = totals[0]  # the explicit dump (-d): from the zeroing to the last call
    print(json.dumps({"calls": sent, "instructions": total, "per_call": round(total / sent),
                      "profile": str(dump)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
