//! The scenarios: how each one boots (CPU counts, command line) and what
//! its crash record must say. The kernel side of each is in
//! `tests/kernel` (its README has the table); the names are the contract.
//!
//! Conventions of the test kernel the checks rely on: CPU index 0 is the
//! boot CPU and the others follow in MADT order; the record has
//! [`RECORD_CPUS`] CPU slots (those past `-smp` must read `Absent`); the
//! panic path's final action is the kernel's reboot callback, which exits
//! QEMU with "ran" (so a finished panic reads phase `FinalAction`, final
//! action `Reboot`); no dump is configured yet.

use std::sync::atomic::{AtomicBool, Ordering};

use crashkit_record::SlotFrame;
use crashkit_record::{
    CpuState, Decoded, DumpResult, FinalAction, NotifierOutcome, PanicPhase, PhaseStamp,
    RecordView, Skipped, StopPath,
};

/// CPU slots in the test kernel's record.
pub const RECORD_CPUS: u32 = 8;

/// Whether the boots hand over to the capture kernel (`--capture`): a
/// panic then ends in phase `DumpHandover` with the dump `Started`, its
/// final action never reached (the capture kernel resets the machine).
/// Set once by `main` before any job runs.
static CAPTURE: AtomicBool = AtomicBool::new(false);

/// Judge the records of boots that hand over to the capture kernel.
pub fn set_capture(capture: bool) {
    // Relaxed: set before the job threads start (thread spawn orders it).
    CAPTURE.store(capture, Ordering::Relaxed);
}

fn capture() -> bool {
    // Relaxed: see `set_capture`.
    CAPTURE.load(Ordering::Relaxed)
}

/// One scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// The name on the kernel command line (`scenario=NAME`).
    pub name: &'static str,
    /// The `-smp` values it runs with.
    pub cpus: &'static [u32],
    /// Whether the runner sends QMP `inject-nmi` each time the kernel asks
    /// (serial line `crashkit-test: ready for inject-nmi`, counted).
    pub qmp_inject_nmi: bool,
    /// More of the kernel command line, after `scenario=NAME` (e.g.
    /// `extnmi=all`); part of the boot's label.
    pub append: &'static str,
    /// A check of the serial output too, given the record, the CPU count
    /// and the serial text (for what the record does not hold).
    pub serial_check: Option<SerialCheck>,
    /// Whether its final action resets the machine (QEMU, run with
    /// `-no-reboot`, then exits with status 0) instead of exiting "ran".
    pub ends_in_reset: bool,
    /// What it checks, given the parsed record and the CPU count.
    pub check: fn(&RecordView<'_>, u32) -> Result<(), String>,
}

