//! Typed views of a parsed record's sections and slots: each reads its
//! fields at the offsets in [`crate::layout`] from a slice the parser
//! validated, so no access can go out of bounds (and if one did, it would
//! read 0, never panic).

use super::bytes::Bytes;
use crate::codes::{Decoded, DumpResult, Escalation, FinalAction, PanicPhase, PhaseStamp, Skipped};
use crate::dump_codes::{ChangedKind, DumpOutcome, DumpPath, FallbackReason};
use crate::layout::{self, cpu, dump, escalation, exclusion, notifier, panic};
use crate::notifier_codes::{NotifierList, NotifierOutcome};
use crate::shootdown::{CpuState, ShootdownTotals, StopPath};

/// Text read from a record: the valid bytes and the truncated flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextView<'a> {
    bytes: &'a [u8],
    truncated: bool,
}

impl<'a> TextView<'a> {
    /// The valid bytes (as many as the stored length says).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The text, if the bytes are valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.bytes).ok()
    }

    /// Whether the writer cut the text short.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// The panic section of a parsed record.
#[derive(Clone, Copy, Debug)]
pub struct PanicView<'a> {
    bytes: Bytes<'a>,
}

impl<'a> PanicView<'a> {
    pub(super) fn new(bytes: Bytes<'a>) -> Self {
        Self { bytes }
    }

    fn word(&self, at: usize) -> u32 {
        self.bytes.u32(at)
    }

    /// How far the panic path got.
    pub fn phase(&self) -> Decoded<PanicPhase> {
        Decoded::from_code(self.word(panic::PHASE))
    }

    /// The panic owner's CPU index; `None` if nobody claimed the panic, or
    /// if its owner had no index ([`owner_unregistered`](Self::owner_unregistered)).
    pub fn owner_cpu(&self) -> Option<u32> {
        let raw = self.word(panic::OWNER_CPU);
        (raw != layout::NO_OWNER && raw != layout::UNREGISTERED_OWNER).then_some(raw)
    }

    /// Whether the panic's owner was a CPU without an index (one that
    /// panicked before the kernel brought it online).
    pub fn owner_unregistered(&self) -> bool {
        self.word(panic::OWNER_CPU) == layout::UNREGISTERED_OWNER
    }

    /// Escalations (may exceed the log's 4 entries).
    pub fn escalations(&self) -> u32 {
        self.word(panic::ESCALATIONS)
    }

    /// The union of what the escalations skipped.
    pub fn skipped(&self) -> Skipped {
        Skipped(self.word(panic::SKIPPED))
    }

    /// Escalation log entry `index`: `None` past the log, past the count,
    /// or for an entry reserved but never written.
    pub fn escalation(&self, index: usize) -> Option<Escalation> {
        if index >= panic::ESCALATION_LOG_LEN || index >= self.escalations() as usize {
            return None;
        }
        let at = panic::ESCALATION_LOG + index * escalation::SIZE;
        let phase = self.word(at + escalation::PHASE);
        (phase != layout::ESCALATION_UNWRITTEN).then(|| Escalation {
            phase: Decoded::from_code(phase),
            skipped: Skipped(self.word(at + escalation::SKIPPED)),
            at_ns: self.bytes.u64(at + escalation::AT_NS),
        })
    }

    /// A phase timestamp (platform nanoseconds, 0: not stamped).
    pub fn stamp_ns(&self, which: PhaseStamp) -> u64 {
        self.bytes.u64(panic::STAMPS + which as usize * 8)
    }

    /// The shootdown's summary.
    pub fn shootdown(&self) -> ShootdownTotals {
        ShootdownTotals {
            stopped: self.word(panic::CPUS_STOPPED),
            unresponsive: self.word(panic::CPUS_UNRESPONSIVE),
            absent: self.word(panic::CPUS_ABSENT),
            nmis_sent: self.word(panic::NMIS_SENT),
            nmis_resent: self.word(panic::NMIS_RESENT),
            send_errors: self.word(panic::NMI_SEND_ERRORS),
        }
    }

    /// Panics on other CPUs.
    pub fn second_panickers(&self) -> u32 {
        self.word(panic::SECOND_PANICKERS)
    }

    /// Panics of the owner inside the panic path.
    pub fn reentries(&self) -> u32 {
        self.word(panic::REENTRIES)
    }

    /// QSpinLock test-and-set fallbacks.
    pub fn qspinlock_fallbacks(&self) -> u32 {
        self.word(panic::QSPINLOCK_FALLBACKS)
    }

    /// Locks the panic owner broke.
    pub fn panic_lock_breaks(&self) -> u32 {
        self.word(panic::PANIC_LOCK_BREAKS)
    }

    /// The dump hand-over's result.
    pub fn dump_result(&self) -> Decoded<DumpResult> {
        Decoded::from_code(self.word(panic::DUMP_RESULT))
    }

    /// The dump hook's own detail code (0: none).
    pub fn dump_detail(&self) -> u32 {
        self.word(panic::DUMP_DETAIL)
    }

