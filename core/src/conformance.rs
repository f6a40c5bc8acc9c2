//! The conformance-suite interpreter (docs/design.md §11): replays a scenario's steps on an engine with
//! a manual clock and writes each result as a canonical transcript line (§12). The Rust runner
//! (`core/tests/conformance.rs`) and `ratewise replay` both use it; the runner contract is
//! `conformance/README.md`.

use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use crate::{Config, Decision, Dimension, Engine, Error, ManualClock, Observation, Outcome, PermitId, Request, Status};

/// Every scenario under `dir`, files sorted by relative path, scenarios in file order.
pub fn discover(dir: &Path, errors: &mut Vec<String>) -> Vec<(String, Value)> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files);
    files.sort();
    let mut out = Vec::new();
    for rel in files {
        let path = dir.join(&rel);
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(doc) => {
                for s in doc
                    .get("scenarios")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    out.push((rel.clone(), s));
                }
            }
            Err(e) => errors.push(format!("{rel}: {e}")),
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(format!("no scenarios found under {}", dir.display()));
    }
    out
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "json")
            && let Ok(rel) = p.strip_prefix(root)
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// One step of a replayed scenario (the failed construction is step `None`, op `construct`).
#[derive(Debug, Clone)]
pub struct StepRun {
    /// The step's index in the scenario (`None` for construction).
    pub index: Option<usize>,
    /// The op name.
    pub op: String,
    /// The step's result, as written in the transcript.
    pub result: Value,
    /// The step's transcript line (docs/design.md §12); `None` when the step writes none (a
    /// construction that succeeded where the scenario expected it to fail).
    pub line: Option<String>,
    /// Why the result does not match the step's `expect`, if it does not.
    pub failure: Option<String>,
}

/// A replayed scenario: every step, in order.
#[derive(Debug, Clone, Default)]
pub struct ScenarioRun {
    /// The steps run.
    pub steps: Vec<StepRun>,
}

impl ScenarioRun {
    /// The transcript lines, in step order.
    pub fn lines(&self) -> Vec<String> {
        self.steps.iter().filter_map(|s| s.line.clone()).collect()
    }

    /// Every failure, prefixed with its step.
    pub fn failures(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|s| {
                s.failure.as_ref().map(|f| match s.index {
                    Some(i) => format!("step {i} ({}): {f}", s.op),
                    None => f.clone(),
                })
            })
            .collect()
    }
}

/// Runs one scenario on a fresh engine with a manual clock.
pub fn run_scenario(id: &str, scenario: &Value) -> ScenarioRun {
    run_scenario_on(id, scenario, None)
}

