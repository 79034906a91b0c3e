//! Reading every page a dump holds, for the commands that search memory
//! for a structure another producer's dump has no note for: the crash
//! record (`record`), the crash log (`log`), Linux's VMCOREINFO text.

use crashkit_dump_format::{KdumpDump, PAGE_SIZE};

use crate::open::Dump;

/// Call `found(base, bytes)` for every run of memory `dump` holds (`bytes`
/// is memory from physical address `base`, whole pages but for an ELF
/// segment's end), in address order within each file; the pages read.
/// `progress(done, total)` is called now and then.
///
/// Only pages with data: excluded pages, holes and zero pages hold
/// nothing to find; lost and corrupt pages are `verify`'s to report.
pub fn each_run(
    dump: &Dump<'_>,
    progress: &mut dyn FnMut(u64, u64),
    found: &mut dyn FnMut(u64, &[u8]),
) -> u64 {
    let mut pages = 0u64;
    match dump {
        Dump::Elf(elf) => {
            let total: u64 = elf
                .segments()
                .iter()
                .map(|s| s.in_file.div_ceil(PAGE_SIZE))
                .sum();
            for segment in elf.segments() {
                let bytes = usize::try_from(segment.offset)
                    .ok()
                    .and_then(|start| {
                        let len = usize::try_from(segment.in_file).ok()?;
                        elf.bytes().get(start..start.checked_add(len)?)
                    })
                    .unwrap_or(&[]);
                found(segment.paddr, bytes);
                pages += segment.in_file.div_ceil(PAGE_SIZE);
                progress(pages, total);
            }
        }
        Dump::Kdump(parts) => {
            let total: u64 = parts.iter().map(KdumpDump::descriptor_count).sum();
            // One page, reused: the size is the format's constant.
            let mut page = vec![0u8; PAGE_SIZE as usize];
            for part in parts {
                let (first, end) = part.part();
                for frame in first..end.min(part.frames()) {
                    if part.descriptor(frame).is_err() || part.read_page(frame, &mut page).is_err()
                    {
                        continue;
                    }
                    found(frame * PAGE_SIZE, &page);
                    pages += 1;
                    if pages.is_multiple_of(4096) {
                        progress(pages, total);
                    }
                }
            }
            progress(pages, total);
        }
        Dump::Ram(bytes) => {
            let total = (bytes.len() as u64).div_ceil(PAGE_SIZE);
            // A chunk at a time, for the progress bar.
            for (index, chunk) in bytes.chunks(1 << 24).enumerate() {
                found((index as u64) << 24, chunk);
                pages += (chunk.len() as u64).div_ceil(PAGE_SIZE);
                progress(pages, total);
            }
        }
    }
    pages
}
