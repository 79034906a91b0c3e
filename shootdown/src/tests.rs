//! Unit tests of both halves against a scripted platform: a clock the test
//! controls, sends that are logged (and refused on demand), CPUs that
//! "answer" at chosen turns of the owner's wait, and a `park` that unwinds
//! so the test can look at what was recorded. The multi-CPU behaviour with
//! real asynchronous NMIs is tested on the host simulation (`tests/`).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::vec::Vec;

use crashkit_nmi::{CpuIndex, NmiEvent, NmiOutcome, NmiSendError, Platform, RegisterFrame};
use crashkit_record::{CpuSlot, CpuState, StopPath};

use crate::{Shootdown, ShootdownConfig, ShootdownState, ShootdownStatus};

const NEVER: u64 = u64::MAX;

/// A platform whose every reaction is scripted.
struct Scripted {
    cpus: usize,
    me: CpuIndex,
    clock: AtomicU64,
    /// Added to the clock by each `now_ns` call (0: a stuck clock).
    tick_ns: u64,
    broadcast: Result<(), NmiSendError>,
    /// Targeted sends to this CPU fail.
    refuse: Option<CpuIndex>,
    broadcasts: AtomicU32,
    /// Targeted sends per CPU.
    sent: [AtomicU32; 8],
    relaxes: AtomicU64,
    /// CPU `i` records its stop (by NMI) at relax number `answer_at[i]`.
    answer_at: [u64; 8],
    slots: &'static [CpuSlot],
}

impl Scripted {
    fn new(cpus: usize, me: u32, slots: &'static [CpuSlot]) -> Self {
        Self {
            cpus,
            me: CpuIndex(me),
            clock: AtomicU64::new(1_000),
            tick_ns: 1_000,
            broadcast: Ok(()),
            refuse: None,
            broadcasts: AtomicU32::new(0),
            sent: [const { AtomicU32::new(0) }; 8],
            relaxes: AtomicU64::new(0),
            answer_at: [NEVER; 8],
            slots,
        }
    }

    fn sent_to(&self, cpu: usize) -> u32 {
        self.sent[cpu].load(SeqCst)
    }
}

impl Platform for Scripted {
    fn current_cpu(&self) -> CpuIndex {
        self.me
    }
    fn cpu_count(&self) -> usize {
        self.cpus
    }
    fn relax(&self) {
        let turn = self.relaxes.fetch_add(1, SeqCst) + 1;
        for (index, &at) in self.answer_at.iter().enumerate() {
            if at == turn
                && let Some(slot) = self.slots.get(index)
            {
                let frame = RegisterFrame {
                    rip: 0x1000 + index as u64,
                    ..RegisterFrame::ZERO
                };
                let _ = slot.record_stop(
                    &frame,
                    &self.control_registers(),
                    StopPath::Nmi,
                    1,
                    self.now_ns(),
                );
            }
        }
    }
    fn now_ns(&self) -> u64 {
        self.clock.fetch_add(self.tick_ns, SeqCst)
    }
    fn send_nmi(&self, target: CpuIndex) -> Result<(), NmiSendError> {
        let counter = self
            .sent
            .get(target.as_usize())
            .ok_or(NmiSendError::NoSuchCpu(target))?;
        counter.fetch_add(1, SeqCst);
        if self.refuse == Some(target) {
            return Err(NmiSendError::DeliveryTimeout);
        }
        Ok(())
    }
    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError> {
        self.broadcasts.fetch_add(1, SeqCst);
        self.broadcast
    }
    fn park(&self) -> ! {
        panic!("parked")
    }

    fn disable_interrupts(&self) {}
}

fn slots(count: usize) -> &'static [CpuSlot] {
    Box::leak((0..count).map(|_| CpuSlot::new()).collect())
}

fn states(slots: &[CpuSlot]) -> Vec<Option<CpuState>> {
    slots.iter().map(CpuSlot::state).collect()
}

fn config(deadline_ns: u64, resend_interval_ns: u64) -> ShootdownConfig {
    ShootdownConfig {
        deadline_ns,
        resend_interval_ns,
        ..ShootdownConfig::DEFAULT
    }
}

#[test]
fn cpus_that_answer_are_stopped_and_only_they_are_waited_for() {
    let slots = slots(4);
    let shootdown = Shootdown::new(slots);
    let mut platform = Scripted::new(4, 2, slots);
    platform.answer_at = [3, 1, NEVER, 5, NEVER, NEVER, NEVER, NEVER];
    let summary = shootdown.stop_other_cpus(&platform, &config(1_000_000, 0));
    assert_eq!(summary.status, ShootdownStatus::AllStopped);
    assert_eq!(
        (summary.totals.stopped, summary.totals.unresponsive),
        (3, 0)
    );
    assert_eq!(summary.wait_iterations, 5);
    assert_eq!(summary.totals.nmis_sent, 3);
    assert_eq!(platform.broadcasts.load(SeqCst), 1);
    assert_eq!((0..4).map(|i| platform.sent_to(i)).sum::<u32>(), 0);
    assert_eq!(slots[2].state(), Some(CpuState::Running), "owner untouched");
    assert_eq!(
        shootdown.state(),
        ShootdownState::Finished { owner: CpuIndex(2) }
    );
}

