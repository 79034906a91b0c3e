//! [`X86Platform`]: crashkit's [`Platform`] on x86_64 hardware.
//!
//! CPU indices are dense numbers the kernel hands out (usually in MADT
//! order); the hardware knows CPUs by APIC ID. The platform keeps the mapping
//! in a fixed table of `CPUS` atomic slots, filled by
//! [`X86Platform::register_cpu`] during bring-up and never emptied: NMI
//! context only ever reads it, so no lock is needed and no reader waits. The
//! clock is the TSC, scaled by a frequency the kernel measured.
//!
//! The table's state, per slot: `NO_APIC_ID` (unregistered) or an APIC ID;
//! the only transition is `NO_APIC_ID -> id`, by one compare-exchange. The
//! count (`cpu_count`) is one past the highest registered index and only
//! grows. Indices below it that were never registered are holes: sending to
//! them reports [`NmiSendError::NoSuchCpu`].
//!
//! # Before the first CPU registers: the boot phase
//! A kernel takes locks (its console's, say) and may panic before it has
//! measured the TSC or registered a CPU, and at that point only the boot CPU
//! runs. The platform is a `static` from the start (built by a `const fn`)
//! and defines that phase:
//!
//! | phase | `current_cpu` | `now_ns` | NMIs |
//! |-------|---------------|----------|------|
//! | boot: no CPU registered | [`X86Platform::BOOT_CPU`] (index 0), without reading the APIC | raw TSC ticks until [`X86Platform::set_tsc_hz`] | none to send: `cpu_count` is 0 |
//! | running: a CPU registered | the registered index of the local APIC ID, else [`CpuIndex::UNKNOWN`] | TSC scaled by the frequency set | to registered CPUs |
//!
//! The only transition is the first registration, which the boot CPU makes
//! before it starts another CPU.
//!
//! # Broadcast: only once every CPU is up
//! The APIC's all-excluding-self shorthand reaches every CPU, registered or
//! not, including one the kernel is starting: a CPU in its real-mode
//! trampoline, or before its IDT is loaded, takes the NMI through no
//! handler and triple-faults the machine (QEMU's whole machine resets). So
//! [`send_nmi_all_but_self`](Platform::send_nmi_all_but_self) sends one NMI
//! per registered CPU until the kernel says, with
//! [`X86Platform::allow_broadcast`], that every CPU the machine has runs
//! with its IDT loaded; from then on it uses the shorthand, which also
//! reaches CPUs past the table's capacity (Linux does the same: it uses the
//! shorthand only while every present CPU is online). So a lock taken in the boot phase queues
//! as CPU 0 (or takes the fast path), a bounded wait is bounded in ticks, and
//! a panic runs the whole panic path with one CPU: nothing to shoot down.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::apic::{ApicError, LocalApic};
use crate::{ControlRegisters, CpuIndex, NmiSendError, Platform};

/// Slot value of an unregistered CPU. It is the x2APIC broadcast ID and out of
/// xAPIC range, so no CPU can be registered with it.
const NO_APIC_ID: u32 = u32::MAX;

/// Why [`X86Platform::register_cpu`] refused a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterCpuError {
    /// The index is not below the table's capacity `CPUS`.
    IndexOutOfRange(CpuIndex),
    /// The APIC ID cannot be an NMI destination in the platform's APIC mode
    /// (see [`LocalApic::is_valid_destination`]).
    InvalidApicId(u32),
    /// The index is registered already (with the APIC ID given).
    IndexTaken {
        /// The index asked for.
        cpu: CpuIndex,
        /// The APIC ID it already has.
        apic_id: u32,
    },
    /// Another index already has this APIC ID.
    DuplicateApicId {
        /// The APIC ID asked for.
        apic_id: u32,
        /// The index that has it.
        registered_as: CpuIndex,
    },
}

impl core::fmt::Display for RegisterCpuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::IndexOutOfRange(cpu) => {
                write!(f, "CPU index {} is past the kernel's CPU capacity", cpu.0)
            }
            Self::InvalidApicId(apic_id) => write!(
                f,
                "APIC ID {apic_id:#x} cannot be an NMI destination in this APIC mode"
            ),
            Self::IndexTaken { cpu, apic_id } => write!(
                f,
                "CPU index {} is registered already, with APIC ID {apic_id:#x}",
                cpu.0
            ),
            Self::DuplicateApicId {
                apic_id,
                registered_as,
            } => write!(
                f,
                "APIC ID {apic_id:#x} is registered already, as CPU index {}",
                registered_as.0
            ),
        }
    }
}

