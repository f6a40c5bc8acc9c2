//! JSON → [`Config`]: every object read with [`Object`], so that every error names its JSON path,
//! and every missing key takes its default from `config/mod.rs`.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

use super::json::{self, Bound, Object};
use super::*;
use crate::error::{Error, Result};

impl Config {
    /// Parses and validates a configuration from JSON text. A key given twice in one object is
    /// refused (`providers[0].name: duplicate key`), like every other mistake.
    ///
    /// ```
    /// let config = ratewise::Config::from_json(r#"{"providers": [{"name": "a"}]}"#).unwrap();
    /// assert_eq!(config.providers[0].cooldown_ms, 30_000);
    /// let err = ratewise::Config::from_json(r#"{"providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 0}]}]}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "providers[0].quotas[0].limit: must be > 0");
    /// ```
    pub fn from_json(text: &str) -> Result<Config> {
        Config::from_value(&json::parse(text, "", "configuration")?)
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
        let root = Object::new(
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
        let mut capability_names = HashSet::new();
        for (i, c) in root.array("capabilities")?.iter().enumerate() {
            let path = format!("capabilities[{i}]");
            let cap = parse_capability(c, &path)?;
            check_capability_providers(&cap, &path, |name| seen.contains_key(name))?;
            if !capability_names.insert(cap.name.clone()) {
                return Err(cfg_err(
                    &format!("{path}.name"),
                    &format!("duplicate capability name '{}'", cap.name),
                ));
            }
            capabilities.push(cap);
        }

        let lanes = match root.get("lanes") {
            None => DEFAULT_LANES
                .iter()
                .map(|&(name, headroom, aging_ms)| lane(name, headroom, aging_ms))
                .collect(),
            Some(v) => parse_lanes(v, "lanes")?,
        };
        let scoring = parse_scoring(root.get("scoring"))?;
        let health = parse_health(root.get("health"))?;
        let rate_tau_ms = match root.get("anticipation") {
            None => DEFAULT_RATE_TAU_MS,
            Some(v) => {
                let a = Object::new(v, "anticipation", &["rate_tau_ms"])?;
                a.int("rate_tau_ms", DEFAULT_RATE_TAU_MS, Bound::Positive)?
            }
        };
        let permit_ttl_ms = root.int("permit_ttl_ms", DEFAULT_PERMIT_TTL_MS, Bound::Positive)?;
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
}

/// Parses one provider object (for `upsert_provider`, the path is `provider`).
pub(crate) fn parse_provider(value: &Value, path: &str) -> Result<ProviderConfig> {
    let o = Object::new(value, path, &["name", "model", "quotas", "cooldown_ms", "price"])?;
    let name = o.name("name")?;
    let model = match o.get("model") {
        None | Some(Value::Null) => name.clone(),
        Some(_) => o.name("model")?,
    };
    let cooldown_ms = o.int("cooldown_ms", DEFAULT_COOLDOWN_MS, Bound::NonNegative)?;
    let price = match o.get("price") {
        None => None,
        Some(v) => {
            let p = Object::new(
                v,
                &o.at("price"),
                &[
                    "input_per_mtok",
                    "output_per_mtok",
                    "cached_input_per_mtok",
                    "cache_write_input_per_mtok",
                ],
            )?;
            let input_per_mtok = p.required_number("input_per_mtok", Bound::NonNegative)?;
            let output_per_mtok = p.required_number("output_per_mtok", Bound::NonNegative)?;
            let input_pico = to_scaled(input_per_mtok, &p.at("input_per_mtok"))? as u64;
            // An optional input price: (USD per Mtok, pico-USD per token), the input's when absent.
            let part = |key: &str| -> Result<(Option<f64>, u64)> {
                match p.get(key) {
                    None => Ok((None, input_pico)),
                    Some(_) => {
                        let usd = p.required_number(key, Bound::NonNegative)?;
                        Ok((Some(usd), to_scaled(usd, &p.at(key))? as u64))
                    }
                }
            };
            let (cached_input_per_mtok, cached_pico) = part("cached_input_per_mtok")?;
            let (cache_write_input_per_mtok, cache_write_pico) = part("cache_write_input_per_mtok")?;
            Some(Price {
                input_per_mtok,
                output_per_mtok,
                cached_input_per_mtok,
                cache_write_input_per_mtok,
                input_pico,
                output_pico: to_scaled(output_per_mtok, &p.at("output_per_mtok"))? as u64,
                cached_pico,
                cache_write_pico,
            })
        }
    };
    let mut quotas: Vec<QuotaConfig> = Vec::new();
    let mut keys = HashSet::new();
    for (i, q) in o.array("quotas")?.iter().enumerate() {
        let qp = format!("{path}.quotas[{i}]");
        let quota = parse_quota(q, &qp, &name)?;
        if quota.dimension == Dimension::Cost && price.is_none() {
            return Err(cfg_err(
                &format!("{qp}.dimension"),
                "a cost quota needs the provider's price",
            ));
        }
        if !keys.insert(quota.key.clone()) {
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
        model,
    })
}

fn parse_quota(value: &Value, path: &str, provider: &str) -> Result<QuotaConfig> {
    let o = Object::new(
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
        o.error(
            "dimension",
            &format!(
                "unknown dimension '{dim_name}' (expected requests, tokens, input_tokens, output_tokens, concurrency or cost)"
            ),
        )
    })?;
    let limit = o.required_int("limit", Bound::Positive)?;
    let key = match o.get("key") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => {
            json::printable(&o.at("key"), s)?;
            Some(s.clone())
        }
        Some(_) => return Err(o.error("key", "must be a non-empty string")),
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
                return Err(o.error(
                    k,
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
        (Some(_), Some(_)) => return Err(o.error("window_ms", "give either window or window_ms, not both")),
        (None, Some(_)) => o.required_int("window_ms", Bound::Positive)?,
        (Some(Value::String(w)), None) => match w.as_str() {
            "second" => 1_000,
            "minute" => 60_000,
            "hour" => 3_600_000,
            "day" => 86_400_000,
            other => {
                return Err(o.error(
                    "window",
                    &format!(
                        "unknown window '{other}' (expected second, minute, hour or day; integers go in window_ms)"
                    ),
                ));
            }
        },
        (Some(_), None) => {
            return Err(o.error(
                "window",
                "must be one of second, minute, hour, day (integers go in window_ms)",
            ));
        }
        (None, None) => DEFAULT_WINDOW_MS,
    };
    let algorithm = match o.opt_str("algorithm")? {
        None => DEFAULT_ALGORITHM,
        Some("token_bucket") => Algorithm::TokenBucket,
        Some("fixed_window") => Algorithm::FixedWindow,
        Some(other) => {
            return Err(o.error(
                "algorithm",
                &format!("unknown algorithm '{other}' (expected token_bucket or fixed_window)"),
            ));
        }
    };
    let settle = match o.opt_str("settle")? {
        None => DEFAULT_SETTLE,
        Some("actual") => Settle::Actual,
        Some("reserved") => Settle::Reserved,
        Some(other) => {
            return Err(o.error(
                "settle",
                &format!("unknown settle '{other}' (expected actual or reserved)"),
            ));
        }
    };
    let offset_ms = o.int("offset_ms", DEFAULT_OFFSET_MS, Bound::NonNegative)?;
    let count_cached = o.bool("count_cached", DEFAULT_COUNT_CACHED)?;
    let g = gcd(limit as u128, window_ms as u128);
    let scaled = limit as u128 * (window_ms as u128 / g);
    if scaled > MAX_SCALED_CAPACITY {
        return Err(o.error(
            "limit",
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
    let o = Object::new(value, path, &["name", "providers"])?;
    let name = o.name("name")?;
    let mut providers: Vec<CapabilityEntry> = Vec::new();
    let mut listed = HashSet::new();
    for (i, e) in o.array("providers")?.iter().enumerate() {
        let eo = Object::new(e, &format!("{path}.providers[{i}]"), &["provider", "priority"])?;
        let provider = eo.name("provider")?;
        let priority = eo.number("priority", DEFAULT_PRIORITY, Bound::NonNegative)?;
        if !listed.insert(provider.clone()) {
            return Err(eo.error("provider", &format!("provider '{provider}' is listed twice")));
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

/// A lane, its headroom checked to be in [0, 1) by the caller.
fn lane(name: &str, headroom: f64, aging_ms: Option<i64>) -> LaneConfig {
    LaneConfig {
        name: name.to_string(),
        headroom,
        headroom_ppm: scale_micro(headroom).map_or(i64::MAX, |ppm| ppm as i64),
        aging_ms,
    }
}

fn parse_lanes(value: &Value, path: &str) -> Result<Vec<LaneConfig>> {
    let items = value.as_array().ok_or_else(|| cfg_err(path, "must be an array"))?;
    let mut lanes: Vec<LaneConfig> = Vec::new();
    let mut names = HashSet::new();
    for (i, v) in items.iter().enumerate() {
        let o = Object::new(v, &format!("{path}[{i}]"), &["name", "headroom", "aging_ms"])?;
        let name = o.name("name")?;
        let headroom = o.number("headroom", DEFAULT_HEADROOM, Bound::NonNegative)?;
        if headroom >= 1.0 || scale_micro(headroom).is_none_or(|ppm| ppm >= 1_000_000) {
            return Err(o.error("headroom", "must be in [0, 1)"));
        }
        let aging_ms = match o.get("aging_ms") {
            None => None,
            Some(_) => Some(o.required_int("aging_ms", Bound::Positive)?),
        };
        if !names.insert(name.clone()) {
            return Err(o.error("name", &format!("duplicate lane name '{name}'")));
        }
        lanes.push(lane(&name, headroom, aging_ms));
    }
    if !names.contains(DEFAULT_LANE) {
        return Err(cfg_err(
            path,
            &format!("a lane named '{DEFAULT_LANE}' must exist (it is the lane of a request that names none)"),
        ));
    }
    Ok(lanes)
}

fn parse_scoring(value: Option<&Value>) -> Result<ScoringWeights> {
    let d = ScoringWeights::DEFAULT;
    let Some(v) = value else { return Ok(d) };
    let o = Object::new(v, "scoring", &["quota", "health", "priority", "latency", "cost"])?;
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
    let d = HealthConfig::DEFAULT;
    let Some(v) = value else { return Ok(d) };
    let o = Object::new(
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
            "max_hold_ms",
            "cooldown_after",
            "cooldown_multiplier",
            "max_cooldown_ms",
        ],
    )?;
    Ok(HealthConfig {
        half_life_ms: o.int("half_life_ms", d.half_life_ms, Bound::Positive)?,
        min_health: o.number("min_health", d.min_health, Bound::UnitInterval)?,
        boost_success: o.number("boost_success", d.boost_success, Bound::NonNegative)?,
        penalty_rate_limited: o.number("penalty_rate_limited", d.penalty_rate_limited, Bound::NonNegative)?,
        penalty_forbidden: o.number("penalty_forbidden", d.penalty_forbidden, Bound::NonNegative)?,
        penalty_server_error: o.number("penalty_server_error", d.penalty_server_error, Bound::NonNegative)?,
        penalty_overloaded: o.number("penalty_overloaded", d.penalty_overloaded, Bound::NonNegative)?,
        penalty_timeout: o.number("penalty_timeout", d.penalty_timeout, Bound::NonNegative)?,
        overload_hold_ms: o.int("overload_hold_ms", d.overload_hold_ms, Bound::NonNegative)?,
        max_hold_ms: o.int("max_hold_ms", d.max_hold_ms, Bound::Positive)?,
        cooldown_after: o.int("cooldown_after", d.cooldown_after, Bound::Positive)?,
        cooldown_multiplier: o.number("cooldown_multiplier", d.cooldown_multiplier, Bound::Positive)?,
        max_cooldown_ms: o.int("max_cooldown_ms", d.max_cooldown_ms, Bound::NonNegative)?,
    })
}

fn parse_store(value: Option<&Value>) -> Result<StoreConfig> {
    let Some(v) = value else { return Ok(StoreConfig::Memory) };
    const REDIS_KEYS: [&str; 7] = [
        "url",
        "prefix",
        "timeout_ms",
        "connect_timeout_ms",
        "on_error",
        "local_share",
        "tls",
    ];
    let mut allowed = vec!["kind"];
    allowed.extend(REDIS_KEYS);
    let o = Object::new(v, "store", &allowed)?;
    match o.opt_str("kind")? {
        None | Some("memory") => {
            for k in REDIS_KEYS {
                if o.get(k).is_some() {
                    return Err(o.error(k, "only a redis store takes this key"));
                }
            }
            Ok(StoreConfig::Memory)
        }
        Some("redis") => {
            let on_error = match o.opt_str("on_error")? {
                None => DEFAULT_ON_ERROR,
                Some("local") => OnError::Local,
                Some("open") => OnError::Open,
                Some("closed") => OnError::Closed,
                Some(other) => {
                    return Err(o.error(
                        "on_error",
                        &format!("unknown mode '{other}' (expected local, open or closed)"),
                    ));
                }
            };
            let local_share = o.number("local_share", DEFAULT_LOCAL_SHARE, Bound::Positive)?;
            if local_share > 1.0 {
                return Err(o.error("local_share", "must be in (0, 1]"));
            }
            let url = o.opt_str("url")?.unwrap_or(DEFAULT_REDIS_URL).to_string();
            let timeout_ms = o.int("timeout_ms", DEFAULT_REDIS_TIMEOUT_MS, Bound::Positive)?;
            let connect_timeout_ms = o.int("connect_timeout_ms", timeout_ms, Bound::Positive)?;
            if connect_timeout_ms > timeout_ms {
                return Err(o.error(
                    "connect_timeout_ms",
                    &format!("must be <= timeout_ms ({timeout_ms}), which bounds the whole call"),
                ));
            }
            let tls = match o.get("tls") {
                None => None,
                Some(t) => {
                    if !(url.starts_with("rediss://") || url.starts_with("valkeys://")) {
                        return Err(o.error("tls", "needs a rediss:// url"));
                    }
                    Some(parse_store_tls(t, &o.at("tls"))?)
                }
            };
            let prefix = o.opt_str("prefix")?.unwrap_or(DEFAULT_REDIS_PREFIX).to_string();
            json::printable(&o.at("prefix"), &prefix)?;
            Ok(StoreConfig::Redis {
                url,
                prefix,
                timeout_ms,
                connect_timeout_ms,
                on_error,
                local_share,
                tls,
            })
        }
        Some(other) => Err(o.error("kind", &format!("unknown store '{other}' (expected memory or redis)"))),
    }
}

/// `store.tls`: paths of PEM files (read when the engine is built); a client certificate comes
/// with its key.
fn parse_store_tls(value: &Value, path: &str) -> Result<StoreTls> {
    let o = Object::new(value, path, &["ca_file", "cert_file", "key_file"])?;
    let file = |key: &str| -> Result<Option<std::path::PathBuf>> {
        match o.opt_str(key)? {
            None => Ok(None),
            Some("") => Err(o.error(key, "must not be empty")),
            Some(p) => Ok(Some(p.into())),
        }
    };
    let tls = StoreTls {
        ca_file: file("ca_file")?,
        cert_file: file("cert_file")?,
        key_file: file("key_file")?,
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => Err(o.error("key_file", "is required with cert_file")),
        (None, Some(_)) => Err(o.error("cert_file", "is required with key_file")),
        _ => Ok(tls),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
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
        .unwrap();
        assert_eq!(c.providers[0].quotas[0].key, "a/tokens/60000");
        assert_eq!(c.providers[0].quotas[1].key, "a/concurrency");
        assert_eq!(c.lanes[2].headroom_ppm, 300_000);
        assert_eq!(c.permit_ttl_ms, 600_000);
    }

    #[test]
    fn null_is_absent() {
        let with_nulls = Config::from_json(
            r#"{"providers":[{"name":"a","price":null,"cooldown_ms":null,
                 "quotas":[{"dimension":"concurrency","limit":2,"window":null,"key":null}]}],
                "lanes":null,"scoring":null,"store":{"kind":"memory","url":null}}"#,
        )
        .unwrap();
        let without =
            Config::from_json(r#"{"providers":[{"name":"a","quotas":[{"dimension":"concurrency","limit":2}]}]}"#)
                .unwrap();
        assert_eq!(with_nulls, without);
        // A required key given as null is missing, at its path.
        assert_eq!(
            err(r#"{"providers":[{"name":null}]}"#),
            "providers[0].name: is required"
        );
    }

    #[test]
    fn store_keys_are_validated_at_their_path() {
        let store = |s: &str| err(&format!(r#"{{"store": {s}}}"#));
        assert_eq!(
            store(r#"{"kind": "redis", "timeout_ms": 100, "connect_timeout_ms": 200}"#),
            "store.connect_timeout_ms: must be <= timeout_ms (100), which bounds the whole call"
        );
        assert_eq!(
            store(r#"{"kind": "redis", "connect_timeout_ms": 0}"#),
            "store.connect_timeout_ms: must be > 0"
        );
        assert_eq!(
            store(r#"{"kind": "memory", "connect_timeout_ms": 10}"#),
            "store.connect_timeout_ms: only a redis store takes this key"
        );
        assert_eq!(
            store(r#"{"kind": "redis", "tls": {"ca_file": "ca.pem"}}"#),
            "store.tls: needs a rediss:// url"
        );
        let tls = |t: &str| {
            store(&format!(
                r#"{{"kind": "redis", "url": "rediss://h:6380/0", "tls": {t}}}"#
            ))
        };
        assert_eq!(
            tls(r#"{"cert_file": "c.pem"}"#),
            "store.tls.key_file: is required with cert_file"
        );
        assert_eq!(
            tls(r#"{"key_file": "k.pem"}"#),
            "store.tls.cert_file: is required with key_file"
        );
        assert_eq!(tls(r#"{"ca_file": ""}"#), "store.tls.ca_file: must not be empty");
        assert_eq!(tls(r#"{"ca": "x"}"#), "store.tls.ca: unknown key");
        let c = Config::from_json(
            r#"{"store": {"kind": "redis", "url": "rediss://:pw@h:6380/0", "timeout_ms": 80,
                "tls": {"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"}}}"#,
        )
        .unwrap();
        let StoreConfig::Redis {
            connect_timeout_ms,
            tls,
            ..
        } = &c.store
        else {
            unreachable!("a redis store")
        };
        assert_eq!(*connect_timeout_ms, 80, "defaults to timeout_ms");
        assert_eq!(tls.as_ref().and_then(|t| t.key_file.clone()), Some("k.pem".into()));
        assert!(!format!("{c:?}").contains("pw@"), "Debug redacts the password");
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
    fn control_characters_in_names_are_refused() {
        let provider = |name: &str| format!(r#"{{"providers":[{{"name":"{name}"}}]}}"#);
        assert_eq!(
            err(&provider(r"a\tb")),
            "providers[0].name: must not contain control characters (found U+0009)"
        );
        assert_eq!(
            err(&provider(r"a\u0000")),
            "providers[0].name: must not contain control characters (found U+0000)"
        );
        assert_eq!(
            err(&provider(r"a\u0085")),
            "providers[0].name: must not contain control characters (found U+0085)"
        );
        assert_eq!(
            err(r#"{"providers":[{"name":"a","quotas":[{"dimension":"requests","limit":1,"key":"org\npool"}]}]}"#),
            "providers[0].quotas[0].key: must not contain control characters (found U+000A)"
        );
        assert_eq!(
            err(r#"{"capabilities":[{"name":"chat\r"}]}"#),
            "capabilities[0].name: must not contain control characters (found U+000D)"
        );
        assert_eq!(
            err(
                r#"{"providers":[{"name":"a"}],"capabilities":[{"name":"chat","providers":[{"provider":"a\u007f"}]}]}"#
            ),
            "capabilities[0].providers[0].provider: must not contain control characters (found U+007F)"
        );
        assert_eq!(
            err(r#"{"lanes":[{"name":"normal"},{"name":"\u001bbatch"}]}"#),
            "lanes[1].name: must not contain control characters (found U+001B)"
        );
        // Printable punctuation, spaces and non-ASCII letters stay allowed (`}` is escaped in keys).
        assert_eq!(
            err(r#"{"providers":[{"name":"a b}{:é/ü","quotas":[{"dimension":"requests","limit":1,"key":"x}:y z"}]}]}"#),
            "<accepted>"
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_their_path() {
        assert_eq!(err(r#"{"providers": [], "providers": []}"#), "providers: duplicate key");
        assert_eq!(
            err(r#"{"providers":[{"name":"a","name":"b"}]}"#),
            "providers[0].name: duplicate key"
        );
        assert_eq!(
            err(r#"{"providers":[{"name":"a"},{"name":"b","quotas":[{"dimension":"requests","limit":1,"limit":2}]}]}"#),
            "providers[1].quotas[0].limit: duplicate key"
        );
        assert_eq!(
            err(r#"{"store":{"kind":"memory","kind":"redis"}}"#),
            "store.kind: duplicate key"
        );
        // Even where the value is null, and in objects the configuration does not know.
        assert_eq!(
            err(r#"{"scoring":{"cost":null,"cost":null}}"#),
            "scoring.cost: duplicate key"
        );
        assert_eq!(err(r#"{"x":{"y":1,"y":1}}"#), "x.y: duplicate key");
        // The same key in two sibling objects is no duplicate.
        assert_eq!(err(r#"{"providers":[{"name":"a"},{"name":"b"}]}"#), "<accepted>");
        // Syntax errors keep their own message.
        assert!(err(r#"{"providers": [}"#).starts_with("configuration is not valid JSON: "));
        // From a file as from text.
        let path = std::env::temp_dir().join(format!("ratewise-dup-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"lanes":[{"name":"normal","aging_ms":1,"aging_ms":2}]}"#).unwrap();
        let from_file = Config::from_file(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file, "lanes[0].aging_ms: duplicate key");
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
}
