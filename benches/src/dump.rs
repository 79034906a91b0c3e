//! `bench-dump`: the dump path per phase (issue 26's benchmark), from the
//! panic to the completion marker on the device, for both writers (the
//! capture kernel, and the in-place writer with `capture=none`), at 2, 4
//! and 8 CPUs, with 128 MiB and 1 GiB guests under TCG; and Linux's own
//! kdump on the same QEMU (the Debian guest of the corpus, crashed with
//! SysRq-c, its kexec'd capture kernel copying `/proc/vmcore` to a virtio
//! disk) for the RAM sizes Linux can take a `crashkernel=` reservation in.
//!
//! Each crashkit boot runs `panic-bsp` with `fill=24` (24 MiB no codec
//! compresses, so the writer has real bytes to write besides the kernel's
//! own pages), LZO1X onto a 256 MiB virtio-blk disk. One QEMU at a time.
//! Phases, and which clock times them:
//!
//! | phase | clock |
//! |-------|-------|
//! | shootdown, notifiers, panic entry to the dump step | the crash record's stamps (the guest's TSC) |
//! | the rest up to the writer's first progress line: hand-over and the capture kernel's boot, or the in-place writer's set-up | the host: the serial log polled every millisecond, from the scenario's last line before its panic |
//! | writing, to the completion marker | the host, from the writer's "writing a ..." line to its "dump written" line |
//! | total | the host, scenario line to "dump written" |
//!
//! The writer's MB/s is the dump file's bytes over the writing time; the
//! host figures of the same codec are `bench-kdump`'s (docs/benchmarks.md).

use std::path::Path;
use std::time::{Duration, Instant};

use crashkit_qemu::qemu::Boot;
use crashkit_record::{PhaseStamp, RecordView, scan};

/// Boots per configuration (medians).
pub const ROUNDS: usize = 3;

/// CPU counts.
const CPUS: [u32; 3] = [2, 4, 8];

/// Guest RAM sizes, MiB.
const RAM: [u32; 2] = [128, 1024];

/// The line the test kernel prints just before its scenario panics.
const SCENARIO: &str = "crashkit-test: scenario panic-bsp";

/// One boot's figures, in nanoseconds and bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    shootdown: u64,
    notifiers: u64,
    to_dump_step: u64,
    setup: u64,
    writing: u64,
    total: u64,
    bytes: u64,
}

/// One crashkit boot: `in_place` selects the writer.
fn crashkit_run(
    kernel: &Path,
    capture_kernel: &Path,
    out: &Path,
    in_place: bool,
    ram_mib: u32,
    cpus: u32,
    round: usize,
) -> Result<Run, String> {
    let work = out.join(format!(
        "bench-dump-{}-{ram_mib}m-smp{cpus}-{round}",
        if in_place { "inplace" } else { "capture" }
    ));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let disk = work.join("disk.img");
    let file = std::fs::File::create(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    file.set_len(256 << 20)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    drop(file);
    let boot = Boot {
        kernel,
        cpus,
        append: format!(
            "scenario=panic-bsp fill=24{}",
            if in_place { " capture=none" } else { "" }
        ),
        work_dir: work.clone(),
        timeout: Duration::from_secs(300),
        qmp: false,
        ram_mib,
        initrd: Some(capture_kernel.to_path_buf()),
        extra: vec![
            "-drive".to_owned(),
            format!("file={},format=raw,if=none,id=dump", disk.display()),
            "-device".to_owned(),
            "virtio-blk-pci,drive=dump".to_owned(),
        ],
    };
    let (writing_line, done_line) = if in_place {
        (
            "crashkit: no capture kernel",
            "crashkit: dump written in place",
        )
    } else {
        (
            "crashkit-capture: writing a",
            "crashkit-capture: dump written",
        )
    };
    let mut seen = [None; 3];
    let outcome = boot.run(|dir| {
        seen = crashkit_qemu::qmp::line_times(
            &dir.join("serial.log"),
            &[SCENARIO, writing_line, done_line],
            &[
                "crashkit-test: final action reached",
                "crashkit-capture: resetting",
            ],
            Duration::from_secs(300),
        );
    })?;
    let [Some(scenario), Some(writing), Some(done)] = seen else {
        return Err(format!(
            "{}: lines seen {seen:?}, {}",
            work.display(),
            outcome.ending
        ));
    };
    let memory = std::fs::read(&outcome.ram).map_err(|e| format!("{e}"))?;
    let view = scan(&memory)
        .find_map(|(_, parsed)| parsed.ok())
        .ok_or("no crash record in guest RAM")?;
    let (shootdown, notifiers, to_dump_step) = record_phases(&view);
    let bytes = bytes_written(&outcome.serial, in_place).ok_or("no byte count on serial")?;
    let _ = std::fs::remove_file(&outcome.ram);
    let _ = std::fs::remove_file(&disk);
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let host_to_writing = ns(writing.saturating_duration_since(scenario));
    Ok(Run {
        shootdown,
        notifiers,
        to_dump_step,
        setup: host_to_writing.saturating_sub(to_dump_step),
        writing: ns(done.saturating_duration_since(writing)),
        total: ns(done.saturating_duration_since(scenario)),
        bytes,
    })
}

/// Shootdown, notifiers (before the dump), panic entry to the dump step.
fn record_phases(view: &RecordView<'_>) -> (u64, u64, u64) {
    let panic = view.panic();
    let at = |stamp| panic.stamp_ns(stamp);
    let span = |a: PhaseStamp, b: PhaseStamp| at(b).saturating_sub(at(a));
    // The lists before the dump: after an in-place dump the post-dump lists
    // run too and move the end stamp past the dump step.
    let notifiers_end = at(PhaseStamp::NotifiersEnd).min(at(PhaseStamp::DumpHandoverStart));
    (
        span(PhaseStamp::ShootdownStart, PhaseStamp::ShootdownEnd),
        notifiers_end.saturating_sub(at(PhaseStamp::NotifiersStart)),
        span(PhaseStamp::PanicEntry, PhaseStamp::DumpHandoverStart),
    )
}

/// The dump file's bytes from the writer's last line.
fn bytes_written(serial: &str, in_place: bool) -> Option<u64> {
    let marker = if in_place {
        "crashkit: dump written in place: "
    } else {
        "crashkit-capture: dump written: "
    };
    let line = serial
        .lines()
        .find_map(|l| l.split_once(marker).map(|(_, rest)| rest))?;
    // "N of M pages, B bytes..."
    let (_, after) = line.split_once("pages, ")?;
    after.split_whitespace().next()?.parse().ok()
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e6)
}

