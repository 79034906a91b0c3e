//! The reader: an area's bytes (from a dump) checked field by field, and
//! each ring's frames decoded and checked, or reported with what is wrong.
//!
//! Hostile input: every size, count and position is checked against the
//! others and against the bytes present; nothing allocates; the work is
//! bounded by the ring sizes.

use core::fmt;

use crate::layout::{
    self, CONTEXTS, END_CUT, END_WHOLE, FRAME_PREFIX, FRAME_SUFFIX, HEADER_SIZE, MAX_CPUS,
    MAX_DECODED, MAX_ENCODED, MAX_RING_BYTES, MIN_RING_BYTES, RING_HEADER_SIZE, header as at,
    ring as rat,
};
use crate::rzcobs;
use crate::{LogContext, crc};

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(offset..offset + 2)?.try_into().ok()?,
    ))
}
fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}
fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// Why bytes are not a log area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaError {
    /// Fewer bytes than the header, or than the size the header states.
    Truncated {
        /// Bytes needed.
        need: u64,
        /// Bytes present.
        have: u64,
    },
    /// The first eight bytes are not [`layout::MAGIC`].
    Magic,
    /// A version this reader does not know.
    Version(u16),
    /// The header's CRC-32C does not match its fixed fields.
    HeaderCrc {
        /// Stored.
        stored: u32,
        /// Computed over bytes 0..32.
        computed: u32,
    },
    /// A field that disagrees with the layout or with the others.
    Field {
        /// The field's name in docs/crash-log.md.
        name: &'static str,
        /// Its value.
        value: u64,
        /// What it should be.
        expected: &'static str,
    },
}

impl fmt::Display for AreaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { need, have } => {
                write!(f, "log area truncated: {need} bytes needed, {have} present")
            }
            Self::Magic => f.write_str("no log area magic (\"CKLOGRNG\")"),
            Self::Version(v) => write!(f, "log area version {v} (this reader knows 1)"),
            Self::HeaderCrc { stored, computed } => write!(
                f,
                "log area header CRC-32C {stored:#010x}, computed {computed:#010x}: the header is damaged"
            ),
            Self::Field {
                name,
                value,
                expected,
            } => write!(f, "log area field {name} is {value}, expected {expected}"),
        }
    }
}

impl core::error::Error for AreaError {}

/// A checked log area.
#[derive(Clone, Copy, Debug)]
pub struct AreaView<'a> {
    bytes: &'a [u8],
    cpus: usize,
    ring_bytes: usize,
}

