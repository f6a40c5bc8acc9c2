//! Configuration: one JSON document, parsed and validated once, in the core.
//!
//! Bad configuration is refused whole, with a message that names the JSON path
//! (`providers[1].quotas[0].limit: must be > 0`). This file holds the configuration types and
//! their defaults; `parse.rs` turns JSON into them, reading objects with [`json::Object`].
//!
//! # Defaults (written once, in the constants at the end of this file)
//!
//! | where | key | default |
//! |---|---|---|
//! | top level | `providers`, `capabilities` | `[]` |
//! | top level | `lanes` | `critical` (headroom 0), `normal` (headroom 0, `aging_ms` 30000), `batch` (headroom 0.3, `aging_ms` 30000) |
//! | top level | `scoring` | `quota` 0.40, `health` 0.35, `priority` 0.20, `latency` 0.05, `cost` 0.0 |
//! | top level | `health` | `half_life_ms` 300000, `min_health` 0.2, `boost_success` 0.02, `penalty_rate_limited` 0.25, `penalty_forbidden` 0.50, `penalty_server_error` 0.10, `penalty_overloaded` 0.10, `penalty_timeout` 0.20, `overload_hold_ms` 2000, `max_hold_ms` 3600000, `cooldown_after` 3, `cooldown_multiplier` 2.0, `max_cooldown_ms` 600000 |
//! | top level | `anticipation` | `rate_tau_ms` 10000 |
//! | top level | `permit_ttl_ms` | 600000 |
//! | top level | `store` | `{"kind": "memory"}`; redis: `url` `redis://127.0.0.1:6379/0`, `prefix` `ratewise`, `timeout_ms` 50, `connect_timeout_ms` = `timeout_ms`, `on_error` `local`, `local_share` 1.0, `tls` none (the system trust store) |
//! | provider | `quotas` | `[]` (unlimited) |
//! | provider | `cooldown_ms` | 30000 |
//! | provider | `model` | the provider's name |
//! | provider | `price` | none (no cost known) |
//! | price | `cached_input_per_mtok` | `input_per_mtok` (prompt-cache reads cost as much as other input) |
//! | price | `cache_write_input_per_mtok` | `input_per_mtok` (prompt-cache writes cost as much as other input) |
//! | quota | `window` | `minute` |
//! | quota | `algorithm` | `token_bucket` |
//! | quota | `settle` | `actual` |
//! | quota | `offset_ms` | 0 |
//! | quota | `count_cached` | `true` |
//! | quota | `key` | `<provider>/<dimension>/<window_ms>`, or `<provider>/concurrency` |
//! | capability entry | `priority` | 1 |
//! | lane | `headroom` | 0.0 |
//! | lane | `aging_ms` | none (the lane does not age) |
//!
//! Engine-level objects given in part take each missing key's default. Only
//! `providers[].name`, `quotas[].dimension`, `quotas[].limit`, `capabilities[].name` and
//! `lanes[].name` are required. A key whose value is `null` is absent (see [`json::Object`]).
//!
//! Readings of the contract made here (docs/design.md leaves them open):
//! - `cooldown_ms`, `overload_hold_ms`, `max_cooldown_ms` and `offset_ms` may be 0 but not negative;
//! - penalties, `boost_success` and prices are finite and ≥ 0; capability priorities are finite and ≥ 0;
//! - `local_share` is in (0, 1];
//! - a capability may list no providers (every request is then refused), but not the same one twice;
//! - names (providers, capabilities, the providers a capability lists, lanes) and quota keys hold no
//!   control character (`char::is_control`: TAB, newline, NUL, DEL, U+0080–U+009F): they become
//!   parts of store keys and of tab-joined permit records;
//! - JSON text with a key given twice in one object is refused at that key's path
//!   ([`json::parse`]), rather than keeping the last value as `serde_json` does.

pub mod json;
mod parse;

pub(crate) use json::error as cfg_err;
pub(crate) use parse::{check_capability_providers, check_shared_keys, gcd, parse_capability, parse_provider};

use crate::vocab::Dimension;

/// How a rate quota refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Continuous refill at `limit / window`.
    TokenBucket,
    /// Resets at `offset_ms + k·window` since the Unix epoch; debt carries over.
    FixedWindow,
}

