//! The one error type of ratewise, with stable codes shared by every language.

use std::fmt;
use std::sync::Arc;

/// Why a provider was not chosen (the `skipped` list of a [`crate::Decision`] or of
/// [`Error::NoAvailableProvider`]). Its string form is the stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// The capability lists a provider that is not (or no longer) registered.
    Unregistered,
    /// The request's `exclude` named it.
    Excluded,
    /// A higher-ranked waiter could use it (DESIGN §8).
    Queued,
    /// A retry-after hold is in force.
    Held,
    /// The circuit is open.
    CircuitOpen,
    /// The circuit is half-open and its one probe is out.
    HalfOpenBusy,
    /// Health is below `min_health`.
    Unhealthy,
    /// A quota of this dimension has not enough left now.
    Quota(crate::config::Dimension),
    /// The request can never fit a quota of this dimension.
    QuotaTooLarge(crate::config::Dimension),
}

impl SkipReason {
    /// The stable reason code, e.g. `held` or `quota:tokens:too_large`.
    pub fn code(&self) -> String {
        match self {
            SkipReason::Unregistered => "unregistered".into(),
            SkipReason::Excluded => "excluded".into(),
            SkipReason::Queued => "queued".into(),
            SkipReason::Held => "held".into(),
            SkipReason::CircuitOpen => "circuit_open".into(),
            SkipReason::HalfOpenBusy => "half_open_busy".into(),
            SkipReason::Unhealthy => "unhealthy".into(),
            SkipReason::Quota(d) => format!("quota:{}", d.as_str()),
            SkipReason::QuotaTooLarge(d) => format!("quota:{}:too_large", d.as_str()),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// One provider that was not chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The provider's name.
    pub provider: Arc<str>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Every failure ratewise reports. [`Error::code`] is stable and is the same string in every
/// language (upper-cased in C).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration was refused whole; the message names the JSON path.
    #[error("{0}")]
    InvalidConfig(String),
    /// An argument of a call was out of its domain (an unknown lane, a bad status, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// No capability of this name is configured.
    #[error("unknown capability '{0}'")]
    UnknownCapability(String),
    /// No provider of this name is registered.
    #[error("unknown provider '{0}'")]
    UnknownProvider(String),
    /// The permit was never issued, or was already completed, cancelled or expired.
    #[error("unknown permit {0}")]
    UnknownPermit(u64),
    /// No provider of the capability can take the request now.
    #[error("no available provider{}", describe_wait(*retry_after_ms))]
    NoAvailableProvider {
        /// Earliest time, from now, at which a provider is predicted to be ready; `None` when no
        /// provider has a predictable ready time.
        retry_after_ms: Option<i64>,
        /// Every provider of the capability, in capability order, with its reason.
        skipped: Vec<Skipped>,
    },
    /// The shared store could not be reached and the configuration says to fail closed.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The shared store holds state written with a different configuration.
    #[error("store conflict: {0}")]
    StoreConflict(String),
}

fn describe_wait(retry_after_ms: Option<i64>) -> String {
    match retry_after_ms {
        Some(ms) => format!(" (retry after {ms} ms)"),
        None => String::new(),
    }
}

impl Error {
    /// The stable error code: `invalid_config`, `invalid_argument`, `unknown_capability`,
    /// `unknown_provider`, `unknown_permit`, `no_available_provider`, `store_unavailable` or
    /// `store_conflict`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidConfig(_) => "invalid_config",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::UnknownCapability(_) => "unknown_capability",
            Error::UnknownProvider(_) => "unknown_provider",
            Error::UnknownPermit(_) => "unknown_permit",
            Error::NoAvailableProvider { .. } => "no_available_provider",
            Error::StoreUnavailable(_) => "store_unavailable",
            Error::StoreConflict(_) => "store_conflict",
        }
    }
}

/// `Result` with ratewise's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
