//! The dump device: a virtio-blk function over PCI through the
//! `virtio-drivers` crate, polled, as a [`SectorDevice`].
//!
//! [`open`] finds the function the hand-over names (or the first virtio-blk
//! on any bus), asks the caller to map its memory BARs, enables memory
//! decoding and bus mastering, and resets and starts the device (the
//! crashed kernel's own driver, if it had one, is forgotten: the device is
//! reset the way a capture kernel finds it).
//!
//! # Memory
//! [`PoolHal`] hands out DMA pages from a pool in this crate's `.bss`
//! (`DMA_PAGES` pages, never freed: one dump, then reset, halt or the
//! crashed kernel's final action) and translates with two offsets the
//! caller sets once before [`open`] ([`set_offsets`]): `virtual = physical +
//! dma_offset` for the pool (0 when identity mapped; a kernel mapped
//! elsewhere passes its image's offset), `virtual = physical +
//! mmio_offset` for the BARs. The pool's range ([`dma_pool`]) is the
//! writer's own state: the in-place writer lists it and leaves it out of
//! the dump.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crashkit_dump_format::PhysRange;
use crashkit_kdump_capture::SectorDevice;
use crashkit_kdump_handover::Device;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::pci::Access;

/// DMA pages in the pool: the virtqueue and its rings (the driver asks for
/// a few pages; 16 leaves room).
const DMA_PAGES: usize = 16;

#[repr(C, align(4096))]
struct DmaPool([u8; DMA_PAGES * 4096]);

/// The pool. Reached only through raw pointers in `dma_alloc` (each page
/// handed out once) and its address in `dma_pool`.
static mut DMA_POOL: DmaPool = DmaPool([0; DMA_PAGES * 4096]);
/// Pages handed out. Relaxed: one CPU drives the device (the capture
/// kernel's only CPU, or the panic owner), so the counter only needs to be
/// atomic to be a safe static; a second `open` finds the pool spent.
static DMA_USED: AtomicUsize = AtomicUsize::new(0);
/// `virtual - physical` of the pool. Relaxed: set before `open` on the same
/// CPU that then uses it.
static DMA_OFFSET: AtomicU64 = AtomicU64::new(0);
/// `virtual - physical` of the BARs. Relaxed: as `DMA_OFFSET`.
static MMIO_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Set the two translations before [`open`] (both 0 when identity mapped).
pub fn set_offsets(dma_offset: u64, mmio_offset: u64) {
    // Relaxed: read later by the same CPU (the one that opens and drives
    // the disk), in program order.
    DMA_OFFSET.store(dma_offset, Ordering::Relaxed);
    MMIO_OFFSET.store(mmio_offset, Ordering::Relaxed);
}

/// The DMA pool's virtual range (`start`, bytes), for the in-place writer
/// to list and leave out.
pub fn dma_pool() -> (usize, usize) {
    (
        core::ptr::addr_of!(DMA_POOL) as usize,
        core::mem::size_of::<DmaPool>(),
    )
}

/// The HAL: pages from the pool, fixed offsets (see the module docs).
#[derive(Debug)]
pub struct PoolHal;

// SAFETY: `dma_alloc` returns zeroed (the pool is never written but by the
// device and the driver, and each page is handed out once), page-aligned
// pages that nothing else uses, with the physical address the device must
// use: the pool's virtual address less the offset the caller set, which
// `set_offsets`' caller vouches for; `mmio_phys_to_virt` and `share` use the
// same offsets.
unsafe impl Hal for PoolHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = DMA_USED.fetch_add(pages, Ordering::Relaxed);
        if first.checked_add(pages).is_none_or(|end| end > DMA_PAGES) {
            // Unreachable: `open` runs once (it refuses a second time) and
            // the driver asks for its queue's pages there, 2 of the 16.
            // Should it happen, the driver gets no memory it could corrupt:
            // a dangling pointer and physical 0, which the device then
            // writes instead (page 0: the real-mode IVT, not the kernel's).
            return (0, NonNull::dangling());
        }
        // SAFETY: `first + pages <= DMA_PAGES` (checked above), so the
        // offset stays inside the pool; the pages are this call's alone
        // (the counter never hands a page out twice).
        let address = unsafe {
            core::ptr::addr_of_mut!(DMA_POOL.0)
                .cast::<u8>()
                .add(first * 4096)
        };
        let pointer = NonNull::new(address).unwrap_or(NonNull::dangling());
        // Relaxed: `set_offsets` ran earlier on this same CPU (see the
        // static), so program order makes its store visible.
        let phys = (address as u64).wrapping_sub(DMA_OFFSET.load(Ordering::Relaxed));
        (phys, pointer)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Relaxed: as `DMA_OFFSET` in `dma_alloc`.
        let virt = paddr.wrapping_add(MMIO_OFFSET.load(Ordering::Relaxed));
        NonNull::new(virt as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        // Buffers the writers hand the driver are in the pool or the
        // caller's window, both at the DMA offset (the window is a static
        // of the same program as the pool).
        // Relaxed: as in `dma_alloc`.
        (buffer.as_ptr().cast::<u8>() as u64).wrapping_sub(DMA_OFFSET.load(Ordering::Relaxed))
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The virtio-blk disk as a [`SectorDevice`].
pub struct Disk(VirtIOBlk<PoolHal, PciTransport>);

impl core::fmt::Debug for Disk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disk")
            .field("sectors", &self.0.capacity())
            .finish()
    }
}

