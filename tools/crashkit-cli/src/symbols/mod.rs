//! The crashed kernel's symbols, without its debug information: a table
//! of names and addresses, and the lookups the commands make with it
//! (`sym`, symbolic addresses in `rd` and `vtop`, RIPs named in `cpus`,
//! `regs` and `info`).
//!
//! Sources, by what the user gives:
//! - nothing: a Linux dump's own kallsyms, through VMCOREINFO
//!   ([`kallsyms`]; Linux 6.0 and later);
//! - `--system-map FILE`: a System.map, or a copy of `/proc/kallsyms`
//!   ([`map`]; the only source before 6.0);
//! - `--kernel FILE`: the kernel's ELF (its `.symtab`).
//!
//! A file's link-time addresses are moved by VMCOREINFO's `KERNELOFFSET`
//! (KASLR) when its `_stext` says they are link-time, and a file is
//! checked against kallsyms when the dump has both (`crate::sym::table`).
//!
//! Sizes: kallsyms stores none, so a symbol's size is the distance to the
//! next higher address, as Linux's own `%pS` computes it
//! (`panic+0x118/0x2f4`); an ELF's `st_size` is used where it is set.

pub mod kallsyms;
pub mod map;

use serde::Serialize;

/// `__START_KERNEL_map`: where x86_64 Linux maps its image.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// The kernel half of the address space: per-CPU symbols (absolute
/// offsets below it) are found by name, never by address.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// One symbol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// `nm`'s type letter (`T` text, `D` data, `B` bss, lower case local).
    pub kind: char,
    /// Its address in the crashed kernel (KASLR's offset included).
    pub addr: u64,
    /// The module it belongs to (`/proc/kallsyms`'s `[name]`), if any.
    pub module: Option<String>,
}

/// An address named: the symbol it is in, how far in, the symbol's size.
#[derive(Clone, Debug, Serialize)]
pub struct Named {
    /// The symbol.
    pub symbol: Symbol,
    /// Bytes from its start.
    pub offset: u64,
    /// Its size (see the module docs).
    pub size: u64,
}

impl std::fmt::Display for Named {
    /// `name+0xoff/0xsize`, with ` [module]` for a module's symbol.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}+{:#x}/{:#x}",
            self.symbol.name, self.offset, self.size
        )?;
        if let Some(module) = &self.symbol.module {
            write!(f, " [{module}]")?;
        }
        Ok(())
    }
}

/// Symbols as a table stores them: every name in one string, the rest in
/// columns, by address (the source's order among equal addresses). A
/// distribution kernel has about 100 000 symbols: one allocation per name
/// would be most of the time a command spends on them.
#[derive(Debug, Default)]
pub struct Columns {
    /// Every name, one after another.
    pub names: String,
    /// Each symbol's name: its start in `names` and its length.
    pub spans: Vec<(u32, u32)>,
    /// Each symbol's type letter (ASCII).
    pub kinds: Vec<u8>,
    /// Each symbol's address.
    pub addresses: Vec<u64>,
    /// Each symbol's module, as an index into `module_names` (none for the
    /// kernel's own).
    pub modules: Vec<Option<u32>>,
    /// The modules' names.
    pub module_names: Vec<String>,
    /// Each symbol's size from its source (0: none given).
    pub own_sizes: Vec<u64>,
}

impl Columns {
    /// Append a symbol.
    pub fn push(&mut self, name: &str, kind: u8, address: u64, module: Option<u32>, size: u64) {
        // Names are bounded (1024 bytes) and tables (4 Mi symbols): the
        // offsets fit in 32 bits.
        self.spans
            .push((self.names.len() as u32, name.len() as u32));
        self.names.push_str(name);
        self.kinds.push(kind);
        self.addresses.push(address);
        self.modules.push(module);
        self.own_sizes.push(size);
    }

    /// The name of symbol `index`.
    fn name(&self, index: usize) -> &str {
        let (start, len) = self.spans[index];
        self.names
            .get(start as usize..(start + len) as usize)
            .unwrap_or("")
    }
}

