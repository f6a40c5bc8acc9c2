"""Chaos soak of the Redis store (issue 15): 8 processes in two languages share one capability
through one redis-server while a chaos loop restarts, pauses, stops, flushes it and kills its
connections at random.

Usage: run.py --python PY --rust-worker EXE [--seconds 60] [--seed 1] [--rust 4] [--py 4]
              [--max-faults N] [--dump FILE]

run.py starts its own redis-server on a free loopback port (no persistence) and, through it,
workers (`core/examples/soak_worker.rs`, `tests/soak/worker.py`) that loop acquire -> hold
1-20 ms -> complete on one provider with `requests` 100 per second (fixed window) and
`concurrency` 4, store `on_error: local`, `local_share: 0.25`, `timeout_ms: 50`. Every 1.5-4 s
(seeded) the chaos loop does one of: an empty restart (`shutdown nosave`, start again on the
same port), `CLIENT PAUSE <300-1500> ALL`, `CLIENT KILL TYPE normal`, `FLUSHALL`, SIGSTOP for
200-800 ms then SIGCONT.

Each worker prints one JSON line: `records`, one per admission, `[acquire_ms, complete_ms,
mode, acquire_start_us, acquire_end_us, complete_start_us, complete_end_us]` -- the engine's
clock (`now_ms()`, read just before the call) relative to START_MS, the store mode right after
the acquire (0 shared, 1 local, 2 open, 3 unavailable), and the host's wall clock (the Redis
server's clock: one host) in µs since START_MS around both calls; and `longest_call_us`,
`degraded_s`, `degraded_spans_us`, `resets_at`, `resets`, `unsent`, `unsent_dropped`, `errors`.

The bounds (docs/design.md §9), checked without any slack for clock extrapolation:

- per 1 s fixed window on the engine clock (the clock the script is given): admitted <=
  limit + floor(local_share * limit) for each worker that admitted in local mode in that window
  + limit for each store loss (FLUSHALL or empty restart) in that window. A window with nothing
  degraded and no loss must hold exactly admitted <= limit. The script's time for an acquire
  lies between the engine clock read just before and just after the call; an admission whose
  two readings fall in two windows ("straddling") belongs to one of them, so the check counts
  it in neither: admitted - straddling <= bound. (The script refuses a call whose time is in a
  fixed window another engine's clock has already left, so each admission is in the window of
  its own caller's clock.)
- in flight, at every instant: <= concurrency + floor(local_share * concurrency) for each worker
  holding a local permit + the shared permits held across a loss (Redis forgot their slots).
  Measured on the wall clock over the span each permit certainly held its slot (from the end
  of its acquire to the start of its complete), so it never counts a false overlap; the same
  sweep on the engine-clock stamps is printed for comparison (its ms stamps cannot order a
  release and an acquire in the same ms).
- the longest single call is printed against 1.5 x timeout_ms + 20 ms and fails beyond 1 s
  (the two cores are shared: scheduling delays land in the wall-clock durations).

Also printed, not failed on: shared admissions per window of the server's own clock (the wall
clock when the acquire certainly ran), which shows how far the engines' clocks disagree.
Exits non-zero on any bound exceeded, a worker failure, an unexpected error or mode.
"""

import argparse
import json
import math
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

LOSSES = ("restart", "flushall")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_us() -> int:
    return time.time_ns() // 1000


class Redis:
    """A redis-server child process on a fixed port, and a minimal RESP client for it."""

    def __init__(self, port: int, folder: pathlib.Path, binary: str) -> None:
        self.port, self.folder, self.binary = port, folder, binary
        self.proc: "subprocess.Popen[bytes] | None" = None
        self.stopped = False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", str(self.port),
             "--daemonize", "no", "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def cmd(self, *args: str, timeout: float = 2.0):
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(b"".join([f"*{len(args)}\r\n".encode()]
                               + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]))
            f = s.makefile("rb")
            return self._reply(f)

    def _reply(self, f):
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RuntimeError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply(f) for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def shutdown(self) -> None:
        """`shutdown nosave`: the state is gone."""
        try:
            self.cmd("SHUTDOWN", "NOSAVE")
        except (OSError, ConnectionError):
            pass  # the server closes the connection without a reply
        assert self.proc is not None
        self.proc.wait(timeout=10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)
        self.stopped = sig == signal.SIGSTOP

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.stopped:
            self.signal(signal.SIGCONT)
        try:
            self.shutdown()
        except Exception:
            self.proc.kill()
            self.proc.wait()


