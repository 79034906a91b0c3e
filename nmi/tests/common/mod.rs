//! Helpers shared by the simulation tests.
//!
//! Code in a simulated entry runs in a signal handler: it must not allocate
//! or take a lock the interrupted body might hold (glibc's `malloc` and
//! std's `Mutex` are not reentrant, so either would deadlock the CPU). These
//! helpers are lock-free and allocation-free for that reason.

#![allow(dead_code)] // each test file uses a subset

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

use crashkit_sim::SimCpu;

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

/// An append-only log of up to `N` codes, writable from signal handlers.
pub struct Log<const N: usize> {
    len: AtomicUsize,
    codes: [AtomicU32; N],
}

impl<const N: usize> Log<N> {
    pub const fn new() -> Self {
        Self {
            len: AtomicUsize::new(0),
            codes: [const { AtomicU32::new(0) }; N],
        }
    }

    /// Append `code`; entries past `N` are counted but not kept.
    pub fn push(&self, code: u32) {
        let at = self.len.fetch_add(1, SeqCst);
        if let Some(slot) = self.codes.get(at) {
            slot.store(code, SeqCst);
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(SeqCst)
    }

    /// The kept codes, in append order (call after the writers are done).
    pub fn codes(&self) -> Vec<u32> {
        self.codes
            .iter()
            .take(self.len().min(N))
            .map(|c| c.load(SeqCst))
            .collect()
    }
}
