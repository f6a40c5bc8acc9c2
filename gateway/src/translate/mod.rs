//! Two-way translation between the OpenAI Chat Completions API and the Anthropic Messages API.
//!
//! The gateway uses it so that one capability can hold OpenAI and Anthropic deployments and a
//! client of either API can reach both. Everything works on `serde_json::Value` and does no I/O:
//!
//! - [`openai_to_anthropic_request`] / [`anthropic_to_openai_request`]: request bodies;
//! - [`anthropic_to_openai_response`] / [`openai_to_anthropic_response`]: non-streaming answers;
//! - [`AnthropicToOpenAiStream`] / [`OpenAiToAnthropicStream`]: streaming answers, one SSE event in,
//!   zero or more SSE events out;
//! - [`OpenAiUsageFilter`]: same-API OpenAI streams where the gateway added `include_usage`;
//! - [`Usage`]: token counts read from and written to either API's usage object;
//! - [`openai_error`], [`anthropic_error`], [`error_to_openai`], [`error_to_anthropic`]: error bodies.
//!
//! Input that cannot be translated yields a [`TranslateError`] naming the JSON path at fault.

mod error;
mod json;
mod messages_to_anthropic;
mod passthrough;
mod request_to_anthropic;
mod request_to_openai;
mod response;
mod stream_to_anthropic;
mod stream_to_openai;
mod usage;

#[cfg(test)]
mod roundtrip_tests;

pub use error::{
    TranslateError, anthropic_error, anthropic_type_for_status, error_to_anthropic, error_to_openai, openai_error,
    openai_type_for_status,
};
pub use passthrough::{
    OpenAiUsageFilter, answer_usage, chunk_usage, ensure_openai_stream_usage, is_usage_only_chunk, with_model,
};
pub use request_to_anthropic::openai_to_anthropic_request;
pub use request_to_openai::anthropic_to_openai_request;
pub use response::{
    anthropic_to_openai_response, finish_reason_to_stop_reason, openai_to_anthropic_response,
    stop_reason_to_finish_reason,
};
pub use stream_to_anthropic::OpenAiToAnthropicStream;
pub use stream_to_openai::AnthropicToOpenAiStream;
pub(crate) use usage::AnthropicCounts;
pub use usage::{Usage, anthropic_usage, openai_usage};
