//! The ELF vmcore reader: crashkit's dumps, QEMU's, Linux's `/proc/vmcore`
//! and makedumpfile `-E` output, over a byte slice.
//!
//! [`ElfDump::parse`] reads the ELF header, the program headers and the
//! notes, and nothing else: opening never touches page data, so it costs
//! time in proportion to the metadata. Every count, size and offset is
//! checked against the file before use; what is fatal is a
//! [`FormatError`], what is not is [`Damage`] next to a partial result.
//! Allocation is bounded by the file's size: each vector holds at most one
//! entry per 12 bytes of file (a note header) or per 56 (a program header).
//!
//! Producers' quirks handled (see `docs/dump-formats.md`): QEMU's
//! `e_ehsize` of 8 with a section header table before the program headers
//! (`e_phoff` is honoured, `e_ehsize` ignored); QEMU's i386 `NT_PRSTATUS`
//! notes in an ELF64 file when CPU 0 was not in long mode (`EM_386`);
//! Linux's kernel-text segment overlapping the direct-map segment;
//! makedumpfile `-E`'s filtering as `p_memsz > p_filesz`; Linux's zeroed
//! note for a CPU that missed the NMI.

mod complete;
mod error;
mod memory;

use alloc::vec::Vec;

pub use error::{FormatError, FormatErrorKind};

use crate::elf::{self, Header, PN_XNUM, PROGRAM_HEADER_SIZE};
use crate::notes::read::{self as notes, Cpu, CrashkitNotes};
use crate::read::{Completeness, Damage, DamageKind, Machine, Producer, Segment};
use crate::vmcoreinfo::VmcoreInfo;

/// An opened ELF vmcore.
#[derive(Debug)]
pub struct ElfDump<'a> {
    data: &'a [u8],
    header: Header,
    machine: Machine,
    phnum: u64,
    segments: Vec<Segment>,
    index: memory::SegmentIndex,
    notes: notes::Notes<'a>,
    completeness: Completeness,
    /// Whether crashkit's notes describe these headers (see
    /// [`ElfDump::crashkit_segments_trusted`]).
    foreign_headers: bool,
    notes_copied: bool,
    /// In an incomplete crashkit dump, where lost memory-map pages start
    /// ([`CrashkitNotes::frontier`]).
    lost_from: Option<u64>,
    damage: Vec<Damage>,
}

impl<'a> ElfDump<'a> {
    /// Open the dump in `data` (a whole file or memory map).
    pub fn parse(data: &'a [u8]) -> Result<Self, FormatError> {
        let len = data.len() as u64;
        let error = |offset: u64, kind| FormatError { offset, kind };
        let header =
            elf::decode_header(data).ok_or_else(|| error(0, FormatErrorKind::TooShort { len }))?;
        if header.e_ident.get(..4) != Some(&elf::ELFMAG[..]) {
            return Err(error(0, FormatErrorKind::NotElf));
        }
        if header.e_ident[elf::EI_CLASS] != elf::ELFCLASS64 {
            let class = header.e_ident[elf::EI_CLASS];
            return Err(error(
                elf::EI_CLASS as u64,
                FormatErrorKind::NotElf64(class),
            ));
        }
        if header.e_ident[elf::EI_DATA] != elf::ELFDATA2LSB {
            let encoding = header.e_ident[elf::EI_DATA];
            return Err(error(
                elf::EI_DATA as u64,
                FormatErrorKind::NotLittleEndian(encoding),
            ));
        }
        if header.e_type != elf::ET_CORE {
            return Err(error(16, FormatErrorKind::NotCore(header.e_type)));
        }
        let machine = match header.e_machine {
            elf::EM_X86_64 => Machine::X86_64,
            elf::EM_386 => Machine::I386,
            other => return Err(error(18, FormatErrorKind::UnsupportedMachine(other))),
        };
        if usize::from(header.e_phentsize) != PROGRAM_HEADER_SIZE {
            return Err(error(
                54,
                FormatErrorKind::BadProgramHeaderSize(header.e_phentsize),
            ));
        }
        let phnum = if header.e_phnum == PN_XNUM {
            let section = usize::try_from(header.e_shoff)
                .ok()
                .and_then(|offset| elf::xnum_from_section_header(data, offset));
            // An error names the e_shoff field (offset 40) that points nowhere.
            u64::from(section.ok_or_else(|| error(40, FormatErrorKind::ExtendedCountMissing))?)
        } else {
            u64::from(header.e_phnum)
        };
        let mut damage = Vec::new();
        let room = len.saturating_sub(header.e_phoff) / PROGRAM_HEADER_SIZE as u64;
        let present = if header.e_phoff > len {
            0
        } else {
            phnum.min(room)
        };
        if present < phnum {
            damage.push(Damage {
                offset: header.e_phoff,
                kind: DamageKind::ProgramHeadersCut {
                    wanted: phnum,
                    present,
                },
            });
        }
        if present == 0 {
            // The offset of the e_phoff field: the table is not in the file.
            return Err(error(
                32,
                FormatErrorKind::NoProgramHeaders {
                    phoff: header.e_phoff,
                    phnum,
                },
            ));
        }

        // `present` program headers are inside the file, so this vector is
        // bounded by the file's size.
        let mut segments = Vec::new();
        let mut note_segments = Vec::new();
        for index in 0..present {
            let offset = header.e_phoff + index * PROGRAM_HEADER_SIZE as u64;
            let Some(ph) = elf::decode_program_header(data, offset as usize) else {
                break;
            };
            let index = index as u32;
            match ph.p_type {
                elf::PT_LOAD => {
                    if let Some(segment) =
                        memory::check_segment(index, offset, &ph, len, &mut damage)
                    {
                        segments.push(segment);
                    }
                }
                elf::PT_NOTE => note_segments.push((index, offset, ph)),
                // Padding (crashkit's reserved slots, makedumpfile's).
                elf::PT_NULL => {}
                // No vmcore producer writes another type: a damaged
                // p_type would drop its memory or notes silently.
                p_type => damage.push(Damage {
                    offset,
                    kind: DamageKind::UnknownSegmentType { index, p_type },
                }),
            }
        }
        let index = memory::SegmentIndex::build(&segments, header.e_phoff, &mut damage);
        let notes = notes::Notes::read(data, machine, &note_segments, &mut damage);
        check_structure(
            &header,
            present,
            &segments,
            &note_segments,
            notes.vmcoreinfo.map(VmcoreInfo::new),
            &mut damage,
        );
        let mut dump = Self {
            data,
            header,
            machine,
            phnum,
            segments,
            index,
            notes,
            completeness: Completeness::Unknown,
            foreign_headers: false,
            notes_copied: false,
            lost_from: None,
            damage,
        };
        dump.foreign_headers = complete::foreign_headers(&dump);
        dump.notes_copied = complete::notes_copied(&dump);
        dump.completeness = complete::judge(&dump);
        if dump.completeness != Completeness::Complete && dump.crashkit_segments_trusted() {
            dump.lost_from = dump.crashkit().map(|c| c.frontier(&dump.segments));
        }
        Ok(dump)
    }

