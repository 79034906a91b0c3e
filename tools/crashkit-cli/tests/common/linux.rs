//! A small, deterministic dump of a Linux-like kernel, for the log and
//! address tests: 16 pages at physical 1 MiB with four-level page tables
//! (`init_top_pgt` at 1 MiB maps the kernel image range
//! 0xffffffff80000000 onwards to physical 0 with one 1 GiB page), a
//! printk ring whose layout VMCOREINFO gives with Linux 6.1's offsets, and
//! seven records: sequence numbers 10 to 16 (ten overwritten before them),
//! one whose text block wraps to the ring's start, one of two lines, one
//! without text, and one slot reused (not finalized). Then the kernel's
//! `init_uts_ns` (its release VMCOREINFO's `OSRELEASE`), `panic_cpu`, and
//! kallsyms tables VMCOREINFO locates ([`SYMBOLS`]: base-relative offsets
//! with absolute per-CPU symbols, each byte value its own token). Last,
//! ORC tables (format 1, as Linux 6.1's) and the panicking CPU's stack:
//! `panic`, called by `sysrq_handle_crash`, called by the system call
//! entry, whose `pt_regs` holds the user space registers.

use crashkit_dump_format::plan::{CpuState, DumpPlan};
use crashkit_dump_format::write::WriteOptions;
use crashkit_dump_format::{ControlState, PhysMemory, PhysRange, Registers};

/// `__START_KERNEL_map`.
const IMAGE: u64 = 0xffff_ffff_8000_0000;
/// Where the pages start.
pub const BASE: u64 = 0x10_0000;
const PML4: u64 = BASE;
const PDPT: u64 = BASE + 0x1000;
const PRB: u64 = BASE + 0x2000;
const RING: u64 = BASE + 0x2100;
const DESCS: u64 = BASE + 0x3000;
const INFOS: u64 = BASE + 0x4000;
/// The text data ring: 4096 bytes (size_bits 12).
pub const DATA: u64 = BASE + 0x5000;
/// `init_uts_ns` (and `panic_cpu` after it).
const UTS: u64 = BASE + 0x6000;
const PANIC_CPU: u64 = UTS + 0x200;
/// The kallsyms tables: count, relative base, token index, token table,
/// offsets, names.
pub const KALLSYMS: u64 = BASE + 0x7000;
const NUM_SYMS: u64 = KALLSYMS;
const RELATIVE_BASE: u64 = KALLSYMS + 8;
const TOKEN_INDEX: u64 = KALLSYMS + 0x10;
const TOKEN_TABLE: u64 = TOKEN_INDEX + 512;
const OFFSETS: u64 = KALLSYMS + 0x800;
const NAMES: u64 = KALLSYMS + 0x1000;
/// Linux's own copy of its VMCOREINFO text, in a page of its own (what a
/// scan finds when the dump has no note).
pub const VMCOREINFO_PAGE: u64 = BASE + 0x9000;
/// The ORC tables: addresses, then entries.
const ORC: u64 = BASE + 0xa000;
/// The panicking CPU's stack.
pub const STACK: u64 = BASE + 0xb000;
/// Its stack pointer (in the image mapping).
pub const RSP: u64 = IMAGE + STACK + 0x100;
const PAGES: usize = 16;
/// What `panic_cpu` holds.
pub const PANICKING: i32 = 0;

