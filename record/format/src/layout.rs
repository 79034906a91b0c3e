//! The crash record's byte layout, as constants: the single source of the
//! offsets that `docs/crash-record.md` documents and the tests check.
//!
//! Every offset is relative to the start of its own structure (the record
//! for the header, the section for a section's fields, the slot for a
//! slot's fields). All multi-byte integers are in the byte order the
//! header's [`BYTE_ORDER_MARK`] shows (little-endian on x86_64); byte
//! buffers are plain bytes. Version 1 of the format is:
//!
//! ```text
//! offset 0                  header (HEADER_SIZE bytes: fixed part + section table)
//! offset HEADER_SIZE        panic section (one slot of panic::SIZE bytes)
//! then                      CPUS slots of cpu::SIZE bytes
//! then                      NOTIFIERS slots of notifier::SIZE bytes
//! ```
//!
//! A reader never relies on that order: it finds each section through the
//! header's section table (see [`crate::RecordView`]).

/// The record's first eight bytes.
pub const MAGIC: [u8; 8] = *b"CRASHKIT";

/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;

/// Written in the writer's byte order: the bytes `04 03 02 01` mean
/// little-endian, `01 02 03 04` big-endian.
pub const BYTE_ORDER_MARK: u32 = 0x0102_0304;

/// Size of the header's fixed fields (before the section table).
pub const HEADER_FIXED_SIZE: usize = 32;

/// Size of one section table entry in version 1.
pub const SECTION_ENTRY_SIZE: usize = 16;

/// Section table entries this writer emits (panic, CPUs, notifiers,
/// exclusions, dump, log). The first version-1 writers emitted the first
/// three; a reader requires only those.
pub const SECTION_COUNT: usize = 6;

/// Size of the whole header in version 1 (fixed part and section table).
pub const HEADER_SIZE: usize = HEADER_FIXED_SIZE + SECTION_COUNT * SECTION_ENTRY_SIZE;

/// Most section table entries a reader accepts (a bound on its work).
pub const MAX_SECTIONS: u32 = 32;

/// Stored in an escalation entry's `phase` until the entry is written.
pub const ESCALATION_UNWRITTEN: u32 = u32::MAX;

/// Stored as the owner CPU while nobody owns the panic.
pub const NO_OWNER: u32 = u32::MAX;

/// Stored as the owner CPU when the panic's owner had no CPU index: a CPU
/// that panicked before the kernel brought it online. The format's own code
/// (the kernel's name for such a CPU is the NMI core's `CpuIndex::UNKNOWN`,
/// which the record's writer translates to this); no CPU has this index.
pub const UNREGISTERED_OWNER: u32 = u32::MAX - 1;

/// Section kinds, as stored in a section table entry's `kind`.
pub mod section_kind {
    /// The panic section (exactly one slot).
    pub const PANIC: u32 = 1;
    /// The CPU slots, one per CPU index.
    pub const CPUS: u32 = 2;
    /// The notifier outcome slots, in run order.
    pub const NOTIFIERS: u32 = 3;
    /// The exclusion slots: memory a dump must leave out (secrets),
    /// registered at run time. Optional (older records lack it).
    pub const EXCLUSIONS: u32 = 4;
    /// The dump section (exactly one slot): which path wrote the dump, why,
    /// and the pages its writer changed. Optional (older records lack it).
    pub const DUMP: u32 = 5;
    /// The log section (exactly one slot): where the kernel's crash log
    /// (docs/crash-log.md) is. Optional (older records lack it).
    pub const LOG: u32 = 6;
}

