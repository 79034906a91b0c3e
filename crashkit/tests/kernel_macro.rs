//! `crashkit::kernel!` on the host: what it generates compiles, and the
//! parts that do not touch the hardware behave as the guide says, before
//! bring-up in particular (the platform's boot phase: no CPU registered, so
//! no APIC access; an xAPIC at address 0 would fault if anything read it).

use core::time::Duration;

use crashkit::nmi::PanicFlag;
use crashkit::notifiers::{NotifierOutcome, NotifierRecorder, NotifierReport, PanicInputs};
use crashkit::prelude::*;
use crashkit::record::layout;
use x86_64::structures::idt::InterruptDescriptorTable;

fn reset() -> ! {
    std::process::abort()
}

crashkit::kernel! {
    /// A kernel that reboots at the end.
    pub struct Rebooting;
    cpus: 4,
    notifiers: 6,
    // SAFETY: a test; no method that reaches the APIC is called; the
    // boot phase does not read it.
    apic: unsafe { LocalApic::xapic(0) },
    final_action: reboot(reset),
    console: CONSOLE,
}

fn dump() -> DumpAttempt {
    DumpAttempt::Failed(7)
}

fn before_stop() {}

crashkit::kernel! {
    struct Halting;
    cpus: 2,
    notifiers: 1,
    // SAFETY: a test; as above.
    apic: unsafe { LocalApic::x2apic() },
    final_action: halt,
    nmi_handlers: 3,
    config: PanicConfig {
        informational_before_dump: true,
        ..PanicConfig::DEFAULT
    },
    dump: dump,
    before_stop: before_stop,
}

/// A kernel's own constants, named as the macro's internals might be.
const CPUS: usize = 3;
const NOTIFIERS: usize = 5;
static OWN_FLAG: PanicFlag = PanicFlag::new();

crashkit::kernel! {
    /// Capacities from the kernel's own constants, its own panic flag, and
    /// a panic on an unclaimed NMI.
    struct Named;
    cpus: CPUS,
    notifiers: NOTIFIERS,
    // SAFETY: a test; as above.
    apic: unsafe { LocalApic::x2apic() },
    final_action: halt,
    unknown_nmi: UnknownNmiPolicy::Escalate(Named::panic_on_unknown_nmi),
    panic_flag: OWN_FLAG,
}

static COUNTER: Mutex<Rebooting, u64> = Mutex::new(0);
/// The kernel's console: what was printed on it.
static CONSOLE: NotifierLock<Rebooting, String> = NotifierLock::new(String::new());
static DEVICE: NotifierLock<Rebooting, u32> = NotifierLock::new(0);

#[test]
fn the_choices_reach_the_panic_path() {
    assert_eq!(Rebooting::CONFIG.final_action, FinalChoice::Reboot);
    assert_eq!(
        Rebooting::CONFIG.shootdown,
        PanicConfig::DEFAULT.shootdown,
        "no config given: the defaults"
    );
    assert_eq!(Halting::CONFIG.final_action, FinalChoice::Halt);
    const { assert!(Halting::CONFIG.informational_before_dump) };
    assert_eq!(Halting::dump(), DumpAttempt::Failed(7));
    assert_eq!(Rebooting::dump(), DumpAttempt::NotConfigured);
}

#[test]
fn the_kernels_own_constants_and_panic_flag_are_the_ones_used() {
    assert_eq!(Named::record().cpu_slots().len(), CPUS);
    assert_eq!(Named::state().notifiers().capacity(), NOTIFIERS);
    assert!(core::ptr::eq(<Named as Kernel>::panic_flag(), &OWN_FLAG));
    assert!(core::ptr::eq(
        <Named as QueueDomain>::panic_flag(),
        &OWN_FLAG
    ));
    assert!(core::ptr::eq(
        <Halting as Kernel>::panic_flag(),
        &crashkit::nmi::PANIC
    ));
}

#[test]
fn the_record_and_registry_have_the_capacities_given() {
    assert_eq!(Rebooting::record().cpu_slots().len(), 4);
    assert_eq!(Halting::record().cpu_slots().len(), 2);
    assert_eq!(Rebooting::shootdown().slots().len(), 4);
    // The record's slots are the shootdown's: one set of CPU slots.
    assert!(core::ptr::eq(
        Rebooting::record().cpu_slots(),
        Rebooting::shootdown().slots()
    ));
    assert_eq!(Rebooting::state().queues().len(), 4);
    assert_eq!(Halting::state().contexts().len(), 2);
    // The record starts with its magic, for scanners.
    let mut bytes = vec![0u8; 1 << 20];
    let size = Rebooting::record().snapshot(&mut bytes).unwrap();
    assert_eq!(&bytes[..8], &layout::MAGIC);
    // Four CPU slots and six notifier slots.
    assert_eq!(size, crashkit::record::CrashRecord::<4, 6>::TOTAL_SIZE);
}

