"""Cross-process, cross-language accuracy of the Redis store (issue 8).

Usage: run.py --redis-port PORT --python PY --node-package DIR --c-worker EXE --rust-worker EXE
              [--seconds S] [--limit N]

At least four processes -- Rust, Python, Node.js and C -- hammer one capability whose only quota
is N requests per second, for S seconds (at least three windows), through one Redis. They start
together at a time on the Redis server's clock. Every worker's engine runs on that clock, and the
script is always given the engine's clock, so the bound is exact in that time:

    admitted <= N + floor((T - start) * N / 1000)

where the bucket is full (N) at `start` (nobody touches it before), and T is the latest clock
reading any worker gave the store (bounded by each worker's clock reading after its last call).
Prints both figures; fails on any over-admission or on utilisation below 98%.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--python", required=True, help="a Python with the ratewise wheel installed")
    ap.add_argument("--node-package", required=True, help="the installed npm package's folder")
    ap.add_argument("--c-worker", required=True)
    ap.add_argument("--rust-worker", required=True)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args()
    assert args.seconds >= 3, "at least three windows"
    here = pathlib.Path(__file__).resolve().parent
    prefix = f"fleet-{os.getpid()}"
    config = {
        "providers": [{"name": "gpt", "quotas": [{"dimension": "requests", "limit": args.limit, "window": "second"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}],
        "store": {"kind": "redis", "url": f"redis://127.0.0.1:{args.redis_port}/0", "prefix": prefix,
                  "on_error": "closed", "timeout_ms": 1000},
    }
    server = subprocess.run(["redis-cli", "-p", str(args.redis_port), "time"], capture_output=True, text=True, check=True)
    secs, micros = server.stdout.split()
    # Start in 4 s: time for every interpreter to start and build its engine.
    start_ms = int(secs) * 1000 + int(micros) // 1000 + 4000
    stop_ms = start_ms + args.seconds * 1000
    with tempfile.TemporaryDirectory() as tmp:
        config_file = pathlib.Path(tmp) / "fleet.json"
        config_file.write_text(json.dumps(config))
        times = [str(config_file), str(start_ms), str(stop_ms)]
        env = dict(os.environ, RATEWISE_NODE_PACKAGE=args.node_package)
        commands = [
            [args.rust_worker, *times],
            [args.python, str(here / "worker.py"), *times],
            ["node", str(here / "worker.mjs"), *times],
            [args.c_worker, *times],
        ]
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True, env=env) for c in commands]
        results = []
        for cmd, p in zip(commands, procs):
            out, _ = p.communicate(timeout=60 + args.seconds)
            if p.returncode != 0:
                print(f"worker failed ({p.returncode}): {' '.join(cmd)}", file=sys.stderr)
                return 1
            results.append(json.loads(out.strip().splitlines()[-1]))
    admitted = sum(r["admitted"] for r in results)
    t = max(r["end_ms"] for r in results)
    allowed = args.limit + (t - start_ms) * args.limit // 1000
    utilisation = admitted / allowed
    for r in results:
        print(f"  {r['lang']:>6}: {r['admitted']:5d} admitted (store mode {r['mode']})")
    print(f"fleet of {len(results)} processes, {args.limit} requests/s for {args.seconds} s: "
          f"admitted {admitted}, the limit allows {allowed} (over-admission {max(0, admitted - allowed)}, "
          f"utilisation {utilisation:.2%})")
    ok = True
    if admitted > allowed:
        print("FAIL: over-admission", file=sys.stderr)
        ok = False
    if utilisation < 0.98:
        print("FAIL: utilisation below 98%", file=sys.stderr)
        ok = False
    if any(r["mode"] != "shared" for r in results) or any(r["admitted"] == 0 for r in results):
        print("FAIL: every worker must have shared the store and been admitted", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