/// The kernel's symbols, by address: (type, name, address). Per-CPU
/// symbols first, at their offsets; the kernel's data below its text.
pub const SYMBOLS: [(char, &str, u64); 15] = [
    ('A', "fixed_percpu_data", 0),
    ('D', "cpu_number", 0x2_0000),
    ('D', "init_uts_ns", IMAGE + UTS),
    ('D', "panic_cpu", IMAGE + PANIC_CPU),
    ('R', "__start_orc_unwind_ip", IMAGE + ORC),
    (
        'R',
        "__start_orc_unwind",
        IMAGE + ORC + 4 * ORC_ENTRIES.len() as u64,
    ),
    (
        'R',
        "__stop_orc_unwind_ip",
        IMAGE + ORC + 4 * ORC_ENTRIES.len() as u64,
    ),
    (
        'R',
        "__stop_orc_unwind",
        IMAGE + ORC + 10 * ORC_ENTRIES.len() as u64,
    ),
    ('T', "startup_64", IMAGE + 0x100_0000),
    ('T', "_stext", IMAGE + 0x100_0000),
    ('T', "panic", IMAGE + 0x100_0100),
    ('t', "sysrq_handle_crash", IMAGE + 0x100_03f4),
    ('T', "entry_SYSCALL_64", IMAGE + 0x100_0500),
    ('T', "_etext", IMAGE + 0x100_0800),
    ('B', "_end", IMAGE + 0x100_1000),
];

/// The ORC entries: (address, sp_offset, flags) in format 1 (`sp_reg`
/// bits 0-3, `bp_reg` 4-7, `type` 8-9 with CALL 0 and REGS 1, `end` 10;
/// register 5 is RSP): the start-up code's end of stack, `panic` (CFA at
/// RSP + 16), `sysrq_handle_crash` (RSP + 8), the system call entry (a
/// pt_regs at RSP), and the terminator at `_etext` (all zero).
pub const ORC_ENTRIES: [(u64, i16, u16); 5] = [
    (IMAGE + 0x100_0000, 0, 1 << 10),
    (IMAGE + 0x100_0100, 16, 5),
    (IMAGE + 0x100_03f4, 8, 5),
    (IMAGE + 0x100_0500, 0, 5 | (1 << 8)),
    (IMAGE + 0x100_0800, 0, 0),
];

/// The panicking CPU's RIP: in `panic`.
pub const RIP: u64 = IMAGE + 0x100_0120;
/// The user space registers the system call entry saved.
pub const USER_RIP: u64 = 0x40_1000;
pub const USER_RSP: u64 = 0x7ffc_1000;

/// VMCOREINFO: the printk ring's layout as Linux 6.1 exports it.
pub fn vmcoreinfo() -> String {
    format!(
        "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\n\
         BUILD-ID=00112233445566778899aabbccddeeff00112233\n\
         SYMBOL(init_uts_ns)={:x}\nSYMBOL(_stext)={:x}\n\
         SYMBOL(kallsyms_num_syms)={:x}\nSYMBOL(kallsyms_relative_base)={:x}\n\
         SYMBOL(kallsyms_token_index)={:x}\nSYMBOL(kallsyms_token_table)={:x}\n\
         SYMBOL(kallsyms_offsets)={:x}\nSYMBOL(kallsyms_names)={:x}\n\
         SYMBOL(init_top_pgt)={:x}\nNUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\n\
         SYMBOL(prb)={:x}\n\
         OFFSET(printk_ringbuffer.desc_ring)=0\nOFFSET(printk_ringbuffer.text_data_ring)=48\n\
         OFFSET(prb_desc_ring.count_bits)=0\nOFFSET(prb_desc_ring.descs)=8\n\
         OFFSET(prb_desc_ring.infos)=16\nOFFSET(prb_desc_ring.head_id)=24\n\
         OFFSET(prb_desc_ring.tail_id)=32\nSIZE(prb_desc)=24\nOFFSET(prb_desc.state_var)=0\n\
         OFFSET(prb_desc.text_blk_lpos)=8\nOFFSET(prb_data_blk_lpos.begin)=0\n\
         OFFSET(prb_data_blk_lpos.next)=8\nSIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\n\
         OFFSET(printk_info.ts_nsec)=8\nOFFSET(printk_info.text_len)=16\n\
         OFFSET(printk_info.caller_id)=20\nOFFSET(prb_data_ring.size_bits)=0\n\
         OFFSET(prb_data_ring.data)=8\n",
        IMAGE + UTS,
        IMAGE + 0x100_0000,
        IMAGE + NUM_SYMS,
        IMAGE + RELATIVE_BASE,
        IMAGE + TOKEN_INDEX,
        IMAGE + TOKEN_TABLE,
        IMAGE + OFFSETS,
        IMAGE + NAMES,
        IMAGE + PML4,
        IMAGE + PRB
    )
}