impl<'a> AreaView<'a> {
    /// Check `bytes` (at least the area's stated size; more is ignored).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AreaError> {
        let have = bytes.len() as u64;
        let header = bytes.get(..HEADER_SIZE).ok_or(AreaError::Truncated {
            need: HEADER_SIZE as u64,
            have,
        })?;
        if header.get(..8) != Some(&layout::MAGIC[..]) {
            return Err(AreaError::Magic);
        }
        let field = |name, value: u64, expected| AreaError::Field {
            name,
            value,
            expected,
        };
        let version = u16_at(header, at::VERSION).unwrap_or(0);
        if version != layout::VERSION {
            return Err(AreaError::Version(version));
        }
        let stored = u32_at(header, at::HEADER_CRC).unwrap_or(0);
        let computed = crc::checksum(header.get(..at::HEADER_CRC).unwrap_or(&[]));
        if stored != computed {
            return Err(AreaError::HeaderCrc { stored, computed });
        }
        let header_size = u16_at(header, at::HEADER_SIZE).unwrap_or(0);
        if usize::from(header_size) != HEADER_SIZE {
            return Err(field("header_size", header_size.into(), "128"));
        }
        let ring_header = u16_at(header, at::RING_HEADER_SIZE).unwrap_or(0);
        if usize::from(ring_header) != RING_HEADER_SIZE {
            return Err(field("ring_header_size", ring_header.into(), "64"));
        }
        let contexts = u16_at(header, at::CONTEXTS).unwrap_or(0);
        if usize::from(contexts) != CONTEXTS {
            return Err(field("contexts", contexts.into(), "3"));
        }
        let cpus = u32_at(header, at::CPUS).unwrap_or(0) as usize;
        if cpus == 0 || cpus > MAX_CPUS {
            return Err(field("cpus", cpus as u64, "1..=4096"));
        }
        let ring_bytes = u32_at(header, at::RING_BYTES).unwrap_or(0) as usize;
        if !ring_bytes.is_power_of_two() || !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&ring_bytes)
        {
            return Err(field(
                "ring_bytes",
                ring_bytes as u64,
                "a power of two, 256..=1 MiB",
            ));
        }
        let total = (HEADER_SIZE + cpus * CONTEXTS * (RING_HEADER_SIZE + ring_bytes)) as u64;
        let stated = u64_at(header, at::TOTAL_SIZE).unwrap_or(0);
        if stated != total {
            return Err(field(
                "total_size",
                stated,
                "128 + cpus * 3 * (64 + ring_bytes)",
            ));
        }
        if have < total {
            return Err(AreaError::Truncated { need: total, have });
        }
        let id_len = header.get(at::BUILD_ID_LEN).copied().unwrap_or(0);
        if usize::from(id_len) > layout::BUILD_ID_CAPACITY {
            return Err(field("build_id_len", id_len.into(), "0..=32"));
        }
        Ok(Self {
            bytes: bytes.get(..total as usize).unwrap_or(bytes),
            cpus,
            ring_bytes,
        })
    }

    /// The area's size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// CPUs the area has rings for.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Data bytes per ring.
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// The kernel's build-id, if the kernel installed the log with one.
    pub fn build_id(&self) -> Option<&'a [u8]> {
        let len = usize::from(*self.bytes.get(at::BUILD_ID_LEN)?);
        let id = self.bytes.get(at::BUILD_ID..at::BUILD_ID + len)?;
        (!id.is_empty()).then_some(id)
    }

    /// Whether the kernel installed the log (`install` names the clock).
    pub fn installed(&self) -> bool {
        self.bytes.get(at::CLOCK).is_some_and(|&c| c != 0)
    }

    /// The area's address as the kernel saw it.
    pub fn address(&self) -> u64 {
        u64_at(self.bytes, at::ADDRESS).unwrap_or(0)
    }

    /// Messages that had no ring.
    pub fn unplaced(&self) -> u32 {
        u32_at(self.bytes, at::UNPLACED).unwrap_or(0)
    }

    /// Every ring, CPU-major.
    pub fn rings(&self) -> impl Iterator<Item = RingView<'a>> + '_ {
        let stride = RING_HEADER_SIZE + self.ring_bytes;
        (0..self.cpus * CONTEXTS).filter_map(move |index| {
            let start = HEADER_SIZE + index * stride;
            let bytes = self.bytes.get(start..start + stride)?;
            let context = LogContext::ALL.get(index % CONTEXTS).copied()?;
            Some(RingView::new(
                bytes,
                index / CONTEXTS,
                context,
                self.installed(),
            ))
        })
    }
}

/// One ring's header and data.
#[derive(Clone, Copy, Debug)]
pub struct RingView<'a> {
    data: &'a [u8],
    /// The CPU (by position in the area).
    pub cpu: usize,
    /// The context (by position).
    pub context: LogContext,
    /// Encoded bytes ever written.
    pub head: u64,
    /// `head` after the last whole frame.
    pub committed: u64,
    /// Frames begun.
    pub next_seq: u32,
    /// Messages dropped by re-entry.
    pub dropped: u32,
    /// Writers inside a frame when the memory was read (0: none).
    pub depth: u32,
    /// Frames cut at the size limit.
    pub cut: u32,
    /// The ring header names another CPU or context than its position
    /// (damage), if the log was installed.
    pub misnamed: bool,
}

