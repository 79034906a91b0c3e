//! The log area: a header naming the kernel (build-id), the clock and the
//! geometry, then one ring per CPU per context, in one `static`.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Relaxed;

use crate::layout::{self, CONTEXTS, HEADER_SIZE, RING_HEADER_SIZE, header as at};
use crate::{LogContext, Ring, crc};

const WORDS: usize = HEADER_SIZE / 8;

/// The header's fixed bytes, known at compile time: magic, version, sizes,
/// geometry and their CRC-32C.
const fn fixed_header(cpus: usize, ring_bytes: usize) -> [u8; HEADER_SIZE] {
    let mut bytes = [0u8; HEADER_SIZE];
    let mut i = 0;
    while i < 8 {
        bytes[at::MAGIC + i] = layout::MAGIC[i];
        i += 1;
    }
    put(&mut bytes, at::VERSION, layout::VERSION as u64, 2);
    put(&mut bytes, at::HEADER_SIZE, HEADER_SIZE as u64, 2);
    put(&mut bytes, at::RING_HEADER_SIZE, RING_HEADER_SIZE as u64, 2);
    put(&mut bytes, at::CONTEXTS, CONTEXTS as u64, 2);
    put(&mut bytes, at::CPUS, cpus as u64, 4);
    put(&mut bytes, at::RING_BYTES, ring_bytes as u64, 4);
    let total = HEADER_SIZE + cpus * CONTEXTS * (RING_HEADER_SIZE + ring_bytes);
    put(&mut bytes, at::TOTAL_SIZE, total as u64, 8);
    let (covered, _) = bytes.split_at(at::HEADER_CRC);
    let check = crc::checksum(covered);
    put(&mut bytes, at::HEADER_CRC, check as u64, 4);
    bytes
}

const fn put(bytes: &mut [u8; HEADER_SIZE], offset: usize, value: u64, len: usize) {
    let mut i = 0;
    while i < len {
        bytes[offset + i] = (value >> (8 * i)) as u8;
        i += 1;
    }
}

/// The crash log of a kernel of up to `CPUS` CPUs, `BYTES` bytes per ring
/// (three rings per CPU: [`LogContext`]). A `static`, built at compile
/// time; [`install`](Self::install) adds the build-id at boot.
///
/// Its size is `128 + CPUS * 3 * (64 + BYTES)` bytes (8 CPUs of 4 KiB
/// rings: 98 KiB).
#[repr(C)]
#[derive(Debug)]
pub struct LogRings<const CPUS: usize, const BYTES: usize> {
    header: [AtomicU64; WORDS],
    rings: [[Ring<BYTES>; CONTEXTS]; CPUS],
}

impl<const CPUS: usize, const BYTES: usize> Default for LogRings<CPUS, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize, const BYTES: usize> LogRings<CPUS, BYTES> {
    /// The area's size in bytes.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// An empty log whose header already carries its geometry (so a dump
    /// taken before `install` is still found and read).
    pub const fn new() -> Self {
        let bytes = fixed_header(CPUS, BYTES);
        let mut words = [const { AtomicU64::new(0) }; WORDS];
        let mut w = 0;
        while w < WORDS {
            let mut value = 0u64;
            let mut i = 0;
            while i < 8 {
                value |= (bytes[w * 8 + i] as u64) << (8 * i);
                i += 1;
            }
            words[w] = AtomicU64::new(value);
            w += 1;
        }
        Self {
            header: words,
            rings: [const { [const { Ring::new() }; CONTEXTS] }; CPUS],
        }
    }

    /// Name the kernel (its GNU build-id, up to 32 bytes; more are cut),
    /// the area's own address, the stamps' clock, and each ring's CPU and
    /// context. Once, at boot, before other CPUs log.
    pub fn install(&self, build_id: &[u8], address: u64) {
        let id = build_id
            .get(..layout::BUILD_ID_CAPACITY)
            .unwrap_or(build_id);
        for (i, &byte) in id.iter().enumerate() {
            self.set_byte(at::BUILD_ID + i, byte);
        }
        self.set_byte(at::BUILD_ID_LEN, id.len() as u8);
        self.set_byte(at::CLOCK, layout::CLOCK_PLATFORM_NS);
        for (i, byte) in address.to_le_bytes().into_iter().enumerate() {
            self.set_byte(at::ADDRESS + i, byte);
        }
        for (cpu, rings) in self.rings.iter().enumerate() {
            for (ring, context) in rings.iter().zip(LogContext::ALL) {
                ring.name(cpu as u32, context);
            }
        }
    }

    /// The ring of `cpu` for `context`, if the area covers that CPU.
    pub fn ring(&self, cpu: usize, context: LogContext) -> Option<&Ring<BYTES>> {
        self.rings.get(cpu)?.get(context as usize)
    }

    /// Count a message that had no ring to go to (a CPU the area does not
    /// cover).
    pub fn count_unplaced(&self) {
        let word = &self.header[at::UNPLACED / 8];
        let shift = 8 * (at::UNPLACED % 8);
        // Relaxed: a counter, read post-mortem. `fetch_update` keeps the
        // word's other half (reserved, zero) as it is.
        let _ = word.fetch_update(Relaxed, Relaxed, |value| {
            let count = (value >> shift) as u32;
            let bumped = count.saturating_add(1);
            Some(value & !(0xFFFF_FFFFu64 << shift) | u64::from(bumped) << shift)
        });
    }

    /// Copy the whole area, as a dump holds it, into `out` (at least
    /// [`SIZE`](Self::SIZE) bytes); returns the bytes written.
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        // Relaxed loads (here and in `Ring::copy_to`): a copy for a reader
        // that runs after the writers stopped (a test after its threads
        // joined, as a dump is read after the shootdown); no ordering
        // between the words is promised.
        let mut written = 0;
        for (slot, byte) in out.iter_mut().zip(
            self.header
                .iter()
                .flat_map(|w| w.load(Relaxed).to_le_bytes()),
        ) {
            *slot = byte;
            written += 1;
        }
        for ring in self.rings.iter().flatten() {
            let Some(rest) = out.get_mut(written..) else {
                break;
            };
            written += ring.copy_to(rest);
        }
        written
    }

    fn set_byte(&self, offset: usize, byte: u8) {
        let Some(word) = self.header.get(offset / 8) else {
            return;
        };
        let shift = 8 * (offset % 8);
        // Relaxed: written at install, on the boot CPU alone.
        let value = word.load(Relaxed);
        word.store(
            value & !(0xFFu64 << shift) | u64::from(byte) << shift,
            Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn the_area_is_its_header_then_its_rings() {
        type A = LogRings<3, 512>;
        assert_eq!(core::mem::offset_of!(A, header), 0);
        assert_eq!(core::mem::offset_of!(A, rings), HEADER_SIZE);
        assert_eq!(
            A::SIZE,
            HEADER_SIZE + 3 * CONTEXTS * (RING_HEADER_SIZE + 512)
        );
        // The copy is the memory, byte for byte.
        let area = A::new();
        area.install(&[9; 20], 0xfeed);
        let mut copy = vec![0u8; A::SIZE];
        area.copy_to(&mut copy);
        let ring = area.ring(1, LogContext::Nmi).expect("ring");
        let began = ring.begin(3);
        ring.write(began, b"x");
        ring.end(began);
        area.copy_to(&mut copy);
        // SAFETY: `area` is a live, initialised value of `A::SIZE` bytes
        // and nothing writes it while this shared view exists.
        let memory = unsafe {
            core::slice::from_raw_parts(core::ptr::from_ref(&area).cast::<u8>(), A::SIZE)
        };
        assert_eq!(copy, memory);
    }
}
