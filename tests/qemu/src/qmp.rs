//! QMP, QEMU's control socket: the `inject-nmi` scenario (wait until the
//! kernel says it is ready, a serial line, then inject) and the corpus's
//! dumps (`dump-guest-memory`, then `quit`). QEMU may exit at any moment,
//! so every step tolerates a closed socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The serial line the kernel prints when it waits for the NMI.
pub const READY: &str = "crashkit-test: ready for inject-nmi";

/// Inject an NMI through the QMP socket `socket` each time `serial` holds
/// one more [`READY`] line, until the kernel reaches its final action, an
/// injection fails (QEMU is gone) or `limit` passes. Returns what
/// happened, for the log.
pub fn inject_nmi_each_time_ready(serial: &Path, socket: &Path, limit: Duration) -> String {
    let started = Instant::now();
    let mut sent = Vec::new();
    loop {
        let remaining = limit.saturating_sub(started.elapsed());
        if let Err(why) = wait_for_count(serial, READY, sent.len() + 1, remaining) {
            sent.push(why);
            return sent.join("; ");
        }
        match inject(socket) {
            Ok(()) => sent.push(format!("inject-nmi {} sent", sent.len() + 1)),
            Err(error) => {
                sent.push(format!("inject-nmi {} failed: {error}", sent.len() + 1));
                return sent.join("; ");
            }
        }
    }
}

/// The kernel's last serial line of a run (its final action): no request
/// for an NMI can follow it.
const FINISHED: &str = "crashkit-test: final action reached";

/// Wait (up to `limit`) until `serial` holds `line` `count` times; an
/// error if the kernel reached its final action first.
fn wait_for_count(serial: &Path, line: &str, count: usize, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read(serial).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let seen = text.matches(line).count();
        if seen >= count {
            return Ok(());
        }
        if text.contains(FINISHED) {
            return Err(format!(
                "the kernel reached its final action having printed {line:?} {seen} times, not {count}"
            ));
        }
        if started.elapsed() > limit {
            return Err(format!(
                "the kernel printed {line:?} fewer than {count} times"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn inject(socket: &Path) -> std::io::Result<()> {
    let mut qmp = Qmp::connect(socket)?;
    // QEMU may exit before it answers: the NMI went in if the write did.
    qmp.send(r#"{"execute":"inject-nmi"}"#)?;
    let _ = qmp.reply();
    Ok(())
}

/// Wait (up to `limit`) until `serial` holds `line`; an error if the
/// kernel reached its final action first.
pub fn wait_for_line(serial: &Path, line: &str, limit: Duration) -> Result<(), String> {
    wait_for_count(serial, line, 1, limit)
}

/// A QMP connection after the capabilities handshake.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect (retrying briefly: QEMU creates the socket before the guest
    /// runs, but a slow host may lag) and negotiate capabilities.
    pub fn connect(socket: &Path) -> std::io::Result<Self> {
        let mut attempt = 0;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(error) if attempt >= 100 => return Err(error),
                Err(_) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut qmp = Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let mut greeting = String::new();
        qmp.reader.read_line(&mut greeting)?;
        qmp.send(r#"{"execute":"qmp_capabilities"}"#)?;
        qmp.reply()?;
        Ok(qmp)
    }

    /// Send one command (a JSON object on one line).
    pub fn send(&mut self, command: &str) -> std::io::Result<()> {
        self.writer.write_all(command.as_bytes())?;
        self.writer.write_all(b"\n")
    }

    /// The next reply (`return` or `error`), skipping events.
    pub fn reply(&mut self) -> std::io::Result<String> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "QEMU closed the QMP socket",
                ));
            }
            if line.contains("\"return\"") || line.contains("\"error\"") {
                return Ok(line);
            }
        }
    }

    /// Run one command and return its reply; an `error` reply is an error.
    pub fn execute(&mut self, command: &str) -> Result<String, String> {
        self.send(command)
            .map_err(|e| format!("QMP {command}: {e}"))?;
        let reply = self.reply().map_err(|e| format!("QMP {command}: {e}"))?;
        if reply.contains("\"error\"") {
            return Err(format!("QMP {command}: {}", reply.trim()));
        }
        Ok(reply)
    }
}

/// When each of `lines` first appeared in `serial` (polled every
/// millisecond, from the host), until all did, or one of `over` appeared
/// (the guest's last words: a test kernel's final action, Linux's power
/// off), or `limit` passed; `None` for a line never seen.
pub fn line_times<const N: usize>(
    serial: &Path,
    lines: &[&str; N],
    over: &[&str],
    limit: Duration,
) -> [Option<Instant>; N] {
    let started = Instant::now();
    let mut seen = [None; N];
    while started.elapsed() < limit && seen.iter().any(Option::is_none) {
        let text = std::fs::read(serial).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let now = Instant::now();
        for (when, line) in seen.iter_mut().zip(lines) {
            if when.is_none() && text.contains(line) {
                *when = Some(now);
            }
        }
        if over.iter().any(|line| text.contains(line)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    seen
}