    /// The final action.
    pub fn final_action(&self) -> Decoded<FinalAction> {
        Decoded::from_code(self.word(panic::FINAL_ACTION))
    }

    /// Notifier outcomes recorded (validated against the slot count).
    pub fn notifiers_recorded(&self) -> u32 {
        self.word(panic::NOTIFIERS_RECORDED)
    }

    /// Notifier outcomes dropped for lack of slots.
    pub fn notifiers_dropped(&self) -> u32 {
        self.word(panic::NOTIFIERS_DROPPED)
    }

    /// The panic message.
    pub fn message(&self) -> TextView<'a> {
        let len = self.word(panic::MESSAGE_LEN) as usize;
        TextView {
            bytes: self.bytes.slice(panic::MESSAGE, len),
            truncated: self.word(panic::MESSAGE_FLAGS) & panic::MESSAGE_TRUNCATED != 0,
        }
    }
}

/// One CPU slot of a parsed record.
#[derive(Clone, Copy, Debug)]
pub struct CpuSlotView<'a> {
    bytes: Bytes<'a>,
}

impl<'a> CpuSlotView<'a> {
    pub(super) fn new(bytes: Bytes<'a>) -> Self {
        Self { bytes }
    }

    /// The shootdown state.
    pub fn state(&self) -> Decoded<CpuState> {
        Decoded::from_code(self.bytes.u32(cpu::STATE))
    }

    /// How the CPU stopped.
    pub fn stop_path(&self) -> Decoded<StopPath> {
        Decoded::from_code(self.bytes.u32(cpu::STOP_PATH))
    }

    /// Stop NMIs sent to it.
    pub fn nmis_sent(&self) -> u32 {
        self.bytes.u32(cpu::NMIS_SENT)
    }

    /// NMI-like contexts it was in when it stopped.
    pub fn nmi_depth(&self) -> u32 {
        self.bytes.u32(cpu::NMI_DEPTH)
    }

    /// When its first stop NMI was sent (0: never).
    pub fn first_nmi_ns(&self) -> u64 {
        self.bytes.u64(cpu::FIRST_NMI_NS)
    }

    /// When it stopped (0: not yet).
    pub fn stopped_ns(&self) -> u64 {
        self.bytes.u64(cpu::STOPPED_NS)
    }

    /// Whether the state says the registers are valid (`Stopped`,
    /// `PanicOwner`).
    pub fn has_registers(&self) -> bool {
        self.state().known().is_some_and(CpuState::has_registers)
    }

    /// The 21 registers in `RegisterFrame` (ELF `pr_reg`) order, whatever
    /// the state (see [`Self::has_registers`]).
    pub fn registers(&self) -> [u64; cpu::REGISTER_COUNT] {
        core::array::from_fn(|index| self.bytes.u64(cpu::FRAME + index * 8))
    }

    /// The registers, if the state says they are valid; names and indices
    /// in [`layout::cpu::REGISTER_NAMES`] (`RegisterFrame::from_array` in
    /// `crashkit-nmi` makes a frame of them).
    pub fn saved_registers(&self) -> Option<[u64; cpu::REGISTER_COUNT]> {
        self.has_registers().then(|| self.registers())
    }

    /// The control state saved with the registers: `None` if the state
    /// has no registers, or the slot is too short to hold it (a writer from
    /// before the control state). Registers whose valid bit is clear are
    /// `None` in the result.
    pub fn control(&self) -> Option<ControlView> {
        if !self.has_registers() || self.bytes.data.len() < cpu::SIZE {
            return None;
        }
        let valid = self.bytes.u32(cpu::CONTROL_VALID);
        Some(ControlView {
            valid,
            registers: core::array::from_fn(|index| {
                (valid & cpu::control::register(index) != 0)
                    .then(|| self.bytes.u64(cpu::CONTROL + index * 8))
            }),
            selectors: (valid & cpu::control::SELECTORS != 0)
                .then(|| core::array::from_fn(|index| self.bytes.u16(cpu::SELECTORS + index * 2))),
        })
    }
}

/// A CPU's saved control state ([`CpuSlotView::control`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlView {
    /// The stored valid bits (unknown bits kept).
    pub valid: u32,
    /// CR0, CR2, CR3, CR4, EFER, FS base, GS base, kernel GS base
    /// ([`cpu::CONTROL_NAMES`] order); `None` where the valid bit is clear.
    pub registers: [Option<u64>; cpu::CONTROL_COUNT],
    /// `ds`, `es`, `fs`, `gs`, if saved.
    pub selectors: Option<[u16; 4]>,
}

impl ControlView {
    /// Control register `name` ([`cpu::CONTROL_NAMES`]), if saved.
    pub fn get(&self, name: &str) -> Option<u64> {
        let index = cpu::CONTROL_NAMES.iter().position(|n| *n == name)?;
        self.registers.get(index).copied().flatten()
    }
}

