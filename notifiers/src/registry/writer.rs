//! Register and unregister: the registry's writers.
//!
//! Writers serialise on the epoch (even = idle, odd = editing) taken with a
//! compare-and-swap and a bounded spin instead of a lock: a writer that
//! interrupted another writer on its own CPU, or that finds a writer frozen
//! on a stopped CPU, gets [`RegisterNotifierError::Busy`] instead of a deadlock.
//! Each call does one slot transition (`slot.rs`).

use core::sync::atomic::Ordering;

use super::{MAX_SEQUENCE, Registry};
use crate::Notifier;

#[cfg(test)]
use crate::test_hook::{self, HookPoint};

/// Why a notifier could not be registered or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterNotifierError {
    /// Every slot holds a notifier (or, in theory, registration numbers ran
    /// out: [`MAX_SEQUENCE`]).
    Full,
    /// The notifier is registered already (each registration runs once per
    /// walk; registering it twice would not make it run twice).
    AlreadyRegistered,
    /// The notifier is not registered.
    NotRegistered,
    /// Another writer held the registry for the whole bounded wait: it is
    /// editing on another CPU, it was stopped mid-edit, or this call
    /// interrupted it on this CPU. Retry later from normal context.
    Busy,
}

impl core::fmt::Display for RegisterNotifierError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Full => "every slot of the notifier registry holds a notifier",
            Self::AlreadyRegistered => "the notifier is registered already",
            Self::NotRegistered => "the notifier is not registered",
            Self::Busy => "another writer held the notifier registry for the whole wait",
        })
    }
}

impl core::error::Error for RegisterNotifierError {}

/// How many times a writer tries the epoch before reporting `Busy`.
const WRITER_SPINS: u32 = 1 << 16;

impl<const N: usize> Registry<N> {
    /// The writer epoch now (odd: a writer is editing). For reports.
    pub(crate) fn epoch_now(&self) -> u32 {
        // Relaxed: it only feeds the `writer_mid_edit` and
        // `changed_during_walk` notes; no memory is read through it.
        self.epoch.load(Ordering::Relaxed)
    }

    /// Register `notifier` in its list, waiting a bounded time for another
    /// writer. Normal context (any context is safe: the worst case is
    /// `Busy`).
    pub fn register(&self, notifier: &'static Notifier) -> Result<(), RegisterNotifierError> {
        self.write(WRITER_SPINS, |registry| registry.insert(notifier))
    }

    /// Like [`register`](Self::register), but gives up at once if another
    /// writer is active.
    pub fn try_register(&self, notifier: &'static Notifier) -> Result<(), RegisterNotifierError> {
        self.write(1, |registry| registry.insert(notifier))
    }

    /// Remove `notifier`. A walk already in progress on another CPU may
    /// still call it once.
    pub fn unregister(&self, notifier: &'static Notifier) -> Result<(), RegisterNotifierError> {
        self.write(WRITER_SPINS, |registry| registry.remove(notifier))
    }

    fn write(
        &self,
        spins: u32,
        edit: impl FnOnce(&Self) -> Result<(), RegisterNotifierError>,
    ) -> Result<(), RegisterNotifierError> {
        let epoch = self
            .epoch
            .try_begin(spins)
            .ok_or(RegisterNotifierError::Busy)?;
        #[cfg(test)]
        test_hook::at(HookPoint::WriterHoldsEpoch);
        let result = edit(self);
        self.epoch.end(epoch);
        result
    }

    fn insert(&self, notifier: &'static Notifier) -> Result<(), RegisterNotifierError> {
        let mut free = None;
        for slot in &self.slots {
            if slot.writer_sequence() == 0 {
                free = free.or(Some(slot));
            } else if slot
                .writer_notifier()
                .is_some_and(|found| core::ptr::eq(found, notifier))
            {
                return Err(RegisterNotifierError::AlreadyRegistered);
            }
        }
        let slot = free.ok_or(RegisterNotifierError::Full)?;
        // Relaxed: read and written only under the writer epoch (its
        // Acquire/Release order the writers).
        let sequence = self.next_sequence.load(Ordering::Relaxed);
        if sequence > MAX_SEQUENCE {
            return Err(RegisterNotifierError::Full);
        }
        self.next_sequence
            .store(sequence.saturating_add(1), Ordering::Relaxed);
        slot.fill(notifier, sequence);
        Ok(())
    }

    fn remove(&self, notifier: &'static Notifier) -> Result<(), RegisterNotifierError> {
        let slot = self
            .slots
            .iter()
            .find(|slot| {
                slot.writer_sequence() != 0
                    && slot
                        .writer_notifier()
                        .is_some_and(|found| core::ptr::eq(found, notifier))
            })
            .ok_or(RegisterNotifierError::NotRegistered)?;
        slot.clear();
        Ok(())
    }
}
