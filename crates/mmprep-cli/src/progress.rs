//! Progress bars for the commands that can take a while (`fuzz`, `bench`, `trace`, `run`,
//! `kernel` and `diff` of several files).
//!
//! A bar is drawn on stderr, and only when stderr is a terminal: piped or redirected output (and
//! every test) gets no progress text at all, on stdout or on stderr. Anything the command prints
//! while a bar is shown goes through [`ProgressBar::suspend`], so the two do not mix.

use std::io::IsTerminal;
use std::time::Duration;

pub use indicatif::ProgressBar;
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// Is progress drawn? Only when stderr is a terminal.
pub fn shown() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `len` steps named `what`; hidden when stderr is not a terminal, or when `len` is 0
/// (a single step needs no bar).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if len == 0 || !shown() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// A spinner for work of unknown length (`trace`): counts what it is told, with a message.
pub fn spinner(what: &str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}").expect("a valid template"));
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
