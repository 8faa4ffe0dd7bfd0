//! Pictures of the address space: `mmprep render FILE.scn [-o out.svg|out.html]`.
//!
//! The scenario runs on the engine ([`crate::engine::run_observed`]); after each step that ran,
//! a [`Frame`] records the window's VMAs, what the step did to them (merged, split, new,
//! changed, unmapped: found by comparing with the VMAs before the step), which parts have
//! page-table entries (resident pages), the driver hook calls the step made and its transcript
//! entry with the `--why` line.
//!
//! [`svg`] draws one frame as a stand-alone SVG; [`html`] puts every frame in one
//! self-contained page (inline CSS and JavaScript, nothing fetched) that steps through them with
//! buttons or keys. Both are plain text written here: no dependency.
//!
//! The address axis runs left to right. VMA widths grow with the logarithm of their size, and
//! the unmapped gaps between them are drawn, also log-scaled, with their size written in them: a
//! 4 KiB VMA and a 1 GiB hole both stay readable.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::ops::ControlFlow;

use mmprep::{Profile, VirtAddr};

use crate::engine::{run_observed, why_line};
use crate::script::{FileKind, Script};
use crate::transcript::{MapsEntry, Transcript, format_step, offset_hex};

/// What a VMA maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Private anonymous memory.
    Anon,
    /// A private mapping of a file (memfd, tmpfile, `/dev/zero`).
    File,
    /// A shared mapping (of a file, or shared anonymous memory).
    Shared,
    /// A mapping of one of `mmprep-drivers`' example drivers, shared or private.
    Driver,
}

impl Kind {
    /// Every kind, in legend order.
    pub const ALL: [Kind; 4] = [Kind::Anon, Kind::File, Kind::Shared, Kind::Driver];

    /// The legend's word.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Anon => "anonymous",
            Kind::File => "file",
            Kind::Shared => "shared",
            Kind::Driver => "driver",
        }
    }

    fn hue(self) -> (u8, u8, u8) {
        match self {
            Kind::Anon => (0x2f, 0x6f, 0xd0),
            Kind::File => (0x2e, 0x9a, 0x45),
            Kind::Shared => (0xe0, 0x80, 0x10),
            Kind::Driver => (0x95, 0x3f, 0xc0),
        }
    }
}

/// The permission classes that shade a kind's colour: none, read-only, read-write, executable.
pub const PERM_CLASSES: [&str; 4] = ["---", "r--", "rw-", "--x"];

/// The class (index into [`PERM_CLASSES`]) of a `maps` permission string.
pub fn perm_class(perms: &[u8; 4]) -> usize {
    match (perms[0] == b'r', perms[1] == b'w', perms[2] == b'x') {
        (_, _, true) => 3,
        (_, true, _) => 2,
        (true, _, _) => 1,
        _ => 0,
    }
}

/// The fill colour of a VMA of `kind` with permission class `class`: the kind's hue, paler
/// with fewer permissions, darker when executable. Every (kind, class) pair has its own colour.
pub fn colour(kind: Kind, class: usize) -> (u8, u8, u8) {
    let (r, g, b) = kind.hue();
    // Mix with white (`w` of 100) or black (negative).
    let mix = |c: u8, w: i32| -> u8 {
        let c = c as i32;
        let v = if w >= 0 {
            c + (255 - c) * w / 100
        } else {
            c * (100 + w) / 100
        };
        v.clamp(0, 255) as u8
    };
    let w = match class {
        0 => 78,
        1 => 50,
        2 => 0,
        _ => -35,
    };
    (mix(r, w), mix(g, w), mix(b, w))
}

fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// What a step did to a VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The same VMA as before the step.
    Same,
    /// Nothing was mapped in its range before.
    New,
    /// It covers more than one VMA of before, or grew over one: merged (or extended).
    Merged,
    /// It is a part of a larger VMA of before: split.
    Split,
    /// The same range with other permissions, offset or name.
    Changed,
}

impl Change {
    fn badge(self) -> Option<(&'static str, &'static str)> {
        match self {
            Change::Same => None,
            Change::New => Some(("new", "#1a7f37")),
            Change::Merged => Some(("merged", "#d4a000")),
            Change::Split => Some(("split", "#d0187a")),
            Change::Changed => Some(("changed", "#0a58ca")),
        }
    }
}

