//! Virtual keys' own quotas (budgets in requests, tokens or cost per window), enforced by the
//! engine machinery itself: a second [`Engine`] whose providers are `(key, provider)` pairs.
//!
//! Each pair `vk:<key>:<provider>` carries the key's quotas, all in shared buckets
//! (`"key": "vk:<key>:<i>"`), so every provider a key reaches draws from one budget, and its
//! price is the real provider's (an unpriced provider costs 0), so a `cost` budget settles the
//! exact cost of what was served. On a Redis store the budgets live beside the providers'
//! state (prefix `<prefix>:vk`), shared by every gateway instance.
//!
//! Only what the provider did is charged: a call that failed at the provider (429, 5xx...) is
//! refunded to the key; a success settles its usage; an interrupted call keeps what it used.

use std::collections::HashSet;

use arc_swap::ArcSwap;
use std::sync::Arc;

use ratewise::{Config, Engine, Error, Outcome, PermitId, Request, Status, StoreConfig};
use serde_json::{Value, json};

use crate::translate::Usage;

/// The pair capability (and provider) of `key` and `provider`.
pub fn pair(key: &str, provider: &str) -> String {
    format!("vk:{key}:{provider}")
}

/// Checks one key's `quotas` (engine syntax) with errors at `path` (`gateway.keys[0].quotas`).
pub fn check_quotas(quotas: &Value, path: &str) -> Result<(), Error> {
    if quotas.as_array().is_some_and(Vec::is_empty) {
        return Err(Error::InvalidConfig(format!(
            "{path}: must not be empty (leave it out for a key without a budget)"
        )));
    }
    let doc =
        json!({"providers": [{"name": "key", "quotas": quotas, "price": {"input_per_mtok": 0, "output_per_mtok": 0}}]});
    Config::from_value(&doc).map(drop).map_err(|e| match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(m.replacen("providers[0].quotas", path, 1)),
        other => other,
    })
}

/// The budget engine's configuration, as the JSON document and validated (`None` when no key
/// has quotas). `keys`: each key's name, `quotas` and the providers it can reach.
pub fn config(keys: &[(String, Value, Vec<String>)], engine: &Config) -> Result<Option<(Value, Config)>, Error> {
    let mut providers = Vec::new();
    let mut capabilities = Vec::new();
    for (name, quotas, reachable) in keys {
        let Some(list) = quotas.as_array().filter(|q| !q.is_empty()) else {
            continue;
        };
        let shared: Vec<Value> = list
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let mut q = q.clone();
                if let Some(m) = q.as_object_mut()
                    && m.get("dimension").and_then(Value::as_str) != Some("concurrency")
                {
                    m.insert("key".into(), Value::String(format!("vk:{name}:{i}")));
                }
                q
            })
            .collect();
        for provider in reachable {
            let price = engine
                .providers
                .iter()
                .find(|p| &p.name == provider)
                .and_then(|p| p.price.as_ref())
                .map_or_else(
                    || json!({"input_per_mtok": 0, "output_per_mtok": 0}),
                    ratewise::Price::to_json,
                );
            let id = pair(name, provider);
            providers.push(json!({"name": id, "quotas": shared, "price": price}));
            capabilities.push(json!({"name": id, "providers": [{"provider": id}]}));
        }
    }
    if providers.is_empty() {
        return Ok(None);
    }
    let doc = json!({"providers": providers, "capabilities": capabilities});
    let mut config = Config::from_value(&doc)?;
    config.store = engine.store.clone();
    if let StoreConfig::Redis { prefix, .. } = &mut config.store {
        *prefix = format!("{prefix}:vk");
    }
    Ok(Some((doc, config)))
}

/// The budget engine.
pub struct Budgets {
    engine: Arc<Engine>,
    /// Keys that have a budget.
    keys: ArcSwap<HashSet<String>>,
}

impl Budgets {
    /// Builds the engine for `config`, the budgets of the keys named in `keys`.
    pub fn new(config: Config, keys: HashSet<String>) -> Result<Budgets, Error> {
        Ok(Budgets {
            engine: Arc::new(Engine::new(config)?),
            keys: ArcSwap::from_pointee(keys),
        })
    }

    /// Whether `key`'s budget could take the call now on one of `providers` (no reservation):
    /// a key over its budget is refused before it waits for a provider.
    pub fn check(&self, key: &str, providers: &[&str], input_tokens: u64, output_tokens: u64) -> Result<(), Error> {
        if !self.keys.load().contains(key) {
            return Ok(());
        }
        let request = Request::new().tokens(input_tokens, output_tokens);
        let mut refused = None;
        for p in providers {
            match self.engine.select(&pair(key, p), &request) {
                Ok(_) => return Ok(()),
                Err(e) => refused = refused.or(Some(e)),
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// A permit on `key`'s budget for a call going to `provider` (never waits).
    pub fn acquire(
        &self,
        key: &str,
        provider: &str,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<Option<PermitId>, Error> {
        if !self.keys.load().contains(key) {
            return Ok(None);
        }
        let cap = pair(key, provider);
        self.engine
            .acquire(&cap, &Request::new().tokens(input_tokens, output_tokens))
            .map(|p| Some(p.id))
    }

    /// Settles a budget permit as its call ended: what the provider did is charged, a failure
    /// at the provider (or a call never sent) is refunded.
    pub fn settle(&self, id: PermitId, status: Option<Status>, latency_ms: u64, usage: Option<Usage>) {
        let result = match status {
            Some(s @ (Status::Success | Status::Interrupted)) => {
                let mut o = Outcome::new(s);
                o.latency_ms = latency_ms;
                if let Some(u) = usage {
                    u.report(&mut o);
                }
                self.engine.complete(id, &o).map(drop)
            }
            _ => self.engine.cancel(id).map(drop),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "settling a key budget permit failed");
        }
    }

    /// The budget engine's snapshot (`/admin/engine`'s `key_budgets`).
    pub fn snapshot(&self) -> Value {
        self.engine.snapshot()
    }

    /// No key has a budget any more (a reload removed them all).
    pub fn clear(&self) {
        self.keys.store(Arc::new(HashSet::new()));
    }

    /// Applies a reloaded configuration (its JSON document) through the engine's run-time
    /// upserts.
    pub fn apply(&self, doc: &Value, config: &Config, keys: HashSet<String>) -> Result<(), Error> {
        upsert_all(&self.engine, doc, config)?;
        self.keys.store(std::sync::Arc::new(keys));
        Ok(())
    }
}

/// Brings `engine` to `config` (whose JSON document is `doc`) through the run-time upserts:
/// every provider and capability upserted (state of unchanged quotas kept), those no longer
/// configured removed. Used by the reload of both the gateway's engine and the budgets'.
pub(crate) fn upsert_all(engine: &Engine, doc: &Value, config: &Config) -> Result<(), Error> {
    let old = engine.config();
    let list = |k: &str| doc.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    for p in list("providers") {
        engine.upsert_provider(&p)?;
    }
    for c in list("capabilities") {
        engine.upsert_capability(&c)?;
    }
    for c in &old.capabilities {
        if !config.capabilities.iter().any(|n| n.name == c.name) {
            engine.remove_capability(&c.name)?;
        }
    }
    for p in &old.providers {
        if !config.providers.iter().any(|n| n.name == p.name) {
            engine.remove_provider(&p.name)?;
        }
    }
    Ok(())
}

/// The `gateway.keys[i].quotas` value.
pub fn quotas_of(key: &Value) -> Value {
    key.get("quotas").cloned().unwrap_or(Value::Null)
}