/// A check of the record, the CPU count and the serial output together.
pub type SerialCheck = fn(&RecordView<'_>, u32, &str) -> Result<(), String>;

/// Every scenario, in the order they run.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "boot",
        cpus: &[1, 2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: check_boot,
    },
    Scenario {
        name: "panic-bsp",
        cpus: &[1, 2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| Panic::new("panic-bsp", 0).check(view, cpus),
    },
    Scenario {
        name: "shootdown-warm",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| Panic::new("shootdown-warm", 0).check(view, cpus),
    },
    Scenario {
        name: "panic-ap",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| Panic::new("panic-ap", 1).check(view, cpus),
    },
    Scenario {
        name: "panic-two",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: check_panic_two,
    },
    Scenario {
        name: "panic-in-nmi",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic::new("panic-in-nmi", 1).check(view, cpus)?;
            let depth = view.cpu(1).map(|cpu| cpu.nmi_depth());
            expect(depth == Some(1), || {
                format!("the owner panicked in its NMI handler, but its depth reads {depth:?}")
            })
        },
    },
    Scenario {
        name: "nmi-spin",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic {
                special: &[(1, StopPath::Poll, Some(1))],
                ..Panic::new("nmi-spin", 0)
            }
            .check(view, cpus)
        },
    },
    Scenario {
        name: "unresponsive",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: check_unresponsive,
    },
    Scenario {
        name: "panic-before-online",
        cpus: &[2, 4],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: check_panic_before_online,
    },
    Scenario {
        name: "reset",
        cpus: &[1, 2],
        qmp_inject_nmi: false,
        ends_in_reset: true,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic::new("reset: cpu 0 panics, crashkit::reset ends the run", 0).check(view, cpus)
        },
    },
    Scenario {
        name: "notifier-panic",
        cpus: &[1, 2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic {
                notifiers: &[
                    ("panicking-notifier", NotifierOutcome::Panicked),
                    ("last-words", NotifierOutcome::Ran),
                ],
                escalations: 1,
                ..Panic::new("notifier-panic: cpu 0 panics on purpose", 0)
            }
            .check(view, cpus)?;
            let panic = view.panic();
            expect(panic.skipped() == Skipped::NOTIFIER, || {
                format!("skipped {:?}, expected the notifier", panic.skipped())
            })?;
            expect(panic.reentries() == 1, || {
                format!("{} re-entries, expected 1", panic.reentries())
            })?;
            let order: Vec<String> = view
                .notifiers()
                .map(|n| n.name().as_str().unwrap_or("").to_owned())
                .collect();
            let at = |name: &str| order.iter().position(|n| n == name);
            expect(at("panicking-notifier") < at("last-words"), || {
                format!("last-words did not run after the panicking notifier: {order:?}")
            })
        },
    },
    Scenario {
        name: "notifier-lock",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic {
                notifiers: &[("console-flush", NotifierOutcome::SkippedLockBusy)],
                ..Panic::new("notifier-lock", 0)
            }
            .check(view, cpus)
        },
    },
    Scenario {
        name: "deep-nesting",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic {
                special: &[(1, StopPath::Poll, Some(1))],
                ..Panic::new("deep-nesting", 0)
            }
            .check(view, cpus)?;
            let fallbacks = view.panic().qspinlock_fallbacks();
            expect(fallbacks == 1, || {
                format!("{fallbacks} QSpinLock fallbacks, expected the one of the fifth level")
            })
        },
    },
    Scenario {
        name: "nmi-roundtrip",
        cpus: &[2, 4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        // The benchmark scenario: it checks its own acknowledgement counts
        // (exit "failed" otherwise) and does not panic.
        check: check_boot,
    },
    Scenario {
        name: "inject-nmi",
        cpus: &[1, 2, 4, 8],
        qmp_inject_nmi: true,
        ends_in_reset: false,
        append: "extnmi=bsp",
        serial_check: Some(check_inject_nmi),
        // The owner's LINT1 takes NMIs: the one in its panic path came.
        check: |view, cpus| check_inject_nmi_record(view, cpus, NotifierOutcome::Ran),
    },
    Scenario {
        name: "inject-nmi",
        cpus: &[2, 4],
        qmp_inject_nmi: true,
        ends_in_reset: false,
        append: "extnmi=all",
        serial_check: Some(check_inject_nmi),
        // The owner's LINT1 takes NMIs: the one in its panic path came.
        check: |view, cpus| check_inject_nmi_record(view, cpus, NotifierOutcome::Ran),
    },
    Scenario {
        name: "inject-nmi",
        cpus: &[2, 4],
        qmp_inject_nmi: true,
        ends_in_reset: false,
        append: "extnmi=none",
        serial_check: Some(check_inject_nmi),
        // The owner's LINT1 is masked: nothing came.
        check: |view, cpus| check_inject_nmi_record(view, cpus, NotifierOutcome::Degraded),
    },
    Scenario {
        name: "pic-timer",
        cpus: &[2, 4],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: Some(check_pic_timer),
        check: |view, cpus| {
            Panic::new("pic-timer: cpu 0 panics with the PIC's timer running", 0).check(view, cpus)
        },
    },
];