/// Offsets of the header's fields.
pub mod header {
    /// `[u8; 8]`, [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// `u16`, [`super::VERSION`].
    pub const VERSION: usize = 8;
    /// `u16`, the header's size, section table included.
    pub const HEADER_SIZE: usize = 10;
    /// `u32`, [`super::BYTE_ORDER_MARK`].
    pub const BYTE_ORDER: usize = 12;
    /// `u32`, the whole record's size.
    pub const TOTAL_SIZE: usize = 16;
    /// `u16`, where the section table starts (from the record's start).
    pub const SECTION_TABLE_OFFSET: usize = 20;
    /// `u16`, the size of one section table entry.
    pub const SECTION_ENTRY_SIZE: usize = 22;
    /// `u32`, the number of section table entries.
    pub const SECTION_COUNT: usize = 24;
    /// `u32`, zero (reserved).
    pub const RESERVED: usize = 28;
    /// The section table in version 1.
    pub const SECTION_TABLE: usize = 32;
}

/// Offsets of a section table entry's fields.
pub mod section_entry {
    /// `u32`, a [`super::section_kind`].
    pub const KIND: usize = 0;
    /// `u32`, where the section starts (from the record's start).
    pub const OFFSET: usize = 4;
    /// `u32`, how many slots the section has.
    pub const COUNT: usize = 8;
    /// `u32`, the size of one slot (the stride between slots).
    pub const SLOT_SIZE: usize = 12;
}

/// Offsets of the panic section's fields.
pub mod panic {
    /// `u32`, a `PanicPhase` code.
    pub const PHASE: usize = 0;
    /// `u32`, the owner's CPU index, [`super::NO_OWNER`] before the claim,
    /// [`super::UNREGISTERED_OWNER`] if the owner had no index.
    pub const OWNER_CPU: usize = 4;
    /// `u32`, re-entries of the owner that escalated.
    pub const ESCALATIONS: usize = 8;
    /// `u32`, the union of every escalation's `Skipped` bits.
    pub const SKIPPED: usize = 12;
    /// `u32`, panics on other CPUs while this one ran.
    pub const SECOND_PANICKERS: usize = 16;
    /// `u32`, panics on the owner while it ran the panic path.
    pub const REENTRIES: usize = 20;
    /// `u32`, QSpinLock acquisitions that fell back to test-and-set.
    pub const QSPINLOCK_FALLBACKS: usize = 24;
    /// `u32`, locks the panic owner broke after its bounded wait.
    pub const PANIC_LOCK_BREAKS: usize = 28;
    /// `u32`, CPUs the shootdown stopped.
    pub const CPUS_STOPPED: usize = 32;
    /// `u32`, CPUs that did not answer by the deadline.
    pub const CPUS_UNRESPONSIVE: usize = 36;
    /// `u32`, CPU slots the platform has no CPU for.
    pub const CPUS_ABSENT: usize = 40;
    /// `u32`, stop NMIs sent (first sends and resends).
    pub const NMIS_SENT: usize = 44;
    /// `u32`, of which resends.
    pub const NMIS_RESENT: usize = 48;
    /// `u32`, NMI sends the platform refused.
    pub const NMI_SEND_ERRORS: usize = 52;
    /// `u32`, a `DumpResult` code.
    pub const DUMP_RESULT: usize = 56;
    /// `u32`, the dump hook's own error code (0: none).
    pub const DUMP_DETAIL: usize = 60;
    /// `u32`, a `FinalAction` code.
    pub const FINAL_ACTION: usize = 64;
    /// `u32`, notifier slots written (publishes them).
    pub const NOTIFIERS_RECORDED: usize = 68;
    /// `u32`, notifier outcomes dropped because every slot was used.
    pub const NOTIFIERS_DROPPED: usize = 72;
    /// `u32`, bytes of the message written (publishes them).
    pub const MESSAGE_LEN: usize = 76;
    /// `u32`, bit 0: the message was truncated.
    pub const MESSAGE_FLAGS: usize = 80;
    /// `u32`, zero (reserved).
    pub const RESERVED: usize = 84;
    /// `[u64; 8]`, phase timestamps indexed by `PhaseStamp` code.
    pub const STAMPS: usize = 88;
    /// `[escalation entry; 4]`, see [`super::escalation`].
    pub const ESCALATION_LOG: usize = 152;
    /// `[u8; 512]`, the panic message (UTF-8, `MESSAGE_LEN` bytes valid).
    pub const MESSAGE: usize = 216;
    /// Size of the panic section in version 1.
    pub const SIZE: usize = 728;
    /// Timestamps in `STAMPS`.
    pub const STAMP_COUNT: usize = 8;
    /// Entries in `ESCALATION_LOG`.
    pub const ESCALATION_LOG_LEN: usize = 4;
    /// Capacity of `MESSAGE`.
    pub const MESSAGE_CAPACITY: usize = 512;
    /// `MESSAGE_FLAGS` bit: the message was cut short.
    pub const MESSAGE_TRUNCATED: u32 = 1;
}

