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
//!   with) that mentions the crash record outside a comment;
//! - is a line of `build.rs` that passes defmt's linker script (`defmt.x`,
//!   which the crash log's string table needs).
//!
//! The crash log's lines (issue 27: at most 3) are those whose statement
//! names `install_log`, `kernel!`'s `crash_log:` field, and the `defmt.x`
//! line.

mod common;

use common::{read, root};

/// The most crashkit-specific lines the minimal kernel may have for the
/// panic path.
const LIMIT: usize = 20;
/// The most lines wiring the dump path may add (issue 25).
const DUMP_LIMIT: usize = 10;
/// The most lines enabling the crash log may add (issue 27).
const LOG_LIMIT: usize = 3;

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
    /// It wires the dump path (`crashkit::kdump`), not the panic path.
    dump: bool,
    /// It enables the crash log.
    log: bool,
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

/// Whether a line of code names crashkit: the word `crashkit`, or one of
/// `names`.
fn names_crashkit(code: &str, names: &[String]) -> bool {
    words(code).any(|word| word == "crashkit" || names.iter().any(|name| name == word))
}

/// The crashkit-specific lines of one Rust file, each with whether it
/// wires the dump path (its statement names `dump_names` or is the
/// `dump:` field of `crashkit::kernel!`).
fn rust_lines(
    file: &str,
    source: &str,
    names: &[String],
    dump_names: &[String],
    counted: &mut Vec<Counted>,
) {
    let lines: Vec<&str> = source.lines().collect();
    let mut marked = vec![false; lines.len()];
    let mut dump = vec![false; lines.len()];
    let mut log = vec![false; lines.len()];
    let mut depth = 0i32;
    for (index, line) in lines.iter().enumerate() {
        let code = code(line);
        let in_invocation = depth > 0;
        // A crashkit macro invocation: every line up to its closing bracket.
        if in_invocation || (code.contains("crashkit::") && code.contains('!')) {
            depth += bracket_balance(code);
            marked[index] = true;
            dump[index] = code.trim_start().starts_with("dump:");
            log[index] = code.trim_start().starts_with("crash_log:");
            continue;
        }
        if names_crashkit(code, names) {
            marked[index] = true;
        }
        dump[index] = words(code).any(|word| dump_names.iter().any(|name| name == word));
        log[index] = words(code).any(|word| word == "install_log");
    }
    // A statement over several lines (from a line after a `;`, `{` or `}`
    // to the line that closes its brackets with `;`) counts whole when one
    // of its lines does, and wires the dump path when one of them does.
    let mut index = 0;
    while index < lines.len() {
        let previous = lines[..index]
            .iter()
            .rev()
            .map(|line| code(line).trim())
            .find(|code| !code.is_empty());
        let starts =
            previous.is_none_or(|p| p.ends_with(';') || p.ends_with('{') || p.ends_with('}'));
        let mut end = index;
        let mut balance = 0;
        let mut closes = false;
        if starts {
            while end < lines.len() {
                balance += bracket_balance(code(lines[end]));
                if balance <= 0 {
                    closes = code(lines[end]).trim().ends_with(';');
                    break;
                }
                end += 1;
            }
        }
        if closes && end > index && end < lines.len() {
            let any = marked[index..=end].iter().any(|&m| m);
            let wires = dump[index..=end].iter().any(|&d| d);
            let logs = log[index..=end].iter().any(|&l| l);
            for line in index..=end {
                marked[line] |= any;
                dump[line] |= wires && any;
                log[line] |= logs && any;
            }
            index = end + 1;
        } else {
            index += 1;
        }
    }
    // Comments directly above a counted line (not `//!`), with its kind.
    for index in (0..lines.len()).rev() {
        if marked[index] {
            let mut above = index;
            while above > 0 {
                let text = lines[above - 1].trim_start();
                if (text.starts_with("//") && !text.starts_with("//!")) || text.starts_with("#[") {
                    above -= 1;
                    marked[above] = true;
                    dump[above] = dump[index];
                    log[above] = log[index];
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
                dump: dump[index],
                log: log[index],
            });
        }
    }
}

