//! The dump device: a virtio-blk function over PCI through the
//! `virtio-drivers` crate, and its [`Hal`]: memory is identity mapped, so a
//! buffer's physical address is its address, and DMA pages come from a
//! pool in .bss that is never freed (one capture, then reset or halt).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crashkit_kdump_capture::SectorDevice;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// DMA pages for the virtqueue: 64 pages.
const DMA_PAGES: usize = 64;

#[repr(C, align(4096))]
struct DmaPool([u8; DMA_PAGES * 4096]);

static mut DMA_POOL: DmaPool = DmaPool([0; DMA_PAGES * 4096]);
/// Pages handed out. Relaxed: one CPU runs the capture kernel, so this
/// counter only needs to be atomic to be a safe static.
static DMA_USED: AtomicUsize = AtomicUsize::new(0);

/// The identity-mapped HAL.
#[derive(Debug)]
pub struct IdentityHal;

// SAFETY: dma_alloc returns zeroed, page-aligned pages from a pool nothing
// else uses, never handed out twice; every address is identity mapped, so
// the physical addresses given to the device are the buffers' own.
unsafe impl Hal for IdentityHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = DMA_USED.fetch_add(pages, Ordering::Relaxed);
        if first + pages > DMA_PAGES {
            crate::println!("crashkit-capture: out of DMA pages");
            crate::machine::halt();
        }
        // SAFETY: in bounds (checked above); the pages are this call's
        // alone (the counter never hands a page out twice).
        let address = unsafe {
            core::ptr::addr_of_mut!(DMA_POOL.0)
                .cast::<u8>()
                .add(first * 4096)
        };
        let pointer = NonNull::new(address).unwrap_or(NonNull::dangling());
        (address as u64, pointer)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as u64
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The virtio-blk disk as a [`SectorDevice`].
pub struct Disk(pub VirtIOBlk<IdentityHal, PciTransport>);

impl core::fmt::Debug for Disk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disk")
            .field("sectors", &self.0.capacity())
            .finish()
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
