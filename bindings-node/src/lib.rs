//! The Node.js binding of the ratewise core (napi-rs v3).
//!
//! Two layers: this crate builds the native addon, whose loader and declarations (`index.js`,
//! `index.d.ts`) napi-rs generates and CI checks for drift; the public API is
//! `src-ts/ratewise.ts`, thin TypeScript classes over these functions (see `engine.rs` for why),
//! compiled by tsc into `ratewise.js` / `ratewise.d.ts`. Neither layer decides anything: every
//! behaviour is the core's.

// Every function here is called from JS: in the test cfg napi registers nothing, so rustc sees
// no caller (the addon is tested through JS, in test/).
#![cfg_attr(test, allow(dead_code))]

#[macro_use]
extern crate napi_derive;

mod engine;
mod error;
