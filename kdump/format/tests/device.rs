//! The dump device layout (`device`): a whole dump reads as whole and its
//! file opens; a write cut at any point, over a device that held an older
//! whole dump, never reads as a whole dump, new or old; a dump that does not
//! fit is marked so; the header's bytes are where docs/kdump.md's table says.

mod common;

use common::{Machine, Memory, VecSink, standard_zero};
use crashkit_dump_format::DumpSink;
use crashkit_dump_format::compressed::writer::{LzoPages, write_kdump};
use crashkit_dump_format::device::{
    BLOCK, BeginError, DATA_OFFSET, DeviceDump, DeviceHeader, DeviceSink, FLAG_DID_NOT_FIT, Format,
    HeaderProblem, State, Torn,
};
use crashkit_dump_format::read::Completeness;
use crashkit_dump_format::write::WriteOptions;
use crashkit_dump_format::{ElfDump, KdumpDump};

/// A device of fixed length; writes past it fail. Keeps every write in
/// order, so a cut can be replayed.
struct Disk {
    bytes: Vec<u8>,
    log: Vec<(u64, Vec<u8>)>,
}

#[derive(Debug)]
struct PastEnd;

impl DumpSink for Disk {
    type Error = PastEnd;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), PastEnd> {
        let start = offset as usize;
        let dst = self
            .bytes
            .get_mut(start..start + bytes.len())
            .ok_or(PastEnd)?;
        dst.copy_from_slice(bytes);
        self.log.push((offset, bytes.to_vec()));
        Ok(())
    }
}

fn judge(device: &[u8]) -> DeviceDump {
    DeviceDump::read(&device[..BLOCK as usize], device.len() as u64, |at| {
        device.get(at as usize..(at + BLOCK) as usize)
    })
}

/// Write the standard machine as a kdump file (LZO1X) on `disk`.
fn dump_onto(disk: Disk, id: u8) -> (Disk, DeviceHeader, bool) {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let mut plan = machine.plan();
    plan.dump_id = [id; 16];
    let len = disk.bytes.len() as u64;
    let mut sink =
        DeviceSink::begin(disk, len, Format::Kdump, plan.dump_id, plan.crash_time).unwrap();
    let written = write_kdump(
        &plan,
        &mut memory,
        &mut sink,
        &mut |_| false,
        &mut LzoPages::default(),
        WriteOptions::default(),
        |_| {},
    );
    let (complete, length) = match &written {
        Ok(stats) => (stats.complete, stats.total_length),
        Err(_) => (false, 0),
    };
    let (disk, header) = sink.finish(length).unwrap();
    (disk, header, complete)
}

#[test]
fn a_whole_dump_reads_whole_and_its_file_opens_complete() {
    let disk = Disk {
        bytes: vec![0x5a; 8 << 20],
        log: Vec::new(),
    };
    let (disk, header, complete) = dump_onto(disk, 7);
    assert!(complete);
    assert_eq!(judge(&disk.bytes), DeviceDump::Whole(header));
    assert_eq!(header.state, State::Complete);
    assert_eq!(header.dump_id, [7; 16]);
    assert_eq!(header.flags, 0);
    let file = &disk.bytes[DATA_OFFSET as usize..(DATA_OFFSET + header.data_len) as usize];
    let dump = KdumpDump::parse(file).unwrap();
    assert_eq!(dump.completeness(), Completeness::Complete);
    assert!(dump.damage().is_empty(), "{:?}", dump.damage());
    // The trailing header is in the device's last block.
    let last = &disk.bytes[disk.bytes.len() - BLOCK as usize..];
    assert_eq!(DeviceHeader::decode(last), Ok(header));
}

/// Over a device holding an older whole dump, apply the new dump's writes
/// one by one: after the first, the device reads as the old dump never
/// again, and as a whole dump only once every write is in, then as the
/// new one.
#[test]
fn a_dump_cut_after_any_write_never_reads_as_a_whole_dump() {
    let blank = Disk {
        bytes: vec![0xa5; 8 << 20],
        log: Vec::new(),
    };
    let (old, old_header, _) = dump_onto(blank, 1);
    assert_eq!(judge(&old.bytes), DeviceDump::Whole(old_header));
    let start = old.bytes.clone();
    let (new, new_header, complete) = dump_onto(
        Disk {
            bytes: start.clone(),
            log: Vec::new(),
        },
        2,
    );
    assert!(complete);
    let mut device = start;
    let writes = new.log.len();
    assert!(writes > 10, "{writes} writes");
    for (done, (offset, bytes)) in new.log.iter().enumerate() {
        device[*offset as usize..*offset as usize + bytes.len()].copy_from_slice(bytes);
        let verdict = judge(&device);
        if done + 1 < writes {
            assert!(
                matches!(verdict, DeviceDump::Torn(..)),
                "after write {} of {writes}: {verdict:?}",
                done + 1
            );
        } else {
            assert_eq!(verdict, DeviceDump::Whole(new_header));
        }
    }
    assert_eq!(device, new.bytes);
}