/// A symbol table and where it came from.
#[derive(Debug)]
pub struct Table {
    /// The symbols, by address.
    columns: Columns,
    /// Each symbol's size ([`Table::new`]).
    sizes: Vec<u64>,
    /// The first index whose address is in the kernel half.
    first_kernel: usize,
    /// Where the table came from, in words (`kallsyms in the dump`, ...).
    pub source: String,
}

impl Table {
    /// A table of `symbols`, named `source`; the sizes given (an ELF's
    /// `st_size`) where not 0.
    pub fn new(source: String, mut symbols: Vec<(Symbol, u64)>) -> Self {
        // Stable: equal addresses keep the source's order (kallsyms puts
        // the name Linux prints first).
        symbols.sort_by_key(|(s, _)| s.addr);
        let mut columns = Columns::default();
        for (symbol, size) in &symbols {
            let module = symbol.module.as_ref().map(|m| {
                match columns.module_names.iter().position(|n| n == m) {
                    Some(at) => at as u32,
                    None => {
                        columns.module_names.push(m.clone());
                        (columns.module_names.len() - 1) as u32
                    }
                }
            });
            columns.push(&symbol.name, symbol.kind as u8, symbol.addr, module, *size);
        }
        Self::from_columns(source, columns)
    }

    /// A table of `columns`, already in address order (kallsyms checks its
    /// own order). A symbol's size is its source's, else the distance to
    /// the next higher address; nothing past the image's end belongs to
    /// `_end`, and nothing past the last symbol to it.
    pub fn from_columns(source: String, columns: Columns) -> Self {
        let addresses = &columns.addresses;
        let sizes = (0..addresses.len())
            .map(|index| {
                let at = addresses[index];
                // The first address above this one (equal ones share it).
                let next = addresses[index..].partition_point(|&a| a <= at) + index;
                match (columns.own_sizes[index], addresses.get(next)) {
                    (own, _) if own > 0 => own,
                    _ if columns.name(index) == "_end" => 0,
                    (_, Some(&next)) => next - at,
                    (_, None) => 0,
                }
            })
            .collect();
        let first_kernel = addresses.partition_point(|&a| a < KERNEL_HALF);
        Self {
            columns,
            sizes,
            first_kernel,
            source,
        }
    }

    /// How many symbols.
    pub fn len(&self) -> usize {
        self.columns.addresses.len()
    }

    /// Symbol `index`, with its size.
    fn get(&self, index: usize) -> (Symbol, u64) {
        let c = &self.columns;
        (
            Symbol {
                name: c.name(index).to_owned(),
                kind: char::from(c.kinds[index]),
                addr: c.addresses[index],
                module: c.modules[index].and_then(|m| c.module_names.get(m as usize).cloned()),
            },
            self.sizes[index],
        )
    }

    /// The symbols named `name` (static functions may share a name), with
    /// their sizes, by address: a scan (a command looks up a few names;
    /// an index of 100 000 names would cost more than the scans).
    pub fn by_name(&self, name: &str) -> Vec<(Symbol, u64)> {
        (0..self.len())
            .filter(|&i| {
                self.columns.spans[i].1 as usize == name.len() && self.columns.name(i) == name
            })
            .map(|i| self.get(i))
            .collect()
    }

    /// The address of the one symbol named `name`; none, or several, is
    /// an error that says so.
    pub fn address_of(&self, name: &str) -> Result<u64, String> {
        match self.by_name(name).as_slice() {
            [(symbol, _)] => Ok(symbol.addr),
            [] => Err(format!("no symbol {name}")),
            several => Err(format!("{} symbols are named {name}", several.len())),
        }
    }

    /// Every symbol's name and address, by address.
    pub fn names_and_addresses(&self) -> impl Iterator<Item = (&str, u64)> {
        (0..self.len()).map(|i| (self.columns.name(i), self.columns.addresses[i]))
    }

