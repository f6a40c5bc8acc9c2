//! The workload file: what the simulated providers really do (their own limits, hidden from the
//! engine), what traffic arrives, and what goes wrong when. Read whole and checked against the
//! configuration; every error names its JSON path.
//!
//! ```json
//! { "duration": "1h", "seed": 7, "instances": 8, "max_attempts": 4, "backoff_ms": 500,
//!   "providers": {
//!     "gpt-4o": { "style": "openai", "requests_per_minute": 5000, "tokens_per_minute": 1800000,
//!                 "latency_ms": { "median": 900, "p99": 4000 } } },
//!   "traffic": [
//!     { "name": "chat", "capability": "chat", "lane": "critical", "arrivals": { "poisson_per_s": 15 },
//!       "input_tokens": { "lognormal": { "median": 1200, "p99": 6000 } }, "max_tokens": 600,
//!       "output_tokens": { "uniform": [50, 600] }, "deadline": "30s" } ],
//!   "events": [ { "provider": "gpt-4o", "kind": "overloaded", "start": "20m", "end": "26m", "probability": 0.7 } ] }
//! ```

use ratewise::json::{self, Object};
use ratewise::{Config, Result};
use serde_json::Value;
use std::collections::BTreeMap;

fn err<T>(path: &str, message: impl AsRef<str>) -> Result<T> {
    Err(json::error(path, message.as_ref()))
}

/// How a provider counts and reports its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Requests and tokens per minute; `max_tokens` is counted at admission; `x-ratelimit-*`
    /// headers with duration resets.
    OpenAi,
    /// Requests, input tokens and output tokens per minute; output is counted as it is
    /// produced; `anthropic-ratelimit-*` headers with RFC 3339 resets.
    Anthropic,
}

/// A number drawn per request.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Always this value.
    Fixed(f64),
    /// Uniform in `[low, high]`.
    Uniform(f64, f64),
    /// Log-normal with this median and 99th percentile.
    LogNormal { median: f64, p99: f64 },
}

/// A simulated provider.
#[derive(Debug, Clone)]
pub struct SimProvider {
    /// How it counts and reports.
    pub style: Style,
    /// Requests per minute.
    pub requests_per_minute: f64,
    /// OpenAI: tokens (input + max_tokens) per minute.
    pub tokens_per_minute: Option<f64>,
    /// Anthropic: input tokens per minute.
    pub input_tokens_per_minute: Option<f64>,
    /// Anthropic: output tokens per minute.
    pub output_tokens_per_minute: Option<f64>,
    /// Latency of a successful call.
    pub latency_ms: Dist,
    /// Latency of a refused or failed call.
    pub error_latency_ms: i64,
}

/// When requests of one traffic class arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// A Poisson process with this mean rate.
    Poisson { per_s: f64 },
    /// `size` requests every `every_ms`, spread uniformly over `spread_ms`.
    Bursts { every_ms: i64, size: u64, spread_ms: i64 },
}

/// One class of traffic.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// Its name in the report.
    pub name: String,
    /// The capability it calls.
    pub capability: String,
    /// Its lane.
    pub lane: String,
    /// Arrivals start here (ms from the start).
    pub start_ms: i64,
    /// And end here.
    pub end_ms: i64,
    /// The arrival process.
    pub arrivals: Arrivals,
    /// Input tokens per request.
    pub input_tokens: Dist,
    /// The `max_tokens` each request sends (the engine's output estimate).
    pub max_tokens: u64,
    /// Output tokens actually produced (capped at `max_tokens`).
    pub output_tokens: Dist,
    /// A request not started by `arrival + deadline_ms` is lost.
    pub deadline_ms: i64,
    /// How many requests of this class may be in progress at once (a batch job's worker
    /// pool); the rest wait in the client's own queue. `None`: unbounded.
    pub workers: Option<usize>,
}

/// Something going wrong on a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// Calls answer 529 (overloaded) with this probability.
    Overloaded { probability: f64 },
    /// Every call answers 500.
    Outage,
}

/// A scheduled event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The provider.
    pub provider: String,
    /// What happens.
    pub kind: EventKind,
    /// From (ms from the start).
    pub start_ms: i64,
    /// Until.
    pub end_ms: i64,
}

