//! Running QEMU once: the command line, a hard timeout, the serial output
//! and the guest's RAM (file-backed, so what the guest wrote at physical
//! address A is at offset A of the file after QEMU exits).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The QEMU binary the runner uses.
pub const QEMU: &str = "qemu-system-x86_64";

/// Guest RAM of the test kernel, in MiB (file-backed).
pub const RAM_MIB: u32 = 128;

/// What the test kernel reports through isa-debug-exit (QEMU exits with
/// status `(value << 1) | 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelExit {
    /// 0x10: the scenario ran as designed (after a panic: the panic path
    /// reached its final action); the runner then checks the record.
    Ran,
    /// 0x11: the kernel found a failure itself (the serial log says what).
    Failed,
}

/// How one QEMU run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Through isa-debug-exit.
    Kernel(KernelExit),
    /// Status 0: with `-no-reboot`, the guest reset the machine (a reset
    /// request or a triple fault) or QEMU quit; a pass only for a scenario
    /// whose final action resets.
    Reset,
    /// Any other exit status (QEMU itself failed: bad options, ...).
    Status(Option<i32>),
    /// Still running at the timeout; killed.
    Timeout,
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Kernel(KernelExit::Ran) => write!(f, "the kernel exited with \"ran\" (0x10)"),
            Ending::Kernel(KernelExit::Failed) => {
                write!(f, "the kernel exited with \"failed\" (0x11)")
            }
            Ending::Reset => write!(
                f,
                "QEMU exited with status 0 (the guest reset: a reset request or a triple fault)"
            ),
            Ending::Status(Some(code)) => write!(f, "QEMU exited with status {code}"),
            Ending::Status(None) => write!(f, "QEMU was killed by a signal"),
            Ending::Timeout => write!(f, "QEMU did not exit in time and was killed"),
        }
    }
}

impl Ending {
    fn from_status(code: Option<i32>) -> Self {
        match code {
            Some(0x21) => Ending::Kernel(KernelExit::Ran),
            Some(0x23) => Ending::Kernel(KernelExit::Failed),
            Some(0) => Ending::Reset,
            other => Ending::Status(other),
        }
    }
}

/// One boot of the test kernel.
#[derive(Clone, Debug)]
pub struct Boot<'a> {
    /// The kernel ELF.
    pub kernel: &'a Path,
    /// CPUs (`-smp`).
    pub cpus: u32,
    /// The kernel command line (`-append`).
    pub append: String,
    /// Where the serial log, the RAM file and the QMP socket go.
    pub work_dir: PathBuf,
    /// Hard limit for the whole run.
    pub timeout: Duration,
    /// Open a QMP socket (`qmp.sock` in the work directory).
    pub qmp: bool,
    /// Guest RAM in MiB (file-backed).
    pub ram_mib: u32,
    /// An initial RAM disk (`-initrd`), for a Linux guest.
    pub initrd: Option<PathBuf>,
    /// More QEMU arguments (`-device vmcoreinfo` for a Linux guest).
    pub extra: Vec<String>,
}

/// What a boot left behind.
#[derive(Debug)]
pub struct Outcome {
    /// How QEMU ended.
    pub ending: Ending,
    /// The serial output (lossy UTF-8).
    pub serial: String,
    /// The guest RAM file.
    pub ram: PathBuf,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Boot<'_> {
    /// The QEMU command line.
    pub fn command(&self) -> Command {
        let ram = self.work_dir.join("ram.bin");
        let serial = self.work_dir.join("serial.log");
        let mut command = Command::new(QEMU);
        command
            .arg("-machine")
            .arg("q35,memory-backend=mem")
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=mem,size={}M,mem-path={},share=on",
                self.ram_mib,
                ram.display()
            ))
            .arg("-m")
            .arg(format!("{}M", self.ram_mib))
            .arg("-smp")
            .arg(self.cpus.to_string())
            .arg("-kernel")
            .arg(self.kernel)
            .arg("-append")
            .arg(&self.append)
            .arg("-display")
            .arg("none")
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-no-reboot")
            .arg("-device")
            .arg("isa-debug-exit,iobase=0xf4,iosize=0x04");
        if let Some(initrd) = &self.initrd {
            command.arg("-initrd").arg(initrd);
        }
        command.args(&self.extra);
        if self.qmp {
            command.arg("-qmp").arg(format!(
                "unix:{},server,nowait",
                self.work_dir.join("qmp.sock").display()
            ));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Boot, wait (polling) until QEMU exits or the timeout, kill it then.
    /// `during` runs once QEMU has started (the QMP scenario's injector).
    pub fn run(&self, during: impl FnOnce(&Path)) -> Result<Outcome, String> {
        std::fs::create_dir_all(&self.work_dir)
            .map_err(|e| format!("creating {}: {e}", self.work_dir.display()))?;
        let ram = self.work_dir.join("ram.bin");
        // Nothing of an earlier run in the same directory may be mistaken
        // for this one's (the QMP injector waits for a serial line).
        for stale in ["ram.bin", "serial.log", "qmp.sock"] {
            let _ = std::fs::remove_file(self.work_dir.join(stale));
        }
        let started = Instant::now();
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| format!("starting {QEMU}: {e}"))?;
        during(&self.work_dir);
        let ending = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ending::from_status(status.code()),
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Ending::Timeout;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting for {QEMU}: {e}")),
            }
        };
        let elapsed = started.elapsed();
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        let serial = std::fs::read(self.work_dir.join("serial.log"))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let serial = if stderr.trim().is_empty() {
            serial
        } else {
            format!("{serial}\n[qemu stderr]\n{stderr}")
        };
        Ok(Outcome {
            ending,
            serial,
            ram,
            elapsed,
        })
    }
}
