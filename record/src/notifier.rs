//! One notifier outcome in the crash record: which list, what happened, the
//! notifier's priority, how long it ran and its name.
//!
//! Only the panic owner writes notifier slots, in run order, through
//! [`crate::CrashRecord::record_notifier`]; the panic section's
//! `notifiers_recorded` (Release) publishes every slot below it, and a
//! slot's `name_len` (Release) publishes its name. A slot is written once.
//!
//! Layout: [`crate::layout::notifier`] and `docs/crash-record.md`.

use core::fmt;
use core::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::layout::notifier::{NAME_CAPACITY, NAME_TRUNCATED};
use crate::text::{Text, store_bytes, utf8_prefix};
use crashkit_record_format::{Decoded, NotifierList, NotifierOutcome};

/// One notifier's outcome, as the panic path hands it to the record.
///
/// `list` and `outcome` are codes, so a code the notifier crate adds later
/// can be recorded before this crate knows it ([`NotifierEntry::new`]
/// builds one from the known enums).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifierEntry<'a> {
    /// A [`NotifierList`] code.
    pub list: u32,
    /// A [`NotifierOutcome`] code.
    pub outcome: u32,
    /// The notifier's priority (higher runs first within a list).
    pub priority: i32,
    /// How long its turn took (platform nanoseconds): the body, or for
    /// `SkippedLockBusy` the failed try-lock; 0 for `NotRun`.
    pub duration_ns: u64,
    /// Its name; longer than 48 bytes is truncated at a character boundary.
    pub name: &'a str,
}

impl<'a> NotifierEntry<'a> {
    /// An entry from the known list and outcome enums.
    pub fn new(
        list: NotifierList,
        outcome: NotifierOutcome,
        priority: i32,
        duration_ns: u64,
        name: &'a str,
    ) -> Self {
        Self {
            list: list.code(),
            outcome: outcome.code(),
            priority,
            duration_ns,
            name,
        }
    }
}

/// A notifier slot (`#[repr(C)]`, 80 bytes).
#[repr(C)]
pub struct NotifierSlot {
    list: AtomicU32,
    outcome: AtomicU32,
    priority: AtomicI32,
    flags: AtomicU32,
    duration_ns: AtomicU64,
    name_len: AtomicU32,
    reserved: AtomicU32,
    name: [AtomicU8; NAME_CAPACITY],
}

impl fmt::Debug for NotifierSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierSlot")
            .field("list", &self.list())
            .field("outcome", &self.outcome())
            .field("name", &self.name().as_str())
            .finish_non_exhaustive()
    }
}