/// A whole workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Simulated time.
    pub duration_ms: i64,
    /// The random seed.
    pub seed: u64,
    /// Processes of the `naive` policy, each with its own counter.
    pub instances: usize,
    /// Attempts per request (first call included) for every policy.
    pub max_attempts: u32,
    /// First backoff of the `retry`, `naive` and `cascade` policies (doubles each attempt).
    pub backoff_ms: i64,
    /// Simulated providers by configured name.
    pub providers: BTreeMap<String, SimProvider>,
    /// Traffic classes.
    pub traffic: Vec<Traffic>,
    /// Scheduled events.
    pub events: Vec<Event>,
}

/// Parses a workload duration: an integer of ms (`"250"`), or units as
/// [`ratewise::parse_duration_ms`] reads them (`"1h"`, `"90m"`, `"1h30m"`, `"1.5s"`, `"500ms"`),
/// rounded to the ms.
pub fn parse_duration(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return (ms >= 0).then_some(ms);
    }
    let ms = ratewise::parse_duration_ms(t)?;
    (ms <= 1e15).then(|| ms.round() as i64)
}

/// A duration as a person writes it: `1h`, `90m`, `1m30s`, `1.5s`, `250ms`.
pub fn format_duration(ms: i64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, len) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)] {
        if rest >= len {
            out.push_str(&format!("{}{unit}", rest / len));
            rest %= len;
        }
    }
    match rest {
        0 => {}
        r if r % 1_000 == 0 => out.push_str(&format!("{}s", r / 1_000)),
        r if out.is_empty() => out.push_str(&format!("{}s", (r as f64 / 1_000.0))),
        r => out.push_str(&format!("{}ms", r)),
    }
    out
}

/// The workload's own kinds of value, read from the core's [`Object`] (so paths, unknown keys and
/// `null`, which is absent, work as in the configuration).
trait Fields {
    /// `value`, or "is required" at `key`.
    fn need<T>(&self, key: &str, value: Option<T>) -> Result<T>;
    /// A finite number > 0.
    fn positive(&self, key: &str) -> Result<Option<f64>>;
    /// An integer > 0.
    fn count(&self, key: &str) -> Result<Option<u64>>;
    /// A duration string or an integer of ms.
    fn duration(&self, key: &str) -> Result<Option<i64>>;
    /// A number, `{"uniform": [low, high]}` or `{"lognormal": {"median", "p99"}}`.
    fn dist(&self, key: &str) -> Result<Option<Dist>>;
}

impl Fields for Object<'_> {
    fn need<T>(&self, key: &str, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| self.error(key, "is required"))
    }

    fn positive(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(self.error(key, &format!("must be a positive number, got {v}"))),
            },
        }
    }

    fn count(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(self.error(key, &format!("must be a positive integer, got {v}"))),
            },
        }
    }

    fn duration(&self, key: &str) -> Result<Option<i64>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let ms = match v {
            Value::Number(n) => n.as_i64().filter(|ms| *ms >= 0),
            Value::String(s) => parse_duration(s),
            _ => None,
        };
        match ms {
            Some(ms) => Ok(Some(ms)),
            None => Err(self.error(
                key,
                &format!("must be a duration (\"90s\", \"10m\", \"1h\") or ms, got {v}"),
            )),
        }
    }

    fn dist(&self, key: &str) -> Result<Option<Dist>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        if let Some(x) = v.as_f64() {
            return if x.is_finite() && x >= 0.0 {
                Ok(Some(Dist::Fixed(x)))
            } else {
                Err(self.error(key, "must be ≥ 0"))
            };
        }
        let o = Object::new(v, &self.at(key), &["uniform", "lognormal"])?;
        match (o.get("uniform"), o.get("lognormal")) {
            (Some(u), None) => match u.as_array().map(|a| a.iter().map(Value::as_f64).collect::<Vec<_>>()) {
                Some(a) if a.len() == 2 => match (a[0], a[1]) {
                    (Some(lo), Some(hi)) if lo >= 0.0 && hi >= lo && hi.is_finite() => Ok(Some(Dist::Uniform(lo, hi))),
                    _ => Err(o.error("uniform", "must be [low, high] with 0 ≤ low ≤ high")),
                },
                _ => Err(o.error("uniform", "must be [low, high]")),
            },
            (None, Some(l)) => {
                let l = Object::new(l, &o.at("lognormal"), &["median", "p99"])?;
                let median = l.need("median", l.positive("median")?)?;
                let p99 = l.need("p99", l.positive("p99")?)?;
                if p99 < median {
                    return Err(l.error("p99", "must be ≥ median"));
                }
                Ok(Some(Dist::LogNormal { median, p99 }))
            }
            _ => Err(self.error(
                key,
                "must be a number, {\"uniform\": [low, high]} or {\"lognormal\": {\"median\", \"p99\"}}",
            )),
        }
    }
}

