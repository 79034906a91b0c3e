//! The minimal kernel (`tests/kernel/minimal`) wires crashkit into
//! kernel-base in at most 20 lines, and its README says how many: this test
//! counts them, by the rules its README states, and fails when the count
//! passes 20 or differs from the README's number. It also checks that
//! kernel-base, the kernel the minimal kernel is built on, has no crashkit
//! in it (so no crashkit line hides there).
//!
//! A line is crashkit-specific if it
//! - is in a `[dependencies]` section of the kernel's `Cargo.toml` and names
//!   crashkit;
//! - is Rust code (in `src/` or `build.rs`) that names `crashkit`, the
//!   kernel type `crashkit::kernel!` declares, or a name of
//!   `crashkit::prelude`; or lies inside a `crashkit::...!` invocation;
//! - is a `//` or `///` comment directly above such a line (a `SAFETY`
//!   argument, an item's docs); `//!` file docs and blank lines never count;
//! - is a line of the linker script (kernel-base's, which the kernel links
//!   with) that mentions the crash record outside a comment.

mod common;

use common::{read, root};

/// The most crashkit-specific lines the minimal kernel may have.
const LIMIT: usize = 20;

/// The names `crashkit::prelude` exports, read from the facade's source.
fn prelude_names() -> Vec<String> {
    let source = read(&root().join("crashkit/src/lib.rs"));
    let start = source
        .find("pub mod prelude {")
        .expect("the facade has a prelude");
    let end = start
        + source[start..]
            .find("\n}")
            .expect("the prelude module ends");
    words(&source[start..end])
        .filter(|word| word.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(str::to_owned)
        .collect()
}

/// The identifiers of `text`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
}

/// The code part of a Rust line (before a `//` comment; good enough for
/// this kernel, whose strings hold no `//`).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// One counted line: where, and the text.
#[derive(Debug)]
struct Counted {
    file: String,
    number: usize,
    text: String,
}

/// Opening minus closing brackets on a line of code.
fn bracket_balance(code: &str) -> i32 {
    code.chars()
        .map(|c| match c {
            '{' | '(' | '[' => 1,
            '}' | ')' | ']' => -1,
            _ => 0,
        })
        .sum()
}

/// The crashkit-specific lines of one Rust file.
fn rust_lines(file: &str, source: &str, names: &[String], counted: &mut Vec<Counted>) {
    let lines: Vec<&str> = source.lines().collect();
    let mut marked = vec![false; lines.len()];
    let mut depth = 0i32;
    for (index, line) in lines.iter().enumerate() {
        let code = code(line);
        let in_invocation = depth > 0;
        // A crashkit macro invocation: every line up to its closing bracket.
        if in_invocation || (code.contains("crashkit::") && code.contains('!')) {
            depth += bracket_balance(code);
            marked[index] = true;
            continue;
        }
        if words(code).any(|word| word == "crashkit" || names.iter().any(|name| name == word)) {
            marked[index] = true;
        }
    }
    // Comments directly above a counted line (not `//!`).
    for index in (0..lines.len()).rev() {
        if marked[index] {
            let mut above = index;
            while above > 0 {
                let text = lines[above - 1].trim_start();
                if (text.starts_with("//") && !text.starts_with("//!")) || text.starts_with("#[") {
                    above -= 1;
                    marked[above] = true;
                } else {
                    break;
                }
            }
        }
    }
    for (index, line) in lines.iter().enumerate() {
        if marked[index] && !line.trim().is_empty() {
            counted.push(Counted {
                file: file.to_owned(),
                number: index + 1,
                text: (*line).to_owned(),
            });
        }
    }
}

/// The kernel types `crashkit::kernel!` declares in `source`.
fn kernel_types(source: &str) -> Vec<String> {
    let mut types = Vec::new();
    let mut after_invocation = false;
    for line in source.lines() {
        if line.contains("crashkit::kernel!") {
            after_invocation = true;
            continue;
        }
        if after_invocation {
            let code = code(line).trim();
            if let Some(name) = code
                .strip_prefix("pub ")
                .unwrap_or(code)
                .strip_prefix("struct ")
            {
                types.push(name.trim_end_matches(';').trim().to_owned());
                after_invocation = false;
            }
        }
    }
    types
}

