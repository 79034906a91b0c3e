//! The owner's half: issue the shootdown, NMI every other CPU, wait with a
//! deadline, resend, and mark whoever did not answer.
//!
//! Order of operations (each step's reason in the code):
//! 1. claim the state word, `Idle -> Issued(owner)`, before any NMI: a CPU
//!    that takes the NMI (or polls) must find the shootdown issued, and a
//!    second shootdown must find it taken;
//! 2. slots past the platform's CPU count: `Running -> Absent`;
//! 3. each other CPU's slot: `Running -> NmiSent` (counted even if the CPU
//!    already stopped through a poll);
//! 4. one all-but-self NMI; if the platform refuses it, one NMI per CPU;
//! 5. wait until no slot is `NmiSent`, resending to those that still are
//!    every `resend_interval_ns`, until `deadline_ns` or
//!    `max_wait_iterations`;
//! 6. `NmiSent -> Unresponsive` for the rest, tally, `Finished(owner)`.
//!
//! Every loop is bounded: by the slots' length, by the platform's CPU count,
//! or by the deadline and the iteration limit. Nothing allocates or locks;
//! every refused send is counted, never fatal.

use crashkit_nmi::{CpuIndex, Platform};
use crashkit_record::{CpuSlot, CpuState, StopPath};

use crate::{Shootdown, ShootdownConfig, ShootdownStatus, ShootdownSummary};

/// Why the wait loop ended without every CPU stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WaitEnd {
    AllStopped,
    Deadline,
    IterationLimit,
}

impl Shootdown {
    /// Stop every other CPU and record each one: the panic owner's call,
    /// with maskable interrupts already off on the calling CPU.
    ///
    /// Returns after every other CPU with a slot stopped, or at
    /// `config.deadline_ns` after the first NMI (or after
    /// `config.max_wait_iterations` turns of the wait, if the clock does not
    /// move), whichever comes first. Never sends an NMI to the caller. A
    /// second call (from any CPU) does nothing and says so
    /// ([`ShootdownStatus::AlreadyIssued`]).
    ///
    /// The caller's own slot is not touched: the panic path records itself
    /// there (`CpuSlot::record_owner`), before or after this call.
    ///
    /// The state transitions it makes are listed in the module docs of
    /// [`crate::ShootdownState`] (shootdown-wide) and of
    /// `crashkit_record::CpuSlot` (per CPU).
    pub fn stop_other_cpus<P: Platform + ?Sized>(
        &self,
        platform: &P,
        config: &ShootdownConfig,
    ) -> ShootdownSummary {
        let start = platform.now_ns();
        let owner = platform.current_cpu();
        if let Err(previous) = self.claim(owner) {
            let first = previous.owner().unwrap_or(owner);
            let mut summary =
                ShootdownSummary::empty(ShootdownStatus::AlreadyIssued { owner: first }, owner);
            summary.elapsed_ns = platform.now_ns().saturating_sub(start);
            return summary;
        }

        let cpu_count = platform.cpu_count();
        let covered = cpu_count.min(self.slots().len());
        let mut summary = ShootdownSummary::empty(ShootdownStatus::AllStopped, owner);
        summary.owner_known = owner.as_usize() < covered;
        summary.without_slot = saturating_u32(
            (covered..cpu_count)
                .filter(|&index| index != owner.as_usize())
                .count(),
        );

        // Step 2: slots the platform has no CPU for. They are never waited
        // for; the tally reports them.
        for (_, slot) in self.slots_in(cpu_count..self.slots().len(), owner) {
            slot.mark_absent();
        }

        // Step 3, after the claim: a target that polls between the claim
        // and its mark stops `Running -> Stopped`, and the mark then fails
        // harmlessly (the NMI is still counted).
        let sent_ns = platform.now_ns();
        for (_, slot) in self.targets(covered, owner) {
            slot.mark_nmi_sent(sent_ns);
        }

        #[cfg(feature = "defmt")]
        defmt::debug!(
            "stop NMI broadcast to {=usize} CPUs",
            cpu_count.saturating_sub(1)
        );
        // Step 4. The shortcut reaches every CPU, those without a slot too.
        let others_exist = (0..cpu_count).any(|index| index != owner.as_usize());
        if others_exist && let Err(error) = platform.send_nmi_all_but_self() {
            #[cfg(feature = "defmt")]
            defmt::warn!("the stop NMI broadcast failed: sending one by one");
            summary.broadcast_error = Some(error);
            summary.totals.send_errors = summary.totals.send_errors.saturating_add(1);
            for index in (0..cpu_count).filter(|&index| index != owner.as_usize()) {
                let Ok(raw) = u32::try_from(index) else {
                    break;
                };
                if platform.send_nmi(CpuIndex(raw)).is_err() {
                    summary.totals.send_errors = summary.totals.send_errors.saturating_add(1);
                }
            }
        }

        // Step 5.
        let deadline_ns = sent_ns.saturating_add(config.deadline_ns);
        let mut next_resend_ns = sent_ns.saturating_add(config.resend_interval_ns);
        let end = loop {
            if !self.any_waiting(covered, owner) {
                break WaitEnd::AllStopped;
            }
            let now_ns = platform.now_ns();
            if now_ns >= deadline_ns {
                break WaitEnd::Deadline;
            }
            if summary.wait_iterations >= config.max_wait_iterations {
                break WaitEnd::IterationLimit;
            }
            if config.resend_interval_ns != 0 && now_ns >= next_resend_ns {
                self.resend(platform, covered, owner, &mut summary);
                next_resend_ns = now_ns.saturating_add(config.resend_interval_ns);
            }
            platform.relax();
            summary.wait_iterations = summary.wait_iterations.saturating_add(1);
        };

        // Step 6. A CPU that stops between the loop's last scan and its
        // mark is `Stopped`, so its mark fails and it is tallied as stopped.
        if end != WaitEnd::AllStopped {
            for (_, slot) in self.targets(covered, owner) {
                slot.mark_unresponsive();
            }
        }
        self.tally(cpu_count, covered, owner, &mut summary);
        summary.status = match end {
            _ if summary.totals.unresponsive == 0 => ShootdownStatus::AllStopped,
            WaitEnd::IterationLimit => ShootdownStatus::WaitLimitReached,
            WaitEnd::AllStopped | WaitEnd::Deadline => ShootdownStatus::DeadlinePassed,
        };
        self.finish(owner);
        summary.elapsed_ns = platform.now_ns().saturating_sub(start);
        summary
    }

