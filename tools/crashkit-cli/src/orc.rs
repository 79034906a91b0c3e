//! Linux's ORC unwind tables, read from the crashed kernel's memory: where
//! they are (kallsyms), which format version they are in, and the entry
//! that describes an instruction address. The walk that uses them is
//! `bt::orc`; the format is in docs/linux-orc.md.
//!
//! The tables are two arrays objtool emits and the kernel keeps, sorted by
//! address (since Linux 5.6):
//! - `__start_orc_unwind_ip` .. `__stop_orc_unwind_ip`: one `i32` per
//!   entry, place-relative: entry `i` starts at
//!   `&ip[i] + ip[i]`, and covers up to the next entry's address;
//! - `__start_orc_unwind` .. `__stop_orc_unwind`: 6-byte entries
//!   `{ i16 sp_offset; i16 bp_offset; u16 flags }`, little-endian.
//!
//! The flags' layout changed twice. Version 1 (Linux 4.14 to 6.2):
//! `sp_reg` bits 0-3, `bp_reg` 4-7, `type` 8-9 (CALL 0, REGS 1,
//! REGS_PARTIAL 2), `end` bit 10. Version 2 (6.3): `signal` at bit 10 and
//! `end` at 11. Version 3 (6.4 on): `type` bits 8-10 (UNDEFINED 0,
//! END_OF_STACK 1, CALL 2, REGS 3, REGS_PARTIAL 4), `signal` bit 11, no
//! `end`. Each is read into one [`Entry`]: in versions 1 and 2 an
//! undefined `sp_reg` is an end of stack with `end` set and "no
//! information" without; version 1 has no `signal`, and its REGS types
//! imply it.
//!
//! The version: from the 20-byte hash Linux 6.4 (and 6.3.10) keeps at
//! `__start_orc_header` when the hash is one this file knows, else from
//! the release; Linux 7.1 renumbered the registers (a fourth version this
//! reader does not know, refused). Whatever the version says, the first
//! entries must read under it (no reserved bit set, no register number
//! past 9), or the tables are refused.
//!
//! The dump is hostile input: the counts of the two arrays must agree and
//! stay under [`MOST_ENTRIES`]; the arrays must lie in the kernel image;
//! reads go a page at a time through a bounded cache, so a lookup costs
//! about twenty 4-byte reads and nothing is allocated from a count.

use serde::Serialize;

use crate::cached::Cached;
use crate::symbols::kallsyms::KernelMemory;
use crate::symbols::{START_KERNEL_MAP, Table};

/// The most entries a table may have: Linux 6.1's has about 400 000.
pub const MOST_ENTRIES: u64 = 1 << 22;

/// The bytes of one entry.
pub const ENTRY_SIZE: u64 = 6;

/// How many of the first entries are read to check the version.
const CHECKED_ENTRIES: u64 = 4096;

/// How many entries at one address are looked through for the real one
/// (objtool puts a terminator at a section's end, which can share the
/// address of the next section's first entry).
const SAME_ADDRESS: u64 = 8;

/// An ORC format version (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Version {
    /// Linux 4.14 to 6.2.
    V1,
    /// Linux 6.3.
    V2,
    /// Linux 6.4 to 7.0.
    V3,
}

impl Version {
    /// The number Linux's and drgn's sources give it.
    pub fn number(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// The version a release uses, or why none this reader knows.
    pub fn of_release(release: &str) -> Result<Self, String> {
        let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().ok());
        let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
            return Err(format!(
                "release {release:?}: no major.minor to choose an ORC version by"
            ));
        };
        match (major, minor) {
            (0..=5, _) | (6, 0..=2) => Ok(Self::V1),
            (6, 3) => Ok(Self::V2),
            (6, _) | (7, 0) => Ok(Self::V3),
            _ => Err(format!(
                "Linux {major}.{minor}: its ORC format (renumbered registers, Linux 7.1 on) is not one this reader knows"
            )),
        }
    }

    /// The version `__start_orc_header`'s hash names, if it is one this
    /// reader knows (the hashes of Linux's `orc_types.h`, as
    /// `scripts/orc_hash.sh` computes them).
    pub fn of_header(hash: &[u8]) -> Option<Self> {
        const V3: [u8; 20] = [
            0xfe, 0x5d, 0x32, 0xbf, 0x58, 0x1b, 0xd6, 0x3b, 0x2c, 0xa9, 0xa5, 0xc6, 0x5b, 0xa5,
            0xa6, 0x25, 0xea, 0xb3, 0xfe, 0x24,
        ];
        const V2: [u8; 20] = [
            0xdb, 0x84, 0xae, 0xd4, 0x10, 0x3b, 0x31, 0xdd, 0x51, 0xe0, 0x17, 0xf8, 0xf7, 0x97,
            0x83, 0xca, 0x98, 0x5c, 0x2c, 0x51,
        ];
        if hash == V3 {
            Some(Self::V3)
        } else if hash == V2 {
            Some(Self::V2)
        } else {
            None
        }
    }
}