/// How a reservation is settled against reported usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settle {
    /// Charge what was actually used (refund or owe the difference).
    Actual,
    /// The provider charges what was requested: `max(reserved, actual)`.
    Reserved,
}

/// One quota of a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaConfig {
    /// What it counts.
    pub dimension: Dimension,
    /// Capacity `C`.
    pub limit: i64,
    /// Window `W` in ms (0 for concurrency).
    pub window_ms: i64,
    /// Refill algorithm.
    pub algorithm: Algorithm,
    /// Settlement rule.
    pub settle: Settle,
    /// Effective key (the default key when none was configured).
    pub key: String,
    /// Offset of fixed-window boundaries, in ms.
    pub offset_ms: i64,
    /// Whether prompt-cache reads count against `input_tokens` / `tokens` quotas.
    pub count_cached: bool,
}

impl QuotaConfig {
    /// The identity a shared key must agree on (docs/design.md §12).
    fn identity(&self) -> (Dimension, i64, i64, Algorithm, Settle, i64, bool) {
        (
            self.dimension,
            self.limit,
            self.window_ms,
            self.algorithm,
            self.settle,
            self.offset_ms,
            self.count_cached,
        )
    }
}

/// A provider's price, as configured and as exact pico-USD per token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// USD per million input tokens.
    pub input_per_mtok: f64,
    /// USD per million output tokens.
    pub output_per_mtok: f64,
    /// USD per million input tokens read from the provider's prompt cache, when configured
    /// (`None`: they cost `input_per_mtok`).
    pub cached_input_per_mtok: Option<f64>,
    /// USD per million input tokens written to the provider's prompt cache, when configured
    /// (`None`: they cost `input_per_mtok`).
    pub cache_write_input_per_mtok: Option<f64>,
    /// Pico-USD per input token, `round(input_per_mtok·10^6)`.
    pub input_pico: u64,
    /// Pico-USD per output token.
    pub output_pico: u64,
    /// Pico-USD per cached input token (`input_pico` when `cached_input_per_mtok` is `None`).
    pub cached_pico: u64,
    /// Pico-USD per input token written to the prompt cache (`input_pico` when
    /// `cache_write_input_per_mtok` is `None`).
    pub cache_write_pico: u64,
}

impl Price {
    /// Cost in micro-USD, rounded up: `ceil((input·p_in + output·p_out) / 10^6)`.
    ///
    /// Never inlined: callers reach it through an `Option<Price>`, and under fat LTO LLVM
    /// hoists the (speculatable, constant-divisor) 128-bit division above the `None` check,
    /// running `__udivti3` on a `None`'s uninitialised payload and discarding the result.
    /// Harmless, but valgrind rightly reports the branch on undefined bits, and the C
    /// package is tested under valgrind.
    #[inline(never)]
    pub fn cost_micro_usd(&self, input_tokens: u64, output_tokens: u64) -> u64 {
        self.cost_with_cache(Tokens {
            input: input_tokens,
            output: output_tokens,
            ..Tokens::default()
        })
    }

    /// Cost in micro-USD of `t`, rounded up: `ceil(((input − cached − written)·p_in +
    /// cached·p_cached + written·p_write + output·p_out) / 10^6)` (docs/design.md §3). Reads
    /// and writes are parts of `input`; more than `input` counts as all of it, reads first. Out
    /// of line for the reason given above.
    #[inline(never)]
    pub fn cost_with_cache(&self, t: Tokens) -> u64 {
        u64::try_from(self.cost_pico(t).div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    /// The same cost in USD, before rounding to micro-USD (for display: `x-ratewise-cost-usd`,
    /// a cost counter): the same pico-USD sum, so it never disagrees with the exact figure.
    pub fn cost_usd(&self, t: Tokens) -> f64 {
        self.cost_pico(t) as f64 / 1e12
    }

    /// The price as configuration (`providers[].price`), which parses back to it: for a
    /// configuration built from another's prices.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("input_per_mtok".into(), self.input_per_mtok.into());
        m.insert("output_per_mtok".into(), self.output_per_mtok.into());
        if let Some(c) = self.cached_input_per_mtok {
            m.insert("cached_input_per_mtok".into(), c.into());
        }
        if let Some(w) = self.cache_write_input_per_mtok {
            m.insert("cache_write_input_per_mtok".into(), w.into());
        }
        serde_json::Value::Object(m)
    }

    /// The cost of `t` in pico-USD, exactly.
    fn cost_pico(&self, t: Tokens) -> u128 {
        let (plain, cached, written) = t.input_parts();
        plain as u128 * self.input_pico as u128
            + cached as u128 * self.cached_pico as u128
            + written as u128 * self.cache_write_pico as u128
            + t.output as u128 * self.output_pico as u128
    }
}

/// The tokens a call is priced on: its input (prompt-cache reads and writes included) and
/// its output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens, all of them.
    pub input: u64,
    /// Of `input`, those read from the provider's prompt cache.
    pub cached_input: u64,
    /// Of `input`, those written to the provider's prompt cache.
    pub cache_write_input: u64,
    /// Output tokens.
    pub output: u64,
}