impl core::error::Error for RegisterCpuError {}

/// The x86_64 [`Platform`]: local APIC for CPU identity and NMIs, TSC for
/// time, and a table of up to `CPUS` CPUs. Built by a `const fn`, so it can
/// be a `static`.
#[derive(Debug)]
pub struct X86Platform<const CPUS: usize> {
    apic: LocalApic,
    /// TSC frequency in Hz, 0 while unknown (see [`X86Platform::set_tsc_hz`]).
    tsc_hz: AtomicU64,
    /// APIC ID per CPU index, `NO_APIC_ID` until registered.
    apic_ids: [AtomicU32; CPUS],
    /// One past the highest registered index.
    cpu_count: AtomicUsize,
    /// Whether the all-but-self shorthand may be used (see the module docs).
    broadcast: AtomicBool,
}

impl<const CPUS: usize> X86Platform<CPUS> {
    /// What [`Platform::current_cpu`] returns while no CPU is registered
    /// (the boot phase, see the module docs): only the boot CPU runs then.
    pub const BOOT_CPU: CpuIndex = CpuIndex(0);

    /// A platform with no CPU registered yet.
    ///
    /// `tsc_hz` is the TSC frequency in Hz, used by
    /// [`now_ns`](Platform::now_ns); 0 means "unknown" (a kernel that
    /// measures it at boot gives it later, to [`set_tsc_hz`](Self::set_tsc_hz)),
    /// and then `now_ns` returns raw TSC ticks (a nanosecond clock only if the
    /// TSC runs at 1 GHz, but still monotonic).
    pub const fn new(apic: LocalApic, tsc_hz: u64) -> Self {
        const {
            assert!(
                CPUS < CpuIndex::UNKNOWN.as_usize(),
                "CPU indices are u32, below CpuIndex::UNKNOWN"
            )
        };
        Self {
            apic,
            tsc_hz: AtomicU64::new(tsc_hz),
            apic_ids: [const { AtomicU32::new(NO_APIC_ID) }; CPUS],
            cpu_count: AtomicUsize::new(0),
            broadcast: AtomicBool::new(false),
        }
    }

    /// The local APIC this platform drives.
    pub const fn apic(&self) -> &LocalApic {
        &self.apic
    }

    /// The TSC frequency in Hz, 0 while unknown.
    pub fn tsc_hz(&self) -> u64 {
        // Relaxed: a scale factor, publishing nothing else (see
        // `set_tsc_hz`).
        self.tsc_hz.load(Ordering::Relaxed)
    }

    /// Give the TSC frequency measured at boot (Hz; 0: unknown again).
    ///
    /// Call it on the boot CPU before starting the others. `now_ns` is then
    /// scaled: a wait that spans the call sees time jump (from ticks to
    /// nanoseconds), which only the boot CPU can be doing at that point.
    pub fn set_tsc_hz(&self, tsc_hz: u64) {
        // Relaxed: the value is the only thing published, and a reader that
        // sees the old one still has a monotonic clock. CPUs started after
        // the call see it: starting a CPU (INIT-SIPI, or the kernel's own
        // handshake) orders the boot CPU's earlier stores before it.
        self.tsc_hz.store(tsc_hz, Ordering::Relaxed);
    }

