//! The hand-over prepared at load time, read back as the capture kernel
//! reads it: the block field by field, the memory map, VMCOREINFO, the page
//! tables walked by a walker written here from the SDM (not the format
//! crate's), the trampoline's bytes disassembled by objdump, and the
//! crash-time check against damage.

use std::process::Command;

use crashkit_dump_format::PhysRange;
use crashkit_kdump_handover::block::{BLOCK_LEN, offset};
use crashkit_kdump_handover::{
    AfterDump, BlockError, CONTROL_LEN, Capture, CheckError, Device, DumpFormat, HandOver,
    KernelImage, PciAddress, PrepareError, Ready, Setup, TRAMPOLINE, check, memory_map, prepare,
};
use crashkit_kdump_load::{CaptureImage, Loaded, load};

const PAGE: u64 = 4096;
/// A 4 MiB reservation at 64 MiB, as the test kernel's.
const RESERVATION: PhysRange = PhysRange::new(0x400_0000, 0x40_0000);
const KERNEL: PhysRange = PhysRange::new(0x10_0000, 0x40_0000);
const RECORD: PhysRange = PhysRange::new(0x20_3000, 0x2000);
const MEMORY: [PhysRange; 2] = [
    PhysRange::new(0, 0x9f000),
    PhysRange::new(0x10_0000, 0x7f0_0000),
];
const VMCOREINFO: &[u8] = b"OSRELEASE=test\nPAGESIZE=4096\n";