/// Cells of the resident strip under a VMA (fewer for a VMA of fewer pages).
const MAX_CELLS: u64 = 32;

/// One VMA of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmaView {
    /// What `maps` prints for it (absolute addresses).
    pub entry: MapsEntry,
    /// What it maps.
    pub kind: Kind,
    /// What the step did to it.
    pub change: Change,
    /// Page-table presence, in at most 32 equal cells from its start: is any page of the cell
    /// resident?
    pub resident: Vec<bool>,
}

/// The address space after one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The step's 1-based line.
    pub line: usize,
    /// The line's text.
    pub source: String,
    /// Its transcript entry, with the `--why` line of a failed call; `None` for lines that
    /// print nothing (`file`, `close`).
    pub entry: Option<String>,
    /// The window's VMAs, lowest first.
    pub vmas: Vec<VmaView>,
    /// Ranges `[start, end)` that were mapped before the step and are not now.
    pub unmapped: Vec<(u64, u64)>,
    /// The driver hook calls the step made (as `events` prints them).
    pub events: Vec<String>,
}

/// Runs `script` (whose source is `text`) on the engine and returns the frame of every step
/// that ran, and the transcript.
pub fn frames(script: &Script, text: &str, profile: &Profile) -> (Vec<Frame>, Transcript) {
    let mut frames: Vec<Frame> = Vec::new();
    let mut before: Vec<MapsEntry> = Vec::new();
    let transcript = run_observed(
        script,
        profile,
        &crate::engine::RunOptions::default(),
        true,
        |step, runner, outcome| {
            let why = why_line(outcome, runner.last_error());
            let entry = outcome.map(|o| {
                let mut e = format_step(step.line, step.verb(), o, runner.window());
                if let Some(w) = &why {
                    e.push_str(w);
                }
                e
            });
            let now = runner.window_maps();
            let vmas = now
                .iter()
                .map(|e| {
                    let kind = kind_of(script, e);
                    let change = change_of(e, &before);
                    let pages = (e.end - e.start) / mmprep::PAGE_SIZE;
                    let cells = pages.clamp(1, MAX_CELLS);
                    let resident = (0..cells)
                        .map(|i| {
                            let s = e.start + (e.end - e.start) * i / cells;
                            let t = e.start + (e.end - e.start) * (i + 1) / cells;
                            runner.mm().any_resident(VirtAddr(s), VirtAddr(t))
                        })
                        .collect();
                    VmaView {
                        entry: e.clone(),
                        kind,
                        change,
                        resident,
                    }
                })
                .collect();
            frames.push(Frame {
                line: step.line,
                source: String::from(text.lines().nth(step.line - 1).unwrap_or("").trim()),
                entry,
                vmas,
                unmapped: uncovered(&before, &now),
                events: runner
                    .last_events()
                    .iter()
                    .map(|e| e.render(&|a| offset_hex(a.get())))
                    .collect(),
            });
            before = now;
            ControlFlow::Continue(why)
        },
    );
    (frames, transcript)
}

fn kind_of(script: &Script, e: &MapsEntry) -> Kind {
    let driver = script
        .files
        .iter()
        .any(|f| f.name == e.name && matches!(f.kind, FileKind::Driver { .. }));
    if driver {
        Kind::Driver
    } else if e.perms[3] == b's' {
        Kind::Shared
    } else if e.name.is_empty() {
        Kind::Anon
    } else {
        Kind::File
    }
}

fn change_of(e: &MapsEntry, before: &[MapsEntry]) -> Change {
    let overlapping: Vec<&MapsEntry> = before.iter().filter(|b| b.start < e.end && e.start < b.end).collect();
    match overlapping.as_slice() {
        [] => Change::New,
        [b] if b.start == e.start && b.end == e.end => {
            if *b == e {
                Change::Same
            } else {
                Change::Changed
            }
        }
        [b] if b.start <= e.start && e.end <= b.end => Change::Split,
        _ => Change::Merged,
    }
}