impl<'a> RingView<'a> {
    fn new(bytes: &'a [u8], cpu: usize, context: LogContext, installed: bool) -> Self {
        let (header, data) = bytes.split_at(RING_HEADER_SIZE.min(bytes.len()));
        let named_cpu = u32_at(header, rat::CPU).unwrap_or(0) as usize;
        let named_context = header.get(rat::CONTEXT).copied().unwrap_or(0);
        Self {
            data,
            cpu,
            context,
            head: u64_at(header, rat::HEAD).unwrap_or(0),
            committed: u64_at(header, rat::COMMITTED).unwrap_or(0),
            next_seq: u32_at(header, rat::NEXT_SEQ).unwrap_or(0),
            dropped: u32_at(header, rat::DROPPED).unwrap_or(0),
            depth: u32_at(header, rat::DEPTH).unwrap_or(0),
            cut: u32_at(header, rat::CUT).unwrap_or(0),
            misnamed: installed && (named_cpu != cpu || named_context != context as u8),
        }
    }

    /// Whether nothing was ever written.
    pub fn is_empty(&self) -> bool {
        self.head == 0
    }

    /// Decode the ring's frames, oldest first, handing each to `each`.
    pub fn read(&self, mut each: impl FnMut(Item<'_>)) -> RingSummary {
        let size = self.data.len() as u64;
        let mut summary = RingSummary::default();
        if size == 0 || !size.is_power_of_two() {
            summary.header_damaged = true;
            return summary;
        }
        let low = self.head.saturating_sub(size);
        // The frames end at `committed`, which must lie in the window and
        // leave at most one frame's bytes after it.
        let mut high = self.committed;
        if high > self.head || high < low || self.head - high > MAX_ENCODED as u64 {
            summary.header_damaged = true;
            // Read what the window holds; the unfinished tail shows itself.
            high = self.head;
        }
        summary.torn_bytes = self.head - high;
        let byte = |position: u64| {
            self.data
                .get((position % size) as usize)
                .copied()
                .unwrap_or(0)
        };
        let mut at = low;
        if low > 0 {
            // The window starts inside an overwritten frame: skip to the
            // first delimiter.
            while at < high && byte(at) != 0 {
                at += 1;
            }
            summary.lost_bytes = at - low;
            at += 1;
        }
        let mut expected: Option<u32> = None;
        let mut encoded = [0u8; MAX_ENCODED];
        let mut decoded = [0u8; MAX_DECODED];
        while at < high {
            let start = at;
            let mut len = 0usize;
            while at < high && byte(at) != 0 {
                if let Some(slot) = encoded.get_mut(len) {
                    *slot = byte(at);
                }
                len += 1;
                at += 1;
            }
            let delimited = at < high;
            at += 1;
            if len == 0 {
                continue;
            }
            let damage = if !delimited {
                Some(Damage::NoDelimiter)
            } else if len > encoded.len() {
                Some(Damage::TooLong)
            } else {
                None
            };
            let result = match damage {
                Some(damage) => Err(damage),
                None => check(encoded.get(..len).unwrap_or(&[]), &mut decoded),
            };
            match result {
                Ok(frame) => {
                    match expected {
                        None => {
                            summary.overwritten = if low > 0 { frame.seq } else { 0 };
                            if low == 0 && frame.seq != 0 {
                                summary.missing = summary.missing.saturating_add(frame.seq);
                            }
                        }
                        Some(want) if frame.seq != want => {
                            summary.missing =
                                summary.missing.saturating_add(frame.seq.wrapping_sub(want));
                        }
                        Some(_) => {}
                    }
                    expected = Some(frame.seq.wrapping_add(1));
                    summary.frames += 1;
                    if frame.cut {
                        summary.cut += 1;
                    }
                    each(Item::Frame(frame));
                }
                Err(why) => {
                    summary.damaged += 1;
                    each(Item::Damaged {
                        position: start,
                        len,
                        why,
                    });
                }
            }
        }
        if let Some(next) = expected {
            // Frames begun after the last one read: the one being written
            // (torn) if any, the rest lost.
            let begun = self.next_seq.wrapping_sub(next);
            let torn = u32::from(summary.torn_bytes > 0 || self.depth > 0);
            summary.missing = summary.missing.saturating_add(begun.saturating_sub(torn));
        } else if low > 0 {
            summary.overwritten = self.next_seq;
        }
        summary
    }
}

fn check<'d>(encoded: &[u8], out: &'d mut [u8; MAX_DECODED]) -> Result<Frame<'d>, Damage> {
    let decoded = rzcobs::decode(encoded, out).map_err(|error| match error {
        rzcobs::DecodeError::Malformed => Damage::Encoding,
        rzcobs::DecodeError::TooLong => Damage::TooLong,
    })?;
    let content = decoded.len() - decoded.iter().rev().take_while(|&&b| b == 0).count();
    if decoded.len() - content > 6 {
        return Err(Damage::Padding);
    }
    let frame = decoded.get(..content).ok_or(Damage::Short)?;
    if frame.len() < FRAME_PREFIX + FRAME_SUFFIX {
        return Err(Damage::Short);
    }
    let (body, suffix) = frame.split_at(frame.len() - FRAME_SUFFIX);
    let marker = suffix.get(4).copied().unwrap_or(0);
    if marker != END_WHOLE && marker != END_CUT {
        return Err(Damage::Marker);
    }
    let stored = u32_at(suffix, 0).unwrap_or(0);
    if crc::checksum(body) != stored {
        return Err(Damage::Crc);
    }
    Ok(Frame {
        seq: u32_at(body, 0).unwrap_or(0),
        stamp: u64_at(body, 4).unwrap_or(0),
        defmt: body.get(FRAME_PREFIX..).unwrap_or(&[]),
        cut: marker == END_CUT,
    })
}

