//! The QMP side of the `inject-nmi` scenario: wait until the kernel says
//! it is ready (a serial line), then send `inject-nmi` through QEMU's QMP
//! socket. QEMU may exit at any moment (the scenario ends with it), so
//! every step tolerates a closed socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The serial line the kernel prints when it waits for the NMI.
pub const READY: &str = "crashkit-test: ready for inject-nmi";

/// Wait (up to `limit`) for [`READY`] in `serial`, then inject an NMI
/// through the QMP socket `socket`. Returns what happened, for the log.
pub fn inject_nmi_when_ready(serial: &Path, socket: &Path, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read(serial).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(READY) {
            break;
        }
        if started.elapsed() > limit {
            return format!("the kernel never printed {READY:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    match inject(socket) {
        Ok(()) => "inject-nmi sent".to_owned(),
        Err(error) => format!("inject-nmi failed: {error}"),
    }
}

fn inject(socket: &Path) -> std::io::Result<()> {
    // QEMU creates the socket before the guest runs; retry briefly anyway
    // (a slow host), then give up with the last error.
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
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?; // the greeting
    writer.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    writer.write_all(b"{\"execute\":\"inject-nmi\"}\n")?;
    line.clear();
    // QEMU may exit before it answers: the NMI went in if the write did.
    let _ = reader.read_line(&mut line);
    Ok(())
}
