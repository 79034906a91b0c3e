//! The scenarios, chosen with `scenario=NAME` on the kernel command line.
//!
//! A scenario is a row of [`SCENARIOS`]: a name, the fewest CPUs it needs,
//! whether it ends in a panic, a `setup` the BSP runs before starting the
//! APs (register notifiers, NMI handlers), and the role of the BSP and of
//! each AP once every CPU is online. To add one, write its three functions
//! and add a row.
//!
//! | name | CPUs | what happens | the record should say |
//! |------|------|--------------|-----------------------|
//! | `boot` | 1+ | every CPU comes up; the BSP prints the CPU list and exits "ran" | no panic (no owner, phase `Idle`) |
//! | `panic-bsp` | 1+ | the APs idle (`sti; hlt`); the BSP panics | owner cpu 0, message `panic-bsp: cpu 0 panics on purpose`, the others stopped by NMI |
//! | `panic-ap` | 2+ | the BSP and the other APs idle; cpu 1 panics | owner cpu 1, message `panic-ap: cpu 1 panics on purpose`, the others stopped by NMI |
//! | `panic-two` | 2+ | cpu 0 and cpu 1 panic at the same moment (released by one flag); the owner holds its shootdown (at most 2 s) until the other counted itself | one owner (either), the other counted as a second panicker and stopped; message `panic-two: cpu N panics on purpose` with the owner's N |
//! | `panic-in-nmi` | 2+ | the BSP sends cpu 1 an NMI; cpu 1's NMI handler panics | owner cpu 1 at NMI depth 1, message `panic-in-nmi: cpu 1 panics in its NMI handler` |
//! | `nmi-spin` | 2+ | the BSP holds a queued spinlock, sends cpu 1 an NMI whose handler spins on that lock (NMIs blocked), then panics | cpu 1 stopped through the poll (`Poll`, depth 1), before the deadline |
//! | `unresponsive` | 2+ | cpu 1 halts inside an NMI handler (NMIs blocked, interrupts off, never polls); the BSP panics | cpu 1 `Unresponsive`, resent to; shootdown end - start >= the 1 s deadline |
//! | `panic-before-online` | 2+ | cpu 1 panics in its bring-up, before `K::cpu_online` (crashkit has no index for it) | the owner is a CPU without an index (`owner_unregistered`); cpu 0 `Stopped` by NMI; no registers for the owner (no slot) |
//! | `reset` | 1+ | the APs idle; the BSP panics; the final action is `crashkit::reset` (QEMU, with `-no-reboot`, exits with status 0) | as `panic-bsp`: owner cpu 0, final action `Reboot`; serial says `crashkit-test: final action reached, resetting` |
//! | `notifier-panic` | 1+ | the BSP panics (`notifier-panic: cpu 0 panics on purpose`); the post-dump notifier `panicking-notifier` panics (`notifier-panic: the notifier panics`) | that notifier `Panicked`, one escalation (notifier), `last-words` after it still `Completed` |
//! | `notifier-lock` | 2+ | cpu 1 holds the `console` notifier lock and idles; the BSP panics | `console-flush` `SkippedLockBusy`, cpu 1 stopped by NMI |
//! | `inject-nmi` | 1+ | external NMIs as `extnmi=` routes them: every CPU online, the BSP prints `crashkit-test: ready for inject-nmi` (the runner sends QMP `inject-nmi`, which QEMU delivers to every CPU's LINT1), waits (up to 5 s; 1 s with `extnmi=none`) until each CPU the setting names counted one NMI, 200 ms more, and prints `crashkit-test: inject-nmi: extnmi=NAME received=N0,N1,..`; then it panics (`inject-nmi: cpu 0 panics on purpose`) and a pre-dump notifier asks again and waits until the owner counts one more (an NMI reaches the panic owner in its panic path) | serial: each CPU received 1 if the setting names it, else 0; `await-inject-nmi` `Completed` if the owner's LINT1 takes NMIs (`Degraded` with `extnmi=none`); the NMI on stopped CPUs stays latched |
//! | `pic-timer` | 2+ | the PICs' timer runs through the boot CPU's LINT0 as firmware left it (virtual wire): the BSP starts the PIT at 1 kHz, unmasks IRQ 0, enables interrupts, waits for 100 timer interrupts (bounded), then panics (`pic-timer: cpu 0 panics with the PIC's timer running`) | the usual panic record; serial (`nmi-counts`): 100+ timer interrupts, the owner took no NMI, every other CPU exactly one (the shootdown's), no unclaimed NMI anywhere |
//! | `deep-nesting` | 2+ | cpu 0 holds a lock; cpu 1 waits for it in 6 nested contexts (task, NMI to itself, then four invalid-opcode exceptions, each `ud2` raised from the lock's `relax` in the level below); once cpu 1's queue counted a fallback, cpu 0 panics: `deep-nesting: cpu 0 panics while cpu 1 waits at 6 levels` | `qspinlock_fallbacks` >= 1; cpu 1 `Stopped` by `poll` at depth 1 |
//! | `nmi-roundtrip` | 2+ | no panic: a benchmark ([`crate::bench`]); the BSP times NMI round trips to cpu 1 (`send_nmi`) and to all others (`send_nmi_all_but_self`), the APs idle and acknowledge in an NMI handler; two `crashkit-bench:` lines, then exit "ran" | no panic (phase `Idle`); serial has the two `crashkit-bench: nmi-roundtrip` lines |
//!
//! Messages are fixed strings so the runner can compare them. The record
//! holds the `PanicInfo` as `core` displays it: `panicked at FILE:LINE:COL:`,
//! a newline, then the message; a runner should compare the part after the
//! first newline (or the end), not the location. Messages from
//! `panic_in_exception` (CPU exceptions) have no location prefix.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crashkit::nmi::lock::CpuQueue;
use crashkit::prelude::*;
use kernel_base::exit::{ExitCode, exit};
use kernel_base::machine::{self, idle};
use kernel_base::println;
use kernel_base::time::{delay_us, poll_until};

