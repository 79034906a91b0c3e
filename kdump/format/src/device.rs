//! The dump device: where a capture kernel (or the in-place fallback)
//! writes a dump, and how a reader tells a whole dump from a torn one, an
//! older one, or one already saved. FreeBSD's kerneldump and savecore are
//! the model; the layout is crashkit's (docs/kdump.md, "The dump device").
//!
//! ```text
//! | block 0: leading header | block 1 ..: the dump file's bytes ... | last block: trailing header |
//! ```
//!
//! Blocks are [`BLOCK`] bytes. The dump file (an ELF vmcore or a
//! kdump-compressed file, as the format's writer makes it) starts at
//! [`DATA_OFFSET`]; its length is in the headers. The trailing header is in
//! the device's last block, so a reader finds both headers without trusting
//! either.
//!
//! Write order ([`DeviceSink`]), so that a write cut anywhere never reads as
//! a whole dump, new or old:
//! 1. the last block zeroed (the previous trailing header), then the
//!    leading header, state [`State::Writing`], with the new dump's
//!    identity (replacing the previous dump's leading header in one block
//!    write); flush;
//! 2. the dump file's bytes; a write past the room there is refused and
//!    remembered, and the dump is then marked as not fitting;
//! 3. flush; the trailing header, state [`State::Complete`]; flush; the
//!    leading header, the same bytes; flush.
//!
//! A reader ([`DeviceDump::read`]) takes a dump as whole only when both
//! headers check, say [`State::Complete`], and are byte for byte the same;
//! [`State::Saved`] in both is a whole dump that `crashkit save --clear`
//! has copied out.

use crate::bytes::{array_at, put, put_u32, put_u64, u32_at, u64_at};

/// The device's block: each header takes one.
pub const BLOCK: u64 = 4096;
/// Where the dump file starts on the device.
pub const DATA_OFFSET: u64 = BLOCK;
/// The encoded header's length (the rest of its block is zero).
pub const HEADER_LEN: usize = 128;
/// The header's magic.
pub const MAGIC: [u8; 16] = *b"crashkit dumpdev";
/// The header's layout version.
pub const VERSION: u32 = 1;
/// Offset of the CRC-32C, over the bytes before it.
const CRC_AT: usize = HEADER_LEN - 4;

/// How far the dump on the device got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Being written: set before the first data block.
    Writing,
    /// Written; both headers written after the data.
    Complete,
    /// Complete, and copied out by `crashkit save --clear`.
    Saved,
}

impl State {
    const fn code(self) -> u32 {
        match self {
            Self::Writing => 1,
            Self::Complete => 2,
            Self::Saved => 3,
        }
    }

    const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Writing),
            2 => Some(Self::Complete),
            3 => Some(Self::Saved),
            _ => None,
        }
    }
}

/// The format of the dump file on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An ELF vmcore.
    Elf,
    /// A kdump-compressed file.
    Kdump,
}

impl Format {
    const fn code(self) -> u32 {
        match self {
            Self::Elf => 1,
            Self::Kdump => 2,
        }
    }

    const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Elf),
            2 => Some(Self::Kdump),
            _ => None,
        }
    }
}

/// `flags` bit 0: the dump did not fit; its file was cut at the room
/// there was (its own completion marker is then missing too).
pub const FLAG_DID_NOT_FIT: u32 = 1;

/// One header (both ends carry the same).
///
/// | offset | field |
/// |---|---|
/// | 0 | magic, 16 bytes: `crashkit dumpdev` |
/// | 16 | u32 version (1) |
/// | 20 | u32 header length (128) |
/// | 24 | u32 state: 1 writing, 2 complete, 3 saved |
/// | 28 | u32 format: 1 ELF, 2 kdump-compressed |
/// | 32 | 16 bytes dump id (the dump's identity note has the same) |
/// | 48 | u64 crash time, seconds since 1970 (0 unknown) |
/// | 64 | u64 device length the writer used |
/// | 72 | u64 data offset (4096) |
/// | 80 | u64 data length: bytes of the dump file (0 while writing) |
/// | 88 | u32 flags: bit 0 did not fit |
/// | 92..124 | zero |
/// | 124 | u32 CRC-32C of bytes 0..124 |
///
/// All little-endian, as the dump formats crashkit writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceHeader {
    /// How far the dump got.
    pub state: State,
    /// The dump file's format.
    pub format: Format,
    /// The dump's id.
    pub dump_id: [u8; 16],
    /// Seconds since 1970 at the crash, 0 if unknown.
    pub crash_time: u64,
    /// The device's length as the writer used it.
    pub device_len: u64,
    /// The dump file's length.
    pub data_len: u64,
    /// [`FLAG_DID_NOT_FIT`].
    pub flags: u32,
}

/// Why a header does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// No magic: no crashkit dump device header here.
    NoMagic,
    /// A version this reader does not know.
    Version(u32),
    /// The checksum does not match.
    Checksum,
    /// A field out of its range (state, format, length, offset).
    Field(&'static str),
}

