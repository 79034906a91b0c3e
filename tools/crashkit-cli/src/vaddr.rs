//! Virtual addresses: which page tables (an address space), the walk of
//! one address (`vtop`), and virtual reads (`rd` without `-p`).
//!
//! The tables are the dump's own: a CPU's CR3 (crashkit's control-state
//! note, QEMU's CPU-state note; `--cpu N`), or for a Linux dump by default
//! the kernel's `init_top_pgt`, located through VMCOREINFO:
//! `SYMBOL(init_top_pgt)` is its (run-time) virtual address in the kernel
//! image mapping, so its physical address is that minus
//! `__START_KERNEL_map` (0xffffffff80000000) plus `NUMBER(phys_base)` (the
//! kernel's own `__pa_symbol`); QEMU's kdump sub-header `phys_base` is not
//! used (wrong under KASLR). 5-level paging from `NUMBER(pgtable_l5_enabled)`
//! or the CPU's CR4.LA57. The walk itself is `crashkit_dump_format::paging`.

use serde::Serialize;

use crashkit_dump_format::PAGE_SIZE;
use crashkit_dump_format::paging::{
    self, Level, NO_EXECUTE, Outcome, PAGE_SIZE_BIT, Paging, TableMemory, USER, WRITABLE,
};
use crashkit_dump_format::read::PageState;

use crate::cpus;
use crate::open::{Dump, Opened};
use crate::rd::{self, Run};

/// `__START_KERNEL_map`: where x86_64 Linux maps its image.
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// CR4.LA57.
const CR4_LA57: u64 = 1 << 12;

/// An address space: the top table and the paging mode.
#[derive(Clone, Debug, Serialize)]
pub struct Space {
    /// The CR3 value (the top table's physical address, with flag bits).
    pub cr3: u64,
    /// 4 or 5.
    pub levels: u8,
    /// Where the tables come from: `cpu N`, or `init_top_pgt`.
    pub source: String,
}

impl Space {
    fn paging(&self) -> Paging {
        if self.levels == 5 {
            Paging::FiveLevel
        } else {
            Paging::FourLevel
        }
    }
}

/// No page tables to translate with.
#[derive(Debug)]
pub struct NoSpace(pub String);

impl std::fmt::Display for NoSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoSpace {}

/// The address space `cpu` asks for, else the default: a Linux dump's
/// `init_top_pgt`, else the panicking CPU's CR3, else CPU 0's.
pub fn space(dump: &Opened<'_>, cpu: Option<usize>) -> Result<Space, NoSpace> {
    // First: the panicking CPU of a Linux dump is found through these
    // tables.
    if cpu.is_none()
        && let Some(space) = linux_space(dump)
    {
        return Ok(space);
    }
    let (list, panic) = cpus::cpus_of(dump);
    let place = match cpu {
        // A number ([`cpus::number`]); one the dump lacks is refused below.
        Some(number) => cpus::place(list, number).unwrap_or(usize::MAX),
        None => list
            .iter()
            .enumerate()
            .position(|(place, c)| panic == Some(cpus::cpu_index(place, c)))
            .unwrap_or(0),
    };
    let Some(chosen) = list.get(place) else {
        return Err(NoSpace(match cpu {
            Some(asked) => format!("no CPU {asked}: the dump has {}", list.len()),
            None => "no page tables: the dump has no CPU notes and no Linux VMCOREINFO \
                     (read physical memory with -p)"
                .into(),
        }));
    };
    let cr3 = chosen.cr3().ok_or_else(|| {
        NoSpace(format!(
            "CPU {} has no CR3 in the dump (neither crashkit's control state nor \
             QEMU's CPU state){}; read physical memory with -p",
            cpus::number(list, place),
            if dump.is_linux() {
                ""
            } else {
                " and the dump has no Linux VMCOREINFO"
            }
        ))
    })?;
    let cr4 = chosen
        .control
        .and_then(|c| c.cr4)
        .or_else(|| chosen.qemu.map(|q| q.cr[4]))
        .unwrap_or(0);
    Ok(Space {
        cr3,
        levels: if cr4 & CR4_LA57 != 0 { 5 } else { 4 },
        source: format!("cpu {place}"),
    })
}

/// A Linux dump's kernel page tables, from VMCOREINFO.
fn linux_space(dump: &Opened<'_>) -> Option<Space> {
    let info = dump.vmcoreinfo()?;
    let top = info.number("SYMBOL(init_top_pgt)")?;
    let phys_base = info.signed("NUMBER(phys_base)").unwrap_or(0);
    let cr3 = top
        .wrapping_sub(START_KERNEL_MAP)
        .wrapping_add(phys_base as u64);
    Some(Space {
        cr3,
        levels: if info.number("NUMBER(pgtable_l5_enabled)") == Some(1) {
            5
        } else {
            4
        },
        source: "init_top_pgt".into(),
    })
}

/// The dump as the walk's table memory.
struct Tables<'d, 'a>(&'d Dump<'a>);

