//! Comparing the host kernel's transcript of a scenario with the engine's.
//!
//! The kernel is the oracle: wherever a scenario uses only what a real kernel has, the engine
//! must print the same transcript, byte for byte, and end the same way. [`compare`] lines the
//! two transcripts up entry by entry (an entry is one operation's result, with the lines of a
//! `maps` or `smaps` result) and lists where they differ; [`Comparison::report`] prints that
//! for a person, starting from the scenario line that caused the first difference.

use std::fmt::Write;

use mmprep_scenario::{RunEnd, Transcript};

/// One entry that is not the same on both sides (`None`: that side has no entry there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The scenario line the entry belongs to (from its `L<n>` prefix).
    pub line: Option<usize>,
    pub kernel: Option<String>,
    pub engine: Option<String>,
}

/// The differences between a kernel run and an engine run of the same scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// The entries that differ, in transcript order.
    pub differences: Vec<Difference>,
    /// The two ends, when they differ.
    pub ends: Option<(RunEnd, RunEnd)>,
}

/// Compares the two transcripts of one scenario.
pub fn compare(kernel: &Transcript, engine: &Transcript) -> Comparison {
    let count = kernel.entries.len().max(engine.entries.len());
    let differences = (0..count)
        .filter_map(|i| {
            let k = kernel.entries.get(i);
            let e = engine.entries.get(i);
            (k != e).then(|| Difference {
                line: k.or(e).and_then(|entry| entry_line(entry)),
                kernel: k.cloned(),
                engine: e.cloned(),
            })
        })
        .collect();
    let ends = (kernel.end != engine.end).then(|| (kernel.end.clone(), engine.end.clone()));
    Comparison { differences, ends }
}

/// The line number of a transcript entry, from its `L<n> ` prefix.
pub fn entry_line(entry: &str) -> Option<usize> {
    entry.strip_prefix('L')?.split_once(' ')?.0.parse().ok()
}

/// How a run ended, in a few words.
pub fn describe_end(end: &RunEnd) -> String {
    end.message().unwrap_or_else(|| "finished".into())
}

impl Comparison {
    /// Are the two runs the same?
    pub fn is_same(&self) -> bool {
        self.differences.is_empty() && self.ends.is_none()
    }

    /// A report for a person: the scenario line of the first difference (its text taken from
    /// `script_text`), then up to `limit` differing entries as `-kernel:`/`+engine:` lines,
    /// then the two ends if they differ. Empty when the runs are the same.
    pub fn report(&self, script_text: &str, limit: usize) -> String {
        let mut out = String::new();
        if let Some(first) = self.differences.first() {
            match first.line {
                Some(n) => {
                    let text = script_text.lines().nth(n.saturating_sub(1)).unwrap_or("");
                    let _ = writeln!(out, "first difference at line {n}: {}", text.trim());
                }
                None => out.push_str("first difference:\n"),
            }
            for d in self.differences.iter().take(limit) {
                side(&mut out, "-kernel: ", d.kernel.as_deref());
                side(&mut out, "+engine: ", d.engine.as_deref());
            }
            if self.differences.len() > limit {
                let more = self.differences.len() - limit;
                let _ = writeln!(out, "... and {more} more differing entries");
            }
        }
        if let Some((kernel, engine)) = &self.ends {
            let _ = writeln!(out, "the runs end differently:");
            let _ = writeln!(out, "-kernel: {}", describe_end(kernel));
            let _ = writeln!(out, "+engine: {}", describe_end(engine));
        }
        out
    }
}

/// Prints one side of a difference, every line of the entry with `prefix`.
fn side(out: &mut String, prefix: &str, entry: Option<&str>) {
    match entry {
        Some(entry) => {
            for line in entry.lines() {
                let _ = writeln!(out, "{prefix}{line}");
            }
        }
        None => {
            let _ = writeln!(out, "{prefix}(nothing)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(entries: &[&str], end: RunEnd) -> Transcript {
        Transcript {
            entries: entries.iter().map(|e| e.to_string()).collect(),
            end,
        }
    }

    #[test]
    fn same_runs() {
        let t = transcript(
            &["L1 mmap = 0x0", "L2 maps = 1\n  00000000-00001000 rw-p 00000000"],
            RunEnd::Finished,
        );
        let c = compare(&t, &t.clone());
        assert!(c.is_same());
        assert_eq!(c.report("", 10), "");
    }

    #[test]
    fn differing_entries_and_ends() {
        let kernel = transcript(
            &[
                "L1 mmap = 0x0",
                "L3 maps = 1\n  00000000-00001000 rw-p 00000000",
                "L4 munmap = 0",
            ],
            RunEnd::Finished,
        );
        let engine = transcript(
            &["L1 mmap = 0x0", "L3 maps = 1\n  00000000-00002000 rw-p 00000000"],
            RunEnd::Unsupported {
                line: 4,
                reason: "munmap is not built".into(),
            },
        );
        let c = compare(&kernel, &engine);
        assert_eq!(c.differences.len(), 2);
        assert_eq!(c.differences[0].line, Some(3));
        assert_eq!(c.differences[1].engine, None);
        let script = "mmap 0 4K rw- private|anon|fixed\n# c\n  maps  \nmunmap 0 4K\n";
        assert_eq!(
            c.report(script, 10),
            "first difference at line 3: maps\n\
             -kernel: L3 maps = 1\n\
             -kernel:   00000000-00001000 rw-p 00000000\n\
             +engine: L3 maps = 1\n\
             +engine:   00000000-00002000 rw-p 00000000\n\
             -kernel: L4 munmap = 0\n\
             +engine: (nothing)\n\
             the runs end differently:\n\
             -kernel: finished\n\
             +engine: unsupported: line 4: munmap is not built\n"
        );
        assert!(c.report(script, 1).contains("... and 1 more differing entries\n"));
    }

    #[test]
    fn entry_lines() {
        assert_eq!(entry_line("L12 mmap = 0x0"), Some(12));
        assert_eq!(entry_line("mmap"), None);
        assert_eq!(entry_line("Lx y"), None);
    }
}
