//! Token usage, read from and written to either API's usage object.
//!
//! The two APIs count input differently: OpenAI's `prompt_tokens` includes cached tokens
//! (`prompt_tokens_details.cached_tokens` is a subset), while Anthropic's `input_tokens` excludes
//! both `cache_read_input_tokens` and `cache_creation_input_tokens`. [`Usage`] uses OpenAI's meaning.

use serde_json::{Value, json};

use super::json::u64_at;

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// All input tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache (never more than `input_tokens`).
    pub cached_input_tokens: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`; with the reads, never more than `input_tokens`).
    pub cache_write_input_tokens: u64,
}

impl Usage {
    /// The OpenAI usage object: `prompt_tokens`, `completion_tokens`, `total_tokens`,
    /// `prompt_tokens_details.cached_tokens`.
    pub fn to_openai_json(&self) -> Value {
        json!({
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens.saturating_add(self.output_tokens),
            "prompt_tokens_details": {"cached_tokens": self.cached_input_tokens},
        })
    }

    /// The Anthropic usage object: `input_tokens` is the part neither read from nor written to
    /// the prompt cache.
    pub fn to_anthropic_json(&self) -> Value {
        json!({
            "input_tokens": self
                .input_tokens
                .saturating_sub(self.cached_input_tokens)
                .saturating_sub(self.cache_write_input_tokens),
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cached_input_tokens,
            "cache_creation_input_tokens": self.cache_write_input_tokens,
        })
    }

    /// Reports these counts in `o` (every count reported, cache reads and writes as parts of
    /// the input), as the engine settles them.
    pub fn report(&self, o: &mut ratewise::Outcome) {
        o.input_tokens = Some(self.input_tokens);
        o.output_tokens = Some(self.output_tokens);
        o.cached_input_tokens = Some(self.cached_input_tokens);
        o.cache_write_input_tokens = Some(self.cache_write_input_tokens);
    }

    /// The priced parts, for [`ratewise::Price`].
    pub fn tokens(&self) -> ratewise::Tokens {
        ratewise::Tokens {
            input: self.input_tokens,
            cached_input: self.cached_input_tokens,
            cache_write_input: self.cache_write_input_tokens,
            output: self.output_tokens,
        }
    }
}

/// Reads an OpenAI usage object; `None` when it is not an object or carries neither token count.
pub fn openai_usage(usage: &Value) -> Option<Usage> {
    usage.as_object()?;
    let prompt = u64_at(usage, "prompt_tokens");
    let completion = u64_at(usage, "completion_tokens");
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let input_tokens = prompt.unwrap_or(0);
    let cached = usage
        .get("prompt_tokens_details")
        .and_then(|d| u64_at(d, "cached_tokens"))
        .unwrap_or(0);
    Some(Usage {
        input_tokens,
        output_tokens: completion.unwrap_or(0),
        cached_input_tokens: cached.min(input_tokens),
        // OpenAI does not charge for, or report, prompt-cache writes.
        cache_write_input_tokens: 0,
    })
}

/// Reads an Anthropic usage object; `None` when it is not an object or carries no token count.
pub fn anthropic_usage(usage: &Value) -> Option<Usage> {
    let mut counts = AnthropicCounts::default();
    counts.update(usage);
    counts.usage()
}

/// Anthropic's raw counters, merged across a stream's `message_start` and `message_delta` events.
///
/// Each counter is cumulative, so a later event's value replaces the earlier one (Anthropic's docs:
/// the token counts in `message_delta` usage are cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AnthropicCounts {
    input: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    output: Option<u64>,
}

impl AnthropicCounts {
    /// Takes every counter present in `usage`, keeping the others.
    pub(crate) fn update(&mut self, usage: &Value) {
        if !usage.is_object() {
            return;
        }
        let take = |slot: &mut Option<u64>, key: &str| {
            if let Some(n) = u64_at(usage, key) {
                *slot = Some(n);
            }
        };
        take(&mut self.input, "input_tokens");
        take(&mut self.cache_read, "cache_read_input_tokens");
        take(&mut self.cache_creation, "cache_creation_input_tokens");
        take(&mut self.output, "output_tokens");
    }

    /// The usage seen so far, `None` before any counter.
    pub(crate) fn usage(&self) -> Option<Usage> {
        if self.input.is_none() && self.cache_read.is_none() && self.cache_creation.is_none() && self.output.is_none() {
            return None;
        }
        let cache_read = self.cache_read.unwrap_or(0);
        let cache_creation = self.cache_creation.unwrap_or(0);
        Some(Usage {
            input_tokens: self
                .input
                .unwrap_or(0)
                .saturating_add(cache_read)
                .saturating_add(cache_creation),
            output_tokens: self.output.unwrap_or(0),
            cached_input_tokens: cache_read,
            cache_write_input_tokens: cache_creation,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn openai_usage_with_cached_tokens() {
        let u = openai_usage(
            &json!({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0}}),
        )
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input_tokens: 2006,
                output_tokens: 300,
                cached_input_tokens: 1920,
                cache_write_input_tokens: 0
            }
        );
        assert_eq!(
            u.to_anthropic_json(),
            json!({"input_tokens": 86, "output_tokens": 300, "cache_read_input_tokens": 1920,
                "cache_creation_input_tokens": 0})
        );
    }

    #[test]
    fn anthropic_usage_with_cache_reads_and_writes() {
        let u = anthropic_usage(&json!({"input_tokens": 50, "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 1000, "output_tokens": 75}))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input_tokens: 1250,
                output_tokens: 75,
                cached_input_tokens: 1000,
                cache_write_input_tokens: 200
            }
        );
        // Written back, every part is where Anthropic puts it.
        assert_eq!(
            u.to_anthropic_json(),
            json!({"input_tokens": 50, "output_tokens": 75, "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200})
        );
        assert_eq!(
            u.to_openai_json(),
            json!({"prompt_tokens": 1250, "completion_tokens": 75, "total_tokens": 1325,
                "prompt_tokens_details": {"cached_tokens": 1000}})
        );
    }

    #[test]
    fn round_trips_keep_the_counts() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 4,
            cached_input_tokens: 6,
            cache_write_input_tokens: 0,
        };
        assert_eq!(openai_usage(&u.to_openai_json()), Some(u));
        assert_eq!(anthropic_usage(&u.to_anthropic_json()), Some(u));
        let w = Usage {
            cache_write_input_tokens: 3,
            ..u
        };
        assert_eq!(anthropic_usage(&w.to_anthropic_json()), Some(w));
    }

    #[test]
    fn missing_or_malformed_usage() {
        assert_eq!(openai_usage(&Value::Null), None);
        assert_eq!(openai_usage(&json!({})), None);
        assert_eq!(anthropic_usage(&json!({"service_tier": "standard"})), None);
        // Cached tokens above the prompt count are capped rather than trusted.
        let u = openai_usage(&json!({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}})).unwrap();
        assert_eq!(
            u,
            Usage {
                input_tokens: 5,
                output_tokens: 0,
                cached_input_tokens: 5,
                cache_write_input_tokens: 0
            }
        );
        assert_eq!(
            Usage {
                input_tokens: 1,
                output_tokens: 0,
                cached_input_tokens: 3,
                cache_write_input_tokens: 0
            }
            .to_anthropic_json()["input_tokens"],
            0
        );
    }

    #[test]
    fn counts_merge_cumulatively() {
        let mut c = AnthropicCounts::default();
        assert_eq!(c.usage(), None);
        c.update(&json!({"input_tokens": 25, "cache_read_input_tokens": 100, "output_tokens": 1}));
        c.update(&json!({"output_tokens": 15}));
        assert_eq!(
            c.usage(),
            Some(Usage {
                input_tokens: 125,
                output_tokens: 15,
                cached_input_tokens: 100,
                cache_write_input_tokens: 0
            })
        );
        c.update(&json!({"input_tokens": 30, "output_tokens": 20}));
        assert_eq!(
            c.usage(),
            Some(Usage {
                input_tokens: 130,
                output_tokens: 20,
                cached_input_tokens: 100,
                cache_write_input_tokens: 0
            })
        );
    }
}
