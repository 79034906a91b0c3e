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
//!   be the very next holder after `p`, and the pending waiter goes before
//!   anyone who queues behind it (the models only use
//!   [`QSpinLock::acquire`], whose fast path needs an empty word, so
//!   nobody may cut in);
//! - **the last-waiter tail-clear race**: the head that is also the tail
//!   clears the tail with a compare-and-swap while another CPU may be
//!   swapping itself in as the new tail; whichever wins, the lock must end
//!   `LockState::FREE`, and nobody may hang (loom
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
//! Two domains: `Model`, the lock as shipped (pending waiter on), and
//! `QueueOnly` (`PENDING_WAITER = false`), in which every contender queues,
//! so that three threads suffice to build a queue of two and explore its
//! races (with the pending waiter on, the same would need a fourth thread
//! holding the pending bit, and loom's state space grows by orders of
//! magnitude per thread).
//!
//! 1. `two_cpus_twice_each` (`Model`): two CPUs, two acquisitions each. The
//!    second contender becomes the pending waiter; the CPU that just
//!    released and comes back finds it pending or holding and becomes the
//!    pending waiter in turn. The test asserts that the pending path was
//!    explored.
//! 2. `pending_goes_before_the_queue` (`Model`): CPU 0 holds the lock with
//!    CPU 1 pending; CPU 2 arrives while CPU 0 releases and CPU 1 claims,
//!    so it queues behind the pending bit (and as head waits for it to
//!    clear), or becomes pending after CPU 1's claim, or takes the free
//!    lock. CPU 1 must hold before CPU 2 in every case; both kinds of
//!    arrival must be explored.
//! 3. `three_cpus_fifo` (`QueueOnly`): CPU 0 holds the lock, CPUs 1 and 2
//!    queue in either order while CPU 0 releases at any moment: a queue of
//!    two waiters, the hand-over from a head that is not last, the
//!    successor linking itself before or after its predecessor takes the
//!    lock.
//! 4. `last_waiter_tail_clear_race` (`QueueOnly`): CPU 0 holds the lock
//!    with CPU 1 queued (head and tail); CPU 2 arrives while CPU 0
//!    releases, so CPU 1's tail-clearing compare-and-swap races CPU 2's
//!    enqueue. The test asserts that both outcomes (CPU 2 behind CPU 1;
//!    CPU 1 clearing the tail first) were explored.
//! 5. `node_reuse_stale_next` and `node_reuse_stale_head` (`QueueOnly`):
//!    two rounds of model 4 with the roles rotated, so that nodes are
//!    queued on again while their previous round's `next` (naming another
//!    successor) and `head` ("you are the head") are still in them: the
//!    re-initialisation of a node must win over what its previous round
//!    left behind.
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
//! `next` or `head` not re-initialised) and, since the pending bit, a
//! pending claim that leaves the bit set, a head that does not wait for the
//! bit, and a Relaxed pending claim; with the spin budget below in place,
//! seven of these were re-run (tail never cleared, the three pending ones,
//! Relaxed release, Relaxed tail swap, `head` not re-initialised) and each
//! failed at least one model.
//!
//! # Starved schedules
//!
//! Loom explores unfair schedules too: with three threads, some keep
//! switching to a spinning waiter while the thread it waits for (the holder,
//! say) never runs, and such an execution never ends; loom then gives up
//! with "exceeded maximum number of branches" although the lock is fine
//! (with the pending waiter on, any three-thread model has two spinners,
//! and it happened in every such model at preemption bound 2). So the model
//! domain's `relax` counts a thread's spins and, at [`SPIN_BUDGET`] (16) in
//! one execution, calls `loom::skip_branch`: loom stops branching in that
//! execution and finishes it with its default, fair schedule. What is lost
//! is the exploration of schedules that only differ from an explored one by
//! more than 16 idle spins of one thread; a spin changes no state, so the
//! states such schedules reach are reached with fewer spins as well. A lock
//! that really never lets a waiter in still fails: the fair schedule spins
//! until loom's branch limit. The mutations listed above were re-checked
//! with the budget in place.
//!
//! The model's main thread waits (spinning with `yield_now`) for the first
//! waiter to be queued or pending, but never for a second one.
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

/// Spins of one thread in one execution after which loom stops branching.
const SPIN_BUDGET: u32 = 16;

loom::thread_local! {
    /// How often the current model thread has spun (called `relax`).
    static SPINS: Cell<u32> = Cell::new(0);
}
loom::thread_local! {
    /// The CPU a model thread plays, set when the thread starts.
    static CPU: Cell<u32> = Cell::new(0);
}

/// The domain of the models of the lock as shipped: pending waiter on.
struct Model;

/// The same CPUs and nodes with the pending waiter off, so that two waiters
/// form a queue and the queue's races can be explored with three threads.
struct QueueOnly;

