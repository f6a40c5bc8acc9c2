//! The mock LLM provider behind `rw-mockprovider`: OpenAI chat completions and embeddings,
//! Anthropic messages, JSON and SSE, with the real body shapes, the real rate-limit headers,
//! hidden per-model token buckets (429 when exceeded), injected faults and counters.
//!
//! It follows the conventions of the Python mock (`tests/mockllm/README.md`) — token counts,
//! header formats, error bodies, the fault and stats endpoints — so that tests and benchmarks
//! read the same numbers; it leaves out what a benchmark does not need (tool calls, stop
//! sequences, prompt-cache markers, the request log).

pub mod api;
pub mod body;
pub mod config;
pub mod model;
pub mod server;

pub use api::Mock;
pub use config::MockConfig;
pub use server::serve;
