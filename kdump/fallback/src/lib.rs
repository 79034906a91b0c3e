//! The in-place writer (docs/kdump.md, "The in-place writer"): when the
//! dump step has no capture kernel to hand over to (none was loaded, or
//! its image or control area no longer checks), the crashed kernel writes
//! the dump itself, to the same device, in the same layout, with the same
//! code the capture kernel runs (`crashkit-kdump-capture`), and returns to
//! the panic path, which runs the post-dump notifiers and the final action
//! as Linux does when kexec fails.
//!
//! What makes it safe to run in a crashed kernel:
//! - **no allocation**: every buffer is a static of this crate (the
//!   capture's scratch, the sector window, the record's copy, a bounce
//!   page, its own stack) or of `crashkit-kdump-pc` (the DMA pool), taken
//!   once for the kernel's life: a re-entered panic path (or a second
//!   call) finds them taken and writes nothing (`DumpOutcome::Busy`);
//! - **bounded**: the device is polled, every wait is bounded by the
//!   driver's own loop or the page count;
//! - **honest**: before the first byte goes out, the record's dump section
//!   says `InPlace`, why, and every range of memory the writer will change
//!   (the pages of the panicking CPU's stack around the point where it
//!   started, [`STACK_BUDGET`] below and [`FRAMES_ABOVE`] above: the rest
//!   of the work runs on a stack of the writer's own, so the crashed stack
//!   keeps its old frames; the record; its own state, which is left out of
//!   the dump); the dump carries that copy of the record; the outcome is
//!   stored in the record afterwards;
//! - **quiet while reading**: progress lines are held in the writer's
//!   state while pages are read and printed after (printing changes the
//!   console's state, in pages being dumped).
//!
//! | module | what |
//! |--------|------|
//! | `config` | [`Config`] (what the writer needs, armed at boot) and [`InPlace`] |
//! | `memory` | the crashed kernel's RAM as `PhysMemory`, page by page through a bounce page |
//! | `write` | [`InPlace::write`]: the writer |

#![no_std]

mod config;
mod memory;
mod write;

pub use config::{Config, ConfigError, InPlace, MAX_VMCOREINFO};
pub use write::{FRAMES_ABOVE, STACK_BUDGET, Start, Why};
