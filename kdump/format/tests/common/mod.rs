//! Test fixtures shared by the format crate's integration tests: a
//! synthetic machine (memory with a known pattern, CPUs with known
//! registers) and sinks (in memory, failing, cut).

#![allow(dead_code)] // each test binary uses a part

pub mod kdump;
pub mod mutations;

use crashkit_dump_format::plan::{CpuState, DumpPlan, KernelImage};
use crashkit_dump_format::write::{DumpError, DumpStats, WriteOptions};
use crashkit_dump_format::{ControlState, DumpSink, PAGE_SIZE, PhysMemory, PhysRange, Registers};

/// Physical memory as a sparse map of pages; unmapped pages read as zero,
/// pages in `unreadable` fail.
pub struct Memory {
    pub pages: std::collections::HashMap<u64, Box<[u8; 4096]>>,
    pub unreadable: Vec<u64>,
    zero: Box<[u8; 4096]>,
}

impl Memory {
    /// Memory over `ranges` where page `p` holds a pattern derived from its
    /// address, except the pages for which `zero(p)` is true.
    pub fn patterned(ranges: &[PhysRange], zero: impl Fn(u64) -> bool) -> Self {
        let mut pages = std::collections::HashMap::new();
        for range in ranges {
            for phys in (range.start..range.start + range.len).step_by(PAGE_SIZE as usize) {
                if !zero(phys) {
                    pages.insert(phys, Box::new(pattern(phys)));
                }
            }
        }
        Self {
            pages,
            unreadable: Vec::new(),
            zero: Box::new([0; 4096]),
        }
    }

    /// The bytes the machine holds at `phys`.
    pub fn expected(&self, phys: u64) -> [u8; 4096] {
        self.pages.get(&phys).map_or([0; 4096], |p| **p)
    }
}

impl PhysMemory for Memory {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        if self.unreadable.contains(&phys) {
            return None;
        }
        Some(self.pages.get(&phys).map_or(&*self.zero, |p| &**p))
    }
}

/// A page full of bytes derived from its address (never all zero).
pub fn pattern(phys: u64) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    let mut state = phys ^ 0x9e37_79b9_7f4a_7c15;
    for chunk in page.chunks_mut(8) {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        chunk.copy_from_slice(&(state | 1).to_le_bytes());
    }
    page
}

/// A growable in-memory file.
#[derive(Default)]
pub struct VecSink {
    pub bytes: Vec<u8>,
    pub writes: usize,
    pub flushes: usize,
}

impl DumpSink for VecSink {
    type Error = std::convert::Infallible;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error> {
        let start = offset as usize;
        if self.bytes.len() < start + bytes.len() {
            self.bytes.resize(start + bytes.len(), 0);
        }
        self.bytes[start..start + bytes.len()].copy_from_slice(bytes);
        self.writes += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.flushes += 1;
        Ok(())
    }
}

/// A sink over a fixed-size "device" that fails writes past its end, and
/// fails `transient` times before each success when asked.
pub struct DeviceSink {
    pub bytes: Vec<u8>,
    pub transient_failures: u32,
    failures_left: u32,
}

impl DeviceSink {
    /// A device of `len` bytes filled with `fill`.
    pub fn new(len: usize, fill: u8) -> Self {
        Self {
            bytes: vec![fill; len],
            transient_failures: 0,
            failures_left: 0,
        }
    }
}

/// Why a [`DeviceSink`] refused a write.
#[derive(Debug, PartialEq, Eq)]
pub enum DeviceError {
    NoSpace,
    Transient,
}

impl DumpSink for DeviceSink {
    type Error = DeviceError;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), DeviceError> {
        if self.failures_left > 0 {
            self.failures_left -= 1;
            return Err(DeviceError::Transient);
        }
        self.failures_left = self.transient_failures;
        let start = offset as usize;
        let Some(dst) = self.bytes.get_mut(start..start + bytes.len()) else {
            return Err(DeviceError::NoSpace);
        };
        dst.copy_from_slice(bytes);
        Ok(())
    }
}

