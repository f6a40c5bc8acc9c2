//! The gateway's configuration: the engine's JSON document plus one `gateway` object, validated
//! whole, every error naming its JSON path (`gateway.upstreams.gpt-eu.base_url: is required`).
//!
//! ```json
//! { "providers": [{"name": "gpt-eu", "model": "gpt-4o-mini", "quotas": [...]}],
//!   "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-eu"}]}],
//!   "gateway": {
//!     "listen": "127.0.0.1:8080",
//!     "upstreams": {"gpt-eu": {"api": "openai", "base_url": "https://api.openai.com/v1",
//!                              "api_key_env": "OPENAI_API_KEY"}},
//!     "keys": [{"name": "team-a", "sha256": "<hex>", "capabilities": ["chat"], "lanes": ["normal"]}] } }
//! ```
//!
//! Upstream API keys are read once, at load, from the environment or a file; they are kept
//! in [`Secret`], whose `Debug` never shows them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use ratewise::json::{self, Bound, Object};
use ratewise::{Config, Error};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Which HTTP API an upstream (or a client) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI chat completions (`/v1/chat/completions`, `/v1/embeddings`).
    OpenAi,
    /// Anthropic messages (`/v1/messages`).
    Anthropic,
}

impl Api {
    /// The configuration name (`openai`, `anthropic`).
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

/// A secret string (an upstream API key): never printed.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0 == other.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(none)"
        } else {
            "Secret(***)"
        })
    }
}

/// Headers an upstream's `headers` may not set: the gateway sets them.
const RESERVED_HEADERS: [&str; 6] = [
    "authorization",
    "x-api-key",
    "content-type",
    "content-length",
    "host",
    "accept",
];

/// How to reach one provider.
#[derive(Clone)]
pub struct Upstream {
    /// The API it speaks.
    pub api: Api,
    /// Base URL without a trailing slash: `https://api.openai.com/v1` (OpenAI: the SDK's
    /// `base_url`, with `/v1`), `https://api.anthropic.com` (Anthropic: without it).
    pub base_url: String,
    /// The endpoints' URLs, parsed once: chat (`/chat/completions`, `/v1/messages`) and
    /// embeddings (`/embeddings`, OpenAI only).
    pub urls: (hyper::Uri, hyper::Uri),
    /// Its API key (empty: none sent).
    pub api_key: Secret,
    /// What every request carries besides its content headers, made once: the key's header
    /// (`authorization: Bearer` or `x-api-key`, first, when there is a key) and the extra
    /// headers (`anthropic-version` defaults to `2023-06-01`), all marked sensitive (never
    /// indexed by HTTP/2's header compression; `Debug` shows them as `Sensitive`).
    pub sent_headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

impl std::fmt::Debug for Upstream {
    // Extra headers often hold credentials (Azure's `api-key`, a proxy's token): names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra = usize::from(!self.api_key.0.is_empty());
        let names: Vec<&str> = self.sent_headers.iter().skip(extra).map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Upstream")
            .field("api", &self.api)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("headers", &names)
            .finish()
    }
}

/// A virtual key: who may call, what, in which lanes.
#[derive(Debug, Clone)]
pub struct VirtualKey {
    /// Its name (metrics never carry it; logs may).
    pub name: String,
    /// Capabilities it may use (`None`: all).
    pub capabilities: Option<Vec<String>>,
    /// Lanes it may ask for (`None`: any); the first is its default.
    pub lanes: Option<Vec<String>>,
    /// Its longest wait for a permit, ms (`None`: the gateway's `timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Its own quotas (engine quota syntax; budgets in requests, tokens or cost), or null.
    pub quotas: Value,
    /// Its cache tenant: keys of one team share cache entries (`None`: the key's own).
    pub team: Option<String>,
    /// Degraded answers allowed (`false`: refusals only).
    pub degraded: bool,
}