/// Offsets of an escalation log entry's fields (from the entry's start).
pub mod escalation {
    /// `u32`, the `PanicPhase` the owner was in when it re-entered;
    /// [`super::ESCALATION_UNWRITTEN`] until written (publishes the entry).
    pub const PHASE: usize = 0;
    /// `u32`, `Skipped` bits: what this escalation skipped.
    pub const SKIPPED: usize = 4;
    /// `u64`, platform nanoseconds of the re-entry.
    pub const AT_NS: usize = 8;
    /// Size of an entry.
    pub const SIZE: usize = 16;
}

/// Offsets of a CPU slot's fields (the layout of `CpuSlot`).
pub mod cpu {
    /// `u32`, a `CpuState` code.
    pub const STATE: usize = 0;
    /// `u32`, a `StopPath` code.
    pub const STOP_PATH: usize = 4;
    /// `u32`, stop NMIs sent to this CPU.
    pub const NMIS_SENT: usize = 8;
    /// `u32`, NMI-like contexts the CPU was in when it stopped.
    pub const NMI_DEPTH: usize = 12;
    /// `u64`, when the first stop NMI was sent (0: never).
    pub const FIRST_NMI_NS: usize = 16;
    /// `u64`, when the CPU stopped or the owner recorded itself (0: not yet).
    pub const STOPPED_NS: usize = 24;
    /// `[u64; 21]`, the registers in `RegisterFrame` (ELF `pr_reg`) order.
    pub const FRAME: usize = 32;
    /// Registers in `FRAME`.
    pub const REGISTER_COUNT: usize = 21;
    /// The registers' names, in `FRAME` order (`RegisterFrame`'s fields,
    /// ELF `pr_reg`'s first 21 slots with `orig_ax` holding the error code).
    pub const REGISTER_NAMES: [&str; REGISTER_COUNT] = [
        "r15",
        "r14",
        "r13",
        "r12",
        "rbp",
        "rbx",
        "r11",
        "r10",
        "r9",
        "r8",
        "rax",
        "rcx",
        "rdx",
        "rsi",
        "rdi",
        "error_code",
        "rip",
        "cs",
        "rflags",
        "rsp",
        "ss",
    ];
    /// Index of `rip` in `FRAME`.
    pub const RIP: usize = 16;
    /// Index of `rsp` in `FRAME`.
    pub const RSP: usize = 19;
    /// Index of `cs` in `FRAME` (its low two bits are the privilege level).
    pub const CS: usize = 17;
    /// The smallest CPU slot a version-1 reader accepts: the fields above
    /// (`state` to `FRAME`), as the first version-1 writers wrote them.
    pub const MIN_SIZE: usize = 200;
    /// `u32`, [`control`] bits: which control registers were saved (0:
    /// none, or a writer from before the control state; a slot shorter than
    /// [`SIZE`] has none either).
    pub const CONTROL_VALID: usize = 200;
    /// `u32`, zero (reserved).
    pub const CONTROL_RESERVED: usize = 204;
    /// `[u64; 8]`, CR0, CR2, CR3, CR4, EFER, FS base, GS base, kernel GS
    /// base, in [`CONTROL_NAMES`] order.
    pub const CONTROL: usize = 208;
    /// Registers in `CONTROL`.
    pub const CONTROL_COUNT: usize = 8;
    /// The control registers' names, in `CONTROL` order; register `i` is
    /// valid when bit `i` of `CONTROL_VALID` is set.
    pub const CONTROL_NAMES: [&str; CONTROL_COUNT] = [
        "cr0",
        "cr2",
        "cr3",
        "cr4",
        "efer",
        "fs_base",
        "gs_base",
        "kernel_gs_base",
    ];
    /// `[u16; 4]`, the selectors `ds`, `es`, `fs`, `gs`, valid when
    /// [`control::SELECTORS`] is set.
    pub const SELECTORS: usize = 272;
    /// The selectors' names, in `SELECTORS` order.
    pub const SELECTOR_NAMES: [&str; 4] = ["ds", "es", "fs", "gs"];
    /// Size of a CPU slot as this crate writes it (version 1 grown by the
    /// control state, a compatible growth).
    pub const SIZE: usize = 280;

