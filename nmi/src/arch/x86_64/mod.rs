//! x86_64 support: NMI entry stubs, local APIC NMIs, and [`X86Platform`].
//!
//! What runs where:
//! - [`entry`]: naked entry stubs (generated in the kernel by
//!   [`nmi_entry_stub!`](crate::nmi_entry_stub) and
//!   [`nmi_entry_stub_with_error_code!`](crate::nmi_entry_stub_with_error_code))
//!   that the CPU enters through the IDT, usually on an IST stack, in ring 0.
//!   They build a [`RegisterFrame`](crate::RegisterFrame) and call a Rust
//!   handler in NMI context. [`entry::install`] writes an IDT entry at boot.
//! - [`apic`]: [`LocalApic`], the calling CPU's local APIC in xAPIC (MMIO) or
//!   x2APIC (MSR) mode: its ID, enabling it, LINT1 as NMI (or masked, per
//!   [`ExternalNmi`]), NMI IPIs. Set-up
//!   methods run once per CPU at bring-up; `id` and the IPI methods run
//!   anywhere, NMI context included.
//! - [`X86Platform`]: the [`Platform`](crate::Platform) the rest of crashkit
//!   uses: CPU index ↔ APIC ID table, TSC clock, NMIs through the APIC,
//!   parking (`cli; hlt`). A `static`, filled by the kernel during bring-up.
//! - `capture`: [`RegisterFrame::capture`](crate::RegisterFrame::capture),
//!   the calling CPU's own registers at the capture point (for a CPU that
//!   stops itself, and for the panic owner); runs in any privilege level.
//! - `control`: [`ControlRegisters::capture`](crate::ControlRegisters::capture),
//!   the calling CPU's control registers, FS/GS bases and selectors (ring 0).
//!
//! What is tested where: on the host (`cargo test`), the ICR and register
//! encodings, the x2APIC mode transition, the CPU table, the TSC conversion,
//! IDT entry installation, the register capture, and the entry stubs
//! themselves, run in user mode with a hand-built interrupt frame and a real
//! `iretq`. Only a bare-metal
//! kernel under QEMU can exercise the rest: delivery through an IDT gate and
//! an IST stack, and every APIC access (MMIO and MSRs are ring-0 only).
//!
//! The limits of the stubs (no `swapgs`, no NMI-nesting protection, no FPU
//! state) are listed in [`entry`]; those of the APIC code in [`apic`].

pub mod apic;
mod capture;
mod control;
pub mod entry;
mod platform;

pub use apic::{ApicError, ExternalNmi, LocalApic};
pub use control::{MSR_EFER, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE};
pub use platform::{RegisterCpuError, X86Platform};
