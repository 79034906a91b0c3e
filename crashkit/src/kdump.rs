//! The dump path (feature `kdump`, docs/kdump.md): load a capture kernel
//! into a reservation before any crash, hand over to it at the crash; with
//! an in-place writer armed too ([`dump`]), the crashed kernel writes the
//! dump itself when there is no capture kernel to hand over to.
//!
//! ```ignore
//! static CAPTURE: Capture = Capture::new();
//! fn dump() -> DumpAttempt { kdump::hand_over(&CAPTURE, &APIC) }
//! crashkit::kernel! { /* ... */ dump: dump }
//! // At boot, with the capture kernel's ELF (a boot module, or
//! // include_bytes!) and a reservation the kernel never uses:
//! // SAFETY: the reservation is free RAM mapped at `virt`, never used again.
//! unsafe { kdump::load_capture(&CAPTURE, image, reservation, virt, &kept, &setup) }?;
//! ```

use crashkit_kdump_load::load;
use crashkit_nmi::arch::x86_64::LocalApic;
use crashkit_panic_path::DumpAttempt;

pub use crashkit_dump_format::PhysRange;
pub use crashkit_kdump_fallback::{Config as InPlaceConfig, ConfigError, InPlace, Why};
pub use crashkit_kdump_handover::{
    AfterDump, Capture, Device, DumpFormat, HandOverError, KernelImage, PciAddress, PrepareError,
    Ready, Setup,
};
pub use crashkit_kdump_load::{CaptureImage, LoadError};

/// The most memory-map ranges a hand-over block (and the in-place
/// writer) takes.
const MAX_RANGES: usize = crashkit_kdump_handover::block::MAX_RANGES;

/// Up to `N` `(start, length)` pairs as ranges; the rest are dropped.
fn ranges<const N: usize>(pairs: impl IntoIterator<Item = (u64, u64)>) -> ([PhysRange; N], usize) {
    let mut out = [PhysRange::default(); N];
    let mut count = 0;
    for ((start, len), slot) in pairs.into_iter().zip(out.iter_mut()) {
        *slot = PhysRange::new(start, len);
        count += 1;
    }
    (out, count)
}

/// What both identity-mapped set-ups tell their writer of `K`: its record's
/// range (virtual = physical) and VMCOREINFO naming crashkit, the record
/// and, as `OSRELEASE`, the kernel type's path.
struct IdentityFacts {
    record: PhysRange,
    text: [u8; 256],
    len: usize,
}

impl IdentityFacts {
    fn of<K: crashkit_panic_path::Kernel>() -> Self {
        let record = core::ptr::from_ref(K::record());
        let record = PhysRange::new(record as u64, core::mem::size_of_val(K::record()) as u64);
        let mut text = [0u8; 256];
        let mut info = crashkit_dump_format::vmcoreinfo::VmcoreInfoWriter::new(&mut text);
        info.os_release(core::any::type_name::<K>())
            .page_size(4096)
            .crashkit(env!("CARGO_PKG_VERSION"), record.start, record.len);
        let len = info.as_bytes().len();
        Self { record, text, len }
    }
}

/// Why [`load_capture`] did not arm the hand-over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadCaptureError {
    /// The image is refused (or does not fit the reservation).
    Image(LoadError),
    /// The control area cannot be prepared.
    Prepare(PrepareError),
    /// A capture kernel is already armed.
    AlreadyArmed,
}

impl core::fmt::Display for LoadCaptureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(error) => write!(f, "capture image: {error}"),
            Self::Prepare(error) => write!(f, "hand-over: {error}"),
            Self::AlreadyArmed => f.write_str("a capture kernel is already armed"),
        }
    }
}

