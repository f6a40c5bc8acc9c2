//! Webhook alerts: a POST of JSON to `gateway.alerts.webhook_url` when a provider's circuit
//! opens, when a provider's availability over a window falls below a threshold (read from the
//! ledger), and when a key has used a configured share of its budget.
//!
//! Firing never blocks a request: alerts go through a bounded queue to one sender task, which
//! retries a failed delivery (connection error, timeout, 5xx, 429) with backoff. Each
//! `(kind, subject)` — a provider, or a key — fires at most once per `min_interval_s`; what is
//! suppressed, sent and lost is counted in `ratewise_gateway_alerts_total`.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ratewise::Error;
use ratewise::json::{self, Bound, Object};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::Secret;
use crate::metrics::AlertLabels;
use crate::state::State;
use prometheus_client::metrics::{counter::Counter, family::Family};

/// `gateway.alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Where alerts are POSTed.
    pub url: Secret,
    /// Deliveries after the first.
    pub retries: u32,
    /// One delivery's timeout, ms.
    pub timeout_ms: u64,
    /// A `(kind, subject)` fires at most once per this, ms.
    pub min_interval_ms: u64,
    /// Alert when a circuit opens.
    pub circuit_open: bool,
    /// Alert when availability falls below a threshold.
    pub availability: Option<AvailabilityRule>,
    /// Alert when a key has used this share (0–1] of a budget.
    pub budget_share: Option<f64>,
}

/// `gateway.alerts.availability`.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityRule {
    /// Fire below this availability (0–1).
    pub below: f64,
    /// Over this window, ms.
    pub window_ms: u64,
    /// Only with at least this many outcomes in the window.
    pub min_outcomes: u64,
    /// Checked this often, ms.
    pub every_ms: u64,
}

impl AlertSettings {
    /// Reads `gateway.alerts` (absent or null: no alerts).
    pub fn parse(value: Option<&Value>, ledger_on: bool) -> Result<Option<AlertSettings>, Error> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let path = "gateway.alerts";
        let o = Object::new(
            value,
            path,
            &[
                "webhook_url",
                "webhook_url_env",
                "retries",
                "timeout_ms",
                "min_interval_s",
                "circuit_open",
                "availability",
                "budget_share",
            ],
        )?;
        let url = match (o.opt_str("webhook_url")?, o.opt_str("webhook_url_env")?) {
            (Some(_), Some(_)) => {
                return Err(o.error("webhook_url_env", "give webhook_url or webhook_url_env, not both"));
            }
            (Some(u), None) => u.to_string(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| o.error("webhook_url_env", &format!("the environment variable {var} is not set")))?,
            (None, None) => return Err(o.error("webhook_url", "is required")),
        };
        if reqwest::Url::parse(&url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return Err(o.error("webhook_url", "must be an http:// or https:// URL"));
        }
        let availability = match o.get("availability").filter(|v| !v.is_null()) {
            None => None,
            Some(a) => {
                let ap = o.at("availability");
                let a = Object::new(a, &ap, &["below", "window_s", "min_outcomes", "check_every_s"])?;
                let below = a.required_number("below", Bound::NonNegative)?;
                if below > 1.0 {
                    return Err(a.error("below", "is a share: between 0 and 1"));
                }
                if !ledger_on {
                    return Err(json::error(&ap, "reads the availability log: needs gateway.ledger"));
                }
                Some(AvailabilityRule {
                    below,
                    window_ms: a.int("window_s", 300, Bound::Positive)? as u64 * 1000,
                    min_outcomes: a.int("min_outcomes", 20, Bound::Positive)? as u64,
                    every_ms: a.int("check_every_s", 30, Bound::Positive)? as u64 * 1000,
                })
            }
        };
        let budget_share = match o.get("budget_share").filter(|v| !v.is_null()) {
            None => None,
            Some(_) => {
                let s = o.required_number("budget_share", Bound::Positive)?;
                if s > 1.0 {
                    return Err(o.error("budget_share", "is a share: above 0, at most 1"));
                }
                Some(s)
            }
        };
        Ok(Some(AlertSettings {
            url: Secret::new(url),
            retries: o.int("retries", 3, Bound::NonNegative)?.min(10) as u32,
            timeout_ms: o.int("timeout_ms", 5_000, Bound::Positive)? as u64,
            min_interval_ms: o.int("min_interval_s", 300, Bound::NonNegative)? as u64 * 1000,
            circuit_open: o.bool("circuit_open", true)?,
            availability,
            budget_share,
        }))
    }
}

