//! The panic section of the crash record: the panic path's phase, owner,
//! escalations, timestamps, shootdown summary, counters, results and message.
//!
//! # Who writes what
//! - The panic owner writes everything here, from one CPU; a nested panic on
//!   the owner (an escalation) is the same CPU, interrupting itself.
//! - Other CPUs only add to counters: `second_panickers` (a CPU that lost
//!   the panic), `qspinlock_fallbacks` (any CPU whose lock wait fell back to
//!   test-and-set), `panic_lock_breaks` (the owner, but from lock code).
//! - Readers: the owner itself (a re-entered panic reads `phase`), tests
//!   in-process, and the offline tool from a dump.
//!
//! Every field is an atomic, so a concurrent reader never races a writer.
//! Publication: `phase` is stored with Release after what the step before
//! it recorded; `message_len` publishes the message bytes; each escalation
//! log entry is published by its `phase` word; `notifiers_recorded`
//! publishes the notifier slots. Each publication word sits at a lower
//! address than the data it publishes, so even a dump copied in address
//! order while a late writer runs sees a word no newer than its data.
//!
//! Layout: [`crate::layout::panic`] and `docs/crash-record.md`.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crashkit_nmi::CpuIndex;

use crate::layout::{self, panic::MESSAGE_CAPACITY};
use crate::text::{Text, store_bytes, utf8_prefix};
use crashkit_record_format::{
    Decoded, DumpResult, Escalation, FinalAction, PanicPhase, PhaseStamp, ShootdownTotals, Skipped,
};

/// A log or a table in the record had no room left; the event was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl core::fmt::Display for Full {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the record's log or table is full (the event was counted)")
    }
}

impl core::error::Error for Full {}

/// An escalation log entry in memory; `phase` publishes the rest.
#[repr(C)]
struct EscalationSlot {
    phase: AtomicU32,
    skipped: AtomicU32,
    at_ns: AtomicU64,
}

impl EscalationSlot {
    const fn new() -> Self {
        Self {
            phase: AtomicU32::new(layout::ESCALATION_UNWRITTEN),
            skipped: AtomicU32::new(0),
            at_ns: AtomicU64::new(0),
        }
    }
}

/// The panic section (`#[repr(C)]`, 728 bytes). Reached through
/// [`crate::CrashRecord::panic`].
#[repr(C)]
pub struct PanicSection {
    phase: AtomicU32,
    owner_cpu: AtomicU32,
    escalations: AtomicU32,
    skipped: AtomicU32,
    second_panickers: AtomicU32,
    reentries: AtomicU32,
    qspinlock_fallbacks: AtomicU32,
    panic_lock_breaks: AtomicU32,
    cpus_stopped: AtomicU32,
    cpus_unresponsive: AtomicU32,
    cpus_absent: AtomicU32,
    nmis_sent: AtomicU32,
    nmis_resent: AtomicU32,
    nmi_send_errors: AtomicU32,
    dump_result: AtomicU32,
    dump_detail: AtomicU32,
    final_action: AtomicU32,
    pub(crate) notifiers_recorded: AtomicU32,
    pub(crate) notifiers_dropped: AtomicU32,
    message_len: AtomicU32,
    message_flags: AtomicU32,
    reserved: AtomicU32,
    stamps: [AtomicU64; layout::panic::STAMP_COUNT],
    escalation_log: [EscalationSlot; layout::panic::ESCALATION_LOG_LEN],
    message: [AtomicU8; MESSAGE_CAPACITY],
}

impl fmt::Debug for PanicSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicSection")
            .field("phase", &self.phase())
            .field("owner", &self.owner())
            .field("escalations", &self.escalations())
            .field("message_len", &self.message().as_bytes().len())
            .finish_non_exhaustive()
    }
}

impl Default for PanicSection {
    fn default() -> Self {
        Self::new()
    }
}

