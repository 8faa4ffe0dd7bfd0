//! The public Rust API of the engine under libFuzzer: `mmprep_fuzz::api` (what it checks is in
//! `crates/mmprep-fuzz/src/api.rs`). CI runs the same body on stable: crates/mmprep-fuzz/tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmprep_fuzz::api(data));
