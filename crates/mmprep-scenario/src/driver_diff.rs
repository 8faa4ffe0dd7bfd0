//! `mmprep driver-diff OLD.c NEW.c`: one driver before and after a change (typically its
//! conversion from `->mmap` to `->mmap_prepare`), run through the same battery of scenarios, and
//! every difference in what a program would see.
//!
//! Each scenario of [`BATTERY`] maps the driver's file in one way (sizes, offsets, `MAP_FIXED`
//! over a neighbour, shared and private, `fork`, `mremap` grow and move, partial `munmap` and
//! `mprotect`, reads and writes through the mapping) and prints maps, contents, errno and the
//! hook calls. The two transcripts are compared entry by entry, and a difference is
//!
//! - **expected** when it is what `mmap_prepare` is meant to change: the maps list the very same
//!   pages with the same permissions, offsets and flags, in fewer VMAs (a mapping that now
//!   merges with its neighbour);
//! - a **hook** difference when only the driver calls differ, after the names that must differ
//!   (`mmap` / `mmap_prepare`, the driver's own name) are set aside: shown, not counted;
//! - a **regression** otherwise: another errno, other contents, other flags, other pages.
//!
//! The command exits 1 if there is a regression.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::collections::BTreeMap;
use std::path::Path;

use mmprep::Profile;

use crate::engine::{self, RunOptions};
use crate::parse;

/// The scenarios: a name, and the lines after the `file d c ...` line.
pub const BATTERY: &[(&str, &str)] = &[
    (
        "one mapping, written and read",
        "mmap 0 8K rw- shared|fixed d 0\nwrite 0 4 0x5a\nread 0 8\nsmaps\nevents\nmunmap 0 8K\nevents\n",
    ),
    (
        "a mapping continuing the previous one",
        "mmap 0 8K rw- shared|fixed d 0\nmmap 8K 8K rw- shared|fixed d 8K\nwrite 8K 1 0x21\nread 8K 1\nsmaps\nevents\nmunmap 0 16K\nevents\n",
    ),
    (
        "an offset into the file",
        "mmap 0 8K rw- shared|fixed d 8K\nread 0 1\nsmaps\nevents\nmunmap 0 8K\nevents\n",
    ),
    (
        "private, written",
        "mmap 0 8K rw- private|fixed d 0\nwrite 0 1 0x42\nread 0 2\nsmaps\nevents\nmunmap 0 8K\nevents\n",
    ),
    (
        "read-only, then mprotect to write",
        "mmap 0 8K r-- shared|fixed d 0\nmprotect 0 8K rw-\nsmaps\nevents\nmunmap 0 8K\nevents\n",
    ),
    (
        "MAP_FIXED over an anonymous neighbour",
        "mmap 0 16K rw- private|anon|fixed\nmmap 4K 8K rw- shared|fixed d 0\nsmaps\nevents\nmunmap 0 16K\nevents\n",
    ),
    (
        "fork",
        "mmap 0 8K rw- shared|fixed d 0\nwrite 0 1 0x11\nfork\nread 0 1\nsmaps\nevents\nmunmap 0 8K\nevents\n",
    ),
    (
        "mremap grow in place",
        "mmap 0 8K rw- shared|fixed d 0\nmremap 0 8K 16K 0\nsmaps\nevents\nmunmap 0 16K\nevents\n",
    ),
    (
        "mremap move",
        "mmap 0 8K rw- shared|fixed d 0\nwrite 0 1 0x33\nmremap 0 8K 8K maymove|fixed 1M\nread 1M 1\nsmaps\nevents\nmunmap 1M 8K\nevents\n",
    ),
    (
        "partial munmap and mprotect",
        "mmap 0 16K rw- shared|fixed d 0\nmunmap 4K 4K\nmprotect 8K 4K r--\nsmaps\nevents\nmunmap 0 16K\nevents\n",
    ),
];

/// One side of the comparison.
#[derive(Clone, Debug)]
pub struct Side<'a> {
    /// The C file.
    pub source: &'a Path,
    /// `fops=SYMBOL`, if the file has several.
    pub fops: Option<&'a str>,
}

