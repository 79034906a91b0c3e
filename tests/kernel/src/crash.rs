//! The crashkit wiring, written as an integrator writes it (compare the
//! README's "Using the NMI core in a kernel" and "panic path" snippets):
//!
//! | static | what |
//! |--------|------|
//! | [`RECORD`] | the crash record, `CrashRecord<8, 16>`, alone in section `.crash_record` (page aligned; its address is printed at boot and it starts with the magic `CRASHKIT`) |
//! | [`SHOOTDOWN`] | the NMI shootdown over the record's CPU slots |
//! | [`NOTIFIERS`] | the panic notifier registry |
//! | `PROGRESS` | the panic path's progress |
//! | [`CHAIN`] | the NMI handler chain; the panic path puts [`STOP`] in its emergency slot |
//! | [`CONTEXTS`] | per-CPU NMI-context trackers (the depth the record and the poll need) |
//! | `QUEUES` / [`Locks`] | the queued spinlock's domain, whose `relax` polls the shootdown |
//! | `PLATFORM` | the `X86Platform` (xAPIC at `0xFEE0_0000`, TSC), built at boot once the TSC is calibrated |
//!
//! [`K`] is the `Kernel` impl: final action `Reboot`, whose callback exits
//! QEMU ([`crate::exit`]). A test kernel exits rather than halting because
//! the runner needs a verdict and a prompt end: an exit status says the
//! panic path reached its final action (a halt would look the same as a
//! hang, and the runner could only wait for its timeout); the runner then
//! reads the record from guest RAM. If the scenario did not ask for a panic,
//! the callback exits with "failed".

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crashkit_nmi::arch::x86_64::{LocalApic, X86Platform};
use crashkit_nmi::lock::{CpuQueue, QueueDomain};
use crashkit_nmi::{
    ContextKind, CpuContexts, CpuIndex, HandlerChain, NmiHandler, NmiOutcome, Platform,
    RegisterFrame, UnknownNmiPolicy,
};
use crashkit_notifiers::{BodyResult, EscalationPolicy, Notifier, NotifierList, Registry};
use crashkit_panic_path::{FinalChoice, Kernel, PanicConfig, Progress};
use crashkit_record::CrashRecord;
use crashkit_shootdown::Shootdown;

use crate::exit::{ExitCode, exit};
use crate::percpu::MAX_CPUS;
use crate::println;

/// Virtual (= physical) address of the xAPIC page.
pub const APIC_BASE: usize = 0xFEE0_0000;
/// Notifier slots of the crash record.
pub const RECORD_NOTIFIERS: usize = 16;
/// The crash record's type.
pub type Record = CrashRecord<MAX_CPUS, RECORD_NOTIFIERS>;
/// The platform's type.
pub type Machine = X86Platform<MAX_CPUS>;

/// The crash record.
#[unsafe(link_section = ".crash_record")]
pub static RECORD: Record = CrashRecord::new();
/// The NMI shootdown over the record's CPU slots.
pub static SHOOTDOWN: Shootdown = Shootdown::new(RECORD.cpu_slots());
/// The panic notifiers.
pub static NOTIFIERS: Registry<16> = Registry::new(EscalationPolicy::NextNotifier);
static PROGRESS: Progress = Progress::new();
/// NMI-context trackers, per CPU.
pub static CONTEXTS: CpuContexts<MAX_CPUS> = CpuContexts::new();
/// The NMI handler chain. An NMI nobody claims (QMP `inject-nmi` before a
/// panic, say) is counted and otherwise ignored.
pub static CHAIN: HandlerChain<8, MAX_CPUS> = HandlerChain::new(UnknownNmiPolicy::Count);
static QUEUES: [CpuQueue; MAX_CPUS] = [const { CpuQueue::new() }; MAX_CPUS];
/// NMIs each CPU's entry took (any source), for scenarios that wait for
/// one.
pub static NMI_ENTRIES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The shootdown's stop handler, for the chain's emergency slot.
pub static STOP: NmiHandler = NmiHandler::new("crashkit-stop", |event| match platform() {
    Some(platform) => SHOOTDOWN.handle_nmi(platform, event, nmi_depth()),
    None => NmiOutcome::NotMine,
});

/// The platform, built once by the BSP at boot (its TSC frequency is
/// measured then, and `X86Platform::new` takes it by value).
struct PlatformCell {
    ready: AtomicBool,
    value: UnsafeCell<MaybeUninit<Machine>>,
}

// SAFETY: `value` is written once, by `init_platform` before `ready` is set
// (Release) and before any other CPU runs; afterwards it is only read,
// through `platform`, after an Acquire load of `ready` saw `true`.
unsafe impl Sync for PlatformCell {}

