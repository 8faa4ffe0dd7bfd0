//! Runs a [`Script`] on the engine and returns its [`Transcript`].
//!
//! (Being built: until the engine runner lands, every operation line ends the run as
//! `unsupported`, which is the honest answer, never a made-up result.)

use alloc::format;
use alloc::vec::Vec;

use mmprep::Profile;

use crate::script::Script;
use crate::transcript::{RunEnd, Transcript};

/// Runs `script` on a fresh engine address space built from `profile`.
pub fn run(script: &Script, profile: &Profile) -> Transcript {
    let _ = profile;
    for step in &script.steps {
        if step.op.prints() {
            return Transcript {
                entries: Vec::new(),
                end: RunEnd::Unsupported {
                    line: step.line,
                    reason: format!("the engine runner does not run `{}` yet", step.verb()),
                },
            };
        }
    }
    let end = match &script.error {
        Some(e) => RunEnd::ParseError(e.clone()),
        None => RunEnd::Finished,
    };
    Transcript { entries: Vec::new(), end }
}
