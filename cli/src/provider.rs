//! A simulated provider that behaves as the providers document: continuously replenishing
//! token buckets (its own limits, which the engine does not see), 429 with `retry-after` and
//! rate-limit headers in the provider's style, OpenAI counting `max_tokens` at admission,
//! Anthropic counting output as it is produced, and 529s or outages on a schedule.

use crate::rng::Rng;
use crate::workload::{EventKind, SimProvider, Style, Workload};

/// The simulation's epoch: 2026-01-01T00:00:00Z, so that header instants look real.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// A continuously replenishing bucket of `cap` units per minute.
#[derive(Debug, Clone)]
struct Bucket {
    cap: f64,
    level: f64,
    at: i64,
}

impl Bucket {
    fn per_minute(cap: f64) -> Bucket {
        Bucket { cap, level: cap, at: 0 }
    }
    fn refill(&mut self, now: i64) {
        if now > self.at {
            self.level = (self.level + (now - self.at) as f64 * self.cap / 60_000.0).min(self.cap);
            self.at = now;
        }
    }
    /// Ms until `n` units are available (0 when they are).
    fn wait_for(&self, n: f64) -> i64 {
        let need = n.min(self.cap) - self.level;
        if need <= 0.0 {
            0
        } else {
            (need * 60_000.0 / self.cap).ceil() as i64
        }
    }
    fn remaining(&self) -> i64 {
        self.level.max(0.0).floor() as i64
    }
    fn to_full(&self) -> i64 {
        self.wait_for(self.cap)
    }
}

/// How a call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200.
    Success,
    /// 429.
    RateLimited,
    /// 529.
    Overloaded,
    /// 500.
    ServerError,
}

impl Answer {
    /// The HTTP status the provider answers with.
    pub fn http(self) -> i64 {
        match self {
            Answer::Success => 200,
            Answer::RateLimited => 429,
            Answer::Overloaded => 529,
            Answer::ServerError => 500,
        }
    }
}

/// A provider's answer, known at admission and delivered after `latency_ms`.
#[derive(Debug, Clone)]
pub struct Response {
    /// The answer.
    pub answer: Answer,
    /// When it arrives, from the call.
    pub latency_ms: i64,
    /// The response headers.
    pub headers: Vec<(String, String)>,
}

/// Units a provider charged, by dimension: requests, tokens, input tokens, output tokens.
pub type Usage = [f64; 4];

/// One simulated provider's live state.
#[derive(Debug, Clone)]
pub struct Live {
    index: u64,
    spec: SimProvider,
    requests: Bucket,
    tokens: Option<Bucket>,
    input: Option<Bucket>,
    output: Option<Bucket>,
    /// (start, end, kind) of its scheduled events.
    events: Vec<(i64, i64, EventKind)>,
}

impl Live {
    /// Provider number `index` of the workload, as configured under `name`.
    pub fn new(index: u64, name: &str, workload: &Workload) -> Option<Live> {
        let spec = workload.providers.get(name)?.clone();
        Some(Live {
            index,
            requests: Bucket::per_minute(spec.requests_per_minute),
            tokens: spec.tokens_per_minute.map(Bucket::per_minute),
            input: spec.input_tokens_per_minute.map(Bucket::per_minute),
            output: spec.output_tokens_per_minute.map(Bucket::per_minute),
            events: workload
                .events
                .iter()
                .filter(|e| e.provider == name)
                .map(|e| (e.start_ms, e.end_ms, e.kind.clone()))
                .collect(),
            spec,
        })
    }

    /// Its limits per minute, by dimension (`None`: not limited).
    pub fn limits(&self) -> [Option<f64>; 4] {
        [
            Some(self.spec.requests_per_minute),
            self.spec.tokens_per_minute,
            self.spec.input_tokens_per_minute,
            self.spec.output_tokens_per_minute,
        ]
    }