    /// Bits of `CONTROL_VALID` (the same as the NMI core's
    /// `ControlRegisters::valid` and, for bits 0 to 7, the dump's
    /// `ControlState` note).
    pub mod control {
        /// Bit `i` (0 to 7): `CONTROL` register `i` is valid.
        pub const fn register(index: usize) -> u32 {
            1 << index
        }
        /// The four selectors are valid.
        pub const SELECTORS: u32 = 1 << 16;
    }
}

/// Offsets of a notifier slot's fields.
pub mod notifier {
    /// `u32`, a `NotifierList` code.
    pub const LIST: usize = 0;
    /// `u32`, a `NotifierOutcome` code.
    pub const OUTCOME: usize = 4;
    /// `i32`, the notifier's priority.
    pub const PRIORITY: usize = 8;
    /// `u32`, bit 0: the name was truncated.
    pub const FLAGS: usize = 12;
    /// `u64`, how long the notifier ran (platform nanoseconds).
    pub const DURATION_NS: usize = 16;
    /// `u32`, bytes of `NAME` written (publishes them).
    pub const NAME_LEN: usize = 24;
    /// `u32`, zero (reserved).
    pub const RESERVED: usize = 28;
    /// `[u8; 48]`, the notifier's name (UTF-8, `NAME_LEN` bytes valid).
    pub const NAME: usize = 32;
    /// Capacity of `NAME`.
    pub const NAME_CAPACITY: usize = 48;
    /// Size of a notifier slot in version 1.
    pub const SIZE: usize = 80;
    /// `FLAGS` bit: the name was cut short.
    pub const NAME_TRUNCATED: u32 = 1;
}

/// Offsets of an exclusion slot's fields (`ExclusionSlot`).
pub mod exclusion {
    /// `u32`, the slot's state: [`FREE`], [`WRITING`] or [`ACTIVE`].
    pub const STATE: usize = 0;
    /// `u32`, zero (reserved).
    pub const RESERVED: usize = 4;
    /// `u64`, the range's physical start.
    pub const START: usize = 8;
    /// `u64`, the range's length in bytes (0: nothing).
    pub const LEN: usize = 16;
    /// Size of a slot.
    pub const SIZE: usize = 24;
    /// `STATE`: unused.
    pub const FREE: u32 = 0;
    /// `STATE`: being registered or removed; `START` and `LEN` may be the
    /// old range, the new one, or zero: a dump writer leaves out whatever
    /// non-empty range they hold.
    pub const WRITING: u32 = 1;
    /// `STATE`: registered; `START` and `LEN` are the range.
    pub const ACTIVE: u32 = 2;
}

/// Offsets of the log section's fields (one slot, `LogSection`).
pub mod log {
    /// `u64`, the crash log's address as the kernel sees it (identity
    /// mapped kernels: physical); 0: the kernel has no crash log.
    pub const ADDRESS: usize = 0;
    /// `u64`, the crash log's size in bytes.
    pub const SIZE_BYTES: usize = 8;
    /// Size of the slot.
    pub const SIZE: usize = 16;
}