/// The parts of `before`'s ranges that no VMA of `now` covers.
fn uncovered(before: &[MapsEntry], now: &[MapsEntry]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for b in before {
        let mut at = b.start;
        for n in now.iter().filter(|n| n.start < b.end && b.start < n.end) {
            if n.start > at {
                out.push((at, n.start));
            }
            at = at.max(n.end);
        }
        if at < b.end {
            out.push((at, b.end));
        }
    }
    // Adjacent pieces read as one hole.
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in out {
        match merged.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Escapes text for XML and HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A byte count as the scenario format writes sizes (`4K`, `1M`, `3G`, or bytes).
pub fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (unit, suffix) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    for (unit, suffix) in UNITS {
        if bytes >= unit {
            return format!("{}.{}{suffix}", bytes / unit, (bytes % unit) * 10 / unit);
        }
    }
    format!("{bytes}")
}

/// The width of the picture, in SVG units.
pub const WIDTH: u32 = 1180;
/// Its height.
pub const HEIGHT: u32 = 500;
/// The address lane: left edge and width.
const LANE_X: f64 = 20.0;
const LANE_W: f64 = 840.0;
/// Characters of the step's result that fit left of the side lane.
const RESULT_CHARS: usize = 104;
/// The side lane of hook calls: left edge.
const SIDE_X: f64 = 880.0;
/// The VMA boxes: top and height.
const BOX_Y: f64 = 150.0;
const BOX_H: f64 = 90.0;

/// One piece of the address axis.
enum Piece<'a> {
    Vma(&'a VmaView),
    Unmapped(u64, u64),
    Gap(u64, u64),
}

fn log_width(bytes: u64, base: f64, per_doubling: f64) -> f64 {
    let pages = (bytes / mmprep::PAGE_SIZE).max(1) as f64;
    base + per_doubling * pages.log2()
}

/// The frame's pieces in address order, with their widths scaled to fill the lane.
fn layout(frame: &Frame) -> Vec<(Piece<'_>, f64, f64)> {
    let mut pieces: Vec<(u64, Piece<'_>)> = frame.vmas.iter().map(|v| (v.entry.start, Piece::Vma(v))).collect();
    pieces.extend(frame.unmapped.iter().map(|&(s, e)| (s, Piece::Unmapped(s, e))));
    pieces.sort_by_key(|(s, _)| *s);
    let mut with_gaps: Vec<Piece<'_>> = Vec::new();
    let mut end: Option<u64> = None;
    for (start, p) in pieces {
        if let Some(e) = end
            && start > e
        {
            with_gaps.push(Piece::Gap(e, start));
        }
        end = Some(match &p {
            Piece::Vma(v) => v.entry.end,
            Piece::Unmapped(_, e) | Piece::Gap(_, e) => *e,
        });
        with_gaps.push(p);
    }
    let raw: Vec<f64> = with_gaps
        .iter()
        .map(|p| match p {
            Piece::Vma(v) => log_width(v.entry.end - v.entry.start, 60.0, 14.0),
            Piece::Unmapped(s, e) => log_width(e - s, 40.0, 10.0),
            Piece::Gap(s, e) => log_width(e - s, 28.0, 4.0),
        })
        .collect();
    let total: f64 = raw.iter().sum();
    // Fill the lane, but do not blow a lone small VMA up to its whole width.
    let scale = (LANE_W / total).min(2.5);
    let mut x = LANE_X;
    with_gaps
        .into_iter()
        .zip(raw)
        .map(|(p, w)| {
            let w = w * scale;
            let at = x;
            x += w;
            (p, at, w)
        })
        .collect()
}

/// Wraps `text` into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word;
        while word.chars().count() > width {
            if !line.is_empty() {
                lines.push(core::mem::take(&mut line));
            }
            let cut = word.char_indices().nth(width).map_or(word.len(), |(i, _)| i);
            lines.push(String::from(&word[..cut]));
            word = &word[cut..];
        }
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(core::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// One frame as a stand-alone SVG document. `title` names the scenario; `index`/`count` place
/// the frame among the steps.
pub fn svg(frame: &Frame, title: &str, index: usize, count: usize) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"13\">\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n"
    );
    // The step and its result.
    let _ = writeln!(
        o,
        "<text x=\"{LANE_X}\" y=\"28\" font-size=\"16\" font-weight=\"bold\">{} — step {} of {count}: L{} {}</text>",
        escape(title),
        index + 1,
        frame.line,
        escape(&frame.source)
    );
    let result = frame.entry.as_deref().unwrap_or("(prints nothing)");
    // Long lines (a why line naming a driver's source) wrap before the side lane, indented.
    let mut shown: Vec<(String, bool)> = Vec::new();
    for line in result.lines() {
        let red = line.contains(" = -E") || line.starts_with("  why:");
        let indent = line.len() - line.trim_start().len();
        for (i, part) in wrap(line.trim_start(), RESULT_CHARS - indent - 2)
            .into_iter()
            .enumerate()
        {
            let pad = indent + if i == 0 { 0 } else { 2 };
            shown.push((format!("{:pad$}{part}", ""), red));
        }
    }
    for (i, (line, red)) in shown.iter().take(5).enumerate() {
        let _ = writeln!(
            o,
            "<text x=\"{LANE_X}\" y=\"{}\" fill=\"{}\" xml:space=\"preserve\">{}</text>",
            52 + 17 * i,
            if *red { "#b00020" } else { "#333333" },
            escape(line)
        );
    }
    // The address lane.
    let pieces = layout(frame);
    let axis_y = BOX_Y + BOX_H + 22.0;
    let _ = writeln!(
        o,
        "<line x1=\"{LANE_X}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#888888\"/>",
        LANE_X + LANE_W
    );
    if pieces.is_empty() {
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{}\" fill=\"#888888\">nothing mapped in the window</text>",
            LANE_X + 10.0,
            BOX_Y + BOX_H / 2.0
        );
    }
    for (n, (piece, x, w)) in pieces.iter().enumerate() {
        let (x, w) = (*x, *w);
        let label_y = axis_y + 16.0 + 14.0 * (n % 2) as f64;
        match piece {
            Piece::Vma(v) => {
                let e = &v.entry;
                let fill = hex(colour(v.kind, perm_class(&e.perms)));
                let (stroke, sw) = match v.change.badge() {
                    Some((_, c)) => (c, 4),
                    None => ("#333333", 1),
                };
                let _ = writeln!(
                    o,
                    "<rect class=\"vma\" x=\"{x:.1}\" y=\"{BOX_Y}\" width=\"{:.1}\" height=\"{BOX_H}\" fill=\"{fill}\" \
                     stroke=\"{stroke}\" stroke-width=\"{sw}\"><title>{}</title></rect>",
                    (w - 2.0).max(1.0),
                    escape(&format!(
                        "{}-{} {} {:08x} {} ({}, {})",
                        offset_hex(e.start),
                        offset_hex(e.end),
                        core::str::from_utf8(&e.perms).unwrap_or("????"),
                        e.offset,
                        e.name,
                        v.kind.name(),
                        size_text(e.end - e.start)
                    ))
                );
                let text_fill = if perm_class(&e.perms) >= 2 {
                    "#ffffff"
                } else {
                    "#111111"
                };
                let perms = core::str::from_utf8(&e.perms).unwrap_or("????");
                let _ = writeln!(
                    o,
                    "<text x=\"{:.1}\" y=\"{}\" fill=\"{text_fill}\" font-size=\"12\">{perms}</text>",
                    x + 5.0,
                    BOX_Y + 20.0
                );
                let _ = writeln!(
                    o,
                    "<text x=\"{:.1}\" y=\"{}\" fill=\"{text_fill}\" font-size=\"11\">{}</text>",
                    x + 5.0,
                    BOX_Y + 36.0,
                    escape(&size_text(e.end - e.start))
                );
                if !e.name.is_empty() {
                    let _ = writeln!(
                        o,
                        "<text x=\"{:.1}\" y=\"{}\" fill=\"{text_fill}\" font-size=\"11\">{}</text>",
                        x + 5.0,
                        BOX_Y + 52.0,
                        escape(&e.name)
                    );
                }
                if let Some((word, c)) = v.change.badge() {
                    let _ = writeln!(
                        o,
                        "<text x=\"{:.1}\" y=\"{}\" fill=\"{c}\" font-weight=\"bold\" font-size=\"12\">{word}</text>",
                        x + 2.0,
                        BOX_Y - 8.0
                    );
                }
                // Resident pages: a strip of cells under the box, filled where pages are.
                let cells = v.resident.len().max(1) as f64;
                let cw = (w - 2.0).max(1.0) / cells;
                for (i, &r) in v.resident.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "<rect class=\"pte\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"8\" fill=\"{}\"/>",
                        x + cw * i as f64,
                        BOX_Y + BOX_H + 4.0,
                        (cw - 0.5).max(0.5),
                        if r { "#202020" } else { "#e4e4e4" }
                    );
                }
                let _ = writeln!(
                    o,
                    "<text x=\"{x:.1}\" y=\"{label_y}\" font-size=\"10\" fill=\"#555555\">{}</text>",
                    offset_hex(e.start)
                );
            }
            Piece::Unmapped(s, e) => {
                let _ = writeln!(
                    o,
                    "<rect class=\"unmapped\" x=\"{x:.1}\" y=\"{BOX_Y}\" width=\"{:.1}\" height=\"{BOX_H}\" fill=\"none\" \
                     stroke=\"#cc0000\" stroke-width=\"2\" stroke-dasharray=\"6 4\"><title>unmapped {}-{}</title></rect>",
                    (w - 2.0).max(1.0),
                    offset_hex(*s),
                    offset_hex(*e)
                );
                let _ = writeln!(
                    o,
                    "<text x=\"{:.1}\" y=\"{}\" fill=\"#cc0000\" font-size=\"11\">unmapped</text>\n\
                     <text x=\"{:.1}\" y=\"{}\" fill=\"#cc0000\" font-size=\"11\">{}</text>",
                    x + 4.0,
                    BOX_Y + 20.0,
                    x + 4.0,
                    BOX_Y + 36.0,
                    size_text(e - s)
                );
                let _ = writeln!(
                    o,
                    "<text x=\"{x:.1}\" y=\"{label_y}\" font-size=\"10\" fill=\"#555555\">{}</text>",
                    offset_hex(*s)
                );
            }
            Piece::Gap(s, e) => {
                let mid = x + w / 2.0;
                let _ = writeln!(
                    o,
                    "<path d=\"M{:.1} {} l4 -8 l4 16 l4 -8\" fill=\"none\" stroke=\"#999999\"/>\n\
                     <text x=\"{mid:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#999999\">{}</text>",
                    mid - 6.0,
                    BOX_Y + BOX_H / 2.0,
                    BOX_Y + BOX_H / 2.0 + 24.0,
                    size_text(e - s)
                );
            }
        }
    }
    // The side lane: the step's driver hook calls.
    let _ = writeln!(
        o,
        "<rect x=\"{}\" y=\"40\" width=\"{}\" height=\"{}\" fill=\"#f6f3fa\" stroke=\"#d8cce6\"/>\n\
         <text x=\"{}\" y=\"60\" font-weight=\"bold\">driver hooks ({})</text>",
        SIDE_X - 8.0,
        f64::from(WIDTH) - SIDE_X,
        f64::from(HEIGHT) - 120.0,
        SIDE_X,
        frame.events.len()
    );
    let mut y = 80.0;
    for event in &frame.events {
        for (i, line) in wrap(event, 40).into_iter().enumerate() {
            if y > f64::from(HEIGHT) - 90.0 {
                break;
            }
            let _ = writeln!(
                o,
                "<text class=\"event\" x=\"{}\" y=\"{y}\" font-size=\"11\" fill=\"{}\">{}</text>",
                SIDE_X + if i == 0 { 0.0 } else { 12.0 },
                if event.contains("= -E") { "#b00020" } else { "#3b2a50" },
                escape(&line)
            );
            y += 14.0;
        }
        y += 4.0;
    }
    legend(&mut o);
    o.push_str("</svg>\n");
    o
}