impl Workload {
    /// Reads a workload file and checks it against the configuration.
    pub fn from_value(doc: &Value, config: &Config) -> Result<Workload> {
        let o = Object::new(
            doc,
            "",
            &[
                "duration",
                "seed",
                "instances",
                "max_attempts",
                "backoff_ms",
                "providers",
                "traffic",
                "events",
                "description",
            ],
        )?;
        let duration_ms = o.duration("duration")?.unwrap_or(3_600_000);
        if duration_ms == 0 {
            return err("duration", "must be > 0");
        }
        let seed = match o.get("seed") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(s) => s,
                None => return err("seed", "must be a non-negative integer"),
            },
        };
        let instances = o.count("instances")?.unwrap_or(8) as usize;
        let max_attempts = o.count("max_attempts")?.unwrap_or(4).min(100) as u32;
        let backoff_ms = o.duration("backoff_ms")?.unwrap_or(500).max(1);

        let configured: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        let providers_value = o.required("providers")?;
        // Keys are provider names here: an unknown one is told what the configuration has.
        let unknown = providers_value
            .as_object()
            .and_then(|m| m.keys().find(|k| !configured.contains(&k.as_str())));
        if let Some(name) = unknown {
            return err(
                &format!("providers.{name}"),
                format!(
                    "not a provider of the configuration (it has: {})",
                    configured.join(", ")
                ),
            );
        }
        let providers_obj = Object::new(providers_value, "providers", &configured)?;
        let mut providers = BTreeMap::new();
        for (name, spec) in providers_obj.entries() {
            providers.insert(name.to_string(), parse_provider(spec, &providers_obj.at(name))?);
        }
        for name in &configured {
            if !providers.contains_key(*name) {
                return err(
                    "providers",
                    format!("\"{name}\" is configured but not simulated: describe what it really does"),
                );
            }
        }

        let Some(traffic_items) = o.required("traffic")?.as_array() else {
            return err("traffic", "must be an array");
        };
        if traffic_items.is_empty() {
            return err("traffic", "must list at least one traffic class");
        }
        let mut traffic = Vec::new();
        for (i, t) in traffic_items.iter().enumerate() {
            traffic.push(parse_traffic(t, &format!("traffic[{i}]"), config, duration_ms)?);
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in traffic.iter().enumerate() {
            if !names.insert(t.name.clone()) {
                return err(&format!("traffic[{i}].name"), format!("duplicate name \"{}\"", t.name));
            }
        }

        let mut events = Vec::new();
        for (i, e) in o.array("events")?.iter().enumerate() {
            events.push(parse_event(e, &format!("events[{i}]"), &providers, duration_ms)?);
        }
        Ok(Workload {
            duration_ms,
            seed,
            instances,
            max_attempts,
            backoff_ms,
            providers,
            traffic,
            events,
        })
    }
}