impl Disk {
    /// The disk's size in MiB.
    pub fn mib(&self) -> u64 {
        self.0.capacity() / 2048
    }
}

impl SectorDevice for Disk {
    type Error = virtio_drivers::Error;

    fn sectors(&self) -> u64 {
        self.0.capacity()
    }

    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read_blocks(sector as usize, buffer)
    }

    fn write(&mut self, sector: u64, buffer: &[u8]) -> Result<(), Self::Error> {
        self.0.write_blocks(sector as usize, buffer)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

/// Why [`open`] found no disk.
#[derive(Debug)]
pub enum OpenError {
    /// No virtio-blk function at the address, or on any bus.
    NotFound,
    /// The caller could not map a BAR (physical range).
    CannotMap(PhysRange),
    /// The transport or the device refused (the driver's error).
    Virtio(DeviceFunction, virtio_drivers::Error),
    /// The PCI transport refused.
    Transport(DeviceFunction),
    /// A disk was opened already: the DMA pool serves one.
    OpenedAlready,
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotFound => f.write_str("no virtio-blk device on PCI"),
            Self::CannotMap(range) => write!(
                f,
                "cannot map the device's BAR at {:#x}+{:#x}",
                range.start, range.len
            ),
            Self::Virtio(function, error) => write!(f, "virtio-blk at {function}: {error}"),
            Self::Transport(function) => {
                write!(f, "virtio-blk at {function}: not a virtio PCI function")
            }
            Self::OpenedAlready => f.write_str("a dump disk was opened already"),
        }
    }
}

/// Find and start the disk `device` names. `map` maps a memory BAR
/// (uncacheable) at `physical + mmio_offset` and says whether it could;
/// `ecam`, when the device names one, must be mapped the same way already.
pub fn open(device: Device, map: &mut dyn FnMut(PhysRange) -> bool) -> Result<Disk, OpenError> {
    static OPENED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    // Relaxed: one CPU drives the device; the flag only makes a second
    // open fail instead of sharing the pool.
    if OPENED.swap(true, Ordering::Relaxed) {
        return Err(OpenError::OpenedAlready);
    }
    let Device::VirtioBlkPci { address, ecam } = device;
    let access = ecam.map_or(Access::Ports, Access::Ecam);
    let mut root = PciRoot::new(access);
    let function = match address {
        Some(pci) => Some(DeviceFunction {
            bus: pci.bus,
            device: pci.device,
            function: pci.function,
        }),
        None => (0..=255u8).find_map(|bus| {
            root.enumerate_bus(bus)
                .find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Block))
                .map(|(function, _)| function)
        }),
    };
    let function = function.ok_or(OpenError::NotFound)?;
    if let Ok(bars) = root.bars(function) {
        for bar in bars.iter().flatten() {
            if let Some((base, size)) = bar.memory_address_size() {
                let range = PhysRange::new(base, size);
                if !map(range) {
                    return Err(OpenError::CannotMap(range));
                }
            }
        }
    }
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command | Command::MEMORY_SPACE | Command::BUS_MASTER,
    );
    let transport = PciTransport::new::<PoolHal, _>(&mut root, function)
        .map_err(|_| OpenError::Transport(function))?;
    let disk = VirtIOBlk::<PoolHal, _>::new(transport)
        .map_err(|error| OpenError::Virtio(function, error))?;
    Ok(Disk(disk))
}
