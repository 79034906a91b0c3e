//! makedumpfile's flattened format, read in place, and the logical file a
//! kdump reader reads from.
//!
//! A flattened file is a 4096-byte header (`signature[16]` =
//! `"makedumpfile"` NUL-padded, `type` i64 @16 = 1, `version` i64 @24 =
//! 1, all integers **big-endian**), then records: `offset` i64, `size`
//! i64, then `size` bytes that belong at `offset` of the reassembled file;
//! a record with offset and size both -1 ends the stream. `makedumpfile -R`
//! reassembles it by writing each record at its offset, so a later record
//! wins where two overlap.
//!
//! [`FlatIndex::build`] walks the records once (time in proportion to
//! their number, no data copied) and keeps, for each reassembled range,
//! where its bytes are in the flattened file, later records winning.
//! [`Source`] then reads the reassembled file's bytes without building it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::bytes::array_at;

/// The flattened header's signature (then NULs to 16 bytes).
pub const SIGNATURE: &[u8] = b"makedumpfile";
/// Size of the flattened header.
pub const HEADER_SIZE: usize = 4096;
/// Size of a record header.
pub const RECORD_HEADER_SIZE: usize = 16;

/// Why a flattened file cannot be indexed, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatError {
    /// File offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub kind: FlatErrorKind,
}

/// What is wrong with a flattened file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlatErrorKind {
    /// The header's type or version is not 1.
    BadHeader,
    /// A record's offset or size is negative (other than the end marker) or
    /// wraps.
    BadRecord,
}

impl core::fmt::Display for FlatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.kind {
            FlatErrorKind::BadHeader => {
                f.write_str("flattened header: type or version is not 1")?
            }
            FlatErrorKind::BadRecord => {
                f.write_str("flattened record with a negative or wrapping offset or size")?
            }
        }
        write!(f, ", at offset {:#x}", self.offset)
    }
}

impl core::error::Error for FlatError {}

/// Whether `data` starts with a flattened header.
pub fn is_flattened(data: &[u8]) -> bool {
    data.get(..16).is_some_and(|sig| {
        sig.starts_with(SIGNATURE) && sig[SIGNATURE.len()..].iter().all(|&b| b == 0)
    })
}

/// Where the reassembled file's bytes are in the flattened file.
#[derive(Debug, Default)]
pub struct FlatIndex {
    /// Reassembled start -> (reassembled end, flattened offset of start).
    ranges: BTreeMap<u64, (u64, u64)>,
    /// Whether the end marker was found (else the stream was cut).
    pub complete: bool,
    /// Records read.
    pub records: u64,
    /// Bytes of earlier records overwritten by later ones.
    pub overwritten: u64,
    /// The reassembled file's length (the end of the furthest record).
    pub len: u64,
}

impl FlatIndex {
    /// Index the records of `data`. A cut stream is indexed up to its last
    /// whole record ([`complete`](Self::complete) is then false); a record
    /// that cannot be right is an error.
    pub fn build(data: &[u8]) -> Result<Self, FlatError> {
        let be = |at: usize| array_at::<8>(data, at).map(i64::from_be_bytes);
        if be(16) != Some(1) || be(24) != Some(1) {
            return Err(FlatError {
                offset: 16,
                kind: FlatErrorKind::BadHeader,
            });
        }
        let mut index = Self::default();
        let mut at = HEADER_SIZE;
        while let (Some(offset), Some(size)) = (be(at), be(at + 8)) {
            if offset == -1 && size == -1 {
                index.complete = true;
                break;
            }
            let bad = FlatError {
                offset: at as u64,
                kind: FlatErrorKind::BadRecord,
            };
            let (Ok(offset), Ok(size)) = (u64::try_from(offset), u64::try_from(size)) else {
                return Err(bad);
            };
            let end = offset.checked_add(size).ok_or(bad)?;
            let data_at = at + RECORD_HEADER_SIZE;
            let available = (data.len().saturating_sub(data_at)) as u64;
            if size > available {
                // Cut in the middle of this record's data: keep what is
                // there, and stop.
                if available > 0 {
                    index.insert(offset, offset + available, data_at as u64);
                }
                index.records += 1;
                break;
            }
            if size > 0 {
                index.insert(offset, end, data_at as u64);
            }
            index.records += 1;
            at = data_at + size as usize;
        }
        Ok(index)
    }

