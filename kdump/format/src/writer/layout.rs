//! Where everything goes in the header area, and the notes' bytes.
//!
//! The notes are produced by one function, [`emit_notes`], that hands
//! consecutive byte strings to a closure: the writer runs it once to size
//! the area, once to write it and once, at the end, to checksum it. One
//! producer means the three cannot disagree.

use super::plan::DumpPlan;
use crate::PAGE_SIZE;
use crate::bytes::align_up;
use crate::crashkit_note::{self, CompletionMarker, DumpIdentity, FLAG_ZERO_TAILS, FORMAT_VERSION};
use crate::elf::{self, PN_XNUM, PROGRAM_HEADER_SIZE, SECTION_HEADER_SIZE};
use crate::note::{self, NAME_CORE, NAME_CRASHKIT, NAME_VMCOREINFO};
use crate::prstatus;

/// Offsets of the header area, fixed before the first write.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    /// PT_LOAD slots (the PT_NOTE slot 0 is extra).
    pub capacity: u32,
    /// Offset of section header 0, when the slots may need PN_XNUM.
    pub xnum_section: Option<u64>,
    /// Offset and length of the notes.
    pub notes_offset: u64,
    pub notes_len: u64,
    /// Offset of the completion marker's descriptor.
    pub completion_desc: u64,
    /// First data byte (page aligned).
    pub data_offset: u64,
}

impl Layout {
    pub fn new(plan: &DumpPlan<'_>, capacity: u32) -> Option<Self> {
        let slots = u64::from(capacity) + 1;
        let table_end = 64u64.checked_add(slots.checked_mul(PROGRAM_HEADER_SIZE as u64)?)?;
        let needs_xnum = slots >= u64::from(PN_XNUM);
        let notes_offset = if needs_xnum {
            table_end.checked_add(SECTION_HEADER_SIZE as u64)?
        } else {
            table_end
        };
        let mut notes_len = 0u64;
        let mut completion_desc = None;
        emit_notes(plan, |piece| {
            if let Piece::CompletionDesc = piece {
                completion_desc = notes_offset.checked_add(notes_len);
            }
            notes_len = notes_len.saturating_add(piece.len() as u64);
            Ok::<(), ()>(())
        })
        .ok()?;
        let data_offset = align_up(notes_offset.checked_add(notes_len)?, PAGE_SIZE)?;
        Some(Self {
            capacity,
            xnum_section: needs_xnum.then_some(table_end),
            notes_offset,
            notes_len,
            completion_desc: completion_desc?,
            data_offset,
        })
    }

    /// Offset of PT_LOAD slot `index` (0-based; the PT_NOTE is before it).
    pub fn slot_offset(&self, index: u32) -> u64 {
        64 + (u64::from(index) + 1) * PROGRAM_HEADER_SIZE as u64
    }

    /// End of the checksummed header area.
    pub fn header_extent(&self) -> u64 {
        self.notes_offset + self.notes_len
    }

    /// The PT_NOTE program header.
    pub fn note_program_header(&self) -> [u8; PROGRAM_HEADER_SIZE] {
        elf::encode_program_header(&elf::ProgramHeader {
            p_type: elf::PT_NOTE,
            p_flags: 0,
            p_offset: self.notes_offset,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: self.notes_len,
            p_memsz: self.notes_len,
            p_align: 4,
        })
    }

    /// The ELF header for `segments` PT_LOADs (plus the PT_NOTE), and the
    /// section header 0 to write with it when the count needs PN_XNUM.
    pub fn elf_header(
        &self,
        segments: u32,
        flags: u32,
    ) -> (
        [u8; elf::HEADER_SIZE],
        Option<(u64, [u8; SECTION_HEADER_SIZE])>,
    ) {
        let phnum = segments.saturating_add(1);
        match (u16::try_from(phnum), self.xnum_section) {
            (Ok(n), _) if n < PN_XNUM => (
                elf::encode_header(&elf::core_header(64, n, 0, 0, flags)),
                None,
            ),
            (_, Some(section)) => (
                elf::encode_header(&elf::core_header(64, PN_XNUM, section, 1, flags)),
                Some((section, elf::encode_xnum_section_header(phnum))),
            ),
            // Unreachable: a layout without a section slot has fewer than
            // PN_XNUM slots. Claim what fits rather than panic.
            (_, None) => (
                elf::encode_header(&elf::core_header(64, PN_XNUM - 1, 0, 0, flags)),
                None,
            ),
        }
    }
}

/// One consecutive piece of the notes area.
pub(crate) enum Piece<'a> {
    /// Bytes to write as they are.
    Bytes(&'a [u8]),
    /// The completion marker's descriptor: zeros until the end.
    CompletionDesc,
    /// `n` zero bytes of padding (0 to 3).
    Padding(usize),
}