/// A base register of an entry (`ORC_REG_*`): where the caller's stack
/// pointer (the CFA) or frame pointer is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// Not saved here (0).
    Undefined,
    /// At an offset from the CFA (1; the frame pointer's base only).
    PrevSp,
    /// RDX (2), from a full register set.
    Dx,
    /// RDI (3).
    Di,
    /// RBP (4).
    Bp,
    /// RSP (5).
    Sp,
    /// R10 (6).
    R10,
    /// R13 (7).
    R13,
    /// The word at RBP plus the offset (8).
    BpIndirect,
    /// The word at RSP, plus the offset (9).
    SpIndirect,
}

impl Base {
    fn decode(value: u16) -> Option<Self> {
        Some(match value {
            0 => Self::Undefined,
            1 => Self::PrevSp,
            2 => Self::Dx,
            3 => Self::Di,
            4 => Self::Bp,
            5 => Self::Sp,
            6 => Self::R10,
            7 => Self::R13,
            8 => Self::BpIndirect,
            9 => Self::SpIndirect,
            _ => return None,
        })
    }
}

/// What kind of frame an entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No unwind information for this code (a terminator, or entry code
    /// with none): the walk cannot go on reliably.
    Undefined,
    /// The bottom of a kernel stack (a task's first frame, a CPU's
    /// start-up code).
    EndOfStack,
    /// A called function: the return address is at CFA - 8.
    Call,
    /// A whole `struct pt_regs` at the CFA: an interrupt, exception or
    /// system call entry; the next frame is the interrupted one.
    Regs,
    /// Only the hardware's interrupt frame (RIP, CS, RFLAGS, RSP, SS) at
    /// the CFA; the other registers are still the interrupted code's.
    RegsPartial,
}

/// One entry, in the same terms whatever its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Added to the CFA's base register.
    pub sp_offset: i16,
    /// Added to the frame pointer's base.
    pub bp_offset: i16,
    /// The CFA's base.
    pub sp_reg: Base,
    /// Where the caller's RBP is.
    pub bp_reg: Base,
    /// The frame's kind.
    pub kind: Kind,
    /// The caller's address is where it was, not a return address (look
    /// it up as is, not one byte before).
    pub signal: bool,
}

impl Entry {
    /// Read the 6 bytes of an entry in `version`, or say which field is
    /// not one that version has.
    pub fn decode(bytes: [u8; 6], version: Version) -> Result<Self, String> {
        let sp_offset = i16::from_le_bytes([bytes[0], bytes[1]]);
        let bp_offset = i16::from_le_bytes([bytes[2], bytes[3]]);
        let flags = u16::from_le_bytes([bytes[4], bytes[5]]);
        let bad_reg = |value: u16| format!("register number {value} (0 to 9 exist)");
        let sp_bits = flags & 0xf;
        let sp_reg = Base::decode(sp_bits).ok_or_else(|| bad_reg(sp_bits))?;
        let bp_reg = Base::decode((flags >> 4) & 0xf).ok_or_else(|| bad_reg((flags >> 4) & 0xf))?;
        let (kind, signal) = match version {
            Version::V1 | Version::V2 => {
                let (end_bit, used) = match version {
                    Version::V1 => (10, 0x7ff),
                    _ => (11, 0xfff),
                };
                if flags & !used != 0 {
                    return Err(format!(
                        "flags {flags:#06x} set bits format {} does not have",
                        version.number()
                    ));
                }
                let end = flags & (1 << end_bit) != 0;
                let kind = match ((flags >> 8) & 3, sp_reg, end) {
                    (_, Base::Undefined, true) => Kind::EndOfStack,
                    (_, Base::Undefined, false) => Kind::Undefined,
                    (0, _, _) => Kind::Call,
                    (1, _, _) => Kind::Regs,
                    (2, _, _) => Kind::RegsPartial,
                    (other, _, _) => return Err(format!("frame type {other} (0 to 2 exist)")),
                };
                let signal = match version {
                    // No signal bit: the REGS types imply it.
                    Version::V1 => matches!(kind, Kind::Regs | Kind::RegsPartial),
                    _ => flags & (1 << 10) != 0,
                };
                (kind, signal)
            }
            Version::V3 => {
                if flags & 0xf000 != 0 {
                    return Err(format!(
                        "flags {flags:#06x} set bits format 3 does not have"
                    ));
                }
                let kind = match (flags >> 8) & 7 {
                    0 => Kind::Undefined,
                    1 => Kind::EndOfStack,
                    2 => Kind::Call,
                    3 => Kind::Regs,
                    4 => Kind::RegsPartial,
                    other => return Err(format!("frame type {other} (0 to 4 exist)")),
                };
                (kind, flags & (1 << 11) != 0)
            }
        };
        Ok(Self {
            sp_offset,
            bp_offset,
            sp_reg,
            bp_reg,
            kind,
            signal,
        })
    }
}

/// Where the tables are, from the symbol table.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Layout {
    /// `__start_orc_unwind_ip`.
    pub ip_start: u64,
    /// `__start_orc_unwind`.
    pub entries_start: u64,
    /// How many entries.
    pub count: u64,
    /// The format.
    pub version: Version,
}