/// The physical pages, built once.
pub struct Memory {
    pages: Vec<[u8; 4096]>,
}

impl Memory {
    fn put(&mut self, phys: u64, bytes: &[u8]) {
        for (at, &byte) in ((phys - BASE) as usize..).zip(bytes) {
            self.pages[at / 4096][at % 4096] = byte;
        }
    }

    fn put_u64(&mut self, phys: u64, value: u64) {
        self.put(phys, &value.to_le_bytes());
    }

    /// The pages with the tables, the ring and its records.
    pub fn new() -> Self {
        let mut memory = Self {
            pages: vec![[0u8; 4096]; PAGES],
        };
        // PML4[511] -> PDPT; PDPT[510] -> a 1 GiB page at physical 0.
        memory.put_u64(PML4 + 511 * 8, PDPT | 0x63);
        memory.put_u64(PDPT + 510 * 8, 0xe3);
        memory.put_u64(PRB, IMAGE + RING);
        // The descriptor ring: 8 descriptors (count_bits 3).
        memory.put_u64(RING, 3);
        memory.put_u64(RING + 8, IMAGE + DESCS);
        memory.put_u64(RING + 16, IMAGE + INFOS);
        // The text data ring: 4096 bytes.
        memory.put_u64(RING + 48, 12);
        memory.put_u64(RING + 56, IMAGE + DATA);
        // Records: (id, seq, text, state). Logical positions start in the
        // ring's fourth lap; the sixth record's block wraps.
        let records: [(u64, &[u8], u64); 8] = [
            (10, b"Linux version 6.1.0-synthetic", 2),
            (11, b"Command line: console=ttyS0", 2),
            (12, b"first line\n  second line", 2),
            (13, b"", 2),
            (14, b"a record committed, not yet finalized", 1),
            (15, b"a block that wraps to the start of the ring", 2),
            (16, b"Kernel panic - not syncing: synthetic", 2),
            (17, b"reserved, never finished", 0),
        ];
        let mut lpos = 3 * 4096 + 3900;
        for (id, text, state) in records {
            let slot = id & 7;
            let desc = DESCS + slot * 24;
            memory.put_u64(desc, (state << 62) | id);
            let info = INFOS + slot * 88;
            memory.put_u64(info, id);
            memory.put_u64(info + 8, id * 1_234_567_891);
            memory.put(info + 16, &(text.len() as u16).to_le_bytes());
            memory.put(
                info + 20,
                &(if id == 16 {
                    0x8000_0001u32
                } else {
                    id as u32 * 100
                })
                .to_le_bytes(),
            );
            if text.is_empty() {
                // No text: an odd begin, as Linux marks a data-less block.
                memory.put_u64(desc + 8, 1);
                memory.put_u64(desc + 16, 1);
                continue;
            }
            let size = (8 + text.len() as u64).div_ceil(8) * 8;
            let (mut begin, mut next) = (lpos, lpos + size);
            if begin >> 12 != next >> 12 {
                // It would wrap: it starts at the next lap's beginning.
                begin = next & !4095;
                next = begin + size;
                // The descriptor keeps the position where the unused tail
                // of the lap begins.
                memory.put_u64(desc + 8, lpos);
                memory.put_u64(desc + 16, next);
            } else {
                memory.put_u64(desc + 8, begin);
                memory.put_u64(desc + 16, next);
            }
            let at = DATA + (begin & 4095);
            memory.put_u64(at, id);
            memory.put(at + 8, text);
            lpos = next;
        }
        // Oldest and newest descriptor ids.
        memory.put_u64(RING + 32, 10);
        memory.put_u64(RING + 24, 17);
        // new_utsname: sysname, nodename, release (65 bytes each).
        memory.put(UTS, b"Linux");
        memory.put(UTS + 130, b"6.1.0-synthetic");
        memory.put(PANIC_CPU, &PANICKING.to_le_bytes());
        memory.put_kallsyms();
        memory.put_orc();
        memory.put(VMCOREINFO_PAGE, vmcoreinfo().as_bytes());
        memory
    }