impl Tokens {
    /// `(plain, read, written)`: the input split by price, summing to `input` (reads first,
    /// then writes, each cut to what is left).
    fn input_parts(&self) -> (u64, u64, u64) {
        let cached = self.cached_input.min(self.input);
        let written = self.cache_write_input.min(self.input - cached);
        (self.input - cached - written, cached, written)
    }
}

/// One provider (a model deployment behind one set of quotas).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Unique name.
    pub name: String,
    /// Quotas, in configuration order.
    pub quotas: Vec<QuotaConfig>,
    /// Base circuit cooldown.
    pub cooldown_ms: i64,
    /// Price, when known.
    pub price: Option<Price>,
    /// The upstream model to call (default: the provider's name), returned on every decision
    /// and permit.
    pub model: String,
}

/// One provider of a capability, with its priority.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilityEntry {
    /// Provider name.
    pub provider: String,
    /// Priority (higher is preferred).
    pub priority: f64,
}

/// A named group of interchangeable providers.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilityConfig {
    /// Unique name.
    pub name: String,
    /// Providers in capability order.
    pub providers: Vec<CapabilityEntry>,
}

/// A priority lane.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneConfig {
    /// Unique name.
    pub name: String,
    /// Fraction of every quota the lane must leave untouched, in [0, 1).
    pub headroom: f64,
    /// `round(headroom·10^6)`.
    pub headroom_ppm: i64,
    /// A waiter moves one lane up per `aging_ms` waited; `None` never ages.
    pub aging_ms: Option<i64>,
}

/// Weights of the score terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoringWeights {
    /// Weight of Q.
    pub quota: f64,
    /// Weight of H.
    pub health: f64,
    /// Weight of P.
    pub priority: f64,
    /// Weight of L.
    pub latency: f64,
    /// Weight of K.
    pub cost: f64,
}

/// Health, hold and circuit parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    /// Health recovers half way to 1 in this time.
    pub half_life_ms: i64,
    /// Below this a provider is `unhealthy`.
    pub min_health: f64,
    /// Added on success and client error.
    pub boost_success: f64,
    /// Subtracted on a 429 without retry-after.
    pub penalty_rate_limited: f64,
    /// Subtracted on 401/403.
    pub penalty_forbidden: f64,
    /// Subtracted on other 5xx.
    pub penalty_server_error: f64,
    /// Subtracted on 503/529 without retry-after.
    pub penalty_overloaded: f64,
    /// Subtracted on timeouts.
    pub penalty_timeout: f64,
    /// Hold after `overloaded` without retry-after.
    pub overload_hold_ms: i64,
    /// The longest hold anything may set (a retry-after of years holds this long).
    pub max_hold_ms: i64,
    /// Consecutive failures that open the circuit.
    pub cooldown_after: i64,
    /// Growth of the cooldown per re-opening.
    pub cooldown_multiplier: f64,
    /// Cap of the cooldown.
    pub max_cooldown_ms: i64,
}

/// What happens when the shared store does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Enforce `local_share` of every limit in memory until the store answers.
    Local,
    /// Admit, counting locally.
    Open,
    /// Refuse with `store_unavailable`.
    Closed,
}