#[test]
fn a_dump_that_does_not_fit_is_marked_and_its_file_reads_incomplete() {
    let disk = Disk {
        bytes: vec![0; 64 * BLOCK as usize],
        log: Vec::new(),
    };
    let (disk, header, complete) = dump_onto(disk, 3);
    assert!(!complete);
    assert_eq!(judge(&disk.bytes), DeviceDump::Whole(header));
    assert_eq!(header.flags & FLAG_DID_NOT_FIT, FLAG_DID_NOT_FIT);
    // What was written before the refused write: less than the room.
    assert!(
        header.data_len > 0 && header.data_len <= 62 * BLOCK,
        "{header:?}"
    );
    let file = &disk.bytes[DATA_OFFSET as usize..(DATA_OFFSET + header.data_len) as usize];
    match KdumpDump::parse(file) {
        Ok(dump) => assert!(
            matches!(dump.completeness(), Completeness::Incomplete(_)),
            "{}",
            dump.completeness()
        ),
        Err(error) => panic!("the cut file does not open: {error}"),
    }
}

#[test]
fn a_device_too_small_for_the_headers_is_refused_before_any_write() {
    let disk = VecSink::default();
    let result = DeviceSink::begin(disk, 2 * BLOCK + 100, Format::Elf, [0; 16], 0);
    assert!(matches!(
        result,
        Err(BeginError::TooSmall { device_len: 8192 })
    ));
}

/// The header's bytes against the table in docs/kdump.md (written from
/// the table, not from the encoder).
#[test]
fn the_header_is_laid_out_as_documented() {
    let header = DeviceHeader {
        state: State::Complete,
        format: Format::Elf,
        dump_id: *b"0123456789abcdef",
        crash_time: 0x1122_3344_5566_7788,
        device_len: 0x10_0000,
        data_len: 0x8000,
        flags: FLAG_DID_NOT_FIT,
    };
    let b = header.encode();
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    assert_eq!(&b[0..16], b"crashkit dumpdev");
    assert_eq!(u32_at(16), 1, "version");
    assert_eq!(u32_at(20), 128, "header length");
    assert_eq!(u32_at(24), 2, "state complete");
    assert_eq!(u32_at(28), 1, "format ELF");
    assert_eq!(&b[32..48], b"0123456789abcdef");
    assert_eq!(u64_at(48), 0x1122_3344_5566_7788, "crash time");
    assert_eq!(u64_at(56), 0, "reserved");
    assert_eq!(u64_at(64), 0x10_0000, "device length");
    assert_eq!(u64_at(72), 4096, "data offset");
    assert_eq!(u64_at(80), 0x8000, "data length");
    assert_eq!(u32_at(88), 1, "flags");
    assert!(b[92..124].iter().all(|&x| x == 0));
    assert_eq!(DeviceHeader::decode(&b), Ok(header));
    // Every byte is covered: a flip anywhere is refused.
    for at in 0..b.len() {
        let mut flipped = b;
        flipped[at] ^= 0x01;
        assert!(DeviceHeader::decode(&flipped).is_err(), "byte {at}");
    }
}

#[test]
fn fields_are_checked_against_each_other() {
    let good = DeviceHeader {
        state: State::Complete,
        format: Format::Kdump,
        dump_id: [9; 16],
        crash_time: 0,
        device_len: 16 * BLOCK,
        data_len: 14 * BLOCK,
        flags: 0,
    };
    assert!(DeviceHeader::decode(&good.encode()).is_ok());
    for bad in [
        DeviceHeader {
            data_len: 14 * BLOCK + 1,
            ..good
        },
        DeviceHeader {
            device_len: 2 * BLOCK,
            data_len: 0,
            ..good
        },
        DeviceHeader {
            device_len: 16 * BLOCK + 1,
            ..good
        },
        DeviceHeader {
            state: State::Writing,
            ..good
        },
    ] {
        assert!(
            matches!(
                DeviceHeader::decode(&bad.encode()),
                Err(HeaderProblem::Field(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        DeviceHeader::decode(&[0u8; 128]),
        Err(HeaderProblem::NoMagic)
    );
}

/// An ELF dump on a device, then marked saved in both headers: saved, and
/// a device that is shorter than its headers say is torn.
#[test]
fn a_saved_dump_and_a_short_device() {
    let machine = Machine::new();
    let mut memory = Memory::patterned(&machine.ranges, standard_zero);
    let plan = machine.plan();
    let disk = Disk {
        bytes: vec![0; 8 << 20],
        log: Vec::new(),
    };
    let mut sink = DeviceSink::begin(disk, 8 << 20, Format::Elf, plan.dump_id, 5).unwrap();
    let stats = crashkit_dump_format::write_elf_dump(
        &plan,
        &mut memory,
        &mut sink,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    let (mut disk, header) = sink.finish(stats.total_length).unwrap();
    let file = &disk.bytes[DATA_OFFSET as usize..(DATA_OFFSET + header.data_len) as usize];
    assert_eq!(
        ElfDump::parse(file).unwrap().completeness(),
        Completeness::Complete
    );
    let saved = DeviceHeader {
        state: State::Saved,
        ..header
    }
    .encode();
    let last = disk.bytes.len() - BLOCK as usize;
    disk.bytes[..saved.len()].copy_from_slice(&saved);
    disk.bytes[last..last + saved.len()].copy_from_slice(&saved);
    assert!(matches!(judge(&disk.bytes), DeviceDump::Saved(h) if h.state == State::Saved));
    let short = &disk.bytes[..disk.bytes.len() - BLOCK as usize];
    assert!(matches!(
        judge(short),
        DeviceDump::Torn(_, Torn::DeviceShorter { .. })
    ));
}