/// The `gateway` object, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Upstream per provider name.
    pub upstreams: HashMap<String, Upstream>,
    /// Virtual keys by the SHA-256 (lowercase hex) of the key; empty: no authentication.
    pub keys: HashMap<String, VirtualKey>,
    /// SHA-256 of the admin key (`/admin/*`); `None`: the admin endpoints are off.
    pub admin_key_sha256: Option<String>,
    /// A call's longest wait for a permit (and for all its attempts), ms.
    pub timeout_ms: u64,
    /// Runtime worker threads (default: the CPUs this process may run on; 1 with busy polling).
    pub worker_threads: usize,
    /// How long the runtime keeps polling its sockets after each event instead of sleeping, µs
    /// (0: off, the default). Needs one worker thread and the memory store.
    pub busy_poll_us: u64,
    /// Sends per call (the first and the retries).
    pub max_attempts: u32,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Upstream connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Upstream time to the response head (and between body chunks), ms.
    pub read_timeout_ms: u64,
    /// `max_tokens` sent to an Anthropic upstream when an OpenAI client gave none, and the
    /// output estimate of a request that names no limit.
    pub default_max_tokens: u64,
    /// How long SIGTERM waits for calls in flight before closing, ms.
    pub shutdown_grace_ms: u64,
    /// The response cache's shared tier (`gateway.cache`).
    pub cache: crate::cache::TierSettings,
    /// Cache and degraded-answer settings of every capability (defaults where not configured).
    pub capabilities: HashMap<String, crate::degraded::CapabilitySettings>,
    /// The spend ledger and availability log (`gateway.ledger`; `None`: `false`, off).
    pub ledger: Option<LedgerSettings>,
    /// Webhook alerts (`gateway.alerts`; `None`: off).
    pub alerts: Option<crate::alerts::AlertSettings>,
}

/// `gateway.ledger`: where every request's record and every provider event are written.
#[derive(Clone, PartialEq)]
pub struct LedgerSettings {
    /// The ledger's own settings; a relative `sqlite:` path is resolved against the
    /// configuration file's folder.
    pub config: ratewise_ledger::LedgerConfig,
}

impl std::fmt::Debug for LedgerSettings {
    // The URL may carry a database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerSettings")
            .field("url", &self.config.redacted_url())
            .field("retention_days", &self.config.retention_days)
            .finish()
    }
}

/// The default ledger: a SQLite file next to the configuration.
pub const DEFAULT_LEDGER_URL: &str = "sqlite:ratewise-ledger.db";

fn parse_ledger(value: Option<&Value>) -> Result<Option<LedgerSettings>, Error> {
    let path = "gateway.ledger";
    let value = match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {
            return Ok(Some(LedgerSettings {
                config: ratewise_ledger::LedgerConfig::new(DEFAULT_LEDGER_URL),
            }));
        }
        Some(Value::Bool(false)) => return Ok(None),
        Some(v) => v,
    };
    let o = Object::new(
        value,
        path,
        &["url", "url_env", "retention_days", "batch_max", "flush_ms", "queue_max"],
    )?;
    let url = match (o.opt_str("url")?, o.opt_str("url_env")?) {
        (Some(_), Some(_)) => return Err(o.error("url_env", "give url or url_env, not both")),
        (Some(u), None) => u.to_string(),
        (None, Some(var)) => {
            std::env::var(var).map_err(|_| o.error("url_env", &format!("the environment variable {var} is not set")))?
        }
        (None, None) => DEFAULT_LEDGER_URL.to_string(),
    };
    let mut config = ratewise_ledger::LedgerConfig::new(url);
    config.retention_days = o.int("retention_days", 30, Bound::Positive)?.min(36_500) as u32;
    config.batch_max = o.int("batch_max", 512, Bound::Positive)?.min(10_000) as usize;
    config.flush_ms = o.int("flush_ms", 200, Bound::Positive)?.min(60_000) as u64;
    config.queue_max = o.int("queue_max", 65_536, Bound::Positive)?.min(1 << 24) as usize;
    // The ledger's own message names the field: prefix it with the path.
    config.validate().map_err(|e| {
        let text = e.to_string();
        let field = text.trim_start_matches("ledger configuration: ");
        json::error(path, field)
    })?;
    Ok(Some(LedgerSettings { config }))
}

