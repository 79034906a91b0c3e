//! The `nmi-roundtrip` scenario: an NMI round trip measured in the guest
//! with the TSC, the denominator of the benchmark "full shootdown / one
//! round trip" (issue 5, deliverable 6; the shootdown figure comes from the
//! `panic-bsp` crash record's phase stamps).
//!
//! The sending CPU (the BSP) times two kinds of round trip, each through
//! the platform call the shootdown itself uses, to targets idling in
//! `sti; hlt` as they do in `panic-bsp`:
//!
//! | line | send | done when |
//! |------|------|-----------|
//! | `target=one` | `Platform::send_nmi` to the first other CPU (cpu 1): the shootdown's per-CPU send (resends, fallback after a refused broadcast) | that CPU's acknowledgement count moved |
//! | `target=all` | `Platform::send_nmi_all_but_self`: the shootdown's first broadcast | every other online CPU's count moved |
//!
//! One round on the sender:
//!
//! | step | sender | each target |
//! |------|--------|-------------|
//! | 1 | snapshot the targets' [`ACKS`] | halted (`sti; hlt`) |
//! | 2 | TSC (`lfence; rdtsc; lfence`), send | |
//! | 3 | spin on [`ACKS`], at most [`TIMEOUT_NS`] | NMI: IDT stub on the NMI IST stack, `crash::on_nmi` (entry count, context tracker, handler chain), [`ACKNOWLEDGE`] bumps its count |
//! | 4 | TSC once every count moved: one sample; a timeout is counted instead, and the sender waits [`SETTLE_US`] | `iretq`, back to `hlt` |
//! | 5 | waits [`GAP_US`] so every target is halted again | halted |
//!
//! The first [`WARM_UP`] samples are dropped; then [`SAMPLES`] are kept
//! (in an array on the stack), sorted, and printed on serial, one line per
//! measurement:
//!
//! ```text
//! crashkit-bench: nmi-roundtrip target=one cpus=N samples=S timeouts=T median_ns=X min_ns=Y max_ns=Z first_ns=F
//! crashkit-bench: nmi-roundtrip target=all cpus=N samples=S timeouts=T median_ns=X min_ns=Y max_ns=Z first_ns=F
//! ```
//!
//! `cpus` is the number of CPUs online, `timeouts` counts rounds (warm-up
//! included) that gave up; a timed-out round is repeated, so `samples` is
//! [`SAMPLES`] unless a measurement gave up after [`MAX_TIMEOUTS`] timeouts:
//! then the scenario prints a `FAILED` line and exits "failed". With no
//! timeout at all, every CPU's acknowledgement count must equal the rounds
//! sent to it (else `FAILED` too: an NMI was lost, merged with another, or
//! an acknowledgement came from elsewhere). Otherwise it exits "ran" (0x10). Nanoseconds come from the TSC ticks and the
//! frequency calibrated at boot (the same the platform's `now_ns` and so
//! the crash record's phase stamps use).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crashkit::nmi::NmiSendError;
use crashkit::prelude::*;
use kernel_base::exit::{ExitCode, exit};
use kernel_base::time::delay_us;
use kernel_base::{MAX_CPUS, machine, println};

use crate::crash::K;

/// The platform's type.
type Machine = X86Platform<MAX_CPUS>;

/// Rounds timed and dropped before the samples.
pub const WARM_UP: usize = 10;
/// Samples kept per measurement (odd: the median is one of them).
pub const SAMPLES: usize = 201;
/// How long the sender waits for the acknowledgements of one round.
pub const TIMEOUT_NS: u64 = 100_000_000;
/// Timed-out rounds after which a measurement gives up.
pub const MAX_TIMEOUTS: u32 = 10;
/// Wait after a timed-out round, so that a late acknowledgement lands
/// before the next round's snapshot.
pub const SETTLE_US: u64 = 10_000;
/// Wait between rounds, so that every target has left its NMI handler and
/// halted again (as the targets of a shootdown are) before the next send.
pub const GAP_US: u64 = 1_000;

/// Set while the benchmark runs: [`ACKNOWLEDGE`] claims NMIs only then
/// (any other NMI stays unknown, as in the other scenarios).
static ARMED: AtomicBool = AtomicBool::new(false);
/// NMIs each CPU acknowledged, bumped by [`ACKNOWLEDGE`] on that CPU.
static ACKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The acknowledging handler: bumps the receiving CPU's count in
/// [`ACKS`] and claims the NMI.
static ACKNOWLEDGE: NmiHandler = NmiHandler::new("bench-acknowledge", |event| {
    // Acquire: pairs with the sender's Release store of ARMED (which also
    // precedes every send, and a send is ordered after the sender's
    // writes).
    if !ARMED.load(Ordering::Acquire) {
        return NmiOutcome::NotMine;
    }
    match ACKS.get(event.cpu.as_usize()) {
        Some(acks) => {
            // Relaxed: the count carries no data; the sender only needs to
            // see it move, which cache coherence gives without ordering.
            acks.fetch_add(1, Ordering::Relaxed);
            NmiOutcome::Handled
        }
        None => NmiOutcome::NotMine,
    }
});

