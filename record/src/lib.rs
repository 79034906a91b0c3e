//! crashkit's crash record: what happened between a panic and the dump, in
//! a fixed-layout, versioned structure that the offline tool reads from a
//! dump without any Rust (the layout is documented byte by byte in
//! `docs/crash-record.md`).
//!
//! - [`CpuSlot`]: one per CPU, the shootdown's per-CPU state machine and the
//!   registers each CPU saved when it stopped.
//!
//! # Invariants
//! - `no_std`, no allocation: the record is a static the kernel reserves at
//!   build time, written on the panic path.
//! - Every field a CPU other than the panic owner writes is an atomic or is
//!   published through one (see each type's docs).

#![cfg_attr(not(test), no_std)]

mod cpu;

pub use cpu::{CpuSlot, CpuState, StopPath, StopRefused};
