//! Stress: the QSpinLock under simulated CPUs whose waits are interrupted by
//! nested contexts that take locks themselves, five contexts deep, so that
//! the fifth nested waiter runs the test-and-set fallback.
//!
//! Every context takes the lock of its nesting depth (body: lock 0, first
//! nested entry: lock 1, ... fifth context: lock 4), so no context ever
//! waits for a lock held by a context it interrupted (that would deadlock
//! any lock), while contexts at the same depth on different CPUs contend.
//! While a CPU waits, the domain's `relax` now and then raises the next
//! entry kind on the CPU itself, which nests a new waiter inside the wait;
//! other CPUs' NMIs arrive at random moments besides.
//!
//! Checked: mutual exclusion (each lock guards a non-atomic counter, read,
//! yielded over, written back; a second holder would lose increments), every
//! lock ends unlocked with an empty queue, the fallback ran, and nothing hung
//! (the run has a deadline). Entries neither allocate nor lock (see
//! `common`).

mod common;

use std::cell::UnsafeCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crashkit_nmi::lock::{Acquired, CpuQueue, LockState, QSpinLock, QueueDomain};
use crashkit_nmi::{CpuIndex, Platform, RegisterFrame};
use crashkit_sim::{EntryKind, Machine, Rng, SimCpu, SimPlatform};

const CPUS: usize = 4;
const LEVELS: usize = 5;
const ROUNDS: u64 = 800;
const DEADLINE: Duration = Duration::from_secs(120);

/// Nesting order of the entries raised from `relax`: what a kernel sees
/// (task, then interrupt, debug trap, NMI, machine check).
const NEST_ORDER: [EntryKind; 4] = [
    EntryKind::Interrupt,
    EntryKind::Debug,
    EntryKind::Nmi,
    EntryKind::MachineCheck,
];

static PLATFORM: OnceLock<SimPlatform> = OnceLock::new();

struct Sim;

impl QueueDomain for Sim {
    fn queues() -> &'static [CpuQueue] {
        static QUEUES: [CpuQueue; CPUS] = [const { CpuQueue::new() }; CPUS];
        &QUEUES
    }

    fn current_cpu() -> CpuIndex {
        crashkit_sim::current_cpu().unwrap_or(CpuIndex(u32::MAX))
    }

    fn now_ns() -> u64 {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }

    /// Yield, and one time in two nest the next entry kind inside this
    /// wait.
    fn relax() {
        std::thread::yield_now();
        let Some(cpu) = crashkit_sim::current_cpu() else {
            return;
        };
        let Some(state) = CPU_STATE.get(cpu.as_usize()) else {
            return;
        };
        let draw = state.draws.fetch_add(1, Relaxed);
        if crashkit_sim::Rng::new(draw ^ u64::from(cpu.0) << 32).below(2) != 0 {
            return;
        }
        let active = state.active.load(Relaxed);
        let next = NEST_ORDER
            .iter()
            .find(|kind| active & (1 << kind.index()) == 0);
        if let (Some(&kind), Some(platform)) = (next, PLATFORM.get()) {
            NESTED_RAISES.fetch_add(1, Relaxed);
            let _ = platform.raise(cpu, kind);
        }
    }
}

/// Per-CPU bookkeeping of the test (touched only by the CPU itself).
struct CpuState {
    /// Contexts running on the CPU: its body plus active entries.
    depth: AtomicU32,
    /// Entry kinds active on the CPU, one bit per `EntryKind::index`.
    active: AtomicU32,
    /// Draw counter for `relax`'s decisions.
    draws: AtomicU64,
}

static CPU_STATE: [CpuState; CPUS] = [const {
    CpuState {
        depth: AtomicU32::new(0),
        active: AtomicU32::new(0),
        draws: AtomicU64::new(0),
    }
}; CPUS];

/// One lock and the non-atomic counter it guards.
struct Guarded {
    lock: QSpinLock<Sim>,
    value: UnsafeCell<u64>,
    /// Acquisitions, counted outside the lock.
    taken: AtomicU64,
}

// SAFETY: `value` is only accessed by the holder of `lock` (in `take`).
unsafe impl Sync for Guarded {}

static LOCKS: [Guarded; LEVELS] = [const {
    Guarded {
        lock: QSpinLock::new(),
        value: UnsafeCell::new(0),
        taken: AtomicU64::new(0),
    }
}; LEVELS];