    /// Every symbol with its size, by address.
    pub fn with_sizes(&self) -> impl Iterator<Item = (Symbol, u64)> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The symbol `addr` is in: the last one at or below it (the first of
    /// those sharing its address, as Linux names it) whose size covers
    /// it. Kernel-half addresses only: per-CPU offsets are not addresses.
    pub fn name_of(&self, addr: u64) -> Option<Named> {
        if addr < KERNEL_HALF {
            return None;
        }
        let kernel = &self.columns.addresses[self.first_kernel..];
        let last = kernel.partition_point(|&a| a <= addr).checked_sub(1)?;
        let at = kernel[last];
        let index = self.first_kernel + kernel[..=last].partition_point(|&a| a < at);
        let (symbol, size) = self.get(index);
        let offset = addr - at;
        (offset < size || offset == 0).then_some(Named {
            symbol,
            offset,
            size,
        })
    }

    /// The symbols whose names match the glob `pattern` (`*` any run,
    /// `?` one character), by address, with their sizes; at most `most`,
    /// and how many matched in all.
    pub fn matching(&self, pattern: &str, most: usize) -> (Vec<(Symbol, u64)>, usize) {
        let mut found = Vec::new();
        let mut total = 0;
        for index in 0..self.len() {
            if glob(pattern.as_bytes(), self.columns.name(index).as_bytes()) {
                total += 1;
                if found.len() < most {
                    found.push(self.get(index));
                }
            }
        }
        (found, total)
    }
}

/// The symbol table of a Linux dump's own kallsyms.
pub fn from_dump(dump: &crate::open::Opened<'_>) -> Result<Table, String> {
    let info = dump
        .vmcoreinfo()
        .ok_or("the dump has no VMCOREINFO (and none was found in memory)")?;
    let decoded = kallsyms::decode(&info, &crate::linux::Memory::new(dump))?;
    let source = format!(
        "kallsyms in the dump ({} symbols, {}{}; {} VMCOREINFO symbols agree)",
        decoded.columns.addresses.len(),
        decoded.encoding.name(),
        if decoded.long_lengths {
            ", two-byte lengths"
        } else {
            ""
        },
        decoded.agreeing
    );
    Ok(Table::from_columns(source, decoded.columns))
}

/// Whether `text` matches the glob `pattern`: `*` any run of characters,
/// `?` one. Linear in `pattern.len() * text.len()` (no backtracking
/// blow-up): the classic two-pointer match with one star to return to.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `text` is a glob pattern rather than a name.
pub fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(name: &str, addr: u64) -> (Symbol, u64) {
        (
            Symbol {
                name: name.into(),
                kind: 'T',
                addr,
                module: None,
            },
            0,
        )
    }

    #[test]
    fn sizes_are_the_gap_to_the_next_higher_address_and_aliases_name_the_first() {
        let k = 0xffff_ffff_8100_0000;
        let table = Table::new(
            "test".into(),
            vec![
                symbol("fixed_percpu_data", 0),
                symbol("_stext", k),
                symbol("_text", k),
                symbol("panic", k + 0x100),
                symbol("after", k + 0x3f4),
                symbol("_end", k + 0x1000),
            ],
        );
        let named = table.name_of(k + 0x218).expect("in panic");
        assert_eq!(named.to_string(), "panic+0x118/0x2f4");
        // Two names at one address: the first in the source's order.
        assert_eq!(
            table.name_of(k + 4).expect("in _stext").to_string(),
            "_stext+0x4/0x100"
        );
        // Per-CPU offsets are not addresses; past `_end` is nothing.
        assert!(table.name_of(0x10).is_none());
        assert!(table.name_of(k + 0x1001).is_none());
        assert_eq!(
            table.name_of(k + 0x1000).expect("_end").to_string(),
            "_end+0x0/0x0"
        );
        assert!(table.name_of(k - 1).is_none());
        assert_eq!(table.by_name("panic")[0].0.addr, k + 0x100);
        let (found, total) = table.matching("_*t", 10);
        assert_eq!((found.len(), total), (2, 2));
    }

    #[test]
    fn glob_matches_as_a_shell_does() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("a*b", "ab", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("*sys_*", "__x64_sys_read", true),
            ("?anic", "panic", true),
            ("?anic", "anic", false),
            (
                "a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ] {
            assert_eq!(
                glob(pattern.as_bytes(), text.as_bytes()),
                expected,
                "{pattern} {text}"
            );
        }
    }
}