/// Where a round sends its NMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// One CPU, through `Platform::send_nmi`.
    One(CpuIndex),
    /// Every other CPU, through `Platform::send_nmi_all_but_self`.
    AllOthers,
}

impl Target {
    /// Its name in the output line.
    fn label(self) -> &'static str {
        match self {
            Self::One(_) => "one",
            Self::AllOthers => "all",
        }
    }

    /// Whether CPU `cpu` must acknowledge a round sent by `sender`.
    fn includes(self, cpu: usize, sender: usize) -> bool {
        match self {
            Self::One(target) => target.as_usize() == cpu,
            Self::AllOthers => cpu != sender,
        }
    }
}

/// One measurement's result, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Summary {
    /// Samples kept.
    samples: usize,
    /// Rounds that timed out (warm-up included).
    timeouts: u32,
    /// Rounds sent (warm-up and timed-out ones included).
    rounds: u64,
    /// Median of the samples (mean of the two middle ones for an even
    /// count), 0 with no sample.
    median_ns: u64,
    /// Fastest sample, 0 with no sample.
    min_ns: u64,
    /// The very first round, before any warm-up: the code of the send
    /// and of the targets' NMI path runs for the first time (under QEMU's
    /// TCG it is translated then), like a shootdown's, which runs once.
    first_ns: u64,
    /// Slowest sample, 0 with no sample.
    max_ns: u64,
}

/// The scenario's set-up (BSP, before the APs start): register the
/// acknowledging handler.
pub fn setup() {
    if let Err(error) = K::state().chain().register(&ACKNOWLEDGE) {
        println!(
            "crashkit-test: FAILED: registering NMI handler {}: {error}",
            ACKNOWLEDGE.name()
        );
        exit(ExitCode::Failed);
    }
}

/// The BSP's role: both measurements, one line each, then exit.
pub fn bsp() -> ! {
    let platform = K::platform();
    let cpus = machine::online().min(MAX_CPUS);
    let sender = platform.current_cpu().as_usize();
    let Some(other) = (0..cpus).find(|&cpu| cpu != sender) else {
        println!("crashkit-test: FAILED: nmi-roundtrip: no other CPU");
        exit(ExitCode::Failed)
    };
    // Release: pairs with the handler's Acquire load; published before the
    // first send.
    ARMED.store(true, Ordering::Release);
    let mut complete = true;
    // Rounds each CPU was sent, and whether every round was acknowledged
    // in time (then the counts must match exactly).
    let mut expected = [0u64; MAX_CPUS];
    let mut in_time = true;
    for target in [Target::One(CpuIndex(other as u32)), Target::AllOthers] {
        let summary = measure(platform, target, sender, cpus);
        for (cpu, count) in expected.iter_mut().enumerate().take(cpus) {
            if target.includes(cpu, sender) {
                *count += summary.rounds;
            }
        }
        in_time &= summary.timeouts == 0;
        println!(
            "crashkit-bench: nmi-roundtrip target={} cpus={cpus} samples={} timeouts={} median_ns={} min_ns={} max_ns={} first_ns={}",
            target.label(),
            summary.samples,
            summary.timeouts,
            summary.median_ns,
            summary.min_ns,
            summary.max_ns,
            summary.first_ns
        );
        if summary.samples < SAMPLES {
            println!(
                "crashkit-test: FAILED: nmi-roundtrip target={}: gave up after {} timeouts",
                target.label(),
                summary.timeouts
            );
            complete = false;
        }
    }
    // Release: as above (no NMI is expected any more).
    ARMED.store(false, Ordering::Release);
    if in_time {
        complete &= acknowledgements_match(&expected, cpus);
    }
    exit(if complete {
        ExitCode::Ran
    } else {
        ExitCode::Failed
    })
}

/// Whether every CPU acknowledged exactly the rounds sent to it (so each
/// acknowledgement timed was the answer to its own round: no NMI lost,
/// merged or taken by another handler); prints a `FAILED` line if not.
fn acknowledgements_match(expected: &[u64; MAX_CPUS], cpus: usize) -> bool {
    let mut all = true;
    for (cpu, (&sent, acks)) in expected.iter().zip(&ACKS).enumerate().take(cpus) {
        // Relaxed: see ACKNOWLEDGE; the last round's count was seen moving.
        let acknowledged = acks.load(Ordering::Relaxed);
        if acknowledged != sent {
            println!(
                "crashkit-test: FAILED: nmi-roundtrip: cpu {cpu} acknowledged {acknowledged} NMIs, {sent} were sent"
            );
            all = false;
        }
    }
    all
}