impl TableMemory for Tables<'_, '_> {
    type Error = PageState;
    fn entry(&self, phys: u64) -> Result<u64, PageState> {
        let bytes = rd::read_exact(self.0, phys, 8).map_err(|(_, state)| state)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes);
        Ok(u64::from_le_bytes(word))
    }
}

/// One entry of a walk, for `vtop`.
#[derive(Debug, Serialize)]
pub struct StepReport {
    /// `PML5E`, `PML4E`, `PDPTE`, `PDE`, `PTE`.
    pub entry: &'static str,
    /// The table's physical address.
    pub table: u64,
    /// The index in it.
    pub index: u16,
    /// The entry's value.
    pub value: u64,
    /// Its flags in words: `present`, `writable`, `user`, `large`, `nx`.
    pub flags: Vec<&'static str>,
}

/// `vtop`'s answer.
#[derive(Debug, Serialize)]
pub struct Translation {
    /// The virtual address.
    pub virt: u64,
    /// Through which tables.
    pub space: Space,
    /// The entries read.
    pub steps: Vec<StepReport>,
    /// `mapped`, `not canonical`, `not mapped`, `table not in the dump`
    /// or `malformed`.
    pub result: &'static str,
    /// The physical address, when mapped.
    pub phys: Option<u64>,
    /// The page's size, when mapped.
    pub page_size: Option<u64>,
    /// Why it is not mapped, in words.
    pub why: Option<String>,
}

/// Translate `virt` in `space`.
pub fn translate(dump: &Dump<'_>, space: &Space, virt: u64) -> Translation {
    let walk = paging::walk(&Tables(dump), space.cr3, space.paging(), virt);
    let steps = walk
        .steps()
        .map(|step| StepReport {
            entry: step.level.entry_name(),
            table: step.table,
            index: step.index,
            value: step.entry,
            flags: flags(step.entry, step.level),
        })
        .collect();
    let (result, phys, page_size, why) = match walk.outcome {
        Outcome::Mapped { phys, page_size } => ("mapped", Some(phys), Some(page_size), None),
        Outcome::NotCanonical => (
            "not canonical",
            None,
            None,
            Some(format!(
                "not a canonical address with {}-level paging",
                space.levels
            )),
        ),
        Outcome::NotPresent { level } => (
            "not mapped",
            None,
            None,
            Some(format!("{} not present", level.entry_name())),
        ),
        Outcome::Unreadable {
            level,
            entry_address,
            error,
        } => (
            "table not in the dump",
            None,
            None,
            Some(match error {
                PageState::InOtherPart => format!(
                    "the {} at {entry_address:#x} is in a page of a part not given",
                    level.entry_name()
                ),
                other => format!(
                    "the {} at {entry_address:#x} is in a page the dump has as {}",
                    level.entry_name(),
                    other.name()
                ),
            }),
        ),
        Outcome::Reserved { level } => (
            "malformed",
            None,
            None,
            Some(format!("{} sets the reserved PS bit", level.entry_name())),
        ),
    };
    Translation {
        virt,
        space: space.clone(),
        steps,
        result,
        phys,
        page_size,
        why,
    }
}

fn flags(entry: u64, level: Level) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if entry & paging::PRESENT != 0 {
        flags.push("present");
    }
    if entry & WRITABLE != 0 {
        flags.push("writable");
    }
    if entry & USER != 0 {
        flags.push("user");
    }
    if entry & PAGE_SIZE_BIT != 0 && matches!(level, Level::Pdpt | Level::Pd) {
        flags.push("large");
    }
    if entry & NO_EXECUTE != 0 {
        flags.push("nx");
    }
    flags
}

/// The text of `vtop`: the space, each entry, the result.
pub fn render(t: &Translation) -> String {
    let mut out = format!(
        "{:#018x} through {} (CR3 {:#x}, {}-level paging)\n",
        t.virt, t.space.source, t.space.cr3, t.space.levels
    );
    for step in &t.steps {
        out.push_str(&format!(
            "  {:<5} {:#014x}[{:>3}] = {:#018x}  {}\n",
            step.entry,
            step.table,
            step.index,
            step.value,
            step.flags.join(" ")
        ));
    }
    match (t.phys, t.page_size) {
        (Some(phys), Some(size)) => out.push_str(&format!(
            "  physical {phys:#x} (a {} page)\n",
            match size {
                4096 => "4 KiB".to_owned(),
                s if s == 2 << 20 => "2 MiB".to_owned(),
                s if s == 1 << 30 => "1 GiB".to_owned(),
                s => format!("{s}-byte"),
            }
        )),
        _ => out.push_str(&format!(
            "  {}: {}\n",
            t.result,
            t.why.as_deref().unwrap_or("")
        )),
    }
    out
}

