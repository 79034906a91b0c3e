//! The PVH `hvm_start_info` QEMU hands the kernel in `ebx` (Xen's
//! `arch-x86/hvm/start_info.h` layout, version 0 and 1): the magic, the
//! command line and the ACPI RSDP address.
//!
//! [`BootInfo::read`] copies what the kernel needs out of guest memory at
//! once (the command line into a fixed buffer, truncated if longer), so
//! low memory can be reused afterwards (the AP trampoline goes to 0x8000).

/// `hvm_start_info.magic` ("xEn3" with the high bit of "E" set).
pub const MAGIC: u32 = 0x336e_c578;

/// Bytes of the command line kept (the rest is dropped).
pub const CMDLINE_CAPACITY: usize = 256;

/// The fixed part of `hvm_start_info` (version 0; version 1 appends a
/// memory map this kernel does not use).
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
        Ok(Self {
            cmdline,
            cmdline_len,
            rsdp: info.rsdp_paddr,
            version: info.version,
        })
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
