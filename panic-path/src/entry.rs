//! The entries: [`panic()`] for `#[panic_handler]`, [`panic_in_exception`]
//! for NMI and exception handlers. Both disable interrupts, then one
//! compare-and-swap on the panic flag decides what this CPU does (the table
//! is in the crate docs and `docs/panic-path.md`).

use crashkit_nmi::{PanicClaim, Platform, RegisterFrame};
use crashkit_record::{DumpResult, FinalAction, PanicPhase, PhaseStamp, Skipped};

use crate::access::{CrashLog, NotifierLists};
use crate::kernel::Kernel;
use crate::sequence::{park, run_from, with_notifiers};
use crate::step::Step;

/// The panic handler's body: call it from the kernel's `#[panic_handler]`.
///
/// ```ignore
/// #[panic_handler]
/// fn panic(info: &core::panic::PanicInfo) -> ! {
///     crashkit_panic_path::panic::<MyKernel>(info)
/// }
/// ```
///
/// The panicking CPU's registers are captured here
/// ([`RegisterFrame::capture`]); the message is `info`'s `Display` (the
/// location and the message).
pub fn panic<K: Kernel>(info: &core::panic::PanicInfo<'_>) -> ! {
    let frame = RegisterFrame::capture();
    enter::<K>(info, &frame)
}

/// A fatal condition found in an NMI or exception handler (an unknown NMI
/// under a "panic" policy, a machine check, a double fault): panic with the
/// interrupted context's registers, `frame`, as the entry stub saved them.
pub fn panic_in_exception<K: Kernel>(
    message: core::fmt::Arguments<'_>,
    frame: &RegisterFrame,
) -> ! {
    enter::<K>(&message, frame)
}

/// Both entries: interrupts off, claim, then the owner's sequence, a second
/// panicker's wait, or an escalation.
fn enter<K: Kernel>(message: &dyn core::fmt::Display, frame: &RegisterFrame) -> ! {
    let platform = K::platform();
    platform.disable_interrupts();
    let now = platform.now_ns();
    let cpu = platform.current_cpu();
    match K::panic_flag().claim(cpu) {
        PanicClaim::First => {
            let panic = K::record().panic_section();
            panic.stamp(PhaseStamp::PanicEntry, now);
            // `cpu` won the flag (`CpuIndex::UNKNOWN` for a CPU without an
            // index: the record stores it as such).
            panic.set_owner(cpu);
            panic.set_phase(PanicPhase::Claimed);
            run_from::<K>(Step::Claim, message, frame)
        }
        PanicClaim::OwnedBy(_) => second_panicker::<K>(frame),
        PanicClaim::Reentered => escalate::<K>(message, frame),
    }
}

/// A CPU that lost the panic flag: count itself, then wait for the owner's
/// shootdown to stop it. The shootdown's NMI stops it if it can take NMIs
/// (its slot then holds the registers the NMI interrupted: this wait loop);
/// if it sees the shootdown issued first, or cannot take NMIs (it panicked
/// inside an NMI handler), it stops itself and records `frame`, the
/// registers it panicked with (`StopPath::Poll`), which say more than the
/// wait loop's. If the owner never shoots it down within the configured
/// wait, it parks on its own, unrecorded (the owner's record then shows it
/// as the shootdown left it).
fn second_panicker<K: Kernel>(frame: &RegisterFrame) -> ! {
    let platform = K::platform();
    K::record().panic_section().add_second_panicker();
    let start = platform.now_ns();
    let wait = K::CONFIG.second_panicker_wait_ns;
    let depth = K::nmi_depth();
    while platform.now_ns().saturating_sub(start) < wait {
        K::shootdown().poll_with_frame(platform, frame, depth);
        platform.relax();
    }
    platform.park()
}

/// The owner panicked again: record it, skip what failed, continue the
/// sequence from the next step (see [`crate::step`]). Past
/// [`Kernel::MAX_ESCALATIONS`] re-entries, park at once.
fn escalate<K: Kernel>(message: &dyn core::fmt::Display, frame: &RegisterFrame) -> ! {
    let platform = K::platform();
    let panic = K::record().panic_section();
    let progress = K::progress();
    panic.add_reentry();
    if progress.escalate() > K::MAX_ESCALATIONS {
        park::<K>(FinalAction::HaltAfterFailure);
    }
    let failed = progress.current();
    let (phase, skipped) = blame(failed);
    // `Full`: the log keeps the first entries; the count and the skipped
    // mask still grow.
    let _ = panic.record_escalation(phase, skipped, platform.now_ns());
    match failed {
        Step::DumpHandover => panic.set_dump_result(DumpResult::Failed, DUMP_PANICKED),
        Step::FinalAction | Step::Park => park::<K>(FinalAction::HaltAfterFailure),
        step if step.is_notifier_list() => {
            // The registry's cursor names the notifier that panicked: it is
            // recorded `Panicked` and the rest of its list runs (or is
            // recorded `NotRun`, by the registry's policy).
            // The list ended (finished by the resume, or given up): the
            // helper stamps the end of the notifiers.
            with_notifiers::<K>(|registry, inputs, recorder| {
                let _ = registry.resume(inputs, recorder);
            });
        }
        _ => {}
    }
    run_from::<K>(failed.after(), message, frame)
}

/// `dump_detail` when the dump hook panicked instead of returning.
pub const DUMP_PANICKED: u32 = u32::MAX;

/// The record's phase and skipped bit for a failure in `step`.
fn blame(step: Step) -> (PanicPhase, Skipped) {
    match step {
        Step::Claim => (PanicPhase::Claimed, Skipped::CLAIM),
        Step::StopCpus => (PanicPhase::StoppingCpus, Skipped::SHOOTDOWN),
        Step::Hypervisor
        | Step::InformationalBeforeDump
        | Step::PreDump
        | Step::InformationalAfterDump
        | Step::PostDump => (PanicPhase::Notifiers, Skipped::NOTIFIER),
        Step::DumpHandover => (PanicPhase::DumpHandover, Skipped::DUMP_HANDOVER),
        Step::FinalAction | Step::Park => (PanicPhase::FinalAction, Skipped::FINAL_ACTION),
    }
}
