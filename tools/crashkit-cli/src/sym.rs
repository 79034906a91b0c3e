//! `crashkit sym DUMP WHAT...`: symbols without debug information. A
//! name gives its address(es), an address (or `NAME+OFF`) the symbol it is
//! in as `name+off/size`, a glob pattern (`*`, `?`) the symbols it
//! matches. And the address syntax every command shares ([`address`]):
//! hex with or without `0x`, as crash reads addresses, or `NAME`,
//! `NAME+OFF`, `NAME-OFF` (offsets hex too).

use std::ops::Deref;
use std::path::Path;

use serde::Serialize;

use crate::open::Opened;
use crate::symbols::{self, Symbol, Table, map};

/// At most this many matches of a pattern are listed.
const MOST_MATCHES: usize = 1000;

/// The table in use: the dump's own kallsyms, or one read from a file.
pub enum Symbols<'o> {
    /// The dump's kallsyms.
    Dump(&'o Table),
    /// A file's (`--system-map`, `--kernel`).
    File(Box<Table>),
}

impl Deref for Symbols<'_> {
    type Target = Table;
    fn deref(&self) -> &Table {
        match self {
            Symbols::Dump(table) => table,
            Symbols::File(table) => table,
        }
    }
}

/// Where symbols come from, as the user asked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Files<'p> {
    /// `--system-map`: a System.map or a copy of /proc/kallsyms.
    pub system_map: Option<&'p Path>,
    /// `--kernel`: the kernel's ELF.
    pub kernel: Option<&'p Path>,
}

/// The symbol table for `dump`: from the file the user gave (moved by
/// KASLR's offset, checked against the dump's kallsyms when it has one),
/// else the dump's kallsyms. Warnings (disagreements) go to standard
/// error.
pub fn table<'o>(dump: &'o Opened<'_>, files: Files<'_>) -> anyhow::Result<Symbols<'o>> {
    let (path, symbols) = match (files.system_map, files.kernel) {
        (Some(path), _) => {
            let map = crate::open::Files::map_plain(path)?;
            let symbols = map::parse_map(&map)
                .map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?
                .into_iter()
                .map(|s| (s, 0))
                .collect::<Vec<_>>();
            (path, symbols)
        }
        (None, Some(path)) => {
            let map = crate::open::Files::map_plain(path)?;
            let symbols =
                map::from_elf(&map).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
            (path, symbols)
        }
        (None, None) => {
            return dump
                .kallsyms()
                .map(Symbols::Dump)
                .map_err(|why| anyhow::anyhow!("{why}"));
        }
    };
    let info = dump.vmcoreinfo();
    let stext = info.and_then(|i| i.number("SYMBOL(_stext)"));
    let offset = info.and_then(|i| i.number("KERNELOFFSET"));
    let mut plain: Vec<Symbol> = symbols.iter().map(|(s, _)| s.clone()).collect();
    let by = map::shift(&plain, stext, offset)
        .map_err(|why| crate::UsageError(format!("{}: {why}", path.display())))?;
    map::relocate(&mut plain, by);
    let mut moved: Vec<(Symbol, u64)> = plain
        .into_iter()
        .zip(symbols.iter().map(|(_, size)| *size))
        .collect();
    moved.retain(|(s, _)| !s.name.is_empty());
    let mut source = format!("{} ({} symbols", path.display(), moved.len());
    if by != 0 {
        source.push_str(&format!(", moved by KERNELOFFSET {by:#x}"));
    }
    if let Ok(kallsyms) = dump.kallsyms() {
        let (agree, differ) = cross_check(&moved, kallsyms);
        source.push_str(&format!("; kallsyms agrees on {agree} names"));
        if let Some((count, first)) = differ {
            eprintln!(
                "crashkit: warning: {} and the dump's kallsyms disagree on {count} names \
                 (first: {first}); using {}",
                path.display(),
                path.display()
            );
        }
    }
    source.push(')');
    Ok(Symbols::File(Box::new(Table::new(source, moved))))
}

