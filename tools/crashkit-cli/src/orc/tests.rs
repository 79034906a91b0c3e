//! ORC tables laid out here from the format's description (the bit
//! layouts of docs/linux-orc.md, written again in [`encode`], not taken
//! from the reader), in each version; read back, looked up, damaged.

use super::*;
use crate::symbols::Symbol;
use crate::symbols::kallsyms::tests::Flat;

/// An entry as the tests describe it: (sp_reg, bp_reg, kind, signal,
/// sp_offset, bp_offset); registers by their `ORC_REG_*` number.
#[derive(Clone, Copy)]
pub(crate) struct Described {
    pub sp_reg: u16,
    pub bp_reg: u16,
    pub kind: Kind,
    pub signal: bool,
    pub sp_offset: i16,
    pub bp_offset: i16,
}

/// The 6 bytes of `d` in `version`, from the layouts:
/// - v1: sp_reg 0-3, bp_reg 4-7, type 8-9 (CALL 0, REGS 1, PARTIAL 2),
///   end 10; an undefined entry is sp_reg 0 with end clear, an end of
///   stack sp_reg 0 with end set; no signal bit.
/// - v2: as v1, signal 10, end 11.
/// - v3: sp_reg 0-3, bp_reg 4-7, type 8-10 (UNDEFINED 0, END_OF_STACK 1,
///   CALL 2, REGS 3, PARTIAL 4), signal 11.
pub(crate) fn encode(d: Described, version: Version) -> [u8; 6] {
    let regs = d.sp_reg | (d.bp_reg << 4);
    let flags = match version {
        Version::V1 | Version::V2 => {
            let end_bit = if version == Version::V1 { 10 } else { 11 };
            let signal = if version == Version::V2 && d.signal {
                1 << 10
            } else {
                0
            };
            match d.kind {
                Kind::Undefined => d.bp_reg << 4,
                Kind::EndOfStack => (d.bp_reg << 4) | (1 << end_bit),
                Kind::Call => regs | signal,
                Kind::Regs => regs | (1 << 8) | signal,
                Kind::RegsPartial => regs | (2 << 8) | signal,
            }
        }
        Version::V3 => {
            let kind = match d.kind {
                Kind::Undefined => 0,
                Kind::EndOfStack => 1,
                Kind::Call => 2,
                Kind::Regs => 3,
                Kind::RegsPartial => 4,
            };
            regs | (kind << 8) | (u16::from(d.signal) << 11)
        }
    };
    let mut out = [0u8; 6];
    out[..2].copy_from_slice(&d.sp_offset.to_le_bytes());
    out[2..4].copy_from_slice(&d.bp_offset.to_le_bytes());
    out[4..].copy_from_slice(&flags.to_le_bytes());
    out
}

pub(crate) const ALL: [Version; 3] = [Version::V1, Version::V2, Version::V3];

pub(crate) fn call(sp_reg: u16, sp_offset: i16) -> Described {
    Described {
        sp_reg,
        bp_reg: 0,
        kind: Kind::Call,
        signal: false,
        sp_offset,
        bp_offset: 0,
    }
}