/// What a finished panic's record must say.
/// The minimal kernel's scenarios (`tests/kernel/minimal`, `--minimal`):
/// the same machine and record capacity (8 CPU slots), its notifier is the
/// `console` one `crashkit::kernel!` makes, and its final action exits
/// QEMU with "ran" (kernel-base's `exit_ran`).
pub const MINIMAL: &[Scenario] = &[
    Scenario {
        name: "early-panic",
        cpus: &[1, 2],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: check_early_panic,
    },
    Scenario {
        name: "panic-bsp",
        cpus: &[1, 2, 4],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic {
                notifiers: &[("console", NotifierOutcome::Ran)],
                ..Panic::new("panic-bsp: cpu 0 panics on purpose", 0)
            }
            .check(view, cpus)
        },
    },
    Scenario {
        name: "panic-ap",
        cpus: &[2, 4],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic {
                notifiers: &[("console", NotifierOutcome::Ran)],
                ..Panic::new("panic-ap: cpu 1 panics on purpose", 1)
            }
            .check(view, cpus)
        },
    },
    Scenario {
        name: "panic-during-bring-up",
        cpus: &[4, 8],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: check_panic_during_bring_up,
    },
    Scenario {
        name: "notifier-lock",
        cpus: &[2, 4],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: |view, cpus| {
            Panic {
                notifiers: &[("console", NotifierOutcome::SkippedLockBusy)],
                ..Panic::new(
                    "notifier-lock: cpu 0 panics while cpu 1 holds the console",
                    0,
                )
            }
            .check(view, cpus)
        },
    },
    Scenario {
        name: "unresponsive",
        cpus: &[2, 4],
        qmp_inject_nmi: false,
        ends_in_reset: false,
        append: "",
        serial_check: None,
        check: check_unresponsive,
    },
];

/// A panic on a CPU crashkit has no index for (cpu 1, before it came
/// online): it owns the panic as a CPU without an index, its message is
/// recorded, the CPU that was online (cpu 0) is stopped by NMI, and the
/// panic path reached its final action.
fn check_panic_before_online(view: &RecordView<'_>, cpus: u32) -> Result<(), String> {
    let panic = view.panic();
    expect(
        panic.owner_unregistered() && panic.owner_cpu().is_none(),
        || {
            format!(
                "owner {:?} (unregistered: {}), expected a CPU without an index",
                panic.owner_cpu(),
                panic.owner_unregistered()
            )
        },
    )?;
    expect(
        panic.phase() == Decoded::Known(PanicPhase::FinalAction)
            && panic.final_action() == Decoded::Known(FinalAction::Reboot),
        || {
            format!(
                "phase {:?}, final action {:?}",
                panic.phase(),
                panic.final_action()
            )
        },
    )?;
    let message = panic.message();
    let text = message.as_str().unwrap_or("");
    expect(text.contains("panic-before-online: cpu 1 panics"), || {
        format!("message {text:?}")
    })?;
    let cpu0 = view.cpu(0).map(|cpu| (cpu.state(), cpu.stop_path()));
    expect(
        cpu0 == Some((
            Decoded::Known(CpuState::Stopped),
            Decoded::Known(StopPath::Nmi),
        )),
        || format!("cpu0 is {cpu0:?}, expected Stopped by NMI"),
    )?;
    for (index, cpu) in view.cpus().enumerate().skip(1) {
        let state = cpu.state();
        let allowed = [CpuState::Running, CpuState::Absent];
        expect(allowed.iter().any(|s| state == Decoded::Known(*s)), || {
            format!("cpu{index} is {state:?} (of {cpus}), never online")
        })?;
    }
    Ok(())
}

/// A panic while the boot CPU may still be starting APs: the machine must
/// survive the shootdown (its NMIs go only to CPUs that came online, never
/// to one in its trampoline), the boot CPU is stopped, and every slot is
/// either stopped (online in time), or, for CPUs that never came online,
/// not written by anyone (`Running`, below the count registered) or
/// `Absent`.
fn check_panic_during_bring_up(view: &RecordView<'_>, cpus: u32) -> Result<(), String> {
    let panic = view.panic();
    expect(panic.owner_cpu() == Some(1), || {
        format!("owner {:?}, expected cpu1", panic.owner_cpu())
    })?;
    expect(
        panic.final_action() == Decoded::Known(FinalAction::Reboot),
        || format!("final action {:?}, expected Reboot", panic.final_action()),
    )?;
    let cpu0 = view.cpu(0).map(|cpu| (cpu.state(), cpu.stop_path()));
    expect(
        cpu0 == Some((
            Decoded::Known(CpuState::Stopped),
            Decoded::Known(StopPath::Nmi),
        )),
        || format!("cpu0 is {cpu0:?}, expected Stopped by NMI"),
    )?;
    for (index, cpu) in view.cpus().enumerate().skip(2) {
        let state = cpu.state();
        let allowed = [CpuState::Stopped, CpuState::Running, CpuState::Absent];
        expect(allowed.iter().any(|s| state == Decoded::Known(*s)), || {
            format!("cpu{index} is {state:?} (of {cpus})")
        })?;
    }
    Ok(())
}