/// CPU `i`'s registers: every slot distinct and recognisable.
pub fn registers(cpu: u32) -> Registers {
    let mut slots: [u64; 27] =
        std::array::from_fn(|slot| 0xc0de_0000_0000_0000 | (u64::from(cpu) << 16) | slot as u64);
    slots[16] = 0xffff_ffff_8010_0000 + u64::from(cpu) * 0x10; // rip
    slots[17] = 0x08; // cs
    slots[20] = 0x10; // ss
    Registers::from_array(slots)
}

/// CPU `i`'s full state.
pub fn cpu_state(cpu: u32) -> CpuState {
    CpuState {
        registers: registers(cpu),
        control: ControlState {
            cpu,
            apic_id: cpu * 2,
            cr0: Some(0x8005_0033),
            cr3: Some(0x1000 + u64::from(cpu) * 0x1000),
            cr4: Some(0x20),
            efer: Some(0xd01),
            gs_base: Some(0xffff_8880_0000_0000 + u64::from(cpu)),
            ..ControlState::default()
        },
        pid: None,
    }
}

/// The standard synthetic machine of the tests: two RAM ranges with a gap,
/// a kernel image in the first, four CPUs.
pub struct Machine {
    pub ranges: Vec<PhysRange>,
    pub exclusions: Vec<PhysRange>,
    pub cpus: Vec<CpuState>,
    pub vmcoreinfo: Vec<u8>,
    pub record: Vec<u8>,
    pub kernel: Option<KernelImage>,
}

impl Machine {
    pub fn new() -> Self {
        let mut info = [0u8; 256];
        let mut writer = crashkit_dump_format::vmcoreinfo::VmcoreInfoWriter::new(&mut info);
        writer
            .os_release("crashkit-test")
            .page_size(4096)
            .crash_time(1_733_000_000);
        let vmcoreinfo = writer.as_bytes().to_vec();
        Self {
            ranges: vec![
                PhysRange::new(0x1000, 0x9f000),
                PhysRange::new(0x10_0000, 0x40_0000),
            ],
            exclusions: vec![PhysRange::new(0x20_0800, 0x10)],
            cpus: (0..4).map(cpu_state).collect(),
            vmcoreinfo,
            record: b"CRASHKIT-record-bytes".to_vec(),
            kernel: Some(KernelImage {
                phys_start: 0x10_0000,
                virt_start: 0xffff_ffff_8010_0000,
                len: 0x20_0000,
            }),
        }
    }

    pub fn plan(&self) -> DumpPlan<'_> {
        DumpPlan {
            dump_id: *b"0123456789abcdef",
            crash_time: 1_733_000_000,
            ranges: &self.ranges,
            exclusions: &self.exclusions,
            direct_map: Some(0xffff_8880_0000_0000),
            kernel_image: self.kernel,
            cpus: &self.cpus,
            panic_cpu: Some(2),
            vmcoreinfo: &self.vmcoreinfo,
            crash_record: &self.record,
            exclude_zero_pages: true,
            extra_segments: 1024,
        }
    }
}

/// Pages of this machine that are zero: every 16th page and a run.
pub fn standard_zero(phys: u64) -> bool {
    (phys / PAGE_SIZE) % 16 == 3 || (0x30_0000..0x34_0000).contains(&phys)
}

