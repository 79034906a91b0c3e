//! [`KernelState`]: every static crashkit needs in a kernel but the crash
//! record, in one value, with the behaviour the kernel's glue delegates to.
//!
//! [`kernel!`](crate::kernel) declares one `KernelState` as a static next to
//! the record (which has a section of its own, so it cannot share a static);
//! a kernel that writes its glue by hand can declare one too.
//!
//! | field | what |
//! |-------|------|
//! | platform | a [`Platform`]: CPU identity, clock, NMIs, park. On x86_64 the [`X86Platform`] (TSC clock, local APIC), usable from the first instruction (its boot phase, see [`crashkit_nmi::arch::x86_64`]'s platform docs); in the host simulation, `crashkit-sim`'s |
//! | contexts | per-CPU NMI-context trackers: the depth the record and the shootdown's poll need |
//! | chain | the NMI handler chain; the panic path puts the stop handler in its emergency slot |
//! | queues | the queued spinlock's per-CPU nodes (the kernel's lock domain) |
//! | shootdown | the NMI shootdown over the record's CPU slots |
//! | notifiers | the panic notifier registry |
//! | progress | the panic path's progress |
//!
//! Everything is generic over the platform but what only x86_64 has: the
//! APIC's bring-up ([`KernelState::cpu_online`]), the TSC frequency, and the
//! entry stubs and IDT gates ([`EntryStubs`], [`install_entries`]).

use crashkit_nmi::arch::x86_64::entry::{self, InstallError};
use crashkit_nmi::arch::x86_64::{ExternalNmi, LocalApic, RegisterCpuError, X86Platform};
use crashkit_nmi::lock::CpuQueue;
use crashkit_nmi::{
    ContextKind, CpuContexts, CpuIndex, HandlerChain, NmiEvent, NmiOutcome, Platform,
    RegisterFrame, UnknownNmiPolicy,
};
use crashkit_notifiers::{BodyResult, EscalationPolicy, Notifier, PanicContext, Registry};
use crashkit_panic_path::{Kernel, Progress};
use crashkit_record::CpuSlot;
use crashkit_shootdown::Shootdown;
use x86_64::structures::idt::InterruptDescriptorTable;

/// crashkit's statics for a kernel of up to `CPUS` CPUs, `HANDLERS` NMI
/// handlers and `NOTIFIERS` panic notifiers, on platform `P` (x86_64's
/// unless named; the record is separate: see the module docs).
#[derive(Debug)]
pub struct KernelState<
    const CPUS: usize,
    const HANDLERS: usize,
    const NOTIFIERS: usize,
    P = X86Platform<CPUS>,
> {
    platform: P,
    contexts: CpuContexts<CPUS>,
    chain: HandlerChain<HANDLERS, CPUS>,
    queues: [CpuQueue; CPUS],
    shootdown: Shootdown,
    notifiers: Registry<NOTIFIERS>,
    progress: Progress,
}

/// The IST slots (zero-based: 0 is the TSS's IST1) of the three entries
/// crashkit installs. Each must hold a stack of its own (NMI, #DF and #MC
/// can interrupt each other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IstSlots {
    /// The NMI entry's stack.
    pub nmi: u16,
    /// The double-fault entry's stack.
    pub double_fault: u16,
    /// The machine-check entry's stack.
    pub machine_check: u16,
}

impl IstSlots {
    /// IST1, IST2 and IST3 (zero-based 0, 1, 2) for NMI, #DF and #MC: what
    /// a kernel without other IST users gives them.
    pub const DEFAULT: Self = Self {
        nmi: 0,
        double_fault: 1,
        machine_check: 2,
    };
}

/// The three entry stubs [`kernel!`](crate::kernel) generates, for
/// [`install_entries`].
#[derive(Clone, Copy, Debug)]
pub struct EntryStubs {
    /// Vector 2, from `nmi_entry_stub!`.
    pub nmi: unsafe extern "C" fn(),
    /// Vector 8, from `nmi_entry_stub_with_error_code!`.
    pub double_fault: unsafe extern "C" fn(),
    /// Vector 18, from `nmi_entry_stub!`.
    pub machine_check: unsafe extern "C" fn(),
}

/// One of crashkit's IDT entries as a kernel with its own IDT type writes
/// it: a present 64-bit interrupt gate (type 0xE, so the CPU clears IF on
/// entry), DPL 0, in the kernel's code segment, pointing at `handler` and
/// switching to the stack in the TSS's IST slot `ist` (1-7, the gate's own
/// numbering: [`IstSlots`] counts from 0, so its slot 0 is `ist` 1).
///
/// [`EntryStubs::gates`] gives the three; [`descriptor`](Self::descriptor)
/// encodes one as the 16 bytes the CPU reads (SDM vol. 3A figure 6-8), for
/// a kernel whose table is raw memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The vector: 2 (NMI), 8 (#DF) or 18 (#MC).
    pub vector: u8,
    /// The entry stub's address (the gate's offset).
    pub handler: u64,
    /// The gate's IST field, 1-7 (never 0: all three need a known-good
    /// stack, since each can arrive on a broken one).
    pub ist: u8,
}