/// Offsets of the dump section's fields (one slot, `DumpSection`).
pub mod dump {
    /// `u32`, a `DumpPath` code: which writer wrote the dump.
    pub const PATH: usize = 0;
    /// `u32`, a `FallbackReason` code: why the in-place writer ran.
    pub const REASON: usize = 4;
    /// `u32`, a `DumpOutcome` code: how the writing ended.
    pub const OUTCOME: usize = 8;
    /// `u32`, changed ranges recorded in `CHANGED` (publishes them).
    pub const CHANGED_COUNT: usize = 12;
    /// `u32`, the hand-over's error code that sent the dump to the
    /// in-place writer (docs/kdump.md), 0 none.
    pub const HANDOVER_ERROR: usize = 16;
    /// `u32`, zero (reserved).
    pub const RESERVED: usize = 20;
    /// `u64`, pages the in-place writer wrote.
    pub const PAGES_WRITTEN: usize = 24;
    /// `u64`, bytes of the dump file it wrote.
    pub const DATA_BYTES: usize = 32;
    /// `u64`, platform nanoseconds when the writer started.
    pub const STARTED_NS: usize = 40;
    /// `u64`, platform nanoseconds when it finished.
    pub const FINISHED_NS: usize = 48;
    /// `[entry; CHANGED_CAPACITY]`, memory the writer changed while
    /// writing, below.
    pub const CHANGED: usize = 56;
    /// Entries in `CHANGED`.
    pub const CHANGED_CAPACITY: usize = 8;
    /// Size of the section's one slot.
    pub const SIZE: usize = CHANGED + CHANGED_CAPACITY * changed::SIZE;

    /// Offsets of a `CHANGED` entry's fields.
    pub mod changed {
        /// `u64`, physical start.
        pub const START: usize = 0;
        /// `u64`, length in bytes.
        pub const LEN: usize = 8;
        /// `u32`, a `ChangedKind` code: what the writer kept there.
        pub const KIND: usize = 16;
        /// `u32`, bit 0 ([`LEFT_OUT`]): the range is not in the dump.
        pub const FLAGS: usize = 20;
        /// Size of an entry.
        pub const SIZE: usize = 24;
        /// `FLAGS` bit: the writer left the range out of the dump (its own
        /// state, which held nothing at the crash).
        pub const LEFT_OUT: u32 = 1;
    }
}

const _: () = assert!(HEADER_SIZE == 128);
const _: () = assert!(dump::SIZE == 248);
const _: () = assert!(panic::MESSAGE + panic::MESSAGE_CAPACITY == panic::SIZE);
const _: () =
    assert!(panic::ESCALATION_LOG + panic::ESCALATION_LOG_LEN * escalation::SIZE == panic::MESSAGE);
const _: () = assert!(panic::STAMPS + panic::STAMP_COUNT * 8 == panic::ESCALATION_LOG);
const _: () = assert!(cpu::FRAME + cpu::REGISTER_COUNT * 8 == cpu::MIN_SIZE);
const _: () = assert!(cpu::CONTROL + cpu::CONTROL_COUNT * 8 == cpu::SELECTORS);
const _: () = assert!(cpu::SELECTORS + 4 * 2 == cpu::SIZE);
const _: () = assert!(matches!(cpu::REGISTER_NAMES[cpu::RIP].as_bytes(), b"rip"));
const _: () = assert!(matches!(cpu::REGISTER_NAMES[cpu::RSP].as_bytes(), b"rsp"));
const _: () = assert!(matches!(cpu::REGISTER_NAMES[cpu::CS].as_bytes(), b"cs"));
const _: () = assert!(notifier::NAME + notifier::NAME_CAPACITY == notifier::SIZE);
