//! `QSpinLock` against `spin`'s `SpinMutex` (test-and-set, what
//! `spin::Mutex` is by default) and `TicketMutex`, in one process.
//! Contended figures also show `QSpinLock queue-only`: the same lock with
//! the pending waiter off ([`QueueDomain::PENDING_WAITER`]), so one run
//! shows what the pending bit gains.
//!
//! What is measured, and why (targets and results: `docs/benchmarks.md`):
//! 1. *Uncontended* lock + unlock, one thread (criterion group
//!    `uncontended`): the cost every acquisition pays. `QSpinLock` twice:
//!    raw (`acquire` / `release`) and through its `lock_api` `Mutex`, next
//!    to `spin`'s `lock()` and guard drop.
//! 2. *Contended throughput*, two threads hammering one lock whose critical
//!    section increments a counter (criterion group `contended_2_threads`,
//!    one criterion iteration = one acquisition, so its `thrpt` is
//!    acquisitions per second). Each thread makes half of the acquisitions;
//!    both start at a [`rendezvous`] that proves they run at once on two
//!    cores; the time is from the first thread's start to the last
//!    thread's end.
//! 3. *Worst single wait* under the same two-thread contention (fairness),
//!    after criterion since criterion reports no maxima: each thread times
//!    every acquisition from asking to getting; the run is repeated and a
//!    table gives, per lock, the median of the per-run maxima, the overall
//!    maximum and the 99.9th / 99th percentiles.
//!
//! Two-thread figures mean something only if both threads get a core. The
//! bench prints how many cores' worth of CPU two spinning threads get,
//! before and after, and `WARNING` lines when that is below 1.8, when a
//! rendezvous gave up, or when a fairness run had to be cut short: discard
//! such a run (another process was busy) and measure again.
//!
//! The bench threads are the domain's "CPUs" 0 and 1 (a thread-local
//! index; the main thread is CPU 0 and never locks while they run), and
//! every wait loop relaxes with `core::hint::spin_loop()` as `spin` does:
//! both threads spin, on a machine with at least two cores.
//!
//! Run: `cargo bench -p crashkit-nmi --bench qspinlock` (about 35 s of
//! measuring on an idle machine); `-- contended_2_threads` or
//! `-- uncontended` selects a criterion group (the fairness table is always
//! printed). Under `cargo test` (no `--bench` argument) criterion runs each
//! benchmark once and the fairness part makes a tiny run, so the binary
//! doubles as a smoke test.

use std::cell::Cell;
use std::hint::black_box;
use std::ops::DerefMut;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crashkit_nmi::CpuIndex;
use crashkit_nmi::lock::{CpuQueue, Mutex, QSpinLock, QueueDomain};
use criterion::{Criterion, Throughput, criterion_group};
use spin::mutex::{SpinMutex, TicketMutex};

// ---------------------------------------------------------------------------
// The queue domain: bench threads as CPUs.

thread_local! {
    static CPU: Cell<u32> = const { Cell::new(0) };
}

/// The bench's CPUs: four queues (two used), a clock from a fixed epoch,
/// and busy spinning.
struct Bench;

impl QueueDomain for Bench {
    fn queues() -> &'static [CpuQueue] {
        static QUEUES: [CpuQueue; 4] = [const { CpuQueue::new() }; 4];
        &QUEUES
    }

    fn current_cpu() -> CpuIndex {
        CpuIndex(CPU.with(Cell::get))
    }

    fn now_ns() -> u64 {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let elapsed = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
        u64::try_from(elapsed).unwrap_or(u64::MAX)
    }

    fn relax() {
        // Spin, as `spin::relax::Spin` does: we compare spinning locks.
        core::hint::spin_loop();
    }
}

/// The same CPUs with the pending waiter off: every contender queues (the
/// plain MCS queue), to show in the same run what the pending bit gains.
struct BenchQueueOnly;

impl QueueDomain for BenchQueueOnly {
    const PENDING_WAITER: bool = false;

    fn queues() -> &'static [CpuQueue] {
        static QUEUES: [CpuQueue; 4] = [const { CpuQueue::new() }; 4];
        &QUEUES
    }

    fn current_cpu() -> CpuIndex {
        Bench::current_cpu()
    }

    fn now_ns() -> u64 {
        Bench::now_ns()
    }

    fn relax() {
        Bench::relax();
    }
}