#[test]
fn the_deadline_marks_the_rest_unresponsive_after_resending_to_them_only() {
    let slots = slots(3);
    let shootdown = Shootdown::new(slots);
    let mut platform = Scripted::new(3, 0, slots);
    platform.answer_at[1] = 2;
    // The clock moves 1 µs per reading; deadline 100 µs, resend every 10.
    let summary = shootdown.stop_other_cpus(&platform, &config(100_000, 10_000));
    assert_eq!(summary.status, ShootdownStatus::DeadlinePassed);
    assert_eq!(
        (summary.totals.stopped, summary.totals.unresponsive),
        (1, 1)
    );
    assert_eq!(
        states(slots),
        [
            Some(CpuState::Running),
            Some(CpuState::Stopped),
            Some(CpuState::Unresponsive)
        ]
    );
    // Resends went to CPU 2 only (CPU 1 had stopped), about every 10 µs of
    // a 100 µs wait.
    assert_eq!(platform.sent_to(1), 0);
    let resends = platform.sent_to(2);
    assert!((4..=10).contains(&resends), "{resends} resends");
    assert_eq!(summary.totals.nmis_resent, resends);
    assert_eq!(slots[2].nmis_sent(), 1 + resends);
    assert_eq!(summary.totals.nmis_sent, 1 + 1 + resends);
    assert!(summary.elapsed_ns >= 100_000, "{summary:?}");
    assert_eq!(platform.sent_to(0), 0, "never the owner");
}

#[test]
fn resend_interval_zero_sends_once() {
    let slots = slots(2);
    let shootdown = Shootdown::new(slots);
    let platform = Scripted::new(2, 0, slots);
    let summary = shootdown.stop_other_cpus(&platform, &config(50_000, 0));
    assert_eq!(summary.status, ShootdownStatus::DeadlinePassed);
    assert_eq!(
        (summary.totals.nmis_sent, summary.totals.nmis_resent),
        (1, 0)
    );
    assert_eq!(platform.sent_to(1), 0);
}

#[test]
fn a_stuck_clock_ends_the_wait_at_the_iteration_limit() {
    let slots = slots(2);
    let shootdown = Shootdown::new(slots);
    let mut platform = Scripted::new(2, 0, slots);
    platform.tick_ns = 0;
    let config = ShootdownConfig {
        max_wait_iterations: 1_000,
        ..ShootdownConfig::DEFAULT
    };
    let summary = shootdown.stop_other_cpus(&platform, &config);
    assert_eq!(summary.status, ShootdownStatus::WaitLimitReached);
    assert_eq!(summary.wait_iterations, 1_000);
    assert_eq!(slots[1].state(), Some(CpuState::Unresponsive));
    assert_eq!(summary.elapsed_ns, 0);
}

#[test]
fn a_refused_broadcast_falls_back_to_one_nmi_per_cpu_and_counts_refusals() {
    let slots = slots(4);
    let shootdown = Shootdown::new(slots);
    let mut platform = Scripted::new(4, 1, slots);
    platform.broadcast = Err(NmiSendError::Unavailable);
    platform.refuse = Some(CpuIndex(3));
    platform.answer_at = [1, NEVER, 1, 1, NEVER, NEVER, NEVER, NEVER];
    let summary = shootdown.stop_other_cpus(&platform, &config(1_000_000, 0));
    assert_eq!(summary.broadcast_error, Some(NmiSendError::Unavailable));
    assert_eq!(summary.totals.send_errors, 2, "the broadcast and CPU 3");
    assert_eq!(
        [0, 1, 2, 3].map(|i| platform.sent_to(i)),
        [1, 0, 1, 1],
        "one each, never the owner"
    );
    assert!(summary.all_stopped());
}

