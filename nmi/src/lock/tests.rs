//! Host tests of the lock with threads as CPUs: the paths one by one
//! (fast, queued in FIFO order, fallback, panic owner, bounded), and
//! mutual exclusion under contention. The model test (loom) and the
//! simulation stress test live in `nmi/tests/`.

use std::cell::{Cell, UnsafeCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use lock_api::RawMutexTimed;

use super::*;
use crate::{CpuIndex, PanicClaim, PanicFlag};

thread_local! {
    static CPU: Cell<u32> = const { Cell::new(0) };
}

fn set_cpu(cpu: u32) {
    CPU.with(|c| c.set(cpu));
}

/// A domain of 8 CPUs with its own nodes and panic flag, so tests running
/// in parallel do not share either.
macro_rules! domain {
    ($name:ident, panic_wait_ns = $wait:expr) => {
        struct $name;
        impl QueueDomain for $name {
            const PANIC_LOCK_WAIT_NS: u64 = $wait;
            fn queues() -> &'static [CpuQueue] {
                static QUEUES: [CpuQueue; 8] = [const { CpuQueue::new() }; 8];
                &QUEUES
            }
            fn current_cpu() -> CpuIndex {
                CpuIndex(CPU.with(Cell::get))
            }
            fn now_ns() -> u64 {
                static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
            }
            fn relax() {
                std::thread::yield_now();
            }
            fn panic_flag() -> &'static PanicFlag {
                static FLAG: PanicFlag = PanicFlag::new();
                &FLAG
            }
        }
    };
    ($name:ident) => {
        domain!($name, panic_wait_ns = 10_000_000);
    };
}

/// Spin until `done` (bounded: a test that cannot progress fails).
fn wait_for(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "waited too long");
        std::thread::yield_now();
    }
}

#[test]
fn uncontended_lock_is_one_fast_acquisition() {
    domain!(D);
    let lock = QSpinLock::<D>::new();
    assert_eq!(lock.acquire(), Acquired::Fast);
    assert_eq!(
        lock.state(),
        LockState {
            locked: true,
            pending: false,
            tail: None
        }
    );
    assert!(!lock.try_lock());
    // SAFETY: acquired above.
    unsafe { lock.release() };
    assert!(!lock.is_locked());
    assert!(lock.try_lock());
    // SAFETY: acquired by `try_lock`.
    unsafe { lock.release() };
}

#[test]
fn waiters_are_served_in_queue_order() {
    domain!(D);
    let lock = Arc::new(QSpinLock::<D>::new());
    assert_eq!(lock.acquire(), Acquired::Fast);
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    // CPU 1 becomes the pending waiter, then CPUs 2, 3, 4 queue one after
    // the other (each waits until the previous one is the tail), while
    // CPU 0 holds the lock.
    for cpu in 1..=4u32 {
        let (waiter_lock, order) = (lock.clone(), order.clone());
        threads.push(std::thread::spawn(move || {
            set_cpu(cpu);
            let how = waiter_lock.acquire();
            order.lock().unwrap().push((cpu, how));
            // SAFETY: acquired above.
            unsafe { waiter_lock.release() };
        }));
        if cpu == 1 {
            wait_for(|| lock.state().pending);
        } else {
            wait_for(|| lock.state().tail.map(|(c, _)| c) == Some(CpuIndex(cpu)));
        }
    }
    // SAFETY: acquired by this thread above.
    unsafe { lock.release() };
    for thread in threads {
        thread.join().unwrap();
    }
    let queued = |behind| Acquired::Queued { behind };
    assert_eq!(
        *order.lock().unwrap(),
        [
            (1, Acquired::Pending),
            (2, queued(None)),
            (3, queued(Some(CpuIndex(2)))),
            (4, queued(Some(CpuIndex(3))))
        ]
    );
    assert_eq!(lock.state(), LockState::FREE);
}

