//! The owner's sequence: run the steps of [`Step`] from a given one to the
//! end, writing each into the crash record as it goes. The order, and what
//! a re-entered panic skips, are in `docs/panic-path.md` and in
//! [`crate::step`].

use core::fmt::Write as _;

use crashkit_nmi::{Platform, RegisterFrame};
use crashkit_notifiers::{NotifierList, NotifierRecorder, NotifierReport, PanicInputs};
use crashkit_record::{DumpResult, FinalAction, NotifierEntry, PanicPhase, PhaseStamp, Text};

use crate::access::{CrashLog, NotifierLists};
use crate::kernel::{DumpAttempt, FinalChoice, Kernel};
use crate::step::Step;

/// The message buffer's capacity, as the record defines it.
const MESSAGE: usize = crashkit_record::layout::panic::MESSAGE_CAPACITY;

/// Run the sequence from `start` to the end. Never returns: the last step
/// is a final action or parking.
pub(crate) fn run_from<K: Kernel>(
    start: Step,
    message: &dyn core::fmt::Display,
    frame: &RegisterFrame,
) -> ! {
    let config = K::CONFIG;
    let mut step = start;
    loop {
        if step == Step::Park {
            #[cfg(feature = "defmt")]
            defmt::warn!("the panic path gave up: parking this CPU");
            park::<K>(FinalAction::HaltAfterFailure);
        }
        if step.runs(config.informational_before_dump) {
            K::progress().enter(step);
            run_step::<K>(step, message, frame);
        }
        step = step.after();
    }
}

/// One step. Returns when the step is done (or found nothing to do); the
/// final action does not return.
fn run_step<K: Kernel>(step: Step, message: &dyn core::fmt::Display, frame: &RegisterFrame) {
    let platform = K::platform();
    let panic = K::record().panic_section();
    match step {
        Step::Claim => {
            let cpu = platform.current_cpu();
            if let Some(slot) = K::record().cpu_slots().get(cpu.as_usize()) {
                // A refusal means the slot is final already (a shootdown of
                // an earlier, failed owner?): nothing to add.
                let _ = slot.record_owner(
                    frame,
                    &platform.control_registers(),
                    K::nmi_depth(),
                    platform.now_ns(),
                );
            }
            // `fmt::Error` means the buffer filled up; the record says it
            // was truncated.
            let _ = write!(panic.message_writer(), "{message}");
            #[cfg(feature = "defmt")]
            defmt::error!(
                "panic on CPU {=u32}: {=str}",
                cpu.0,
                panic.message().as_str().unwrap_or("(not UTF-8)")
            );
        }
        Step::StopCpus => {
            panic.set_phase(PanicPhase::StoppingCpus);
            panic.stamp(PhaseStamp::ShootdownStart, platform.now_ns());
            K::install_stop_handler();
            #[cfg(feature = "defmt")]
            defmt::info!("stopping the other CPUs");
            let summary = K::shootdown().stop_other_cpus(platform, &K::CONFIG.shootdown);
            panic.record_shootdown(&summary.totals);
            #[cfg(feature = "defmt")]
            defmt::info!(
                "shootdown: {=u32} stopped, {=u32} unresponsive, {=u32} absent; NMIs {=u32} sent, {=u32} resent, {=u32} send errors",
                summary.totals.stopped,
                summary.totals.unresponsive,
                summary.totals.absent,
                summary.totals.nmis_sent,
                summary.totals.nmis_resent,
                summary.totals.send_errors
            );
            panic.stamp(PhaseStamp::ShootdownEnd, platform.now_ns());
        }
        Step::Hypervisor => run_list::<K>(NotifierList::Hypervisor),
        Step::InformationalBeforeDump | Step::InformationalAfterDump => {
            run_list::<K>(NotifierList::Informational);
        }
        Step::PreDump => run_list::<K>(NotifierList::PreDump),
        Step::PostDump => run_list::<K>(NotifierList::PostDump),
        Step::DumpHandover => {
            panic.set_phase(PanicPhase::DumpHandover);
            panic.stamp(PhaseStamp::DumpHandoverStart, platform.now_ns());
            // Written before control may leave for the capture kernel, so
            // the capture kernel reads `Started`.
            panic.set_dump_result(DumpResult::Started, 0);
            #[cfg(feature = "defmt")]
            defmt::info!("dump hand-over");
            match K::dump() {
                DumpAttempt::NotConfigured => {
                    #[cfg(feature = "defmt")]
                    defmt::info!("dump: none configured");
                    panic.set_dump_result(DumpResult::NotConfigured, 0);
                }
                DumpAttempt::Failed(detail) => {
                    #[cfg(feature = "defmt")]
                    defmt::error!("dump: failed (detail {=u32:#x})", detail);
                    panic.set_dump_result(DumpResult::Failed, detail);
                }
                DumpAttempt::WrittenInPlace(outcome) => {
                    #[cfg(feature = "defmt")]
                    defmt::info!("dump: written in place (outcome {=u32})", outcome);
                    panic.set_dump_result(DumpResult::WrittenInPlace, outcome);
                }
            }
            panic.stamp(PhaseStamp::DumpHandoverEnd, platform.now_ns());
        }
        Step::FinalAction => {
            panic.set_phase(PanicPhase::FinalAction);
            panic.stamp(PhaseStamp::FinalAction, platform.now_ns());
            record_lock_events::<K>();
            match K::CONFIG.final_action {
                FinalChoice::Halt => {
                    #[cfg(feature = "defmt")]
                    defmt::info!("final action: halt");
                    park::<K>(FinalAction::Halt)
                }
                FinalChoice::Reboot => {
                    #[cfg(feature = "defmt")]
                    defmt::info!("final action: reboot");
                    panic.set_final_action(FinalAction::Reboot);
                    K::reboot()
                }
            }
        }
        Step::Park => park::<K>(FinalAction::HaltAfterFailure),
    }
}

