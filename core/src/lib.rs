//! ratewise decides, before every LLM API call, **where** it goes (which provider or model
//! deployment) and **whether** it may go now, must wait (and exactly how long), or must be
//! refused.
//!
//! The data flows through the modules in this order (§ numbers are sections of
//! `docs/design.md`, the behavioural contract):
//!
//! 1. `config`: one JSON document, validated whole (errors name the JSON path), every default
//!    written down once ([`Config`]).
//! 2. `vocab`: the shared words: [`Dimension`], [`Status`], [`CircuitState`], [`SkipReason`].
//! 3. `quota`: exact integer token buckets, fixed windows and concurrency counts; debt, lane
//!    headroom, time-until-fits (published lock-free through `seqlock`).
//! 4. `health`: health that recovers at read time, retry-after holds, the circuit breaker.
//! 5. `scoring`: `clamp01(w_q·Q + w_h·H + w_p·P + w_l·L + w_c·K)` with the anticipation penalty.
//! 6. `signals`: what providers' response headers say (retry-after, OpenAI and Anthropic
//!    rate-limit headers), parsed without ever failing.
//! 7. `engine` ([`Engine`]): `decide` ranks and reserves (`select`, `acquire`), `apply` settles
//!    (`complete`, `cancel`, `observe`, `sync_headers`: one change, applied once), `runtime`
//!    changes the configuration, `snapshot` shows it, `waiting` queues.
//! 8. `scheduler`: the waiting queue (§8) on its own: rank, aging, blocking, the poll; its timer
//!    thread, and the future of [`Engine::acquire_async`] ([`AcquireFuture`]).
//! 9. `store`: the permit table, and the Redis store (cargo feature `redis`), which shares
//!    buckets, permits, holds and the circuit across processes through one Lua script.
//!
//! `conformance` (cargo feature `conformance`) replays the shared scenario files (§11).
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `redis` | no | [`StoreConfig`] `redis`: the shared store, one quota for many processes (`redis` and `rustls` with ring; `rediss://` for TLS) |
//! | `conformance` | no | `ratewise::conformance`: the scenario interpreter the runners of every language and `ratewise replay` share |
//!
//! Without features the crate has no I/O at all: the in-memory store, the engine, the waiting
//! queue and its timer thread.
//!
//! Time is an input: only [`Clock`] reads it. No lock is held across a network call: the
//! Redis store is called with no engine, provider, bucket or queue lock held.
//!
//! ```
//! use ratewise::{Engine, Outcome, Request};
//! let engine = Engine::from_json(r#"{
//!   "providers": [{"name": "gpt-4o", "quotas": [{"dimension": "tokens", "limit": 150000}]}],
//!   "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-4o"}]}]
//! }"#)?;
//! let permit = engine.acquire("chat", &Request::new().tokens(1_200, 400))?;
//! // ... call permit.provider() ...
//! engine.complete(permit.id, &Outcome::success(820, 1_150, 230))?;
//! assert_eq!(engine.remaining("gpt-4o", ratewise::Dimension::Tokens)?, Some(150_000 - 1_380));
//! # Ok::<(), ratewise::Error>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod call;
mod clock;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod engine;
mod error;
mod estimate;
mod health;
mod inflight;
mod quota;
mod scheduler;
mod scoring;
mod seqlock;
mod signals;
mod store;
mod topology;
mod vocab;

pub use call::{Alternative, Decision, Observation, Outcome, Permit, PermitId, Polled, Request};
pub use clock::{Clock, ManualClock, SyncedClock, SystemClock};
pub use config::json;
pub use config::{
    Algorithm, CapabilityConfig, CapabilityEntry, Config, HealthConfig, LaneConfig, OnError, Price, ProviderConfig,
    QuotaConfig, ScoringWeights, Settle, StoreConfig, StoreTls, Tokens, redact_url,
};
pub use engine::Engine;
pub use error::{Error, Result};
pub use estimate::{
    IMAGE_PART_TYPES, IMAGE_TOKENS, MESSAGE_TOKENS, REQUEST_TOKENS, estimate_tokens, estimate_tokens_json,
    is_image_part, request_tokens, string_tokens,
};
pub use scheduler::{AcquireFuture, OnDone, SHARED_REPOLL_MS};
pub use scoring::Breakdown;
pub use signals::{is_signal_header, parse_duration_ms};
pub use vocab::{CircuitState, Dimension, SkipReason, Skipped, Status};

/// The README's examples, compiled and run as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The crate's own README (crates.io, docs.rs), doctested as well.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;
