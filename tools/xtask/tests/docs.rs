//! The docs cannot drift from the tree: every repository path they name
//! exists, and the crate graph docs/ARCHITECTURE.md states is the one
//! `cargo metadata` reports.
//!
//! A path is "named" when a doc writes it in backticks or as a link target
//! and it starts at the repository's root (one of its top-level folders or
//! files) or, for a link, is relative to the doc. Placeholders (`…`, `*`,
//! `<`, `N`-style templates) and things that are not paths (commands with
//! spaces, URLs) are skipped; `path:line` and `path#anchor` are checked
//! without their suffix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root (this crate is `tools/xtask`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// The docs whose paths are checked: README.md, every crate's and folder's
/// README.md, and docs/*.md. Found by walking the tree (not `git ls-files`:
/// the suite runs where git is not installed, as in a fresh machine's CI),
/// past build output (`target`) and hidden folders (`.git`).
fn docs(root: &Path) -> Vec<PathBuf> {
    let mut docs = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|error| panic!("{}: {error}", folder.display()));
        for entry in entries {
            let entry = entry.expect("a folder entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let kind = entry.file_type().expect("a file type");
            if kind.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    folders.push(path);
                }
            } else if name == "README.md" || (name.ends_with(".md") && folder == root.join("docs"))
            {
                docs.push(path);
            }
        }
    }
    assert!(docs.len() > 10, "only {} docs found", docs.len());
    docs.sort();
    docs
}

/// Backticked spans and link targets of a markdown text, with their line
/// numbers and whether each is a link.
fn spans(text: &str) -> Vec<(usize, String, bool)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for span in between(line, "`", "`") {
            found.push((number, span.to_owned(), false));
        }
        for target in between(line, "](", ")") {
            found.push((number, target.to_owned(), true));
        }
    }
    found
}

/// The pieces of `line` between each `open` and the `close` after it.
fn between<'a>(line: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut pieces = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(close) else { break };
        pieces.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    pieces
}

/// `span` as a repository path to check, if it is one: relative to the
/// root when it starts with a top-level entry, relative to `dir` when it is
/// a link; `None` for anything else.
fn as_path(
    span: &str,
    is_link: bool,
    top: &BTreeSet<String>,
    dir: &Path,
    root: &Path,
) -> Option<PathBuf> {
    if span.contains("://") || span.starts_with('#') || span.starts_with("mailto:") {
        return None;
    }
    if span.contains(|c: char| c.is_whitespace() || "…*<>{}$|=,;'\"".contains(c)) {
        return None;
    }
    let path = span.split(['#', ':']).next()?.trim_end_matches('/');
    if path.is_empty() || path.starts_with('~') || path.starts_with('/') || path.starts_with('-') {
        return None;
    }
    let first = path.split('/').next()?;
    if top.contains(first) && (path.contains('/') || top.contains(path)) {
        return Some(root.join(path));
    }
    if is_link {
        return Some(dir.join(path));
    }
    None
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = root();
    let top: BTreeSet<String> = std::fs::read_dir(&root)
        .expect("the root")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target" && name != ".git")
        .collect();
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in docs(&root) {
        let text = std::fs::read_to_string(&doc).expect("a doc");
        let dir = doc.parent().expect("a folder");
        for (line, span, is_link) in spans(&text) {
            let Some(path) = as_path(&span, is_link, &top, dir, &root) else {
                continue;
            };
            checked += 1;
            if !path.exists() {
                let doc = doc.strip_prefix(&root).unwrap_or(&doc);
                missing.push(format!("{}:{line}: `{span}`", doc.display()));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} paths found: the scan is broken"
    );
    assert!(
        missing.is_empty(),
        "paths the docs name that do not exist:\n{}",
        missing.join("\n")
    );
}

/// One crate as the graph states it: its folder, the crates of ours it
/// depends on, and its other dependencies (`NAME?` for an optional one).
#[derive(Debug, PartialEq, Eq)]
struct Node {
    folder: String,
    ours: BTreeSet<String>,
    others: BTreeSet<String>,
}

/// The backticked names of one table cell, comma-separated items, each
/// `NAME?` when its item says "optional".
fn names(cell: &str) -> BTreeSet<String> {
    cell.split(',')
        .filter_map(|item| {
            let start = item.find('`')?;
            let end = item[start + 1..].find('`')? + start + 1;
            let name = &item[start + 1..end];
            Some(if item.contains("optional") {
                format!("{name}?")
            } else {
                name.to_owned()
            })
        })
        .collect()
}

/// The table under docs/ARCHITECTURE.md's "## Crate graph".
fn stated_graph(text: &str) -> BTreeMap<String, Node> {
    let section = text
        .split("\n## Crate graph")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a `## Crate graph` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut graph = BTreeMap::new();
    for row in section.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').collect();
        assert_eq!(cells.len(), 4, "a crate graph row has 4 cells: {row}");
        let name = names(cells[0]).into_iter().next().expect("a crate name");
        let folder = names(cells[1]).into_iter().next().expect("a folder");
        let node = Node {
            folder: folder.trim_end_matches('/').to_owned(),
            ours: names(cells[2]),
            others: names(cells[3]),
        };
        assert!(graph.insert(name.clone(), node).is_none(), "{name} twice");
    }
    graph
}

/// The workspace's crates and normal dependencies, from `cargo metadata`.
fn cargo_graph(root: &Path) -> BTreeMap<String, Node> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let ours: BTreeSet<&str> = packages
        .iter()
        .filter_map(|package| package["name"].as_str())
        .collect();
    let mut graph = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().expect("a name");
        let manifest = Path::new(package["manifest_path"].as_str().expect("a manifest"));
        let folder = manifest
            .parent()
            .and_then(|dir| dir.strip_prefix(root).ok())
            .expect("a crate inside the repository")
            .to_string_lossy()
            .into_owned();
        let mut node = Node {
            folder,
            ours: BTreeSet::new(),
            others: BTreeSet::new(),
        };
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            if !dependency["kind"].is_null() {
                continue; // dev- and build-dependencies are not layering
            }
            let dependency_name = dependency["name"].as_str().expect("a dependency name");
            let optional = dependency["optional"].as_bool().unwrap_or(false);
            let entry = if optional {
                format!("{dependency_name}?")
            } else {
                dependency_name.to_owned()
            };
            if ours.contains(dependency_name) {
                node.ours.insert(entry);
            } else {
                node.others.insert(entry);
            }
        }
        graph.insert(name.to_owned(), node);
    }
    graph
}

#[test]
fn the_crate_graph_architecture_states_is_cargos() {
    let root = root();
    let text = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("the doc");
    let stated = stated_graph(&text);
    let actual = cargo_graph(&root);
    let names: BTreeSet<&String> = stated.keys().chain(actual.keys()).collect();
    let mut differences = Vec::new();
    for name in names {
        match (stated.get(name), actual.get(name)) {
            (Some(said), Some(is)) if said == is => {}
            (said, is) => differences.push(format!("{name}: the doc says {said:?}, cargo {is:?}")),
        }
    }
    assert!(
        differences.is_empty(),
        "docs/ARCHITECTURE.md's crate graph is not the workspace's:\n{}",
        differences.join("\n")
    );
}