/// The runs of virtual `[addr, addr + len)` in `space`: page by page, each
/// mapped page read at its physical address (its state there), each
/// unmapped one said as such. At most 16 MiB, as `rd -p`.
pub fn runs(dump: &Dump<'_>, space: &Space, addr: u64, len: u64) -> Result<Vec<Run>, rd::BadRange> {
    rd::check_len(len)?;
    let end = addr
        .checked_add(len)
        .ok_or_else(|| rd::BadRange(format!("{addr:#x} + {len:#x} is past the end of memory")))?;
    let mut runs: Vec<Run> = Vec::new();
    let mut at = addr;
    while at < end {
        let n = (PAGE_SIZE - at % PAGE_SIZE).min(end - at);
        let t = translate(dump, space, at);
        let pieces = match t.phys {
            Some(phys) => {
                let mut pieces = rd::runs(dump, phys, n)?;
                for piece in &mut pieces {
                    piece.phys = Some(piece.start);
                    piece.start = at + (piece.start - phys);
                }
                pieces
            }
            None => vec![Run {
                start: at,
                len: n,
                state: match t.result {
                    "not mapped" | "not canonical" => "unmapped",
                    "table not in the dump" => "table-missing",
                    _ => "table-malformed",
                },
                hex: None,
                bytes: Vec::new(),
                phys: None,
                why: t.why,
            }],
        };
        for piece in pieces {
            rd::push_merged(&mut runs, piece);
        }
        at += n;
    }
    Ok(runs)
}

/// Read `len` bytes at virtual `addr`, all of which must be mapped and in
/// the dump; else what stopped the read, in words.
pub fn read(dump: &Dump<'_>, space: &Space, addr: u64, len: usize) -> Result<Vec<u8>, String> {
    let pages = read_pages(dump, space, addr, len as u64);
    match pages.get(0, len as u64) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(pages.why(0)),
    }
}

/// The 8-byte little-endian word at virtual `addr`.
pub fn read_u64(dump: &Dump<'_>, space: &Space, addr: u64) -> Result<u64, String> {
    let bytes = read(dump, space, addr, 8)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes);
    Ok(u64::from_le_bytes(word))
}

/// Virtual memory read in bulk: the bytes, zero where the dump does not
/// have them, and which ranges those are.
#[derive(Debug)]
pub struct Pages {
    addr: u64,
    bytes: Vec<u8>,
    /// Missing ranges as offsets `[start, end)` into `bytes`, and why.
    missing: Vec<(u64, u64, String)>,
}

impl Pages {
    /// `len` bytes at `offset`, if the dump has them all.
    pub fn get(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if self
            .missing
            .iter()
            .any(|&(start, stop, _)| start < end && offset < stop)
        {
            return None;
        }
        self.bytes
            .get(usize::try_from(offset).ok()?..usize::try_from(end).ok()?)
    }

    /// Why the bytes at `offset` are missing (or are past the end): where
    /// the missing run starts and what the walk or the dump said.
    pub fn why(&self, offset: u64) -> String {
        self.missing
            .iter()
            .find(|&&(start, stop, _)| (start..stop).contains(&offset))
            .map_or_else(
                || format!("past the {} bytes read", self.bytes.len()),
                |(start, stop, why)| {
                    format!(
                        "at {:#x} ({} bytes): {why}",
                        self.addr.wrapping_add(*start),
                        stop - start
                    )
                },
            )
    }
}

/// The most [`read_pages`] reads at once.
pub const MOST_PAGES_BYTES: u64 = 512 << 20;

/// Read `len` bytes (at most [`MOST_PAGES_BYTES`]) at virtual `addr`, page
/// by page; a page that is not mapped or not in the dump is left zero and
/// recorded as missing, with where the walk or the read stopped.
pub fn read_pages(dump: &Dump<'_>, space: &Space, addr: u64, len: u64) -> Pages {
    let len = len.min(MOST_PAGES_BYTES);
    let mut pages = Pages {
        addr,
        bytes: vec![0u8; len as usize],
        missing: Vec::new(),
    };
    let mut done = 0u64;
    while done < len {
        let at = addr.wrapping_add(done);
        let n = (PAGE_SIZE - at % PAGE_SIZE).min(len - done);
        let t = translate(dump, space, at);
        let failure = match t.phys {
            Some(phys) => {
                // In bounds: `done + n <= len`, the buffer's length (`n` is
                // at most `len - done`), and `len` is capped above.
                let slice = &mut pages.bytes[done as usize..(done + n) as usize];
                match rd::read_exact(dump, phys, slice.len()) {
                    Ok(bytes) => {
                        slice.copy_from_slice(&bytes);
                        None
                    }
                    Err((_, state)) => Some(format!("the dump has it as {}", state.name())),
                }
            }
            None => Some(t.why.unwrap_or_else(|| t.result.to_owned())),
        };
        if let Some(why) = failure {
            match pages.missing.last_mut() {
                Some(last) if last.1 == done && last.2 == why => last.1 = done + n,
                _ => pages.missing.push((done, done + n, why)),
            }
        }
        done += n;
    }
    pages
}
