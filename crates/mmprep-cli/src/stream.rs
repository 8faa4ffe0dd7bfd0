//! `mmprep run FILE` as it reads: the file in chunks of whole lines, each line parsed, run and
//! printed before the next ([`mmprep_scenario::engine::Stream`]), so that a run's memory follows
//! the address space and not the length of the file (issue 8).
//!
//! Two reads of the file: the first checks what must be known before anything runs (the whole
//! file is UTF-8; whether any line may be `events`, so that driver calls are logged), the second
//! runs it. A file that fails the first read, and standard input (which cannot be read twice),
//! go through [`Input::read`](crate::Input), which holds the whole text, and run from it the same way.
//! What is printed, on stdout and stderr, and the exit status are those of the whole-script run
//! (`tests/stream.rs` in `mmprep-scenario` and the CLI suites check it).

use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::path::Path;

use mmprep::Profile;
use mmprep_scenario::RunEnd;
use mmprep_scenario::engine::{RunOptions, Stream};

/// How much of the file is read at a time (a chunk grows to hold a longer line).
const CHUNK: usize = 64 << 10;

/// The transcript is written to stdout whenever this much of it is waiting.
const FLUSH_AT: usize = 32 << 10;

/// Calls `each` with the file's bytes in pieces of whole lines (each ends with `\n`, except the
/// file's last line when it has none), in order; stops early when `each` breaks.
///
/// One buffer, zeroed once: each read fills the room after the part line the last piece left,
/// which then moves to the front (a few dozen bytes). The buffer doubles only when one line does
/// not fit in it.
fn for_each_chunk(path: &Path, mut each: impl FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut buf: Vec<u8> = vec![0; CHUNK];
    // `buf[..filled]` holds bytes read and not yet given to `each`, all after its last `\n`
    // except those of the last read.
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(2 * buf.len(), 0);
        }
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if filled > 0 {
                let _ = each(&buf[..filled]);
            }
            return Ok(());
        }
        let read = filled..filled + n;
        filled += n;
        // Only the new bytes can hold the last `\n`: the ones before have none.
        if let Some(last) = buf[read.clone()].iter().rposition(|&b| b == b'\n') {
            let end = read.start + last + 1;
            if each(&buf[..end]).is_break() {
                return Ok(());
            }
            buf.copy_within(end..filled, 0);
            filled -= end;
        }
    }
}

/// What the first read learns: the file is UTF-8, and may have an `events` line.
struct Checked {
    events: bool,
}

/// Is `chunk` UTF-8? ASCII (every scenario of the format) is checked a word at a time; only a
/// chunk with other bytes is decoded.
fn is_utf8(chunk: &[u8]) -> bool {
    chunk.is_ascii() || std::str::from_utf8(chunk).is_ok()
}

/// Is `chunk` UTF-8, and does it contain the word `events`? ASCII is checked a word at a time
/// (other chunks are decoded), and the word searched for with `memchr`'s vectorised `memmem`. A
/// word search, not a parse: a `#events` comment also turns the log on, which only costs time.
fn scan(chunk: &[u8]) -> (bool, bool) {
    (is_utf8(chunk), memchr::memmem::find(chunk, b"events").is_some())
}

/// The first read: `None` when the file cannot be read or is not UTF-8 (the caller then reads it
/// whole, which gives the message).
fn check(path: &Path) -> Option<Checked> {
    let mut events = false;
    let mut utf8 = true;
    let read = for_each_chunk(path, |chunk| {
        let (chunk_utf8, chunk_events) = scan(chunk);
        if !chunk_utf8 {
            utf8 = false;
            return ControlFlow::Break(());
        }
        events = events || chunk_events;
        ControlFlow::Continue(())
    });
    (read.is_ok() && utf8).then_some(Checked { events })
}

/// The end of a streamed run, and whether a line other than blanks and comments was seen.
pub struct Streamed {
    pub end: RunEnd,
    pub seen_content: bool,
    /// Writing to stdout failed (a closed pipe ends the run early).
    pub write_error: Option<io::Error>,
}

/// Feeds lines to `run`, writing the transcript to `stdout` as it grows. On an end at a line, the
/// column of a runner-found parse error (column 0) is that line's first token's.
struct Feeder<'a, W: Write> {
    run: Stream,
    out: Vec<u8>,
    stdout: &'a mut W,
    write_error: Option<io::Error>,
    /// The 1-based column of the first token of the last line fed.
    last_first_column: usize,
}

