//! The bundled price table (`gateway/data/prices.json`, versioned): the prices of the common
//! OpenAI, Anthropic, Google and DeepSeek models, cache read and write included.
//!
//! A provider whose configuration has no `price` key gets its `model`'s price from the table
//! (input, output, cache read and cache write per million tokens), before the engine is built:
//! so the engine's `cost` quotas, the key budgets, the scoring's cost factor,
//! `x-ratewise-cost-usd` and the ledger all use it. `"price": null` keeps a provider unpriced;
//! `gateway.prices: false` turns the table off.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// One model's prices, USD per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// `openai`, `anthropic`, `google`, `deepseek`.
    pub vendor: String,
    /// Input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Cached input read.
    pub cache_read: Option<f64>,
    /// Cache write (Anthropic's 5-minute cache).
    pub cache_write: Option<f64>,
}

/// The table.
#[derive(Debug, Default)]
pub struct Table {
    /// Its version (the date its prices were taken).
    pub version: String,
    models: HashMap<String, ModelPrice>,
    aliases: HashMap<String, String>,
}

const BUNDLED: &str = include_str!("../data/prices.json");

fn parse(text: &str) -> Result<Table, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let version = v["version"].as_str().ok_or("version is missing")?.to_string();
    let mut models = HashMap::new();
    for (name, m) in v["models"].as_object().ok_or("models is missing")? {
        let num = |k: &str| m.get(k).and_then(Value::as_f64);
        let (Some(input), Some(output)) = (num("input"), num("output")) else {
            return Err(format!("models.{name}: input and output are required"));
        };
        models.insert(
            name.clone(),
            ModelPrice {
                vendor: m["vendor"].as_str().unwrap_or("").to_string(),
                input,
                output,
                cache_read: num("cache_read"),
                cache_write: num("cache_write"),
            },
        );
    }
    let mut aliases = HashMap::new();
    for (a, target) in v["aliases"].as_object().into_iter().flatten() {
        let t = target
            .as_str()
            .ok_or_else(|| format!("aliases.{a}: must be a model name"))?;
        if !models.contains_key(t) {
            return Err(format!("aliases.{a}: names no model"));
        }
        aliases.insert(a.clone(), t.to_string());
    }
    Ok(Table {
        version,
        models,
        aliases,
    })
}

/// The bundled table (empty, with an error logged once, should it not parse: a unit test
/// makes sure it does).
pub fn bundled() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        parse(BUNDLED).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the bundled price table does not parse");
            Table::default()
        })
    })
}

/// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`.
fn undated(model: &str) -> Option<&str> {
    let b = model.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if b.len() > 11 && b[b.len() - 11] == b'-' {
        let d = &b[b.len() - 10..];
        if digits(&d[..4]) && d[4] == b'-' && digits(&d[5..7]) && d[7] == b'-' && digits(&d[8..]) {
            return Some(&model[..model.len() - 11]);
        }
    }
    if b.len() > 9 && b[b.len() - 9] == b'-' && digits(&b[b.len() - 8..]) {
        return Some(&model[..model.len() - 9]);
    }
    model.strip_suffix("-latest")
}

impl Table {
    /// A model's prices: exact name, an alias, or the name without a date or `-latest` suffix
    /// (and without a `models/` prefix).
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let find = |m: &str| {
            self.models
                .get(m)
                .or_else(|| self.aliases.get(m).and_then(|t| self.models.get(t)))
        };
        find(model).or_else(|| undated(model).and_then(find))
    }
}