/// Write `plan` into a fresh in-memory file.
pub fn write(plan: &DumpPlan<'_>, memory: &mut Memory) -> (Vec<u8>, DumpStats) {
    let mut sink = VecSink::default();
    let stats = crashkit_dump_format::write_elf_dump(
        plan,
        memory,
        &mut sink,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap_or_else(|error: DumpError<_>| panic!("dump failed: {error:?}"));
    (sink.bytes, stats)
}

/// An ELF vmcore laid out as QEMU 7.2's `dump-guest-memory` writes one
/// (facts in ../shared/notes/dump-producers.md): `e_ehsize` 8, a 2-entry
/// section header table at 64, program headers at 192; per CPU a `CORE`
/// note (x86_64, or i386 when `i386` is set, with `EM_386`), then per CPU a
/// `QEMU` CPU-state note; one PT_LOAD per range, identity addresses.
pub fn qemu_style_elf(ranges: &[PhysRange], memory: &Memory, cpus: u32, i386: bool) -> Vec<u8> {
    use crashkit_dump_format::notes::{self, prstatus};
    let mut notes = Vec::new();
    let push_note = |notes: &mut Vec<u8>, name: &[u8], n_type: u32, desc: &[u8]| {
        let (head, len) = notes::encode_head(name, n_type, desc.len() as u32);
        notes.extend_from_slice(&head[..len]);
        notes.extend_from_slice(desc);
        notes.resize(notes.len() + (notes::pad4(desc.len()) - desc.len()), 0);
    };
    for cpu in 0..cpus {
        if i386 {
            let mut desc = [0u8; 144];
            desc[24..28].copy_from_slice(&(cpu + 1).to_le_bytes());
            desc[72 + 12 * 4..72 + 13 * 4].copy_from_slice(&(0x7c00 + cpu).to_le_bytes());
            push_note(&mut notes, b"CORE", 1, &desc);
        } else {
            push_note(
                &mut notes,
                b"CORE",
                1,
                &prstatus::encode_x86_64(cpu + 1, &registers(cpu)),
            );
        }
    }
    for cpu in 0..cpus {
        let mut state = [0u8; 432];
        state[0..4].copy_from_slice(&1u32.to_le_bytes());
        state[4..8].copy_from_slice(&432u32.to_le_bytes());
        state[136..144].copy_from_slice(&registers(cpu).rip.to_le_bytes());
        state[392 + 24..392 + 32]
            .copy_from_slice(&(0x9000 + u64::from(cpu) * 0x1000).to_le_bytes());
        push_note(&mut notes, b"QEMU", 0, &state);
    }
    let phnum = 1 + ranges.len();
    let phoff = 192usize;
    let notes_offset = phoff + phnum * 56;
    let mut data_offset = notes_offset + notes.len();
    let mut file = vec![0u8; data_offset];
    let mut header = crashkit_dump_format::elf::core_header(phoff as u64, phnum as u16, 64, 2, 0);
    header.e_ehsize = 8;
    if i386 {
        header.e_machine = crashkit_dump_format::elf::EM_386;
    }
    file[..64].copy_from_slice(&crashkit_dump_format::elf::encode_header(&header));
    let mut program_headers = vec![crashkit_dump_format::elf::ProgramHeader {
        p_type: crashkit_dump_format::elf::PT_NOTE,
        p_flags: 0,
        p_offset: notes_offset as u64,
        p_vaddr: 0,
        p_paddr: 0,
        p_filesz: notes.len() as u64,
        p_memsz: notes.len() as u64,
        p_align: 0,
    }];
    for range in ranges {
        program_headers.push(crashkit_dump_format::elf::ProgramHeader {
            p_type: crashkit_dump_format::elf::PT_LOAD,
            p_flags: 0,
            p_offset: data_offset as u64,
            p_vaddr: 0,
            p_paddr: range.start,
            p_filesz: range.len,
            p_memsz: range.len,
            p_align: 0,
        });
        data_offset += range.len as usize;
    }
    for (i, ph) in program_headers.iter().enumerate() {
        file[phoff + i * 56..phoff + (i + 1) * 56]
            .copy_from_slice(&crashkit_dump_format::elf::encode_program_header(ph));
    }
    file[notes_offset..notes_offset + notes.len()].copy_from_slice(&notes);
    for range in ranges {
        for phys in (range.start..range.start + range.len).step_by(PAGE_SIZE as usize) {
            file.extend_from_slice(&memory.expected(phys));
        }
    }
    file
}
