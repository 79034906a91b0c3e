//! crashkit's own ELF notes (name `CRASHKIT`), defined byte by byte.
//!
//! All integers little-endian; every descriptor starts with the fields
//! listed and may grow at its end in later versions (a reader takes the
//! fields it knows from a descriptor at least as long as version 1's).
//!
//! Types are `0x6b63_0000` ("ck") plus a number: readelf and gdb take the
//! small numbers 1 to 4 in a core file for `NT_PRSTATUS`, `NT_FPREGSET`,
//! `NT_PRPSINFO` and `NT_TASKSTRUCT` whatever the owner name, so crashkit's
//! notes keep clear of them (found by the readelf check).
//!
//! | type | name | descriptor |
//! |------|------|------------|
//! | 0x6b630001 | [`DumpIdentity`] | 80 bytes: which dump this is and how it was written |
//! | 0x6b630002 | crash record | the crash record's bytes (`docs/crash-record.md`) |
//! | 0x6b630003 | [`ControlState`] | 96 bytes per CPU: control registers for address translation |
//! | 0x6b630004 | memory map | `(start, length)` u64 pairs: the physical memory the dump covers |
//! | 0x6b630005 | [`CompletionMarker`] | 48 bytes, written last: the dump is complete |
//!
//! The memory map lets a reader tell an excluded page (inside the map, in
//! no segment) from a hole (outside the map). The completion marker's
//! protocol is in [`CompletionMarker`] and `docs/dump-formats.md`.

use crate::bytes::{array_at, put, put_u32, put_u64, u32_at, u64_at};

/// `n_type` of the [`DumpIdentity`] note.
pub const NT_IDENTITY: u32 = 0x6b63_0001;
/// `n_type` of the crash-record note.
pub const NT_CRASH_RECORD: u32 = 0x6b63_0002;
/// `n_type` of a per-CPU [`ControlState`] note.
pub const NT_CONTROL_STATE: u32 = 0x6b63_0003;
/// `n_type` of the memory-map note.
pub const NT_MEMORY_MAP: u32 = 0x6b63_0004;
/// `n_type` of the [`CompletionMarker`] note.
pub const NT_COMPLETION: u32 = 0x6b63_0005;

/// The format version crashkit writes in [`DumpIdentity::version`]. A reader
/// refuses a higher major version it does not know (see `docs/dump-formats.md`).
pub const FORMAT_VERSION: u32 = 1;

/// [`DumpIdentity::flags`]: a segment's bytes past `p_filesz` (up to
/// `p_memsz`) are zero pages left out of the file, not excluded ones.
pub const FLAG_ZERO_TAILS: u32 = 1 << 0;

/// `p_vaddr` crashkit writes for memory with no known virtual address, and
/// the "none" value of the identity's address fields.
pub const NO_ADDRESS: u64 = u64::MAX;

/// Which dump this is and how it was written (note type 0x6b630001, 80 bytes).
///
/// | offset | field |
/// |---|---|
/// | 0 | u32 version ([`FORMAT_VERSION`]) |
/// | 4 | u32 flags ([`FLAG_ZERO_TAILS`]) |
/// | 8 | 16 bytes dump id |
/// | 24 | u64 crash time, seconds since 1970 (0 unknown) |
/// | 32 | u64 page size |
/// | 40 | u64 direct-map offset: virtual = physical + this ([`NO_ADDRESS`] none) |
/// | 48 | u64 kernel image physical start ([`NO_ADDRESS`] none) |
/// | 56 | u64 kernel image virtual start ([`NO_ADDRESS`] none) |
/// | 64 | u64 kernel image length |
/// | 72 | u32 CPU count, u32 panicking CPU (u32::MAX none) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpIdentity {
    /// Format version.
    pub version: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// The random id that names this dump; the completion marker repeats it.
    pub dump_id: [u8; 16],
    /// Seconds since 1970 at the crash, 0 if unknown.
    pub crash_time: u64,
    /// The page size of the dump.
    pub page_size: u64,
    /// `virtual = physical + direct_map` for the memory ranges, if known.
    pub direct_map: Option<u64>,
    /// The kernel image: `(physical start, virtual start, length)`.
    pub kernel_image: Option<(u64, u64, u64)>,
    /// The number of CPUs with a `CORE` note.
    pub cpu_count: u32,
    /// The index of the panicking CPU, whose note comes first.
    pub panic_cpu: Option<u32>,
}