impl Default for NotifierSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl NotifierSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            list: AtomicU32::new(0),
            outcome: AtomicU32::new(0),
            priority: AtomicI32::new(0),
            flags: AtomicU32::new(0),
            duration_ns: AtomicU64::new(0),
            name_len: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            name: [const { AtomicU8::new(0) }; NAME_CAPACITY],
        }
    }

    /// Fill the slot (the owner, once per slot, before publishing it
    /// through `notifiers_recorded`).
    pub(crate) fn write(&self, entry: &NotifierEntry<'_>) {
        let name = utf8_prefix(entry.name, NAME_CAPACITY);
        let flags = if name.len() < entry.name.len() {
            NAME_TRUNCATED
        } else {
            0
        };
        // Relaxed (five stores and the name bytes): published by the
        // Release store of `name_len` below and, for the whole slot, by the
        // caller's Release store of `notifiers_recorded`.
        self.list.store(entry.list, Ordering::Relaxed);
        self.outcome.store(entry.outcome, Ordering::Relaxed);
        self.priority.store(entry.priority, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
        self.duration_ns.store(entry.duration_ns, Ordering::Relaxed);
        let stored = store_bytes(&self.name, 0, name.as_bytes());
        // Release: publishes the name bytes (and the fields above) to the
        // Acquire load in `name`. At most 48.
        self.name_len.store(stored as u32, Ordering::Release);
    }

    /// The list code, decoded.
    pub fn list(&self) -> Decoded<NotifierList> {
        // Relaxed: meaningful once `notifiers_recorded` (Acquire) covers
        // this slot.
        Decoded::from_code(self.list.load(Ordering::Relaxed))
    }

    /// The outcome code, decoded.
    pub fn outcome(&self) -> Decoded<NotifierOutcome> {
        // Relaxed: as `list`.
        Decoded::from_code(self.outcome.load(Ordering::Relaxed))
    }

    /// The notifier's priority.
    pub fn priority(&self) -> i32 {
        // Relaxed: as `list`.
        self.priority.load(Ordering::Relaxed)
    }

    /// How long the notifier ran (platform nanoseconds).
    pub fn duration_ns(&self) -> u64 {
        // Relaxed: as `list`.
        self.duration_ns.load(Ordering::Relaxed)
    }

    /// A copy of the name (and whether it was truncated).
    pub fn name(&self) -> Text<NAME_CAPACITY> {
        // Acquire: pairs with `write`'s Release store of the length.
        let len = self.name_len.load(Ordering::Acquire) as usize;
        // Relaxed: ordered after the Acquire above.
        let truncated = self.flags.load(Ordering::Relaxed) & NAME_TRUNCATED != 0;
        Text::copy(&self.name, len, truncated)
    }

    /// Field values for the snapshot: the six words, duration, name bytes.
    pub(crate) fn words(&self) -> ([u32; 6], u64, [u8; NAME_CAPACITY]) {
        // Acquire on the name length first (it publishes the slot), then
        // Relaxed for the rest, as in `name`.
        let name_len = self.name_len.load(Ordering::Acquire);
        let words = [
            self.list.load(Ordering::Relaxed),
            self.outcome.load(Ordering::Relaxed),
            self.priority.load(Ordering::Relaxed) as u32,
            self.flags.load(Ordering::Relaxed),
            name_len,
            self.reserved.load(Ordering::Relaxed),
        ];
        let name = core::array::from_fn(|i| {
            self.name
                .get(i)
                .map_or(0, |byte| byte.load(Ordering::Relaxed))
        });
        (words, self.duration_ns.load(Ordering::Relaxed), name)
    }
}

const _: () = assert!(core::mem::size_of::<NotifierSlot>() == crate::layout::notifier::SIZE);
const _: () = assert!(core::mem::align_of::<NotifierSlot>() == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::notifier as n;

    #[test]
    fn layout_is_the_documented_one() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(NotifierSlot, list), n::LIST);
        assert_eq!(offset_of!(NotifierSlot, outcome), n::OUTCOME);
        assert_eq!(offset_of!(NotifierSlot, priority), n::PRIORITY);
        assert_eq!(offset_of!(NotifierSlot, flags), n::FLAGS);
        assert_eq!(offset_of!(NotifierSlot, duration_ns), n::DURATION_NS);
        assert_eq!(offset_of!(NotifierSlot, name_len), n::NAME_LEN);
        assert_eq!(offset_of!(NotifierSlot, reserved), n::RESERVED);
        assert_eq!(offset_of!(NotifierSlot, name), n::NAME);
        assert_eq!(core::mem::size_of::<NotifierSlot>(), n::SIZE);
    }

    #[test]
    fn a_long_name_is_cut_at_a_character_boundary() {
        let slot = NotifierSlot::new();
        // 47 ASCII bytes then a 2-byte character: 49 bytes, cut to 47.
        let name = format!("{}ß", "n".repeat(47));
        slot.write(&NotifierEntry::new(
            NotifierList::PostDump,
            NotifierOutcome::OverBudget,
            -3,
            1_500,
            &name,
        ));
        let copy = slot.name();
        assert!(copy.truncated());
        assert_eq!(copy.as_str(), Some(&name[..47]));
        assert_eq!(slot.list(), Decoded::Known(NotifierList::PostDump));
        assert_eq!(slot.outcome(), Decoded::Known(NotifierOutcome::OverBudget));
        assert_eq!((slot.priority(), slot.duration_ns()), (-3, 1_500));
    }
}