use crate::bench;
use crate::crash::{K, NMI_COUNTS, NMI_ENTRIES, SERIAL_REPORT};

/// One scenario.
#[derive(Debug)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// The fewest CPUs it needs.
    pub min_cpus: usize,
    /// Whether it ends in the panic path (its final action then exits
    /// "ran").
    pub panics: bool,
    /// BSP, before the APs start.
    pub setup: fn(),
    /// The BSP, once every CPU is online.
    pub bsp: fn() -> !,
    /// Each AP (with its CPU index), once it is online.
    pub ap: fn(usize) -> !,
    /// The panic owner, just before its shootdown (`Kernel::
    /// install_stop_handler`): where a scenario holds the owner back, for a
    /// bounded time, until another CPU got somewhere.
    pub before_shootdown: fn(),
    /// Whether the final action resets the machine (`crashkit::reset`)
    /// instead of exiting QEMU.
    pub final_reset: bool,
    /// Each CPU, with its index, just before it comes online (before
    /// `K::cpu_online`): where a scenario panics on a CPU crashkit does not
    /// know yet.
    pub before_online: fn(u32),
}

/// What a scenario row does unless it says otherwise: one CPU, no panic,
/// no set-up, every CPU idle.
const BASE: Scenario = Scenario {
    name: "",
    min_cpus: 1,
    panics: false,
    setup: no_setup,
    bsp: idle_bsp,
    ap: idle_ap,
    before_shootdown: no_setup,
    final_reset: false,
    before_online: |_| {},
};

