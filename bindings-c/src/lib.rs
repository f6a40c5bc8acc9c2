//! The C ABI of ratewise (`libratewise`, `include/ratewise.h`).
//!
//! Opaque handles (`rw_engine`, `rw_clock`, `rw_decision`, `rw_polled`), permits as `uint64_t`
//! ids (a stale or repeated id is `RW_RESULT_UNKNOWN_PERMIT`, never undefined behaviour), a
//! `#[repr(u32)]` result enum with explicit values, a per-thread last error, and a panic boundary
//! around every export. The functions only convert; every decision is the core's.
//!
//! One job per module; `error`, `clock`, `call`, `engine`, `scheduler` and `vocab` wrap the core
//! module of the same name:
//!
//! - `error`: `rw_result` (one value per code of `ratewise::Error::CODES`), its names, the
//!   per-thread last error.
//! - `ffi`: the panic guard, pointer and string conversions, the library-wide exports.
//! - `clock`: the manual clock. `call`: what a call carries in (`rw_request`, `rw_outcome`).
//! - `engine`: the engine handle and its calls; `scheduler`: the calls that wait.
//! - `decision` and `polled`: the accessors of what the calls return. `vocab`: statuses.
//!
//! Every export is re-exported here, so the Rust paths are the flat ones of the C header.

// This crate is the FFI boundary: raw pointers from C are its job. Every `unsafe` block checks
// the pointer for NULL first and documents what the caller must guarantee.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

// Grouped in the order the header declares the exports: cbindgen follows the modules, and
// rustfmt sorts the lines within a group.
mod error;
mod ffi;

mod call;
mod clock;

mod engine;
mod scheduler;

mod decision;
mod polled;
mod vocab;

pub use call::*;
pub use clock::*;
pub use decision::*;
pub use engine::*;
pub use error::*;
pub use ffi::*;
pub use polled::*;
pub use scheduler::*;
pub use vocab::*;