    /// Record that CPU `cpu` has APIC ID `apic_id`. Callable from any CPU, in
    /// any order of indices, concurrently; each index is registered once.
    ///
    /// The duplicate-ID check is a scan before the slot is claimed, so two
    /// CPUs registering the *same* APIC ID at the same instant may both
    /// succeed; that is a kernel bug this check cannot always catch, and
    /// lookups then find the lower index.
    pub fn register_cpu(&self, cpu: CpuIndex, apic_id: u32) -> Result<(), RegisterCpuError> {
        let slot = self
            .apic_ids
            .get(cpu.as_usize())
            .ok_or(RegisterCpuError::IndexOutOfRange(cpu))?;
        if !self.apic.is_valid_destination(apic_id) || apic_id == NO_APIC_ID {
            return Err(RegisterCpuError::InvalidApicId(apic_id));
        }
        if let Some(registered_as) = self.scan(self.apic_ids.len(), apic_id) {
            return Err(RegisterCpuError::DuplicateApicId {
                apic_id,
                registered_as,
            });
        }
        // Release on success: publishes what the registering code did
        // before this call (e.g. the CPU's per-CPU setup) to any CPU whose
        // Acquire load in `apic_id_of`/`scan` sees the ID. Relaxed on
        // failure: the value read is only reported.
        slot.compare_exchange(NO_APIC_ID, apic_id, Ordering::Release, Ordering::Relaxed)
            .map_err(|taken| RegisterCpuError::IndexTaken {
                cpu,
                apic_id: taken,
            })?;
        // Release, after the slot store: a CPU whose Acquire load in
        // `cpu_count` sees the count this call raised also sees this slot.
        // fetch_max keeps the count monotonic when indices register out of
        // order or concurrently. Cannot overflow: the index is below CPUS.
        self.cpu_count
            .fetch_max(cpu.as_usize() + 1, Ordering::Release);
        Ok(())
    }

    /// Say that every CPU the machine has is up and takes NMIs through the
    /// kernel's NMI entry (its bring-up is over): the shootdown's broadcast
    /// then uses the APIC's all-excluding-self shorthand, which also stops
    /// CPUs the table has no room for. Until then it sends one NMI per
    /// registered CPU (see the module docs).
    pub fn allow_broadcast(&self) {
        // Release: pairs with the Acquire load in `send_nmi_all_but_self`;
        // publishes the caller's view that bring-up is over (nothing else
        // is read through it).
        self.broadcast.store(true, Ordering::Release);
    }

    /// Whether [`allow_broadcast`](Self::allow_broadcast) was called.
    pub fn broadcast_allowed(&self) -> bool {
        // Acquire: see `allow_broadcast`.
        self.broadcast.load(Ordering::Acquire)
    }

    /// Register the calling CPU under index `cpu`, with the APIC ID its local
    /// APIC reports.
    pub fn register_current_cpu(&self, cpu: CpuIndex) -> Result<(), RegisterCpuError> {
        self.register_cpu(cpu, self.apic.id())
    }

    /// The APIC ID registered for `cpu`, if any.
    pub fn apic_id_of(&self, cpu: CpuIndex) -> Option<u32> {
        // Acquire: pairs with the Release compare-exchange in
        // `register_cpu` (see there).
        let apic_id = self.apic_ids.get(cpu.as_usize())?.load(Ordering::Acquire);
        (apic_id != NO_APIC_ID).then_some(apic_id)
    }

    /// The index registered for `apic_id`, if any: a linear scan of the
    /// registered part of the table (at most `CPUS` loads).
    pub fn cpu_of_apic_id(&self, apic_id: u32) -> Option<CpuIndex> {
        if apic_id == NO_APIC_ID {
            return None;
        }
        self.scan(self.cpu_count(), apic_id)
    }

    /// First index below `limit` whose slot holds `apic_id`.
    fn scan(&self, limit: usize, apic_id: u32) -> Option<CpuIndex> {
        self.apic_ids
            .iter()
            .take(limit)
            // Acquire: pairs with the Release compare-exchange in
            // `register_cpu`.
            .position(|slot| slot.load(Ordering::Acquire) == apic_id)
            // `position < CPUS < CpuIndex::UNKNOWN` (checked in `new`).
            .map(|index| CpuIndex(index as u32))
    }
}

impl<const CPUS: usize> Platform for X86Platform<CPUS> {
    /// Looks the local APIC ID up in the table; [`CpuIndex::UNKNOWN`] if it is
    /// not registered. While no CPU is registered (the boot phase, see the
    /// module docs) it is [`Self::BOOT_CPU`], and the APIC is not read: it
    /// may not be mapped yet.
    fn current_cpu(&self) -> CpuIndex {
        if self.cpu_count() == 0 {
            return Self::BOOT_CPU;
        }
        self.cpu_of_apic_id(self.apic.id())
            .unwrap_or(CpuIndex::UNKNOWN)
    }

    fn cpu_count(&self) -> usize {
        // Acquire: pairs with the Release fetch_max in `register_cpu`, so
        // the slot of the index that set this count is visible. Slots of
        // lower indices may still be registering: callers treat an empty
        // slot as "no such CPU", never as an error to panic on.
        self.cpu_count.load(Ordering::Acquire)
    }