/// Relaxed increment of a counter, returning the new value (wrapping).
fn bump(counter: &AtomicU32) -> u32 {
    // Relaxed: a counter; no data is published with it. Concurrent adders
    // (several CPUs) are serialised by the read-modify-write itself.
    counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
}

impl PanicSection {
    /// A section with no panic recorded.
    pub const fn new() -> Self {
        Self {
            phase: AtomicU32::new(PanicPhase::Idle as u32),
            owner_cpu: AtomicU32::new(layout::NO_OWNER),
            escalations: AtomicU32::new(0),
            skipped: AtomicU32::new(0),
            second_panickers: AtomicU32::new(0),
            reentries: AtomicU32::new(0),
            qspinlock_fallbacks: AtomicU32::new(0),
            panic_lock_breaks: AtomicU32::new(0),
            cpus_stopped: AtomicU32::new(0),
            cpus_unresponsive: AtomicU32::new(0),
            cpus_absent: AtomicU32::new(0),
            nmis_sent: AtomicU32::new(0),
            nmis_resent: AtomicU32::new(0),
            nmi_send_errors: AtomicU32::new(0),
            dump_result: AtomicU32::new(DumpResult::NotAttempted as u32),
            dump_detail: AtomicU32::new(0),
            final_action: AtomicU32::new(FinalAction::NotReached as u32),
            notifiers_recorded: AtomicU32::new(0),
            notifiers_dropped: AtomicU32::new(0),
            message_len: AtomicU32::new(0),
            message_flags: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            stamps: [const { AtomicU64::new(0) }; layout::panic::STAMP_COUNT],
            escalation_log: [const { EscalationSlot::new() }; layout::panic::ESCALATION_LOG_LEN],
            message: [const { AtomicU8::new(0) }; MESSAGE_CAPACITY],
        }
    }

    // ----- writers (the panic owner) -----

    /// Record the panic owner (the CPU that won the panic flag). A CPU
    /// without an index ([`CpuIndex::UNKNOWN`]) is stored as the format's
    /// `UNREGISTERED_OWNER`, which the parser reports as
    /// `owner_unregistered`.
    pub fn set_owner(&self, cpu: CpuIndex) {
        let word = if cpu.is_unknown() {
            layout::UNREGISTERED_OWNER
        } else {
            cpu.0
        };
        // Release: publishes what the owner recorded before (the entry
        // stamp) to a reader that loads the owner with Acquire (`owner`).
        self.owner_cpu.store(word, Ordering::Release);
    }

    /// Enter `phase`; returns the phase before. Any transition is stored
    /// (see [`PanicPhase`] for the ones the panic path makes).
    pub fn set_phase(&self, phase: PanicPhase) -> Decoded<PanicPhase> {
        // Release: publishes what the previous step recorded (stamps,
        // totals, results) to a reader that loads the phase with Acquire
        // (`phase`). A swap, so that a nested writer on the same CPU cannot
        // make the returned value stale.
        Decoded::from_code(self.phase.swap(phase as u32, Ordering::Release))
    }

    /// Store the timestamp `which` (platform nanoseconds), overwriting it.
    pub fn stamp(&self, which: PhaseStamp, now_ns: u64) {
        if let Some(stamp) = self.stamps.get(which as usize) {
            // Relaxed: one writer (the owner); published by the next
            // `set_phase` (Release) for in-kernel readers.
            stamp.store(now_ns, Ordering::Relaxed);
        }
    }

