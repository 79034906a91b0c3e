//! Shootdown latency on the host simulation: how long
//! `Shootdown::stop_other_cpus` takes, from the call to its return with
//! every other CPU stopped, against the number of simulated CPUs.
//!
//! For each machine size (1, 2, 4, 8, 16 CPUs) it runs `RUNS` fresh
//! machines. The CPUs other than the owner (CPU 0) spin in a busy loop
//! (yielding every 1000 spins, so that simulated CPUs outnumbering the
//! host's cores all get to run); once they all run, the owner calls
//! `stop_other_cpus` with the default configuration and times it with
//! `std::time::Instant`. The table gives the median, minimum and maximum
//! per size, and how many runs stopped every CPU.
//!
//! What it measures is the simulation: an NMI is a `pthread_kill`, taking
//! it means the target thread being scheduled and entering its signal
//! handler, and the owner's wait yields its thread. On a host with fewer
//! cores than simulated CPUs the figures are dominated by the host
//! scheduler, not by the protocol; they are a regression check of the
//! protocol's cost in the simulation, not a prediction for hardware.
//!
//! Run: `cargo bench -p crashkit-shootdown --bench latency`. Parked CPUs'
//! threads are never joined (halted CPUs in the simulation), so one run of
//! the benchmark leaves a few hundred sleeping threads until it exits.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crashkit_nmi::{ContextKind, CpuContexts, NmiEvent, RegisterFrame};
use crashkit_record::CpuSlot;
use crashkit_shootdown::{Shootdown, ShootdownConfig, ShootdownSummary};
use crashkit_sim::{CpuOutcome, EntryKind, Machine, SimCpu};

const SIZES: [usize; 5] = [1, 2, 4, 8, 16];
const RUNS: usize = 11;
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// One measured shootdown.
struct Sample {
    wall: Duration,
    summary: ShootdownSummary,
    all_parked: bool,
}

fn measure(cpus: usize) -> Sample {
    let slots: &'static [CpuSlot] = Box::leak((0..cpus).map(|_| CpuSlot::new()).collect());
    let shootdown: &'static Shootdown = Box::leak(Box::new(Shootdown::new(slots)));
    let contexts: &'static CpuContexts<16> = Box::leak(Box::new(CpuContexts::new()));
    let ready = Arc::new(AtomicUsize::new(0));
    let result: Arc<OnceLock<(Duration, ShootdownSummary)>> = Arc::new(OnceLock::new());

    let machine = Machine::new(
        cpus,
        move |cpu: &SimCpu, kind, frame: &mut RegisterFrame| {
            if kind != EntryKind::Nmi {
                return;
            }
            let context = contexts.enter_current(cpu.platform(), ContextKind::Nmi);
            let depth = context.as_ref().map_or(1, |guard| u32::from(guard.level()));
            let event = NmiEvent {
                cpu: cpu.index(),
                frame,
                back_to_back: false,
            };
            shootdown.handle_nmi(cpu.platform(), &event, depth);
        },
    );
    let (ready_in_body, result_in_body) = (ready.clone(), result.clone());
    let report = machine.run(RUN_DEADLINE, move |cpu| {
        if cpu.index().0 != 0 {
            ready_in_body.fetch_add(1, SeqCst);
            while !cpu.stop_requested() {
                for _ in 0..1_000 {
                    std::hint::spin_loop();
                }
                std::thread::yield_now();
            }
            return;
        }
        while ready_in_body.load(SeqCst) < cpus - 1 {
            if cpu.stop_requested() {
                return;
            }
            std::thread::yield_now();
        }
        let began = Instant::now();
        let summary = shootdown.stop_other_cpus(cpu.platform(), &ShootdownConfig::DEFAULT);
        let _ = result_in_body.set((began.elapsed(), summary));
    });
    let (wall, summary) = *result.get().expect("the owner measured a shootdown");
    let all_parked = report
        .outcomes
        .iter()
        .skip(1)
        .all(|outcome| *outcome == CpuOutcome::Parked);
    Sample {
        wall,
        summary,
        all_parked,
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once
    // quickly as a smoke test.
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let runs = if smoke { 1 } else { RUNS };
    println!("shootdown latency on the host simulation, {runs} runs per size");
    println!(
        "host: {} cores available",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:>5} | {:>12} | {:>12} | {:>12} | {:>9} | {:>10}",
        "CPUs", "median (us)", "min (us)", "max (us)", "all stop", "NMIs/run"
    );
    println!(
        "{:-<5}-+-{:-<12}-+-{:-<12}-+-{:-<12}-+-{:-<9}-+-{:-<10}",
        "", "", "", "", "", ""
    );
    for cpus in SIZES {
        let mut samples: Vec<Sample> = (0..runs).map(|_| measure(cpus)).collect();
        samples.sort_by_key(|sample| sample.wall);
        let median = samples[samples.len() / 2].wall;
        let (min, max) = (samples[0].wall, samples[samples.len() - 1].wall);
        let stopped = samples
            .iter()
            .filter(|sample| sample.summary.all_stopped() && sample.all_parked)
            .count();
        let nmis: u32 = samples
            .iter()
            .map(|sample| sample.summary.totals.nmis_sent)
            .sum();
        println!(
            "{:>5} | {:>12.1} | {:>12.1} | {:>12.1} | {:>4}/{:<4} | {:>10.1}",
            cpus,
            micros(median),
            micros(min),
            micros(max),
            stopped,
            runs,
            f64::from(nmis) / runs as f64
        );
    }
}
