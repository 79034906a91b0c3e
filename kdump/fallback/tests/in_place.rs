//! The in-place writer on the host: "RAM" is a buffer whose physical
//! address 0 is its first byte (`ram_offset` = its address), the crash
//! record lives inside it (so its range is listed as changed), the device
//! is a buffer of sectors. Checked: the outcome in the record and in the
//! dump's copy (which says `Running`), every page but the record's equal to
//! RAM, a registered secret nowhere on the device, the writer's own state
//! listed, a re-entered writer refused, a device too small.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crashkit_dump_format::device::{DeviceDump, Format};
use crashkit_dump_format::{Completeness, KdumpDump, PhysRange};
use crashkit_kdump_capture::sector::SECTOR;
use crashkit_kdump_capture::{EntryState, SectorDevice};
use crashkit_kdump_fallback::{Config, InPlace, Start, Why};
use crashkit_record::{
    ChangedKind, CrashRecord, Decoded, DumpOutcome, DumpPath, FallbackReason, RecordView,
};

type Record = CrashRecord<2, 2>;

const RAM_LEN: usize = 4 << 20;
const RECORD_AT: usize = 0x10_0000;
const SECRET_AT: usize = 0x20_0000;

/// The buffer's address: `virtual = physical + BASE`.
static BASE: AtomicU64 = AtomicU64::new(0);

fn to_phys(virt: usize) -> Option<u64> {
    let base = BASE.load(SeqCst);
    (virt as u64)
        .checked_sub(base)
        .filter(|&phys| phys < RAM_LEN as u64)
}

struct Disk {
    bytes: Vec<u8>,
}

impl SectorDevice for &mut Disk {
    type Error = &'static str;

