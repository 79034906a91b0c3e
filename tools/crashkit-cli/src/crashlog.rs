//! `crashkit log DUMP` on a crashkit kernel's dump: the crash log's rings
//! (docs/crash-log.md) found through the crash record's log section (the
//! dump's crashkit note), or, in another producer's dump (QEMU's), by
//! scanning memory for the area's magic; checked with `crashkit-log`'s
//! reader; decoded with `defmt-decoder` against the kernel's ELF, whose
//! build-id must be the one the rings carry; merged over every CPU and
//! context by time.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crashkit_log::layout::{self, HEADER_SIZE};
use crashkit_log::read::{AreaView, Item};
use crashkit_record_format::RecordView;

use crate::open::Dump;
use crate::{rd, record};

/// The largest area read (the reader's own bound: 4096 CPUs of 1 MiB
/// rings would be more than any dump holds; this keeps the read sane).
const MOST_AREA: u64 = 256 << 20;

/// How the area was found.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// Through the crash record in the dump's crashkit note.
    Record,
    /// By scanning the dump's memory for the area's magic.
    Scan,
}

/// The crash log, decoded.
#[derive(Debug, Serialize)]
pub struct CrashLog {
    /// How the area was found.
    pub found_by: FoundBy,
    /// Its address (physical).
    pub address: u64,
    /// Its size in bytes.
    pub size: u64,
    /// The kernel's build-id as the rings carry it (hex).
    pub build_id: Option<String>,
    /// The ELF the frames were decoded with.
    pub kernel: String,
    /// CPUs with rings, and each ring's size.
    pub cpus: usize,
    /// Data bytes per ring.
    pub ring_bytes: usize,
    /// Messages from a CPU the area does not cover.
    pub unplaced: u32,
    /// Every frame of every ring, oldest first (the last `--tail` ones).
    pub lines: Vec<Line>,
    /// Messages read but not shown (`--tail`).
    #[serde(skip_serializing_if = "is_zero")]
    pub not_shown: usize,
    /// Each ring that was ever written, with what its read found.
    pub rings: Vec<RingReport>,
}