/// How one differing entry is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// What mmap_prepare is meant to change: the same pages, merged into fewer VMAs.
    Merges,
    /// Only the driver calls differ.
    Hooks,
    /// Anything else.
    Regression,
}

/// One differing entry of one scenario.
#[derive(Clone, Debug)]
pub struct Difference {
    pub scenario: &'static str,
    pub judgement: Judgement,
    pub old: String,
    pub new: String,
}

/// Every difference over the battery.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub differences: Vec<Difference>,
    /// Scenarios that printed the same on both sides.
    pub same: Vec<&'static str>,
}

impl Report {
    /// Are there real regressions?
    pub fn regressions(&self) -> usize {
        self.count(Judgement::Regression)
    }

    /// How many differences were judged so.
    pub fn count(&self, j: Judgement) -> usize {
        self.differences.iter().filter(|d| d.judgement == j).count()
    }

    /// The report as printed.
    pub fn text(&self, old: &str, new: &str) -> String {
        let mut out = format!("driver-diff: {old} -> {new}\n");
        let mut scenario = "";
        for d in &self.differences {
            if d.scenario != scenario {
                scenario = d.scenario;
                out.push_str(&format!("\n{scenario}:\n"));
            }
            let what = match d.judgement {
                Judgement::Merges => "expected, merges now",
                Judgement::Hooks => "hook calls",
                Judgement::Regression => "REGRESSION",
            };
            out.push_str(&format!("  {what}:\n"));
            for l in d.old.lines() {
                out.push_str(&format!("    - {l}\n"));
            }
            for l in d.new.lines() {
                out.push_str(&format!("    + {l}\n"));
            }
        }
        if !self.same.is_empty() {
            out.push_str(&format!("\nsame: {}\n", self.same.join("; ")));
        }
        out.push_str(&format!(
            "\n{} scenarios: {} merge differences (expected), {} hook differences, {} regressions\n",
            BATTERY.len(),
            self.count(Judgement::Merges),
            self.count(Judgement::Hooks),
            self.regressions()
        ));
        out
    }
}

/// The `file` line for one side.
fn file_line(side: &Side<'_>, params: &[(String, String)]) -> String {
    let mut line = format!("file d c {}", side.source.display());
    if let Some(f) = side.fops {
        line.push_str(&format!(" fops={f}"));
    }
    for (k, v) in params {
        line.push_str(&format!(" {k}={v}"));
    }
    line
}

/// Runs the battery on both sides. An error is a side that could not run at all (a compile
/// error, a failing `open`): the message says which.
pub fn run(
    old: &Side<'_>,
    new: &Side<'_>,
    params: &[(String, String)],
    profile: &Profile,
    options: &RunOptions,
) -> Result<Report, String> {
    let mut report = Report::default();
    for (name, body) in BATTERY {
        let texts = [old, new].map(|side| format!("{}\n{body}", file_line(side, params)));
        let [o, n] = texts.map(|t| engine::run_with(&parse(&t), profile, options));
        for (t, side) in [(&o, old), (&n, new)] {
            if let crate::RunEnd::ParseError(e) = &t.end
                && e.line == 1
            {
                return Err(format!("{}: {}", side.source.display(), e.message));
            }
        }
        let before = report.differences.len();
        let count = o.entries.len().max(n.entries.len());
        for i in 0..count {
            let (a, b) = (
                o.entries.get(i).cloned().unwrap_or_default(),
                n.entries.get(i).cloned().unwrap_or_default(),
            );
            if a == b {
                continue;
            }
            let Some(judgement) = judge(&a, &b) else { continue };
            report.differences.push(Difference {
                scenario: name,
                judgement,
                old: a,
                new: b,
            });
        }
        if o.end != n.end {
            report.differences.push(Difference {
                scenario: name,
                judgement: Judgement::Regression,
                old: format!("{:?}", o.end),
                new: format!("{:?}", n.end),
            });
        }
        if report.differences.len() == before {
            report.same.push(name);
        }
    }
    Ok(report)
}

