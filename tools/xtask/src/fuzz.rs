//! `cargo xtask fuzz [SECONDS]`: each fuzz target of `kdump/format/fuzz`
//! for SECONDS (default 300) with `cargo fuzz run -s none` on the stable
//! toolchain; the corpora grow in the cache directory, seeded by the format
//! crate's `seed_corpus` example.

use crate::prerequisites;
use crate::run::{self, Step, cache_dir, cargo};

/// `cargo xtask fuzz [SECONDS]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args {
        [] => 300,
        [seconds] => seconds
            .parse()
            .map_err(|_| format!("`fuzz` takes a number of seconds (got `{seconds}`)"))?,
        _ => return Err("`fuzz` takes at most one argument, the seconds to fuzz".into()),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::cargo_fuzz()?;
    let corpora = cache_dir()?.join("fuzz");
    let mut seeds = cargo([
        "run",
        "--quiet",
        "-p",
        "crashkit-dump-format",
        "--example",
        "seed_corpus",
        "--",
    ]);
    seeds.arg(&corpora);
    Step::new("seed corpora of the dump readers", seeds).run()?;
    let root = run::workspace_root()?;
    for target in FUZZ_TARGETS {
        let mut fuzz = cargo(["fuzz", "run", "-s", "none", target]);
        fuzz.current_dir(root.join("kdump").join("format"))
            .arg(corpora.join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"));
        Step::new(&format!("fuzzing {target} for {seconds} s"), fuzz)
            .time_limit(seconds + 15 * 60)
            .run()?;
    }
    println!("xtask: no crash; corpora in {}", corpora.display());
    Ok(())
}

/// The fuzz targets of `kdump/format/fuzz`, each fuzzed for the seconds
/// `cargo xtask fuzz` is given.
const FUZZ_TARGETS: &[&str] = &["elf_reader", "kdump_reader", "page_encoders"];
