//! The response cache (docs/gateway.md, "The response cache"): a canonical key, an in-process
//! LRU per capability sized in bytes (`moka`), and an optional Redis tier shared by every
//! gateway instance. Entries are kept `ttl + max_stale`: fresh for `ttl`, then only for the
//! degraded answers of [`crate::degraded`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use bytes::Bytes;
use parking_lot::RwLock;
use ratewise::Error;
use ratewise::json::{self, Bound, Object};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{Api, Secret};
use crate::upstream::Endpoint;

/// The version inside every key: bump it when what an entry holds changes meaning.
const KEY_VERSION: &str = "v1";

/// Top-level request fields that do not change the answer (left out of the key).
const NOT_SEMANTIC: [&str; 8] = [
    "stream",
    "stream_options",
    "user",
    "metadata",
    "request_id",
    "prompt_cache_key",
    "store",
    "service_tier",
];

/// Longest `x-ratewise-cache: ttl=N`, seconds (30 days).
const MAX_TTL_S: u64 = 30 * 24 * 3600;

/// A capability's cache settings (`gateway.capabilities.<c>.cache`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Off: never read, never stored, no stale answers.
    pub enabled: bool,
    /// How long an entry is fresh, s.
    pub ttl_s: u64,
    /// The in-process LRU's size, bytes of stored answers.
    pub max_bytes: u64,
    /// How long past the TTL an entry is kept for degraded answers, s.
    pub max_stale_s: u64,
    /// Store every request (`requests: "all"`), not only deterministic ones.
    pub all_requests: bool,
}

impl Default for CacheSettings {
    fn default() -> CacheSettings {
        CacheSettings {
            enabled: true,
            ttl_s: 3600,
            max_bytes: 64 << 20,
            max_stale_s: 86_400,
            all_requests: false,
        }
    }
}

impl CacheSettings {
    /// Reads `gateway.capabilities.<c>.cache`.
    pub fn parse(value: &Value, path: &str) -> Result<CacheSettings, Error> {
        let o = Object::new(
            value,
            path,
            &["enabled", "ttl_s", "max_bytes", "max_stale_s", "requests"],
        )?;
        let d = CacheSettings::default();
        let all_requests = match o.opt_str("requests")? {
            None | Some("deterministic") => false,
            Some("all") => true,
            Some(_) => return Err(o.error("requests", "must be \"deterministic\" or \"all\"")),
        };
        Ok(CacheSettings {
            enabled: o.bool("enabled", d.enabled)?,
            ttl_s: o.int("ttl_s", d.ttl_s as i64, Bound::Positive)?.min(MAX_TTL_S as i64) as u64,
            max_bytes: o.int("max_bytes", d.max_bytes as i64, Bound::Positive)? as u64,
            max_stale_s: o.int("max_stale_s", d.max_stale_s as i64, Bound::NonNegative)? as u64,
            all_requests,
        })
    }
}

/// The shared tier (`gateway.cache`).
#[derive(Debug, Clone, Default)]
pub struct TierSettings {
    /// `redis://` / `rediss://` URL (it may hold a password: never shown).
    pub redis_url: Option<Secret>,
    /// Key prefix.
    pub redis_prefix: String,
    /// A slower lookup is a miss, ms.
    pub redis_timeout_ms: u64,
}

impl TierSettings {
    /// Reads `gateway.cache` (absent: in-process only).
    pub fn parse(value: Option<&Value>) -> Result<TierSettings, Error> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(TierSettings {
                redis_url: None,
                redis_prefix: "ratewise:cache:".into(),
                redis_timeout_ms: 50,
            });
        };
        let path = "gateway.cache";
        let o = Object::new(value, path, &["redis_url", "redis_prefix", "redis_timeout_ms"])?;
        let redis_url = match o.opt_str("redis_url")? {
            Some(url) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(o.error("redis_url", "must be a redis:// or rediss:// URL"));
                }
                if redis::Client::open(url).is_err() {
                    return Err(o.error("redis_url", "is not a valid Redis URL"));
                }
                Some(Secret::new(url.to_string()))
            }
            None => None,
        };
        let redis_prefix = o.opt_str("redis_prefix")?.unwrap_or("ratewise:cache:").to_string();
        json::printable(&o.at("redis_prefix"), &redis_prefix)?;
        Ok(TierSettings {
            redis_url,
            redis_prefix,
            redis_timeout_ms: o.int("redis_timeout_ms", 50, Bound::Positive)? as u64,
        })
    }
}