#[test]
fn every_kind_register_and_offset_reads_back_in_every_version() {
    let kinds = [
        Kind::Call,
        Kind::Regs,
        Kind::RegsPartial,
        Kind::Undefined,
        Kind::EndOfStack,
    ];
    let bases = [
        Base::Undefined,
        Base::PrevSp,
        Base::Dx,
        Base::Di,
        Base::Bp,
        Base::Sp,
        Base::R10,
        Base::R13,
        Base::BpIndirect,
        Base::SpIndirect,
    ];
    for version in ALL {
        for kind in kinds {
            for (sp_number, sp_base) in (0u16..).zip(bases) {
                for (bp_number, bp_base) in (0u16..).zip(bases) {
                    for signal in [false, true] {
                        // Versions 1 and 2 spell "undefined" and "end" with
                        // an undefined sp_reg: other sp_regs cannot say them.
                        let old = version != Version::V3;
                        let special = matches!(kind, Kind::Undefined | Kind::EndOfStack);
                        if old && (special != (sp_number == 0)) {
                            continue;
                        }
                        let d = Described {
                            sp_reg: sp_number,
                            bp_reg: bp_number,
                            kind,
                            signal,
                            sp_offset: -8 * sp_number as i16 + 3,
                            bp_offset: 16 * bp_number as i16 - 7,
                        };
                        let entry = Entry::decode(encode(d, version), version).unwrap();
                        assert_eq!(entry.kind, kind, "{version:?} {kind:?}");
                        assert_eq!(entry.sp_reg, sp_base);
                        assert_eq!(entry.bp_reg, bp_base);
                        assert_eq!(entry.sp_offset, d.sp_offset);
                        assert_eq!(entry.bp_offset, d.bp_offset);
                        let expected_signal = match version {
                            // No bit: the REGS kinds imply it.
                            Version::V1 => matches!(kind, Kind::Regs | Kind::RegsPartial),
                            _ => signal && !(old && special),
                        };
                        assert_eq!(entry.signal, expected_signal, "{version:?} {kind:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn bits_a_version_does_not_have_are_refused() {
    let good = encode(call(5, 8), Version::V1);
    for (version, bit) in [
        (Version::V1, 11),
        (Version::V1, 15),
        (Version::V2, 12),
        (Version::V3, 12),
        (Version::V3, 15),
    ] {
        let mut bytes = good;
        let flags = u16::from_le_bytes([bytes[4], bytes[5]]) | (1 << bit);
        bytes[4..].copy_from_slice(&flags.to_le_bytes());
        let why = Entry::decode(bytes, version).unwrap_err();
        assert!(
            why.contains("does not have"),
            "{version:?} bit {bit}: {why}"
        );
    }
    // Register numbers 10 to 15 do not exist.
    let mut bytes = good;
    bytes[4] = (bytes[4] & 0xf0) | 10;
    assert!(
        Entry::decode(bytes, Version::V3)
            .unwrap_err()
            .contains("register number 10")
    );
    // v1/v2 type 3, v3 types 5 to 7.
    let mut bytes = good;
    bytes[5] = 3;
    assert!(
        Entry::decode(bytes, Version::V1)
            .unwrap_err()
            .contains("frame type 3")
    );
    bytes[5] = 5;
    assert!(
        Entry::decode(bytes, Version::V3)
            .unwrap_err()
            .contains("frame type 5")
    );
}

#[test]
fn the_release_and_the_header_choose_the_version() {
    for (release, version) in [
        ("4.19.0-27-amd64", Some(Version::V1)),
        ("6.1.0-57-amd64", Some(Version::V1)),
        ("6.2.16", Some(Version::V1)),
        ("6.3.13-arch1", Some(Version::V2)),
        ("6.4.0", Some(Version::V3)),
        ("6.12.48+deb13-amd64", Some(Version::V3)),
        ("7.0.1", Some(Version::V3)),
        ("7.1.0", None),
        ("8.0", None),
        ("linux", None),
    ] {
        assert_eq!(Version::of_release(release).ok(), version, "{release}");
    }
    assert_eq!(Version::of_header(&[0; 20]), None);
    assert_eq!(Version::of_header(&[0xfe; 3]), None);
}

/// Tables at `IMAGE`: the address array, then the entries, with the
/// symbols that locate them.
pub(crate) const IMAGE: u64 = 0xffff_ffff_8100_0000;
pub(crate) const TEXT: u64 = 0xffff_ffff_8200_0000;

/// The memory and symbols of tables whose entry `i` starts at
/// `addresses[i]`.
pub(crate) fn tables(
    addresses: &[u64],
    entries: &[Described],
    version: Version,
    header: Option<[u8; 20]>,
) -> (Flat, Table) {
    let count = addresses.len() as u64;
    let ip_start = IMAGE + 0x40;
    let entries_start = ip_start + 4 * count;
    let header_at = IMAGE;
    let mut bytes = vec![0u8; (0x40 + 10 * count + 0x1000) as usize];
    for (index, &address) in (0u64..).zip(addresses) {
        let at = ip_start + 4 * index;
        let offset = i32::try_from(address.wrapping_sub(at) as i64).unwrap();
        let place = (at - IMAGE) as usize;
        bytes[place..place + 4].copy_from_slice(&offset.to_le_bytes());
    }
    for (index, entry) in (0u64..).zip(entries) {
        let place = (entries_start + 6 * index - IMAGE) as usize;
        bytes[place..place + 6].copy_from_slice(&encode(*entry, version));
    }
    let mut symbols = vec![
        ("__start_orc_unwind_ip", ip_start),
        ("__stop_orc_unwind_ip", entries_start),
        ("__start_orc_unwind", entries_start),
        ("__stop_orc_unwind", entries_start + 6 * count),
    ];
    if let Some(hash) = header {
        bytes[..20].copy_from_slice(&hash);
        symbols.push(("__start_orc_header", header_at));
    }
    let table = Table::new(
        "test".into(),
        symbols
            .into_iter()
            .map(|(name, addr)| {
                (
                    Symbol {
                        name: name.into(),
                        kind: 'R',
                        addr,
                        module: None,
                    },
                    0,
                )
            })
            .collect(),
    );
    (Flat { base: IMAGE, bytes }, table)
}

pub(crate) fn release(version: Version) -> &'static str {
    match version {
        Version::V1 => "6.1.0-57-amd64",
        Version::V2 => "6.3.7",
        Version::V3 => "6.12.0",
    }
}

#[test]
fn lookups_find_the_entry_covering_an_address_in_every_version() {
    // Entries at TEXT, +0x10, +0x10 (a terminator first, then the real
    // one), +0x40, +0x1000; the last a terminator.
    let addresses = [TEXT, TEXT + 0x10, TEXT + 0x10, TEXT + 0x40, TEXT + 0x1000];
    let undefined = Described {
        kind: Kind::Undefined,
        ..call(0, 0)
    };
    let entries = [call(5, 8), undefined, call(5, 16), call(4, 16), undefined];
    for version in ALL {
        let (memory, symbols) = tables(&addresses, &entries, version, None);
        let tables = Tables::locate(&symbols, Some(release(version)), &memory).unwrap();
        assert_eq!(tables.layout.count, 5);
        assert_eq!(tables.layout.version, version);
        let offset = |pc| {
            tables
                .find(pc)
                .unwrap()
                .map(|(start, e)| (start, e.sp_reg, e.sp_offset))
        };
        assert_eq!(offset(TEXT - 1), None);
        assert_eq!(offset(TEXT), Some((TEXT, Base::Sp, 8)));
        assert_eq!(offset(TEXT + 0xf), Some((TEXT, Base::Sp, 8)));
        // The real entry, not the terminator at the same address.
        assert_eq!(offset(TEXT + 0x10), Some((TEXT + 0x10, Base::Sp, 16)));
        assert_eq!(offset(TEXT + 0x3f), Some((TEXT + 0x10, Base::Sp, 16)));
        assert_eq!(offset(TEXT + 0x40), Some((TEXT + 0x40, Base::Bp, 16)));
        let (start, last) = tables.find(TEXT + 0x5000).unwrap().unwrap();
        assert_eq!((start, last.kind), (TEXT + 0x1000, Kind::Undefined));
    }
}

#[test]
fn the_header_overrides_the_release_and_an_unknown_one_is_refused() {
    const V3_HASH: [u8; 20] = [
        0xfe, 0x5d, 0x32, 0xbf, 0x58, 0x1b, 0xd6, 0x3b, 0x2c, 0xa9, 0xa5, 0xc6, 0x5b, 0xa5, 0xa6,
        0x25, 0xea, 0xb3, 0xfe, 0x24,
    ];
    let addresses = [TEXT, TEXT + 0x10];
    let entries = [call(5, 8), call(5, 16)];
    let (memory, symbols) = tables(&addresses, &entries, Version::V3, Some(V3_HASH));
    // A 6.3 release with a 6.4 header (a backport): the header wins.
    let tables = Tables::locate(&symbols, Some("6.3.10"), &memory).unwrap();
    assert_eq!(tables.layout.version, Version::V3);
    let (memory, symbols) = tables_with_header([0xab; 20]);
    let why = Tables::locate(&symbols, Some("6.12.0"), &memory)
        .err()
        .unwrap();
    assert!(
        why.contains("abababab") && why.contains("not an ORC format"),
        "{why}"
    );
}

fn tables_with_header(hash: [u8; 20]) -> (Flat, Table) {
    tables(&[TEXT], &[call(5, 8)], Version::V3, Some(hash))
}

#[test]
fn tables_in_another_version_than_the_release_says_are_refused() {
    // v3 entries (type in bits 8-10: CALL is 2) read as v1: type 2 is
    // REGS_PARTIAL there, which reads; but v3's signal bit 11 is past v1's
    // bits. A table of calls with signal set cannot pass as v1.
    let signalled = Described {
        signal: true,
        ..call(5, 8)
    };
    let addresses: Vec<u64> = (0..64).map(|i| TEXT + 16 * i).collect();
    let (memory, symbols) = tables(&addresses, &vec![signalled; 64], Version::V3, None);
    let why = Tables::locate(&symbols, Some("6.1.0"), &memory)
        .err()
        .unwrap();
    assert!(why.contains("do not read as format 1"), "{why}");
    // And v1 entries read as v3: a v1 REGS_PARTIAL (type 2) with its
    // `end` bit (10) set is type 6 in v3's three bits, which v3 has not.
    let partial = Described {
        kind: Kind::RegsPartial,
        ..call(5, 8)
    };
    let mut bytes = encode(partial, Version::V1);
    bytes[5] |= 1 << 2;
    assert!(Entry::decode(bytes, Version::V1).is_ok());
    assert!(
        Entry::decode(bytes, Version::V3)
            .unwrap_err()
            .contains("frame type 6")
    );
}

#[test]
fn damaged_layouts_are_refused_before_anything_is_read() {
    let (memory, symbols) = tables(
        &[TEXT, TEXT + 8],
        &[call(5, 8), call(5, 8)],
        Version::V1,
        None,
    );
    let named = |name: &str| symbols.by_name(name)[0].0.addr;
    let with = |changes: &[(&str, u64)]| {
        let mut list: Vec<(Symbol, u64)> = symbols.with_sizes().collect();
        for (name, addr) in changes {
            list.retain(|(s, _)| s.name != *name);
            if *addr != 0 {
                list.push((
                    Symbol {
                        name: (*name).into(),
                        kind: 'R',
                        addr: *addr,
                        module: None,
                    },
                    0,
                ));
            }
        }
        Table::new("test".into(), list)
    };
    let refused = |table: Table, what: &str| {
        let why = Tables::locate(&table, Some("6.1.0"), &memory)
            .err()
            .unwrap();
        assert!(why.contains(what), "{what}: {why}");
    };
    let ip_start = named("__start_orc_unwind_ip");
    let entries_stop = named("__stop_orc_unwind");
    refused(
        with(&[("__stop_orc_unwind", 0)]),
        "no symbol __stop_orc_unwind",
    );
    refused(
        with(&[("__stop_orc_unwind_ip", ip_start + 6)]),
        "whole number of 4-byte entries",
    );
    refused(
        with(&[("__stop_orc_unwind_ip", ip_start - 4)]),
        "whole number of 4-byte entries",
    );
    refused(
        with(&[("__stop_orc_unwind", entries_stop + 3)]),
        "whole number of 6-byte entries",
    );
    refused(
        with(&[("__stop_orc_unwind", entries_stop + 6)]),
        "2 ORC addresses but 3 ORC entries",
    );
    refused(
        with(&[("__start_orc_unwind_ip", 0x1000)]),
        "is not in the kernel image",
    );
    // A count past the bound: refused without reading 4 Mi entries.
    refused(
        with(&[
            ("__stop_orc_unwind_ip", ip_start + 4 * (MOST_ENTRIES + 1)),
            ("__start_orc_unwind", ip_start + 4 * (MOST_ENTRIES + 1)),
            ("__stop_orc_unwind", ip_start + 10 * (MOST_ENTRIES + 1)),
        ]),
        "more than the",
    );
    // Tables the dump does not have: an error naming the address.
    let (_, symbols) = tables(&[TEXT], &[call(5, 8)], Version::V1, None);
    let empty = Flat {
        base: IMAGE,
        bytes: Vec::new(),
    };
    let why = Tables::locate(&symbols, Some("6.1.0"), &empty)
        .err()
        .unwrap();
    assert!(why.contains("is not mapped"), "{why}");
}
