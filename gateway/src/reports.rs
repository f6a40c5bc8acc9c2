//! The ledger's reports as the admin endpoints and `ratewise usage` / `ratewise availability`
//! give them: the window from `from` / `to` / `window`, the grouping, the JSON shape, and the
//! CLI's text tables.

use std::time::Duration;

use ratewise_ledger::{AvailabilityRow, GroupBy, UsageQuery, UsageRow, now_ms};
use serde_json::{Value, json};

/// A report's window from a query string: `from` and `to` (RFC 3339, or seconds since the
/// epoch), else `window` (`5m`, `24h`...) ending now; default: the last 24 hours.
pub fn window(query: &[(String, String)], default: Duration) -> Result<(i64, i64), String> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let now = now_ms();
    let to = match get("to") {
        Some(t) => parse_time(t).map_err(|e| format!("to: {e}"))?,
        None => now + 1,
    };
    let from = match (get("from"), get("window")) {
        (Some(_), Some(_)) => return Err("give from or window, not both".into()),
        (Some(f), None) => parse_time(f).map_err(|e| format!("from: {e}"))?,
        (None, Some(w)) => to - duration_ms(w).map_err(|e| format!("window: {e}"))?,
        (None, None) => to - default.as_millis() as i64,
    };
    if from >= to {
        return Err("from must be before to".into());
    }
    Ok((from, to))
}

/// RFC 3339 (`2026-12-03T10:00:00Z`) or seconds since the epoch → ms since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<i64>() {
        return secs
            .checked_mul(1000)
            .ok_or_else(|| format!("{text:?} is out of range"));
    }
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("{text:?} is neither RFC 3339 (2026-12-03T10:00:00Z) nor seconds since the epoch"))?;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(d.as_millis() as i64)
}

/// `5m`, `24h`, `7d`, `90s` → ms.
pub fn duration_ms(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text).map_err(|_| format!("{text:?} is not a duration like 5m, 24h or 7d"))?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d.as_millis().min(i64::MAX as u128) as i64)
}

/// The usage report as JSON.
pub fn usage_json(q: &UsageQuery, rows: &[UsageRow]) -> Value {
    let names: Vec<&str> = q.group_by.iter().map(|g| g.name()).collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (n, v) in names.iter().zip(&r.group) {
                o.insert((*n).to_string(), Value::String(v.clone()));
            }
            o.insert("requests".into(), json!(r.requests));
            o.insert("input_tokens".into(), json!(r.input_tokens));
            o.insert("output_tokens".into(), json!(r.output_tokens));
            o.insert("cached_tokens".into(), json!(r.cached_tokens));
            o.insert("cost_micro_usd".into(), json!(r.cost_micro_usd));
            o.insert("cost_usd".into(), json!(r.cost_micro_usd as f64 / 1e6));
            o.insert("errors".into(), json!(r.errors));
            o.insert("cache_hits".into(), json!(r.cache_hits));
            o.insert("degraded".into(), json!(r.degraded));
            Value::Object(o)
        })
        .collect();
    json!({"from_ms": q.from_ms, "to_ms": q.to_ms, "group_by": names, "rows": rows})
}

/// The availability report as JSON.
pub fn availability_json(from_ms: i64, to_ms: i64, rows: &[AvailabilityRow]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "provider": r.provider,
                "outcomes": r.outcomes,
                "successes": r.successes,
                "availability": r.availability,
                "latency_p50_ms": r.latency_p50_ms,
                "latency_p99_ms": r.latency_p99_ms,
                "rate_limited": r.rate_limited,
                "overloaded": r.overloaded,
                "server_errors": r.server_errors,
                "timeouts": r.timeouts,
                "fallbacks": r.fallbacks,
                "circuit_opened": r.circuit_opened,
                "circuit_closed": r.circuit_closed,
            })
        })
        .collect();
    json!({"from_ms": from_ms, "to_ms": to_ms, "providers": rows})
}

/// A `group_by` parameter.
pub fn group_by(query: &[(String, String)]) -> Result<Vec<GroupBy>, String> {
    match query.iter().find(|(n, _)| n == "group_by") {
        Some((_, v)) => GroupBy::parse_list(v),
        None => Ok(vec![GroupBy::Key]),
    }
}

