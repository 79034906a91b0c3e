//! Which VMCOREINFO the commands use: the dump's note when it is sound,
//! else Linux's own VMCOREINFO text found in memory.
//!
//! QEMU writes VMCOREINFO only with `-device vmcoreinfo` and a guest
//! driver; hypervisors have written wrong ones. But Linux builds the text
//! at boot in a page of its own (`OSRELEASE=...\n...`), so a page that
//! starts with `OSRELEASE=` is a candidate. Either text is checked
//! against the memory it describes before it is used ([`check`]): every
//! line well-formed, and Linux's `init_uts_ns`, read where the text says
//! the kernel image is (`SYMBOL(init_uts_ns)` minus `__START_KERNEL_map`
//! plus `NUMBER(phys_base)`), must hold the same release as `OSRELEASE`.
//! That pins the addresses, the KASLR offset and `phys_base` at once.

use serde::Serialize;

use crashkit_dump_format::PAGE_SIZE;
use crashkit_dump_format::vmcoreinfo::VmcoreInfo;

use crate::open::Dump;
use crate::rd;
use crate::symbols::START_KERNEL_MAP;

/// `struct new_utsname`: six fields of 65 bytes; `release` is the third.
const UTS_FIELD: u64 = 65;
const UTS_RELEASE: u64 = 2 * UTS_FIELD;
/// The most candidate pages examined (a hostile dump full of them).
const MOST_CANDIDATES: usize = 64;

/// Where the VMCOREINFO in use came from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Source {
    /// `note`, `scan` (found in memory), or `none`.
    pub found_by: &'static str,
    /// For a scan: the physical address of the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u64>,
    /// Why the note was not used (absent when it was, or there was none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_problem: Option<String>,
    /// Pages scanned (absent when memory was not scanned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages_scanned: Option<u64>,
}

/// The VMCOREINFO chosen and where from.
#[derive(Debug)]
pub struct Chosen {
    /// The text, if any was found.
    pub text: Option<Vec<u8>>,
    /// Where it came from.
    pub source: Source,
}

/// Whether `text` describes the memory of `dump`: no malformed line, an
/// `OSRELEASE`, and for Linux (`SYMBOL(init_uts_ns)`) the release in
/// memory equal to it. `Ok(false)` when the release cannot be read (the
/// page is not in the dump): not contradicted, not confirmed.
pub fn check(dump: &Dump<'_>, text: &[u8]) -> Result<bool, String> {
    let info = VmcoreInfo::new(text);
    if info.malformed_lines() > 0 {
        return Err(format!("{} malformed lines", info.malformed_lines()));
    }
    let release = info.get("OSRELEASE").ok_or("no OSRELEASE line")?;
    let Some(uts) = info.number("SYMBOL(init_uts_ns)") else {
        return Ok(false);
    };
    if uts < START_KERNEL_MAP {
        return Err(format!(
            "SYMBOL(init_uts_ns) {uts:#x} is not in the kernel image"
        ));
    }
    let name = info.number("OFFSET(uts_namespace.name)").unwrap_or(0);
    let phys_base = info.number("NUMBER(phys_base)").unwrap_or(0);
    let at = uts
        .wrapping_sub(START_KERNEL_MAP)
        .wrapping_add(phys_base)
        .wrapping_add(name)
        .wrapping_add(UTS_RELEASE);
    let Ok(bytes) = rd::read_exact(dump, at, UTS_FIELD as usize) else {
        return Ok(false);
    };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if &bytes[..end] == release.as_bytes() {
        Ok(true)
    } else {
        Err(format!(
            "the kernel's utsname at physical {at:#x} says release {:?}, OSRELEASE {release:?}",
            String::from_utf8_lossy(&bytes[..end])
        ))
    }
}

/// Choose the VMCOREINFO of `dump`: its note, unless it fails [`check`];
/// then a page of memory that starts with `OSRELEASE=` and passes it
/// (confirmed by the utsname, for a scan).
pub fn choose(dump: &Dump<'_>, note: Option<Vec<u8>>) -> Chosen {
    let mut source = Source {
        found_by: "none",
        ..Source::default()
    };
    if let Some(text) = note {
        match check(dump, &text) {
            Ok(_) => {
                source.found_by = "note";
                return Chosen {
                    text: Some(text),
                    source,
                };
            }
            Err(why) => source.note_problem = Some(format!("the note's VMCOREINFO: {why}")),
        }
    }
    let mut candidates = Vec::new();
    let pages = crate::scan::each_run(dump, &mut |_, _| {}, &mut |base, bytes| {
        let skip = ((PAGE_SIZE - base % PAGE_SIZE) % PAGE_SIZE) as usize;
        let Some(aligned) = bytes.get(skip..) else {
            return;
        };
        for (index, page) in aligned.chunks(PAGE_SIZE as usize).enumerate() {
            if page.starts_with(b"OSRELEASE=") && candidates.len() < MOST_CANDIDATES {
                let end = page.iter().position(|&b| b == 0).unwrap_or(page.len());
                let at = base + skip as u64 + index as u64 * PAGE_SIZE;
                candidates.push((at, page[..end].to_vec()));
            }
        }
    });
    source.pages_scanned = Some(pages);
    for (address, text) in candidates {
        if let Ok(true) = check(dump, &text) {
            source.found_by = "scan";
            source.address = Some(address);
            return Chosen {
                text: Some(text),
                source,
            };
        }
    }
    Chosen { text: None, source }
}

/// The text of a source for `info`: `note`, or where the scan found it.
pub fn describe(source: &Source) -> String {
    let scanned = source
        .pages_scanned
        .map_or(String::new(), |pages| format!(", {pages} pages scanned"));
    let problem = source
        .note_problem
        .as_ref()
        .map_or(String::new(), |why| format!(" ({why})"));
    match source.found_by {
        "note" => "the dump's note".into(),
        "scan" => format!(
            "found by scanning memory: Linux's own text at physical {:#x}{problem}{scanned}",
            source.address.unwrap_or(0)
        ),
        _ => format!(
            "none{problem}: no note{}, and no page of memory holds Linux's own text{scanned}",
            if source.note_problem.is_some() {
                " that can be used"
            } else {
                ""
            }
        ),
    }
}
