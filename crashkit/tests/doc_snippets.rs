//! Every Rust snippet in the README and in docs/ compiles: either it is a
//! doctest (its file is included in this crate's docs, so `cargo test`
//! compiles it), or it is marked `ignore` and quoted, word for word, from a
//! source file the build compiles (`<!-- quoted from PATH -->` on the line
//! before the fence; the quoted lines must appear in PATH as a contiguous
//! run). Snippets in other languages may be quoted the same way and are
//! then checked the same way.

mod common;

use std::path::PathBuf;

use common::{read, root};

/// A fenced block: its info string, its lines, the line before its fence,
/// and where it starts.
struct Block {
    info: String,
    lines: Vec<String>,
    before: String,
    line: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let trimmed = lines[index].trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            let start = index;
            let mut body = Vec::new();
            index += 1;
            while index < lines.len() && !lines[index].trim_start().starts_with("```") {
                body.push(lines[index].to_owned());
                index += 1;
            }
            blocks.push(Block {
                info: info.trim().to_owned(),
                lines: body,
                before: start
                    .checked_sub(1)
                    .map_or(String::new(), |b| lines[b].trim().to_owned()),
                line: start + 1,
            });
        }
        index += 1;
    }
    blocks
}

/// The Markdown files whose Rust blocks are doctests of this crate.
fn doctested() -> Vec<String> {
    let lib = read(&root().join("crashkit/src/lib.rs"));
    lib.match_indices("include_str!(\"../../")
        .map(|(at, prefix)| {
            let rest = &lib[at + prefix.len()..];
            rest[..rest.find('"').expect("a closing quote")].to_owned()
        })
        .collect()
}

fn markdown_files() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "tests/kernel", "tests/kernel/minimal"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("a docs directory") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    for krate in [
        "nmi",
        "record",
        "shootdown",
        "notifiers",
        "panic-path",
        "kdump",
    ] {
        let readme = root.join(krate).join("README.md");
        if readme.is_file() {
            files.push(readme);
        }
    }
    files.sort();
    files
}

#[test]
fn every_rust_snippet_is_compiled_or_quoted_from_compiled_code() {
    let root = root();
    let doctested = doctested();
    let mut problems = Vec::new();
    let mut quoted = 0;
    let mut compiled = 0;
    for file in markdown_files() {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for block in blocks(&read(&file)) {
            // rustdoc takes a fence without a language for Rust (in the
            // files it compiles; elsewhere such a fence is a diagram).
            let is_rust = block.info.starts_with("rust")
                || (block.info.is_empty() && doctested.contains(&name));
            let source = block
                .before
                .strip_prefix("<!-- quoted from ")
                .and_then(|rest| rest.strip_suffix(" -->"));
            match source {
                Some(source) => {
                    let text = read(&root.join(source));
                    let lines: Vec<&str> = text.lines().collect();
                    let wanted: Vec<&str> = block.lines.iter().map(String::as_str).collect();
                    let found = !wanted.is_empty()
                        && lines
                            .windows(wanted.len())
                            .any(|window| window == wanted.as_slice());
                    if !found {
                        problems.push(format!(
                            "{name}:{}: the block is not a contiguous quotation of {source}",
                            block.line
                        ));
                    }
                    if is_rust && !block.info.contains("ignore") {
                        problems.push(format!(
                            "{name}:{}: a quoted Rust block is marked `ignore` (it is compiled where it comes from)",
                            block.line
                        ));
                    }
                    quoted += 1;
                }
                None if is_rust => {
                    if block.info.contains("ignore") {
                        problems.push(format!(
                            "{name}:{}: `ignore` without `<!-- quoted from PATH -->`: nothing compiles it",
                            block.line
                        ));
                    } else if !doctested.contains(&name) {
                        problems.push(format!(
                            "{name}:{}: a Rust block in a file the crashkit crate does not include as doctests",
                            block.line
                        ));
                    } else if block.info.contains("text") {
                        problems.push(format!("{name}:{}: `rust,text`", block.line));
                    } else {
                        compiled += 1;
                    }
                }
                None => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!("{compiled} snippets compiled as doctests, {quoted} quoted from compiled files");
    assert!(compiled >= 3 && quoted >= 3, "the guide has both kinds");
}