/// One decoded message.
#[derive(Debug, Serialize)]
pub struct Line {
    /// The platform clock when it was begun (nanoseconds once the kernel
    /// gave the TSC frequency).
    pub stamp: u64,
    /// CPU index.
    pub cpu: usize,
    /// Context: `normal`, `nmi` or `mce`.
    pub context: &'static str,
    /// The ring's frame number.
    pub seq: u32,
    /// defmt's level, if the message has one (`println!` has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<&'static str>,
    /// The message, formatted; or why it could not be.
    pub message: String,
    /// Whether the message decoded (false: `message` says why not).
    pub decoded: bool,
    /// Source file and line, from the ELF's DWARF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// What one ring's read found.
#[derive(Debug, Serialize)]
pub struct RingReport {
    /// CPU index.
    pub cpu: usize,
    /// Context.
    pub context: &'static str,
    /// Frames read.
    pub frames: u32,
    /// Frames that did not decode against the ELF.
    pub undecodable: u32,
    /// Stretches between delimiters that are not frames (damage).
    pub damaged: u32,
    /// Frames overwritten by newer ones.
    pub overwritten: u32,
    /// Frames missing (damage, or lost after the last one read).
    pub missing: u32,
    /// Messages dropped by re-entry in the same context.
    pub dropped: u32,
    /// Frames cut at the size limit.
    pub cut: u32,
    /// Bytes of a frame being written when the memory was read (its CPU
    /// stopped in the middle of it): not decoded.
    pub torn_bytes: u64,
    /// Something in the ring's header disagrees with the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_problem: Option<String>,
}

fn is_zero(value: &usize) -> bool {
    *value == 0
}

impl CrashLog {
    /// Keep only the last `count` messages (`--tail`); the rings' accounts
    /// stay whole.
    pub fn tail(&mut self, count: usize) {
        let drop = self.lines.len().saturating_sub(count);
        self.lines.drain(..drop);
        self.not_shown = drop;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Find the area: the record's log section, else a scan for the magic.
/// `Ok(None)`: the dump has no crash log.
pub fn find(dump: &Dump<'_>) -> anyhow::Result<Option<(FoundBy, u64, Vec<u8>)>> {
    if let Some(view) = record::noted(dump) {
        return Ok(from_record(dump, &view)?.map(|(a, b)| (FoundBy::Record, a, b)));
    }
    Ok(scan(dump).map(|(a, b)| (FoundBy::Scan, a, b)))
}

fn from_record(dump: &Dump<'_>, view: &RecordView<'_>) -> anyhow::Result<Option<(u64, Vec<u8>)>> {
    let Some((address, size)) = view.log() else {
        return Ok(None);
    };
    if !(HEADER_SIZE as u64..=MOST_AREA).contains(&size) {
        bail!(
            "the crash record's log section gives a size of {size} bytes, not between {HEADER_SIZE} and {MOST_AREA}"
        );
    }
    let bytes = rd::read_exact(dump, address, size as usize).map_err(|(at, state)| {
        anyhow::anyhow!(
            "the crash log at {address:#x} ({size} bytes, from the crash record): its bytes at {at:#x} are not in the dump ({})",
            state.name()
        )
    })?;
    Ok(Some((address, bytes)))
}

/// Scan every page for the magic; the first candidate whose header checks
/// and whose whole area is in the dump wins.
fn scan(dump: &Dump<'_>) -> Option<(u64, Vec<u8>)> {
    let magic = u64::from_le_bytes(layout::MAGIC);
    for address in record::scan_for(dump, magic) {
        let Ok(header) = rd::read_exact(dump, address, HEADER_SIZE) else {
            continue;
        };
        let at = layout::header::TOTAL_SIZE;
        let Some(total) = header
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
        else {
            continue;
        };
        if !(HEADER_SIZE as u64..=MOST_AREA).contains(&total) {
            continue;
        }
        let Ok(bytes) = rd::read_exact(dump, address, total as usize) else {
            continue;
        };
        if AreaView::parse(&bytes).is_ok() {
            return Some((address, bytes));
        }
    }
    None
}

/// The kernel ELF for the rings' build-id: `kernel`, else
/// `DEBUG_DIR/.build-id/xx/rest.debug`.
pub fn kernel_file(
    build_id: Option<&[u8]>,
    kernel: Option<&Path>,
    debug_dir: &Path,
) -> anyhow::Result<PathBuf> {
    if let Some(path) = kernel {
        return Ok(path.to_path_buf());
    }
    let Some(id) = build_id else {
        bail!(
            "the crash log's frames are defmt-encoded and need the kernel's ELF (its `.defmt` table): give --kernel FILE (the rings name no build-id to look for under --debug-dir)"
        );
    };
    let hex = hex(id);
    let path = crate::bt::debug_file(id, debug_dir);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "the crash log's frames are defmt-encoded and need the kernel's ELF (its `.defmt` table): give --kernel FILE (build-id {hex}; not at {})",
            path.display()
        )
    }
}

/// The GNU build-id of an ELF file.
fn elf_build_id(elf: &[u8]) -> Option<Vec<u8>> {
    let parsed = goblin::elf::Elf::parse(elf).ok()?;
    let notes = parsed.iter_note_sections(elf, None)?;
    for note in notes.flatten() {
        if note.name == "GNU" && note.n_type == goblin::elf::note::NT_GNU_BUILD_ID {
            return Some(note.desc.to_vec());
        }
    }
    None
}

/// Decode the area (`bytes`, at `address`) with the ELF at `path`.
pub fn decode(
    found_by: FoundBy,
    address: u64,
    bytes: &[u8],
    path: &Path,
    elf: &[u8],
) -> anyhow::Result<CrashLog> {
    let area = AreaView::parse(bytes).with_context(|| format!("the crash log at {address:#x}"))?;
    let rings_id = area.build_id();
    match (rings_id, elf_build_id(elf)) {
        (Some(ours), Some(theirs)) if ours != theirs.as_slice() => bail!(
            "{}: its build-id {} is not the crash log's {}: decoding with another build's ELF gives wrong messages; give the ELF of the kernel that crashed",
            path.display(),
            hex(&theirs),
            hex(ours)
        ),
        (None, _) => eprintln!(
            "crashkit: warning: the crash log names no build-id (the kernel did not install it with one); cannot check that {} is the kernel that wrote it",
            path.display()
        ),
        (_, None) => eprintln!(
            "crashkit: warning: {} has no build-id; cannot check that it is the kernel that wrote the crash log",
            path.display()
        ),
        _ => {}
    }
    let table = defmt_decoder::Table::parse(elf)
        .map_err(|e| anyhow::anyhow!("{}: its defmt table cannot be read: {e:#}", path.display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no `.defmt` section (a stripped ELF, or a kernel not linked with -Tdefmt.x): the crash log cannot be decoded with it",
                path.display()
            )
        })?;
    let locations = match table.get_locations(elf) {
        Ok(locations) if locations.is_empty() => {
            eprintln!(
                "crashkit: warning: {}: no DWARF line information for the messages: no file:line",
                path.display()
            );
            None
        }
        Ok(locations) => Some(locations),
        Err(error) => {
            eprintln!(
                "crashkit: warning: {}: no file:line for the messages ({error:#})",
                path.display()
            );
            None
        }
    };
    let mut lines = Vec::new();
    let mut rings = Vec::new();
    for ring in area.rings() {
        if ring.is_empty() && ring.dropped == 0 {
            continue;
        }
        let context = ring.context.name();
        let mut undecodable = 0u32;
        let summary = ring.read(|item| match item {
            Item::Frame(frame) => {
                // (level, message, location), or why it did not decode.
                let shown = match table.decode(frame.defmt) {
                    Ok((decoded, consumed)) if consumed == frame.defmt.len() || frame.cut => {
                        let message = decoded.display_message().to_string();
                        Ok((
                            decoded.level().map(|l| l.as_str()),
                            if frame.cut {
                                format!("{message} [cut by the writer]")
                            } else {
                                message
                            },
                            locations
                                .as_ref()
                                .and_then(|l| l.get(&decoded.index()))
                                .map(|l| format!("{}:{}", relative(&l.file).display(), l.line)),
                        ))
                    }
                    Ok((_, consumed)) => Err(format!(
                        "(undecodable: {} bytes left after the message's {consumed}; another build's ELF?)",
                        frame.defmt.len() - consumed
                    )),
                    Err(error) => Err(format!(
                        "(undecodable: {error}; {} bytes)",
                        frame.defmt.len()
                    )),
                };
                let decoded = shown.is_ok();
                let (level, message, location) = shown.unwrap_or_else(|why| {
                    undecodable += 1;
                    (None, why, None)
                });
                let line = Line {
                    stamp: frame.stamp,
                    cpu: ring.cpu,
                    context,
                    seq: frame.seq,
                    level,
                    message,
                    decoded,
                    location,
                };
                lines.push(line);
            }
            Item::Damaged { .. } => {}
        });
        let header_problem = if ring.misnamed {
            Some("the ring's header names another CPU or context than its place".to_string())
        } else if summary.header_damaged {
            Some(format!(
                "its write positions disagree (head {}, committed {}): read up to head",
                ring.head, ring.committed
            ))
        } else {
            None
        };
        rings.push(RingReport {
            cpu: ring.cpu,
            context,
            frames: summary.frames,
            undecodable,
            damaged: summary.damaged,
            overwritten: summary.overwritten,
            missing: summary.missing,
            dropped: ring.dropped,
            cut: summary.cut,
            torn_bytes: summary.torn_bytes,
            header_problem,
        });
    }
    // Merge every ring by time; within one stamp, by CPU, context and
    // frame number (the sort is stable and total).
    lines.sort_by_key(|l| (l.stamp, l.cpu, l.context, l.seq));
    Ok(CrashLog {
        found_by,
        address,
        size: bytes.len() as u64,
        build_id: rings_id.map(hex),
        kernel: path.display().to_string(),
        cpus: area.cpus(),
        ring_bytes: area.ring_bytes(),
        unplaced: area.unplaced(),
        lines,
        not_shown: 0,
        rings,
    })
}