/// What one request does with the cache.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The entry's key (SHA-256 of the canonical request), made on first use: most requests
    /// are neither looked up nor stored (not deterministic), and need it only for a stale
    /// answer when no provider can take them.
    key: std::sync::OnceLock<[u8; 32]>,
    /// What the key is made of, besides the body.
    api: Api,
    endpoint: Endpoint,
    capability: String,
    tenant: String,
    /// Look it up (not `bypass` / `no-cache`, and the request is one the capability stores).
    pub read: bool,
    /// Store a fresh answer, fresh for this many ms (`None`: not stored).
    pub store_ttl_ms: Option<u64>,
    /// Kept this long after it is stored, ms (fresh, then stale).
    pub keep_ms: u64,
    /// The client asked `bypass` / `no-cache` (no stale answer either).
    pub bypassed: bool,
}

impl Plan {
    /// The entry's key, for the request `body` this plan was made for.
    pub fn key(&self, body: &Value) -> [u8; 32] {
        *self
            .key
            .get_or_init(|| key(self.api, self.endpoint, &self.capability, &self.tenant, body))
    }

    /// The `x-ratewise-cache` value of an answer that was not a hit.
    pub fn miss_label(&self) -> &'static str {
        if self.read { "miss" } else { "bypass" }
    }
}

/// The per-request cache headers (`x-ratewise-cache`, `Cache-Control`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Directives {
    /// `bypass` / `no-cache`.
    pub bypass: bool,
    /// `no-store`.
    pub no_store: bool,
    /// `ttl=N`, seconds.
    pub ttl_s: Option<u64>,
}

impl Directives {
    /// Reads the headers; an `x-ratewise-cache` it does not know is an error (the message).
    pub fn from_headers(headers: &HeaderMap) -> Result<Directives, String> {
        let mut d = Directives::default();
        for v in headers.get_all("cache-control") {
            for part in v.to_str().unwrap_or("").split(',') {
                match part.trim().to_ascii_lowercase().as_str() {
                    "no-cache" => d.bypass = true,
                    "no-store" => d.no_store = true,
                    _ => {}
                }
            }
        }
        if let Some(v) = headers.get("x-ratewise-cache") {
            let text = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
            match text.as_str() {
                "bypass" => d.bypass = true,
                "no-store" => d.no_store = true,
                t => match t.strip_prefix("ttl=").map(|n| n.trim().parse::<u64>()) {
                    Some(Ok(n)) if (1..=MAX_TTL_S).contains(&n) => d.ttl_s = Some(n),
                    _ => {
                        return Err(format!(
                            "ratewise: x-ratewise-cache must be bypass, no-store or ttl=N (N from 1 to {MAX_TTL_S} seconds)"
                        ));
                    }
                },
            }
        }
        Ok(d)
    }
}

/// A request the capability stores by default: `temperature` 0, or a `seed`.
pub fn deterministic(body: &Value) -> bool {
    body.get("temperature").and_then(Value::as_f64) == Some(0.0) || body.get("seed").is_some_and(|s| !s.is_null())
}

/// The plan for a chat request (`None`: the capability's cache is off).
pub fn plan(
    settings: &CacheSettings,
    directives: Directives,
    api: Api,
    endpoint: Endpoint,
    capability: &str,
    tenant: &str,
    body: &Value,
) -> Option<Plan> {
    if !settings.enabled || endpoint != Endpoint::Chat {
        return None;
    }
    let eligible = settings.all_requests || directives.ttl_s.is_some() || deterministic(body);
    let ttl_s = directives.ttl_s.unwrap_or(settings.ttl_s);
    Some(Plan {
        key: std::sync::OnceLock::new(),
        api,
        endpoint,
        capability: capability.to_string(),
        tenant: tenant.to_string(),
        read: eligible && !directives.bypass,
        store_ttl_ms: (eligible && !directives.no_store).then_some(ttl_s * 1000),
        keep_ms: (ttl_s + settings.max_stale_s) * 1000,
        bypassed: directives.bypass,
    })
}

/// The key: SHA-256 of the version, the API and endpoint, the capability, the tenant and the
/// canonical body (keys sorted, numbers normalised, non-semantic fields dropped).
pub fn key(api: Api, endpoint: Endpoint, capability: &str, tenant: &str, body: &Value) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        KEY_VERSION,
        api.as_str(),
        match endpoint {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
        },
        capability,
        tenant,
    ] {
        // Length-prefixed, so no two different tuples hash the same bytes.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let mut out = Vec::with_capacity(256);
    canonical(body, &mut out, true);
    h.update(&out);
    h.finalize().into()
}