    /// Map `[start, end)` to flattened offset `source`, replacing whatever
    /// earlier records put there.
    fn insert(&mut self, start: u64, end: u64, source: u64) {
        self.len = self.len.max(end);
        // Trim or split every range overlapping [start, end). The ranges do
        // not overlap one another, so walking back from `end`, the first
        // that ends at or before `start` ends the overlapping ones.
        let overlapping: Vec<(u64, (u64, u64))> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|(_, (e, _))| *e > start)
            .map(|(s, v)| (*s, *v))
            .collect();
        for (s, (e, src)) in overlapping {
            self.ranges.remove(&s);
            self.overwritten += e.min(end) - s.max(start);
            if s < start {
                self.ranges.insert(s, (start, src));
            }
            if e > end {
                self.ranges.insert(end, (e, src + (end - s)));
            }
        }
        self.ranges.insert(start, (end, source));
    }

    /// The flattened offset of reassembled byte `offset` and how many bytes
    /// from there are contiguous, or `None` if no record wrote it.
    fn locate(&self, offset: u64) -> Option<(u64, u64)> {
        let (start, (end, source)) = self.ranges.range(..=offset).next_back()?;
        (offset < *end).then(|| (source + (offset - start), end - offset))
    }
}

/// The bytes of a kdump-compressed file: a plain slice, or a flattened
/// file read through its index.
#[derive(Debug)]
pub enum Source<'a> {
    /// A plain file.
    Plain(&'a [u8]),
    /// A flattened file and its index.
    Flattened(&'a [u8], FlatIndex),
}

impl<'a> Source<'a> {
    /// A source over `data`, indexing it if it is flattened.
    pub fn new(data: &'a [u8]) -> Result<Self, FlatError> {
        if is_flattened(data) {
            Ok(Self::Flattened(data, FlatIndex::build(data)?))
        } else {
            Ok(Self::Plain(data))
        }
    }

    /// The (reassembled) file's length.
    pub fn len(&self) -> u64 {
        match self {
            Self::Plain(data) => data.len() as u64,
            Self::Flattened(_, index) => index.len,
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes at `offset`, borrowed when they are contiguous in the
    /// underlying file; `None` if any of them is missing.
    pub fn slice(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        match self {
            Self::Plain(data) => crate::bytes::slice_at(data, offset, len),
            Self::Flattened(data, index) => {
                let (source, run) = index.locate(offset)?;
                if run < len {
                    return None;
                }
                crate::bytes::slice_at(data, source, len)
            }
        }
    }

    /// Fill `buf` from `offset`; `Err(first missing offset)` if a byte is
    /// missing (what was found before it is in `buf`).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), u64> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset.checked_add(done as u64).ok_or(u64::MAX)?;
            let want = (buf.len() - done) as u64;
            let (src, run) = match self {
                Self::Plain(data) => (at, (data.len() as u64).saturating_sub(at)),
                Self::Flattened(_, index) => index.locate(at).ok_or(at)?,
            };
            let step = run.min(want);
            let data = match self {
                Self::Plain(data) | Self::Flattened(data, _) => data,
            };
            let bytes = crate::bytes::slice_at(data, src, step)
                .filter(|_| step > 0)
                .ok_or(at)?;
            buf.get_mut(done..done + step as usize)
                .ok_or(at)?
                .copy_from_slice(bytes);
            done += step as usize;
        }
        Ok(())
    }

    /// Whether every byte of `[offset, offset + len)` is there. For a
    /// flattened file the reassembled length comes from record offsets, so
    /// it can be far larger than the bytes behind it: this walks the index
    /// (no data) so that nothing is allocated for bytes no record holds.
    pub fn covers(&self, offset: u64, len: u64) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        match self {
            Self::Plain(data) => end <= data.len() as u64,
            Self::Flattened(_, index) => {
                let mut at = offset;
                while at < end {
                    match index.locate(at) {
                        Some((_, run)) => at = at.saturating_add(run),
                        None => return false,
                    }
                }
                true
            }
        }
    }

    /// `len` bytes at `offset`, borrowed when contiguous in the file (a
    /// plain file always), else copied ([`to_vec`](Self::to_vec)).
    pub fn bytes(&self, offset: u64, len: u64) -> Option<alloc::borrow::Cow<'a, [u8]>> {
        match self.slice(offset, len) {
            Some(slice) => Some(alloc::borrow::Cow::Borrowed(slice)),
            None => self.to_vec(offset, len).map(alloc::borrow::Cow::Owned),
        }
    }

    /// `len` bytes at `offset` as an owned vector, when all are there. The
    /// allocation happens only after [`covers`](Self::covers) says so, so it
    /// is never larger than the file.
    pub fn to_vec(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        if !self.covers(offset, len) {
            return None;
        }
        if let Some(slice) = self.slice(offset, len) {
            return Some(slice.to_vec());
        }
        let mut out = alloc::vec![0u8; usize::try_from(len).ok()?];
        self.read(offset, &mut out).ok()?;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flattened(records: &[(i64, &[u8])], end: bool) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_SIZE];
        out[..12].copy_from_slice(SIGNATURE);
        out[16..24].copy_from_slice(&1i64.to_be_bytes());
        out[24..32].copy_from_slice(&1i64.to_be_bytes());
        for (offset, data) in records {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&(data.len() as i64).to_be_bytes());
            out.extend_from_slice(data);
        }
        if end {
            out.extend_from_slice(&(-1i64).to_be_bytes());
            out.extend_from_slice(&(-1i64).to_be_bytes());
        }
        out
    }

    #[test]
    fn reads_records_in_place_later_ones_winning() {
        let file = flattened(&[(0, b"hello world"), (100, b"far"), (6, b"WORLD!")], true);
        let source = Source::new(&file).unwrap();
        let Source::Flattened(_, index) = &source else {
            panic!("not detected as flattened");
        };
        assert!(index.complete);
        assert_eq!((index.records, index.overwritten, index.len), (3, 5, 103));
        let mut buf = [0u8; 12];
        source.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"hello WORLD!");
        assert_eq!(source.slice(6, 6), Some(&b"WORLD!"[..]));
        assert_eq!(
            source.slice(4, 4),
            None,
            "spans two records: not contiguous"
        );
        assert_eq!(source.to_vec(4, 4).as_deref(), Some(&b"o WO"[..]));
        assert_eq!(source.read(10, &mut [0u8; 4]), Err(12), "a gap is missing");
        assert_eq!(source.to_vec(101, 2).as_deref(), Some(&b"ar"[..]));
        assert!(source.covers(0, 12) && !source.covers(0, 13) && !source.covers(99, 2));
    }

    #[test]
    fn a_far_record_does_not_make_anything_allocate() {
        // One byte at 5 TiB: the reassembled file is "5 TiB long", the
        // flattened one a few KiB.
        let file = flattened(&[(5 << 40, b"x")], true);
        let source = Source::new(&file).unwrap();
        assert_eq!(source.len(), (5 << 40) + 1);
        assert!(!source.covers(0, 5 << 40));
        assert_eq!(source.to_vec(0, 5 << 40), None);
    }

    #[test]
    fn cut_and_bad_streams() {
        let file = flattened(&[(0, b"hello"), (5, b"world")], false);
        let index = FlatIndex::build(&file[..file.len() - 2]).unwrap();
        assert!(!index.complete);
        assert_eq!(index.len, 8, "the cut record keeps what it has");
        let bad = flattened(&[(-5, b"x")], true);
        assert_eq!(
            FlatIndex::build(&bad).unwrap_err().kind,
            FlatErrorKind::BadRecord
        );
        let wraps = flattened(&[(i64::MAX, b"xx")], true);
        assert!(FlatIndex::build(&wraps).is_ok(), "i64::MAX + 2 fits in u64");
        let mut header = flattened(&[], true);
        header[23] = 2;
        assert_eq!(
            FlatIndex::build(&header).unwrap_err().kind,
            FlatErrorKind::BadHeader
        );
        assert!(!is_flattened(b"KDUMP   "));
    }
}
