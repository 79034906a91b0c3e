//! crashkit for a kernel, in one dependency: the crash path an x86_64 kernel
//! links into its panic handler (NMI shootdown, panic notifiers that only
//! try locks, a fixed-layout crash record), wired by one declaration.
//!
//! ```no_run
//! use crashkit::prelude::*;
//!
//! # fn exit_qemu() -> ! { loop {} }
//! // SAFETY: ring 0, xAPIC mode; the boot code maps the APIC page
//! // uncacheable and nothing else uses it.
//! const APIC: LocalApic = unsafe { LocalApic::xapic(0xFEE0_0000) };
//!
//! crashkit::kernel! {
//!     pub struct Crash;
//!     cpus: 8,
//!     notifiers: 16,
//!     apic: APIC,
//!     final_action: reboot(exit_qemu),
//! }
//! // In the kernel (not in this host example): crashkit::panic_handler!(Crash);
//!
//! // At bring-up, on the boot CPU: Crash::set_tsc_hz(measured_hz), then on
//! // every CPU, the boot CPU first: Crash::cpu_online(CpuIndex(n)).
//! ```
//!
//! | what | where |
//! |------|-------|
//! | the declaration, what it generates, its fields | [`kernel!`], [`panic_handler!`], [`KernelState`] |
//! | the names a kernel uses | [`prelude`] |
//! | a final action that restarts a PC (`final_action: reboot(crashkit::reset)`) | [`reset()`] |
//! | the integration guide (linker script, RAM image, reboot or halt, console, machine checks, before bring-up) | [`guide`] (docs/integration.md) |
//! | the crates underneath | [`nmi`], [`record`], [`shootdown`], [`notifiers`], [`panic_path`] |
//!
//! Before bring-up (before the boot CPU's `cpu_online`) crashkit is already
//! usable: locks work as on one CPU, and a panic runs the whole panic path
//! with nothing to shoot down (see [`guide`], "Before bring-up").
//!
//! # Features
//! - `dump-format`: re-exports the dump formats (`crashkit-dump-format`,
//!   `no_std`) as `crashkit::dump_format`, for a capture kernel or a kernel that
//!   writes its own dump.
//! - `dump-format-alloc`: the same with its `alloc` parts (readers that
//!   decompress into owned buffers), for a capture kernel with a heap.
//! - `kdump`: the dump path (module `kdump`): a capture kernel (crashkit ships
//!   one, `crashkit-capture`) loaded into a reservation at boot, handed
//!   over to by the panic path's dump step.
//! - `crash-log`: the crash log (module `log`, `kernel!`'s `crash_log:`
//!   field): per-CPU, per-context rings that survive into every dump and
//!   `crashkit log --kernel ELF` decodes (docs/crash-log.md).
//! - `defmt`: `crash-log` plus crashkit's defmt global logger over the
//!   rings, and the crash path's own events logged through defmt (the
//!   kernel links with `-Tdefmt.x`; `DEFMT_LOG=info` keeps them).

#![no_std]

#[cfg(feature = "kdump")]
pub mod kdump;
#[cfg(feature = "crash-log")]
pub mod log;
mod reset;
mod setup;
mod state;

pub use reset::reset;
pub use state::{
    CONSOLE_BUDGET_NS, EntryStubs, Gate, IstSlots, KernelState, install_entries, report_panic,
};

/// The NMI core: context tracker, handler chain, platform, entry stubs,
/// and the queued spinlock ([`nmi::lock`]).
pub use crashkit_nmi as nmi;
/// The panic notifiers.
pub use crashkit_notifiers as notifiers;
/// The panic path.
pub use crashkit_panic_path as panic_path;
/// The crash record.
pub use crashkit_record as record;
/// The NMI shootdown.
pub use crashkit_shootdown as shootdown;

/// The `x86_64` crate, version 0.15 (the version crashkit's own types
/// use): `K::install_entries` takes its `InterruptDescriptorTable`. A
/// kernel on another version, or with an IDT type of its own, takes the
/// gates from `K::entry_stubs().gates(..)` ([`Gate`]) instead.
pub use x86_64;

/// The dump formats (feature `dump-format`).
#[cfg(feature = "dump-format")]
pub use crashkit_dump_format as dump_format;

pub use crashkit_nmi::{nmi_entry_stub, nmi_entry_stub_with_error_code};

/// The names a kernel's glue and its notifiers use:
/// `use crashkit::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "crash-log")]
    pub use crate::log::LogKernel;
    pub use crate::{Gate, IstSlots};
    pub use crashkit_nmi::arch::x86_64::{ExternalNmi, LocalApic, X86Platform};
    pub use crashkit_nmi::lock::{Mutex, MutexGuard, QueueDomain};
    pub use crashkit_nmi::{
        ContextKind, ControlRegisters, CpuIndex, NmiEvent, NmiHandler, NmiOutcome, Platform,
        RegisterFrame, UnknownNmiPolicy,
    };
    pub use crashkit_notifiers::{
        BodyResult, LockedBody, Notifier, NotifierList, NotifierLock, PanicContext,
    };
    pub use crashkit_panic_path::{DumpAttempt, FinalChoice, Kernel, PanicConfig};
    pub use crashkit_shootdown::ShootdownConfig;
}

/// The integration guide, docs/integration.md: every Rust block in it is a
/// test of this crate (compiled, or quoted from the minimal kernel, which is
/// built and booted by the test suite).
#[doc = include_str!("../../docs/integration.md")]
pub mod guide {}

/// The README's snippets, tested as the guide's are.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

/// docs/notifiers.md's snippet.
#[cfg(doctest)]
#[doc = include_str!("../../docs/notifiers.md")]
mod notifiers_doc {}

/// What the macros name. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "crash-log")]
    pub use crate::log::{LogHooks, LogKernel};
    pub use crate::state::{
        CONSOLE_BUDGET_NS, EntryStubs, IstSlots, KernelState, install_entries, report_panic,
    };
    #[cfg(feature = "crash-log")]
    pub use crashkit_log::LogRings;
    pub use crashkit_nmi::arch::x86_64::entry::InstallError;
    pub use crashkit_nmi::arch::x86_64::{ExternalNmi, RegisterCpuError, X86Platform};
    pub use crashkit_nmi::lock::{CpuQueue, QueueDomain};
    pub use crashkit_nmi::{
        CpuIndex, NmiEvent, NmiHandler, PanicFlag, RegisterFrame, UnknownNmiPolicy,
    };
    pub use crashkit_notifiers::{LockedBody, Notifier, NotifierList, Registry};
    pub use crashkit_panic_path::{
        DumpAttempt, FinalChoice, Kernel, PanicConfig, Progress, panic, panic_in_exception,
    };
    pub use crashkit_record::CrashRecord;
    pub use crashkit_shootdown::Shootdown;
    pub use x86_64::structures::idt::InterruptDescriptorTable;
}
