//! One simulated CPU's shared state: its lifecycle, its thread, its counters.
//!
//! # Lifecycle (state machine in `CpuSlot::state`)
//!
//! | from       | to         | by                      | when                                   |
//! |------------|------------|-------------------------|----------------------------------------|
//! | `Offline`  | `Online`   | the CPU's thread        | started, thread id published           |
//! | `Online`   | `Parked`   | the CPU's thread        | [`SimCpu::park`], or a panic in the entry |
//! | `Online`   | `Leaving`  | the CPU's thread        | its body returned or panicked          |
//!
//! `Parked` and `Leaving` are final. Signals may be sent while the state is
//! `Online` or `Parked` (a parked thread never exits: its signals stay
//! pending, like NMIs latched by a halted CPU with NMIs blocked). They are
//! never sent to a thread that may have exited, which would be undefined
//! behaviour for `pthread_kill`: see [`CpuSlot::with_live_thread`] and
//! [`CpuSlot::leave`] for the handshake.
//!
//! [`SimCpu::park`]: crate::SimCpu::park

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::{CpuOutcome, EntryKind};

/// Lifecycle states, see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CpuState {
    Offline = 0,
    Online = 1,
    Parked = 2,
    Leaving = 3,
}

impl CpuState {
    fn from_u8(raw: u8) -> Self {
        match raw {
            1 => Self::Online,
            2 => Self::Parked,
            3 => Self::Leaving,
            _ => Self::Offline,
        }
    }
}

/// Delivery counters of one CPU. Relaxed everywhere: they are statistics,
/// read after the run or by polling tests that tolerate lag.
/// Per-kind arrays are indexed by [`EntryKind::index`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: [AtomicU64; EntryKind::ALL.len()],
    pub delivered: [AtomicU64; EntryKind::ALL.len()],
    pub nmis_dropped: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        // Relaxed: a statistic (see the type's docs).
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bump_kind(counters: &[AtomicU64; EntryKind::ALL.len()], kind: EntryKind) {
        if let Some(counter) = counters.get(kind.index()) {
            Self::bump(counter);
        }
    }
}

#[derive(Debug)]
pub(crate) struct CpuSlot {
    state: AtomicU8,
    /// `pthread_t` of the CPU's thread, valid once the state left `Offline`.
    thread: AtomicUsize,
    /// Senders between their state check and the end of `pthread_kill`.
    senders: AtomicU32,
    /// NMIs still to be lost on purpose ([`SimPlatform::drop_next_nmis`]).
    ///
    /// [`SimPlatform::drop_next_nmis`]: crate::SimPlatform::drop_next_nmis
    pub drop_next: AtomicU32,
    pub counters: Counters,
    /// What the CPU ended with; written once by its own thread.
    pub outcome: Mutex<Option<CpuOutcome>>,
}

impl CpuSlot {
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(CpuState::Offline as u8),
            thread: AtomicUsize::new(0),
            senders: AtomicU32::new(0),
            drop_next: AtomicU32::new(0),
            counters: Counters::default(),
            outcome: Mutex::new(None),
        }
    }

    pub fn state(&self) -> CpuState {
        // Acquire: pairs with the Release in `go_online`, so a reader that
        // sees `Online` also sees the thread id.
        CpuState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// `Offline -> Online`, by the CPU's own thread.
    pub fn go_online(&self, thread: libc::pthread_t) {
        // Relaxed: published by the Release store below.
        self.thread.store(thread as usize, Ordering::Relaxed);
        // Release: publishes the thread id to senders (Acquire in `state`
        // and SeqCst in `with_live_thread`).
        self.state.store(CpuState::Online as u8, Ordering::Release);
    }

    /// `Online -> Parked`, by the CPU's own thread. Parked threads never
    /// exit, so senders may keep signalling them.
    pub fn park(&self) {
        // Release: orders the outcome written before parking for readers
        // polling the state (the outcome is also behind its mutex).
        self.state.store(CpuState::Parked as u8, Ordering::Release);
    }

    /// `Online -> Leaving`, by the CPU's own thread, with its signals already
    /// blocked; returns once no sender can still be about to signal it, after
    /// which the thread may exit.
    ///
    /// Handshake with [`with_live_thread`](Self::with_live_thread), a
    /// store-buffering pattern: this side stores `Leaving` then loads
    /// `senders`; a sender increments `senders` then loads the state. With all
    /// four accesses SeqCst, at least one side sees the other's write: either
    /// the sender sees `Leaving` and does not signal, or this side sees the
    /// sender and waits for it to finish.
    pub fn leave(&self) {
        self.state.store(CpuState::Leaving as u8, Ordering::SeqCst);
        while self.senders.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    /// Run `send` with the CPU's thread id if the thread is alive and will
    /// stay alive until `send` returns; `None` if it is offline or leaving.
    pub fn with_live_thread<R>(&self, send: impl FnOnce(libc::pthread_t) -> R) -> Option<R> {
        // SeqCst: the sender half of the handshake documented on `leave`.
        self.senders.fetch_add(1, Ordering::SeqCst);
        let state = CpuState::from_u8(self.state.load(Ordering::SeqCst));
        let result = match state {
            CpuState::Online | CpuState::Parked => {
                // Relaxed: the SeqCst load of a state other than `Offline`
                // synchronises with the Release store in `go_online`.
                let thread = self.thread.load(Ordering::Relaxed) as libc::pthread_t;
                Some(send(thread))
            }
            CpuState::Offline | CpuState::Leaving => None,
        };
        // Release: the `pthread_kill` above happens before the leaving
        // thread's SeqCst load that sees the count drop, so the thread only
        // exits after it.
        self.senders.fetch_sub(1, Ordering::Release);
        result
    }

    /// Record the CPU's outcome, keeping the first one written.
    pub fn set_outcome(&self, outcome: CpuOutcome) {
        // A poisoned lock only means another recorder panicked; the data is
        // an Option and stays meaningful.
        let mut slot = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(outcome);
        }
    }

    /// Take the recorded outcome (moved out, not cloned: no allocation, so
    /// the reporter cannot block on an allocator lock a hung CPU holds).
    pub fn take_outcome(&self) -> Option<CpuOutcome> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}
