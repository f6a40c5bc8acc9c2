//! `ratewise check CONFIG`: validates a configuration and prints what the engine understood:
//! providers with their quotas (effective keys, windows, algorithms, settlement, shared pools),
//! capabilities, lanes and the store. Errors name their JSON path.

use ratewise::{Algorithm, OnError, QuotaConfig, Settle, StoreConfig};
use ratewise::{Config, Dimension};
use std::fmt::Write as _;
use std::path::Path;

use crate::workload::format_duration as window;

/// Runs the command; `Err((message, exit status))` on failure.
pub fn run(args: &[String]) -> Result<(), (String, u8)> {
    let (positional, _) = crate::parse_args(args, &[]).map_err(|m| (m, 2))?;
    let [path] = positional.as_slice() else {
        return Err(("check takes one CONFIG file (ratewise check CONFIG)".into(), 2));
    };
    let path = Path::new(path);
    if is_gateway_file(path) {
        // A `ratewise serve` file: the engine's part and the gateway's, validated as serve does.
        let serve = ratewise_gateway::ServeConfig::from_file(path)
            .map_err(|e| (format!("{}: {} ({})", path.display(), e, e.code()), 1))?;
        crate::emit(&describe(&serve.engine));
        crate::emit(&describe_gateway(&serve.gateway));
        return Ok(());
    }
    let config = crate::load_config(path).map_err(|f| (f.0, f.1))?;
    crate::emit(&describe(&config));
    Ok(())
}

/// Whether the file's top-level object has a `gateway` key (any other problem is reported by
/// the engine's own reader).
fn is_gateway_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("gateway").is_some())
}

fn describe_gateway(g: &ratewise_gateway::config::GatewayConfig) -> String {
    let mut out = format!("gateway: listens on {}\n", g.listen);
    let mut names: Vec<&String> = g.upstreams.keys().collect();
    names.sort();
    for name in names {
        let u = &g.upstreams[name];
        let key = if u.api_key.expose().is_empty() {
            "no API key"
        } else {
            "API key set"
        };
        let _ = writeln!(out, "  upstream {name}: {} at {} ({key})", u.api.as_str(), u.base_url);
    }
    if g.keys.is_empty() {
        out.push_str("  no virtual keys: no authentication\n");
    }
    let mut keys: Vec<_> = g.keys.values().collect();
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    for k in keys {
        let caps = k
            .capabilities
            .as_ref()
            .map_or("every capability".to_string(), |c| c.join(", "));
        let lanes = k.lanes.as_ref().map_or("any lane".to_string(), |l| l.join(", "));
        let budget = if k.quotas.is_null() { "" } else { ", with a budget" };
        let _ = writeln!(out, "  key {}: {caps}; {lanes}{budget}", k.name);
    }
    let _ = writeln!(
        out,
        "  wait at most {} ms, {} attempts, bodies up to {} bytes",
        g.timeout_ms, g.max_attempts, g.max_body_bytes
    );
    out
}

fn quota(q: &QuotaConfig, shared_with: &[&str]) -> String {
    let mut s = if q.dimension == Dimension::Concurrency {
        format!("concurrency {} in flight", q.limit)
    } else {
        let mut s = format!("{} {} per {}", q.dimension.as_str(), q.limit, window(q.window_ms));
        if q.algorithm == Algorithm::FixedWindow {
            let _ = write!(s, ", fixed window");
            if q.offset_ms != 0 {
                let _ = write!(s, " (offset {})", window(q.offset_ms));
            }
        }
        if q.settle == Settle::Reserved {
            s.push_str(", settles as reserved");
        }
        if !q.count_cached {
            s.push_str(", cached input not counted");
        }
        s
    };
    let _ = write!(s, "  [key {}", q.key);
    if !shared_with.is_empty() {
        let _ = write!(s, ", shared with {}", shared_with.join(", "));
    }
    s.push(']');
    s
}

