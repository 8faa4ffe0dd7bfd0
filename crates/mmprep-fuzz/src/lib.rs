//! Fuzz target bodies for mmprep, as plain functions.
//!
//! Each target takes the fuzzer's bytes and panics on a finding. The `cargo fuzz` targets in
//! `fuzz/fuzz_targets/` call them, and so does `tests/bounded.rs` with a seeded PRNG for a
//! bounded number of inputs, so CI runs the same bodies on stable without libFuzzer
//! (`docs/fuzzing.md`).
//!
//! - [`api()`]: a sequence of public [`mmprep::Mm`] calls with hostile arguments, checked after
//!   every call (see the `api` module).
//! - [`scenario()`]: the scenario parser and the engine runner on arbitrary text.
#![forbid(unsafe_code)]

mod api;
pub mod hostile;
pub mod input;
mod scenario;
pub mod snapshot;

pub use api::{DRIVER_MAP_CAP, MAX_FILES, MAX_MMS, MAX_OPS, POPULATE_CAP, api};
pub use scenario::{DRIVER_MAP_CAP as SCENARIO_DRIVER_MAP_CAP, TOUCH_CAP, scenario};