    /// A call at `now` of `input` tokens with `max_tokens`: the answer and what it charged.
    /// `seed` and `labels` name the call's random stream.
    pub fn call(&mut self, now: i64, input: u64, max_tokens: u64, rng: &mut Rng) -> (Response, Usage) {
        let mut usage = [0.0; 4];
        let coin = rng.unit();
        let latency = rng.draw(&self.spec.latency_ms).round().max(1.0) as i64;
        for (start, end, kind) in &self.events {
            if now < *start || now >= *end {
                continue;
            }
            let answer = match kind {
                EventKind::Outage => Answer::ServerError,
                EventKind::Overloaded { probability } if coin < *probability => Answer::Overloaded,
                EventKind::Overloaded { .. } => continue,
            };
            return (
                Response {
                    answer,
                    latency_ms: self.spec.error_latency_ms.max(1),
                    headers: Vec::new(),
                },
                usage,
            );
        }
        self.refill(now);
        let (input, max_tokens) = (input as f64, max_tokens as f64);
        let mut wait = self.requests.wait_for(1.0);
        match self.spec.style {
            Style::OpenAi => {
                if let Some(t) = &self.tokens {
                    wait = wait.max(t.wait_for(input + max_tokens));
                }
            }
            Style::Anthropic => {
                if let Some(i) = &self.input {
                    wait = wait.max(i.wait_for(input));
                }
                if let Some(o) = &self.output {
                    // Output is counted as it is produced: a call is refused only while the
                    // output bucket is empty (in debt).
                    wait = wait.max(o.wait_for(1.0));
                }
            }
        }
        let answer = if wait > 0 {
            Answer::RateLimited
        } else {
            self.requests.level -= 1.0;
            usage[0] = 1.0;
            match self.spec.style {
                Style::OpenAi => {
                    if let Some(t) = &mut self.tokens {
                        t.level -= input + max_tokens;
                        usage[1] = input + max_tokens;
                    }
                }
                Style::Anthropic => {
                    if let Some(i) = &mut self.input {
                        i.level -= input;
                        usage[2] = input;
                    }
                }
            }
            Answer::Success
        };
        let mut headers = self.headers(now);
        let latency_ms = if answer == Answer::RateLimited {
            headers.push(("retry-after".into(), ((wait + 999) / 1000).max(1).to_string()));
            self.spec.error_latency_ms.max(1)
        } else {
            latency
        };
        (
            Response {
                answer,
                latency_ms,
                headers,
            },
            usage,
        )
    }

    /// A successful call finished at `now` having produced `output` tokens: Anthropic counts
    /// them now. Returns what was charged.
    pub fn finish(&mut self, now: i64, output: u64) -> Usage {
        let mut usage = [0.0; 4];
        if self.spec.style == Style::Anthropic {
            self.refill(now);
            if let Some(o) = &mut self.output {
                o.level -= output as f64;
                usage[3] = output as f64;
            }
        }
        usage
    }

    /// The random stream label of this provider.
    pub fn label(&self) -> u64 {
        self.index
    }

    fn refill(&mut self, now: i64) {
        self.requests.refill(now);
        for b in [&mut self.tokens, &mut self.input, &mut self.output]
            .into_iter()
            .flatten()
        {
            b.refill(now);
        }
    }

    fn headers(&self, now: i64) -> Vec<(String, String)> {
        let mut h = Vec::with_capacity(9);
        match self.spec.style {
            Style::OpenAi => {
                for (dim, b) in [("requests", Some(&self.requests)), ("tokens", self.tokens.as_ref())] {
                    if let Some(b) = b {
                        h.push((format!("x-ratelimit-limit-{dim}"), format!("{}", b.cap.round() as i64)));
                        h.push((format!("x-ratelimit-remaining-{dim}"), b.remaining().to_string()));
                        h.push((format!("x-ratelimit-reset-{dim}"), go_duration(b.to_full())));
                    }
                }
            }
            Style::Anthropic => {
                for (dim, b) in [
                    ("requests", Some(&self.requests)),
                    ("input-tokens", self.input.as_ref()),
                    ("output-tokens", self.output.as_ref()),
                ] {
                    if let Some(b) = b {
                        h.push((
                            format!("anthropic-ratelimit-{dim}-limit"),
                            format!("{}", b.cap.round() as i64),
                        ));
                        h.push((
                            format!("anthropic-ratelimit-{dim}-remaining"),
                            b.remaining().to_string(),
                        ));
                        h.push((
                            format!("anthropic-ratelimit-{dim}-reset"),
                            rfc3339(EPOCH_MS + now + b.to_full()),
                        ));
                    }
                }
            }
        }
        h
    }
}

