//! The simulation's report: `report.json` (deterministic: same seed, same bytes), the terminal
//! tables, and `report.svg` (admitted rate per provider against its limit, and per-lane waits,
//! over time, one line per policy).

use ratewise::Config;
use serde_json::{Value, json};
use std::fmt::Write as _;

use crate::sim::{LaneResult, PolicyResult, ProviderResult};
use crate::workload::{Workload, format_duration};

const DIMENSIONS: [&str; 4] = ["requests", "tokens", "input_tokens", "output_tokens"];

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Fraction of its real limit a provider counted over the run, per limited dimension.
fn utilisation(p: &ProviderResult, minutes: f64) -> Vec<(&'static str, f64)> {
    DIMENSIONS
        .iter()
        .enumerate()
        .filter_map(|(d, name)| p.limits[d].map(|limit| (*name, p.used[d] / (limit * minutes))))
        .collect()
}

/// The busiest dimension's share of its limit in each minute.
fn utilisation_by_minute(p: &ProviderResult) -> Vec<f64> {
    p.used_by_minute
        .iter()
        .map(|u| (0..4).filter_map(|d| p.limits[d].map(|l| u[d] / l)).fold(0.0, f64::max))
        .collect()
}

fn p99_by_minute(l: &LaneResult) -> Vec<Option<i64>> {
    l.waits_by_minute
        .iter()
        .map(|w| {
            let mut w = w.clone();
            w.sort_unstable();
            percentile(&w, 99.0)
        })
        .collect()
}

/// Totals of one policy.
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// Successful requests.
    pub successes: u64,
    /// Lost requests.
    pub lost: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 529 answers.
    pub overloaded: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Tokens of successful calls.
    pub tokens: u64,
    /// USD.
    pub cost_usd: f64,
}

/// Sums a policy's lanes and providers.
pub fn totals(r: &PolicyResult) -> Totals {
    Totals {
        requests: r.lanes.iter().map(|l| l.requests).sum(),
        successes: r.lanes.iter().map(|l| l.successes).sum(),
        lost: r.lanes.iter().map(|l| l.lost).sum(),
        rate_limited: r.providers.iter().map(|p| p.rate_limited).sum(),
        overloaded: r.providers.iter().map(|p| p.overloaded).sum(),
        server_errors: r.providers.iter().map(|p| p.server_errors).sum(),
        tokens: r.providers.iter().map(|p| p.input_tokens + p.output_tokens).sum(),
        cost_usd: r.providers.iter().map(|p| p.cost_micro_usd).sum::<u64>() as f64 / 1e6,
    }
}