/// The ledger settings of a configuration file, alone (`ratewise usage`): the rest of the file
/// is not validated, and no upstream key is read. `None`: `gateway.ledger` is `false`.
pub fn ledger_of_file(path: &Path) -> Result<Option<LedgerSettings>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidConfig(format!("cannot read {}: {e}", path.display())))?;
    let doc = json::parse(&text, "", "configuration")?;
    let gateway = doc.get("gateway");
    let Some(g) = gateway.filter(|g| g.is_object()) else {
        return Err(json::error("gateway", "is required (listen, upstreams)"));
    };
    let mut settings = parse_ledger(g.get("ledger"))?;
    if let (Some(l), Some(dir)) = (settings.as_mut(), path.parent())
        && !dir.as_os_str().is_empty()
    {
        resolve_ledger_path(l, dir);
    }
    Ok(settings)
}

/// `sqlite:RELATIVE` → `sqlite:BASE/RELATIVE`.
fn resolve_ledger_path(settings: &mut LedgerSettings, base: &Path) {
    let url = &settings.config.url;
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let p = Path::new(rest);
        if p.is_relative() {
            settings.config.url = format!("sqlite:{}", base.join(p).display());
        }
    }
}

/// The whole file: the engine's configuration and the gateway's.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The engine's part (everything but `gateway`), validated by the engine.
    pub engine: Config,
    /// The gateway's part.
    pub gateway: GatewayConfig,
    /// The key budgets' engine (its JSON document and configuration), when a key has quotas.
    pub budgets: Option<(Value, Config)>,
}

/// Lowercase hex SHA-256 of `text` (how virtual keys are stored).
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl ServeConfig {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<ServeConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidConfig(format!("cannot read {}: {e}", path.display())))?;
        ServeConfig::from_json_at(&text, path.parent())
    }

    /// [`ServeConfig::from_json`] for a file in `folder`: a relative ledger path is resolved
    /// against it (`None` or an empty path: the current folder).
    pub fn from_json_at(text: &str, folder: Option<&Path>) -> Result<ServeConfig, Error> {
        let mut config = ServeConfig::from_json(text)?;
        if let (Some(l), Some(dir)) = (config.gateway.ledger.as_mut(), folder)
            && !dir.as_os_str().is_empty()
        {
            resolve_ledger_path(l, dir);
        }
        Ok(config)
    }

    /// Parses and validates a configuration; environment variables and files named by
    /// `api_key_env` / `api_key_file` are read now.
    pub fn from_json(text: &str) -> Result<ServeConfig, Error> {
        let mut doc = json::parse(text, "", "configuration")?;
        let gateway = match doc.as_object_mut() {
            Some(root) => root.remove("gateway"),
            None => return Err(json::error("", "must be an object")),
        };
        crate::prices::fill(&mut doc, gateway.as_ref());
        let engine = Config::from_value(&doc)?;
        let gateway = match gateway {
            Some(g) if !g.is_null() => parse_gateway(&g, &engine)?,
            _ => return Err(json::error("gateway", "is required (listen, upstreams)")),
        };
        let mut budget_keys: Vec<(String, Value, Vec<String>)> = Vec::new();
        for k in gateway.keys.values() {
            let reachable = engine
                .capabilities
                .iter()
                .filter(|c| k.capabilities.as_ref().is_none_or(|allowed| allowed.contains(&c.name)))
                .flat_map(|c| c.providers.iter().map(|e| e.provider.clone()))
                .fold(Vec::new(), |mut v: Vec<String>, p| {
                    if !v.contains(&p) {
                        v.push(p);
                    }
                    v
                });
            budget_keys.push((k.name.clone(), k.quotas.clone(), reachable));
        }
        budget_keys.sort_by(|a, b| a.0.cmp(&b.0));
        let budgets = crate::budgets::config(&budget_keys, &engine)?;
        Ok(ServeConfig {
            engine,
            gateway,
            budgets,
        })
    }
}

