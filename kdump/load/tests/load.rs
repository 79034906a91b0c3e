//! The capture kernel loader: images built field by field from the ELF64
//! layout (the gABI's tables: `e_type` @16, `e_machine` @18, `e_entry` @24,
//! `e_phoff` @32, `e_phentsize` @54, `e_phnum` @56; `p_type` @0,
//! `p_offset` @8, `p_paddr` @24, `p_filesz` @32, `p_memsz` @40), each
//! refusal, a real kernel ELF, and the digest against Python's hashlib.

use crashkit_kdump_load::{CaptureImage, LoadError, PhysRange, load};

const RESERVATION: PhysRange = PhysRange::new(0x400_0000, 0x10_0000);
const KERNEL: PhysRange = PhysRange::new(0x10_0000, 0x40_0000);

/// One `PT_LOAD`: file offset, physical address, file and memory sizes.
#[derive(Clone, Copy)]
struct Load {
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

/// An x86_64 ELF64 executable with `loads` (program headers at 64), entry
/// `entry`, `len` bytes long; file bytes are `(offset + i) % 251`.
fn image(entry: u64, loads: &[Load], len: usize) -> Vec<u8> {
    let full = len.max(64 + 56 * loads.len());
    let mut b: Vec<u8> = (0..full).map(|i| (i % 251) as u8).collect();
    b[..64].fill(0);
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // ELFDATA2LSB
    b[6] = 1; // EV_CURRENT
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(loads.len() as u16).to_le_bytes());
    for (i, load) in loads.iter().enumerate() {
        let ph = 64 + i * 56;
        b[ph..ph + 56].fill(0);
        b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        b[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&load.offset.to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&load.paddr.to_le_bytes());
        b[ph + 24..ph + 32].copy_from_slice(&load.paddr.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&load.filesz.to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&load.memsz.to_le_bytes());
    }
    b.truncate(len);
    b
}

fn good_loads() -> [Load; 2] {
    [
        Load {
            offset: 0x1000,
            paddr: 0x400_0000,
            filesz: 0x1800,
            memsz: 0x1800,
        },
        Load {
            offset: 0x3000,
            paddr: 0x400_2000,
            filesz: 0x100,
            memsz: 0x3000,
        },
    ]
}

/// SHA-256 by Python's hashlib, over the same concatenation the loader
/// documents (per segment: start and length as little-endian u64, bytes).
fn hashlib(parts: &[(u64, &[u8])]) -> [u8; 32] {
    let mut input = Vec::new();
    for (start, bytes) in parts {
        input.extend_from_slice(&start.to_le_bytes());
        input.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        input.extend_from_slice(bytes);
    }
    let path = std::env::temp_dir().join(format!("crashkit-load-{}.bin", std::process::id()));
    std::fs::write(&path, &input).unwrap();
    let out = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let hex = String::from_utf8(out.stdout).unwrap();
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    digest
}

#[test]
fn a_good_image_loads_with_its_zero_tails_and_a_digest_hashlib_agrees_with() {
    let bytes = image(0x400_0010, &good_loads(), 0x4000);
    let checked = CaptureImage::check(&bytes, RESERVATION, &[KERNEL]).unwrap();
    assert_eq!(checked.entry(), 0x400_0010);
    assert_eq!(checked.segments().len(), 2);
    let mut reservation = vec![0xee; RESERVATION.len as usize];
    let loaded = load(&checked, &mut reservation).unwrap();
    assert_eq!(&reservation[..0x1800], &bytes[0x1000..0x2800]);
    assert!(
        reservation[0x1800..0x2000].iter().all(|&b| b == 0xee),
        "a gap is left alone"
    );
    assert_eq!(&reservation[0x2000..0x2100], &bytes[0x3000..0x3100]);
    assert!(
        reservation[0x2100..0x5000].iter().all(|&b| b == 0),
        "the zero tail"
    );
    assert!(reservation[0x5000..].iter().all(|&b| b == 0xee));
    let expected = hashlib(&[
        (0x400_0000, &reservation[..0x1800]),
        (0x400_2000, &reservation[0x2000..0x5000]),
    ]);
    assert_eq!(loaded.digest, expected);
    assert!(loaded.matches(&reservation));
    // A byte of the image changed: no match. A byte outside it: still one.
    let mut scribbled = reservation.clone();
    scribbled[0x2fff] ^= 1;
    assert!(!loaded.matches(&scribbled));
    let mut outside = reservation.clone();
    outside[0x1900] ^= 1;
    assert!(loaded.matches(&outside));
    assert!(!loaded.matches(&reservation[..0x1000]));
}

