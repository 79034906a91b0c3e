//! The capture kernel's work on the host: a fake machine (8 MiB of RAM
//! with the test kernel's real crash record in it) captured onto a
//! file-like device in every format, then read back by the format crate's
//! readers page by page; a device too small, a device that fails, and the
//! sector sink against a plain byte model.

use crashkit_dump_format::DumpSink;
use crashkit_dump_format::device::{DeviceDump, Format, Torn};
use crashkit_dump_format::{Completeness, ElfDump, KdumpDump, PhysMemory, PhysRange};
use crashkit_kdump_capture::sector::{SECTOR, WINDOW};
use crashkit_kdump_capture::{
    CaptureError, EntryState, Inputs, Scratch, SectorDevice, SectorSink, capture, ranges_to_dump,
};
use crashkit_kdump_handover::{AfterDump, Device, DumpFormat, HandOver};

/// The test kernel's crash record from its panic-ap scenario (4 CPUs; CPU
/// 1 panicked; CPUs 2 and 3 ... as recorded).
const RECORD: &[u8] =
    include_bytes!("../../../tools/crashkit-cli/tests/corpus/test-kernel-panic-ap.crash-record");
const RAM: u64 = 8 << 20;
const RECORD_AT: u64 = 0x20_3000;
const RESERVATION: PhysRange = PhysRange::new(0x40_0000, 0x20_0000);
const MEMORY_MAP: [PhysRange; 2] = [
    PhysRange::new(0, 0x9f000),
    PhysRange::new(0x10_0000, RAM - 0x10_0000),
];

struct Ram(Vec<u8>);

impl PhysMemory for Ram {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        let at = usize::try_from(phys).ok()?;
        self.0.get(at..at + 4096)?.try_into().ok()
    }
}

/// RAM: every fourth page zero, the others a pattern naming the page; the
/// record at `RECORD_AT`.
fn ram() -> Ram {
    let mut bytes = vec![0u8; RAM as usize];
    for (index, page) in bytes.chunks_exact_mut(4096).enumerate() {
        if index % 4 != 0 {
            for (i, byte) in page.iter_mut().enumerate() {
                *byte = (index.wrapping_mul(31) ^ (i / 7)) as u8;
            }
        }
    }
    bytes[RECORD_AT as usize..][..RECORD.len()].copy_from_slice(RECORD);
    Ram(bytes)
}

#[derive(Debug)]
struct Disk {
    bytes: Vec<u8>,
    /// Writes allowed before every write fails (`None`: never fails).
    writes_left: Option<usize>,
    writes: usize,
}

impl Disk {
    fn new(len: usize) -> Self {
        Self {
            bytes: vec![0xEE; len],
            writes_left: None,
            writes: 0,
        }
    }
}

impl SectorDevice for &mut Disk {
    type Error = &'static str;

    fn sectors(&self) -> u64 {
        (self.bytes.len() / SECTOR) as u64
    }

    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), Self::Error> {
        assert_eq!(buffer.len() % SECTOR, 0);
        let at = sector as usize * SECTOR;
        buffer.copy_from_slice(
            self.bytes
                .get(at..at + buffer.len())
                .ok_or("read past end")?,
        );
        Ok(())
    }

    fn write(&mut self, sector: u64, buffer: &[u8]) -> Result<(), Self::Error> {
        assert_eq!(buffer.len() % SECTOR, 0);
        assert!(buffer.len() <= WINDOW);
        if let Some(left) = self.writes_left.as_mut() {
            if *left == 0 {
                return Err("injected device failure");
            }
            *left -= 1;
        }
        self.writes += 1;
        let at = sector as usize * SECTOR;
        self.bytes
            .get_mut(at..at + buffer.len())
            .ok_or("write past end")?
            .copy_from_slice(buffer);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn block(format: DumpFormat) -> HandOver {
    HandOver {
        reservation: RESERVATION,
        control: PhysRange::new(RESERVATION.start + RESERVATION.len - 0x1_0000, 0x1_0000),
        record: PhysRange::new(RECORD_AT, RECORD.len() as u64),
        memory_map: RESERVATION.start + RESERVATION.len - 0xf000,
        memory_map_count: 2,
        format,
        level: if format == DumpFormat::KdumpZlib {
            1
        } else {
            0
        },
        after: AfterDump::Halt,
        device: Device::VirtioBlkPci {
            address: None,
            ecam: None,
        },
        vmcoreinfo: PhysRange::default(),
        direct_map: None,
        kernel_image: None,
        entry: RESERVATION.start,
        digest: [7; 32],
        boot_id: 42,
    }
}

fn run(
    format: DumpFormat,
    disk: &mut Disk,
) -> Result<crashkit_kdump_capture::Outcome, CaptureError<&'static str>> {
    run_with(format, disk, RECORD)
}