/// A panic before bring-up: the panic path ran on the boot CPU alone (no
/// CPU was registered, so every other slot is `Absent` and no NMI went
/// out), and the console notifier, registered from the start, ran.
fn check_early_panic(view: &RecordView<'_>, _cpus: u32) -> Result<(), String> {
    Panic {
        notifiers: &[("console", NotifierOutcome::Ran)],
        ..Panic::new("early-panic: cpu 0 panics before bring-up", 0)
    }
    .check(view, 1)?;
    let totals = view.panic().shootdown();
    expect(totals.nmis_sent == 0 && totals.send_errors == 0, || {
        format!(
            "{} NMIs sent and {} send errors with no CPU online",
            totals.nmis_sent, totals.send_errors
        )
    })
}

#[derive(Clone, Copy)]
struct Panic {
    /// Text the message must contain.
    message: &'static str,
    /// The owner CPU.
    owner: u32,
    /// CPUs that stop otherwise than by their NMI: (index, path, depth).
    special: &'static [(u32, StopPath, Option<u32>)],
    /// Notifier outcomes that must be in the record.
    notifiers: &'static [(&'static str, NotifierOutcome)],
    /// Escalations expected.
    escalations: u32,
}

impl Panic {
    const fn new(message: &'static str, owner: u32) -> Self {
        Self {
            message,
            owner,
            special: &[],
            notifiers: &[],
            escalations: 0,
        }
    }

    fn check(&self, view: &RecordView<'_>, cpus: u32) -> Result<(), String> {
        check_panic(view, cpus, self)
    }
}

/// Two CPUs panic at once: one owns it, the other counted itself and was
/// stopped (through its own poll, keeping its panic frame, or by the NMI).
fn check_panic_two(view: &RecordView<'_>, cpus: u32) -> Result<(), String> {
    let panic = view.panic();
    let owner = panic.owner_cpu().unwrap_or(u32::MAX);
    expect(owner <= 1, || {
        format!("owner {owner}, expected cpu0 or cpu1")
    })?;
    let other = 1 - owner;
    let other_path = view.cpu(other as usize).map(|cpu| cpu.stop_path());
    let path = match other_path {
        Some(Decoded::Known(path)) => path,
        _ => return Err(format!("cpu{other}: stop path {other_path:?}")),
    };
    let special: &'static [(u32, StopPath, Option<u32>)] = match (other, path) {
        (0, StopPath::Poll) => &[(0, StopPath::Poll, None)],
        (1, StopPath::Poll) => &[(1, StopPath::Poll, None)],
        _ => &[],
    };
    Panic {
        special,
        ..Panic::new("panic-two", owner)
    }
    .check(view, cpus)?;
    expect(panic.second_panickers() == 1, || {
        format!("{} second panickers, expected 1", panic.second_panickers())
    })
}

/// cpu1 halts inside an NMI handler: `Unresponsive` at the 1 s deadline,
/// which the shootdown respected.
fn check_unresponsive(view: &RecordView<'_>, cpus: u32) -> Result<(), String> {
    let panic = view.panic();
    let totals = panic.shootdown();
    expect(
        totals.unresponsive == 1 && totals.stopped == cpus - 2,
        || {
            format!(
                "shootdown: {} stopped, {} unresponsive; expected {} and 1",
                totals.stopped,
                totals.unresponsive,
                cpus - 2
            )
        },
    )?;
    let took = panic
        .stamp_ns(PhaseStamp::ShootdownEnd)
        .saturating_sub(panic.stamp_ns(PhaseStamp::ShootdownStart));
    expect(
        (DEADLINE_NS..DEADLINE_NS + SLACK_NS).contains(&took),
        || format!("the shootdown took {took} ns against a {DEADLINE_NS} ns deadline"),
    )?;
    let cpu1 = view.cpu(1).map(|cpu| cpu.state());
    expect(cpu1 == Some(Decoded::Known(CpuState::Unresponsive)), || {
        format!("cpu1 is {cpu1:?}, expected Unresponsive")
    })?;
    check_panic(
        view,
        cpus,
        &Panic {
            special: &[(1, StopPath::None, None)],
            ..Panic::new("unresponsive", 0)
        },
    )
}