/// Judges one differing entry; `None` when only names that must differ differ (the mapping
/// hook, the driver's name).
fn judge(old: &str, new: &str) -> Option<Judgement> {
    let verb = |e: &str| e.split_whitespace().nth(1).unwrap_or_default().to_string();
    let (vo, vn) = (verb(old), verb(new));
    if vo != vn {
        return Some(Judgement::Regression);
    }
    Some(match vo.as_str() {
        "maps" | "smaps" if pages(old) == pages(new) => Judgement::Merges,
        "events" if hooks(old) == hooks(new) => return None,
        "events" => Judgement::Hooks,
        _ => Judgement::Regression,
    })
}

/// The rows of a maps or smaps entry, page by page: address → (permissions, file offset of that
/// page, name, flags).
fn pages(entry: &str) -> BTreeMap<u64, (String, u64, String, String)> {
    let mut out = BTreeMap::new();
    for row in entry.lines().skip(1) {
        let mut words = row.split_whitespace();
        let (Some(range), Some(perms), Some(offset)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        let (name, flags) = match rest.iter().position(|w| *w == "|") {
            Some(bar) => (rest[..bar].join(" "), rest[bar + 1..].join(" ")),
            None => (rest.join(" "), String::new()),
        };
        let Some((s, e)) = range.split_once('-') else { continue };
        let (Ok(s), Ok(e), Ok(off)) = (
            u64::from_str_radix(s, 16),
            u64::from_str_radix(e, 16),
            u64::from_str_radix(offset, 16),
        ) else {
            continue;
        };
        let mut p = s;
        while p < e {
            out.insert(p, (perms.to_string(), off + (p - s), name.clone(), flags.clone()));
            p += 0x1000;
        }
    }
    out
}

/// The hook calls of an events entry with what must differ set aside: the hook that maps
/// (`mmap` or `mmap_prepare`), the driver's name, the descriptor's flags.
fn hooks(entry: &str) -> Vec<String> {
    entry
        .lines()
        .skip(1)
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let mut out: Vec<String> = Vec::new();
            for (i, w) in words.iter().enumerate() {
                match (i, *w) {
                    (0, "mmap" | "mmap_prepare") => out.push("map-hook".into()),
                    (1, _) => out.push("*".into()),
                    (_, w) if w.starts_with("flags=") => {}
                    (_, w) => out.push(w.to_string()),
                }
            }
            out.join(" ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_battery_scenario_parses() {
        for (name, body) in BATTERY {
            let script = parse(&format!("file d driver slots\n{body}"));
            assert_eq!(script.error, None, "{name}");
        }
    }

    #[test]
    fn a_merge_is_told_from_a_change() {
        let split = "L3 smaps = 2\n  00000000-00002000 rw-s 00000000 d | rd wr sh\n  00002000-00004000 rw-s 00002000 d | rd wr sh";
        let merged = "L3 smaps = 1\n  00000000-00004000 rw-s 00000000 d | rd wr sh";
        let other_flags = "L3 smaps = 1\n  00000000-00004000 rw-s 00000000 d | rd wr sh dd";
        assert_eq!(judge(split, merged), Some(Judgement::Merges));
        assert_eq!(judge(split, other_flags), Some(Judgement::Regression));
        assert_eq!(judge("L2 mmap = 0x0", "L2 mmap = -EINVAL"), Some(Judgement::Regression));
        let old = "L4 events = 1\n  mmap old 0x0-0x2000 pgoff=0x0 = 0";
        let new = "L4 events = 1\n  mmap_prepare new 0x0-0x2000 pgoff=0x0 flags=rd = 0";
        assert_eq!(judge(old, new), None);
        let more =
            "L4 events = 2\n  mmap_prepare new 0x0-0x2000 pgoff=0x0 flags=rd = 0\n  mapped x 0x0-0x2000 pgoff=0x0 = 0";
        assert_eq!(judge(old, more), Some(Judgement::Hooks));
    }
}
