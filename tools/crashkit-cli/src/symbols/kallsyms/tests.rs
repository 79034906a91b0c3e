//! kallsyms tables laid out here as scripts/kallsyms lays them out (a
//! greedy token encoder of its own, each address encoding, both length
//! forms), decoded back; then damaged.

use super::*;

/// Memory: `bytes` at kernel address `base`, nothing else (the ORC
/// tables' tests read theirs through it too).
pub(crate) struct Flat {
    pub(crate) base: u64,
    pub(crate) bytes: Vec<u8>,
}

impl KernelMemory for Flat {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, String> {
        let start = addr
            .checked_sub(self.base)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| format!("{addr:#x} is not mapped"))?;
        self.bytes
            .get(start..start.checked_add(len).ok_or("overflow")?)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("{addr:#x} + {len} is not mapped"))
    }
}

const BASE: u64 = 0xffff_ffff_8200_0000;
const STEXT: u64 = 0xffff_ffff_8100_0000;

/// The 256 tokens: printable characters stand for themselves; the other
/// byte values for strings.
fn token_strings() -> Vec<Vec<u8>> {
    let words = ["_sys", "panic", "st", "ext", "Tp", "_x64", "init", "do_"];
    (0..=255u8)
        .map(|b| {
            if b.is_ascii_graphic() {
                vec![b]
            } else {
                let word = words[usize::from(b) % words.len()];
                format!("{word}{}", char::from(b'a' + b % 26)).into_bytes()
            }
        })
        .collect()
}

/// Greedy longest-token encoding.
fn encode(text: &[u8], tokens: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let (byte, token) = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| text[at..].starts_with(t))
            .max_by_key(|(_, t)| t.len())
            .expect("every printable character is a token");
        out.push(byte as u8);
        at += token.len();
    }
    out
}

struct Image {
    memory: Flat,
    vmcoreinfo: String,
}

/// A table of `symbols` (type, name, address), by `encoding`, with
/// lengths in the two-byte form when `long`.
fn image(symbols: &[(char, &str, u64)], encoding: Encoding, long: bool) -> Image {
    let tokens = token_strings();
    let mut bytes = vec![0u8; 0x10];
    let count = symbols.len() as u32;
    bytes[0..4].copy_from_slice(&count.to_le_bytes());
    let base = STEXT - 0x1000;
    bytes[8..16].copy_from_slice(&base.to_le_bytes());
    let token_index = bytes.len();
    let mut table = Vec::new();
    let mut index = Vec::new();
    for token in &tokens {
        index.extend_from_slice(&(table.len() as u16).to_le_bytes());
        table.extend_from_slice(token);
        table.push(0);
    }
    bytes.extend_from_slice(&index);
    let token_table = bytes.len();
    bytes.extend_from_slice(&table);
    while !bytes.len().is_multiple_of(8) {
        bytes.push(0);
    }
    let addresses = bytes.len();
    for (i, &(_, _, addr)) in symbols.iter().enumerate() {
        let here = BASE + bytes.len() as u64;
        match encoding {
            Encoding::Absolute => bytes.extend_from_slice(&addr.to_le_bytes()),
            Encoding::BaseRelative => {
                bytes.extend_from_slice(&((addr - base) as u32).to_le_bytes());
            }
            Encoding::AbsolutePercpu => {
                let raw = if addr < 0x1_0000_0000 {
                    addr as u32
                } else {
                    (!(addr - base)) as u32
                };
                bytes.extend_from_slice(&raw.to_le_bytes());
            }
            Encoding::PlaceRelative => {
                let raw = addr.wrapping_sub(here) as u32;
                bytes.extend_from_slice(&raw.to_le_bytes());
            }
        }
        let _ = i;
    }
    let names = bytes.len();
    for &(kind, name, _) in symbols {
        let mut text = vec![kind as u8];
        text.extend_from_slice(name.as_bytes());
        let encoded = encode(&text, &tokens);
        let len = encoded.len();
        if long && len >= 0x80 {
            bytes.push((len & 0x7f) as u8 | 0x80);
            bytes.push((len >> 7) as u8);
        } else {
            bytes.push(len as u8);
        }
        bytes.extend_from_slice(&encoded);
    }
    let address_line = match encoding {
        Encoding::Absolute => format!("SYMBOL(kallsyms_addresses)={:x}\n", BASE + addresses as u64),
        Encoding::PlaceRelative => {
            format!("SYMBOL(kallsyms_offsets)={:x}\n", BASE + addresses as u64)
        }
        _ => format!(
            "SYMBOL(kallsyms_offsets)={:x}\nSYMBOL(kallsyms_relative_base)={:x}\n",
            BASE + addresses as u64,
            BASE + 8
        ),
    };
    let vmcoreinfo = format!(
        "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(_stext)={STEXT:x}\nSYMBOL(panic)={:x}\n\
         SYMBOL(mem_section)=ffff888000001000\n\
         SYMBOL(kallsyms_num_syms)={:x}\nSYMBOL(kallsyms_names)={:x}\n\
         SYMBOL(kallsyms_token_table)={:x}\nSYMBOL(kallsyms_token_index)={:x}\n{address_line}",
        STEXT + 0x100,
        BASE,
        BASE + names as u64,
        BASE + token_table as u64,
        BASE + token_index as u64,
    );
    Image {
        memory: Flat { base: BASE, bytes },
        vmcoreinfo,
    }
}