/// The scenario table.
pub static SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "boot",
        bsp: boot_bsp,
        ..BASE
    },
    Scenario {
        name: "panic-bsp",
        panics: true,
        bsp: panic_bsp,
        ..BASE
    },
    Scenario {
        name: "shootdown-warm",
        min_cpus: 2,
        panics: true,
        bsp: crate::warm::bsp,
        ap: crate::warm::ap,
        ..BASE
    },
    Scenario {
        name: "panic-ap",
        min_cpus: 2,
        panics: true,
        ap: panic_ap,
        ..BASE
    },
    Scenario {
        name: "panic-two",
        min_cpus: 2,
        panics: true,
        bsp: panic_two_bsp,
        ap: panic_two_ap,
        before_shootdown: panic_two_wait_for_the_other,
        ..BASE
    },
    Scenario {
        name: "panic-in-nmi",
        min_cpus: 2,
        panics: true,
        setup: panic_in_nmi_setup,
        bsp: panic_in_nmi_bsp,
        ..BASE
    },
    Scenario {
        name: "nmi-spin",
        min_cpus: 2,
        panics: true,
        setup: nmi_spin_setup,
        bsp: nmi_spin_bsp,
        ..BASE
    },
    Scenario {
        name: "unresponsive",
        min_cpus: 2,
        panics: true,
        setup: unresponsive_setup,
        bsp: unresponsive_bsp,
        ..BASE
    },
    Scenario {
        name: "panic-before-online",
        min_cpus: 2,
        panics: true,
        before_online: panic_before_online,
        ..BASE
    },
    Scenario {
        name: "reset",
        panics: true,
        bsp: reset_bsp,
        final_reset: true,
        ..BASE
    },
    Scenario {
        name: "notifier-panic",
        panics: true,
        setup: notifier_panic_setup,
        bsp: panic_bsp,
        ..BASE
    },
    Scenario {
        name: "notifier-lock",
        min_cpus: 2,
        panics: true,
        setup: notifier_lock_setup,
        bsp: notifier_lock_bsp,
        ap: notifier_lock_ap,
        ..BASE
    },
    Scenario {
        name: "inject-nmi",
        panics: true,
        setup: inject_nmi_setup,
        bsp: inject_nmi_bsp,
        ..BASE
    },
    Scenario {
        name: "pic-timer",
        min_cpus: 2,
        panics: true,
        bsp: pic_timer_bsp,
        ..BASE
    },
    Scenario {
        name: "deep-nesting",
        min_cpus: 2,
        panics: true,
        setup: deep_nesting_setup,
        bsp: deep_nesting_bsp,
        ap: deep_nesting_ap,
        ..BASE
    },
    Scenario {
        name: "nmi-roundtrip",
        min_cpus: 2,
        setup: bench::setup,
        bsp: bench::bsp,
        ..BASE
    },
];

/// Index + 1 of the chosen scenario in [`SCENARIOS`], 0 before [`select`].
static CHOSEN: AtomicUsize = AtomicUsize::new(0);

/// Choose the scenario called `name` for this boot (BSP, before the APs
/// start).
pub fn select(name: &str) -> Option<&'static Scenario> {
    let index = SCENARIOS
        .iter()
        .position(|scenario| scenario.name == name)?;
    // Relaxed: the APs read it after their start-up IPIs, which order it.
    CHOSEN.store(index + 1, Ordering::Relaxed);
    SCENARIOS.get(index)
}

/// The chosen scenario.
pub fn current() -> Option<&'static Scenario> {
    // Relaxed: see `select`.
    let chosen = CHOSEN.load(Ordering::Relaxed);
    SCENARIOS.get(chosen.checked_sub(1)?)
}

/// Registrations every scenario has: the serial report and the NMI
/// counts notifiers.
pub fn common_setup() {
    register(&SERIAL_REPORT);
    register(&NMI_COUNTS);
}

fn register(notifier: &'static Notifier) {
    if let Err(error) = K::notifiers().register(notifier) {
        println!(
            "crashkit-test: registering notifier {}: {error}",
            notifier.name()
        );
        exit(ExitCode::Failed);
    }
}

fn register_nmi_handler(handler: &'static NmiHandler) {
    if let Err(error) = K::state().chain().register(handler) {
        println!(
            "crashkit-test: registering NMI handler {}: {error}",
            handler.name()
        );
        exit(ExitCode::Failed);
    }
}

