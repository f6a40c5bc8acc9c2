//! The mock's configuration (`--config FILE_OR_INLINE_JSON`):
//!
//! ```json
//! {"models": {"gpt-bench": {"api": "openai", "requests_per_s": 50, "tokens_per_s": 20000,
//!                           "burst_s": 1.0, "latency_ms": 5, "latency_jitter_ms": 2,
//!                           "latency_distribution": "uniform", "output_tokens": 16, "chunk_ms": 1}},
//!  "require_auth": false, "header_style": "default"}
//! ```
//!
//! Every rate is unlimited when absent or null; latency and chunk pacing default to 0 so that a
//! benchmark measures what sits in front of the mock, not the mock.

use serde_json::{Map, Value};

/// Which API a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI: `POST /v1/chat/completions`, `POST /v1/embeddings`.
    OpenAi,
    /// Anthropic: `POST /v1/messages`.
    Anthropic,
}

/// How the per-request latency is drawn around `latency_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// `latency_ms` ± `latency_jitter_ms`, uniform (never below 0).
    Uniform,
    /// `latency_ms` plus an exponential tail of mean `latency_jitter_ms`.
    Exponential,
}

/// One model (a deployment with its own hidden limits).
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The API it answers on.
    pub api: Api,
    /// Requests per second (None: unlimited).
    pub requests_per_s: Option<f64>,
    /// Tokens per second, input + output (None: unlimited).
    pub tokens_per_s: Option<f64>,
    /// Anthropic input tokens per second (None: unlimited).
    pub input_tokens_per_s: Option<f64>,
    /// Anthropic output tokens per second (None: unlimited).
    pub output_tokens_per_s: Option<f64>,
    /// Bucket capacity in seconds of rate.
    pub burst_s: f64,
    /// Wait before the response head, ms.
    pub latency_ms: f64,
    /// Spread of that wait, ms.
    pub latency_jitter_ms: f64,
    /// Shape of the spread.
    pub latency_distribution: Distribution,
    /// Output tokens of an answer (capped by the request's `max_tokens`).
    pub output_tokens: u64,
    /// Wait between SSE events, ms.
    pub chunk_ms: f64,
    /// Whether rate-limit headers are sent.
    pub headers: bool,
}

impl ModelConfig {
    /// The defaults for `api`: unlimited, no latency, 16 output tokens.
    pub fn new(api: Api) -> ModelConfig {
        ModelConfig {
            api,
            requests_per_s: None,
            tokens_per_s: None,
            input_tokens_per_s: None,
            output_tokens_per_s: None,
            burst_s: 1.0,
            latency_ms: 0.0,
            latency_jitter_ms: 0.0,
            latency_distribution: Distribution::Uniform,
            output_tokens: 16,
            chunk_ms: 0.0,
            headers: true,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Models by name, in the order given.
    pub models: Vec<(String, ModelConfig)>,
    /// Refuse requests without credentials (401), as the real APIs do. Off by default: a
    /// gateway under test may be configured without an upstream key.
    pub require_auth: bool,
    /// The document as given (for `GET /_mock/config`).
    pub raw: Value,
}

const MODEL_KEYS: &[&str] = &[
    "api",
    "requests_per_s",
    "tokens_per_s",
    "input_tokens_per_s",
    "output_tokens_per_s",
    "burst_s",
    "latency_ms",
    "latency_jitter_ms",
    "latency_distribution",
    "output_tokens",
    "chunk_ms",
    "headers",
];

impl MockConfig {
    /// Two unlimited models, `gpt-a` (OpenAI) and `claude-a` (Anthropic).
    pub fn default_models() -> MockConfig {
        MockConfig {
            models: vec![
                ("gpt-a".into(), ModelConfig::new(Api::OpenAi)),
                ("claude-a".into(), ModelConfig::new(Api::Anthropic)),
            ],
            require_auth: false,
            raw: serde_json::json!({"models": {"gpt-a": {"api": "openai"}, "claude-a": {"api": "anthropic"}}}),
        }
    }

    /// Reads `--config`: inline JSON when it starts with `{`, else a file name.
    pub fn from_arg(arg: &str) -> Result<MockConfig, String> {
        let text = if arg.trim_start().starts_with('{') {
            arg.to_string()
        } else {
            std::fs::read_to_string(arg).map_err(|e| format!("--config: cannot read {arg}: {e}"))?
        };
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("--config: not JSON: {e}"))?;
        MockConfig::from_json(doc)
    }

    /// Validates a parsed document; every error names its path.
    pub fn from_json(doc: Value) -> Result<MockConfig, String> {
        let root = doc.as_object().ok_or("config: must be an object")?;
        for k in root.keys() {
            if !["models", "require_auth", "header_style"].contains(&k.as_str()) {
                return Err(format!("config.{k}: unknown key"));
            }
        }
        let headers_on = match root.get("header_style").and_then(Value::as_str) {
            None | Some("default") => true,
            Some("none") => false,
            Some(other) => return Err(format!("config.header_style: '{other}' (expected default or none)")),
        };
        let require_auth = match root.get("require_auth") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("config.require_auth: must be true or false".into()),
        };
        let Some(Value::Object(models)) = root.get("models") else {
            return Err("config.models: is required (an object: name -> model)".into());
        };
        let mut out = Vec::with_capacity(models.len());
        for (name, m) in models {
            let path = format!("config.models.{name}");
            let m = m.as_object().ok_or_else(|| format!("{path}: must be an object"))?;
            let mut c = parse_model(m, &path)?;
            c.headers &= headers_on;
            out.push((name.clone(), c));
        }
        if out.is_empty() {
            return Err("config.models: must name at least one model".into());
        }
        Ok(MockConfig {
            models: out,
            require_auth,
            raw: doc,
        })
    }
}

