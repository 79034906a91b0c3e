//! [`QueueDomain`]: where a family of locks finds its per-CPU state.
//!
//! A lock has to find, with no argument, the CPU it runs on, that CPU's
//! queue nodes, a clock, and the panic flag: `lock_api`'s `RawMutex::lock`
//! takes only `&self`, and a lock must stay one 32-bit word. So the lock is
//! generic over a zero-sized domain type whose associated functions answer
//! those questions. A kernel has one domain; tests make one per test so
//! their nodes and panic flags do not mix.

use super::CpuQueue;
use crate::{CpuIndex, PanicFlag};

/// The CPUs a family of [`QSpinLock`](super::QSpinLock)s is shared by.
///
/// ```
/// use crashkit_nmi::{CpuIndex, lock::{CpuQueue, QueueDomain}};
///
/// static QUEUES: [CpuQueue; 4] = [const { CpuQueue::new() }; 4];
///
/// struct Kernel;
/// impl QueueDomain for Kernel {
///     fn queues() -> &'static [CpuQueue] { &QUEUES }
///     fn current_cpu() -> CpuIndex { CpuIndex(0) /* from the APIC ID, per-CPU data, ... */ }
///     fn now_ns() -> u64 { 0 /* a monotonic clock */ }
/// }
///
/// static LOCK: crashkit_nmi::lock::Mutex<Kernel, u64> = crashkit_nmi::lock::Mutex::new(0);
/// *LOCK.lock() += 1;
/// ```
pub trait QueueDomain: 'static {
    /// Longest the panic owner waits for a held lock before breaking it.
    /// A holder that is still running releases a spinlock within
    /// microseconds; one stopped by the shootdown never does.
    const PANIC_LOCK_WAIT_NS: u64 = 10_000_000;

    /// Whether the second contender for a held lock that nobody waits for
    /// spins on the lock word as the *pending* waiter (no queue node, one
    /// cache line shared by holder and waiter) rather than queueing. On by
    /// default: it makes two-CPU contention hand the lock over through the
    /// word alone (see docs/benchmarks.md for what it gains). Off is the
    /// plain MCS queue; the model tests use it to explore the queue alone.
    const PENDING_WAITER: bool = true;

    /// One [`CpuQueue`] per CPU, indexed by [`CpuIndex`]. A CPU outside the
    /// slice (or beyond [`MAX_QUEUE_CPUS`](super::MAX_QUEUE_CPUS)) never
    /// queues: it spins test-and-set.
    fn queues() -> &'static [CpuQueue];

    /// The CPU executing the call. Must be callable from any context.
    fn current_cpu() -> CpuIndex;

    /// A monotonic nanosecond clock (bounded waits only).
    fn now_ns() -> u64;

    /// Spin-wait hint in every wait loop.
    fn relax() {
        core::hint::spin_loop();
    }

    /// The panic flag the locks obey; the machine's [`crate::PANIC`] unless
    /// a test substitutes its own.
    fn panic_flag() -> &'static PanicFlag {
        &crate::PANIC
    }
}