impl DumpIdentity {
    /// Descriptor size of version 1.
    pub const SIZE: usize = 80;

    /// The descriptor bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut d = [0u8; Self::SIZE];
        put_u32(&mut d, 0, self.version);
        put_u32(&mut d, 4, self.flags);
        put(&mut d, 8, &self.dump_id);
        put_u64(&mut d, 24, self.crash_time);
        put_u64(&mut d, 32, self.page_size);
        put_u64(&mut d, 40, self.direct_map.unwrap_or(NO_ADDRESS));
        let (phys, virt, len) = self.kernel_image.unwrap_or((NO_ADDRESS, NO_ADDRESS, 0));
        put_u64(&mut d, 48, phys);
        put_u64(&mut d, 56, virt);
        put_u64(&mut d, 64, len);
        put_u32(&mut d, 72, self.cpu_count);
        put_u32(&mut d, 76, self.panic_cpu.unwrap_or(u32::MAX));
        d
    }

    /// Decode a descriptor of at least [`SIZE`](Self::SIZE) bytes.
    pub fn decode(desc: &[u8]) -> Option<Self> {
        let some = |v: u64| (v != NO_ADDRESS).then_some(v);
        let phys = u64_at(desc, 48)?;
        let virt = u64_at(desc, 56)?;
        let len = u64_at(desc, 64)?;
        let panic_cpu = u32_at(desc, 76)?;
        Some(Self {
            version: u32_at(desc, 0)?,
            flags: u32_at(desc, 4)?,
            dump_id: array_at(desc, 8)?,
            crash_time: u64_at(desc, 24)?,
            page_size: u64_at(desc, 32)?,
            direct_map: some(u64_at(desc, 40)?),
            kernel_image: (phys != NO_ADDRESS && virt != NO_ADDRESS).then_some((phys, virt, len)),
            cpu_count: u32_at(desc, 72)?,
            panic_cpu: (panic_cpu != u32::MAX).then_some(panic_cpu),
        })
    }
}

/// One CPU's control state (note type 0x6b630003, 96 bytes), so that virtual
/// addresses can be translated offline through the CPU's own page tables.
///
/// | offset | field |
/// |---|---|
/// | 0 | u32 CPU index (the `CORE` note's `pr_pid` is this + 1) |
/// | 4 | u32 APIC id |
/// | 8 | u32 valid mask: bit n set when field n below was captured |
/// | 12 | u32 reserved, 0 |
/// | 16 | u64 CR0 (bit 0), CR2 (1), CR3 (2), CR4 (3), EFER (4), FS base (5), GS base (6), kernel GS base (7), IDTR base (8), GDTR base (9) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the architectural registers of the same name
pub struct ControlState {
    pub cpu: u32,
    pub apic_id: u32,
    pub cr0: Option<u64>,
    pub cr2: Option<u64>,
    pub cr3: Option<u64>,
    pub cr4: Option<u64>,
    pub efer: Option<u64>,
    pub fs_base: Option<u64>,
    pub gs_base: Option<u64>,
    pub kernel_gs_base: Option<u64>,
    pub idtr_base: Option<u64>,
    pub gdtr_base: Option<u64>,
}

