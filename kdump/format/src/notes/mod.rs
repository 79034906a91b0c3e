//! ELF notes, which every dump format carries: the 12-byte header, 4-byte
//! padding and a hostile-input walk here; the notes themselves in the
//! submodules ([`prstatus`] registers, [`qemu`]'s CPU state, [`crashkit`]'s
//! own notes), their one producer (`emit`, both writers), and a dump's
//! notes read back (`read`, both readers, feature `alloc`).
//!
//! A note is `Elf64_Nhdr { n_namesz: u32, n_descsz: u32, n_type: u32 }`,
//! then the name (`n_namesz` bytes including its NUL, padded to 4), then
//! the descriptor (`n_descsz` bytes, padded to 4). Core files use 4-byte
//! padding even in ELF64 (Linux's `append_elf_note`, QEMU's `dump.c`), and
//! so do crashkit's notes. goblin's `Nhdr32` is the header's struct; the
//! walk here is written for hostile input and needs no allocation.

pub mod crashkit;
pub(crate) mod emit;
pub mod prstatus;
pub mod qemu;
#[cfg(feature = "alloc")]
pub mod read;

use crate::bytes::{put_u32, u32_at};

/// Size of a note header. `Elf64_Nhdr` is three 32-bit words in the gABI
/// and in every core producer (goblin's `Nhdr32`; goblin's `Nhdr64`, with
/// 64-bit words, is a layout no core file uses).
pub const HEADER_SIZE: usize = core::mem::size_of::<goblin::elf::note::Nhdr32>();

/// Note name of the per-CPU `NT_PRSTATUS` notes.
pub const NAME_CORE: &[u8] = b"CORE";
/// Note name of Linux's `VMCOREINFO` (type 0).
pub const NAME_VMCOREINFO: &[u8] = b"VMCOREINFO";
/// Note name of QEMU's per-CPU state (type 0, [`qemu`]).
pub const NAME_QEMU: &[u8] = b"QEMU";
/// Note name of crashkit's notes ([`crashkit`]).
pub const NAME_CRASHKIT: &[u8] = b"CRASHKIT";
/// `n_type` of a `VMCOREINFO` note.
pub const NT_VMCOREINFO: u32 = 0;
/// `n_type` of a `GNU` note with the build-id (goblin's constant).
pub const NT_GNU_BUILD_ID: u32 = goblin::elf::note::NT_GNU_BUILD_ID;
/// `n_type` of a `CORE` note with registers (goblin's constant).
pub const NT_PRSTATUS: u32 = goblin::elf::note::NT_PRSTATUS;

/// `n` rounded up to the notes' 4-byte alignment.
pub const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Bytes one note takes: header, padded name with its NUL, padded
/// descriptor.
pub const fn note_size(name: &[u8], desc_len: usize) -> usize {
    HEADER_SIZE + pad4(name.len() + 1) + pad4(desc_len)
}

/// Offset of the descriptor from the start of its note.
pub const fn desc_offset(name: &[u8]) -> usize {
    HEADER_SIZE + pad4(name.len() + 1)
}

/// The header and padded name of a note, ready to be followed by the
/// descriptor: `(buffer, used length)`. Names longer than 16 bytes are not
/// used by any note crashkit writes; they are cut to 16.
pub fn encode_head(name: &[u8], n_type: u32, desc_len: u32) -> ([u8; HEADER_SIZE + 20], usize) {
    let name = name.get(..name.len().min(16)).unwrap_or(name);
    let mut head = [0u8; HEADER_SIZE + 20];
    put_u32(&mut head, 0, name.len() as u32 + 1);
    put_u32(&mut head, 4, desc_len);
    put_u32(&mut head, 8, n_type);
    crate::bytes::put(&mut head, HEADER_SIZE, name);
    (head, desc_offset(name))
}

/// One note found in a note segment, borrowing the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// File offset of the note header.
    pub offset: u64,
    /// The name without its NUL terminator (and without trailing NULs).
    pub name: &'a [u8],
    /// `n_type`.
    pub n_type: u32,
    /// File offset of the descriptor.
    pub desc_offset: u64,
    /// The descriptor, exactly `n_descsz` bytes.
    pub desc: &'a [u8],
}

