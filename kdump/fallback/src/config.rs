//! What the in-place writer needs, given at boot and armed once: the same
//! facts a hand-over block carries (memory map, format, device, VMCOREINFO,
//! the kernel's image and direct map, the boot id), plus how this kernel
//! translates its own addresses and reaches the device.

use crashkit_dump_format::PhysRange;
use crashkit_kdump_handover::block::MAX_RANGES;
use crashkit_kdump_handover::{AlreadyArmed, Device, DumpFormat, KernelImage, Slot};

/// The most VMCOREINFO text the writer keeps.
pub const MAX_VMCOREINFO: usize = 4096;

/// The in-place writer's configuration (`Copy`, about 8 KiB: armed into a
/// static [`InPlace`] once).
#[derive(Clone, Copy)]
pub struct Config {
    /// The RAM to dump: page aligned, sorted, not overlapping (at most
    /// 256 ranges).
    pub memory: [PhysRange; MAX_RANGES],
    /// Ranges used in `memory`.
    pub memory_count: usize,
    /// A range to leave out of the dump besides the exclusions (the
    /// capture kernel's reservation, when there is one; empty otherwise).
    pub reservation: PhysRange,
    /// The dump's format (kdump-compressed LZO1X by default).
    pub format: DumpFormat,
    /// Where to write (the capture kernel's device).
    pub device: Device,
    /// VMCOREINFO text.
    pub vmcoreinfo: [u8; MAX_VMCOREINFO],
    /// Bytes of `vmcoreinfo` used.
    pub vmcoreinfo_len: usize,
    /// This kernel's direct map (`virtual = physical + offset`), for the
    /// dump's virtual addresses.
    pub direct_map: Option<u64>,
    /// This kernel's image at its link addresses.
    pub kernel_image: Option<KernelImage>,
    /// The boot id (any value drawn at boot).
    pub boot_id: u64,
    /// How the writer reads RAM: physical `p` is at virtual `p +
    /// ram_offset` (0 when identity mapped), for every range of `memory`.
    pub ram_offset: u64,
    /// The physical address of a virtual address of this kernel (its
    /// statics and the current stack), `None` if unmapped.
    pub virt_to_phys: fn(usize) -> Option<u64>,
    /// Map a device BAR (uncacheable) at `physical + mmio_offset`; false
    /// if it cannot. Called before the first write.
    pub map_bar: fn(PhysRange) -> bool,
    /// `virtual - physical` of the BARs once mapped.
    pub mmio_offset: u64,
    /// Where progress lines go (the kernel's console), or nowhere.
    pub console: Option<fn(&str)>,
}

impl core::fmt::Debug for Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Config")
            .field("memory", &self.memory())
            .field("format", &self.format)
            .field("device", &self.device)
            .field("vmcoreinfo_len", &self.vmcoreinfo_len)
            .finish_non_exhaustive()
    }
}

/// Why [`Config::new`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// More than 256 memory ranges.
    TooManyRanges(usize),
    /// A memory range is not page aligned, not sorted or overlaps the
    /// previous one (its index).
    BadRange(usize),
    /// VMCOREINFO longer than [`MAX_VMCOREINFO`].
    VmcoreinfoTooLong(usize),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooManyRanges(n) => write!(f, "{n} memory ranges (at most {MAX_RANGES})"),
            Self::BadRange(index) => write!(
                f,
                "memory range {index} is not page aligned, sorted and apart from the previous one"
            ),
            Self::VmcoreinfoTooLong(n) => {
                write!(f, "{n} bytes of VMCOREINFO (at most {MAX_VMCOREINFO})")
            }
        }
    }
}

impl Config {
    /// A configuration for an identity-mapped kernel (virtual = physical
    /// for RAM, its statics, its stacks and the device's BARs, which
    /// `map_bar` says are mapped): the memory map and VMCOREINFO copied in,
    /// LZO1X on the first virtio-blk disk.
    pub fn identity(
        memory: &[PhysRange],
        vmcoreinfo: &[u8],
        map_bar: fn(PhysRange) -> bool,
        boot_id: u64,
    ) -> Result<Self, ConfigError> {
        Self::new(
            memory,
            vmcoreinfo,
            |virt| Some(virt as u64),
            map_bar,
            boot_id,
        )
    }

