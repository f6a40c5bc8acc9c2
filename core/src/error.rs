//! The one error type of ratewise, with stable codes shared by every language.

use crate::vocab::Skipped;

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
    /// Every stable code [`Error::code`] can return, in declaration order: each binding maps
    /// each one to its own exception class (Python), `err.code` (Node) and `rw_result` (C), and
    /// its tests check that none is missing.
    pub const CODES: [&'static str; 8] = [
        "invalid_config",
        "invalid_argument",
        "unknown_capability",
        "unknown_provider",
        "unknown_permit",
        "no_available_provider",
        "store_unavailable",
        "store_conflict",
    ];

    /// The stable error code, one of [`Error::CODES`].
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

#[cfg(test)]
mod tests {
    use super::Error;

    /// One error of each variant, so that a new variant must be added here (the match is
    /// exhaustive) and to `CODES`.
    fn one_of_each() -> Vec<Error> {
        let all = [
            Error::InvalidConfig(String::new()),
            Error::InvalidArgument(String::new()),
            Error::UnknownCapability(String::new()),
            Error::UnknownProvider(String::new()),
            Error::UnknownPermit(0),
            Error::NoAvailableProvider {
                retry_after_ms: None,
                skipped: Vec::new(),
            },
            Error::StoreUnavailable(String::new()),
            Error::StoreConflict(String::new()),
        ];
        for e in &all {
            match e {
                Error::InvalidConfig(_)
                | Error::InvalidArgument(_)
                | Error::UnknownCapability(_)
                | Error::UnknownProvider(_)
                | Error::UnknownPermit(_)
                | Error::NoAvailableProvider { .. }
                | Error::StoreUnavailable(_)
                | Error::StoreConflict(_) => {}
            }
        }
        all.to_vec()
    }

    #[test]
    fn codes_lists_every_code_once_in_order() {
        let codes: Vec<&str> = one_of_each().iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
    }
}