    /// Record an escalation: the owner panicked again in `phase` and skips
    /// `skipped`. The count and the `skipped` union always grow; the log
    /// keeps the first [`layout::panic::ESCALATION_LOG_LEN`] entries and
    /// returns [`Full`] for the others.
    pub fn record_escalation(
        &self,
        phase: PanicPhase,
        skipped: Skipped,
        now_ns: u64,
    ) -> Result<(), Full> {
        // Relaxed: the add only reserves a log index; a nested escalation
        // on the same CPU gets the next one because the add is one
        // read-modify-write. The entry itself is published below.
        let index = self.escalations.fetch_add(1, Ordering::Relaxed) as usize;
        // Relaxed: a set of bits, read with the entries or offline.
        self.skipped.fetch_or(skipped.0, Ordering::Relaxed);
        let entry = self.escalation_log.get(index).ok_or(Full)?;
        // Relaxed: published by the Release store of `phase` below.
        entry.skipped.store(skipped.0, Ordering::Relaxed);
        entry.at_ns.store(now_ns, Ordering::Relaxed);
        // Release: publishes `skipped` and `at_ns` to `escalation`'s
        // Acquire load of `phase`.
        entry.phase.store(phase as u32, Ordering::Release);
        Ok(())
    }

    /// Store the shootdown's summary.
    pub fn record_shootdown(&self, totals: &ShootdownTotals) {
        // Relaxed (all six): one writer, the owner, after the shootdown
        // returned; published by the next `set_phase` for in-kernel readers.
        self.cpus_stopped.store(totals.stopped, Ordering::Relaxed);
        self.cpus_unresponsive
            .store(totals.unresponsive, Ordering::Relaxed);
        self.cpus_absent.store(totals.absent, Ordering::Relaxed);
        self.nmis_sent.store(totals.nmis_sent, Ordering::Relaxed);
        self.nmis_resent
            .store(totals.nmis_resent, Ordering::Relaxed);
        self.nmi_send_errors
            .store(totals.send_errors, Ordering::Relaxed);
    }

    /// Store the dump hand-over's result and the hook's own detail code.
    pub fn set_dump_result(&self, result: DumpResult, detail: u32) {
        // Relaxed: the detail is published with the result below.
        self.dump_detail.store(detail, Ordering::Relaxed);
        // Release: publishes `dump_detail` to `dump_result`'s Acquire load.
        self.dump_result.store(result as u32, Ordering::Release);
    }

    /// Store the final action the owner takes.
    pub fn set_final_action(&self, action: FinalAction) {
        // Relaxed: one writer; nothing is published with it.
        self.final_action.store(action as u32, Ordering::Relaxed);
    }

    /// A CPU other than the owner panicked (it lost the panic flag). Any
    /// CPU may call it. Returns the new count.
    pub fn add_second_panicker(&self) -> u32 {
        bump(&self.second_panickers)
    }

    /// The owner panicked again inside the panic path. Returns the count.
    pub fn add_reentry(&self) -> u32 {
        bump(&self.reentries)
    }

    /// A QSpinLock acquisition fell back to test-and-set (no queue node
    /// left). Any CPU may call it. Returns the count.
    pub fn add_qspinlock_fallback(&self) -> u32 {
        bump(&self.qspinlock_fallbacks)
    }

    /// The panic owner gave up waiting for a lock and broke it. Returns the
    /// count.
    pub fn add_panic_lock_break(&self) -> u32 {
        bump(&self.panic_lock_breaks)
    }

    /// Raise the lock counters to totals the kernel keeps elsewhere (the
    /// lock domain's per-CPU `QueueStats`, summed): each counter becomes
    /// the larger of its value and the total given, so counts added
    /// directly are not lost. Any CPU may call it.
    pub fn record_lock_totals(&self, fallbacks: u32, panic_lock_breaks: u32) {
        // Relaxed: counters, read offline or after the panic.
        self.qspinlock_fallbacks
            .fetch_max(fallbacks, Ordering::Relaxed);
        self.panic_lock_breaks
            .fetch_max(panic_lock_breaks, Ordering::Relaxed);
    }

