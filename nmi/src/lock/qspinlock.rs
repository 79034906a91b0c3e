//! The lock itself: acquisition paths, release, and the ordering argument
//! for every atomic access. The protocol and its transition table are in the
//! module docs of [`crate::lock`].

use core::marker::PhantomData;
use core::sync::atomic::{Ordering, compiler_fence};

use super::QueueDomain;
use super::queue::{CpuQueue, NO_SUCCESSOR, QueueNode};
use super::sync::AtomicU32;
use super::word::{LOCKED, PENDING, TAIL_MASK, decode_tail, encode_tail};
use crate::CpuIndex;

/// How many compare-and-swap attempts [`QSpinLock::try_lock`] makes while
/// the lock stays free (a failure then means the queue tail kept moving).
const TRY_ATTEMPTS: usize = 4;

/// How many compare-and-swap attempts the slow path makes at the fast lock
/// or the pending bit while the word keeps changing between "free" and
/// "held, nobody waiting", before it queues instead.
const PENDING_ATTEMPTS: usize = 4;

/// A queued spinlock over domain `D`: one 32-bit word, FIFO among queued
/// waiters, usable from any context, bounded for the panic owner.
///
/// Most users want the `lock_api` wrapper [`Mutex`](super::Mutex); this is
/// the raw lock, which also reports *how* each acquisition went.
pub struct QSpinLock<D> {
    word: AtomicU32,
    _domain: PhantomData<fn() -> D>,
}

/// How a lock was acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the lock is held: release it"]
pub enum Acquired {
    /// It was free and nobody was queued: one compare-and-swap.
    Fast,
    /// The lock was held and nobody else waited: this CPU became the
    /// *pending* waiter, spinning on the lock word itself (no queue node)
    /// as the next in line.
    Pending,
    /// Through the queue; `behind` is the CPU whose waiter was just ahead
    /// (`None`: this waiter found the queue empty and was head at once).
    Queued {
        /// The predecessor's CPU.
        behind: Option<CpuIndex>,
    },
    /// All of this CPU's queue nodes were in use (a fifth nested context),
    /// or the CPU has none: it spun test-and-set.
    NoNode,
    /// This CPU owns the panic and took the lock test-and-set within the
    /// panic bound, or broke it (`broke`) because it stayed held.
    Panic {
        /// The lock was still held at the deadline and was taken anyway.
        broke: bool,
    },
}

/// A lock's word, decoded, for crash records and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockState {
    /// Whether the lock is held.
    pub locked: bool,
    /// Whether a pending waiter is spinning on the word, next in line.
    pub pending: bool,
    /// The last queued waiter: (CPU, node index).
    pub tail: Option<(CpuIndex, usize)>,
}

impl LockState {
    /// A free lock: not held, nobody pending, no queue.
    pub const FREE: Self = Self {
        locked: false,
        pending: false,
        tail: None,
    };
}

impl<D> core::fmt::Debug for QSpinLock<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QSpinLock")
            .field("state", &self.state())
            .finish()
    }
}