static PLATFORM: PlatformCell = PlatformCell {
    ready: AtomicBool::new(false),
    value: UnsafeCell::new(MaybeUninit::uninit()),
};

/// Whether the scenario being run asks for a panic (set by the BSP before
/// the APs start; read by `K::reboot`).
static PANIC_EXPECTED: AtomicBool = AtomicBool::new(false);

/// Build the platform with the measured TSC frequency.
///
/// # Safety
/// BSP only, once, before any AP starts and before any NMI can arrive; the
/// local APIC is globally enabled in xAPIC mode at [`APIC_BASE`], which the
/// boot page tables map uncacheable.
pub unsafe fn init_platform(tsc_hz: u64) {
    // SAFETY: ring 0, xAPIC mode (checked by the caller), the page mapped
    // uncacheable by the boot stub (top GiB) and used for nothing else.
    let apic = unsafe { LocalApic::xapic(APIC_BASE) };
    // SAFETY: single writer before any reader (see `PlatformCell`).
    unsafe { (*PLATFORM.value.get()).write(X86Platform::new(apic, tsc_hz)) };
    // Release: publishes the platform to every `platform()` Acquire load.
    PLATFORM.ready.store(true, Ordering::Release);
}

/// The platform, once built.
pub fn platform() -> Option<&'static Machine> {
    // Acquire: pairs with the Release store in `init_platform`.
    if PLATFORM.ready.load(Ordering::Acquire) {
        // SAFETY: initialised (ready is set only after the write) and never
        // written again.
        Some(unsafe { (*PLATFORM.value.get()).assume_init_ref() })
    } else {
        None
    }
}

/// Say whether the scenario expects the panic path to run.
/// Whether the final action halts instead of exiting QEMU (command-line
/// option `halt`), so the host can take a dump of the crashed machine over
/// QMP (`dump-guest-memory`) before it quits QEMU.
static HALT_AFTER_CRASH: AtomicBool = AtomicBool::new(false);

/// Halt after the crash instead of exiting (see [`HALT_AFTER_CRASH`]).
pub fn set_halt_after_crash(halt: bool) {
    // Relaxed: written by the BSP before the APs start, like
    // `PANIC_EXPECTED`.
    HALT_AFTER_CRASH.store(halt, Ordering::Relaxed);
}

/// The serial line printed when the kernel halts after a crash: the host
/// takes its dump then.
pub const HALTED: &str = "crashkit-test: halted after the crash";

pub fn set_panic_expected(expected: bool) {
    // Relaxed: written by the BSP before the APs start (the start-up IPIs
    // order it before anything they do) and before any panic it could
    // cause itself.
    PANIC_EXPECTED.store(expected, Ordering::Relaxed);
}

/// NMI-like contexts the calling CPU is in.
fn nmi_depth() -> u32 {
    platform()
        .and_then(|platform| CONTEXTS.current(platform))
        .map_or(0, |tracker| u32::from(tracker.depth()))
}

/// The test kernel's `Kernel`.
#[derive(Debug)]
pub struct K;

impl Kernel for K {
    type Platform = Machine;
    type Record = Record;
    type Notifiers = Registry<16>;

    const CONFIG: PanicConfig = PanicConfig {
        final_action: FinalChoice::Reboot,
        ..PanicConfig::DEFAULT
    };

    fn platform() -> &'static Machine {
        match platform() {
            Some(platform) => platform,
            None => {
                println!("crashkit-test: panic path entered before the platform was built");
                exit(ExitCode::Failed)
            }
        }
    }

    fn record() -> &'static Record {
        &RECORD
    }

    fn shootdown() -> &'static Shootdown {
        &SHOOTDOWN
    }

    fn notifiers() -> &'static Registry<16> {
        &NOTIFIERS
    }

    fn progress() -> &'static Progress {
        &PROGRESS
    }

    fn install_stop_handler() {
        if let Some(scenario) = crate::scenario::current() {
            (scenario.before_shootdown)();
        }
        let _previous = CHAIN.set_emergency(Some(&STOP));
    }

    fn nmi_depth() -> u32 {
        nmi_depth()
    }

    fn lock_events() -> (u32, u32) {
        let (mut fallbacks, mut breaks) = (0u64, 0u64);
        for queue in &QUEUES {
            let stats = queue.stats();
            fallbacks = fallbacks.saturating_add(stats.fallbacks);
            breaks = breaks.saturating_add(stats.panic_breaks);
        }
        (
            u32::try_from(fallbacks).unwrap_or(u32::MAX),
            u32::try_from(breaks).unwrap_or(u32::MAX),
        )
    }

    /// Exit QEMU: "ran" if the scenario asked for this panic, else
    /// "failed".
    fn reboot() -> ! {
        // Relaxed: see `set_panic_expected`.
        let expected = PANIC_EXPECTED.load(Ordering::Relaxed);
        // Relaxed: see `set_halt_after_crash`.
        if HALT_AFTER_CRASH.load(Ordering::Relaxed) {
            println!(
                "{HALTED} (record at {:#x}, {})",
                &raw const RECORD as usize,
                if expected { "ran" } else { "failed" }
            );
            loop {
                // Interrupts are off (the panic path turned them off); an
                // NMI only wakes the CPU to halt again.
                x86_64::instructions::hlt();
            }
        }
        println!(
            "crashkit-test: final action reached (record at {:#x}), exiting: {}",
            &raw const RECORD as usize,
            if expected {
                "ran"
            } else {
                "failed, the scenario did not ask for a panic"
            }
        );
        exit(if expected {
            ExitCode::Ran
        } else {
            ExitCode::Failed
        })
    }
}

