//! loom model of [`Capture`]: one CPU arms while another panics and reads,
//! and a second arm races the first. Every interleaving: the reader sees
//! nothing or the whole `Ready`, never a torn one, and exactly one arm wins.
//! Run by `cargo xtask test` with `--cfg loom` (see tools/xtask).

#![cfg(loom)]

use crashkit_dump_format::PhysRange;
use crashkit_kdump_handover::{Capture, Ready};
use loom::sync::Arc;
use loom::thread;

fn ready(tag: u64) -> Ready {
    // A `Ready` whose every field carries `tag`: built through the public
    // path would need a loaded image; the fields are plain data, so one
    // made by `prepare` in the other tests and altered here is enough.
    let mut r = template();
    r.reservation_virt = tag << 12;
    r.block = tag;
    r.page_tables = tag;
    r.stack_top = tag;
    r.trampoline_virt = tag;
    r.control_crc = tag as u32;
    r
}

fn template() -> Ready {
    use crashkit_kdump_handover::*;
    // The smallest image and reservation `prepare` accepts.
    let reservation = PhysRange::new(0x10_0000, 0x2_0000);
    let mut elf = vec![0u8; 0x2000];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[6] = 1;
    elf[16] = 2;
    elf[18] = 62;
    elf[20] = 1;
    elf[24..32].copy_from_slice(&0x10_0000u64.to_le_bytes());
    elf[32] = 64;
    elf[52] = 64;
    elf[54] = 56;
    elf[56] = 1;
    elf[64] = 1;
    elf[72..80].copy_from_slice(&0x1000u64.to_le_bytes());
    elf[80..88].copy_from_slice(&0x10_0000u64.to_le_bytes());
    elf[88..96].copy_from_slice(&0x10_0000u64.to_le_bytes());
    elf[96..104].copy_from_slice(&0x1000u64.to_le_bytes());
    elf[104..112].copy_from_slice(&0x1000u64.to_le_bytes());
    let image = crashkit_kdump_load::CaptureImage::check(&elf, reservation, &[]).unwrap();
    let mut bytes = vec![0u8; reservation.len as usize];
    let loaded = crashkit_kdump_load::load(&image, &mut bytes).unwrap();
    let setup = Setup {
        record: PhysRange::new(0x1000, 0x1000),
        memory_map: &[],
        format: DumpFormat::KdumpLzo,
        level: 0,
        after: AfterDump::Halt,
        device: Device::VirtioBlkPci {
            address: None,
            ecam: None,
        },
        vmcoreinfo: b"",
        direct_map: None,
        kernel_image: None,
        boot_id: 0,
    };
    prepare(&loaded, &setup, &mut bytes, reservation.start).unwrap()
}

#[test]
fn a_reader_sees_nothing_or_the_whole_ready_and_one_arm_wins() {
    let first = ready(1);
    let second = ready(2);
    loom::model(move || {
        let slot = Arc::new(Capture::new());
        let armer = {
            let slot = Arc::clone(&slot);
            // SAFETY: never handed over (a model).
            thread::spawn(move || unsafe { slot.arm(first) }.is_ok())
        };
        let rival = {
            let slot = Arc::clone(&slot);
            // SAFETY: as above.
            thread::spawn(move || unsafe { slot.arm(second) }.is_ok())
        };
        let seen = slot.ready();
        assert!(seen.is_none() || seen == Some(first) || seen == Some(second));
        let won = [armer.join().unwrap(), rival.join().unwrap()];
        assert_eq!(
            won.iter().filter(|&&w| w).count(),
            1,
            "exactly one arm wins"
        );
        let winner = if won[0] { first } else { second };
        if let Some(seen) = seen {
            assert_eq!(seen, winner);
        }
        assert_eq!(slot.ready(), Some(winner));
    });
}