/// Check `image` (the capture kernel's ELF) against `reservation` and the
/// ranges the running kernel keeps (`kept`: its image, the boot module
/// holding `image`, anything else it uses), copy it in, prepare the
/// control area for `setup`, and arm `capture`. Allocates nothing.
///
/// # Safety
/// `reservation` is RAM that nothing else uses, now or later (the kernel
/// neither allocates from it nor lets a device write it), mapped
/// read-write and executable, contiguously, at virtual address `virt` for
/// the kernel's life; `image` does not overlap it. The rest is
/// [`Capture::arm`]'s contract: the panic path calls [`hand_over`] in
/// ring 0 with interrupts off.
pub unsafe fn load_capture(
    capture: &Capture,
    image: &[u8],
    reservation: PhysRange,
    virt: usize,
    kept: &[PhysRange],
    setup: &Setup<'_>,
) -> Result<Ready, LoadCaptureError> {
    let checked = CaptureImage::check(image, reservation, kept).map_err(LoadCaptureError::Image)?;
    let len = usize::try_from(reservation.len)
        .map_err(|_| LoadCaptureError::Image(LoadError::BadReservation))?;
    // SAFETY: the caller's contract: `len` bytes mapped read-write at
    // `virt`, used by nothing else, not overlapping `image`. This slice is
    // the only reference to them while it lives.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(core::ptr::with_exposed_provenance_mut::<u8>(virt), len)
    };
    let loaded = load(&checked, bytes).map_err(LoadCaptureError::Image)?;
    let ready = crashkit_kdump_handover::prepare(&loaded, setup, bytes, virt as u64)
        .map_err(LoadCaptureError::Prepare)?;
    // SAFETY: the caller's contract is `arm`'s.
    unsafe { capture.arm(ready) }.map_err(|_| LoadCaptureError::AlreadyArmed)?;
    Ok(ready)
}

/// [`load_capture`] for a kernel whose memory is identity mapped (virtual
/// = physical, as the kernels built on bootloaders that identity-map RAM,
/// and crashkit's test kernels): the reservation is reached at its
/// physical address; the memory map is `ram`'s `(start, length)` pairs
/// (page aligned, sorted, at most 256); `kept` the ranges the kernel uses
/// (its image, low memory, the boot module holding `image`); the record is
/// `K`'s; VMCOREINFO names crashkit and the record, its `OSRELEASE` the
/// kernel type's path (`my_kernel::Crash`: the crate that crashed; a kernel
/// with a release string of its own calls [`load_capture`]); the dump is
/// kdump-compressed LZO1X on the first virtio-blk disk, then a reset.
///
/// # Safety
/// As [`load_capture`]'s, with `virt` = the reservation's physical start.
pub unsafe fn load_identity<K: crashkit_panic_path::Kernel>(
    capture: &Capture,
    image: &[u8],
    reservation: PhysRange,
    ram: impl IntoIterator<Item = (u64, u64)>,
    kept: impl IntoIterator<Item = (u64, u64)>,
) -> Result<Ready, LoadCaptureError> {
    let (memory, count) = ranges::<MAX_RANGES>(ram);
    let (kept_ranges, kept_count) = ranges::<16>(kept);
    let facts = IdentityFacts::of::<K>();
    let (record, text, len) = (facts.record, facts.text, facts.len);
    let setup = Setup {
        record,
        memory_map: memory.get(..count).unwrap_or(&[]),
        format: DumpFormat::KdumpLzo,
        level: 0,
        after: AfterDump::Reset,
        device: Device::VirtioBlkPci {
            address: None,
            ecam: None,
        },
        vmcoreinfo: text.get(..len).unwrap_or(&[]),
        direct_map: None,
        kernel_image: None,
        // RDTSC: the boot's own count, distinct per boot.
        // SAFETY: RDTSC reads the time-stamp counter, no side effect.
        boot_id: unsafe { core::arch::x86_64::_rdtsc() },
    };
    // SAFETY: the caller's contract; identity mapped, so the reservation
    // is mapped at its physical address.
    unsafe {
        load_capture(
            capture,
            image,
            reservation,
            reservation.start as usize,
            kept_ranges.get(..kept_count).unwrap_or(&[]),
            &setup,
        )
    }
}

