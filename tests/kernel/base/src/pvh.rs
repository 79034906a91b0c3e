//! The PVH `hvm_start_info` QEMU hands the kernel in `ebx` (Xen's
//! `arch-x86/hvm/start_info.h` layout, version 0 and 1): the magic, the
//! command line, the ACPI RSDP address, the boot modules (QEMU's `-initrd`
//! is module 0: a capture kernel, for the dump path) and, in version 1,
//! the memory map (RAM ranges, for the dump).
//!
//! [`BootInfo::read`] copies what the kernel needs out of guest memory at
//! once (the command line into a fixed buffer, truncated if longer), so
//! low memory can be reused afterwards (the AP trampoline goes to 0x8000).

/// `hvm_start_info.magic` ("xEn3" with the high bit of "E" set).
pub const MAGIC: u32 = 0x336e_c578;

/// Bytes of the command line kept (the rest is dropped).
pub const CMDLINE_CAPACITY: usize = 256;

/// Most RAM ranges kept from the memory map.
pub const MAX_RAM_RANGES: usize = 32;

/// `hvm_start_info` (version 1; version 0 ends before `memmap_paddr`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `hvm_modlist_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ModuleEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// `hvm_memmap_table_entry` (the E820 layout: type 1 is RAM).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// A physical range, `[start, start + len)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

/// Why the start info was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// `ebx` was 0: not booted through PVH.
    NoStartInfo,
    /// The structure at the given address does not start with [`MAGIC`].
    BadMagic {
        /// Where the structure was.
        address: u64,
        /// What its first word held.
        found: u32,
    },
}

/// What the kernel keeps from the start info.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    cmdline: [u8; CMDLINE_CAPACITY],
    cmdline_len: usize,
    /// Physical address of the ACPI RSDP (0 if QEMU gave none).
    pub rsdp: u64,
    /// The start info's version.
    pub version: u32,
    /// Boot module 0 (QEMU's `-initrd`), if any.
    pub module: Option<Region>,
    /// RAM ranges of the memory map (type 1), page aligned inward, in the
    /// map's order (QEMU's is sorted); empty before version 1.
    ram: [Region; MAX_RAM_RANGES],
    ram_count: usize,
}

impl BootInfo {
    /// Read the start info at physical address `address`.
    ///
    /// # Safety
    /// `address` is 0 or the value QEMU passed in `ebx`, and physical memory
    /// is identity mapped (the boot stub maps the first 4 GiB), so the start
    /// info and the command line it points to are readable.
    pub unsafe fn read(address: u64) -> Result<Self, BootInfoError> {
        if address == 0 {
            return Err(BootInfoError::NoStartInfo);
        }
        // SAFETY: the caller guarantees the address came from the PVH
        // loader and is identity mapped; `read_unaligned` needs no alignment.
        let info = unsafe { core::ptr::read_unaligned(address as *const StartInfo) };
        if info.magic != MAGIC {
            return Err(BootInfoError::BadMagic {
                address,
                found: info.magic,
            });
        }
        let mut cmdline = [0u8; CMDLINE_CAPACITY];
        let mut cmdline_len = 0;
        if info.cmdline_paddr != 0 {
            for (index, byte) in cmdline.iter_mut().enumerate() {
                // SAFETY: the loader's NUL-terminated command line, identity
                // mapped; the loop stops at the NUL or at the buffer's end,
                // so it reads at most CMDLINE_CAPACITY bytes of it.
                let value =
                    unsafe { core::ptr::read((info.cmdline_paddr as usize + index) as *const u8) };
                if value == 0 {
                    break;
                }
                *byte = value;
                cmdline_len = index + 1;
            }
        }
        let module = (info.nr_modules > 0 && info.modlist_paddr != 0).then(|| {
            // SAFETY: the loader's module list, identity mapped; entry 0
            // exists (nr_modules > 0).
            let entry =
                unsafe { core::ptr::read_unaligned(info.modlist_paddr as *const ModuleEntry) };
            Region {
                start: entry.paddr,
                len: entry.size,
            }
        });
        let mut ram = [Region::default(); MAX_RAM_RANGES];
        let mut ram_count = 0;
        if info.version >= 1 && info.memmap_paddr != 0 {
            for index in 0..info.memmap_entries as usize {
                // SAFETY: the loader's memory map, identity mapped, with
                // `memmap_entries` entries of 24 bytes.
                let entry = unsafe {
                    core::ptr::read_unaligned(
                        (info.memmap_paddr as usize + index * 24) as *const MemmapEntry,
                    )
                };
                let start = entry.addr.next_multiple_of(4096);
                let end = (entry.addr.saturating_add(entry.size)) / 4096 * 4096;
                if entry.kind == 1
                    && end > start
                    && let Some(slot) = ram.get_mut(ram_count)
                {
                    *slot = Region {
                        start,
                        len: end - start,
                    };
                    ram_count += 1;
                }
            }
        }
        Ok(Self {
            cmdline,
            cmdline_len,
            rsdp: info.rsdp_paddr,
            version: info.version,
            module,
            ram,
            ram_count,
        })
    }

    /// The RAM ranges of the memory map.
    pub fn ram(&self) -> &[Region] {
        self.ram.get(..self.ram_count).unwrap_or(&[])
    }

    /// The command line (as much as fit; invalid UTF-8 gives "").
    pub fn cmdline(&self) -> &str {
        let bytes = self.cmdline.get(..self.cmdline_len).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// The value of `key=value` on the command line, if present.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.cmdline().split_ascii_whitespace().find_map(|word| {
            let (name, value) = word.split_once('=')?;
            (name == key).then_some(value)
        })
    }
}
