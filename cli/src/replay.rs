//! `ratewise replay SCENARIOS.json [--id ID]`: runs a conformance scenario file (docs/design.md §11) on
//! the engine and prints each step with its result, marking the steps whose `expect` does not
//! match. Exit status 1 when any step fails.

use ratewise::conformance::{canonical, run_scenario};
use serde_json::Value;
use std::fmt::Write as _;

/// Runs the command; `Err((message, exit status))` on failure.
pub fn run(args: &[String]) -> Result<(), (String, u8)> {
    let (positional, options) = crate::parse_args(args, &["id"]).map_err(|m| (m, 2))?;
    let [path] = positional.as_slice() else {
        return Err((
            "replay takes one scenario file (ratewise replay SCENARIOS.json)".into(),
            2,
        ));
    };
    let only = options.into_iter().find(|(k, _)| k == "id").map(|(_, v)| v);
    let text = std::fs::read_to_string(path).map_err(|e| (format!("{path}: cannot read: {e}"), 1))?;
    let doc = crate::read_json(&text).map_err(|e| (format!("{path}: {e}"), 1))?;
    let Some(scenarios) = doc.get("scenarios").and_then(Value::as_array) else {
        return Err((format!("{path}: scenarios: must be an array of scenarios"), 1));
    };
    let (out, failed, ran) = replay(scenarios, only.as_deref());
    crate::emit(&out);
    if ran == 0 {
        return Err(match only {
            Some(id) => (format!("{path}: no scenario with id '{id}'"), 1),
            None => (format!("{path}: no scenarios"), 1),
        });
    }
    if failed > 0 {
        return Err((format!("{failed} of {ran} scenarios failed"), 1));
    }
    Ok(())
}

/// The printed replay, the number of failed scenarios and the number run.
pub fn replay(scenarios: &[Value], only: Option<&str>) -> (String, usize, usize) {
    let mut out = String::new();
    let (mut failed, mut ran) = (0, 0);
    for (i, scenario) in scenarios.iter().enumerate() {
        let id = scenario
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("scenarios[{i}]"), str::to_string);
        if only.is_some_and(|o| o != id) {
            continue;
        }
        ran += 1;
        let run = run_scenario(&id, scenario);
        let _ = writeln!(out, "scenario {id}");
        if let Some(d) = scenario.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "  {d}");
        }
        let steps = scenario.get("steps").and_then(Value::as_array);
        for step in &run.steps {
            let index = step.index.map_or_else(|| "-".to_string(), |i| i.to_string());
            let args = step
                .index
                .and_then(|i| steps.and_then(|s| s.get(i)))
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| *k != "op" && *k != "expect")
                        .map(|(k, v)| format!("{k}={}", canonical(v)))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let mark = if step.failure.is_some() { "FAIL" } else { "ok" };
            let _ = writeln!(out, "  [{index:>2}] {mark:<4} {} {args}", step.op).map(|_| ());
            if out.ends_with(" \n") {
                out.truncate(out.len() - 2);
                out.push('\n');
            }
            let _ = writeln!(out, "         -> {}", canonical(&step.result));
            if let Some(f) = &step.failure {
                let _ = writeln!(out, "         !! {f}");
            }
        }
        let failures = run.failures().len();
        if failures > 0 {
            failed += 1;
            let _ = writeln!(out, "  FAILED: {failures} step(s)\n");
        } else {
            let _ = writeln!(out, "  passed\n");
        }
    }
    (out, failed, ran)
}