#[test]
fn slots_past_the_platform_are_absent_and_cpus_past_the_slots_are_counted() {
    // Five slots, three CPUs: slots 3 and 4 are absent.
    let many_slots = slots(5);
    let shootdown = Shootdown::new(many_slots);
    let mut platform = Scripted::new(3, 0, many_slots);
    platform.answer_at = [NEVER, 1, 1, NEVER, NEVER, NEVER, NEVER, NEVER];
    let summary = shootdown.stop_other_cpus(&platform, &config(1_000_000, 0));
    assert!(summary.all_stopped(), "{summary:?}");
    assert_eq!((summary.totals.absent, summary.without_slot), (2, 0));
    assert_eq!(many_slots[4].state(), Some(CpuState::Absent));

    // Two slots, four CPUs: CPUs 2 and 3 are stopped but not waited for.
    let few_slots = slots(2);
    let shootdown = Shootdown::new(few_slots);
    let mut platform = Scripted::new(4, 0, few_slots);
    platform.broadcast = Err(NmiSendError::DeliveryTimeout);
    platform.answer_at[1] = 1;
    let summary = shootdown.stop_other_cpus(&platform, &config(1_000_000, 0));
    assert!(summary.all_stopped(), "{summary:?}");
    assert_eq!((summary.totals.absent, summary.without_slot), (0, 2));
    assert_eq!([1, 2, 3].map(|i| platform.sent_to(i)), [1, 1, 1]);
}

#[test]
fn an_owner_the_platform_cannot_name_stops_every_cpu() {
    let slots = slots(3);
    let shootdown = Shootdown::new(slots);
    let mut platform = Scripted::new(3, 7, slots);
    platform.answer_at = [1, 1, 1, NEVER, NEVER, NEVER, NEVER, NEVER];
    let summary = shootdown.stop_other_cpus(&platform, &config(1_000_000, 0));
    assert!(!summary.owner_known);
    assert_eq!(summary.totals.stopped, 3);
    assert!(summary.all_stopped());
}

#[test]
fn a_second_call_does_nothing_and_names_the_first_owner() {
    let slots = slots(2);
    let shootdown = Shootdown::new(slots);
    let platform = Scripted::new(2, 0, slots);
    let _ = shootdown.stop_other_cpus(&platform, &config(10_000, 0));
    let before = (slots[1].nmis_sent(), slots[1].state());
    let other = Scripted::new(2, 1, slots);
    let second = shootdown.stop_other_cpus(&other, &config(10_000, 0));
    assert_eq!(
        second.status,
        ShootdownStatus::AlreadyIssued { owner: CpuIndex(0) }
    );
    assert_eq!(second.owner, CpuIndex(1));
    assert_eq!((slots[1].nmis_sent(), slots[1].state()), before);
    assert_eq!(other.broadcasts.load(SeqCst), 0);
}

/// Run `f`, which must park (unwind with the scripted platform's "parked").
fn expect_park(f: impl FnOnce()) {
    let result = catch_unwind(AssertUnwindSafe(f));
    let payload = result.expect_err("the CPU was not parked");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"parked"));
}

#[test]
fn the_nmi_handler_ignores_idle_swallows_on_the_owner_and_stops_the_rest() {
    let slots = slots(3);
    let shootdown = Shootdown::new(slots);
    let frame = RegisterFrame {
        rip: 0xdead_beef,
        rsp: 0x7000,
        ..RegisterFrame::ZERO
    };
    let event = |cpu| NmiEvent {
        cpu: CpuIndex(cpu),
        frame: &frame,
        back_to_back: false,
    };
    let platform = Scripted::new(3, 0, slots);
    assert_eq!(
        shootdown.handle_nmi(&platform, &event(1), 1),
        NmiOutcome::NotMine
    );
    assert_eq!(slots[1].state(), Some(CpuState::Running));

    let owner = Scripted::new(3, 2, slots);
    let _ = shootdown.stop_other_cpus(&owner, &config(10_000, 0));
    assert_eq!(
        shootdown.handle_nmi(&owner, &event(2), 1),
        NmiOutcome::Handled
    );
    expect_park(|| {
        shootdown.handle_nmi(&platform, &event(1), 2);
    });
    assert_eq!(
        slots[1].state(),
        Some(CpuState::Stopped),
        "late but stopped"
    );
    assert_eq!(slots[1].registers(), Some(frame));
    assert_eq!(slots[1].stop_path(), Some(StopPath::Nmi));
    assert_eq!(slots[1].nmi_depth(), 2);
    // A CPU without a slot parks all the same.
    expect_park(|| {
        shootdown.handle_nmi(&platform, &event(9), 1);
    });
}

#[test]
fn the_poll_returns_while_idle_and_on_the_owner_and_stops_the_rest() {
    let slots = slots(2);
    let shootdown = Shootdown::new(slots);
    let target = Scripted::new(2, 1, slots);
    shootdown.poll(&target, 1);
    assert!(!shootdown.is_issued());

    let owner = Scripted::new(2, 0, slots);
    let _ = shootdown.stop_other_cpus(&owner, &config(10_000, 0));
    assert!(shootdown.is_issued());
    shootdown.poll(&owner, 0);
    expect_park(|| shootdown.poll(&target, 1));
    assert_eq!(slots[1].state(), Some(CpuState::Stopped));
    assert_eq!(slots[1].stop_path(), Some(StopPath::Poll));
    let registers = slots[1].registers().expect("registers");
    assert_ne!(registers.rip, 0);
    assert_ne!(registers.rsp, 0);
}