/// `report.json`.
pub fn json(w: &Workload, config: &Config, names: (&str, &str), results: &[PolicyResult]) -> Value {
    let minutes = w.duration_ms as f64 / 60_000.0;
    let policies: Vec<Value> = results
        .iter()
        .map(|r| {
            let t = totals(r);
            json!({
                "policy": r.name,
                "requests": t.requests,
                "successes": t.successes,
                "lost": t.lost,
                "calls": r.calls,
                "rate_limited_429": t.rate_limited,
                "overloaded_529": t.overloaded,
                "server_errors_5xx": t.server_errors,
                "tokens": t.tokens,
                "cost_usd": round(t.cost_usd, 4),
                "learned_limits": r.learned.iter().map(|(p, key, learned, configured)| json!({
                    "provider": p, "key": key, "learned_limit": learned, "configured_limit": configured,
                })).collect::<Vec<_>>(),
                "lanes": r.lanes.iter().zip(&config.lanes).map(|(l, c)| json!({
                    "lane": c.name,
                    "requests": l.requests,
                    "successes": l.successes,
                    "lost": l.lost,
                    "wait_p50_ms": percentile(&l.waits, 50.0),
                    "wait_p99_ms": percentile(&l.waits, 99.0),
                    "wait_max_ms": l.waits.last(),
                    "wait_p99_ms_by_minute": p99_by_minute(l),
                })).collect::<Vec<_>>(),
                "providers": r.providers.iter().zip(&config.providers).map(|(p, c)| json!({
                    "provider": c.name,
                    "calls": p.calls,
                    "successes": p.successes,
                    "rate_limited_429": p.rate_limited,
                    "overloaded_529": p.overloaded,
                    "server_errors_5xx": p.server_errors,
                    "input_tokens": p.input_tokens,
                    "output_tokens": p.output_tokens,
                    "cost_usd": round(p.cost_micro_usd as f64 / 1e6, 4),
                    "utilisation": utilisation(p, minutes).into_iter()
                        .map(|(d, u)| (d.to_string(), json!(round(u, 4)))).collect::<serde_json::Map<_, _>>(),
                    "utilisation_by_minute": utilisation_by_minute(p).into_iter().map(|u| round(u, 4)).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "config": names.0,
        "workload": names.1,
        "seed": w.seed,
        "duration_ms": w.duration_ms,
        "requests": results.first().map_or(0, |r| totals(r).requests),
        "policies": policies,
    })
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn wait(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1_000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1_000.0),
        Some(ms) => format!("{:.1}m", ms as f64 / 60_000.0),
    }
}

/// The terminal tables.
pub fn text(w: &Workload, config: &Config, results: &[PolicyResult]) -> String {
    let mut s = String::new();
    let minutes = w.duration_ms as f64 / 60_000.0;
    let requests = results.first().map_or(0, |r| totals(r).requests);
    let _ = writeln!(
        s,
        "{} requests over {} (seed {}), {} policies\n",
        thousands(requests),
        format_duration(w.duration_ms),
        w.seed,
        results.len()
    );
    let _ = writeln!(
        s,
        "{:<10} {:>9} {:>9} {:>8} {:>8} {:>7} {:>8} {:>14} {:>10}",
        "policy", "calls", "success", "429s", "529s", "5xx", "lost", "tokens", "cost"
    );
    for r in results {
        let t = totals(r);
        let _ = writeln!(
            s,
            "{:<10} {:>9} {:>9} {:>8} {:>8} {:>7} {:>8} {:>14} {:>10}",
            r.name,
            thousands(r.calls),
            thousands(t.successes),
            thousands(t.rate_limited),
            thousands(t.overloaded),
            thousands(t.server_errors),
            thousands(t.lost),
            thousands(t.tokens),
            format!("${:.2}", t.cost_usd)
        );
    }
    let _ = writeln!(s, "\nwait p50 / p99 and lost, per lane");
    let _ = write!(s, "{:<10}", "policy");
    for l in &config.lanes {
        let _ = write!(s, "   {:<28}", l.name);
    }
    let _ = writeln!(s);
    for r in results {
        let _ = write!(s, "{:<10}", r.name);
        for l in &r.lanes {
            let cell = format!(
                "{} / {}  lost {}",
                wait(percentile(&l.waits, 50.0)),
                wait(percentile(&l.waits, 99.0)),
                thousands(l.lost)
            );
            let _ = write!(s, "   {cell:<28}");
        }
        let _ = writeln!(s);
    }
    for r in results {
        for (p, key, learned, configured) in &r.learned {
            let _ = writeln!(
                s,
                "\n{} learned from response headers: {p} [{key}] allows {} (configured {})",
                r.name,
                thousands(u64::try_from(*learned).unwrap_or(0)),
                thousands(u64::try_from(*configured).unwrap_or(0))
            );
        }
    }
    let _ = writeln!(
        s,
        "\nquota utilisation per provider (busiest dimension of its real limit)"
    );
    let _ = write!(s, "{:<10}", "policy");
    for p in &config.providers {
        let _ = write!(s, " {:>16}", p.name);
    }
    let _ = writeln!(s);
    for r in results {
        let _ = write!(s, "{:<10}", r.name);
        for p in &r.providers {
            let u = utilisation(p, minutes).into_iter().map(|(_, u)| u).fold(0.0, f64::max);
            let _ = write!(s, " {:>15.1}%", u * 100.0);
        }
        let _ = writeln!(s);
    }
    let out: String = s.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    out
}

const COLORS: [&str; 4] = ["#d62728", "#ff7f0e", "#9467bd", "#2ca02c"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" axis maximum ≥ `x`.
fn nice(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= x {
            return m * p;
        }
    }
    10.0 * p
}

/// A "nice" axis maximum for milliseconds, in the unit its labels use (s or min).
fn nice_ms(ms: f64) -> f64 {
    let unit = if ms >= 60_000.0 { 60_000.0 } else { 1_000.0 };
    nice(ms / unit) * unit
}

struct Panel<'a> {
    title: String,
    /// One series per policy: a value per minute (`None`: no data that minute).
    series: Vec<Vec<Option<f64>>>,
    y_max: f64,
    y_label: &'a dyn Fn(f64) -> String,
    /// A dashed reference line (the limit).
    reference: Option<(f64, &'a str)>,
}

/// `report.svg`.
pub fn svg(w: &Workload, config: &Config, results: &[PolicyResult]) -> String {
    let percent = |v: f64| format!("{:.0}%", v * 100.0);
    let seconds = |v: f64| wait(Some(v as i64));
    let mut panels = Vec::new();
    for (i, p) in config.providers.iter().enumerate() {
        let series: Vec<Vec<Option<f64>>> = results
            .iter()
            .map(|r| utilisation_by_minute(&r.providers[i]).into_iter().map(Some).collect())
            .collect();
        let peak = series.iter().flatten().flatten().fold(0.0f64, |a, b| a.max(*b));
        panels.push(Panel {
            title: format!(
                "{}: admitted per minute, as a share of its real limit (busiest dimension; a full bucket allows bursts above it)",
                p.name
            ),
            series,
            y_max: nice(peak.max(1.2)),
            y_label: &percent,
            reference: Some((1.0, "limit")),
        });
    }
    for (i, l) in config.lanes.iter().enumerate() {
        let series: Vec<Vec<Option<f64>>> = results
            .iter()
            .map(|r| {
                p99_by_minute(&r.lanes[i])
                    .into_iter()
                    .map(|v| v.map(|ms| ms as f64))
                    .collect()
            })
            .collect();
        if series.iter().all(|s| s.iter().all(Option::is_none)) {
            continue;
        }
        let peak = series.iter().flatten().flatten().fold(0.0f64, |a, b| a.max(*b));
        panels.push(Panel {
            title: format!("lane {}: p99 wait of the calls started each minute", l.name),
            series,
            y_max: nice_ms(peak.max(1_000.0)),
            y_label: &seconds,
            reference: None,
        });
    }
    let (width, panel_h, top, left, right) = (960.0, 190.0, 60.0, 70.0, 20.0);
    let height = top + panels.len() as f64 * (panel_h + 50.0) + 20.0;
    let minutes = (w.duration_ms as f64 / 60_000.0).ceil().max(1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="24" font-size="16" font-weight="bold">ratewise simulate: {} over {} (seed {})</text>"#,
        thousands(results.first().map_or(0, |r| totals(r).requests)) + " requests",
        format_duration(w.duration_ms),
        w.seed
    );
    for (k, r) in results.iter().enumerate() {
        let x = left + k as f64 * 130.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="42" x2="{}" y2="42" stroke="{}" stroke-width="3"/><text x="{}" y="46">{}</text>"#,
            x + 24.0,
            COLORS[k % 4],
            x + 30.0,
            escape(&r.name)
        );
    }
    let plot_w = width - left - right;
    for (n, panel) in panels.iter().enumerate() {
        let y0 = top + n as f64 * (panel_h + 50.0) + 30.0;
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="{}" font-weight="bold">{}</text>"#,
            y0 - 8.0,
            escape(&panel.title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#ccc"/>"##
        );
        let ys = |v: f64| y0 + panel_h - (v / panel.y_max).clamp(0.0, 1.0) * panel_h;
        let xs = |m: f64| left + (m + 0.5) / minutes * plot_w;
        for t in 0..=4 {
            let v = panel.y_max * f64::from(t) / 4.0;
            let y = ys(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                left + plot_w,
                left - 6.0,
                y + 4.0,
                (panel.y_label)(v)
            );
        }
        let step = if minutes > 30.0 { 10.0 } else { 5.0 };
        let mut m = 0.0;
        while m <= minutes {
            let x = left + m / minutes * plot_w;
            let _ = writeln!(
                s,
                r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{m}m</text>"##,
                y0 + panel_h + 16.0
            );
            m += step;
        }
        if let Some((v, label)) = panel.reference {
            let y = ys(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#000" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
                left + plot_w,
                left + plot_w - 4.0,
                y - 4.0
            );
        }
        for (k, series) in panel.series.iter().enumerate() {
            let mut d = String::new();
            let mut pen_down = false;
            for (m, v) in series.iter().enumerate() {
                match v {
                    Some(v) => {
                        let _ = write!(
                            d,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            xs(m as f64),
                            ys(*v)
                        );
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            if !d.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.8" stroke-opacity="0.85"/>"#,
                    d.trim_end(),
                    COLORS[k % 4]
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(nice(0.93), 1.0);
        assert_eq!(nice(1.3), 2.0);
        assert_eq!(nice(3_400.0), 5_000.0);
        assert_eq!(nice_ms(250_000.0), 300_000.0);
        assert_eq!(nice_ms(3_400.0), 5_000.0);
    }
}