    /// The slots of `indices` except the owner's, with their indices.
    fn slots_in(
        &self,
        indices: core::ops::Range<usize>,
        owner: CpuIndex,
    ) -> impl Iterator<Item = (usize, &'static CpuSlot)> {
        let slots = self.slots();
        indices
            .filter(move |&index| index != owner.as_usize())
            .filter_map(move |index| slots.get(index).map(|slot| (index, slot)))
    }

    /// The slots of the CPUs the owner stops and waits for: every index
    /// below `covered` (the platform's CPUs that have a slot) but its own.
    fn targets(
        &self,
        covered: usize,
        owner: CpuIndex,
    ) -> impl Iterator<Item = (usize, &'static CpuSlot)> {
        self.slots_in(0..covered, owner)
    }

    /// Whether some target has not stopped yet.
    fn any_waiting(&self, covered: usize, owner: CpuIndex) -> bool {
        self.targets(covered, owner).any(|(_, slot)| {
            // `Running` cannot follow the mark (it fails only from a final
            // state) but is waited for all the same; a corrupted value is
            // not (nothing would ever change it).
            matches!(slot.state(), Some(CpuState::NmiSent | CpuState::Running))
        })
    }

    /// Send the NMI again to every target still `NmiSent`.
    fn resend<P: Platform + ?Sized>(
        &self,
        platform: &P,
        covered: usize,
        owner: CpuIndex,
        summary: &mut ShootdownSummary,
    ) {
        for (index, slot) in self.targets(covered, owner) {
            if slot.state() != Some(CpuState::NmiSent) {
                continue;
            }
            let Ok(raw) = u32::try_from(index) else {
                break;
            };
            // Counted as an attempt, like the first NMI; a refusal is
            // counted apart.
            slot.count_nmi_sent();
            // The first resend only: a CPU that never answers is resent to
            // every interval, and a line each time would overwrite the
            // panic's own lines in a small ring (the tally counts them all).
            #[cfg(feature = "defmt")]
            if slot.nmis_sent() == 2 {
                defmt::warn!(
                    "CPU {=usize} has not stopped: stop NMI resent (and again each interval until the deadline)",
                    index
                );
            }
            summary.totals.nmis_resent = summary.totals.nmis_resent.saturating_add(1);
            if platform.send_nmi(CpuIndex(raw)).is_err() {
                summary.totals.send_errors = summary.totals.send_errors.saturating_add(1);
            }
        }
    }

    /// Count the slots' final states into `summary`.
    fn tally(
        &self,
        cpu_count: usize,
        covered: usize,
        owner: CpuIndex,
        summary: &mut ShootdownSummary,
    ) {
        for (_index, slot) in self.targets(covered, owner) {
            summary.totals.nmis_sent = summary.totals.nmis_sent.saturating_add(slot.nmis_sent());
            match slot.state() {
                Some(CpuState::Stopped) => {
                    summary.totals.stopped = summary.totals.stopped.saturating_add(1);
                    if slot.stop_path() == Some(StopPath::Poll) {
                        summary.stopped_by_poll = summary.stopped_by_poll.saturating_add(1);
                    }
                }
                Some(CpuState::Unresponsive) => {
                    #[cfg(feature = "defmt")]
                    defmt::error!("CPU {=usize} never answered the stop NMI", _index);
                    summary.totals.unresponsive = summary.totals.unresponsive.saturating_add(1);
                }
                _ => {}
            }
        }
        let past_the_platform = cpu_count.max(covered)..self.slots().len();
        summary.totals.absent = saturating_u32(
            self.slots_in(past_the_platform, owner)
                .filter(|(_, slot)| slot.state() == Some(CpuState::Absent))
                .count(),
        );
    }
}

fn saturating_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
