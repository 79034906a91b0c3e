//! Symbols from a file the user gives: a System.map or a copy of
//! `/proc/kallsyms` (`--system-map`: `ADDRESS TYPE NAME [\t[MODULE]]` a
//! line), or the kernel's ELF (`--kernel`: its `.symtab`), and moving a
//! file's link-time addresses to where KASLR put the kernel.

use super::{START_KERNEL_MAP, Symbol, kallsyms::MOST_SYMBOLS};

/// Parse a System.map or `/proc/kallsyms` text. Every line must be
/// `ADDRESS TYPE NAME`, optionally followed by `[MODULE]`; a bad line is
/// an error naming its number.
pub fn parse_map(text: &[u8]) -> Result<Vec<Symbol>, String> {
    let mut symbols = Vec::new();
    for (number, line) in text.split(|&b| b == b'\n').enumerate() {
        let number = number + 1;
        let bad = |why: &str| {
            format!(
                "line {number}: {why}: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )
        };
        let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(address), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("not ADDRESS TYPE NAME"));
        };
        let module = match fields.next() {
            None => None,
            Some(m) if m.len() > 2 && m.starts_with('[') && m.ends_with(']') => {
                Some(m[1..m.len() - 1].to_owned())
            }
            Some(_) => return Err(bad("a fourth field that is not [MODULE]")),
        };
        if fields.next().is_some() {
            return Err(bad("more than four fields"));
        }
        let addr =
            u64::from_str_radix(address, 16).map_err(|_| bad("an address that is not hex"))?;
        let mut letters = kind.chars();
        let (Some(kind), None) = (letters.next(), letters.next()) else {
            return Err(bad("a type that is not one letter"));
        };
        if !kind.is_ascii_alphabetic() && kind != '?' {
            return Err(bad("a type that is not a letter"));
        }
        if name.len() > 1024 {
            return Err(bad("a name longer than 1024 characters"));
        }
        if symbols.len() >= MOST_SYMBOLS as usize {
            return Err(format!("more than {MOST_SYMBOLS} symbols"));
        }
        symbols.push(Symbol {
            name: name.to_owned(),
            kind,
            addr,
            module,
        });
    }
    if symbols.is_empty() {
        return Err("no symbols in it".into());
    }
    Ok(symbols)
}

/// The symbols of an ELF's `.symtab` (functions, objects and untyped
/// labels with names), each with its `st_size`.
pub fn from_elf(bytes: &[u8]) -> Result<Vec<(Symbol, u64)>, String> {
    use goblin::elf::section_header::{SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS};
    use goblin::elf::sym::{STB_LOCAL, STT_FILE, STT_SECTION};
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| format!("not an ELF file: {e}"))?;
    if elf.syms.is_empty() {
        return Err("no .symtab (a stripped kernel: give --system-map)".into());
    }
    let mut symbols = Vec::new();
    for sym in elf.syms.iter() {
        if sym.st_name == 0 || matches!(sym.st_type(), STT_FILE | STT_SECTION) {
            continue;
        }
        let Some(name) = elf.strtab.get_at(sym.st_name).filter(|n| !n.is_empty()) else {
            continue;
        };
        let section = elf.section_headers.get(sym.st_shndx);
        let letter = match section {
            _ if sym.st_shndx == goblin::elf::section_header::SHN_ABS as usize => 'a',
            Some(s) if s.sh_flags & u64::from(SHF_EXECINSTR) != 0 => 't',
            Some(s) if s.sh_type == SHT_NOBITS => 'b',
            Some(s) if s.sh_flags & u64::from(SHF_WRITE) != 0 => 'd',
            Some(_) => 'r',
            None => continue,
        };
        let kind = if sym.st_bind() == STB_LOCAL {
            letter
        } else {
            letter.to_ascii_uppercase()
        };
        if symbols.len() >= MOST_SYMBOLS as usize {
            return Err(format!("more than {MOST_SYMBOLS} symbols"));
        }
        symbols.push((
            Symbol {
                name: name.to_owned(),
                kind,
                addr: sym.st_value,
                module: None,
            },
            sym.st_size,
        ));
    }
    if symbols.is_empty() {
        return Err("no named symbols in .symtab".into());
    }
    Ok(symbols)
}

/// How far a file's kernel-image addresses must move to be the crashed
/// kernel's: 0 when its `_stext` is VMCOREINFO's already (a copy of
/// `/proc/kallsyms`, or no KASLR), `KERNELOFFSET` when it is the
/// link-time one; anything else is another kernel's file. Without a Linux
/// VMCOREINFO (`stext` None) nothing moves.
pub fn shift(
    symbols: &[Symbol],
    stext: Option<u64>,
    kernel_offset: Option<u64>,
) -> Result<u64, String> {
    let Some(stext) = stext else { return Ok(0) };
    let Some(own) = symbols
        .iter()
        .find(|s| s.name == "_stext" && s.module.is_none())
    else {
        return Err("it has no _stext to place it against the dump's".into());
    };
    let offset = kernel_offset.unwrap_or(0);
    if own.addr == stext {
        Ok(0)
    } else if own.addr.wrapping_add(offset) == stext {
        Ok(offset)
    } else {
        Err(format!(
            "its _stext is {:#x}, the dump's {stext:#x} (KERNELOFFSET {offset:#x}): \
             not the crashed kernel's symbols",
            own.addr
        ))
    }
}

/// Move the kernel image's symbols (not modules', not per-CPU offsets) by
/// `by`.
pub fn relocate(symbols: &mut [Symbol], by: u64) {
    for symbol in symbols {
        if symbol.module.is_none() && symbol.addr >= START_KERNEL_MAP {
            symbol.addr = symbol.addr.wrapping_add(by);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proc_kallsyms_copy_parses_with_its_modules() {
        let text = b"0000000000000000 A fixed_percpu_data\n\
ffffffffb6000000 T _stext\n\
ffffffffc0a01000 t fw_cfg_read\t[qemu_fw_cfg]\n";
        let symbols = parse_map(text).expect("parses");
        assert_eq!(symbols.len(), 3);
        assert_eq!(symbols[2].module.as_deref(), Some("qemu_fw_cfg"));
        assert_eq!(symbols[1].addr, 0xffff_ffff_b600_0000);
        assert_eq!(
            shift(&symbols, Some(0xffff_ffff_b600_0000), Some(0x3500_0000)),
            Ok(0)
        );
    }

    #[test]
    fn link_time_addresses_move_by_kernel_offset_and_others_are_refused() {
        let mut symbols =
            parse_map(b"ffffffff81000000 T _stext\n0000000000001000 D pcpu\n").expect("parses");
        let by = shift(&symbols, Some(0xffff_ffff_b600_0000), Some(0x3500_0000)).expect("moves");
        relocate(&mut symbols, by);
        assert_eq!(symbols[0].addr, 0xffff_ffff_b600_0000);
        assert_eq!(symbols[1].addr, 0x1000);
        assert!(shift(&symbols, Some(0xffff_ffff_a000_0000), Some(0x3500_0000)).is_err());
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, want) in [
            (
                &b"ffffffff81000000 T\n"[..],
                "line 1: not ADDRESS TYPE NAME",
            ),
            (b"\nzz T x\n", "line 2: an address that is not hex"),
            (b"ffff TT x\n", "line 1: a type that is not one letter"),
            (b"ffff T x y\n", "line 1: a fourth field"),
            (b"", "no symbols"),
        ] {
            let error = parse_map(text).expect_err("refused");
            assert!(error.starts_with(want), "{error}");
        }
    }
}
