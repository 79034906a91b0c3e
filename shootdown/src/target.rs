//! The other CPUs' half: stop when the shootdown's NMI arrives, or when a
//! spin loop polls and finds the shootdown issued.
//!
//! A CPU stops by recording itself in its slot (`CpuSlot::record_stop`:
//! registers, path, NMI depth, time, then `Stopped` published with Release)
//! and parking ([`Platform::park`]). From the NMI handler it never returns,
//! so the CPU never executes `iretq` and NMIs stay blocked on it for good,
//! as in Linux's `crash_nmi_callback`.
//!
//! Why a poll as well as the NMI: a CPU already inside an NMI handler (or
//! any context with NMIs blocked) cannot take the stop NMI; the hardware
//! latches one and delivers it only at the next `iretq`. If that CPU spins
//! on something the panic owner holds, it never gets there. So every spin
//! loop that can run in NMI context calls [`Shootdown::poll`], which stops
//! the CPU right there (Linux's `run_crash_ipi_callback` in
//! `nmi_panic_self_stop` and in the NMI reason-lock loop). Its registers are
//! then the poll site's ([`RegisterFrame::capture`]), not an interrupted
//! context's.

use crashkit_nmi::{CpuIndex, NmiEvent, NmiOutcome, Platform, RegisterFrame};
use crashkit_record::StopPath;

use crate::{Shootdown, ShootdownState};

impl Shootdown {
    /// The crash NMI handler's body, for the NMI core's emergency slot.
    ///
    /// - no shootdown issued: [`NmiOutcome::NotMine`] (the NMI goes on to
    ///   the handler chain);
    /// - on the owner: [`NmiOutcome::Handled`], nothing else (a stray NMI on
    ///   the panicking CPU, a watchdog's say, is swallowed);
    /// - on any other CPU: record the interrupted registers in its slot
    ///   (`StopPath::Nmi`, `nmi_depth` as given: the NMI contexts it is in,
    ///   this one included) and park. Does not return.
    ///
    /// No lock, no allocation; a CPU without a slot, or whose slot is
    /// already final, parks without recording.
    pub fn handle_nmi<P: Platform + ?Sized>(
        &self,
        platform: &P,
        event: &NmiEvent<'_>,
        nmi_depth: u32,
    ) -> NmiOutcome {
        let Some(owner) = ShootdownState::from_raw(self.load_raw()).and_then(ShootdownState::owner)
        else {
            return NmiOutcome::NotMine;
        };
        if event.cpu == owner {
            return NmiOutcome::Handled;
        }
        self.stop_here(platform, event.cpu, event.frame, StopPath::Nmi, nmi_depth)
    }

    /// For spin loops that may run with NMIs blocked: if a shootdown is
    /// issued and the caller is not its owner, record the registers of this
    /// point (`StopPath::Poll`, `nmi_depth` as given: the NMI-like contexts
    /// the CPU is in) and park. Otherwise return at once.
    ///
    /// Costs one load and a compare while no shootdown is issued. Call it
    /// from a lock domain's `relax` (see the crate docs) and from any other
    /// wait that NMI context can reach.
    #[inline]
    pub fn poll<P: Platform + ?Sized>(&self, platform: &P, nmi_depth: u32) {
        if self.load_raw() == ShootdownState::IDLE_RAW {
            return;
        }
        self.poll_issued(platform, nmi_depth);
    }

    /// The rest of [`poll`](Self::poll), once the word is not `Idle`.
    #[cold]
    fn poll_issued<P: Platform + ?Sized>(&self, platform: &P, nmi_depth: u32) {
        if let Some(cpu) = self.to_stop(platform) {
            let frame = capture_here();
            self.stop_here(platform, cpu, &frame, StopPath::Poll, nmi_depth)
        }
    }

    /// [`poll`](Self::poll) for a caller that has better registers to save
    /// than the poll site's: a CPU that panicked while another CPU owns the
    /// panic waits for the shootdown with the frame it panicked with (for a
    /// panic in an NMI or exception handler, the interrupted context), and
    /// saves that one if it stops itself.
    pub fn poll_with_frame<P: Platform + ?Sized>(
        &self,
        platform: &P,
        frame: &RegisterFrame,
        nmi_depth: u32,
    ) {
        if let Some(cpu) = self.to_stop(platform) {
            self.stop_here(platform, cpu, frame, StopPath::Poll, nmi_depth)
        }
    }

    /// The calling CPU, if a shootdown is issued and the caller is not its
    /// owner (so it must stop).
    fn to_stop<P: Platform + ?Sized>(&self, platform: &P) -> Option<CpuIndex> {
        let owner = ShootdownState::from_raw(self.load_raw()).and_then(ShootdownState::owner)?;
        let cpu = platform.current_cpu();
        (cpu != owner).then_some(cpu)
    }

    /// Log the stop (feature `defmt`), record `cpu` as stopped (if it has
    /// a slot that is not final) and park it.
    fn stop_here<P: Platform + ?Sized>(
        &self,
        platform: &P,
        cpu: CpuIndex,
        frame: &RegisterFrame,
        path: StopPath,
        nmi_depth: u32,
    ) -> ! {
        // Logged before the stop is recorded: the owner goes on (to its
        // tally, the dump) once it sees the slot `Stopped`, and the slot's
        // Release publication then covers the whole log frame, so no dump
        // holds this line half written.
        #[cfg(feature = "defmt")]
        defmt::info!(
            "CPU {=u32} stopped ({=str}) at rip {=u64:#x}",
            cpu.0,
            path.variant_name(),
            frame.rip
        );
        if let Some(slot) = self.slot(cpu) {
            // A refusal means the slot is final: `Absent` (the platform
            // miscounted its CPUs), `PanicOwner` (a record the panic path
            // wrote for another CPU) or `Stopped` (impossible: a stopped CPU
            // runs nothing). Nothing can be recorded then, and stopping is
            // still right: the shootdown's owner is in charge.
            let _ = slot.record_stop(
                frame,
                &platform.control_registers(),
                path,
                nmi_depth,
                platform.now_ns(),
            );
        }
        platform.park()
    }
}

/// The registers at the poll site.
#[inline(always)]
fn capture_here() -> RegisterFrame {
    #[cfg(target_arch = "x86_64")]
    {
        RegisterFrame::capture()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        RegisterFrame::ZERO
    }
}
