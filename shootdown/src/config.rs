//! What the owner's wait may cost ([`ShootdownConfig`]) and what it found
//! ([`ShootdownSummary`]).

use crashkit_nmi::{CpuIndex, NmiSendError};
use crashkit_record::ShootdownTotals;

/// Timing of one shootdown. Every field is a bound: the owner never waits
/// longer than `deadline_ns` on a working clock, nor longer than
/// `max_wait_iterations` turns of its wait loop on a broken one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShootdownConfig {
    /// How long the owner waits for the other CPUs to stop, from its first
    /// NMI, in [`Platform::now_ns`](crashkit_nmi::Platform::now_ns)
    /// nanoseconds. Linux waits 1 s (1000 x `mdelay(1)`).
    pub deadline_ns: u64,
    /// How often a CPU that has not stopped is sent its NMI again (a lost
    /// NMI is recovered one interval later). 0: never resend (Linux sends
    /// once). A resend to a CPU that took the first NMI but is slow to record
    /// itself, or that has NMIs blocked, is harmless: it latches and is never
    /// delivered, since a stopped CPU never returns from its NMI.
    pub resend_interval_ns: u64,
    /// Most turns of the wait loop (one scan of the slots, one
    /// [`Platform::relax`](crashkit_nmi::Platform::relax)) before the owner
    /// gives up even if its clock says the deadline is still ahead: a
    /// backstop for a clock that does not move. Far above what the deadline
    /// takes on a working clock.
    pub max_wait_iterations: u64,
}

impl ShootdownConfig {
    /// 1 s deadline, resend every 10 ms, 2^26 wait iterations (with `pause`
    /// at 30-150 cycles plus a scan of the slots, well over a second on any
    /// x86_64 CPU).
    pub const DEFAULT: Self = Self {
        deadline_ns: 1_000_000_000,
        resend_interval_ns: 10_000_000,
        max_wait_iterations: 1 << 26,
    };
}

impl Default for ShootdownConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How a call to [`Shootdown::stop_other_cpus`](crate::Shootdown::stop_other_cpus)
/// ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShootdownStatus {
    /// Every other CPU with a slot stopped before the deadline.
    AllStopped,
    /// The deadline passed; the CPUs still waited for are `Unresponsive`.
    DeadlinePassed,
    /// The wait loop ran `max_wait_iterations` times before the clock
    /// reached the deadline (the clock is suspect); the CPUs still waited
    /// for are `Unresponsive`.
    WaitLimitReached,
    /// A shootdown had been issued already, by `owner` (possibly the
    /// caller): this call did nothing.
    AlreadyIssued {
        /// The CPU that issued the first shootdown.
        owner: CpuIndex,
    },
}

/// What one call to [`Shootdown::stop_other_cpus`](crate::Shootdown::stop_other_cpus)
/// did and found. The per-CPU detail is in the slots; this is the tally the
/// panic path records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the summary says which CPUs did not stop"]
pub struct ShootdownSummary {
    /// How it ended.
    pub status: ShootdownStatus,
    /// The calling CPU (the owner), as the platform named it.
    pub owner: CpuIndex,
    /// Whether the owner's index is below the platform's CPU count and has
    /// a slot. If not, its own slot is not known and every valid CPU is a
    /// target.
    pub owner_known: bool,
    /// The tally the record stores (`PanicSection::record_shootdown`):
    /// CPUs with a slot stopped when the owner returned, unresponsive at the
    /// deadline (they may still stop late), slots past the platform's CPU
    /// count (marked `Absent`), stop NMIs addressed to CPUs with a slot
    /// (first ones and resends; a broadcast counts once per target: the sum
    /// of the slots' counters), resends, and sends the platform refused (a
    /// failed broadcast counts once, then each failed targeted send).
    pub totals: ShootdownTotals,
    /// Of the stopped CPUs, those that stopped themselves through the poll.
    pub stopped_by_poll: u32,
    /// CPUs the platform has but the slots do not cover: sent the NMI (they
    /// stop), but neither waited for nor recorded.
    pub without_slot: u32,
    /// Why the broadcast failed, if it did (the owner then sent one NMI per
    /// CPU).
    pub broadcast_error: Option<NmiSendError>,
    /// Turns of the wait loop.
    pub wait_iterations: u64,
    /// From the call to the return, in platform nanoseconds.
    pub elapsed_ns: u64,
}

impl ShootdownSummary {
    /// The summary of a call that did nothing.
    pub(crate) const fn empty(status: ShootdownStatus, owner: CpuIndex) -> Self {
        Self {
            status,
            owner,
            owner_known: false,
            totals: ShootdownTotals {
                stopped: 0,
                unresponsive: 0,
                absent: 0,
                nmis_sent: 0,
                nmis_resent: 0,
                send_errors: 0,
            },
            stopped_by_poll: 0,
            without_slot: 0,
            broadcast_error: None,
            wait_iterations: 0,
            elapsed_ns: 0,
        }
    }

    /// Whether every other CPU with a slot stopped in time.
    pub fn all_stopped(&self) -> bool {
        self.status == ShootdownStatus::AllStopped
    }
}
