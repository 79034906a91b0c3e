//! Is the dump complete? crashkit's completion marker, checked; for other
//! producers, what their files can tell.

use super::ElfDump;
use super::damage::DamageKind;
use crate::crashkit_note::CompletionMarker;
use crate::crc32c::Crc32c;
use crate::elf::{
    E_FLAGS_INCOMPLETE, E_FLAGS_OFFSET, PN_XNUM, PROGRAM_HEADER_SIZE, SECTION_HEADER_SIZE,
};

/// Whether a dump is whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// crashkit's completion marker matches this dump: every page the
    /// writer meant to write is there.
    Complete,
    /// Known not to be whole, and why.
    Incomplete(Incomplete),
    /// The producer leaves no marker (QEMU, Linux) and nothing says the
    /// file is damaged.
    Unknown,
}

/// Why a dump is incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incomplete {
    /// `e_flags` bit 0 is set: the writer had not finished (crashkit,
    /// makedumpfile).
    FlagSet,
    /// A crashkit dump without a valid completion marker: the writer
    /// stopped, or the marker is damaged.
    NoMarker,
    /// The completion marker names another dump: a stale marker of an
    /// earlier dump in the same place.
    StaleMarker,
    /// The header checksum does not match the headers: they are not the
    /// ones the marker was written for (another tool rewrote them keeping
    /// crashkit's notes, an overwrite is in progress, or they are damaged).
    HeaderChecksum,
    /// The headers or notes are damaged (see [`ElfDump::damage`]), so
    /// whatever marker there was cannot be trusted or found.
    Damaged,
    /// A flattened stream ends without its end marker: the transfer or the
    /// writer stopped.
    StreamCut,
    /// The file is shorter than the dump: `len` bytes of `expected`.
    Truncated {
        /// The file's length.
        len: u64,
        /// The length the dump needs.
        expected: u64,
    },
}

impl core::fmt::Display for Completeness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Complete => f.write_str("complete"),
            Self::Unknown => f.write_str("unknown (the producer writes no completion marker)"),
            Self::Incomplete(why) => {
                f.write_str("incomplete: ")?;
                match why {
                    Incomplete::FlagSet => f.write_str("the writer did not finish (e_flags bit 0)"),
                    Incomplete::NoMarker => f.write_str("no valid completion marker"),
                    Incomplete::StaleMarker => {
                        f.write_str("the completion marker belongs to another dump")
                    }
                    Incomplete::HeaderChecksum => f.write_str(
                        "the headers are not the ones the completion marker was written for \
                         (rewritten by another tool, or damaged)",
                    ),
                    Incomplete::Damaged => f.write_str("its headers or notes are damaged"),
                    Incomplete::StreamCut => {
                        f.write_str("the flattened stream ends without its end marker")
                    }
                    Incomplete::Truncated { len, expected } => {
                        write!(f, "the file is {len} bytes of {expected}")
                    }
                }
            }
        }
    }
}

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
    // Any damage but a newer format version: "unknown" is for dumps with
    // nothing wrong seen, and crashkit's writer never writes damage.
    let metadata_damaged = dump
        .damage
        .iter()
        .any(|d| !matches!(d.kind, DamageKind::NewerFormat { .. }));
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
