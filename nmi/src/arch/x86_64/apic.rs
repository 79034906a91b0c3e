//! Local APIC: the parts NMIs need, in xAPIC (MMIO) and x2APIC (MSR) mode.
//!
//! crashkit needs four things from each CPU's local APIC: its ID (which CPU is
//! running), enabling it, routing LINT1 to NMI or masking it (LINT1 is where
//! QEMU's `inject-nmi` and a board's NMI button arrive; which CPUs take them
//! is the kernel's [`ExternalNmi`] choice), and NMI IPIs to one CPU or to
//! every CPU but the sender. Nothing else in the local vector table is
//! touched while the kernel runs: LINT0 (where firmware leaves the 8259 PIC
//! in virtual-wire mode), the timer, the error and the performance-counter
//! entries are the kernel's. The one exception is the hand-over to a capture
//! kernel, which shuts the panicking CPU's APIC down
//! ([`LocalApic::shut_down`]).
//! The file has two halves: pure encodings (register numbers, ICR and
//! register values), unit-tested on the host against tables written from the
//! SDM; then [`LocalApic`], the only code that touches the hardware,
//! exercised under QEMU by the kernel tests.
//!
//! # Hardware facts relied on (Intel SDM vol. 3A, chapter 10 as numbered in
//! the editions of 2011-2022; current editions number the APIC chapter 11,
//! so "10.12.1.2" there reads "11.12.1.2")
//! - The registers used, by xAPIC MMIO offset / x2APIC MSR (table 10-1,
//!   table 10-6): ID 0x020 / 0x802, spurious-interrupt vector 0x0F0 /
//!   0x80F, ICR 0x300 and 0x310 / 0x830 (one 64-bit MSR), LVT LINT1 0x360 /
//!   0x836. (0x350 / 0x835 is LVT LINT0, which crashkit touches only to mask
//!   it at the hand-over.) The shutdown also writes the LVT timer 0x320,
//!   thermal 0x330, performance counters 0x340, error 0x370 and the timer's
//!   initial count 0x380 (MSRs 0x832-0x838).
//! - xAPIC registers are 32 bits wide, 16-byte aligned in a 4 KiB MMIO page,
//!   and must be accessed with aligned 32-bit loads and stores (10.4.1); the
//!   page is mapped uncacheable, so its accesses are not reordered with
//!   other stores (10.12.3, note on the MMIO interface).
//! - In x2APIC mode each register is an MSR at `0x800 + (MMIO offset >> 4)`
//!   (10.12.1.2), and the ICR is the single 64-bit MSR `0x830` (10.12.9).
//! - ICR: vector in bits 0-7, delivery mode in 8-10 (NMI = `0b100`), level in
//!   14 (must be 1 except for INIT de-assert), trigger mode in 15 (edge = 0),
//!   destination shorthand in 18-19 (`0b11` = all excluding self), delivery
//!   status in 12 (xAPIC only); the destination is ICR bits 56-63 in xAPIC
//!   mode (bits 24-31 of the high register) and bits 32-63 in x2APIC mode.
//!   Writing the low word (xAPIC) or the MSR (x2APIC) sends the IPI (10.6.1).
//!   The all-ones destination is the broadcast address (10.6.2.1, 10.12.9),
//!   so it never names one CPU. NMI with the "self" shorthand is not a valid
//!   combination (10.6.1, table 10-3): a self-NMI uses an explicit ID.
//! - A WRMSR to an x2APIC register is not serializing and may complete
//!   before earlier stores are globally visible; `mfence; lfence` before it
//!   prevents that (10.12.3).
//! - IA32_APIC_BASE (MSR `0x1b`): bit 11 global enable, bit 10 x2APIC mode.
//!   x2APIC mode is reachable only from xAPIC mode; "disabled" to x2APIC and
//!   x2APIC back to xAPIC raise #GP (10.12.5).
//!
//! # Limitations
//! - xAPIC's ICR is two registers. If an NMI arrives between the two writes of
//!   [`LocalApic::send_nmi`] and its handler sends an IPI and then *returns*,
//!   the interrupted send goes to the handler's destination. crashkit's
//!   handlers that send IPIs (the panic path) do not return; an integrator's
//!   handler that sends IPIs and returns must accept the risk or use x2APIC.
//!   [`LocalApic::send_nmi_all_but_self`] ignores the high register and is
//!   immune.
//! - Physical destination mode only; no EOI (NMIs need none); no timer.

use core::arch::asm;
use core::ptr;
use core::sync::atomic::{Ordering, compiler_fence};

use x86_64::registers::model_specific::Msr;

use crate::CpuIndex;

// ---------------------------------------------------------------------------
// Pure encodings (host-tested).
// ---------------------------------------------------------------------------

