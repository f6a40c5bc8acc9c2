//! Degraded answers (docs/gateway.md, "Degraded answers"): when no deployment can take a call
//! before its deadline, a stale cache entry, else the capability's static answer.

use ratewise::Error;
use ratewise::json::{self, Object};
use serde_json::Value;

use crate::cache::CacheSettings;

/// A capability's degraded-answer settings (`gateway.capabilities.<c>.degraded`).
#[derive(Debug, Clone, PartialEq)]
pub struct DegradedSettings {
    /// Off: refusals only.
    pub enabled: bool,
    /// Static rules: any of the (lowercased) words in the last user message → the answer.
    pub rules: Vec<(Vec<String>, String)>,
    /// The static answer when no rule matches (`None`: none).
    pub default: Option<String>,
}

impl Default for DegradedSettings {
    fn default() -> DegradedSettings {
        DegradedSettings {
            enabled: true,
            rules: Vec::new(),
            default: None,
        }
    }
}

impl DegradedSettings {
    /// Reads `gateway.capabilities.<c>.degraded`.
    pub fn parse(value: &Value, path: &str) -> Result<DegradedSettings, Error> {
        let o = Object::new(value, path, &["enabled", "static"])?;
        let mut out = DegradedSettings {
            enabled: o.bool("enabled", true)?,
            ..DegradedSettings::default()
        };
        let Some(s) = o.get("static").filter(|v| !v.is_null()) else {
            return Ok(out);
        };
        let sp = o.at("static");
        let so = Object::new(s, &sp, &["rules", "default"])?;
        out.default = match so.get("default").filter(|v| !v.is_null()) {
            Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
            Some(_) => return Err(so.error("default", "must be a non-empty string")),
            None => None,
        };
        if let Some(rules) = so.get("rules").filter(|v| !v.is_null()) {
            let Some(rules) = rules.as_array() else {
                return Err(so.error("rules", "must be an array of {\"contains\": [words], \"answer\": text}"));
            };
            for (i, r) in rules.iter().enumerate() {
                let rp = format!("{sp}.rules[{i}]");
                let ro = Object::new(r, &rp, &["contains", "answer"])?;
                let answer = match ro.required("answer")? {
                    Value::String(t) if !t.is_empty() => t.clone(),
                    _ => return Err(ro.error("answer", "must be a non-empty string")),
                };
                let words = match ro.required("contains")? {
                    Value::Array(items) if !items.is_empty() => {
                        let mut words = Vec::new();
                        for (j, w) in items.iter().enumerate() {
                            match w.as_str() {
                                Some(w) if !w.trim().is_empty() => words.push(w.to_lowercase()),
                                _ => {
                                    return Err(json::error(
                                        &format!("{rp}.contains[{j}]"),
                                        "must be a non-empty string",
                                    ));
                                }
                            }
                        }
                        words
                    }
                    _ => return Err(ro.error("contains", "must be a non-empty array of words")),
                };
                out.rules.push((words, answer));
            }
        }
        Ok(out)
    }

    /// The static answer for a last user message `text` (`None`: no rule matches and no default).
    pub fn static_text(&self, text: &str) -> Option<&str> {
        let lower = text.to_lowercase();
        self.rules
            .iter()
            .find(|(words, _)| words.iter().any(|w| lower.contains(w.as_str())))
            .map(|(_, a)| a.as_str())
            .or(self.default.as_deref())
    }
}

/// What the gateway does for one capability beyond routing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapabilitySettings {
    /// The response cache.
    pub cache: CacheSettings,
    /// Degraded answers.
    pub degraded: DegradedSettings,
}

impl CapabilitySettings {
    /// Reads `gateway.capabilities.<c>`.
    pub fn parse(value: &Value, path: &str) -> Result<CapabilitySettings, Error> {
        let o = Object::new(value, path, &["cache", "degraded"])?;
        Ok(CapabilitySettings {
            cache: match o.get("cache").filter(|v| !v.is_null()) {
                Some(c) => CacheSettings::parse(c, &o.at("cache"))?,
                None => CacheSettings::default(),
            },
            degraded: match o.get("degraded").filter(|v| !v.is_null()) {
                Some(d) => DegradedSettings::parse(d, &o.at("degraded"))?,
                None => DegradedSettings::default(),
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_match_words_case_insensitively_then_the_default() {
        let s = DegradedSettings::parse(
            &json!({"static": {"rules": [{"contains": ["Refund", "invoice"], "answer": "billing"}],
                               "default": "later"}}),
            "d",
        )
        .unwrap();
        assert_eq!(s.static_text("I want a REFUND now"), Some("billing"));
        assert_eq!(s.static_text("hello"), Some("later"));
        let no_default =
            DegradedSettings::parse(&json!({"static": {"rules": [{"contains": ["x"], "answer": "y"}]}}), "d").unwrap();
        assert_eq!(no_default.static_text("hello"), None);
    }

    #[test]
    fn bad_settings_name_their_path() {
        let e = |v: Value| {
            CapabilitySettings::parse(&v, "gateway.capabilities.chat")
                .unwrap_err()
                .to_string()
        };
        assert!(e(json!({"cache": {"ttl_s": 0}})).contains("gateway.capabilities.chat.cache.ttl_s"));
        assert!(e(json!({"cache": {"requests": "some"}})).contains("gateway.capabilities.chat.cache.requests"));
        assert!(
            e(json!({"degraded": {"static": {"rules": [{"contains": [], "answer": "a"}]}}}))
                .contains("gateway.capabilities.chat.degraded.static.rules[0].contains")
        );
        assert!(
            e(json!({"degraded": {"static": {"rules": [{"contains": ["a", 3], "answer": "a"}]}}}))
                .contains("gateway.capabilities.chat.degraded.static.rules[0].contains[1]")
        );
        assert!(e(json!({"cachee": {}})).contains("cachee"));
    }
}