    /// A writer that appends to the panic message (`write!` into it).
    ///
    /// Text past the 512-byte buffer is dropped at a character boundary,
    /// the truncated flag is set, and that write and every later one return
    /// `fmt::Error` (so a `write!` stops early; the panic path ignores the
    /// error). Appends: a re-entered panic adds to the first message rather
    /// than replacing it.
    pub fn message_writer(&self) -> MessageWriter<'_> {
        MessageWriter { section: self }
    }

    // ----- readers -----

    /// The current phase.
    pub fn phase(&self) -> Decoded<PanicPhase> {
        // Acquire: pairs with `set_phase`'s Release, so what the owner
        // recorded before entering this phase is visible.
        Decoded::from_code(self.phase.load(Ordering::Acquire))
    }

    /// The panic owner, if one was recorded ([`CpuIndex::UNKNOWN`] for an
    /// owner without an index).
    pub fn owner(&self) -> Option<CpuIndex> {
        // Acquire: pairs with `set_owner`'s Release.
        match self.owner_cpu.load(Ordering::Acquire) {
            layout::NO_OWNER => None,
            layout::UNREGISTERED_OWNER => Some(CpuIndex::UNKNOWN),
            raw => Some(CpuIndex(raw)),
        }
    }

    /// A timestamp (0: not stamped).
    pub fn stamp_ns(&self, which: PhaseStamp) -> u64 {
        // Relaxed: a diagnostic value; `phase` (Acquire) orders it.
        self.stamps
            .get(which as usize)
            .map_or(0, |stamp| stamp.load(Ordering::Relaxed))
    }

    /// Escalations so far (may exceed the log's length).
    pub fn escalations(&self) -> u32 {
        // Relaxed: a counter.
        self.escalations.load(Ordering::Relaxed)
    }

    /// Escalation log entry `index`; `None` past the log or while the entry
    /// is reserved but not yet written.
    pub fn escalation(&self, index: usize) -> Option<Escalation> {
        let entry = self.escalation_log.get(index)?;
        // Acquire: pairs with the Release in `record_escalation`, so
        // `skipped` and `at_ns` below are the entry's.
        let phase = entry.phase.load(Ordering::Acquire);
        if phase == layout::ESCALATION_UNWRITTEN {
            return None;
        }
        Some(Escalation {
            phase: Decoded::from_code(phase),
            // Relaxed: ordered after the Acquire above.
            skipped: Skipped(entry.skipped.load(Ordering::Relaxed)),
            at_ns: entry.at_ns.load(Ordering::Relaxed),
        })
    }

    /// The union of what every escalation skipped.
    pub fn skipped(&self) -> Skipped {
        // Relaxed: a set of bits; diagnostic.
        Skipped(self.skipped.load(Ordering::Relaxed))
    }

    /// Panics on other CPUs.
    pub fn second_panickers(&self) -> u32 {
        // Relaxed: a counter.
        self.second_panickers.load(Ordering::Relaxed)
    }

    /// Panics of the owner inside the panic path.
    pub fn reentries(&self) -> u32 {
        // Relaxed: a counter.
        self.reentries.load(Ordering::Relaxed)
    }

    /// QSpinLock test-and-set fallbacks.
    pub fn qspinlock_fallbacks(&self) -> u32 {
        // Relaxed: a counter.
        self.qspinlock_fallbacks.load(Ordering::Relaxed)
    }

    /// Locks the panic owner broke.
    pub fn panic_lock_breaks(&self) -> u32 {
        // Relaxed: a counter.
        self.panic_lock_breaks.load(Ordering::Relaxed)
    }

    /// The shootdown's summary.
    pub fn shootdown(&self) -> ShootdownTotals {
        // Relaxed (all six): one writer; `phase` (Acquire) orders them.
        ShootdownTotals {
            stopped: self.cpus_stopped.load(Ordering::Relaxed),
            unresponsive: self.cpus_unresponsive.load(Ordering::Relaxed),
            absent: self.cpus_absent.load(Ordering::Relaxed),
            nmis_sent: self.nmis_sent.load(Ordering::Relaxed),
            nmis_resent: self.nmis_resent.load(Ordering::Relaxed),
            send_errors: self.nmi_send_errors.load(Ordering::Relaxed),
        }
    }

    /// The dump hand-over's result and detail code.
    pub fn dump_result(&self) -> (Decoded<DumpResult>, u32) {
        // Acquire: pairs with `set_dump_result`'s Release (the detail).
        let result = Decoded::from_code(self.dump_result.load(Ordering::Acquire));
        // Relaxed: ordered after the Acquire above.
        (result, self.dump_detail.load(Ordering::Relaxed))
    }

    /// The final action.
    pub fn final_action(&self) -> Decoded<FinalAction> {
        // Relaxed: a single value with nothing depending on it.
        Decoded::from_code(self.final_action.load(Ordering::Relaxed))
    }

    /// Notifier outcomes recorded in slots.
    pub fn notifiers_recorded(&self) -> u32 {
        // Acquire: pairs with `record_notifier`'s Release (the slots).
        self.notifiers_recorded.load(Ordering::Acquire)
    }

    /// Notifier outcomes dropped because every slot was used.
    pub fn notifiers_dropped(&self) -> u32 {
        // Relaxed: a counter.
        self.notifiers_dropped.load(Ordering::Relaxed)
    }

    /// A copy of the message written so far.
    pub fn message(&self) -> Text<MESSAGE_CAPACITY> {
        // Acquire: pairs with the writer's Release store of the length, so
        // the bytes below it and the flag are the writer's.
        let len = self.message_len.load(Ordering::Acquire) as usize;
        // Relaxed: ordered after the Acquire above.
        let flags = self.message_flags.load(Ordering::Relaxed);
        Text::copy(
            &self.message,
            len,
            flags & layout::panic::MESSAGE_TRUNCATED != 0,
        )
    }

    /// Field values in layout order, for [`crate::CrashRecord::snapshot`]:
    /// the `u32` words from `phase` to `reserved`, the stamps, the log.
    pub(crate) fn words(&self) -> SectionWords {
        // Acquire on the publication words (first, as in memory), then
        // Relaxed for what they publish; each pairing is the one argued on
        // the getters above.
        let message_len = self.message_len.load(Ordering::Acquire);
        let recorded = self.notifiers_recorded.load(Ordering::Acquire);
        let phase = self.phase.load(Ordering::Acquire);
        let owner = self.owner_cpu.load(Ordering::Acquire);
        let dump_result = self.dump_result.load(Ordering::Acquire);
        let relaxed = |word: &AtomicU32| word.load(Ordering::Relaxed);
        let words = [
            phase,
            owner,
            relaxed(&self.escalations),
            relaxed(&self.skipped),
            relaxed(&self.second_panickers),
            relaxed(&self.reentries),
            relaxed(&self.qspinlock_fallbacks),
            relaxed(&self.panic_lock_breaks),
            relaxed(&self.cpus_stopped),
            relaxed(&self.cpus_unresponsive),
            relaxed(&self.cpus_absent),
            relaxed(&self.nmis_sent),
            relaxed(&self.nmis_resent),
            relaxed(&self.nmi_send_errors),
            dump_result,
            relaxed(&self.dump_detail),
            relaxed(&self.final_action),
            recorded,
            relaxed(&self.notifiers_dropped),
            message_len,
            relaxed(&self.message_flags),
            relaxed(&self.reserved),
        ];
        let stamps = core::array::from_fn(|i| {
            self.stamps
                .get(i)
                .map_or(0, |stamp| stamp.load(Ordering::Relaxed))
        });
        let log = core::array::from_fn(|i| {
            self.escalation_log
                .get(i)
                .map_or((layout::ESCALATION_UNWRITTEN, 0, 0), |entry| {
                    let phase = entry.phase.load(Ordering::Acquire);
                    (
                        phase,
                        entry.skipped.load(Ordering::Relaxed),
                        entry.at_ns.load(Ordering::Relaxed),
                    )
                })
        });
        let message = core::array::from_fn(|i| {
            self.message
                .get(i)
                .map_or(0, |byte| byte.load(Ordering::Relaxed))
        });
        SectionWords {
            words,
            stamps,
            log,
            message,
        }
    }
}