/// The colour key along the bottom: each kind in its four permission shades, the change
/// outlines and the resident strip.
fn legend(o: &mut String) {
    let y0 = f64::from(HEIGHT) - 62.0;
    let mut x = LANE_X;
    for kind in Kind::ALL {
        let _ = writeln!(o, "<text x=\"{x}\" y=\"{y0}\" font-size=\"11\">{}</text>", kind.name());
        for (class, perms) in PERM_CLASSES.iter().enumerate() {
            let _ = writeln!(
                o,
                "<rect class=\"key\" x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"><title>{} {perms}</title></rect>",
                x + 13.0 * class as f64,
                y0 + 6.0,
                hex(colour(kind, class)),
                kind.name()
            );
        }
        x += 95.0;
    }
    let _ = writeln!(
        o,
        "<text x=\"{x}\" y=\"{y0}\" font-size=\"11\">shades: --- r-- rw- x</text>",
    );
    let mut x = LANE_X;
    let y1 = y0 + 36.0;
    for change in [Change::New, Change::Merged, Change::Split, Change::Changed] {
        let (word, c) = change.badge().unwrap_or(("", ""));
        let _ = writeln!(
            o,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"none\" stroke=\"{c}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{y1}\" font-size=\"11\">{word}</text>",
            y1 - 9.0,
            x + 20.0
        );
        x += 90.0;
    }
    let _ = writeln!(
        o,
        "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"none\" stroke=\"#cc0000\" stroke-dasharray=\"3 2\"/>\
         <text x=\"{}\" y=\"{y1}\" font-size=\"11\">unmapped</text>\
         <rect x=\"{}\" y=\"{}\" width=\"14\" height=\"8\" fill=\"#202020\"/>\
         <text x=\"{}\" y=\"{y1}\" font-size=\"11\">resident pages (page-table entries)</text>",
        y1 - 9.0,
        x + 20.0,
        x + 110.0,
        y1 - 8.0,
        x + 130.0
    );
}