static NESTED_RAISES: AtomicU64 = AtomicU64::new(0);
static PENDING: AtomicU64 = AtomicU64::new(0);
static QUEUED: AtomicU64 = AtomicU64::new(0);
static NO_NODE: AtomicU64 = AtomicU64::new(0);
static DEEPEST: AtomicU32 = AtomicU32::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Take the lock of `level`, bump its counter non-atomically (yielding in
/// between so another holder would interleave), release.
fn take(level: usize) {
    let Some(guarded) = LOCKS.get(level) else {
        return;
    };
    let hold = if level == LEVELS - 1 { 10 } else { 1 };
    match guarded.lock.acquire() {
        Acquired::Pending => PENDING.fetch_add(1, Relaxed),
        Acquired::Queued { .. } => QUEUED.fetch_add(1, Relaxed),
        Acquired::NoNode => NO_NODE.fetch_add(1, Relaxed),
        Acquired::Fast => 0,
        Acquired::Panic { .. } => panic!("nobody panics in this test"),
    };
    // SAFETY: the lock is held; if mutual exclusion failed, the lost
    // update shows in the final count (and is the data race the test
    // exists to catch).
    unsafe {
        let value = guarded.value.get().read_volatile();
        for _ in 0..hold {
            std::thread::yield_now();
        }
        guarded.value.get().write_volatile(value + 1);
    }
    guarded.taken.fetch_add(1, Relaxed);
    // SAFETY: acquired above, released once.
    unsafe { guarded.lock.release() };
}

fn entry(cpu: &SimCpu, kind: EntryKind, _: &mut RegisterFrame) {
    let Some(state) = CPU_STATE.get(cpu.index().as_usize()) else {
        return;
    };
    let bit = 1 << kind.index();
    state.active.fetch_or(bit, Relaxed);
    let depth = state.depth.fetch_add(1, Relaxed) + 1;
    DEEPEST.fetch_max(depth, Relaxed);
    if STARTED.load(Relaxed) {
        take(depth as usize);
    }
    state.depth.fetch_sub(1, Relaxed);
    state.active.fetch_and(!bit, Relaxed);
}

fn body(cpu: &SimCpu) {
    let platform = cpu.platform();
    let mut rng = Rng::new(0x10C4 + u64::from(cpu.index().0));
    STARTED.store(true, Relaxed);
    for _ in 0..ROUNDS {
        if cpu.stop_requested() {
            return;
        }
        take(0);
        if cpu.index() == CpuIndex(0) && rng.chance(50) {
            // With every entry blocked (nothing can nest here, so holding
            // the deepest lock cannot block a context this one interrupted),
            // sit on the deepest lock for a while: the fifth contexts of the
            // other CPUs find it held and must wait without a node.
            let _everything_off = cpu.block(&EntryKind::ALL);
            take(LEVELS - 1);
        }
        if rng.chance(300) {
            let target = CpuIndex(rng.below(CPUS as u64) as u32);
            let _ = platform.send_nmi(target);
        }
    }
}

#[test]
fn nested_waiters_keep_mutual_exclusion_and_fall_back_past_four() {
    let machine = Machine::new(CPUS, entry);
    let _ = PLATFORM.set(machine.platform().clone());
    let report = machine.run(DEADLINE, body);

    let fallbacks: u64 = Sim::queues().iter().map(|q| q.stats().fallbacks).sum();
    eprintln!(
        "{report}nested raises {}, deepest {} contexts, pending {}, queued {}, no node {}, fallbacks {fallbacks}",
        NESTED_RAISES.load(Relaxed),
        DEEPEST.load(Relaxed) + 1,
        PENDING.load(Relaxed),
        QUEUED.load(Relaxed),
        NO_NODE.load(Relaxed),
    );
    report.assert_all_finished();
    for (level, guarded) in LOCKS.iter().enumerate() {
        // SAFETY: every CPU has finished; no one holds or takes the lock.
        let value = unsafe { *guarded.value.get() };
        let taken = guarded.taken.load(Relaxed);
        eprintln!("lock {level}: taken {taken} times");
        assert_eq!(value, taken, "lock {level} let two holders in");
        assert_eq!(guarded.lock.state(), LockState::FREE);
    }
    // Only bodies take lock 0 (entries run at depth 1 and deeper).
    assert_eq!(LOCKS[0].taken.load(Relaxed), CPUS as u64 * ROUNDS);
    assert!(PENDING.load(Relaxed) > 0, "no waiter ever went pending");
    assert!(QUEUED.load(Relaxed) > 0, "no waiter ever queued");
    assert_eq!(
        DEEPEST.load(Relaxed) as usize + 1,
        LEVELS,
        "never five deep"
    );
    assert!(fallbacks > 0, "the fifth nested waiter never fell back");
    assert_eq!(fallbacks, NO_NODE.load(Relaxed));
}