/// Local APIC registers used here, by xAPIC MMIO offset (SDM 10.4.1, table
/// 10-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Register {
    /// Local APIC ID (10.4.6).
    Id = 0x20,
    /// Spurious-interrupt vector register, holds the software enable (10.9).
    SpuriousVector = 0xF0,
    /// ICR bits 0-31 (xAPIC), the whole ICR as MSR 0x830 (x2APIC).
    InterruptCommandLow = 0x300,
    /// ICR bits 32-63 (xAPIC only).
    InterruptCommandHigh = 0x310,
    /// LVT LINT1 (10.5.1, figure 10-8). Not 0x350: that is LINT0.
    LvtLint1 = 0x360,
    /// LVT timer (10.5.1); written only by [`LocalApic::shut_down`].
    LvtTimer = 0x320,
    /// LVT thermal sensor; only by `shut_down`.
    LvtThermal = 0x330,
    /// LVT performance-monitoring counters; only by `shut_down`.
    LvtPerformance = 0x340,
    /// LVT LINT0; only by `shut_down`.
    LvtLint0 = 0x350,
    /// LVT error; only by `shut_down`.
    LvtError = 0x370,
    /// Timer initial count (10.5.4): 0 stops the timer; only by
    /// `shut_down`.
    TimerInitialCount = 0x380,
}

impl Register {
    /// Every register this file reaches (the SDM table test walks it).
    #[cfg(test)]
    const ALL: [Register; 11] = [
        Register::Id,
        Register::SpuriousVector,
        Register::InterruptCommandLow,
        Register::InterruptCommandHigh,
        Register::LvtLint1,
        Register::LvtTimer,
        Register::LvtThermal,
        Register::LvtPerformance,
        Register::LvtLint0,
        Register::LvtError,
        Register::TimerInitialCount,
    ];

    /// The LVT entries [`LocalApic::shut_down`] masks, in the order it
    /// masks them.
    const SHUT_DOWN_LVT: [Register; 6] = [
        Register::LvtTimer,
        Register::LvtThermal,
        Register::LvtPerformance,
        Register::LvtError,
        Register::LvtLint0,
        Register::LvtLint1,
    ];
}

/// First x2APIC MSR (SDM 10.12.1.2).
const X2APIC_MSR_BASE: u32 = 0x800;

impl Register {
    /// Offset in the xAPIC MMIO page.
    const fn mmio_offset(self) -> usize {
        self as usize
    }

    /// The x2APIC MSR: `0x800 + (offset >> 4)` (SDM 10.12.1.2).
    const fn msr(self) -> u32 {
        X2APIC_MSR_BASE + (self as usize >> 4) as u32
    }
}

/// ICR delivery mode NMI, bits 8-10 = `0b100` (SDM 10.6.1). Also the LVT
/// delivery mode NMI (10.5.1).
const DELIVERY_MODE_NMI: u32 = 0b100 << 8;
/// ICR level: assert (bit 14); required for every mode but INIT de-assert.
const LEVEL_ASSERT: u32 = 1 << 14;
/// xAPIC ICR delivery status (bit 12): 1 = send pending.
const DELIVERY_STATUS_PENDING: u32 = 1 << 12;
/// ICR destination shorthand "all excluding self" (bits 18-19 = `0b11`).
const SHORTHAND_ALL_EXCLUDING_SELF: u32 = 0b11 << 18;
/// Position of the destination field in the xAPIC ICR high register.
const XAPIC_DESTINATION_SHIFT: u32 = 24;
/// Broadcast destination in xAPIC physical mode (SDM 10.6.2.1).
const XAPIC_BROADCAST: u32 = 0xFF;
/// Broadcast destination in x2APIC physical mode (SDM 10.12.9).
const X2APIC_BROADCAST: u32 = u32::MAX;
/// SVR bit 8: APIC software enable (SDM 10.9).
const SOFTWARE_ENABLE: u32 = 1 << 8;
/// Spurious-interrupt vector: 0xFF (its low four bits are hard-wired to 1 on
/// some older parts, so all-ones works everywhere).
const SPURIOUS_VECTOR: u32 = 0xFF;
/// IA32_APIC_BASE MSR (SDM 10.4.4).
const IA32_APIC_BASE: u32 = 0x1B;
/// IA32_APIC_BASE bit 11: APIC global enable (EN).
const APIC_BASE_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE bit 10: x2APIC mode (EXTD).
const APIC_BASE_X2APIC: u64 = 1 << 10;
/// How many reads of the xAPIC delivery status to wait for it to clear,
/// before and after a send. An IPI is accepted within microseconds; each
/// read of the uncacheable page costs about 100 ns or more, so this allows
/// at least 10 ms before [`ApicError::DeliveryTimeout`].
const ICR_IDLE_SPINS: u32 = 100_000;