impl core::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoMagic => f.write_str("no crashkit dump device header"),
            Self::Version(v) => write!(f, "header version {v}, this reader knows {VERSION}"),
            Self::Checksum => f.write_str("the header's checksum does not match"),
            Self::Field(name) => write!(f, "the header's {name} is out of range"),
        }
    }
}

impl DeviceHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        put(&mut b, 0, &MAGIC);
        put_u32(&mut b, 16, VERSION);
        put_u32(&mut b, 20, HEADER_LEN as u32);
        put_u32(&mut b, 24, self.state.code());
        put_u32(&mut b, 28, self.format.code());
        put(&mut b, 32, &self.dump_id);
        put_u64(&mut b, 48, self.crash_time);
        put_u64(&mut b, 64, self.device_len);
        put_u64(&mut b, 72, DATA_OFFSET);
        put_u64(&mut b, 80, self.data_len);
        put_u32(&mut b, 88, self.flags);
        let crc = crate::crc32c::checksum(&b[..CRC_AT]);
        put_u32(&mut b, CRC_AT, crc);
        b
    }

    /// Decode and check a header; every field against the others.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderProblem> {
        if bytes.get(..16) != Some(&MAGIC[..]) {
            return Err(HeaderProblem::NoMagic);
        }
        let field = |at: usize| u32_at(bytes, at).ok_or(HeaderProblem::Field("length"));
        let wide = |at: usize| u64_at(bytes, at).ok_or(HeaderProblem::Field("length"));
        let version = field(16)?;
        if version != VERSION {
            return Err(HeaderProblem::Version(version));
        }
        if field(20)? != HEADER_LEN as u32 {
            return Err(HeaderProblem::Field("header length"));
        }
        let stored = field(CRC_AT)?;
        let covered = bytes.get(..CRC_AT).ok_or(HeaderProblem::Field("length"))?;
        if crate::crc32c::checksum(covered) != stored {
            return Err(HeaderProblem::Checksum);
        }
        let state = State::from_code(field(24)?).ok_or(HeaderProblem::Field("state"))?;
        let format = Format::from_code(field(28)?).ok_or(HeaderProblem::Field("format"))?;
        let dump_id = array_at::<16>(bytes, 32).ok_or(HeaderProblem::Field("length"))?;
        let device_len = wide(64)?;
        if wide(72)? != DATA_OFFSET {
            return Err(HeaderProblem::Field("data offset"));
        }
        let data_len = wide(80)?;
        // The data lies between the two header blocks.
        if room(device_len).is_none_or(|room| data_len > room) || device_len % BLOCK != 0 {
            return Err(HeaderProblem::Field("data or device length"));
        }
        if state == State::Writing && data_len != 0 {
            return Err(HeaderProblem::Field("data length (still writing)"));
        }
        Ok(Self {
            state,
            format,
            dump_id,
            crash_time: wide(48)?,
            device_len,
            data_len,
            flags: field(88)?,
        })
    }
}

/// The room for the dump file on a device of `device_len` bytes (rounded
/// down to whole blocks): all but the two header blocks. `None` when the
/// device cannot hold the headers and one block of data.
pub const fn room(device_len: u64) -> Option<u64> {
    let blocks = device_len / BLOCK;
    if blocks < 3 {
        None
    } else {
        Some((blocks - 2) * BLOCK)
    }
}

/// What a device holds, from its first and last blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceDump {
    /// No crashkit dump device header in the first block.
    Empty,
    /// A dump whose headers say it was written whole.
    Whole(DeviceHeader),
    /// A whole dump already saved (`crashkit save --clear`).
    Saved(DeviceHeader),
    /// A dump that was started and is not whole: the leading header's
    /// word, and why.
    Torn(DeviceHeader, Torn),
    /// The first block has the magic but does not read.
    Unreadable(HeaderProblem),
}

/// Why a dump is not whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Torn {
    /// The leading header still says writing: the writer stopped before
    /// its last step.
    StillWriting,
    /// The trailing header does not read.
    NoTrailer(HeaderProblem),
    /// The two headers differ (another dump's, or a step missed).
    HeadersDisagree,
    /// The device is shorter than the headers say.
    DeviceShorter {
        /// What the headers say.
        expected: u64,
        /// What it is.
        actual: u64,
    },
}

impl core::fmt::Display for Torn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::StillWriting => {
                f.write_str("the leading header still says writing: the dump was never finished")
            }
            Self::NoTrailer(why) => write!(f, "the trailing header does not read ({why})"),
            Self::HeadersDisagree => f.write_str("the leading and trailing headers disagree"),
            Self::DeviceShorter { expected, actual } => write!(
                f,
                "the device is {actual} bytes, the headers say {expected}"
            ),
        }
    }
}