impl<D> QSpinLock<D> {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            _domain: PhantomData,
        }
    }

    /// An unlocked lock (loom build: not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            _domain: PhantomData,
        }
    }

    /// The lock's state now (it may change at once).
    pub fn state(&self) -> LockState {
        // Relaxed: a diagnostic snapshot; nothing is read through it.
        let word = self.word.load(Ordering::Relaxed);
        LockState {
            locked: word & LOCKED != 0,
            pending: word & PENDING != 0,
            tail: decode_tail(word),
        }
    }

    /// Whether the lock is held now.
    pub fn is_locked(&self) -> bool {
        self.state().locked
    }

    /// Take the lock if it is free, without waiting. May take it ahead of
    /// queued waiters whose head has not claimed it yet.
    pub fn try_lock(&self) -> bool {
        // Relaxed: the value only feeds the compare-and-swap below.
        let mut word = self.word.load(Ordering::Relaxed);
        for _ in 0..TRY_ATTEMPTS {
            if word & LOCKED != 0 {
                return false;
            }
            // Acquire on success: pairs with the Release of `release`, so
            // the previous holder's critical section happens before ours.
            // Relaxed on failure: we only retry with the value.
            match self.word.compare_exchange_weak(
                word,
                word | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
        false
    }

    /// Release the lock.
    ///
    /// # Safety
    /// The caller holds the lock: it acquired it (any path, on any CPU) and
    /// has not released it since. Releasing a lock someone else holds lets
    /// two holders in at once. (`lock_api`'s guards call this exactly once.)
    pub unsafe fn release(&self) {
        // Release: publishes the critical section to the next acquirer's
        // Acquire compare-and-swap. A read-modify-write rather than a store
        // because queuers may be changing the tail bits at the same time.
        self.word.fetch_and(!LOCKED, Ordering::Release);
    }
}

impl<D> Default for QSpinLock<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: QueueDomain> QSpinLock<D> {
    /// Take the lock, waiting as long as needed (bounded for the panic
    /// owner, see the module docs).
    pub fn acquire(&self) -> Acquired {
        // Acquire on success: pairs with `release` (previous critical
        // section happens before ours). Relaxed on failure: we only learn
        // that the word was not (0, 0).
        if self
            .word
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Acquired::Fast;
        }
        self.acquire_slow()
    }

    /// Take the lock unless `deadline_ns` (on [`QueueDomain::now_ns`])
    /// passes first. Never queues, so it can give up at any moment; it
    /// competes test-and-set with the queue's head.
    pub fn lock_until(&self, deadline_ns: u64) -> bool {
        loop {
            if self.try_lock() {
                return true;
            }
            if D::now_ns() >= deadline_ns {
                return false;
            }
            D::relax();
        }
    }

    #[cold]
    fn acquire_slow(&self) -> Acquired {
        let cpu = D::current_cpu();
        if D::panic_flag().owner() == Some(cpu) {
            return self.acquire_as_panic_owner(cpu);
        }
        if D::PENDING_WAITER
            && let Some(acquired) = self.acquire_pending()
        {
            return acquired;
        }
        let Some(queue) = D::queues().get(cpu.as_usize()) else {
            self.spin_test_and_set();
            return Acquired::NoNode;
        };
        // Only this CPU changes `nesting`, and any context that interrupts
        // us restores it before we resume. Relaxed: no other CPU reads it.
        let index = queue.nesting.fetch_add(1, Ordering::Relaxed) as usize;
        // The compiler must not move our node's initialisation above the
        // increment: a nested context arriving in between would take the
        // same node (Linux's `barrier()` at this point).
        compiler_fence(Ordering::SeqCst);
        let acquired = match (queue.nodes.get(index), encode_tail(cpu, index)) {
            (Some(node), Some(tail)) => self.acquire_queued(node, tail),
            _ => {
                queue.count_fallback();
                self.spin_test_and_set();
                Acquired::NoNode
            }
        };
        // And nothing of the node's use may move below the decrement, after
        // which a nested context may reuse it.
        compiler_fence(Ordering::SeqCst);
        queue.nesting.fetch_sub(1, Ordering::Relaxed);
        acquired
    }

    /// The second contender's path: if the lock is held and nobody waits,
    /// set the pending bit and spin on the word until the holder releases,
    /// then take the lock and clear the bit in one compare-and-swap. Two
    /// CPUs trading a lock thus hand it over through the word alone, without
    /// touching queue nodes. `None`: somebody already waits (pending or
    /// queued), or the word kept changing; queue instead.
    fn acquire_pending(&self) -> Option<Acquired> {
        // Relaxed: the value only feeds the compare-and-swaps below.
        let mut word = self.word.load(Ordering::Relaxed);
        let mut attempts = 0;
        loop {
            attempts += 1;
            if attempts > PENDING_ATTEMPTS {
                return None;
            }
            if word == 0 {
                // Released since the fast path looked: try it once more.
                // Acquire on success: pairs with `release`, as the fast
                // path. Relaxed on failure: we only retry with the value.
                match self
                    .word
                    .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => return Some(Acquired::Fast),
                    Err(now) => word = now,
                }
                continue;
            }
            if word != LOCKED {
                // A pending waiter or a queue exists: join the queue.
                return None;
            }
            // (1, 0, 0) -> (1, 1, 0). Relaxed: the bit publishes nothing
            // (no memory is handed over through it); it only tells later
            // acquirers to queue and the queue's head to wait. What our
            // critical section needs from the holder comes through our
            // Acquire claim below.
            match self.word.compare_exchange(
                LOCKED,
                LOCKED | PENDING,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        // We own the pending bit: nobody else sets it while it is set, and
        // only we clear it. Wait for the holder (or a test-and-set acquirer
        // that cut in) to release, then claim (0, 1, t) -> (1, 0, t).
        loop {
            // Relaxed: the value only feeds the compare-and-swap.
            let word = self.word.load(Ordering::Relaxed);
            if word & LOCKED != 0 {
                D::relax();
                continue;
            }
            // Acquire: pairs with `release`, so the previous critical
            // section happens before ours. Relaxed on failure: retry (a
            // test-and-set acquirer took the lock, or the tail moved).
            if self
                .word
                .compare_exchange(
                    word,
                    (word & !PENDING) | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Some(Acquired::Pending);
            }
        }
    }

    /// Queue on `node` (whose tail is `me`), wait to be head, take the lock,
    /// hand the queue over.
    fn acquire_queued(&self, node: &QueueNode, me: u32) -> Acquired {
        // Relaxed: published by the AcqRel compare-and-swap below, which is
        // how a successor learns of this node.
        node.head.store(0, Ordering::Relaxed);
        node.next.store(NO_SUCCESSOR, Ordering::Relaxed);

        // Swap ourselves in as the tail. AcqRel: the Release half publishes
        // the node's initialisation to the successor that will read our
        // tail here (it writes our `next`, which our initialisation must
        // not overwrite); the Acquire half pairs with our predecessor's
        // Release here, so its initialisation happens before our write to
        // its `next`.
        // Relaxed: the value only feeds the compare-and-swap.
        let mut word = self.word.load(Ordering::Relaxed);
        let previous = loop {
            let queued = (word & !TAIL_MASK) | me;
            match self
                .word
                .compare_exchange_weak(word, queued, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(old) => break old & TAIL_MASK,
                Err(now) => word = now,
            }
        };

        let behind = match decode_tail(previous) {
            Some((cpu, index)) => {
                if let Some(predecessor) = node_at::<D>(cpu, index) {
                    // Release: pairs with the predecessor's Acquire load of
                    // `next`, so our `head = 0` happens before its
                    // `head = 1` and cannot overwrite it. (The word already
                    // gives that order: every write to it is a
                    // read-modify-write, so the predecessor's Acquire claim
                    // synchronises with our AcqRel tail swap. The loom model
                    // passes with this one Relaxed; it is kept as the local
                    // statement of the pairing, at no cost on x86.)
                    predecessor.next.store(me, Ordering::Release);
                    // Acquire: pairs with the predecessor's Release store of
                    // `head`; we now own the head role it held. What our
                    // critical section needs from the previous holders comes
                    // through the word (our Acquire claim below), not here.
                    while node.head.load(Ordering::Acquire) == 0 {
                        D::relax();
                    }
                }
                // A tail naming a node the domain does not have cannot be
                // written by this code (tails are only encoded for nodes
                // that exist); if it ever were, we would act as head at
                // once, which keeps mutual exclusion (the lock is still
                // taken by compare-and-swap below) and costs only order.
                Some(cpu)
            }
            None => None,
        };

        // Head of the queue: wait for the holder to release and for a
        // pending waiter (which came before any queued one) to have taken
        // its turn, then take the lock, clearing the tail if we are still
        // the last waiter.
        loop {
            // Relaxed: the value only feeds the compare-and-swap.
            let word = self.word.load(Ordering::Relaxed);
            if word & (LOCKED | PENDING) != 0 {
                D::relax();
                continue;
            }
            let last = word & TAIL_MASK == me;
            let claimed = if last { LOCKED } else { word | LOCKED };
            // Acquire: pairs with `release`, so the previous critical
            // section happens before ours. Relaxed on failure: retry.
            if self
                .word
                .compare_exchange(word, claimed, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if !last {
                hand_over::<D>(node);
            }
            return Acquired::Queued { behind };
        }
    }

    /// Test-and-set until the lock is ours, with no bound: the path of a
    /// fifth nested context (and of a CPU with no queue).
    fn spin_test_and_set(&self) {
        while !self.try_lock() {
            D::relax();
        }
    }

    /// The panic owner's path: test-and-set for at most the panic bound,
    /// then take the lock whatever its state and record the break.
    fn acquire_as_panic_owner(&self, cpu: CpuIndex) -> Acquired {
        let deadline = D::now_ns().saturating_add(D::PANIC_LOCK_WAIT_NS);
        if self.lock_until(deadline) {
            return Acquired::Panic { broke: false };
        }
        // Acquire: as any acquisition, pairs with a `release` if the holder
        // did release in the meantime.
        let before = self.word.fetch_or(LOCKED, Ordering::Acquire);
        let broke = before & LOCKED != 0;
        if broke && let Some(queue) = D::queues().get(cpu.as_usize()) {
            queue.count_panic_break();
        }
        Acquired::Panic { broke }
    }
}

/// The node `index` of `cpu` in domain `D`.
fn node_at<D: QueueDomain>(cpu: CpuIndex, index: usize) -> Option<&'static QueueNode> {
    D::queues()
        .get(cpu.as_usize())
        .and_then(|queue: &CpuQueue| queue.nodes.get(index))
}

/// We hold the lock and a successor queued behind `node`: wait until it has
/// linked itself (it does right after its compare-and-swap) and make it the
/// head.
fn hand_over<D: QueueDomain>(node: &QueueNode) {
    let next = loop {
        // Acquire: pairs with the successor's Release store of our `next`,
        // so its node's initialisation happens before our `head` store
        // (also implied by the word: our Acquire claim read a value at or
        // after the successor's AcqRel tail swap).
        let next = node.next.load(Ordering::Acquire);
        if next != NO_SUCCESSOR {
            break next;
        }
        D::relax();
    };
    if let Some(successor) = decode_tail(next).and_then(|(cpu, index)| node_at::<D>(cpu, index)) {
        // Release: pairs with the successor's Acquire spin on `head`.
        successor.head.store(1, Ordering::Release);
    }
}