/// `file` relative to the current directory when it is under it (DWARF
/// names sources by the absolute path they were built from).
fn relative(file: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|here| file.strip_prefix(here).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| file.to_path_buf())
}

/// The text form: a heading, one line per message, the rings' accounts.
pub fn render(log: &CrashLog) -> String {
    let mut out = String::new();
    let found = match log.found_by {
        FoundBy::Record => "through the crash record",
        FoundBy::Scan => "by scanning memory for its magic (the dump has no crashkit note)",
    };
    out.push_str(&format!(
        "crash log at {:#x} ({} bytes, {} CPUs x 3 rings of {} bytes), found {found}; build-id {}; decoded with {}\n",
        log.address,
        log.size,
        log.cpus,
        log.ring_bytes,
        log.build_id.as_deref().unwrap_or("(none)"),
        log.kernel
    ));
    if log.not_shown > 0 {
        out.push_str(&format!(
            "({} earlier messages not shown: --tail)\n",
            log.not_shown
        ));
    }
    for line in &log.lines {
        let level = line.level.map_or(String::from("-"), |l| l.to_uppercase());
        out.push_str(&format!(
            "[{:>5}.{:06}] cpu{} {:<6} {:<5} {}",
            line.stamp / 1_000_000_000,
            line.stamp % 1_000_000_000 / 1_000,
            line.cpu,
            line.context,
            level,
            line.message.replace('\n', "\n                      ")
        ));
        if let Some(location) = &line.location {
            out.push_str(&format!("  ({location})"));
        }
        out.push('\n');
    }
    out.push_str("rings:\n");
    for ring in &log.rings {
        out.push_str(&format!(
            "  cpu{} {:<6} {} frames",
            ring.cpu, ring.context, ring.frames
        ));
        let counts = [
            (ring.undecodable, "undecodable"),
            (ring.damaged, "damaged"),
            (ring.overwritten, "overwritten"),
            (ring.missing, "missing"),
            (ring.dropped, "dropped by re-entry"),
            (ring.cut, "cut"),
        ];
        for (count, what) in counts {
            if count > 0 {
                out.push_str(&format!(", {count} {what}"));
            }
        }
        if ring.torn_bytes > 0 {
            out.push_str(&format!(
                ", a frame being written when the CPU stopped ({} bytes, not decoded)",
                ring.torn_bytes
            ));
        }
        if let Some(problem) = &ring.header_problem {
            out.push_str(&format!("; {problem}"));
        }
        out.push('\n');
    }
    if log.unplaced > 0 {
        out.push_str(&format!(
            "  {} messages from CPUs without a ring\n",
            log.unplaced
        ));
    }
    out
}