fn us(ns: u64) -> String {
    format!("{:.0}", ns as f64 / 1e3)
}

/// The crashkit table.
pub fn run_crashkit(
    kernel: &Path,
    capture_kernel: &Path,
    out: &Path,
    rounds: usize,
) -> Result<String, String> {
    let mut table = String::from(
        "| writer | RAM | CPUs | shootdown (µs) | notifiers before the dump (µs) | panic entry to dump step (ms) | to the writer's start (ms) | writing (ms) | total (ms) | dump bytes | dump MB/s | RAM read MB/s |\n\
         |--------|----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|\n",
    );
    for in_place in [false, true] {
        for ram in RAM {
            for cpus in CPUS {
                let started = Instant::now();
                let mut runs = Vec::new();
                for round in 0..rounds {
                    runs.push(crashkit_run(
                        kernel,
                        capture_kernel,
                        out,
                        in_place,
                        ram,
                        cpus,
                        round,
                    )?);
                }
                let pick = |f: fn(&Run) -> u64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
                let writing = pick(|r| r.writing);
                let bytes = pick(|r| r.bytes);
                let total = pick(|r| r.total);
                table.push_str(&format!(
                    "| {} | {ram} MiB | {cpus} | {} | {} | {} | {} | {} | {} | {bytes} | {:.1} | {:.0} |\n",
                    if in_place {
                        "in place"
                    } else {
                        "capture kernel"
                    },
                    us(pick(|r| r.shootdown)),
                    us(pick(|r| r.notifiers)),
                    ms(pick(|r| r.to_dump_step)),
                    ms(pick(|r| r.setup)),
                    ms(writing),
                    ms(total),
                    bytes as f64 / (writing.max(1) as f64 / 1e9) / 1e6,
                    f64::from(ram) * 1_048_576.0 / (writing.max(1) as f64 / 1e9) / 1e6,
                ));
                eprintln!(
                    "bench-dump: {} {ram} MiB -smp {cpus}: {rounds} boots in {:.0} s",
                    if in_place { "in place" } else { "capture" },
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(table)
}

/// Linux's kdump at `ram_mib`, `rounds` times: the table's rows.
pub fn run_linux(corpus: &Path, out: &Path, ram: &[u32], rounds: usize) -> Result<String, String> {
    let guest = crashkit_corpus::linux::prepare(corpus)?;
    let mut table = String::from(
        "| RAM | panic to the capture kernel's `/init` (ms) | `/init` to `/proc/vmcore` copied (ms) | total (ms) | vmcore bytes |\n\
         |----:|-----:|-----:|-----:|-----:|\n",
    );
    for &ram_mib in ram {
        let mut up = Vec::new();
        let mut saved = Vec::new();
        let mut bytes = 0;
        for round in 0..rounds {
            let work = out.join(format!("bench-dump-linux-{ram_mib}m-{round}"));
            let times = crashkit_corpus::kexec::time_kdump(&guest, corpus, &work, ram_mib)?;
            let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            up.push(ns(times.panic_to_capture));
            saved.push(ns(times.capture_to_saved));
            bytes = times.bytes;
        }
        let (up, saved) = (median(&mut up), median(&mut saved));
        table.push_str(&format!(
            "| {ram_mib} MiB | {} | {} | {} | {bytes} |\n",
            ms(up),
            ms(saved),
            ms(up + saved)
        ));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_byte_count_is_read_from_either_writer() {
        let capture = "crashkit-capture: dump written: 1337 of 28539 pages, 3118624 bytes, 2 CPUs";
        assert_eq!(super::bytes_written(capture, false), Some(3_118_624));
        let in_place = "crashkit: dump written in place: 10 of 20 pages, 4096 bytes";
        assert_eq!(super::bytes_written(in_place, true), Some(4096));
        assert_eq!(super::bytes_written(capture, true), None);
    }
}
