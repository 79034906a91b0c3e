//! Helpers shared by the shootdown's simulation tests.
//!
//! Each test builds its own [`Rig`] (slots, shootdown, context table and
//! counters, leaked so they are `'static` like the kernel's statics), so
//! tests running in parallel never share protocol state. The rig's entry
//! function is what an integrator's NMI entry does: enter the NMI context,
//! run the shootdown's handler. It neither allocates nor locks (it runs in a
//! signal handler).

#![allow(dead_code)] // each test file uses a subset

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crashkit_nmi::{ContextKind, CpuContexts, CpuIndex, NmiEvent, NmiOutcome, RegisterFrame};
use crashkit_record::{CpuSlot, CpuState, StopPath};
use crashkit_shootdown::{Shootdown, ShootdownSummary};
use crashkit_sim::{CpuOutcome, EntryKind, Machine, RunReport, SimCpu};

/// Largest machine a rig is built for.
pub const MAX_CPUS: usize = 16;

/// Deadline of every simulated run: far above what any test needs, so a
/// hang is reported rather than waited for.
pub const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// One test's protocol state and tallies, all `'static`.
#[derive(Clone, Copy)]
pub struct Rig {
    pub shootdown: &'static Shootdown,
    pub contexts: &'static CpuContexts<MAX_CPUS>,
    /// Bodies that have started (busy or otherwise ready to be stopped).
    pub ready: &'static AtomicUsize,
    /// NMIs the shootdown's handler answered `Handled` (only the owner
    /// returns with that answer).
    pub handled: &'static AtomicU32,
    /// NMIs it answered `NotMine` (no shootdown issued yet).
    pub not_mine: &'static AtomicU32,
    /// The owner's summary, stored by the owner's body.
    pub summary: &'static OnceLock<ShootdownSummary>,
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

impl Rig {
    /// A rig with `slots` fresh slots.
    pub fn new(slots: usize) -> Self {
        let slots: &'static [CpuSlot] = Box::leak((0..slots).map(|_| CpuSlot::new()).collect());
        Self {
            shootdown: leak(Shootdown::new(slots)),
            contexts: leak(CpuContexts::new()),
            ready: leak(AtomicUsize::new(0)),
            handled: leak(AtomicU32::new(0)),
            not_mine: leak(AtomicU32::new(0)),
            summary: leak(OnceLock::new()),
        }
    }

    /// A machine of `cpus` CPUs whose NMI entry runs this rig's shootdown
    /// handler, as an integrator's entry does.
    pub fn machine(self, cpus: usize) -> Machine {
        Machine::new(cpus, move |cpu, kind, frame| self.entry(cpu, kind, frame))
    }

    fn entry(&self, cpu: &SimCpu, kind: EntryKind, frame: &mut RegisterFrame) {
        if kind != EntryKind::Nmi {
            return;
        }
        let context = self
            .contexts
            .enter_current(cpu.platform(), ContextKind::Nmi);
        let depth = context.as_ref().map_or(1, |guard| u32::from(guard.level()));
        let event = NmiEvent {
            cpu: cpu.index(),
            frame,
            back_to_back: false,
        };
        let counter = match self.shootdown.handle_nmi(cpu.platform(), &event, depth) {
            NmiOutcome::Handled => self.handled,
            NmiOutcome::NotMine => self.not_mine,
        };
        counter.fetch_add(1, SeqCst);
    }

    /// A body that is ready at once and spins (yielding now and then, so
    /// simulated CPUs that outnumber the host's cores all make progress)
    /// until its NMI stops it or the run winds down.
    pub fn busy(&self, cpu: &SimCpu) {
        self.ready.fetch_add(1, SeqCst);
        while !cpu.stop_requested() {
            for _ in 0..1_000 {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
        }
    }

    /// Wait (yielding) until `count` bodies are ready; false on a stop
    /// request.
    pub fn wait_ready(&self, cpu: &SimCpu, count: usize) -> bool {
        wait_until(cpu, || self.ready.load(SeqCst) >= count)
    }

    /// Store the owner's summary for the test thread.
    pub fn keep(&self, summary: ShootdownSummary) {
        let _ = self.summary.set(summary);
    }

    /// The owner's summary; panics (with the run report) if there is none.
    #[track_caller]
    pub fn summary(&self, report: &RunReport) -> ShootdownSummary {
        match self.summary.get() {
            Some(summary) => *summary,
            None => panic!("the owner stored no summary:\n{report}"),
        }
    }

    /// The slot of CPU `index`.
    #[track_caller]
    pub fn slot(&self, index: usize) -> &'static CpuSlot {
        self.shootdown
            .slots()
            .get(index)
            .unwrap_or_else(|| panic!("no slot {index}"))
    }
}

/// Spin (yielding) until `done()` or a stop request; whether `done()` held.
pub fn wait_until(cpu: &SimCpu, done: impl Fn() -> bool) -> bool {
    while !done() {
        if cpu.stop_requested() {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// `slot` is `Stopped` through `path`, with registers that belong to a
/// running thread (non-zero `rip` and `rsp`, user-mode `cs`) and the NMI
/// depth given.
#[track_caller]
pub fn assert_stopped(slot: &CpuSlot, path: StopPath, depth: u32) {
    assert_eq!(slot.state(), Some(CpuState::Stopped), "{slot:?}");
    assert_eq!(slot.stop_path(), Some(path), "{slot:?}");
    assert_eq!(slot.nmi_depth(), depth, "{slot:?}");
    let frame = slot.registers().expect("a stopped slot has registers");
    assert_ne!(frame.rip, 0, "rip of {slot:?}");
    assert_ne!(frame.rsp, 0, "rsp of {slot:?}");
    assert_eq!(frame.cs & 3, 3, "cs {:#x}: not user mode", frame.cs);
    assert!(slot.stopped_ns() > 0, "{slot:?}");
}

/// The run ended with `owner` finished and every other CPU parked.
#[track_caller]
pub fn assert_owner_finished_others_parked(report: &RunReport, owner: usize) {
    for (index, outcome) in report.outcomes.iter().enumerate() {
        let expected = if index == owner {
            CpuOutcome::Finished
        } else {
            CpuOutcome::Parked
        };
        assert_eq!(*outcome, expected, "cpu{index}:\n{report}");
    }
}

/// The owner was never sent an NMI by anyone.
#[track_caller]
pub fn assert_owner_never_sent_an_nmi(report: &RunReport, owner: usize) {
    let stats = report.stats.get(owner).expect("the owner's stats");
    assert_eq!(stats.sent(EntryKind::Nmi), 0, "{report}");
    assert_eq!(stats.nmis_dropped, 0, "{report}");
}

/// `CpuIndex` of a small test index.
pub fn cpu(index: usize) -> CpuIndex {
    CpuIndex(u32::try_from(index).expect("a small index"))
}