    /// The ELF header as read.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The machine.
    pub fn machine(&self) -> Machine {
        self.machine
    }

    /// The program header count (`e_phnum`, or section header 0's
    /// `sh_info` under `PN_XNUM`).
    pub fn program_header_count(&self) -> u64 {
        self.phnum
    }

    /// Who wrote the dump.
    pub fn producer(&self) -> Producer {
        if self.notes.crashkit.is_some() {
            Producer::Crashkit
        } else if self.notes.qemu_notes > 0 {
            Producer::Qemu
        } else if self
            .vmcoreinfo()
            .is_some_and(|info| info.get("CRASHTIME").is_some())
        {
            Producer::LinuxKdump
        } else {
            Producer::Unknown
        }
    }

    /// The `PT_LOAD` segments, in program header order (minus the ones
    /// dropped as damaged).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The CPUs, one per `NT_PRSTATUS` note, in note order.
    pub fn cpus(&self) -> &[Cpu] {
        &self.notes.cpus
    }

    /// The `VMCOREINFO` text, if there is a note.
    pub fn vmcoreinfo(&self) -> Option<VmcoreInfo<'a>> {
        self.notes.vmcoreinfo.map(VmcoreInfo::new)
    }

    /// crashkit's notes, in a crashkit dump.
    pub fn crashkit(&self) -> Option<&CrashkitNotes<'a>> {
        self.notes.crashkit.as_ref()
    }

    /// Whether crashkit's notes may be taken to describe this file's
    /// segments: false when a valid completion marker for this dump's id
    /// comes with a header checksum that does not match, i.e. another tool
    /// (makedumpfile `-E`, for one) copied crashkit's notes into headers of
    /// its own, or the headers are damaged. Then crashkit's zero-tail and
    /// lost-page meanings are not applied: bytes past `p_filesz` read as
    /// excluded, never as zeros the reader cannot vouch for.
    pub fn crashkit_segments_trusted(&self) -> bool {
        self.crashkit().is_some() && !self.foreign_headers
    }

    /// Whether crashkit's notes were copied here from another file by
    /// another tool (makedumpfile keeps its input's notes): the completion
    /// marker's header area does not end where this file's notes do. The
    /// dump is then judged as another producer's ([`Completeness::Unknown`]
    /// unless the file itself shows damage), and its producer is not
    /// crashkit.
    pub fn notes_copied(&self) -> bool {
        self.notes_copied
    }

    /// Whether the dump is complete, incomplete or cannot tell.
    pub fn completeness(&self) -> Completeness {
        self.completeness
    }

    /// Everything found wrong that did not stop the reader.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The bytes the dump was opened from.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }
}