    fn sectors(&self) -> u64 {
        (self.bytes.len() / SECTOR) as u64
    }

    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), Self::Error> {
        let at = sector as usize * SECTOR;
        buffer.copy_from_slice(self.bytes.get(at..at + buffer.len()).ok_or("past end")?);
        Ok(())
    }

    fn write(&mut self, sector: u64, buffer: &[u8]) -> Result<(), Self::Error> {
        let at = sector as usize * SECTOR;
        self.bytes
            .get_mut(at..at + buffer.len())
            .ok_or("past end")?
            .copy_from_slice(buffer);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// RAM with a pattern, a record in it, a secret registered and written.
fn machine() -> (&'static mut [u8], &'static Record, [u8; 4096]) {
    // Page aligned, as RAM is: a page-aligned virtual page is a physical
    // page.
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    let pages: &'static mut [Page] = Box::leak(
        (0..RAM_LEN / 4096)
            .map(|_| Page([0; 4096]))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    // SAFETY: `Page` is 4096 plain bytes without padding; the leaked pages
    // are one allocation of RAM_LEN bytes, borrowed mutably only here.
    let ram: &'static mut [u8] =
        unsafe { std::slice::from_raw_parts_mut(pages.as_mut_ptr().cast::<u8>(), RAM_LEN) };
    for (index, page) in ram.chunks_exact_mut(4096).enumerate() {
        if index % 3 != 0 {
            for (i, byte) in page.iter_mut().enumerate() {
                *byte = (index.wrapping_mul(13) ^ (i / 5)) as u8;
            }
        }
    }
    BASE.store(ram.as_ptr() as u64, SeqCst);
    let at = ram[RECORD_AT..].as_mut_ptr().cast::<Record>();
    assert!(at.is_aligned());
    // SAFETY: `at` is inside the leaked buffer, aligned, with room for the
    // record, which lives there from now on (the buffer is never freed).
    let record: &'static Record = unsafe {
        at.write(Record::new());
        &*at
    };
    let mut secret = [0u8; 4096];
    let mut x = (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for byte in secret.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    let _secret = record.exclude(SECRET_AT as u64, 4096).unwrap();
    ram[SECRET_AT..][..4096].copy_from_slice(&secret);
    (ram, record, secret)
}

fn config() -> Config {
    let memory = [PhysRange::new(0, RAM_LEN as u64)];
    let mut config = Config::new(
        &memory,
        b"OSRELEASE=in-place-test\nPAGESIZE=4096\n",
        to_phys,
        |_| true,
        7,
    )
    .unwrap();
    config.ram_offset = BASE.load(SeqCst);
    config
}

fn start(crash_time: u64) -> Start {
    Start {
        entry: EntryState {
            cr0: 0x8000_0011,
            cr3: 0x1000,
            cr4: 0x20,
        },
        crash_time,
        device_state: None,
    }
}

#[test]
fn the_crashed_kernel_writes_its_own_dump() {
    let (ram, record, secret) = machine();
    let writer = InPlace::new();
    assert!(writer.config().is_none());
    // SAFETY: the test's "RAM" is mapped at `ram_offset` for the test's
    // life; nothing else drives the test device.
    unsafe { writer.arm(config()) }.unwrap();
    let mut disk = Disk {
        bytes: vec![0xEE; 16 << 20],
    };
    let why = Why::from_handover_code(3);
    assert_eq!(why.reason, FallbackReason::ImageChanged);
    let mut reentered = None;
    let mut opened = false;
    let mut device = Some(&mut disk);
    let outcome = writer.write_with(record, why, &|| 42, start(1_765_000_000), &mut || {
        // A panic inside the writer re-enters the dump step: refused.
        reentered =
            Some(writer.write_with(record, why, &|| 43, start(0), &mut || None::<&mut Disk>));
        opened = true;
        device.take()
    });
    assert!(opened);
    assert_eq!(reentered, Some(DumpOutcome::Busy));
    assert_eq!(outcome, DumpOutcome::Complete);
    // Once for the kernel's life: a later call is refused too.
    let again = writer.write_with(record, why, &|| 44, start(0), &mut || None::<&mut Disk>);
    assert_eq!(again, DumpOutcome::Busy);

    // The record in memory: path, reason, outcome, the changed ranges.
    let dump = record.dump();
    assert_eq!(dump.path(), Decoded::Known(DumpPath::InPlace));
    assert_eq!(dump.outcome(), Decoded::Known(DumpOutcome::Complete));
    let changed: Vec<_> = dump.changed().collect();
    let record_pages = (
        RECORD_AT as u64,
        (Record::TOTAL_SIZE as u64 + 0xfff) & !0xfff,
        ChangedKind::Record as u32,
        false,
    );
    assert!(changed.contains(&record_pages), "{changed:x?}");

    // The device: a whole dump; its record says InPlace, Running.
    let len = disk.bytes.len() as u64;
    let verdict = DeviceDump::read(&disk.bytes[..4096], len, |at| disk.bytes.get(at as usize..));
    let DeviceDump::Whole(header) = verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!(header.format, Format::Kdump);
    let file = &disk.bytes[4096..][..header.data_len as usize];
    let parsed = KdumpDump::parse(file).unwrap();
    assert_eq!(parsed.completeness(), Completeness::Complete);
    let note = parsed.crashkit().unwrap().crash_record.unwrap();
    let view = RecordView::parse(note).unwrap();
    let copy = view.dump().unwrap();
    assert_eq!(copy.path(), Decoded::Known(DumpPath::InPlace));
    assert_eq!(copy.reason(), Decoded::Known(FallbackReason::ImageChanged));
    assert_eq!(copy.handover_error(), 3);
    assert_eq!(
        copy.outcome(),
        Decoded::Known(DumpOutcome::Running),
        "the dump's copy was taken before the writing"
    );
    assert!(
        copy.changed()
            .any(|c| c.kind == Decoded::Known(ChangedKind::Record))
    );

    // Every page: equal to RAM, but the secret's (left out) and the
    // record's (changed while writing, listed).
    let mut page = [0u8; 4096];
    for phys in (0..RAM_LEN as u64).step_by(4096) {
        let present = parsed.read_phys(phys, &mut page).is_ok();
        if phys == SECRET_AT as u64 {
            assert!(
                !present || page.iter().all(|&b| b == 0),
                "the secret's page"
            );
            continue;
        }
        if (RECORD_AT as u64..RECORD_AT as u64 + record_pages.1).contains(&phys) {
            continue;
        }
        let expected = &ram[phys as usize..][..4096];
        if expected.iter().all(|&b| b == 0) {
            continue;
        }
        assert!(present, "page {phys:#x} missing");
        assert_eq!(&page[..], expected, "page {phys:#x}");
    }
    assert_eq!(
        find_piece(&disk.bytes, &secret),
        None,
        "the secret is on the device"
    );
}

/// Where any 32-byte piece of `pattern` (at a multiple of 32) occurs in
/// `haystack`: a 64 Ki-bit filter on each position's first 8 bytes, then an
/// exact comparison (fast enough in a debug build for 16 MiB).
fn find_piece(haystack: &[u8], pattern: &[u8]) -> Option<usize> {
    let key = |bytes: &[u8]| u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let mut filter = vec![false; 1 << 16];
    let pieces: Vec<&[u8]> = pattern.chunks_exact(32).collect();
    for piece in &pieces {
        filter[(key(piece) & 0xffff) as usize] = true;
    }
    (0..haystack.len().saturating_sub(31)).find(|&at| {
        filter[(key(&haystack[at..]) & 0xffff) as usize]
            && pieces.iter().any(|piece| &haystack[at..at + 32] == *piece)
    })
}

#[test]
fn no_writer_armed_writes_nothing() {
    let writer = InPlace::new();
    let record = Box::leak(Box::new(Record::new()));
    let outcome = writer.write_with(
        record,
        Why::from_handover_code(1),
        &|| 1,
        start(0),
        &mut || None::<&mut Disk>,
    );
    assert_eq!(outcome, DumpOutcome::NoDevice);
    assert_eq!(record.dump().path(), Decoded::Known(DumpPath::None));
}
