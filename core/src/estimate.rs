//! A conservative estimate of a request's input tokens (docs/design.md §12), the same in every
//! language, for the `input_tokens` of an acquire when the caller has no tokenizer at hand.
//!
//! It is deliberately an overestimate for every common tokenizer: a quota reserved with it
//! never lets a request through that the provider would count as larger. With `settle:
//! "actual"` the reported usage then replaces it; with `settle: "reserved"` the overestimate
//! stays charged.

use serde_json::Value;

use crate::error::{Error, Result};

/// Tokens charged for one image part (`image_url`, `image`, `input_image`), whatever its size:
/// above OpenAI's high-detail count for a 2048×2048 image (1,105) and Anthropic's ~1,600 for
/// its largest unresized image.
pub const IMAGE_TOKENS: u64 = 1_600;
/// Tokens added per message (role and framing).
pub const MESSAGE_TOKENS: u64 = 4;
/// Tokens added per request (the reply's priming).
pub const REQUEST_TOKENS: u64 = 3;

/// The estimated input tokens of a request: `3 + Σ text + 4 · messages`, where
///
/// - the messages are the elements of `value` when it is an array, else of its `messages`
///   array when it is an object that has one (a request body: `system`, `tools` and the rest
///   count as text too);
/// - a string of `a` ASCII bytes and `n` other UTF-8 bytes counts `⌈(a + 2n) / 3⌉` (one token
///   per 3 ASCII characters, and at least two per CJK character);
/// - a number counts as the text of its JSON form, `true`/`false` 1, `null` 0;
/// - an object whose `type` is `image_url`, `image` or `input_image` counts [`IMAGE_TOKENS`]
///   (its data is not read); any other object counts its values (not its keys); an array its
///   elements.
///
/// ```
/// use serde_json::json;
/// let messages = json!([{"role": "user", "content": "Hello, how are you today?"}]);
/// // 3 + 4 + ⌈4/3⌉ ("user") + ⌈25/3⌉ = 3 + 4 + 2 + 9
/// assert_eq!(ratewise::estimate_tokens(&messages), 18);
/// ```
pub fn estimate_tokens(value: &Value) -> u64 {
    let messages = match value {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.get("messages").and_then(Value::as_array).map_or(0, Vec::len),
        _ => 0,
    };
    request_tokens(text_tokens(value), messages as u64)
}

/// `3 + text + 4 · messages`: [`estimate_tokens`] from the text tokens of a request's values and
/// its number of messages (for the bindings' own walks of their native values).
pub fn request_tokens(text: u64, messages: u64) -> u64 {
    REQUEST_TOKENS
        .saturating_add(text)
        .saturating_add(MESSAGE_TOKENS.saturating_mul(messages))
}

/// [`estimate_tokens`] of JSON text; text that is not JSON is `invalid_argument`.
///
/// ```
/// assert_eq!(ratewise::estimate_tokens_json(r#"[{"role":"user","content":"hi"}]"#).unwrap(), 10);
/// assert!(ratewise::estimate_tokens_json("[").is_err());
/// ```
pub fn estimate_tokens_json(text: &str) -> Result<u64> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Error::InvalidArgument(format!("messages are not valid JSON: {e}")))?;
    Ok(estimate_tokens(&value))
}

fn text_tokens(value: &Value) -> u64 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(n) => string_tokens(&n.to_string()),
        Value::String(s) => string_tokens(s),
        Value::Array(items) => items.iter().fold(0u64, |t, v| t.saturating_add(text_tokens(v))),
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str).is_some_and(is_image_part) {
                return IMAGE_TOKENS;
            }
            map.values().fold(0u64, |t, v| t.saturating_add(text_tokens(v)))
        }
    }
}

/// The `type` of an image part, counted [`IMAGE_TOKENS`] whatever it holds: OpenAI's chat and
/// responses parts and Anthropic's.
pub const IMAGE_PART_TYPES: [&str; 3] = ["image_url", "image", "input_image"];

/// Whether an object whose `type` is `type_name` is an image part, counted [`IMAGE_TOKENS`]
/// whatever it holds (for the bindings' own walks of their native values).
pub fn is_image_part(type_name: &str) -> bool {
    IMAGE_PART_TYPES.contains(&type_name)
}

/// The tokens one string counts in [`estimate_tokens`]: `⌈(a + 2n) / 3⌉` for `a` ASCII bytes and
/// `n` other UTF-8 bytes (a number counts as the string of its JSON form).
///
/// ```
/// assert_eq!(ratewise::string_tokens("abcd"), 2);
/// assert_eq!(ratewise::string_tokens("日本"), 4);
/// ```
pub fn string_tokens(s: &str) -> u64 {
    let ascii = s.bytes().filter(u8::is_ascii).count() as u64;
    let other = s.len() as u64 - ascii;
    (ascii + 2 * other).div_ceil(3)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_text_messages_images_and_bodies() {
        assert_eq!(estimate_tokens(&json!([])), 3);
        assert_eq!(estimate_tokens(&json!("abc")), 4);
        // "日本" is 6 non-ASCII bytes: 12 / 3 = 4 tokens.
        assert_eq!(estimate_tokens(&json!("日本")), 3 + 4);
        let image = json!([{"role": "user", "content": [
            {"type": "text", "text": "abcdef"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        ]}]);
        // 3 + 4 + user 2 + (text 2 + abcdef 2) + image
        assert_eq!(estimate_tokens(&image), 3 + 4 + 2 + 4 + IMAGE_TOKENS);
        let body = json!({"system": "abc", "max_tokens": 100, "messages": [{"role": "user", "content": "abc"}]});
        // 3 + 4 + system 1 + 100 → 1 + user 2 + abc 1
        assert_eq!(estimate_tokens(&body), 3 + 4 + 1 + 1 + 2 + 1);
        assert_eq!(estimate_tokens(&json!([null, true, 12345])), 3 + 4 * 3 + 1 + 2);
    }

    #[test]
    fn overestimates_english_against_four_characters_a_token() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
        let n = estimate_tokens(&json!([{"role": "user", "content": text}]));
        assert!(n as usize > text.len() / 4, "{n}");
    }
}
