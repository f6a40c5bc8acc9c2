//! Prometheus metrics with bounded labels: capability, provider, status, fault domain, lane —
//! never a key, a prompt or a user.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The capability (`-` before it is known).
    pub capability: String,
    /// The provider that answered (`-` when none).
    pub provider: String,
    /// The HTTP status sent to the client.
    pub status: String,
    /// The fault domain (`ok`, `caller_*`, `policy_refused`, `provider_error`, `gateway_error`).
    pub domain: String,
}

/// One provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// The provider.
    pub provider: String,
}

/// One provider and a token kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The provider.
    pub provider: String,
    /// `input`, `output`, `cached_input` (prompt-cache reads) or `cache_write_input` (writes);
    /// the last two are parts of `input`.
    pub kind: String,
}

/// One lane.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaneLabels {
    /// The lane.
    pub lane: String,
}

/// One attempt's outcome at a provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// The provider.
    pub provider: String,
    /// The outcome status (`success`, `rate_limited`..., `cancelled`).
    pub outcome: String,
}

/// A capability and a cache result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// The capability.
    pub capability: String,
    /// `hit`, `miss`, `bypass`, `stale` or `stored`.
    pub result: String,
}

/// A capability and a kind (tokens: `input`, `output`; degraded answers: `stale`, `static`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityKindLabels {
    /// The capability.
    pub capability: String,
    /// The kind.
    pub kind: String,
}

/// One capability.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabels {
    /// The capability.
    pub capability: String,
}

/// An alert's kind and what became of it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// `circuit_opened`, `availability_low` or `budget_share`.
    pub kind: String,
    /// `sent`, `failed` (every retry failed), `suppressed` (fired within `min_interval_s`),
    /// `dropped` (the queue was full).
    pub result: String,
}

/// Every metric of the gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by capability, provider, status and domain.
    pub requests: Family<RequestLabels, Counter>,
    /// Upstream attempts by provider and outcome.
    pub attempts: Family<AttemptLabels, Counter>,
    /// Upstream time to the response head, seconds.
    pub upstream_latency: Family<ProviderLabels, Histogram>,
    /// Time to the first byte sent to the client (streams), seconds.
    pub ttft: Family<ProviderLabels, Histogram>,
    /// The gateway's own time per request (waits and upstream excluded), seconds.
    pub overhead: Histogram,
    /// Time spent waiting for a permit, by lane, seconds.
    pub wait: Family<LaneLabels, Histogram>,
    /// Tokens settled, by provider and kind.
    pub tokens: Family<TokenLabels, Counter>,
    /// Cost settled, USD, by provider.
    pub cost_usd: Family<ProviderLabels, Counter<f64, AtomicU64>>,
    /// Circuit state per provider (0 closed, 1 half-open, 2 open), read at scrape.
    pub circuit: Family<ProviderLabels, Gauge>,
    /// Health per provider in parts per million, read at scrape.
    pub health_ppm: Family<ProviderLabels, Gauge>,
    /// Cache lookups and stores, by capability and result.
    pub cache: Family<CacheLabels, Counter>,
    /// Tokens hits saved, by capability and kind.
    pub cache_saved_tokens: Family<CapabilityKindLabels, Counter>,
    /// USD hits saved, by capability.
    pub cache_saved_usd: Family<CapabilityLabels, Counter<f64, AtomicU64>>,
    /// Bytes in the in-process cache, by capability (read at scrape).
    pub cache_bytes: Family<CapabilityLabels, Gauge>,
    /// Degraded answers, by capability and kind.
    pub degraded: Family<CapabilityKindLabels, Counter>,
    /// Ledger records and events written (brought up to date at scrape).
    pub ledger_written: Counter,
    /// Ledger records and events dropped (the queue was full).
    pub ledger_dropped: Counter,
    /// Ledger writes that failed (each retried).
    pub ledger_failed_writes: Counter,
    /// Alerts by kind and result.
    pub alerts: Family<AlertLabels, Counter>,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

fn overhead() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 16))
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ratewise_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered", requests.clone());
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register("attempts", "Upstream attempts by outcome", attempts.clone());
        let upstream_latency = Family::<ProviderLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "upstream_latency_seconds",
            "Upstream time to the response head",
            upstream_latency.clone(),
        );
        let ttft = Family::<ProviderLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "time_to_first_token_seconds",
            "Time to the first streamed byte",
            ttft.clone(),
        );
        let overhead_h = overhead();
        registry.register(
            "overhead_seconds",
            "The gateway's own time per request (waits and upstream excluded)",
            overhead_h.clone(),
        );
        let wait = Family::<LaneLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "permit_wait_seconds",
            "Time waiting for a permit, by lane",
            wait.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("tokens", "Tokens settled", tokens.clone());
        let cost_usd = Family::<ProviderLabels, Counter<f64, AtomicU64>>::default();
        registry.register("cost_usd", "Cost settled, USD", cost_usd.clone());
        let circuit = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "circuit_state",
            "Circuit state (0 closed, 1 half-open, 2 open)",
            circuit.clone(),
        );
        let health_ppm = Family::<ProviderLabels, Gauge>::default();
        registry.register("health_ppm", "Provider health, parts per million", health_ppm.clone());
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register("cache_requests", "Cache lookups and stores by result", cache.clone());
        let cache_saved_tokens = Family::<CapabilityKindLabels, Counter>::default();
        registry.register(
            "cache_saved_tokens",
            "Tokens cache hits saved",
            cache_saved_tokens.clone(),
        );
        let cache_saved_usd = Family::<CapabilityLabels, Counter<f64, AtomicU64>>::default();
        registry.register("cache_saved_usd", "USD cache hits saved", cache_saved_usd.clone());
        let cache_bytes = Family::<CapabilityLabels, Gauge>::default();
        registry.register("cache_bytes", "Bytes in the in-process cache", cache_bytes.clone());
        let degraded = Family::<CapabilityKindLabels, Counter>::default();
        registry.register("degraded", "Degraded answers (stale, static)", degraded.clone());
        let ledger_written = Counter::default();
        registry.register(
            "ledger_written",
            "Ledger records and events written",
            ledger_written.clone(),
        );
        let ledger_dropped = Counter::default();
        registry.register(
            "ledger_dropped",
            "Ledger records and events dropped (queue full)",
            ledger_dropped.clone(),
        );
        let ledger_failed_writes = Counter::default();
        registry.register(
            "ledger_failed_writes",
            "Ledger writes that failed (retried)",
            ledger_failed_writes.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register("alerts", "Webhook alerts by kind and result", alerts.clone());
        Metrics {
            alerts,
            ledger_written,
            ledger_dropped,
            ledger_failed_writes,
            cache,
            cache_saved_tokens,
            cache_saved_usd,
            cache_bytes,
            degraded,
            registry,
            requests,
            attempts,
            upstream_latency,
            ttft,
            overhead: overhead_h,
            wait,
            tokens,
            cost_usd,
            circuit,
            health_ppm,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Provider labels.
pub fn provider(name: &str) -> ProviderLabels {
    ProviderLabels {
        provider: name.to_string(),
    }
}