/// Every frame in one self-contained HTML page: buttons and keys (←/→, Home/End) step through
/// them, `#N` in the address opens step N, and the scenario's lines on the side mark where the
/// run is.
pub fn html(frames: &[Frame], title: &str, source: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>mmprep render: {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <header><button id=\"first\" title=\"first step (Home)\">|&#x25C0;</button>\
         <button id=\"prev\" title=\"previous step (&#x2190;)\">&#x25C0;</button>\
         <span id=\"pos\"></span>\
         <button id=\"next\" title=\"next step (&#x2192;)\">&#x25B6;</button>\
         <button id=\"last\" title=\"last step (End)\">&#x25B6;|</button>\
         <span class=\"hint\">{} — &#x2190;/&#x2192; step, Home/End, click a line</span></header>\n<main>\n<div id=\"frames\">\n",
        escape(title),
        escape(title)
    );
    for (i, f) in frames.iter().enumerate() {
        let _ = write!(
            o,
            "<div class=\"frame\" data-line=\"{}\"{}>\n{}</div>\n",
            f.line,
            if i + 1 == frames.len() { "" } else { " hidden" },
            svg(f, title, i, frames.len())
        );
    }
    o.push_str("</div>\n<ol id=\"source\">\n");
    for (n, line) in source.lines().enumerate() {
        let step = frames.iter().position(|f| f.line == n + 1);
        let _ = writeln!(
            o,
            "<li{}>{}</li>",
            step.map_or(String::new(), |s| format!(" data-step=\"{s}\"")),
            if line.is_empty() {
                String::from("&#8203;")
            } else {
                escape(line)
            }
        );
    }
    let _ = write!(o, "</ol>\n</main>\n<script>\n{JS}</script>\n</body>\n</html>\n");
    o
}

