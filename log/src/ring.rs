//! One ring: the frames one context of one CPU writes, and its writer.
//!
//! # The writer's protocol (one ring)
//! `depth` is the ring's state machine, changed only by atomic
//! read-modify-writes:
//!
//! ```text
//!            begin (fetch_add 0 -> 1): Owner          end(Owner): fetch_sub
//!   Idle (0) ---------------------------> Writing (1) -----------------> Idle
//!                                           |    ^
//!        begin (fetch_add n -> n+1, n >= 1) |    | end(Dropped): count, fetch_sub
//!                                           v    |
//!                                        Nested (n+1): the newcomer drops
//! ```
//!
//! Only the writer that moved `depth` from 0 to 1 (the owner) touches the
//! frame state and the data; a writer that finds the ring taken (an NMI
//! that interrupted a half-written frame of the same context, a message
//! logged from inside a message's formatting, or, by a kernel's mistake,
//! another CPU) writes nothing, and its `end` counts one dropped message.
//! Nothing waits: a nested writer never blocks and never panics.
//!
//! Every writer keeps what `begin` gave it and hands it to `write` and
//! `end`. Writers of one ring nest last-in first-out on its own CPU (an
//! interrupt returns before what it interrupted goes on), so a caller that
//! cannot keep it (defmt's argument-less `write` and `release`) finds it
//! with [`Ring::innermost`]: depth 1 is the owner.
//!
//! # What a reader can rely on
//! - `head` is reserved before each encoded byte is stored, so every byte
//!   at a position at or above `head` is untouched and the bytes at
//!   `[head - size, head)` are the newest;
//! - `committed` moves to just after a frame's `0x00` delimiter, so
//!   `[.., committed)` is whole frames and `[committed, head)` is the frame
//!   being written (torn if its CPU stopped there);
//! - a frame begun while `head != committed` (its predecessor was never
//!   ended) first closes the fragment with a delimiter, so a fragment never
//!   merges with a later frame: it decodes, if at all, with a bad check.

use core::sync::atomic::Ordering::{AcqRel, Relaxed, Release};
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, compiler_fence};

use crate::LogContext;
use crate::crc;
use crate::layout::{END_CUT, END_WHOLE, MAX_DEFMT_BYTES, MIN_RING_BYTES};
use crate::rzcobs::Encoder;

/// How a writer's [`Ring::begin`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "hand it back to `end`"]
pub enum Begin {
    /// The ring was idle: this writer owns the frame.
    Owner,
    /// The ring was inside a frame: this message is dropped (and counted
    /// at `end`).
    Dropped,
}

/// One ring: a [`layout::ring`](crate::layout::ring) header and `BYTES`
/// bytes of data (a power of two, at least
/// [`MIN_RING_BYTES`](crate::layout::MIN_RING_BYTES)).
///
/// Every field is an atomic so a ring is a plain `static` with no
/// `unsafe`; the owner's frame state (`crc` .. `saved_if`) is only touched
/// by the owner, so those atomics are Relaxed throughout.
#[repr(C)]
#[derive(Debug)]
pub struct Ring<const BYTES: usize> {
    head: AtomicU64,
    committed: AtomicU64,
    next_seq: AtomicU32,
    dropped: AtomicU32,
    depth: AtomicU32,
    cut: AtomicU32,
    crc: AtomicU32,
    frame_len: AtomicU32,
    run: AtomicU8,
    zeros: AtomicU8,
    saved_if: AtomicU8,
    context: AtomicU8,
    cpu: AtomicU32,
    reserved: [AtomicU64; 2],
    data: [AtomicU8; BYTES],
}

impl<const BYTES: usize> Default for Ring<BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const BYTES: usize> Ring<BYTES> {
    /// An empty ring. A size that is not a power of two of at least
    /// [`MIN_RING_BYTES`] fails to compile where a `static` is built.
    pub const fn new() -> Self {
        assert!(
            BYTES.is_power_of_two() && BYTES >= MIN_RING_BYTES,
            "a ring's size is a power of two of at least 256 bytes"
        );
        Self {
            head: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            next_seq: AtomicU32::new(0),
            dropped: AtomicU32::new(0),
            depth: AtomicU32::new(0),
            cut: AtomicU32::new(0),
            crc: AtomicU32::new(0),
            frame_len: AtomicU32::new(0),
            run: AtomicU8::new(0),
            zeros: AtomicU8::new(0),
            saved_if: AtomicU8::new(0),
            context: AtomicU8::new(0),
            cpu: AtomicU32::new(0),
            reserved: [const { AtomicU64::new(0) }; 2],
            data: [const { AtomicU8::new(0) }; BYTES],
        }
    }

    /// Name the ring's CPU and context in its header (at install time, for
    /// the reader's cross-check).
    pub(crate) fn name(&self, cpu: u32, context: LogContext) {
        // Relaxed: written once at install, before any CPU but the boot
        // CPU runs; the reader is post-mortem.
        self.cpu.store(cpu, Relaxed);
        self.context.store(context as u8, Relaxed);
    }