/// One alert.
#[derive(Debug, Clone)]
struct Alert {
    kind: &'static str,
    subject: String,
    body: Value,
}

/// The alerts of a running gateway.
pub struct Alerts {
    /// The settings.
    pub settings: AlertSettings,
    tx: mpsc::Sender<Alert>,
    last: Mutex<HashMap<(&'static str, String), Instant>>,
    metrics: Family<AlertLabels, Counter>,
}

impl Alerts {
    /// Starts the sender task (on the current runtime).
    pub fn start(settings: AlertSettings, metrics: Family<AlertLabels, Counter>) -> Result<Alerts, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .no_proxy()
            .build()
            .map_err(|e| format!("gateway.alerts: cannot build the HTTP client: {}", e.without_url()))?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(deliver(client, settings.clone(), rx, metrics.clone()));
        Ok(Alerts {
            settings,
            tx,
            last: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Fires `kind` about `subject` unless it fired less than `min_interval_s` ago.
    pub fn fire(&self, kind: &'static str, subject: &str, message: String, details: Value) {
        {
            let mut last = self.last.lock();
            let now = Instant::now();
            let key = (kind, subject.to_string());
            if let Some(t) = last.get(&key)
                && now.duration_since(*t) < Duration::from_millis(self.settings.min_interval_ms)
            {
                count(&self.metrics, kind, "suppressed");
                return;
            }
            last.insert(key, now);
        }
        let body = json!({
            "kind": kind,
            "subject": subject,
            "message": message,
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "details": details,
        });
        tracing::warn!(kind, subject, %message, "alert");
        let alert = Alert {
            kind,
            subject: subject.to_string(),
            body,
        };
        if self.tx.try_send(alert).is_err() {
            count(&self.metrics, kind, "dropped");
        }
    }
}

fn count(m: &Family<AlertLabels, Counter>, kind: &str, result: &str) {
    m.get_or_create(&AlertLabels {
        kind: kind.into(),
        result: result.into(),
    })
    .inc();
}

/// Delivers alerts one after the other, each with its retries.
async fn deliver(
    client: reqwest::Client,
    settings: AlertSettings,
    mut rx: mpsc::Receiver<Alert>,
    metrics: Family<AlertLabels, Counter>,
) {
    while let Some(alert) = rx.recv().await {
        let mut delay = Duration::from_millis(250);
        let mut sent = false;
        for attempt in 0..=settings.retries {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            let r = client
                .post(settings.url.expose())
                .header("content-type", "application/json")
                .header("user-agent", concat!("ratewise/", env!("CARGO_PKG_VERSION")))
                .body(alert.body.to_string())
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() => {
                    sent = true;
                    break;
                }
                // The receiver refused it for good: retrying will not help.
                Ok(resp) if resp.status().is_client_error() && resp.status().as_u16() != 429 => break,
                _ => {}
            }
        }
        if sent {
            count(&metrics, alert.kind, "sent");
        } else {
            count(&metrics, alert.kind, "failed");
            // The URL may carry a token: never logged.
            tracing::error!(kind = alert.kind, subject = %alert.subject, "an alert could not be delivered");
        }
    }
}

/// Checks availability every `every_ms` while the gateway runs.
pub async fn watch_availability(state: Weak<State>, rule: AvailabilityRule) {
    let mut tick = tokio::time::interval(Duration::from_millis(rule.every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        let to = ratewise_ledger::now_ms() + 1;
        let from = to - rule.window_ms as i64;
        let st = state.clone();
        let rows = tokio::task::spawn_blocking(move || st.books.as_ref().map(|b| b.availability(from, to))).await;
        let rows = match rows {
            Ok(Some(Ok(rows))) => rows,
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "the availability alert could not read the ledger");
                continue;
            }
            _ => continue,
        };
        let Some(alerts) = &state.alerts else { return };
        for r in rows {
            let Some(a) = r.availability else { continue };
            if r.outcomes >= rule.min_outcomes && a < rule.below {
                alerts.fire(
                    "availability_low",
                    &r.provider,
                    format!(
                        "provider '{}': availability {:.2}% over the last {} s (threshold {:.2}%)",
                        r.provider,
                        a * 100.0,
                        rule.window_ms / 1000,
                        rule.below * 100.0
                    ),
                    json!({
                        "provider": r.provider, "availability": a, "outcomes": r.outcomes,
                        "successes": r.successes, "rate_limited": r.rate_limited, "overloaded": r.overloaded,
                        "server_errors": r.server_errors, "timeouts": r.timeouts, "window_s": rule.window_ms / 1000,
                        "threshold": rule.below,
                    }),
                );
            }
        }
    }
}

/// Checks the keys' budgets every 5 s while the gateway runs (off the request path: one
/// snapshot of the budget engine): a key whose most-used budget quota (requests, tokens or
/// cost; concurrency is not a budget) has used `share` of its capacity fires `budget_share`.
pub async fn watch_budgets(state: Weak<State>, share: f64) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        let (Some(budgets), Some(alerts)) = (&state.budgets, &state.alerts) else {
            return;
        };
        let snap = state.blocking(|| budgets.snapshot());
        for (key, used, dimension) in budget_shares(&snap) {
            if used >= share {
                alerts.fire(
                    "budget_share",
                    &key,
                    format!("key '{key}' has used {:.1}% of its {dimension} budget", used * 100.0),
                    json!({"key": key, "dimension": dimension, "used_share": used, "threshold": share}),
                );
            }
        }
    }
}