const CSS: &str = "body { margin: 0; font: 14px system-ui, sans-serif; background: #fafafa; color: #222; }
header { display: flex; gap: 8px; align-items: center; padding: 8px 12px; background: #2d2440; color: #fff; }
header button { font-size: 16px; min-width: 40px; cursor: pointer; }
#pos { min-width: 140px; text-align: center; font-weight: bold; }
.hint { opacity: 0.8; margin-left: 16px; }
main { display: flex; align-items: flex-start; }
#frames { flex: 1; min-width: 0; }
.frame svg { display: block; width: 100%; height: auto; }
#source { flex: 0 0 240px; margin: 8px; padding-left: 32px; font: 12px monospace; max-height: 90vh; overflow: auto; }
#source li { white-space: pre; color: #888; }
#source li[data-step] { color: #222; cursor: pointer; }
#source li.current { background: #ffe58a; }
";

const JS: &str = "(function () {
  var frames = Array.prototype.slice.call(document.querySelectorAll('.frame'));
  var lines = document.querySelectorAll('#source li');
  var at = frames.length - 1;
  function show(i) {
    if (frames.length === 0) return;
    at = Math.max(0, Math.min(frames.length - 1, i));
    frames.forEach(function (f, j) { f.hidden = j !== at; });
    document.getElementById('pos').textContent = 'step ' + (at + 1) + ' / ' + frames.length;
    var line = Number(frames[at].getAttribute('data-line'));
    lines.forEach(function (li, j) { li.classList.toggle('current', j + 1 === line); });
    if (history.replaceState) history.replaceState(null, '', '#' + (at + 1));
  }
  function fromHash() {
    var n = parseInt(location.hash.slice(1), 10);
    show(isNaN(n) ? frames.length - 1 : n - 1);
  }
  document.getElementById('first').onclick = function () { show(0); };
  document.getElementById('prev').onclick = function () { show(at - 1); };
  document.getElementById('next').onclick = function () { show(at + 1); };
  document.getElementById('last').onclick = function () { show(frames.length - 1); };
  lines.forEach(function (li) {
    var s = li.getAttribute('data-step');
    if (s !== null) li.onclick = function () { show(Number(s)); };
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown' || e.key === ' ') show(at + 1);
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') show(at - 1);
    else if (e.key === 'Home') show(0);
    else if (e.key === 'End') show(frames.length - 1);
    else return;
    e.preventDefault();
  });
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();
";

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = "file f memfd 64K
mmap 0 16K rw- private|anon|fixed
mmap 16K 16K rw- private|anon|fixed
touch 0 8K w
mprotect 4K 4K r--
mmap 1M 8K rw- shared|fixed f 0
munmap 1M 4K
mmap 0 0 rw- private|anon
";

    fn run() -> Vec<Frame> {
        let script = crate::parse(SCENARIO);
        let (frames, t) = frames(&script, SCENARIO, &Profile::reference_host());
        assert_eq!(t.end, crate::RunEnd::Finished);
        frames
    }

    #[test]
    fn frames_see_merges_splits_resident_pages_and_unmaps() {
        let f = run();
        assert_eq!(f.len(), 8);
        assert_eq!(f[0].entry, None);
        assert_eq!(f[1].vmas[0].change, Change::New);
        // The second mapping merges into the first.
        assert_eq!(f[2].vmas.len(), 1);
        assert_eq!(f[2].vmas[0].change, Change::Merged);
        // Two of eight pages touched: the first cells are resident, the last are not.
        let r = &f[3].vmas[0].resident;
        assert_eq!(r.len(), 8);
        assert_eq!(r.iter().filter(|&&x| x).count(), 2);
        assert!(r[0] && r[1] && !r[7]);
        // mprotect in the middle splits it in three.
        assert_eq!(f[4].vmas.len(), 3);
        assert!(f[4].vmas.iter().all(|v| v.change == Change::Split));
        assert_eq!(f[4].vmas[1].entry.perms, *b"r--p");
        assert_eq!(f[5].vmas[3].kind, Kind::Shared);
        assert_eq!(f[5].vmas[0].kind, Kind::Anon);
        // Half of the shared mapping goes.
        assert_eq!(
            f[6].unmapped,
            [(Script::absolute(0x100000), Script::absolute(0x101000))]
        );
        assert_eq!(f[6].vmas[3].change, Change::Split);
        // A failed call carries its why line.
        let last = f[7].entry.as_deref().unwrap();
        assert!(
            last.contains("why: EINVAL: length is zero (mm/mmap.c:do_mmap)"),
            "{last}"
        );
    }

    #[test]
    fn svg_and_html_are_well_formed_text() {
        let f = run();
        let s = svg(&f[4], "t<1>", 4, f.len());
        assert!(s.starts_with("<svg ") && s.ends_with("</svg>\n"));
        assert!(s.contains("t&lt;1&gt;"));
        assert_eq!(s.matches("class=\"vma\"").count(), 3);
        assert!(s.contains(">split</text>"));
        let h = html(&f, "t", SCENARIO);
        assert_eq!(h.matches("<div class=\"frame\"").count(), 8);
        assert_eq!(h.matches("<svg ").count(), 8);
        assert!(
            !h.contains("http://")
                || h.matches("http://").count() == h.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        assert!(!h.contains("https://"));
    }

    #[test]
    fn every_kind_and_class_has_its_own_colour() {
        let mut seen = Vec::new();
        for kind in Kind::ALL {
            for class in 0..4 {
                let c = colour(kind, class);
                assert!(!seen.contains(&c), "{kind:?} {class}");
                seen.push(c);
            }
        }
        assert_eq!(perm_class(b"r-xp"), 3);
        assert_eq!(perm_class(b"rw-s"), 2);
        assert_eq!(perm_class(b"r--p"), 1);
        assert_eq!(perm_class(b"---p"), 0);
    }

    #[test]
    fn sizes_and_wrapping() {
        assert_eq!(size_text(4096), "4K");
        assert_eq!(size_text(3 << 20), "3M");
        assert_eq!(size_text(6000), "5.8K");
        assert_eq!(size_text(100), "100");
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
    }
}