    fn relax(&self) {
        core::hint::spin_loop();
    }

    /// TSC ticks scaled to nanoseconds (see [`X86Platform::new`]). Monotonic
    /// on one CPU; comparable across CPUs when their TSCs are synchronised
    /// (invariant TSC, Intel SDM vol. 3B 17.17).
    fn now_ns(&self) -> u64 {
        // SAFETY: `rdtsc` exists on every x86_64 CPU and only reads the TSC;
        // it faults only if CR4.TSD is set outside ring 0, and crashkit runs
        // in ring 0 (Linux leaves TSD clear for the host tests). No memory
        // is touched.
        let ticks = unsafe { core::arch::x86_64::_rdtsc() };
        tsc_to_ns(ticks, self.tsc_hz())
    }

    fn send_nmi(&self, target: CpuIndex) -> Result<(), NmiSendError> {
        let apic_id = self
            .apic_id_of(target)
            .ok_or(NmiSendError::NoSuchCpu(target))?;
        self.apic.send_nmi(apic_id).map_err(|error| match error {
            // Unreachable for registered IDs (`register_cpu` checks them),
            // kept total: the CPU cannot be reached.
            ApicError::DestinationOutOfRange(_) => NmiSendError::NoSuchCpu(target),
            ApicError::DeliveryTimeout => NmiSendError::DeliveryTimeout,
        })
    }

