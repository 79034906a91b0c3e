//! Linux's kallsyms tables read out of a dump's memory, found through
//! VMCOREINFO (Linux 6.0 and later export them there): the symbol table
//! of a distribution kernel without its debug vmlinux.
//!
//! The tables (docs/cli.md, "Symbols without debug information"):
//! - `kallsyms_num_syms`: the count (a 32-bit value; older kernels wrote a
//!   64-bit one, whose low half it is);
//! - `kallsyms_token_table`: 256 NUL-terminated tokens, and
//!   `kallsyms_token_index`, `u16[256]`, each token's offset in it;
//! - `kallsyms_names`: per symbol a length, then that many token bytes,
//!   each standing for its token. Since 6.1 a length with bit 7 set takes a
//!   second byte, `(b0 & 0x7f) | b1 << 7`; the dump does not say which form
//!   is in use, so the release chooses it and the other is tried when it
//!   fails. The first decoded character is `nm`'s type letter;
//! - the addresses: `kallsyms_addresses` (`u64` each), or
//!   `kallsyms_offsets` (32 bits each) with `kallsyms_relative_base`. The
//!   offsets have had three meanings ([`Encoding`]); the one that
//!   reproduces VMCOREINFO's `SYMBOL(_stext)` is the kernel's.
//!
//! Everything is hostile input: counts and lengths are bounded before
//! anything is allocated, every token is inside the token table, every
//! name decodes to a type letter and printable ASCII, the addresses are in
//! order, and every `SYMBOL()` VMCOREINFO names in the kernel image must
//! agree with the table ([`decode`]).

use crashkit_dump_format::vmcoreinfo::VmcoreInfo;

use super::{Columns, START_KERNEL_MAP};

/// The most symbols a table may claim (a distribution kernel has about
/// 150 000; Linux's own limit is far above what fits in its image).
pub const MOST_SYMBOLS: u32 = 1 << 22;
/// The most bytes `kallsyms_names` may take.
const MOST_NAME_BYTES: u64 = 64 << 20;
/// The longest name, in characters, type letter included (Linux's
/// `KSYM_NAME_LEN` is 512).
const LONGEST_NAME: usize = 1024;
/// How much of `kallsyms_token_table` is read past the last token's start
/// for that token's bytes.
const LONGEST_TOKEN: usize = 256;

/// Reads the crashed kernel's memory by kernel virtual address.
pub trait KernelMemory {
    /// `len` bytes at `addr`, all of them, or why not (in words, with the
    /// address).
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, String>;
}

/// How `kallsyms_offsets` gives an address (`off` is entry `i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// `kallsyms_addresses[i]`, no offsets (`CONFIG_KALLSYMS_BASE_RELATIVE=n`).
    Absolute,
    /// `relative_base + (u32)off` (Linux 4.6 to 6.x).
    BaseRelative,
    /// `off >= 0 ? off : relative_base - 1 - off` with `off` signed
    /// (`CONFIG_KALLSYMS_ABSOLUTE_PERCPU`, Linux 4.6 to 6.15): per-CPU
    /// symbols keep their small absolute values.
    AbsolutePercpu,
    /// `&kallsyms_offsets[i] + (i32)off` (Linux 7.0 on, no relative base).
    PlaceRelative,
}

impl Encoding {
    /// The address entry `index` gives, its raw value being `raw`.
    fn address(self, raw: u64, index: usize, offsets: u64, base: u64) -> u64 {
        match self {
            Encoding::Absolute => raw,
            Encoding::BaseRelative => base.wrapping_add(raw & 0xffff_ffff),
            Encoding::AbsolutePercpu => {
                let signed = raw as u32 as i32;
                if signed >= 0 {
                    signed as u64
                } else {
                    base.wrapping_sub(1).wrapping_sub(i64::from(signed) as u64)
                }
            }
            Encoding::PlaceRelative => offsets
                .wrapping_add(index as u64 * 4)
                .wrapping_add(i64::from(raw as u32 as i32) as u64),
        }
    }

    /// Its name in the text.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Absolute => "absolute addresses",
            Encoding::BaseRelative => "base-relative offsets",
            Encoding::AbsolutePercpu => "base-relative offsets with absolute per-CPU symbols",
            Encoding::PlaceRelative => "place-relative offsets",
        }
    }
}

