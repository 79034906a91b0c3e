//! [`SectorSink`]: the dump writers' byte-addressed writes onto a device of
//! 512-byte sectors, gathered into large sector-aligned requests.
//!
//! The writers write mostly in order (pages, then descriptors) and go back
//! a few times (headers, bitmaps, the completion marker). The sink keeps
//! one window of [`WINDOW`] bytes with a dirty run `[lo, hi)`; a write that
//! extends or overlaps the run joins it, anything else writes the run out
//! first. Writing the run out reads back the device's bytes only for a
//! partial first or last sector. Allocates nothing; the window is the
//! caller's buffer (the capture kernel keeps it in memory the device can
//! reach by DMA).

use crashkit_dump_format::DumpSink;

/// Bytes per sector.
pub const SECTOR: usize = 512;
/// Bytes a window holds (and the largest request).
pub const WINDOW: usize = 128 * 1024;

/// A device of 512-byte sectors.
pub trait SectorDevice {
    /// The device's error.
    type Error: core::fmt::Debug;

    /// Sectors on the device.
    fn sectors(&self) -> u64;

    /// Read whole sectors from `sector` into `buffer` (a multiple of 512
    /// bytes).
    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), Self::Error>;

    /// Write whole sectors from `buffer` (a multiple of 512 bytes) at
    /// `sector`.
    fn write(&mut self, sector: u64, buffer: &[u8]) -> Result<(), Self::Error>;

    /// Make every completed write durable.
    fn flush(&mut self) -> Result<(), Self::Error>;
}

/// Why a sink write failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectorError<E> {
    /// The device failed.
    Device(E),
    /// A write past the device's last sector.
    PastEnd {
        /// Byte offset of the write.
        offset: u64,
    },
}

/// A [`DumpSink`] over a [`SectorDevice`] (see the module docs).
#[derive(Debug)]
pub struct SectorSink<'b, D: SectorDevice> {
    device: D,
    window: &'b mut [u8; WINDOW],
    /// Byte offset of the window's first byte (sector aligned).
    base: u64,
    /// The dirty run, as offsets in the window (`lo == hi`: clean).
    lo: usize,
    hi: usize,
}

impl<'b, D: SectorDevice> SectorSink<'b, D> {
    /// A sink over `device`, gathering writes in `window`.
    pub fn new(device: D, window: &'b mut [u8; WINDOW]) -> Self {
        Self {
            device,
            window,
            base: 0,
            lo: 0,
            hi: 0,
        }
    }

    /// The device's length in bytes.
    pub fn len(&self) -> u64 {
        self.device.sectors().saturating_mul(SECTOR as u64)
    }

    /// Whether the device has no sector.
    pub fn is_empty(&self) -> bool {
        self.device.sectors() == 0
    }

    /// The device back, after [`flush`](DumpSink::flush).
    pub fn into_device(self) -> D {
        self.device
    }

    /// Write the dirty run out, merging the device's bytes into a partial
    /// first and last sector.
    fn write_run(&mut self) -> Result<(), SectorError<D::Error>> {
        if self.lo == self.hi {
            return Ok(());
        }
        let first = self.lo / SECTOR * SECTOR;
        let end = self.hi.next_multiple_of(SECTOR);
        let mut sector = [0u8; SECTOR];
        // A partial first sector: its head from the device. A partial last
        // sector: its tail. (One sector partial at both ends is read twice,
        // each read supplying its own part.)
        if first != self.lo {
            let lba = (self.base + first as u64) / SECTOR as u64;
            self.device
                .read(lba, &mut sector)
                .map_err(SectorError::Device)?;
            self.window[first..self.lo].copy_from_slice(&sector[..self.lo - first]);
        }
        if end != self.hi {
            let last = end - SECTOR;
            let lba = (self.base + last as u64) / SECTOR as u64;
            self.device
                .read(lba, &mut sector)
                .map_err(SectorError::Device)?;
            self.window[self.hi..end].copy_from_slice(&sector[self.hi - last..]);
        }
        let lba = (self.base + first as u64) / SECTOR as u64;
        self.device
            .write(lba, &self.window[first..end])
            .map_err(SectorError::Device)?;
        self.lo = 0;
        self.hi = 0;
        Ok(())
    }
}

impl<D: SectorDevice> DumpSink for SectorSink<'_, D> {
    type Error = SectorError<D::Error>;

    fn write_at(&mut self, offset: u64, mut bytes: &[u8]) -> Result<(), Self::Error> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|&end| end <= self.len())
            .ok_or(SectorError::PastEnd { offset })?;
        let mut at = offset;
        while at < end {
            let joins = self.lo != self.hi
                && at >= self.base + self.lo as u64
                && at <= self.base + self.hi as u64
                && at < self.base + WINDOW as u64;
            if !joins {
                self.write_run()?;
                self.base = at / SECTOR as u64 * SECTOR as u64;
                self.lo = (at - self.base) as usize;
                self.hi = self.lo;
            }
            let start = (at - self.base) as usize;
            let take = (WINDOW - start).min(bytes.len());
            self.window[start..start + take].copy_from_slice(&bytes[..take]);
            self.hi = self.hi.max(start + take);
            bytes = &bytes[take..];
            at += take as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.write_run()?;
        self.device.flush().map_err(SectorError::Device)
    }
}
