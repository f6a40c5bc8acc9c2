//! Configuration: one JSON document, parsed and validated once, in the core.
//!
//! Bad configuration is refused whole, with a message that names the JSON path
//! (`providers[1].quotas[0].limit: must be > 0`).
//!
//! # Defaults (the only place they are written down)
//!
//! | where | key | default |
//! |---|---|---|
//! | top level | `providers`, `capabilities` | `[]` |
//! | top level | `lanes` | `critical` (headroom 0), `normal` (headroom 0, `aging_ms` 30000), `batch` (headroom 0.3, `aging_ms` 30000) |
//! | top level | `scoring` | `quota` 0.40, `health` 0.35, `priority` 0.20, `latency` 0.05, `cost` 0.0 |
//! | top level | `health` | `half_life_ms` 300000, `min_health` 0.2, `boost_success` 0.02, `penalty_rate_limited` 0.25, `penalty_forbidden` 0.50, `penalty_server_error` 0.10, `penalty_overloaded` 0.10, `penalty_timeout` 0.20, `overload_hold_ms` 2000, `cooldown_after` 3, `cooldown_multiplier` 2.0, `max_cooldown_ms` 600000 |
//! | top level | `anticipation` | `rate_tau_ms` 10000 |
//! | top level | `permit_ttl_ms` | 600000 |
//! | top level | `store` | `{"kind": "memory"}`; redis: `url` `redis://127.0.0.1:6379/0`, `prefix` `ratewise`, `timeout_ms` 50, `on_error` `local`, `local_share` 1.0 |
//! | provider | `quotas` | `[]` (unlimited) |
//! | provider | `cooldown_ms` | 30000 |
//! | provider | `price` | none (no cost known) |
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
//! `lanes[].name` are required.
//!
//! Readings of the contract made here (docs/design.md leaves them open):
//! - `cooldown_ms`, `overload_hold_ms`, `max_cooldown_ms` and `offset_ms` may be 0 but not negative;
//! - penalties, `boost_success` and prices are finite and ≥ 0; capability priorities are finite and ≥ 0;
//! - `local_share` is in (0, 1];
//! - a capability may list no providers (every request is then refused), but not the same one twice.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
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
    /// Pico-USD per input token, `round(input_per_mtok·10^6)`.
    pub input_pico: u64,
    /// Pico-USD per output token.
    pub output_pico: u64,
}

