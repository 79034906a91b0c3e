//! The CLI's command list is written in three places besides clap's
//! definitions: the README, docs/cli.md (its list, its copy of `crashkit
//! --help`, one section per command) and the crate's `//!` docs. Each is
//! checked against what the binary itself says, so none can drift.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// `crashkit ARGS`'s standard output.
fn crashkit(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_crashkit"))
        .args(args)
        .output()
        .expect("running crashkit");
    assert!(output.status.success(), "crashkit {args:?} failed");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The commands `crashkit --help` lists (clap's `help` left out).
fn commands(help: &str) -> BTreeSet<String> {
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("a `Commands:` section")
        .split("\n\n")
        .next()
        .unwrap_or("");
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// The commands a doc lists in the sentence that starts with `marker`: its
/// backticked words, up to the end of the paragraph, options left out.
fn listed(text: &str, marker: &str, doc: &str) -> BTreeSet<String> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{doc} has no `{marker}` list"));
    let rest = &text[start..];
    let paragraph = rest.split("\n\n").next().unwrap_or(rest);
    let paragraph = paragraph.split("\n//!\n").next().unwrap_or(paragraph);
    paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| !word.starts_with('-') && !word.contains([' ', '/', '.']))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_list_of_commands_is_clap_s() {
    let help = crashkit(&["--help"]);
    let commands = commands(&help);
    assert!(
        commands.contains("info") && commands.len() >= 10,
        "{commands:?}"
    );
    for (doc, marker) in [
        ("README.md", "Its commands:"),
        ("docs/cli.md", "Commands today:"),
        ("tools/crashkit-cli/src/main.rs", "Commands:"),
    ] {
        assert_eq!(
            listed(&read(doc), marker, doc),
            commands,
            "{doc}'s `{marker}` list"
        );
    }
}

#[test]
fn the_manual_s_help_is_the_binary_s() {
    let help = crashkit(&["--help"]);
    let manual = read("docs/cli.md");
    let copy = manual
        .split("$ crashkit --help\n")
        .nth(1)
        .expect("docs/cli.md quotes `$ crashkit --help`")
        .split("\n```")
        .next()
        .unwrap_or("");
    assert_eq!(
        copy.trim_end(),
        help.trim_end(),
        "docs/cli.md's copy of `crashkit --help` is stale"
    );
}

#[test]
fn the_manual_has_a_section_per_command_naming_its_options() {
    let manual = read("docs/cli.md");
    for command in commands(&crashkit(&["--help"])) {
        let marker = format!("\n## `crashkit {command} ");
        let start = manual
            .find(&marker)
            .unwrap_or_else(|| panic!("docs/cli.md has no section `crashkit {command} ...`"));
        let heading = manual[start + 1..].lines().next().unwrap_or("");
        let help = crashkit(&[command.as_str(), "--help"]);
        let options = help.split("Options:\n").nth(1).unwrap_or("");
        for line in options.lines().map(str::trim_start) {
            // `-a, --all  ...` or `--kernel <ELF>  ...`: the spellings of
            // one option, before its description.
            let spellings: Vec<&str> = line
                .split_whitespace()
                .take_while(|word| word.starts_with('-') || word.starts_with('<'))
                .filter(|word| word.starts_with('-'))
                .map(|word| word.trim_end_matches(','))
                .collect();
            if spellings.is_empty()
                || spellings
                    .iter()
                    .any(|word| ["--help", "--json", "--version"].contains(word))
            {
                continue;
            }
            assert!(
                spellings.iter().any(|word| heading.contains(word)),
                "docs/cli.md's `{heading}` does not name {spellings:?}"
            );
        }
    }
}

#[test]
fn the_docs_run_the_cli_from_its_own_package() {
    let package = env!("CARGO_PKG_NAME");
    let commands = commands(&crashkit(&["--help"]));
    for doc in ["README.md", "docs/cli.md", "tools/crashkit-cli/src/main.rs"] {
        for (number, line) in read(doc).lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for window in words.windows(4) {
                let [flag, name, dashes, command] = window else {
                    continue;
                };
                let command = command.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                if *flag == "-p" && *dashes == "--" && commands.contains(command) {
                    assert_eq!(
                        name.trim_matches('`'),
                        package,
                        "{doc}:{}: runs `{command}` from the wrong package",
                        number + 1
                    );
                }
            }
        }
    }
}