/// A field-by-field copy of the panic section (see `PanicSection::words`).
pub(crate) struct SectionWords {
    pub words: [u32; 22],
    pub stamps: [u64; layout::panic::STAMP_COUNT],
    pub log: [(u32, u32, u64); layout::panic::ESCALATION_LOG_LEN],
    pub message: [u8; MESSAGE_CAPACITY],
}

/// Appends to the panic message; see [`PanicSection::message_writer`].
#[derive(Debug)]
pub struct MessageWriter<'a> {
    section: &'a PanicSection,
}

impl fmt::Write for MessageWriter<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let section = self.section;
        // Relaxed (flags, length): the owner is the only writer and reads
        // its own latest stores.
        if section.message_flags.load(Ordering::Relaxed) & layout::panic::MESSAGE_TRUNCATED != 0 {
            return Err(fmt::Error);
        }
        let len = (section.message_len.load(Ordering::Relaxed) as usize).min(MESSAGE_CAPACITY);
        let room = MESSAGE_CAPACITY - len;
        let fits = utf8_prefix(text, room);
        let stored = store_bytes(&section.message, len, fits.as_bytes());
        let truncated = fits.len() < text.len();
        if truncated {
            // Relaxed: published by the Release store of the length below.
            section
                .message_flags
                .fetch_or(layout::panic::MESSAGE_TRUNCATED, Ordering::Relaxed);
        }
        // Release: publishes the bytes just stored and the flag to
        // `message`'s Acquire load. The sum is at most 512.
        section
            .message_len
            .store((len + stored) as u32, Ordering::Release);
        if truncated { Err(fmt::Error) } else { Ok(()) }
    }
}

