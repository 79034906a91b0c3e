//! Loom model of [`QSpinLock`]'s queued path: the interleavings of a few
//! CPUs taking one lock, with the weak-memory outcomes loom models for the
//! orderings the lock uses, checked for
//!
//! - **mutual exclusion**: every critical section reads, then writes, a
//!   [`loom::cell::UnsafeCell`] counter; loom fails the model when two of
//!   those accesses are not ordered by happens-before (two holders at once,
//!   or a holder that is not guaranteed to see the previous holder's
//!   writes: an ordering too weak), and the final count must be exact;
//! - **FIFO hand-off**: every critical section appends (CPU, how acquired)
//!   to a log; a waiter that acquired with `Queued { behind: Some(p) }` must
//!   be the very next holder after `p` (the models only use
//!   [`QSpinLock::acquire`], whose fast path needs an empty queue, so
//!   nobody may cut in);
//! - **the last-waiter tail-clear race**: the head that is also the tail
//!   clears the tail with a compare-and-swap while another CPU may be
//!   swapping itself in as the new tail; whichever wins, the lock must end
//!   `LockState { locked: false, tail: None }`, and nobody may hang (loom
//!   reports a deadlock, and a wait that can never end as "exceeded maximum
//!   number of branches").
//!
//! Built only with `--cfg loom`, which switches the lock word and the queue
//! nodes to loom's atomics (`nmi/src/lock/sync.rs`). `cargo xtask test` runs
//! it in release mode with its own target directory:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p crashkit-nmi --test loom_qspinlock --release -- --nocapture
//! ```
//!
//! Each model prints how many executions it explored. `LOOM_MAX_PREEMPTIONS`
//! overrides every model's preemption bound (to explore deeper by hand).
//!
//! # The models
//!
//! 1. `two_cpus_twice_each`: two CPUs, two acquisitions each. The CPU that
//!    just released and comes back finds the other one queued (the fast
//!    path fails on the non-empty tail) and queues behind a waiter that may
//!    be clearing the tail as the last waiter at that very moment; each
//!    node is also used twice.
//! 2. `three_cpus_fifo`: CPU 0 holds the lock, CPUs 1 and 2 queue in either
//!    order while CPU 0 releases at any moment: a queue of two waiters, the
//!    hand-over from a head that is not last, the successor linking itself
//!    before or after its predecessor takes the lock.
//! 3. `last_waiter_tail_clear_race`: CPU 0 holds the lock with CPU 1 queued
//!    (head and tail); CPU 2 arrives while CPU 0 releases, so CPU 1's
//!    tail-clearing compare-and-swap races CPU 2's enqueue. The test
//!    asserts that both outcomes (CPU 2 behind CPU 1; CPU 1 clearing the
//!    tail first) were explored.
//! 4. `node_reuse_stale_next` and `node_reuse_stale_head`: two rounds of
//!    model 3 with the roles rotated, so that nodes are queued on again
//!    while their previous round's `next` (naming another successor) and
//!    `head` ("you are the head") are still in them: the re-initialisation
//!    of a node must win over what its previous round left behind.
//!
//! # Why these bounds are enough
//!
//! The queued path's races are all between a waiter, its neighbours in the
//! queue and the lock word: the holder's release, the head's claim (clearing
//! the tail or not), the successor's enqueue and link, the hand-over, and a
//! node's re-initialisation against its previous use. A holder plus two
//! waiters exercise each of these pairs, in both orders; a longer queue only
//! repeats the same pairwise interactions further down, and more rounds
//! only repeat the re-use. The models are preemption-bounded (2 to 5):
//! loom then explores every schedule with at most that many preemptions
//! (switches away from a thread that could go on; switches at a wait loop's
//! `yield_now` are free), and bugs of this kind need very few, typically
//! one or two (the experience of systematic testing tools such as CHESS).
//! Unbounded, the spin loops make even the two-CPU model run for more than
//! ten minutes. The bounds were chosen so that the whole file runs in
//! seconds; each caught the broken variants of the lock tried while the
//! model was written (a tail never cleared, a successor that links itself
//! only after its wait, a Relaxed tail swap, claim or release, a node's
//! `next` or `head` not re-initialised).
//!
//! The model's main thread waits (spinning with `yield_now`) for the first
//! waiter to be queued, but never for a second one while the first spins:
//! with two threads spinning, loom also explores schedules that starve the
//! third thread for as long as its branch budget allows, and fails.
//!
//! # Not modelled
//! Nested contexts on one CPU (the node index from `nesting`, the
//! test-and-set fallback of a fifth nested waiter), `try_lock`,
//! `lock_until` and the panic owner's path: they are test-and-set on the
//! locked bit and covered by the host tests and the simulation stress test.
//! Loom does not model every weak-memory behaviour either (no load
//! buffering; SeqCst is approximated): the orderings are argued in
//! `nmi/src/lock/qspinlock.rs`.