impl Price {
    /// Cost in micro-USD, rounded up: `ceil((input·p_in + output·p_out) / 10^6)`.
    pub fn cost_micro_usd(&self, input_tokens: u64, output_tokens: u64) -> u64 {
        let pico = input_tokens as u128 * self.input_pico as u128 + output_tokens as u128 * self.output_pico as u128;
        u64::try_from(pico.div_ceil(1_000_000)).unwrap_or(u64::MAX)
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

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// In-process (the default).
    Memory,
    /// A Redis server shared by many processes.
    Redis {
        /// Connection URL.
        url: String,
        /// Key prefix (also the hash tag).
        prefix: String,
        /// Bound of every call.
        timeout_ms: i64,
        /// Behaviour when Redis does not answer.
        on_error: OnError,
        /// Share of every limit enforced locally in `local` mode.
        local_share: f64,
    },
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

/// Largest `C·S` for which every value stays exact in i64 and in doubles.
pub(crate) const MAX_SCALED_CAPACITY: u128 = 1 << 53;

impl Config {
    /// Parses and validates a configuration from JSON text.
    ///
    /// ```
    /// let config = ratewise::Config::from_json(r#"{"providers": [{"name": "a"}]}"#).unwrap();
    /// assert_eq!(config.providers[0].cooldown_ms, 30_000);
    /// let err = ratewise::Config::from_json(r#"{"providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 0}]}]}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "providers[0].quotas[0].limit: must be > 0");
    /// ```
    pub fn from_json(text: &str) -> Result<Config> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::InvalidConfig(format!("configuration is not valid JSON: {e}")))?;
        Config::from_value(&value)
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidConfig(format!("cannot read {}: {e}", path.display())))?;
        Config::from_json(&text)
    }

    /// Validates a parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Config> {
        let root = Obj::new(
            value,
            "",
            &[
                "providers",
                "capabilities",
                "lanes",
                "scoring",
                "health",
                "anticipation",
                "permit_ttl_ms",
                "store",
            ],
        )?;
        let mut providers = Vec::new();
        for (i, p) in root.array("providers")?.iter().enumerate() {
            providers.push(parse_provider(p, &format!("providers[{i}]"))?);
        }
        let mut seen = HashMap::new();
        for (i, p) in providers.iter().enumerate() {
            if seen.insert(p.name.as_str(), i).is_some() {
                return Err(cfg_err(
                    &format!("providers[{i}].name"),
                    &format!("duplicate provider name '{}'", p.name),
                ));
            }
        }
        check_shared_keys(&providers, |i| format!("providers[{i}]"))?;

        let mut capabilities = Vec::new();
        for (i, c) in root.array("capabilities")?.iter().enumerate() {
            let path = format!("capabilities[{i}]");
            let cap = parse_capability(c, &path)?;
            check_capability_providers(&cap, &path, |name| seen.contains_key(name))?;
            if capabilities.iter().any(|c: &CapabilityConfig| c.name == cap.name) {
                return Err(cfg_err(
                    &format!("{path}.name"),
                    &format!("duplicate capability name '{}'", cap.name),
                ));
            }
            capabilities.push(cap);
        }

        let lanes = match root.get("lanes") {
            None => default_lanes(),
            Some(v) => parse_lanes(v, "lanes")?,
        };
        let scoring = parse_scoring(root.get("scoring"))?;
        let health = parse_health(root.get("health"))?;
        let rate_tau_ms = match root.get("anticipation") {
            None => 10_000,
            Some(v) => {
                let a = Obj::new(v, "anticipation", &["rate_tau_ms"])?;
                a.int("rate_tau_ms", 10_000, Bound::Positive)?
            }
        };
        let permit_ttl_ms = root.int("permit_ttl_ms", 600_000, Bound::Positive)?;
        let store = parse_store(root.get("store"))?;
        Ok(Config {
            providers,
            capabilities,
            lanes,
            scoring,
            health,
            rate_tau_ms,
            permit_ttl_ms,
            store,
        })
    }

    /// The lane a request that names none runs in.
    pub fn default_lane_index(&self) -> usize {
        self.lanes.iter().position(|l| l.name == "normal").unwrap_or(0)
    }
}

/// Parses one provider object (for `upsert_provider`, the path is `provider`).
pub(crate) fn parse_provider(value: &Value, path: &str) -> Result<ProviderConfig> {
    let o = Obj::new(value, path, &["name", "quotas", "cooldown_ms", "price"])?;
    let name = o.name("name")?;
    let cooldown_ms = o.int("cooldown_ms", 30_000, Bound::NonNegative)?;
    let price = match o.get("price") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let pp = format!("{path}.price");
            let p = Obj::new(v, &pp, &["input_per_mtok", "output_per_mtok"])?;
            let input_per_mtok = p.required_number("input_per_mtok", Bound::NonNegative)?;
            let output_per_mtok = p.required_number("output_per_mtok", Bound::NonNegative)?;
            Some(Price {
                input_per_mtok,
                output_per_mtok,
                input_pico: to_scaled(input_per_mtok, &format!("{pp}.input_per_mtok"))? as u64,
                output_pico: to_scaled(output_per_mtok, &format!("{pp}.output_per_mtok"))? as u64,
            })
        }
    };
    let mut quotas: Vec<QuotaConfig> = Vec::new();
    for (i, q) in o.array("quotas")?.iter().enumerate() {
        let qp = format!("{path}.quotas[{i}]");
        let quota = parse_quota(q, &qp, &name)?;
        if quota.dimension == Dimension::Cost && price.is_none() {
            return Err(cfg_err(
                &format!("{qp}.dimension"),
                "a cost quota needs the provider's price",
            ));
        }
        if quotas.iter().any(|other| other.key == quota.key) {
            return Err(cfg_err(
                &format!("{qp}.key"),
                &format!("key '{}' is used twice by this provider", quota.key),
            ));
        }
        quotas.push(quota);
    }
    Ok(ProviderConfig {
        name,
        quotas,
        cooldown_ms,
        price,
    })
}

