//! The repository's own documentation, kept true:
//!
//! - every block marked `scenario` in `README.md` and `docs/` runs on the engine and on the host
//!   kernel with identical transcripts (an engine-only one, with a driver or `events`, runs on
//!   the engine alone), and the `transcript` block right after it is exactly what they print;
//! - every relative Markdown link in `README.md` and `docs/` resolves to a file inside the
//!   repository, and every `#anchor` to a heading of its file;
//! - nothing in the repository points into the team's `shared` folder beside it, which a
//!   clone from anywhere does not have.
//!
//! Each test reads every file, collects every problem, and fails once with the whole list.

use std::path::{Path, PathBuf};

use mmprep_scenario::{RunEnd, Transcript};

/// The top of the repository.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// `README.md` and every `.md` file under `docs/`, sorted.
fn markdown_files() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md")];
    files.extend(files_under(&root.join("docs")).into_iter().filter(|p| has_ext(p, "md")));
    files.sort();
    files
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}

/// Every file under `dir`, recursively, leaving out `target` directories and dot-directories.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    dirs.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `path` relative to the repository root, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// A fenced code block: its info string (`scenario`, `text`, ...), its first line's number
/// (1-based, the fence itself) and its text.
struct Block {
    info: String,
    line: usize,
    text: String,
}

/// The fenced code blocks of a Markdown text, in order (fences of three backticks at the start
/// of a line).
fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    line: i + 1,
                    text: String::new(),
                })
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.extend(open.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is not closed");
    blocks
}

/// Runs one `scenario` block and compares it with its `transcript` block; the problem, if any.
/// A `c` line's path is relative to the Markdown file's folder, `dir`.
fn check_example(scenario: &Block, transcript: Option<&Block>, dir: &Path) -> Result<(), String> {
    let script = mmprep_scenario::parse(&scenario.text);
    if let Some(e) = &script.error {
        return Err(format!("does not parse: {}:{}: {}", e.line, e.column, e.message));
    }
    let profile = mmprep_host::host_profile();
    let options = mmprep_scenario::engine::RunOptions {
        dir: Some(dir.to_path_buf()),
        c_drivers: Some(std::sync::Arc::new(mmprep_c::CHost::default())),
    };
    let engine = mmprep_scenario::engine::run_with(&script, &profile, &options);
    let finished = |who: &str, t: &Transcript| {
        if t.end == RunEnd::Finished {
            Ok(())
        } else {
            Err(format!(
                "the {who} run did not finish: {}\n{}",
                t.end.message().unwrap_or_default(),
                t.text()
            ))
        }
    };
    finished("engine", &engine)?;
    if script.engine_only().is_none() {
        let kernel = mmprep_host::run(&script);
        finished("kernel", &kernel)?;
        if kernel.text() != engine.text() {
            let comparison = mmprep_host::diff::compare(&kernel, &engine);
            return Err(format!(
                "the engine and the kernel differ:\n{}",
                comparison.report(&scenario.text, 10)
            ));
        }
    }
    let Some(transcript) = transcript else {
        return Err("has no ```transcript block right after it".into());
    };
    if transcript.text != engine.text() {
        return Err(format!(
            "prints something else than its transcript block (line {}):\n--- shown\n{}+++ printed\n{}",
            transcript.line,
            transcript.text,
            engine.text()
        ));
    }
    Ok(())
}

/// Every `scenario` block of the docs and the README runs and prints its transcript.
#[test]
fn scenario_examples_run_and_match() {
    let mut problems = Vec::new();
    let mut counted = Vec::new();
    for file in markdown_files() {
        let blocks = blocks(&read(&file));
        let mut count = 0;
        for (i, block) in blocks.iter().enumerate() {
            if block.info != "scenario" {
                continue;
            }
            count += 1;
            let next = blocks.get(i + 1).filter(|b| b.info == "transcript");
            let dir = file.parent().expect("a file has a folder");
            if let Err(problem) = check_example(block, next, dir) {
                problems.push(format!("{}:{}: the scenario {problem}", shown(&file), block.line));
            }
        }
        counted.push((shown(&file), count));
    }
    let count_of = |name: &str| counted.iter().find(|(f, _)| f == name).map_or(0, |(_, n)| *n);
    // The examples must really be there: a renamed fence would otherwise skip them silently.
    assert!(count_of("docs/scenario-format.md") >= 5, "{counted:?}");
    assert!(count_of("README.md") >= 1, "{counted:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code blocks and
/// code spans, with their line numbers.
fn links(markdown: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut in_block = false;
    for (i, line) in markdown.lines().enumerate() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Code spans are left out: `a](b)` in backticks is not a link.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            links.push((i + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    links
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings.
fn anchors(markdown: &str) -> Vec<String> {
    let mut in_block = false;
    let mut anchors = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
        } else if !in_block && line.starts_with('#') {
            anchors.push(anchor(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// Every relative link of the README and the docs names a file of the repository (and a heading
/// of it, for `#anchor`); links to the web are left alone.
#[test]
fn relative_links_resolve_inside_the_repository() {
    let root = root();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        for (line, target) in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let at = format!("{}:{line}: link `{target}`", shown(&file));
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                match file.parent().expect("a file has a directory").join(path).canonicalize() {
                    Ok(p) => p,
                    Err(_) => {
                        problems.push(format!("{at}: no such file"));
                        continue;
                    }
                }
            };
            if !resolved.starts_with(&root) {
                problems.push(format!("{at}: outside the repository"));
                continue;
            }
            if let Some(fragment) = fragment {
                let known = resolved.is_file()
                    && has_ext(&resolved, "md")
                    && anchors(&read(&resolved)).contains(&fragment.to_string());
                if !known {
                    problems.push(format!("{at}: no heading `#{fragment}` in {}", shown(&resolved)));
                }
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} relative links found: is the link parser broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The link checker itself: it finds links, leaves code alone, and computes GitHub's anchors.
#[test]
fn the_link_checker_reads_markdown_as_github_does() {
    let text = "see [a](docs/a.md) and [b](#part-two), `[c](not/a/link)`\n```\n[d](nor/this)\n```\n";
    assert_eq!(
        links(text),
        [(1, "docs/a.md".to_string()), (1, "#part-two".to_string())]
    );
    assert_eq!(anchor(" Errors and exit status"), "errors-and-exit-status");
    assert_eq!(
        anchor("0. The reference host (what the oracle is)"),
        "0-the-reference-host-what-the-oracle-is"
    );
    assert_eq!(
        anchors("# Top\ntext\n```\n# not a heading\n```\n## Part `two`\n"),
        ["top", "part-two"]
    );
}

/// No file of the repository's own (README, docs, crates, scenarios) points into the `shared` folder beside it.
#[test]
fn nothing_points_outside_the_repository() {
    let root = root();
    // Written in pieces, so that this file does not name what it looks for.
    let needles = [
        concat!("..", "/shared"),
        concat!("shared", "/reference"),
        concat!("shared", "/scenario-format"),
        concat!("shared", "/DESIGN"),
    ];
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "crates", "tests", "examples", ".ci"] {
        files.extend(files_under(&root.join(dir)));
    }
    let mut problems = Vec::new();
    for file in &files {
        // Binary files cannot hold a readable path.
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n)) {
                problems.push(format!("{}:{}: {}", shown(file), i + 1, line.trim()));
            }
        }
    }
    assert!(files.len() > 50, "only {} files searched", files.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