/// The table as decoded, in the kernel's order (by address), with how.
#[derive(Debug)]
pub struct Decoded {
    /// Every symbol, in table order (no modules, no sizes).
    pub columns: Columns,
    /// How the addresses were encoded.
    pub encoding: Encoding,
    /// Whether names' lengths took the two-byte form.
    pub long_lengths: bool,
    /// VMCOREINFO `SYMBOL()`s in the kernel image that the table has,
    /// all agreeing (the check [`decode`] makes).
    pub agreeing: usize,
}

/// Where VMCOREINFO puts the tables.
#[derive(Clone, Copy, Debug)]
struct Tables {
    num_syms: u64,
    names: u64,
    token_table: u64,
    token_index: u64,
    /// `kallsyms_offsets` with `kallsyms_relative_base` (absent from 7.0),
    /// or `kallsyms_addresses`.
    addresses: Addresses,
}

#[derive(Clone, Copy, Debug)]
enum Addresses {
    Offsets { offsets: u64, base: Option<u64> },
    Absolute(u64),
}

fn tables(info: &VmcoreInfo<'_>) -> Result<Tables, String> {
    let symbol = |name: &str| info.number(&format!("SYMBOL({name})"));
    let need = |name: &str| {
        symbol(name).ok_or_else(|| {
            format!(
                "VMCOREINFO has no SYMBOL({name}): kallsyms is not in it (Linux 6.0 and later \
                 put it there); give --system-map or --kernel"
            )
        })
    };
    let addresses = match (symbol("kallsyms_offsets"), symbol("kallsyms_addresses")) {
        (Some(offsets), _) => Addresses::Offsets {
            offsets,
            base: symbol("kallsyms_relative_base"),
        },
        (None, Some(absolute)) => Addresses::Absolute(absolute),
        (None, None) => {
            return Err("VMCOREINFO names neither SYMBOL(kallsyms_offsets) nor \
                 SYMBOL(kallsyms_addresses); give --system-map or --kernel"
                .into());
        }
    };
    Ok(Tables {
        num_syms: need("kallsyms_num_syms")?,
        names: need("kallsyms_names")?,
        token_table: need("kallsyms_token_table")?,
        token_index: need("kallsyms_token_index")?,
        addresses,
    })
}

/// Whether the release (`OSRELEASE`) is Linux 6.1 or later, where a name's
/// length may take two bytes. An unreadable release counts as new.
pub fn long_lengths_by_release(release: Option<&str>) -> bool {
    let Some(release) = release else { return true };
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 1),
        _ => true,
    }
}