fn parse_gateway(value: &Value, engine: &Config) -> Result<GatewayConfig, Error> {
    let g = Object::new(
        value,
        "gateway",
        &[
            "listen",
            "upstreams",
            "keys",
            "admin_key_sha256",
            "timeout_ms",
            "max_attempts",
            "max_body_bytes",
            "connect_timeout_ms",
            "read_timeout_ms",
            "default_max_tokens",
            "shutdown_grace_ms",
            "worker_threads",
            "busy_poll_us",
            "cache",
            "capabilities",
            "ledger",
            "alerts",
            "prices",
        ],
    )?;
    if g.get("prices").is_some_and(|v| !v.is_boolean() && !v.is_null()) {
        return Err(g.error("prices", "must be true (the bundled table, the default) or false"));
    }
    let listen_text = g.opt_str("listen")?.unwrap_or("127.0.0.1:8080");
    let listen: SocketAddr = listen_text
        .parse()
        .map_err(|_| g.error("listen", "must be an address like 127.0.0.1:8080"))?;

    let mut upstreams = HashMap::new();
    let up_value = g.required("upstreams")?;
    let Some(entries) = up_value.as_object() else {
        return Err(g.error("upstreams", "must be an object: provider name -> upstream"));
    };
    for (name, u) in entries {
        let path = format!("gateway.upstreams.{name}");
        if !engine.providers.iter().any(|p| &p.name == name) {
            return Err(json::error(&path, "names no provider of the configuration"));
        }
        upstreams.insert(name.clone(), parse_upstream(u, &path)?);
    }
    for (i, p) in engine.providers.iter().enumerate() {
        if !upstreams.contains_key(&p.name) {
            return Err(json::error(
                &format!("providers[{i}]"),
                &format!("provider '{}' has no entry in gateway.upstreams", p.name),
            ));
        }
    }

    let mut keys = HashMap::new();
    if let Some(list) = g.get("keys").filter(|v| !v.is_null()) {
        let Some(list) = list.as_array() else {
            return Err(g.error("keys", "must be an array"));
        };
        for (i, k) in list.iter().enumerate() {
            let path = format!("gateway.keys[{i}]");
            let (hash, key) = parse_key(k, &path, engine)?;
            if keys.values().any(|v: &VirtualKey| v.name == key.name) {
                return Err(json::error(
                    &format!("{path}.name"),
                    &format!("duplicate key name '{}'", key.name),
                ));
            }
            if keys.insert(hash, key).is_some() {
                return Err(json::error(&format!("{path}.sha256"), "duplicate key hash"));
            }
        }
    }
    let mut capabilities: HashMap<String, crate::degraded::CapabilitySettings> = engine
        .capabilities
        .iter()
        .map(|c| (c.name.clone(), Default::default()))
        .collect();
    if let Some(caps) = g.get("capabilities").filter(|v| !v.is_null()) {
        let Some(caps) = caps.as_object() else {
            return Err(g.error("capabilities", "must be an object: capability name -> settings"));
        };
        for (name, c) in caps {
            let path = format!("gateway.capabilities.{name}");
            if !capabilities.contains_key(name) {
                return Err(json::error(&path, "names no capability of the configuration"));
            }
            capabilities.insert(name.clone(), crate::degraded::CapabilitySettings::parse(c, &path)?);
        }
    }
    let cache = crate::cache::TierSettings::parse(g.get("cache"))?;
    let ledger = parse_ledger(g.get("ledger"))?;
    let alerts = crate::alerts::AlertSettings::parse(g.get("alerts"), ledger.is_some())?;
    let admin_key_sha256 = match g.opt_str("admin_key_sha256")? {
        Some(h) => Some(check_hash(h, &g.at("admin_key_sha256"))?),
        None => None,
    };
    // Busy polling runs on the single-threaded runtime: one worker (its default then), and the
    // memory store (the Redis store's calls block, so they need the multi-threaded one).
    let busy_poll_us = g.int("busy_poll_us", 0, Bound::NonNegative)? as u64;
    if busy_poll_us > 1_000_000 {
        return Err(json::error(
            &g.at("busy_poll_us"),
            "must be at most 1000000 (one second)",
        ));
    }
    let worker_threads = match g.get("worker_threads").filter(|v| !v.is_null()) {
        Some(_) => g.required_int("worker_threads", Bound::Positive)?.min(1024) as usize,
        None if busy_poll_us > 0 => 1,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    if busy_poll_us > 0 && worker_threads != 1 {
        return Err(json::error(
            &g.at("busy_poll_us"),
            "needs the single-threaded runtime: set gateway.worker_threads to 1 (or leave it out)",
        ));
    }
    if busy_poll_us > 0 && !matches!(engine.store, ratewise::StoreConfig::Memory) {
        return Err(json::error(
            &g.at("busy_poll_us"),
            "needs the memory store (the Redis store runs the multi-threaded runtime)",
        ));
    }
    Ok(GatewayConfig {
        listen,
        upstreams,
        keys,
        admin_key_sha256,
        timeout_ms: g.int("timeout_ms", 30_000, Bound::NonNegative)? as u64,
        max_attempts: g.int("max_attempts", 3, Bound::Positive)?.min(i64::from(u32::MAX)) as u32,
        max_body_bytes: g.int("max_body_bytes", 8 << 20, Bound::Positive)? as usize,
        connect_timeout_ms: g.int("connect_timeout_ms", 5_000, Bound::Positive)? as u64,
        read_timeout_ms: g.int("read_timeout_ms", 300_000, Bound::Positive)? as u64,
        default_max_tokens: g.int("default_max_tokens", 4_096, Bound::Positive)? as u64,
        shutdown_grace_ms: g.int("shutdown_grace_ms", 10_000, Bound::NonNegative)? as u64,
        cache,
        capabilities,
        ledger,
        alerts,
        worker_threads,
        busy_poll_us,
    })
}

fn parse_upstream(value: &Value, path: &str) -> Result<Upstream, Error> {
    let u = Object::new(
        value,
        path,
        &["api", "base_url", "api_key_env", "api_key_file", "headers"],
    )?;
    let api = match u.required_str("api")? {
        "openai" => Api::OpenAi,
        "anthropic" => Api::Anthropic,
        _ => return Err(u.error("api", "must be \"openai\" or \"anthropic\"")),
    };
    let base_url = u.required_str("base_url")?.trim_end_matches('/').to_string();
    let parsed = reqwest::Url::parse(&base_url).map_err(|e| u.error("base_url", &format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(u.error("base_url", "must be an http:// or https:// URL with a host"));
    }
    // Credentials in the URL would reach every place a URL is shown (check, logs, errors).
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(u.error(
            "base_url",
            "must not carry credentials (use api_key_env or api_key_file)",
        ));
    }
    let key_source = if u.opt_str("api_key_file")?.is_some() {
        "api_key_file"
    } else {
        "api_key_env"
    };
    let api_key = match (u.opt_str("api_key_env")?, u.opt_str("api_key_file")?) {
        (Some(_), Some(_)) => return Err(u.error("api_key_file", "give api_key_env or api_key_file, not both")),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Secret(v.trim().to_string()),
            _ => return Err(u.error("api_key_env", &format!("environment variable {var} is not set"))),
        },
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(v) if !v.trim().is_empty() => Secret(v.trim().to_string()),
            Ok(_) => return Err(u.error("api_key_file", &format!("{file} is empty"))),
            Err(e) => return Err(u.error("api_key_file", &format!("cannot read {file}: {e}"))),
        },
        (None, None) => Secret::default(),
    };
    let mut headers = Vec::new();
    if let Some(h) = u.get("headers").filter(|v| !v.is_null()) {
        let Some(map) = h.as_object() else {
            return Err(u.error("headers", "must be an object of strings"));
        };
        for (name, v) in map {
            let Some(text) = v.as_str() else {
                return Err(json::error(&format!("{path}.headers.{name}"), "must be a string"));
            };
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(json::error(
                    &format!("{path}.headers.{name}"),
                    "is set by the gateway (use api_key_env / api_key_file for the key)",
                ));
            }
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || axum::http::HeaderValue::from_str(text).is_err()
            {
                return Err(json::error(
                    &format!("{path}.headers.{name}"),
                    "is not a valid HTTP header",
                ));
            }
            headers.push((name.to_ascii_lowercase(), text.to_string()));
        }
    }
    if api == Api::Anthropic && !headers.iter().any(|(n, _)| n == "anthropic-version") {
        headers.push(("anthropic-version".into(), "2023-06-01".into()));
    }
    let mut sent_headers = Vec::with_capacity(headers.len() + 1);
    if !api_key.0.is_empty() {
        let (name, text) = match api {
            Api::OpenAi => (axum::http::header::AUTHORIZATION, format!("Bearer {}", api_key.0)),
            Api::Anthropic => (axum::http::HeaderName::from_static("x-api-key"), api_key.0.clone()),
        };
        // Named, never shown: the key is a secret.
        let Ok(value) = axum::http::HeaderValue::try_from(text) else {
            return Err(u.error(
                key_source,
                "the key is not a valid HTTP header value (a line break or a control character inside it?)",
            ));
        };
        sent_headers.push((name, value));
    }
    for (name, value) in &headers {
        // Both were checked above.
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            sent_headers.push((n, v));
        }
    }
    for (_, v) in &mut sent_headers {
        v.set_sensitive(true);
    }
    let url = |path: &str| {
        let url = reqwest::Url::parse(&format!("{base_url}{path}"))
            .map_err(|e| u.error("base_url", &format!("is not a URL: {e}")))?;
        // The normalised form (`url` encodes what `http` would refuse).
        url.as_str()
            .parse::<hyper::Uri>()
            .map_err(|e| u.error("base_url", &format!("is not a URL: {e}")))
    };
    let urls = match api {
        Api::OpenAi => (url("/chat/completions")?, url("/embeddings")?),
        Api::Anthropic => (url("/v1/messages")?, url("/v1/messages")?),
    };
    Ok(Upstream {
        api,
        urls,
        base_url,
        api_key,
        sent_headers,
    })
}