/// Canonical JSON of `v` into `out` (`top`: drop the non-semantic fields).
fn canonical(v: &Value, out: &mut Vec<u8>, top: bool) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| !(top && NOT_SEMANTIC.contains(&k.as_str())))
                .collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                if let Some(item) = map.get(*k) {
                    canonical(item, out, false);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out, false);
            }
            out.push(b']');
        }
        Value::String(s) => string(s, out),
        Value::Number(n) => number(n, out),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping is canonical (one spelling per string).
    let _ = serde_json::to_writer(&mut *out, s);
}

/// One spelling per number: an integral value (within ±2^53 when written as a float) as an
/// integer, any other as the shortest round-trip float.
fn number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(f) = n.as_f64() {
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            out.extend_from_slice((f as i64).to_string().as_bytes());
        } else {
            let _ = serde_json::to_writer(&mut *out, &f);
        }
    }
}

/// A stored answer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The complete answer in the client API's shape, usage zeroed.
    pub body: Bytes,
    /// When it was stored (Unix ms).
    pub stored_ms: u64,
    /// Fresh until `stored_ms + fresh_ms`.
    pub fresh_ms: u64,
    /// Kept until `stored_ms + keep_ms`.
    pub keep_ms: u64,
    /// What the call cost: input and output tokens, USD (what a hit saves).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// USD (0 when unpriced).
    pub cost_usd: f64,
}

impl Entry {
    /// Whole seconds since it was stored.
    pub fn age_s(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_ms) / 1000
    }

    /// Still fresh at `now_ms`.
    pub fn fresh(&self, now_ms: u64) -> bool {
        now_ms < self.stored_ms.saturating_add(self.fresh_ms)
    }

    /// Still kept at `now_ms`.
    pub fn kept(&self, now_ms: u64) -> bool {
        now_ms < self.stored_ms.saturating_add(self.keep_ms)
    }

    /// The Redis form: one JSON line of metadata, then the body.
    fn encode(&self) -> Vec<u8> {
        let meta = serde_json::json!({
            "stored_ms": self.stored_ms, "fresh_ms": self.fresh_ms, "keep_ms": self.keep_ms,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd,
        });
        let mut out = meta.to_string().into_bytes();
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(raw: &[u8]) -> Option<Entry> {
        let nl = raw.iter().position(|b| *b == b'\n')?;
        let meta: Value = serde_json::from_slice(&raw[..nl]).ok()?;
        let int = |k: &str| meta.get(k).and_then(Value::as_u64);
        Some(Entry {
            body: Bytes::copy_from_slice(&raw[nl + 1..]),
            stored_ms: int("stored_ms")?,
            fresh_ms: int("fresh_ms")?,
            keep_ms: int("keep_ms")?,
            input_tokens: int("input_tokens")?,
            output_tokens: int("output_tokens")?,
            cost_usd: meta.get("cost_usd").and_then(Value::as_f64)?,
        })
    }
}

/// Unix time, ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Lru = moka::sync::Cache<[u8; 32], Arc<Entry>>;

struct KeepFor;

impl moka::Expiry<[u8; 32], Arc<Entry>> for KeepFor {
    fn expire_after_create(&self, _key: &[u8; 32], value: &Arc<Entry>, _at: std::time::Instant) -> Option<Duration> {
        let left = value.stored_ms.saturating_add(value.keep_ms).saturating_sub(now_ms());
        Some(Duration::from_millis(left))
    }
}

/// Both tiers.
pub struct Cache {
    /// Per capability: its size and its LRU (replaced when a reload changes the size).
    lrus: RwLock<HashMap<String, (u64, Lru)>>,
    redis: Option<Redis>,
}

