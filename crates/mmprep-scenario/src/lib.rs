//! The mmprep scenario format (`docs/scenario-format.md`, version 1).
//!
//! A scenario is a plain-text script of memory-map operations. This crate parses it ([`parse()`])
//! into a [`script::Script`] (plain data), runs it on the engine ([`engine`]), and prints the
//! transcript ([`transcript`]) that the host-kernel runner (`mmprep-host`) prints too.
#![forbid(unsafe_code)]

extern crate alloc;

pub mod driver_diff;
pub mod engine;
pub mod generate;
pub mod parse;
pub mod perf;
pub mod render;
pub mod script;
#[cfg(feature = "proptest")]
pub mod strategy;
pub mod tour;
pub mod transcript;

/// The kernel whose behaviour the engine reproduces: what the host-kernel runner's transcripts were
/// taken on and what `mmprep --version` names.
pub const MODELLED_KERNEL: &str = "Linux 6.18, x86_64";

pub use parse::parse;
pub use script::{Op, Script, Step, WINDOW_BASE};
pub use transcript::{Outcome, RunEnd, Transcript, exit, format_step};