/// Warm up, then take [`SAMPLES`] samples of `target` (or give up after
/// [`MAX_TIMEOUTS`] timeouts) and summarise them.
fn measure(platform: &Machine, target: Target, sender: usize, cpus: usize) -> Summary {
    let hz = platform.tsc_hz();
    let timeout_ticks = ns_to_ticks(TIMEOUT_NS, hz);
    let mut samples = [0u64; SAMPLES];
    let (mut warm, mut taken, mut timeouts, mut rounds) = (0, 0, 0, 0);
    let mut first_ns = 0;
    while taken < SAMPLES && timeouts < MAX_TIMEOUTS {
        rounds += 1;
        match round(platform, target, sender, cpus, timeout_ticks) {
            Ok(Some(ticks)) if warm < WARM_UP => {
                if rounds == 1 {
                    first_ns = ticks_to_ns(ticks, hz);
                }
                warm += 1;
            }
            Ok(Some(ticks)) => {
                if let Some(slot) = samples.get_mut(taken) {
                    *slot = ticks_to_ns(ticks, hz);
                }
                taken += 1;
            }
            Ok(None) => {
                timeouts += 1;
                delay_us(SETTLE_US);
            }
            Err(error) => {
                println!(
                    "crashkit-test: FAILED: nmi-roundtrip target={}: NMI not sent: {error:?}",
                    target.label()
                );
                exit(ExitCode::Failed);
            }
        }
        delay_us(GAP_US);
    }
    let mut summary = summarise(
        samples.get_mut(..taken).unwrap_or_default(),
        timeouts,
        rounds,
    );
    summary.first_ns = first_ns;
    summary
}

/// One round: send to `target`, wait for every acknowledgement; the TSC
/// ticks from just before the send to the last acknowledgement seen, or
/// `None` if not every target acknowledged within `timeout_ticks`.
fn round(
    platform: &Machine,
    target: Target,
    sender: usize,
    cpus: usize,
    timeout_ticks: u64,
) -> Result<Option<u64>, NmiSendError> {
    let mut before = [0u64; MAX_CPUS];
    for (cpu, (count, acks)) in before.iter_mut().zip(&ACKS).enumerate().take(cpus) {
        if target.includes(cpu, sender) {
            // Relaxed: see ACKNOWLEDGE.
            *count = acks.load(Ordering::Relaxed);
        }
    }
    let acknowledged = || {
        before
            .iter()
            .zip(&ACKS)
            .enumerate()
            .take(cpus)
            .filter(|&(cpu, _)| target.includes(cpu, sender))
            // Relaxed: see ACKNOWLEDGE.
            .all(|(_, (&count, acks))| acks.load(Ordering::Relaxed) != count)
    };
    let start = tsc();
    match target {
        Target::One(cpu) => platform.send_nmi(cpu)?,
        Target::AllOthers => platform.send_nmi_all_but_self()?,
    }
    loop {
        if acknowledged() {
            return Ok(Some(tsc().wrapping_sub(start)));
        }
        if tsc().wrapping_sub(start) > timeout_ticks {
            return Ok(None);
        }
        core::hint::spin_loop();
    }
}

/// Sort `samples` and summarise them.
fn summarise(samples: &mut [u64], timeouts: u32, rounds: u64) -> Summary {
    samples.sort_unstable();
    let count = samples.len();
    let middle = |index: usize| samples.get(index).copied().unwrap_or(0);
    let median_ns = if count % 2 == 1 {
        middle(count / 2)
    } else if count == 0 {
        0
    } else {
        let (low, high) = (middle(count / 2 - 1), middle(count / 2));
        low + (high - low) / 2
    };
    Summary {
        samples: count,
        timeouts,
        rounds,
        median_ns,
        min_ns: samples.first().copied().unwrap_or(0),
        max_ns: samples.last().copied().unwrap_or(0),
        first_ns: 0,
    }
}

/// The TSC, not reordered with the loads and stores around it (`lfence`
/// on both sides: earlier instructions complete before the read, later
/// ones start after it).
fn tsc() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `lfence` and `rdtsc` exist on every x86_64 CPU, `rdtsc` is
    // allowed in ring 0 whatever CR4.TSD says; they write only eax/edx and
    // touch no memory and no flags. Nothing else in the kernel depends on
    // the TSC's state (`time` and the platform only read it too).
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            "lfence",
            out("eax") low,
            out("edx") high,
            options(nostack, preserves_flags),
        );
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// `ticks` at `hz`, in nanoseconds (128-bit, saturating; the ticks
/// unchanged for an unknown frequency, as the platform's `now_ns` does).
fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let scaled = u128::from(ticks) * 1_000_000_000;
    match scaled.checked_div(u128::from(hz)) {
        Some(ns) => u64::try_from(ns).unwrap_or(u64::MAX),
        None => ticks,
    }
}

/// `ns` nanoseconds in ticks at `hz` (saturating).
fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    let ticks = u128::from(ns) * u128::from(hz) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}