fn u16_le(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// `len` bytes at `addr` of `what`, exactly that many.
fn read(memory: &dyn KernelMemory, addr: u64, len: usize, what: &str) -> Result<Vec<u8>, String> {
    match memory.read(addr, len) {
        Ok(bytes) if bytes.len() == len => Ok(bytes),
        Ok(bytes) => Err(format!(
            "{what}: {} bytes at {addr:#x} read as {}",
            len,
            bytes.len()
        )),
        Err(why) => Err(format!("{what}: {why}")),
    }
}

/// Decode the kallsyms tables VMCOREINFO `info` locates, reading `memory`.
pub fn decode(info: &VmcoreInfo<'_>, memory: &dyn KernelMemory) -> Result<Decoded, String> {
    let tables = tables(info)?;
    let stext = info
        .number("SYMBOL(_stext)")
        .ok_or("VMCOREINFO has no SYMBOL(_stext) to check kallsyms' addresses against")?;
    let count_bytes = read(memory, tables.num_syms, 4, "kallsyms_num_syms")?;
    let count = u32::from_le_bytes([
        count_bytes[0],
        count_bytes[1],
        count_bytes[2],
        count_bytes[3],
    ]);
    if count == 0 || count > MOST_SYMBOLS {
        return Err(format!(
            "kallsyms_num_syms at {:#x} says {count} symbols (1 to {MOST_SYMBOLS} expected)",
            tables.num_syms
        ));
    }
    let tokens = tokens(&tables, memory)?;
    let first_guess = long_lengths_by_release(info.get("OSRELEASE"));
    let (mut columns, long_lengths) = match names(&tables, memory, count, &tokens, first_guess) {
        Ok(columns) => (columns, first_guess),
        Err(first) => match names(&tables, memory, count, &tokens, !first_guess) {
            Ok(columns) => (columns, !first_guess),
            Err(_) => return Err(first),
        },
    };
    let (raw, offsets, base) = raw_addresses(&tables, memory, count)?;
    let stext_index = (0..columns.spans.len())
        .find(|&i| columns.name(i) == "_stext")
        .ok_or("kallsyms has no _stext to check its addresses against")?;
    let candidates: &[Encoding] = match tables.addresses {
        Addresses::Absolute(_) => &[Encoding::Absolute],
        Addresses::Offsets { base: Some(_), .. } => &[
            Encoding::BaseRelative,
            Encoding::AbsolutePercpu,
            Encoding::PlaceRelative,
        ],
        Addresses::Offsets { base: None, .. } => &[Encoding::PlaceRelative],
    };
    let encoding = candidates
        .iter()
        .copied()
        .find(|e| e.address(raw[stext_index], stext_index, offsets, base) == stext)
        .ok_or_else(|| {
            format!(
                "no address encoding of kallsyms_offsets gives _stext (entry {stext_index}) \
                 VMCOREINFO's {stext:#x}: the tables are damaged or of an unknown kind"
            )
        })?;
    columns.addresses = raw
        .iter()
        .enumerate()
        .map(|(index, &value)| encoding.address(value, index, offsets, base))
        .collect();
    // scripts/kallsyms sorts the table by address.
    let addresses = &columns.addresses;
    if let Some(at) = addresses.windows(2).position(|w| w[1] < w[0]) {
        return Err(format!(
            "kallsyms is not in address order at entry {} ({} {:#x} after {} {:#x}): damaged",
            at + 1,
            columns.name(at + 1),
            addresses[at + 1],
            columns.name(at),
            addresses[at]
        ));
    }
    let agreeing = check_against(info, &columns)?;
    Ok(Decoded {
        columns,
        encoding,
        long_lengths,
        agreeing,
    })
}

/// Every `SYMBOL(name)` of VMCOREINFO whose value is in the kernel image
/// (`SYMBOL(mem_section)` is a pointer's value, in the direct map) and
/// which the table has must be one of the table's addresses for that name.
fn check_against(info: &VmcoreInfo<'_>, columns: &Columns) -> Result<usize, String> {
    // (name, VMCOREINFO's address, the table's addresses for it): a few
    // dozen names, so one pass over the table with a short list.
    let mut wanted: Vec<(&str, u64, Vec<u64>)> = info
        .entries()
        .filter_map(|(key, _)| {
            let name = key.strip_prefix("SYMBOL(")?.strip_suffix(')')?;
            let value = info.number(key).filter(|&v| v >= START_KERNEL_MAP)?;
            Some((name, value, Vec::new()))
        })
        .collect();
    for index in 0..columns.spans.len() {
        let name = columns.name(index);
        for (wanted_name, _, found) in &mut wanted {
            if name.len() == wanted_name.len() && name == *wanted_name {
                found.push(columns.addresses[index]);
            }
        }
    }
    let mut agreeing = 0;
    for (name, value, found) in &wanted {
        if found.is_empty() {
            continue;
        }
        if !found.contains(value) {
            return Err(format!(
                "kallsyms gives {name} at {:#x}, VMCOREINFO at {value:#x}: one of them is wrong",
                found[0]
            ));
        }
        agreeing += 1;
    }
    Ok(agreeing)
}

/// The 256 tokens.
fn tokens(tables: &Tables, memory: &dyn KernelMemory) -> Result<Vec<Vec<u8>>, String> {
    let index = read(memory, tables.token_index, 512, "kallsyms_token_index")?;
    let starts: Vec<usize> = (0..256)
        .map(|i| usize::from(u16_le(&index, i * 2)))
        .collect();
    let last = starts.iter().copied().max().unwrap_or(0);
    // The table's end is not exported: read a token's worth past the last
    // start, or (at the end of mapped memory) just to it.
    let mut table = Err(String::new());
    for past in [LONGEST_TOKEN, 64, 16, 4, 1] {
        table = read(
            memory,
            tables.token_table,
            last + past,
            "kallsyms_token_table",
        );
        if table.is_ok() {
            break;
        }
    }
    let table = table?;
    starts
        .iter()
        .enumerate()
        .map(|(token, &start)| {
            let rest = &table[start..];
            let end = rest.iter().position(|&b| b == 0).ok_or_else(|| {
                format!(
                    "kallsyms token {token:#04x} at offset {start} of kallsyms_token_table \
                     has no end within {LONGEST_TOKEN} bytes"
                )
            })?;
            Ok(rest[..end].to_vec())
        })
        .collect()
}

/// `kallsyms_names` read a page at a time.
struct Stream<'m> {
    memory: &'m dyn KernelMemory,
    /// The next address to read.
    next: u64,
    /// Bytes read and not yet taken, from `at`.
    buffer: Vec<u8>,
    at: usize,
    /// Bytes read in all.
    read: u64,
}