#![cfg(loom)]

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use crashkit_nmi::lock::{Acquired, CpuQueue, LockState, QSpinLock, QueueDomain};
use crashkit_nmi::{CpuIndex, PanicFlag};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// CPUs of the model domain (the most any model uses).
const CPUS: usize = 3;

loom::lazy_static! {
    /// The domain's queue nodes: a fresh set for every loom execution
    /// (loom resets its lazy statics between executions).
    static ref QUEUES: [CpuQueue; CPUS] = core::array::from_fn(|_| CpuQueue::new());
}

loom::thread_local! {
    /// The CPU a model thread plays, set when the thread starts.
    static CPU: Cell<u32> = Cell::new(0);
}

/// The domain every model's lock lives in.
struct Model;

impl QueueDomain for Model {
    fn queues() -> &'static [CpuQueue] {
        &*QUEUES
    }

    fn current_cpu() -> CpuIndex {
        CpuIndex(CPU.with(Cell::get))
    }

    fn now_ns() -> u64 {
        // Only the bounded and panic-owner paths read the clock.
        0
    }

    fn relax() {
        // Every wait loop calls this: it tells loom the thread cannot
        // progress until another one runs, so wait loops stay finite.
        thread::yield_now();
    }

    fn panic_flag() -> &'static PanicFlag {
        // Never claimed: no thread takes the panic owner's path.
        static FLAG: PanicFlag = PanicFlag::new();
        &FLAG
    }
}

/// Play `cpu` on the current model thread.
fn become_cpu(cpu: u32) {
    CPU.with(|c| c.set(cpu));
}

/// One lock and what its critical sections touch.
struct Shared {
    lock: QSpinLock<Model>,
    /// Incremented (read, then written) in every critical section.
    counter: UnsafeCell<u32>,
    /// Every acquisition, in lock order: (CPU, how it was acquired).
    log: UnsafeCell<Vec<(u32, Acquired)>>,
}

// SAFETY: `counter` and `log` are only accessed with `lock` held (in
// `enter`) or after every other thread has been joined (in `finish`); loom
// checks that each access is ordered after the previous one.
unsafe impl Sync for Shared {}

impl Shared {
    /// A free lock with nodes fresh for this execution. The model's main
    /// thread initialises the domain before it starts any other thread, so
    /// the lazy static adds no synchronisation between the CPUs.
    fn new() -> Arc<Self> {
        let _ = Model::queues();
        Arc::new(Self {
            lock: QSpinLock::new(),
            counter: UnsafeCell::new(0),
            log: UnsafeCell::new(Vec::new()),
        })
    }

    /// Take the lock as the current CPU, run the critical section, release,
    /// and return how the lock was taken.
    fn critical_section(&self) -> Acquired {
        let how = self.lock.acquire();
        self.enter(how);
        // SAFETY: acquired just above, not released since.
        unsafe { self.lock.release() };
        how
    }

