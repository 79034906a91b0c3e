//! `bench-guest`: the in-guest benchmark of issue 5. For `-smp` 2, 4 and 8,
//! [`RUNS`] boots of the `nmi-roundtrip` scenario (the guest times, with
//! its TSC, NMI round trips to one CPU and to all others and prints the
//! medians) and [`RUNS`] boots of `panic-bsp` (the crash record's phase
//! stamps give the shootdown: panic entry to all CPUs stopped). One QEMU at
//! a time, so the runs do not compete for the host's two cores. Prints a
//! Markdown table of medians over the runs and the ratio shootdown / one
//! round trip (target: under 1.5 with 8 CPUs).

use std::path::Path;
use std::time::Duration;

use crashkit_record::{PhaseStamp, RecordView, scan};

use crashkit_qemu::qemu::{Boot, Ending, KernelExit};

/// Boots per scenario and CPU count.
pub const RUNS: usize = 7;

/// CPU counts measured.
const CPUS: [u32; 3] = [2, 4, 8];

/// Run the benchmark; the table, or what went wrong.
pub fn run(kernel: &Path, out: &Path) -> Result<String, String> {
    let mut table = String::from(
        "| CPUs | round trip, one CPU (warm) | round trip, all others (warm) | first round trip, one CPU (cold) | shootdown: panic entry to all stopped | shootdown call alone | shootdown / one round trip | shootdown call / cold round trip | shootdown call, code warmed (`shootdown-warm`) | warmed shootdown call / warm round trip to one |\n\
         |-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|\n",
    );
    for cpus in CPUS {
        let mut one = Vec::new();
        let mut all = Vec::new();
        let mut cold_all = Vec::new();
        let mut entry_to_stopped = Vec::new();
        let mut call = Vec::new();
        let mut warm_call = Vec::new();
        for run in 0..RUNS {
            let serial = boot(kernel, out, "nmi-roundtrip", cpus, run)?.0;
            one.push(field(&serial, "target=one", "median_ns")?);
            all.push(field(&serial, "target=all", "median_ns")?);
            cold_all.push(field(&serial, "target=one", "first_ns")?);
            let memory = boot(kernel, out, "panic-bsp", cpus, run)?.1;
            let view = scan(&memory)
                .find_map(|(_, parsed)| parsed.ok())
                .ok_or("panic-bsp left no crash record")?;
            let (a, b) = shootdown(&view);
            entry_to_stopped.push(a);
            call.push(b);
            let memory = boot(kernel, out, "shootdown-warm", cpus, run)?.1;
            let view = scan(&memory)
                .find_map(|(_, parsed)| parsed.ok())
                .ok_or("shootdown-warm left no crash record")?;
            warm_call.push(shootdown(&view).1);
        }
        let (one, all, cold_all) = (median(&mut one), median(&mut all), median(&mut cold_all));
        let (entry_to_stopped, call) = (median(&mut entry_to_stopped), median(&mut call));
        let warm_call = median(&mut warm_call);
        table.push_str(&format!(
            "| {cpus} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {:.2} |\n",
            us(one),
            us(all),
            us(cold_all),
            us(entry_to_stopped),
            us(call),
            entry_to_stopped as f64 / one.max(1) as f64,
            call as f64 / cold_all.max(1) as f64,
            us(warm_call),
            warm_call as f64 / one.max(1) as f64
        ));
    }
    Ok(table)
}

/// Boot once; the serial log and the guest RAM.
fn boot(
    kernel: &Path,
    out: &Path,
    scenario: &str,
    cpus: u32,
    run: usize,
) -> Result<(String, Vec<u8>), String> {
    let boot = Boot {
        kernel,
        cpus,
        append: format!("scenario={scenario}"),
        work_dir: out.join(format!("bench-{scenario}-smp{cpus}-run{run}")),
        timeout: Duration::from_secs(90),
        qmp: false,
        ram_mib: crashkit_qemu::qemu::RAM_MIB,
        initrd: None,
        extra: Vec::new(),
    };
    let outcome = boot.run(|_| {})?;
    if outcome.ending != Ending::Kernel(KernelExit::Ran) {
        return Err(format!(
            "{scenario} -smp {cpus}: {}\n{}",
            outcome.ending, outcome.serial
        ));
    }
    let memory = std::fs::read(&outcome.ram).map_err(|e| format!("reading guest RAM: {e}"))?;
    let _ = std::fs::remove_file(&outcome.ram);
    Ok((outcome.serial, memory))
}

/// `key=value` from the `crashkit-bench:` line that contains `selector`.
fn field(serial: &str, selector: &str, key: &str) -> Result<u64, String> {
    let line = serial
        .lines()
        .find(|line| line.starts_with("crashkit-bench:") && line.contains(selector))
        .ok_or_else(|| format!("no crashkit-bench line with {selector:?} in:\n{serial}"))?;
    let value = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{key}=")))
        .ok_or_else(|| format!("no {key} in {line:?}"))?;
    value
        .parse()
        .map_err(|_| format!("{key}={value:?} is not a number in {line:?}"))
}

/// (panic entry to shootdown end, shootdown start to end), in ns.
fn shootdown(view: &RecordView<'_>) -> (u64, u64) {
    let panic = view.panic();
    let stamp = |which| panic.stamp_ns(which);
    let end = stamp(PhaseStamp::ShootdownEnd);
    (
        end.saturating_sub(stamp(PhaseStamp::PanicEntry)),
        end.saturating_sub(stamp(PhaseStamp::ShootdownStart)),
    )
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Nanoseconds as microseconds, one decimal.
fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}