/// Send an NMI to `cpu` or fail the run.
fn send_nmi(cpu: usize) {
    let sent = K::platform().send_nmi(CpuIndex(cpu as u32));
    if sent.is_err() {
        println!("crashkit-test: NMI to cpu {cpu} not sent: {sent:?}");
        exit(ExitCode::Failed);
    }
}

/// Wait (bounded) until `flag` is set, or fail the run saying `what`.
fn wait_for(flag: &AtomicBool, what: &str) {
    // Acquire: pairs with the Release store of whoever sets the flag.
    if !poll_until(5_000_000, || flag.load(Ordering::Acquire)) {
        println!("crashkit-test: timed out waiting for {what}");
        exit(ExitCode::Failed);
    }
}

fn no_setup() {}

fn idle_ap(_cpu: usize) -> ! {
    idle()
}

fn idle_bsp() -> ! {
    idle()
}

// --- boot ---------------------------------------------------------------

fn boot_bsp() -> ! {
    println!("crashkit-test: boot: {} CPUs online", machine::online());
    exit(ExitCode::Ran)
}

// --- panic-bsp, panic-ap ------------------------------------------------

fn panic_bsp() -> ! {
    let name = current().map_or("?", |scenario| scenario.name);
    panic!("{name}: cpu 0 panics on purpose")
}

fn panic_ap(cpu: usize) -> ! {
    if cpu != 1 {
        idle();
    }
    // Every CPU is online once the BSP runs its role; here the AP waits for
    // the others itself (bounded).
    if !machine::wait_all_online(5_000_000) {
        println!("crashkit-test: panic-ap: not every CPU came online");
        exit(ExitCode::Failed);
    }
    panic!("panic-ap: cpu 1 panics on purpose")
}

// --- panic-two ----------------------------------------------------------

static GO: AtomicBool = AtomicBool::new(false);
static CPU1_READY: AtomicBool = AtomicBool::new(false);

fn panic_two_bsp() -> ! {
    wait_for(&CPU1_READY, "cpu 1 to be ready");
    // Release: pairs with cpu 1's Acquire spin; both then panic at once.
    GO.store(true, Ordering::Release);
    panic!("panic-two: cpu 0 panics on purpose")
}

/// The owner (either CPU) waits, at most 2 s, until the other one has
/// panicked too and counted itself as a second panicker: otherwise, under
/// TCG, the shootdown NMI often reaches the other CPU before its panic does.
fn panic_two_wait_for_the_other() {
    if !poll_until(2_000_000, || K::record().panic().second_panickers() >= 1) {
        println!("crashkit-test: panic-two: the other CPU never panicked");
    }
}

fn panic_two_ap(cpu: usize) -> ! {
    if cpu != 1 {
        idle();
    }
    // Release: pairs with the BSP's Acquire in `wait_for`.
    CPU1_READY.store(true, Ordering::Release);
    // Spins without halting: the point is to start the panic at the same
    // instant as the BSP. Bounded by the BSP's store, which follows at once.
    // Acquire: pairs with the BSP's Release store.
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    panic!("panic-two: cpu 1 panics on purpose")
}

// --- panic-in-nmi -------------------------------------------------------

/// Armed by the BSP just before it sends the NMI.
static ARMED: AtomicBool = AtomicBool::new(false);

static PANICKING_NMI_HANDLER: NmiHandler = NmiHandler::new("test-panics-on-cpu1", |event| {
    // Acquire: pairs with the BSP's Release store of ARMED.
    if event.cpu == CpuIndex(1) && ARMED.load(Ordering::Acquire) {
        panic!("panic-in-nmi: cpu 1 panics in its NMI handler");
    }
    NmiOutcome::NotMine
});

fn panic_in_nmi_setup() {
    register_nmi_handler(&PANICKING_NMI_HANDLER);
}

fn panic_in_nmi_bsp() -> ! {
    // Release: the handler on cpu 1 sees ARMED before the NMI that follows.
    ARMED.store(true, Ordering::Release);
    send_nmi(1);
    idle()
}

// --- nmi-spin -----------------------------------------------------------

/// A lock shared by ordinary code and an NMI handler.
static DEVICE: Mutex<K, u64> = Mutex::new(0);
static SPINNING: AtomicBool = AtomicBool::new(false);