fn parse_quota(value: &Value, path: &str, provider: &str) -> Result<QuotaConfig> {
    let o = Obj::new(
        value,
        path,
        &[
            "dimension",
            "limit",
            "window",
            "window_ms",
            "algorithm",
            "settle",
            "key",
            "offset_ms",
            "count_cached",
        ],
    )?;
    let dim_name = o.required_str("dimension")?;
    let dimension = Dimension::parse(dim_name).ok_or_else(|| {
        cfg_err(
            &format!("{path}.dimension"),
            &format!(
                "unknown dimension '{dim_name}' (expected requests, tokens, input_tokens, output_tokens, concurrency or cost)"
            ),
        )
    })?;
    let limit = o.required_int("limit", Bound::Positive)?;
    let key = match o.get("key") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(cfg_err(&format!("{path}.key"), "must be a non-empty string")),
    };
    if dimension == Dimension::Concurrency {
        for k in [
            "window",
            "window_ms",
            "algorithm",
            "settle",
            "offset_ms",
            "count_cached",
        ] {
            if o.get(k).is_some() {
                return Err(cfg_err(
                    &format!("{path}.{k}"),
                    "a concurrency quota takes no window, algorithm, settle, offset_ms or count_cached",
                ));
            }
        }
        return Ok(QuotaConfig {
            dimension,
            limit,
            window_ms: 0,
            algorithm: Algorithm::TokenBucket,
            settle: Settle::Actual,
            key: key.unwrap_or_else(|| format!("{provider}/concurrency")),
            offset_ms: 0,
            count_cached: true,
        });
    }
    let window_ms = match (o.get("window"), o.get("window_ms")) {
        (Some(_), Some(_)) => {
            return Err(cfg_err(
                &format!("{path}.window_ms"),
                "give either window or window_ms, not both",
            ));
        }
        (None, Some(_)) => o.required_int("window_ms", Bound::Positive)?,
        (Some(Value::String(w)), None) => match w.as_str() {
            "second" => 1_000,
            "minute" => 60_000,
            "hour" => 3_600_000,
            "day" => 86_400_000,
            other => {
                return Err(cfg_err(
                    &format!("{path}.window"),
                    &format!(
                        "unknown window '{other}' (expected second, minute, hour or day; integers go in window_ms)"
                    ),
                ));
            }
        },
        (Some(_), None) => {
            return Err(cfg_err(
                &format!("{path}.window"),
                "must be one of second, minute, hour, day (integers go in window_ms)",
            ));
        }
        (None, None) => 60_000,
    };
    let algorithm = match o.opt_str("algorithm")? {
        None | Some("token_bucket") => Algorithm::TokenBucket,
        Some("fixed_window") => Algorithm::FixedWindow,
        Some(other) => {
            return Err(cfg_err(
                &format!("{path}.algorithm"),
                &format!("unknown algorithm '{other}' (expected token_bucket or fixed_window)"),
            ));
        }
    };
    let settle = match o.opt_str("settle")? {
        None | Some("actual") => Settle::Actual,
        Some("reserved") => Settle::Reserved,
        Some(other) => {
            return Err(cfg_err(
                &format!("{path}.settle"),
                &format!("unknown settle '{other}' (expected actual or reserved)"),
            ));
        }
    };
    let offset_ms = o.int("offset_ms", 0, Bound::NonNegative)?;
    let count_cached = o.bool("count_cached", true)?;
    let g = gcd(limit as u128, window_ms as u128);
    let scaled = limit as u128 * (window_ms as u128 / g);
    if scaled > MAX_SCALED_CAPACITY {
        return Err(cfg_err(
            &format!("{path}.limit"),
            &format!(
                "limit {limit} per {window_ms} ms is too large for exact arithmetic (limit·window/gcd must be ≤ 2^53)"
            ),
        ));
    }
    Ok(QuotaConfig {
        dimension,
        limit,
        window_ms,
        algorithm,
        settle,
        key: key.unwrap_or_else(|| format!("{provider}/{}/{window_ms}", dimension.as_str())),
        offset_ms,
        count_cached,
    })
}

