//! A simulated CPU as its own code sees it: the handle passed to the body
//! and to the entry function, and what a CPU can do to itself (block NMIs,
//! park).

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Barrier;

use crashkit_nmi::{CpuIndex, RegisterFrame};

use crate::signals::{self, CURRENT};
use crate::slot::{Counters, CpuSlot};
use crate::{CpuOutcome, EntryKind, SimPlatform};

/// The handle of one simulated CPU, valid on that CPU's thread only (it is
/// neither `Send` nor `Sync`, so a body cannot hand it to another thread).
#[derive(Debug)]
pub struct SimCpu {
    index: CpuIndex,
    platform: SimPlatform,
    _on_its_thread_only: PhantomData<*const ()>,
}

/// Entry kinds blocked on the current CPU until this guard is dropped, which
/// restores the previous mask (so guards nest). NMIs and machine checks sent
/// meanwhile latch (one is delivered at the drop, the rest coalesce);
/// debug traps and interrupts queue.
#[derive(Debug)]
#[must_use = "the kinds are unblocked again when the guard is dropped"]
pub struct Masked<'cpu> {
    previous: libc::sigset_t,
    _cpu: PhantomData<&'cpu SimCpu>,
}

impl Drop for Masked<'_> {
    fn drop(&mut self) {
        signals::restore(&self.previous);
    }
}

impl SimCpu {
    /// This CPU's index.
    pub fn index(&self) -> CpuIndex {
        self.index
    }

    /// The machine's platform, for code under test.
    pub fn platform(&self) -> &SimPlatform {
        &self.platform
    }

    /// Whether the machine asks CPUs to wind down (deadline passed, or a CPU
    /// called [`SimPlatform::request_stop`]). Long-running bodies poll it.
    pub fn stop_requested(&self) -> bool {
        self.platform.stop_requested()
    }

    /// Block the entry `kinds` on this CPU until the guard is dropped.
    pub fn block(&self, kinds: &[EntryKind]) -> Masked<'_> {
        Masked {
            previous: signals::mask(signals::signals_of(kinds).as_slice(), true),
            _cpu: PhantomData,
        }
    }

    /// Block NMIs on this CPU until the guard is dropped (the state of a CPU
    /// inside an NMI handler). Machine checks stay deliverable, as on x86_64.
    pub fn block_nmis(&self) -> Masked<'_> {
        self.block(&[EntryKind::Nmi])
    }

    /// Disable maskable interrupts on this CPU until the guard is dropped
    /// (`cli` ... restore). NMIs, machine checks and debug traps still
    /// arrive.
    pub fn disable_interrupts(&self) -> Masked<'_> {
        self.block(&[EntryKind::Interrupt])
    }

    /// Stop this CPU for good, the way a CPU stopped by a shootdown halts
    /// with interrupts and NMIs blocked. Callable from the body or the entry
    /// function. Signals sent to a parked CPU stay pending; the run reports
    /// it as [`CpuOutcome::Parked`].
    pub fn park(&self) -> ! {
        self.slot().set_outcome(CpuOutcome::Parked);
        self.park_with_outcome_set()
    }

    fn park_with_outcome_set(&self) -> ! {
        signals::block_all();
        self.slot().park();
        loop {
            // SAFETY: `pause` has no preconditions; with every simulation
            // signal blocked it sleeps until an unrelated signal's handler
            // runs, and the loop sleeps again.
            unsafe {
                libc::pause();
            }
        }
    }

    fn slot(&self) -> &CpuSlot {
        self.platform.slot(self.index)
    }

    /// The signal handler's half: count the delivery and run the machine's
    /// entry function. A panic in it cannot unwind through the signal frame,
    /// so the CPU records it and parks.
    pub(crate) fn take_entry(&self, kind: EntryKind, frame: &mut RegisterFrame) {
        Counters::bump_kind(&self.slot().counters.delivered, kind);
        let entry = self.platform.entry();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| entry(self, kind, frame))) {
            let message = format!("in {kind:?} entry: {}", panic_message(&*panic));
            self.slot().set_outcome(CpuOutcome::Panicked(message));
            self.park_with_outcome_set();
        }
    }

    /// The thread main of CPU `index`: come online, wait for the start,
    /// run the body, record how it ended, leave.
    pub(crate) fn run_on_thread(
        index: CpuIndex,
        platform: SimPlatform,
        start: &Barrier,
        body: &(dyn Fn(&SimCpu) + Send + Sync),
    ) {
        let cpu = SimCpu {
            index,
            platform,
            _on_its_thread_only: PhantomData,
        };
        signals::block_all();
        CURRENT.with(|current| current.set(&cpu));
        // SAFETY: `pthread_self` has no preconditions.
        let thread = unsafe { libc::pthread_self() };
        cpu.slot().go_online(thread);
        // Signals stay blocked until the start: an entry raised early (by a
        // CPU already running its body) stays pending and is taken right
        // after, rather than interrupting this thread inside the barrier,
        // which holds a std mutex that the other starting CPUs need. An
        // entry that waits for another CPU (a lock in an NMI handler) would
        // otherwise deadlock the start, an artefact of the harness.
        start.wait();
        signals::unblock_all();

        let result = catch_unwind(AssertUnwindSafe(|| body(&cpu)));

        // Signals off before anything is torn down: from here on no handler
        // may run on this thread (it would find a CPU that is going away).
        signals::block_all();
        cpu.slot().set_outcome(match result {
            Ok(()) => CpuOutcome::Finished,
            Err(panic) => CpuOutcome::Panicked(panic_message(&*panic)),
        });
        cpu.slot().leave();
        CURRENT.with(|current| current.set(std::ptr::null()));
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}