/// Runs one scenario as [`run_scenario`] does, but on the given store (a `store` object of
/// docs/design.md §2, e.g. a Redis store with a prefix of its own) when its setup names none. Such a
/// replay expects that store's kind where a snapshot step expects `/store/kind`; the
/// transcript records what the engine reports.
pub fn run_scenario_on(id: &str, scenario: &Value, store: Option<&Value>) -> ScenarioRun {
    let mut scenario = scenario.clone();
    if let Some(store) = store {
        if let Some(setup) = scenario.get_mut("setup").and_then(Value::as_object_mut) {
            setup.entry("store").or_insert_with(|| store.clone());
        }
        let kind = store.get("kind").cloned().unwrap_or(Value::Null);
        if let Some(steps) = scenario.get_mut("steps").and_then(Value::as_array_mut) {
            for step in steps
                .iter_mut()
                .filter(|s| s.get("op").and_then(Value::as_str) == Some("snapshot"))
            {
                if let Some(want) = step.pointer_mut("/expect/~1store~1kind") {
                    *want = kind.clone();
                }
            }
        }
    }
    let scenario = &scenario;
    let mut run = ScenarioRun::default();
    let mut setup = scenario.get("setup").cloned().unwrap_or_else(|| json!({}));
    let start_ms = setup
        .as_object_mut()
        .and_then(|o| o.remove("start_ms"))
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let clock = ManualClock::new(start_ms);
    let built = Config::from_value(&setup).and_then(|c| Engine::with_clock(c, clock.clone().into()));
    let expect_error = scenario.get("expect_error").and_then(Value::as_str);
    let engine = match (built, expect_error) {
        (Err(e), expected) => {
            let result = json!({"error": e.code()});
            let failure = match expected {
                Some(code) if code == e.code() => None,
                Some(code) => Some(format!("construction failed with {} ({e}), expected {code}", e.code())),
                None => Some(format!("construction failed: {} ({e})", e.code())),
            };
            run.steps.push(StepRun {
                index: None,
                op: "construct".into(),
                line: Some(line(id, "construct", Value::Null, &result)),
                result,
                failure,
            });
            return run;
        }
        (Ok(_), Some(code)) => {
            run.steps.push(StepRun {
                index: None,
                op: "construct".into(),
                line: None,
                result: json!({}),
                failure: Some(format!("construction succeeded, expected {code}")),
            });
            return run;
        }
        (Ok(engine), None) => engine,
    };
    let mut permits: HashMap<String, PermitId> = HashMap::new();
    let steps = scenario
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, step) in steps.iter().enumerate() {
        let op = step.get("op").and_then(Value::as_str).unwrap_or("");
        let mut failure = None;
        let result = match run_step(&engine, &clock, &mut permits, op, step) {
            Ok(v) => v,
            Err(StepError::Engine(e)) => error_result(&e),
            Err(StepError::Unsupported(msg)) => {
                failure = Some(msg);
                json!({})
            }
        };
        let expect = step.get("expect").cloned().unwrap_or_else(|| json!({}));
        if failure.is_none() {
            failure = check(op, &expect, &result).map(|msg| format!("{msg}; actual {}", canonical(&result)));
        }
        run.steps.push(StepRun {
            index: Some(index),
            op: op.to_string(),
            line: Some(line(id, op, json!(index), &result)),
            result,
            failure,
        });
    }
    run
}

enum StepError {
    Engine(Error),
    Unsupported(String),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Engine(e)
    }
}

fn run_step(
    engine: &Engine,
    clock: &ManualClock,
    permits: &mut HashMap<String, PermitId>,
    op: &str,
    step: &Value,
) -> Result<Value, StepError> {
    match op {
        "advance" => {
            clock.advance(int(step, "ms")?.unwrap_or(0) as i64);
            Ok(json!({}))
        }
        "select" | "acquire" => {
            let capability = string(step, "capability")?;
            let decision = with_request(step, |request| {
                Ok(if op == "select" {
                    engine.select(&capability, request)?
                } else {
                    let permit = engine.acquire(&capability, request)?;
                    if let Some(name) = step.get("permit").and_then(Value::as_str) {
                        permits.insert(name.to_string(), permit.id);
                    }
                    permit.decision
                })
            })?;
            Ok(decision_result(&decision))
        }
        "complete" => {
            let id = permit_id(permits, step);
            let polled = engine.complete(id, &outcome(step)?)?;
            Ok(polled_result(permits, &polled))
        }
        "cancel" => {
            let polled = engine.cancel(permit_id(permits, step))?;
            Ok(polled_result(permits, &polled))
        }
        "enqueue" => {
            let capability = string(step, "capability")?;
            let timeout = step.get("timeout_ms").and_then(Value::as_i64).unwrap_or(0);
            let (ticket, polled) = with_request(step, |request| Ok(engine.enqueue(&capability, request, timeout)?))?;
            if let Some(name) = step.get("ticket").and_then(Value::as_str) {
                // A granted ticket becomes the permit of the same name (and id).
                permits.insert(name.to_string(), ticket);
            }
            Ok(polled_result(permits, &polled))
        }
        "poll" => Ok(polled_result(permits, &engine.poll())),
        "observe" => {
            let provider = string(step, "provider")?;
            let seen = Observation {
                outcome: outcome(step)?,
                requests: int(step, "requests")?,
            };
            engine.observe(&provider, &seen)?;
            Ok(json!({}))
        }
        "headers" => {
            engine.sync_headers(&string(step, "provider")?, &headers(step))?;
            Ok(json!({}))
        }
        "health" => Ok(json!({"value": engine.health(&string(step, "provider")?)?})),
        "circuit" => Ok(json!({"value": engine.circuit(&string(step, "provider")?)?.as_str()})),
        "remaining" => {
            let name = string(step, "dimension")?;
            let dim =
                Dimension::parse(&name).ok_or_else(|| Error::InvalidArgument(format!("unknown dimension '{name}'")))?;
            Ok(json!({"value": engine.remaining(&string(step, "provider")?, dim)?}))
        }
        "snapshot" => {
            let snap = engine.snapshot();
            let mut values = Map::new();
            if let Some(expect) = step.get("expect").and_then(Value::as_object) {
                for pointer in expect.keys() {
                    values.insert(pointer.clone(), snap.pointer(pointer).cloned().unwrap_or(Value::Null));
                }
            }
            Ok(json!({"value": values}))
        }
        "upsert_provider" => {
            engine.upsert_provider(step.get("provider").unwrap_or(&Value::Null))?;
            Ok(json!({}))
        }
        "upsert_capability" => {
            engine.upsert_capability(step.get("capability").unwrap_or(&Value::Null))?;
            Ok(json!({}))
        }
        "remove_provider" => {
            engine.remove_provider(&string(step, "provider")?)?;
            Ok(json!({}))
        }
        "remove_capability" => {
            engine.remove_capability(&string(step, "capability")?)?;
            Ok(json!({}))
        }
        "estimate" => Ok(json!({"value": crate::estimate_tokens(step.get("messages").unwrap_or(&Value::Null))})),
        other => Err(StepError::Unsupported(format!(
            "op '{other}' is not supported by this runner"
        ))),
    }
}