fn run_with(
    format: DumpFormat,
    disk: &mut Disk,
    record: &[u8],
) -> Result<crashkit_kdump_capture::Outcome, CaptureError<&'static str>> {
    run_on(format, disk, record, &mut ram())
}

fn run_on(
    format: DumpFormat,
    disk: &mut Disk,
    record: &[u8],
    memory: &mut Ram,
) -> Result<crashkit_kdump_capture::Outcome, CaptureError<&'static str>> {
    let block = block(format);
    let inputs = Inputs {
        block: &block,
        record,
        vmcoreinfo: b"OSRELEASE=capture-test\nPAGESIZE=4096\n",
        memory_map: &MEMORY_MAP,
        left_out: &[],
        entry: EntryState {
            cr0: 0x8000_0011,
            cr3: 0x10_1000,
            cr4: 0x20,
        },
        dump_id: [0x5a; 16],
        crash_time: 1_765_000_000,
    };
    let mut window = Box::new([0u8; WINDOW]);
    let mut scratch = Box::new(Scratch::new());
    let mut console = String::new();
    let outcome = capture(
        &inputs,
        memory,
        disk,
        &mut window,
        &mut scratch,
        &mut console,
    );
    assert!(console.contains("crashkit-capture: writing a"), "{console}");
    outcome
}

/// The dump file on the disk, if its headers say whole.
fn whole_file(disk: &Disk) -> (Format, &[u8]) {
    let len = disk.bytes.len() as u64;
    let verdict = DeviceDump::read(&disk.bytes[..4096], len, |at| disk.bytes.get(at as usize..));
    let DeviceDump::Whole(header) = verdict else {
        panic!("not whole: {verdict:?}");
    };
    (
        header.format,
        &disk.bytes[4096..][..header.data_len as usize],
    )
}

#[test]
fn every_format_captures_every_page_but_the_reservation_and_every_cpu() {
    let memory = ram();
    for format in [
        DumpFormat::KdumpLzo,
        DumpFormat::KdumpZlib,
        DumpFormat::KdumpRaw,
        DumpFormat::Elf,
    ] {
        let mut disk = Disk::new(16 << 20);
        let outcome = run(format, &mut disk).unwrap();
        assert!(outcome.record_ok);
        // The record's absent slots get no note; the others all do.
        let present = record_cpus_present();
        assert_eq!(outcome.cpus, present, "{format:?}");
        assert!(!outcome.did_not_fit);
        let record = crashkit_record_format::RecordView::parse(RECORD).unwrap();
        let (device_format, file) = whole_file(&disk);
        let mut page = [0u8; 4096];
        let check_pages = |read: &dyn Fn(u64, &mut [u8]) -> bool, page: &mut [u8; 4096]| {
            for phys in (0..RAM).step_by(4096) {
                let in_map = MEMORY_MAP
                    .iter()
                    .any(|r| phys >= r.start && phys < r.start + r.len);
                let reserved =
                    (RESERVATION.start..RESERVATION.start + RESERVATION.len).contains(&phys);
                let readable = read(phys, page);
                if in_map && !reserved {
                    assert!(readable, "{format:?}: page {phys:#x} missing");
                    assert_eq!(
                        &page[..],
                        &memory.0[phys as usize..][..4096],
                        "{format:?}: page {phys:#x}"
                    );
                } else {
                    assert!(
                        !readable || page.iter().all(|&b| b == 0),
                        "{format:?}: page {phys:#x} should not be dumped"
                    );
                }
            }
        };
        match format {
            DumpFormat::Elf => {
                assert_eq!(device_format, Format::Elf);
                let dump = ElfDump::parse(file).unwrap();
                assert_eq!(dump.completeness(), Completeness::Complete);
                assert_eq!(dump.cpus().len(), outcome.cpus);
                assert_eq!(dump.crashkit().unwrap().crash_record, Some(RECORD));
                check_pages(&|phys, buf| dump.read_phys(phys, buf).is_ok(), &mut page);
            }
            _ => {
                assert_eq!(device_format, Format::Kdump);
                let dump = KdumpDump::parse(file).unwrap();
                assert_eq!(dump.completeness(), Completeness::Complete, "{format:?}");
                assert!(dump.data_layout_damage().is_empty());
                assert_eq!(dump.cpus().len(), outcome.cpus);
                // The panicking CPU's control registers came from the entry.
                let owner = record.panic().owner_cpu().unwrap() as usize;
                let control = dump.cpus()[..]
                    .iter()
                    .filter_map(|c| c.control)
                    .find(|c| c.cpu as usize == owner)
                    .unwrap();
                assert_eq!(control.cr3, Some(0x10_1000));
                check_pages(&|phys, buf| dump.read_phys(phys, buf).is_ok(), &mut page);
            }
        }
    }
}