impl Gate {
    /// Type of a 64-bit interrupt gate (SDM vol. 3A table 3-2).
    const INTERRUPT_GATE: u64 = 0xE;

    /// The gate as the CPU reads it, two little-endian `u64`s (low first),
    /// with `code_selector` (the kernel's 64-bit code segment, e.g. what
    /// `CS` holds in ring 0): offset 15:0 in bits 0-15, the selector in
    /// 16-31, IST in 32-34, type in 40-43, DPL 0 in 45-46, present in 47,
    /// offset 31:16 in 48-63; offset 63:32 in the second word's low half.
    pub const fn descriptor(&self, code_selector: u16) -> [u64; 2] {
        let offset = self.handler;
        let low = (offset & 0xFFFF)
            | ((code_selector as u64) << 16)
            | ((self.ist as u64 & 0x7) << 32)
            | (Self::INTERRUPT_GATE << 40)
            | (1 << 47)
            | (((offset >> 16) & 0xFFFF) << 48);
        [low, offset >> 32]
    }
}

impl EntryStubs {
    /// The three gates, NMI, #DF and #MC in that order, each on its slot of
    /// `ist`, for a kernel that writes its own IDT (with the `x86_64`
    /// crate's table, [`install_entries`] does it). The same checks as
    /// `install_entries`: a slot past the TSS's seven, or a stub at a
    /// non-canonical address, is an error and nothing is returned.
    ///
    /// The kernel's duties are `install_entries`'s: each slot holds a stack
    /// reserved for its vector on every CPU that loads the table, and the
    /// gates are written before the table is loaded.
    pub fn gates(&self, ist: &IstSlots) -> Result<[Gate; 3], InstallError> {
        let gate = |vector: u8, stub: unsafe extern "C" fn(), slot: u16| {
            if slot >= entry::IST_SLOTS {
                return Err(InstallError::IstIndexOutOfRange(slot));
            }
            let handler = stub as usize as u64;
            if x86_64::VirtAddr::try_new(handler).is_err() {
                return Err(InstallError::NonCanonicalAddress(handler));
            }
            Ok(Gate {
                vector,
                handler,
                // `slot < 7`, so this is 1-7 and fits.
                ist: slot as u8 + 1,
            })
        };
        Ok([
            gate(2, self.nmi, ist.nmi)?,
            gate(8, self.double_fault, ist.double_fault)?,
            gate(18, self.machine_check, ist.machine_check)?,
        ])
    }
}

/// Point the NMI, #DF and #MC entries of `idt` at `stubs`, each on its IST
/// slot. Checks everything before writing the first entry.
///
/// # Safety
/// As [`entry::install`]'s, for each of the three: the stubs come from the
/// macros matching their vectors (no error code for NMI and #MC, one for
/// #DF), each IST slot holds a stack reserved for its vector on every CPU
/// that loads `idt`, and no CPU can take these vectors through `idt` while
/// it is written (it is not loaded yet, or only by the calling CPU before
/// anything can send it an NMI).
pub unsafe fn install_entries(
    idt: &mut InterruptDescriptorTable,
    stubs: &EntryStubs,
    ist: &IstSlots,
) -> Result<(), InstallError> {
    // Every check `install` makes (IST slots, canonical addresses), for all
    // three, before the first entry is written: the same checks `gates`
    // makes for a kernel that writes its own table.
    let _checked = stubs.gates(ist)?;
    // SAFETY: the caller guarantees `install`'s contract for each entry (see
    // above); `gates` checked what `install` checks, so none of the three
    // calls can fail after an earlier one wrote its entry.
    unsafe {
        entry::install(&mut idt.non_maskable_interrupt, stubs.nmi, Some(ist.nmi))?;
        entry::install(
            &mut idt.double_fault,
            stubs.double_fault,
            Some(ist.double_fault),
        )?;
        entry::install(
            &mut idt.machine_check,
            stubs.machine_check,
            Some(ist.machine_check),
        )?;
    }
    Ok(())
}