    /// The body of a critical section that `how` started.
    fn enter(&self, how: Acquired) {
        let cpu = Model::current_cpu().0;
        // A read and a write as two separate accesses: a second holder
        // could interleave between them (and loom flags unordered accesses).
        // SAFETY: the lock is held (see `Sync` above).
        let value = self.counter.with(|counter| unsafe { *counter });
        // SAFETY: as above.
        self.counter
            .with_mut(|counter| unsafe { *counter = value + 1 });
        // SAFETY: as above.
        self.log.with_mut(|log| unsafe { (*log).push((cpu, how)) });
    }

    /// Once every other thread has been joined: check the count, the FIFO
    /// order and the final lock word, and return the log.
    fn finish(&self, acquisitions: u32) -> Vec<(u32, Acquired)> {
        // SAFETY: every thread that accessed the cells has been joined.
        let count = self.counter.with(|counter| unsafe { *counter });
        assert_eq!(count, acquisitions, "lost or extra critical sections");
        // SAFETY: as above.
        let log = self.log.with(|log| unsafe { (*log).clone() });
        assert_eq!(log.len(), acquisitions as usize);
        check_fifo(&log);
        assert_eq!(
            self.lock.state(),
            LockState {
                locked: false,
                tail: None
            },
            "the lock must end free with an empty queue (log: {log:?})"
        );
        log
    }
}

/// FIFO: a waiter queued behind CPU `p` holds the lock right after `p`.
fn check_fifo(log: &[(u32, Acquired)]) {
    for (i, &(cpu, how)) in log.iter().enumerate() {
        match how {
            Acquired::Queued {
                behind: Some(predecessor),
            } => {
                let previous = i.checked_sub(1).map(|p| log[p].0);
                assert_eq!(
                    previous,
                    Some(predecessor.0),
                    "cpu{cpu} queued behind {predecessor} but did not follow it (log: {log:?})"
                );
            }
            Acquired::Fast | Acquired::Queued { behind: None } => {}
            other => panic!("cpu{cpu}: unexpected acquisition path {other:?} (log: {log:?})"),
        }
    }
}

