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
pub struct Named<'t> {
    /// The symbol.
    pub symbol: &'t Symbol,
    /// Bytes from its start.
    pub offset: u64,
    /// Its size (see the module docs).
    pub size: u64,
}

impl std::fmt::Display for Named<'_> {
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

/// A symbol table and where it came from.
#[derive(Debug)]
pub struct Table {
    /// By address (table order among equal addresses).
    symbols: Vec<Symbol>,
    /// `sizes[i]` is `symbols[i]`'s.
    sizes: Vec<u64>,
    /// The first index whose address is in the kernel half.
    first_kernel: usize,
    /// Where the table came from, in words (`kallsyms in the dump`, ...).
    pub source: String,
}

impl Table {
    /// A table of `symbols`, named `source`. `sizes`, where given, are the
    /// source's own (an ELF's `st_size`; 0 means none).
    pub fn new(source: String, mut symbols: Vec<(Symbol, u64)>) -> Self {
        // Stable: equal addresses keep the source's order (kallsyms puts
        // the name Linux prints first).
        symbols.sort_by_key(|(s, _)| s.addr);
        let addresses: Vec<u64> = symbols.iter().map(|(s, _)| s.addr).collect();
        let sizes = symbols
            .iter()
            .enumerate()
            .map(|(i, (symbol, own))| {
                if *own > 0 {
                    return *own;
                }
                // Nothing past the image's end belongs to `_end`, and
                // nothing past the last symbol to it.
                if symbol.name == "_end" {
                    return 0;
                }
                let next = addresses[i..].partition_point(|&a| a <= symbol.addr) + i;
                addresses.get(next).map_or(0, |&a| a - symbol.addr)
            })
            .collect();
        let symbols: Vec<Symbol> = symbols.into_iter().map(|(s, _)| s).collect();
        let first_kernel = symbols.partition_point(|s| s.addr < KERNEL_HALF);
        Self {
            symbols,
            sizes,
            first_kernel,
            source,
        }
    }

    /// The indexes of the symbols named `name`, by address: a scan (a
    /// command looks up a few names; sorting 100 000 names to look up one
    /// would cost more than the scans).
    fn named<'n>(&'n self, name: &'n str) -> impl Iterator<Item = usize> + 'n {
        self.symbols
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.name.len() == name.len() && s.name == name)
            .map(|(i, _)| i)
    }

    /// The symbols named `name` (static functions may share a name).
    pub fn by_name(&self, name: &str) -> Vec<&Symbol> {
        self.named(name).map(|i| &self.symbols[i]).collect()
    }

    /// Every symbol with its size, by address.
    pub fn with_sizes(&self) -> impl Iterator<Item = (&Symbol, u64)> {
        self.symbols.iter().zip(self.sizes.iter().copied())
    }

    /// The symbol `addr` is in: the last one at or below it (the first of
    /// those sharing its address, as Linux names it) whose size covers
    /// it. Kernel-half addresses only: per-CPU offsets are not addresses.
    pub fn name_of(&self, addr: u64) -> Option<Named<'_>> {
        if addr < KERNEL_HALF {
            return None;
        }
        let kernel = &self.symbols[self.first_kernel..];
        let after = kernel.partition_point(|s| s.addr <= addr);
        let last = after.checked_sub(1)?;
        let at = kernel[last].addr;
        let first = kernel[..=last].partition_point(|s| s.addr < at);
        let index = self.first_kernel + first;
        let size = self.sizes[index];
        let offset = addr - at;
        (offset < size || offset == 0).then(|| Named {
            symbol: &self.symbols[index],
            offset,
            size,
        })
    }

    /// `symbol`'s size.
    pub fn size_of(&self, symbol: &Symbol) -> u64 {
        self.named(&symbol.name)
            .find(|&i| self.symbols[i] == *symbol)
            .map_or(0, |i| self.sizes[i])
    }

    /// The symbols whose names match the glob `pattern` (`*` any run,
    /// `?` one character), by address; at most `most`, and how many
    /// matched in all.
    pub fn matching(&self, pattern: &str, most: usize) -> (Vec<&Symbol>, usize) {
        let mut found = Vec::new();
        let mut total = 0;
        for symbol in &self.symbols {
            if glob(pattern.as_bytes(), symbol.name.as_bytes()) {
                total += 1;
                if found.len() < most {
                    found.push(symbol);
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
        decoded.symbols.len(),
        decoded.encoding.name(),
        if decoded.long_lengths {
            ", two-byte lengths"
        } else {
            ""
        },
        decoded.agreeing
    );
    Ok(Table::new(
        source,
        decoded.symbols.into_iter().map(|s| (s, 0)).collect(),
    ))
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
        assert_eq!(table.by_name("panic")[0].addr, k + 0x100);
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
