//! The walk's selection scan: which notifier of a list runs next.
//!
//! Lock-free and allocation-free: one pass over the slots per step, each
//! slot read validated on its own (`slot.rs`), and a fixed-size set on the
//! walker's stack of the notifiers already run.

use super::{ListPosition, Registry, SlotRead};
use crate::{Notifier, NotifierList};

/// The notifier a scan chose.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) notifier: &'static Notifier,
    pub(crate) position: ListPosition,
}

/// What one scan found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scan {
    /// The next notifier to run, if any is left.
    pub(crate) next: Option<Candidate>,
    /// The epoch was odd at the start of the scan, or a slot changed under
    /// its read.
    pub(crate) writer_mid_edit: bool,
}

/// The notifiers one walk has run, by identity: at most `N`.
pub(crate) struct RanSet<const N: usize> {
    ran: [Option<&'static Notifier>; N],
    len: usize,
}

impl<const N: usize> RanSet<N> {
    pub(crate) const fn new() -> Self {
        Self {
            ran: [None; N],
            len: 0,
        }
    }

    pub(crate) fn contains(&self, notifier: &'static Notifier) -> bool {
        self.ran
            .iter()
            .take(self.len)
            .flatten()
            .any(|ran| core::ptr::eq(*ran, notifier))
    }

    /// Add `notifier`; false if the set is full.
    pub(crate) fn insert(&mut self, notifier: &'static Notifier) -> bool {
        match self.ran.get_mut(self.len) {
            Some(entry) => {
                *entry = Some(notifier);
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

impl<const N: usize> Registry<N> {
    /// The live notifier of `list` with the smallest position after
    /// `after` (`None`: from the start) that is not in `ran`.
    pub(crate) fn scan(
        &self,
        list: NotifierList,
        after: Option<ListPosition>,
        ran: &RanSet<N>,
    ) -> Scan {
        let mut writer_mid_edit = self.epoch_now() & 1 == 1;
        let mut next: Option<Candidate> = None;
        for (index, slot) in self.slots.iter().enumerate() {
            let (notifier, sequence) = match slot.read(index) {
                SlotRead::Empty => continue,
                SlotRead::Changing => {
                    writer_mid_edit = true;
                    continue;
                }
                SlotRead::Live(notifier, sequence) => (notifier, sequence),
            };
            if notifier.list() != list {
                continue;
            }
            let position = ListPosition {
                priority: notifier.priority(),
                sequence,
            };
            let later = after.is_none_or(|after| position > after);
            let earliest = next.is_none_or(|best| position < best.position);
            if later && earliest && !ran.contains(notifier) {
                next = Some(Candidate { notifier, position });
            }
        }
        Scan {
            next,
            writer_mid_edit,
        }
    }
}
