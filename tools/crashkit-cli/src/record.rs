//! `crashkit record DUMP`: the crash record, decoded. A crashkit dump
//! carries the record in a note (`NT_CRASHKIT_RECORD`) and that is where it
//! is read; another producer's dump of a crashkit kernel (QEMU's
//! `dump-guest-memory`) has it only in memory, so memory is scanned for
//! it: every page the dump holds, every 8-byte-aligned address where the
//! record's magic is. A candidate is read (its header's size, at most
//! [`MOST`]) and parsed; those that parse are reported, with the address
//! they were found at, and those that do not are listed with the reason.
//! A note that does not parse is reported and memory is scanned as well.

use std::borrow::Cow;
use std::fmt::Debug;

use serde::Serialize;

use crashkit_dump_format::read::PageState;
use crashkit_record_format::layout::{self, cpu as cpu_layout};
use crashkit_record_format::{
    CpuState, Decoded, PhaseStamp, RecordView, ShootdownTotals, Skipped, Summary,
};

use crate::open::Dump;
use crate::rd;

/// The largest record a scan reads (a record for 4096 CPUs is about 1 MiB).
const MOST: usize = 16 << 20;

/// Rejected candidates listed one by one; beyond this many, counted only.
const LISTED: usize = 32;

/// Places holding the magic that a scan examines; beyond this many (a
/// hostile dump full of the magic), counted only, so the scan's memory is
/// bounded whatever the dump holds.
const MOST_CANDIDATES: usize = 1024;

/// What `record` found.
#[derive(Debug, Default, Serialize)]
pub struct Records {
    /// The records that parsed, note first.
    pub records: Vec<Report>,
    /// Candidates that did not parse, up to [`LISTED`].
    pub rejected: Vec<Rejected>,
    /// Rejected candidates beyond those listed.
    pub rejected_not_listed: u64,
    /// Places holding the magic beyond the first [`MOST_CANDIDATES`]: not
    /// examined (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub candidates_not_examined: u64,
    /// Pages scanned (absent when memory was not scanned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages_scanned: Option<u64>,
    /// The text report of each record (not serialised: JSON has the fields).
    #[serde(skip)]
    pub summaries: Vec<String>,
}

/// A candidate that is not a record.
#[derive(Debug, Serialize)]
pub struct Rejected {
    /// `note` or `scan`.
    pub found_by: &'static str,
    /// The physical address of the magic (scan only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u64>,
    /// Why it is not a record.
    pub why: String,
}

/// One record, decoded.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `note` (the dump's crash-record note) or `scan` (found in memory).
    pub found_by: &'static str,
    /// The physical address it was found at (scan only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u64>,
    /// Format version.
    pub version: u16,
    /// The record's size in bytes.
    pub size: u32,
    /// CPU slots.
    pub cpu_slots: usize,
    /// Notifier slots.
    pub notifier_slots: usize,
    /// The panic section.
    pub panic: PanicReport,
    /// Every CPU slot but those of CPUs the platform did not have.
    pub cpus: Vec<CpuReport>,
    /// Notifier outcomes, in run order.
    pub notifiers: Vec<NotifierReport>,
    /// The dump section (records from before it have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpReport>,
    /// Ranges left out of dumps, `[start, len]` (records from before the
    /// exclusion section have none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<(u64, u64)>,
    /// Where the kernel's crash log is, `[address, size]` (records from
    /// before the log section, or of kernels without one, have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_log: Option<(u64, u64)>,
}

/// The dump section, decoded.
#[derive(Debug, Serialize)]
pub struct DumpReport {
    /// `None`, `CaptureKernel` or `InPlace`.
    pub path: String,
    /// Why the in-place writer ran.
    pub reason: String,
    /// The hand-over's error code (0: none).
    pub handover_error: u32,
    /// How the in-place writing ended (`Running` in the dump's own copy).
    pub outcome: String,
    /// Pages the in-place writer wrote.
    pub pages_written: u64,
    /// Bytes it wrote.
    pub data_bytes: u64,
    /// When the chosen writer started and the in-place one finished.
    pub started_ns: Option<u64>,
    /// See `started_ns`.
    pub finished_ns: Option<u64>,
    /// Memory the in-place writer changed while writing.
    pub changed: Vec<ChangedReport>,
}

/// One range the in-place writer changed.
#[derive(Debug, Serialize)]
pub struct ChangedReport {
    /// Physical start.
    pub start: u64,
    /// Length.
    pub len: u64,
    /// `Stack`, `Record` or `WriterState`.
    pub kind: String,
    /// Whether it is left out of the dump.
    pub left_out: bool,
}

