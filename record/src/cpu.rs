//! One CPU's slot of the crash record: where the shootdown protocol keeps
//! that CPU's state, and where the CPU saves its registers when it stops.
//!
//! # The per-CPU state machine
//!
//! | from                           | to             | by                                   | how |
//! |--------------------------------|----------------|--------------------------------------|-----|
//! | `Running`                      | `PanicOwner`   | the panic owner, for its own slot    | [`CpuSlot::record_owner`] |
//! | `Running`                      | `Absent`       | the panic owner, for an index the platform does not have | [`CpuSlot::mark_absent`] |
//! | `Running`                      | `NmiSent`      | the panic owner, first stop NMI      | [`CpuSlot::mark_nmi_sent`] (CAS) |
//! | `NmiSent`                      | `Unresponsive` | the panic owner, at the deadline     | [`CpuSlot::mark_unresponsive`] (CAS) |
//! | `Running`, `NmiSent`, `Unresponsive` | `Stopped` | the CPU itself, from its stop NMI or a poll | [`CpuSlot::record_stop`] (CAS) |
//!
//! `Stopped`, `PanicOwner` and `Absent` are final. A CPU that answers after
//! the deadline still goes from `Unresponsive` to `Stopped`: its registers
//! are worth having, and its `stopped_ns` (later than the deadline) tells
//! that it was late. A CPU can be `Stopped` without an NMI having been sent
//! to it (`Running` to `Stopped`): it noticed the shootdown through a poll
//! before its NMI went out.
//!
//! # Who writes what
//! The owner writes `state` (the transitions above), `nmis_sent` and
//! `first_nmi_ns`. The stopping CPU writes `stop_path`, `nmi_depth`,
//! `stopped_ns`, `frame` and `control`, then publishes them with its `Stopped` state
//! (Release); a reader that sees `Stopped` (Acquire) sees them. The owner's
//! own slot is written by the owner alone.
//!
//! The layout is part of the crash record's format: `docs/crash-record.md`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crashkit_nmi::{ControlRegisters, RegisterFrame};
use crashkit_record_format::{CpuState, StopPath};

/// Why [`CpuSlot::record_stop`] did not record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopRefused {
    /// The slot is already final (`Stopped`, `PanicOwner` or `Absent`).
    Final(CpuState),
}

impl core::fmt::Display for StopRefused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Final(state) => write!(f, "the CPU slot is final already ({state:?})"),
        }
    }
}

impl core::error::Error for StopRefused {}

/// One CPU's slot: shootdown state, NMI bookkeeping, saved registers.
///
/// `#[repr(C)]`, 280 bytes, 8-byte aligned; offsets in
/// `docs/crash-record.md`.
#[repr(C)]
pub struct CpuSlot {
    state: AtomicU32,
    stop_path: AtomicU32,
    nmis_sent: AtomicU32,
    nmi_depth: AtomicU32,
    first_nmi_ns: AtomicU64,
    stopped_ns: AtomicU64,
    frame: UnsafeCell<RegisterFrame>,
    control: UnsafeCell<ControlRegisters>,
}

// SAFETY: every field but `frame` and `control` is an atomic. `frame` and
// `control` (the "saved state" below) have one writer at a
// time: the stopping CPU itself in `record_stop` (before it publishes
// `Stopped` and parks for good), or the panic owner for its own slot in
// `record_owner` (before it publishes `PanicOwner`); both transitions are a
// compare-and-swap from a non-final state, so only one of them ever writes a
// given slot's saved state and nobody writes it after publication. Readers
// (`registers`, `control`) read it only after an Acquire load saw a state that has
// registers, which pairs with the writer's Release publication.
unsafe impl Sync for CpuSlot {}

impl core::fmt::Debug for CpuSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CpuSlot")
            .field("state", &self.state())
            .field("stop_path", &self.stop_path())
            .field("nmis_sent", &self.nmis_sent())
            .field("stopped_ns", &self.stopped_ns())
            .finish_non_exhaustive()
    }
}

impl Default for CpuSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// Stored values of the final states.
const FINAL: [u32; 3] = [
    CpuState::Stopped as u32,
    CpuState::PanicOwner as u32,
    CpuState::Absent as u32,
];

impl CpuSlot {
    /// Size of a slot in bytes (the record's format relies on it).
    pub const SIZE: usize = 280;