/// One recorded notifier outcome of a parsed record.
#[derive(Clone, Copy, Debug)]
pub struct NotifierView<'a> {
    bytes: Bytes<'a>,
}

impl<'a> NotifierView<'a> {
    pub(super) fn new(bytes: Bytes<'a>) -> Self {
        Self { bytes }
    }

    /// The list it ran in.
    pub fn list(&self) -> Decoded<NotifierList> {
        Decoded::from_code(self.bytes.u32(notifier::LIST))
    }

    /// What happened.
    pub fn outcome(&self) -> Decoded<NotifierOutcome> {
        Decoded::from_code(self.bytes.u32(notifier::OUTCOME))
    }

    /// Its priority.
    pub fn priority(&self) -> i32 {
        self.bytes.i32(notifier::PRIORITY)
    }

    /// How long it ran (platform nanoseconds).
    pub fn duration_ns(&self) -> u64 {
        self.bytes.u64(notifier::DURATION_NS)
    }

    /// Its name.
    pub fn name(&self) -> TextView<'a> {
        let len = self.bytes.u32(notifier::NAME_LEN) as usize;
        TextView {
            bytes: self.bytes.slice(notifier::NAME, len),
            truncated: self.bytes.u32(notifier::FLAGS) & notifier::NAME_TRUNCATED != 0,
        }
    }
}

/// One exclusion slot of a parsed record.
#[derive(Clone, Copy, Debug)]
pub struct ExclusionView {
    /// The stored state ([`layout::exclusion`]'s `FREE`, `WRITING`,
    /// `ACTIVE`, or a value no writer stores).
    pub state: u32,
    /// Physical start.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl ExclusionView {
    pub(super) fn new(bytes: Bytes<'_>) -> Self {
        Self {
            state: bytes.u32(exclusion::STATE),
            start: bytes.u64(exclusion::START),
            len: bytes.u64(exclusion::LEN),
        }
    }

    /// The range a dump must leave out, if any: a slot registered or being
    /// written with a non-empty range. A state no writer stores counts as
    /// being written (leaving memory out is the safe mistake).
    pub fn range(&self) -> Option<(u64, u64)> {
        (self.state != exclusion::FREE && self.len != 0).then_some((self.start, self.len))
    }
}

/// The dump section of a parsed record.
#[derive(Clone, Copy, Debug)]
pub struct DumpView<'a> {
    bytes: Bytes<'a>,
}

/// One range the in-place writer changed ([`DumpView::changed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangedRange {
    /// Physical start.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the writer kept there.
    pub kind: Decoded<ChangedKind>,
    /// Whether the writer left the range out of the dump.
    pub left_out: bool,
}

impl<'a> DumpView<'a> {
    pub(super) fn new(bytes: Bytes<'a>) -> Self {
        Self { bytes }
    }

    /// Which writer the dump path chose.
    pub fn path(&self) -> Decoded<DumpPath> {
        Decoded::from_code(self.bytes.u32(dump::PATH))
    }

    /// Why the in-place writer ran.
    pub fn reason(&self) -> Decoded<FallbackReason> {
        Decoded::from_code(self.bytes.u32(dump::REASON))
    }

    /// How the in-place writing ended.
    pub fn outcome(&self) -> Decoded<DumpOutcome> {
        Decoded::from_code(self.bytes.u32(dump::OUTCOME))
    }

    /// The hand-over's error code that sent the dump to the in-place
    /// writer (0: none).
    pub fn handover_error(&self) -> u32 {
        self.bytes.u32(dump::HANDOVER_ERROR)
    }

    /// Pages the in-place writer wrote.
    pub fn pages_written(&self) -> u64 {
        self.bytes.u64(dump::PAGES_WRITTEN)
    }

    /// Bytes of the dump file it wrote.
    pub fn data_bytes(&self) -> u64 {
        self.bytes.u64(dump::DATA_BYTES)
    }

    /// When the writer started and finished (platform nanoseconds; 0: not
    /// stamped).
    pub fn started_finished_ns(&self) -> (u64, u64) {
        (
            self.bytes.u64(dump::STARTED_NS),
            self.bytes.u64(dump::FINISHED_NS),
        )
    }

    /// The ranges the writer changed while writing (at most
    /// [`dump::CHANGED_CAPACITY`]; the parser checked the count).
    pub fn changed(&self) -> impl Iterator<Item = ChangedRange> + use<'a> {
        let bytes = self.bytes;
        let count = (bytes.u32(dump::CHANGED_COUNT) as usize).min(dump::CHANGED_CAPACITY);
        (0..count).map(move |index| {
            let at = dump::CHANGED + index * dump::changed::SIZE;
            ChangedRange {
                start: bytes.u64(at + dump::changed::START),
                len: bytes.u64(at + dump::changed::LEN),
                kind: Decoded::from_code(bytes.u32(at + dump::changed::KIND)),
                left_out: bytes.u32(at + dump::changed::FLAGS) & dump::changed::LEFT_OUT != 0,
            }
        })
    }
}