struct Redis {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl Cache {
    /// The in-process tier, and the Redis one when configured (connected now: a gateway
    /// configured with a shared cache it cannot reach does not start).
    pub async fn new(tier: &TierSettings) -> Result<Cache, String> {
        let redis = match &tier.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.expose())
                    .map_err(|_| "gateway.cache.redis_url: is not a valid Redis URL".to_string())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(Duration::from_millis(tier.redis_timeout_ms.max(1000))));
                let conn = redis::aio::ConnectionManager::new_with_config(client, config)
                    .await
                    // The error text may quote the URL: only its kind is shown.
                    .map_err(|e| format!("gateway.cache.redis_url: cannot connect ({:?})", e.kind()))?;
                Some(Redis {
                    conn,
                    prefix: tier.redis_prefix.clone(),
                    timeout: Duration::from_millis(tier.redis_timeout_ms),
                })
            }
            None => None,
        };
        Ok(Cache {
            lrus: RwLock::new(HashMap::new()),
            redis,
        })
    }

    fn lru(&self, capability: &str, max_bytes: u64) -> Lru {
        if let Some((size, lru)) = self.lrus.read().get(capability)
            && *size == max_bytes
        {
            return lru.clone();
        }
        let lru: Lru = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k, e: &Arc<Entry>| u32::try_from(e.body.len() + 128).unwrap_or(u32::MAX))
            .expire_after(KeepFor)
            .build();
        self.lrus
            .write()
            .insert(capability.to_string(), (max_bytes, lru.clone()));
        lru
    }

    /// The entry under `key`, from memory, else from Redis (then kept in memory too); `None`
    /// when absent or no longer kept.
    pub async fn get(&self, capability: &str, settings: &CacheSettings, key: &[u8; 32]) -> Option<Arc<Entry>> {
        let lru = self.lru(capability, settings.max_bytes);
        let now = now_ms();
        if let Some(e) = lru.get(key) {
            return e.kept(now).then_some(e);
        }
        let redis = self.redis.as_ref()?;
        let mut conn = redis.conn.clone();
        let name = redis_key(&redis.prefix, key);
        let got: Option<Vec<u8>> = match tokio::time::timeout(redis.timeout, conn.get(&name)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(error_kind = ?e.kind(), "cache: Redis lookup failed (a miss)");
                None
            }
            Err(_) => None,
        };
        let entry = Arc::new(Entry::decode(&got?)?);
        if !entry.kept(now) {
            return None;
        }
        lru.insert(*key, entry.clone());
        Some(entry)
    }

    /// Stores `entry` in memory now and in Redis off the request's path.
    pub fn put(&self, capability: &str, settings: &CacheSettings, key: [u8; 32], entry: Entry) {
        // One answer may not take more than a sixteenth of its capability's LRU.
        if entry.body.len() as u64 > settings.max_bytes / 16 {
            return;
        }
        let entry = Arc::new(entry);
        self.lru(capability, settings.max_bytes).insert(key, entry.clone());
        if let Some(redis) = &self.redis {
            let mut conn = redis.conn.clone();
            let name = redis_key(&redis.prefix, &key);
            let value = entry.encode();
            let px = entry.keep_ms.max(1);
            tokio::spawn(async move {
                let r: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(&name)
                    .arg(value)
                    .arg("PX")
                    .arg(px)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error_kind = ?e.kind(), "cache: Redis store failed");
                }
            });
        }
    }

    /// Bytes held in memory per capability (`/metrics`).
    pub fn sizes(&self) -> Vec<(String, u64)> {
        self.lrus
            .read()
            .iter()
            .map(|(c, (_, lru))| {
                lru.run_pending_tasks();
                (c.clone(), lru.weighted_size())
            })
            .collect()
    }
}