/// The `dump:` hook's body: hand over to the armed capture kernel. Returns
/// only when that did not happen, with [`HandOverError::code`] as the
/// record's `dump_detail` (1 nothing armed, 2 bad mapping, 3 the image
/// changed, 4 the control area changed).
pub fn hand_over(capture: &Capture, apic: &LocalApic) -> DumpAttempt {
    match capture.hand_over(apic) {
        HandOverError::NotArmed => DumpAttempt::NotConfigured,
        error => DumpAttempt::Failed(error.code()),
    }
}

/// The `dump:` hook's body with both writers: hand over to the armed
/// capture kernel; if that does not happen (nothing armed, or its checks
/// failed), let the armed in-place writer write the dump in this kernel
/// ([`InPlace::write`]) and return [`DumpAttempt::WrittenInPlace`] with its
/// outcome, after which the panic path runs the post-dump notifiers and the
/// final action. Without an in-place writer, as [`hand_over`].
pub fn dump<K: crashkit_panic_path::Kernel>(
    capture: &Capture,
    in_place: &InPlace,
    apic: &LocalApic,
) -> DumpAttempt {
    use crashkit_nmi::Platform;
    use crashkit_panic_path::CrashLog;
    let record = K::record();
    // By reference: the panic path's stack need not hold a copy of it.
    if capture.get().is_some() {
        record
            .dump_section()
            .choose_capture_kernel(K::platform().now_ns());
    }
    let error = capture.hand_over(apic);
    let why = Why::from_handover_code(error.code());
    match in_place.write(record, why, &|| K::platform().now_ns()) {
        Some(outcome) => DumpAttempt::WrittenInPlace(outcome.code()),
        None => match error {
            HandOverError::NotArmed => DumpAttempt::NotConfigured,
            error => DumpAttempt::Failed(error.code()),
        },
    }
}

/// Arm `in_place` for an identity-mapped kernel, with the facts
/// [`load_identity`] gives its capture kernel: the memory map `ram`, the
/// VMCOREINFO naming `K`'s record, LZO1X on the first virtio-blk disk, BARs
/// reached where firmware put them below 4 GiB (`map_bar` says whether a
/// BAR is mapped), progress on `console`; `reservation` (a capture kernel's,
/// or empty) is left out of the dump.
///
/// # Safety
/// [`InPlace::arm`]'s: the kernel is identity mapped (RAM, its statics and
/// stacks, the BARs `map_bar` accepts), and nothing but the dump path
/// drives the disk at the crash.
pub unsafe fn arm_in_place_identity<K: crashkit_panic_path::Kernel>(
    in_place: &InPlace,
    ram: impl IntoIterator<Item = (u64, u64)>,
    reservation: PhysRange,
    map_bar: fn(PhysRange) -> bool,
    console: Option<fn(&str)>,
) -> Result<(), ArmInPlaceError> {
    let (memory, count) = ranges::<MAX_RANGES>(ram);
    let facts = IdentityFacts::of::<K>();
    let (text, len) = (facts.text, facts.len);
    // RDTSC: the boot's own count, distinct per boot.
    // SAFETY: RDTSC reads the time-stamp counter, no side effect.
    let boot_id = unsafe { core::arch::x86_64::_rdtsc() };
    let mut config = InPlaceConfig::identity(
        memory.get(..count).unwrap_or(&[]),
        text.get(..len).unwrap_or(&[]),
        map_bar,
        boot_id,
    )
    .map_err(ArmInPlaceError::Config)?;
    config.reservation = reservation;
    config.console = console;
    // SAFETY: the caller's contract.
    unsafe { in_place.arm(config) }.map_err(|_| ArmInPlaceError::AlreadyArmed)
}

/// Why [`arm_in_place_identity`] did not arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmInPlaceError {
    /// The memory map or VMCOREINFO is refused.
    Config(ConfigError),
    /// An in-place writer is already armed.
    AlreadyArmed,
}

impl core::fmt::Display for ArmInPlaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Config(error) => write!(f, "in-place writer: {error}"),
            Self::AlreadyArmed => f.write_str("an in-place writer is already armed"),
        }
    }
}