fn long_name() -> String {
    "a_very_long_symbol_name_".repeat(8)
}

fn sample() -> Vec<(char, &'static str, u64)> {
    let long: &'static str = Box::leak(long_name().into_boxed_str());
    vec![
        ('A', "fixed_percpu_data", 0),
        ('D', "cpu_number", 0x2_0000),
        ('T', "_stext", STEXT),
        ('T', "_text", STEXT),
        ('T', "panic", STEXT + 0x100),
        ('t', long, STEXT + 0x3f4),
        ('T', "__x64_sys_init", STEXT + 0x800),
        ('D', "mem_section", STEXT + 0x9000),
        ('B', "_end", STEXT + 0x10000),
    ]
}

/// The decoded table as (type, name, address) rows.
fn listed(table: &Decoded) -> Vec<(char, String, u64)> {
    let c = &table.columns;
    (0..c.addresses.len())
        .map(|i| (char::from(c.kinds[i]), c.name(i).to_owned(), c.addresses[i]))
        .collect()
}

fn decoded(image: &Image) -> Result<Decoded, String> {
    decode(&VmcoreInfo::new(image.vmcoreinfo.as_bytes()), &image.memory)
}

#[test]
fn every_encoding_decodes_to_the_table_it_was_made_from() {
    for encoding in [
        Encoding::Absolute,
        Encoding::BaseRelative,
        Encoding::AbsolutePercpu,
        Encoding::PlaceRelative,
    ] {
        // Per-CPU symbols keep small values only in their own encoding.
        let symbols: Vec<_> = sample()
            .into_iter()
            .filter(|&(_, _, a)| a >= STEXT || encoding != Encoding::BaseRelative)
            .filter(|&(_, _, a)| a >= STEXT || encoding != Encoding::PlaceRelative)
            .collect();
        let image = image(&symbols, encoding, true);
        let table = decoded(&image).unwrap_or_else(|e| panic!("{encoding:?}: {e}"));
        assert_eq!(table.encoding, encoding);
        assert!(table.long_lengths);
        assert_eq!(
            table.agreeing, 2,
            "_stext and panic agree; mem_section is skipped"
        );
        let got = listed(&table);
        let symbols: Vec<(char, String, u64)> = symbols
            .iter()
            .map(|&(k, n, a)| (k, n.to_owned(), a))
            .collect();
        assert_eq!(got, symbols, "{encoding:?}");
    }
}