/// A duration as OpenAI writes its resets: `20ms`, `1.428s`, `6m0s`.
pub fn go_duration(ms: i64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (minutes, rest) = (ms / 60_000, ms % 60_000);
    let seconds = if rest % 1_000 == 0 {
        format!("{}", rest / 1_000)
    } else {
        format!("{}.{:03}", rest / 1_000, rest % 1_000)
            .trim_end_matches('0')
            .to_string()
    };
    if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Unix ms as an RFC 3339 instant in UTC, to the second (`2026-01-01T00:00:12Z`), rounded up.
pub fn rfc3339(unix_ms: i64) -> String {
    let secs = (unix_ms + 999).div_euclid(1_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::workload::{Dist, Event};
    use std::collections::BTreeMap;

    fn live(style: Style, events: Vec<Event>) -> Live {
        let spec = SimProvider {
            style,
            requests_per_minute: 100.0,
            tokens_per_minute: (style == Style::OpenAi).then_some(1_000.0),
            input_tokens_per_minute: (style == Style::Anthropic).then_some(1_000.0),
            output_tokens_per_minute: (style == Style::Anthropic).then_some(100.0),
            latency_ms: Dist::Fixed(700.0),
            error_latency_ms: 40,
        };
        let w = Workload {
            duration_ms: 60_000,
            seed: 1,
            instances: 1,
            max_attempts: 1,
            backoff_ms: 1,
            providers: BTreeMap::from([("p".to_string(), spec)]),
            traffic: Vec::new(),
            events,
        };
        Live::new(0, "p", &w).expect("p is simulated")
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn openai_counts_max_tokens_at_admission_and_answers_429_with_retry_after() {
        let mut p = live(Style::OpenAi, Vec::new());
        let mut rng = Rng::stream(1, &[]);
        let (ok, usage) = p.call(0, 600, 300, &mut rng);
        assert_eq!(ok.answer, Answer::Success);
        assert_eq!(ok.latency_ms, 700);
        assert_eq!(usage, [1.0, 900.0, 0.0, 0.0]);
        assert_eq!(header(&ok, "x-ratelimit-limit-tokens"), Some("1000"));
        assert_eq!(header(&ok, "x-ratelimit-remaining-tokens"), Some("100"));
        assert_eq!(header(&ok, "x-ratelimit-reset-tokens"), Some("54s"));
        // 200 more tokens need 100 more than are left: 6 s of refill at 1,000 a minute.
        let (refused, usage) = p.call(0, 100, 100, &mut rng);
        assert_eq!(refused.answer, Answer::RateLimited);
        assert_eq!(refused.latency_ms, 40);
        assert_eq!(usage, [0.0; 4]);
        assert_eq!(header(&refused, "retry-after"), Some("6"));
        assert_eq!(p.call(6_000, 100, 100, &mut rng).0.answer, Answer::Success);
    }

    #[test]
    fn anthropic_counts_output_as_produced() {
        let mut p = live(Style::Anthropic, Vec::new());
        let mut rng = Rng::stream(1, &[]);
        let (ok, usage) = p.call(0, 500, 4_000, &mut rng);
        assert_eq!(ok.answer, Answer::Success, "max_tokens is not counted at admission");
        assert_eq!(usage, [1.0, 0.0, 500.0, 0.0]);
        assert_eq!(header(&ok, "anthropic-ratelimit-input-tokens-remaining"), Some("500"));
        assert_eq!(
            header(&ok, "anthropic-ratelimit-input-tokens-reset"),
            Some("2026-01-01T00:00:30Z")
        );
        assert_eq!(p.finish(700, 150), [0.0, 0.0, 0.0, 150.0]);
        // The output bucket is 50 in debt (plus 700 ms of refill): refused until it holds 1.
        let (refused, _) = p.call(700, 10, 10, &mut rng);
        assert_eq!(refused.answer, Answer::RateLimited);
        assert_eq!(header(&refused, "retry-after"), Some("31"));
    }

    #[test]
    fn scheduled_events_fail_calls_without_charging() {
        let events = vec![
            Event {
                provider: "p".into(),
                kind: EventKind::Overloaded { probability: 1.0 },
                start_ms: 1_000,
                end_ms: 2_000,
            },
            Event {
                provider: "p".into(),
                kind: EventKind::Outage,
                start_ms: 2_000,
                end_ms: 3_000,
            },
        ];
        let mut p = live(Style::OpenAi, events);
        let mut rng = Rng::stream(1, &[]);
        let (r, usage) = p.call(1_500, 10, 10, &mut rng);
        assert_eq!((r.answer, usage), (Answer::Overloaded, [0.0; 4]));
        assert!(r.headers.is_empty());
        assert_eq!(p.call(2_000, 10, 10, &mut rng).0.answer, Answer::ServerError);
        assert_eq!(p.call(3_000, 10, 10, &mut rng).0.answer, Answer::Success);
    }

    #[test]
    fn reset_formats() {
        assert_eq!(go_duration(20), "20ms");
        assert_eq!(go_duration(1_428), "1.428s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(360_000), "6m0s");
        assert_eq!(go_duration(75_250), "1m15.25s");
        assert_eq!(rfc3339(EPOCH_MS), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(EPOCH_MS + 12_001), "2026-01-01T00:00:13Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