fn redis_key(prefix: &str, key: &[u8; 32]) -> String {
    let mut s = String::with_capacity(prefix.len() + 67);
    s.push_str(prefix);
    s.push_str(KEY_VERSION);
    s.push(':');
    for b in key {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

use redis::AsyncCommands as _;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn k(body: &Value) -> [u8; 32] {
        key(Api::OpenAi, Endpoint::Chat, "chat", "team-a", body)
    }

    fn base() -> Value {
        json!({"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn order_numbers_and_non_semantic_fields_do_not_change_the_key() {
        let same: Vec<Value> = vec![
            serde_json::from_str(r#"{"messages":[{"content":"hi","role":"user"}],"temperature":0.0,"model":"chat"}"#)
                .unwrap(),
            serde_json::from_str(r#"{"model":"chat","temperature":0e0,"messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap(),
            json!({"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": "hi"}],
                   "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
                   "metadata": {"a": "b"}, "store": false, "service_tier": "auto", "prompt_cache_key": "x"}),
        ];
        for b in &same {
            assert_eq!(k(b), k(&base()), "{b}");
        }
    }

    #[test]
    fn every_semantic_field_changes_the_key() {
        let changes: Vec<(&str, Value)> = vec![
            ("model", json!("other")),
            ("temperature", json!(0.5)),
            ("top_p", json!(0.9)),
            ("max_tokens", json!(10)),
            ("stop", json!(["x"])),
            ("seed", json!(1)),
            ("tools", json!([{"type": "function", "function": {"name": "f"}}])),
            ("tool_choice", json!("required")),
            ("response_format", json!({"type": "json_object"})),
            ("messages", json!([{"role": "user", "content": "hi!"}])),
            ("system", json!("be brief")),
        ];
        let base_key = k(&base());
        for (field, value) in changes {
            let mut b = base();
            b[field] = value;
            assert_ne!(k(&b), base_key, "{field}");
        }
        // Dropped only at the top: a nested `user` is content.
        let mut nested = base();
        nested["messages"][0]["user"] = json!("x");
        assert_ne!(k(&nested), base_key);
    }

    #[test]
    fn tenant_capability_api_and_endpoint_partition_the_key() {
        let b = base();
        let all = [
            key(Api::OpenAi, Endpoint::Chat, "chat", "team-a", &b),
            key(Api::OpenAi, Endpoint::Chat, "chat", "team-b", &b),
            key(Api::OpenAi, Endpoint::Chat, "chat2", "team-a", &b),
            key(Api::Anthropic, Endpoint::Chat, "chat", "team-a", &b),
            key(Api::OpenAi, Endpoint::Embeddings, "chat", "team-a", &b),
            // No concatenation ambiguity: ("ab", "c") and ("a", "bc").
            key(Api::OpenAi, Endpoint::Chat, "chatt", "eam-a", &b),
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j], "{i} {j}");
            }
        }
    }

    #[test]
    fn plans_follow_the_settings_and_the_headers() {
        let s = CacheSettings::default();
        let det = base();
        let random = json!({"model": "chat", "messages": []});
        let p = |d: Directives, b: &Value| plan(&s, d, Api::OpenAi, Endpoint::Chat, "chat", "t", b).unwrap();
        let none = Directives::default();
        assert!(p(none, &det).read && p(none, &det).store_ttl_ms == Some(3_600_000));
        assert!(!p(none, &random).read && p(none, &random).store_ttl_ms.is_none());
        assert_eq!(p(none, &random).miss_label(), "bypass");
        let ttl = Directives { ttl_s: Some(5), ..none };
        assert_eq!(p(ttl, &random).store_ttl_ms, Some(5000));
        let bypass = Directives { bypass: true, ..none };
        assert!(!p(bypass, &det).read && p(bypass, &det).store_ttl_ms.is_some());
        let no_store = Directives { no_store: true, ..none };
        assert!(p(no_store, &det).read && p(no_store, &det).store_ttl_ms.is_none());
        let off = CacheSettings {
            enabled: false,
            ..s.clone()
        };
        assert!(plan(&off, none, Api::OpenAi, Endpoint::Chat, "chat", "t", &det).is_none());
        assert!(plan(&s, none, Api::OpenAi, Endpoint::Embeddings, "chat", "t", &det).is_none());
        let all = CacheSettings {
            all_requests: true,
            ..s
        };
        assert!(
            plan(&all, none, Api::OpenAi, Endpoint::Chat, "chat", "t", &random)
                .unwrap()
                .read
        );
    }

    #[test]
    fn headers_parse_and_unknown_values_are_refused() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (n, v) in pairs {
                m.append(*n, v.parse().unwrap());
            }
            Directives::from_headers(&m)
        };
        assert!(h(&[("cache-control", "max-age=0, No-Cache")]).unwrap().bypass);
        assert!(h(&[("cache-control", "no-store")]).unwrap().no_store);
        assert_eq!(h(&[("x-ratewise-cache", "ttl=60")]).unwrap().ttl_s, Some(60));
        assert!(h(&[("x-ratewise-cache", "ttl=0")]).is_err());
        assert!(h(&[("x-ratewise-cache", "sometimes")]).is_err());
    }

    #[test]
    fn entries_round_trip_through_their_redis_form() {
        let e = Entry {
            body: Bytes::from_static(b"{\"a\":\n1}"),
            stored_ms: 5,
            fresh_ms: 6,
            keep_ms: 7,
            input_tokens: 8,
            output_tokens: 9,
            cost_usd: 0.25,
        };
        let d = Entry::decode(&e.encode()).unwrap();
        assert_eq!(
            (
                d.body,
                d.stored_ms,
                d.fresh_ms,
                d.keep_ms,
                d.input_tokens,
                d.output_tokens,
                d.cost_usd
            ),
            (e.body, 5, 6, 7, 8, 9, 0.25)
        );
        assert!(Entry::decode(b"garbage").is_none());
    }
}