const _: () = assert!(core::mem::size_of::<EscalationSlot>() == layout::escalation::SIZE);
const _: () = assert!(core::mem::size_of::<PanicSection>() == layout::panic::SIZE);
const _: () = assert!(core::mem::align_of::<PanicSection>() == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn layout_is_the_documented_one() {
        use core::mem::offset_of;
        use layout::panic as p;
        assert_eq!(offset_of!(PanicSection, phase), p::PHASE);
        assert_eq!(offset_of!(PanicSection, owner_cpu), p::OWNER_CPU);
        assert_eq!(offset_of!(PanicSection, escalations), p::ESCALATIONS);
        assert_eq!(offset_of!(PanicSection, skipped), p::SKIPPED);
        assert_eq!(
            offset_of!(PanicSection, second_panickers),
            p::SECOND_PANICKERS
        );
        assert_eq!(offset_of!(PanicSection, reentries), p::REENTRIES);
        assert_eq!(
            offset_of!(PanicSection, qspinlock_fallbacks),
            p::QSPINLOCK_FALLBACKS
        );
        assert_eq!(
            offset_of!(PanicSection, panic_lock_breaks),
            p::PANIC_LOCK_BREAKS
        );
        assert_eq!(offset_of!(PanicSection, cpus_stopped), p::CPUS_STOPPED);
        assert_eq!(
            offset_of!(PanicSection, cpus_unresponsive),
            p::CPUS_UNRESPONSIVE
        );
        assert_eq!(offset_of!(PanicSection, cpus_absent), p::CPUS_ABSENT);
        assert_eq!(offset_of!(PanicSection, nmis_sent), p::NMIS_SENT);
        assert_eq!(offset_of!(PanicSection, nmis_resent), p::NMIS_RESENT);
        assert_eq!(
            offset_of!(PanicSection, nmi_send_errors),
            p::NMI_SEND_ERRORS
        );
        assert_eq!(offset_of!(PanicSection, dump_result), p::DUMP_RESULT);
        assert_eq!(offset_of!(PanicSection, dump_detail), p::DUMP_DETAIL);
        assert_eq!(offset_of!(PanicSection, final_action), p::FINAL_ACTION);
        assert_eq!(
            offset_of!(PanicSection, notifiers_recorded),
            p::NOTIFIERS_RECORDED
        );
        assert_eq!(
            offset_of!(PanicSection, notifiers_dropped),
            p::NOTIFIERS_DROPPED
        );
        assert_eq!(offset_of!(PanicSection, message_len), p::MESSAGE_LEN);
        assert_eq!(offset_of!(PanicSection, message_flags), p::MESSAGE_FLAGS);
        assert_eq!(offset_of!(PanicSection, reserved), p::RESERVED);
        assert_eq!(offset_of!(PanicSection, stamps), p::STAMPS);
        assert_eq!(offset_of!(PanicSection, escalation_log), p::ESCALATION_LOG);
        assert_eq!(offset_of!(PanicSection, message), p::MESSAGE);
        assert_eq!(core::mem::size_of::<PanicSection>(), p::SIZE);
        use layout::escalation as e;
        assert_eq!(offset_of!(EscalationSlot, phase), e::PHASE);
        assert_eq!(offset_of!(EscalationSlot, skipped), e::SKIPPED);
        assert_eq!(offset_of!(EscalationSlot, at_ns), e::AT_NS);
    }

    #[test]
    fn message_appends_and_truncates_at_a_character_boundary() {
        let section = PanicSection::new();
        let mut writer = section.message_writer();
        let (file, line) = ("main.rs", 7);
        assert!(write!(writer, "panicked at {file}:{line}: ").is_ok());
        let head = section.message();
        assert_eq!(head.as_str(), Some("panicked at main.rs:7: "));
        let used = head.as_bytes().len();
        // Fill to two bytes short of the end with ASCII, then a 3-byte
        // character that straddles the limit.
        let filler = "x".repeat(MESSAGE_CAPACITY - used - 2);
        assert!(writer.write_str(&filler).is_ok());
        assert_eq!(writer.write_str("€!"), Err(fmt::Error));
        let full = section.message();
        assert!(full.truncated());
        assert_eq!(full.as_bytes().len(), MESSAGE_CAPACITY - 2);
        assert!(full.as_str().is_some(), "still valid UTF-8");
        // Once truncated, nothing more is appended, even what would fit.
        assert_eq!(writer.write_str("a"), Err(fmt::Error));
        assert_eq!(section.message().as_bytes().len(), MESSAGE_CAPACITY - 2);
    }

    #[test]
    fn exactly_full_is_not_truncated() {
        let section = PanicSection::new();
        let text = "é".repeat(MESSAGE_CAPACITY / 2);
        assert!(section.message_writer().write_str(&text).is_ok());
        let message = section.message();
        assert!(!message.truncated());
        assert_eq!(message.as_str(), Some(text.as_str()));
    }

    #[test]
    fn escalations_past_the_log_are_counted() {
        let section = PanicSection::new();
        for i in 0..6u64 {
            let result = section.record_escalation(PanicPhase::Notifiers, Skipped::NOTIFIER, i);
            assert_eq!(result.is_ok(), i < 4);
        }
        section
            .record_escalation(PanicPhase::DumpHandover, Skipped::DUMP_HANDOVER, 9)
            .unwrap_err();
        assert_eq!(section.escalations(), 7);
        assert_eq!(
            section.skipped(),
            Skipped::NOTIFIER | Skipped::DUMP_HANDOVER
        );
        assert_eq!(section.escalation(3).map(|e| e.at_ns), Some(3));
        assert_eq!(section.escalation(4), None);
    }

    #[test]
    fn phase_swaps_and_owner_is_none_until_set() {
        let section = PanicSection::new();
        assert_eq!(section.owner(), None);
        assert_eq!(
            section.set_phase(PanicPhase::Claimed),
            Decoded::Known(PanicPhase::Idle)
        );
        section.set_owner(CpuIndex(3));
        assert_eq!(section.owner(), Some(CpuIndex(3)));
        assert_eq!(section.phase(), Decoded::Known(PanicPhase::Claimed));
    }
}