#[test]
fn every_refusal_names_what_is_wrong() {
    let good = good_loads();
    let with = |f: &dyn Fn(&mut [Load; 2])| {
        let mut loads = good;
        f(&mut loads);
        loads
    };
    let check = |bytes: &[u8]| CaptureImage::check(bytes, RESERVATION, &[KERNEL]).map(|_| ());
    let cases: Vec<(&str, Vec<u8>, LoadError)> = vec![
        (
            "outside the reservation",
            image(0x400_0010, &with(&|l| l[1].paddr = 0x40f_f000), 0x4000),
            LoadError::OutsideReservation { index: 1 },
        ),
        (
            "segments overlap",
            image(0x400_0010, &with(&|l| l[1].paddr = 0x400_1000), 0x4000),
            LoadError::SegmentsOverlap {
                first: 0,
                second: 1,
            },
        ),
        (
            "entry in a gap",
            image(0x400_1900, &good, 0x4000),
            LoadError::EntryNotLoaded { entry: 0x400_1900 },
        ),
        (
            "filesz above memsz",
            image(0x400_0010, &with(&|l| l[0].memsz = 0x1000), 0x4000),
            LoadError::BadSegment { index: 0 },
        ),
        (
            "bytes past the file",
            image(0x400_0010, &good, 0x3080),
            LoadError::SegmentPastFile { index: 1 },
        ),
        (
            "program headers past the file",
            image(0x400_0010, &good, 100),
            LoadError::BadProgramHeaders,
        ),
        (
            "no PT_LOAD",
            image(0x400_0010, &[], 0x4000),
            LoadError::NoSegments,
        ),
    ];
    for (what, bytes, expected) in cases {
        assert_eq!(check(&bytes), Err(expected), "{what}");
    }
    let mut i386 = image(0x400_0010, &good, 0x4000);
    i386[18] = 3;
    assert_eq!(check(&i386), Err(LoadError::NotX86_64 { machine: 3 }));
    let mut core = image(0x400_0010, &good, 0x4000);
    core[16] = 4;
    assert_eq!(check(&core), Err(LoadError::NotExecutable { e_type: 4 }));
    let mut elf32 = image(0x400_0010, &good, 0x4000);
    elf32[4] = 1;
    assert_eq!(check(&elf32), Err(LoadError::NotElf64));
    let many: Vec<Load> = (0..17)
        .map(|i| Load {
            offset: 0x1000,
            paddr: 0x400_0000 + i * 0x1000,
            filesz: 0x10,
            memsz: 0x10,
        })
        .collect();
    assert_eq!(
        check(&image(0x400_0000, &many, 0x4000)),
        Err(LoadError::TooManySegments)
    );
    // The running kernel inside the reservation, or the reservation askew.
    let bytes = image(0x400_0010, &good, 0x4000);
    assert_eq!(
        CaptureImage::check(&bytes, RESERVATION, &[PhysRange::new(0x40f_0000, 0x1000)]).map(|_| ()),
        Err(LoadError::ReservationOverlapsKernel {
            kernel: PhysRange::new(0x40f_0000, 0x1000)
        })
    );
    assert_eq!(
        CaptureImage::check(&bytes, PhysRange::new(0x400_0800, 0x10_0000), &[]).map(|_| ()),
        Err(LoadError::BadReservation)
    );
}

/// A real kernel ELF (the crashed test kernel the CLI's goldens use): its
/// five PT_LOADs, the last one's zero tail 1.4 MB, load into a
/// reservation at their addresses; a reservation over the running kernel
/// is refused.
#[test]
fn the_test_kernel_loads_and_is_refused_over_the_running_kernel() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tools/crashkit-cli/tests/corpus/test-kernel.elf"),
    )
    .unwrap();
    let reservation = PhysRange::new(0x10_0000, 0x20_0000);
    let checked =
        CaptureImage::check(&bytes, reservation, &[PhysRange::new(0x40_0000, 0x1000)]).unwrap();
    assert_eq!(checked.entry(), 0x10_101e);
    assert_eq!(checked.segments().len(), 5);
    let mut memory = vec![0xcc; reservation.len as usize];
    let loaded = load(&checked, &mut memory).unwrap();
    assert!(loaded.matches(&memory));
    // The last segment: 0xe68 bytes from the file at 0x1a000, then zeros
    // to 0x1590d0.
    assert_eq!(&memory[0x1_9000..0x1_9e68], &bytes[0x1_a000..0x1_ae68]);
    assert!(
        memory[0x1_9e68..0x1_9000 + 0x15_90d0]
            .iter()
            .all(|&b| b == 0)
    );
    assert_eq!(
        CaptureImage::check(&bytes, reservation, &[PhysRange::new(0x11_8000, 0x2000)]).map(|_| ()),
        Err(LoadError::ReservationOverlapsKernel {
            kernel: PhysRange::new(0x11_8000, 0x2000)
        })
    );
}