/// Refuses a key shared with a different identity. `path_of(i)` names provider `i`.
pub(crate) fn check_shared_keys(providers: &[ProviderConfig], path_of: impl Fn(usize) -> String) -> Result<()> {
    let mut keys: HashMap<&str, &QuotaConfig> = HashMap::new();
    for (i, p) in providers.iter().enumerate() {
        for (j, q) in p.quotas.iter().enumerate() {
            match keys.get(q.key.as_str()) {
                Some(first) if first.identity() != q.identity() => {
                    return Err(cfg_err(
                        &format!("{}.quotas[{j}].key", path_of(i)),
                        &format!(
                            "key '{}' is shared with a different dimension, limit, window, algorithm, settle, offset_ms or count_cached",
                            q.key
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    keys.insert(&q.key, q);
                }
            }
        }
    }
    Ok(())
}

/// Parses one capability object (for `upsert_capability`, the path is `capability`).
pub(crate) fn parse_capability(value: &Value, path: &str) -> Result<CapabilityConfig> {
    let o = Obj::new(value, path, &["name", "providers"])?;
    let name = o.name("name")?;
    let mut providers: Vec<CapabilityEntry> = Vec::new();
    for (i, e) in o.array("providers")?.iter().enumerate() {
        let ep = format!("{path}.providers[{i}]");
        let eo = Obj::new(e, &ep, &["provider", "priority"])?;
        let provider = eo.name("provider")?;
        let priority = eo.number("priority", 1.0, Bound::NonNegative)?;
        if providers.iter().any(|p| p.provider == provider) {
            return Err(cfg_err(
                &format!("{ep}.provider"),
                &format!("provider '{provider}' is listed twice"),
            ));
        }
        providers.push(CapabilityEntry { provider, priority });
    }
    Ok(CapabilityConfig { name, providers })
}

/// Refuses a capability that names an unregistered provider.
pub(crate) fn check_capability_providers(
    cap: &CapabilityConfig,
    path: &str,
    known: impl Fn(&str) -> bool,
) -> Result<()> {
    for (i, e) in cap.providers.iter().enumerate() {
        if !known(&e.provider) {
            return Err(cfg_err(
                &format!("{path}.providers[{i}].provider"),
                &format!("unknown provider '{}'", e.provider),
            ));
        }
    }
    Ok(())
}

fn default_lanes() -> Vec<LaneConfig> {
    vec![
        LaneConfig {
            name: "critical".into(),
            headroom: 0.0,
            headroom_ppm: 0,
            aging_ms: None,
        },
        LaneConfig {
            name: "normal".into(),
            headroom: 0.0,
            headroom_ppm: 0,
            aging_ms: Some(30_000),
        },
        LaneConfig {
            name: "batch".into(),
            headroom: 0.3,
            headroom_ppm: 300_000,
            aging_ms: Some(30_000),
        },
    ]
}

fn parse_lanes(value: &Value, path: &str) -> Result<Vec<LaneConfig>> {
    let items = value.as_array().ok_or_else(|| cfg_err(path, "must be an array"))?;
    let mut lanes: Vec<LaneConfig> = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let lp = format!("{path}[{i}]");
        let o = Obj::new(v, &lp, &["name", "headroom", "aging_ms"])?;
        let name = o.name("name")?;
        let headroom = o.number("headroom", 0.0, Bound::NonNegative)?;
        let headroom_ppm = scale_micro(headroom).unwrap_or(u128::MAX);
        if headroom >= 1.0 || headroom_ppm >= 1_000_000 {
            return Err(cfg_err(&format!("{lp}.headroom"), "must be in [0, 1)"));
        }
        let aging_ms = match o.get("aging_ms") {
            None | Some(Value::Null) => None,
            Some(_) => Some(o.required_int("aging_ms", Bound::Positive)?),
        };
        if lanes.iter().any(|l| l.name == name) {
            return Err(cfg_err(&format!("{lp}.name"), &format!("duplicate lane name '{name}'")));
        }
        lanes.push(LaneConfig {
            name,
            headroom,
            headroom_ppm: headroom_ppm as i64,
            aging_ms,
        });
    }
    if !lanes.iter().any(|l| l.name == "normal") {
        return Err(cfg_err(
            path,
            "a lane named 'normal' must exist (it is the lane of a request that names none)",
        ));
    }
    Ok(lanes)
}

fn parse_scoring(value: Option<&Value>) -> Result<ScoringWeights> {
    let d = ScoringWeights {
        quota: 0.40,
        health: 0.35,
        priority: 0.20,
        latency: 0.05,
        cost: 0.0,
    };
    let Some(v) = value else { return Ok(d) };
    let o = Obj::new(v, "scoring", &["quota", "health", "priority", "latency", "cost"])?;
    let w = ScoringWeights {
        quota: o.number("quota", d.quota, Bound::NonNegative)?,
        health: o.number("health", d.health, Bound::NonNegative)?,
        priority: o.number("priority", d.priority, Bound::NonNegative)?,
        latency: o.number("latency", d.latency, Bound::NonNegative)?,
        cost: o.number("cost", d.cost, Bound::NonNegative)?,
    };
    if w.quota + w.health + w.priority + w.latency + w.cost == 0.0 {
        return Err(cfg_err("scoring", "weights must not all be zero"));
    }
    Ok(w)
}

fn parse_health(value: Option<&Value>) -> Result<HealthConfig> {
    let d = HealthConfig {
        half_life_ms: 300_000,
        min_health: 0.2,
        boost_success: 0.02,
        penalty_rate_limited: 0.25,
        penalty_forbidden: 0.50,
        penalty_server_error: 0.10,
        penalty_overloaded: 0.10,
        penalty_timeout: 0.20,
        overload_hold_ms: 2_000,
        cooldown_after: 3,
        cooldown_multiplier: 2.0,
        max_cooldown_ms: 600_000,
    };
    let Some(v) = value else { return Ok(d) };
    let o = Obj::new(
        v,
        "health",
        &[
            "half_life_ms",
            "min_health",
            "boost_success",
            "penalty_rate_limited",
            "penalty_forbidden",
            "penalty_server_error",
            "penalty_overloaded",
            "penalty_timeout",
            "overload_hold_ms",
            "cooldown_after",
            "cooldown_multiplier",
            "max_cooldown_ms",
        ],
    )?;
    let h = HealthConfig {
        half_life_ms: o.int("half_life_ms", d.half_life_ms, Bound::Positive)?,
        min_health: o.number("min_health", d.min_health, Bound::UnitInterval)?,
        boost_success: o.number("boost_success", d.boost_success, Bound::NonNegative)?,
        penalty_rate_limited: o.number("penalty_rate_limited", d.penalty_rate_limited, Bound::NonNegative)?,
        penalty_forbidden: o.number("penalty_forbidden", d.penalty_forbidden, Bound::NonNegative)?,
        penalty_server_error: o.number("penalty_server_error", d.penalty_server_error, Bound::NonNegative)?,
        penalty_overloaded: o.number("penalty_overloaded", d.penalty_overloaded, Bound::NonNegative)?,
        penalty_timeout: o.number("penalty_timeout", d.penalty_timeout, Bound::NonNegative)?,
        overload_hold_ms: o.int("overload_hold_ms", d.overload_hold_ms, Bound::NonNegative)?,
        cooldown_after: o.int("cooldown_after", d.cooldown_after, Bound::Positive)?,
        cooldown_multiplier: o.number("cooldown_multiplier", d.cooldown_multiplier, Bound::Positive)?,
        max_cooldown_ms: o.int("max_cooldown_ms", d.max_cooldown_ms, Bound::NonNegative)?,
    };
    Ok(h)
}

fn parse_store(value: Option<&Value>) -> Result<StoreConfig> {
    let Some(v) = value else { return Ok(StoreConfig::Memory) };
    let o = Obj::new(
        v,
        "store",
        &["kind", "url", "prefix", "timeout_ms", "on_error", "local_share"],
    )?;
    match o.opt_str("kind")? {
        None | Some("memory") => {
            for k in ["url", "prefix", "timeout_ms", "on_error", "local_share"] {
                if o.get(k).is_some() {
                    return Err(cfg_err(&format!("store.{k}"), "only a redis store takes this key"));
                }
            }
            Ok(StoreConfig::Memory)
        }
        Some("redis") => {
            let on_error = match o.opt_str("on_error")? {
                None | Some("local") => OnError::Local,
                Some("open") => OnError::Open,
                Some("closed") => OnError::Closed,
                Some(other) => {
                    return Err(cfg_err(
                        "store.on_error",
                        &format!("unknown mode '{other}' (expected local, open or closed)"),
                    ));
                }
            };
            let local_share = o.number("local_share", 1.0, Bound::Positive)?;
            if local_share > 1.0 {
                return Err(cfg_err("store.local_share", "must be in (0, 1]"));
            }
            Ok(StoreConfig::Redis {
                url: o.opt_str("url")?.unwrap_or("redis://127.0.0.1:6379/0").to_string(),
                prefix: o.opt_str("prefix")?.unwrap_or("ratewise").to_string(),
                timeout_ms: o.int("timeout_ms", 50, Bound::Positive)?,
                on_error,
                local_share,
            })
        }
        Some(other) => Err(cfg_err(
            "store.kind",
            &format!("unknown store '{other}' (expected memory or redis)"),
        )),
    }
}

/// `round(x·10^6)`, half away from zero, as docs/design.md §12 requires for ppm and pico-USD — on the
/// decimal value `x` was written as (its shortest round-trip text, which is the JSON's), not on
/// the binary product: 0.0316775·10^6 is 31677.499999999996 in doubles, but 31678 exactly.
/// `None` when the result does not fit.
fn scale_micro(x: f64) -> Option<u128> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let text = format!("{x}"); // shortest round-trip decimal, never in exponent form
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let mut micro: u128 = int.parse::<u128>().ok()?.checked_mul(1_000_000)?;
    let frac6: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    micro = micro.checked_add(frac6.parse::<u128>().ok()?)?;
    if frac.as_bytes().get(6).is_some_and(|d| *d >= b'5') {
        micro += 1; // the 7th digit is 5 or more: half (or more) rounds away from zero
    }
    Some(micro)
}

fn to_scaled(x: f64, path: &str) -> Result<u128> {
    match scale_micro(x) {
        Some(v) if v <= u64::MAX as u128 / 2 => Ok(v),
        _ => Err(cfg_err(path, "is too large")),
    }
}

pub(crate) fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

pub(crate) fn cfg_err(path: &str, msg: &str) -> Error {
    if path.is_empty() {
        Error::InvalidConfig(msg.to_string())
    } else {
        Error::InvalidConfig(format!("{path}: {msg}"))
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Positive,
    NonNegative,
    UnitInterval,
}

impl Bound {
    fn check(self, x: f64) -> Option<&'static str> {
        match self {
            Bound::Positive if x <= 0.0 => Some("must be > 0"),
            Bound::NonNegative if x < 0.0 => Some("must be >= 0"),
            Bound::UnitInterval if !(0.0..=1.0).contains(&x) => Some("must be in [0, 1]"),
            _ => None,
        }
    }
}

/// A JSON object being read, with its path and the keys it may hold.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: &str, allowed: &[&str]) -> Result<Obj<'a>> {
        let map = value
            .as_object()
            .ok_or_else(|| cfg_err(if path.is_empty() { "$" } else { path }, "must be an object"))?;
        // Report unknown keys in a stable (sorted) order.
        let unknown: BTreeMap<&str, ()> = map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| (k.as_str(), ()))
            .collect();
        if let Some((k, _)) = unknown.iter().next() {
            return Err(cfg_err(&join(path, k), "unknown key"));
        }
        Ok(Obj {
            map,
            path: path.to_string(),
        })
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn array(&self, key: &str) -> Result<&'a [Value]> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(cfg_err(&self.at(key), "must be an array")),
        }
    }

    fn name(&self, key: &str) -> Result<String> {
        let s = self.required_str(key)?;
        if s.is_empty() {
            return Err(cfg_err(&self.at(key), "must not be empty"));
        }
        Ok(s.to_string())
    }

    fn required_str(&self, key: &str) -> Result<&'a str> {
        match self.get(key) {
            None => Err(cfg_err(&self.at(key), "is required")),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(cfg_err(&self.at(key), "must be a string")),
        }
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(cfg_err(&self.at(key), "must be a string")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(cfg_err(&self.at(key), "must be true or false")),
        }
    }

    fn required_int(&self, key: &str, bound: Bound) -> Result<i64> {
        let Some(v) = self.get(key) else {
            return Err(cfg_err(&self.at(key), "is required"));
        };
        let n = match v {
            Value::Number(n) => n,
            _ => return Err(cfg_err(&self.at(key), "must be an integer")),
        };
        let x = match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i,
            (None, Some(_)) => return Err(cfg_err(&self.at(key), "is too large")),
            (None, None) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if let Some(msg) = bound.check(f) {
                    return Err(cfg_err(&self.at(key), msg));
                }
                return Err(cfg_err(&self.at(key), "must be an integer"));
            }
        };
        if let Some(msg) = bound.check(x as f64) {
            return Err(cfg_err(&self.at(key), msg));
        }
        Ok(x)
    }

    fn int(&self, key: &str, default: i64, bound: Bound) -> Result<i64> {
        if self.get(key).is_none() {
            return Ok(default);
        }
        self.required_int(key, bound)
    }

    fn required_number(&self, key: &str, bound: Bound) -> Result<f64> {
        let x = match self.get(key) {
            None => return Err(cfg_err(&self.at(key), "is required")),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(_) => return Err(cfg_err(&self.at(key), "must be a number")),
        };
        if !x.is_finite() {
            return Err(cfg_err(&self.at(key), "must be finite"));
        }
        if let Some(msg) = bound.check(x) {
            return Err(cfg_err(&self.at(key), msg));
        }
        Ok(x)
    }

    fn number(&self, key: &str, default: f64, bound: Bound) -> Result<f64> {
        if self.get(key).is_none() {
            return Ok(default);
        }
        self.required_number(key, bound)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Config::from_json(text) {
            Err(e) => e.to_string(),
            Ok(_) => String::from("<accepted>"),
        }
    }

    #[test]
    fn paths_name_the_offending_field() {
        assert_eq!(
            err(r#"{"providers":[{"name":"a"},{"name":"b","quotas":[{"dimension":"requests","limit":-1}]}]}"#),
            "providers[1].quotas[0].limit: must be > 0"
        );
        assert_eq!(
            err(r#"{"providers":[{"name":"a","colour":1}]}"#),
            "providers[0].colour: unknown key"
        );
        assert_eq!(err(r#"{"lanes":[{"name":"fast"}]}"#).split(':').next(), Some("lanes"));
        assert_eq!(
            err(r#"{"providers":[{"name":"a","quotas":[{"dimension":"requests","limit":1.5}]}]}"#),
            "providers[0].quotas[0].limit: must be an integer"
        );
    }

    #[test]
    fn defaults_and_keys() {
        let c = Config::from_json(
            r#"{"providers":[{"name":"a","quotas":[{"dimension":"tokens","limit":10},{"dimension":"concurrency","limit":2}]}]}"#,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.providers[0].quotas[0].key, "a/tokens/60000");
        assert_eq!(c.providers[0].quotas[1].key, "a/concurrency");
        assert_eq!(c.lanes[2].headroom_ppm, 300_000);
        assert_eq!(c.permit_ttl_ms, 600_000);
    }

    #[test]
    fn exactness_bound() {
        // 2^53 + 1 requests per 1 ms window: C·S = C (gcd = 1, S = 1) exceeds 2^53.
        assert!(err(r#"{"providers":[{"name":"a","quotas":[{"dimension":"tokens","limit":9007199254740993,"window_ms":1}]}]}"#).contains("2^53"));
        // A prime limit over a day: S = W, C·S = 1_000_003 · 86_400_000 < 2^53 is fine.
        assert_eq!(
            err(r#"{"providers":[{"name":"a","quotas":[{"dimension":"tokens","limit":1000003,"window":"day"}]}]}"#),
            "<accepted>"
        );
    }

    #[test]
    fn scaling_rounds_the_decimal_half_away_from_zero() {
        assert_eq!(scale_micro(0.0316775), Some(31_678)); // binary product: 31677.499999999996
        assert_eq!(scale_micro(0.3), Some(300_000));
        assert_eq!(scale_micro(0.0000005), Some(1));
        assert_eq!(scale_micro(0.00000049), Some(0));
        assert_eq!(scale_micro(2.5), Some(2_500_000));
        assert_eq!(scale_micro(0.9999995), Some(1_000_000));
        assert_eq!(scale_micro(1e21), Some(1_000_000_000_000_000_000_000_000_000));
        assert_eq!(scale_micro(5e-324), Some(0));
        assert_eq!(scale_micro(-1.0), None);
    }

    #[test]
    fn price_rounds_to_pico() {
        let p = Price {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
            input_pico: 2_500_000,
            output_pico: 10_000_000,
        };
        // 1000·2.5e6 + 500·1e7 = 7.5e9 pico = 7500 micro-USD exactly; one more token rounds up.
        assert_eq!(p.cost_micro_usd(1000, 500), 7500);
        assert_eq!(p.cost_micro_usd(1001, 500), 7503);
        assert_eq!(p.cost_micro_usd(1, 0), 3);
    }
}
