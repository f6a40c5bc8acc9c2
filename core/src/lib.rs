//! ratewise decides, before every LLM API call, **where** it goes (which provider or model
//! deployment) and **whether** it may go now, must wait (and exactly how long), or must be
//! refused.
//!
//! The data flows through the modules in this order:
//!
//! 1. [`config`]: one JSON document, validated whole (errors name the JSON path), every default
//!    written down once.
//! 2. `quota`: exact integer token buckets, fixed windows and concurrency counts;
//!    debt, lane headroom, time-until-fits.
//! 3. [`health`]: health that recovers at read time, retry-after holds, the circuit breaker.
//! 4. [`scoring`]: `clamp01(w_q·Q + w_h·H + w_p·P + w_l·L + w_c·K)` with the anticipation penalty.
//! 5. `signals`: what providers' response headers say (retry-after, OpenAI and Anthropic
//!    rate-limit headers), parsed without ever failing.
//! 6. [`engine`]: `select`, `acquire` (select and reserve atomically), `complete` (settle, then
//!    health, then headers), `cancel`, `observe`, `sync_headers`, permit expiry, snapshots and
//!    run-time configuration.
//! 7. `store`: where permits live (in memory); `shared`: the Redis store (cargo feature
//!    `redis`), which shares buckets, permits, holds and the circuit across processes.
//!
//! [`conformance`] replays the shared scenario files (docs/design.md §11) on an engine.
//!
//! Time is an input: only [`Clock`] reads it.
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

mod call;
mod clock;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod engine;
mod error;
mod health;
mod quota;
mod scheduler;
mod scoring;
mod seqlock;
mod shared;
mod signals;
mod store;
mod topology;
mod vocab;

pub use call::{Alternative, Decision, Observation, Outcome, Permit, PermitId, Polled, Request};
pub use clock::{Clock, ManualClock, SyncedClock, SystemClock};
pub use config::{
    Algorithm, CapabilityConfig, CapabilityEntry, Config, HealthConfig, LaneConfig, OnError, Price, ProviderConfig,
    QuotaConfig, ScoringWeights, Settle, StoreConfig,
};
pub use engine::Engine;
pub use error::{Error, Result};
pub use scheduler::{AcquireFuture, OnDone, SHARED_REPOLL_MS};
pub use scoring::Breakdown;
pub use vocab::{CircuitState, Dimension, SkipReason, Skipped, Status};

/// The README's examples, compiled and run as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