/// Gives every provider of the engine document without a `price` key the table's price of
/// its `model` (or name), unless `gateway.prices` is `false`. Returns the providers priced.
pub fn fill(doc: &mut Value, gateway: Option<&Value>) -> Vec<String> {
    if gateway.and_then(|g| g.get("prices")).and_then(Value::as_bool) == Some(false) {
        return Vec::new();
    }
    let table = bundled();
    let mut priced = Vec::new();
    for p in doc
        .get_mut("providers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(obj) = p.as_object_mut() else { continue };
        if obj.contains_key("price") {
            continue;
        }
        let model = obj
            .get("model")
            .or_else(|| obj.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(m) = table.get(model) {
            let mut price = Map::new();
            price.insert("input_per_mtok".into(), json!(m.input));
            price.insert("output_per_mtok".into(), json!(m.output));
            if let Some(c) = m.cache_read {
                price.insert("cached_input_per_mtok".into(), json!(c));
            }
            if let Some(w) = m.cache_write {
                price.insert("cache_write_input_per_mtok".into(), json!(w));
            }
            if let Some(name) = obj.get("name").and_then(Value::as_str) {
                priced.push(name.to_string());
            }
            obj.insert("price".into(), Value::Object(price));
        }
    }
    priced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_table_parses_and_covers_the_four_vendors() {
        let t = parse(BUNDLED).unwrap();
        assert!(!t.version.is_empty());
        for v in ["openai", "anthropic", "google", "deepseek"] {
            assert!(t.models.values().any(|m| m.vendor == v), "{v}");
        }
        assert!(t.models.values().all(|m| m.input >= 0.0 && m.output >= 0.0));
        assert!(
            t.models
                .values()
                .filter(|m| m.vendor == "anthropic")
                .all(|m| m.cache_write.is_some())
        );
    }

    #[test]
    fn lookups_strip_dates_and_follow_aliases() {
        let t = bundled();
        assert_eq!(t.get("gpt-4o-2024-08-06").unwrap().input, 2.5);
        assert_eq!(t.get("claude-sonnet-4-5-20250929").unwrap().output, 15.0);
        assert_eq!(t.get("claude-sonnet-4").unwrap().cache_read, Some(0.30));
        assert_eq!(t.get("models/gemini-2.5-flash").unwrap().vendor, "google");
        assert!(t.get("gpt-a").is_none() && t.get("my-fine-tune").is_none());
    }

    #[test]
    fn fill_prices_only_providers_without_a_price_key() {
        let mut doc = json!({"providers": [
            {"name": "a", "model": "gpt-4o-mini"},
            {"name": "b", "model": "gpt-4o-mini", "price": null},
            {"name": "c", "model": "gpt-4o-mini", "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            {"name": "deepseek-chat"},
            {"name": "e", "model": "unknown"}]});
        assert_eq!(fill(&mut doc, None), ["a", "deepseek-chat"]);
        assert_eq!(
            doc["providers"][0]["price"],
            json!({"input_per_mtok": 0.15, "output_per_mtok": 0.6, "cached_input_per_mtok": 0.075})
        );
        assert_eq!(doc["providers"][1]["price"], Value::Null);
        assert_eq!(doc["providers"][2]["price"]["input_per_mtok"], 1.0);
        assert_eq!(doc["providers"][3]["price"]["output_per_mtok"], 0.42);
        assert!(doc["providers"][4].get("price").is_none());
        let mut off = json!({"providers": [{"name": "a", "model": "gpt-4o"}]});
        assert!(fill(&mut off, Some(&json!({"prices": false}))).is_empty());
    }

    #[test]
    fn a_serve_configuration_prices_its_engine_from_the_table() {
        let text = |prices: &str| {
            format!(
                r#"{{"providers": [{{"name": "eu", "model": "gpt-4o-mini-2024-07-18"}}],
                    "capabilities": [{{"name": "chat", "providers": [{{"provider": "eu"}}]}}],
                    "gateway": {{"ledger": false, {prices}
                      "upstreams": {{"eu": {{"api": "openai", "base_url": "http://127.0.0.1:9/v1"}}}}}}}}"#
            )
        };
        let c = crate::config::ServeConfig::from_json(&text("")).unwrap();
        let p = c.engine.providers[0].price.unwrap();
        assert_eq!(
            (p.input_per_mtok, p.output_pico, p.cached_pico),
            (0.15, 600_000, 75_000)
        );
        // 1,000 input of which 600 cached, 10 output: 400·0.15 + 600·0.075 + 10·0.6 = 111 micro-USD.
        let t = |input, cached_input, cache_write_input, output| ratewise::Tokens {
            input,
            cached_input,
            cache_write_input,
            output,
        };
        assert_eq!(p.cost_with_cache(t(1000, 600, 0, 10)), 111);
        // OpenAI charges no writes: the table gives none, so a write costs the input price.
        assert_eq!(p.cache_write_pico, p.input_pico);
        let mut doc = json!({"providers": [{"name": "a", "model": "claude-sonnet-4-5"}]});
        fill(&mut doc, None);
        assert_eq!(
            doc["providers"][0]["price"],
            json!({"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_per_mtok": 0.3,
                "cache_write_input_per_mtok": 3.75})
        );
        let c = crate::config::ServeConfig::from_json(&text(r#""prices": false,"#)).unwrap();
        assert!(c.engine.providers[0].price.is_none());
        let e = crate::config::ServeConfig::from_json(&text(r#""prices": "yes","#)).unwrap_err();
        assert!(e.to_string().contains("gateway.prices"), "{e}");
    }
}
