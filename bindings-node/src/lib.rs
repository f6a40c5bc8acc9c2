//! The Node.js binding of the ratewise core (napi-rs v3). It only converts types and errors;
//! the generated `index.js` and `index.d.ts` are committed and checked for drift in CI. The
//! shapes the methods accept (configuration, statuses, headers, snapshots) are declared in
//! `types.d.ts`, the header of the generated `index.d.ts`.

#[macro_use]
extern crate napi_derive;

mod config;
mod engine;
mod error;
