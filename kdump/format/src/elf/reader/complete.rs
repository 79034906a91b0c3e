//! Is an ELF dump complete? crashkit's completion marker, checked; for
//! other producers, what their files can tell.

use super::ElfDump;
use crate::crc32c::Crc32c;
use crate::elf::{
    E_FLAGS_INCOMPLETE, E_FLAGS_OFFSET, PN_XNUM, PROGRAM_HEADER_SIZE, SECTION_HEADER_SIZE,
};
use crate::notes::crashkit::CompletionMarker;
use crate::read::{Completeness, DamageKind, Incomplete};

/// A valid completion marker for this dump's id whose header checksum does
/// not match these headers: the notes were carried into another tool's
/// headers (or the headers are damaged).
pub(super) fn foreign_headers(dump: &ElfDump<'_>) -> bool {
    let Some(crashkit) = dump.crashkit() else {
        return false;
    };
    let Some(marker) = crashkit
        .completion
        .filter(|m| m.state == CompletionMarker::COMPLETE)
    else {
        return false;
    };
    marker.dump_id == crashkit.identity.dump_id
        && header_checksum(dump) != Some(marker.header_checksum)
}

/// Foreign headers whose notes do not end where the marker's header area
/// ended: the notes were copied from another file (makedumpfile keeps its
/// input's notes), so the marker describes that file, not this one. (A
/// crashkit dump whose headers are damaged keeps its notes in place.)
pub(super) fn notes_copied(dump: &ElfDump<'_>) -> bool {
    let Some(marker) = dump.crashkit().and_then(|c| c.completion) else {
        return false;
    };
    let notes_end = match dump.notes.regions.as_slice() {
        [(offset, len)] => offset.checked_add(*len),
        _ => None,
    };
    dump.foreign_headers && notes_end != Some(marker.header_extent)
}

pub(super) fn judge(dump: &ElfDump<'_>) -> Completeness {
    let len = dump.data.len() as u64;
    let truncated = dump
        .segments
        .iter()
        .filter(|s| s.in_file < s.filesz)
        .map(|s| s.offset.saturating_add(s.filesz))
        .max();
    // Any damage but a newer format version or a segment cut by the end of
    // the file (that is truncation, said as such): "unknown" is for dumps
    // with nothing wrong seen, and crashkit's writer never writes damage.
    let metadata_damaged = dump.damage.iter().any(|d| {
        !matches!(
            d.kind,
            DamageKind::NewerFormat { .. } | DamageKind::SegmentPastEnd { .. }
        )
    });
    // A dump without crashkit's notes, or with notes copied from another
    // file: judged as any producer's, by what the file itself shows.
    let foreign = || {
        if dump.header.e_flags & E_FLAGS_INCOMPLETE != 0 {
            return Completeness::Incomplete(Incomplete::FlagSet);
        }
        if metadata_damaged {
            return Completeness::Incomplete(Incomplete::Damaged);
        }
        match truncated {
            Some(expected) => Completeness::Incomplete(Incomplete::Truncated { len, expected }),
            None => Completeness::Unknown,
        }
    };
    let Some(crashkit) = dump.crashkit() else {
        return foreign();
    };
    if dump.notes_copied {
        return foreign();
    }
    let Some(marker) = crashkit
        .completion
        .filter(|m| m.state == CompletionMarker::COMPLETE)
    else {
        return Completeness::Incomplete(Incomplete::NoMarker);
    };
    if marker.dump_id != crashkit.identity.dump_id {
        return Completeness::Incomplete(Incomplete::StaleMarker);
    }
    // Before the length: headers another tool rewrote (keeping crashkit's
    // notes) describe another file, whose length the marker does not know.
    if dump.foreign_headers {
        return Completeness::Incomplete(Incomplete::HeaderChecksum);
    }
    if len < marker.total_length {
        return Completeness::Incomplete(Incomplete::Truncated {
            len,
            expected: marker.total_length,
        });
    }
    if dump.header.e_flags & E_FLAGS_INCOMPLETE != 0 {
        return Completeness::Incomplete(Incomplete::FlagSet);
    }
    if let Some(expected) = truncated {
        return Completeness::Incomplete(Incomplete::Truncated { len, expected });
    }
    if metadata_damaged {
        return Completeness::Incomplete(Incomplete::Damaged);
    }
    Completeness::Complete
}

/// The header checksum as [`CompletionMarker`] defines it, computed from
/// the file: the program headers in use, section header 0 under PN_XNUM,
/// the note segment with the marker's descriptor as zeros, and the ELF
/// header with `e_flags` bit 0 clear. `None` if a part is not in the file.
fn header_checksum(dump: &ElfDump<'_>) -> Option<u32> {
    let data = dump.data;
    let mut crc = Crc32c::new();
    let table_len = dump.phnum.checked_mul(PROGRAM_HEADER_SIZE as u64)?;
    crc.update(crate::bytes::slice_at(
        data,
        dump.header.e_phoff,
        table_len,
    )?);
    if dump.header.e_phnum == PN_XNUM {
        crc.update(crate::bytes::slice_at(
            data,
            dump.header.e_shoff,
            SECTION_HEADER_SIZE as u64,
        )?);
    }
    let marker = dump.crashkit()?.completion_desc_offset?;
    let marker_end = marker.checked_add(CompletionMarker::SIZE as u64)?;
    let [(offset, len)] = dump.notes.regions.as_slice() else {
        // crashkit writes exactly one note segment.
        return None;
    };
    let notes = crate::bytes::slice_at(data, *offset, *len)?;
    let before = usize::try_from(marker.checked_sub(*offset)?).ok()?;
    let after = usize::try_from(marker_end.checked_sub(*offset)?).ok()?;
    crc.update(notes.get(..before)?);
    crc.update_zeros(CompletionMarker::SIZE as u64);
    crc.update(notes.get(after..)?);
    let mut header: [u8; 64] = crate::bytes::array_at(data, 0)?;
    if let Some(flags) = header.get_mut(E_FLAGS_OFFSET) {
        *flags &= !(E_FLAGS_INCOMPLETE as u8);
    }
    crc.update(&header);
    Some(crc.finish())
}
