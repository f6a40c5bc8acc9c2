"""The Python conformance runner: one test per scenario id (conformance/README.md).

Runs against the installed ``ratewise`` package. Reads scenarios from
``RATEWISE_CONFORMANCE_DIR`` (default: the repository's conformance/scenarios) and, when
``RATEWISE_TRANSCRIPT`` names a file, writes the transcript there at the end of the session,
scenarios in discovery order.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import ratewise

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = Path(os.environ.get("RATEWISE_CONFORMANCE_DIR") or ROOT / "conformance" / "scenarios")


def discover() -> List[Tuple[int, str, Dict[str, Any]]]:
    files = sorted(
        (p for p in SCENARIO_DIR.rglob("*.json") if p.is_file()),
        key=lambda p: p.relative_to(SCENARIO_DIR).as_posix().encode(),
    )
    found = []
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        for scenario in doc.get("scenarios", []):
            found.append((len(found), path.relative_to(SCENARIO_DIR).as_posix(), scenario))
    return found


SCENARIOS = discover()
TRANSCRIPT: Dict[int, List[str]] = {}


def canonical(value: Any) -> str:
    """Canonical JSON (docs/design.md section 12): keys sorted, no whitespace, floats with 9 decimals."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.9f}"
        return "0.000000000" if text == "-0.000000000" else text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{canonical(value[k])}" for k in sorted(value)) + "}"
    raise TypeError(f"cannot write {type(value).__name__} in a transcript")


def line(scenario_id: str, op: str, step: Optional[int], result: Dict[str, Any]) -> str:
    return canonical({"op": op, "result": result, "scenario": scenario_id, "step": step})


def error_result(err: ratewise.RatewiseError) -> Dict[str, Any]:
    if isinstance(err, ratewise.NoAvailableProviderError):
        return {
            "error": err.code,
            "retry_after_ms": err.retry_after_ms,
            "skipped": [{"provider": p, "reason": r} for p, r in err.skipped],
        }
    return {"error": err.code}


def decision_result(d: ratewise.Decision) -> Dict[str, Any]:
    return {
        "provider": d.provider,
        "model": d.model,
        "score": d.score,
        "breakdown": d.breakdown,
        "alternatives": [p for p, _ in d.alternatives],
        "alternative_scores": [s for _, s in d.alternatives],
        "skipped": [{"provider": p, "reason": r} for p, r in d.skipped],
    }


class Unsupported(Exception):
    pass


def polled(permits: Dict[str, int], report: Tuple[List[int], List[int]]) -> Dict[str, Any]:
    names = {v: k for k, v in permits.items()}
    granted, expired = report
    return {"granted": [names.get(i, i) for i in granted], "expired": [names.get(i, i) for i in expired]}


def run_step(engine: ratewise.Engine, clock: ratewise.ManualClock, permits: Dict[str, int], step: Dict[str, Any]) -> Dict[str, Any]:
    op = step.get("op")
    request = dict(
        lane=step.get("lane"),
        input_tokens=step.get("input_tokens", 0),
        output_tokens=step.get("output_tokens", 0),
        exclude=step.get("exclude"),
    )
    if op == "advance":
        clock.advance(step.get("ms", 0))
        return {}
    if op == "select":
        return decision_result(engine.select(step.get("capability"), **request))
    if op == "acquire":
        permit = engine.acquire(step.get("capability"), **request)
        if "permit" in step:
            permits[step["permit"]] = permit.id
        return decision_result(permit.decision)
    if op == "complete":
        report = engine.complete(
            permits.get(step.get("permit"), 0),
            step.get("status"),
            latency_ms=step.get("latency_ms", 0),
            input_tokens=step.get("input_tokens"),
            output_tokens=step.get("output_tokens"),
            cached_input_tokens=step.get("cached_input_tokens"),
            cache_write_input_tokens=step.get("cache_write_input_tokens"),
            retry_after_ms=step.get("retry_after_ms"),
            headers=step.get("headers"),
        )
        return polled(permits, report)
    if op == "cancel":
        return polled(permits, engine.cancel(permits.get(step.get("permit"), 0)))
    if op == "enqueue":
        ticket, granted, expired = engine.enqueue(step.get("capability"), timeout_ms=step.get("timeout_ms", 0), **request)
        if "ticket" in step:
            permits[step["ticket"]] = ticket
        return polled(permits, (granted, expired))
    if op == "poll":
        return polled(permits, engine.poll())
    if op == "observe":
        engine.observe(
            step.get("provider"),
            step.get("status"),
            latency_ms=step.get("latency_ms", 0),
            requests=step.get("requests", 1),
            input_tokens=step.get("input_tokens", 0),
            output_tokens=step.get("output_tokens", 0),
            cached_input_tokens=step.get("cached_input_tokens"),
            cache_write_input_tokens=step.get("cache_write_input_tokens"),
            retry_after_ms=step.get("retry_after_ms"),
            headers=step.get("headers"),
        )
        return {}
    if op == "estimate":
        return {"value": ratewise.estimate_tokens(step.get("messages"))}
    if op == "headers":
        engine.sync_headers(step.get("provider"), step.get("headers") or {})
        return {}
    if op == "health":
        return {"value": engine.health(step.get("provider"))}
    if op == "circuit":
        return {"value": engine.circuit(step.get("provider"))}
    if op == "remaining":
        return {"value": engine.remaining(step.get("provider"), step.get("dimension"))}
    if op == "snapshot":
        snap = engine.snapshot()
        return {"value": {pointer: resolve(snap, pointer) for pointer in (step.get("expect") or {})}}
    if op == "upsert_provider":
        engine.upsert_provider(step.get("provider"))
        return {}
    if op == "upsert_capability":
        engine.upsert_capability(step.get("capability"))
        return {}
    if op == "remove_provider":
        engine.remove_provider(step.get("provider"))
        return {}
    if op == "remove_capability":
        engine.remove_capability(step.get("capability"))
        return {}
    raise Unsupported(f"op {op!r} is not supported by this runner")