/// What the configuration says, for a person.
pub fn describe(c: &Config) -> String {
    let mut s = String::from("configuration is valid\n\n");
    let _ = writeln!(s, "providers ({}):", c.providers.len());
    for p in &c.providers {
        let _ = write!(s, "  {}", p.name);
        if let Some(price) = &p.price {
            let _ = write!(
                s,
                "  price ${}/${} per Mtok in/out",
                price.input_per_mtok, price.output_per_mtok
            );
            if let Some(cached) = price.cached_input_per_mtok {
                let _ = write!(s, " (${cached} cached in)");
            }
            if let Some(written) = price.cache_write_input_per_mtok {
                let _ = write!(s, " (${written} cache write)");
            }
        }
        let _ = writeln!(s, "  cooldown {}", window(p.cooldown_ms));
        if p.quotas.is_empty() {
            let _ = writeln!(s, "    no quotas (unlimited)");
        }
        for q in &p.quotas {
            let shared: Vec<&str> = c
                .providers
                .iter()
                .filter(|o| o.name != p.name && o.quotas.iter().any(|oq| oq.key == q.key))
                .map(|o| o.name.as_str())
                .collect();
            let _ = writeln!(s, "    {}", quota(q, &shared));
        }
    }
    let _ = writeln!(s, "\ncapabilities ({}):", c.capabilities.len());
    for cap in &c.capabilities {
        let entries: Vec<String> = cap
            .providers
            .iter()
            .map(|e| format!("{} (priority {})", e.provider, e.priority))
            .collect();
        let _ = writeln!(s, "  {}: {}", cap.name, entries.join(", "));
    }
    let _ = writeln!(s, "\nlanes, highest rank first:");
    for l in &c.lanes {
        let _ = write!(s, "  {}: headroom {}%", l.name, l.headroom * 100.0);
        if let Some(aging) = l.aging_ms {
            let _ = write!(s, ", moves up one lane per {} waited", window(aging));
        }
        let _ = writeln!(s);
    }
    let w = &c.scoring;
    let _ = writeln!(
        s,
        "\nscoring weights: quota {}, health {}, priority {}, latency {}, cost {}",
        w.quota, w.health, w.priority, w.latency, w.cost
    );
    let _ = writeln!(s, "permit ttl: {}", window(c.permit_ttl_ms));
    let store = match &c.store {
        StoreConfig::Memory => "memory (this process only)".to_string(),
        StoreConfig::Redis {
            url,
            prefix,
            timeout_ms,
            connect_timeout_ms,
            on_error,
            local_share,
            tls,
        } => {
            let mode = match on_error {
                OnError::Local => "enforce the local share",
                OnError::Open => "admit",
                OnError::Closed => "refuse",
            };
            let mut timing = format!("{timeout_ms} ms per call");
            if connect_timeout_ms != timeout_ms {
                let _ = write!(timing, " ({connect_timeout_ms} ms to connect)");
            }
            let mut tls_files = String::new();
            if let Some(t) = tls {
                for (what, file) in [("CA", &t.ca_file), ("client certificate", &t.cert_file)] {
                    if let Some(f) = file {
                        let _ = write!(tls_files, ", TLS {what} {}", f.display());
                    }
                }
            }
            format!(
                "redis at {}, keys under {{{prefix}}}, {timing}{tls_files}; shared across processes: \
                 buckets, concurrency, permits, holds and the circuit; when it does not answer: {mode} \
                 (local_share {local_share})",
                ratewise::redact_url(url)
            )
        }
    };
    let _ = writeln!(s, "store: {store}");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_store_is_described() {
        let config = Config::from_json(
            r#"{"store": {"kind": "redis", "url": "redis://10.0.0.5:6379/2", "prefix": "fleet", "on_error": "closed"}}"#,
        )
        .unwrap();
        let text = describe(&config);
        assert!(
            text.contains("store: redis at redis://10.0.0.5:6379/2, keys under {fleet}, 50 ms per call"),
            "{text}"
        );
        assert!(
            text.contains("when it does not answer: refuse") && text.contains("holds and the circuit"),
            "{text}"
        );
    }

    #[test]
    fn a_password_is_never_printed() {
        let config = Config::from_json(
            r#"{"store": {"kind": "redis", "url": "rediss://app:hunter2@cache.internal:6380/0", "timeout_ms": 80,
                "connect_timeout_ms": 30, "tls": {"ca_file": "/etc/ratewise/ca.pem"}}}"#,
        )
        .unwrap();
        let text = describe(&config);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("store: redis at rediss://app:***@cache.internal:6380/0, keys under {ratewise}, 80 ms per call (30 ms to connect), TLS CA /etc/ratewise/ca.pem;"),
            "{text}"
        );
    }

    #[test]
    fn windows_read_as_written() {
        assert_eq!(window(60_000), "1m");
        assert_eq!(window(86_400_000), "1d");
        assert_eq!(window(1_500), "1.5s");
    }
}