/// The queued spinlock's domain: CPUs from the platform, nodes in
/// `QUEUES`, and a `relax` that polls the shootdown so that a CPU spinning
/// on a lock with NMIs blocked (inside an NMI handler) stops itself.
#[derive(Debug)]
pub struct Locks;

impl QueueDomain for Locks {
    fn queues() -> &'static [CpuQueue] {
        &QUEUES
    }

    fn current_cpu() -> CpuIndex {
        platform().map_or(Machine::UNKNOWN_CPU, Platform::current_cpu)
    }

    fn now_ns() -> u64 {
        platform().map_or(0, Platform::now_ns)
    }

    fn relax() {
        core::hint::spin_loop();
        if SHOOTDOWN.is_issued()
            && let Some(platform) = platform()
        {
            SHOOTDOWN.poll(platform, nmi_depth());
        }
    }
}

/// The lock domain's per-CPU queues (shared with test domains, so that
/// their fallbacks are counted in the record too).
pub fn queues() -> &'static [CpuQueue] {
    &QUEUES
}

/// The NMI entry (from the IDT stub): count it, enter the NMI context,
/// dispatch the chain.
pub fn on_nmi(frame: &mut RegisterFrame) {
    let Some(platform) = platform() else {
        return;
    };
    let cpu = platform.current_cpu();
    if let Some(count) = NMI_ENTRIES.get(cpu.as_usize()) {
        // Relaxed: a statistic; scenarios that wait for it only need to see
        // it change eventually.
        count.fetch_add(1, Ordering::Relaxed);
    }
    let _context = CONTEXTS.enter_current(platform, ContextKind::Nmi);
    let _outcome = CHAIN.dispatch(platform, frame);
}

/// The #MC entry: a machine check is fatal here.
pub fn on_machine_check(frame: &mut RegisterFrame) {
    let _context =
        platform().map(|platform| CONTEXTS.enter_current(platform, ContextKind::MachineCheck));
    fatal_exception("machine check", frame, None);
}

/// A CPU exception that means the kernel is broken: into the panic path
/// with the interrupted frame (or, before the platform exists, straight
/// out with "failed").
pub fn fatal_exception(name: &str, frame: &RegisterFrame, address: Option<u64>) -> ! {
    if platform().is_none() {
        println!(
            "crashkit-test: {name} at rip {:#x} (error code {:#x}, address {address:#x?}) during early boot",
            frame.rip, frame.error_code
        );
        exit(ExitCode::Failed);
    }
    match address {
        Some(address) => crashkit_panic_path::panic_in_exception::<K>(
            format_args!(
                "{name} at rip {:#x}, address {address:#x}, error code {:#x}",
                frame.rip, frame.error_code
            ),
            frame,
        ),
        None => crashkit_panic_path::panic_in_exception::<K>(
            format_args!(
                "{name} at rip {:#x}, error code {:#x}",
                frame.rip, frame.error_code
            ),
            frame,
        ),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if platform().is_none() {
        println!("crashkit-test: panic during early boot: {}", info.message());
        exit(ExitCode::Failed);
    }
    crashkit_panic_path::panic::<K>(info)
}

/// Prints the panic on serial: an informational notifier, as a kernel's
/// console flush would be (it runs after the shootdown, so no other CPU
/// prints any more).
pub static SERIAL_REPORT: Notifier =
    Notifier::new("serial-report", NotifierList::Informational, 0, |context| {
        println!(
            "crashkit-test: cpu {} panicked: {}",
            context.cpu().0,
            context.message()
        );
        BodyResult::Complete
    });
