//! Fuzz the kdump-compressed reader (plain and flattened): open any bytes,
//! then use every accessor and read pages across the frame range. A panic,
//! a hang or an allocation beyond the input's size is a bug.

#![no_main]

use crashkit_dump_format::KdumpDump;
use libfuzzer_sys::fuzz_target;

/// Frames read per input, so one input stays fast.
const MAX_FRAMES: u64 = 256;

fuzz_target!(|data: &[u8]| {
    let Ok(dump) = KdumpDump::parse(data) else {
        return;
    };
    let _ = (
        dump.completeness().to_string(),
        dump.cpus().len(),
        dump.part(),
    );
    for damage in dump.damage() {
        let _ = damage.to_string();
    }
    if let Some(info) = dump.vmcoreinfo() {
        let _ = (info.entries().count(), info.number("PAGESIZE"));
    }
    let _ = dump.crashkit().map(|c| c.crash_record.map(<[u8]>::len));
    let mut page = [0u8; 4096];
    let frames = dump.frames();
    let step = (frames / MAX_FRAMES).max(1);
    for frame in (0..frames.min(MAX_FRAMES * step)).step_by(step as usize) {
        let _ = dump.classify(frame * 4096);
        let _ = dump.read_page(frame, &mut page);
    }
    let _ = dump.read_phys(u64::MAX - 10, &mut page[..100]);
});