/// Per key, its most-used budget quota: `(key, share used, dimension)`.
fn budget_shares(snapshot: &Value) -> Vec<(String, f64, String)> {
    let mut out: HashMap<String, (f64, String)> = HashMap::new();
    let Some(providers) = snapshot.get("providers").and_then(Value::as_object) else {
        return Vec::new();
    };
    for p in providers.values() {
        for q in p.get("quotas").and_then(Value::as_array).into_iter().flatten() {
            let dim = q.get("dimension").and_then(Value::as_str).unwrap_or("");
            let (Some(qkey), Some(rem), Some(cap)) = (
                q.get("key").and_then(Value::as_str),
                q.get("remaining").and_then(Value::as_i64),
                q.get("capacity").and_then(Value::as_i64),
            ) else {
                continue;
            };
            // Quota keys are `vk:<key>:<index>`.
            let Some(key) = qkey
                .strip_prefix("vk:")
                .and_then(|k| k.rsplit_once(':'))
                .map(|(k, _)| k)
            else {
                continue;
            };
            if dim == "concurrency" || cap <= 0 {
                continue;
            }
            let used = (1.0 - rem as f64 / cap as f64).clamp(0.0, 1.0);
            let e = out.entry(key.to_string()).or_insert((0.0, dim.to_string()));
            if used > e.0 {
                *e = (used, dim.to_string());
            }
        }
    }
    let mut v: Vec<(String, f64, String)> = out.into_iter().map(|(k, (u, d))| (k, u, d)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_shares_take_each_keys_most_used_quota() {
        let snap = json!({"providers": {
            "vk:team:a:gpt": {"quotas": [
                {"key": "vk:team:a:0", "dimension": "requests", "remaining": 20, "capacity": 100},
                {"key": "vk:team:a:1", "dimension": "cost", "remaining": 100, "capacity": 1000}]},
            "vk:team:a:claude": {"quotas": [
                {"key": "vk:team:a:0", "dimension": "requests", "remaining": 20, "capacity": 100}]},
            "vk:b:gpt": {"quotas": [{"key": "vk:b:0", "dimension": "concurrency", "remaining": 0, "capacity": 4}]},
            "gpt": {"quotas": [{"key": "gpt:0", "dimension": "tokens", "remaining": 0, "capacity": 9}]}}});
        assert_eq!(
            budget_shares(&snap),
            vec![("team:a".to_string(), 0.9, "cost".to_string())]
        );
    }

    #[test]
    fn settings_name_their_paths() {
        let e = |v: Value, ledger| AlertSettings::parse(Some(&v), ledger).unwrap_err().to_string();
        assert!(e(json!({}), true).contains("gateway.alerts.webhook_url"));
        assert!(e(json!({"webhook_url": "ftp://x"}), true).contains("gateway.alerts.webhook_url"));
        assert!(
            e(json!({"webhook_url": "http://x", "budget_share": 1.5}), true).contains("gateway.alerts.budget_share")
        );
        assert!(
            e(
                json!({"webhook_url": "http://x", "availability": {"below": 0.9}}),
                false
            )
            .contains("gateway.alerts.availability: reads the availability log")
        );
        let ok = AlertSettings::parse(
            Some(&json!({"webhook_url": "http://x", "availability": {"below": 0.9}})),
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.availability.unwrap().window_ms, 300_000);
        assert!(ok.circuit_open && ok.retries == 3 && ok.min_interval_ms == 300_000);
    }
}