impl<W: Write> Feeder<'_, W> {
    fn line(&mut self, raw: &[u8]) -> ControlFlow<()> {
        let flow = self.run.line_bytes(raw, &mut self.out);
        if flow.is_break() {
            // Spaces and tabs are ASCII: their count in bytes is their count in characters.
            self.last_first_column = raw.iter().take_while(|&&b| b == b' ' || b == b'\t').count() + 1;
        }
        if self.out.len() >= FLUSH_AT && self.flush().is_break() {
            return ControlFlow::Break(());
        }
        flow
    }

    /// Feeds a piece of the file made of whole lines ([`Stream::feed`]), writing the transcript
    /// out whenever [`FLUSH_AT`] bytes of it wait.
    fn chunk(&mut self, mut chunk: &[u8]) -> ControlFlow<()> {
        loop {
            let (used, flow) = self.run.feed(chunk, &mut self.out, FLUSH_AT);
            if let ControlFlow::Break(raw) = flow {
                self.last_first_column = raw.iter().take_while(|&&b| b == b' ' || b == b'\t').count() + 1;
                return ControlFlow::Break(());
            }
            if self.out.len() >= FLUSH_AT && self.flush().is_break() {
                return ControlFlow::Break(());
            }
            chunk = chunk.get(used..).unwrap_or_default();
            if chunk.is_empty() {
                return ControlFlow::Continue(());
            }
        }
    }

    fn flush(&mut self) -> ControlFlow<()> {
        if let Err(e) = self.stdout.write_all(&self.out) {
            self.write_error = Some(e);
            return ControlFlow::Break(());
        }
        self.out.clear();
        ControlFlow::Continue(())
    }

    fn finish(mut self) -> Streamed {
        if self.write_error.is_none() {
            let _ = self.flush();
        }
        if self.write_error.is_none()
            && let Err(e) = self.stdout.flush()
        {
            self.write_error = Some(e);
        }
        let seen_content = self.run.seen_content();
        let mut end = self.run.finish();
        if let RunEnd::ParseError(e) = &mut end
            && e.column == 0
        {
            e.column = self.last_first_column;
        }
        Streamed {
            end,
            seen_content,
            write_error: self.write_error,
        }
    }
}

/// Runs `text` (a whole scenario in memory) as it would stream from a file.
pub fn run_text(text: &str, profile: &Profile, options: &RunOptions, why: bool, stdout: &mut impl Write) -> Streamed {
    let mut feeder = Feeder {
        run: Stream::new(profile, options, text.contains("events"), why),
        out: Vec::with_capacity(FLUSH_AT + 4096),
        stdout,
        write_error: None,
        last_first_column: 1,
    };
    for raw in mmprep_scenario::parse::lines(text) {
        if feeder.line(raw.as_bytes()).is_break() {
            break;
        }
    }
    feeder.finish()
}

/// Runs the scenario file at `path` as it reads it. `None` when it cannot be read or is not
/// UTF-8: nothing ran, and the caller reads it whole for the message.
pub fn run_file(
    path: &Path,
    profile: &Profile,
    options: &RunOptions,
    why: bool,
    stdout: &mut impl Write,
) -> Option<Streamed> {
    let checked = check(path)?;
    let mut feeder = Feeder {
        run: Stream::new(profile, options, checked.events, why),
        out: Vec::with_capacity(FLUSH_AT + 4096),
        stdout,
        write_error: None,
        last_first_column: 1,
    };
    let mut changed = false;
    let read = for_each_chunk(path, |chunk| {
        if !is_utf8(chunk) {
            changed = true;
            return ControlFlow::Break(());
        }
        feeder.chunk(chunk)?;
        ControlFlow::Continue(())
    });
    let mut streamed = feeder.finish();
    if let Err(e) = read {
        streamed.end = RunEnd::RunnerFailed(format!("cannot read the scenario: {e}"));
    } else if changed {
        streamed.end = RunEnd::RunnerFailed("the scenario changed while it ran (no longer UTF-8)".into());
    }
    Some(streamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`scan`] says what `from_utf8` and a substring search say, with `events` and other `v`s
    /// at every place in a word, and bytes that are not ASCII.
    #[test]
    fn scan_agrees_with_a_plain_search() {
        let mut rng_state = 0x5eed_u64;
        let mut next = move || {
            rng_state = rng_state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng_state >> 33) as usize
        };
        let pieces: [&[u8]; 9] = [
            b"events",
            b"v",
            b"ev",
            b"vents",
            b"madvise 0 4K dofork\n",
            b" ",
            b"\xc3\xa9",
            b"\xff",
            b"eevents",
        ];
        for _ in 0..20_000 {
            let mut chunk = Vec::new();
            for _ in 0..next() % 8 {
                chunk.extend_from_slice(pieces[next() % pieces.len()]);
                for _ in 0..next() % 9 {
                    chunk.push(b'a' + (next() % 26) as u8);
                }
            }
            let want_utf8 = std::str::from_utf8(&chunk).is_ok();
            let want_events = chunk.windows(6).any(|w| w == b"events");
            assert_eq!(
                scan(&chunk),
                (want_utf8, want_events),
                "{:?}",
                String::from_utf8_lossy(&chunk)
            );
        }
    }
}