    /// A slot no shootdown has touched.
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(CpuState::Running as u32),
            stop_path: AtomicU32::new(StopPath::None as u32),
            nmis_sent: AtomicU32::new(0),
            nmi_depth: AtomicU32::new(0),
            first_nmi_ns: AtomicU64::new(0),
            stopped_ns: AtomicU64::new(0),
            frame: UnsafeCell::new(RegisterFrame::ZERO),
            control: UnsafeCell::new(ControlRegisters::NONE),
        }
    }

    /// The slot's state; `None` if the stored value is not a state (a
    /// corrupted record).
    pub fn state(&self) -> Option<CpuState> {
        // Acquire: pairs with the Release publication in `record_stop` /
        // `record_owner`, so a caller that sees a state with registers may
        // read them (`registers` relies on it).
        CpuState::from_code(self.state.load(Ordering::Acquire))
    }

    /// The owner is about to send this CPU its first stop NMI at `now_ns`:
    /// `Running` -> `NmiSent`. Counts the NMI either way. Returns whether
    /// the transition happened (false: the CPU already stopped through a
    /// poll, or the slot is final).
    pub fn mark_nmi_sent(&self, now_ns: u64) -> bool {
        self.count_nmi_sent();
        // Relaxed: the state publishes nothing here (no data goes with
        // `NmiSent`); the CPU that stops overwrites it with a CAS, which
        // sees this value or a later one.
        // Relaxed: a diagnostic timestamp, written only by the owner, once
        // (the first NMI to this CPU, whether or not it had already
        // stopped through a poll, in which case `stopped_ns` is earlier),
        // read by the owner or offline.
        if self.first_nmi_ns.load(Ordering::Relaxed) == 0 {
            self.first_nmi_ns.store(now_ns, Ordering::Relaxed);
        }
        self.state
            .compare_exchange(
                CpuState::Running as u32,
                CpuState::NmiSent as u32,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Count one more stop NMI sent (a resend to a CPU that did not answer).
    pub fn count_nmi_sent(&self) {
        // Relaxed: a counter with one writer (the owner).
        self.nmis_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The deadline passed: `NmiSent` -> `Unresponsive`. Returns whether
    /// the transition happened (false: the CPU stopped in time).
    pub fn mark_unresponsive(&self) -> bool {
        // Relaxed: nothing is published with `Unresponsive`; a late CPU's
        // `record_stop` CAS sees it and moves on to `Stopped`.
        self.state
            .compare_exchange(
                CpuState::NmiSent as u32,
                CpuState::Unresponsive as u32,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The platform has no CPU with this index: `Running` -> `Absent`.
    pub fn mark_absent(&self) -> bool {
        // Relaxed: nothing goes with `Absent`, and no CPU uses the slot.
        self.state
            .compare_exchange(
                CpuState::Running as u32,
                CpuState::Absent as u32,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Called by the CPU this slot belongs to, in NMI context, just before
    /// it parks for good: save `frame`, `control` and how it stopped, then
    /// publish `Stopped`. Refused (nothing written) if the slot is already
    /// final.
    pub fn record_stop(
        &self,
        frame: &RegisterFrame,
        control: &ControlRegisters,
        path: StopPath,
        nmi_depth: u32,
        now_ns: u64,
    ) -> Result<(), StopRefused> {
        // Relaxed: the value only feeds the checks below.
        let current = self.state.load(Ordering::Relaxed);
        if let Some(refused) = self.refuse_if_final(current) {
            return Err(refused);
        }
        // SAFETY: this CPU is the frame's only writer (see `Sync` above):
        // the slot is not final, so neither the owner (which only writes
        // its own slot) nor an earlier stop of this CPU (which would have
        // parked it) has written it, and no reader reads it before the
        // Release below. The same holds for `control`.
        unsafe {
            self.frame.get().write(*frame);
            self.control.get().write(*control);
        }
        // Relaxed: published by the Release CAS below.
        self.stop_path.store(path as u32, Ordering::Relaxed);
        self.nmi_depth.store(nmi_depth, Ordering::Relaxed);
        self.stopped_ns.store(now_ns, Ordering::Relaxed);
        self.publish(current, CpuState::Stopped)
    }

    /// Called by the panic owner for its own slot: save the registers it
    /// panicked with, its control state, and the NMI-like contexts it
    /// panicked in (`nmi_depth`: 1 or more for a panic raised in an NMI
    /// handler), and publish `PanicOwner`. Refused if the slot is final.
    pub fn record_owner(
        &self,
        frame: &RegisterFrame,
        control: &ControlRegisters,
        nmi_depth: u32,
        now_ns: u64,
    ) -> Result<(), StopRefused> {
        // Relaxed: the value only feeds the checks below.
        let current = self.state.load(Ordering::Relaxed);
        if let Some(refused) = self.refuse_if_final(current) {
            return Err(refused);
        }
        // SAFETY: the owner is the only writer of its own slot's frame and
        // control state (see `Sync` above), and no reader reads them before
        // the Release below.
        unsafe {
            self.frame.get().write(*frame);
            self.control.get().write(*control);
        }
        // Relaxed: published by the Release CAS below.
        self.nmi_depth.store(nmi_depth, Ordering::Relaxed);
        self.stopped_ns.store(now_ns, Ordering::Relaxed);
        self.publish(current, CpuState::PanicOwner)
    }

    fn refuse_if_final(&self, raw: u32) -> Option<StopRefused> {
        FINAL
            .contains(&raw)
            .then(|| StopRefused::Final(CpuState::from_code(raw).unwrap_or(CpuState::Absent)))
    }

    /// Move from a non-final state (`current`, possibly stale) to `to` by
    /// CAS, retrying while the owner moves the state among non-final ones.
    fn publish(&self, mut current: u32, to: CpuState) -> Result<(), StopRefused> {
        loop {
            // Release: publishes the frame and the fields stored before,
            // to the Acquire load in `state`. Relaxed on failure: we retry
            // with the value (the owner moved us between non-final states).
            match self.state.compare_exchange(
                current,
                to as u32,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => {
                    if let Some(refused) = self.refuse_if_final(now) {
                        return Err(refused);
                    }
                    current = now;
                }
            }
        }
    }

    /// The saved registers, if the slot's state has them (`Stopped`,
    /// `PanicOwner`).
    pub fn registers(&self) -> Option<RegisterFrame> {
        if !self.state()?.has_registers() {
            return None;
        }
        // SAFETY: `state` (Acquire) saw a state with registers, published
        // by a Release after the frame's only write (see `Sync` above);
        // nothing writes the frame afterwards.
        Some(unsafe { self.frame.get().read() })
    }

    /// The saved control state, if the slot's state has registers
    /// (`Stopped`, `PanicOwner`); its `valid` bits say which were read.
    pub fn control(&self) -> Option<ControlRegisters> {
        if !self.state()?.has_registers() {
            return None;
        }
        // SAFETY: as in `registers`: written once before the Release
        // publication that `state` (Acquire) saw, never afterwards.
        Some(unsafe { self.control.get().read() })
    }

    /// How the CPU stopped; `None` if the stored value is not a path.
    pub fn stop_path(&self) -> Option<StopPath> {
        // Relaxed: meaningful once `state` (Acquire) said `Stopped`.
        StopPath::from_code(self.stop_path.load(Ordering::Relaxed))
    }

    /// Stop NMIs sent to this CPU (first one and resends).
    pub fn nmis_sent(&self) -> u32 {
        // Relaxed: a counter.
        self.nmis_sent.load(Ordering::Relaxed)
    }

    /// NMI-like contexts the CPU was in when it stopped (the stop NMI
    /// included; 2 or more means it was already in one), or, for the panic
    /// owner, when it panicked.
    pub fn nmi_depth(&self) -> u32 {
        // Relaxed: meaningful once `state` (Acquire) said `Stopped`.
        self.nmi_depth.load(Ordering::Relaxed)
    }

    /// When the first stop NMI was sent (platform nanoseconds; 0: never).
    /// Later than [`stopped_ns`](Self::stopped_ns) for a CPU that stopped
    /// through a poll before its NMI went out.
    pub fn first_nmi_ns(&self) -> u64 {
        // Relaxed: a diagnostic timestamp.
        self.first_nmi_ns.load(Ordering::Relaxed)
    }

    /// When the CPU stopped, or the owner recorded itself (platform
    /// nanoseconds; 0: not yet).
    pub fn stopped_ns(&self) -> u64 {
        // Relaxed: meaningful once `state` (Acquire) said it stopped.
        self.stopped_ns.load(Ordering::Relaxed)
    }
}

const _: () = assert!(core::mem::size_of::<CpuSlot>() == CpuSlot::SIZE);
const _: () = assert!(core::mem::align_of::<CpuSlot>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rip: u64) -> RegisterFrame {
        RegisterFrame {
            rip,
            ..RegisterFrame::ZERO
        }
    }

    #[test]
    fn a_cpu_that_answers_is_stopped_with_its_registers() {
        let slot = CpuSlot::new();
        assert_eq!(slot.state(), Some(CpuState::Running));
        assert!(slot.mark_nmi_sent(10));
        assert_eq!(slot.registers(), None);
        assert_eq!(
            slot.record_stop(
                &frame(0x1234),
                &ControlRegisters::NONE,
                StopPath::Nmi,
                1,
                20
            ),
            Ok(())
        );
        assert_eq!(slot.state(), Some(CpuState::Stopped));
        assert_eq!(slot.registers().map(|f| f.rip), Some(0x1234));
        assert_eq!(slot.stop_path(), Some(StopPath::Nmi));
        assert_eq!((slot.first_nmi_ns(), slot.stopped_ns()), (10, 20));
        assert!(
            !slot.mark_unresponsive(),
            "a stopped CPU is not unresponsive"
        );
        assert_eq!(
            slot.record_stop(
                &frame(0x5678),
                &ControlRegisters::NONE,
                StopPath::Poll,
                2,
                30
            ),
            Err(StopRefused::Final(CpuState::Stopped))
        );
        assert_eq!(slot.registers().map(|f| f.rip), Some(0x1234));
    }

    #[test]
    fn the_control_state_is_saved_with_the_registers() {
        let control = ControlRegisters {
            valid: crashkit_nmi::control::valid::CR3,
            cr3: 0x1000,
            ..ControlRegisters::NONE
        };
        let slot = CpuSlot::new();
        assert_eq!(slot.control(), None);
        assert!(slot.mark_nmi_sent(1));
        assert_eq!(slot.control(), None, "not before the CPU stopped");
        assert_eq!(
            slot.record_stop(&frame(1), &control, StopPath::Nmi, 1, 2),
            Ok(())
        );
        assert_eq!(slot.control(), Some(control));
        let absent = CpuSlot::new();
        assert!(absent.mark_absent());
        assert_eq!(
            absent
                .record_stop(&frame(1), &control, StopPath::Nmi, 1, 2)
                .ok(),
            None
        );
        assert_eq!(absent.control(), None);
    }

    #[test]
    fn a_late_cpu_goes_from_unresponsive_to_stopped() {
        let slot = CpuSlot::new();
        assert!(slot.mark_nmi_sent(10));
        slot.count_nmi_sent();
        assert!(slot.mark_unresponsive());
        assert_eq!(slot.state(), Some(CpuState::Unresponsive));
        assert_eq!(
            slot.record_stop(&frame(1), &ControlRegisters::NONE, StopPath::Poll, 2, 99),
            Ok(())
        );
        assert_eq!(slot.state(), Some(CpuState::Stopped));
        assert_eq!(slot.nmis_sent(), 2);
        assert_eq!(slot.nmi_depth(), 2);
    }

    #[test]
    fn a_cpu_may_stop_through_a_poll_before_its_nmi() {
        let slot = CpuSlot::new();
        assert_eq!(
            slot.record_stop(&frame(7), &ControlRegisters::NONE, StopPath::Poll, 1, 5),
            Ok(())
        );
        assert!(!slot.mark_nmi_sent(6), "no NmiSent after Stopped");
        assert_eq!(slot.state(), Some(CpuState::Stopped));
        assert_eq!(slot.nmis_sent(), 1, "the NMI still went out and counts");
        assert_eq!(slot.first_nmi_ns(), 6, "and its time is recorded");
        assert!(slot.stopped_ns() < slot.first_nmi_ns());
    }

    #[test]
    fn owner_and_absent_slots_are_final() {
        let owner = CpuSlot::new();
        assert_eq!(
            owner.record_owner(&frame(42), &ControlRegisters::NONE, 1, 3),
            Ok(())
        );
        assert_eq!(owner.nmi_depth(), 1);
        assert_eq!(owner.state(), Some(CpuState::PanicOwner));
        assert_eq!(owner.registers().map(|f| f.rip), Some(42));
        assert!(!owner.mark_nmi_sent(4));
        let absent = CpuSlot::new();
        assert!(absent.mark_absent());
        assert_eq!(
            absent.record_stop(&frame(1), &ControlRegisters::NONE, StopPath::Nmi, 1, 1),
            Err(StopRefused::Final(CpuState::Absent))
        );
        assert_eq!(absent.registers(), None);
    }

    #[test]
    fn layout_is_the_documented_one() {
        assert_eq!(core::mem::offset_of!(CpuSlot, state), 0);
        assert_eq!(core::mem::offset_of!(CpuSlot, stop_path), 4);
        assert_eq!(core::mem::offset_of!(CpuSlot, nmis_sent), 8);
        assert_eq!(core::mem::offset_of!(CpuSlot, nmi_depth), 12);
        assert_eq!(core::mem::offset_of!(CpuSlot, first_nmi_ns), 16);
        assert_eq!(core::mem::offset_of!(CpuSlot, stopped_ns), 24);
        assert_eq!(core::mem::offset_of!(CpuSlot, frame), 32);
        assert_eq!(core::mem::offset_of!(CpuSlot, control), 200);
    }

    #[test]
    fn unknown_stored_values_decode_to_none() {
        assert_eq!(CpuState::from_code(6), None);
        assert_eq!(StopPath::from_code(3), None);
    }
}