/// A record from the current writer: CPU 0 panicked, CPU 1 stopped, CPU
/// 2 never answered; both CPUs with registers saved their control state.
fn record_with_control_state() -> Vec<u8> {
    use crashkit_nmi::{ControlRegisters, CpuIndex, RegisterFrame, control::valid};
    use crashkit_record::{CrashRecord, PanicPhase, StopPath};
    let record = CrashRecord::<3, 1>::new();
    let control = |base: u64| ControlRegisters {
        valid: valid::ALL,
        reserved: 0,
        cr0: 0x8005_0033,
        cr2: base + 2,
        cr3: base,
        cr4: 0x6b0,
        efer: 0xd01,
        fs_base: base + 5,
        gs_base: base + 6,
        kernel_gs_base: base + 7,
        ds: 0x18,
        es: 0x18,
        fs: 0,
        gs: 0x2b,
    };
    let frame = |rip| RegisterFrame {
        rip,
        ..RegisterFrame::ZERO
    };
    record.panic().set_owner(CpuIndex(0));
    record.panic().set_phase(PanicPhase::Claimed);
    let slots = record.cpu_slots();
    slots[0]
        .record_owner(&frame(0x1000), &control(0x30_0000), 0, 1)
        .unwrap();
    slots[1].mark_nmi_sent(2);
    slots[1]
        .record_stop(&frame(0x2000), &control(0x31_0000), StopPath::Nmi, 1, 3)
        .unwrap();
    slots[2].mark_nmi_sent(2);
    slots[2].mark_unresponsive();
    let mut bytes = vec![0; CrashRecord::<3, 1>::TOTAL_SIZE];
    record.snapshot(&mut bytes).unwrap();
    bytes
}

#[test]
fn a_registered_secret_is_nowhere_on_the_device() {
    // The record registers two pages of RAM as a secret, filled with a
    // pattern drawn now; no byte run of it may reach the device, in any
    // format, and the pages read back as not in the dump.
    use crashkit_record::CrashRecord;
    const SECRET: u64 = 0x30_0000;
    let mut pattern = [0u8; 8192];
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    for byte in pattern.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let record = CrashRecord::<1, 1>::new();
    let _secret = record.exclude(SECRET + 0x10, 0x1ff0).unwrap();
    let mut bytes = vec![0; CrashRecord::<1, 1>::TOTAL_SIZE];
    record.snapshot(&mut bytes).unwrap();
    for format in [
        DumpFormat::KdumpLzo,
        DumpFormat::KdumpRaw,
        DumpFormat::KdumpZlib,
        DumpFormat::Elf,
    ] {
        let mut disk = Disk::new(16 << 20);
        let mut memory = ram();
        memory.0[SECRET as usize..][..8192].copy_from_slice(&pattern);
        run_on(format, &mut disk, &bytes, &mut memory).unwrap();
        assert_eq!(
            find_piece(&disk.bytes, &pattern),
            None,
            "{format:?}: part of the secret is on the device"
        );
        let (_, file) = whole_file(&disk);
        let mut page = [0u8; 4096];
        let read = |phys: u64, page: &mut [u8; 4096]| match format {
            DumpFormat::Elf => ElfDump::parse(file).unwrap().read_phys(phys, page).is_ok(),
            _ => KdumpDump::parse(file)
                .unwrap()
                .read_phys(phys, page)
                .is_ok(),
        };
        for phys in [SECRET, SECRET + 0x1000] {
            assert!(
                !read(phys, &mut page) || page.iter().all(|&b| b == 0),
                "{format:?}: the secret's page {phys:#x} reads back"
            );
        }
        assert!(
            read(SECRET + 0x2000, &mut page),
            "{format:?}: its neighbour is dumped"
        );
    }
}

