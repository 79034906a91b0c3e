//! The shootdown on the host simulation: CPUs that do not simply take the
//! NMI. One has NMIs blocked and never polls (unresponsive at the deadline,
//! then late); one loses its first NMI (a resend recovers it); one spins
//! with NMIs blocked on a lock the owner holds (it stops itself through the
//! lock domain's `relax`).

mod common;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{
    RUN_DEADLINE, Rig, assert_owner_finished_others_parked, assert_owner_never_sent_an_nmi,
    assert_stopped, cpu,
};
use crashkit_nmi::lock::QSpinLock;
use crashkit_nmi::{ContextKind, PanicFlag};
use crashkit_record::{CpuState, StopPath};
use crashkit_shootdown::{ShootdownConfig, ShootdownStatus, ShootdownSummary};
use crashkit_sim::{EntryKind, Machine, Socket};

/// CPU 1 blocks NMIs and spins without polling: at the deadline it is
/// `Unresponsive`, having been sent the NMI again every interval, and the
/// owner returned no earlier than the deadline and not much later. When
/// CPU 1 then unblocks NMIs, the latched NMI stops it, late: its slot goes
/// `Unresponsive -> Stopped` with a stop time past the deadline.
#[test]
fn a_cpu_with_nmis_blocked_that_never_polls_is_unresponsive_at_the_deadline() {
    const DEADLINE_NS: u64 = 300_000_000;
    const RESEND_NS: u64 = 20_000_000;
    // Generous: a loaded 2-core host may deschedule the owner for a while.
    const SLACK: Duration = Duration::from_secs(5);
    static WALL: OnceLock<Duration> = OnceLock::new();
    static AFTER_DEADLINE: OnceLock<CpuState> = OnceLock::new();
    static UNBLOCK: AtomicBool = AtomicBool::new(false);

    let rig = Rig::new(3);
    let machine = rig.machine(3);
    let report = machine.run(RUN_DEADLINE, move |cpu| match cpu.index().0 {
        0 => {
            if !rig.wait_ready(cpu, 2) {
                return;
            }
            let config = ShootdownConfig {
                deadline_ns: DEADLINE_NS,
                resend_interval_ns: RESEND_NS,
                ..ShootdownConfig::DEFAULT
            };
            let began = Instant::now();
            rig.keep(rig.shootdown.stop_other_cpus(cpu.platform(), &config));
            let _ = WALL.set(began.elapsed());
            let _ = AFTER_DEADLINE.set(rig.slot(1).state().unwrap_or(CpuState::Running));
            UNBLOCK.store(true, SeqCst);
        }
        1 => {
            let masked = cpu.block_nmis();
            rig.ready.fetch_add(1, SeqCst);
            common::wait_until(cpu, || UNBLOCK.load(SeqCst));
            drop(masked); // the latched NMI arrives here and stops the CPU
            while !cpu.stop_requested() {
                std::thread::yield_now();
            }
        }
        _ => rig.busy(cpu),
    });

    assert_owner_finished_others_parked(&report, 0);
    assert_owner_never_sent_an_nmi(&report, 0);
    let summary = rig.summary(&report);
    assert_eq!(
        summary.status,
        ShootdownStatus::DeadlinePassed,
        "{summary:?}"
    );
    assert_eq!(
        (summary.totals.stopped, summary.totals.unresponsive),
        (1, 1),
        "{summary:?}"
    );
    // The deadline was respected, both on the platform clock and on the wall.
    assert!(summary.elapsed_ns >= DEADLINE_NS, "{summary:?}");
    assert!(
        summary.elapsed_ns < DEADLINE_NS + SLACK.as_nanos() as u64,
        "{summary:?}"
    );
    let wall = *WALL.get().expect("the owner timed its call");
    assert!(wall >= Duration::from_nanos(DEADLINE_NS), "{wall:?}");
    assert!(wall < Duration::from_nanos(DEADLINE_NS) + SLACK, "{wall:?}");
    // Resent while it waited (about every interval; at least once, however
    // loaded the host).
    let late = rig.slot(1);
    assert!(late.nmis_sent() >= 2, "{late:?}");
    assert!(summary.totals.nmis_resent >= 1, "{summary:?}");
    assert_eq!(AFTER_DEADLINE.get(), Some(&CpuState::Unresponsive));
    // Late, but stopped and recorded, outside any NMI context (its body had
    // only blocked NMIs, as a CPU with interrupts off in an NMI would).
    assert_stopped(late, StopPath::Nmi, 1);
    assert!(
        late.stopped_ns() >= late.first_nmi_ns() + DEADLINE_NS,
        "{late:?}"
    );
    assert_stopped(rig.slot(2), StopPath::Nmi, 1);
}