    /// Once [`X86Platform::allow_broadcast`] was called: the APIC's
    /// all-excluding-self shorthand, one command that does not depend on the
    /// table and also reaches CPUs never registered. Before: one NMI per
    /// registered CPU but the caller (bounded by `CPUS` sends), so a CPU
    /// still being started is never sent one; every CPU is tried, and the
    /// first error is returned.
    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError> {
        if self.broadcast_allowed() {
            return self
                .apic
                .send_nmi_all_but_self()
                .map_err(|error| match error {
                    ApicError::DestinationOutOfRange(_) => NmiSendError::Unavailable,
                    ApicError::DeliveryTimeout => NmiSendError::DeliveryTimeout,
                });
        }
        let me = self.current_cpu();
        let mut first_error = None;
        for index in 0..self.cpu_count() {
            // `index < CPUS < CpuIndex::UNKNOWN` (checked in `new`).
            let cpu = CpuIndex(index as u32);
            if cpu == me || self.apic_id_of(cpu).is_none() {
                continue;
            }
            if let Err(error) = self.send_nmi(cpu) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `cli`, then `hlt` forever. Maskable interrupts cannot wake the CPU;
    /// what can (an NMI when NMIs are not blocked, an SMI, a machine check,
    /// INIT aside) returns to the loop and halts again. When the caller is
    /// the shootdown's NMI handler (which then never returns), NMIs stay
    /// blocked too (Intel SDM vol. 3A 6.7.1). Ring 0 only: both
    /// instructions fault in user mode.
    fn disable_interrupts(&self) {
        x86_64::instructions::interrupts::disable();
    }

    /// RFLAGS.IF (`pushfq`), then `cli`.
    fn save_and_disable_interrupts(&self) -> bool {
        let enabled = x86_64::instructions::interrupts::are_enabled();
        x86_64::instructions::interrupts::disable();
        enabled
    }

    /// `sti` if they were enabled.
    fn restore_interrupts(&self, enabled: bool) {
        if enabled {
            x86_64::instructions::interrupts::enable();
        }
    }

    /// Every register of [`ControlRegisters`], read from the CPU.
    fn control_registers(&self) -> ControlRegisters {
        // SAFETY: `X86Platform` is a ring-0 kernel's platform: its `park`
        // and `disable_interrupts` (`cli`, `hlt`) and its APIC accesses are
        // privileged too, so a caller of any of its CPU-facing methods is in
        // ring 0 on an x86_64 CPU, which is `capture`'s contract. Reading
        // the registers changes no state another context relies on.
        unsafe { ControlRegisters::capture() }
    }

    fn park(&self) -> ! {
        x86_64::instructions::interrupts::disable();
        loop {
            x86_64::instructions::hlt();
        }
    }
}

/// `ticks` TSC ticks at `tsc_hz` Hz, in nanoseconds: `ticks * 10^9 / tsc_hz`
/// in 128-bit arithmetic (no intermediate overflow), saturating at
/// `u64::MAX` (reached only after centuries at any real frequency). With
/// `tsc_hz == 0` (unknown frequency) the ticks are returned unchanged.
fn tsc_to_ns(ticks: u64, tsc_hz: u64) -> u64 {
    const NANOSECONDS_PER_SECOND: u128 = 1_000_000_000;
    let scaled = u128::from(ticks) * NANOSECONDS_PER_SECOND;
    match scaled.checked_div(u128::from(tsc_hz)) {
        Some(nanoseconds) => u64::try_from(nanoseconds).unwrap_or(u64::MAX),
        None => ticks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Platforms in these tests are never asked to touch the APIC: only the
    /// table, the conversions and the error paths taken before any access.
    fn platform<const CPUS: usize>(x2apic: bool) -> X86Platform<CPUS> {
        // SAFETY: see above; no method that reaches the hardware is called.
        let apic = unsafe {
            if x2apic {
                LocalApic::x2apic()
            } else {
                LocalApic::xapic(0)
            }
        };
        X86Platform::new(apic, 2_000_000_000)
    }

    // Constructible in a static (the form kernels use).
    // SAFETY: never used to access the hardware in the tests.
    static STATIC_PLATFORM: X86Platform<4> = X86Platform::new(unsafe { LocalApic::x2apic() }, 0);

    #[test]
    fn static_platform_starts_empty() {
        assert_eq!(STATIC_PLATFORM.cpu_count(), 0);
        assert_eq!(STATIC_PLATFORM.cpu_of_apic_id(0), None);
        assert_eq!(STATIC_PLATFORM.tsc_hz(), 0);
    }

    #[test]
    fn the_boot_phase_is_cpu_0_without_touching_the_apic() {
        // An xAPIC at address 0: reading it would fault, so this passes
        // only if the boot phase does not read the APIC.
        let platform = platform::<4>(false);
        assert_eq!(platform.current_cpu(), X86Platform::<4>::BOOT_CPU);
        assert_eq!(platform.cpu_count(), 0);
    }

    #[test]
    fn broadcast_is_off_until_the_kernel_allows_it() {
        let platform = platform::<4>(false);
        assert!(!platform.broadcast_allowed());
        // No CPU registered: nothing to send, and the APIC (at address 0
        // here) is not touched, so neither the shorthand nor a targeted
        // send ran.
        assert_eq!(platform.send_nmi_all_but_self(), Ok(()));
        platform.allow_broadcast();
        assert!(platform.broadcast_allowed());
    }

    #[test]
    fn the_tsc_frequency_can_be_given_at_boot() {
        let platform = platform::<4>(true);
        platform.set_tsc_hz(0);
        assert_eq!(platform.tsc_hz(), 0);
        let ticks_before = platform.now_ns();
        platform.set_tsc_hz(1_000);
        assert_eq!(platform.tsc_hz(), 1_000);
        // Ticks scaled by 10^6 ns per tick: far beyond the raw count.
        assert!(platform.now_ns() > ticks_before);
        platform.set_tsc_hz(u64::MAX);
        let scaled = platform.now_ns();
        assert!(
            scaled < ticks_before,
            "{scaled} ns at u64::MAX Hz, {ticks_before} ticks"
        );
    }

    #[test]
    fn tsc_conversion_scales_by_frequency() {
        assert_eq!(tsc_to_ns(3_000_000_000, 3_000_000_000), 1_000_000_000);
        assert_eq!(tsc_to_ns(1, 1_000_000_000), 1);
        assert_eq!(tsc_to_ns(5, 2_000_000_000), 2);
        assert_eq!(tsc_to_ns(u64::MAX, 1_000_000_000), u64::MAX);
        // No intermediate overflow: u64::MAX ticks at 4 GHz.
        assert_eq!(tsc_to_ns(u64::MAX, 4_000_000_000), u64::MAX / 4);
        assert_eq!(tsc_to_ns(12345, u64::MAX), 0);
    }

    #[test]
    fn tsc_conversion_saturates_and_handles_unknown_frequency() {
        assert_eq!(tsc_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(tsc_to_ns(u64::MAX / 2, 1_000), u64::MAX);
        assert_eq!(tsc_to_ns(12345, 0), 12345);
        assert_eq!(tsc_to_ns(u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn tsc_conversion_is_monotonic() {
        let mut previous = 0;
        for ticks in (0..2_000u64).map(|i| i * 7_919) {
            let now = tsc_to_ns(ticks, 2_399_999_999);
            assert!(now >= previous);
            previous = now;
        }
    }

    #[test]
    fn registered_cpus_are_found_by_apic_id() {
        let platform = platform::<4>(false);
        platform.register_cpu(CpuIndex(0), 0).unwrap();
        platform.register_cpu(CpuIndex(1), 2).unwrap();
        assert_eq!(platform.cpu_count(), 2);
        assert_eq!(platform.cpu_of_apic_id(0), Some(CpuIndex(0)));
        assert_eq!(platform.cpu_of_apic_id(2), Some(CpuIndex(1)));
        assert_eq!(platform.cpu_of_apic_id(1), None);
        assert_eq!(platform.cpu_of_apic_id(NO_APIC_ID), None);
        assert_eq!(platform.apic_id_of(CpuIndex(1)), Some(2));
        assert_eq!(platform.apic_id_of(CpuIndex(2)), None);
        assert_eq!(platform.apic_id_of(CpuIndex(99)), None);
    }

    #[test]
    fn out_of_order_registration_counts_up_to_the_highest_index() {
        let platform = platform::<4>(false);
        platform.register_cpu(CpuIndex(2), 6).unwrap();
        assert_eq!(platform.cpu_count(), 3);
        platform.register_cpu(CpuIndex(0), 4).unwrap();
        assert_eq!(platform.cpu_count(), 3);
        assert_eq!(platform.cpu_of_apic_id(6), Some(CpuIndex(2)));
        // The hole at index 1 is no CPU; found before touching the APIC.
        assert_eq!(
            platform.send_nmi(CpuIndex(1)),
            Err(NmiSendError::NoSuchCpu(CpuIndex(1)))
        );
    }

    #[test]
    fn registration_errors() {
        let platform = platform::<2>(false);
        assert_eq!(
            platform.register_cpu(CpuIndex(2), 1),
            Err(RegisterCpuError::IndexOutOfRange(CpuIndex(2)))
        );
        assert_eq!(
            platform.register_cpu(CpuIndex::UNKNOWN, 1),
            Err(RegisterCpuError::IndexOutOfRange(CpuIndex::UNKNOWN))
        );
        // xAPIC: 8-bit IDs, 0xFF is broadcast.
        assert_eq!(
            platform.register_cpu(CpuIndex(0), 0xFF),
            Err(RegisterCpuError::InvalidApicId(0xFF))
        );
        assert_eq!(
            platform.register_cpu(CpuIndex(0), 0x100),
            Err(RegisterCpuError::InvalidApicId(0x100))
        );
        platform.register_cpu(CpuIndex(0), 5).unwrap();
        assert_eq!(
            platform.register_cpu(CpuIndex(0), 6),
            Err(RegisterCpuError::IndexTaken {
                cpu: CpuIndex(0),
                apic_id: 5
            })
        );
        assert_eq!(
            platform.register_cpu(CpuIndex(1), 5),
            Err(RegisterCpuError::DuplicateApicId {
                apic_id: 5,
                registered_as: CpuIndex(0)
            })
        );
        assert_eq!(platform.cpu_count(), 1);
    }

    #[test]
    fn x2apic_ids_may_be_wide_but_not_broadcast() {
        let platform = platform::<2>(true);
        platform.register_cpu(CpuIndex(0), 0x1_0000).unwrap();
        assert_eq!(platform.cpu_of_apic_id(0x1_0000), Some(CpuIndex(0)));
        assert_eq!(
            platform.register_cpu(CpuIndex(1), u32::MAX),
            Err(RegisterCpuError::InvalidApicId(u32::MAX))
        );
    }

    #[test]
    fn send_nmi_to_an_unknown_index_is_no_such_cpu() {
        let platform = platform::<2>(true);
        for cpu in [CpuIndex(0), CpuIndex(2), CpuIndex::UNKNOWN] {
            assert_eq!(platform.send_nmi(cpu), Err(NmiSendError::NoSuchCpu(cpu)));
        }
    }

    #[test]
    fn unknown_cpu_is_above_every_index() {
        assert!(CpuIndex::UNKNOWN.as_usize() >= 4);
        assert_eq!(platform::<4>(false).cpu_count(), 0);
    }
}