    /// kallsyms as scripts/kallsyms lays it out, with 256 one-byte tokens
    /// (byte value b stands for itself; names are plain ASCII).
    fn put_kallsyms(&mut self) {
        self.put(NUM_SYMS, &(SYMBOLS.len() as u32).to_le_bytes());
        // The lowest kernel address, as Linux's relative base is.
        let relative_base = IMAGE + UTS;
        self.put_u64(RELATIVE_BASE, relative_base);
        for byte in 0..256u64 {
            self.put(TOKEN_INDEX + byte * 2, &((byte * 2) as u16).to_le_bytes());
            self.put(TOKEN_TABLE + byte * 2, &[byte as u8, 0]);
        }
        let mut names = Vec::new();
        for (index, (kind, name, addr)) in SYMBOLS.iter().enumerate() {
            // Per-CPU offsets as they are; the others below the base by
            // their distance, negated and less one.
            let raw = if *addr < 1 << 32 {
                *addr as u32
            } else {
                !(addr - relative_base) as u32
            };
            self.put(OFFSETS + index as u64 * 4, &raw.to_le_bytes());
            names.push(1 + name.len() as u8);
            names.push(*kind as u8);
            names.extend_from_slice(name.as_bytes());
        }
        self.put(NAMES, &names);
    }
}

impl Memory {
    /// The ORC tables and the stack they unwind.
    fn put_orc(&mut self) {
        let entries = ORC + 4 * ORC_ENTRIES.len() as u64;
        for (index, &(address, sp_offset, flags)) in (0u64..).zip(&ORC_ENTRIES) {
            let at = IMAGE + ORC + 4 * index;
            let relative = address.wrapping_sub(at) as i64 as i32;
            self.put(ORC + 4 * index, &relative.to_le_bytes());
            self.put(entries + 6 * index, &sp_offset.to_le_bytes());
            self.put(entries + 6 * index + 4, &flags.to_le_bytes());
        }
        // RSP: panic's frame; its return address into sysrq_handle_crash
        // at RSP + 8; sysrq_handle_crash's into the entry at RSP + 16; the
        // pt_regs at RSP + 24 (r15 first; ip, cs, flags, sp, ss last).
        let rsp = STACK + 0x100;
        self.put_u64(rsp, 0x1111);
        self.put_u64(rsp + 8, IMAGE + 0x100_03fa);
        self.put_u64(rsp + 16, IMAGE + 0x100_0540);
        let regs = rsp + 24;
        for index in 0..21u64 {
            self.put_u64(regs + 8 * index, 0xa000 + index);
        }
        self.put_u64(regs + 16 * 8, USER_RIP);
        self.put_u64(regs + 17 * 8, 0x33);
        self.put_u64(regs + 19 * 8, USER_RSP);
    }
}

impl PhysMemory for Memory {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        self.pages.get(((phys - BASE) / 4096) as usize)
    }
}

/// The dump as an ELF vmcore written by crashkit's writer (one CPU).
pub fn elf() -> Vec<u8> {
    elf_excluding(&[])
}

/// The dump with the pages of `excluded` left out (excluded, as a filter
/// leaves pages out).
pub fn elf_excluding(excluded: &[PhysRange]) -> Vec<u8> {
    elf_with(excluded, vmcoreinfo().as_bytes())
}

/// The dump whose VMCOREINFO note is `note` (none when empty; the text
/// stays in memory, where a scan finds it).
pub fn elf_with_note(note: &[u8]) -> Vec<u8> {
    elf_with(&[], note)
}

