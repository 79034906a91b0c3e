//! `crashkit verify DUMP`: is the dump whole and readable? Structure (what
//! the reader found wrong opening it), completeness, and every page: for a
//! kdump-compressed dump every dumpable frame's descriptor must be in the
//! file and its data must decode to exactly one page; for an ELF vmcore
//! every segment must be in the file. A summary, then each problem with its
//! address and file offset; exit code 1 when there is any.

use serde::Serialize;

use crashkit_dump_format::read::{Completeness, PageState};
use crashkit_dump_format::{KdumpDump, PAGE_SIZE};

use crate::open::Dump;

/// Problems listed one by one; beyond this many, counted only.
const LISTED: usize = 100;

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    /// No problem found.
    pub ok: bool,
    /// The completeness the dump claims or shows.
    pub completeness: String,
    /// What the reader found wrong while opening.
    pub damage: Vec<String>,
    /// Pages checked (kdump-compressed: dumpable frames decoded; ELF: pages
    /// of the segments).
    pub pages_checked: u64,
    /// Pages that read back whole.
    pub pages_ok: u64,
    /// Pages that do not decode to exactly one page.
    pub pages_corrupt: u64,
    /// Pages meant to be there and missing.
    pub pages_lost: u64,
    /// Every problem, up to [`LISTED`].
    pub problems: Vec<Problem>,
    /// Problems beyond those listed.
    pub problems_not_listed: u64,
}

/// One problem.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// The physical address concerned, if a page.
    pub address: Option<u64>,
    /// The file offset concerned (a descriptor's data), if known.
    pub file_offset: Option<u64>,
    /// What is wrong.
    pub what: String,
}

impl Verdict {
    fn problem(&mut self, address: Option<u64>, file_offset: Option<u64>, what: String) {
        if self.problems.len() < LISTED {
            self.problems.push(Problem {
                address,
                file_offset,
                what,
            });
        } else {
            self.problems_not_listed += 1;
        }
    }
}

/// Check `dump`; `progress(done, total)` is called now and then.
pub fn verify(dump: &Dump<'_>, progress: &mut dyn FnMut(u64, u64)) -> Verdict {
    let mut verdict = Verdict::default();
    let (completeness, damage) = dump.health();
    verdict.completeness = completeness.to_string();
    if let Completeness::Incomplete(_) = completeness {
        verdict.problem(None, None, format!("the dump is {completeness}"));
    }
    for what in &damage {
        verdict.problem(None, None, what.clone());
    }
    verdict.damage = damage;
    match dump {
        Dump::Elf(elf) => {
            let counts = elf.page_counts();
            verdict.pages_checked = counts.present + counts.lost;
            verdict.pages_ok = counts.present;
            verdict.pages_lost = counts.lost;
            for segment in elf.segments() {
                if segment.in_file < segment.filesz {
                    verdict.problem(
                        Some(segment.paddr + segment.in_file),
                        Some(segment.offset + segment.in_file),
                        format!(
                            "segment {} is cut: {} of its {} bytes are in the file",
                            segment.index, segment.in_file, segment.filesz
                        ),
                    );
                }
            }
            progress(verdict.pages_checked, verdict.pages_checked);
        }
        Dump::Kdump(parts) => {
            let total: u64 = parts.iter().map(|p| p.descriptor_count()).sum();
            let mut done = 0u64;
            let mut page = vec![0u8; PAGE_SIZE as usize];
            for part in parts {
                check_part(part, &mut verdict, &mut page, &mut |n| {
                    done += n;
                    progress(done, total);
                });
            }
        }
        // A raw image has no structure to check: every page is there as
        // the file holds it (the CLI opens one only for `record`, `cpus`
        // and `rd -p`).
        Dump::Ram(bytes) => {
            let pages = (bytes.len() as u64).div_ceil(PAGE_SIZE);
            verdict.pages_checked = pages;
            verdict.pages_ok = pages;
            progress(pages, pages);
        }
    }
    verdict.ok = verdict.problems.is_empty();
    verdict
}

/// Decode every dumpable frame `part` holds.
fn check_part(
    part: &KdumpDump<'_>,
    verdict: &mut Verdict,
    page: &mut [u8],
    progress: &mut dyn FnMut(u64),
) {
    // The descriptors against the layout (data in the metadata, data over
    // other data): the whole table, no page data.
    for damage in part.data_layout_damage() {
        verdict.problem(None, None, damage.to_string());
    }
    let (first, end) = part.part();
    let end = end.min(part.frames());
    let mut since = 0u64;
    for frame in first..end {
        let address = frame * PAGE_SIZE;
        let descriptor = match part.descriptor(frame) {
            Ok(descriptor) => descriptor,
            Err(PageState::Lost) => {
                verdict.pages_checked += 1;
                verdict.pages_lost += 1;
                verdict.problem(Some(address), None, "lost: no descriptor written".into());
                continue;
            }
            // Holes and excluded frames have no descriptor to check.
            Err(_) => continue,
        };
        verdict.pages_checked += 1;
        since += 1;
        if since == 4096 {
            progress(since);
            since = 0;
        }
        match part.read_page(frame, page) {
            Ok(()) => verdict.pages_ok += 1,
            Err(problem) => {
                let what = match (problem.state, problem.decode) {
                    (PageState::Corrupt, Some(why)) => {
                        verdict.pages_corrupt += 1;
                        format!(
                            "corrupt: {why} ({} bytes, flags {:#x})",
                            descriptor.size, descriptor.flags
                        )
                    }
                    (state, _) => {
                        verdict.pages_lost += 1;
                        format!(
                            "{}: its {} bytes are not in the file",
                            state.name(),
                            descriptor.size
                        )
                    }
                };
                verdict.problem(Some(address), Some(descriptor.offset), what);
            }
        }
    }
    progress(since);
}

/// The text: a summary, then the problems.
pub fn render(verdict: &Verdict) -> String {
    let mut out = format!(
        "{:>9}: {}\n{:>9}: {} checked, {} whole, {} corrupt, {} lost\n{:>9}: {}\n",
        "COMPLETE",
        verdict.completeness,
        "PAGES",
        verdict.pages_checked,
        verdict.pages_ok,
        verdict.pages_corrupt,
        verdict.pages_lost,
        "RESULT",
        if verdict.ok {
            "ok".to_owned()
        } else {
            format!(
                "{} problems",
                verdict.problems.len() as u64 + verdict.problems_not_listed
            )
        }
    );
    for problem in &verdict.problems {
        let mut place = String::new();
        if let Some(address) = problem.address {
            place.push_str(&format!("page {address:#x}"));
        }
        if let Some(offset) = problem.file_offset {
            if !place.is_empty() {
                place.push_str(", ");
            }
            place.push_str(&format!("at offset {offset}"));
        }
        if place.is_empty() {
            out.push_str(&format!("  {}\n", problem.what));
        } else {
            out.push_str(&format!("  {place}: {}\n", problem.what));
        }
    }
    if verdict.problems_not_listed > 0 {
        out.push_str(&format!("  ... and {} more\n", verdict.problems_not_listed));
    }
    out
}