static SPINNING_NMI_HANDLER: NmiHandler = NmiHandler::new("test-spins-on-device", |event| {
    // Acquire: pairs with the BSP's Release store of ARMED.
    if event.cpu == CpuIndex(1) && ARMED.load(Ordering::Acquire) {
        // Release: the BSP may panic once this CPU is committed to the spin.
        SPINNING.store(true, Ordering::Release);
        // Never granted: the BSP holds it and panics. The lock's `relax`
        // polls the shootdown, which stops this CPU from here.
        let mut device = DEVICE.lock();
        *device += 1;
        return NmiOutcome::Handled;
    }
    NmiOutcome::NotMine
});

fn nmi_spin_setup() {
    register_nmi_handler(&SPINNING_NMI_HANDLER);
}

fn nmi_spin_bsp() -> ! {
    let _held = DEVICE.lock();
    // Release: as in `panic_in_nmi_bsp`.
    ARMED.store(true, Ordering::Release);
    send_nmi(1);
    wait_for(&SPINNING, "cpu 1 to spin in its NMI handler");
    // Give it time to queue on the lock.
    delay_us(10_000);
    panic!("nmi-spin: cpu 0 panics holding the device lock")
}

// --- unresponsive -------------------------------------------------------

static HALTED_IN_NMI: AtomicBool = AtomicBool::new(false);

static HALTING_NMI_HANDLER: NmiHandler = NmiHandler::new("test-halts-in-nmi", |event| {
    // Acquire: pairs with the BSP's Release store of ARMED.
    if event.cpu == CpuIndex(1) && ARMED.load(Ordering::Acquire) {
        // Release: the BSP panics once this CPU is past reach.
        HALTED_IN_NMI.store(true, Ordering::Release);
        // NMIs are blocked (inside the NMI handler) and interrupts are off:
        // nothing wakes this CPU, and it never polls.
        x86_64::instructions::interrupts::disable();
        loop {
            x86_64::instructions::hlt();
        }
    }
    NmiOutcome::NotMine
});

fn unresponsive_setup() {
    register_nmi_handler(&HALTING_NMI_HANDLER);
}

fn unresponsive_bsp() -> ! {
    // Release: as in `panic_in_nmi_bsp`.
    ARMED.store(true, Ordering::Release);
    send_nmi(1);
    wait_for(&HALTED_IN_NMI, "cpu 1 to halt in its NMI handler");
    panic!("unresponsive: cpu 0 panics, cpu 1 cannot answer")
}

// --- panic-before-online ------------------------------------------------

fn panic_before_online(cpu: u32) {
    if cpu == 1 {
        panic!("panic-before-online: cpu 1 panics before it is online")
    }
}

// --- reset --------------------------------------------------------------

fn reset_bsp() -> ! {
    panic!("reset: cpu 0 panics, crashkit::reset ends the run")
}

// --- notifier-panic -----------------------------------------------------

static PANICKING_NOTIFIER: Notifier =
    Notifier::new("panicking-notifier", NotifierList::PostDump, 10, |_| {
        panic!("notifier-panic: the notifier panics")
    });
static LAST_WORDS: Notifier = Notifier::new("last-words", NotifierList::PostDump, 0, |_| {
    println!("crashkit-test: last words after the panicking notifier");
    BodyResult::Complete
});

fn notifier_panic_setup() {
    register(&PANICKING_NOTIFIER);
    register(&LAST_WORDS);
}

// --- notifier-lock ------------------------------------------------------

/// The console's state, shared by ordinary code and a notifier.
static CONSOLE: NotifierLock<K, u64> = NotifierLock::new(0);
static CONSOLE_HELD: AtomicBool = AtomicBool::new(false);

static CONSOLE_FLUSH: Notifier = Notifier::locked(
    "console-flush",
    NotifierList::Informational,
    5,
    &LockedBody::new(&CONSOLE, |_, lines| {
        *lines += 1;
        BodyResult::Complete
    }),
);