fn parse_provider(v: &Value, path: &str) -> Result<SimProvider> {
    let o = Object::new(
        v,
        path,
        &[
            "style",
            "requests_per_minute",
            "tokens_per_minute",
            "input_tokens_per_minute",
            "output_tokens_per_minute",
            "latency_ms",
            "error_latency_ms",
        ],
    )?;
    let style = match o.opt_str("style")? {
        Some("openai") => Style::OpenAi,
        Some("anthropic") => Style::Anthropic,
        Some(other) => {
            return err(
                &o.at("style"),
                format!("unknown style \"{other}\" (openai or anthropic)"),
            );
        }
        None => return err(&o.at("style"), "is required (openai or anthropic)"),
    };
    let requests_per_minute = o.need("requests_per_minute", o.positive("requests_per_minute")?)?;
    let tokens_per_minute = o.positive("tokens_per_minute")?;
    let input_tokens_per_minute = o.positive("input_tokens_per_minute")?;
    let output_tokens_per_minute = o.positive("output_tokens_per_minute")?;
    match style {
        Style::OpenAi => {
            if tokens_per_minute.is_none() {
                return err(&o.at("tokens_per_minute"), "is required for an openai provider");
            }
            if input_tokens_per_minute.is_some() || output_tokens_per_minute.is_some() {
                return err(
                    path,
                    "an openai provider limits tokens_per_minute, not input/output tokens",
                );
            }
        }
        Style::Anthropic => {
            if input_tokens_per_minute.is_none() || output_tokens_per_minute.is_none() {
                return err(
                    path,
                    "an anthropic provider needs input_tokens_per_minute and output_tokens_per_minute",
                );
            }
            if tokens_per_minute.is_some() {
                return err(
                    &o.at("tokens_per_minute"),
                    "an anthropic provider limits input and output tokens separately",
                );
            }
        }
    }
    let latency_ms = o.dist("latency_ms")?.unwrap_or(Dist::LogNormal {
        median: 800.0,
        p99: 4_000.0,
    });
    let error_latency_ms = o.duration("error_latency_ms")?.unwrap_or(50);
    Ok(SimProvider {
        style,
        requests_per_minute,
        tokens_per_minute,
        input_tokens_per_minute,
        output_tokens_per_minute,
        latency_ms,
        error_latency_ms,
    })
}

fn parse_traffic(v: &Value, path: &str, config: &Config, duration_ms: i64) -> Result<Traffic> {
    let o = Object::new(
        v,
        path,
        &[
            "name",
            "capability",
            "lane",
            "start",
            "end",
            "arrivals",
            "input_tokens",
            "max_tokens",
            "output_tokens",
            "deadline",
            "workers",
        ],
    )?;
    let name = o.name("name")?;
    let capability = o.name("capability")?;
    if !config.capabilities.iter().any(|c| c.name == capability) {
        let known: Vec<&str> = config.capabilities.iter().map(|c| c.name.as_str()).collect();
        return err(
            &o.at("capability"),
            format!(
                "unknown capability \"{capability}\" (the configuration has: {})",
                known.join(", ")
            ),
        );
    }
    if config
        .capabilities
        .iter()
        .any(|c| c.name == capability && c.providers.is_empty())
    {
        return err(
            &o.at("capability"),
            format!("capability \"{capability}\" lists no providers: nothing could serve this traffic"),
        );
    }
    let lane = o.opt_str("lane")?.unwrap_or("normal").to_string();
    if !config.lanes.iter().any(|l| l.name == lane) {
        let known: Vec<&str> = config.lanes.iter().map(|l| l.name.as_str()).collect();
        return err(
            &o.at("lane"),
            format!("unknown lane \"{lane}\" (the configuration has: {})", known.join(", ")),
        );
    }
    let start_ms = o.duration("start")?.unwrap_or(0);
    let end_ms = o.duration("end")?.unwrap_or(duration_ms);
    if end_ms <= start_ms {
        return err(&o.at("end"), "must be after start");
    }
    let a = Object::new(
        o.required("arrivals")?,
        &o.at("arrivals"),
        &["poisson_per_s", "burst_every", "burst_size", "burst_spread"],
    )?;
    let arrivals = match (a.positive("poisson_per_s")?, a.get("burst_every")) {
        (Some(per_s), None) => Arrivals::Poisson { per_s },
        (None, Some(_)) => {
            let every_ms = a.duration("burst_every")?.filter(|ms| *ms > 0);
            let Some(every_ms) = every_ms else {
                return err(&a.at("burst_every"), "must be > 0");
            };
            let size = a.need("burst_size", a.count("burst_size")?)?;
            let spread_ms = a.duration("burst_spread")?.unwrap_or(0);
            Arrivals::Bursts {
                every_ms,
                size,
                spread_ms,
            }
        }
        _ => {
            return err(
                &o.at("arrivals"),
                "must be {\"poisson_per_s\": rate} or {\"burst_every\", \"burst_size\", \"burst_spread\"}",
            );
        }
    };
    let input_tokens = o.need("input_tokens", o.dist("input_tokens")?)?;
    let max_tokens = o.need("max_tokens", o.count("max_tokens")?)?;
    let output_tokens = o
        .dist("output_tokens")?
        .unwrap_or(Dist::Uniform(0.0, max_tokens as f64));
    let deadline_ms = o.duration("deadline")?.unwrap_or(60_000).max(1);
    let workers = o.count("workers")?.map(|n| n as usize);
    Ok(Traffic {
        name,
        capability,
        lane,
        start_ms,
        end_ms,
        arrivals,
        input_tokens,
        max_tokens,
        output_tokens,
        deadline_ms,
        workers,
    })
}