fn parse_key(value: &Value, path: &str, engine: &Config) -> Result<(String, VirtualKey), Error> {
    let k = Object::new(
        value,
        path,
        &[
            "name",
            "sha256",
            "capabilities",
            "lanes",
            "timeout_ms",
            "quotas",
            "team",
            "degraded",
        ],
    )?;
    let name = k.name("name")?;
    let hash = check_hash(k.required_str("sha256")?, &k.at("sha256"))?;
    let names = |key: &str, known: &dyn Fn(&str) -> bool, what: &str| -> Result<Option<Vec<String>>, Error> {
        let Some(list) = k.get(key).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let Some(items) = list.as_array() else {
            return Err(k.error(key, "must be an array of names"));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}.{key}[{i}]");
            let Some(s) = item.as_str() else {
                return Err(json::error(&at, "must be a string"));
            };
            if !known(s) {
                return Err(json::error(&at, &format!("unknown {what} '{s}'")));
            }
            out.push(s.to_string());
        }
        if out.is_empty() {
            return Err(k.error(key, "must not be empty (leave it out to allow all)"));
        }
        Ok(Some(out))
    };
    let capabilities = names(
        "capabilities",
        &|s| engine.capabilities.iter().any(|c| c.name == s),
        "capability",
    )?;
    let lanes = names("lanes", &|s| engine.lanes.iter().any(|l| l.name == s), "lane")?;
    let quotas = crate::budgets::quotas_of(value);
    if !quotas.is_null() {
        crate::budgets::check_quotas(&quotas, &k.at("quotas"))?;
    }
    let timeout_ms = match k.get("timeout_ms").filter(|v| !v.is_null()) {
        Some(_) => Some(k.required_int("timeout_ms", Bound::NonNegative)? as u64),
        None => None,
    };
    Ok((
        hash,
        VirtualKey {
            name,
            capabilities,
            lanes,
            timeout_ms,
            quotas,
            team: match k.get("team").filter(|v| !v.is_null()) {
                Some(_) => Some(k.name("team")?),
                None => None,
            },
            degraded: k.bool("degraded", true)?,
        },
    ))
}