impl Stream<'_> {
    /// The next `n` bytes, reading pages as needed.
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        while self.buffer.len() - self.at < n {
            if self.read >= MOST_NAME_BYTES {
                return Err(format!(
                    "kallsyms_names runs past {} MiB",
                    MOST_NAME_BYTES >> 20
                ));
            }
            // Drop what was taken before growing.
            self.buffer.drain(..self.at);
            self.at = 0;
            // To the page's end; at the end of what is readable (the
            // table's last page cut short), a little at a time.
            let len = 4096 - (self.next % 4096) as usize;
            let bytes = read(self.memory, self.next, len, "kallsyms_names")
                .or_else(|_| read(self.memory, self.next, len.min(16), "kallsyms_names"))
                .or_else(|_| read(self.memory, self.next, 1, "kallsyms_names"))?;
            self.next = self.next.wrapping_add(bytes.len() as u64);
            self.read += bytes.len() as u64;
            self.buffer.extend_from_slice(&bytes);
        }
        let taken = &self.buffer[self.at..self.at + n];
        self.at += n;
        Ok(taken)
    }
}

/// Every name and type letter, into columns (addresses 0 until known).
fn names(
    tables: &Tables,
    memory: &dyn KernelMemory,
    count: u32,
    tokens: &[Vec<u8>],
    long_lengths: bool,
) -> Result<Columns, String> {
    let mut stream = Stream {
        memory,
        next: tables.names,
        buffer: Vec::new(),
        at: 0,
        read: 0,
    };
    // Grown as names decode: a hostile count allocates nothing up front
    // (each name takes at least two bytes of the bounded stream).
    let mut columns = Columns::default();
    // A constant start; it grows to at most LONGEST_NAME plus one token
    // (each token ends within LONGEST_TOKEN bytes), checked per token.
    let mut expanded = Vec::with_capacity(64);
    for index in 0..count {
        let fail = |why: String| format!("kallsyms_names, symbol {index}: {why}");
        let mut len = usize::from(stream.take(1).map_err(fail)?[0]);
        if long_lengths && len & 0x80 != 0 {
            len = (len & 0x7f) | usize::from(stream.take(1).map_err(fail)?[0]) << 7;
        }
        if len == 0 {
            return Err(fail("an empty name".into()));
        }
        expanded.clear();
        for &token in stream.take(len).map_err(fail)? {
            expanded.extend_from_slice(&tokens[usize::from(token)]);
            if expanded.len() > LONGEST_NAME {
                return Err(fail(format!(
                    "a name longer than {LONGEST_NAME} characters"
                )));
            }
        }
        let (&kind, name) = expanded
            .split_first()
            .ok_or_else(|| fail("a name of empty tokens".into()))?;
        if !kind.is_ascii_alphabetic() && kind != b'?' || name.is_empty() {
            return Err(fail(format!(
                "decodes to {:?}, not a type letter and a name",
                String::from_utf8_lossy(&expanded)
            )));
        }
        // Printable ASCII, so UTF-8.
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| n.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                fail(format!(
                    "decodes to {:?}, not printable ASCII",
                    String::from_utf8_lossy(name)
                ))
            })?;
        columns.push(name, kind, 0, None, 0);
    }
    Ok(columns)
}

/// The raw address entries (zero-extended), the offsets table's address
/// and the relative base (0 when there is none).
fn raw_addresses(
    tables: &Tables,
    memory: &dyn KernelMemory,
    count: u32,
) -> Result<(Vec<u64>, u64, u64), String> {
    match tables.addresses {
        Addresses::Absolute(at) => {
            let bytes = read(memory, at, count as usize * 8, "kallsyms_addresses")?;
            let raw = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Ok((raw, at, 0))
        }
        Addresses::Offsets { offsets, base } => {
            let bytes = read(memory, offsets, count as usize * 4, "kallsyms_offsets")?;
            let raw = bytes
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            let base = match base {
                Some(at) => {
                    let b = read(memory, at, 8, "kallsyms_relative_base")?;
                    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                }
                None => 0,
            };
            Ok((raw, offsets, base))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
