//! The crash log's byte layout, as constants: the single source of the
//! offsets docs/crash-log.md documents, the writer's `#[repr(C)]` structs
//! follow (checked by `offset_of!` in the tests) and the reader parses.
//!
//! All integers are little-endian (x86_64). The area is:
//!
//! ```text
//! offset 0            area header, HEADER_SIZE bytes
//! offset HEADER_SIZE  CPUS x CONTEXTS rings, CPU-major: ring (cpu, context)
//!                     at HEADER_SIZE + (cpu * CONTEXTS + context) * (RING_HEADER_SIZE + ring_bytes)
//! ```
//!
//! Each ring is a RING_HEADER_SIZE-byte header and `ring_bytes` of data
//! (a power of two). A frame in the data is rzCOBS-encoded (no zero byte)
//! and ends with one `0x00`; decoded, it is
//!
//! ```text
//! seq: u32 | stamp: u64 | defmt frame bytes | crc32c: u32 | end marker: u8 | 0..=6 zero bytes (rzCOBS padding)
//! ```
//!
//! where the CRC-32C covers `seq`, `stamp` and the defmt bytes.

/// The area's first eight bytes.
pub const MAGIC: [u8; 8] = *b"CKLOGRNG";

/// The layout version this crate writes and reads.
pub const VERSION: u16 = 1;

/// Size of the area header.
pub const HEADER_SIZE: usize = 128;

/// Size of each ring's header.
pub const RING_HEADER_SIZE: usize = 64;

/// Rings per CPU: one per [`crate::LogContext`].
pub const CONTEXTS: usize = 3;

/// Most build-id bytes the header holds (a GNU SHA-1 build-id is 20).
pub const BUILD_ID_CAPACITY: usize = 32;

/// Smallest ring a writer accepts (bytes of data).
pub const MIN_RING_BYTES: usize = 256;

/// Largest ring a reader accepts (bytes of data): a bound on its work.
pub const MAX_RING_BYTES: usize = 1 << 20;

/// Most CPUs a reader accepts.
pub const MAX_CPUS: usize = 4096;

/// Bytes before the defmt frame in a decoded frame (`seq`, `stamp`).
pub const FRAME_PREFIX: usize = 12;

/// Bytes after the defmt frame (`crc32c`, end marker), before padding.
pub const FRAME_SUFFIX: usize = 5;

/// Most defmt bytes one frame carries; longer messages are cut (the frame
/// ends with [`END_CUT`] and the ring's `cut` counter counts it).
pub const MAX_DEFMT_BYTES: usize = 1024;

/// Largest decoded frame: prefix, defmt bytes, suffix and padding.
pub const MAX_DECODED: usize = FRAME_PREFIX + MAX_DEFMT_BYTES + FRAME_SUFFIX + 6;

/// Largest encoded frame (with its delimiter): rzCOBS adds one byte per 134
/// and a final control byte.
pub const MAX_ENCODED: usize = MAX_DECODED + MAX_DECODED / 134 + 2 + 1;

/// End marker of a whole frame.
pub const END_WHOLE: u8 = 0xC5;

/// End marker of a frame the writer cut at [`MAX_DEFMT_BYTES`].
pub const END_CUT: u8 = 0xC6;

/// Offsets of the area header's fields.
pub mod header {
    /// `[u8; 8]`, [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// `u16`, [`super::VERSION`].
    pub const VERSION: usize = 8;
    /// `u16`, [`super::HEADER_SIZE`].
    pub const HEADER_SIZE: usize = 10;
    /// `u16`, [`super::RING_HEADER_SIZE`].
    pub const RING_HEADER_SIZE: usize = 12;
    /// `u16`, [`super::CONTEXTS`].
    pub const CONTEXTS: usize = 14;
    /// `u32`, CPUs (ring sets).
    pub const CPUS: usize = 16;
    /// `u32`, data bytes per ring, a power of two.
    pub const RING_BYTES: usize = 20;
    /// `u64`, the whole area's size: header and rings.
    pub const TOTAL_SIZE: usize = 24;
    /// `u32`, CRC-32C of bytes 0..32 (the fields above).
    pub const HEADER_CRC: usize = 32;
    /// `u8`, bytes of the build-id (0: none given yet).
    pub const BUILD_ID_LEN: usize = 36;
    /// `u8`, the stamps' clock: [`super::CLOCK_PLATFORM_NS`].
    pub const CLOCK: usize = 37;
    /// `[u8; 32]`, the kernel's build-id, `BUILD_ID_LEN` bytes of it used.
    pub const BUILD_ID: usize = 40;
    /// `u32`, messages dropped because the calling CPU has no ring (an
    /// index the area does not cover) or no log was installed yet.
    pub const UNPLACED: usize = 72;
    /// `u64`, the area's own address as the kernel saw it (virtual).
    pub const ADDRESS: usize = 80;
    /// Zero up to [`super::HEADER_SIZE`].
    pub const RESERVED: usize = 88;
}

/// Stamps are the crashkit platform's `now_ns()`: nanoseconds once the
/// kernel gave the TSC frequency, TSC ticks before (the crash record's clock).
pub const CLOCK_PLATFORM_NS: u8 = 1;

/// Offsets of a ring header's fields.
pub mod ring {
    /// `u64`, encoded bytes ever written (a byte's data offset is its
    /// position modulo the ring size); reserved before the byte is stored.
    pub const HEAD: usize = 0;
    /// `u64`, `HEAD` after the last whole frame's delimiter.
    pub const COMMITTED: usize = 8;
    /// `u32`, frames begun (the next frame's `seq`).
    pub const NEXT_SEQ: usize = 16;
    /// `u32`, messages dropped: begun while this ring's writer was inside a
    /// frame (re-entry in the same context).
    pub const DROPPED: usize = 20;
    /// `u32`, writers inside: 0 idle, 1 writing a frame, more: nested
    /// writers that will drop.
    pub const DEPTH: usize = 24;
    /// `u32`, frames cut at `MAX_DEFMT_BYTES`.
    pub const CUT: usize = 28;
    /// `u32`, the running CRC-32C of the frame being written.
    pub const CRC: usize = 32;
    /// `u32`, defmt bytes in the frame being written.
    pub const FRAME_LEN: usize = 36;
    /// `u8`, the rzCOBS encoder: bytes in the current block.
    pub const RUN: usize = 40;
    /// `u8`, the rzCOBS encoder: zero bitmap of the current block.
    pub const ZEROS: usize = 41;
    /// `u8`, the interrupt flag the frame's writer found (normal context).
    pub const SAVED_IF: usize = 42;
    /// `u8`, the ring's [`crate::LogContext`].
    pub const CONTEXT: usize = 43;
    /// `u32`, the ring's CPU index.
    pub const CPU: usize = 44;
    /// Zero up to [`super::RING_HEADER_SIZE`].
    pub const RESERVED: usize = 48;
}
