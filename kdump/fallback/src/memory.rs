//! The crashed kernel's RAM as [`PhysMemory`], for the writer that runs
//! inside it.
//!
//! Each page is copied into a bounce page first, with `rep movsq` in
//! inline assembly, and the writer reads the copy. Two reasons: the writer
//! runs on the kernel's own stack, so the page holding its frames changes
//! while the page is compressed (a Rust reference to live memory that the
//! same CPU writes would be undefined behaviour; the copy is a snapshot the
//! compiler never sees aliased), and physical page 0 of an identity-mapped
//! kernel is at virtual address 0, where no Rust reference may point.

use crashkit_dump_format::{PhysMemory, PhysRange};

/// RAM at `physical + offset`, read through `bounce`.
pub(crate) struct Ram<'a> {
    /// The memory map (only these pages are read).
    pub ranges: &'a [PhysRange],
    /// `virtual = physical + offset`.
    pub offset: u64,
    /// The copy the writer reads.
    pub bounce: &'a mut [u8; 4096],
}

impl PhysMemory for Ram<'_> {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        let page = PhysRange::new(phys, 4096);
        if !phys.is_multiple_of(4096) || !self.ranges.iter().any(|r| r.contains(&page)) {
            return None;
        }
        let from = phys.wrapping_add(self.offset);
        // SAFETY: `phys` is a whole page of a memory-map range, which
        // `InPlace::arm`'s contract maps readable at `phys + offset` for
        // the kernel's life; the other CPUs are stopped, so only this CPU
        // writes memory while the copy runs, and the copy is opaque to the
        // compiler (no Rust reference to the source exists). The
        // destination is the bounce page this reader borrows mutably, 4096
        // bytes; `rep movsq` of 512 quadwords with the direction flag clear
        // (the ABI's state, and `cld` first) writes exactly those, and
        // clobbers rdi, rsi, rcx, which are declared. Quadwords, not bytes:
        // under QEMU's TCG each repetition costs the same.
        unsafe {
            core::arch::asm!(
                "cld",
                "rep movsq",
                inout("rdi") self.bounce.as_mut_ptr() => _,
                inout("rsi") from => _,
                inout("rcx") 512usize => _,
                options(nostack),
            );
        }
        Some(self.bounce)
    }
}