/// Checks across the file's structures (each alone may look right): where
/// the program header table is against the ELF header and the segments'
/// bytes, that there is memory and there are notes, and that every
/// segment lies within the machine's physical address width. Every finding
/// is damage with the offset of the field that shows it.
fn check_structure(
    header: &Header,
    present: u64,
    segments: &[Segment],
    note_segments: &[(u32, u64, elf::ProgramHeader)],
    vmcoreinfo: Option<VmcoreInfo<'_>>,
    damage: &mut Vec<Damage>,
) {
    /// `e_phoff`'s offset in the ELF header.
    const E_PHOFF: u64 = 32;
    /// The ELF64 header's size.
    const EHDR_SIZE: u64 = 64;
    /// The width when `VMCOREINFO` does not give one: x86_64's architectural
    /// maximum.
    const DEFAULT_PHYSICAL_BITS: u32 = 52;
    let phoff = header.e_phoff;
    if phoff < EHDR_SIZE {
        damage.push(Damage {
            offset: E_PHOFF,
            kind: DamageKind::ProgramHeadersInHeader { phoff },
        });
    } else if !phoff.is_multiple_of(8) {
        damage.push(Damage {
            offset: E_PHOFF,
            kind: DamageKind::ProgramHeadersMisaligned { phoff },
        });
    }
    // The table's bytes against every segment's bytes in the file.
    let table_end = phoff.saturating_add(present.saturating_mul(PROGRAM_HEADER_SIZE as u64));
    let overlaps =
        |start: u64, len: u64| len > 0 && start < table_end && phoff < start.saturating_add(len);
    let loads = segments
        .iter()
        .map(|segment| (segment.index, segment.offset, segment.in_file));
    let notes = note_segments
        .iter()
        .map(|(index, _, ph)| (*index, ph.p_offset, ph.p_filesz));
    if let Some((index, _, _)) = loads
        .chain(notes)
        .find(|&(_, start, len)| overlaps(start, len))
    {
        damage.push(Damage {
            offset: E_PHOFF,
            kind: DamageKind::ProgramHeadersOverlapData { index },
        });
    }
    // Two PT_LOADs reading the same file bytes as different physical
    // memory (a moved p_offset reads its neighbour's pages): every
    // producer gives each segment bytes of its own, or the same bytes for
    // the same memory.
    let mut by_offset: Vec<&Segment> = segments.iter().filter(|s| s.in_file > 0).collect();
    by_offset.sort_unstable_by_key(|s| (s.offset, s.index));
    let mut furthest: Option<&Segment> = None;
    for segment in by_offset {
        if let Some(other) = furthest {
            let overlaps = other.offset.saturating_add(other.in_file) > segment.offset;
            let same_memory = other.offset.wrapping_sub(other.paddr)
                == segment.offset.wrapping_sub(segment.paddr);
            if overlaps && !same_memory {
                damage.push(Damage {
                    offset: phoff
                        .saturating_add(u64::from(segment.index) * PROGRAM_HEADER_SIZE as u64),
                    kind: DamageKind::SharedFileBytes {
                        index: segment.index,
                        other: other.index,
                    },
                });
            }
        }
        furthest = match furthest {
            Some(f) if f.offset + f.in_file >= segment.offset + segment.in_file => Some(f),
            _ => Some(segment),
        };
    }
    if !segments.iter().any(|segment| segment.memsz > 0) {
        damage.push(Damage {
            offset: phoff,
            kind: DamageKind::NoMemory,
        });
    }
    if note_segments.is_empty() {
        damage.push(Damage {
            offset: phoff,
            kind: DamageKind::NoNotes,
        });
    }
    let bits = vmcoreinfo
        .and_then(|info| info.number("NUMBER(MAX_PHYSMEM_BITS)"))
        .and_then(|bits| u32::try_from(bits).ok())
        .filter(|bits| (1..=64).contains(bits))
        .unwrap_or(DEFAULT_PHYSICAL_BITS);
    let limit = if bits == 64 { u64::MAX } else { 1u64 << bits };
    for segment in segments {
        let end = segment.paddr.saturating_add(segment.memsz);
        // `end` is exclusive: a segment may end exactly at the limit (an
        // empty one may not start there).
        if segment.paddr >= limit || end > limit {
            damage.push(Damage {
                offset: phoff.saturating_add(u64::from(segment.index) * PROGRAM_HEADER_SIZE as u64),
                kind: DamageKind::SegmentBeyondPhysicalWidth {
                    index: segment.index,
                    bits,
                },
            });
        }
    }
}