// ---------------------------------------------------------------------------
// The locks behind one guard-based interface.

/// What the contended critical section touches.
#[derive(Debug, Default)]
struct State {
    /// Acquisitions so far (checked at the end of every run).
    count: u64,
    /// The thread that held the lock last.
    last_owner: u32,
    /// Acquisitions by a thread other than the previous holder.
    handoffs: u64,
}

/// A lock protecting a [`State`], taken through a guard.
trait BenchLock: Sync {
    /// Name in the criterion ids and the fairness table.
    const NAME: &'static str;

    /// An unlocked lock over a fresh [`State`].
    fn unlocked() -> Self;

    /// Take the lock.
    fn lock(&self) -> impl DerefMut<Target = State> + '_;
}

impl BenchLock for Mutex<Bench, State> {
    const NAME: &'static str = "QSpinLock";

    fn unlocked() -> Self {
        Mutex::new(State::default())
    }

    #[inline]
    fn lock(&self) -> impl DerefMut<Target = State> + '_ {
        Mutex::lock(self)
    }
}

impl BenchLock for Mutex<BenchQueueOnly, State> {
    const NAME: &'static str = "QSpinLock queue-only";

    fn unlocked() -> Self {
        Mutex::new(State::default())
    }

    #[inline]
    fn lock(&self) -> impl DerefMut<Target = State> + '_ {
        Mutex::lock(self)
    }
}

impl BenchLock for SpinMutex<State> {
    const NAME: &'static str = "spin::SpinMutex";

    fn unlocked() -> Self {
        SpinMutex::new(State::default())
    }

    #[inline]
    fn lock(&self) -> impl DerefMut<Target = State> + '_ {
        SpinMutex::lock(self)
    }
}

impl BenchLock for TicketMutex<State> {
    const NAME: &'static str = "spin::TicketMutex";

    fn unlocked() -> Self {
        TicketMutex::new(State::default())
    }

    #[inline]
    fn lock(&self) -> impl DerefMut<Target = State> + '_ {
        TicketMutex::lock(self)
    }
}

type QLock = Mutex<Bench, State>;
type QueueOnlyLock = Mutex<BenchQueueOnly, State>;
type SpinLock = SpinMutex<State>;
type TicketLock = TicketMutex<State>;

/// Keeps a lock on cache lines of its own (128 bytes: adjacent-line
/// prefetch pairs lines), away from the barrier and the stack.
#[repr(align(128))]
struct Padded<T>(T);

/// One critical section: count the acquisition and whether it changed hands.
#[inline]
fn critical_section(state: &mut State, me: u32) {
    state.count += 1;
    if state.last_owner != me {
        state.last_owner = me;
        state.handoffs += 1;
    }
}

// ---------------------------------------------------------------------------
// 1. Uncontended.

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended");

    let raw = Padded(QSpinLock::<Bench>::new());
    group.bench_function("QSpinLock raw acquire+release", |b| {
        b.iter(|| {
            let lock = black_box(&raw.0);
            let _ = black_box(lock.acquire());
            // SAFETY: acquired on the line above by this thread.
            unsafe { lock.release() };
        });
    });

    let mutex = Padded(QLock::unlocked());
    group.bench_function("QSpinLock lock_api Mutex", |b| {
        b.iter(|| drop(black_box(&mutex.0).lock()));
    });

    let spin = Padded(SpinLock::unlocked());
    group.bench_function("spin::SpinMutex", |b| {
        b.iter(|| drop(black_box(&spin.0).lock()));
    });

    let ticket = Padded(TicketLock::unlocked());
    group.bench_function("spin::TicketMutex", |b| {
        b.iter(|| drop(black_box(&ticket.0).lock()));
    });

    group.finish();
}

// ---------------------------------------------------------------------------
// 2. Contended throughput.

/// Both threads arrive, then both go: a spinning barrier (used where being
/// on one core for a moment does not matter, see [`rendezvous`]).
fn arrive_and_wait(arrived: &AtomicU32, parties: u32) {
    // AcqRel/Acquire: nothing is published through it but the start.
    arrived.fetch_add(1, Ordering::AcqRel);
    while arrived.load(Ordering::Acquire) < parties {
        core::hint::spin_loop();
    }
}