#[test]
fn the_length_form_the_release_does_not_say_is_tried_second() {
    let image_long = image(&sample(), Encoding::AbsolutePercpu, true);
    let mut info = image_long.vmcoreinfo.replace("6.1.0-test", "5.19.0");
    let old = decode(&VmcoreInfo::new(info.as_bytes()), &image_long.memory).expect("decodes");
    assert!(
        old.long_lengths,
        "one-byte lengths fail on the long name; two-byte ones work"
    );
    // Names shorter than 128 tokens read the same either way.
    let short: Vec<_> = sample().into_iter().filter(|s| s.1.len() < 100).collect();
    let image_short = image(&short, Encoding::AbsolutePercpu, false);
    info = image_short.vmcoreinfo.replace("6.1.0-test", "5.19.0");
    let table = decode(&VmcoreInfo::new(info.as_bytes()), &image_short.memory).expect("decodes");
    assert!(!table.long_lengths);
    assert!(long_lengths_by_release(Some("6.1.0-57-amd64")));
    assert!(long_lengths_by_release(Some("7.0")));
    assert!(!long_lengths_by_release(Some("5.15.0-91-generic")));
}

#[test]
fn a_stext_no_encoding_reproduces_is_refused() {
    let mut image = image(&sample(), Encoding::AbsolutePercpu, true);
    image.vmcoreinfo = image.vmcoreinfo.replace(
        &format!("SYMBOL(_stext)={STEXT:x}"),
        "SYMBOL(_stext)=ffffffff81200000",
    );
    let error = decoded(&image).expect_err("refused");
    assert!(error.contains("no address encoding"), "{error}");
}

#[test]
fn a_vmcoreinfo_symbol_the_table_contradicts_is_refused() {
    let mut image = image(&sample(), Encoding::AbsolutePercpu, true);
    image.vmcoreinfo = image.vmcoreinfo.replace(
        &format!("SYMBOL(panic)={:x}", STEXT + 0x100),
        &format!("SYMBOL(panic)={:x}", STEXT + 0x108),
    );
    let error = decoded(&image).expect_err("refused");
    assert!(error.contains("kallsyms gives panic at"), "{error}");
}

#[test]
fn out_of_order_addresses_are_damage() {
    let mut symbols = sample();
    symbols.swap(4, 6);
    let image = image(&symbols, Encoding::AbsolutePercpu, true);
    let error = decoded(&image).expect_err("refused");
    assert!(error.contains("not in address order"), "{error}");
}

#[test]
fn counts_and_truncation_are_checked_before_anything_is_read() {
    let mut image = image(&sample(), Encoding::AbsolutePercpu, true);
    image.memory.bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let error = decoded(&image).expect_err("refused");
    assert!(error.contains("kallsyms_num_syms"), "{error}");
    let mut image = self::image(&sample(), Encoding::AbsolutePercpu, true);
    let len = image.memory.bytes.len();
    image.memory.bytes.truncate(len - 5);
    let error = decoded(&image).expect_err("refused");
    assert!(error.contains("kallsyms_names, symbol 8"), "{error}");
}

#[test]
fn no_mutation_of_the_tables_panics_or_reads_as_another_valid_table_silently() {
    let image = image(&sample(), Encoding::AbsolutePercpu, true);
    let original = listed(&decoded(&image).expect("decodes"));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut accepted_differently = 0;
    for _ in 0..4000 {
        let mut mutated = Flat {
            base: BASE,
            bytes: image.memory.bytes.clone(),
        };
        for _ in 0..1 + state % 3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state >> 8) as usize % mutated.bytes.len();
            mutated.bytes[at] = (state >> 40) as u8;
        }
        let info = VmcoreInfo::new(image.vmcoreinfo.as_bytes());
        if let Ok(table) = decode(&info, &mutated)
            && listed(&table) != original
        {
            accepted_differently += 1;
        }
    }
    // A changed name can still be a valid name: what matters is no panic
    // and that the checks catch most damage. Addresses and counts are
    // pinned by _stext, order and VMCOREINFO; names are not.
    assert!(accepted_differently < 4000 / 2, "{accepted_differently}");
}