fn check_hash(h: &str, path: &str) -> Result<String, Error> {
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(json::error(
            path,
            "must be the SHA-256 of the key, 64 hex digits (printf %s KEY | sha256sum)",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ENGINE: &str = r#""providers": [{"name": "a", "model": "gpt-x"}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "a"}]}]"#;

    fn with(gateway: &str) -> Result<ServeConfig, Error> {
        ServeConfig::from_json(&format!("{{{ENGINE}, \"gateway\": {gateway}}}"))
    }

    fn err(gateway: &str) -> String {
        with(gateway).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_gateway_takes_the_defaults() {
        let c = with(r#"{"upstreams": {"a": {"api": "openai", "base_url": "http://127.0.0.1:9/v1/"}}}"#).unwrap();
        assert_eq!(c.gateway.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.gateway.upstreams["a"].base_url, "http://127.0.0.1:9/v1");
        assert_eq!(c.gateway.timeout_ms, 30_000);
        assert_eq!(c.gateway.max_attempts, 3);
        assert!(c.gateway.keys.is_empty());
        assert_eq!(c.engine.providers[0].model, "gpt-x");
    }

    #[test]
    fn errors_name_their_json_path() {
        assert_eq!(
            err(r#"{"upstreams": {"a": {"api": "grpc", "base_url": "http://x"}}}"#),
            "gateway.upstreams.a.api: must be \"openai\" or \"anthropic\""
        );
        assert_eq!(
            err(r#"{"upstreams": {"b": {"api": "openai", "base_url": "http://x"}}}"#),
            "gateway.upstreams.b: names no provider of the configuration"
        );
        assert_eq!(
            err(r#"{"upstreams": {}}"#),
            "providers[0]: provider 'a' has no entry in gateway.upstreams"
        );
        assert_eq!(
            err(r#"{"listen": "here", "upstreams": {}}"#),
            "gateway.listen: must be an address like 127.0.0.1:8080"
        );
        assert_eq!(
            err(r#"{"upstreams": {"a": {"api": "openai", "base_url": "x"}}, "colour": 1}"#),
            "gateway.colour: unknown key"
        );
        assert_eq!(
            err(
                r#"{"upstreams": {"a": {"api": "openai", "base_url": "http://x", "api_key_env": "RATEWISE_TEST_UNSET_VAR"}}}"#
            ),
            "gateway.upstreams.a.api_key_env: environment variable RATEWISE_TEST_UNSET_VAR is not set"
        );
        let key = r#"{"upstreams": {"a": {"api": "openai", "base_url": "http://x"}}, "keys": [{"name": "t", "sha256": "abc"}]}"#;
        assert!(err(key).starts_with("gateway.keys[0].sha256: must be the SHA-256 of the key"));
        let cap = format!(
            r#"{{"upstreams": {{"a": {{"api": "openai", "base_url": "http://x"}}}}, "keys": [{{"name": "t", "sha256": "{}", "capabilities": ["chat", "nope"]}}]}}"#,
            sha256_hex("k")
        );
        assert_eq!(err(&cap), "gateway.keys[0].capabilities[1]: unknown capability 'nope'");
        assert_eq!(
            err(r#"{"upstreams": {"a": {"api": "openai", "base_url": "http://x", "headers": {"X-Api-Key": "k"}}}}"#),
            "gateway.upstreams.a.headers.X-Api-Key: is set by the gateway (use api_key_env / api_key_file for the key)"
        );
        assert_eq!(
            err(r#"{"upstreams": {"a": {"api": "openai", "base_url": "https://u:sk-secret@x/v1"}}}"#),
            "gateway.upstreams.a.base_url: must not carry credentials (use api_key_env or api_key_file)"
        );
        assert!(
            err(r#"{"upstreams": {"a": {"api": "openai", "base_url": "http://"}}}"#)
                .starts_with("gateway.upstreams.a.base_url: is not a URL")
        );
        let empty = format!(
            r#"{{"upstreams": {{"a": {{"api": "openai", "base_url": "http://x"}}}}, "keys": [{{"name": "t", "sha256": "{}", "quotas": []}}]}}"#,
            sha256_hex("k")
        );
        assert_eq!(
            err(&empty),
            "gateway.keys[0].quotas: must not be empty (leave it out for a key without a budget)"
        );
        let bad_quota = format!(
            r#"{{"upstreams": {{"a": {{"api": "openai", "base_url": "http://x"}}}}, "keys": [{{"name": "t", "sha256": "{}", "quotas": [{{"dimension": "requests", "limit": -1}}]}}]}}"#,
            sha256_hex("k")
        );
        assert_eq!(err(&bad_quota), "gateway.keys[0].quotas[0].limit: must be > 0");
        assert_eq!(
            ServeConfig::from_json(&format!("{{{ENGINE}}}"))
                .unwrap_err()
                .to_string(),
            "gateway: is required (listen, upstreams)"
        );
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused_without_showing_it() {
        let file = std::env::temp_dir().join(format!("rw-gw-badkey-{}", std::process::id()));
        // Two lines: what a key file with a comment, or two keys, holds.
        std::fs::write(&file, "sk-first-half\nsk-second-half\n").unwrap();
        let g = format!(
            r#"{{"upstreams": {{"a": {{"api": "openai", "base_url": "http://x", "api_key_file": "{}"}}}}}}"#,
            file.display()
        );
        let e = err(&g);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            e,
            "gateway.upstreams.a.api_key_file: the key is not a valid HTTP header value (a line break or a control character inside it?)"
        );
    }

    #[test]
    fn busy_polling_takes_one_worker_and_the_memory_store() {
        let up = r#""upstreams": {"a": {"api": "openai", "base_url": "http://127.0.0.1:9/v1"}}"#;
        let c = with(&format!("{{{up}}}")).unwrap();
        assert_eq!(c.gateway.busy_poll_us, 0, "off by default");
        let c = with(&format!(r#"{{{up}, "busy_poll_us": 200}}"#)).unwrap();
        assert_eq!(
            (c.gateway.busy_poll_us, c.gateway.worker_threads),
            (200, 1),
            "one worker by default then"
        );
        let c = with(&format!(r#"{{{up}, "busy_poll_us": 200, "worker_threads": 1}}"#)).unwrap();
        assert_eq!(c.gateway.worker_threads, 1);
        assert_eq!(
            err(&format!(r#"{{{up}, "busy_poll_us": 200, "worker_threads": 2}}"#)),
            "gateway.busy_poll_us: needs the single-threaded runtime: set gateway.worker_threads to 1 (or leave it out)"
        );
        assert_eq!(
            err(&format!(r#"{{{up}, "busy_poll_us": -1}}"#)),
            "gateway.busy_poll_us: must be >= 0"
        );
        assert_eq!(
            err(&format!(r#"{{{up}, "busy_poll_us": 1000001}}"#)),
            "gateway.busy_poll_us: must be at most 1000000 (one second)"
        );
        let redis = ServeConfig::from_json(&format!(
            r#"{{{ENGINE}, "store": {{"kind": "redis", "url": "redis://127.0.0.1:1"}}, "gateway": {{{up}, "busy_poll_us": 50}}}}"#
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            redis,
            "gateway.busy_poll_us: needs the memory store (the Redis store runs the multi-threaded runtime)"
        );
    }

    #[test]
    fn the_engine_part_is_validated_by_the_engine() {
        let e = ServeConfig::from_json(
            r#"{"providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 0}]}], "gateway": {"upstreams": {}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "providers[0].quotas[0].limit: must be > 0");
    }

    #[test]
    fn keys_are_stored_by_their_hash_and_secrets_never_print() {
        let c = {
            let file = std::env::temp_dir().join(format!("rw-gw-key-{}", std::process::id()));
            std::fs::write(&file, "sk-secret-value\n").unwrap();
            let g = format!(
                r#"{{"upstreams": {{"a": {{"api": "anthropic", "base_url": "http://x", "api_key_file": "{}"}}}}, "keys": [{{"name": "t", "sha256": "{}", "lanes": ["batch"]}}]}}"#,
                file.display(),
                sha256_hex("team-key").to_uppercase()
            );
            let c = with(&g).unwrap();
            std::fs::remove_file(&file).unwrap();
            c
        };
        let up = &c.gateway.upstreams["a"];
        assert_eq!(up.api_key.expose(), "sk-secret-value");
        assert!(!format!("{c:?}").contains("sk-secret-value"));
        assert!(
            up.sent_headers
                .iter()
                .any(|(n, v)| n == "anthropic-version" && v.to_str().unwrap() == "2023-06-01")
        );
        // Debug names the extra headers, not the key's.
        assert!(
            format!("{up:?}").contains(r#"headers: ["anthropic-version"]"#),
            "{up:?}"
        );
        // The key's header is made once, marked sensitive, and never printed either.
        let (name, value) = &up.sent_headers[0];
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("x-api-key", "sk-secret-value")
        );
        assert!(up.sent_headers.iter().all(|(_, v)| v.is_sensitive()));
        assert!(!format!("{:?}", up.sent_headers).contains("sk-secret-value"));
        let key = &c.gateway.keys[&sha256_hex("team-key")];
        assert_eq!(key.lanes.as_deref(), Some(&["batch".to_string()][..]));
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
