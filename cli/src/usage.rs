//! `ratewise usage CONFIG` and `ratewise availability CONFIG`: the gateway's ledger reports,
//! read from the database `gateway.ledger` names (the gateway need not run). Text tables, or
//! `--json` (the shape of `/admin/usage` and `/admin/availability`).

use std::path::PathBuf;

use ratewise_gateway::reports;
use ratewise_ledger::{Reader, UsageQuery};

/// Which report.
#[derive(Clone, Copy)]
pub enum Report {
    /// Spend grouped.
    Usage,
    /// Availability per provider.
    Availability,
}

/// Runs the command; `Err((message, exit status))` on failure.
pub fn run(report: Report, args: &[String]) -> Result<(), (String, u8)> {
    let json_out = args.iter().any(|a| a == "--json");
    let rest: Vec<String> = args.iter().filter(|a| *a != "--json").cloned().collect();
    let flags: &[&str] = match report {
        Report::Usage => &["group-by", "from", "to", "window"],
        Report::Availability => &["from", "to", "window"],
    };
    let (positional, options) = crate::parse_args(&rest, flags).map_err(|m| (m, 2))?;
    let name = match report {
        Report::Usage => {
            "usage CONFIG [--group-by key,capability,provider,model] [--from T] [--to T] [--window 24h] [--json]"
        }
        Report::Availability => "availability CONFIG [--window 5m] [--from T] [--to T] [--json]",
    };
    let [path] = positional.as_slice() else {
        return Err((
            format!(
                "{} takes one CONFIG file (ratewise {name})",
                name.split(' ').next().unwrap_or("")
            ),
            2,
        ));
    };
    let path = PathBuf::from(path);
    let settings = ratewise_gateway::config::ledger_of_file(&path)
        .map_err(|e| (format!("{}: {e}", path.display()), 1))?
        .ok_or_else(|| {
            (
                format!("{}: gateway.ledger is false: there is no ledger", path.display()),
                1,
            )
        })?;
    // The option names as the query string has them.
    let query: Vec<(String, String)> = options
        .into_iter()
        .map(|(k, v)| (if k == "group-by" { "group_by".to_string() } else { k }, v))
        .collect();
    let default = match report {
        Report::Usage => std::time::Duration::from_secs(86_400),
        Report::Availability => std::time::Duration::from_secs(300),
    };
    let (from_ms, to_ms) = reports::window(&query, default).map_err(|m| (format!("--{m}"), 2))?;
    let mut reader = Reader::open(&settings.config).map_err(|e| (e.to_string(), 1))?;
    let out = match report {
        Report::Usage => {
            let group_by = reports::group_by(&query).map_err(|m| (format!("--group-by: {m}"), 2))?;
            let q = UsageQuery {
                from_ms,
                to_ms,
                group_by,
            };
            let rows = reader.usage(&q).map_err(|e| (e.to_string(), 1))?;
            if json_out {
                format!("{}\n", reports::usage_json(&q, &rows))
            } else {
                reports::usage_table(&q, &rows)
            }
        }
        Report::Availability => {
            let rows = reader.availability(from_ms, to_ms).map_err(|e| (e.to_string(), 1))?;
            if json_out {
                format!("{}\n", reports::availability_json(from_ms, to_ms, &rows))
            } else {
                reports::availability_table(&rows)
            }
        }
    };
    crate::emit(&out);
    Ok(())
}
