//! Helpers shared by the notifier tests: a platform with a hand-moved
//! clock, a recorder that keeps reports, and a lock domain for host threads.

#![allow(dead_code)] // each test file uses a subset

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use crashkit_nmi::lock::{CpuQueue, QueueDomain};
use crashkit_nmi::{CpuIndex, NmiSendError, PanicFlag, Platform};
use crashkit_notifiers::{NotifierOutcome, NotifierRecorder, NotifierReport};

/// A platform whose clock only moves when a test (or a body) moves it.
pub struct TestPlatform {
    clock: AtomicU64,
}

impl TestPlatform {
    pub const fn new() -> Self {
        Self {
            clock: AtomicU64::new(1_000),
        }
    }

    pub fn advance(&self, ns: u64) {
        self.clock.fetch_add(ns, SeqCst);
    }
}

impl Platform for TestPlatform {
    fn current_cpu(&self) -> CpuIndex {
        CpuIndex(0)
    }
    fn cpu_count(&self) -> usize {
        1
    }
    fn relax(&self) {}
    fn now_ns(&self) -> u64 {
        self.clock.load(SeqCst)
    }
    fn send_nmi(&self, _: CpuIndex) -> Result<(), NmiSendError> {
        Err(NmiSendError::Unavailable)
    }
    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError> {
        Err(NmiSendError::Unavailable)
    }
    fn park(&self) -> ! {
        loop {
            std::thread::park();
        }
    }

    fn disable_interrupts(&self) {}
}

/// Keeps every report (host tests only: it allocates).
#[derive(Default)]
pub struct Reports(pub Vec<NotifierReport>);

impl NotifierRecorder for Reports {
    fn record(&mut self, report: &NotifierReport) {
        self.0.push(*report);
    }
}

impl Reports {
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|report| report.name).collect()
    }

    pub fn outcomes(&self) -> Vec<(&'static str, NotifierOutcome)> {
        self.0
            .iter()
            .map(|report| (report.name, report.outcome))
            .collect()
    }
}

static QUEUES: [CpuQueue; 8] = [const { CpuQueue::new() }; 8];
static NEXT_CPU: AtomicU32 = AtomicU32::new(0);
/// This crate's tests' own panic flag (the machine's `PANIC` is claimed at
/// most once per process).
pub static TEST_PANIC: PanicFlag = PanicFlag::new();

std::thread_local! {
    static CPU: Cell<Option<CpuIndex>> = const { Cell::new(None) };
}

/// A lock domain for host threads: each thread is a CPU (indices handed
/// out in order, past 8 they spin test-and-set, which the lock handles).
pub struct HostThreads;

impl QueueDomain for HostThreads {
    fn queues() -> &'static [CpuQueue] {
        &QUEUES
    }
    fn current_cpu() -> CpuIndex {
        CPU.with(|cpu| match cpu.get() {
            Some(index) => index,
            None => {
                let index = CpuIndex(NEXT_CPU.fetch_add(1, SeqCst));
                cpu.set(Some(index));
                index
            }
        })
    }
    fn now_ns() -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            })
    }
    fn panic_flag() -> &'static PanicFlag {
        &TEST_PANIC
    }
}
