//! `GET /admin/`: one server-rendered page for people who would rather look than read — spend
//! per key and per model, availability and latency per provider, and the cache's hit rate over
//! time — from the ledger, as HTML with inline SVG and no script.

use std::fmt::Write as _;

use ratewise_ledger::{AvailabilityRow, GroupBy, LedgerError, UsageQuery, UsageRow};

use crate::ledger::Books;

/// What the page shows, read from the ledger (blocking).
pub struct Page {
    /// The window, ms since the epoch.
    pub from_ms: i64,
    /// Exclusive end.
    pub to_ms: i64,
    /// The window as given (`24h`).
    pub window: String,
    by_key: Vec<UsageRow>,
    by_model: Vec<UsageRow>,
    by_time: Vec<UsageRow>,
    bucket_ms: i64,
    availability: Vec<AvailabilityRow>,
}

impl Page {
    /// Runs the page's queries.
    pub fn read(books: &Books, from_ms: i64, to_ms: i64, window: String) -> Result<Page, LedgerError> {
        let span = to_ms - from_ms;
        // About 24 to 60 columns whatever the window.
        let bucket_ms = [60_000, 300_000, 900_000, 3_600_000, 86_400_000]
            .into_iter()
            .find(|b| span / b <= 60)
            .unwrap_or(86_400_000);
        let q = |group_by| UsageQuery {
            from_ms,
            to_ms,
            group_by,
        };
        let mut by_key = books.usage(&q(vec![GroupBy::Key]))?;
        let mut by_model = books.usage(&q(vec![GroupBy::Model]))?;
        by_key.sort_by(|a, b| {
            b.cost_micro_usd
                .cmp(&a.cost_micro_usd)
                .then(b.requests.cmp(&a.requests))
        });
        by_model.sort_by(|a, b| {
            b.cost_micro_usd
                .cmp(&a.cost_micro_usd)
                .then(b.requests.cmp(&a.requests))
        });
        Ok(Page {
            by_time: books.usage(&q(vec![GroupBy::Time(bucket_ms)]))?,
            availability: books.availability(from_ms, to_ms)?,
            from_ms,
            to_ms,
            window,
            by_key,
            by_model,
            bucket_ms,
        })
    }

    /// The HTML.
    pub fn render(&self) -> String {
        let mut h = String::with_capacity(16 << 10);
        h.push_str(HEAD);
        let _ = write!(
            h,
            "<h1>ratewise gateway</h1><p class=sub>{} to {} (window <b>{}</b>) · \
             <a href=\"?window=1h\">1h</a> <a href=\"?window=24h\">24h</a> <a href=\"?window=7d\">7d</a> \
             <a href=\"?window=30d\">30d</a></p>",
            esc(&time(self.from_ms)),
            esc(&time(self.to_ms)),
            esc(&self.window)
        );
        let total = self.by_key.iter().fold((0, 0, 0, 0), |t, r| {
            (
                t.0 + r.requests,
                t.1 + r.cost_micro_usd,
                t.2 + r.cache_hits,
                t.3 + r.errors,
            )
        });
        let _ = write!(
            h,
            "<div class=cards><div><b>{}</b>requests</div><div><b>${}</b>spent</div>\
             <div><b>{}</b>cache hit rate</div><div><b>{}</b>errors</div></div>",
            total.0,
            usd(total.1),
            pct(total.2, total.0),
            total.3
        );
        h.push_str("<h2>Spend per key</h2>");
        spend(&mut h, "key", &self.by_key);
        h.push_str("<h2>Spend per model</h2>");
        spend(&mut h, "model", &self.by_model);
        h.push_str("<h2>Providers: availability and latency</h2>");
        self.providers(&mut h);
        let _ = write!(
            h,
            "<h2>Cache hit rate over time</h2><p class=sub>per {}</p>",
            span_name(self.bucket_ms)
        );
        self.hit_rate(&mut h);
        h.push_str("</body></html>\n");
        h
    }

