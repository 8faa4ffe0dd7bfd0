//! `docs/cli-reference.md`, generated from the clap command tree (the hidden `mmprep
//! cli-reference` prints it; `tests/cli_reference.rs` checks the checked-in file).

use std::fmt::Write;

use clap::{Arg, ArgAction, Command};

/// The whole reference, as Markdown.
pub fn markdown(cli: &Command) -> String {
    let mut out = String::new();
    out.push_str("# `mmprep` command-line reference\n\n");
    out.push_str(
        "<!-- Generated from the clap command tree by `mmprep cli-reference`; do not edit. \
         Refresh with `MMPREP_BLESS=1 cargo test -p mmprep-cli --test cli_reference`. -->\n\n",
    );
    out.push_str(
        "Every subcommand with its description and every argument with its help and default. \
         The commands are described at more length in [cli.md](cli.md) and \
         [json.md](json.md) (`--json`).\n\n",
    );
    command(&mut out, cli, "mmprep", true);
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(&mut out, sub, &format!("mmprep {}", sub.get_name()), false);
    }
    out
}

fn command(out: &mut String, cmd: &Command, path: &str, top: bool) {
    let _ = writeln!(out, "## `{path}`\n");
    let about = cmd.get_long_about().or(cmd.get_about()).map(|a| a.to_string());
    if let Some(about) = about {
        let _ = writeln!(out, "{}\n", about.trim_end());
    }
    let usage = cmd.clone().bin_name(path).render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ").trim_end();
    let _ = writeln!(out, "```text\n{usage}\n```\n");
    if top {
        let subs: Vec<_> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
        out.push_str("| Command | What it does |\n| --- | --- |\n");
        for s in subs {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(out, "| [`{0}`](#mmprep-{0}) | {1} |", s.get_name(), cell(&about));
        }
        out.push('\n');
    }
    let args: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version))
        .collect();
    if !args.is_empty() {
        out.push_str("| Argument | Help | Default |\n| --- | --- | --- |\n");
        for a in args {
            let help = a
                .get_long_help()
                .or(a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let mut help = cell(&help);
            let values: Vec<String> = a
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| match v.get_help() {
                    Some(h) => format!("`{}` ({})", v.get_name(), h),
                    None => format!("`{}`", v.get_name()),
                })
                .collect();
            if !values.is_empty() && !matches!(a.get_action(), ArgAction::SetTrue) {
                let _ = write!(help, " One of: {}.", cell(&values.join(", ")));
            }
            if a.is_required_set() {
                help.push_str(" Required.");
            }
            let default: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = if default.is_empty() || matches!(a.get_action(), ArgAction::SetTrue) {
                String::new()
            } else {
                format!("`{}`", default.join(","))
            };
            let _ = writeln!(out, "| `{}` | {} | {} |", name(a), help, default);
        }
        out.push('\n');
    }
    if let Some(after) = cmd.get_after_help().filter(|_| top) {
        let _ = writeln!(out, "```text\n{}\n```\n", after.to_string().trim_end());
    }
}

/// How an argument is written: `--vmas <VMAS>`, `-o, --output <OUT>`, `<FILE>...`.
fn name(a: &Arg) -> String {
    let values: Vec<String> = a
        .get_value_names()
        .map(|v| v.iter().map(|n| format!("<{n}>")).collect())
        .unwrap_or_else(|| vec![format!("<{}>", a.get_id().as_str().to_uppercase())]);
    let many = matches!(a.get_action(), ArgAction::Append) || a.get_num_args().is_some_and(|n| n.max_values() > 1);
    let value = values.join(" ") + if many { "..." } else { "" };
    if a.is_positional() {
        return value;
    }
    let mut flag = String::new();
    if let Some(s) = a.get_short() {
        flag.push_str(&format!("-{s}"));
    }
    if let Some(l) = a.get_long() {
        if !flag.is_empty() {
            flag.push_str(", ");
        }
        flag.push_str(&format!("--{l}"));
    }
    if a.get_action().takes_values() {
        flag.push(' ');
        flag.push_str(&value);
    }
    flag
}

/// Text for one table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}
