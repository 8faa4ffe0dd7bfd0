//! The mmprep scenario format (`docs/scenario-format.md`, version 1).
//!
//! A scenario is a plain-text script of memory-map operations. This crate parses it ([`parse()`])
//! into a [`script::Script`] (plain data), runs it on the engine ([`engine`]), and prints the
//! transcript ([`transcript`]) that the host-kernel runner (`mmprep-host`) prints too.
#![forbid(unsafe_code)]

extern crate alloc;

pub mod engine;
pub mod generate;
pub mod parse;
pub mod script;
pub mod tour;
pub mod transcript;

pub use parse::parse;
pub use script::{Op, Script, Step, WINDOW_BASE};
pub use transcript::{Outcome, RunEnd, Transcript, format_step};