/// The model CPUs, shared by both domains (one model uses one domain).
macro_rules! model_domain {
    ($domain:ty, pending = $pending:expr) => {
        impl QueueDomain for $domain {
            const PENDING_WAITER: bool = $pending;

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
                // Every wait loop calls this: it tells loom the thread
                // cannot progress until another one runs, so wait loops
                // stay finite.
                // A thread that has spun this often in one execution is
                // being starved by the schedule loom is exploring; stop
                // branching there (see "Starved schedules" above).
                SPINS.with(|spins| {
                    spins.set(spins.get() + 1);
                    if spins.get() == SPIN_BUDGET {
                        loom::skip_branch();
                    }
                });
                thread::yield_now();
            }

            fn panic_flag() -> &'static PanicFlag {
                // Never claimed: no thread takes the panic owner's path.
                static FLAG: PanicFlag = PanicFlag::new();
                &FLAG
            }
        }
    };
}

model_domain!(Model, pending = true);
model_domain!(QueueOnly, pending = false);

/// Play `cpu` on the current model thread.
fn become_cpu(cpu: u32) {
    CPU.with(|c| c.set(cpu));
}

/// One lock and what its critical sections touch.
struct Shared<D> {
    lock: QSpinLock<D>,
    /// Incremented (read, then written) in every critical section.
    counter: UnsafeCell<u32>,
    /// Every acquisition, in lock order: (CPU, how it was acquired).
    log: UnsafeCell<Vec<(u32, Acquired)>>,
}

// SAFETY: `counter` and `log` are only accessed with `lock` held (in
// `enter`) or after every other thread has been joined (in `finish`); loom
// checks that each access is ordered after the previous one.
unsafe impl<D> Sync for Shared<D> {}

impl<D: QueueDomain> Shared<D> {
    /// A free lock with nodes fresh for this execution. The model's main
    /// thread initialises the domain before it starts any other thread, so
    /// the lazy static adds no synchronisation between the CPUs.
    fn new() -> Arc<Self> {
        let _ = D::queues();
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
        let cpu = D::current_cpu().0;
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
            LockState::FREE,
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
            Acquired::Fast | Acquired::Pending | Acquired::Queued { behind: None } => {}
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
fn queue_behind(shared: &Arc<Shared<QueueOnly>>, holder: u32, waiters: [u32; 2]) -> [Acquired; 2] {
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
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    explore("two_cpus_twice_each", 5, || {
        let shared = Shared::<Model>::new();
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
        let log = shared.finish(4);
        if log.iter().any(|&(_, how)| how == Acquired::Pending) {
            PENDING.fetch_add(1, Relaxed);
        }
    });
    assert!(
        PENDING.load(Relaxed) > 0,
        "no execution went through the pending waiter: the model proved little"
    );
}

/// The pending waiter is served before a waiter that queues behind it,
/// whether the latter arrives while the pending bit is set (it queues, and
/// as head waits for the bit to clear), while the pending waiter is taking
/// the lock, or after (it becomes the pending waiter itself).
#[test]
fn pending_goes_before_the_queue() {
    static QUEUED: AtomicUsize = AtomicUsize::new(0);
    static AFTER: AtomicUsize = AtomicUsize::new(0);
    explore("pending_goes_before_the_queue", 3, || {
        let shared = Shared::<Model>::new();
        become_cpu(0);
        assert_eq!(shared.lock.acquire(), Acquired::Fast);
        shared.enter(Acquired::Fast);
        let spawn = |cpu| {
            let shared = shared.clone();
            thread::spawn(move || {
                become_cpu(cpu);
                shared.critical_section()
            })
        };
        let first = spawn(1);
        while !shared.lock.state().pending {
            thread::yield_now();
        }
        let second = spawn(2);
        // SAFETY: acquired above.
        unsafe { shared.lock.release() };
        let how = [first.join().unwrap(), second.join().unwrap()];
        let log = shared.finish(3);
        assert_eq!(how[0], Acquired::Pending);
        let order: Vec<u32> = log.iter().map(|&(cpu, _)| cpu).collect();
        assert_eq!(order, [0, 1, 2], "the pending waiter was overtaken");
        match how[1] {
            Acquired::Queued { behind: None } => QUEUED.fetch_add(1, Relaxed),
            // After cpu1 took the lock (pending in turn) or released it.
            Acquired::Pending | Acquired::Fast => AFTER.fetch_add(1, Relaxed),
            other => panic!("cpu2: unexpected acquisition path {other:?}"),
        };
    });
    let (queued, after) = (QUEUED.load(Relaxed), AFTER.load(Relaxed));
    assert!(
        queued > 0 && after > 0,
        "both arrivals must be explored (queued behind the pending waiter: {queued}, after it: {after})"
    );
}

/// FIFO among two queued waiters behind a holder that releases at any moment.
#[test]
fn three_cpus_fifo() {
    static BEHIND_A_WAITER: AtomicUsize = AtomicUsize::new(0);
    explore("three_cpus_fifo", 4, || {
        let shared = Shared::<QueueOnly>::new();
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
        let shared = Shared::<QueueOnly>::new();
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
        let shared = Shared::<QueueOnly>::new();
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
