//! The `ratewise` command, run as a user runs it: the built binary, real files, real output.
//!
//! Golden files live in `tests/golden`; `RATEWISE_BLESS=1 cargo test -p ratewise-cli` rewrites
//! them after a deliberate change (review the diff).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ratewise(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ratewise"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the ratewise binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Compares `actual` with the golden file, or rewrites it under `RATEWISE_BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("RATEWISE_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} differs from its golden file (RATEWISE_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn policy<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["policies"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["policy"] == name))
        .unwrap_or_else(|| panic!("policy {name} in the report"))
}

fn lane<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["lanes"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["lane"] == name))
        .unwrap_or_else(|| panic!("lane {name} in the report"))
}

#[test]
fn example_hour_is_deterministic_and_ratewise_wins() {
    // Two runs of the README's simulation, in parallel: byte-identical reports.
    let runs: Vec<(Output, PathBuf)> = std::thread::scope(|s| {
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|n| {
                s.spawn(move || {
                    let out = scratch(&format!("example-{n}"));
                    let o = ratewise(&[
                        "simulate",
                        "examples/config.json",
                        "--workload",
                        "examples/workload.json",
                        "--out",
                        out.to_str().expect("a UTF-8 path"),
                    ]);
                    (o, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("run")).collect()
    });
    for (o, _) in &runs {
        assert!(o.status.success(), "simulate failed: {}", stderr(o));
    }
    let a = std::fs::read(runs[0].1.join("report.json")).expect("report.json");
    let b = std::fs::read(runs[1].1.join("report.json")).expect("report.json");
    assert!(a == b, "same seed, different report.json");
    let tables = |o: &Output| stdout(o).split("\nwrote ").next().map(str::to_string);
    assert_eq!(tables(&runs[0].0), tables(&runs[1].0));
    let svg = std::fs::read_to_string(runs[0].1.join("report.svg")).expect("report.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("gpt-4o: admitted per minute, as a share of its real limit") && svg.contains("lane critical"));

    let report: Value = serde_json::from_slice(&a).expect("report.json is JSON");
    assert!(
        report["requests"].as_u64().unwrap_or(0) >= 100_000,
        "the example hour has ≥ 100,000 requests"
    );
    let ours = policy(&report, "ratewise");
    for other in ["naive", "retry", "cascade"] {
        let theirs = policy(&report, other);
        assert!(
            ours["rate_limited_429"].as_u64() < theirs["rate_limited_429"].as_u64(),
            "ratewise has {} 429s, {other} {}",
            ours["rate_limited_429"],
            theirs["rate_limited_429"]
        );
    }
    assert_eq!(lane(ours, "critical")["lost"], 0, "ratewise lost critical requests");
    assert_eq!(lane(ours, "critical")["requests"], lane(ours, "critical")["successes"]);
    // The naive fleet of 8 processes really does overrun the provider it believes in.
    assert!(policy(&report, "naive")["rate_limited_429"].as_u64().unwrap_or(0) > 10_000);
    let text = stdout(&runs[0].0);
    for needle in [
        "policy",
        "naive",
        "retry",
        "cascade",
        "ratewise",
        "wait p50 / p99",
        "utilisation",
    ] {
        assert!(text.contains(needle), "the terminal report shows {needle}:\n{text}");
    }
}

#[test]
fn another_seed_gives_another_run() {
    let (a, b) = (scratch("seed-1"), scratch("seed-2"));
    for (dir, seed) in [(&a, "1"), (&b, "2")] {
        let o = ratewise(&[
            "simulate",
            "examples/config.json",
            "--workload",
            "examples/workload.json",
            "--duration",
            "3m",
            "--seed",
            seed,
            "--policies",
            "retry,ratewise",
            "--out",
            dir.to_str().expect("a UTF-8 path"),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let ra: Value = serde_json::from_slice(&std::fs::read(a.join("report.json")).expect("read")).expect("json");
    let rb: Value = serde_json::from_slice(&std::fs::read(b.join("report.json")).expect("read")).expect("json");
    assert_eq!(ra["duration_ms"], 180_000);
    assert_eq!(ra["policies"].as_array().map(Vec::len), Some(2));
    assert_ne!(ra["requests"], rb["requests"], "seeds 1 and 2 drew the same traffic");
}

/// Writes `config` and `workload` (JSON text) and runs `simulate` on them.
fn simulate_files(name: &str, config: &str, workload: &str) -> Output {
    let dir = scratch(name);
    std::fs::write(dir.join("config.json"), config).expect("write");
    std::fs::write(dir.join("workload.json"), workload).expect("write");
    ratewise(&[
        "simulate",
        dir.join("config.json").to_str().expect("a UTF-8 path"),
        "--workload",
        dir.join("workload.json").to_str().expect("a UTF-8 path"),
        "--out",
        dir.join("out").to_str().expect("a UTF-8 path"),
    ])
}

const CONFIG: &str = r#"{
  "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 60}]}],
  "capabilities": [{"name": "chat", "providers": [{"provider": "a"}]}]
}"#;

fn workload(traffic: &str) -> String {
    format!(
        r#"{{"duration": "2m", "providers": {{"a": {{"style": "openai", "requests_per_minute": 60, "tokens_per_minute": 100000}}}},
            "traffic": [{traffic}]}}"#
    )
}

#[test]
fn bad_workloads_name_the_json_path() {
    let good = r#"{"name": "t", "capability": "chat", "arrivals": {"poisson_per_s": 1}, "input_tokens": 100, "max_tokens": 50}"#;
    let o = simulate_files("good", CONFIG, &workload(good));
    assert!(o.status.success(), "{}", stderr(&o));

    let cases = [
        (
            good.replace(r#""capability": "chat""#, r#""capability": "code""#),
            "traffic[0].capability: unknown capability \"code\" (the configuration has: chat)",
        ),
        (
            good.replace(
                r#""arrivals": {"poisson_per_s": 1}"#,
                r#""arrivals": {"poisson_per_s": -1}"#,
            ),
            "traffic[0].arrivals.poisson_per_s: must be a positive number, got -1",
        ),
        (
            good.replace(r#""max_tokens": 50"#, r#""max_tokens": 50, "lane": "bulk""#),
            "traffic[0].lane: unknown lane \"bulk\" (the configuration has: critical, normal, batch)",
        ),
        (
            good.replace(r#""max_tokens": 50"#, r#""max_tokens": 50, "deadline": "soon""#),
            "traffic[0].deadline: must be a duration (\"90s\", \"10m\", \"1h\") or ms, got \"soon\"",
        ),
        (
            good.replace(
                r#""input_tokens": 100"#,
                r#""input_tokens": {"lognormal": {"median": 100}}"#,
            ),
            "traffic[0].input_tokens.lognormal.p99: is required",
        ),
        (
            good.replace(r#""name": "t""#, r#""name": "t", "colour": "red""#),
            "traffic[0].colour: unknown key",
        ),
    ];
    for (i, (traffic, message)) in cases.iter().enumerate() {
        let o = simulate_files(&format!("bad-{i}"), CONFIG, &workload(traffic));
        assert_eq!(o.status.code(), Some(1), "case {i} should fail");
        let err = stderr(&o);
        assert!(
            err.contains("workload.json: ") && err.contains(message),
            "case {i}: {err}"
        );
    }

    // A capability that nothing could serve.
    let empty = CONFIG.replace(r#""providers": [{"provider": "a"}]"#, r#""providers": []"#);
    let o = simulate_files("empty-capability", &empty, &workload(good));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("traffic[0].capability: capability \"chat\" lists no providers"),
        "{}",
        stderr(&o)
    );
    // A configured provider the workload does not simulate.
    let o = simulate_files(
        "unsimulated",
        CONFIG,
        &format!(r#"{{"providers": {{}}, "traffic": [{good}]}}"#),
    );
    assert!(
        stderr(&o).contains("providers: \"a\" is configured but not simulated"),
        "{}",
        stderr(&o)
    );
    // Not JSON at all: the parser's line and column.
    let o = simulate_files("not-json", CONFIG, "{\"providers\": ");
    assert!(
        stderr(&o).contains("workload.json: not JSON: EOF while parsing") && stderr(&o).contains("line 1"),
        "{}",
        stderr(&o)
    );
    // A key written twice: its path (serde_json would keep the last one silently).
    let o = simulate_files(
        "duplicate-key",
        CONFIG,
        &format!(r#"{{"traffic": [{good}], "traffic": []}}"#),
    );
    assert!(
        stderr(&o).contains("workload.json: traffic: duplicate key"),
        "{}",
        stderr(&o)
    );
    // A bad configuration: the engine's message with its JSON path, and its code.
    let o = simulate_files("bad-config", &CONFIG.replace("60", "0"), &workload(good));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("config.json: providers[0].quotas[0].limit: must be > 0 (invalid_config)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_exit_2() {
    for (args, message) in [
        (vec![], "a command is needed"),
        (
            vec!["simulate", "examples/config.json"],
            "simulate needs --workload WORKLOAD",
        ),
        (
            vec![
                "simulate",
                "examples/config.json",
                "--workload",
                "examples/workload.json",
                "--seed",
                "x",
            ],
            "--seed: not a non-negative integer: 'x'",
        ),
        (
            vec![
                "simulate",
                "examples/config.json",
                "--workload",
                "examples/workload.json",
                "--policies",
                "magic",
            ],
            "--policies: unknown policy 'magic'",
        ),
        (
            vec![
                "simulate",
                "examples/config.json",
                "--workload",
                "examples/workload.json",
                "--duration",
                "0",
            ],
            "--duration: not a duration: '0'",
        ),
        (vec!["check"], "check takes one CONFIG file"),
        (
            vec!["check", "examples/config.json", "--verbose", "1"],
            "unknown option '--verbose'",
        ),
        (vec!["frobnicate"], "unknown command 'frobnicate'"),
        (vec!["usage"], "usage takes one CONFIG file"),
        (
            vec!["availability", "x.json", "--group-by", "key"],
            "unknown option '--group-by'",
        ),
    ] {
        let o = ratewise(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("Usage:"), "{args:?} prints the usage");
    }
    let o = ratewise(&["help"]);
    assert!(o.status.success() && stdout(&o).contains("ratewise simulate CONFIG --workload WORKLOAD"));
}

#[test]
fn check_prints_what_it_understood() {
    let o = ratewise(&["check", "examples/config.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    golden("check-example.txt", &stdout(&o));
}

#[test]
fn check_never_prints_a_store_password() {
    let dir = scratch("check-redacted");
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        r#"{"store": {"kind": "redis", "url": "redis://:hunter2@10.0.0.5:6379/0", "prefix": "fleet"}}"#,
    )
    .expect("write");
    let o = ratewise(&["check", path.to_str().expect("a UTF-8 path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.contains("store: redis at redis://:***@10.0.0.5:6379/0, keys under {fleet}"),
        "{out}"
    );
}

#[test]
fn check_names_the_error_path() {
    let dir = scratch("check-bad");
    let path = dir.join("config.json");
    std::fs::write(&path, CONFIG.replace(r#""provider": "a""#, r#""provider": "b""#)).expect("write");
    let o = ratewise(&["check", path.to_str().expect("a UTF-8 path")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("capabilities[0].providers[0].provider") && err.contains("(invalid_config)"),
        "{err}"
    );
    let o = ratewise(&["check", "no/such/file.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read no/such/file.json"), "{}", stderr(&o));
}

#[test]
fn replay_prints_each_step() {
    let o = ratewise(&["replay", "cli/tests/golden/replay-scenarios.json"]);
    assert_eq!(o.status.code(), Some(1), "one scenario fails on purpose");
    assert!(stderr(&o).contains("1 of 3 scenarios failed"), "{}", stderr(&o));
    golden("replay.txt", &stdout(&o));

    let o = ratewise(&[
        "replay",
        "cli/tests/golden/replay-scenarios.json",
        "--id",
        "replay.passes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("passed") && !stdout(&o).contains("replay.fails"));
    let o = ratewise(&["replay", "cli/tests/golden/replay-scenarios.json", "--id", "nope"]);
    assert!(stderr(&o).contains("no scenario with id 'nope'"));
}

#[test]
fn replay_runs_the_whole_conformance_suite() {
    let dir = root().join("conformance/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let o = ratewise(&["replay", f.to_str().expect("a UTF-8 path")]);
        assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
    }
}

/// `ratewise usage` / `ratewise availability` read the ledger the configuration names (a
/// relative SQLite path is the configuration's folder's), without the gateway running.
#[test]
fn usage_and_availability_read_the_ledger() {
    use ratewise_ledger::{Event, EventKind, Ledger, LedgerConfig, Record};
    let dir = scratch("ledger-reports");
    let config = dir.join("gateway.json");
    std::fs::write(&config, r#"{"gateway": {"ledger": {"url": "sqlite:books.db"}}}"#).unwrap();
    let ledger = Ledger::open(&LedgerConfig::new(format!("sqlite:{}", dir.join("books.db").display()))).unwrap();
    let t = 1_796_292_000_000; // 2026-12-03T10:00:00Z
    for (i, (key, cost)) in [("team-a", 1_500), ("team-a", 500), ("team-b", 250)]
        .into_iter()
        .enumerate()
    {
        ledger.record(Record {
            ts_ms: t + i as i64,
            key: key.into(),
            capability: "chat".into(),
            provider: "gpt-eu".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 100,
            output_tokens: 10,
            cost_micro_usd: cost,
            status: 200,
            domain: "ok".into(),
            ..Record::default()
        });
    }
    for (kind, ms) in [
        (EventKind::Success, 40),
        (EventKind::Success, 60),
        (EventKind::RateLimited, 5),
    ] {
        ledger.event(Event {
            ts_ms: t,
            provider: "gpt-eu".into(),
            kind,
            latency_ms: Some(ms),
        });
    }
    ledger.flush().unwrap();
    let cfg = config.to_str().unwrap();
    let o = ratewise(&["usage", cfg, "--from", "2026-12-03T10:00:00Z", "--to", "1796292060"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "key     requests  input_tokens  output_tokens  cached_tokens  cost_usd  errors  cache_hits  degraded\n\
         team-a  2         200           20             0              0.002000  0       0           0\n\
         team-b  1         100           10             0              0.000250  0       0           0\n\
         total   3         300           30             0              0.002250  0       0           0\n"
    );
    let o = ratewise(&["usage", cfg, "--from", "1796292000", "--window", "1h"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("give from or window, not both"), "{}", stderr(&o));
    let o = ratewise(&["usage", cfg, "--json", "--group-by", "model", "--from", "0"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["rows"][0]["model"], "gpt-4o-mini");
    assert_eq!(v["rows"][0]["cost_micro_usd"], 2_250);
    let o = ratewise(&["availability", cfg, "--json", "--from", "0"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let p = &v["providers"][0];
    assert_eq!(
        (
            p["provider"].as_str(),
            p["outcomes"].as_u64(),
            p["rate_limited"].as_u64()
        ),
        (Some("gpt-eu"), Some(3), Some(1))
    );
    assert_eq!(
        (p["latency_p50_ms"].as_u64(), p["latency_p99_ms"].as_u64()),
        (Some(40), Some(60))
    );
    std::fs::write(&config, r#"{"gateway": {"ledger": false}}"#).unwrap();
    let o = ratewise(&["usage", cfg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("gateway.ledger is false"), "{}", stderr(&o));
}