impl Piece<'_> {
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::CompletionDesc => CompletionMarker::SIZE,
            Self::Padding(n) => *n,
        }
    }
}

fn emit_note<E>(
    out: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    name: &[u8],
    n_type: u32,
    desc: &[u8],
) -> Result<(), E> {
    let (head, head_len) = note::encode_head(name, n_type, desc.len() as u32);
    out(Piece::Bytes(head.get(..head_len).unwrap_or(&[])))?;
    out(Piece::Bytes(desc))?;
    out(Piece::Padding(note::pad4(desc.len()) - desc.len()))
}

/// Write the notes area from `offset` through `put` (offset, bytes), the
/// completion marker's descriptor as zeros; stops at the first error.
pub(crate) fn write_notes<E>(
    plan: &DumpPlan<'_>,
    mut offset: u64,
    mut put: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    const ZEROS: [u8; CompletionMarker::SIZE] = [0; CompletionMarker::SIZE];
    emit_notes(plan, |piece| {
        let result = match piece {
            Piece::Bytes(bytes) => put(offset, bytes),
            Piece::CompletionDesc => put(offset, &ZEROS),
            Piece::Padding(n) => put(offset, ZEROS.get(..n).unwrap_or(&[])),
        };
        offset += piece.len() as u64;
        result
    })
}

/// Feed the notes area, the completion marker's descriptor as zeros, to
/// `crc` (the header checksums of both writers cover it so).
pub(crate) fn checksum_notes(plan: &DumpPlan<'_>, crc: &mut crate::crc32c::Crc32c) {
    let _ = emit_notes(plan, |piece| {
        match piece {
            Piece::Bytes(bytes) => crc.update(bytes),
            Piece::CompletionDesc => crc.update_zeros(CompletionMarker::SIZE as u64),
            Piece::Padding(n) => crc.update_zeros(n as u64),
        }
        Ok::<(), ()>(())
    });
}

/// Produce the notes area, piece by piece, in file order.
pub(crate) fn emit_notes<E>(
    plan: &DumpPlan<'_>,
    mut out: impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<(), E> {
    // The panicking CPU's note first: gdb selects the first thread.
    let first = plan
        .cpus
        .iter()
        .position(|cpu| Some(cpu.control.cpu) == plan.panic_cpu)
        .unwrap_or(0);
    let ordered = plan.cpus.get(first).into_iter().chain(
        plan.cpus
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != first)
            .map(|(_, cpu)| cpu),
    );
    for cpu in ordered.clone() {
        let pid = cpu.control.cpu.saturating_add(1);
        let desc = prstatus::encode_x86_64(pid, &cpu.registers);
        emit_note(&mut out, NAME_CORE, note::NT_PRSTATUS, &desc)?;
    }
    if !plan.vmcoreinfo.is_empty() {
        emit_note(
            &mut out,
            NAME_VMCOREINFO,
            note::NT_VMCOREINFO,
            plan.vmcoreinfo,
        )?;
    }
    let identity = DumpIdentity {
        version: FORMAT_VERSION,
        flags: FLAG_ZERO_TAILS,
        dump_id: plan.dump_id,
        crash_time: plan.crash_time,
        page_size: PAGE_SIZE,
        direct_map: plan.direct_map,
        kernel_image: plan
            .kernel_image
            .map(|image| (image.phys_start, image.virt_start, image.len)),
        cpu_count: plan.cpus.len() as u32,
        panic_cpu: plan.panic_cpu,
    };
    emit_note(
        &mut out,
        NAME_CRASHKIT,
        crashkit_note::NT_IDENTITY,
        &identity.encode(),
    )?;
    for cpu in ordered {
        let desc = cpu.control.encode();
        emit_note(
            &mut out,
            NAME_CRASHKIT,
            crashkit_note::NT_CONTROL_STATE,
            &desc,
        )?;
    }
    let map_len = plan.ranges.len() * 16;
    let (head, head_len) =
        note::encode_head(NAME_CRASHKIT, crashkit_note::NT_MEMORY_MAP, map_len as u32);
    out(Piece::Bytes(head.get(..head_len).unwrap_or(&[])))?;
    for range in plan.ranges {
        out(Piece::Bytes(&crashkit_note::encode_range(
            range.start,
            range.len,
        )))?;
    }
    if !plan.crash_record.is_empty() {
        emit_note(
            &mut out,
            NAME_CRASHKIT,
            crashkit_note::NT_CRASH_RECORD,
            plan.crash_record,
        )?;
    }
    let (head, head_len) = note::encode_head(
        NAME_CRASHKIT,
        crashkit_note::NT_COMPLETION,
        CompletionMarker::SIZE as u32,
    );
    out(Piece::Bytes(head.get(..head_len).unwrap_or(&[])))?;
    out(Piece::CompletionDesc)?;
    Ok(())
}