/// Where any 32-byte piece of `pattern` (at a multiple of 32) occurs in
/// `haystack`: a 64 Ki-bit filter on each position's first 8 bytes, then
/// an exact comparison (fast enough in a debug build for 16 MiB).
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
fn the_piece_finder_finds() {
    let pattern: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut hay = vec![0u8; 4096];
    assert_eq!(find_piece(&hay, &pattern), None);
    hay[1000..1032].copy_from_slice(&pattern[64..96]);
    assert_eq!(find_piece(&hay, &pattern), Some(1000));
}

#[test]
fn exclusions_past_the_capacity_are_merged_not_dropped() {
    let ranges: Vec<PhysRange> = (0..100u64)
        .map(|i| PhysRange::new(i * 0x10_000, 0x1000))
        .collect();
    let mut out = [PhysRange::default(); crashkit_kdump_capture::MAX_EXCLUSIONS];
    let count = crashkit_kdump_capture::exclusions_to_apply(None, &ranges, &mut out);
    assert_eq!(count, crashkit_kdump_capture::MAX_EXCLUSIONS);
    let kept = &out[..count];
    assert!(kept.windows(2).all(|w| w[0].start <= w[1].start), "sorted");
    for range in &ranges {
        assert!(
            kept.iter().any(|k| k.contains(range)),
            "{range:?} is covered"
        );
    }
    // A wrapping range from a damaged record is clamped, not dropped.
    let count = crashkit_kdump_capture::exclusions_to_apply(
        None,
        &[PhysRange::new(0x1000, u64::MAX)],
        &mut out,
    );
    assert_eq!(out[..count], [PhysRange::new(0x1000, (1 << 52) - 0x1000)]);
}

#[test]
fn every_stopped_cpu_gets_its_control_state_in_the_notes() {
    let record = record_with_control_state();
    for format in [DumpFormat::KdumpLzo, DumpFormat::Elf] {
        let mut disk = Disk::new(16 << 20);
        let outcome = run_with(format, &mut disk, &record).unwrap();
        assert_eq!((outcome.cpus, outcome.cpus_without_registers), (3, 1));
        let (_, file) = whole_file(&disk);
        let cpus = match format {
            DumpFormat::Elf => ElfDump::parse(file).unwrap().cpus().to_vec(),
            _ => KdumpDump::parse(file).unwrap().cpus().to_vec(),
        };
        let control_of = |cpu: u32| {
            cpus.iter()
                .filter_map(|c| c.control)
                .find(|c| c.cpu == cpu)
                .unwrap()
        };
        // The owner's CR3 is the record's (the page tables it panicked
        // with), not the entry's.
        assert_eq!(control_of(0).cr3, Some(0x30_0000), "{format:?}");
        let stopped = control_of(1);
        assert_eq!(
            (
                stopped.cr3,
                stopped.cr2,
                stopped.efer,
                stopped.kernel_gs_base
            ),
            (
                Some(0x31_0000),
                Some(0x31_0002),
                Some(0xd01),
                Some(0x31_0007)
            ),
            "{format:?}"
        );
        let never = control_of(2);
        assert_eq!((never.cr3, never.cr0), (None, None), "{format:?}");
        // The selectors and bases went into `pr_reg`.
        let crashkit_dump_format::notes::read::CpuRegisters::X86_64(registers) = cpus
            .iter()
            .find(|c| c.control.is_some_and(|k| k.cpu == 1))
            .unwrap()
            .registers
        else {
            panic!("x86_64 registers");
        };
        assert_eq!(
            (
                registers.rip,
                registers.fs_base,
                registers.gs_base,
                registers.ds,
                registers.gs
            ),
            (0x2000, 0x31_0005, 0x31_0006, 0x18, 0x2b),
            "{format:?}"
        );
    }
}

