//! crashkit's crash record as data: the byte layout (`layout`), the codes
//! the record stores (`codes`, `shootdown`, `notifier_codes`) and the
//! reader ([`RecordView`]), with no target code and no dependencies, so the
//! offline tool links it without linking the kernel side (the writer is
//! `crashkit-record`, which re-exports all of this). The layout is
//! documented byte by byte in `docs/crash-record.md`.
//!
//! # Invariants
//! - `no_std`, no allocation, no `unsafe`.
//! - The reader never panics and never reads out of bounds, whatever the
//!   bytes; what is wrong is a [`ParseError`] with its byte offset; a code
//!   it does not know is [`Decoded::Unknown`], kept, not an error.
//! - Stored codes never change meaning (each enum's `code`/`from_code`).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[macro_use]
mod code_enum;
mod codes;
mod dump_codes;
pub mod layout;
mod notifier_codes;
mod parse;
mod shootdown;

pub use codes::{
    Code, Decoded, DumpResult, Escalation, FinalAction, PanicPhase, PhaseStamp, Skipped,
};
pub use dump_codes::{ChangedKind, DumpOutcome, DumpPath, FallbackReason};
pub use notifier_codes::{NotifierList, NotifierOutcome};
pub use parse::{
    ByteOrder, ChangedRange, ControlView, CpuSlotView, DumpView, ExclusionView, Header,
    NotifierView, PanicView, ParseError, ParseErrorKind, RecordView, Scan, SectionDescriptor,
    Summary, TextView, scan,
};
pub use shootdown::{CpuState, ShootdownTotals, StopPath};