/// Why a note segment's walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// Fewer than 12 bytes left but not all zero: a cut header.
    TruncatedHeader {
        /// File offset of the partial header.
        offset: u64,
    },
    /// `n_namesz` or `n_descsz` reaches past the end of the segment.
    PastSegmentEnd {
        /// File offset of the note header.
        offset: u64,
        /// `n_namesz` as read.
        namesz: u32,
        /// `n_descsz` as read.
        descsz: u32,
    },
    /// A note with `n_namesz` 0: every note a dump producer writes is
    /// named (`CORE`, `VMCOREINFO`, `QEMU`, `CRASHKIT`). Its sizes still
    /// place the next note, so the walk goes on.
    EmptyName {
        /// File offset of the note header.
        offset: u64,
    },
    /// An all-zero note header with non-zero bytes after it in the
    /// segment. A zero header ends a per-CPU note buffer in a capture
    /// kernel's raw notes, but a vmcore's note segments hold only notes and
    /// zero padding: the notes after it cannot be placed and are not read.
    ZeroHeader {
        /// File offset of the zero header.
        offset: u64,
        /// Bytes after the header that are not zero padding, up to the
        /// segment's end.
        trailing: u64,
    },
}

impl NoteError {
    /// File offset of the note header concerned.
    pub fn offset(&self) -> u64 {
        match *self {
            Self::TruncatedHeader { offset }
            | Self::PastSegmentEnd { offset, .. }
            | Self::EmptyName { offset }
            | Self::ZeroHeader { offset, .. } => offset,
        }
    }

    /// Whether the walk stops at this error (the notes after it cannot be
    /// placed); [`NoteError::EmptyName`] is the one it goes on after.
    pub fn ends_walk(&self) -> bool {
        !matches!(self, Self::EmptyName { .. })
    }
}

impl core::fmt::Display for NoteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TruncatedHeader { offset } => {
                write!(f, "note header cut short at offset {offset:#x}")
            }
            Self::PastSegmentEnd {
                offset,
                namesz,
                descsz,
            } => write!(
                f,
                "note at offset {offset:#x} (name {namesz} bytes, descriptor {descsz} bytes) \
                 runs past the end of its segment"
            ),
            Self::EmptyName { offset } => {
                write!(f, "note at offset {offset:#x} has no name (n_namesz 0)")
            }
            Self::ZeroHeader { offset, trailing } => write!(
                f,
                "all-zero note header at offset {offset:#x} with {trailing} bytes of notes or \
                 data after it in the segment; those are not read"
            ),
        }
    }
}

impl core::error::Error for NoteError {}

/// Walk the notes of one note segment. Yields notes until the segment
/// ends in zero padding (or nothing), or the bytes are malformed: a
/// malformed note is yielded as one error and the walk then stops, except
/// after a note without a name ([`NoteError::ends_walk`]). An all-zero
/// header with only zeros after it is padding; with anything else after it
/// it is [`NoteError::ZeroHeader`].
#[derive(Clone, Debug)]
pub struct Notes<'a> {
    bytes: &'a [u8],
    base: u64,
    position: usize,
    done: bool,
}

impl<'a> Notes<'a> {
    /// Walk `bytes`, the contents of a note segment starting at file offset
    /// `base`.
    pub fn new(bytes: &'a [u8], base: u64) -> Self {
        Self {
            bytes,
            base,
            position: 0,
            done: false,
        }
    }

    fn file_offset(&self, position: usize) -> u64 {
        self.base.saturating_add(position as u64)
    }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Result<Note<'a>, NoteError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.bytes.get(self.position..).unwrap_or(&[]);
        if rest.iter().all(|&b| b == 0) {
            // End of the segment, or zero padding / a terminator to its end.
            self.done = true;
            return None;
        }
        let offset = self.file_offset(self.position);
        let (Some(namesz), Some(descsz), Some(n_type)) =
            (u32_at(rest, 0), u32_at(rest, 4), u32_at(rest, 8))
        else {
            self.done = true;
            return Some(Err(NoteError::TruncatedHeader { offset }));
        };
        if namesz == 0 && descsz == 0 && n_type == 0 {
            // Zeros to the end were handled above: something follows.
            self.done = true;
            let after = rest.get(HEADER_SIZE..).unwrap_or(&[]);
            let last = after.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            return Some(Err(NoteError::ZeroHeader {
                offset,
                trailing: last as u64,
            }));
        }
        let past_end = NoteError::PastSegmentEnd {
            offset,
            namesz,
            descsz,
        };
        let name_len = namesz as usize;
        let desc_len = descsz as usize;
        let desc_start = pad4_checked(name_len).and_then(|n| HEADER_SIZE.checked_add(n));
        let layout = desc_start.and_then(|desc_start| {
            let name = rest.get(HEADER_SIZE..HEADER_SIZE.checked_add(name_len)?)?;
            let desc = rest.get(desc_start..desc_start.checked_add(desc_len)?)?;
            let next = desc_start.checked_add(pad4_checked(desc_len)?)?;
            Some((name, desc_start, desc, next))
        });
        let Some((mut name, desc_start, desc, next)) = layout else {
            self.done = true;
            return Some(Err(past_end));
        };
        while let [head @ .., 0] = name {
            name = head;
        }
        let start = self.position;
        // The descriptor's padding may be cut at the very end of a segment;
        // the next step then sees an empty rest and ends the walk.
        self.position = start.saturating_add(next.min(rest.len()));
        if namesz == 0 {
            return Some(Err(NoteError::EmptyName { offset }));
        }
        Some(Ok(Note {
            offset,
            name,
            n_type,
            desc_offset: self.file_offset(start.saturating_add(desc_start)),
            desc,
        }))
    }
}

