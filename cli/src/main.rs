//! `ratewise`: simulate a fleet before production, check a configuration, replay a scenario.
//!
//! ```text
//! ratewise simulate CONFIG --workload WORKLOAD [--duration 1h] [--seed N] [--out report/]
//! ratewise check CONFIG
//! ratewise replay SCENARIOS.json [--id ID]
//! ratewise serve CONFIG [--listen ADDR]
//! ratewise usage CONFIG [--group-by key,capability,provider,model] [--from T] [--to T] [--window 24h] [--json]
//! ratewise availability CONFIG [--window 5m] [--from T] [--to T] [--json]
//! ```
//!
//! Exit status: 0 success, 1 invalid input (a configuration, workload or scenario that fails),
//! 2 a usage error.

mod check;
mod provider;
mod replay;
mod report;
mod rng;
mod serve;
mod sim;
mod usage;
mod workload;

use ratewise::Config;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
ratewise: decide where each LLM call goes, and whether it may go now.

Usage:
  ratewise simulate CONFIG --workload WORKLOAD [--duration 1h] [--seed N] [--out DIR]
                    [--policies naive,retry,cascade,ratewise]
      Simulates the workload's traffic against simulated providers, in virtual time, under each
      policy, and prints a comparison. Writes DIR/report.json and DIR/report.svg (DIR defaults
      to `report`). The same seed gives a byte-identical report.json.
  ratewise check CONFIG
      Validates a configuration and prints what it understood, or the errors with their JSON
      paths.
  ratewise replay SCENARIOS.json [--id ID]
      Runs a conformance scenario file and prints each step's result.
  ratewise serve CONFIG [--listen ADDR]
      Runs the OpenAI- and Anthropic-compatible gateway (docs/gateway.md): the engine decides
      every call. Prints {\"listening\": \"ADDR\"} once bound; SIGHUP reloads CONFIG, SIGTERM drains.
  ratewise usage CONFIG [--group-by key,capability,provider,model,hour,day] [--from T] [--to T]
                 [--window 24h] [--json]
      The gateway's spend from its ledger (gateway.ledger): requests, tokens, cost, errors, cache
      hits and degraded answers per group. T: RFC 3339 or seconds since the epoch; default: the
      last 24 hours, grouped by key.
  ratewise availability CONFIG [--window 5m] [--from T] [--to T] [--json]
      Per provider over the window (default 5m): availability, latency p50/p99 of successes,
      429s, 503/529s, 5xx, timeouts, fallbacks, circuit openings and closings.
  ratewise help

Exit status: 0 success, 1 invalid input, 2 usage error.
";

/// A failure: its message and exit status.
struct Failure(String, u8);

fn usage(message: impl Into<String>) -> Failure {
    Failure(format!("{}\n\n{USAGE}", message.into()), 2)
}

/// Writes to stdout; a closed pipe (`ratewise ... | head`) is not an error worth a panic.
pub(crate) fn emit(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// A subcommand's `(message, status)`: usage errors (2) also print the usage.
fn failure((message, code): (String, u8)) -> Failure {
    if code == 2 {
        usage(message)
    } else {
        Failure(message, code)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("simulate") => simulate(&args[1..]),
        Some("check") => check::run(&args[1..]).map_err(failure),
        Some("replay") => replay::run(&args[1..]).map_err(failure),
        Some("serve") if matches!(args.get(1).map(String::as_str), Some("--help" | "-h")) => {
            emit(USAGE);
            Ok(())
        }
        Some("serve") => serve::run(&args[1..]).map_err(failure),
        Some("usage") => usage::run(usage::Report::Usage, &args[1..]).map_err(failure),
        Some("availability") => usage::run(usage::Report::Availability, &args[1..]).map_err(failure),
        Some("help" | "--help" | "-h") => {
            emit(USAGE);
            Ok(())
        }
        Some("--version" | "-V") => {
            emit(&format!("ratewise {}\n", env!("CARGO_PKG_VERSION")));
            Ok(())
        }
        Some(other) => Err(usage(format!("unknown command '{other}'"))),
        None => Err(usage("a command is needed")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Positional arguments and `(flag, value)` options.
pub(crate) type Args = (Vec<String>, Vec<(String, String)>);

/// Splits `args` into positionals and `--flag value` options (also `--flag=value`).
pub(crate) fn parse_args(args: &[String], flags: &[&str]) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(flag) = a.strip_prefix("--") {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if !flags.contains(&name) {
                return Err(format!("unknown option '--{name}'"));
            }
            let value = match inline {
                Some(v) => v,
                None => it.next().cloned().ok_or_else(|| format!("--{name} needs a value"))?,
            };
            options.push((name.to_string(), value));
        } else {
            positional.push(a.clone());
        }
    }
    Ok((positional, options))
}

/// Reads a configuration file; errors name the file and the JSON path.
pub(crate) fn load_config(path: &Path) -> Result<Config, Failure> {
    Config::from_file(path).map_err(|e| Failure(format!("{}: {} ({})", path.display(), e, e.code()), 1))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn simulate(args: &[String]) -> Result<(), Failure> {
    let (positional, options) =
        parse_args(args, &["workload", "duration", "seed", "out", "policies"]).map_err(usage)?;
    let [config_path] = positional.as_slice() else {
        return Err(usage("simulate takes one CONFIG file"));
    };
    let config_path = PathBuf::from(config_path);
    let mut workload_path = None;
    let mut duration = None;
    let mut seed = None;
    let mut out = PathBuf::from("report");
    let mut policies: Vec<String> = sim::POLICIES.iter().map(|p| p.to_string()).collect();
    for (name, value) in options {
        match name.as_str() {
            "workload" => workload_path = Some(PathBuf::from(value)),
            "duration" => {
                duration = Some(
                    workload::parse_duration(&value)
                        .filter(|ms| *ms > 0)
                        .ok_or_else(|| usage(format!("--duration: not a duration: '{value}' (e.g. 90s, 10m, 1h)")))?,
                )
            }
            "seed" => {
                seed = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| usage(format!("--seed: not a non-negative integer: '{value}'")))?,
                )
            }
            "out" => out = PathBuf::from(value),
            "policies" => {
                policies = value.split(',').map(|p| p.trim().to_string()).collect();
                if let Some(bad) = policies.iter().find(|p| !sim::POLICIES.contains(&p.as_str())) {
                    return Err(usage(format!(
                        "--policies: unknown policy '{bad}' (known: {})",
                        sim::POLICIES.join(", ")
                    )));
                }
            }
            _ => {}
        }
    }
    let workload_path = workload_path.ok_or_else(|| usage("simulate needs --workload WORKLOAD"))?;
    let config = load_config(&config_path)?;
    let text = std::fs::read_to_string(&workload_path)
        .map_err(|e| Failure(format!("{}: cannot read: {e}", workload_path.display()), 1))?;
    let doc = read_json(&text).map_err(|e| Failure(format!("{}: {e}", workload_path.display()), 1))?;
    let mut w = workload::Workload::from_value(&doc, &config)
        .map_err(|e| Failure(format!("{}: {e}", workload_path.display()), 1))?;
    if let Some(d) = duration {
        w.duration_ms = d;
        for t in &mut w.traffic {
            t.end_ms = t.end_ms.min(d);
        }
    }
    if let Some(s) = seed {
        w.seed = s;
    }

    let reqs = sim::generate(&w);
    // Policies are independent runs over the same requests: one thread each (the machine's
    // cores share them), results in report order, so the report does not depend on timing.
    let tty = std::io::stderr().is_terminal();
    let done = std::sync::Mutex::new(vec![0.0f64; policies.len()]);
    let results: Vec<Result<sim::PolicyResult, ratewise::Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = policies
            .iter()
            .enumerate()
            .map(|(k, policy)| {
                let (w, config, reqs, done) = (&w, &config, &reqs, &done);
                s.spawn(move || {
                    let mut progress = |fraction: f64| {
                        if let (true, Ok(mut d)) = (tty, done.lock()) {
                            d[k] = fraction;
                            let overall = d.iter().sum::<f64>() / d.len() as f64;
                            let filled = ((overall * 30.0).round() as usize).min(30);
                            eprint!(
                                "\r  simulating {} policies [{}{}] {:>3.0}%",
                                d.len(),
                                "#".repeat(filled),
                                "-".repeat(30 - filled),
                                overall * 100.0
                            );
                            let _ = std::io::stderr().flush();
                        }
                    };
                    sim::run(policy, w, config, reqs, &mut progress)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ratewise::Error::InvalidArgument(
                        "internal error: a simulation thread panicked (please report it with the files)".into(),
                    ))
                })
            })
            .collect()
    });
    if tty {
        eprint!("\r{:<60}\r", "");
    }
    let results = results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure(format!("{}: {e} ({})", config_path.display(), e.code()), 1))?;
    let names = (file_name(&config_path), file_name(&workload_path));
    let json = report::json(&w, &config, (&names.0, &names.1), &results);
    let text_report = report::text(&w, &config, &results);
    std::fs::create_dir_all(&out).map_err(|e| Failure(format!("{}: cannot create: {e}", out.display()), 1))?;
    let mut json_text = serde_json::to_string_pretty(&json).unwrap_or_default();
    json_text.push('\n');
    for (name, body) in [
        ("report.json", json_text),
        ("report.svg", report::svg(&w, &config, &results)),
    ] {
        let path = out.join(name);
        std::fs::write(&path, body).map_err(|e| Failure(format!("{}: cannot write: {e}", path.display()), 1))?;
    }
    emit(&text_report);
    emit(&format!(
        "\nwrote {} and {}\n",
        out.join("report.json").display(),
        out.join("report.svg").display()
    ));
    Ok(())
}

/// A JSON document of the command's own (a workload, a scenario file): the parser's line and
/// column when it is not JSON, the path of a key written twice.
pub(crate) fn read_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str::<serde_json::Value>(text).map_err(|e| format!("not JSON: {e}"))?;
    ratewise::json::parse(text, "", "the document").map_err(|e| e.to_string())
}