impl ControlState {
    /// CPU `cpu` with no control register known (const, for a `static`).
    pub const fn unknown(cpu: u32) -> Self {
        Self {
            cpu,
            apic_id: 0,
            cr0: None,
            cr2: None,
            cr3: None,
            cr4: None,
            efer: None,
            fs_base: None,
            gs_base: None,
            kernel_gs_base: None,
            idtr_base: None,
            gdtr_base: None,
        }
    }

    /// Descriptor size of version 1.
    pub const SIZE: usize = 96;

    /// Register names in field order.
    pub const NAMES: [&'static str; 10] = [
        "cr0",
        "cr2",
        "cr3",
        "cr4",
        "efer",
        "fs_base",
        "gs_base",
        "kernel_gs_base",
        "idtr_base",
        "gdtr_base",
    ];

    /// The ten registers in field order.
    pub fn fields(&self) -> [Option<u64>; 10] {
        [
            self.cr0,
            self.cr2,
            self.cr3,
            self.cr4,
            self.efer,
            self.fs_base,
            self.gs_base,
            self.kernel_gs_base,
            self.idtr_base,
            self.gdtr_base,
        ]
    }

    /// The descriptor bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut d = [0u8; Self::SIZE];
        put_u32(&mut d, 0, self.cpu);
        put_u32(&mut d, 4, self.apic_id);
        let mut valid = 0u32;
        for (i, field) in self.fields().into_iter().enumerate() {
            if let Some(value) = field {
                valid |= 1 << i;
                put_u64(&mut d, 16 + 8 * i, value);
            }
        }
        put_u32(&mut d, 8, valid);
        d
    }

    /// Decode a descriptor of at least [`SIZE`](Self::SIZE) bytes.
    pub fn decode(desc: &[u8]) -> Option<Self> {
        if desc.len() < Self::SIZE {
            return None;
        }
        let valid = u32_at(desc, 8)?;
        let field = |i: usize| {
            let value = u64_at(desc, 16 + 8 * i)?;
            (valid & (1 << i) != 0).then_some(value)
        };
        Some(Self {
            cpu: u32_at(desc, 0)?,
            apic_id: u32_at(desc, 4)?,
            cr0: field(0),
            cr2: field(1),
            cr3: field(2),
            cr4: field(3),
            efer: field(4),
            fs_base: field(5),
            gs_base: field(6),
            kernel_gs_base: field(7),
            idtr_base: field(8),
            gdtr_base: field(9),
        })
    }
}

/// The completion marker (note type 0x6b630005, 48 bytes), written last.
///
/// | offset | field |
/// |---|---|
/// | 0 | 16 bytes dump id (equal to the identity note's) |
/// | 16 | u64 total length: the dump's bytes from offset 0 |
/// | 24 | u64 header extent: the checksummed header bytes from offset 0 |
/// | 32 | u32 header checksum (CRC-32C, see below) |
/// | 36 | u32 state: 0 in progress (all-zero descriptor), 1 complete |
/// | 40 | u32 reserved, 0 |
/// | 44 | u32 marker checksum: CRC-32C of bytes 0..44 |
///
/// The header checksum is the CRC-32C of, in this order: the file bytes
/// from 64 up to the header extent (program headers, reserved slots,
/// notes), with this marker's 48 descriptor bytes taken as zeros; then the
/// 64-byte ELF header with `e_flags` bit 0 clear. The writer writes the
/// whole header area with this descriptor zeroed before any page, and the
/// marker only after every page and program header (with a sink flush in
/// between), then clears `e_flags` bit 0. So a dump cut at any byte fails
/// one of: bit 0 clear, marker checksum, id match, header checksum, file at
/// least the total length; and a marker left by an earlier dump on a reused
/// device names a different id or fails the header checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompletionMarker {
    /// The dump id it completes.
    pub dump_id: [u8; 16],
    /// The dump's total length in bytes.
    pub total_length: u64,
    /// The end of the checksummed header area.
    pub header_extent: u64,
    /// The header checksum described above.
    pub header_checksum: u32,
    /// 1 when complete.
    pub state: u32,
}