/// ICR low word of an NMI to an explicit physical destination: delivery mode
/// NMI, level assert, edge, physical, no shorthand (0x4400).
const NMI_ICR_LOW: u32 = DELIVERY_MODE_NMI | LEVEL_ASSERT;
/// ICR low word of an NMI to all excluding self (0xC4400).
const NMI_ALL_EXCLUDING_SELF_ICR_LOW: u32 = NMI_ICR_LOW | SHORTHAND_ALL_EXCLUDING_SELF;
/// LVT value routing a local interrupt pin to NMI: delivery mode NMI,
/// unmasked (bit 16 clear), edge, active high; the vector is ignored.
const LVT_NMI: u32 = DELIVERY_MODE_NMI;
/// LVT mask bit (bit 16, figure 10-8): the pin's interrupts are not
/// delivered.
const LVT_MASKED: u32 = 1 << 16;

/// Which CPUs take external NMIs: those that arrive on the LINT1 pin (an
/// NMI button, a board's watchdog or IOCHK/SERR line through the chipset,
/// QEMU's `inject-nmi`, a hypervisor's NMI). The model is Linux's
/// `apic_extnmi=` boot option (`bsp`, `all`, `none`), with the same default.
///
/// [`LocalApic::route_external_nmi`] programs LVT LINT1 from it: as NMI,
/// unmasked, on the CPUs it names, and as NMI but masked on the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExternalNmi {
    /// Only the boot CPU (index 0) takes them: one CPU handles the event,
    /// as on Linux by default; the others never see it.
    #[default]
    BootCpu,
    /// Every CPU takes each one (each then runs its handler chain): useful
    /// to stop a machine whose boot CPU is hung with NMIs blocked.
    All,
    /// No CPU takes them (LINT1 masked everywhere): external NMIs are
    /// ignored, e.g. a noisy board or a hypervisor's NMI used as a debug
    /// trigger elsewhere.
    None,
}

impl ExternalNmi {
    /// Whether the CPU with dense index `cpu` (0 is the boot CPU) takes
    /// external NMIs.
    pub const fn reaches(self, cpu: CpuIndex) -> bool {
        match self {
            ExternalNmi::BootCpu => cpu.0 == 0,
            ExternalNmi::All => true,
            ExternalNmi::None => false,
        }
    }

    /// The LVT LINT1 value for the CPU with dense index `cpu`: delivery
    /// mode NMI, edge, active high, masked unless the setting names it.
    const fn lint1_value(self, cpu: CpuIndex) -> u32 {
        if self.reaches(cpu) {
            LVT_NMI
        } else {
            LVT_NMI | LVT_MASKED
        }
    }
}

/// The two xAPIC ICR words of one IPI, written high first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct XApicIcr {
    high: u32,
    low: u32,
}

/// xAPIC ICR for an NMI to `apic_id`; `None` if the ID does not fit the 8-bit
/// destination or is the broadcast ID.
const fn xapic_nmi_icr(apic_id: u32) -> Option<XApicIcr> {
    if apic_id >= XAPIC_BROADCAST {
        return None;
    }
    Some(XApicIcr {
        high: apic_id << XAPIC_DESTINATION_SHIFT,
        low: NMI_ICR_LOW,
    })
}

/// x2APIC ICR for an NMI to `apic_id`; `None` for the broadcast ID.
const fn x2apic_nmi_icr(apic_id: u32) -> Option<u64> {
    if apic_id == X2APIC_BROADCAST {
        return None;
    }
    Some(((apic_id as u64) << 32) | NMI_ICR_LOW as u64)
}

/// The APIC ID in an xAPIC ID register value (bits 24-31, SDM 10.4.6).
const fn xapic_id(id_register: u32) -> u32 {
    id_register >> XAPIC_DESTINATION_SHIFT
}

/// `svr` with the software enable set and the spurious vector 0xFF; other
/// bits (focus checking, EOI-broadcast suppression) kept.
const fn svr_enabled(svr: u32) -> u32 {
    (svr & !0xFF) | SOFTWARE_ENABLE | SPURIOUS_VECTOR
}

/// The IA32_APIC_BASE writes that bring the APIC from `base` to x2APIC mode:
/// first to xAPIC mode if it is disabled, then to x2APIC. `None` entries are
/// writes not needed.
const fn x2apic_transition(base: u64) -> [Option<u64>; 2] {
    let enabled = base | APIC_BASE_ENABLE;
    let first = if base & APIC_BASE_ENABLE == 0 {
        // Disabled -> xAPIC; a direct disabled -> x2APIC write raises #GP.
        // (EXTD cannot be set here: EN = 0, EXTD = 1 is unreachable.)
        Some(enabled & !APIC_BASE_X2APIC)
    } else {
        None
    };
    let second = if base & APIC_BASE_X2APIC == 0 {
        Some(enabled | APIC_BASE_X2APIC)
    } else {
        None
    };
    [first, second]
}

// ---------------------------------------------------------------------------
// Hardware access.
// ---------------------------------------------------------------------------

/// Why an IPI was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicError {
    /// The APIC ID cannot be a single destination in this mode: 0xFF or more
    /// in xAPIC mode (8-bit field, 0xFF is broadcast), 0xFFFF_FFFF (broadcast)
    /// in x2APIC mode.
    DestinationOutOfRange(u32),
    /// xAPIC only: the ICR delivery status stayed "send pending" for the
    /// whole bounded wait, either before the write (a previous IPI was not
    /// accepted; nothing was sent) or after it.
    DeliveryTimeout,
}

