//! crashkit's crash record: what happened between a panic and the dump, in
//! a fixed-layout, versioned structure that the offline tool reads from a
//! dump without any Rust (the layout is documented byte by byte in
//! `docs/crash-record.md`).
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

mod codes;
mod cpu;
pub mod layout;
mod notifier;
mod panic;
mod parse;
mod record;
mod text;

pub use codes::{
    Code, Decoded, DumpResult, FinalAction, NotifierList, NotifierOutcome, PanicPhase, PhaseStamp,
    Skipped,
};
pub use cpu::{CpuSlot, CpuState, StopPath, StopRefused};
pub use notifier::{NotifierEntry, NotifierSlot};
pub use panic::{Escalation, Full, MessageWriter, PanicSection, ShootdownTotals};
pub use parse::{
    ByteOrder, CpuSlotView, Header, NotifierView, PanicView, ParseError, ParseErrorKind,
    RecordView, Scan, SectionDescriptor, Summary, TextView, scan,
};
pub use record::{CrashRecord, SnapshotTooSmall};
pub use text::Text;