    /// Begin a frame stamped `stamp`; hand the result to [`end`](Self::end).
    pub fn begin(&self, stamp: u64) -> Begin {
        // AcqRel: the RMW is the ring's try-lock. Acquire pairs with the
        // Release in `end` of the previous owner, so a new owner (even one
        // on another CPU, by a kernel's mistake) sees the frame state and
        // data its predecessor left; Release is not needed for the data (the
        // owner writes after this) but keeps the RMW symmetric and costs
        // nothing on x86_64 (`lock xadd` either way).
        if self.depth.fetch_add(1, AcqRel) != 0 {
            return Begin::Dropped;
        }
        // The owner's state from here to `end` (Relaxed: see the type).
        if self.head.load(Relaxed) != self.committed.load(Relaxed) {
            // The previous frame was never ended: close the fragment.
            self.emit(0);
        }
        let seq = self.next_seq.load(Relaxed);
        self.next_seq.store(seq.wrapping_add(1), Relaxed);
        self.crc.store(crc::INIT, Relaxed);
        self.frame_len.store(0, Relaxed);
        self.run.store(0, Relaxed);
        self.zeros.store(0, Relaxed);
        for byte in seq.to_le_bytes().into_iter().chain(stamp.to_le_bytes()) {
            self.push(byte);
        }
        Begin::Owner
    }

    /// Add `bytes` (defmt's frame bytes) to the frame `began` began: the
    /// owner's go into its frame, a dropped writer's nowhere.
    pub fn write(&self, began: Begin, bytes: &[u8]) {
        if began == Begin::Dropped {
            return;
        }
        for &byte in bytes {
            let len = self.frame_len.load(Relaxed);
            self.frame_len.store(len.saturating_add(1), Relaxed);
            if len as usize >= MAX_DEFMT_BYTES {
                continue;
            }
            self.push(byte);
        }
    }

    /// End what `begin` began: an owner closes and publishes its frame, a
    /// dropped writer counts its message.
    pub fn end(&self, began: Begin) {
        match began {
            Begin::Dropped => {
                // Relaxed: a counter; the reader is post-mortem.
                self.dropped.fetch_add(1, Relaxed);
            }
            Begin::Owner => {
                let cut = self.frame_len.load(Relaxed) as usize > MAX_DEFMT_BYTES;
                let check = crc::finish(self.crc.load(Relaxed));
                for byte in check.to_le_bytes() {
                    self.push(byte);
                }
                self.push(if cut { END_CUT } else { END_WHOLE });
                let mut encoder = self.encoder();
                encoder.finish(|byte| self.emit(byte));
                self.emit(0);
                if cut {
                    self.cut.fetch_add(1, Relaxed);
                }
                // Release: publishes the frame's bytes (and the `head` they
                // moved) to a reader that loads `committed` with Acquire
                // (`Ring::committed`, the tests' live reads). A dump's
                // reader instead runs after the shootdown stopped this CPU,
                // whose stop handshake orders everything before it.
                self.committed.store(self.head.load(Relaxed), Release);
            }
        }
        // Release: pairs with the next owner's Acquire in `begin`.
        self.depth.fetch_sub(1, Release);
    }

    /// What the innermost writer of this CPU's nesting got from `begin`
    /// (`None`: no writer is inside): depth 1 is the owner, deeper a nested
    /// writer. For callers that cannot keep the [`Begin`] (defmt's `write`
    /// and `release` take none) and whose writers nest last-in first-out on
    /// the ring's own CPU: crashkit's logger, whose rings are indexed by the
    /// calling CPU. Two CPUs on one ring need the [`Begin`] kept.
    pub fn innermost(&self) -> Option<Begin> {
        // Relaxed: on the ring's own CPU, the value this CPU's writers (the
        // current one, and nested ones that already returned) last wrote.
        match self.depth.load(Relaxed) {
            0 => None,
            1 => Some(Begin::Owner),
            _ => Some(Begin::Dropped),
        }
    }

    /// The interrupt flag the owner found, kept for its `end` (the facade's
    /// normal-context writer disables interrupts for one frame).
    pub fn set_saved_if(&self, enabled: bool) {
        // Relaxed: owner-only state.
        self.saved_if.store(u8::from(enabled), Relaxed);
    }

    /// What [`set_saved_if`](Self::set_saved_if) kept.
    pub fn saved_if(&self) -> bool {
        // Relaxed: owner-only state.
        self.saved_if.load(Relaxed) != 0
    }

    /// Encoded bytes ever written.
    pub fn head(&self) -> u64 {
        // Relaxed: a statistic.
        self.head.load(Relaxed)
    }

