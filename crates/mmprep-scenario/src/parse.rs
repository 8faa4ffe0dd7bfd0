//! The scenario parser: scenario text in, a [`Script`] out (`docs/scenario-format.md`, v1).
//!
//! A scenario is read line by line. Each line is a verb and its arguments, separated by spaces
//! or tabs; `#` starts a comment. The first line that does not parse ends the script: every
//! line before it is kept in [`Script::steps`], and the error (line, column of the token it is
//! about, and what is wrong) goes to [`Script::error`], so a runner can run what came before and
//! then report it. The message is safe to print whatever the input: control characters are
//! escaped and a long token is cut ([`tidy`]).
//!
//! The parser only checks the *form* of a line (token count, numbers, names, flag words, files
//! declared before use). Whether a call makes sense is the kernel's business: `mmap 1 0 rwx
//! private|shared 0` parses, and both runners report what the kernel says about it.
//!
//! Every verb is defined once, in [`VERBS`]: its name, its arguments, a one-line summary and
//! the function that parses it. The flag words are tables too ([`MMAP_FLAGS`], [`MADVICE`],
//! [`MREMAP_FLAGS`]), mapped to the kernel's numbers from [`mmprep::uapi`].
//!
//! The parser never panics, whatever the input: arithmetic is checked and nothing is indexed
//! without a bound check (a property test feeds it ten thousand mangled scenarios).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mmprep::uapi::{MapFlags, Prot, madv, mlock, mremap};

use crate::script::{
    Access, DEFAULT_WINDOW, FileArg, FileDecl, FileId, FileKind, MAX_WINDOW, MmapAddr, Op, ParseError, Script, Step,
};

/// The page size the `window` line is checked against.
const PAGE_SIZE: u64 = 4096;

