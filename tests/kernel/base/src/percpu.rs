//! [`PerCpu`]: one value per CPU index, each touched only by its own CPU
//! (or by the BSP before that CPU runs).

use core::cell::UnsafeCell;

/// CPUs the kernel supports (the crash record's and platform's table size).
/// `-smp` above this boots, but the extra CPUs are left in wait-for-SIPI and
/// reported on serial.
pub const MAX_CPUS: usize = 8;

/// One `T` per CPU index, in a `static`.
#[derive(Debug)]
pub struct PerCpu<T>(pub [UnsafeCell<T>; MAX_CPUS]);

/// A [`PerCpu`] with every CPU's value set to the constant expression
/// given.
macro_rules! per_cpu {
    ($value:expr) => {
        $crate::percpu::PerCpu(
            [const { core::cell::UnsafeCell::new($value) }; $crate::percpu::MAX_CPUS],
        )
    };
}
pub(crate) use per_cpu;

// SAFETY: the values are only reached through `PerCpu::get_mut`, whose
// contract gives each CPU index exclusive use of its own value; no value is
// shared between CPUs through this type.
unsafe impl<T: Send> Sync for PerCpu<T> {}

impl<T> PerCpu<T> {
    /// CPU `cpu`'s value; `None` past [`MAX_CPUS`].
    ///
    /// # Safety
    /// Only CPU `cpu` calls this for index `cpu` (or the BSP, before CPU
    /// `cpu` is started), and it never holds two of the returned references
    /// at once.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut(&'static self, cpu: usize) -> Option<&'static mut T> {
        let cell = self.0.get(cpu)?;
        // SAFETY: the caller guarantees exclusive use of this CPU's value;
        // `self` is `'static`, so the value lives for good.
        Some(unsafe { &mut *cell.get() })
    }
}