def chaos(redis: Redis, rng: random.Random, start_ms: int, stop_ms: int, max_faults: int) -> list:
    """Injects faults until STOP_MS - 2.5 s or MAX_FAULTS; returns them as `[kind, param,
    begin_us, end_us, healthy_us]` (wall clock relative to START_MS): the fault's command was sent
    at begin, had done its work at end (for a restart or FLUSHALL: the state is gone), and Redis
    answered again from healthy on."""
    faults: list = []
    base = start_ms * 1000
    next_at = start_ms / 1000 + rng.uniform(1.5, 4.0)
    while len(faults) < max_faults and next_at < stop_ms / 1000 - 2.5:
        time.sleep(max(0.0, next_at - time.time()))
        kind = rng.choice(["restart", "pause", "kill", "flushall", "sigstop"])
        t0 = now_us()
        if kind == "restart":
            redis.shutdown()
            t1 = now_us()
            redis.start()
            healthy = now_us()
            param = f"down {(healthy - t0) / 1000:.0f} ms"
        elif kind == "pause":
            ms = rng.randint(300, 1500)
            redis.cmd("CLIENT", "PAUSE", str(ms), "ALL")
            t1 = now_us()
            healthy = t1 + ms * 1000
            param = f"{ms} ms"
            time.sleep(ms / 1000)
        elif kind == "kill":
            killed = redis.cmd("CLIENT", "KILL", "TYPE", "normal")
            t1 = healthy = now_us()
            param = f"{killed} connections"
        elif kind == "flushall":
            redis.cmd("FLUSHALL")
            t1 = healthy = now_us()
            param = ""
        else:
            ms = rng.randint(200, 800)
            redis.signal(signal.SIGSTOP)
            time.sleep(ms / 1000)
            redis.signal(signal.SIGCONT)
            t1 = healthy = now_us()
            param = f"{ms} ms"
        faults.append([kind, param, t0 - base, t1 - base, healthy - base])
        print(f"  fault at +{(t0 - base) / 1e6:6.3f} s: {kind} {param}", flush=True)
        next_at = time.time() + rng.uniform(1.5, 4.0)
    return faults