    /// `head` after the last whole frame. Acquire: pairs with the Release
    /// in [`end`](Self::end), so the frames before it are readable.
    pub fn committed(&self) -> u64 {
        self.committed.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Messages dropped by re-entry.
    pub fn dropped(&self) -> u32 {
        // Relaxed: a counter.
        self.dropped.load(Relaxed)
    }

    /// Frames begun.
    pub fn frames_begun(&self) -> u32 {
        // Relaxed: a counter.
        self.next_seq.load(Relaxed)
    }

    /// Copy the ring's header and data, as a reader in the dump sees them,
    /// into `out` (at least `64 + BYTES` bytes); returns the bytes written.
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        // Relaxed: see `LogRings::copy_to`.
        let words = [
            self.head.load(Relaxed),
            self.committed.load(Relaxed),
            u64::from(self.next_seq.load(Relaxed)) | u64::from(self.dropped.load(Relaxed)) << 32,
            u64::from(self.depth.load(Relaxed)) | u64::from(self.cut.load(Relaxed)) << 32,
            u64::from(self.crc.load(Relaxed)) | u64::from(self.frame_len.load(Relaxed)) << 32,
            u64::from(self.run.load(Relaxed))
                | u64::from(self.zeros.load(Relaxed)) << 8
                | u64::from(self.saved_if.load(Relaxed)) << 16
                | u64::from(self.context.load(Relaxed)) << 24
                | u64::from(self.cpu.load(Relaxed)) << 32,
            self.reserved[0].load(Relaxed),
            self.reserved[1].load(Relaxed),
        ];
        let mut written = 0;
        let header = words.iter().flat_map(|w| w.to_le_bytes());
        let data = self.data.iter().map(|b| b.load(Relaxed));
        for (slot, byte) in out.iter_mut().zip(header.chain(data)) {
            *slot = byte;
            written += 1;
        }
        written
    }

    fn encoder(&self) -> Encoder {
        Encoder {
            run: self.run.load(Relaxed),
            zeros: self.zeros.load(Relaxed),
        }
    }

    /// One decoded byte of the frame: into the check and the encoder.
    fn push(&self, byte: u8) {
        self.crc
            .store(crc::update(self.crc.load(Relaxed), byte), Relaxed);
        let mut encoder = self.encoder();
        encoder.push(byte, |out| self.emit(out));
        self.run.store(encoder.run, Relaxed);
        self.zeros.store(encoder.zeros, Relaxed);
    }

    /// One encoded byte into the data: reserve its position, then store it.
    fn emit(&self, byte: u8) {
        let at = self.head.load(Relaxed);
        // Relaxed: only this ring's owner writes `head`, and the reader is
        // post-mortem or after `committed`'s Acquire. What a post-mortem
        // reader relies on is the order on this CPU: `head` first, so a CPU
        // stopped between the two stores leaves no byte changed inside the
        // window `[head - BYTES, head)`. x86_64 keeps stores in order; the
        // compiler fence keeps the compiler from swapping them (an NMI
        // interrupts the instruction stream as compiled).
        self.head.store(at.wrapping_add(1), Relaxed);
        compiler_fence(Release);
        if let Some(slot) = self.data.get((at as usize) & (BYTES - 1)) {
            slot.store(byte, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ring as at;

    #[test]
    fn the_header_matches_the_documented_offsets() {
        type R = Ring<256>;
        assert_eq!(core::mem::offset_of!(R, head), at::HEAD);
        assert_eq!(core::mem::offset_of!(R, committed), at::COMMITTED);
        assert_eq!(core::mem::offset_of!(R, next_seq), at::NEXT_SEQ);
        assert_eq!(core::mem::offset_of!(R, dropped), at::DROPPED);
        assert_eq!(core::mem::offset_of!(R, depth), at::DEPTH);
        assert_eq!(core::mem::offset_of!(R, cut), at::CUT);
        assert_eq!(core::mem::offset_of!(R, crc), at::CRC);
        assert_eq!(core::mem::offset_of!(R, frame_len), at::FRAME_LEN);
        assert_eq!(core::mem::offset_of!(R, run), at::RUN);
        assert_eq!(core::mem::offset_of!(R, zeros), at::ZEROS);
        assert_eq!(core::mem::offset_of!(R, saved_if), at::SAVED_IF);
        assert_eq!(core::mem::offset_of!(R, context), at::CONTEXT);
        assert_eq!(core::mem::offset_of!(R, cpu), at::CPU);
        assert_eq!(core::mem::offset_of!(R, reserved), at::RESERVED);
        assert_eq!(
            core::mem::offset_of!(R, data),
            crate::layout::RING_HEADER_SIZE
        );
        assert_eq!(core::mem::size_of::<R>(), 64 + 256);
    }

    #[test]
    fn a_nested_writer_drops_and_counts() {
        let ring = Ring::<256>::new();
        assert_eq!(ring.innermost(), None);
        let outer = ring.begin(1);
        assert_eq!(outer, Begin::Owner);
        ring.write(outer, b"ab");
        let inner = ring.begin(2);
        assert_eq!(inner, Begin::Dropped);
        assert_eq!(ring.innermost(), Some(Begin::Dropped));
        ring.write(inner, b"zz");
        ring.end(inner);
        assert_eq!(ring.innermost(), Some(Begin::Owner));
        ring.write(outer, b"c");
        ring.end(outer);
        assert_eq!(ring.dropped(), 1);
        assert_eq!(ring.frames_begun(), 1);
        assert_eq!(ring.head(), ring.committed());
        assert_eq!(ring.innermost(), None);
    }
}
