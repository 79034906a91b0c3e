//! The crash log a crashed test kernel leaves in a dump, as `crashkit log
//! --json DUMP --kernel ELF` decodes it (docs/crash-log.md): the panic
//! path's own events are there, from the CPUs and contexts that logged
//! them, in the order the panic path runs, and nothing is damaged or
//! undecodable. The scenario runner checks the capture kernel's and the
//! in-place writer's dumps with it, the corpus QEMU's.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// What the crash should have logged.
#[derive(Debug)]
pub struct Expected<'a> {
    /// The panicking CPU (the record's owner).
    pub owner: u64,
    /// The CPUs the record says stopped: each logs its stop.
    pub stopped: &'a [u64],
    /// `record` (the dump has crashkit's note) or `scan` (QEMU's).
    pub found_by: &'a str,
    /// Messages the owner logs after the dump hand-over, in order (the
    /// in-place writer's).
    pub after_handover: &'a [&'a str],
    /// The dump was taken from outside while the CPUs ran (QEMU's): a
    /// stopped CPU may still be writing its stop line (it records itself
    /// stopped first), which the log must then report as a frame being
    /// written, not lose.
    pub live: bool,
}

/// Decode the dump's crash log and check it against `expected`; a summary
/// line.
pub fn check(
    cli: &Path,
    dump: &Path,
    kernel: &Path,
    expected: &Expected<'_>,
) -> Result<String, String> {
    let output = Command::new(cli)
        .args(["--json", "log"])
        .arg(dump)
        .arg("--kernel")
        .arg(kernel)
        .output()
        .map_err(|e| format!("running {}: {e}", cli.display()))?;
    if !output.status.success() {
        return Err(format!(
            "crashkit log {}: {}",
            dump.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let json: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("crashkit log's JSON: {e}"))?;
    let log = &json["crash_log"];
    if log["found_by"] != expected.found_by {
        return Err(format!(
            "the crash log was found by {}, not {}",
            log["found_by"], expected.found_by
        ));
    }
    for ring in log["rings"].as_array().ok_or("no rings")? {
        for count in ["undecodable", "damaged", "missing", "cut"] {
            if ring[count].as_u64() != Some(0) {
                return Err(format!("ring {ring}: {count} is not 0"));
            }
        }
    }
    let lines = log["lines"].as_array().ok_or("no lines")?;
    let text = |line: &Value| line["message"].as_str().unwrap_or("").to_owned();
    let owner = expected.owner;
    // The owner's events, in order, each from the ring of the context it
    // panicked in (normal, or NMI for a panic inside an NMI handler).
    let panic = format!("panic on CPU {owner}:");
    let context = lines
        .iter()
        .find(|line| line["cpu"].as_u64() == Some(owner) && text(line).starts_with(&panic))
        .map(|line| line["context"].clone())
        .ok_or_else(|| {
            format!(
                "the crash log lacks {panic:?}: {}",
                lines.iter().map(text).collect::<Vec<_>>().join(" | ")
            )
        })?;
    let of_owner = |line: &Value| line["cpu"].as_u64() == Some(owner) && line["context"] == context;
    let mut wanted: Vec<String> = vec![
        panic,
        "stopping the other CPUs".to_owned(),
        format!("shootdown: {} stopped", expected.stopped.len()),
        "dump hand-over".to_owned(),
    ];
    wanted.extend(expected.after_handover.iter().map(|s| (*s).to_owned()));
    let mut at = 0;
    let mut positions = Vec::new();
    for want in &wanted {
        let found = lines[at..]
            .iter()
            .position(|line| of_owner(line) && text(line).starts_with(want.as_str()))
            .ok_or_else(|| {
                format!(
                    "the crash log lacks {want:?} from CPU {owner}'s {context} ring after line {at}: {}",
                    lines.iter().map(text).collect::<Vec<_>>().join(" | ")
                )
            })?;
        positions.push(at + found);
        at += found + 1;
    }
    // Each stopped CPU's stop, logged by that CPU, between the owner's
    // "stopping" and its tally.
    for &cpu in expected.stopped {
        let stop = lines.iter().position(|line| {
            line["cpu"].as_u64() == Some(cpu)
                && text(line).starts_with(&format!("CPU {cpu} stopped"))
        });
        match stop {
            Some(p) if p > positions[1] && p < positions[2] => {}
            Some(p) => {
                return Err(format!(
                    "CPU {cpu}'s stop is line {p}, not between the owner's lines {} and {}",
                    positions[1], positions[2]
                ));
            }
            None if expected.live
                && log["rings"].as_array().is_some_and(|rings| {
                    rings.iter().any(|ring| {
                        ring["cpu"].as_u64() == Some(cpu)
                            && ring["torn_bytes"].as_u64().is_some_and(|b| b > 0)
                    })
                }) => {}
            None => return Err(format!("the crash log lacks CPU {cpu}'s stop")),
        }
    }
    if log["build_id"].is_null() {
        return Err("the crash log names no build-id".to_owned());
    }
    // file:line from the ELF's DWARF: the panic line is the panic path's.
    let location = lines
        .get(positions[0])
        .and_then(|line| line["location"].as_str())
        .unwrap_or("");
    if !location.contains("panic-path/src/sequence.rs:") {
        return Err(format!(
            "the panic line's location is {location:?}, not in panic-path/src/sequence.rs"
        ));
    }
    Ok(format!(
        "crash log: {} lines, the panic path's in order",
        lines.len()
    ))
}