/// Passes of the ball in one [`rendezvous`] round (both threads together).
const RENDEZVOUS_PASSES: u32 = 64;
/// A round faster than this was played by two threads on two cores at once.
const RENDEZVOUS_FAST: Duration = Duration::from_micros(100);
/// Past this many milliseconds, start anyway (a one-core machine never
/// gets a fast round): 200 ms for `cargo bench`, less in a test run.
static RENDEZVOUS_GIVE_UP_MS: AtomicU32 = AtomicU32::new(200);
/// `ball` value: go.
const GO: u32 = u32::MAX;

/// Rendezvous that gave up (the threads started possibly on one core).
static RENDEZVOUS_GAVE_UP: AtomicU32 = AtomicU32::new(0);

/// The start line of threads 0 and 1: they pass a ball back and forth
/// until a whole round is fast, which proves both are running at the same
/// time on different cores, then both go at once.
///
/// A plain barrier is not enough: fresh threads often start on the same
/// core, one of them passes the barrier while the other is not running,
/// and a short run is then over before the scheduler has moved either;
/// the "contended" run had no contention at all.
fn rendezvous(ball: &AtomicU32, me: u32) {
    let give_up_ms = RENDEZVOUS_GIVE_UP_MS.load(Ordering::Relaxed);
    let give_up_at = Instant::now() + Duration::from_millis(give_up_ms.into());
    // Wait until the ball is `want`: true then; false if the rendezvous is
    // over (GO), which thread 0 declares itself past the give-up time.
    // Acquire/Release on the ball throughout: it only orders the passes; no
    // data is published through it.
    let wait_for = |want: u32| -> bool {
        let mut spins = 0u32;
        loop {
            match ball.load(Ordering::Acquire) {
                GO => return false,
                now if now == want => return true,
                _ => {}
            }
            spins = spins.wrapping_add(1);
            if me == 0 && spins.is_multiple_of(1024) && Instant::now() > give_up_at {
                RENDEZVOUS_GAVE_UP.fetch_add(1, Ordering::Relaxed);
                // A swap, and thread 1 passes by compare-and-swap: a pass
                // cannot overwrite this GO.
                ball.swap(GO, Ordering::AcqRel);
                return false;
            }
            core::hint::spin_loop();
        }
    };
    loop {
        let round = Instant::now();
        // Thread `me` passes `2k + me` -> `2k + me + 1`.
        for k in 0..RENDEZVOUS_PASSES {
            let turn = 2 * k + me;
            if !wait_for(turn) {
                return;
            }
            if me == 0 {
                ball.store(turn + 1, Ordering::Release);
            } else if ball
                .compare_exchange(turn, turn + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return; // Thread 0 gave up meanwhile: GO.
            }
        }
        if me == 1 {
            // Thread 0 judges the round: wait for its verdict, go or
            // another round (which it may have begun already: any value
            // other than the last pass's).
            loop {
                match ball.load(Ordering::Acquire) {
                    GO => return,
                    now if now == 2 * RENDEZVOUS_PASSES => core::hint::spin_loop(),
                    _ => break,
                }
            }
            continue;
        }
        if !wait_for(2 * RENDEZVOUS_PASSES) {
            return;
        }
        if round.elapsed() < RENDEZVOUS_FAST {
            ball.store(GO, Ordering::Release);
            return;
        }
        ball.store(0, Ordering::Release);
    }
}