fn elf_with(excluded: &[PhysRange], note: &[u8]) -> Vec<u8> {
    let ranges = [PhysRange::new(BASE, PAGES as u64 * 4096)];
    let cpus = [CpuState {
        registers: Registers {
            rip: RIP,
            rsp: RSP,
            cs: 0x10,
            ..Registers::default()
        },
        control: ControlState::default(),
        pid: None,
    }];
    let plan = DumpPlan {
        dump_id: [7; 16],
        crash_time: 1_796_457_828,
        ranges: &ranges,
        exclusions: excluded,
        direct_map: None,
        kernel_image: None,
        cpus: &cpus,
        panic_cpu: Some(0),
        vmcoreinfo: note,
        crash_record: &[],
        exclude_zero_pages: true,
        extra_segments: 0,
    };
    let mut sink = super::VecSink::default();
    crashkit_dump_format::write_elf_dump(
        &plan,
        &mut Memory::new(),
        &mut sink,
        &mut |_| false,
        WriteOptions::default(),
        |_| {},
    )
    .unwrap();
    sink.0
}

/// File offsets of the bytes of the ORC tables and of the stack's first
/// 200 bytes (where the frames and the pt_regs are).
pub fn orc_offsets(file: &[u8]) -> Vec<usize> {
    let dump = crashkit_dump_format::ElfDump::parse(file).unwrap();
    let page = |phys: u64| dump.classify(phys).file_offset.unwrap() as usize;
    let tables = page(ORC)..page(ORC) + 10 * ORC_ENTRIES.len();
    let stack = page(STACK) + 0x100..page(STACK) + 0x100 + 200;
    tables.chain(stack).collect()
}

/// The physical range of the ORC tables' page.
pub fn orc_page() -> PhysRange {
    PhysRange::new(ORC, 4096)
}

/// File offsets of the dump's pages that hold the tables, the ring,
/// `init_uts_ns`, kallsyms and the VMCOREINFO copy (the first 10 pages
/// from `BASE`), from the ELF reader.
pub fn page_offsets(file: &[u8]) -> Vec<usize> {
    let dump = crashkit_dump_format::ElfDump::parse(file).unwrap();
    (0..10u64)
        .filter_map(|index| dump.classify(BASE + index * 4096).file_offset)
        .map(|offset| offset as usize)
        .collect()
}