/// Parses a whole scenario.
///
/// Never fails and never panics: a line that does not parse stops the parse, and the result
/// holds the steps before it plus the error ([`Script::error`]). Line endings may be `\n` or
/// `\r\n`.
pub fn parse(text: &str) -> Script {
    let mut parser = LineParser::new();
    let mut steps = Vec::new();
    let mut error = None;
    for (index, raw) in lines(text).enumerate() {
        let line = index.saturating_add(1);
        match parser.line(line, raw) {
            Ok(Some(op)) => steps.push(Step { line, op }),
            Ok(None) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Script {
        window: parser.window(),
        steps,
        error,
        files: parser.inner.files,
    }
}

/// The scenario parser one line at a time, for a runner that executes each line as it reads
/// it ([`crate::engine::Stream`]) instead of holding the whole script: the state between lines
/// (the window, the declared files) lives here, and each line gives its [`Op`] or its error.
/// [`parse`] is this, over a whole text.
///
/// A line is parsed without allocating unless it declares a file or is wrong: tokens are slices
/// of the line, numbers and flag words are read in place.
#[derive(Debug, Default)]
pub struct LineParser {
    inner: Parser,
}

impl LineParser {
    /// A parser before the first line.
    pub fn new() -> LineParser {
        LineParser::default()
    }

    /// Parses line number `line` (1-based; lines must come in order, blank ones included):
    /// `Ok(Some(op))` for a line that does something, `Ok(None)` for a blank line, a comment or
    /// `window`, or the error that ends the script. `raw` is the line without its `\n` (a
    /// `\r` before it removed, as [`parse`] does).
    pub fn line(&mut self, line: usize, raw: &str) -> Result<Option<Op>, ParseError> {
        if let Some(op) = self.inner.quick(line, raw.as_bytes()) {
            return Ok(Some(op));
        }
        self.line_full(line, raw)
    }

    /// [`LineParser::line`] for a line given as bytes (a runner that splits a file's bytes into
    /// lines itself, [`crate::engine::Stream::line_bytes`]): the common lines are parsed from the
    /// bytes alone; any other line must be UTF-8, and one that is not is a parse error (a runner
    /// that reads a file checks it is UTF-8 before running it, so it never sees that error).
    pub fn line_bytes(&mut self, line: usize, raw: &[u8]) -> Result<Option<Op>, ParseError> {
        if let Some(op) = self.inner.quick(line, raw) {
            return Ok(Some(op));
        }
        match core::str::from_utf8(raw) {
            Ok(text) => self.line_full(line, text),
            Err(e) => Err(ParseError {
                line,
                column: 1,
                message: format!("the line is not UTF-8 (a bad byte at byte {})", e.valid_up_to() + 1),
            }),
        }
    }

    /// The quick path on the line that starts `text`, a piece of a file made of lines: the op
    /// of line number `line` and the length of the line with its `\n` (or `\r\n`), when it is
    /// one of the lines the quick path reads (and then certainly right). `None` for every other
    /// line: cut it out and give it to [`LineParser::line_bytes`], which reads and explains
    /// them all. A runner that goes through a file's bytes this way finds no line end first.
    pub fn quick_line(&mut self, line: usize, text: &[u8]) -> Option<(Op, usize)> {
        self.inner.quick_text(line, text)
    }

    /// [`LineParser::line`] without the quick path: every line, with its message when it is wrong.
    fn line_full(&mut self, line: usize, raw: &str) -> Result<Option<Op>, ParseError> {
        let tokens = Tokens::of(raw);
        self.inner.line(line, tokens.as_slice()).map_err(|e| ParseError {
            line,
            column: column(raw, e.token),
            message: tidy(&e.message),
        })
    }

    /// The window: the `window` line's size, or [`DEFAULT_WINDOW`]. Final once the first line
    /// that is not blank or a comment has been parsed (only that line may set it).
    pub fn window(&self) -> u64 {
        self.inner.window.unwrap_or(DEFAULT_WINDOW)
    }

    /// The files declared so far, indexed by [`FileId`].
    pub fn files(&self) -> &[FileDecl] {
        &self.inner.files
    }

    /// Has a line other than blank lines and comments been parsed? (A scenario without one is
    /// empty.)
    pub fn seen_content(&self) -> bool {
        self.inner.seen_content
    }
}

/// The tokens of one line, without allocating for the lines of the format (at most
/// [`INLINE_TOKENS`] tokens; only a `file` line with many parameters spills to the heap).
enum Tokens<'t> {
    Inline([&'t str; INLINE_TOKENS], usize),
    Spilled(Vec<&'t str>),
}

/// Tokens a line keeps without allocating: `mmap ADDR LEN PROT FLAGS FILE OFFSET` has seven.
const INLINE_TOKENS: usize = 8;

/// The index of the first space, tab or `#` at or after `i` in `bytes` (`bytes.len()` if none):
/// eight bytes at a time, as a word of a `u64` each (tokens such as `private|anon|fixed` are long
/// enough for it to pay).
fn token_end(bytes: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` that equals `c`. A byte above a match may be flagged too
    // (a borrow), never one below it, so the lowest flag is the first match.
    let matches = |w: u64, c: u8| {
        let v = w ^ (LO * u64::from(c));
        v.wrapping_sub(LO) & !v & HI
    };
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let found = matches(w, b' ') | matches(w, b'\t') | matches(w, b'#');
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'#') {
        i += 1;
    }
    i
}

impl<'t> Tokens<'t> {
    /// Splits `raw` into its tokens (runs of characters other than space and tab), up to a `#`
    /// that starts a comment. A byte loop rather than `split(..).filter(..)`: this runs once per
    /// line, and parsing is part of what users time. Space, tab and `#` are ASCII, so every cut
    /// is a character boundary.
    fn of(raw: &'t str) -> Tokens<'t> {
        let mut tokens = Tokens::Inline([""; INLINE_TOKENS], 0);
        let bytes = raw.as_bytes();
        let mut i = 0;
        loop {
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                i += 1;
            }
            if i == bytes.len() || bytes[i] == b'#' {
                return tokens;
            }
            let start = i;
            i = token_end(bytes, i);
            tokens.push(&raw[start..i]);
        }
    }

    fn push(&mut self, token: &'t str) {
        match self {
            Tokens::Inline(array, n) if *n < INLINE_TOKENS => {
                array[*n] = token;
                *n += 1;
            }
            Tokens::Inline(array, _) => {
                let mut spilled = array.to_vec();
                spilled.push(token);
                *self = Tokens::Spilled(spilled);
            }
            Tokens::Spilled(v) => v.push(token),
        }
    }

    fn as_slice(&self) -> &[&'t str] {
        match self {
            Tokens::Inline(array, n) => &array[..*n],
            Tokens::Spilled(v) => v,
        }
    }
}

/// One line kind of the scenario format: its first token, its arguments and what it does.
///
/// [`VERBS`] lists them all; the parser dispatches on it, and help texts print it.
pub struct Verb {
    /// The first token of the line (`mmap`).
    pub name: &'static str,
    /// The arguments, as the contract writes them (`ADDR LEN PROT FLAGS [FILE OFFSET]`).
    pub args: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// Parses the arguments (the tokens after the verb). `Ok(None)` for lines that only set
    /// something up (`window`).
    parse: ArgsParser,
}

/// What a line parses into: a step, nothing (`window`), or a parse error.
type LineResult = Result<Option<Op>, LineError>;

/// Why a line does not parse: the message, and the token it is about when there is one.
struct LineError {
    message: String,
    /// Where the token starts in memory ([`start_of`]); the parser turns it into a column.
    token: Option<usize>,
}

impl From<String> for LineError {
    fn from(message: String) -> LineError {
        LineError { message, token: None }
    }
}

impl From<&str> for LineError {
    fn from(message: &str) -> LineError {
        LineError::from(message.to_string())
    }
}

/// The address of a token's first byte. Tokens are slices of the line, so the difference of two
/// such addresses is a byte offset in the line; nothing is ever read through it.
fn start_of(token: &str) -> usize {
    token.as_ptr() as usize
}

/// Parses the arguments of one verb, given the verb's own table entry (for its usage text).
type ArgsParser = fn(&mut Parser, &'static Verb, &[&str]) -> LineResult;

impl Verb {
    /// The whole line as the contract writes it: `mmap ADDR LEN PROT FLAGS [FILE OFFSET]`.
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }

    /// The error for a line with the wrong number of arguments.
    fn arity_error(&self, got: usize) -> String {
        let plural = if got == 1 { "" } else { "s" };
        format!("expected `{}`, got {got} argument{plural}", self.usage())
    }
}

impl core::fmt::Debug for Verb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Verb")
            .field("name", &self.name)
            .field("args", &self.args)
            .finish()
    }
}

/// Every line kind of scenario format v1, setup lines first, in the contract's order.
pub const VERBS: &[Verb] = &[
    Verb {
        name: "window",
        args: "SIZE",
        summary: "size of the window [W, W+SIZE) (first line only; default 1G)",
        parse: Parser::window,
    },
    Verb {
        name: "file",
        args: concat!(
            "NAME memfd SIZE | NAME tmpfile SIZE [ro] | NAME zero | ",
            "NAME driver DRIVER [KEY=VALUE ...] | NAME c PATH.c [fops=SYMBOL] [cflags=A,B] [ro] [KEY=VALUE ...]"
        ),
        summary: "open a file the scenario can map",
        parse: Parser::file,
    },
    Verb {
        name: "close",
        args: "NAME",
        summary: "close a file's descriptor (its mappings stay)",
        parse: Parser::close,
    },
    Verb {
        name: "mmap",
        args: "ADDR LEN PROT FLAGS [FILE OFFSET]",
        summary: "map memory (ADDR may be `any`)",
        parse: Parser::mmap,
    },
    Verb {
        name: "munmap",
        args: "ADDR LEN",
        summary: "unmap a range",
        parse: Parser::munmap,
    },
    Verb {
        name: "mprotect",
        args: "ADDR LEN PROT[|growsdown|growsup]",
        summary: "change the protection of a range",
        parse: Parser::mprotect,
    },
    Verb {
        name: "madvise",
        args: "ADDR LEN ADVICE",
        summary: "give advice about a range",
        parse: Parser::madvise,
    },
    Verb {
        name: "mlock",
        args: "ADDR LEN",
        summary: "lock a range",
        parse: Parser::mlock,
    },
    Verb {
        name: "mlock2",
        args: "ADDR LEN onfault",
        summary: "lock a range as it faults in (MLOCK_ONFAULT)",
        parse: Parser::mlock2,
    },
    Verb {
        name: "munlock",
        args: "ADDR LEN",
        summary: "unlock a range",
        parse: Parser::munlock,
    },
    Verb {
        name: "mremap",
        args: "ADDR OLDLEN NEWLEN FLAGS [NEWADDR]",
        summary: "resize or move a mapping (NEWADDR exactly with `fixed`)",
        parse: Parser::mremap,
    },
    Verb {
        name: "mseal",
        args: "ADDR LEN",
        summary: "seal a range",
        parse: Parser::mseal,
    },
    Verb {
        name: "touch",
        args: "ADDR LEN r|w",
        summary: "read, or write back, one byte per page; stops at the first fault",
        parse: Parser::touch,
    },
    Verb {
        name: "write",
        args: "ADDR LEN BYTE",
        summary: "store BYTE in every byte of the range; stops at the first fault",
        parse: Parser::write,
    },
    Verb {
        name: "read",
        args: "ADDR LEN",
        summary: "read every byte of the range; stops at the first fault",
        parse: Parser::read,
    },
    Verb {
        name: "fork",
        args: "",
        summary: "fork; the child runs the rest of the script",
        parse: Parser::fork,
    },
    Verb {
        name: "maps",
        args: "",
        summary: "print the VMAs that intersect the window",
        parse: Parser::maps,
    },
    Verb {
        name: "smaps",
        args: "",
        summary: "print the VMAs with their VmFlags",
        parse: Parser::smaps,
    },
    Verb {
        name: "events",
        args: "",
        summary: "print the driver hooks called since the last `events` (engine only)",
        parse: Parser::events,
    },
];

/// The `mmap` flag words and their `MAP_*` values.
pub const MMAP_FLAGS: &[(&str, u32)] = &[
    ("private", MapFlags::PRIVATE.0),
    ("shared", MapFlags::SHARED.0),
    ("shared_validate", MapFlags::SHARED_VALIDATE.0),
    ("anon", MapFlags::ANONYMOUS.0),
    ("fixed", MapFlags::FIXED.0),
    ("fixed_noreplace", MapFlags::FIXED_NOREPLACE.0),
    ("noreserve", MapFlags::NORESERVE.0),
    ("populate", MapFlags::POPULATE.0),
    ("growsdown", MapFlags::GROWSDOWN.0),
    ("locked", MapFlags::LOCKED.0),
    ("stack", MapFlags::STACK.0),
    ("sync", MapFlags::SYNC.0),
];

/// The `mprotect` words that may follow PROT, and their `PROT_*` values.
pub const MPROTECT_FLAGS: &[(&str, u32)] = &[("growsdown", Prot::GROWSDOWN.0), ("growsup", Prot::GROWSUP.0)];

/// The `madvise` advice words (the name after `MADV_`, lower case) and their numbers.
pub const MADVICE: &[(&str, u32)] = &[
    ("normal", madv::NORMAL),
    ("random", madv::RANDOM),
    ("sequential", madv::SEQUENTIAL),
    ("willneed", madv::WILLNEED),
    ("dontneed", madv::DONTNEED),
    ("free", madv::FREE),
    ("remove", madv::REMOVE),
    ("dontfork", madv::DONTFORK),
    ("dofork", madv::DOFORK),
    ("mergeable", madv::MERGEABLE),
    ("unmergeable", madv::UNMERGEABLE),
    ("hugepage", madv::HUGEPAGE),
    ("nohugepage", madv::NOHUGEPAGE),
    ("dontdump", madv::DONTDUMP),
    ("dodump", madv::DODUMP),
    ("wipeonfork", madv::WIPEONFORK),
    ("keeponfork", madv::KEEPONFORK),
    ("cold", madv::COLD),
    ("pageout", madv::PAGEOUT),
    ("populate_read", madv::POPULATE_READ),
    ("populate_write", madv::POPULATE_WRITE),
    ("collapse", madv::COLLAPSE),
    ("guard_install", madv::GUARD_INSTALL),
    ("guard_remove", madv::GUARD_REMOVE),
];

/// The `mremap` flag words and their `MREMAP_*` values.
pub const MREMAP_FLAGS: &[(&str, u32)] = &[
    ("maymove", mremap::MAYMOVE),
    ("fixed", mremap::FIXED),
    ("dontunmap", mremap::DONTUNMAP),
];

/// Parses a number as the contract writes it: decimal or `0x` hex (digits in either case),
/// optionally followed by an upper-case `K`, `M` or `G` (times 1024, 1024², 1024³).
///
/// The error says what is wrong with the token; it does not name the argument.
pub fn parse_number(token: &str) -> Result<u64, String> {
    match plain_decimal(token) {
        Some(value) => Ok(value),
        None => parse_number_full(token),
    }
}

/// [`parse_number`] for every token, with the message for each way it can be wrong.
fn parse_number_full(token: &str) -> Result<u64, String> {
    if token == "any" {
        return Err("`any` is accepted only as the ADDR of `mmap`".into());
    }
    if token.starts_with(['+', '-']) {
        return Err(format!("`{token}`: numbers have no sign"));
    }
    let (body, multiplier) = if let Some(body) = token.strip_suffix('K') {
        (body, 1u64 << 10)
    } else if let Some(body) = token.strip_suffix('M') {
        (body, 1u64 << 20)
    } else if let Some(body) = token.strip_suffix('G') {
        (body, 1u64 << 30)
    } else {
        (token, 1)
    };
    let not_a_number = || format!("`{token}` is not a number (decimal or 0x hex, with an optional K, M or G suffix)");
    let digits = match parse_digits(body) {
        Ok(value) => value,
        Err(DigitsError::Overflow) => return Err(format!("`{token}` does not fit in 64 bits")),
        Err(DigitsError::Invalid) => {
            // `4k`: a number with a lower-case suffix gets a more precise message.
            let lower_suffix = token
                .strip_suffix(['k', 'm', 'g'])
                .is_some_and(|b| parse_digits(b).is_ok());
            if lower_suffix {
                return Err(format!("`{token}`: the suffix is upper case (K, M or G)"));
            }
            return Err(not_a_number());
        }
    };
    digits
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{token}` does not fit in 64 bits"))
}

/// The common case of [`parse_number`], taken first: decimal digits with an optional `K`, `M` or
/// `G`, whose value fits. `None` for anything else (hex, an error...), which the full parser
/// then handles and explains.
#[inline]
fn plain_decimal(token: &str) -> Option<u64> {
    let bytes = token.as_bytes();
    let (digits, shift) = match bytes.last()? {
        b'K' => (&bytes[..bytes.len() - 1], 10),
        b'M' => (&bytes[..bytes.len() - 1], 20),
        b'G' => (&bytes[..bytes.len() - 1], 30),
        _ => (bytes, 0),
    };
    // 19 decimal digits always fit in 64 bits.
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(d - b'0');
    }
    value.checked_mul(1 << shift)
}

/// The words of a flag token (`private|anon|fixed`): `token.split('|')` as a byte loop, which
/// costs less on tokens this short. `|` is ASCII, so every cut is a character boundary.
fn words(token: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(token);
    core::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b'|') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

enum DigitsError {
    Invalid,
    Overflow,
}

/// `123` or `0x7b`, nothing else (no suffix, no sign, at least one digit).
fn parse_digits(body: &str) -> Result<u64, DigitsError> {
    let (digits, radix) = match body.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None => (body, 10),
    };
    if digits.is_empty() {
        return Err(DigitsError::Invalid);
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or(DigitsError::Invalid)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(DigitsError::Overflow)?;
    }
    Ok(value)
}

/// Parses `---`, `r--`, `rw-`, `-w-`, `rwx` ... into `PROT_*` bits.
pub fn parse_prot(token: &str) -> Result<u32, String> {
    let bad = || format!("`{token}` is not a protection: three characters `r` or `-`, `w` or `-`, `x` or `-`");
    let &[r, w, x] = token.as_bytes() else {
        return Err(bad());
    };
    let bit = |c: u8, letter: u8, value: Prot| match c {
        b'-' => Ok(0),
        c if c == letter => Ok(value.0),
        _ => Err(bad()),
    };
    Ok(bit(r, b'r', Prot::READ)? | bit(w, b'w', Prot::WRITE)? | bit(x, b'x', Prot::EXEC)?)
}

/// Parses a flag set: words from `table` joined by `|`, or `0` for the empty set.
fn parse_flags(token: &str, table: &[(&str, u32)]) -> Result<u32, String> {
    if token == "0" {
        return Ok(0);
    }
    let mut flags = 0;
    for word in words(token) {
        flags |= lookup(word, table, token)?;
    }
    Ok(flags)
}

/// One word of `table`; `whole` is the token it came from, for the message.
fn lookup(word: &str, table: &[(&str, u32)], whole: &str) -> Result<u32, String> {
    match table.iter().find(|(name, _)| same_word(name, word)) {
        Some(&(_, value)) => Ok(value),
        None => Err(unknown_word(word, table, whole)),
    }
}

/// Why `word` is not in `table` (kept out of [`lookup`], which runs for every flag word).
#[cold]
#[inline(never)]
fn unknown_word(word: &str, table: &[(&str, u32)], whole: &str) -> String {
    if word.is_empty() {
        return format!("`{whole}` has an empty word (join words with a single `|`)");
    }
    let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
    format!("unknown word `{word}` (one of: {})", names.join(" "))
}

/// `name == word`, comparing the length and the first byte before the bytes: in a table of
/// words those two tell almost every wrong entry apart without a call to `memcmp`.
#[inline]
fn same_word(name: &str, word: &str) -> bool {
    name.len() == word.len() && name.as_bytes().first() == word.as_bytes().first() && name == word
}

/// The table entry of the verb `name`.
fn find_verb(name: &str) -> Option<&'static Verb> {
    VERBS.iter().find(|v| same_word(v.name, name))
}

/// `text.lines()` (lines end with `\n` or `\r\n`; a last line may lack its end) as a plain
/// byte loop: `str::lines` costs about twice as much on the short lines of a scenario.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.bytes().position(|b| b == b'\n') {
            // `\n` is ASCII: both cuts are character boundaries.
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                Some(line.strip_suffix('\r').unwrap_or(line))
            }
            // A last line without `\n` keeps a `\r` it ends with, as `str::lines` does.
            None => Some(core::mem::take(&mut rest)),
        }
    })
}

/// Is `name` a file NAME: letters, digits, `_` and `-`?
fn is_word(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parser state between lines.
#[derive(Debug, Default)]
struct Parser {
    /// The `window` line's size, if there was one.
    window: Option<u64>,
    /// Has a line that is neither blank nor a comment been seen before the current one?
    seen_content: bool,
    /// Is the current line the first one that is neither blank nor a comment?
    first_line: bool,
    /// The 1-based number of the current line.
    line: usize,
    /// The file declarations so far (what [`Script::files`] holds at the end).
    files: Vec<FileDecl>,
    /// Which files have been closed, by [`FileId`], with the line that closed them.
    closed: Vec<Option<usize>>,
    /// The last `mmap` FLAGS token that parsed, and its value.
    last_mmap_flags: Option<(Vec<u8>, u32)>,
}

/// The quick path: the lines a long scenario is made of (`mmap ADDR LEN PROT FLAGS`, `munmap`,
/// `mprotect ADDR LEN PROT`, `madvise`, `mlock`, `munlock`, `mseal`, `read`, `touch`), read
/// straight from the line's bytes with no UTF-8 check, no token array and no per-verb table
/// walk. It accepts only lines that are certainly right and gives up (`None`) on anything else,
/// a comment, an unusual token or a wrong one, which the full parser then reads and explains:
/// a line that it accepts gives the same [`Op`] as the full parser (a test compares the two on
/// mangled lines), and every message comes from the full parser alone.
impl Parser {
    /// The quick path on one line (`raw` without its `\n`).
    fn quick(&mut self, line: usize, raw: &[u8]) -> Option<Op> {
        match self.quick_text(line, raw) {
            Some((op, used)) if used == raw.len() => Some(op),
            _ => None,
        }
    }

    /// The quick path on the line that starts `text` (which may go on with more lines): its op,
    /// and the length of the line with its `\n` (or `\r\n`; all of `text` when it has neither).
    fn quick_text(&mut self, line: usize, text: &[u8]) -> Option<(Op, usize)> {
        let mut at = Quick { raw: text, i: 0 };
        // The verb by its first bytes: the lines of a long scenario start with `m`.
        let op = if at.verb(b"mprotect") {
            let (addr, len) = at.addr_len()?;
            at.gap()?;
            let prot = at.prot()?;
            Op::Mprotect { addr, len, prot }
        } else if at.verb(b"madvise") {
            let (addr, len) = at.addr_len()?;
            at.gap()?;
            let advice = at.word(QUICK_ADVICE).or_else(|| quick_advice(at.last_token()))?;
            Op::Madvise { addr, len, advice }
        } else if at.verb(b"munmap") {
            let (addr, len) = at.addr_len()?;
            Op::Munmap { addr, len }
        } else if at.verb(b"mmap") {
            at.gap()?;
            let addr = if at.raw.get(at.i..at.i + 3) == Some(b"any") {
                at.i += 3;
                at.boundary()?;
                MmapAddr::Any
            } else {
                MmapAddr::At(at.number()?)
            };
            at.gap()?;
            let len = at.number()?;
            at.gap()?;
            let prot = at.prot()?;
            at.gap()?;
            // The last FLAGS token again, compared where it stands; else the token is cut out.
            let flags = match &self.last_mmap_flags {
                Some((last, value))
                    if at.raw.get(at.i..).is_some_and(|r| r.starts_with(last)) && at.ends_token(at.i + last.len()) =>
                {
                    at.i += last.len();
                    *value
                }
                _ => self.quick_mmap_flags(at.last_token())?,
            };
            Op::Mmap {
                addr,
                len,
                prot,
                flags,
                file: None,
            }
        } else if at.verb(b"mlock") {
            let (addr, len) = at.addr_len()?;
            Op::Mlock { addr, len }
        } else if at.verb(b"munlock") {
            let (addr, len) = at.addr_len()?;
            Op::Munlock { addr, len }
        } else if at.verb(b"mseal") {
            let (addr, len) = at.addr_len()?;
            Op::Mseal { addr, len }
        } else if at.verb(b"read") {
            let (addr, len) = at.addr_len()?;
            Op::Read { addr, len }
        } else if at.verb(b"touch") {
            let (addr, len) = at.addr_len()?;
            at.gap()?;
            let access = match at.last_token() {
                b"r" => Access::Read,
                b"w" => Access::Write,
                _ => return None,
            };
            Op::Touch { addr, len, access }
        } else {
            return None;
        };
        let used = at.line_end()?;
        // What the full parser records for every line with a verb.
        self.line = line;
        self.first_line = !self.seen_content;
        self.seen_content = true;
        Some((op, used))
    }

    /// The value of an `mmap` FLAGS token: the last one's when it is the same token, else its
    /// words looked up (and remembered). `None` for `0`, an unknown or empty word: the full parser
    /// reads those.
    fn quick_mmap_flags(&mut self, token: &[u8]) -> Option<u32> {
        if let Some((last, value)) = &self.last_mmap_flags
            && last.as_slice() == token
        {
            return Some(*value);
        }
        let mut flags = 0;
        for word in token.split(|&b| b == b'|') {
            let &(_, value) = MMAP_FLAGS.iter().find(|(name, _)| same_bytes(name.as_bytes(), word))?;
            flags |= value;
        }
        self.last_mmap_flags = Some((token.to_vec(), flags));
        Some(flags)
    }
}

/// The quick path's place in a line: each argument is read where it stands, its digits as they
/// are scanned (no token is cut out first), and the separators between them checked. `raw` may
/// go on past the line: the line ends at the end of `raw`, at a `\n` or at a `\r\n`.
struct Quick<'t> {
    raw: &'t [u8],
    i: usize,
}

/// Is `b` a separator (space or tab)?
#[inline]
fn is_gap(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl<'t> Quick<'t> {
    /// Does the line start with `verb` followed by a separator (or end there)? Moves past it.
    #[inline]
    fn verb(&mut self, verb: &[u8]) -> bool {
        let found = self.raw.starts_with(verb) && self.ends_token(verb.len());
        if found {
            self.i = verb.len();
        }
        found
    }

    /// Does a token end before `i`: a separator or the end of the line follows?
    #[inline(always)]
    fn ends_token(&self, i: usize) -> bool {
        match self.raw.get(i) {
            None | Some(b' ' | b'\t' | b'\n') => true,
            Some(b'\r') => self.raw.get(i + 1) == Some(&b'\n'),
            Some(_) => false,
        }
    }

    /// One or more separators, skipped.
    #[inline(always)]
    fn gap(&mut self) -> Option<()> {
        let start = self.i;
        while self.raw.get(self.i).is_some_and(|&b| is_gap(b)) {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    /// The end of a token: the line ends or a separator follows.
    #[inline]
    fn boundary(&self) -> Option<()> {
        self.ends_token(self.i).then_some(())
    }

    /// `ADDR LEN`, each after a separator.
    #[inline(always)]
    fn addr_len(&mut self) -> Option<(u64, u64)> {
        self.gap()?;
        let addr = self.number()?;
        self.gap()?;
        let len = self.number()?;
        Some((addr, len))
    }

    /// A number as [`parse_number`] reads it: decimal or `0x` hex, with an optional `K`, `M` or
    /// `G`, ending the token. `None` for anything else and for a value that does not fit (the
    /// full parser then says why). The digits are added up as they are scanned; a value with
    /// too many digits to be sure it fits is left to the full parser.
    #[inline(always)]
    fn number(&mut self) -> Option<u64> {
        let raw = self.raw;
        let start = self.i;
        let mut value: u64 = 0;
        let mut digits = 0;
        for &d in raw.get(start..).unwrap_or_default() {
            let digit = d.wrapping_sub(b'0');
            if digit >= 10 {
                break;
            }
            value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
            digits += 1;
        }
        let mut i = start + digits;
        if i == start || i - start > 19 {
            return None;
        }
        if i - start == 1 && value == 0 && raw.get(i) == Some(&b'x') {
            i += 1;
            let hex = i;
            while let Some(&d) = raw.get(i) {
                let digit = match d {
                    b'0'..=b'9' => d - b'0',
                    b'a'..=b'f' => d - b'a' + 10,
                    b'A'..=b'F' => d - b'A' + 10,
                    _ => break,
                };
                value = (value << 4) | u64::from(digit);
                i += 1;
            }
            // 16 hex digits always fit in 64 bits.
            if i == hex || i - hex > 16 {
                return None;
            }
        }
        let shift = match raw.get(i) {
            Some(b'K') => 10,
            Some(b'M') => 20,
            Some(b'G') => 30,
            _ => 0,
        };
        if shift != 0 {
            i += 1;
            if value.leading_zeros() < shift {
                return None;
            }
        }
        self.i = i;
        self.boundary()?;
        Some(value << shift)
    }

    /// A protection as [`parse_prot`] reads it (`rw-`), ending the token.
    #[inline]
    fn prot(&mut self) -> Option<u32> {
        let &[r, w, x] = self.raw.get(self.i..self.i + 3)? else {
            return None;
        };
        self.i += 3;
        self.boundary()?;
        let bit = |c: u8, letter: u8, value: Prot| match c {
            b'-' => Some(0),
            c if c == letter => Some(value.0),
            _ => None,
        };
        Some(bit(r, b'r', Prot::READ)? | bit(w, b'w', Prot::WRITE)? | bit(x, b'x', Prot::EXEC)?)
    }

    /// The value of the word of `table` that stands here as a whole token, if one does.
    #[inline]
    fn word(&mut self, table: &[(&[u8], u32)]) -> Option<u32> {
        let rest = self.raw.get(self.i..)?;
        let &(name, value) = table
            .iter()
            .find(|(name, _)| rest.starts_with(name) && self.ends_token(self.i + name.len()))?;
        self.i += name.len();
        Some(value)
    }

    /// The token at the current place, taken as the line's last: a word the caller looks up in
    /// a table. It runs to a separator, a `\n` or a `\r`; whatever follows is for
    /// [`Quick::line_end`] to accept (separators, then the end of the line) or not.
    #[inline]
    fn last_token(&mut self) -> &'t [u8] {
        let start = self.i;
        while self
            .raw
            .get(self.i)
            .is_some_and(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.i += 1;
        }
        self.raw.get(start..self.i).unwrap_or_default()
    }

    /// Separators, then the end of the line: how long the line is with its `\n` or `\r\n`.
    /// `None` when anything else is left (a comment, another token, a lone `\r`).
    #[inline]
    fn line_end(&mut self) -> Option<usize> {
        while self.raw.get(self.i).is_some_and(|&b| is_gap(b)) {
            self.i += 1;
        }
        match self.raw.get(self.i) {
            None => Some(self.i),
            Some(b'\n') => Some(self.i + 1),
            Some(b'\r') if self.raw.get(self.i + 1) == Some(&b'\n') => Some(self.i + 2),
            Some(_) => None,
        }
    }
}

/// The `madvise` words a long scenario repeats (the perf stream's two), compared where they stand.
const QUICK_ADVICE: &[(&[u8], u32)] = &[(b"dontfork", madv::DONTFORK), (b"dofork", madv::DOFORK)];

/// The advice of a `madvise` word: the two a long scenario repeats (`dontfork`, `dofork`, as
/// the perf stream does) and the common ones compared at once, the rest from [`MADVICE`].
#[inline]
fn quick_advice(word: &[u8]) -> Option<u32> {
    match word {
        b"dontfork" => Some(madv::DONTFORK),
        b"dofork" => Some(madv::DOFORK),
        b"dontneed" => Some(madv::DONTNEED),
        b"willneed" => Some(madv::WILLNEED),
        _ => MADVICE
            .iter()
            .find(|(name, _)| same_bytes(name.as_bytes(), word))
            .map(|&(_, advice)| advice),
    }
}

/// `name == word` for the quick path's table look-ups: the length and the first byte first, as
/// [`same_word`] does.
#[inline]
fn same_bytes(name: &[u8], word: &[u8]) -> bool {
    name.len() == word.len() && name.first() == word.first() && name == word
}

impl Parser {
    /// Parses the tokens of one line: the step it makes, if any.
    fn line(&mut self, line: usize, tokens: &[&str]) -> LineResult {
        let Some((&verb, args)) = tokens.split_first() else {
            return Ok(None);
        };
        self.line = line;
        self.first_line = !self.seen_content;
        self.seen_content = true;
        let Some(spec) = find_verb(verb) else {
            return Err(at(verb, format!("unknown verb `{verb}`")));
        };
        (spec.parse)(self, spec, args)
    }

    /// The file called `name`, and whether it is still open.
    fn find_file(&self, name: &str) -> Option<(FileId, bool)> {
        let id = self.files.iter().position(|f| f.name == name)?;
        let open = self.closed.get(id).is_some_and(|c| c.is_none());
        Some((id, open))
    }

    fn window(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        if !self.first_line {
            return Err("`window` is allowed only as the first line that is not blank or a comment".into());
        }
        let &[size] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        let size = number("SIZE", size)?;
        if size == 0 || size % PAGE_SIZE != 0 || size > MAX_WINDOW {
            return Err(format!("SIZE: the window is a non-zero multiple of 4K, at most 16T (got {size:#x})").into());
        }
        self.window = Some(size);
        Ok(None)
    }

    fn file(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let &[name, kind, ref rest @ ..] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        if !is_word(name) {
            return Err(at(
                name,
                format!("NAME: `{name}` is not a name (letters, digits, `_` and `-`)"),
            ));
        }
        if let Some(prev) = self.files.iter().find(|f| f.name == name) {
            return Err(at(
                name,
                format!("NAME: `{name}` is already defined (line {})", prev.line),
            ));
        }
        let kind = match (kind, rest) {
            ("memfd", &[size]) => FileKind::Memfd {
                size: number("SIZE", size)?,
            },
            ("memfd", _) => return Err(format!("expected `file {name} memfd SIZE`").into()),
            ("tmpfile", &[size]) => FileKind::Tmpfile {
                size: number("SIZE", size)?,
                read_only: false,
            },
            ("tmpfile", &[size, "ro"]) => FileKind::Tmpfile {
                size: number("SIZE", size)?,
                read_only: true,
            },
            ("tmpfile", _) => return Err(format!("expected `file {name} tmpfile SIZE [ro]`").into()),
            ("zero", &[]) => FileKind::Zero,
            ("zero", _) => return Err(format!("expected `file {name} zero`").into()),
            ("driver", &[driver, ref params @ ..]) => {
                if !is_word(driver) {
                    return Err(at(
                        driver,
                        format!("DRIVER: `{driver}` is not a name (letters, digits, `_` and `-`)"),
                    ));
                }
                let mut pairs = Vec::new();
                for param in params {
                    match param.split_once('=') {
                        Some((key, value)) if is_word(key) => {
                            pairs.push((key.to_string(), value.to_string()));
                        }
                        _ => {
                            return Err(at(
                                param,
                                format!("`{param}` is not KEY=VALUE (KEY is letters, digits, `_` and `-`)"),
                            ));
                        }
                    }
                }
                FileKind::Driver {
                    driver: driver.to_string(),
                    params: pairs,
                }
            }
            ("driver", _) => {
                return Err(format!("expected `file {name} driver DRIVER [KEY=VALUE ...]`").into());
            }
            ("c", &[path, ref rest @ ..]) if path.ends_with(".c") => {
                let mut fops = None;
                let mut cflags = Vec::new();
                let mut read_only = false;
                let mut params = Vec::new();
                for param in rest {
                    match param.split_once('=') {
                        _ if *param == "ro" => read_only = true,
                        Some(("fops", symbol)) if is_word(symbol) => fops = Some(symbol.to_string()),
                        Some(("fops", _)) => {
                            return Err(at(param, format!("`{param}`: SYMBOL is a C name")));
                        }
                        Some(("cflags", flags)) => {
                            cflags.extend(flags.split(',').filter(|f| !f.is_empty()).map(str::to_string));
                        }
                        Some((key, value)) if is_word(key) => {
                            params.push((key.to_string(), value.to_string()));
                        }
                        _ => {
                            return Err(at(
                                param,
                                format!("`{param}` is not KEY=VALUE (KEY is letters, digits, `_` and `-`)"),
                            ));
                        }
                    }
                }
                FileKind::C {
                    path: path.to_string(),
                    fops,
                    cflags,
                    read_only,
                    params,
                }
            }
            ("c", _) => {
                return Err(
                    format!("expected `file {name} c PATH.c [fops=SYMBOL] [cflags=A,B] [ro] [KEY=VALUE ...]`").into(),
                );
            }
            (other, _) => {
                return Err(at(
                    other,
                    format!("unknown file kind `{other}` (one of: memfd tmpfile zero driver c)"),
                ));
            }
        };
        let id = self.files.len();
        self.files.push(FileDecl {
            name: name.to_string(),
            kind,
            line: self.line,
        });
        self.closed.push(None);
        Ok(Some(Op::File { id }))
    }

    fn close(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let &[name] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        let Some((id, _)) = self.find_file(name) else {
            return Err(at(name, format!("NAME: no file named `{name}`")));
        };
        if let Some(Some(line)) = self.closed.get(id) {
            return Err(at(name, format!("NAME: `{name}` is already closed (line {line})")));
        }
        if let Some(slot) = self.closed.get_mut(id) {
            *slot = Some(self.line);
        }
        Ok(Some(Op::Close { id }))
    }

    fn mmap(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let ([addr, len, prot, flags], file) = match *args {
            [a, l, p, f] => ([a, l, p, f], None),
            [a, l, p, f, name, offset] => ([a, l, p, f], Some((name, offset))),
            _ => return Err(spec.arity_error(args.len()).into()),
        };
        let addr = match addr {
            "any" => MmapAddr::Any,
            a => MmapAddr::At(number("ADDR", a)?),
        };
        let len = number("LEN", len)?;
        let prot = arg("PROT", prot, parse_prot)?;
        let flags = match &self.last_mmap_flags {
            // A stream of mmap lines repeats a few FLAGS tokens: one comparison instead of a
            // table lookup per word.
            Some((token, value)) if token.as_slice() == flags.as_bytes() => *value,
            _ => {
                let value = arg("FLAGS", flags, |t| parse_flags(t, MMAP_FLAGS))?;
                self.last_mmap_flags = Some((flags.as_bytes().to_vec(), value));
                value
            }
        };
        let file = match file {
            None => None,
            Some((name, offset)) => {
                let Some((file, open)) = self.find_file(name) else {
                    return Err(at(
                        name,
                        format!("FILE: no file named `{name}` (declare it on a `file` line first)"),
                    ));
                };
                let offset = number("OFFSET", offset)?;
                Some(FileArg { file, offset, open })
            }
        };
        Ok(Some(Op::Mmap {
            addr,
            len,
            prot,
            flags,
            file,
        }))
    }

    fn munmap(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let (addr, len) = addr_len(spec, args)?;
        Ok(Some(Op::Munmap { addr, len }))
    }

    fn mprotect(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let &[addr, len, prot] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        let addr = number("ADDR", addr)?;
        let len = number("LEN", len)?;
        let prot = arg("PROT", prot, |token| {
            let mut words = words(token);
            let mut bits = parse_prot(words.next().unwrap_or_default())?;
            for word in words {
                let bit = lookup(word, MPROTECT_FLAGS, token)?;
                if bits & bit != 0 {
                    return Err(format!("`{token}` names `{word}` twice"));
                }
                bits |= bit;
            }
            Ok(bits)
        })?;
        Ok(Some(Op::Mprotect { addr, len, prot }))
    }

    fn madvise(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let &[addr, len, advice] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        let addr = number("ADDR", addr)?;
        let len = number("LEN", len)?;
        let advice = arg("ADVICE", advice, |t| lookup(t, MADVICE, t))?;
        Ok(Some(Op::Madvise { addr, len, advice }))
    }

    fn mlock(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let (addr, len) = addr_len(spec, args)?;
        Ok(Some(Op::Mlock { addr, len }))
    }

    fn mlock2(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let &[addr, len, flags] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        let addr = number("ADDR", addr)?;
        let len = number("LEN", len)?;
        if flags != "onfault" {
            return Err(at(flags, format!("unknown mlock2 flag `{flags}` (only `onfault`)")));
        }
        Ok(Some(Op::Mlock2 {
            addr,
            len,
            flags: mlock::ONFAULT,
        }))
    }

    fn munlock(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let (addr, len) = addr_len(spec, args)?;
        Ok(Some(Op::Munlock { addr, len }))
    }

    fn mremap(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let ([addr, old_len, new_len, flags], new_addr) = match *args {
            [a, o, n, f] => ([a, o, n, f], None),
            [a, o, n, f, new] => ([a, o, n, f], Some(new)),
            _ => return Err(spec.arity_error(args.len()).into()),
        };
        let addr = number("ADDR", addr)?;
        let old_len = number("OLDLEN", old_len)?;
        let new_len = number("NEWLEN", new_len)?;
        let flags = arg("FLAGS", flags, |t| parse_flags(t, MREMAP_FLAGS))?;
        let new_addr = new_addr.map(|a| number("NEWADDR", a)).transpose()?;
        let fixed = flags & mremap::FIXED != 0;
        match (fixed, new_addr.is_some()) {
            (true, false) => return Err("FLAGS has `fixed`, so NEWADDR is required".into()),
            (false, true) => return Err("NEWADDR is given only when FLAGS has `fixed`".into()),
            _ => {}
        }
        Ok(Some(Op::Mremap {
            addr,
            old_len,
            new_len,
            flags,
            new_addr,
        }))
    }

    fn mseal(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let (addr, len) = addr_len(spec, args)?;
        Ok(Some(Op::Mseal { addr, len }))
    }

    fn touch(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let &[addr, len, access] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        let addr = number("ADDR", addr)?;
        let len = number("LEN", len)?;
        let access = match access {
            "r" => Access::Read,
            "w" => Access::Write,
            other => return Err(at(other, format!("touch access is `r` or `w`, not `{other}`"))),
        };
        Ok(Some(Op::Touch { addr, len, access }))
    }

    fn write(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let &[addr, len, byte] = args else {
            return Err(spec.arity_error(args.len()).into());
        };
        let addr = number("ADDR", addr)?;
        let len = number("LEN", len)?;
        let byte = arg("BYTE", byte, |t| {
            let value = parse_number(t)?;
            u8::try_from(value).map_err(|_| format!("`{t}` is not a byte (0 to 255)"))
        })?;
        Ok(Some(Op::Write { addr, len, byte }))
    }

    fn read(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        let (addr, len) = addr_len(spec, args)?;
        Ok(Some(Op::Read { addr, len }))
    }

    fn fork(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        no_args(spec, args, Op::Fork)
    }

    fn maps(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        no_args(spec, args, Op::Maps)
    }

    fn smaps(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        no_args(spec, args, Op::Smaps)
    }

    fn events(&mut self, spec: &'static Verb, args: &[&str]) -> LineResult {
        no_args(spec, args, Op::Events)
    }
}

/// Parses a number argument: [`plain_decimal`] in place for the common tokens, else the full
/// parser with its message, prefixed with the argument's name and pointing at `token`.
#[inline]
fn number(name: &str, token: &str) -> Result<u64, LineError> {
    match plain_decimal(token) {
        Some(value) => Ok(value),
        None => number_full(name, token),
    }
}

/// [`number`] for the tokens that are not plain decimal: hex, and every error.
#[inline(never)]
fn number_full(name: &str, token: &str) -> Result<u64, LineError> {
    arg(name, token, parse_number_full)
}

/// Parses one argument, prefixing an error with the argument's name; the error points at `token`.
fn arg<T>(name: &str, token: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, LineError> {
    parse(token).map_err(|e| at(token, format!("{name}: {e}")))
}

/// An error about `token` (its column is the error's column).
fn at(token: &str, message: String) -> LineError {
    LineError {
        message,
        token: Some(start_of(token)),
    }
}

/// The 1-based column (in characters) of the token an error is about, or of the line's first
/// token when the error is about the whole line.
fn column(raw: &str, token: Option<usize>) -> usize {
    let offset = token
        .and_then(|t| t.checked_sub(start_of(raw)))
        .filter(|&o| o <= raw.len())
        .unwrap_or_else(|| raw.len() - raw.trim_start_matches([' ', '\t']).len());
    raw.get(..offset)
        .map_or(1, |before| before.chars().count().saturating_add(1))
}

/// The longest excerpt of a token an error message shows, in characters.
pub const EXCERPT_CHARS: usize = 40;

/// Makes an error message safe to print: every control character is escaped (`\0`, `\t`,
/// `\r`, `\n`, else `\u{1b}`), and a quoted token (between backticks, no space inside) longer than
/// [`EXCERPT_CHARS`] is cut to that many characters followed by `...`. Any other run of more
/// than twice that without a space is cut the same way, so no token is ever echoed whole.
pub fn tidy(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 && !part.contains(' ') {
            // A token (tokens have no spaces; usage texts such as `munmap ADDR LEN` do).
            push_excerpt(&mut out, part, EXCERPT_CHARS);
        } else {
            for (j, word) in part.split(' ').enumerate() {
                if j > 0 {
                    out.push(' ');
                }
                push_excerpt(&mut out, word, 2 * EXCERPT_CHARS);
            }
        }
    }
    out
}

/// Appends `text` escaped, cut to `EXCERPT_CHARS` characters and `...` if it is longer than `max`.
fn push_excerpt(out: &mut String, text: &str, max: usize) {
    let long = text.chars().nth(max).is_some();
    let keep = if long { EXCERPT_CHARS } else { max };
    for c in text.chars().take(keep) {
        match c {
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = core::fmt::Write::write_fmt(out, format_args!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    if long {
        out.push_str("...");
    }
}

/// `ADDR LEN`, the arguments of `munmap`, `mlock`, `munlock`, `mseal` and `read`.
fn addr_len(spec: &Verb, args: &[&str]) -> Result<(u64, u64), LineError> {
    let &[addr, len] = args else {
        return Err(spec.arity_error(args.len()).into());
    };
    Ok((number("ADDR", addr)?, number("LEN", len)?))
}

/// A line that is its verb alone.
fn no_args(spec: &Verb, args: &[&str], op: Op) -> LineResult {
    if args.is_empty() {
        Ok(Some(op))
    } else {
        Err(spec.arity_error(args.len()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{DEFAULT_WINDOW, MAX_WINDOW};
    use alloc::vec;

    /// The steps of `text`, which must parse without error.
    fn ops(text: &str) -> Vec<Op> {
        let script = parse(text);
        assert_eq!(script.error, None, "unexpected parse error in {text:?}");
        script.steps.into_iter().map(|s| s.op).collect()
    }

    /// The only op of a one-line scenario.
    fn op(line: &str) -> Op {
        let mut ops = ops(line);
        assert_eq!(ops.len(), 1, "{line:?}");
        ops.remove(0)
    }

    /// The error of `text`, which must not parse; checks its line number.
    fn error(text: &str, line: usize) -> String {
        let script = parse(text);
        let err = script.error.unwrap_or_else(|| panic!("{text:?} parsed"));
        assert_eq!(err.line, line, "{text:?}: {}", err.message);
        err.message
    }

    /// Asserts that a one-line scenario fails and its message contains `needle`.
    fn fails(line: &str, needle: &str) {
        let message = error(line, 1);
        assert!(message.contains(needle), "{line:?}: got {message:?}, wanted {needle:?}");
    }

    #[test]
    fn words_split_as_str_split_does() {
        for token in ["", "|", "a", "a|b", "a||b", "|a|", "caf\u{e9}|x"] {
            assert_eq!(
                words(token).collect::<Vec<_>>(),
                token.split('|').collect::<Vec<_>>(),
                "{token:?}"
            );
        }
    }

    #[test]
    fn the_fast_number_path_agrees_with_the_full_one() {
        for token in [
            "0",
            "007",
            "4K",
            "12288",
            "2M",
            "1G",
            "18446744073709551615",
            "18446744073709551616",
            "9999999999999999999",
            "17179869183G",
            "17179869184G",
            "0x10",
            "K",
            "4k",
            "-1",
            "1 ",
        ] {
            match plain_decimal(token) {
                Some(v) => assert_eq!(parse_number_full(token), Ok(v), "{token}"),
                None => assert_eq!(parse_number(token), parse_number_full(token), "{token}"),
            }
        }
        assert_eq!(plain_decimal("4K"), Some(4096));
        assert_eq!(plain_decimal("17179869184G"), None, "overflow goes to the full parser");
        assert!(parse_number("17179869184G").unwrap_err().contains("does not fit"));
        assert_eq!(plain_decimal("18446744073709551616"), None, "20 digits");
        assert_eq!(plain_decimal("0x10"), None);
    }

    #[test]
    fn lines_split_as_str_lines_does() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\r\nb",
            "a\n\nb\n",
            "\r\n\r\n",
            "a\rb\n",
            "a\r",
            "a\n\r",
            "caf\u{e9}\n\u{1f600}",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn token_ends_are_the_first_separator() {
        let mut rng = fastrand::Rng::with_seed(8);
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len).map(|_| b"ab #\t|\x80\xff\x01"[rng.usize(..9)]).collect();
            for start in 0..=len {
                let want = bytes[start..]
                    .iter()
                    .position(|b| matches!(b, b' ' | b'\t' | b'#'))
                    .map_or(len, |p| start + p);
                assert_eq!(token_end(&bytes, start), want, "{bytes:?} from {start}");
            }
        }
    }

    #[test]
    fn tokens_stop_at_a_comment() {
        for (raw, want) in [
            ("", &[][..]),
            ("  \t ", &[]),
            ("# all comment", &[]),
            ("mmap 0 4K", &["mmap", "0", "4K"]),
            ("\tmunmap\t 0  4K  ", &["munmap", "0", "4K"]),
            ("maps# here", &["maps"]),
            ("maps #x y", &["maps"]),
            ("caf\u{e9} \u{1f600}x", &["caf\u{e9}", "\u{1f600}x"]),
        ] {
            assert_eq!(Tokens::of(raw).as_slice(), want, "{raw:?}");
        }
        // More tokens than the inline room spill to the heap, in order.
        let many = "file d driver counter a=1 b=2 c=3 d=4 e=5 f=6";
        let want: Vec<&str> = many.split(' ').collect();
        assert!(want.len() > INLINE_TOKENS);
        assert_eq!(Tokens::of(many).as_slice(), want);
        let exact = "a b c d e f g h";
        assert_eq!(Tokens::of(exact).as_slice(), exact.split(' ').collect::<Vec<_>>());
    }

    #[test]
    fn numbers() {
        for (text, value) in [
            ("0", 0),
            ("12288", 12288),
            ("007", 7),
            ("0x2000", 0x2000),
            ("0xAbCd", 0xabcd),
            ("4K", 4096),
            ("2M", 2 << 20),
            ("3G", 3 << 30),
            ("0x10K", 0x4000),
            ("18446744073709551615", u64::MAX),
            ("0xffffffffffffffff", u64::MAX),
            ("17179869183G", 17179869183 << 30),
        ] {
            assert_eq!(parse_number(text), Ok(value), "{text}");
        }
        for (text, needle) in [
            ("", "not a number"),
            ("K", "not a number"),
            ("0x", "not a number"),
            ("0xK", "not a number"),
            ("0X10", "not a number"),
            ("12a", "not a number"),
            ("4KK", "not a number"),
            ("1e3", "not a number"),
            ("٣", "not a number"),
            ("4k", "upper case"),
            ("0x4m", "upper case"),
            ("2g", "upper case"),
            ("-1", "no sign"),
            ("+1", "no sign"),
            ("18446744073709551616", "64 bits"),
            ("0x10000000000000000", "64 bits"),
            ("17179869184G", "64 bits"),
            ("0xffffffffffffffffK", "64 bits"),
            ("99999999999999999999999999", "64 bits"),
            ("any", "only as the ADDR of `mmap`"),
        ] {
            let err = parse_number(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn protections() {
        assert_eq!(parse_prot("---"), Ok(0));
        assert_eq!(parse_prot("r--"), Ok(1));
        assert_eq!(parse_prot("-w-"), Ok(2));
        assert_eq!(parse_prot("--x"), Ok(4));
        assert_eq!(parse_prot("rw-"), Ok(3));
        assert_eq!(parse_prot("r-x"), Ok(5));
        assert_eq!(parse_prot("rwx"), Ok(7));
        for bad in ["", "rw", "rwxr", "wr-", "RW-", "r_-", "xwr", "r-é"] {
            assert!(parse_prot(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn comments_blank_lines_and_separators() {
        let script = parse("# a comment\n\n   \t\nmmap\t0  4K rw- private|anon # trailing\n#maps\n");
        assert_eq!(script.error, None);
        assert_eq!(script.window, DEFAULT_WINDOW);
        assert_eq!(script.steps.len(), 1);
        assert_eq!(script.steps[0].line, 4);
        assert_eq!(script.steps[0].verb(), "mmap");
        // CRLF endings are accepted.
        assert_eq!(ops("maps\r\nsmaps\r\n"), vec![Op::Maps, Op::Smaps]);
        // An empty scenario is fine.
        assert_eq!(
            parse(""),
            Script {
                window: DEFAULT_WINDOW,
                steps: vec![],
                error: None,
                files: vec![]
            }
        );
    }

    #[test]
    fn window_line() {
        assert_eq!(parse("window 64M\nmaps").window, 64 << 20);
        assert_eq!(parse("# c\n\nwindow 4K # tiny\n").window, 4096);
        assert_eq!(parse("window 16384G").window, MAX_WINDOW);
        fails("window 0", "non-zero multiple of 4K");
        fails("window 6K", "non-zero multiple of 4K");
        fails("window 0x1000000001000", "at most 16T");
        fails("window", "expected `window SIZE`, got 0 arguments");
        fails("window 4K 4K", "got 2 arguments");
        fails("window any", "`any`");
        assert!(error("maps\nwindow 4K", 2).contains("only as the first line"));
        assert!(error("window 4K\nwindow 4K", 2).contains("only as the first line"));
        // A bad first line that is not `window` still uses up the first-line slot.
        assert!(error("# c\nfork\nwindow 8K", 3).contains("only as the first line"));
    }

    #[test]
    fn file_and_close_lines() {
        let script = parse(
            "file data memfd 64K\nfile log_2 tmpfile 8K\nfile ro-file tmpfile 0x3000 ro\n\
             file z zero\nfile dev driver counter pages=4 mode=\nclose data\n",
        );
        assert_eq!(script.error, None);
        let kinds: Vec<&FileKind> = script.files.iter().map(|f| &f.kind).collect();
        assert_eq!(
            kinds,
            [
                &FileKind::Memfd { size: 64 << 10 },
                &FileKind::Tmpfile {
                    size: 8192,
                    read_only: false
                },
                &FileKind::Tmpfile {
                    size: 0x3000,
                    read_only: true
                },
                &FileKind::Zero,
                &FileKind::Driver {
                    driver: "counter".into(),
                    params: vec![("pages".into(), "4".into()), ("mode".into(), "".into())],
                },
            ]
        );
        assert_eq!(script.files[4].name, "dev");
        assert_eq!(script.files[4].line, 5);
        let ops: Vec<&Op> = script.steps.iter().map(|s| &s.op).collect();
        assert_eq!(
            ops,
            [
                &Op::File { id: 0 },
                &Op::File { id: 1 },
                &Op::File { id: 2 },
                &Op::File { id: 3 },
                &Op::File { id: 4 },
                &Op::Close { id: 0 },
            ]
        );
        assert!(script.engine_only().is_some(), "a driver file is engine only");
        let c = parse("file k c ../drivers/c/slots.c fops=slots_fops cflags=-DX=1,-O2 ro slots=3\n");
        assert_eq!(c.error, None);
        assert_eq!(
            c.files[0].kind,
            FileKind::C {
                path: "../drivers/c/slots.c".into(),
                fops: Some("slots_fops".into()),
                cflags: vec!["-DX=1".into(), "-O2".into()],
                read_only: true,
                params: vec![("slots".into(), "3".into())],
            }
        );
        assert!(c.engine_only().is_some(), "a C driver file is engine only");
        assert!(!Op::File { id: 0 }.prints() && !Op::Close { id: 0 }.prints());

        fails("file", "got 0 arguments");
        fails("file data", "got 1 argument");
        fails("file da.ta memfd 4K", "not a name");
        fails("file data memfd", "expected `file data memfd SIZE`");
        fails("file data memfd 4K ro", "expected `file data memfd SIZE`");
        fails("file data memfd 4x", "SIZE: `4x` is not a number");
        fails("file data tmpfile 4K rw", "expected `file data tmpfile SIZE [ro]`");
        fails("file data tmpfile", "expected `file data tmpfile SIZE [ro]`");
        fails("file data zero 4K", "expected `file data zero`");
        fails("file data driver", "expected `file data driver DRIVER");
        fails("file data driver c.d", "DRIVER: `c.d` is not a name");
        fails("file data driver cd pages", "`pages` is not KEY=VALUE");
        fails("file data driver cd =4", "`=4` is not KEY=VALUE");
        fails("file data socket", "unknown file kind `socket`");
        fails("file data c", "expected `file data c PATH.c");
        fails("file data c drv.o", "expected `file data c PATH.c");
        fails("file data c drv.c fops=a.b", "SYMBOL is a C name");
        fails("file data c drv.c =1", "`=1` is not KEY=VALUE");
        fails("file data c drv.c pages", "`pages` is not KEY=VALUE");
        assert!(error("file a zero\nfile a memfd 4K", 2).contains("already defined (line 1)"));
        assert!(error("file a zero\nclose a\nfile a zero", 3).contains("already defined"));

        fails("close", "expected `close NAME`");
        fails("close a b", "got 2 arguments");
        fails("close nope", "no file named `nope`");
        assert!(error("file a zero\nclose a\nclose a", 3).contains("already closed (line 2)"));
    }

    #[test]
    fn mmap_lines() {
        assert_eq!(
            op("mmap 0 16K rw- private|anon|fixed"),
            Op::Mmap {
                addr: MmapAddr::At(0),
                len: 16384,
                prot: 3,
                flags: MapFlags::PRIVATE.0 | MapFlags::ANONYMOUS.0 | MapFlags::FIXED.0,
                file: None,
            }
        );
        assert_eq!(
            op("mmap any 4K --- 0"),
            Op::Mmap {
                addr: MmapAddr::Any,
                len: 4096,
                prot: 0,
                flags: 0,
                file: None
            }
        );
        // Every flag word, with the kernel's values.
        let all = "private|shared|shared_validate|anon|fixed|fixed_noreplace|noreserve|populate|\
                   growsdown|locked|stack|sync";
        let Op::Mmap { flags, .. } = op(&format!("mmap 0 4K rwx {all}")) else {
            panic!()
        };
        assert_eq!(
            flags,
            0x03 | 0x20 | 0x10 | 0x10_0000 | 0x4000 | 0x8000 | 0x100 | 0x2000 | 0x2_0000 | 0x8_0000
        );
        for (word, value) in MMAP_FLAGS {
            let Op::Mmap { flags, .. } = op(&format!("mmap 0 4K rw- {word}")) else {
                panic!()
            };
            assert_eq!(flags, *value, "{word}");
        }
        assert_eq!(
            MMAP_FLAGS.iter().find(|(w, _)| *w == "shared_validate"),
            Some(&("shared_validate", 3))
        );

        // A file mapping: open, then closed (the runner passes descriptor -1).
        let steps = ops("file data memfd 64K\nmmap 1M 8K r-- shared|fixed data 4K\nclose data\n\
                         mmap 2M 8K r-- shared|fixed data 0x1001");
        assert_eq!(
            steps[1],
            Op::Mmap {
                addr: MmapAddr::At(1 << 20),
                len: 8192,
                prot: 1,
                flags: 0x11,
                file: Some(FileArg {
                    file: 0,
                    offset: 4096,
                    open: true
                }),
            }
        );
        assert_eq!(
            steps[3],
            Op::Mmap {
                addr: MmapAddr::At(2 << 20),
                len: 8192,
                prot: 1,
                flags: 0x11,
                file: Some(FileArg {
                    file: 0,
                    offset: 0x1001,
                    open: false
                }),
            }
        );

        fails(
            "mmap 0 4K rw-",
            "expected `mmap ADDR LEN PROT FLAGS [FILE OFFSET]`, got 3 arguments",
        );
        fails("mmap 0 4K rw- private data", "got 5 arguments");
        fails("mmap 0 4K rw- private data 0 0", "got 7 arguments");
        fails(
            "mmap 0 any rw- private",
            "LEN: `any` is accepted only as the ADDR of `mmap`",
        );
        fails("mmap 4q 4K rw- private", "ADDR: `4q` is not a number");
        fails("mmap 0 4K rwx- private", "PROT: `rwx-` is not a protection");
        fails("mmap 0 4K rw- privat", "FLAGS: unknown word `privat`");
        fails(
            "mmap 0 4K rw- private||anon",
            "FLAGS: `private||anon` has an empty word",
        );
        fails("mmap 0 4K rw- |private", "empty word");
        fails("mmap 0 4K rw- 0|private", "unknown word `0`");
        fails("mmap 0 4K rw- private|PRIVATE", "unknown word `PRIVATE`");
        fails("mmap 0 4K rw- private nope 0", "FILE: no file named `nope`");
        assert!(error("file f zero\nmmap 0 4K rw- private f any", 2).starts_with("OFFSET: `any`"));
        assert_eq!(
            error("mmap 0 4K rw- private f 0\nfile f zero", 1),
            "FILE: no file named `f` (declare it on a `file` line first)"
        );
    }

    #[test]
    fn range_verbs() {
        assert_eq!(op("munmap 2K 4K"), Op::Munmap { addr: 2048, len: 4096 });
        assert_eq!(op("mlock 0 8K"), Op::Mlock { addr: 0, len: 8192 });
        assert_eq!(op("munlock 0x1000 0"), Op::Munlock { addr: 0x1000, len: 0 });
        assert_eq!(op("mseal 0 4K"), Op::Mseal { addr: 0, len: 4096 });
        assert_eq!(op("read 1 3"), Op::Read { addr: 1, len: 3 });
        assert_eq!(
            op("mlock2 0 4K onfault"),
            Op::Mlock2 {
                addr: 0,
                len: 4096,
                flags: mlock::ONFAULT
            }
        );
        // Addresses below the window are written as wrapped offsets.
        assert_eq!(
            op("munmap 0xfffffffffffff000 4K"),
            Op::Munmap {
                addr: 0xffff_ffff_ffff_f000,
                len: 4096
            }
        );
        for verb in ["munmap", "mlock", "munlock", "mseal", "read"] {
            fails(
                &format!("{verb} 0"),
                &format!("expected `{verb} ADDR LEN`, got 1 argument"),
            );
            fails(&format!("{verb} 0 4K 4K"), "got 3 arguments");
            fails(
                &format!("{verb} any 4K"),
                "ADDR: `any` is accepted only as the ADDR of `mmap`",
            );
            fails(&format!("{verb} 0 4k"), "LEN: `4k`: the suffix is upper case");
        }
        fails("mlock2 0 4K", "expected `mlock2 ADDR LEN onfault`");
        fails("mlock2 0 4K 1", "unknown mlock2 flag `1`");
    }

    #[test]
    fn mprotect_lines() {
        assert_eq!(
            op("mprotect 4K 4K r--"),
            Op::Mprotect {
                addr: 4096,
                len: 4096,
                prot: 1
            }
        );
        assert_eq!(
            op("mprotect 0 4K rw-|growsdown"),
            Op::Mprotect {
                addr: 0,
                len: 4096,
                prot: 3 | Prot::GROWSDOWN.0
            }
        );
        assert_eq!(
            op("mprotect 0 4K ---|growsup"),
            Op::Mprotect {
                addr: 0,
                len: 4096,
                prot: Prot::GROWSUP.0
            }
        );
        // Both may be named, so that a scenario can ask the kernel what it says to that.
        assert_eq!(
            op("mprotect 0 4K r--|growsup|growsdown"),
            Op::Mprotect {
                addr: 0,
                len: 4096,
                prot: 1 | 0x0300_0000
            }
        );
        fails("mprotect 0 4K", "expected `mprotect ADDR LEN PROT[|growsdown|growsup]`");
        fails("mprotect 0 4K rw-|", "empty word");
        fails(
            "mprotect 0 4K rw-|stack",
            "unknown word `stack` (one of: growsdown growsup)",
        );
        fails("mprotect 0 4K rw-|growsdown|growsdown", "names `growsdown` twice");
        fails("mprotect 0 4K |growsdown", "PROT: `` is not a protection");
        fails("mprotect 0 4K 3", "PROT: `3` is not a protection");
    }

    #[test]
    fn madvise_lines() {
        assert_eq!(
            op("madvise 0 4K dontneed"),
            Op::Madvise {
                addr: 0,
                len: 4096,
                advice: 4
            }
        );
        assert_eq!(
            op("madvise 0 4K guard_install"),
            Op::Madvise {
                addr: 0,
                len: 4096,
                advice: 102
            }
        );
        for (word, value) in MADVICE {
            assert_eq!(
                op(&format!("madvise 0 4K {word}")),
                Op::Madvise {
                    addr: 0,
                    len: 4096,
                    advice: *value
                }
            );
        }
        assert_eq!(MADVICE.len(), 24, "the contract lists 24 advice words");
        fails("madvise 0 4K DONTNEED", "ADVICE: unknown word `DONTNEED`");
        fails("madvise 0 4K dontneed_locked", "unknown word");
        fails("madvise 0 4K 4", "unknown word `4`");
        fails("madvise 0 4K", "expected `madvise ADDR LEN ADVICE`");
    }

    #[test]
    fn mremap_lines() {
        assert_eq!(
            op("mremap 0 4K 8K maymove"),
            Op::Mremap {
                addr: 0,
                old_len: 4096,
                new_len: 8192,
                flags: 1,
                new_addr: None
            }
        );
        assert_eq!(
            op("mremap 0 4K 4K 0"),
            Op::Mremap {
                addr: 0,
                old_len: 4096,
                new_len: 4096,
                flags: 0,
                new_addr: None
            }
        );
        assert_eq!(
            op("mremap 0 4K 4K maymove|fixed|dontunmap 1M"),
            Op::Mremap {
                addr: 0,
                old_len: 4096,
                new_len: 4096,
                flags: 7,
                new_addr: Some(1 << 20)
            }
        );
        fails("mremap 0 4K 8K fixed", "FLAGS has `fixed`, so NEWADDR is required");
        fails(
            "mremap 0 4K 8K maymove 1M",
            "NEWADDR is given only when FLAGS has `fixed`",
        );
        fails("mremap 0 4K 8K 0 1M", "NEWADDR is given only");
        fails(
            "mremap 0 4K 8K",
            "expected `mremap ADDR OLDLEN NEWLEN FLAGS [NEWADDR]`, got 3",
        );
        fails("mremap 0 4K 8K maymove|fixed 1M 2M", "got 6 arguments");
        fails("mremap 0 4K 8K maymove|fixed any", "NEWADDR: `any`");
        fails("mremap 0 4K 8K shrink", "FLAGS: unknown word `shrink`");
        fails("mremap 0 4K 8M1 maymove", "NEWLEN: `8M1` is not a number");
    }

    #[test]
    fn access_verbs() {
        assert_eq!(
            op("touch 0 8K r"),
            Op::Touch {
                addr: 0,
                len: 8192,
                access: Access::Read
            }
        );
        assert_eq!(
            op("touch 0 8K w"),
            Op::Touch {
                addr: 0,
                len: 8192,
                access: Access::Write
            }
        );
        assert_eq!(
            op("write 0 4K 0x41"),
            Op::Write {
                addr: 0,
                len: 4096,
                byte: 0x41
            }
        );
        assert_eq!(
            op("write 0 4K 255"),
            Op::Write {
                addr: 0,
                len: 4096,
                byte: 255
            }
        );
        fails("touch 0 8K rw", "touch access is `r` or `w`, not `rw`");
        fails("touch 0 8K", "expected `touch ADDR LEN r|w`");
        fails("write 0 4K 256", "BYTE: `256` is not a byte (0 to 255)");
        fails("write 0 4K 1K", "BYTE: `1K` is not a byte");
        fails("write 0 4K -1", "no sign");
        fails("write 0 4K", "expected `write ADDR LEN BYTE`");
    }

    #[test]
    fn bare_verbs() {
        assert_eq!(
            ops("fork\nmaps\nsmaps\nevents"),
            vec![Op::Fork, Op::Maps, Op::Smaps, Op::Events]
        );
        assert!(parse("events").engine_only().is_some());
        assert!(parse("fork\nmaps\nsmaps").engine_only().is_none());
        for verb in ["fork", "maps", "smaps", "events"] {
            fails(&format!("{verb} now"), &format!("expected `{verb}`, got 1 argument"));
        }
    }

    #[test]
    fn unknown_verbs() {
        fails("mmapp 0 4K rw- private", "unknown verb `mmapp`");
        fails("MMAP 0 4K rw- private", "unknown verb `MMAP`");
        fails("any", "unknown verb `any`");
        fails("\u{feff}maps", "unknown verb");
    }

    #[test]
    fn the_first_bad_line_stops_the_parse() {
        let script = parse("window 64M\nfile d memfd 4K\nmmap 0 4K rw- private|anon|fixed\nmunmap 0\nmaps\n");
        assert_eq!(script.window, 64 << 20);
        let lines: Vec<usize> = script.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3]);
        let err = script.error.expect("line 4 is bad");
        assert_eq!(err.line, 4);
        assert_eq!(err.message, "expected `munmap ADDR LEN`, got 1 argument");
        // A file declared on the bad line is not kept.
        let script = parse("file a zero\nfile b memfd 4X");
        assert_eq!(script.files.len(), 1);
        assert_eq!(script.error.map(|e| e.line), Some(2));
    }

    /// The error's (line, column, message) for `text`.
    fn located(text: &str) -> (usize, usize, String) {
        let e = parse(text).error.unwrap_or_else(|| panic!("{text:?} parsed"));
        (e.line, e.column, e.message)
    }

    #[test]
    fn errors_point_at_their_token() {
        assert_eq!(located("maps\nmunmap 0 4X").1, 10);
        assert_eq!(located("mmap 0 4K rw- private|bogus").1, 15);
        assert_eq!(located("  mmapp 0 4K").1, 3);
        // A tab is one column; a character before the token counts once, whatever its size.
        assert_eq!(located("\tmunmap\té 4K").1, 9);
        // About the whole line: the column of its verb.
        assert_eq!(
            located("   munmap 0"),
            (1, 4, "expected `munmap ADDR LEN`, got 1 argument".into())
        );
        assert_eq!(located("file a zero\nclose b").1, 7);
        assert_eq!(located("file a zero\nmmap 0 4K r-- shared b 0").1, 22);
        assert_eq!(located("touch 0 4K x").1, 12);
    }

    #[test]
    fn messages_escape_control_bytes() {
        assert_eq!(located("ma\0ps").2, "unknown verb `ma\\0ps`");
        assert_eq!(
            located("munmap 0 4\rK").2,
            "LEN: `4\\rK` is not a number (decimal or 0x hex, with an optional K, M or G suffix)"
        );
        assert_eq!(located("maps\u{1b}[2J").2, "unknown verb `maps\\u{1b}[2J`");
    }

    #[test]
    fn a_huge_token_is_cut_in_the_message() {
        let token = "a".repeat(1 << 20);
        let (line, column, message) = located(&format!("maps\nmunmap 0 {token}"));
        assert_eq!((line, column), (2, 10));
        assert_eq!(
            message,
            format!(
                "LEN: `{}...` is not a number (decimal or 0x hex, with an optional K, M or G suffix)",
                "a".repeat(40)
            )
        );
        let message = located(&format!("{token} 0")).2;
        assert_eq!(message, format!("unknown verb `{}...`", "a".repeat(EXCERPT_CHARS)));
        // 40 characters exactly are shown whole.
        let message = located(&format!("{} 0", "é".repeat(40))).2;
        assert_eq!(message, format!("unknown verb `{}`", "é".repeat(40)));
        assert_eq!(tidy(&"x".repeat(200)), format!("{}...", "x".repeat(40)));
    }

    #[test]
    fn the_contract_example_parses() {
        let script = parse(
            "window 64M\nfile data memfd 64K\nmmap 0 16K rw- private|anon|fixed\n\
             mmap 16K 16K rw- private|anon|fixed\nmaps\nmprotect 4K 4K r--\n\
             mmap 1M 8K r-- shared|fixed data 4K\nsmaps\nmunmap 2K 4K\n",
        );
        assert_eq!(script.error, None);
        let lines: Vec<(usize, &str)> = script.steps.iter().map(|s| (s.line, s.verb())).collect();
        assert_eq!(
            lines,
            [
                (2, "file"),
                (3, "mmap"),
                (4, "mmap"),
                (5, "maps"),
                (6, "mprotect"),
                (7, "mmap"),
                (8, "smaps"),
                (9, "munmap")
            ]
        );
    }

    #[test]
    fn every_verb_is_in_the_table_once() {
        for (i, v) in VERBS.iter().enumerate() {
            assert!(VERBS.iter().skip(i + 1).all(|w| w.name != v.name), "{} twice", v.name);
            assert!(!v.summary.is_empty());
        }
        assert_eq!(
            verb_names(),
            concat!(
                "window file close mmap munmap mprotect madvise mlock mlock2 munlock mremap mseal ",
                "touch write read fork maps smaps events"
            )
        );
        assert_eq!(VERBS[3].usage(), "mmap ADDR LEN PROT FLAGS [FILE OFFSET]");
        assert_eq!(VERBS[15].usage(), "fork");
    }

    fn verb_names() -> String {
        VERBS.iter().map(|v| v.name).collect::<Vec<_>>().join(" ")
    }

    /// Valid lines the fuzzer starts from; `f` is declared by the first line of every input.
    const SEEDS: &[&str] = &[
        "window 64M",
        "file g memfd 64K",
        "file t tmpfile 8K ro",
        "file z zero",
        "file d driver counter pages=4",
        "close f",
        "mmap 0 16K rw- private|anon|fixed",
        "mmap any 4K r-- shared f 4K",
        "munmap 2K 4K",
        "mprotect 4K 4K r--|growsdown",
        "madvise 0 4K dontneed",
        "mlock 0 4K",
        "mlock2 0 4K onfault",
        "munlock 0 4K",
        "mremap 0 4K 8K maymove|fixed 1M",
        "mremap 0 4K 8K 0",
        "mseal 0 4K",
        "touch 0 8K w",
        "write 0 4K 0x41",
        "read 0 4K",
        "fork",
        "maps",
        "smaps",
        "events",
        "# comment",
        "",
    ];

    /// Tokens the fuzzer swaps in.
    const ODD_TOKENS: &[&str] = &[
        "any",
        "0",
        "0x",
        "K",
        "18446744073709551615",
        "18446744073709551616",
        "0xffffffffffffffffK",
        "99999999999999999999G",
        "17179869184G",
        "-1",
        "4k",
        "|",
        "||",
        "private|",
        "rwx",
        "r",
        "w",
        "ro",
        "onfault",
        "fixed",
        "f",
        "g",
        "#",
        "=",
        "a=b",
        "window",
        "file",
        "close",
        "mmap",
        "driver",
        "memfd",
        "tmpfile",
        "zero",
        "\t",
        "é",
        "\u{0}",
        "\r",
        "0x1G",
        "255",
        "256",
    ];

    fn mutate_line(rng: &mut fastrand::Rng, line: &str) -> String {
        let mut tokens: Vec<String> = line.split(' ').map(String::from).collect();
        for _ in 0..rng.usize(0..4) {
            let at = rng.usize(0..=tokens.len());
            match rng.u8(0..8) {
                0 if !tokens.is_empty() => {
                    tokens.remove(at.min(tokens.len() - 1));
                }
                1 if !tokens.is_empty() => {
                    let t = tokens[at.min(tokens.len() - 1)].clone();
                    tokens.insert(at, t);
                }
                2 if !tokens.is_empty() => {
                    let i = at.min(tokens.len() - 1);
                    tokens[i] = ODD_TOKENS[rng.usize(..ODD_TOKENS.len())].into();
                }
                3 => tokens.insert(at, ODD_TOKENS[rng.usize(..ODD_TOKENS.len())].into()),
                4 => {
                    let junk: String = (0..rng.usize(1..8)).map(|_| random_char(rng)).collect();
                    tokens.insert(at, junk);
                }
                5 if !tokens.is_empty() => {
                    // Overwrite one character of one token.
                    let i = at.min(tokens.len() - 1);
                    let mut chars: Vec<char> = tokens[i].chars().collect();
                    if !chars.is_empty() {
                        let c = rng.usize(..chars.len());
                        chars[c] = random_char(rng);
                    }
                    tokens[i] = chars.into_iter().collect();
                }
                6 => tokens.insert(at, format!("{}{}", rng.u64(..), ["", "K", "M", "G"][rng.usize(..4)])),
                _ => tokens.insert(at, format!("0x{:x}", rng.u64(..))),
            }
        }
        tokens.join(if rng.bool() { " " } else { "\t" })
    }

    fn random_char(rng: &mut fastrand::Rng) -> char {
        match rng.u8(0..4) {
            0 => rng.char(..),
            1 => rng.char('\0'..='\u{7f}'),
            _ => b"0123456789abcdefxKMG|-_=#rwx "[rng.usize(..29)] as char,
        }
    }

    /// Ten thousand mangled scenarios: none may panic, parsing is deterministic, and the result
    /// is consistent (lines increase, the error comes after every step, file ids are valid).
    #[test]
    fn mangled_scenarios_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x6d6d_7072_6570);
        let mut errors = 0;
        for _ in 0..10_000 {
            let mut text = String::from("file f memfd 4K\n");
            for _ in 0..rng.usize(1..12) {
                let seed = SEEDS[rng.usize(..SEEDS.len())];
                let line = if rng.u8(0..3) == 0 {
                    seed.to_string()
                } else {
                    mutate_line(&mut rng, seed)
                };
                text.push_str(&line);
                text.push(if rng.u8(0..10) == 0 { '\r' } else { '\n' });
            }
            let script = parse(&text);
            assert_eq!(parse(&text), script, "parse is not deterministic on {text:?}");
            let mut last = 0;
            for step in &script.steps {
                assert!(step.line > last, "{text:?}");
                last = step.line;
                match step.op {
                    Op::File { id } | Op::Close { id } => assert!(id < script.files.len()),
                    Op::Mmap {
                        file: Some(FileArg { file, .. }),
                        ..
                    } => {
                        assert!(file < script.files.len())
                    }
                    _ => {}
                }
            }
            assert!(script.window != 0 && script.window.is_multiple_of(4096) && script.window <= MAX_WINDOW);
            if let Some(e) = &script.error {
                errors += 1;
                assert!(e.line > last && !e.message.is_empty(), "{text:?}");
            }
        }
        // The mutations must actually exercise the error paths (and not only them).
        assert!((1_000..9_900).contains(&errors), "{errors} of 10000 inputs failed");
    }

    /// The quick path accepts only what the full parser accepts, with the same [`Op`]: on the
    /// seed lines, a hundred thousand mangled ones (numbers that overflow, hex, suffixes, tabs,
    /// comments, stray bytes) and the perf stream's lines. The perf stream's lines must all take
    /// the quick path (they are what it is for).
    #[test]
    fn the_quick_path_agrees_with_the_full_parser() {
        fn check(line: &str) -> bool {
            let mut quick = Parser::default();
            let mut full = LineParser::new();
            let got = quick.quick(1, line.as_bytes());
            if let Some(op) = &got {
                assert_eq!(full.line_full(1, line).ok().flatten().as_ref(), Some(op), "{line:?}");
                assert!(quick.seen_content && quick.first_line && quick.line == 1);
            }
            got.is_some()
        }
        // The same line at the start of a piece of a file: it ends at its `\n` or `\r\n`, and
        // reads as `lines` gives it.
        fn check_in_text(line: &str, end: &str) {
            let text = format!("{line}{end}mmap 0 4K rw- private|anon\n");
            let mut quick = LineParser::new();
            if let Some((op, used)) = quick.quick_line(1, text.as_bytes()) {
                assert_eq!(Some(used), text.find('\n').map(|n| n + 1), "{text:?}");
                let as_read = lines(&text).next().unwrap_or_default();
                let mut full = LineParser::new();
                assert_eq!(full.line_full(1, as_read).ok().flatten(), Some(op), "{text:?}");
            }
        }
        let mut rng = fastrand::Rng::with_seed(0x0071_7569_636b);
        let mut taken = 0;
        for round in 0..100_000 {
            let seed = SEEDS[round % SEEDS.len()];
            let mut line = match round % 4 {
                0 => seed.to_string(),
                _ => mutate_line(&mut rng, seed),
            };
            if rng.u8(0..8) == 0 {
                line.push('\r');
            }
            taken += usize::from(check(&line));
            check_in_text(&line, if rng.bool() { "\n" } else { "\r\n" });
        }
        assert!(taken > 10_000, "only {taken} lines took the quick path");
        let perf = crate::perf::perf_stream(50, 2_000, 7);
        for line in lines(&perf).skip(1) {
            assert!(check(line), "{line:?} did not take the quick path");
        }
    }
}
