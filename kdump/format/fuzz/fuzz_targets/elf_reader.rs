//! Fuzz the ELF vmcore reader: open any bytes, then use every accessor on
//! what opened (CPUs, notes, VMCOREINFO, completeness, damage) and read
//! pages where the segments and the memory map say memory is. A panic, a
//! hang or an allocation beyond the input's size is a bug.

#![no_main]

use crashkit_dump_format::elf::reader::ElfDump;
use libfuzzer_sys::fuzz_target;

/// Bounds on the work per input, so one input stays fast.
const MAX_SEGMENTS: usize = 64;
const MAX_RANGES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(dump) = ElfDump::parse(data) else {
        return;
    };
    let _ = (
        dump.producer(),
        dump.machine(),
        dump.completeness().to_string(),
    );
    for damage in dump.damage() {
        let _ = damage.to_string();
    }
    for cpu in dump.cpus() {
        let _ = (cpu.rip(), cpu.rsp(), cpu.cr3(), cpu.is_empty());
    }
    if let Some(info) = dump.vmcoreinfo() {
        let _ = (
            info.entries().count(),
            info.malformed_lines(),
            info.build_id(),
        );
        let _ = (info.number("PAGESIZE"), info.signed("NUMBER(phys_base)"));
    }
    let mut page = [0u8; 4096];
    let mut probe = |addr: u64| {
        let span = dump.classify(addr);
        assert!(span.len > 0, "empty span at {addr:#x}");
        let _ = dump.read_phys(addr, &mut page);
        let _ = dump.read_phys(addr.wrapping_sub(17), &mut page[..100]);
    };
    for segment in dump.segments().iter().take(MAX_SEGMENTS) {
        probe(segment.paddr);
        probe(segment.paddr.wrapping_add(segment.filesz));
        probe(segment.paddr.wrapping_add(segment.memsz).wrapping_sub(1));
    }
    if let Some(crashkit) = dump.crashkit() {
        let _ = crashkit.frontier(dump.segments());
        for range in crashkit.memory_map.iter().take(MAX_RANGES) {
            probe(range.start);
            probe(range.start.wrapping_add(range.len).wrapping_sub(1));
        }
    }
    probe(0);
    probe(u64::MAX);
});