/// The test kernel's shootdown deadline (the default).
const DEADLINE_NS: u64 = 1_000_000_000;

/// How far past the deadline the shootdown may end (TCG, two QEMUs on two
/// cores).
const SLACK_NS: u64 = 5_000_000_000;

/// `Err(what)` unless `ok`.
fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// A kernel that booted and exited without panicking: a fresh record.
fn check_boot(view: &RecordView<'_>, cpus: u32) -> Result<(), String> {
    let panic = view.panic();
    expect(panic.phase() == Decoded::Known(PanicPhase::Idle), || {
        format!("phase {:?}, expected Idle (no panic)", panic.phase())
    })?;
    expect(panic.owner_cpu().is_none(), || {
        format!("owner {:?} without a panic", panic.owner_cpu())
    })?;
    for (index, cpu) in view.cpus().enumerate().take(cpus as usize) {
        expect(cpu.state() == Decoded::Known(CpuState::Running), || {
            format!("cpu{index} is {:?} without a panic", cpu.state())
        })?;
    }
    Ok(())
}

/// A finished panic as `expected` says: the owner, the message, every
/// other CPU stopped (by its NMI unless `special` says otherwise), slots
/// past the machine absent, the sequence complete up to the reboot, the
/// notifier outcomes and escalations expected.
fn check_panic(view: &RecordView<'_>, cpus: u32, expected: &Panic) -> Result<(), String> {
    let owner = expected.owner;
    let name = expected.message;
    let panic = view.panic();
    expect(panic.owner_cpu() == Some(owner), || {
        format!("owner {:?}, expected cpu{owner}", panic.owner_cpu())
    })?;
    // Without a capture kernel the path runs to its final action (the
    // reboot callback exits QEMU); with one, it ends in the hand-over.
    let (phase, final_action, dump) = if capture() {
        (
            PanicPhase::DumpHandover,
            FinalAction::NotReached,
            DumpResult::Started,
        )
    } else {
        (
            PanicPhase::FinalAction,
            FinalAction::Reboot,
            DumpResult::NotConfigured,
        )
    };
    expect(panic.phase() == Decoded::Known(phase), || {
        format!("phase {:?}, expected {phase:?}", panic.phase())
    })?;
    expect(panic.final_action() == Decoded::Known(final_action), || {
        format!(
            "final action {:?}, expected {final_action:?}",
            panic.final_action()
        )
    })?;
    let message = panic.message();
    let text = message.as_str().unwrap_or("");
    expect(text.contains(name), || {
        format!("message {text:?} does not contain {name:?}")
    })?;
    expect(panic.dump_result() == Decoded::Known(dump), || {
        format!("dump result {:?}, expected {dump:?}", panic.dump_result())
    })?;
    expect(panic.escalations() == expected.escalations, || {
        format!(
            "{} escalations, expected {}",
            panic.escalations(),
            expected.escalations
        )
    })?;
    for &(notifier, outcome) in expected.notifiers {
        let found = view
            .notifiers()
            .find(|n| n.name().as_str() == Some(notifier))
            .map(|n| n.outcome());
        // With a capture kernel, a notifier of a list after the dump step
        // never runs (as Linux's post-kexec notifiers): not recorded.
        let after_dump = capture()
            && found.is_none()
            && view
                .notifiers()
                .all(|n| n.name().as_str() != Some(notifier));
        expect(after_dump || found == Some(Decoded::Known(outcome)), || {
            format!("notifier {notifier:?}: {found:?}, expected {outcome:?}")
        })?;
    }

    let stamp = |which| panic.stamp_ns(which);
    let last = if capture() {
        PhaseStamp::DumpHandoverStart
    } else {
        PhaseStamp::FinalAction
    };
    let order = [
        PhaseStamp::PanicEntry,
        PhaseStamp::ShootdownStart,
        PhaseStamp::ShootdownEnd,
        last,
    ];
    for pair in order.windows(2) {
        let (a, b) = (stamp(pair[0]), stamp(pair[1]));
        expect(a != 0 && b != 0 && a <= b, || {
            format!(
                "stamps out of order: {:?} = {a}, {:?} = {b}",
                pair[0], pair[1]
            )
        })?;
    }

    let totals = panic.shootdown();
    let unresponsive = expected
        .special
        .iter()
        .filter(|(_, path, _)| *path == StopPath::None)
        .count() as u32;
    expect(
        totals.stopped + unresponsive == cpus - 1 && totals.unresponsive == unresponsive,
        || {
            format!(
                "shootdown: {} stopped, {} unresponsive of {} other CPUs",
                totals.stopped,
                totals.unresponsive,
                cpus - 1
            )
        },
    )?;
    expect(totals.absent == RECORD_CPUS - cpus, || {
        format!(
            "{} absent slots, expected {}",
            totals.absent,
            RECORD_CPUS - cpus
        )
    })?;

    for (index, cpu) in view.cpus().enumerate() {
        let index = index as u32;
        let state = cpu.state();
        let special = expected.special.iter().find(|(i, _, _)| *i == index);
        if index == owner {
            expect(state == Decoded::Known(CpuState::PanicOwner), || {
                format!("cpu{index} (the owner) is {state:?}")
            })?;
        } else if index >= cpus {
            expect(state == Decoded::Known(CpuState::Absent), || {
                format!("slot {index} past -smp {cpus} is {state:?}, expected Absent")
            })?;
            continue;
        } else if let Some((_, StopPath::None, _)) = special {
            // Unresponsive: checked by the caller; no registers.
            continue;
        } else {
            let (path, depth) = special.map_or((StopPath::Nmi, None), |&(_, p, d)| (p, d));
            expect(state == Decoded::Known(CpuState::Stopped), || {
                format!("cpu{index} is {state:?}, expected Stopped")
            })?;
            expect(cpu.stop_path() == Decoded::Known(path), || {
                format!(
                    "cpu{index} stopped by {:?}, expected {path:?}",
                    cpu.stop_path()
                )
            })?;
            if let Some(depth) = depth {
                expect(cpu.nmi_depth() == depth, || {
                    format!(
                        "cpu{index} stopped at depth {}, expected {depth}",
                        cpu.nmi_depth()
                    )
                })?;
            }
            if path == StopPath::Nmi {
                expect(cpu.nmis_sent() >= 1, || {
                    format!("cpu{index}: no NMI counted")
                })?;
            }
        }
        let frame = cpu.frame();
        expect(frame.is_some_and(|f| f.rip != 0 && f.rsp != 0), || {
            format!("cpu{index}: registers missing or zero ({frame:?})")
        })?;
    }
    Ok(())
}