/// The tables of one kernel, read through its memory.
pub struct Tables<'m> {
    /// Their memory, read a page at a time.
    memory: Cached<'m>,
    /// Where they are.
    pub layout: Layout,
}

impl<'m> Tables<'m> {
    /// Find the tables through `symbols`, choose their version (the header
    /// hash, else `release`), and check the first entries read in it.
    pub fn locate(
        symbols: &Table,
        release: Option<&str>,
        memory: &'m dyn KernelMemory,
    ) -> Result<Self, String> {
        let ip_start = symbols.address_of("__start_orc_unwind_ip")?;
        let ip_stop = symbols.address_of("__stop_orc_unwind_ip")?;
        let entries_start = symbols.address_of("__start_orc_unwind")?;
        let entries_stop = symbols.address_of("__stop_orc_unwind")?;
        for (name, at) in [
            ("__start_orc_unwind_ip", ip_start),
            ("__stop_orc_unwind_ip", ip_stop),
            ("__start_orc_unwind", entries_start),
            ("__stop_orc_unwind", entries_stop),
        ] {
            if at < START_KERNEL_MAP {
                return Err(format!("{name} at {at:#x} is not in the kernel image"));
            }
        }
        let ip_bytes = ip_stop
            .checked_sub(ip_start)
            .filter(|bytes| bytes % 4 == 0 && *bytes > 0)
            .ok_or_else(|| {
                format!("__start_orc_unwind_ip {ip_start:#x} .. __stop_orc_unwind_ip {ip_stop:#x} is not a whole number of 4-byte entries")
            })?;
        let entry_bytes = entries_stop
            .checked_sub(entries_start)
            .filter(|bytes| bytes % ENTRY_SIZE == 0)
            .ok_or_else(|| {
                format!("__start_orc_unwind {entries_start:#x} .. __stop_orc_unwind {entries_stop:#x} is not a whole number of 6-byte entries")
            })?;
        let count = ip_bytes / 4;
        if entry_bytes / ENTRY_SIZE != count {
            return Err(format!(
                "{count} ORC addresses but {} ORC entries",
                entry_bytes / ENTRY_SIZE
            ));
        }
        if count > MOST_ENTRIES {
            return Err(format!(
                "{count} ORC entries: more than the {MOST_ENTRIES} this reader takes"
            ));
        }
        let header = symbols
            .address_of("__start_orc_header")
            .ok()
            .and_then(|at| memory.read(at, 20).ok());
        let version = match header.as_deref().and_then(Version::of_header) {
            Some(version) => version,
            None => match (header, release) {
                (Some(hash), _) => {
                    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                    return Err(format!(
                        "__start_orc_header holds {hex}: not an ORC format this reader knows"
                    ));
                }
                (None, Some(release)) => Version::of_release(release)?,
                (None, None) => return Err("no release to choose an ORC version by".into()),
            },
        };
        let tables = Self {
            memory: Cached::new(memory),
            layout: Layout {
                ip_start,
                entries_start,
                count,
                version,
            },
        };
        for index in 0..count.min(CHECKED_ENTRIES) {
            tables.entry(index).map_err(|why| {
                format!(
                    "the ORC tables do not read as format {}: entry {index}: {why}",
                    version.number()
                )
            })?;
        }
        Ok(tables)
    }

    /// The address entry `index` starts at.
    pub fn address(&self, index: u64) -> Result<u64, String> {
        let at = self.layout.ip_start + 4 * index;
        let offset = i32::from_le_bytes(self.memory.bytes::<4>(at)?);
        Ok(at.wrapping_add_signed(i64::from(offset)))
    }

    /// Entry `index`.
    pub fn entry(&self, index: u64) -> Result<Entry, String> {
        let bytes = self
            .memory
            .bytes::<6>(self.layout.entries_start + ENTRY_SIZE * index)?;
        Entry::decode(bytes, self.layout.version)
    }

    /// The entry that covers `pc` and the address it starts at: the last
    /// one at or below `pc` (of several at one address, the one that is
    /// not a terminator), or `None` below the first.
    pub fn find(&self, pc: u64) -> Result<Option<(u64, Entry)>, String> {
        let (mut low, mut high) = (0u64, self.layout.count);
        // Invariant: entries below `low` start at or below `pc`, entries
        // at or above `high` above it.
        while low < high {
            let middle = low + (high - low) / 2;
            if self.address(middle)? <= pc {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let Some(last) = low.checked_sub(1) else {
            return Ok(None);
        };
        let start = self.address(last)?;
        let mut chosen = (start, self.entry(last)?);
        let mut index = last;
        while chosen.1.kind == Kind::Undefined && last - index < SAME_ADDRESS {
            let Some(before) = index.checked_sub(1) else {
                break;
            };
            if self.address(before)? != start {
                break;
            }
            index = before;
            chosen = (start, self.entry(index)?);
        }
        Ok(Some(chosen))
    }
}

#[cfg(test)]
pub(crate) mod tests;
