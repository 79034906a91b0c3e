//! [`WriterEpoch`]: mutual exclusion among the writers of a registry that
//! readers walk without any lock (the NMI handler chain, the panic
//! notifier registry).
//!
//! One word, even while no writer edits and odd while one does:
//!
//! | from | to | by | how |
//! |------|----|----|-----|
//! | even `e` | `e + 1` (odd) | a writer starting an edit | [`WriterEpoch::try_begin`]: compare-and-swap, bounded retries |
//! | odd `o` | `o + 1` (even) | the same writer, done | [`WriterEpoch::end`]: Release store |
//!
//! A writer never waits for an odd epoch longer than the bound it asks
//! for: the writer holding it may be the very context it interrupted (an
//! NMI that registers a handler while its CPU was registering one), or a
//! CPU stopped mid-edit by a panic. It then gets `None` (the registries
//! report `Busy`) instead of a deadlock. Readers never take the epoch; they
//! read it ([`WriterEpoch::load`]) to validate a walk (the chain's sequence
//! lock) or to report that a writer was mid-edit (the notifier registry).

use core::sync::atomic::{AtomicU32, Ordering};

/// The writer epoch of one lock-free-read registry.
#[derive(Debug, Default)]
pub struct WriterEpoch(AtomicU32);

impl WriterEpoch {
    /// Epoch 0: no writer.
    pub const fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Take the epoch (even to odd), trying at most `spins` times; the odd
    /// epoch to hand to [`end`](Self::end), or `None` if another writer
    /// held it all along.
    #[must_use = "the epoch is held: end it"]
    pub fn try_begin(&self, spins: u32) -> Option<u32> {
        for _ in 0..spins {
            // Relaxed: only a guess for the compare-and-swap's expected
            // value; the compare-and-swap is what orders.
            let epoch = self.0.load(Ordering::Relaxed);
            if epoch & 1 == 0 {
                // Acquire on success: pairs with the previous writer's
                // Release in `end`, so its stores are visible to this
                // writer's edit. Relaxed on failure: nothing is read.
                if self
                    .0
                    .compare_exchange_weak(
                        epoch,
                        epoch.wrapping_add(1),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return Some(epoch.wrapping_add(1));
                }
            }
            core::hint::spin_loop();
        }
        None
    }

    /// Release the epoch taken by [`try_begin`](Self::try_begin) (odd to
    /// the next even).
    pub fn end(&self, odd_epoch: u32) {
        // Release: publishes this writer's stores to the next writer's
        // Acquire compare-and-swap and to readers that validate with an
        // Acquire `load`. Wrapping is harmless: a reader would have to
        // sleep through exactly 2^32 epoch changes between its two loads
        // to be fooled.
        self.0.store(odd_epoch.wrapping_add(1), Ordering::Release);
    }

    /// The epoch now (odd: a writer is editing), with the caller's
    /// ordering (each caller argues its own).
    pub fn load(&self, ordering: Ordering) -> u32 {
        self.0.load(ordering)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_at_a_time_and_a_bounded_wait() {
        let epoch = WriterEpoch::new();
        let odd = epoch.try_begin(1).expect("free");
        assert_eq!(odd, 1);
        assert_eq!(epoch.try_begin(1000), None, "held: refused after the bound");
        epoch.end(odd);
        assert_eq!(epoch.load(Ordering::Relaxed), 2);
        assert_eq!(epoch.try_begin(1), Some(3));
    }
}