/// The numbers after `key=` on the line starting with `prefix`, comma
/// separated.
fn serial_numbers(serial: &str, prefix: &str, key: &str) -> Result<Vec<u64>, String> {
    let line = serial
        .lines()
        .find(|line| line.starts_with(prefix))
        .ok_or_else(|| format!("serial has no line starting {prefix:?}"))?;
    let value = line
        .split_whitespace()
        .find_map(|word| {
            word.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
        })
        .ok_or_else(|| format!("{line:?} has no {key}="))?;
    value
        .split(',')
        .map(|number| {
            number
                .parse()
                .map_err(|_| format!("{line:?}: {key}={value} is not a list of numbers"))
        })
        .collect()
}

/// The NMI counts the test kernel prints after the shootdown
/// (`nmi-counts`): the owner took no NMI, every other CPU exactly the one
/// that stopped it (a resend to a CPU already parked stays latched), and
/// nobody an unclaimed one.
fn check_nmi_counts(view: &RecordView<'_>, cpus: u32, serial: &str) -> Result<(), String> {
    const LINE: &str = "crashkit-test: nmi-counts";
    let entries = serial_numbers(serial, LINE, "entries")?;
    let unknown = serial_numbers(serial, LINE, "unknown")?;
    expect(
        entries.len() == cpus as usize && unknown.len() == cpus as usize,
        || {
            format!(
                "nmi-counts for {} CPUs, the machine has {cpus}",
                entries.len()
            )
        },
    )?;
    let owner = view.panic().owner_cpu();
    for cpu in 0..cpus {
        let expected = if owner == Some(cpu) { 0 } else { 1 };
        let took = entries[cpu as usize];
        let sent = view.cpu(cpu as usize).map(|slot| slot.nmis_sent());
        expect(took == expected, || {
            format!(
                "cpu{cpu} took {took} NMIs, expected {expected} (the shootdown sent it {sent:?}): \
                 NMIs that were not the shootdown's"
            )
        })?;
        // The one a stopped CPU took is one the record says was sent to
        // it (resends to a CPU already parked stay latched, not taken).
        expect(expected == 0 || sent.is_some_and(|sent| sent >= 1), || {
            format!("cpu{cpu} took an NMI, but the record sent it {sent:?}")
        })?;
        expect(unknown[cpu as usize] == 0, || {
            format!("cpu{cpu} counted {} unclaimed NMIs", unknown[cpu as usize])
        })?;
    }
    Ok(())
}