fn parse_event(v: &Value, path: &str, providers: &BTreeMap<String, SimProvider>, duration_ms: i64) -> Result<Event> {
    let o = Object::new(v, path, &["provider", "kind", "start", "end", "probability"])?;
    let provider = o.name("provider")?;
    if !providers.contains_key(&provider) {
        return err(&o.at("provider"), format!("unknown provider \"{provider}\""));
    }
    let kind = match o.opt_str("kind")? {
        Some("overloaded") => {
            let probability = o.positive("probability")?.unwrap_or(1.0);
            if probability > 1.0 {
                return err(&o.at("probability"), "must be in (0, 1]");
            }
            EventKind::Overloaded { probability }
        }
        Some("outage") => {
            if o.get("probability").is_some() {
                return err(
                    &o.at("probability"),
                    "an outage fails every call; use kind \"overloaded\" for a share",
                );
            }
            EventKind::Outage
        }
        Some(other) => {
            return err(
                &o.at("kind"),
                format!("unknown kind \"{other}\" (overloaded or outage)"),
            );
        }
        None => return err(&o.at("kind"), "is required (overloaded or outage)"),
    };
    let start_ms = o.need("start", o.duration("start")?)?;
    let end_ms = o.duration("end")?.unwrap_or(duration_ms);
    if end_ms <= start_ms {
        return err(&o.at("end"), "must be after start");
    }
    Ok(Event {
        provider,
        kind,
        start_ms,
        end_ms,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_is_absent_as_in_the_configuration() {
        let config = Config::from_json(
            r#"{"providers": [{"name": "a"}], "capabilities": [{"name": "chat", "providers": [{"provider": "a"}]}]}"#,
        )
        .unwrap();
        let mut doc = json!({
            "seed": null, "events": null,
            "providers": {"a": {"style": "openai", "requests_per_minute": 60, "tokens_per_minute": 1000, "latency_ms": null}},
            "traffic": [{"name": "t", "capability": "chat", "lane": null, "deadline": null,
                         "arrivals": {"poisson_per_s": 1}, "input_tokens": 10, "max_tokens": 5}]
        });
        let w = Workload::from_value(&doc, &config).unwrap();
        assert_eq!(
            (w.seed, w.traffic[0].lane.as_str(), w.traffic[0].deadline_ms),
            (1, "normal", 60_000)
        );
        doc["traffic"][0]["name"] = Value::Null;
        let e = Workload::from_value(&doc, &config).unwrap_err();
        assert_eq!(e.to_string(), "traffic[0].name: is required");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("250"), Some(250));
        assert_eq!(parse_duration("10 minutes"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("-5"), None);
        // The core's units, rounded to the ms.
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("1500us"), Some(2));
        for (ms, text) in [
            (3_600_000, "1h"),
            (5_400_000, "1h30m"),
            (90_000, "1m30s"),
            (1_500, "1.5s"),
            (250, "250ms"),
            (60_250, "1m250ms"),
        ] {
            assert_eq!(format_duration(ms), text);
            assert_eq!(parse_duration(text), Some(ms));
        }
    }
}