/// `rounds[i]` acquisitions on thread (CPU) `i` of a fresh lock; returns
/// the time from the first start to the last end, and the final state.
fn hammer<L: BenchLock>(rounds: [u64; 2]) -> (Duration, State) {
    let lock = Padded(L::unlocked());
    let ball = Padded(AtomicU32::new(0));
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let threads: Vec<_> = (0u32..)
            .zip(rounds)
            .map(|(cpu, rounds)| {
                let (lock, ball) = (&lock.0, &ball.0);
                s.spawn(move || {
                    CPU.with(|c| c.set(cpu));
                    rendezvous(ball, cpu);
                    let start = Instant::now();
                    for _ in 0..rounds {
                        critical_section(&mut lock.lock(), cpu);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    let state = std::mem::take(&mut *lock.0.lock());
    assert_eq!(
        state.count,
        rounds[0] + rounds[1],
        "{}: lost count",
        L::NAME
    );
    (end - start, state)
}

fn contended_one<L: BenchLock>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    group.bench_function(L::NAME, |b| {
        b.iter_custom(|iters| hammer::<L>([iters - iters / 2, iters / 2]).0);
    });
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended_2_threads");
    // One iteration is one acquisition: `thrpt` is acquisitions per second.
    group.throughput(Throughput::Elements(1));
    contended_one::<QLock>(&mut group);
    contended_one::<QueueOnlyLock>(&mut group);
    contended_one::<SpinLock>(&mut group);
    contended_one::<TicketLock>(&mut group);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = uncontended, contended
}

// ---------------------------------------------------------------------------
// 3. Worst single wait (fairness).

/// A fairness run stops there even if its threads have acquisitions left
/// (normally one takes well under a second; a time-sliced one, where every
/// hand-over of a fair lock waits for a scheduler tick, would take minutes).
const RUN_LIMIT: Duration = Duration::from_secs(1);

/// One thread's waits in one run, in nanoseconds, into `waits`; returns
/// when the thread started and ended.
fn timed_hammer<L: BenchLock>(
    lock: &L,
    ball: &AtomicU32,
    cpu: u32,
    rounds: usize,
    waits: &mut Vec<u64>,
) -> (Instant, Instant) {
    CPU.with(|c| c.set(cpu));
    rendezvous(ball, cpu);
    let start = Instant::now();
    let deadline = start + RUN_LIMIT;
    for _ in 0..rounds {
        let asked = Instant::now();
        let mut guard = lock.lock();
        let got = Instant::now();
        critical_section(&mut guard, cpu);
        drop(guard);
        waits.push(u64::try_from((got - asked).as_nanos()).unwrap_or(u64::MAX));
        if got > deadline {
            break;
        }
    }
    (start, Instant::now())
}

/// Figures of one run of one lock.
#[derive(Clone, Copy, Debug)]
struct RunFigures {
    max_ns: u64,
    p999_ns: u64,
    p99_ns: u64,
    mean_ns: f64,
    handoff_share: f64,
    macq_per_s: f64,
    /// Stopped at [`RUN_LIMIT`] before all acquisitions were made.
    cut: bool,
}

/// The `q`-quantile of `samples` (reordered in place).
fn quantile(samples: &mut [u64], q: f64) -> u64 {
    let last = samples.len() - 1;
    // The nearest rank; a non-negative float below `len`, so `as` is exact.
    let index = ((last as f64) * q).round() as usize;
    *samples.select_nth_unstable(index.min(last)).1
}

/// One timed run: both threads make `rounds` acquisitions each.
fn fairness_run<L: BenchLock>(rounds: usize, waits: &mut [Vec<u64>; 2]) -> RunFigures {
    let lock = Padded(L::unlocked());
    let ball = Padded(AtomicU32::new(0));
    for w in waits.iter_mut() {
        // Allocate and touch the buffer now, not during the run.
        w.clear();
        w.resize(rounds, 0);
        w.clear();
    }
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let threads: Vec<_> = (0u32..)
            .zip(waits.iter_mut())
            .map(|(cpu, w)| {
                let (lock, ball) = (&lock.0, &ball.0);
                s.spawn(move || timed_hammer(lock, ball, cpu, rounds, w))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let elapsed = spans.iter().map(|s| s.1).max().unwrap() - start;
    let state = std::mem::take(&mut *lock.0.lock());
    let total = waits[0].len() + waits[1].len();
    assert_eq!(state.count, total as u64, "{}: lost count", L::NAME);
    let mut all: Vec<u64> = waits.iter().flatten().copied().collect();
    let max_ns = all.iter().copied().max().unwrap_or(0);
    let mean_ns = all.iter().sum::<u64>() as f64 / total as f64;
    RunFigures {
        max_ns,
        p999_ns: quantile(&mut all, 0.999),
        p99_ns: quantile(&mut all, 0.99),
        mean_ns,
        handoff_share: state.handoffs as f64 / total as f64,
        macq_per_s: total as f64 / elapsed.as_secs_f64() / 1e6,
        cut: total < 2 * rounds,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Repeat timed runs of the locks, interleaved (so a noisy moment of
/// the machine hits all three alike), and print the table.
fn fairness(full: bool) {
    let (repetitions, rounds) = if full { (21, 200_000) } else { (2, 2_000) };
    let mut waits = [Vec::new(), Vec::new()];
    let mut runs: [Vec<RunFigures>; 4] = Default::default();
    let started = Instant::now();
    for _ in 0..repetitions {
        runs[0].push(fairness_run::<QLock>(rounds, &mut waits));
        runs[1].push(fairness_run::<SpinLock>(rounds, &mut waits));
        runs[2].push(fairness_run::<TicketLock>(rounds, &mut waits));
        runs[3].push(fairness_run::<QueueOnlyLock>(rounds, &mut waits));
    }
    let names = [
        QLock::NAME,
        SpinLock::NAME,
        TicketLock::NAME,
        QueueOnlyLock::NAME,
    ];
    let summary = |runs: &[RunFigures]| {
        let pick = |f: fn(&RunFigures) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let overall_max = runs.iter().map(|r| r.max_ns).max().unwrap_or(0);
        (
            pick(|r| r.max_ns as f64),
            overall_max,
            pick(|r| r.p999_ns as f64),
            pick(|r| r.p99_ns as f64),
            pick(|r| r.mean_ns),
            pick(|r| r.handoff_share),
            pick(|r| r.macq_per_s),
        )
    };
    let reference = summary(&runs[1]);
    println!();
    println!(
        "fairness: worst single wait, 2 threads, {repetitions} runs x {rounds} acquisitions per thread \
         (medians over runs unless said; ratios vs {})",
        SpinLock::NAME
    );
    println!(
        "{:<20} {:>14} {:>8} {:>14} {:>8} {:>11} {:>10} {:>10} {:>10} {:>11}",
        "lock",
        "median max ns",
        "ratio",
        "overall max ns",
        "ratio",
        "p99.9 ns",
        "p99 ns",
        "mean ns",
        "handoffs",
        "Macq/s"
    );
    for (name, runs) in names.iter().zip(&runs) {
        let (median_max, overall_max, p999, p99, mean, handoffs, macq) = summary(runs);
        println!(
            "{:<20} {:>14.0} {:>7.2}x {:>14} {:>7.2}x {:>11.0} {:>10.0} {:>10.1} {:>9.1}% {:>11.2}",
            name,
            median_max,
            median_max / reference.0,
            overall_max,
            overall_max as f64 / reference.1 as f64,
            p999,
            p99,
            mean,
            handoffs * 100.0,
            macq
        );
    }
    let cut = runs.iter().flatten().filter(|r| r.cut).count();
    if cut > 0 {
        println!("WARNING: {cut} runs were cut at {RUN_LIMIT:?} (time-sliced threads?)");
    }
    println!(
        "fairness part took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// Is the second core there?

/// How many cores' worth of CPU two spinning threads get, against one
/// thread alone (2.0: both cores free). Contention figures mean something
/// only near 2: below, the bench threads are time-sliced onto one core
/// (another process is busy, or the host gives the VM less than it shows),
/// and a "contended" run is mostly one thread at a time, with waits of a
/// scheduler tick.
fn cores_available(window: Duration) -> f64 {
    let spin_for = |threads: u32| -> u64 {
        let arrived = Padded(AtomicU32::new(0));
        thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let arrived = &arrived.0;
                    s.spawn(move || {
                        arrive_and_wait(arrived, threads);
                        let start = Instant::now();
                        let mut spins = 0u64;
                        while start.elapsed() < window {
                            for _ in 0..1000 {
                                spins = black_box(spins + 1);
                            }
                        }
                        spins
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        })
    };
    let one = spin_for(1);
    let two = spin_for(2);
    two as f64 / one as f64
}

fn report_cores(when: &str) {
    let cores = cores_available(Duration::from_millis(300));
    println!("cores available to two spinning threads {when}: {cores:.2} (2.00 = both free)");
    if cores < 1.8 {
        println!(
            "WARNING: the bench threads do not get two cores; contended and fairness \
             figures of this run are time-sliced, not concurrent: rerun on an idle machine"
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Only `cargo bench` passes `--bench`; otherwise this is a test run.
    let full = args.iter().any(|a| a == "--bench");
    if full {
        report_cores("before the benchmarks");
    } else {
        RENDEZVOUS_GIVE_UP_MS.store(20, Ordering::Relaxed);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `--list` (test listing) must print nothing else.
    if !args.iter().any(|a| a == "--list") {
        fairness(full);
    }
    if full {
        report_cores("after the benchmarks");
    }
    let gave_up = RENDEZVOUS_GAVE_UP.load(Ordering::Relaxed);
    if gave_up > 0 {
        println!(
            "WARNING: {gave_up} two-thread runs started without proof that both threads \
             ran at once (no second core?)"
        );
    }
}