/// The names a `use crashkit::...;` line imports (`self` and globs
/// aside): crashkit's names too.
fn imported_names(source: &str) -> Vec<String> {
    source
        .lines()
        .map(|line| code(line).trim())
        .filter(|code| code.starts_with("use crashkit::"))
        .flat_map(|code| {
            words(code)
                .filter(|word| *word != "use" && *word != "self" && *word != "crashkit")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The dump path's names: those imported from `crashkit::kdump`, the
/// module itself, and the `dump:` hook's return type.
fn dump_names(source: &str) -> Vec<String> {
    let mut names = vec!["kdump".to_owned(), "DumpAttempt".to_owned()];
    for line in source.lines() {
        let code = code(line).trim();
        if let Some(rest) = code.strip_prefix("use crashkit::kdump") {
            names.extend(
                words(rest)
                    .filter(|word| *word != "self")
                    .map(str::to_owned),
            );
        }
    }
    names
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
    let mut dump = Vec::new();
    for (_, text) in &texts {
        names.extend(kernel_types(text));
        names.extend(imported_names(text));
        dump.extend(dump_names(text));
    }
    assert!(
        names.iter().any(|n| n == "NotifierLock") && names.iter().any(|n| n == "Crash"),
        "the prelude's names and the kernel type were found: {names:?}"
    );
    let mut counted = Vec::new();
    for (name, text) in &texts {
        rust_lines(name, text, &names, &dump, &mut counted);
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
                dump: false,
                log: false,
            });
        }
    }

    let build = read(&kernel.join("build.rs"));
    for (index, line) in build.lines().enumerate() {
        if code(line).contains("defmt.x") {
            counted.push(Counted {
                file: "tests/kernel/minimal/build.rs".to_owned(),
                number: index + 1,
                text: line.to_owned(),
                dump: false,
                log: true,
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
                dump: false,
                log: false,
            });
        }
    }
    counted
}

/// The number the README states before `marker` ("**N crashkit-specific
/// lines**", "**M for the dump path**").
fn stated(marker: &str) -> usize {
    let readme = read(&root().join("tests/kernel/minimal/README.md"));
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("the README states \"N{marker}\""));
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
        .unwrap_or_else(|_| panic!("a number before \"{marker}\""))
}

#[test]
fn the_minimal_kernel_wires_crashkit_in_at_most_20_lines_and_its_dump_path_in_10() {
    let counted = count();
    let listing: Vec<String> = counted
        .iter()
        .map(|c| {
            format!(
                "{}:{}:{} {}",
                c.file,
                c.number,
                if c.dump {
                    " [dump]"
                } else if c.log {
                    " [log]"
                } else {
                    ""
                },
                c.text
            )
        })
        .collect();
    println!("{}", listing.join("\n"));
    let dump = counted.iter().filter(|c| c.dump).count();
    let log = counted.iter().filter(|c| c.log && !c.dump).count();
    let panic = counted.len() - dump - log;
    assert!(
        panic <= LIMIT,
        "{panic} crashkit-specific lines for the panic path, more than {LIMIT}:\n{}",
        listing.join("\n")
    );
    assert!(
        dump <= DUMP_LIMIT,
        "{dump} lines wire the dump path, more than {DUMP_LIMIT}:\n{}",
        listing.join("\n")
    );
    assert!(
        log <= LOG_LIMIT,
        "{log} lines enable the crash log, more than {LOG_LIMIT}:\n{}",
        listing.join("\n")
    );
    assert_eq!(
        (counted.len(), dump, log),
        (
            stated(" crashkit-specific lines"),
            stated(" for the dump path"),
            stated(" for the crash log")
        ),
        "the README states other counts (total, dump path, crash log); the lines are:\n{}",
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
    rust_lines("x.rs", source, &names, &[], &mut counted);
    let numbers: Vec<usize> = counted.iter().map(|c| c.number).collect();
    // The console's doc and declaration, and the invocation's four lines;
    // not the file docs, the `use`, the APIC const (no crashkit name in
    // this list) with its comment, nor the unrelated static.
    assert_eq!(numbers, [6, 7, 9, 10, 11, 12]);
}

#[test]
fn a_statement_over_several_lines_counts_whole_and_the_dump_path_apart() {
    let source = "use crashkit::kdump::{self, Capture};\n\
                  fn main() {\n\
                  \x20   let x = 1;\n\
                  \x20   // SAFETY: an argument\n\
                  \x20   let armed = unsafe {\n\
                  \x20       kdump::load(x)\n\
                  \x20   };\n\
                  \x20   other(\n\
                  \x20       x,\n\
                  \x20   );\n\
                  }\n";
    let names = imported_names(source);
    assert_eq!(names, ["kdump", "Capture"]);
    let dump = dump_names(source);
    let mut counted = Vec::new();
    rust_lines("x.rs", source, &names, &dump, &mut counted);
    let lines: Vec<(usize, bool)> = counted.iter().map(|c| (c.number, c.dump)).collect();
    // The `use`, and the `let armed` statement whole with its SAFETY
    // comment, all dump path; not `fn main`, `let x`, nor `other(..)`.
    assert_eq!(
        lines,
        [(1, true), (4, true), (5, true), (6, true), (7, true)]
    );
}