/// The panic section, decoded.
#[derive(Debug, Serialize)]
pub struct PanicReport {
    /// How far the panic path got.
    pub phase: String,
    /// The panic owner's CPU index, if a CPU with an index claimed the
    /// panic.
    pub owner_cpu: Option<u32>,
    /// Whether the owner was a CPU without an index (it panicked before the
    /// kernel brought it online).
    pub owner_unregistered: bool,
    /// The panic message (lossy UTF-8).
    pub message: String,
    /// Whether the writer cut the message short.
    pub message_truncated: bool,
    /// Each phase stamp, platform nanoseconds (null: not stamped).
    pub timeline: Vec<Stamp>,
    /// The dump hand-over's result and its detail code.
    pub dump_result: String,
    /// The dump hook's detail code.
    pub dump_detail: u32,
    /// The final action.
    pub final_action: String,
    /// The shootdown's totals.
    pub shootdown: ShootdownTotals,
    /// Escalations (nested panics of the owner), the log's entries, and
    /// what they skipped together.
    pub escalations: u32,
    /// The escalation log (at most 4 entries).
    pub escalation_log: Vec<EscalationReport>,
    /// Names of what the escalations skipped.
    pub skipped: Vec<String>,
    /// Counters.
    pub counters: Counters,
}

/// One phase stamp.
#[derive(Debug, Serialize)]
pub struct Stamp {
    /// The stamp's name (`PanicEntry`, `ShootdownStart`, ...).
    pub stamp: String,
    /// Platform nanoseconds; null when not stamped.
    pub ns: Option<u64>,
}

/// One escalation log entry.
#[derive(Debug, Serialize)]
pub struct EscalationReport {
    /// The phase the owner was in when it panicked again.
    pub phase: String,
    /// What it skipped.
    pub skipped: Vec<String>,
    /// When (platform nanoseconds).
    pub at_ns: u64,
}

/// The panic section's counters.
#[derive(Debug, Serialize)]
pub struct Counters {
    /// Panics on CPUs that lost the claim.
    pub second_panickers: u32,
    /// Panics of the owner inside the panic path.
    pub reentries: u32,
    /// QSpinLock waits that fell back to test-and-set.
    pub qspinlock_fallbacks: u32,
    /// Locks the panic owner broke.
    pub panic_lock_breaks: u32,
    /// Notifier outcomes recorded.
    pub notifiers_recorded: u32,
    /// Notifier outcomes dropped for lack of slots.
    pub notifiers_dropped: u32,
}