/// The budget of [`kernel!`](crate::kernel)'s console notifier: 250 ms,
/// not the notifiers' default 10 ms. A line on a polled UART costs about
/// 87 µs a byte at 115,200 baud (a 110-byte panic line, 9.6 ms, is at the
/// default already; a long message or a slower console is well past it),
/// and under a paravirtual KVM each byte is a VM exit or two: the minimal
/// kernel's 100-byte line took 10.2 ms there and read `OverBudget`. 250 ms
/// covers 2.8 KB at 115,200 baud, or a 240-byte line at 9,600.
pub const CONSOLE_BUDGET_NS: u64 = 250_000_000;

/// The console notifier's body ([`kernel!`](crate::kernel)'s `console`
/// field): one line on the kernel's console, `crashkit: cpu N panicked:
/// MESSAGE` (`a CPU not yet online` for one without an index). The runner
/// calls it only if it got the console's lock.
pub fn report_panic<W: core::fmt::Write>(
    context: &PanicContext<'_>,
    console: &mut W,
) -> BodyResult {
    let cpu = context.cpu();
    let written = if cpu.is_unknown() {
        writeln!(
            console,
            "crashkit: a CPU not yet online panicked: {}",
            context.message()
        )
    } else {
        writeln!(
            console,
            "crashkit: cpu {} panicked: {}",
            cpu.0,
            context.message()
        )
    };
    match written {
        Ok(()) => BodyResult::Complete,
        // The console refused part of the line: say so in the record.
        Err(core::fmt::Error) => BodyResult::Degraded,
    }
}

