#!/usr/bin/env python3
"""Instructions the Python SDK wrappers add per call, counted by valgrind (deterministic, where
``sdk_overhead.py``'s timings move by tens of µs from run to run on a shared machine).

The calls are ``sdk_overhead.py``'s (no network: an ``httpx2.MockTransport`` answers at once).
The script runs itself under ``valgrind --tool=callgrind``; after a warm-up, it zeroes the
counters, makes N calls of one kind, dumps, and so on for each kind, so that the interpreter's
start and the imports are not counted. Printed: instructions per call of the bare SDK call, and
what the wrapper adds over it; for the SDKs' ``with_raw_response`` path (which the wrappers use
to read the headers) what it adds over the plain call.

    target/py-venv/bin/python bench/sdk_instructions.py [--calls 50]

Needs valgrind (``callgrind_control``) and the SDKs, as ``sdk_overhead.py``. About 3 minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = ["nothing", "openai", "openai wrapped", "openai raw", "anthropic", "anthropic wrapped", "anthropic raw"]


def child(calls: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import anthropic
    import httpx2
    import openai
    from sdk_overhead import (ANTHROPIC_BODY, ANTHROPIC_HEADERS, MESSAGES, OPENAI_BODY, OPENAI_HEADERS,
                              engine_for, responder)

    import ratewise

    sdk = openai.OpenAI(api_key="sk-bench", base_url="http://bench.invalid/v1", max_retries=0,
                        http_client=httpx2.Client(transport=httpx2.MockTransport(responder(OPENAI_BODY, OPENAI_HEADERS))))
    wrapped = ratewise.wrap_openai(sdk, engine_for("gpt-a"))
    an = anthropic.Anthropic(api_key="sk-ant-bench", base_url="http://bench.invalid", max_retries=0,
                             http_client=httpx2.Client(transport=httpx2.MockTransport(
                                 responder(ANTHROPIC_BODY, ANTHROPIC_HEADERS))))
    anw = ratewise.wrap_anthropic(an, engine_for("claude-a"))
    system, turns = MESSAGES[0]["content"], MESSAGES[1:]
    calls_of = {
        "nothing": lambda: None,
        "openai": lambda: sdk.chat.completions.create(model="gpt-a", messages=MESSAGES, max_completion_tokens=100),
        "openai wrapped": lambda: wrapped.chat.completions.create(model="chat", messages=MESSAGES,
                                                                  max_completion_tokens=100),
        "openai raw": lambda: sdk.chat.completions.with_raw_response.create(
            model="gpt-a", messages=MESSAGES, max_completion_tokens=100).parse(),
        "anthropic": lambda: an.messages.create(model="claude-a", max_tokens=100, messages=turns, system=system),
        "anthropic wrapped": lambda: anw.messages.create(model="chat", max_tokens=100, messages=turns, system=system),
        "anthropic raw": lambda: an.messages.with_raw_response.create(
            model="claude-a", max_tokens=100, messages=turns, system=system).parse(),
    }
    for _ in range(30):
        for call in calls_of.values():
            call()
    pid = str(os.getpid())
    for i, kind in enumerate(KINDS):
        call = calls_of[kind]
        subprocess.run(["callgrind_control", "-z", pid], capture_output=True, check=True)
        for _ in range(calls):
            call()
        subprocess.run(["callgrind_control", f"--dump=kind{i}", pid], capture_output=True, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="calls of each kind (default 50)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.calls)
        return 0
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind (with callgrind_control) is required", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                        __file__, "--child", "--calls", str(args.calls)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        total = {}
        for dump in Path(tmp).glob("cg.out.*"):
            text = dump.read_text(errors="replace")
            trigger = re.search(r"^desc: Trigger: dump kind(\d+)\s*$", text, re.M)
            summary = re.search(r"^summary: (\d+)", text, re.M)
            if trigger is not None and summary is not None:
                total[KINDS[int(trigger.group(1))]] = int(summary.group(1))
    missing = [k for k in KINDS if k not in total]
    if missing:
        print(f"no dump for {missing}", file=sys.stderr)
        return 1
    per = {k: (total[k] - total["nothing"]) / args.calls for k in KINDS}
    print(f"instructions per call (valgrind, {args.calls} calls of each kind, after a warm-up)")
    for sdk in ("openai", "anthropic"):
        print(f"{sdk:10} bare {per[sdk]:>11,.0f}   wrapper adds {per[sdk + ' wrapped'] - per[sdk]:>8,.0f}"
              f"   (of which the SDK's with_raw_response path {per[sdk + ' raw'] - per[sdk]:>7,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
