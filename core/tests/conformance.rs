//! The Rust conformance runner: one named test per scenario id (docs/design.md §11).
//!
//! Reads scenarios from `RATEWISE_CONFORMANCE_DIR` (default: the repository's
//! `conformance/scenarios`) and, when `RATEWISE_TRANSCRIPT` names a file, writes the transcript
//! there: one canonical JSON line per step, scenarios in discovery order (files sorted by
//! relative path, scenarios in file order). The contract is `conformance/README.md`.
//!
//! With `RATEWISE_REDIS_URL` set, every scenario whose setup names no store runs on the Redis
//! store at that URL instead (each scenario with a prefix of its own, `on_error: closed` so that
//! no failure is hidden): the transcript must be the memory store's, except for the store's
//! kind in snapshots (`scripts/test-all.sh` compares them).

use libtest_mimic::{Arguments, Failed, Trial};
use ratewise::conformance::{discover, run_scenario_on};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn main() {
    let args = Arguments::from_args();
    let dir = std::env::var_os("RATEWISE_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/scenarios"));
    let transcript: Arc<Mutex<BTreeMap<usize, Vec<String>>>> = Arc::default();
    let mut trials = Vec::new();
    let mut load_errors = Vec::new();
    let redis_url = std::env::var("RATEWISE_REDIS_URL").ok();
    let run_tag = format!(
        "conformance-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    for (order, (file, scenario)) in discover(&dir, &mut load_errors).into_iter().enumerate() {
        let id = scenario
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("<no id>")
            .to_string();
        let sink = transcript.clone();
        let store = redis_url.as_ref().map(|url| {
            serde_json::json!({"kind": "redis", "url": url, "prefix": format!("{run_tag}-{order}"),
                               "on_error": "closed", "timeout_ms": 2000})
        });
        trials.push(Trial::test(id.clone(), move || {
            let run = run_scenario_on(&id, &scenario, store.as_ref());
            let (lines, failures) = (run.lines(), run.failures());
            if let Ok(mut t) = sink.lock() {
                t.insert(order, lines);
            }
            if failures.is_empty() {
                Ok(())
            } else {
                Err(Failed::from(format!("{file}: {}", failures.join("\n  "))))
            }
        }));
    }
    for (i, e) in load_errors.into_iter().enumerate() {
        trials.push(Trial::test(format!("load_error_{i}"), move || Err(Failed::from(e))));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(path) = std::env::var_os("RATEWISE_TRANSCRIPT") {
        let lines: Vec<String> = transcript
            .lock()
            .map(|t| t.values().flatten().cloned().collect())
            .unwrap_or_default();
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write transcript {}: {e}", Path::new(&path).display());
            std::process::exit(2);
        }
    }
    conclusion.exit();
}
