//! `crashkit-corpus`: make and check one dump corpus (see the library's
//! docs). `cargo xtask test` runs both, each into its folder of the cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Make and check a dump corpus in DIR (a cache outside the repository).
#[derive(Debug, Parser)]
#[command(name = "crashkit-corpus", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    corpus: Corpus,
}

#[derive(Debug, Subcommand)]
enum Corpus {
    /// Dumps of the crashed QEMU test kernel.
    TestKernel {
        /// Where the corpus is made and kept.
        dir: PathBuf,
        /// The test kernel's ELF (default: the one `cargo xtask` builds).
        #[arg(long)]
        kernel: Option<PathBuf>,
    },
    /// Dumps of a crashed Debian Linux guest.
    Linux {
        /// Where the corpus is made and kept (the packages are fetched once).
        dir: PathBuf,
    },
    /// `crashkit convert`'s files of one Linux guest's dump, checked with
    /// makedumpfile, crash, libkdumpfile and gdb (the Linux corpus runs
    /// this on its dumps; here on any).
    Convert {
        /// The dump to convert.
        source: PathBuf,
        /// Where the converted files are written (and deleted).
        work: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, result) = match &cli.corpus {
        Corpus::TestKernel { dir, kernel } => {
            let kernel = kernel.clone().unwrap_or_else(crashkit_qemu::test_kernel);
            let result = crashkit_qemu::check_qemu()
                .and_then(|()| crashkit_qemu::check_kernel(&kernel))
                .and_then(|()| crashkit_corpus::test_kernel::make_and_check(&kernel, dir));
            ("corpus", result)
        }
        Corpus::Linux { dir } => {
            let result = crashkit_qemu::check_qemu()
                .and_then(|()| crashkit_corpus::linux::make_and_check(dir));
            ("linux corpus", result)
        }
        Corpus::Convert { source, work } => {
            let elf = std::fs::File::open(source)
                .and_then(|mut f| {
                    let mut magic = [0u8; 4];
                    std::io::Read::read_exact(&mut f, &mut magic).map(|()| magic)
                })
                .is_ok_and(|magic| magic == *b"\x7fELF");
            let result = crashkit_corpus::convert_check::check(work, source, elf).map(|l| vec![l]);
            ("convert check", result)
        }
    };
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{name}: {line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crashkit-corpus: {name}: {error}");
            ExitCode::FAILURE
        }
    }
}