/// An ELF64 x86_64 executable with one `PT_LOAD` of `filesz` bytes
/// (memory `memsz`) at `paddr`, entry at its start (gABI offsets).
fn image(paddr: u64, filesz: u64, memsz: u64) -> Vec<u8> {
    let mut b: Vec<u8> = (0..0x1000 + filesz as usize)
        .map(|i| (i % 253) as u8)
        .collect();
    b[..120].fill(0);
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&paddr.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
    b[ph + 4..ph + 8].copy_from_slice(&7u32.to_le_bytes());
    b[ph + 8..ph + 16].copy_from_slice(&0x1000u64.to_le_bytes());
    b[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
    b[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
    b[ph + 32..ph + 40].copy_from_slice(&filesz.to_le_bytes());
    b[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
    b
}

fn setup() -> Setup<'static> {
    Setup {
        record: RECORD,
        memory_map: &MEMORY,
        format: DumpFormat::KdumpLzo,
        level: 0,
        after: AfterDump::Reset,
        device: Device::VirtioBlkPci {
            address: Some(PciAddress {
                segment: 0,
                bus: 0,
                device: 5,
                function: 0,
            }),
            ecam: None,
        },
        vmcoreinfo: VMCOREINFO,
        direct_map: None,
        kernel_image: Some(KernelImage {
            phys: 0x10_0000,
            virt: 0x10_0000,
            len: 0x40_0000,
        }),
        boot_id: 0x1234_5678_9abc_def0,
    }
}

/// The reservation's bytes with an image loaded and the control area
/// prepared, mapped at `virt`.
fn prepared(virt: u64) -> (Vec<u8>, Loaded, Ready) {
    let bytes = image(RESERVATION.start, 0x3000, 0x8000);
    let checked = CaptureImage::check(&bytes, RESERVATION, &[KERNEL]).unwrap();
    let mut reservation = vec![0xAAu8; RESERVATION.len as usize];
    let loaded = load(&checked, &mut reservation).unwrap();
    let ready = prepare(&loaded, &setup(), &mut reservation, virt).unwrap();
    (reservation, loaded, ready)
}

fn at(phys: u64) -> usize {
    (phys - RESERVATION.start) as usize
}

#[test]
fn the_block_reads_back_with_every_field() {
    let (reservation, loaded, ready) = prepared(RESERVATION.start);
    let control = PhysRange::new(
        RESERVATION.start + RESERVATION.len - CONTROL_LEN,
        CONTROL_LEN,
    );
    assert_eq!(ready.control(), control);
    assert_eq!(
        ready.block, control.start,
        "the block is the control area's first page"
    );
    let block = HandOver::decode(&reservation[at(ready.block)..]).unwrap();
    assert_eq!(block.reservation, RESERVATION);
    assert_eq!(block.control, control);
    assert_eq!(block.record, RECORD);
    assert_eq!(block.format, DumpFormat::KdumpLzo);
    assert_eq!(block.after, AfterDump::Reset);
    assert_eq!(block.device, setup().device);
    assert_eq!(block.entry, RESERVATION.start);
    assert_eq!(block.digest, loaded.digest);
    assert_eq!(block.boot_id, 0x1234_5678_9abc_def0);
    assert_eq!(block.kernel_image, setup().kernel_image);
    assert_eq!(block.direct_map, None);
    let info = &reservation[at(block.vmcoreinfo.start)..][..block.vmcoreinfo.len as usize];
    assert_eq!(info, VMCOREINFO);
    let mut ranges = [PhysRange::default(); 256];
    let count = memory_map::read(
        &reservation[at(block.memory_map)..],
        block.memory_map_count as usize,
        &mut ranges,
    )
    .unwrap();
    assert_eq!(&ranges[..count], &MEMORY);
    // The stack is the control area's last 16 KiB, aligned.
    assert_eq!(ready.stack_top, control.start + CONTROL_LEN);
    assert_eq!(ready.stack_top % 16, 0);
    // Fields at the offsets docs/kdump.md gives, read raw.
    let raw = &reservation[at(ready.block)..][..BLOCK_LEN];
    assert_eq!(&raw[0..8], b"CKHANDOV");
    assert_eq!(u32::from_le_bytes(raw[8..12].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(raw[12..16].try_into().unwrap()), 256);
    let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap());
    assert_eq!(word(24), RESERVATION.start);
    assert_eq!(word(32), RESERVATION.len);
    assert_eq!(word(56), RECORD.start);
    assert_eq!(word(64), RECORD.len);
    assert_eq!(word(172), RESERVATION.start, "entry");
    assert_eq!(raw[103], 5, "PCI device");
    assert_eq!(&raw[180..212], &loaded.digest);
}

/// A 4-level walk written from the SDM (vol. 3A 4.5): PML4 index bits
/// 47:39, PDPT 38:30, PD 29:21 (PS bit 7 set: a 2 MiB page, bits 51:21),
/// PT 20:12; an entry is present if bit 0 is set; addresses bits 51:12.
fn walk(reservation: &[u8], cr3: u64, virt: u64) -> Option<u64> {
    let read = |table: u64, index: u64| -> Option<u64> {
        let phys = table + index * 8;
        if phys < RESERVATION.start || phys + 8 > RESERVATION.start + RESERVATION.len {
            return None;
        }
        let at = at(phys);
        Some(u64::from_le_bytes(
            reservation[at..at + 8].try_into().unwrap(),
        ))
    };
    let mask = 0x000f_ffff_ffff_f000u64;
    let pml4e = read(cr3 & mask, (virt >> 39) & 511)?;
    if pml4e & 1 == 0 {
        return None;
    }
    let pdpte = read(pml4e & mask, (virt >> 30) & 511)?;
    if pdpte & 1 == 0 || pdpte & 0x80 != 0 {
        return None;
    }
    let pde = read(pdpte & mask, (virt >> 21) & 511)?;
    if pde & 1 == 0 {
        return None;
    }
    if pde & 0x80 != 0 {
        assert_eq!(pde & 2, 2, "writable");
        return Some((pde & 0x000f_ffff_ffe0_0000) | (virt & 0x1f_ffff));
    }
    let pte = read(pde & mask, (virt >> 12) & 511)?;
    (pte & 1 != 0).then_some((pte & mask) | (virt & 0xfff))
}

#[test]
fn the_page_tables_map_the_reservation_and_the_trampoline_where_the_kernel_jumps() {
    for virt in [
        RESERVATION.start,
        0xffff_8000_0400_0000,
        0xffff_ffff_8000_0000,
    ] {
        let (reservation, _, ready) = prepared(virt);
        for page in (RESERVATION.start..RESERVATION.start + RESERVATION.len).step_by(PAGE as usize)
        {
            assert_eq!(
                walk(&reservation, ready.page_tables, page + 8),
                Some(page + 8),
                "virt {virt:#x}: identity page {page:#x}"
            );
        }
        let trampoline = ready.control().start + 3 * PAGE;
        assert_eq!(
            ready.trampoline_virt,
            virt + (trampoline - RESERVATION.start)
        );
        for offset in [0, 11, 4095] {
            assert_eq!(
                walk(
                    &reservation,
                    ready.page_tables,
                    ready.trampoline_virt + offset
                ),
                Some(trampoline + offset),
                "virt {virt:#x}: the trampoline at its kernel address"
            );
        }
        assert_eq!(&reservation[at(trampoline)..][..12], &TRAMPOLINE);
        // Nothing beyond the reservation's 2 MiB regions: not the record,
        // not the crashed kernel.
        for outside in [RECORD.start, KERNEL.start, RESERVATION.start + 0x60_0000, 0] {
            assert_eq!(
                walk(&reservation, ready.page_tables, outside),
                None,
                "{outside:#x}"
            );
        }
    }
}

#[test]
fn the_trampoline_is_what_objdump_reads() {
    let path = std::env::temp_dir().join(format!("crashkit-trampoline-{}", std::process::id()));
    std::fs::write(&path, TRAMPOLINE).unwrap();
    let output = Command::new("objdump")
        .args(["-D", "-b", "binary", "-m", "i386:x86-64"])
        .arg(&path)
        .output()
        .expect("objdump (binutils) runs");
    std::fs::remove_file(&path).ok();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let instructions: Vec<String> = text
        .lines()
        .filter_map(|line| line.split('\t').nth(2))
        .map(|ins| ins.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        instructions,
        [
            "mov %rsi,%cr3",
            "mov %rcx,%rsp",
            "xor %ebp,%ebp",
            "jmp *%rdx",
            "ud2"
        ],
        "{text}"
    );
}

#[test]
fn the_crash_check_finds_damage_to_the_image_or_control_area_but_not_the_stack() {
    let (reservation, _, ready) = prepared(RESERVATION.start);
    assert_eq!(check(&ready, &reservation), Ok(()));
    let control = at(ready.control().start);
    let cases = [
        (at(RESERVATION.start) + 0x10, Err(CheckError::ImageChanged)),
        (
            at(RESERVATION.start) + 0x7fff,
            Err(CheckError::ImageChanged),
        ),
        (control + 20, Err(CheckError::ControlChanged)),
        (control + 4096 + 3, Err(CheckError::ControlChanged)),
        (control + 3 * 4096 + 1, Err(CheckError::ControlChanged)),
        (control + 4 * 4096, Err(CheckError::ControlChanged)),
        (control + 12 * 4096 - 1, Err(CheckError::ControlChanged)),
        (control + 12 * 4096, Ok(())),
        (control + CONTROL_LEN as usize - 1, Ok(())),
        // Outside the image and the control area: no one's business.
        (at(RESERVATION.start) + 0x10_0000, Ok(())),
    ];
    for (byte, expected) in cases {
        let mut damaged = reservation.clone();
        damaged[byte] ^= 0x40;
        assert_eq!(check(&ready, &damaged), expected, "byte {byte:#x}");
    }
    assert_eq!(
        check(&ready, &reservation[1..]),
        Err(CheckError::BadMapping)
    );
}

/// Re-checksum a block after a field was changed.
fn resum(block: &mut [u8]) {
    block[16..20].fill(0);
    let sum = crashkit_dump_format::crc32c::checksum(&block[..BLOCK_LEN]);
    block[16..20].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn every_damaged_block_is_refused_with_the_field_named() {
    let (reservation, _, ready) = prepared(RESERVATION.start);
    let good: Vec<u8> = reservation[at(ready.block)..][..BLOCK_LEN].to_vec();
    // Any flipped bit fails (the checksum, or the magic first).
    for byte in 0..BLOCK_LEN {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[byte] ^= bit;
            assert!(HandOver::decode(&bad).is_err(), "byte {byte} bit {bit:#x}");
        }
    }
    assert_eq!(HandOver::decode(&good[..255]), Err(BlockError::Short));
    // Fields out of range with a valid checksum.
    let put = |at: usize, bytes: &[u8]| {
        let mut bad = good.clone();
        bad[at..at + bytes.len()].copy_from_slice(bytes);
        resum(&mut bad);
        HandOver::decode(&bad)
    };
    assert_eq!(
        put(offset::VERSION, &2u32.to_le_bytes()),
        Err(BlockError::UnknownVersion(2))
    );
    assert_eq!(
        put(offset::SIZE, &512u32.to_le_bytes()),
        Err(BlockError::BadSize(512))
    );
    assert_eq!(
        put(offset::FLAGS, &[1]),
        Err(BlockError::ReservedNotZero { offset: 20 })
    );
    assert_eq!(
        put(255, &[1]),
        Err(BlockError::ReservedNotZero { offset: 255 })
    );
    assert_eq!(
        put(offset::RESERVATION, &[1]),
        Err(BlockError::BadReservation)
    );
    assert_eq!(
        put(offset::RESERVATION + 8, &0u64.to_le_bytes()),
        Err(BlockError::BadReservation)
    );
    assert_eq!(
        put(offset::CONTROL, &0x100_0000u64.to_le_bytes()),
        Err(BlockError::BadControl)
    );
    assert_eq!(
        put(offset::RECORD, &RESERVATION.start.to_le_bytes()),
        Err(BlockError::BadRecord)
    );
    assert_eq!(
        put(offset::RECORD + 8, &0u64.to_le_bytes()),
        Err(BlockError::BadRecord)
    );
    assert_eq!(
        put(offset::RECORD, &u64::MAX.to_le_bytes()),
        Err(BlockError::BadRecord)
    );
    assert_eq!(
        put(offset::MEMORY_MAP + 8, &257u32.to_le_bytes()),
        Err(BlockError::BadMemoryMap)
    );
    assert_eq!(
        put(offset::MEMORY_MAP, &0u64.to_le_bytes()),
        Err(BlockError::BadMemoryMap)
    );
    assert_eq!(
        put(offset::FORMAT, &9u32.to_le_bytes()),
        Err(BlockError::BadFormat { code: 9, level: 0 })
    );
    assert_eq!(
        put(offset::LEVEL, &3u32.to_le_bytes()),
        Err(BlockError::BadFormat { code: 1, level: 3 })
    );
    assert_eq!(
        put(offset::AFTER, &0u32.to_le_bytes()),
        Err(BlockError::BadAfter(0))
    );
    assert_eq!(
        put(offset::DEVICE_KIND, &7u32.to_le_bytes()),
        Err(BlockError::BadDevice)
    );
    assert_eq!(
        put(offset::DEVICE_PCI + 3, &[32]),
        Err(BlockError::BadDevice)
    );
    assert_eq!(
        put(offset::DEVICE_PCI + 5, &[1]),
        Err(BlockError::BadDevice),
        "any with an address"
    );
    assert_eq!(
        put(offset::DEVICE_PCI, &[1]),
        Err(BlockError::BadDevice),
        "segment 1 without ECAM"
    );
    assert_eq!(
        put(offset::DEVICE_ECAM, &0x1000u64.to_le_bytes()),
        Err(BlockError::BadDevice)
    );
    assert_eq!(
        put(offset::VMCOREINFO + 8, &4097u64.to_le_bytes()),
        Err(BlockError::BadVmcoreinfo)
    );
    assert_eq!(
        put(offset::VMCOREINFO, &0u64.to_le_bytes()),
        Err(BlockError::BadVmcoreinfo)
    );
    assert_eq!(put(offset::DIRECT_MAP, &[2]), Err(BlockError::BadDirectMap));
    assert_eq!(
        put(offset::KERNEL_IMAGE + 16, &u64::MAX.to_le_bytes()),
        Err(BlockError::BadKernelImage)
    );
    assert_eq!(
        put(offset::ENTRY, &0u64.to_le_bytes()),
        Err(BlockError::BadEntry)
    );
    assert_eq!(
        put(offset::ENTRY, &ready.control().start.to_le_bytes()),
        Err(BlockError::BadEntry),
        "an entry in the control area"
    );
    // An ECAM base and "any device" are legal.
    let mut any = good.clone();
    any[offset::DEVICE_PCI..offset::DEVICE_PCI + 6].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
    any[offset::DEVICE_ECAM..offset::DEVICE_ECAM + 8]
        .copy_from_slice(&0xb000_0000u64.to_le_bytes());
    resum(&mut any);
    assert_eq!(
        HandOver::decode(&any).unwrap().device,
        Device::VirtioBlkPci {
            address: None,
            ecam: Some(0xb000_0000)
        }
    );
}

#[test]
fn the_memory_map_refuses_unsorted_unaligned_and_too_many_ranges() {
    let mut buffer = [0u8; 4096];
    let write = |ranges: &[PhysRange], buffer: &mut [u8]| memory_map::write(ranges, buffer);
    assert_eq!(write(&MEMORY, &mut buffer), Ok(32));
    assert_eq!(
        write(
            &[
                PhysRange::new(0x1000, 0x1000),
                PhysRange::new(0x1800, 0x1000)
            ],
            &mut buffer
        ),
        Err(memory_map::MapError::BadRange { index: 1 })
    );
    assert_eq!(
        write(
            &[
                PhysRange::new(0x2000, 0x1000),
                PhysRange::new(0x1000, 0x1000)
            ],
            &mut buffer
        ),
        Err(memory_map::MapError::NotSorted { index: 1 })
    );
    assert_eq!(
        write(&[PhysRange::new(0x1000, 0)], &mut buffer),
        Err(memory_map::MapError::BadRange { index: 0 })
    );
    let many: Vec<PhysRange> = (0..257)
        .map(|i| PhysRange::new(i * 0x2000, 0x1000))
        .collect();
    assert_eq!(
        write(&many, &mut buffer),
        Err(memory_map::MapError::TooMany)
    );
    // Read back: a damaged entry is refused, a short buffer too.
    write(&MEMORY, &mut buffer).unwrap();
    let mut out = [PhysRange::default(); 4];
    assert_eq!(memory_map::read(&buffer, 2, &mut out), Ok(2));
    assert_eq!(
        memory_map::read(&buffer[..20], 2, &mut out),
        Err(memory_map::MapError::TooMany)
    );
    assert_eq!(
        memory_map::read(&buffer, 5, &mut out),
        Err(memory_map::MapError::TooMany)
    );
    buffer[16] = 1;
    assert_eq!(
        memory_map::read(&buffer, 2, &mut out),
        Err(memory_map::MapError::BadRange { index: 1 })
    );
}

#[test]
fn prepare_refuses_what_the_crash_path_could_not_use() {
    let bytes = image(RESERVATION.start, 0x3000, 0x8000);
    let checked = CaptureImage::check(&bytes, RESERVATION, &[KERNEL]).unwrap();
    let mut reservation = vec![0u8; RESERVATION.len as usize];
    let loaded = load(&checked, &mut reservation).unwrap();
    let try_setup = |setup: &Setup<'_>, virt: u64| {
        let mut reservation = reservation.clone();
        prepare(&loaded, setup, &mut reservation, virt)
    };
    let base = setup();
    assert_eq!(
        try_setup(&base, RESERVATION.start + 0x1000),
        Err(PrepareError::TrampolineAliases)
    );
    // Not canonical: bit 47 set, bits 48-63 clear.
    assert_eq!(
        try_setup(&base, 0x0000_8000_0000_0000),
        Err(PrepareError::TrampolineAliases)
    );
    assert_eq!(try_setup(&base, 0x123), Err(PrepareError::BadMapping));
    let long = [b'x'; 4097];
    assert_eq!(
        try_setup(
            &Setup {
                vmcoreinfo: &long,
                ..base
            },
            RESERVATION.start
        ),
        Err(PrepareError::VmcoreinfoTooLong)
    );
    assert_eq!(
        try_setup(
            &Setup {
                record: PhysRange::new(RESERVATION.start + 0x10_0000, 64),
                ..base
            },
            RESERVATION.start
        ),
        Err(PrepareError::BadRecord)
    );
    let unsorted = [MEMORY[1], MEMORY[0]];
    assert_eq!(
        try_setup(
            &Setup {
                memory_map: &unsorted,
                ..base
            },
            RESERVATION.start
        ),
        Err(PrepareError::MemoryMap(memory_map::MapError::NotSorted {
            index: 1
        }))
    );
    // An image reaching into the control area.
    let big = image(
        RESERVATION.start,
        0x3000,
        RESERVATION.len - CONTROL_LEN + PAGE,
    );
    let checked = CaptureImage::check(&big, RESERVATION, &[KERNEL]).unwrap();
    let mut bytes = vec![0u8; RESERVATION.len as usize];
    let loaded = load(&checked, &mut bytes).unwrap();
    assert_eq!(
        prepare(&loaded, &base, &mut bytes, RESERVATION.start),
        Err(PrepareError::ImageInControlArea)
    );
}

#[test]
fn a_capture_slot_is_armed_once() {
    let (_, _, ready) = prepared(RESERVATION.start);
    let slot = Capture::new();
    assert_eq!(slot.ready(), None);
    // SAFETY: the slot is never handed over (this is the host).
    unsafe { slot.arm(ready) }.unwrap();
    assert_eq!(slot.ready(), Some(ready));
    // SAFETY: as above.
    assert!(unsafe { slot.arm(ready) }.is_err());
    assert_eq!(slot.ready(), Some(ready));
}
