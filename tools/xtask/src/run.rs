//! Running the steps of a task: one command each, timed, with a time limit.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A `cargo` command run from the workspace root with the same cargo that
/// runs the xtask.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args);
    if let Ok(root) = workspace_root() {
        command.current_dir(root);
    }
    command
}

/// The workspace root: two levels above this crate's manifest.
pub fn workspace_root() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .ok_or_else(|| format!("no workspace root above {}", manifest.display()))
}

/// One named step of a task.
pub struct Step {
    name: String,
    command: Command,
    limit: Option<Duration>,
}

impl Step {
    /// A step called `name` that runs `command`.
    pub fn new(name: &str, command: Command) -> Self {
        Self {
            name: name.to_owned(),
            command,
            limit: None,
        }
    }

    /// Kill the step and fail if it runs longer than `seconds`.
    pub fn time_limit(mut self, seconds: u64) -> Self {
        self.limit = Some(Duration::from_secs(seconds));
        self
    }

    /// Run the step, streaming its output; an error names the step.
    pub fn run(mut self) -> Result<(), String> {
        println!("xtask: == {} ==", self.name);
        let started = Instant::now();
        let child = self
            .command
            .spawn()
            .map_err(|e| format!("{}: cannot start {:?}: {e}", self.name, self.command))?;
        let status = wait(child, self.limit).map_err(|e| format!("{}: {e}", self.name))?;
        if !status.success() {
            return Err(format!("{} failed ({status})", self.name));
        }
        println!(
            "xtask: {} passed in {:.1} s",
            self.name,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn wait(mut child: Child, limit: Option<Duration>) -> Result<std::process::ExitStatus, String> {
    let Some(limit) = limit else {
        return child.wait().map_err(|e| format!("wait failed: {e}"));
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if started.elapsed() > limit => {
                // Best effort: the error below is what matters.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running after {} s: killed (a hang is a bug)",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("wait failed: {e}")),
        }
    }
}

/// The bare-metal target every no_std crate and the QEMU test kernels
/// build for.
pub(crate) const BARE_METAL_TARGET: &str = "x86_64-unknown-none";

/// Where generated data lives, outside the repository: `$CRASHKIT_CACHE`,
/// else `$XDG_CACHE_HOME/crashkit`, else `$HOME/.cache/crashkit`.
pub(crate) fn cache_dir() -> Result<std::path::PathBuf, String> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = if let Some(dir) = env("CRASHKIT_CACHE") {
        std::path::PathBuf::from(dir)
    } else if let Some(dir) = env("XDG_CACHE_HOME") {
        std::path::PathBuf::from(dir).join("crashkit")
    } else if let Some(home) = env("HOME") {
        std::path::PathBuf::from(home)
            .join(".cache")
            .join("crashkit")
    } else {
        return Err("no cache directory: set CRASHKIT_CACHE or HOME".into());
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Headless Chromium's flags, as root on a closed network: no sandbox (it
/// refuses root otherwise), no GPU, and none of its background calls out.
pub const HEADLESS_CHROMIUM: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];