#[test]
fn contended_counter_stays_exact() {
    domain!(D);
    struct Shared {
        lock: QSpinLock<D>,
        counter: UnsafeCell<u64>,
    }
    // SAFETY: `counter` is only accessed with `lock` held (below).
    unsafe impl Sync for Shared {}
    let shared = Arc::new(Shared {
        lock: QSpinLock::new(),
        counter: UnsafeCell::new(0),
    });
    const THREADS: u32 = 4;
    const ROUNDS: u64 = 2_000;
    let start = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|cpu| {
            let (shared, start) = (shared.clone(), start.clone());
            std::thread::spawn(move || {
                set_cpu(cpu);
                start.wait();
                let (mut pending, mut queued) = (0, 0);
                for round in 0..ROUNDS {
                    match shared.lock.acquire() {
                        Acquired::Pending => pending += 1,
                        Acquired::Queued { .. } => queued += 1,
                        _ => {}
                    }
                    // SAFETY: the lock is held; a second holder would make
                    // this a data race and the final count wrong.
                    unsafe {
                        let value = shared.counter.get().read_volatile();
                        // Now and then give the core away while holding the
                        // lock, so the others contend even when the host
                        // runs all threads on one core.
                        if round % 256 == 0 {
                            std::thread::yield_now();
                        }
                        shared.counter.get().write_volatile(value + 1);
                    }
                    // SAFETY: acquired above.
                    unsafe { shared.lock.release() };
                }
                (pending, queued)
            })
        })
        .collect();
    let (pending, queued) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0u64, 0u64), |(p, q), (tp, tq)| (p + tp, q + tq));
    // SAFETY: every thread has been joined: no one else accesses it.
    let total = unsafe { *shared.counter.get() };
    assert_eq!(total, u64::from(THREADS) * ROUNDS);
    assert!(
        pending > 0 && queued > 0,
        "every path must have run (pending {pending}, queued {queued}): the test proved little"
    );
    assert_eq!(shared.lock.state(), LockState::FREE);
}

#[test]
fn a_fifth_nested_waiter_falls_back_and_is_counted() {
    domain!(D);
    let lock = Arc::new(QSpinLock::<D>::new());
    assert_eq!(lock.acquire(), Acquired::Fast);
    // CPU 6 takes the pending bit, so CPU 5 must queue (and cannot).
    let pending = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            set_cpu(6);
            let how = lock.acquire();
            // SAFETY: acquired above.
            unsafe { lock.release() };
            how
        })
    };
    wait_for(|| lock.state().pending);
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            set_cpu(5);
            // Four contexts of CPU 5 are already waiting somewhere.
            D::queues()[5].nesting.store(4, SeqCst);
            let how = lock.acquire();
            // SAFETY: acquired above.
            unsafe { lock.release() };
            D::queues()[5].nesting.store(0, SeqCst);
            how
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(lock.state().tail, None, "the fallback never queues");
    // SAFETY: acquired by this thread above.
    unsafe { lock.release() };
    assert_eq!(waiter.join().unwrap(), Acquired::NoNode);
    assert_eq!(pending.join().unwrap(), Acquired::Pending);
    assert_eq!(D::queues()[5].stats().fallbacks, 1);
    assert_eq!(D::queues()[0].stats().fallbacks, 0);
}

#[test]
fn a_second_contender_waits_pending_without_a_node() {
    domain!(D);
    let lock = Arc::new(QSpinLock::<D>::new());
    assert_eq!(lock.acquire(), Acquired::Fast);
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            set_cpu(2);
            let how = lock.acquire();
            // SAFETY: acquired above.
            unsafe { lock.release() };
            how
        })
    };
    wait_for(|| lock.state().pending);
    assert_eq!(
        lock.state(),
        LockState {
            locked: true,
            pending: true,
            tail: None
        }
    );
    assert_eq!(
        D::queues()[2].nesting.load(SeqCst),
        0,
        "the pending waiter takes no node"
    );
    // SAFETY: acquired by this thread above.
    unsafe { lock.release() };
    assert_eq!(waiter.join().unwrap(), Acquired::Pending);
    assert_eq!(lock.state(), LockState::FREE);
}