fn pad4_checked(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let (head, len) = encode_head(name, n_type, desc.len() as u32);
        let mut out = head[..len].to_vec();
        out.extend_from_slice(desc);
        out.resize(note_size(name, desc.len()), 0);
        out
    }

    #[test]
    fn walks_notes_with_their_offsets() {
        let mut seg = note(b"CORE", 1, &[7; 5]);
        seg.extend(note(b"VMCOREINFO", 0, b"A=1\n"));
        let notes: Vec<_> = Notes::new(&seg, 0x1000).collect();
        assert_eq!(notes.len(), 2);
        let first = notes[0].unwrap();
        assert_eq!(
            (first.name, first.n_type, first.desc),
            (&b"CORE"[..], 1, &[7u8; 5][..])
        );
        assert_eq!((first.offset, first.desc_offset), (0x1000, 0x1000 + 20));
        let second = notes[1].unwrap();
        assert_eq!(second.offset, 0x1000 + 20 + 8);
        assert_eq!(second.desc, b"A=1\n");
        assert_eq!(second.desc_offset, second.offset + 12 + 12);
    }

    #[test]
    fn stops_at_terminators_and_reports_cut_notes() {
        let mut seg = note(b"CORE", 1, &[1; 8]);
        seg.extend([0u8; 12]);
        seg.extend(note(b"CORE", 1, &[2; 8]));
        let results: Vec<_> = Notes::new(&seg, 0).collect();
        assert_eq!(results.len(), 2, "a zero header ends the walk");
        assert_eq!(
            results[1],
            Err(NoteError::ZeroHeader {
                offset: 28,
                trailing: 28
            }),
            "and is reported when notes follow it"
        );
        let mut padded = note(b"CORE", 1, &[1; 8]);
        padded.extend([0u8; 40]);
        assert!(
            Notes::new(&padded, 0).all(|r| r.is_ok()),
            "zero padding to the segment's end is not damage"
        );
        let mut nameless = note(b"CORE", 1, &[1; 8]);
        nameless[0..4].copy_from_slice(&0u32.to_le_bytes());
        nameless.truncate(12);
        nameless.extend([1u8; 8]);
        nameless.extend(note(b"VMCOREINFO", 0, b"A=1\n"));
        let results: Vec<_> = Notes::new(&nameless, 0).collect();
        assert_eq!(results[0], Err(NoteError::EmptyName { offset: 0 }));
        assert_eq!(
            results[1].map(|n| n.name),
            Ok(&b"VMCOREINFO"[..]),
            "the walk goes on after a nameless note"
        );

        let whole = note(b"CORE", 1, &[1; 336]);
        for cut in 1..whole.len() {
            let results: Vec<_> = Notes::new(&whole[..cut], 0).collect();
            assert_eq!(results.len(), 1, "cut at {cut}");
            assert!(results[0].is_err(), "cut at {cut} must be reported");
        }
        assert!(Notes::new(&whole, 0).all(|r| r.is_ok()));
        let mut huge = note(b"CORE", 1, &[1; 8]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let results: Vec<_> = Notes::new(&huge, 0).collect();
        assert!(matches!(
            results[0],
            Err(NoteError::PastSegmentEnd {
                descsz: u32::MAX,
                ..
            })
        ));
    }
}