fn notifier_lock_setup() {
    register(&CONSOLE_FLUSH);
}

fn notifier_lock_bsp() -> ! {
    wait_for(&CONSOLE_HELD, "cpu 1 to hold the console lock");
    panic!("notifier-lock: cpu 0 panics while cpu 1 holds the console")
}

fn notifier_lock_ap(cpu: usize) -> ! {
    if cpu != 1 {
        idle();
    }
    let mut console = CONSOLE.lock();
    *console += 1;
    // Release: the BSP panics once the lock is held.
    CONSOLE_HELD.store(true, Ordering::Release);
    // Idle holding the guard: `idle` never returns, so it is never dropped.
    idle()
}

// --- inject-nmi ---------------------------------------------------------

/// Every CPU's NMI entries so far.
fn nmi_entries() -> [u64; kernel_base::MAX_CPUS] {
    // Relaxed: counters; a later value is as good.
    core::array::from_fn(|cpu| NMI_ENTRIES[cpu].load(Ordering::Relaxed))
}

/// Wait (up to `limit_us`) until every CPU the external-NMI setting names
/// counted one more NMI than in `before`; whether they all did.
fn wait_for_external_nmis(before: &[u64; kernel_base::MAX_CPUS], limit_us: u64) -> bool {
    let setting = crate::crash::external_nmi();
    let cpus = machine::online().min(kernel_base::MAX_CPUS);
    poll_until(limit_us, || {
        let now = nmi_entries();
        (0..cpus)
            .filter(|&cpu| setting.reaches(CpuIndex(cpu as u32)))
            .all(|cpu| now[cpu] > before[cpu])
    })
}

fn inject_nmi_bsp() -> ! {
    let setting = crate::crash::external_nmi();
    let before = nmi_entries();
    println!("crashkit-test: ready for inject-nmi");
    let limit = if setting == ExternalNmi::None {
        1_000_000
    } else {
        5_000_000
    };
    let _all = wait_for_external_nmis(&before, limit);
    // Stragglers: a CPU the setting does not name must not count one late.
    delay_us(200_000);
    let after = nmi_entries();
    let name = match setting {
        ExternalNmi::BootCpu => "bsp",
        ExternalNmi::All => "all",
        ExternalNmi::None => "none",
    };
    // One line, printed at once (as `nmi-counts`): one console-lock wait.
    let mut line = kernel_base::Text::<128>::new();
    let mut written = write!(line, "crashkit-test: inject-nmi: extnmi={name} received=");
    for cpu in 0..machine::online().min(kernel_base::MAX_CPUS) {
        let received = after[cpu].wrapping_sub(before[cpu]);
        written = written.and(write!(
            line,
            "{}{received}",
            if cpu == 0 { "" } else { "," }
        ));
    }
    if written.is_err() {
        println!("crashkit-test: inject-nmi: the counts line was cut");
    }
    println!("{}", line.as_str());
    panic!("inject-nmi: cpu 0 panics on purpose")
}

static AWAIT_INJECT_NMI: Notifier =
    Notifier::new("await-inject-nmi", NotifierList::PreDump, 0, |context| {
        let cpu = context.cpu().as_usize();
        let count = || {
            // Relaxed: a counter; any later value will do.
            NMI_ENTRIES
                .get(cpu)
                .map_or(0, |count| count.load(Ordering::Relaxed))
        };
        let before = count();
        // The owner's LINT1 takes none with `extnmi=none`: wait less.
        let limit_us = if crate::crash::external_nmi().reaches(CpuIndex(cpu as u32)) {
            5_000_000
        } else {
            1_000_000
        };
        println!("crashkit-test: ready for inject-nmi");
        if poll_until(limit_us, || count() > before) {
            println!("crashkit-test: inject-nmi arrived on the owner");
            BodyResult::Complete
        } else {
            BodyResult::Degraded
        }
    })
    .with_budget(10_000_000_000);

fn inject_nmi_setup() {
    register(&AWAIT_INJECT_NMI);
}

// --- pic-timer ----------------------------------------------------------