/// A group's value for people: a time bucket as RFC 3339, the rest as stored (`-`: empty).
fn shown(g: GroupBy, v: &str) -> String {
    match g {
        GroupBy::Time(_) => match v.parse::<u64>() {
            Ok(ms) => humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string(),
            Err(_) => v.to_string(),
        },
        _ if v.is_empty() => "-".into(),
        _ => v.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
fn table(head: &[String], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(head).chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = r.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn usd(micro: u64) -> String {
    format!("{:.6}", micro as f64 / 1e6)
}

/// The usage report as a text table, with a total line when there are several rows.
pub fn usage_table(q: &UsageQuery, rows: &[UsageRow]) -> String {
    let mut head: Vec<String> = q.group_by.iter().map(|g| g.name().to_string()).collect();
    head.extend(
        [
            "requests",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "cost_usd",
            "errors",
            "cache_hits",
            "degraded",
        ]
        .map(String::from),
    );
    let line = |group: Vec<String>, r: &UsageRow| {
        let mut v = group;
        v.extend([
            r.requests.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cached_tokens.to_string(),
            usd(r.cost_micro_usd),
            r.errors.to_string(),
            r.cache_hits.to_string(),
            r.degraded.to_string(),
        ]);
        v
    };
    let mut body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| line(q.group_by.iter().zip(&r.group).map(|(g, v)| shown(*g, v)).collect(), r))
        .collect();
    if rows.len() > 1 {
        let mut t = UsageRow::default();
        for r in rows {
            t.requests += r.requests;
            t.input_tokens += r.input_tokens;
            t.output_tokens += r.output_tokens;
            t.cached_tokens += r.cached_tokens;
            t.cost_micro_usd += r.cost_micro_usd;
            t.errors += r.errors;
            t.cache_hits += r.cache_hits;
            t.degraded += r.degraded;
        }
        let mut group = vec![String::new(); q.group_by.len()];
        if let Some(first) = group.first_mut() {
            *first = "total".into();
        }
        body.push(line(group, &t));
    }
    if body.is_empty() {
        return "no requests in the window\n".into();
    }
    table(&head, &body)
}

/// The availability report as a text table.
pub fn availability_table(rows: &[AvailabilityRow]) -> String {
    if rows.is_empty() {
        return "no provider events in the window\n".into();
    }
    let head: Vec<String> = [
        "provider",
        "availability",
        "outcomes",
        "p50_ms",
        "p99_ms",
        "rate_limited",
        "overloaded",
        "server_errors",
        "timeouts",
        "fallbacks",
        "circuit_opened",
        "circuit_closed",
    ]
    .map(String::from)
    .to_vec();
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.provider.clone(),
                r.availability.map_or("-".into(), |a| format!("{:.2}%", a * 100.0)),
                r.outcomes.to_string(),
                opt(r.latency_p50_ms),
                opt(r.latency_p99_ms),
                r.rate_limited.to_string(),
                r.overloaded.to_string(),
                r.server_errors.to_string(),
                r.timeouts.to_string(),
                r.fallbacks.to_string(),
                r.circuit_opened.to_string(),
                r.circuit_closed.to_string(),
            ]
        })
        .collect();
    table(&head, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn windows() {
        assert_eq!(
            window(
                &q(&[("from", "2026-12-03T10:00:00Z"), ("to", "1796292060")]),
                Duration::ZERO
            ),
            Ok((1_796_292_000_000, 1_796_292_060_000))
        );
        let (f, t) = window(&q(&[("window", "5m")]), Duration::from_secs(60)).unwrap();
        assert_eq!(t - f, 300_000);
        let (f, t) = window(&[], Duration::from_secs(86_400)).unwrap();
        assert_eq!(t - f, 86_400_000);
        assert!(
            window(&q(&[("window", "5 parsecs")]), Duration::ZERO)
                .unwrap_err()
                .starts_with("window:")
        );
        assert!(
            window(&q(&[("from", "yesterday")]), Duration::ZERO)
                .unwrap_err()
                .starts_with("from:")
        );
        assert!(window(&q(&[("from", "20"), ("to", "10")]), Duration::ZERO).is_err());
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
    }
}
