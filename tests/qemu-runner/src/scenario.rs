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

use crashkit_record::{
    CpuState, Decoded, DumpResult, FinalAction, PanicPhase, PhaseStamp, RecordView, StopPath,
};

/// CPU slots in the test kernel's record.
pub const RECORD_CPUS: u32 = 8;

/// One scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// The name on the kernel command line (`scenario=NAME`).
    pub name: &'static str,
    /// The `-smp` values it runs with.
    pub cpus: &'static [u32],
    /// What it checks, given the parsed record and the CPU count.
    pub check: fn(&RecordView<'_>, u32) -> Result<(), String>,
}

/// Every scenario, in the order they run.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "boot",
        cpus: &[1, 2, 4, 8],
        check: check_boot,
    },
    Scenario {
        name: "panic-bsp",
        cpus: &[1, 2, 4, 8],
        check: |view, cpus| check_panic(view, cpus, 0, "panic-bsp"),
    },
    Scenario {
        name: "panic-ap",
        cpus: &[2, 4, 8],
        check: |view, cpus| check_panic(view, cpus, 1, "panic-ap"),
    },
];

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

/// A finished panic on `owner`: every other CPU stopped by its NMI, slots
/// past the machine absent, the sequence complete up to the reboot.
fn check_panic(view: &RecordView<'_>, cpus: u32, owner: u32, name: &str) -> Result<(), String> {
    let panic = view.panic();
    expect(panic.owner_cpu() == Some(owner), || {
        format!("owner {:?}, expected cpu{owner}", panic.owner_cpu())
    })?;
    expect(
        panic.phase() == Decoded::Known(PanicPhase::FinalAction),
        || format!("phase {:?}, expected FinalAction", panic.phase()),
    )?;
    expect(
        panic.final_action() == Decoded::Known(FinalAction::Reboot),
        || format!("final action {:?}, expected Reboot", panic.final_action()),
    )?;
    let message = panic.message();
    let text = message.as_str().unwrap_or("");
    expect(text.contains(name), || {
        format!("message {text:?} does not name the scenario {name:?}")
    })?;
    expect(
        panic.dump_result() == Decoded::Known(DumpResult::NotConfigured),
        || {
            format!(
                "dump result {:?}, expected NotConfigured",
                panic.dump_result()
            )
        },
    )?;
    expect(panic.escalations() == 0, || {
        format!("{} escalations in a plain panic", panic.escalations())
    })?;

    let stamp = |which| panic.stamp_ns(which);
    let order = [
        PhaseStamp::PanicEntry,
        PhaseStamp::ShootdownStart,
        PhaseStamp::ShootdownEnd,
        PhaseStamp::FinalAction,
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
    expect(
        totals.stopped == cpus - 1 && totals.unresponsive == 0,
        || {
            format!(
                "shootdown: {} stopped, {} unresponsive; expected {} stopped",
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
        if index == owner {
            expect(state == Decoded::Known(CpuState::PanicOwner), || {
                format!("cpu{index} (the owner) is {state:?}")
            })?;
        } else if index < cpus {
            expect(state == Decoded::Known(CpuState::Stopped), || {
                format!("cpu{index} is {state:?}, expected Stopped")
            })?;
            expect(cpu.stop_path() == Decoded::Known(StopPath::Nmi), || {
                format!(
                    "cpu{index} stopped by {:?}, expected its NMI",
                    cpu.stop_path()
                )
            })?;
            expect(cpu.nmis_sent() >= 1, || {
                format!("cpu{index}: no NMI counted")
            })?;
        } else {
            expect(state == Decoded::Known(CpuState::Absent), || {
                format!("slot {index} past -smp {cpus} is {state:?}, expected Absent")
            })?;
            continue;
        }
        let frame = cpu.frame();
        expect(frame.is_some_and(|f| f.rip != 0 && f.rsp != 0), || {
            format!("cpu{index}: registers missing or zero ({frame:?})")
        })?;
    }
    Ok(())
}