/// A kernel ELF for the synthetic dump with DWARF of its own making (gimli's
/// writer; object's ELF writer) and the dump's build-id: `panic` in
/// `kernel/panic.c` (line 300 from its start, 321 from +0x20), and
/// `sysrq_handle_crash` in `drivers/tty/sysrq.c`, whose first 16 bytes are
/// `crash_now` inlined from line 150 (its own line 10). The system call
/// entry has no DWARF (assembly, as Linux's is).
pub fn debug_elf() -> Vec<u8> {
    use gimli::write::{
        Address, AttributeValue, DwarfUnit, EndianVec, LineProgram, LineString, Sections,
    };
    use object::write::{Object, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
    };

    let panic = IMAGE + 0x100_0100;
    let sysrq = IMAGE + 0x100_03f4;
    let encoding = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let mut dwarf = DwarfUnit::new(encoding);
    let mut program = LineProgram::new(
        encoding,
        gimli::LineEncoding::default(),
        LineString::String(b"/build/linux".to_vec()),
        None,
        LineString::String(b"kernel/panic.c".to_vec()),
        None,
    );
    let directory = program.default_directory();
    let panic_c = program.add_file(
        LineString::String(b"kernel/panic.c".to_vec()),
        directory,
        None,
    );
    let sysrq_c = program.add_file(
        LineString::String(b"drivers/tty/sysrq.c".to_vec()),
        directory,
        None,
    );
    for (start, rows, end) in [
        (
            panic,
            &[(0u64, panic_c, 300u64), (0x20, panic_c, 321)][..],
            0x2f4u64,
        ),
        (sysrq, &[(0, sysrq_c, 10), (0x10, sysrq_c, 151)][..], 0x10c),
    ] {
        program.begin_sequence(Some(Address::Constant(start)));
        for &(offset, file, line) in rows {
            let row = program.row();
            row.address_offset = offset;
            row.file = file;
            row.line = line;
            program.generate_row();
        }
        program.end_sequence(end);
    }
    dwarf.unit.line_program = program;
    let root = dwarf.unit.root();
    let cu = dwarf.unit.get_mut(root);
    cu.set(
        gimli::DW_AT_name,
        AttributeValue::String(b"kernel/panic.c".to_vec()),
    );
    cu.set(
        gimli::DW_AT_low_pc,
        AttributeValue::Address(Address::Constant(IMAGE + 0x100_0000)),
    );
    cu.set(gimli::DW_AT_high_pc, AttributeValue::Udata(0x1000));
    let function = |dwarf: &mut DwarfUnit, name: &[u8], low: u64, size: u64| {
        let id = dwarf.unit.add(root, gimli::DW_TAG_subprogram);
        let entry = dwarf.unit.get_mut(id);
        entry.set(gimli::DW_AT_name, AttributeValue::String(name.to_vec()));
        entry.set(
            gimli::DW_AT_low_pc,
            AttributeValue::Address(Address::Constant(low)),
        );
        entry.set(gimli::DW_AT_high_pc, AttributeValue::Udata(size));
        id
    };
    function(&mut dwarf, b"panic", panic, 0x2f4);
    let outer = function(&mut dwarf, b"sysrq_handle_crash", sysrq, 0x10c);
    let inline = dwarf.unit.add(root, gimli::DW_TAG_subprogram);
    let entry = dwarf.unit.get_mut(inline);
    entry.set(
        gimli::DW_AT_name,
        AttributeValue::String(b"crash_now".to_vec()),
    );
    entry.set(
        gimli::DW_AT_inline,
        AttributeValue::Inline(gimli::DW_INL_inlined),
    );
    let inlined = dwarf.unit.add(outer, gimli::DW_TAG_inlined_subroutine);
    let entry = dwarf.unit.get_mut(inlined);
    entry.set(
        gimli::DW_AT_abstract_origin,
        AttributeValue::UnitRef(inline),
    );
    entry.set(
        gimli::DW_AT_low_pc,
        AttributeValue::Address(Address::Constant(sysrq)),
    );
    entry.set(gimli::DW_AT_high_pc, AttributeValue::Udata(0x10));
    entry.set(
        gimli::DW_AT_call_file,
        AttributeValue::FileIndex(Some(sysrq_c)),
    );
    entry.set(gimli::DW_AT_call_line, AttributeValue::Udata(150));
    let mut sections = Sections::new(EndianVec::new(gimli::LittleEndian));
    dwarf.write(&mut sections).unwrap();

    let mut elf = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    sections
        .for_each(|id, data| -> Result<(), ()> {
            if !data.slice().is_empty() {
                let section = elf.add_section(
                    Vec::new(),
                    id.name().as_bytes().to_vec(),
                    SectionKind::Debug,
                );
                elf.set_section_data(section, data.slice().to_vec(), 1);
            }
            Ok(())
        })
        .unwrap();
    for (_, name, addr) in SYMBOLS
        .iter()
        .filter(|(kind, ..)| matches!(kind, 'T' | 't'))
    {
        elf.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: *addr,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Absolute,
            flags: SymbolFlags::None,
        });
    }
    let notes = elf.add_section(Vec::new(), b".notes".to_vec(), SectionKind::Note);
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&20u32.to_le_bytes());
    note.extend_from_slice(&3u32.to_le_bytes());
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(&[
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff, 0x00, 0x11, 0x22, 0x33,
    ]);
    elf.set_section_data(notes, note, 4);
    elf.write().unwrap()
}