/// Names with one address in both tables: how many agree, and how many
/// differ (with the first, in words).
fn cross_check(file: &[(Symbol, u64)], kallsyms: &Table) -> (usize, Option<(usize, String)>) {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (symbol, _) in file {
        if symbol.module.is_none() {
            *counts.entry(&symbol.name).or_default() += 1;
        }
    }
    // The kallsyms addresses of the names the file has once.
    let mut theirs: std::collections::HashMap<&str, Vec<u64>> = std::collections::HashMap::new();
    for (name, addr) in kallsyms.names_and_addresses() {
        if counts.get(name) == Some(&1) {
            theirs.entry(name).or_default().push(addr);
        }
    }
    let (mut agree, mut differ, mut first) = (0, 0, None);
    for (symbol, _) in file {
        if symbol.module.is_some() || counts.get(symbol.name.as_str()) != Some(&1) {
            continue;
        }
        let Some([theirs]) = theirs.get(symbol.name.as_str()).map(Vec::as_slice) else {
            continue;
        };
        if *theirs == symbol.addr {
            agree += 1;
        } else {
            differ += 1;
            first.get_or_insert_with(|| {
                format!(
                    "{} at {:#x} in the file, {theirs:#x} in kallsyms",
                    symbol.name, symbol.addr
                )
            });
        }
    }
    (agree, first.map(|f| (differ, f)))
}

/// A hex number, `0x` optional.
fn hex(text: &str) -> Option<u64> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text)
        .replace('_', "");
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(&digits, 16).ok()
}

/// Parse an address as crash does: hex (`0x` optional); `NAME`;
/// `NAME+OFF` or `NAME-OFF` (OFF hex). `symbols` is called only when a
/// name is used. An all-hex word of 8 or more digits is always an
/// address; a shorter one (`add`, `dead`) is a symbol when one has that
/// name.
pub fn address<'t>(
    text: &str,
    symbols: &mut dyn FnMut() -> anyhow::Result<&'t Table>,
) -> anyhow::Result<u64> {
    let text = text.trim();
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    let has_prefix = digits.len() != text.len();
    if let Some(value) = hex(text)
        && (has_prefix || digits.len() >= 8)
    {
        return Ok(value);
    }
    let (name, offset) = match text.find(['+', '-']) {
        Some(at) if at > 0 => {
            let offset = hex(&text[at + 1..]).ok_or_else(|| {
                crate::UsageError(format!(
                    "{text:?}: the offset {:?} is not a hex number",
                    &text[at + 1..]
                ))
            })?;
            (
                &text[..at],
                if &text[at..=at] == "-" {
                    offset.wrapping_neg()
                } else {
                    offset
                },
            )
        }
        _ => (text, 0),
    };
    let lookup = symbols();
    let found = match &lookup {
        Ok(table) => table.by_name(name),
        Err(_) => Vec::new(),
    };
    let mut addresses: Vec<u64> = found.iter().map(|(s, _)| s.addr).collect();
    addresses.dedup();
    match addresses.as_slice() {
        [one] => Ok(one.wrapping_add(offset)),
        [] => match hex(text) {
            Some(value) => Ok(value),
            None => Err(match lookup {
                Ok(table) => crate::UsageError(format!(
                    "{text:?}: no such symbol, and not a hex address (symbols: {})",
                    table.source
                ))
                .into(),
                Err(why) => crate::UsageError(format!(
                    "{text:?} is not a hex address, and no symbols to name it: {why:#}"
                ))
                .into(),
            }),
        },
        many => {
            let list: Vec<String> = many.iter().take(8).map(|a| format!("{a:#x}")).collect();
            Err(crate::UsageError(format!(
                "{name:?} names {} symbols ({}): give the address",
                many.len(),
                list.join(", ")
            ))
            .into())
        }
    }
}

/// One symbol in an answer.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// `nm`'s type letter.
    pub kind: char,
    /// Its address.
    pub address: u64,
    /// Its size (the gap to the next symbol, for kallsyms).
    pub size: u64,
    /// Its module, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// For an address asked: how far into the symbol it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// What one WHAT found.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// The argument.
    pub query: String,
    /// `name`, `address`, `pattern` or `list` (`--list`).
    pub kind: &'static str,
    /// For an address: its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u64>,
    /// The symbols: a name's (several for a shared name), the one an
    /// address is in (none: in no symbol), a pattern's matches.
    pub symbols: Vec<Entry>,
    /// A pattern's matches beyond those listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_listed: Option<usize>,
}