impl CompletionMarker {
    /// Descriptor size.
    pub const SIZE: usize = 48;
    /// [`state`](Self::state) of a complete dump.
    pub const COMPLETE: u32 = 1;

    /// The descriptor bytes, with the marker checksum.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut d = [0u8; Self::SIZE];
        put(&mut d, 0, &self.dump_id);
        put_u64(&mut d, 16, self.total_length);
        put_u64(&mut d, 24, self.header_extent);
        put_u32(&mut d, 32, self.header_checksum);
        put_u32(&mut d, 36, self.state);
        let crc = crate::crc32c::checksum(d.get(..44).unwrap_or(&[]));
        put_u32(&mut d, 44, crc);
        d
    }

    /// Decode a descriptor: `None` if it is shorter than
    /// [`SIZE`](Self::SIZE) or its marker checksum does not match (an
    /// all-zero descriptor, the "in progress" state, fails it).
    pub fn decode(desc: &[u8]) -> Option<Self> {
        let body = desc.get(..44)?;
        if crate::crc32c::checksum(body) != u32_at(desc, 44)? {
            return None;
        }
        Some(Self {
            dump_id: array_at(desc, 0)?,
            total_length: u64_at(desc, 16)?,
            header_extent: u64_at(desc, 24)?,
            header_checksum: u32_at(desc, 32)?,
            state: u32_at(desc, 36)?,
        })
    }
}

/// Encode one memory-map entry.
pub fn encode_range(start: u64, len: u64) -> [u8; 16] {
    let mut d = [0u8; 16];
    put_u64(&mut d, 0, start);
    put_u64(&mut d, 8, len);
    d
}

/// The `(start, length)` entries of a memory-map descriptor; a trailing
/// partial entry is ignored (the reader reports it).
pub fn memory_map_entries(desc: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    desc.chunks_exact(16)
        .filter_map(|entry| Some((u64_at(entry, 0)?, u64_at(entry, 8)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_control_round_trip() {
        let identity = DumpIdentity {
            version: FORMAT_VERSION,
            flags: FLAG_ZERO_TAILS,
            dump_id: [9; 16],
            crash_time: 1_700_000_000,
            page_size: 4096,
            direct_map: Some(0xffff_8880_0000_0000),
            kernel_image: Some((0x100_0000, 0xffff_ffff_8100_0000, 0x20_0000)),
            cpu_count: 4,
            panic_cpu: Some(2),
        };
        assert_eq!(DumpIdentity::decode(&identity.encode()), Some(identity));
        let none = DumpIdentity {
            direct_map: None,
            kernel_image: None,
            panic_cpu: None,
            ..identity
        };
        assert_eq!(DumpIdentity::decode(&none.encode()), Some(none));
        assert_eq!(DumpIdentity::decode(&identity.encode()[..79]), None);

        let control = ControlState {
            cpu: 1,
            apic_id: 2,
            cr3: Some(0x1000),
            efer: Some(0xd01),
            gs_base: Some(0),
            ..ControlState::default()
        };
        let bytes = control.encode();
        assert_eq!(u32_at(&bytes, 8), Some(0b101_0100));
        assert_eq!(ControlState::decode(&bytes), Some(control));
    }

    #[test]
    fn marker_checksum_catches_any_flipped_bit() {
        let marker = CompletionMarker {
            dump_id: [1; 16],
            total_length: 1 << 30,
            header_extent: 8192,
            header_checksum: 0x1234_5678,
            state: CompletionMarker::COMPLETE,
        };
        let bytes = marker.encode();
        assert_eq!(CompletionMarker::decode(&bytes), Some(marker));
        assert_eq!(CompletionMarker::decode(&[0; 48]), None, "in progress");
        for bit in 0..48 * 8 {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(CompletionMarker::decode(&flipped), None, "bit {bit}");
        }
    }
}