impl core::fmt::Display for ApicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DestinationOutOfRange(apic_id) => write!(
                f,
                "APIC ID {apic_id:#x} cannot be a single IPI destination in this APIC mode"
            ),
            Self::DeliveryTimeout => {
                f.write_str("the ICR's delivery status stayed \"send pending\" for the whole wait")
            }
        }
    }
}

impl core::error::Error for ApicError {}

/// The calling CPU's local APIC, in the mode the kernel put it in.
///
/// One value serves every CPU: in xAPIC mode each CPU reaches its own APIC at
/// the same address, in x2APIC mode through the same MSRs. Constructing one
/// is `unsafe` because its methods then access the hardware without further
/// checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalApic {
    mode: Mode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    XApic { base: usize },
    X2Apic,
}

impl LocalApic {
    /// A local APIC in xAPIC mode, reached through the MMIO page mapped at
    /// virtual address `base`.
    ///
    /// # Safety
    /// For as long as this value or a copy of it is used, on every CPU that
    /// calls one of its methods:
    /// 1. the code runs in ring 0 and the local APIC is globally enabled in
    ///    xAPIC mode (not x2APIC);
    /// 2. `base` is a 4 KiB-aligned virtual address at which the 4 KiB of
    ///    the APIC's physical page (IA32_APIC_BASE, usually `0xFEE0_0000`)
    ///    are mapped uncacheable (PCD and PWT, or a PAT entry selecting
    ///    UC), and those 4 KiB are not used as ordinary memory by anything.
    ///    The page size does not matter: a 2 MiB or 1 GiB uncacheable page
    ///    that contains the APIC page at the same offset satisfies this (the
    ///    test kernels map their top GiB so); a write-back or
    ///    write-combining mapping does not.
    pub const unsafe fn xapic(base: usize) -> Self {
        Self {
            mode: Mode::XApic { base },
        }
    }

    /// A local APIC in x2APIC mode, reached through MSRs.
    ///
    /// # Safety
    /// For as long as this value or a copy of it is used, every CPU that calls
    /// one of its methods runs in ring 0 with its local APIC in x2APIC mode
    /// (see [`enable_x2apic_mode`]); otherwise the MSR accesses raise #GP.
    pub const unsafe fn x2apic() -> Self {
        Self { mode: Mode::X2Apic }
    }

    /// Whether this is the x2APIC (MSR) interface.
    pub const fn is_x2apic(&self) -> bool {
        matches!(self.mode, Mode::X2Apic)
    }

    /// Whether `apic_id` can be the destination of [`send_nmi`](Self::send_nmi)
    /// in this mode (not the broadcast ID, and 8 bits in xAPIC mode).
    pub const fn is_valid_destination(&self, apic_id: u32) -> bool {
        match self.mode {
            Mode::XApic { .. } => xapic_nmi_icr(apic_id).is_some(),
            Mode::X2Apic => x2apic_nmi_icr(apic_id).is_some(),
        }
    }

    /// The calling CPU's APIC ID (xAPIC: 8 bits from register 0x20; x2APIC:
    /// the 32-bit ID from MSR 0x802).
    pub fn id(&self) -> u32 {
        let value = self.read(Register::Id);
        match self.mode {
            Mode::XApic { .. } => xapic_id(value),
            Mode::X2Apic => value,
        }
    }

    /// Software-enable the calling CPU's APIC with spurious vector 0xFF (SVR
    /// bit 8). The kernel must have an IDT entry for vector 0xFF if it ever
    /// enables interrupts; spurious interrupts need no EOI.
    pub fn enable(&self) {
        let svr = self.read(Register::SpuriousVector);
        self.write(Register::SpuriousVector, svr_enabled(svr));
    }

    /// Program the calling CPU's LVT LINT1 (register 0x360, MSR 0x836) for
    /// `setting`, this CPU being dense index `cpu`: delivery mode NMI, edge,
    /// unmasked (0x400) if the setting names the CPU, masked (0x10400)
    /// otherwise. The rest of the local vector table (LINT0 above all, where
    /// firmware leaves the PIC) is left as it is.
    pub fn route_external_nmi(&self, setting: ExternalNmi, cpu: CpuIndex) {
        self.write(Register::LvtLint1, setting.lint1_value(cpu));
    }