fn count() -> Vec<Counted> {
    let root = root();
    let kernel = root.join("tests/kernel/minimal");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(kernel.join("src")).expect("the kernel's src/") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push(path);
        }
    }
    sources.push(kernel.join("build.rs"));
    sources.sort();
    let texts: Vec<(String, String)> = sources
        .iter()
        .map(|path| {
            let name = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            (name, read(path))
        })
        .collect();
    let mut names = prelude_names();
    for (_, text) in &texts {
        names.extend(kernel_types(text));
    }
    assert!(
        names.iter().any(|n| n == "NotifierLock") && names.iter().any(|n| n == "Crash"),
        "the prelude's names and the kernel type were found: {names:?}"
    );
    let mut counted = Vec::new();
    for (name, text) in &texts {
        rust_lines(name, text, &names, &mut counted);
    }

    let manifest = read(&kernel.join("Cargo.toml"));
    let mut section = "";
    for (index, line) in manifest.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed;
        }
        if section.ends_with("dependencies]") && trimmed.contains("crashkit") {
            counted.push(Counted {
                file: "tests/kernel/minimal/Cargo.toml".to_owned(),
                number: index + 1,
                text: line.to_owned(),
            });
        }
    }

    let script = read(&root.join("tests/kernel/base/linker.ld"));
    let mut in_comment = false;
    for (index, line) in script.lines().enumerate() {
        let mut text = line;
        if in_comment {
            match text.find("*/") {
                Some(end) => {
                    in_comment = false;
                    text = &text[end + 2..];
                }
                None => continue,
            }
        }
        if let Some(start) = text.find("/*") {
            in_comment = !text[start..].contains("*/");
            text = &text[..start];
        }
        if text.to_ascii_lowercase().contains("crash") {
            counted.push(Counted {
                file: "tests/kernel/base/linker.ld".to_owned(),
                number: index + 1,
                text: line.to_owned(),
            });
        }
    }
    counted
}

/// The number the README states: "**N crashkit-specific lines**".
fn stated() -> usize {
    let readme = read(&root().join("tests/kernel/minimal/README.md"));
    let marker = " crashkit-specific lines";
    let at = readme
        .find(marker)
        .expect("the README states \"N crashkit-specific lines\"");
    let digits: String = readme[..at]
        .chars()
        .rev()
        .skip_while(|c| *c == '*')
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .expect("a number before \"crashkit-specific lines\"")
}

#[test]
fn the_minimal_kernel_wires_crashkit_in_at_most_20_lines_as_its_readme_says() {
    let counted = count();
    let listing: Vec<String> = counted
        .iter()
        .map(|c| format!("{}:{}: {}", c.file, c.number, c.text))
        .collect();
    println!("{}", listing.join("\n"));
    assert!(
        counted.len() <= LIMIT,
        "{} crashkit-specific lines, more than {LIMIT}:\n{}",
        counted.len(),
        listing.join("\n")
    );
    assert_eq!(
        counted.len(),
        stated(),
        "the README states a different count; the lines are:\n{}",
        listing.join("\n")
    );
}

#[test]
fn kernel_base_has_no_crashkit_in_it() {
    let base = root().join("tests/kernel/base");
    let manifest = read(&base.join("Cargo.toml"));
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("kernel-base has dependencies");
    assert!(
        !dependencies.contains("crashkit"),
        "kernel-base depends on crashkit"
    );
    for entry in std::fs::read_dir(base.join("src")).expect("kernel-base's src/") {
        let path = entry.expect("a directory entry").path();
        for (index, line) in read(&path).lines().enumerate() {
            let code = code(line);
            assert!(
                !words(code).any(|word| word.starts_with("crashkit")),
                "{}:{}: {line}",
                path.display(),
                index + 1
            );
        }
    }
}

#[test]
fn the_counting_rules_count_what_they_say() {
    let names = vec!["NotifierLock".to_owned(), "Crash".to_owned()];
    let source = "//! docs naming crashkit\n\
                  use kernel_base::Serial;\n\
                  \n\
                  // SAFETY: an argument\n\
                  const APIC: LocalApic = make();\n\
                  /// The console.\n\
                  static CONSOLE: NotifierLock<Crash, Serial> = NotifierLock::new(Serial);\n\
                  static OTHER: u32 = 0;\n\
                  crashkit::kernel! {\n    struct Crash;\n    cpus: 8,\n}\n\
                  fn main() {}\n";
    let mut counted = Vec::new();
    rust_lines("x.rs", source, &names, &mut counted);
    let numbers: Vec<usize> = counted.iter().map(|c| c.number).collect();
    // The console's doc and declaration, and the invocation's four lines;
    // not the file docs, the `use`, the APIC const (no crashkit name in
    // this list) with its comment, nor the unrelated static.
    assert_eq!(numbers, [6, 7, 9, 10, 11, 12]);
}