/// One checked frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'d> {
    /// The ring's frame number.
    pub seq: u32,
    /// When it was begun ([`layout::CLOCK_PLATFORM_NS`]).
    pub stamp: u64,
    /// defmt's frame bytes (string index, timestamp if the kernel defines
    /// one, arguments).
    pub defmt: &'d [u8],
    /// The writer cut the defmt bytes at [`layout::MAX_DEFMT_BYTES`].
    pub cut: bool,
}

/// What [`RingView::read`] hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'d> {
    /// A whole frame whose check matched.
    Frame(Frame<'d>),
    /// Bytes between two delimiters that are not a valid frame.
    Damaged {
        /// Position (in `head` terms) of the first byte.
        position: u64,
        /// Encoded length.
        len: usize,
        /// What is wrong.
        why: Damage,
    },
}

/// Why bytes between delimiters are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Not valid rzCOBS.
    Encoding,
    /// Longer than any frame the writer makes.
    TooLong,
    /// More than six zeros of padding.
    Padding,
    /// Shorter than a frame's prefix and suffix.
    Short,
    /// The end marker is neither whole nor cut.
    Marker,
    /// The CRC-32C does not match.
    Crc,
    /// No delimiter before the committed end.
    NoDelimiter,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encoding => "not valid rzCOBS",
            Self::TooLong => "longer than any frame",
            Self::Padding => "too much padding",
            Self::Short => "too short for a frame",
            Self::Marker => "no end marker",
            Self::Crc => "CRC-32C mismatch",
            Self::NoDelimiter => "no delimiter before the committed end",
        })
    }
}

/// What one ring's read found, beside its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingSummary {
    /// Whole frames read.
    pub frames: u32,
    /// Of those, cut by the writer.
    pub cut: u32,
    /// Stretches between delimiters that are not frames.
    pub damaged: u32,
    /// Frames overwritten by newer ones (before the oldest one read).
    pub overwritten: u32,
    /// Frames missing between those read (damage) or after them.
    pub missing: u32,
    /// Bytes of the overwritten frame the window starts in.
    pub lost_bytes: u64,
    /// Bytes of a frame being written when the memory was read.
    pub torn_bytes: u64,
    /// `committed` disagrees with `head`.
    pub header_damaged: bool,
}