    /// Shut the calling CPU's APIC down before the hand-over to a capture
    /// kernel (docs/kdump.md, "At the crash"; Linux's `lapic_shutdown` does
    /// the same for kexec): the timer stopped (initial count 0), every LVT
    /// entry masked (timer, thermal, performance counters, error, LINT0,
    /// LINT1, each keeping its other bits), then the APIC software-disabled
    /// (SVR bit 8 clear). The APIC stays globally enabled in the same mode,
    /// so the capture kernel finds it where the crashed kernel had it. A
    /// disabled APIC still takes NMI, INIT and SIPI messages (10.4.7.2), so
    /// the capture kernel must install its IDT before anything can send it
    /// one. Pending fixed interrupts stay pending; none is delivered again
    /// until the capture kernel enables the APIC.
    pub fn shut_down(&self) {
        self.write(Register::TimerInitialCount, 0);
        for register in Register::SHUT_DOWN_LVT {
            let value = self.read(register);
            self.write(register, value | LVT_MASKED);
        }
        let svr = self.read(Register::SpuriousVector);
        self.write(Register::SpuriousVector, svr & !SOFTWARE_ENABLE);
    }

    /// Send an NMI to the CPU with APIC ID `apic_id` (physical destination;
    /// the calling CPU's own ID is allowed).
    ///
    /// xAPIC: waits (bounded) for the ICR to be idle, writes the destination
    /// then the command, and waits (bounded) for acceptance. x2APIC: one MSR
    /// write, nothing to wait for. Stores the caller made before the call are
    /// visible to the target's NMI handler in both modes.
    pub fn send_nmi(&self, apic_id: u32) -> Result<(), ApicError> {
        match self.mode {
            Mode::XApic { .. } => match xapic_nmi_icr(apic_id) {
                Some(icr) => self.send_xapic(icr),
                None => Err(ApicError::DestinationOutOfRange(apic_id)),
            },
            Mode::X2Apic => match x2apic_nmi_icr(apic_id) {
                Some(icr) => {
                    self.write_x2apic_icr(icr);
                    Ok(())
                }
                None => Err(ApicError::DestinationOutOfRange(apic_id)),
            },
        }
    }

    /// Send an NMI to every CPU but the caller (ICR shorthand "all excluding
    /// self"). It reaches every local APIC in the system, including CPUs the
    /// caller never registered anywhere.
    pub fn send_nmi_all_but_self(&self) -> Result<(), ApicError> {
        match self.mode {
            Mode::XApic { .. } => self.send_xapic(XApicIcr {
                high: 0,
                low: NMI_ALL_EXCLUDING_SELF_ICR_LOW,
            }),
            Mode::X2Apic => {
                self.write_x2apic_icr(u64::from(NMI_ALL_EXCLUDING_SELF_ICR_LOW));
                Ok(())
            }
        }
    }

    fn send_xapic(&self, icr: XApicIcr) -> Result<(), ApicError> {
        self.wait_for_idle_icr()?;
        // The caller's earlier stores (e.g. the shootdown's target state)
        // must not be sunk by the compiler past the ICR writes: volatile
        // accesses are ordered only among themselves, so fence the compiler
        // here. The hardware keeps them in order already: x86 does not
        // reorder stores with stores, and accesses to the uncacheable APIC
        // page are serializing (SDM 10.12.3 note).
        compiler_fence(Ordering::SeqCst);
        self.write(Register::InterruptCommandHigh, icr.high);
        // Writing the low word sends the IPI (SDM 10.6.1).
        self.write(Register::InterruptCommandLow, icr.low);
        self.wait_for_idle_icr()
    }