/// `sym`'s answer.
#[derive(Debug, Serialize)]
pub struct Answers {
    /// Where the symbols came from.
    pub source: String,
    /// One per WHAT, in order.
    pub answers: Vec<Answer>,
}

fn entry((symbol, size): (Symbol, u64), offset: Option<u64>) -> Entry {
    Entry {
        name: symbol.name,
        kind: symbol.kind,
        address: symbol.addr,
        size,
        module: symbol.module,
        offset,
    }
}

/// Answer each of `queries` from `table`.
pub fn answer(table: &Table, queries: &[String]) -> anyhow::Result<Answers> {
    let mut answers = Vec::new();
    for query in queries {
        if symbols::is_pattern(query) {
            let (found, total) = table.matching(query, MOST_MATCHES);
            let listed = found.len();
            answers.push(Answer {
                query: query.clone(),
                kind: "pattern",
                address: None,
                symbols: found.into_iter().map(|s| entry(s, None)).collect(),
                not_listed: (total > listed).then(|| total - listed),
            });
            continue;
        }
        let named = table.by_name(query);
        if !named.is_empty() && !query.contains(['+', '-']) {
            answers.push(Answer {
                query: query.clone(),
                kind: "name",
                address: None,
                symbols: named.into_iter().map(|s| entry(s, None)).collect(),
                not_listed: None,
            });
            continue;
        }
        let addr = address(query, &mut || Ok(table))?;
        answers.push(Answer {
            query: query.clone(),
            kind: "address",
            address: Some(addr),
            symbols: table
                .name_of(addr)
                .map(|n| entry((n.symbol, n.size), Some(n.offset)))
                .into_iter()
                .collect(),
            not_listed: None,
        });
    }
    Ok(Answers {
        source: table.source.clone(),
        answers,
    })
}

/// Every symbol of `table`, by address: one answer of kind `list`.
pub fn list(table: &Table) -> Answers {
    Answers {
        source: table.source.clone(),
        answers: vec![Answer {
            query: "--list".into(),
            kind: "list",
            address: None,
            symbols: table.with_sizes().map(|s| entry(s, None)).collect(),
            not_listed: None,
        }],
    }
}

/// ` [module]` after a module's symbol, nothing after the kernel's.
fn in_module(module: &Option<String>) -> String {
    module.as_ref().map_or(String::new(), |m| format!(" [{m}]"))
}

/// The text of `sym`: crash's `ADDRESS (T) name` lines.
pub fn render(answers: &Answers) -> String {
    let mut out = String::new();
    for answer in &answers.answers {
        let line = |e: &Entry| {
            format!(
                "{:016x} ({}) {}{}",
                e.address,
                e.kind,
                e.name,
                in_module(&e.module)
            )
        };
        match answer.kind {
            "address" => match (answer.address, answer.symbols.first()) {
                (Some(addr), Some(e)) => {
                    out.push_str(&format!(
                        "{addr:016x} ({}) {}+{:#x}/{:#x}{}\n",
                        e.kind,
                        e.name,
                        e.offset.unwrap_or(0),
                        e.size,
                        in_module(&e.module)
                    ));
                }
                (Some(addr), None) => {
                    out.push_str(&format!("{addr:016x} is in no symbol\n"));
                }
                _ => {}
            },
            _ => {
                for e in &answer.symbols {
                    out.push_str(&line(e));
                    if answer.kind == "name" {
                        out.push_str(&format!(" (size {:#x})", e.size));
                    }
                    out.push('\n');
                }
                if answer.kind == "pattern" && answer.symbols.is_empty() {
                    out.push_str(&format!("no symbol matches {:?}\n", answer.query));
                }
                if let Some(more) = answer.not_listed {
                    out.push_str(&format!("({more} more not listed)\n"));
                }
            }
        }
    }
    out
}