impl DeviceDump {
    /// Judge a device of `device_len` bytes from its first block and the
    /// block at the offset the leading header gives for the trailing one
    /// (`trailing(offset)` reads `BLOCK` bytes there, `None` past the end).
    pub fn read<'b>(
        first: &[u8],
        device_len: u64,
        trailing: impl FnOnce(u64) -> Option<&'b [u8]>,
    ) -> Self {
        let leading = match DeviceHeader::decode(first) {
            Ok(header) => header,
            Err(HeaderProblem::NoMagic) => return Self::Empty,
            Err(problem) => return Self::Unreadable(problem),
        };
        if leading.state == State::Writing {
            return Self::Torn(leading, Torn::StillWriting);
        }
        if device_len < leading.device_len {
            return Self::Torn(
                leading,
                Torn::DeviceShorter {
                    expected: leading.device_len,
                    actual: device_len,
                },
            );
        }
        let at = leading.device_len - BLOCK;
        let Some(block) = trailing(at) else {
            return Self::Torn(leading, Torn::NoTrailer(HeaderProblem::Field("length")));
        };
        match DeviceHeader::decode(block) {
            Err(problem) => Self::Torn(leading, Torn::NoTrailer(problem)),
            Ok(trailer) if trailer != leading => Self::Torn(leading, Torn::HeadersDisagree),
            Ok(_) if leading.state == State::Saved => Self::Saved(leading),
            Ok(_) => Self::Whole(leading),
        }
    }
}

/// Why a [`DeviceSink`] refused a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError<E> {
    /// The device's own error.
    Device(E),
    /// The write would pass the room for the dump file (it starts at this
    /// offset of the dump file).
    Full {
        /// Offset in the dump file of the refused write.
        offset: u64,
    },
}

/// Why [`DeviceSink::begin`] wrote no dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginError<E> {
    /// The device cannot hold two header blocks and one of data.
    TooSmall {
        /// Its length in whole blocks.
        device_len: u64,
    },
    /// The device's own error, on the first writes.
    Device(E),
}

/// A [`DumpSink`](crate::DumpSink) that lays a dump out on a device: the
/// leading header marked writing before any data, the dump file after it,
/// both headers marked complete by [`finish`](Self::finish) after the data.
/// Allocates nothing.
#[derive(Debug)]
pub struct DeviceSink<S: crate::DumpSink> {
    inner: S,
    header: DeviceHeader,
    room: u64,
    written: u64,
    did_not_fit: bool,
}

impl<S: crate::DumpSink> DeviceSink<S> {
    /// Start a dump on `inner`, a device of `device_len` bytes (rounded
    /// down to whole blocks): the leading header says writing, the last
    /// block (a previous dump's trailing header) is zeroed, flushed.
    pub fn begin(
        mut inner: S,
        device_len: u64,
        format: Format,
        dump_id: [u8; 16],
        crash_time: u64,
    ) -> Result<Self, BeginError<S::Error>> {
        let device_len = device_len / BLOCK * BLOCK;
        let room = room(device_len).ok_or(BeginError::TooSmall { device_len })?;
        let header = DeviceHeader {
            state: State::Writing,
            format,
            dump_id,
            crash_time,
            device_len,
            data_len: 0,
            flags: 0,
        };
        // One block buffer (the crash path's stack is small): zeros for the
        // previous trailing header, then the new leading header. Either
        // order is safe: with one of the two done, the headers disagree.
        let mut block = [0u8; BLOCK as usize];
        inner
            .write_at(device_len - BLOCK, &block)
            .map_err(BeginError::Device)?;
        put(&mut block, 0, &header.encode());
        inner.write_at(0, &block).map_err(BeginError::Device)?;
        inner.flush().map_err(BeginError::Device)?;
        Ok(Self {
            inner,
            header,
            room,
            written: 0,
            did_not_fit: false,
        })
    }

    /// Mark the dump written: `data_len` bytes of dump file (what its
    /// writer reports; the end of the last write if larger), the trailing
    /// header, then the leading one, each flushed. Returns the device and
    /// the header written.
    pub fn finish(mut self, data_len: u64) -> Result<(S, DeviceHeader), S::Error> {
        self.header.state = State::Complete;
        self.header.data_len = data_len.max(self.written).min(self.room);
        if self.did_not_fit {
            self.header.flags |= FLAG_DID_NOT_FIT;
        }
        let mut block = [0u8; BLOCK as usize];
        put(&mut block, 0, &self.header.encode());
        self.inner.flush()?;
        self.inner
            .write_at(self.header.device_len - BLOCK, &block)?;
        self.inner.flush()?;
        self.inner.write_at(0, &block)?;
        self.inner.flush()?;
        Ok((self.inner, self.header))
    }

    /// Whether a write was refused for want of room.
    pub fn did_not_fit(&self) -> bool {
        self.did_not_fit
    }
}

impl<S: crate::DumpSink> crate::DumpSink for DeviceSink<S> {
    type Error = DeviceError<S::Error>;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error> {
        let end = offset.checked_add(bytes.len() as u64);
        let Some(end) = end.filter(|&end| end <= self.room) else {
            self.did_not_fit = true;
            return Err(DeviceError::Full { offset });
        };
        self.inner
            .write_at(DATA_OFFSET + offset, bytes)
            .map_err(DeviceError::Device)?;
        self.written = self.written.max(end);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().map_err(DeviceError::Device)
    }
}