    fn providers(&self, h: &mut String) {
        if self.availability.is_empty() {
            h.push_str("<p class=none>no provider events in the window</p>");
            return;
        }
        h.push_str(
            "<table><tr><th>provider<th>availability<th class=bar><th>outcomes<th>p50 ms<th>p99 ms\
             <th>429<th>503/529<th>5xx<th>timeouts<th>fallbacks<th>circuit opened / closed</tr>",
        );
        for r in &self.availability {
            let a = r.availability.unwrap_or(0.0);
            let color = if a >= 0.99 {
                "#2e7d32"
            } else if a >= 0.9 {
                "#f9a825"
            } else {
                "#c62828"
            };
            let opt = |v: Option<u64>| v.map_or("–".to_string(), |v| v.to_string());
            let _ = write!(
                h,
                "<tr><td>{}<td>{}<td class=bar>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{} / {}</tr>",
                esc(&r.provider),
                r.availability.map_or("–".into(), |a| format!("{:.2}%", a * 100.0)),
                bar(a, color),
                r.outcomes,
                opt(r.latency_p50_ms),
                opt(r.latency_p99_ms),
                r.rate_limited,
                r.overloaded,
                r.server_errors,
                r.timeouts,
                r.fallbacks,
                r.circuit_opened,
                r.circuit_closed
            );
        }
        h.push_str("</table>");
    }

    /// Columns of the hit rate per time bucket (empty buckets left blank), with the axis.
    fn hit_rate(&self, h: &mut String) {
        let n = ((self.to_ms - self.from_ms) / self.bucket_ms + 1).clamp(1, 400);
        let start = self.from_ms / self.bucket_ms * self.bucket_ms;
        let (w, ht, pad) = (720.0_f64, 160.0_f64, 28.0_f64);
        let col = (w - pad) / n as f64;
        let _ = write!(
            h,
            "<svg viewBox=\"0 0 {w} {}\" width=\"{w}\" height=\"{}\" role=img aria-label=\"cache hit rate\">",
            ht + 20.0,
            ht + 20.0
        );
        for (frac, label) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
            let y = ht - frac * (ht - 10.0);
            let _ = write!(
                h,
                "<line x1=\"{pad}\" x2=\"{w}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"0\" y=\"{:.1}\" font-size=\"10\">{label}</text>",
                y + 3.0
            );
        }
        let mut any = false;
        for r in &self.by_time {
            let Some(t) = r.group.first().and_then(|g| g.parse::<i64>().ok()) else {
                continue;
            };
            let i = (t - start) / self.bucket_ms;
            if !(0..n).contains(&i) || r.requests == 0 {
                continue;
            }
            any = true;
            let rate = r.cache_hits as f64 / r.requests as f64;
            let bh = (rate * (ht - 10.0)).max(1.0);
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#1565c0\">\
                 <title>{}: {} of {} requests from the cache</title></rect>",
                pad + i as f64 * col + 1.0,
                ht - bh,
                (col - 2.0).max(1.0),
                esc(&time(t)),
                r.cache_hits,
                r.requests
            );
        }
        let _ = write!(
            h,
            "<text x=\"{pad}\" y=\"{}\" font-size=\"10\">{}</text><text x=\"{w}\" y=\"{}\" font-size=\"10\" \
             text-anchor=\"end\">{}</text></svg>",
            ht + 16.0,
            esc(&time(start)),
            ht + 16.0,
            esc(&time(self.to_ms))
        );
        if !any {
            h.push_str("<p class=none>no requests in the window</p>");
        }
    }
}

