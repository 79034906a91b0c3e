//! `crashkit rd DUMP -p ADDR [LEN]`: physical memory, as hex and ASCII, 16
//! bytes a line. A run of memory the dump does not have is one line that
//! says what it is (excluded, hole, lost, corrupt), never silent zeros;
//! zero pages crashkit did not store (known zero) read as the zeros they
//! are. `--raw` writes the bytes themselves and stops, with an error, at
//! the first byte the dump does not have.

use std::fmt::Write as _;

use serde::Serialize;

use crashkit_dump_format::PAGE_SIZE;
use crashkit_dump_format::read::PageState;

use crate::open::Dump;

/// A run of addresses in one state, with its bytes when the dump has them.
#[derive(Debug, Serialize)]
pub struct Run {
    /// First address.
    pub start: u64,
    /// Bytes in the run.
    pub len: u64,
    /// `present`, `zero`, `excluded`, `hole`, `lost` or `corrupt`.
    pub state: &'static str,
    /// The bytes, as lowercase hex, when the state has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// The bytes themselves (not serialised; `--raw` writes them).
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// For a virtual read: the physical address the run starts at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phys: Option<u64>,
    /// For a virtual read that is not mapped: why (`PDE not present`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A read that cannot be done as asked.
#[derive(Debug)]
pub struct BadRange(pub String);

impl std::fmt::Display for BadRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadRange {}

/// Parse an address or length: `0x` hex, or decimal.
pub fn number(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a number (hex with 0x, or decimal)"))
}

/// The state of `addr` and how far it lasts (to a page end at most for a
/// kdump-compressed dump, whose states are per page).
fn span(dump: &Dump<'_>, addr: u64) -> (PageState, u64) {
    match dump {
        Dump::Elf(elf) => {
            let span = elf.classify(addr);
            (span.state, span.len)
        }
        Dump::Kdump(_) => match dump.part_for(addr / PAGE_SIZE) {
            Some(part) => {
                let span = part.classify(addr);
                (span.state, span.len)
            }
            None => (PageState::Hole, PAGE_SIZE - addr % PAGE_SIZE),
        },
        // Everything below the image's end; nothing past it.
        Dump::Ram(bytes) => match (bytes.len() as u64).checked_sub(addr) {
            Some(left) if left > 0 => (PageState::Present, left),
            _ => (PageState::Hole, u64::MAX - addr),
        },
    }
}

/// Read `buf` at `addr`, all in one present (or zero) run.
fn read(dump: &Dump<'_>, addr: u64, buf: &mut [u8]) -> Result<(), PageState> {
    match dump {
        Dump::Elf(elf) => elf.read_phys(addr, buf).map_err(|u| u.state),
        Dump::Kdump(_) => match dump.part_for(addr / PAGE_SIZE) {
            Some(part) => part.read_phys(addr, buf).map_err(|u| u.state),
            None => Err(PageState::Hole),
        },
        Dump::Ram(bytes) => {
            let source = usize::try_from(addr)
                .ok()
                .and_then(|start| bytes.get(start..start.checked_add(buf.len())?))
                .ok_or(PageState::Hole)?;
            buf.copy_from_slice(source);
            Ok(())
        }
    }
}

/// Read `len` bytes at `addr` that the dump must have whole (present or
/// known zero); else the first address it does not have and its state.
/// `len` is the caller's to bound.
pub fn read_exact(dump: &Dump<'_>, addr: u64, len: usize) -> Result<Vec<u8>, (u64, PageState)> {
    let mut bytes = vec![0u8; len];
    let mut done = 0usize;
    while done < len {
        let at = addr.saturating_add(done as u64);
        let (state, span_len) = span(dump, at);
        if !matches!(state, PageState::Present | PageState::Zero) {
            return Err((at, state));
        }
        let n = usize::try_from(span_len.max(1))
            .unwrap_or(usize::MAX)
            .min(len - done);
        read(dump, at, &mut bytes[done..done + n]).map_err(|state| (at, state))?;
        done += n;
    }
    Ok(bytes)
}

/// `len` is at most 16 MiB, so a typo does not print a terabyte.
pub fn check_len(len: u64) -> Result<(), BadRange> {
    const MOST: u64 = 16 << 20;
    if len > MOST {
        return Err(BadRange(format!(
            "{len} bytes asked; rd shows at most {MOST} (use several reads)"
        )));
    }
    Ok(())
}

/// Append `run`, merged into the last one when it continues it: the same
/// state and reason, the next address, and (for runs with bytes) the next
/// physical address too.
pub fn push_merged(runs: &mut Vec<Run>, run: Run) {
    if let Some(last) = runs.last_mut()
        && last.state == run.state
        && last.why == run.why
        && last.start + last.len == run.start
        && last.phys.map(|p| p + last.len) == run.phys
    {
        last.len += run.len;
        last.bytes.extend_from_slice(&run.bytes);
        return;
    }
    runs.push(run);
}

/// The runs of physical `[addr, addr + len)`; `len` at most 16 MiB.
pub fn runs(dump: &Dump<'_>, addr: u64, len: u64) -> Result<Vec<Run>, BadRange> {
    check_len(len)?;
    let end = addr
        .checked_add(len)
        .ok_or_else(|| BadRange(format!("{addr:#x} + {len:#x} is past the end of memory")))?;
    let mut runs: Vec<Run> = Vec::new();
    let mut at = addr;
    while at < end {
        let (state, span_len) = span(dump, at);
        let n = span_len.clamp(1, end - at);
        let mut bytes = Vec::new();
        let state = match state {
            PageState::Present | PageState::Zero => {
                bytes = vec![0u8; n as usize];
                match read(dump, at, &mut bytes) {
                    Ok(()) => state,
                    // Decoding found the page corrupt (or it vanished).
                    Err(found) => {
                        bytes.clear();
                        found
                    }
                }
            }
            other => other,
        };
        // Runs of one state merge (a kdump-compressed dump answers page by
        // page).
        push_merged(
            &mut runs,
            Run {
                start: at,
                len: n,
                state: state.name(),
                hex: None,
                bytes,
                phys: None,
                why: None,
            },
        );
        at += n;
    }
    Ok(runs)
}

/// Fill each run's `hex` (the JSON form of its bytes).
pub fn add_hex(runs: &mut [Run]) {
    for run in runs {
        if !run.bytes.is_empty() {
            let mut hex = String::with_capacity(run.bytes.len() * 2);
            for &byte in &run.bytes {
                hex.push(HEX[usize::from(byte >> 4)] as char);
                hex.push(HEX[usize::from(byte & 15)] as char);
            }
            run.hex = Some(hex);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The text: `ADDRESS: 16 bytes in hex  |ASCII|` per line of memory the
/// dump has, one line per run it does not have.
pub fn render(runs: &[Run]) -> String {
    // 80 columns a line of bytes, one line per run without bytes.
    let lines: usize = runs.iter().map(|r| r.bytes.len() / 16 + 1).sum();
    let mut out = String::with_capacity(lines.saturating_mul(80));
    for run in runs {
        if run.bytes.is_empty() {
            let end = run.start + run.len - 1;
            let _ = match &run.why {
                // A virtual run the tables do not map (or a table on the
                // way the dump does not have).
                Some(why) => writeln!(
                    out,
                    "{:016x}: {}: {why} ({} bytes, to {end:#x})",
                    run.start, run.state, run.len
                ),
                None => writeln!(
                    out,
                    "{:016x}: {} ({} bytes, to {end:#x}): not in the dump",
                    run.start, run.state, run.len
                ),
            };
            continue;
        }
        if let Some(phys) = run.phys {
            let _ = writeln!(out, "(at physical {phys:#x})");
        }
        let note = if run.state == "zero" {
            " (zero, not stored)"
        } else {
            ""
        };
        for (index, line) in run.bytes.chunks(16).enumerate() {
            // `ADDRESS: 16 bytes as hex, 47 columns  |ASCII|`, built by
            // hand: `rd` of a page is 256 of these lines.
            let address = run.start + index as u64 * 16;
            let _ = write!(out, "{address:016x}: ");
            let mut columns = 0;
            for (i, &byte) in line.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                    columns += 1;
                }
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 15)] as char);
                columns += 2;
            }
            for _ in columns..47 {
                out.push(' ');
            }
            out.push_str("  |");
            for &byte in line {
                out.push(if byte.is_ascii_graphic() || byte == b' ' {
                    byte as char
                } else {
                    '.'
                });
            }
            out.push('|');
            out.push_str(note);
            out.push('\n');
        }
    }
    out
}