/// Where shared state lives. Its `Debug` prints the URL redacted (see [`redact_url`]).
#[derive(Clone, PartialEq)]
pub enum StoreConfig {
    /// In-process (the default).
    Memory,
    /// A Redis server shared by many processes.
    Redis {
        /// Connection URL (`redis://` or, with TLS, `rediss://`; it may carry a user name and a
        /// password).
        url: String,
        /// Key prefix (also the hash tag).
        prefix: String,
        /// Bound of every call, all of it: connecting, loading the script, a retry on a fresh
        /// connection.
        timeout_ms: i64,
        /// Bound of opening a connection (TCP, TLS handshake, AUTH), within `timeout_ms`.
        connect_timeout_ms: i64,
        /// Behaviour when Redis does not answer.
        on_error: OnError,
        /// Share of every limit enforced locally in `local` mode.
        local_share: f64,
        /// Certificate files for a `rediss://` URL; `None`: the system trust store, no client
        /// certificate.
        tls: Option<StoreTls>,
    },
}

/// TLS files of a `rediss://` store, read when the engine is built (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreTls {
    /// CA certificates to trust instead of the system trust store (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (chain), for servers that require one; given with `key_file`.
    pub cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Memory => f.write_str("Memory"),
            StoreConfig::Redis {
                url,
                prefix,
                timeout_ms,
                connect_timeout_ms,
                on_error,
                local_share,
                tls,
            } => f
                .debug_struct("Redis")
                .field("url", &redact_url(url))
                .field("prefix", prefix)
                .field("timeout_ms", timeout_ms)
                .field("connect_timeout_ms", connect_timeout_ms)
                .field("on_error", on_error)
                .field("local_share", local_share)
                .field("tls", tls)
                .finish(),
        }
    }
}

/// A store URL as it may be printed: the password (and a `pass`/`password` query value)
/// replaced by `***`. Everything that shows a store URL (error messages, `ratewise check`,
/// `Debug`) prints it through here.
///
/// ```
/// use ratewise::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@10.0.0.5:6379/0"), "redis://:***@10.0.0.5:6379/0");
/// assert_eq!(redact_url("rediss://app:s3cret@cache.internal:6380/2"), "rediss://app:***@cache.internal:6380/2");
/// assert_eq!(redact_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
/// assert_eq!(redact_url("redis+unix:///run/redis.sock?pass=x&db=1"), "redis+unix:///run/redis.sock?pass=***&db=1");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL: nothing here can be told apart from a secret.
        return if url.contains('@') {
            "***".into()
        } else {
            url.to_string()
        };
    };
    // The user information ends at the last `@` (a password with an unescaped `/`, `?` or `#`
    // is still hidden whole; a stray `@` later on hides too much, never too little).
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    match userinfo.map(|u| u.split_once(':')) {
        Some(Some((user, _password))) => {
            out.push_str(user);
            out.push_str(":***");
        }
        // A user name alone (`redis://name@host`).
        Some(None) => out.push_str(userinfo.unwrap_or_default()),
        None => {}
    }
    let (before, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    out.push_str(before);
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k == "pass" || k == "password" => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Providers in configuration order.
    pub providers: Vec<ProviderConfig>,
    /// Capabilities in configuration order.
    pub capabilities: Vec<CapabilityConfig>,
    /// Lanes in rank order (first is highest).
    pub lanes: Vec<LaneConfig>,
    /// Score weights.
    pub scoring: ScoringWeights,
    /// Health parameters.
    pub health: HealthConfig,
    /// Time constant of the consumption-rate estimate, in ms.
    pub rate_tau_ms: i64,
    /// A permit not completed in this time expires.
    pub permit_ttl_ms: i64,
    /// Where shared state lives.
    pub store: StoreConfig,
}
impl Config {
    /// The lane a request that names none runs in.
    pub fn default_lane_index(&self) -> usize {
        self.lanes.iter().position(|l| l.name == DEFAULT_LANE).unwrap_or(0)
    }
}

/// Largest `C·S` for which every value stays exact in i64 and in doubles.
pub(crate) const MAX_SCALED_CAPACITY: u128 = 1 << 53;

// The defaults, each written once (the table at the top of this file lists them for readers).

/// The lane of a request that names none; a configuration's lanes must include it.
pub(crate) const DEFAULT_LANE: &str = "normal";

