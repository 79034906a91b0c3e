//! crashkit's crash record: what happened between a panic and the dump, in
//! a fixed-layout, versioned structure that the offline tool reads from a
//! dump without any Rust (the layout is documented byte by byte in
//! `docs/crash-record.md`).
//!
//! This crate is the writer's side, the statics the kernel reserves and
//! writes on the panic path. The record as data (layout, codes, reader) is
//! `crashkit-record-format`, which the offline tool links without any
//! target code; everything in it is re-exported here.
//!
//! Our nomenclature:
//! - the **record** ([`CrashRecord`]) is one static: a header, then
//!   *sections*; a section is an array of fixed-size *slots*;
//! - the **header** names the format (magic `CRASHKIT`, version, byte
//!   order) and has a *section table*: each section's kind, offset, slot
//!   count and slot size, so a reader handles any CPU count and future
//!   growth;
//! - the **panic section** ([`PanicSection`]): phase, owner, escalations,
//!   timestamps, shootdown summary, counters, results, message;
//! - a **CPU slot** ([`CpuSlot`]): one per CPU, the shootdown's per-CPU
//!   state machine and the registers each CPU saved when it stopped;
//! - a **notifier slot** ([`NotifierSlot`]): one notifier's outcome, in run
//!   order;
//! - the **dump section** ([`DumpSection`]): which writer wrote the dump,
//!   why, how it ended, and the memory the in-place writer changed;
//! - an **exclusion slot** ([`ExclusionSlot`]): a range of memory a dump
//!   must leave out, registered at run time without a lock;
//! - the **reader** ([`RecordView`]): validates bytes and gives typed
//!   access, `no_std` and without allocation, for the CLI and for tests.
//!
//! # Invariants
//! - `no_std`, no allocation: the record is a static the kernel reserves at
//!   build time, written on the panic path.
//! - Every field a CPU may write or read while the panic runs is an atomic
//!   (the header, written by `const fn new`, never changes); text is
//!   published by a Release store of its length, slots by a Release store
//!   of a count or a state (see each type's docs).
//! - No writer panics or blocks: a full log or table is counted and
//!   reported as [`Full`]; text that does not fit is truncated at a
//!   character boundary and flagged.
//! - The reader never panics and never reads out of bounds, whatever the
//!   bytes; what is wrong is a [`ParseError`] with its byte offset.

#![cfg_attr(not(test), no_std)]

mod cpu;
pub mod dump;
pub mod exclusion;
mod notifier;
mod panic;
mod record;
mod text;

pub use cpu::{CpuSlot, StopRefused};
pub use crashkit_record_format::layout;
pub use crashkit_record_format::{
    ByteOrder, ChangedKind, ChangedRange, Code, ControlView, CpuSlotView, CpuState, Decoded,
    DumpOutcome, DumpPath, DumpResult, DumpView, Escalation, ExclusionView, FallbackReason,
    FinalAction, Header, NotifierList, NotifierOutcome, NotifierView, PanicPhase, PanicView,
    ParseError, ParseErrorKind, PhaseStamp, RecordView, Scan, SectionDescriptor, ShootdownTotals,
    Skipped, StopPath, Summary, TextView, scan,
};
pub use dump::DumpSection;
pub use exclusion::{ExcludeError, Exclusion, ExclusionSlot};
pub use notifier::{NotifierEntry, NotifierSlot};
pub use panic::{Full, MessageWriter, PanicSection};
pub use record::{CrashRecord, DEFAULT_EXCLUSIONS, SnapshotTooSmall};
pub use text::Text;

/// The registers a parsed CPU slot holds, as the kernel-side
/// [`RegisterFrame`](crashkit_nmi::RegisterFrame) (the format crate has no
/// dependency on `crashkit-nmi`, so it gives an array).
pub trait SlotFrame {
    /// The registers as a frame, if the slot's state says they are valid.
    fn frame(&self) -> Option<crashkit_nmi::RegisterFrame>;
}

impl SlotFrame for CpuSlotView<'_> {
    fn frame(&self) -> Option<crashkit_nmi::RegisterFrame> {
        self.saved_registers()
            .map(crashkit_nmi::RegisterFrame::from_array)
    }
}