fn parse_model(m: &Map<String, Value>, path: &str) -> Result<ModelConfig, String> {
    for k in m.keys() {
        if !MODEL_KEYS.contains(&k.as_str()) {
            return Err(format!("{path}.{k}: unknown key (known: {})", MODEL_KEYS.join(", ")));
        }
    }
    let api = match m.get("api").and_then(Value::as_str) {
        None | Some("openai") => Api::OpenAi,
        Some("anthropic") => Api::Anthropic,
        Some(other) => return Err(format!("{path}.api: '{other}' (expected openai or anthropic)")),
    };
    let mut c = ModelConfig::new(api);
    let num = |k: &str| -> Result<Option<f64>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(Some)
                .ok_or_else(|| format!("{path}.{k}: must be a number >= 0")),
        }
    };
    let rate = |k: &str| -> Result<Option<f64>, String> {
        match num(k)? {
            Some(r) if r <= 0.0 => Err(format!("{path}.{k}: must be > 0 (leave it out for unlimited)")),
            r => Ok(r),
        }
    };
    c.requests_per_s = rate("requests_per_s")?;
    c.tokens_per_s = rate("tokens_per_s")?;
    c.input_tokens_per_s = rate("input_tokens_per_s")?;
    c.output_tokens_per_s = rate("output_tokens_per_s")?;
    if let Some(b) = num("burst_s")? {
        if b <= 0.0 {
            return Err(format!("{path}.burst_s: must be > 0"));
        }
        c.burst_s = b;
    }
    c.latency_ms = num("latency_ms")?.unwrap_or(0.0);
    c.latency_jitter_ms = num("latency_jitter_ms")?.unwrap_or(0.0);
    c.latency_distribution = match m.get("latency_distribution").and_then(Value::as_str) {
        None | Some("uniform") => Distribution::Uniform,
        Some("exponential") => Distribution::Exponential,
        Some(other) => {
            return Err(format!(
                "{path}.latency_distribution: '{other}' (uniform or exponential)"
            ));
        }
    };
    c.output_tokens = num("output_tokens")?.map_or(16, |x| x as u64);
    c.chunk_ms = num("chunk_ms")?.unwrap_or(0.0);
    c.headers = match m.get("headers") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(format!("{path}.headers: must be true or false")),
    };
    if api == Api::OpenAi && (c.input_tokens_per_s.is_some() || c.output_tokens_per_s.is_some()) {
        return Err(format!(
            "{path}: input/output_tokens_per_s are Anthropic limits (use tokens_per_s)"
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let c = MockConfig::from_arg(
            r#"{"models": {"m": {"api": "anthropic", "requests_per_s": 5, "latency_ms": 2,
                "latency_jitter_ms": 1, "latency_distribution": "exponential", "chunk_ms": 1}},
                "header_style": "none"}"#,
        )
        .unwrap();
        let (name, m) = &c.models[0];
        assert_eq!(name, "m");
        assert_eq!(m.api, Api::Anthropic);
        assert_eq!(m.requests_per_s, Some(5.0));
        assert_eq!(m.latency_distribution, Distribution::Exponential);
        assert!(!m.headers);
        let err = |s: &str| MockConfig::from_arg(s).unwrap_err();
        assert!(err(r#"{"models": {"m": {"rps": 1}}}"#).contains("config.models.m.rps: unknown key"));
        assert!(err(r#"{"models": {"m": {"requests_per_s": 0}}}"#).contains("must be > 0"));
        assert!(err(r#"{"models": {}}"#).contains("at least one"));
        assert!(err(r#"{"models": {"m": {"api": "openai", "input_tokens_per_s": 3}}}"#).contains("Anthropic"));
    }
}