/// A spend table with a bar per row (share of the largest cost).
fn spend(h: &mut String, what: &str, rows: &[UsageRow]) {
    if rows.is_empty() {
        h.push_str("<p class=none>no requests in the window</p>");
        return;
    }
    let top = rows.iter().map(|r| r.cost_micro_usd).max().unwrap_or(0).max(1);
    let _ = write!(
        h,
        "<table><tr><th>{what}<th>cost USD<th class=bar><th>requests<th>input tokens<th>output tokens\
         <th>cached<th>cache hits<th>errors<th>degraded</tr>"
    );
    for r in rows.iter().take(50) {
        let name = r.group.first().map(String::as_str).unwrap_or("");
        let _ = write!(
            h,
            "<tr><td>{}<td>{:.6}<td class=bar>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}</tr>",
            esc(if name.is_empty() { "–" } else { name }),
            // Micro-dollar exact: a row of a few cheap calls is not 0.0000.
            r.cost_micro_usd as f64 / 1e6,
            bar(r.cost_micro_usd as f64 / top as f64, "#6a1b9a"),
            r.requests,
            r.input_tokens,
            r.output_tokens,
            r.cached_tokens,
            r.cache_hits,
            r.errors,
            r.degraded
        );
    }
    h.push_str("</table>");
    if rows.len() > 50 {
        let _ = write!(
            h,
            "<p class=sub>and {} more (ratewise usage lists all)</p>",
            rows.len() - 50
        );
    }
}

fn bar(frac: f64, color: &str) -> String {
    let w = (frac.clamp(0.0, 1.0) * 160.0).round();
    format!("<svg width=\"160\" height=\"12\"><rect width=\"{w}\" height=\"12\" fill=\"{color}\"/></svg>")
}

fn usd(micro: u64) -> String {
    format!("{:.4}", micro as f64 / 1e6)
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn span_name(ms: i64) -> &'static str {
    match ms {
        60_000 => "minute",
        300_000 => "5 minutes",
        900_000 => "15 minutes",
        3_600_000 => "hour",
        _ => "day",
    }
}

fn time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// HTML text and attribute escaping.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = "<!doctype html><html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width,initial-scale=1\"><title>ratewise gateway</title>\
<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{margin:0}\
h2{margin-top:28px;font-size:16px}.sub{color:#666;margin:4px 0}.none{color:#888}\
table{border-collapse:collapse}th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}\
th:first-child,td:first-child{text-align:left}td.bar,th.bar{text-align:left}\
.cards{display:flex;gap:16px;margin:16px 0}.cards div{border:1px solid #ddd;border-radius:6px;padding:8px 14px}\
.cards b{display:block;font-size:20px}</style></head><body>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_key_name_may_hold() {
        assert_eq!(
            esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn renders_rows_bars_and_empty_windows() {
        let row = |g: &str, requests, hits, cost| UsageRow {
            group: vec![g.to_string()],
            requests,
            cache_hits: hits,
            cost_micro_usd: cost,
            ..UsageRow::default()
        };
        let page = Page {
            from_ms: 0,
            to_ms: 3_600_000,
            window: "1h".into(),
            by_key: vec![row("team-<a>", 10, 5, 2_000_000), row("team-b", 4, 0, 1_000_000)],
            by_model: vec![],
            by_time: vec![row("0", 10, 5, 0), row("60000", 4, 0, 0)],
            bucket_ms: 60_000,
            availability: vec![AvailabilityRow {
                provider: "gpt-eu".into(),
                outcomes: 4,
                successes: 3,
                availability: Some(0.75),
                latency_p50_ms: Some(40),
                ..AvailabilityRow::default()
            }],
        };
        let html = page.render();
        assert!(html.contains("team-&lt;a&gt;") && !html.contains("team-<a>"));
        assert!(html.contains("<b>14</b>requests") && html.contains("<b>$3.0000</b>spent"));
        assert!(html.contains("<b>35.7%</b>cache hit rate"));
        assert!(html.contains("75.00%") && html.contains("#c62828"));
        assert!(html.contains("5 of 10 requests from the cache"));
        assert!(html.contains("<svg") && !html.contains("<script"));
        // Spend per model: nothing in the window.
        assert!(html.contains("no requests in the window"));
    }
}