/// One CPU slot, decoded.
#[derive(Debug, Serialize)]
pub struct CpuReport {
    /// The CPU index.
    pub cpu: usize,
    /// Its shootdown state (`PanicOwner`, `Stopped`, `Unresponsive`, ...).
    pub state: String,
    /// How it stopped (`None`, `Nmi`, `Poll`).
    pub stop_path: String,
    /// Stop NMIs sent to it.
    pub nmis_sent: u32,
    /// NMI-like contexts it was in when it stopped.
    pub nmi_depth: u32,
    /// When its first stop NMI was sent (null: never).
    pub first_nmi_ns: Option<u64>,
    /// When it stopped (null: not).
    pub stopped_ns: Option<u64>,
    /// The registers it saved, `[name, value]`, when its state says they
    /// are valid.
    pub registers: Option<Vec<(&'static str, u64)>>,
    /// The control state it saved, `[name, value]` for each register it
    /// read (records from before the control state have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<Vec<(&'static str, u64)>>,
}

/// One notifier outcome.
#[derive(Debug, Serialize)]
pub struct NotifierReport {
    /// The list it ran in.
    pub list: String,
    /// Its name (lossy UTF-8).
    pub name: String,
    /// Its priority.
    pub priority: i32,
    /// What happened.
    pub outcome: String,
    /// How long it ran (platform nanoseconds).
    pub duration_ns: u64,
}

/// The crash record in `dump`'s note, if it has one.
pub fn from_note<'d>(dump: &'d Dump<'_>) -> Option<&'d [u8]> {
    match dump {
        Dump::Elf(elf) => elf.crashkit().and_then(|c| c.crash_record),
        Dump::Kdump(parts) => parts.iter().find_map(|p| p.crashkit()?.crash_record),
        Dump::Ram(_) => None,
    }
}

/// The record from `dump`'s note, parsed, if it has one that parses.
pub fn noted<'d>(dump: &'d Dump<'_>) -> Option<RecordView<'d>> {
    from_note(dump).and_then(|bytes| RecordView::parse(bytes).ok())
}

/// The record whose CPU states `cpus` shows: the note's, else, when
/// `scan` asks, the first record found in memory that has a panic owner
/// (else the first found).
pub fn for_states(
    dump: &Dump<'_>,
    scan: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Option<Report> {
    if let Some(view) = noted(dump) {
        return Some(report(&view, "note", None));
    }
    if !scan {
        return None;
    }
    find(dump, false, progress).take_chosen()
}

/// Find the records of `dump`: its note, or memory scanned when there is
/// none, when it does not parse, or when `scan` asks. `progress(done,
/// total)` is called now and then while scanning.
pub fn find(dump: &Dump<'_>, scan: bool, progress: &mut dyn FnMut(u64, u64)) -> Records {
    let mut found = Records::default();
    if let Some(bytes) = from_note(dump) {
        found.consider("note", None, Cow::Borrowed(bytes));
    }
    if scan || found.records.is_empty() {
        scan_memory(dump, &mut found, progress);
    }
    found
}

impl Records {
    /// Take the record that speaks for the crash: the first with a panic
    /// owner, else the first (none when none parsed).
    pub fn take_chosen(&mut self) -> Option<Report> {
        let owned = self
            .records
            .iter()
            .position(|r| r.panic.owner_cpu.is_some() || r.panic.owner_unregistered);
        let pick = owned.unwrap_or(0);
        (pick < self.records.len()).then(|| self.records.swap_remove(pick))
    }

    /// Parse a candidate and keep it, as a record or as a rejection.
    fn consider(&mut self, found_by: &'static str, address: Option<u64>, bytes: Cow<'_, [u8]>) {
        match RecordView::parse(&bytes) {
            Ok(view) => {
                self.summaries.push(Summary(&view).to_string());
                self.records.push(report(&view, found_by, address));
            }
            Err(error) => self.reject(found_by, address, error.to_string()),
        }
    }

    fn reject(&mut self, found_by: &'static str, address: Option<u64>, why: String) {
        if self.rejected.len() < LISTED {
            self.rejected.push(Rejected {
                found_by,
                address,
                why,
            });
        } else {
            self.rejected_not_listed += 1;
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Places holding the magic, the first [`MOST_CANDIDATES`] kept.
#[derive(Default)]
struct Hits {
    addresses: Vec<u64>,
    beyond: u64,
}

impl Hits {
    fn push(&mut self, address: u64) {
        if self.addresses.len() < MOST_CANDIDATES {
            self.addresses.push(address);
        } else {
            self.beyond += 1;
        }
    }
}

/// Scan every page `dump` holds for the record's magic.
fn scan_memory(dump: &Dump<'_>, found: &mut Records, progress: &mut dyn FnMut(u64, u64)) {
    let magic = u64::from_le_bytes(layout::MAGIC);
    let (hits, pages) = scan_pages(dump, magic, progress);
    found.pages_scanned = Some(pages);
    found.candidates_not_examined = hits.beyond;
    for address in hits.addresses {
        match candidate(dump, address) {
            Ok(bytes) => found.consider("scan", Some(address), Cow::Owned(bytes)),
            Err(why) => found.reject("scan", Some(address), why),
        }
    }
}

/// The physical addresses of the first [`MOST_CANDIDATES`] 8-byte-aligned
/// copies of `magic` (little-endian) in the pages `dump` holds: how
/// another producer's dump (QEMU's) is searched for crashkit's structures.
pub fn scan_for(dump: &Dump<'_>, magic: u64) -> Vec<u64> {
    scan_pages(dump, magic, &mut |_, _| {}).0.addresses
}

/// Every page `dump` holds, searched for `magic`; the hits and the pages
/// read.
fn scan_pages(dump: &Dump<'_>, magic: u64, progress: &mut dyn FnMut(u64, u64)) -> (Hits, u64) {
    let mut hits = Hits::default();
    let pages = crate::scan::each_run(dump, progress, &mut |base, bytes| {
        magic_in(bytes, base, magic, &mut hits);
    });
    (hits, pages)
}

/// Push the physical address of every 8-byte-aligned copy of the magic in
/// `bytes`, which hold memory from physical address `base`.
fn magic_in(bytes: &[u8], base: u64, magic: u64, hits: &mut Hits) {
    // Skip to the first 8-byte-aligned physical address.
    let skip = ((8 - base % 8) % 8) as usize;
    let Some(aligned) = bytes.get(skip..) else {
        return;
    };
    for (index, word) in aligned.chunks_exact(8).enumerate() {
        let mut value = [0u8; 8];
        value.copy_from_slice(word);
        if u64::from_le_bytes(value) == magic {
            hits.push(base.wrapping_add(skip as u64 + index as u64 * 8));
        }
    }
}

/// The bytes of the record whose magic is at `address`: its header, then
/// as many bytes as the header says (at most [`MOST`]).
fn candidate(dump: &Dump<'_>, address: u64) -> Result<Vec<u8>, String> {
    let missing = |(at, state): (u64, PageState)| {
        format!(
            "its bytes at {at:#x} are not in the dump ({})",
            state.name()
        )
    };
    let header = rd::read_exact(dump, address, layout::HEADER_SIZE).map_err(missing)?;
    let mut size = [0u8; 4];
    size.copy_from_slice(&header[layout::header::TOTAL_SIZE..layout::header::TOTAL_SIZE + 4]);
    let size = u32::from_le_bytes(size) as usize;
    if !(layout::HEADER_SIZE..=MOST).contains(&size) {
        return Err(format!(
            "the header's size, {size} bytes, is not between {} and {MOST}",
            layout::HEADER_SIZE
        ));
    }
    rd::read_exact(dump, address, size).map_err(missing)
}

/// A decoded code's name: the variant's, or `unknown(N)`.
pub fn name<T: Debug>(decoded: Decoded<T>) -> String {
    match decoded {
        Decoded::Known(value) => format!("{value:?}"),
        Decoded::Unknown(code) => format!("unknown({code})"),
    }
}

/// What `skipped` names, in bit order; unknown bits as `bits 0x..`.
fn skipped_names(skipped: Skipped) -> Vec<String> {
    let mut names: Vec<String> = Skipped::NAMED
        .iter()
        .filter(|(bit, _)| skipped.contains(*bit))
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let known = Skipped::NAMED.iter().fold(0, |all, (bit, _)| all | bit.0);
    if skipped.0 & !known != 0 {
        names.push(format!("bits {:#x}", skipped.0 & !known));
    }
    names
}

/// Zero means "not written" for the record's timestamps.
fn stamped(ns: u64) -> Option<u64> {
    (ns != 0).then_some(ns)
}

/// Decode `view` for JSON.
fn report(view: &RecordView<'_>, found_by: &'static str, address: Option<u64>) -> Report {
    let header = view.header();
    let panic = view.panic();
    let totals = panic.shootdown();
    let message = panic.message();
    Report {
        found_by,
        address,
        version: header.version,
        size: header.total_size,
        cpu_slots: view.cpu_count(),
        notifier_slots: view.notifier_slot_count(),
        panic: PanicReport {
            phase: name(panic.phase()),
            owner_cpu: panic.owner_cpu(),
            owner_unregistered: panic.owner_unregistered(),
            message: String::from_utf8_lossy(message.as_bytes()).into_owned(),
            message_truncated: message.truncated(),
            timeline: PhaseStamp::ALL
                .iter()
                .map(|&stamp| Stamp {
                    stamp: format!("{stamp:?}"),
                    ns: stamped(panic.stamp_ns(stamp)),
                })
                .collect(),
            dump_result: name(panic.dump_result()),
            dump_detail: panic.dump_detail(),
            final_action: name(panic.final_action()),
            shootdown: totals,
            escalations: panic.escalations(),
            escalation_log: (0..layout::panic::ESCALATION_LOG_LEN)
                .filter_map(|index| panic.escalation(index))
                .map(|entry| EscalationReport {
                    phase: name(entry.phase),
                    skipped: skipped_names(entry.skipped),
                    at_ns: entry.at_ns,
                })
                .collect(),
            skipped: skipped_names(panic.skipped()),
            counters: Counters {
                second_panickers: panic.second_panickers(),
                reentries: panic.reentries(),
                qspinlock_fallbacks: panic.qspinlock_fallbacks(),
                panic_lock_breaks: panic.panic_lock_breaks(),
                notifiers_recorded: panic.notifiers_recorded(),
                notifiers_dropped: panic.notifiers_dropped(),
            },
        },
        cpus: view
            .cpus()
            .enumerate()
            .filter(|(_, slot)| slot.state() != Decoded::Known(CpuState::Absent))
            .map(|(cpu, slot)| CpuReport {
                cpu,
                state: name(slot.state()),
                stop_path: name(slot.stop_path()),
                nmis_sent: slot.nmis_sent(),
                nmi_depth: slot.nmi_depth(),
                first_nmi_ns: stamped(slot.first_nmi_ns()),
                stopped_ns: stamped(slot.stopped_ns()),
                registers: slot.saved_registers().map(|values| {
                    cpu_layout::REGISTER_NAMES
                        .iter()
                        .copied()
                        .zip(values)
                        .collect()
                }),
                control: slot.control().map(|control| {
                    let registers = cpu_layout::CONTROL_NAMES
                        .iter()
                        .copied()
                        .zip(control.registers)
                        .filter_map(|(name, value)| Some((name, value?)));
                    let selectors = control.selectors.into_iter().flat_map(|values| {
                        cpu_layout::SELECTOR_NAMES
                            .iter()
                            .copied()
                            .zip(values.map(u64::from))
                    });
                    registers.chain(selectors).collect()
                }),
            })
            .collect(),
        notifiers: view
            .notifiers()
            .map(|slot| NotifierReport {
                list: name(slot.list()),
                name: String::from_utf8_lossy(slot.name().as_bytes()).into_owned(),
                priority: slot.priority(),
                outcome: name(slot.outcome()),
                duration_ns: slot.duration_ns(),
            })
            .collect(),
        dump: view.dump().map(|dump| {
            let (started, finished) = dump.started_finished_ns();
            DumpReport {
                path: name(dump.path()),
                reason: name(dump.reason()),
                handover_error: dump.handover_error(),
                outcome: name(dump.outcome()),
                pages_written: dump.pages_written(),
                data_bytes: dump.data_bytes(),
                started_ns: stamped(started),
                finished_ns: stamped(finished),
                changed: dump
                    .changed()
                    .map(|changed| ChangedReport {
                        start: changed.start,
                        len: changed.len,
                        kind: name(changed.kind),
                        left_out: changed.left_out,
                    })
                    .collect(),
            }
        }),
        exclusions: view.exclusions().collect(),
        crash_log: view.log(),
    }
}

/// The text: where each record was found, then its report; then the
/// candidates that were not records.
pub fn render(found: &Records) -> String {
    let mut out = String::new();
    for (record, summary) in found.records.iter().zip(&found.summaries) {
        match record.address {
            Some(address) => out.push_str(&format!(
                "found by scanning memory: at physical address {address:#x}\n"
            )),
            None => out.push_str("found in the dump's crash-record note\n"),
        }
        out.push_str(summary);
        out.push('\n');
    }
    if found.records.is_empty() {
        out.push_str("no crash record");
        match found.pages_scanned {
            Some(pages) => out.push_str(&format!(
                ": none in a note, none in the {pages} pages of memory scanned\n"
            )),
            None => out.push('\n'),
        }
    }
    if let Some(pages) = found.pages_scanned
        && !found.records.is_empty()
    {
        out.push_str(&format!("({pages} pages of memory scanned)\n"));
    }
    for rejected in &found.rejected {
        match rejected.address {
            Some(address) => out.push_str(&format!(
                "not a record: the magic at {address:#x}: {}\n",
                rejected.why
            )),
            None => out.push_str(&format!("not a record: the note: {}\n", rejected.why)),
        }
    }
    if found.rejected_not_listed > 0 {
        out.push_str(&format!(
            "... and {} more candidates that are not records\n",
            found.rejected_not_listed
        ));
    }
    if found.candidates_not_examined > 0 {
        out.push_str(&format!(
            "({} more places hold the magic; only the first {MOST_CANDIDATES} were examined)\n",
            found.candidates_not_examined
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Hits, MOST_CANDIDATES, magic_in};
    use crashkit_record_format::layout;

    #[test]
    fn a_page_full_of_the_magic_keeps_only_the_first_candidates() {
        let page: Vec<u8> = layout::MAGIC.repeat(512);
        let magic = u64::from_le_bytes(layout::MAGIC);
        let mut hits = Hits::default();
        for frame in 0..4u64 {
            magic_in(&page, 0x10_0000 + frame * 4096, magic, &mut hits);
        }
        assert_eq!(hits.addresses.len(), MOST_CANDIDATES);
        assert_eq!(hits.beyond, 4 * 512 - MOST_CANDIDATES as u64);
        assert_eq!(hits.addresses[1], 0x10_0008);
        // An unaligned base: the first aligned address, and no overflow
        // at the top of the address space.
        let mut top = Hits::default();
        magic_in(&page[..24], u64::MAX - 20, magic, &mut top);
        assert!(top.addresses.iter().all(|a| a % 8 == 0));
    }
}
