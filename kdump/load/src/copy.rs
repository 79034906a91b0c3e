//! The checked image copied into the reservation, and its digest: the
//! SHA-256 of each loaded segment in program header order, each preceded by
//! its physical start and length (little-endian u64s), so bytes moved
//! between segments change it too. The crash path recomputes it over the
//! reservation before it jumps.

use sha2::{Digest, Sha256};

use crate::image::{CaptureImage, LoadError, MAX_SEGMENTS, PhysRange};

/// A capture kernel loaded into its reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The physical entry point.
    pub entry: u64,
    /// The reservation it was loaded into.
    pub reservation: PhysRange,
    /// SHA-256 of the loaded segments (see the module docs).
    pub digest: [u8; 32],
    segments: [PhysRange; MAX_SEGMENTS],
    count: usize,
}

impl Loaded {
    /// The physical ranges the image occupies, in program header order.
    pub fn segments(&self) -> &[PhysRange] {
        self.segments.get(..self.count).unwrap_or(&[])
    }

    /// Whether `reservation` (its bytes, from the reservation's first
    /// byte) still holds the image loaded: the digest recomputed. Time is
    /// proportional to the image's size; nothing allocates. A reservation
    /// of the wrong length never matches.
    pub fn matches(&self, reservation: &[u8]) -> bool {
        reservation.len() as u64 == self.reservation.len
            && digest(self.reservation, self.segments(), reservation) == Some(self.digest)
    }
}

/// Copy `image` into `reservation` (the reservation's bytes, mapped; its
/// length must be the reservation's): each segment's file bytes, then zeros
/// to its memory size. The rest of the reservation is left as it is.
pub fn load(image: &CaptureImage<'_>, reservation: &mut [u8]) -> Result<Loaded, LoadError> {
    let base = image.reservation;
    if reservation.len() as u64 != base.len {
        return Err(LoadError::BadReservation);
    }
    let mut ranges = [PhysRange::default(); MAX_SEGMENTS];
    for (index, (segment, range)) in image.segments().iter().zip(&mut ranges).enumerate() {
        let bad = LoadError::BadSegment { index };
        // Checked by `CaptureImage::check`: inside the reservation, the
        // file bytes inside the image. Checked again here, never trusted.
        let at = usize::try_from(segment.memory.start - base.start).map_err(|_| bad)?;
        let len = usize::try_from(segment.memory.len).map_err(|_| bad)?;
        let file_len = usize::try_from(segment.file_len).map_err(|_| bad)?;
        let from = usize::try_from(segment.file_offset).map_err(|_| bad)?;
        let source = image
            .bytes
            .get(from..from.checked_add(file_len).ok_or(bad)?)
            .ok_or(bad)?;
        let target = reservation
            .get_mut(at..at.checked_add(len).ok_or(bad)?)
            .ok_or(bad)?;
        let (data, zeros) = target.split_at_mut(file_len.min(len));
        data.copy_from_slice(source.get(..data.len()).ok_or(bad)?);
        zeros.fill(0);
        *range = segment.memory;
    }
    let count = image.segments().len();
    let segments = ranges.get(..count).unwrap_or(&[]);
    let digest = digest(base, segments, reservation).ok_or(LoadError::BadReservation)?;
    Ok(Loaded {
        entry: image.entry,
        reservation: base,
        digest,
        segments: ranges,
        count,
    })
}

/// The digest of `segments` as they are in `reservation` (whose first byte
/// is at `base.start`); `None` if one lies outside it.
fn digest(base: PhysRange, segments: &[PhysRange], reservation: &[u8]) -> Option<[u8; 32]> {
    let mut hash = Sha256::new();
    for segment in segments {
        let at = usize::try_from(segment.start.checked_sub(base.start)?).ok()?;
        let len = usize::try_from(segment.len).ok()?;
        let bytes = reservation.get(at..at.checked_add(len)?)?;
        hash.update(segment.start.to_le_bytes());
        hash.update(segment.len.to_le_bytes());
        hash.update(bytes);
    }
    Some(hash.finalize().into())
}