/// The lanes of a configuration that gives none, in rank order: `(name, headroom, aging_ms)`.
pub(crate) const DEFAULT_LANES: [(&str, f64, Option<i64>); 3] = [
    ("critical", 0.0, None),
    (DEFAULT_LANE, 0.0, Some(30_000)),
    ("batch", 0.3, Some(30_000)),
];

/// A lane's `headroom` when it gives none (its `aging_ms` default is `None`: it does not age).
pub(crate) const DEFAULT_HEADROOM: f64 = 0.0;

/// A provider's base circuit cooldown.
pub(crate) const DEFAULT_COOLDOWN_MS: i64 = 30_000;

/// A quota's window (`minute`).
pub(crate) const DEFAULT_WINDOW_MS: i64 = 60_000;

/// A quota's refill algorithm.
pub(crate) const DEFAULT_ALGORITHM: Algorithm = Algorithm::TokenBucket;

/// A quota's settlement rule.
pub(crate) const DEFAULT_SETTLE: Settle = Settle::Actual;

/// Where a fixed window's boundaries start.
pub(crate) const DEFAULT_OFFSET_MS: i64 = 0;

/// Whether prompt-cache reads count against `input_tokens` / `tokens` quotas.
pub(crate) const DEFAULT_COUNT_CACHED: bool = true;

/// A capability entry's priority.
pub(crate) const DEFAULT_PRIORITY: f64 = 1.0;

/// `anticipation.rate_tau_ms`.
pub(crate) const DEFAULT_RATE_TAU_MS: i64 = 10_000;

/// `permit_ttl_ms`.
pub(crate) const DEFAULT_PERMIT_TTL_MS: i64 = 600_000;

/// The redis store's `url`.
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// The redis store's key `prefix`.
pub(crate) const DEFAULT_REDIS_PREFIX: &str = "ratewise";

/// The redis store's `timeout_ms`.
pub(crate) const DEFAULT_REDIS_TIMEOUT_MS: i64 = 50;

/// The redis store's `on_error`.
pub(crate) const DEFAULT_ON_ERROR: OnError = OnError::Local;

/// The redis store's `local_share`.
pub(crate) const DEFAULT_LOCAL_SHARE: f64 = 1.0;

impl ScoringWeights {
    /// `scoring` when it is not given (each missing key takes its weight from here).
    pub(crate) const DEFAULT: ScoringWeights = ScoringWeights {
        quota: 0.40,
        health: 0.35,
        priority: 0.20,
        latency: 0.05,
        cost: 0.0,
    };
}

impl HealthConfig {
    /// `health` when it is not given (each missing key takes its value from here).
    pub(crate) const DEFAULT: HealthConfig = HealthConfig {
        half_life_ms: 300_000,
        min_health: 0.2,
        boost_success: 0.02,
        penalty_rate_limited: 0.25,
        penalty_forbidden: 0.50,
        penalty_server_error: 0.10,
        penalty_overloaded: 0.10,
        penalty_timeout: 0.20,
        overload_hold_ms: 2_000,
        max_hold_ms: 3_600_000,
        cooldown_after: 3,
        cooldown_multiplier: 2.0,
        max_cooldown_ms: 600_000,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_rounds_to_pico() {
        let p = Price {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
            cached_input_per_mtok: None,
            cache_write_input_per_mtok: None,
            input_pico: 2_500_000,
            output_pico: 10_000_000,
            cached_pico: 2_500_000,
            cache_write_pico: 2_500_000,
        };
        // 1000·2.5e6 + 500·1e7 = 7.5e9 pico = 7500 micro-USD exactly; one more token rounds up.
        assert_eq!(p.cost_micro_usd(1000, 500), 7500);
        assert_eq!(p.cost_micro_usd(1001, 500), 7503);
        assert_eq!(p.cost_micro_usd(1, 0), 3);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_price_as_json_parses_back_to_itself() {
        for price in [
            serde_json::json!({"input_per_mtok": 2.5, "output_per_mtok": 10.0}),
            serde_json::json!({"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_per_mtok": 0.3,
                "cache_write_input_per_mtok": 3.75}),
        ] {
            let c = Config::from_value(&serde_json::json!({"providers": [{"name": "a", "price": price}]})).unwrap();
            let p = c.providers[0].price.unwrap();
            assert_eq!(p.to_json(), price);
        }
    }
}
