//! The page deflate's levels side by side on the non-zero pages of an ELF
//! image (the kdump benchmark's set: `cargo xtask bench-kdump` makes it):
//! per level, the median time per page over interleaved rounds and the
//! compressed bytes (pages that would not shrink counted at 4096, as the
//! writer stores them). In memory, one thread, no writer around the codec:
//! for tuning, where the benchmark's end-to-end runs are too noisy to see a
//! few per cent.
//!
//! Usage: `cargo run --release -p crashkit-dump-format --example deflate_levels -- IMAGE [PAGES] [ROUNDS]`

use std::time::Instant;

use crashkit_dump_format::ElfDump;
use crashkit_dump_format::compressed::deflate::Deflate;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deflate_levels: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: deflate_levels IMAGE [PAGES] [ROUNDS]")?;
    let want: usize = args
        .next()
        .map_or(Ok(20_000), |a| a.parse())
        .map_err(|e| format!("PAGES: {e}"))?;
    let rounds: usize = args
        .next()
        .map_or(Ok(7), |a| a.parse())
        .map_err(|e| format!("ROUNDS: {e}"))?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("{path}: {e}"))?;
    // Non-zero pages spread over the image: every n-th one.
    let mut all = Vec::new();
    let mut page = vec![0u8; 4096];
    for segment in dump.segments() {
        for phys in (segment.paddr..segment.paddr + segment.memsz).step_by(4096) {
            if dump.read_phys(phys, &mut page).is_ok() && page.iter().any(|&b| b != 0) {
                all.push(phys);
            }
        }
    }
    let step = (all.len() / want.max(1)).max(1);
    let mut pages: Vec<u8> = Vec::new();
    for &phys in all.iter().step_by(step).take(want) {
        dump.read_phys(phys, &mut page)
            .map_err(|e| format!("{path}: {e}"))?;
        pages.extend_from_slice(&page);
    }
    let count = pages.len() / 4096;
    println!(
        "{path}: {count} of {} non-zero pages, {rounds} rounds",
        all.len()
    );
    let levels: Vec<u8> = (1..=Deflate::MAX_LEVEL).collect();
    let mut times: Vec<Vec<f64>> = levels.iter().map(|_| Vec::new()).collect();
    let mut sizes = vec![0usize; levels.len()];
    let mut out = vec![0u8; 4096];
    let mut encoders: Vec<Box<Deflate>> = levels
        .iter()
        .map(|&l| Box::new(Deflate::with_level(l)))
        .collect();
    for _ in 0..rounds {
        for (index, encoder) in encoders.iter_mut().enumerate() {
            let started = Instant::now();
            let mut total = 0usize;
            for page in pages.chunks_exact(4096) {
                total += encoder.compress(page, &mut out).unwrap_or(4096);
            }
            times[index].push(started.elapsed().as_secs_f64());
            sizes[index] = total;
        }
    }
    for (index, level) in levels.iter().enumerate() {
        let t = &mut times[index];
        t.sort_by(f64::total_cmp);
        let median = t[t.len() / 2];
        println!(
            "level {level}: {:6.2} us/page ({:4.0} MB/s), spread {:+.1}%/{:+.1}%, {:.2} MB ({:.4}x level 1)",
            median * 1e6 / count as f64,
            (count * 4096) as f64 / median / 1e6,
            100.0 * (t[0] / median - 1.0),
            100.0 * (t[t.len() - 1] / median - 1.0),
            sizes[index] as f64 / 1e6,
            sizes[index] as f64 / sizes[0] as f64
        );
    }
    Ok(())
}