/// `pic-timer`: the PIC's timer ran through LINT0 (100+ interrupts, no
/// other IRQ) and no NMI but the shootdown's reached any CPU.
fn check_pic_timer(view: &RecordView<'_>, cpus: u32, serial: &str) -> Result<(), String> {
    let irqs = serial_numbers(serial, "crashkit-test: nmi-counts", "pic-irqs")?;
    expect(irqs.first().is_some_and(|&timer| timer >= 100), || {
        format!("{irqs:?} PIC interrupts (timer, others): the timer did not run through LINT0")
    })?;
    expect(irqs.get(1) == Some(&0), || {
        format!("{irqs:?} PIC interrupts (timer, others): an IRQ other than the timer's")
    })?;
    check_nmi_counts(view, cpus, serial)
}

/// `inject-nmi`'s record: the panic, and `await-inject-nmi`'s outcome.
fn check_inject_nmi_record(
    view: &RecordView<'_>,
    cpus: u32,
    outcome: NotifierOutcome,
) -> Result<(), String> {
    Panic::new("inject-nmi", 0).check(view, cpus)?;
    let found = view
        .notifiers()
        .find(|n| n.name().as_str() == Some("await-inject-nmi"))
        .map(|n| n.outcome());
    expect(found == Some(Decoded::Known(outcome)), || {
        format!("notifier \"await-inject-nmi\": {found:?}, expected {outcome:?}")
    })
}

/// `inject-nmi`: each CPU received the injected NMI exactly when the
/// kernel's `extnmi=` setting names it (the boot CPU for `bsp`, every CPU
/// for `all`, none for `none`).
fn check_inject_nmi(_view: &RecordView<'_>, cpus: u32, serial: &str) -> Result<(), String> {
    const LINE: &str = "crashkit-test: inject-nmi: extnmi=";
    let line = serial
        .lines()
        .find(|line| line.starts_with(LINE))
        .ok_or_else(|| format!("serial has no line starting {LINE:?}"))?;
    let setting = line
        .strip_prefix(LINE)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    let received = serial_numbers(serial, "crashkit-test: inject-nmi: extnmi=", "received")?;
    let expected: Vec<u64> = (0..cpus)
        .map(|cpu| match setting {
            "bsp" => u64::from(cpu == 0),
            "all" => 1,
            _ => 0,
        })
        .collect();
    expect(matches!(setting, "bsp" | "all" | "none"), || {
        format!("the kernel says extnmi={setting:?}")
    })?;
    expect(received == expected, || {
        format!(
            "with extnmi={setting} the CPUs received {received:?} injected NMIs, expected {expected:?}"
        )
    })
}
