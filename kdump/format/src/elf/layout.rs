//! Where everything goes in an ELF vmcore's header area: the ELF header,
//! the program header table, the notes (their bytes come from
//! `crate::notes::emit`, the one producer both writers use), and the
//! first page of data.

use crate::PAGE_SIZE;
use crate::bytes::align_up;
use crate::elf::{self, PN_XNUM, PROGRAM_HEADER_SIZE, SECTION_HEADER_SIZE};
use crate::notes::emit::{Piece, emit_notes};
use crate::plan::DumpPlan;

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
