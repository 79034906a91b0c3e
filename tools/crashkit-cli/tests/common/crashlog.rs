//! A crashkit kernel's crash log for the CLI's tests: a synthetic kernel ELF
//! with a defmt table (`.defmt` symbols as defmt's macros emit them, the
//! version and encoding symbols, a GNU build-id note), and a dump whose
//! memory holds a crash log written by `crashkit-log`'s own writer with
//! frames in defmt's wire format, and whose crash record points at it.
//! Deterministic: fixed stamps and bytes.
//!
//! What the rings hold (2 CPUs, 256-byte rings):
//! - CPU 1's NMI ring: 24 `tick` messages, so the oldest are overwritten;
//! - CPU 0's normal ring: the scenario line, then a message its CPU was
//!   writing when it was stopped (torn);
//! - CPU 1's normal ring: the panic, a message dropped by re-entry, the
//!   final action;
//! - CPU 0's NMI ring: its stop, and a frame whose string index is not in
//!   the table (undecodable).

use crashkit_log::{Begin, LogContext, LogRings};
use object::write::{Object, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

/// The build-id the rings and the right ELF carry.
pub const BUILD_ID: [u8; 20] = [
    0xc0, 0xff, 0xee, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
    0xdd, 0xee, 0x01, 0x02,
];

/// Where the area is in the dump's memory.
pub const AREA: u64 = 0x10_2000;

type Rings = LogRings<2, 256>;

/// The defmt table's messages: (level tag, format), at indices 1, 2, ...
const MESSAGES: [(&str, &str); 6] = [
    (
        "defmt_info",
        "crashkit-test: scenario {=str} on {=usize} CPUs",
    ),
    ("defmt_error", "panic on CPU {=u32}: {=str}"),
    ("defmt_info", "CPU {=u32} stopped ({=str}) at rip {=u64:#x}"),
    ("defmt_info", "final action: reboot"),
    ("defmt_debug", "tick {=u32}"),
    ("defmt_warn", "stopping the other CPUs"),
];

/// A kernel ELF (relocatable: the decoder needs only its symbols and
/// notes) whose defmt table has [`MESSAGES`], with GNU build-id `id`.
pub fn kernel_elf(id: &[u8]) -> Vec<u8> {
    let mut elf = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let defmt = elf.add_section(Vec::new(), b".defmt".to_vec(), SectionKind::Other);
    elf.set_section_data(defmt, vec![0u8; MESSAGES.len() + 1], 1);
    for (index, (tag, data)) in MESSAGES.iter().enumerate() {
        let name = format!(
            r#"{{"package":"demo","tag":"{tag}","data":"{data}","disambiguator":"{index}","crate_name":"demo"}}"#
        );
        elf.add_symbol(Symbol {
            name: name.into_bytes(),
            value: index as u64 + 1,
            size: 1,
            kind: SymbolKind::Data,
            scope: SymbolScope::Compilation,
            weak: false,
            section: SymbolSection::Section(defmt),
            flags: SymbolFlags::None,
        });
    }
    for name in ["_defmt_version_ = 4", "_defmt_encoding_ = rzcobs"] {
        elf.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Data,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Absolute,
            flags: SymbolFlags::None,
        });
    }
    let note_section = elf.add_section(
        Vec::new(),
        b".note.gnu.build-id".to_vec(),
        SectionKind::Note,
    );
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&(id.len() as u32).to_le_bytes());
    note.extend_from_slice(&3u32.to_le_bytes());
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(id);
    while note.len() % 4 != 0 {
        note.push(0);
    }
    elf.set_section_data(note_section, note, 4);
    elf.write().expect("a synthetic ELF")
}

/// One message into `ring`: defmt's frame bytes for string `index` and
/// `args` (already encoded).
fn log(rings: &Rings, cpu: usize, context: LogContext, stamp: u64, index: u16, args: &[u8]) {
    let ring = rings.ring(cpu, context).expect("a ring");
    let began = ring.begin(stamp);
    ring.write(began, &index.to_le_bytes());
    ring.write(began, args);
    ring.end(began);
}