def resolve(doc: Any, pointer: str) -> Any:
    """A JSON pointer (RFC 6901) into `doc`; None when it does not resolve."""
    node = doc
    for raw in pointer.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def matches(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return want == got
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and math.isclose(got, want, rel_tol=0, abs_tol=1e-9)
    if isinstance(want, dict):
        if set(want) == {"min", "max"} and isinstance(got, (int, float)) and not isinstance(got, bool):
            return want["min"] <= got <= want["max"]
        return isinstance(got, dict) and all(matches(v, got.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(matches(a, b) for a, b in zip(want, got))
    return want == got


def check(op: str, expect: Dict[str, Any], result: Dict[str, Any]) -> Optional[str]:
    if "error" in result and "error" not in expect:
        return "unexpected error"
    if op == "snapshot":
        values = result.get("value", {})
        for pointer, want in expect.items():
            if not matches(want, values.get(pointer)):
                return f"{pointer}: expected {want!r}, got {values.get(pointer)!r}"
        return None
    for key, want in expect.items():
        if not matches(want, result.get(key)):
            return f"{key}: expected {want!r}, got {result.get(key)!r}"
    return None


def run_scenario(scenario: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    sid = scenario["id"]
    lines: List[str] = []
    failures: List[str] = []
    setup = dict(scenario.get("setup", {}))
    start_ms = setup.pop("start_ms", 0)
    clock = ratewise.ManualClock(start_ms)
    expected = scenario.get("expect_error")
    try:
        engine = ratewise.Engine(setup, clock=clock)
    except ratewise.RatewiseError as err:
        lines.append(line(sid, "construct", None, {"error": err.code}))
        if expected != err.code:
            failures.append(f"construction failed with {err.code} ({err}), expected {expected}")
        return lines, failures
    if expected is not None:
        failures.append(f"construction succeeded, expected {expected}")
        return lines, failures
    permits: Dict[str, int] = {}
    for index, step in enumerate(scenario.get("steps", [])):
        op = step.get("op", "")
        try:
            result = run_step(engine, clock, permits, step)
        except ratewise.RatewiseError as err:
            result = error_result(err)
        except Unsupported as err:
            failures.append(f"step {index}: {err}")
            result = {}
        lines.append(line(sid, op, index, result))
        problem = check(op, step.get("expect") or {}, result)
        if problem:
            failures.append(f"step {index} ({op}): {problem}; actual {canonical(result)}")
    return lines, failures


@pytest.mark.parametrize("order,file,scenario", SCENARIOS, ids=[s["id"] for _, _, s in SCENARIOS])
def test_scenario(order: int, file: str, scenario: Dict[str, Any]) -> None:
    lines, failures = run_scenario(scenario)
    TRANSCRIPT[order] = lines
    assert not failures, f"{file}: " + "\n  ".join(failures)


def test_scenarios_found() -> None:
    assert SCENARIOS, f"no scenarios under {SCENARIO_DIR}"


@pytest.fixture(scope="session", autouse=True)
def write_transcript():
    yield
    target = os.environ.get("RATEWISE_TRANSCRIPT")
    if target:
        text = "".join(l + "\n" for order in sorted(TRANSCRIPT) for l in TRANSCRIPT[order])
        Path(target).write_text(text, encoding="utf-8")
