//! Tools of the gateway benchmark (bench/gateway/README.md): `rw-mockprovider`, a mock LLM
//! provider, `rw-loadgen`, an open-loop load generator, and `rw-passthrough`, a no-op proxy
//! that measures the floor of a proxy hop.
//!
//! Both are built on bare hyper 1 and tokio so that their own cost per request stays small
//! next to what the benchmark measures: the latency a gateway adds between them.

pub mod args;
pub mod format;
pub mod loadgen;
pub mod mock;
pub mod passthrough;
pub mod rng;
pub mod stats;