fn str_arg(text: &str) -> Vec<u8> {
    let mut bytes = (text.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// The area's bytes, written as a kernel writes them.
pub fn area() -> Vec<u8> {
    let rings = Rings::new();
    rings.install(&BUILD_ID, AREA);
    for n in 0..24u32 {
        log(
            &rings,
            1,
            LogContext::Nmi,
            10_000 * u64::from(n),
            5,
            &n.to_le_bytes(),
        );
    }
    let mut scenario = str_arg("demo");
    scenario.extend_from_slice(&2u32.to_le_bytes());
    log(&rings, 0, LogContext::Normal, 1_000_000, 1, &scenario);
    let mut panic = 1u32.to_le_bytes().to_vec();
    panic.extend(str_arg("panicked at src/demo.rs:7:5:\noops"));
    log(&rings, 1, LogContext::Normal, 2_000_000, 2, &panic);
    // A message logged from inside another on CPU 1: dropped, counted.
    let ring = rings.ring(1, LogContext::Normal).expect("a ring");
    let outer = ring.begin(2_100_000);
    ring.write(outer, &6u16.to_le_bytes());
    let inner = ring.begin(2_100_001);
    assert_eq!(inner, Begin::Dropped);
    ring.write(inner, &5u16.to_le_bytes());
    ring.end(inner);
    ring.end(outer);
    let mut stop = 0u32.to_le_bytes().to_vec();
    stop.extend(str_arg("Nmi"));
    stop.extend_from_slice(&0xffff_ffff_8100_1234u64.to_le_bytes());
    log(&rings, 0, LogContext::Nmi, 2_500_000, 3, &stop);
    // A frame no ELF's table names.
    log(&rings, 0, LogContext::Nmi, 2_600_000, 999, &[]);
    log(&rings, 1, LogContext::Normal, 3_000_000, 4, &[]);
    // CPU 0 stopped half way through a message.
    let torn = rings.ring(0, LogContext::Normal).expect("a ring");
    let began = torn.begin(2_400_000);
    torn.write(began, &5u16.to_le_bytes());
    let mut bytes = vec![0u8; Rings::SIZE];
    rings.copy_to(&mut bytes);
    bytes
}

/// A crash record (2 CPUs) pointing at the area, as the kernel's
/// `install_log` leaves it.
pub fn record() -> Vec<u8> {
    let record = crashkit_record::CrashRecord::<2, 2>::new();
    record.set_log(AREA, Rings::SIZE as u64);
    let mut bytes = vec![0u8; crashkit_record::CrashRecord::<2, 2>::TOTAL_SIZE];
    record.snapshot(&mut bytes).expect("the record fits");
    bytes
}

/// 16 pages at 1 MiB, zero but for the area at [`AREA`].
struct Memory {
    area: Vec<u8>,
    page: [u8; 4096],
}

impl crashkit_dump_format::PhysMemory for Memory {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        self.page.fill(0);
        for (offset, slot) in self.page.iter_mut().enumerate() {
            let at = phys + offset as u64;
            if at >= AREA
                && let Some(&byte) = self.area.get((at - AREA) as usize)
            {
                *slot = byte;
            }
        }
        Some(&self.page)
    }
}

/// The dump, an ELF vmcore by crashkit's writer: the crash record's note
/// when `noted` (else the area is found by scanning, as in QEMU's dumps).
pub fn dump(noted: bool) -> Vec<u8> {
    use crashkit_dump_format::plan::{CpuState, DumpPlan};
    use crashkit_dump_format::write::WriteOptions;
    use crashkit_dump_format::{ControlState, PhysRange, Registers};
    let ranges = [PhysRange::new(0x10_0000, 16 * 4096)];
    let cpus = [CpuState {
        registers: Registers::default(),
        control: ControlState::default(),
        pid: None,
    }];
    let record = if noted { record() } else { Vec::new() };
    let plan = DumpPlan {
        dump_id: [5; 16],
        crash_time: 1_796_457_828,
        ranges: &ranges,
        exclusions: &[],
        direct_map: None,
        kernel_image: None,
        cpus: &cpus,
        panic_cpu: Some(1),
        vmcoreinfo: b"OSRELEASE=crash-log-test\nPAGESIZE=4096\n",
        crash_record: &record,
        exclude_zero_pages: true,
        extra_segments: 0,
    };
    let mut sink = super::VecSink::default();
    crashkit_dump_format::write_elf_dump(
        &plan,
        &mut Memory {
            area: area(),
            page: [0; 4096],
        },
        &mut sink,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .expect("the dump is written");
    sink.0
}