/// Runs `f` with the step's request (`lane`, `input_tokens`, `output_tokens`, `exclude`).
fn with_request<T>(step: &Value, f: impl FnOnce(&Request<'_>) -> Result<T, StepError>) -> Result<T, StepError> {
    let exclude: Vec<&str> = step
        .get("exclude")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    f(&Request {
        lane: step.get("lane").and_then(Value::as_str),
        input_tokens: int(step, "input_tokens")?.unwrap_or(0),
        output_tokens: int(step, "output_tokens")?.unwrap_or(0),
        exclude: &exclude,
    })
}

/// `{expired, granted}` as ticket names (an id never named is written as its number).
fn polled_result(names: &HashMap<String, PermitId>, polled: &crate::Polled) -> Value {
    let name = |id: PermitId| -> Value {
        names
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| json!(k))
            .unwrap_or_else(|| json!(id.0))
    };
    json!({
        "granted": polled.granted.iter().map(|p| name(p.id)).collect::<Vec<_>>(),
        "expired": polled.expired.iter().map(|(t, _)| name(*t)).collect::<Vec<_>>(),
    })
}

fn permit_id(permits: &HashMap<String, PermitId>, step: &Value) -> PermitId {
    // A name never bound (its acquire failed, or it was never acquired) is no permit at all.
    step.get("permit")
        .and_then(Value::as_str)
        .and_then(|n| permits.get(n).copied())
        .unwrap_or(PermitId(0))
}

fn outcome(step: &Value) -> Result<Outcome, StepError> {
    let status = match step.get("status") {
        Some(Value::String(s)) => Status::from_str(s)?,
        Some(Value::Number(n)) => Status::from_http(n.as_i64().unwrap_or(-1))?,
        Some(_) => return Err(Error::InvalidArgument("status must be a class name or an HTTP code".into()).into()),
        None => return Err(Error::InvalidArgument("an outcome needs a status".into()).into()),
    };
    let headers = headers(step);
    Ok(Outcome {
        status,
        latency_ms: int(step, "latency_ms")?.unwrap_or(0),
        input_tokens: int(step, "input_tokens")?,
        output_tokens: int(step, "output_tokens")?,
        cached_input_tokens: int(step, "cached_input_tokens")?,
        cache_write_input_tokens: int(step, "cache_write_input_tokens")?,
        retry_after_ms: int(step, "retry_after_ms")?,
        headers,
    })
}