/// IRQ 0 (the PIT) interrupts taken.
static PIC_TIMER: AtomicU64 = AtomicU64::new(0);
/// Other PIC interrupts taken (only IRQ 0 is ever unmasked: these would be
/// spurious IRQ 7 or 15).
static PIC_OTHER: AtomicU64 = AtomicU64::new(0);

/// The PICs' interrupts taken: (timer, others).
pub fn pic_irqs() -> (u64, u64) {
    // Relaxed: statistics.
    (
        PIC_TIMER.load(Ordering::Relaxed),
        PIC_OTHER.load(Ordering::Relaxed),
    )
}

/// A PIC interrupt (vectors 0x20-0x2F, from `idt`): count it and end it.
/// A spurious IRQ 7 or 15 is not in service and gets no EOI of its own
/// (IRQ 15's still needs the master's, for the cascade).
pub fn on_pic_irq(irq: u8) {
    // Relaxed (both): statistics, pairing with nothing; written only by
    // the boot CPU (the PICs' output reaches its LINT0 alone) with
    // interrupts off, read by `pic_irqs` for the serial report.
    if irq == 0 {
        PIC_TIMER.fetch_add(1, Ordering::Relaxed);
    } else {
        PIC_OTHER.fetch_add(1, Ordering::Relaxed);
    }
    match irq {
        7 => {}
        15 => kernel_base::pic::end_of_interrupt(0),
        _ => kernel_base::pic::end_of_interrupt(irq),
    }
}

/// Timer interrupts the BSP waits for before it panics.
const PIC_TICKS: u64 = 100;

fn pic_timer_bsp() -> ! {
    kernel_base::pic::start_timer(1000);
    kernel_base::pic::unmask(0);
    x86_64::instructions::interrupts::enable();
    // Too few is the runner's to judge (from `nmi-counts`).
    let _enough = poll_until(5_000_000, || pic_irqs().0 >= PIC_TICKS);
    let (timer, other) = pic_irqs();
    println!(
        "crashkit-test: pic-timer: {timer} timer interrupts, {other} others, NMI entries on cpu 0: {}",
        nmi_entries()[0]
    );
    // Interrupts stay enabled: the panic path turns them off itself.
    panic!("pic-timer: cpu 0 panics with the PIC's timer running")
}

// --- deep-nesting -------------------------------------------------------

/// Contexts on cpu 1 waiting for [`NEST_LOCK`] at once: 0 task, 1 NMI,
/// 2-5 invalid-opcode exceptions (`ud2`, one inside the other). Level 0 is the lock's pending
/// waiter, levels 1-4 take the CPU's four queue nodes, level 5 finds none
/// and falls back to test-and-set (counted).
const NEST_LEVELS: usize = 6;

/// The lock every level waits for; cpu 0 holds it and panics.
static NEST_LOCK: Mutex<Nesting, u64> = Mutex::new(0);
/// cpu 0 holds [`NEST_LOCK`].
static NEST_HELD: AtomicBool = AtomicBool::new(false);
/// The deepest level cpu 1 entered.
static NEST_DEPTH: AtomicUsize = AtomicUsize::new(0);
/// The levels raised so far (the next one to raise is this + 1).
static NEST_RAISED: AtomicUsize = AtomicUsize::new(0);

/// The test's lock domain: the kernel's (same queues, same shootdown
/// poll), plus a `relax` that, on cpu 1, raises the next nesting level
/// while the current one waits.
#[derive(Debug)]
struct Nesting;

impl QueueDomain for Nesting {
    fn queues() -> &'static [CpuQueue] {
        K::state().queues()
    }

    fn current_cpu() -> CpuIndex {
        <K as QueueDomain>::current_cpu()
    }

    fn now_ns() -> u64 {
        <K as QueueDomain>::now_ns()
    }

    fn relax() {
        <K as QueueDomain>::relax();
        if <K as QueueDomain>::current_cpu() != CpuIndex(1) {
            return;
        }
        // Relaxed (both): only cpu 1 writes and reads these, in nested
        // contexts that finish their writes before they wait.
        let depth = NEST_DEPTH.load(Ordering::Relaxed);
        if depth + 1 < NEST_LEVELS
            && NEST_RAISED
                .compare_exchange(depth, depth + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            raise(depth + 1);
        }
    }
}

