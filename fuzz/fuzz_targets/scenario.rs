//! The scenario parser and engine runner under libFuzzer: `mmprep_fuzz::scenario`
//! (`crates/mmprep-fuzz/src/scenario.rs`). CI runs the same body on stable:
//! crates/mmprep-fuzz/tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmprep_fuzz::scenario(data));
