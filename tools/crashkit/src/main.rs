//! `crashkit`, the dump analysis CLI: `crashkit COMMAND DUMP [ARGS]`.
//!
//! It opens ELF vmcores and makedumpfile's kdump-compressed files (plain,
//! flattened, or the parts of a split dump joined by commas), found by
//! content, through the format library over memory maps, and answers as
//! text or, with `--json`, as JSON with a `schema` version. Exit codes: 0
//! ok, 1 a check failed, 2 usage (clap's), 3 the input is unusable (one
//! line: `crashkit: FILE: what, at offset N`). A dump that is incomplete
//! or damaged still answers, with a warning on standard error.
//!
//! Commands so far: `info`. The manual is docs/cli.md.

mod info;
mod open;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// crashkit: read crash dumps (ELF vmcore, kdump-compressed, flattened,
/// split) as text or JSON.
#[derive(Debug, Parser)]
#[command(name = "crashkit", version, about, long_about = None)]
struct Cli {
    /// Answer as JSON (a `schema` field gives the format's version).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What the dump is and holds: format, producer, completeness,
    /// OSRELEASE and VMCOREINFO, crash time, CPUs, memory, page counts.
    Info {
        /// The dump: a file, or a split dump's parts joined by commas.
        dump: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            let unusable = error.downcast_ref::<open::InputError>().is_some();
            eprintln!("crashkit: {error:#}");
            ExitCode::from(if unusable { 3 } else { 1 })
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Info { dump } => {
            let files = open::Files::map(dump)?;
            let opened = open::open(&files)?;
            let info = info::gather(&files, &opened);
            warn(&info);
            let text = if cli.json {
                let mut json = serde_json::to_string_pretty(&info)?;
                json.push('\n');
                json
            } else {
                info::render(&info)
            };
            print(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An incomplete or damaged dump still answers; say so on standard error.
fn warn(info: &info::Info) {
    let files = info.files.join(",");
    if info.completeness.starts_with("incomplete") {
        eprintln!("crashkit: warning: {files}: {}", info.completeness);
    }
    for damage in &info.damage {
        eprintln!("crashkit: warning: {files}: {damage}");
    }
}

/// Write to standard output; a closed pipe (`| head`) ends quietly.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