    /// A configuration with the given translations (see the fields); RAM
    /// read at its physical address plus 0 until [`Self::ram_offset`] is
    /// set, LZO1X on the first virtio-blk disk found.
    pub fn new(
        memory: &[PhysRange],
        vmcoreinfo: &[u8],
        virt_to_phys: fn(usize) -> Option<u64>,
        map_bar: fn(PhysRange) -> bool,
        boot_id: u64,
    ) -> Result<Self, ConfigError> {
        if memory.len() > MAX_RANGES {
            return Err(ConfigError::TooManyRanges(memory.len()));
        }
        let mut previous_end = 0u64;
        for (index, range) in memory.iter().enumerate() {
            let end = range.start.checked_add(range.len);
            let aligned = range.start % 4096 == 0 && range.len % 4096 == 0;
            if !aligned || range.start < previous_end || end.is_none() {
                return Err(ConfigError::BadRange(index));
            }
            previous_end = end.unwrap_or(u64::MAX);
        }
        if vmcoreinfo.len() > MAX_VMCOREINFO {
            return Err(ConfigError::VmcoreinfoTooLong(vmcoreinfo.len()));
        }
        let mut config = Self {
            memory: [PhysRange::default(); MAX_RANGES],
            memory_count: memory.len(),
            reservation: PhysRange::default(),
            format: DumpFormat::KdumpLzo,
            device: Device::VirtioBlkPci {
                address: None,
                ecam: None,
            },
            vmcoreinfo: [0; MAX_VMCOREINFO],
            vmcoreinfo_len: vmcoreinfo.len(),
            direct_map: None,
            kernel_image: None,
            boot_id,
            ram_offset: 0,
            virt_to_phys,
            map_bar,
            mmio_offset: 0,
            console: None,
        };
        for (to, from) in config.memory.iter_mut().zip(memory) {
            *to = *from;
        }
        for (to, from) in config.vmcoreinfo.iter_mut().zip(vmcoreinfo) {
            *to = *from;
        }
        Ok(config)
    }

    /// The memory map.
    pub fn memory(&self) -> &[PhysRange] {
        self.memory.get(..self.memory_count).unwrap_or(&[])
    }

    /// The VMCOREINFO text.
    pub fn vmcoreinfo(&self) -> &[u8] {
        self.vmcoreinfo.get(..self.vmcoreinfo_len).unwrap_or(&[])
    }
}

/// The in-place writer, armed once with a [`Config`] (a `static`; arming
/// is lock-free, and the crash path only reads it).
#[derive(Debug, Default)]
pub struct InPlace {
    config: Slot<Config>,
}

impl InPlace {
    /// Not armed: the dump step finds no in-place writer.
    pub const fn new() -> Self {
        Self {
            config: Slot::new(),
        }
    }

    /// Arm with `config`; refused if armed already.
    ///
    /// # Safety
    /// The translations in `config` are this kernel's for its whole life:
    /// every range of its memory map is mapped readable at `physical +
    /// ram_offset`, `virt_to_phys` names where this kernel's statics and
    /// stacks are, a BAR `map_bar` accepts is mapped uncacheable at
    /// `physical + mmio_offset`; and nothing but the in-place writer drives
    /// the device once the panic path calls [`InPlace::write`] (ring 0,
    /// interrupts off, the other CPUs stopped).
    pub unsafe fn arm(&self, config: Config) -> Result<(), AlreadyArmed> {
        // SAFETY: `Slot::arm`'s contract is the value's validity for the
        // crash path, which is this function's own contract.
        unsafe { self.config.arm(config) }
    }

    /// The armed configuration.
    pub fn config(&self) -> Option<&Config> {
        self.config.get()
    }
}