fn record_cpus_present() -> usize {
    let record = crashkit_record_format::RecordView::parse(RECORD).unwrap();
    let present = record
        .cpus()
        .filter(|slot| slot.state().known() != Some(crashkit_record_format::CpuState::Absent))
        .count();
    assert!(
        present > 1 && present < record.cpu_count(),
        "the record has absent slots"
    );
    present
}

#[test]
fn a_device_too_small_holds_an_incomplete_dump_marked_so() {
    let mut disk = Disk::new(256 << 10);
    let outcome = run(DumpFormat::KdumpRaw, &mut disk).unwrap();
    assert!(outcome.did_not_fit);
    let (_, file) = whole_file(&disk);
    let dump = KdumpDump::parse(file).unwrap();
    assert!(
        matches!(dump.completeness(), Completeness::Incomplete(_)),
        "{:?}",
        dump.completeness()
    );
    let header = crashkit_dump_format::device::DeviceHeader::decode(&disk.bytes[..4096]).unwrap();
    assert_eq!(
        header.flags & crashkit_dump_format::device::FLAG_DID_NOT_FIT,
        1
    );
    // Too small even for the headers.
    let mut tiny = Disk::new(8192);
    assert!(matches!(
        run(DumpFormat::KdumpLzo, &mut tiny),
        Err(CaptureError::DeviceTooSmall { .. })
    ));
}

#[test]
fn a_device_that_fails_part_way_leaves_a_torn_dump() {
    let mut clean = Disk::new(16 << 20);
    run(DumpFormat::KdumpLzo, &mut clean).unwrap();
    let writes = clean.writes;
    assert!(writes > 8, "{writes} writes");
    // Fail at the first write, in the data, and at each of the last
    // writes (the trailing header, the leading header).
    for fail_after in [0, 1, writes / 4, writes / 2, writes - 2, writes - 1] {
        let mut disk = Disk::new(16 << 20);
        disk.writes_left = Some(fail_after);
        let result = run(DumpFormat::KdumpLzo, &mut disk);
        assert!(
            matches!(result, Err(CaptureError::Device(_))),
            "{fail_after}: {result:?}"
        );
        let len = disk.bytes.len() as u64;
        let verdict =
            DeviceDump::read(&disk.bytes[..4096], len, |at| disk.bytes.get(at as usize..));
        assert!(
            matches!(
                verdict,
                DeviceDump::Torn(_, Torn::StillWriting) | DeviceDump::Empty
            ),
            "{fail_after}: {verdict:?}"
        );
    }
}

#[test]
fn the_reservation_is_cut_out_of_the_memory_map() {
    let mut out = [PhysRange::default(); crashkit_kdump_capture::MAX_RANGES];
    let count = ranges_to_dump(&MEMORY_MAP, RESERVATION, &mut out);
    assert_eq!(
        &out[..count],
        &[
            PhysRange::new(0, 0x9f000),
            PhysRange::new(0x10_0000, 0x30_0000),
            PhysRange::new(0x60_0000, RAM - 0x60_0000),
        ]
    );
    let count = ranges_to_dump(
        &[PhysRange::new(0x40_0000, 0x20_0000)],
        RESERVATION,
        &mut out,
    );
    assert_eq!(count, 0);
}

#[test]
fn the_sector_sink_writes_what_a_byte_model_holds() {
    // A deterministic mix: sequential runs, jumps back, overwrites,
    // unaligned starts and ends, writes across the window's end.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..20 {
        let len = 1 << 20;
        let mut disk = Disk::new(len);
        let mut model = disk.bytes.clone();
        let mut window = Box::new([0u8; WINDOW]);
        {
            let mut sink = SectorSink::new(&mut disk, &mut window);
            let mut at = 0u64;
            for _ in 0..200 {
                let jump = next() % 8 == 0;
                if jump {
                    at = next() % (len as u64 - 70_000);
                }
                let size = (next() % 70_000) as usize;
                let byte = next() as u8;
                let bytes = vec![byte; size];
                sink.write_at(at, &bytes).unwrap();
                model[at as usize..][..size].copy_from_slice(&bytes);
                at += size as u64;
                if at + 70_000 > len as u64 {
                    at = 0;
                }
            }
            assert!(sink.write_at(len as u64 - 10, &[0; 11]).is_err());
            sink.flush().unwrap();
        }
        assert!(disk.bytes == model, "round {round}");
    }
}