#[test]
fn before_bring_up_the_caller_is_cpu_0_and_locks_work() {
    // Nothing registered: the boot phase.
    assert_eq!(Rebooting::platform().cpu_count(), 0);
    assert_eq!(<Rebooting as QueueDomain>::current_cpu(), CpuIndex(0));
    assert_eq!(Rebooting::nmi_depth(), 0);
    *COUNTER.lock() += 1;
    {
        let guard = COUNTER.lock();
        // Held: a bounded wait gives up; its clock is TSC ticks until the
        // frequency is given, still bounded.
        assert!(COUNTER.try_lock_for(Duration::from_millis(2)).is_none());
        drop(guard);
    }
    assert_eq!(*COUNTER.lock(), 1);
    *DEVICE.lock() += 1;
    assert_eq!(DEVICE.panic_blocking_locks(), 0);
    assert_eq!(Rebooting::lock_events(), (0, 0));
}

#[test]
fn the_tsc_frequency_is_given_at_boot() {
    assert_eq!(Halting::platform().tsc_hz(), 0);
    Halting::set_tsc_hz(2_000_000_000);
    assert_eq!(Halting::platform().tsc_hz(), 2_000_000_000);
}

static CLAIMS_NOTHING: NmiHandler = NmiHandler::new("test", |_| NmiOutcome::NotMine);
static REPORT: Notifier = Notifier::locked(
    "console-report",
    NotifierList::Informational,
    0,
    &LockedBody::new(&DEVICE, |_, lines| {
        *lines += 1;
        BodyResult::Complete
    }),
);

#[test]
fn handlers_and_notifiers_register_in_the_generated_statics() {
    Rebooting::state()
        .chain()
        .register(&CLAIMS_NOTHING)
        .unwrap();
    assert_eq!(Rebooting::state().chain().handlers().len(), 1);
    Halting::notifiers().register(&REPORT).unwrap();
    assert_eq!(Halting::notifiers().len(), 1);
}

/// Keeps what the runner reports.
#[derive(Default)]
struct Outcomes(Vec<(&'static str, NotifierOutcome)>);

impl NotifierRecorder for Outcomes {
    fn record(&mut self, report: &NotifierReport) {
        self.0.push((report.name, report.outcome));
    }
}

#[test]
fn the_console_notifier_is_there_from_the_start_and_only_tries_the_lock() {
    let registry = Rebooting::notifiers();
    assert_eq!(
        registry.len(),
        1,
        "the console's notifier, registered at compile time"
    );
    let inputs = PanicInputs::new(Rebooting::platform(), "the message");
    let mut outcomes = Outcomes::default();
    registry
        .run_list(NotifierList::Informational, &inputs, &mut outcomes)
        .unwrap();
    assert_eq!(outcomes.0, [("console", NotifierOutcome::Ran)]);
    assert_eq!(*CONSOLE.lock(), "crashkit: cpu 0 panicked: the message\n");

    // Held by someone else (a CPU stopped while printing): skipped.
    let held = CONSOLE.lock();
    let mut outcomes = Outcomes::default();
    registry
        .run_list(NotifierList::Informational, &inputs, &mut outcomes)
        .unwrap();
    assert_eq!(outcomes.0, [("console", NotifierOutcome::SkippedLockBusy)]);
    assert_eq!(CONSOLE.busy_skips(), 1);
    drop(held);
}

#[test]
fn the_entries_are_installed_on_their_ist_stacks() {
    let mut idt = InterruptDescriptorTable::new();
    let ist = IstSlots {
        nmi: 0,
        double_fault: 1,
        machine_check: 2,
    };
    // SAFETY: a test; the IDT is never loaded.
    unsafe { Rebooting::install_entries(&mut idt, &ist) }.unwrap();
    let nmi = idt.non_maskable_interrupt.handler_addr().as_u64();
    let double_fault = idt.double_fault.handler_addr().as_u64();
    let machine_check = idt.machine_check.handler_addr().as_u64();
    assert!(nmi != 0 && double_fault != 0 && machine_check != 0);
    assert!(nmi != double_fault && double_fault != machine_check && nmi != machine_check);
    let shown = format!("{:?}", idt.double_fault);
    assert!(shown.contains("stack_index: Some(1)"), "{shown}");

    // A bad IST slot: refused before anything is written.
    let mut fresh = InterruptDescriptorTable::new();
    let bad = IstSlots {
        machine_check: 7,
        ..ist
    };
    // SAFETY: a test; never loaded.
    let refused = unsafe { Halting::install_entries(&mut fresh, &bad) };
    assert!(refused.is_err());
    assert_eq!(fresh.non_maskable_interrupt.handler_addr().as_u64(), 0);
}