    fn wait_for_idle_icr(&self) -> Result<(), ApicError> {
        for _ in 0..ICR_IDLE_SPINS {
            if self.read(Register::InterruptCommandLow) & DELIVERY_STATUS_PENDING == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(ApicError::DeliveryTimeout)
    }

    fn write_x2apic_icr(&self, icr: u64) {
        // SAFETY: `mfence; lfence` touch no memory or register state. The
        // asm is deliberately not `nomem`: the compiler must then assume it
        // reads memory and cannot sink the caller's earlier stores past it,
        // and as a side-effecting asm it stays before the WRMSR below. The
        // fences make those stores globally visible before the WRMSR, which
        // x2APIC does not otherwise guarantee (SDM 10.12.3).
        unsafe { asm!("mfence", "lfence", options(nostack, preserves_flags)) };
        let mut msr = Msr::new(Register::InterruptCommandLow.msr());
        // SAFETY: `x2apic()`'s contract: ring 0 and x2APIC mode, so MSR 0x830
        // exists and writing it only sends the IPI encoded by
        // `x2apic_nmi_icr` or the all-excluding-self constant. A single
        // 64-bit write, so an NMI on this CPU cannot tear it.
        unsafe { msr.write(icr) };
    }

    /// Read a 32-bit register of the calling CPU's APIC.
    fn read(&self, register: Register) -> u32 {
        match self.mode {
            Mode::XApic { base } => {
                let address = base.wrapping_add(register.mmio_offset());
                // SAFETY: `xapic()`'s contract: `base` maps this CPU's APIC
                // page uncacheable, so `address` is a 16-byte-aligned APIC
                // register, read with one aligned 32-bit volatile load as SDM
                // 10.4.1 requires. The registers read here (ID, SVR, ICR low)
                // have no read side effects. Each CPU reaches its own APIC
                // through the same address, so other CPUs never touch this
                // CPU's registers; code interrupting us on this CPU only
                // performs the same reads and the writes listed in `write`.
                unsafe { ptr::read_volatile(ptr::with_exposed_provenance::<u32>(address)) }
            }
            Mode::X2Apic => {
                let msr = Msr::new(register.msr());
                // SAFETY: `x2apic()`'s contract: ring 0 and x2APIC mode, so
                // the MSR exists; reading ID, SVR or LVT MSRs has no side
                // effect. MSRs are per CPU.
                let value = unsafe { msr.read() };
                // These registers are 32 bits; the upper half is reserved.
                value as u32
            }
        }
    }

    /// Write a 32-bit register of the calling CPU's APIC (x2APIC ICR writes go
    /// through `write_x2apic_icr`).
    fn write(&self, register: Register, value: u32) {
        match self.mode {
            Mode::XApic { base } => {
                let address = base.wrapping_add(register.mmio_offset());
                // SAFETY: as in `read`: an aligned 32-bit volatile store to
                // this CPU's own APIC register. The values written are the
                // encodings above (SVR enable or disable, LVT NMI or
                // masked, timer count 0, ICR words), none of which affects
                // memory. Interrupting code on this CPU may
                // write the same registers; the one harmful interleaving (ICR
                // high rewritten between our two ICR writes) is documented in
                // the module's limitations.
                unsafe {
                    ptr::write_volatile(ptr::with_exposed_provenance_mut::<u32>(address), value)
                }
            }
            Mode::X2Apic => {
                let mut msr = Msr::new(register.msr());
                // SAFETY: as in `read`; writing SVR, an LVT entry or the
                // timer count changes only this CPU's interrupt routing.
                unsafe { msr.write(u64::from(value)) };
            }
        }
    }
}

/// Whether the CPU supports x2APIC mode (CPUID.01H:ECX bit 21).
pub fn x2apic_supported() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

/// Switch the calling CPU's local APIC to x2APIC mode, going through xAPIC
/// mode if it is disabled (SDM 10.12.5); nothing happens if it is in x2APIC
/// mode already. Must run on every CPU that will use a [`LocalApic::x2apic`].
///
/// # Safety
/// 1. Ring 0, and [`x2apic_supported`] is true; otherwise the write raises
///    #GP.
/// 2. No [`LocalApic::xapic`] value is used on this CPU afterwards: in x2APIC
///    mode the MMIO page no longer reaches the APIC.
/// 3. Nothing else on this CPU writes IA32_APIC_BASE meanwhile (an
///    interrupting write between this function's read and write is lost).
pub unsafe fn enable_x2apic_mode() {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: caller's duty (1), ring 0; reading IA32_APIC_BASE has no side
    // effect.
    let base = unsafe { msr.read() };
    for value in x2apic_transition(base).into_iter().flatten() {
        // SAFETY: caller's duties (1)-(3). `x2apic_transition` keeps the base
        // address and reserved bits as read and produces only the valid
        // transitions disabled -> xAPIC -> x2APIC.
        unsafe { msr.write(value) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local APIC's registers as the SDM lists them, written from the
    /// manual (not from the code above): Intel 64 and IA-32 Architectures
    /// Software Developer's Manual, Volume 3A, chapter 10 "Advanced
    /// Programmable Interrupt Controller (APIC)" in the editions of
    /// 2011-2022 (volume 3 split into 3A-3D): table 10-1 "Local APIC
    /// Register Address Map" (the MMIO offsets from FEE0 0000H), table 10-6
    /// "Local APIC Register Address Map Supported by x2APIC" (the MSRs) and
    /// figure 10-8 "Local Vector Table (LVT)". The 2009 edition (order
    /// number 253668-032US) calls the x2APIC map table 10-3; current
    /// editions number the chapter 11 (tables 11-1 and 11-6). The titles
    /// and contents are the same in all. `None`: no MSR (the ICR's high
    /// half is merged into MSR 830H; 831H is reserved).
    const SDM_APIC_REGISTERS: &[(&str, usize, Option<u32>)] = &[
        ("Local APIC ID Register", 0x020, Some(0x802)),
        ("Local APIC Version Register", 0x030, Some(0x803)),
        ("Task Priority Register (TPR)", 0x080, Some(0x808)),
        ("Processor Priority Register (PPR)", 0x0A0, Some(0x80A)),
        ("EOI Register", 0x0B0, Some(0x80B)),
        ("Logical Destination Register", 0x0D0, Some(0x80D)),
        ("Spurious Interrupt Vector Register", 0x0F0, Some(0x80F)),
        ("Error Status Register", 0x280, Some(0x828)),
        ("LVT CMCI Register", 0x2F0, Some(0x82F)),
        (
            "Interrupt Command Register (ICR) bits 0-31",
            0x300,
            Some(0x830),
        ),
        ("Interrupt Command Register (ICR) bits 32-63", 0x310, None),
        ("LVT Timer Register", 0x320, Some(0x832)),
        ("LVT Thermal Sensor Register", 0x330, Some(0x833)),
        (
            "LVT Performance Monitoring Counters Register",
            0x340,
            Some(0x834),
        ),
        ("LVT LINT0 Register", 0x350, Some(0x835)),
        ("LVT LINT1 Register", 0x360, Some(0x836)),
        ("LVT Error Register", 0x370, Some(0x837)),
        ("Initial Count Register (for Timer)", 0x380, Some(0x838)),
        ("Current Count Register (for Timer)", 0x390, Some(0x839)),
        (
            "Divide Configuration Register (for Timer)",
            0x3E0,
            Some(0x83E),
        ),
    ];

    /// The SDM's name of each register this file uses (exhaustive: a new
    /// register must be named here, and so checked).
    fn sdm_name(register: Register) -> &'static str {
        match register {
            Register::Id => "Local APIC ID Register",
            Register::SpuriousVector => "Spurious Interrupt Vector Register",
            Register::InterruptCommandLow => "Interrupt Command Register (ICR) bits 0-31",
            Register::InterruptCommandHigh => "Interrupt Command Register (ICR) bits 32-63",
            Register::LvtLint1 => "LVT LINT1 Register",
            Register::LvtTimer => "LVT Timer Register",
            Register::LvtThermal => "LVT Thermal Sensor Register",
            Register::LvtPerformance => "LVT Performance Monitoring Counters Register",
            Register::LvtLint0 => "LVT LINT0 Register",
            Register::LvtError => "LVT Error Register",
            Register::TimerInitialCount => "Initial Count Register (for Timer)",
        }
    }

    #[test]
    fn every_register_used_is_where_the_sdm_table_puts_it() {
        for register in Register::ALL {
            let name = sdm_name(register);
            let Some(&(_, offset, msr)) = SDM_APIC_REGISTERS.iter().find(|row| row.0 == name)
            else {
                panic!("{register:?}: {name:?} is not in the SDM table");
            };
            assert_eq!(
                register.mmio_offset(),
                offset,
                "{register:?} ({name}): MMIO offset"
            );
            match msr {
                Some(msr) => assert_eq!(register.msr(), msr, "{register:?} ({name}): MSR"),
                // The ICR's high word exists only in xAPIC mode: x2APIC
                // sends go through `write_x2apic_icr` (MSR 830H, 64 bits).
                None => assert_eq!(register, Register::InterruptCommandHigh),
            }
        }
        // The ICR as one 64-bit MSR (10.12.9) is the low register's MSR.
        assert_eq!(Register::InterruptCommandLow.msr(), 0x830);
    }

    #[test]
    fn lint1_is_not_lint0() {
        // The defect this guards against: 0x350 / 0x835 programmed as NMI
        // turned the PIC's virtual-wire interrupts on LINT0 into NMIs.
        assert_ne!(Register::LvtLint1.mmio_offset(), 0x350);
        assert_ne!(Register::LvtLint1.msr(), 0x835);
    }

    /// The hand-over's shutdown masks every LVT entry the SDM's table
    /// lists (10.5.1: timer, thermal, performance counters, LINT0, LINT1,
    /// error; CMCI is left: it exists only where IA32_MCG_CAP says so, and
    /// the capture kernel does not enable machine-check interrupts), and
    /// nothing but the shutdown writes the ones the kernel owns.
    #[test]
    fn shut_down_masks_every_lvt_entry_of_the_sdm_table() {
        let lvt_rows = SDM_APIC_REGISTERS
            .iter()
            .filter(|row| row.0.starts_with("LVT ") && !row.0.contains("CMCI"));
        for &(name, offset, _) in lvt_rows {
            assert!(
                Register::SHUT_DOWN_LVT
                    .iter()
                    .any(|r| r.mmio_offset() == offset),
                "{name} ({offset:#x}) is not masked by shut_down"
            );
        }
        assert_eq!(Register::SHUT_DOWN_LVT.len(), 6);
        // Figure 10-8: the mask is bit 16 in every LVT entry.
        assert_eq!(LVT_MASKED, 0x1_0000);
        // 10.9: SVR bit 8 is the software enable.
        assert_eq!(SOFTWARE_ENABLE, 0x100);
    }

    /// IA32_APIC_BASE as the SDM lists it (vol. 4, table 2-2 "IA-32
    /// Architectural MSRs": 1BH; bit 8 BSP flag, bit 10 enable x2APIC mode,
    /// bit 11 APIC global enable; vol. 3A figure 10-5).
    #[test]
    fn apic_base_msr_and_bits_are_the_sdms() {
        assert_eq!(IA32_APIC_BASE, 0x1B);
        assert_eq!(APIC_BASE_X2APIC, 1 << 10);
        assert_eq!(APIC_BASE_ENABLE, 1 << 11);
    }

    /// LVT bits as figure 10-8 draws them: delivery mode in bits 8-10 (100b
    /// NMI), mask in bit 16 (1 = masked), trigger mode in bit 15 (0 edge),
    /// polarity in bit 13 (0 active high).
    #[test]
    fn lint1_values_follow_the_setting() {
        const NMI_EDGE_HIGH: u32 = 0b100 << 8;
        const MASKED: u32 = 1 << 16;
        for cpu in [0, 1, 7, u32::MAX - 1].map(CpuIndex) {
            let boot = if cpu.0 == 0 {
                NMI_EDGE_HIGH
            } else {
                NMI_EDGE_HIGH | MASKED
            };
            assert_eq!(ExternalNmi::BootCpu.lint1_value(cpu), boot, "cpu {cpu}");
            assert_eq!(
                ExternalNmi::All.lint1_value(cpu),
                NMI_EDGE_HIGH,
                "cpu {cpu}"
            );
            assert_eq!(
                ExternalNmi::None.lint1_value(cpu),
                NMI_EDGE_HIGH | MASKED,
                "cpu {cpu}"
            );
        }
        assert_eq!(ExternalNmi::default(), ExternalNmi::BootCpu);
    }

    #[test]
    fn nmi_icr_words_match_the_sdm_fields() {
        assert_eq!(DELIVERY_MODE_NMI, 0x400);
        assert_eq!(LEVEL_ASSERT, 0x4000);
        assert_eq!(SHORTHAND_ALL_EXCLUDING_SELF, 0xC0000);
        assert_eq!(DELIVERY_STATUS_PENDING, 0x1000);
        assert_eq!(NMI_ICR_LOW, 0x4400);
        assert_eq!(NMI_ALL_EXCLUDING_SELF_ICR_LOW, 0xC4400);
        assert_eq!(LVT_NMI, 0x400);
    }

    #[test]
    fn xapic_nmi_icr_puts_the_id_in_bits_24_to_31_of_the_high_word() {
        let icr = xapic_nmi_icr(3).unwrap();
        assert_eq!(
            icr,
            XApicIcr {
                high: 0x0300_0000,
                low: 0x4400
            }
        );
        assert_eq!(xapic_nmi_icr(0xFE).unwrap().high, 0xFE00_0000);
        assert_eq!(xapic_nmi_icr(0).unwrap().high, 0);
    }

    #[test]
    fn xapic_nmi_icr_rejects_broadcast_and_wide_ids() {
        assert_eq!(xapic_nmi_icr(0xFF), None);
        assert_eq!(xapic_nmi_icr(0x100), None);
        assert_eq!(xapic_nmi_icr(u32::MAX), None);
    }

    #[test]
    fn x2apic_nmi_icr_puts_the_id_in_bits_32_to_63() {
        assert_eq!(x2apic_nmi_icr(0x1234), Some(0x0000_1234_0000_4400));
        assert_eq!(x2apic_nmi_icr(0xFF), Some(0x0000_00FF_0000_4400));
        assert_eq!(x2apic_nmi_icr(u32::MAX - 1), Some(0xFFFF_FFFE_0000_4400));
        assert_eq!(x2apic_nmi_icr(u32::MAX), None);
    }

    #[test]
    fn xapic_id_is_the_top_byte() {
        assert_eq!(xapic_id(0x0700_0000), 7);
        assert_eq!(xapic_id(0xFF00_0000), 0xFF);
        assert_eq!(xapic_id(0x00FF_FFFF), 0);
    }

    #[test]
    fn svr_enable_sets_bit_8_and_vector_0xff_and_keeps_other_bits() {
        assert_eq!(svr_enabled(0), 0x1FF);
        assert_eq!(svr_enabled(0xFF), 0x1FF);
        assert_eq!(svr_enabled(0x0000_100F), 0x0000_11FF);
    }

    #[test]
    fn x2apic_transition_goes_through_xapic_mode() {
        // Enabled BSP in xAPIC mode at the default base: one write.
        assert_eq!(x2apic_transition(0xFEE0_0900), [None, Some(0xFEE0_0D00)]);
        // Disabled: enable first, then x2APIC.
        assert_eq!(
            x2apic_transition(0xFEE0_0000),
            [Some(0xFEE0_0800), Some(0xFEE0_0C00)]
        );
        // Already in x2APIC mode: nothing.
        assert_eq!(x2apic_transition(0xFEE0_0C00), [None, None]);
    }

    #[test]
    fn destination_validity_depends_on_the_mode() {
        // SAFETY: these values are only asked about encodings; no method
        // that touches the hardware is called.
        let (xapic, x2apic) = unsafe { (LocalApic::xapic(0), LocalApic::x2apic()) };
        assert!(!xapic.is_x2apic());
        assert!(x2apic.is_x2apic());
        assert!(xapic.is_valid_destination(0xFE));
        assert!(!xapic.is_valid_destination(0xFF));
        assert!(x2apic.is_valid_destination(0x1_0000));
        assert!(!x2apic.is_valid_destination(u32::MAX));
    }
}