/// A step's `headers` object as name/value pairs (a non-string value is its JSON text).
fn headers(step: &Value) -> Vec<(String, String)> {
    let Some(h) = step.get("headers").and_then(Value::as_object) else {
        return Vec::new();
    };
    h.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), value)
        })
        .collect()
}

fn int(step: &Value, key: &str) -> Result<Option<u64>, StepError> {
    match step.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| Error::InvalidArgument(format!("{key} must be a non-negative integer")).into()),
    }
}

fn string(step: &Value, key: &str) -> Result<String, StepError> {
    step.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidArgument(format!("{key} is required")).into())
}

fn decision_result(d: &Decision) -> Value {
    json!({
        "provider": &*d.provider,
        "model": &*d.model,
        "score": d.score,
        "breakdown": {
            "quota": d.breakdown.quota,
            "health": d.breakdown.health,
            "priority": d.breakdown.priority,
            "latency": d.breakdown.latency,
            "cost": d.breakdown.cost,
        },
        "alternatives": d.alternatives.iter().map(|a| &*a.provider).collect::<Vec<_>>(),
        "alternative_scores": d.alternatives.iter().map(|a| a.score).collect::<Vec<_>>(),
        "skipped": skipped_json(&d.skipped),
    })
}

fn skipped_json(skipped: &[crate::Skipped]) -> Value {
    Value::Array(
        skipped
            .iter()
            .map(|s| json!({"provider": &*s.provider, "reason": s.reason.code()}))
            .collect(),
    )
}

fn error_result(e: &Error) -> Value {
    match e {
        Error::NoAvailableProvider {
            retry_after_ms,
            skipped,
        } => {
            json!({"error": e.code(), "retry_after_ms": retry_after_ms, "skipped": skipped_json(skipped)})
        }
        _ => json!({"error": e.code()}),
    }
}

/// Checks a step's `expect` against its result; `Some(message)` on a mismatch.
fn check(op: &str, expect: &Value, result: &Value) -> Option<String> {
    let Some(expect) = expect.as_object() else {
        return Some("expect must be an object".into());
    };
    let actual_error = result.get("error");
    if actual_error.is_some() && !expect.contains_key("error") {
        return Some("unexpected error".into());
    }
    if op == "snapshot" {
        let values = result.get("value");
        for (pointer, want) in expect {
            let got = values.and_then(|v| v.get(pointer)).unwrap_or(&Value::Null);
            if !matches(want, got) {
                return Some(format!("{pointer}: expected {want}, got {got}"));
            }
        }
        return None;
    }
    for (key, want) in expect {
        let got = result.get(key).unwrap_or(&Value::Null);
        if !matches(want, got) {
            return Some(format!("{key}: expected {want}, got {got}"));
        }
    }
    None
}

/// Partial match: numbers within 1e-9, `{min, max}` ranges, objects by the expected keys,
/// lists whole and in order, everything else equal.
fn matches(want: &Value, got: &Value) -> bool {
    match want {
        Value::Number(w) => got.as_f64().zip(w.as_f64()).is_some_and(|(g, w)| (g - w).abs() <= 1e-9),
        Value::Object(w) if w.len() == 2 && w.contains_key("min") && w.contains_key("max") && got.is_number() => {
            let g = got.as_f64().unwrap_or(f64::NAN);
            w["min"].as_f64().is_some_and(|min| g >= min) && w["max"].as_f64().is_some_and(|max| g <= max)
        }
        Value::Object(w) => got
            .as_object()
            .is_some_and(|g| w.iter().all(|(k, v)| matches(v, g.get(k).unwrap_or(&Value::Null)))),
        Value::Array(w) => got
            .as_array()
            .is_some_and(|g| g.len() == w.len() && w.iter().zip(g).all(|(a, b)| matches(a, b))),
        other => other == got,
    }
}

fn line(id: &str, op: &str, step: Value, result: &Value) -> String {
    canonical(&json!({"op": op, "result": result, "scenario": id, "step": step}))
}

/// Canonical JSON (docs/design.md §12): keys sorted, no whitespace, floats with 9 decimals.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            let s = format!("{f:.9}");
            if s == "-0.000000000" { "0.000000000".into() } else { s }
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&o[k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        other => other.to_string(),
    }
}