#[test]
fn without_the_pending_waiter_a_second_contender_queues() {
    struct NoPending;
    impl QueueDomain for NoPending {
        const PENDING_WAITER: bool = false;
        fn queues() -> &'static [CpuQueue] {
            static QUEUES: [CpuQueue; 4] = [const { CpuQueue::new() }; 4];
            &QUEUES
        }
        fn current_cpu() -> CpuIndex {
            CpuIndex(CPU.with(Cell::get))
        }
        fn now_ns() -> u64 {
            0
        }
        fn relax() {
            std::thread::yield_now();
        }
        fn panic_flag() -> &'static PanicFlag {
            static FLAG: PanicFlag = PanicFlag::new();
            &FLAG
        }
    }
    let lock = Arc::new(QSpinLock::<NoPending>::new());
    assert_eq!(lock.acquire(), Acquired::Fast);
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            set_cpu(1);
            let how = lock.acquire();
            // SAFETY: acquired above.
            unsafe { lock.release() };
            how
        })
    };
    wait_for(|| lock.state().tail.is_some());
    assert!(!lock.state().pending);
    // SAFETY: acquired by this thread above.
    unsafe { lock.release() };
    assert_eq!(waiter.join().unwrap(), Acquired::Queued { behind: None });
}

#[test]
fn the_panic_owner_breaks_a_lock_held_by_a_stopped_cpu() {
    domain!(D, panic_wait_ns = 2_000_000);
    let lock = QSpinLock::<D>::new();
    // CPU 3 took it and was stopped (it will never release).
    set_cpu(3);
    assert_eq!(lock.acquire(), Acquired::Fast);
    // CPU 1 panics and needs the lock.
    set_cpu(1);
    assert_eq!(D::panic_flag().claim(CpuIndex(1)), PanicClaim::First);
    let start = Instant::now();
    assert_eq!(lock.acquire(), Acquired::Panic { broke: true });
    assert!(
        start.elapsed() >= Duration::from_millis(2),
        "broke before the bound"
    );
    assert_eq!(D::queues()[1].stats().panic_breaks, 1);
    // SAFETY: held (by force) above.
    unsafe { lock.release() };
    // A free lock: the owner takes it normally, nothing broken.
    assert_eq!(lock.acquire(), Acquired::Fast);
    assert!(!lock.try_lock());
    assert_eq!(lock.acquire(), Acquired::Panic { broke: true });
    assert_eq!(D::queues()[1].stats().panic_breaks, 2);
}

#[test]
fn the_panic_owner_takes_a_lock_released_within_the_bound() {
    domain!(D, panic_wait_ns = 10_000_000_000);
    let lock = Arc::new(QSpinLock::<D>::new());
    let held = Arc::new(AtomicBool::new(false));
    let holder = {
        let (lock, held) = (lock.clone(), held.clone());
        std::thread::spawn(move || {
            set_cpu(2);
            assert_eq!(lock.acquire(), Acquired::Fast);
            held.store(true, SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: acquired above.
            unsafe { lock.release() };
        })
    };
    wait_for(|| held.load(SeqCst));
    set_cpu(0);
    assert_eq!(D::panic_flag().claim(CpuIndex(0)), PanicClaim::First);
    assert_eq!(lock.acquire(), Acquired::Panic { broke: false });
    holder.join().unwrap();
    assert_eq!(D::queues()[0].stats().panic_breaks, 0);
}

#[test]
fn other_cpus_keep_queueing_during_a_panic() {
    domain!(D);
    set_cpu(4);
    assert_eq!(D::panic_flag().claim(CpuIndex(0)), PanicClaim::First);
    let lock = QSpinLock::<D>::new();
    assert_eq!(lock.acquire(), Acquired::Fast);
    // SAFETY: acquired above.
    unsafe { lock.release() };
}

#[test]
fn bounded_lock_gives_up_at_the_deadline() {
    domain!(D);
    let lock = QSpinLock::<D>::new();
    assert!(lock.lock_until(D::now_ns() + 1_000_000));
    let start = Instant::now();
    assert!(!lock.lock_until(D::now_ns() + 2_000_000));
    assert!(start.elapsed() >= Duration::from_millis(2));
    assert!(!lock.try_lock_for(Duration::from_millis(1)));
    assert!(!lock.try_lock_until(Deadline(D::now_ns())));
    // SAFETY: acquired by the first `lock_until`.
    unsafe { lock.release() };
    assert!(lock.try_lock_for(Duration::ZERO));
}

#[test]
fn lock_api_mutex_guards_the_data() {
    domain!(D);
    static VALUE: Mutex<D, u32> = Mutex::new(1);
    {
        let mut guard = VALUE.lock();
        *guard += 1;
        assert!(VALUE.try_lock().is_none());
    }
    assert_eq!(*VALUE.lock(), 2);
    assert!(!VALUE.is_locked());
}