/// CPU 1's first NMI is lost on the way; the owner sends it again one
/// interval later and CPU 1 stops.
#[test]
fn a_lost_nmi_is_recovered_by_a_resend() {
    const RESEND_NS: u64 = 20_000_000;
    let rig = Rig::new(3);
    let machine = rig.machine(3);
    machine.platform().drop_next_nmis(cpu(1), 1).unwrap();
    let report = machine.run(RUN_DEADLINE, move |cpu| {
        if cpu.index().0 != 0 {
            return rig.busy(cpu);
        }
        if rig.wait_ready(cpu, 2) {
            let config = ShootdownConfig {
                resend_interval_ns: RESEND_NS,
                ..ShootdownConfig::DEFAULT
            };
            rig.keep(rig.shootdown.stop_other_cpus(cpu.platform(), &config));
        }
    });

    assert_owner_finished_others_parked(&report, 0);
    assert_owner_never_sent_an_nmi(&report, 0);
    let summary = rig.summary(&report);
    assert!(summary.all_stopped(), "{summary:?}");
    assert!(summary.totals.nmis_resent >= 1, "{summary:?}");
    assert!(summary.elapsed_ns >= RESEND_NS, "{summary:?}");
    let recovered = rig.slot(1);
    assert_stopped(recovered, StopPath::Nmi, 1);
    assert!(recovered.nmis_sent() >= 2, "{recovered:?}");
    assert_eq!(report.stats[1].nmis_dropped, 1, "{report}");
    assert!(recovered.stopped_ns() >= recovered.first_nmi_ns() + RESEND_NS);
    assert_stopped(rig.slot(2), StopPath::Nmi, 1);
}

/// CPU 1 is inside an NMI-like context (NMIs blocked, context entered) and
/// spins on a `QSpinLock` the owner holds. The stop NMI cannot reach it;
/// the lock domain's `relax` polls the shootdown, so it stops itself there.
/// The kernel, its shootdown and its lock domain are what
/// `crashkit::kernel!` gives a kernel, on the simulated platform.
#[test]
fn a_cpu_spinning_on_a_lock_with_nmis_blocked_stops_through_the_poll() {
    static PANIC: PanicFlag = PanicFlag::new();
    static LOCK: QSpinLock<K> = QSpinLock::new();
    static HELD: AtomicBool = AtomicBool::new(false);
    static WAITING: AtomicBool = AtomicBool::new(false);
    static SUMMARY: OnceLock<ShootdownSummary> = OnceLock::new();

    crashkit::kernel! {
        /// The kernel whose lock domain polls the shootdown.
        struct K;
        cpus: 2,
        notifiers: 1,
        platform: Socket = Socket::new(),
        final_action: halt,
        panic_flag: PANIC,
    }

    let machine = Machine::new(2, |_, kind, frame| {
        if kind == EntryKind::Nmi {
            K::on_nmi(frame);
        }
    });
    K::state().platform().plug(machine.platform()).unwrap();
    let shootdown = K::state().shootdown();
    let report = machine.run(RUN_DEADLINE, move |cpu| match cpu.index().0 {
        0 => {
            let _held = LOCK.acquire();
            HELD.store(true, SeqCst);
            if !common::wait_until(cpu, || WAITING.load(SeqCst)) {
                return;
            }
            // Let CPU 1 get into the lock's wait loop.
            std::thread::sleep(Duration::from_millis(20));
            let _ =
                SUMMARY.set(shootdown.stop_other_cpus(cpu.platform(), &ShootdownConfig::DEFAULT));
            // The lock stays held: the stopped CPU never gets it.
        }
        _ => {
            if !common::wait_until(cpu, || HELD.load(SeqCst)) {
                return;
            }
            let _masked = cpu.block_nmis();
            let state = K::state();
            let _context = state
                .contexts()
                .enter_current(state.platform(), ContextKind::Nmi);
            WAITING.store(true, SeqCst);
            let _ = LOCK.acquire();
            unreachable!("CPU 1 took a lock the owner never released");
        }
    });

    assert_owner_finished_others_parked(&report, 0);
    assert_owner_never_sent_an_nmi(&report, 0);
    let summary = SUMMARY.get().expect("the owner's summary");
    assert!(summary.all_stopped(), "{summary:?}");
    assert_eq!((summary.totals.stopped, summary.stopped_by_poll), (1, 1));
    let polled = &shootdown.slots()[1];
    // Depth 1: the NMI-like context it was spinning in.
    assert_stopped(polled, StopPath::Poll, 1);
    // The NMI went out (and latched); it never ran.
    assert!(polled.nmis_sent() >= 1, "{polled:?}");
    assert_eq!(report.stats[1].delivered(EntryKind::Nmi), 0, "{report}");
    assert!(LOCK.is_locked());
}