/// Explore `model` with loom, at most `preemption_bound` preemptions per
/// execution (unless `LOOM_MAX_PREEMPTIONS` says otherwise), and print how
/// many executions that took and how long.
fn explore(name: &str, preemption_bound: usize, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    let bound = *builder.preemption_bound.get_or_insert(preemption_bound);
    let executions = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = executions.clone();
    let started = Instant::now();
    builder.check(move || {
        counted.fetch_add(1, Relaxed);
        model();
    });
    println!(
        "loom model {name}: {} executions (preemption bound {bound}) in {:.2} s",
        executions.load(Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// As `holder`, take the lock, let `waiters[0]` queue behind it (waiting
/// until it is the tail), start `waiters[1]` and release at once: the second
/// waiter may queue behind the first, or arrive after the first cleared the
/// tail, or after everything. Returns how each waiter acquired the lock.
fn queue_behind(shared: &Arc<Shared>, holder: u32, waiters: [u32; 2]) -> [Acquired; 2] {
    become_cpu(holder);
    assert_eq!(shared.lock.acquire(), Acquired::Fast);
    shared.enter(Acquired::Fast);
    let spawn = |cpu| {
        let shared = shared.clone();
        thread::spawn(move || {
            become_cpu(cpu);
            shared.critical_section()
        })
    };
    let first = spawn(waiters[0]);
    while shared.lock.state().tail.map(|(cpu, _)| cpu) != Some(CpuIndex(waiters[0])) {
        thread::yield_now();
    }
    let second = spawn(waiters[1]);
    // SAFETY: acquired above.
    unsafe { shared.lock.release() };
    let how = [first.join().unwrap(), second.join().unwrap()];
    assert_eq!(how[0], Acquired::Queued { behind: None });
    how
}

/// Mutual exclusion, FIFO, the tail-clear race and node re-use, with two
/// CPUs taking the lock twice each.
#[test]
fn two_cpus_twice_each() {
    explore("two_cpus_twice_each", 5, || {
        let shared = Shared::new();
        let other = {
            let shared = shared.clone();
            thread::spawn(move || {
                become_cpu(1);
                for _ in 0..2 {
                    let _ = shared.critical_section();
                }
            })
        };
        become_cpu(0);
        for _ in 0..2 {
            let _ = shared.critical_section();
        }
        other.join().unwrap();
        shared.finish(4);
    });
}

/// FIFO among two queued waiters behind a holder that releases at any moment.
#[test]
fn three_cpus_fifo() {
    static BEHIND_A_WAITER: AtomicUsize = AtomicUsize::new(0);
    explore("three_cpus_fifo", 4, || {
        let shared = Shared::new();
        become_cpu(0);
        assert_eq!(shared.lock.acquire(), Acquired::Fast);
        shared.enter(Acquired::Fast);
        let waiters = [1, 2].map(|cpu| {
            let shared = shared.clone();
            thread::spawn(move || {
                become_cpu(cpu);
                shared.critical_section()
            })
        });
        // SAFETY: acquired above.
        unsafe { shared.lock.release() };
        let how = waiters.map(|waiter| waiter.join().unwrap());
        shared.finish(3);
        if how
            .iter()
            .any(|how| matches!(how, Acquired::Queued { behind: Some(_) }))
        {
            BEHIND_A_WAITER.fetch_add(1, Relaxed);
        }
    });
    assert!(
        BEHIND_A_WAITER.load(Relaxed) > 0,
        "no execution queued a waiter behind another: the model proved little"
    );
}

/// The head that is the last waiter clears the tail while another CPU
/// enqueues and the holder releases.
#[test]
fn last_waiter_tail_clear_race() {
    static BEHIND_THE_LAST: AtomicUsize = AtomicUsize::new(0);
    static AFTER_THE_CLEAR: AtomicUsize = AtomicUsize::new(0);
    explore("last_waiter_tail_clear_race", 4, || {
        let shared = Shared::new();
        let [_, arriving] = queue_behind(&shared, 0, [1, 2]);
        shared.finish(3);
        match arriving {
            Acquired::Queued {
                behind: Some(CpuIndex(1)),
            } => BEHIND_THE_LAST.fetch_add(1, Relaxed),
            // CPU 1 cleared the tail before CPU 2 swapped itself in.
            Acquired::Fast | Acquired::Queued { behind: None } => {
                AFTER_THE_CLEAR.fetch_add(1, Relaxed)
            }
            other => panic!("cpu2: unexpected acquisition path {other:?}"),
        };
    });
    let (behind, after) = (BEHIND_THE_LAST.load(Relaxed), AFTER_THE_CLEAR.load(Relaxed));
    assert!(
        behind > 0 && after > 0,
        "both sides of the race must be explored (behind the last waiter: {behind}, after the clear: {after})"
    );
}

/// Two rounds of `queue_behind`: the first (cpu0 holding, cpu1 then cpu2
/// waiting) leaves, when cpu2 queued behind cpu1, cpu1's node with `next`
/// naming cpu2 and cpu2's node with `head` set; the second re-uses them.
fn node_reuse(name: &str, holder: u32, waiters: [u32; 2]) {
    explore(name, 2, move || {
        let shared = Shared::new();
        let _ = queue_behind(&shared, 0, [1, 2]);
        let _ = queue_behind(&shared, holder, waiters);
        shared.finish(6);
    });
}

/// cpu1 queues again, with cpu0 as its successor this time: a stale `next`
/// would hand the queue to cpu2, which is not waiting, and cpu0 would hang.
#[test]
fn node_reuse_stale_next() {
    node_reuse("node_reuse_stale_next", 2, [1, 0]);
}

/// cpu2 queues again, behind cpu0: a stale `head` would let it take the lock
/// ahead of cpu0.
#[test]
fn node_reuse_stale_head() {
    node_reuse("node_reuse_stale_head", 1, [0, 2]);
}