impl<const CPUS: usize, const HANDLERS: usize, const NOTIFIERS: usize>
    KernelState<CPUS, HANDLERS, NOTIFIERS, X86Platform<CPUS>>
{
    /// The state of an x86_64 kernel whose local APIC is `apic`: see
    /// [`with_platform`](Self::with_platform) for the rest. The TSC
    /// frequency is unknown until [`set_tsc_hz`](Self::set_tsc_hz); unclaimed
    /// NMIs are counted and otherwise ignored.
    pub const fn new(
        apic: LocalApic,
        record_slots: &'static [CpuSlot],
        notifiers: &[&'static Notifier],
    ) -> Self {
        Self::with_platform(
            X86Platform::new(apic, 0),
            UnknownNmiPolicy::Count,
            record_slots,
            notifiers,
        )
    }

    /// Give the TSC frequency measured at boot (see
    /// [`X86Platform::set_tsc_hz`]); until then times are TSC ticks.
    pub fn set_tsc_hz(&self, tsc_hz: u64) {
        self.platform.set_tsc_hz(tsc_hz);
    }

    /// Bring the calling CPU online as `cpu`: software-enable its local
    /// APIC, program its LVT LINT1 for `external` (NMI if the setting names
    /// this CPU, masked otherwise: where QEMU's `inject-nmi` and external
    /// NMI sources arrive), register its APIC ID. Nothing else in the local
    /// vector table is touched (LINT0, where firmware leaves the PIC, is the
    /// kernel's). From then on the shootdown stops it.
    /// The first call ends the platform's boot phase: make it on the boot
    /// CPU, before another CPU starts.
    ///
    /// Call it once the CPU takes NMIs through crashkit's entry (its IDT
    /// loaded): the shootdown sends it one from then on. The APIC is
    /// reached as the `LocalApic` given to [`new`](Self::new) says (its
    /// contract: mapped, in that mode, from here on).
    pub fn cpu_online(&self, cpu: CpuIndex, external: ExternalNmi) -> Result<(), RegisterCpuError> {
        let apic = self.platform.apic();
        apic.enable();
        apic.route_external_nmi(external, cpu);
        self.platform.register_current_cpu(cpu)
    }
}

impl<const CPUS: usize, const HANDLERS: usize, const NOTIFIERS: usize, P: Platform>
    KernelState<CPUS, HANDLERS, NOTIFIERS, P>
{
    /// The state of a kernel on `platform`, whose unclaimed NMIs go to
    /// `unknown_nmi`, whose crash record's CPU slots are `record_slots`
    /// (`CrashRecord::cpu_slots`), and whose registry starts with
    /// `notifiers` registered (see `Registry::with_notifiers`). A notifier
    /// that panics is recorded and its list goes on.
    pub const fn with_platform(
        platform: P,
        unknown_nmi: UnknownNmiPolicy,
        record_slots: &'static [CpuSlot],
        notifiers: &[&'static Notifier],
    ) -> Self {
        Self {
            platform,
            contexts: CpuContexts::new(),
            chain: HandlerChain::new(unknown_nmi),
            queues: [const { CpuQueue::new() }; CPUS],
            shootdown: Shootdown::new(record_slots),
            notifiers: Registry::with_notifiers(EscalationPolicy::NextNotifier, notifiers),
            progress: Progress::new(),
        }
    }

    /// The platform.
    pub const fn platform(&self) -> &P {
        &self.platform
    }

    /// The per-CPU NMI-context trackers.
    pub const fn contexts(&self) -> &CpuContexts<CPUS> {
        &self.contexts
    }

    /// The NMI handler chain (register the kernel's own NMI handlers here).
    pub const fn chain(&self) -> &HandlerChain<HANDLERS, CPUS> {
        &self.chain
    }

    /// The lock domain's per-CPU queues.
    pub const fn queues(&self) -> &[CpuQueue; CPUS] {
        &self.queues
    }

    /// The shootdown.
    pub const fn shootdown(&self) -> &Shootdown {
        &self.shootdown
    }

    /// The panic notifier registry.
    pub const fn notifiers(&self) -> &Registry<NOTIFIERS> {
        &self.notifiers
    }

    /// The panic path's progress.
    pub const fn progress(&self) -> &Progress {
        &self.progress
    }

    /// NMI-like contexts the calling CPU is in (0 outside, or on a CPU the
    /// table does not cover).
    pub fn nmi_depth(&self) -> u32 {
        self.contexts
            .current(&self.platform)
            .map_or(0, |tracker| u32::from(tracker.depth()))
    }

    /// The NMI entry's body: enter the NMI context, dispatch the chain. A
    /// CPU the trackers do not cover (or nested past their limit) is
    /// dispatched anyway: the chain counts it, and the stop handler must
    /// still run.
    pub fn on_nmi(&self, frame: &RegisterFrame) {
        let _context = self
            .contexts
            .enter_current(&self.platform, ContextKind::Nmi);
        let _outcome = self.chain.dispatch(&self.platform, frame);
    }

    /// The machine-check entry's body: enter the machine-check context (so
    /// the record and a lock's poll see the depth), then panic with the
    /// interrupted registers. x86_64 cannot resume after most machine
    /// checks, and crashkit does not decode the banks.
    pub fn on_machine_check<K: Kernel>(&self, frame: &RegisterFrame) -> ! {
        let _context = self
            .contexts
            .enter_current(&self.platform, ContextKind::MachineCheck);
        crashkit_panic_path::panic_in_exception::<K>(
            format_args!("machine check at rip {:#x}", frame.rip),
            frame,
        )
    }

    /// The double-fault entry's body: panic with the interrupted registers.
    pub fn on_double_fault<K: Kernel>(&self, frame: &RegisterFrame) -> ! {
        crashkit_panic_path::panic_in_exception::<K>(
            format_args!(
                "double fault at rip {:#x} (error code {:#x})",
                frame.rip, frame.error_code
            ),
            frame,
        )
    }

    /// The stop handler's body (the chain's emergency slot at panic time).
    pub fn stop(&self, event: &NmiEvent<'_>) -> NmiOutcome {
        self.shootdown
            .handle_nmi(&self.platform, event, self.nmi_depth())
    }

    /// The lock domain's `relax`: the platform's spin hint, and once a
    /// shootdown is issued, a poll that stops this CPU if it is a target (so
    /// a CPU spinning on a lock with NMIs blocked stops itself). One load
    /// while no panic is under way.
    pub fn relax(&self) {
        self.platform.relax();
        if self.shootdown.is_issued() {
            self.shootdown.poll(&self.platform, self.nmi_depth());
        }
    }

    /// Where the calling code runs, for the crash log: its CPU and its
    /// innermost NMI-like context (`None`: normal context, or a CPU the
    /// trackers do not cover).
    pub fn log_place(&self) -> (CpuIndex, Option<ContextKind>) {
        let cpu = self.platform.current_cpu();
        let context = self
            .contexts
            .get(cpu)
            .and_then(|tracker| tracker.snapshot().innermost());
        (cpu, context)
    }

    /// The calling CPU's index for the lock domain.
    pub fn current_cpu(&self) -> CpuIndex {
        self.platform.current_cpu()
    }

    /// The lock domain's clock.
    pub fn now_ns(&self) -> u64 {
        self.platform.now_ns()
    }

    /// QSpinLock fallbacks and panic lock breaks, summed over the queues
    /// (saturating), for the record.
    pub fn lock_events(&self) -> (u32, u32) {
        let (mut fallbacks, mut breaks) = (0u64, 0u64);
        for queue in &self.queues {
            let stats = queue.stats();
            fallbacks = fallbacks.saturating_add(stats.fallbacks);
            breaks = breaks.saturating_add(stats.panic_breaks);
        }
        (
            u32::try_from(fallbacks).unwrap_or(u32::MAX),
            u32::try_from(breaks).unwrap_or(u32::MAX),
        )
    }
}