def sweep(intervals: list, conc: int, local_conc: int) -> tuple:
    """The worst moment for in_flight - bound. `intervals`: (begin, end, kind, worker,
    forgotten_from), kind 'shared' or 'local', each holding [begin, end). A worker holding a
    local permit raises the bound by its local share; a shared permit held across a loss raises
    it by one from the loss on (Redis forgot its slot). Evaluated after all the events of one
    instant. Returns (excess, in flight then, bound then, time, max in flight)."""
    events = []
    for i, (b, e, kind, w, forgotten) in enumerate(intervals):
        if e <= b:
            continue
        events.append((b, 1, i))
        events.append((e, 0, i))
        if forgotten is not None and forgotten < e:
            events.append((max(forgotten, b), 2, i))
    events.sort()
    live: set = set()
    forgotten_live: set = set()
    local_by_worker: dict = {}
    best = (-(10**9), 0, 0, 0)
    max_in_flight = 0
    for j, (t, what, i) in enumerate(events):
        kind, w = intervals[i][2], intervals[i][3]
        if what == 0:
            live.discard(i)
            forgotten_live.discard(i)
            if kind == "local":
                local_by_worker[w] -= 1
        elif what == 1:
            live.add(i)
            if kind == "local":
                local_by_worker[w] = local_by_worker.get(w, 0) + 1
        elif i in live:
            forgotten_live.add(i)
        if j + 1 < len(events) and events[j + 1][0] == t:
            continue  # the rest of this instant first
        local_holders = sum(1 for n in local_by_worker.values() if n > 0)
        n = len(live)
        max_in_flight = max(max_in_flight, n)
        bound = conc + local_holders * local_conc + len(forgotten_live)
        if n - bound > best[0]:
            best = (n - bound, n, bound, t)
    return best[0], best[1], best[2], best[3], max_in_flight


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True, help="a Python with the ratewise wheel installed")
    ap.add_argument("--rust-worker", required=True, help="target/release/examples/soak_worker")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rust", type=int, default=4, help="Rust workers")
    ap.add_argument("--py", type=int, default=4, help="Python workers")
    ap.add_argument("--limit", type=int, default=100, help="requests per second")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--local-share", type=float, default=0.25)
    ap.add_argument("--timeout-ms", type=int, default=50)
    ap.add_argument("--max-faults", type=int, default=100)
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--dump", help="write the workers' output and the faults to this JSON file")
    args = ap.parse_args()
    assert args.seconds >= 5, "at least 5 s"
    limit, conc, share = args.limit, args.concurrency, args.local_share
    local_limit = math.floor(share * limit + 1e-9)
    here = pathlib.Path(__file__).resolve().parent
    port = free_port()
    config = {
        "providers": [{"name": "gpt", "quotas": [
            {"dimension": "requests", "limit": limit, "window": "second", "algorithm": "fixed_window"},
            {"dimension": "concurrency", "limit": conc}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}],
        "store": {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0", "prefix": f"soak-{os.getpid()}",
                  "on_error": "local", "local_share": share, "timeout_ms": args.timeout_ms},
    }
    print(f"soak: {args.rust} Rust + {args.py} Python workers for {args.seconds} s, seed {args.seed}; "
          f"requests {limit}/s fixed window, concurrency {conc}, on_error local, local_share {share}, "
          f"timeout_ms {args.timeout_ms}; redis-server on 127.0.0.1:{port}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ratewise-soak-") as tmp:
        folder = pathlib.Path(tmp)
        redis = Redis(port, folder, args.redis_server)
        redis.start()
        try:
            return soak(args, config, folder, redis, here, limit, local_limit, conc)
        finally:
            redis.close()


def soak(args, config, folder, redis, here, limit, local_limit, conc) -> int:
    config_file = folder / "soak.json"
    config_file.write_text(json.dumps(config))
    secs, micros = redis.cmd("TIME")
    # Start in 4 s: time for every interpreter to start and build its engine.
    start_ms = int(secs) * 1000 + int(micros) // 1000 + 4000
    stop_ms = start_ms + args.seconds * 1000
    workers = []
    for i in range(args.rust + args.py):
        seed = str(args.seed * 1000 + i)
        if i < args.rust:
            cmd = [args.rust_worker, str(config_file), str(start_ms), str(stop_ms), seed]
            name = f"rust#{i}"
        else:
            cmd = [args.python, str(here / "worker.py"), str(config_file), str(start_ms), str(stop_ms), seed]
            name = f"python#{i}"
        out = open(folder / f"worker{i}.json", "w+")
        workers.append((name, cmd, out, subprocess.Popen(cmd, stdout=out, stdin=subprocess.DEVNULL)))
    print(f"chaos from +0 s to +{args.seconds - 2.5:.1f} s (server clock, relative to the start):", flush=True)
    try:
        faults = chaos(redis, random.Random(args.seed), start_ms, stop_ms, args.max_faults)
    except BaseException:
        for _, _, out, p in workers:
            p.kill()
            p.wait()
            out.close()
        raise
    results = []
    failed = []
    for name, cmd, out, p in workers:
        try:
            rc = p.wait(timeout=max(0.0, stop_ms / 1000 - time.time()) + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timeout"
        out.seek(0)
        lines = out.read().strip().splitlines()
        out.close()
        if rc != 0 or not lines:
            failed.append(f"{name} failed ({rc}): {' '.join(cmd)}")
            results.append(None)
            continue
        r = json.loads(lines[-1])
        r["name"] = name
        results.append(r)
    if args.dump:
        pathlib.Path(args.dump).write_text(json.dumps({"start_ms": start_ms, "stop_ms": stop_ms, "faults": faults,
                                                       "config": config, "workers": results}))
    for f in failed:
        print(f"FAIL: {f}", file=sys.stderr)
    ok_results = [r for r in results if r is not None]
    ok = not failed and analyse(args, ok_results, faults, start_ms, stop_ms, limit, local_limit, conc)
    return 0 if ok else 1


def analyse(args, results, faults, start_ms, stop_ms, limit, local_limit, conc) -> bool:
    ok = True
    W = 1000
    base_us = start_ms * 1000
    first_k, last_k = start_ms // W, (stop_ms - 1) // W
    losses = [(b, e) for kind, _, b, e, _ in faults if kind in LOSSES]

    def windows_of_us(b_us: int, e_us: int) -> range:
        return range((base_us + b_us) // (W * 1000), (base_us + e_us) // (W * 1000) + 1)

    resets_in: dict = {}
    for b, e in losses:
        for k in windows_of_us(b, e):
            resets_in[k] = resets_in.get(k, 0) + 1
    faults_in: dict = {}
    for kind, _, b, _, _ in faults:
        faults_in.setdefault((base_us + b) // (W * 1000), []).append(kind)

    # Admissions per window of the engine clock, and shared ones per window of the server clock.
    per: dict = {}
    server_shared: dict = {}
    bad_modes = 0
    for wi, r in enumerate(results):
        for rec in r["records"]:
            e_acq, _, mode, w0, w1, _, _, e_after = rec
            k = (start_ms + e_acq) // W
            cell = per.setdefault(k, {"shared": 0, "local": 0, "by": {}, "edge": 0})
            # The script's time lies between the engine clock just before and just after the
            # call: when those fall in two windows, the admission belongs to one of them.
            if (start_ms + e_after) // W != k:
                cell["edge"] += 1
                nxt = per.setdefault(k + 1, {"shared": 0, "local": 0, "by": {}, "edge": 0})
                nxt["edge_in"] = nxt.get("edge_in", 0) + 1
            key = "shared" if mode == 0 else "local"
            cell[key] += 1
            by = cell["by"].setdefault(wi, [0, 0])
            by[0 if mode == 0 else 1] += 1
            if mode not in (0, 1):
                bad_modes += 1
            if mode == 0:
                k0, k1 = (base_us + w0) // (W * 1000), (base_us + w1) // (W * 1000)
                if k0 == k1:
                    server_shared[k0] = server_shared.get(k0, 0) + 1

    print(f"\nper window (1 s fixed windows of the engine clock; bound = {limit} + {local_limit} per worker that "
          f"admitted locally + {limit} per store loss):")
    print("   t(s)  admitted  shared  local  straddling  local-workers  losses  bound  faults")
    over = []
    clean = clean_max = 0
    max_local_one = 0
    for k in range(first_k, last_k + 1):
        cell = per.get(k, {"shared": 0, "local": 0, "by": {}, "edge": 0})
        local_workers = sum(1 for s, loc in cell["by"].values() if loc > 0)
        max_local_one = max([max_local_one] + [loc for _, loc in cell["by"].values()])
        resets = resets_in.get(k, 0)
        bound = limit + local_limit * local_workers + limit * resets
        admitted = cell["shared"] + cell["local"]
        # Certainly in this window: all but those whose call straddled its end.
        certain = admitted - cell.get("edge", 0)
        mark = ""
        if certain > bound:
            over.append((k, admitted, bound))
            mark = "  OVER"
        if local_workers == 0 and resets == 0:
            clean += 1
            clean_max = max(clean_max, admitted)
        print(f"  {(k * W - start_ms) / 1000:5.1f}  {admitted:8d}  {cell['shared']:6d}  {cell['local']:5d}  "
              f"{cell.get('edge', 0):10d}  "
              f"{local_workers:13d}  {resets:6d}  {bound:5d}  {','.join(faults_in.get(k, []))}{mark}")
    for k, admitted, bound in over[:5]:
        explain(results, k, W, start_ms, admitted, bound)

    # Shared admissions per window of the server's clock (printed, not failed on).
    server_over = [(k, n, limit + limit * resets_in.get(k, 0)) for k, n in sorted(server_shared.items())
                   if n > limit + limit * resets_in.get(k, 0)]

    # In flight: certain holding spans on the wall clock; the engine-clock stamps for comparison.
    wall, engine = [], []
    for wi, r in enumerate(results):
        for e_acq, e_cmp, mode, w0, w1, w2, w3, _ in r["records"]:
            kind = "shared" if mode == 0 else "local"
            forgotten_w = forgotten_e = None
            if kind == "shared":
                for b, e in losses:
                    if e >= w0 and b <= w3:  # the loss may have caught this permit's slot
                        forgotten_w = b if forgotten_w is None else min(forgotten_w, b)
                if forgotten_w is not None:
                    forgotten_e = forgotten_w // 1000 - 1
            wall.append((w1, w2, kind, wi, forgotten_w))
            engine.append((e_acq, e_cmp, kind, wi, forgotten_e))
    local_conc = math.floor(args.local_share * conc + 1e-9)
    excess, n_at, bound_at, t_at, max_wall = sweep(wall, conc, local_conc)
    _, e_n, e_bound, e_t, max_engine = sweep(engine, conc, local_conc)

    total = sum(len(r["records"]) for r in results)
    shared = sum(1 for r in results for rec in r["records"] if rec[2] == 0)
    longest = max(results, key=lambda r: r["longest_call_us"])
    target_ms = 1.5 * args.timeout_ms + 20
    errors: dict = {}
    for r in results:
        for key, n in r["errors"].items():
            errors[f"{r['name']} {key}"] = n

    print("\nsummary:")
    print(f"  faults: {len(faults)} ("
          + ", ".join(f"{k} {sum(1 for f in faults if f[0] == k)}" for k in ("restart", "pause", "kill", "flushall", "sigstop"))
          + f"); store losses (restart, flushall): {len(losses)}")
    print(f"  admitted: {total} ({shared} shared, {total - shared} local) in {last_k - first_k + 1} windows; "
          f"{limit}/s x {args.seconds} s = {limit * args.seconds}")
    print(f"  windows over their bound (engine clock): {len(over)} of {last_k - first_k + 1}"
          + (": " + ", ".join(f"+{(k * W - start_ms) / 1000:.1f} s {a} > {b}" for k, a, b in over) if over else ""))
    print(f"  windows with nothing degraded and no loss: {clean}, max admitted in one {clean_max} (limit {limit}); "
          f"most local admissions by one worker in a window: {max_local_one} (local share {local_limit})")
    print(f"  shared admissions per window of the server clock (information): {len(server_over)} windows over "
          f"limit + losses" + (": " + ", ".join(f"+{(k * W - start_ms) / 1000:.1f} s {n} > {b}"
                                                for k, n, b in server_over) if server_over else ""))
    print(f"  max in flight: {max_wall} (wall clock, certain holding spans); worst against its bound: {n_at} in "
          f"flight vs bound {bound_at} at +{t_at / 1e6:.3f} s (limit {conc}, +{local_conc} per worker holding "
          f"a local permit, +1 per slot forgotten by a loss); over: {max(0, excess)}")
    print(f"  max in flight on the engine-clock stamps (information): {max_engine}; worst {e_n} vs bound {e_bound} "
          f"at +{e_t / 1000:.3f} s")
    print(f"  longest call: {longest['longest_call_us'] / 1000:.1f} ms ({longest['longest_call']}, {longest['name']} at "
          f"+{longest['longest_call_at_us'] / 1e6:.3f} s); 1.5 x timeout_ms + 20 = {target_ms:.0f} ms; calls over it: "
          + (", ".join(f"{r['name']} {r['slow_calls']}" for r in results if r["slow_calls"]) or "none")
          + " (fails beyond 1000 ms)")
    print("  seconds degraded: " + ", ".join(
        f"{r['name']} {r['degraded_s']:.2f} ({len(r['degraded_spans_us'])} spans, longest "
        f"{max([0] + [(e - b) / 1e6 for b, e in r['degraded_spans_us']]):.2f})" for r in results))
    lag, spurious = degraded_after(results, faults)
    print("  degraded after Redis answered again (max over workers, sampled at each call): "
          + ", ".join(f"{k} {v / 1000:.0f} ms" for k, v in lag.items())
          + f"; degraded spans with no fault in the second before: {spurious}")
    print(f"  resets seen (/store/resets; {len(losses)} store losses): " + ", ".join(f"{r['name']} {r['resets']}" for r in results)
          + f"; unsent_dropped: {sum(r['unsent_dropped'] or 0 for r in results)}"
          + f"; unsent at the end: {sum(r['unsent'] or 0 for r in results)}")
    print("  admitted per worker: " + ", ".join(
        f"{r['name']} {len(r['records'])} ({sum(1 for x in r['records'] if x[2] != 0)} local)" for r in results))
    print(f"  errors: {errors if errors else 'none'}")
    if over:
        print(f"FAIL: {len(over)} windows admitted more than their bound", file=sys.stderr)
        ok = False
    if excess > 0:
        print(f"FAIL: {n_at} permits in flight, bound {bound_at}", file=sys.stderr)
        ok = False
    if longest["longest_call_us"] > 1_000_000:
        print(f"FAIL: a call took {longest['longest_call_us'] / 1000:.0f} ms", file=sys.stderr)
        ok = False
    if errors or bad_modes:
        print(f"FAIL: unexpected errors {errors} or admissions in a mode other than shared/local ({bad_modes})",
              file=sys.stderr)
        ok = False
    if any(not r["records"] for r in results):
        print("FAIL: a worker was never admitted", file=sys.stderr)
        ok = False
    print("PASS" if ok else "FAIL", flush=True)
    return ok


def degraded_after(results, faults) -> tuple:
    """Per fault kind, the longest a worker stayed degraded after Redis answered again (each
    degraded span charged to the last fault begun before it); and the spans no fault explains."""
    lag: dict = {}
    spurious = 0
    for r in results:
        for b, e in r["degraded_spans_us"]:
            before = [f for f in faults if f[2] <= b]
            if not before or b - before[-1][4] > 1_000_000:
                spurious += 1
                continue
            kind, healthy = before[-1][0], before[-1][4]
            lag[kind] = max(lag.get(kind, 0), e - healthy)
    return lag, spurious


def explain(results, k, W, start_ms, admitted, bound) -> None:
    """Prints a violating window's admissions per worker: engine ms within the window, the
    server's ms (wall clock when the acquire returned) within it, and the mode."""
    lo = k * W
    print(f"\n  window +{(lo - start_ms) / 1000:.1f} s: {admitted} admitted, bound {bound}; per worker "
          f"(engine ms in the window / server ms of the acquire's reply, relative to the window; L = local):")
    for r in results:
        mine = [rec for rec in r["records"] if (start_ms + rec[0]) // W == k]
        if not mine:
            continue
        marks = " ".join(f"{start_ms + rec[0] - lo}/{(start_ms * 1000 + rec[4]) / 1000 - lo:.1f}"
                         + ("L" if rec[2] else "") for rec in mine)
        print(f"    {r['name']}: {len(mine)} ({sum(1 for x in mine if x[2])} local): {marks}")


if __name__ == "__main__":
    sys.exit(main())