/// Enter nesting level `level` on cpu 1 (level 1 is asynchronous: an NMI
/// to itself; the others are invalid-opcode faults).
///
/// The levels above the NMI are `ud2` (#UD, a fault the CPU raises) rather
/// than software interrupts: under a paravirtual KVM (kvm-pvm, which runs
/// the guest kernel in hardware ring 3) `int 0x40` and `int3` both trap
/// into the host, whose instruction emulator cannot perform them in 64-bit
/// mode ("KVM internal error. Suberror: 1 ... emulation failure", RIP at
/// the `cd 40` or `cc`), while a #UD is reflected into the guest. The lock
/// counts nesting per CPU, not per vector, so one vector nested four times
/// is as deep as four vectors.
fn raise(level: usize) {
    match level {
        1 => send_nmi(1),
        // SAFETY: #UD has a present ring-0 gate to an entry stub for a
        // vector without error code (`idt::fill`), on the current stack;
        // with NEST_RAISED at 2-5 on cpu 1 its handler enters that level
        // and waits on the lock until the shootdown stops this CPU, never
        // returning into this code.
        2..=5 => unsafe { core::arch::asm!("ud2") },
        _ => {}
    }
}

/// From the #UD handler: if this is a nesting level cpu 1 raised (see
/// [`raise`]), enter it (never returns while the lock is held) and say so.
pub fn nest_on_invalid_opcode() -> bool {
    // Relaxed: cpu 1 raised this itself after storing NEST_RAISED.
    let level = NEST_RAISED.load(Ordering::Relaxed);
    let depth = NEST_DEPTH.load(Ordering::Relaxed);
    if <K as QueueDomain>::current_cpu() == CpuIndex(1)
        && (2..NEST_LEVELS).contains(&level)
        && depth + 1 == level
    {
        nest_level(level);
        return true;
    }
    false
}

/// Nesting level `level` on cpu 1: wait for [`NEST_LOCK`] (from the
/// software-interrupt handlers, and from the NMI handler and the task).
pub fn nest_level(level: usize) {
    // Relaxed: see `Nesting::relax`.
    NEST_DEPTH.store(level, Ordering::Relaxed);
    let mut count = NEST_LOCK.lock();
    *count += 1;
}

static NESTING_NMI_HANDLER: NmiHandler = NmiHandler::new("test-nests", |event| {
    // Relaxed: cpu 1 raised this NMI itself after storing NEST_RAISED.
    if event.cpu == CpuIndex(1)
        && NEST_RAISED.load(Ordering::Relaxed) >= 1
        && NEST_DEPTH.load(Ordering::Relaxed) == 0
    {
        nest_level(1);
        return NmiOutcome::Handled;
    }
    NmiOutcome::NotMine
});

fn deep_nesting_setup() {
    register_nmi_handler(&NESTING_NMI_HANDLER);
}

fn deep_nesting_bsp() -> ! {
    let _held = NEST_LOCK.lock();
    // Release: cpu 1 starts waiting only once the lock is held.
    NEST_HELD.store(true, Ordering::Release);
    let fallbacks = || {
        K::state()
            .queues()
            .get(1)
            .map_or(0, |queue| queue.stats().fallbacks)
    };
    if poll_until(5_000_000, || fallbacks() >= 1) {
        panic!("deep-nesting: cpu 0 panics while cpu 1 waits at 6 levels");
    }
    println!(
        "crashkit-test: deep-nesting: no fallback on cpu 1 (deepest level {})",
        NEST_DEPTH.load(Ordering::Relaxed)
    );
    exit(ExitCode::Failed)
}

fn deep_nesting_ap(cpu: usize) -> ! {
    if cpu != 1 {
        idle();
    }
    wait_for(&NEST_HELD, "cpu 0 to hold the nesting lock");
    nest_level(0);
    idle()
}