/// Run one notifier list into the record.
fn run_list<K: Kernel>(list: NotifierList) {
    let platform = K::platform();
    let panic = K::record().panic_section();
    panic.set_phase(PanicPhase::Notifiers);
    let now = platform.now_ns();
    if panic.stamp_ns(PhaseStamp::NotifiersStart) == 0 {
        panic.stamp(PhaseStamp::NotifiersStart, now);
    }
    with_notifiers::<K>(|registry, inputs, recorder| {
        if registry.run_list(list, inputs, recorder).is_err() {
            // A run was left interrupted and nobody resumed it (the
            // escalation path resumes before it continues, so this is a
            // list run twice or a registry in an odd state): finish that
            // run, then try ours once.
            let _ = registry.resume(inputs, recorder);
            let _ = registry.run_list(list, inputs, recorder);
        }
    });
}

/// Run `work` on the notifier registry with the panic's inputs (the
/// message as the record holds it) and a recorder into the record, then
/// stamp the end of the notifiers.
pub(crate) fn with_notifiers<K: Kernel>(
    work: impl FnOnce(&K::Notifiers, &PanicInputs<'_>, &mut RecordOutcomes<K>),
) {
    let platform = K::platform();
    let panic = K::record().panic_section();
    let message: Text<MESSAGE> = panic.message();
    let inputs = PanicInputs::new(platform, message.as_str().unwrap_or(""));
    work(K::notifiers(), &inputs, &mut RecordOutcomes::<K>::new());
    panic.stamp(PhaseStamp::NotifiersEnd, platform.now_ns());
}

/// Record the lock statistics the kernel reports.
fn record_lock_events<K: Kernel>() {
    let (fallbacks, breaks) = K::lock_events();
    K::record()
        .panic_section()
        .record_lock_totals(fallbacks, breaks);
}

/// Park the owner for good, with `action` as the record's final action.
pub(crate) fn park<K: Kernel>(action: FinalAction) -> ! {
    let panic = K::record().panic_section();
    panic.set_final_action(action);
    panic.set_phase(PanicPhase::Halted);
    K::progress().enter(Step::Park);
    K::platform().park()
}

/// The panic path's notifier recorder: each report becomes a notifier slot
/// of the crash record (a full record counts the outcomes it dropped).
pub(crate) struct RecordOutcomes<K>(core::marker::PhantomData<K>);

impl<K: Kernel> RecordOutcomes<K> {
    pub(crate) fn new() -> Self {
        Self(core::marker::PhantomData)
    }
}

impl<K: Kernel> NotifierRecorder for RecordOutcomes<K> {
    fn record(&mut self, report: &NotifierReport) {
        // `Full` is counted by the record itself (`notifiers_dropped`).
        let _ = K::record().record_notifier(&NotifierEntry {
            list: report.list.code(),
            outcome: report.outcome.code(),
            priority: report.priority,
            duration_ns: report.duration_ns,
            name: report.name,
        });
    }
}
