//! Per-CPU descriptor tables: each CPU gets its own GDT (64-bit code, data,
//! its TSS) and TSS, whose IST slots point at that CPU's own stacks for the
//! vectors that must never run on an interrupted stack:
//!
//! | IST (zero-based index) | vector | why its own stack |
//! |------------------------|--------|-------------------|
//! | [`NMI_IST`] 0 | NMI (2) | arrives anywhere, including on a broken or exhausted stack |
//! | [`DOUBLE_FAULT_IST`] 1 | #DF (8) | typically *is* a stack overflow |
//! | [`MACHINE_CHECK_IST`] 2 | #MC (18) | arrives anywhere; may nest with an NMI, so not the NMI's stack |
//!
//! The BSP sets up its own tables at boot; each AP sets up its own on
//! arrival (the AP's kernel stack comes from [`ap_stack_top`]).

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use crate::percpu::{PerCpu, per_cpu};

/// IST index (zero-based, as `entry::install` takes it) of the NMI stack.
pub const NMI_IST: u16 = 0;
/// IST index of the double-fault stack.
pub const DOUBLE_FAULT_IST: u16 = 1;
/// IST index of the machine-check stack.
pub const MACHINE_CHECK_IST: u16 = 2;
/// IST stacks per CPU.
const IST_STACKS: usize = 3;
/// Bytes of each IST stack: the panic path runs on them (an NMI handler that
/// panics, a double fault), so they are generous.
pub const IST_STACK_SIZE: usize = 32 * 1024;
/// Bytes of each AP's kernel stack.
pub const AP_STACK_SIZE: usize = 64 * 1024;

/// A stack, 16-byte aligned.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct Stack<const SIZE: usize>([u8; SIZE]);

/// A CPU's GDT and TSS.
#[derive(Debug)]
struct Tables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
}

static TABLES: PerCpu<Tables> = per_cpu!(Tables {
    gdt: GlobalDescriptorTable::new(),
    tss: TaskStateSegment::new(),
});
static IST: PerCpu<[Stack<IST_STACK_SIZE>; IST_STACKS]> =
    per_cpu!([const { Stack([0; IST_STACK_SIZE]) }; IST_STACKS]);
static AP_STACKS: PerCpu<Stack<AP_STACK_SIZE>> = per_cpu!(Stack([0; AP_STACK_SIZE]));

/// Why [`init_current`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuSetupError {
    /// The CPU index is not below [`MAX_CPUS`](crate::percpu::MAX_CPUS).
    IndexOutOfRange(usize),
}

/// The top of AP `cpu`'s kernel stack (for the trampoline), `None` past
/// `MAX_CPUS`.
///
/// # Safety
/// Called by the BSP only, before AP `cpu` is started, once per AP.
pub unsafe fn ap_stack_top(cpu: usize) -> Option<u64> {
    // SAFETY: the caller is the BSP before the AP runs: nobody else uses
    // this stack yet.
    let stack = unsafe { AP_STACKS.get_mut(cpu) }?;
    Some(stack.0.as_ptr_range().end as u64)
}

/// Build and load the calling CPU's GDT and TSS (IST stacks included), and
/// reload CS, SS, DS, ES and TR from them.
///
/// # Safety
/// Called once per CPU, by CPU `cpu` itself, in ring 0 with interrupts off,
/// before its IDT is used with IST entries; no other CPU uses index `cpu`.
pub unsafe fn init_current(cpu: usize) -> Result<(), CpuSetupError> {
    // SAFETY: the caller is CPU `cpu` and calls this once: exclusive use of
    // its tables and IST stacks.
    let (tables, stacks) = unsafe { (TABLES.get_mut(cpu), IST.get_mut(cpu)) };
    let (Some(tables), Some(stacks)) = (tables, stacks) else {
        return Err(CpuSetupError::IndexOutOfRange(cpu));
    };
    // The TSS is packed: copy the IST array out, fill it, write it back.
    let mut ist = tables.tss.interrupt_stack_table;
    for (slot, stack) in ist.iter_mut().zip(stacks.iter()) {
        *slot = VirtAddr::from_ptr(stack.0.as_ptr_range().end);
    }
    tables.tss.interrupt_stack_table = ist;
    let tables: &'static mut Tables = tables;
    let tss: &'static TaskStateSegment = &tables.tss;
    let gdt = &mut tables.gdt;
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));
    // SAFETY: the GDT lives in a static for good and is not changed after
    // this load (this function runs once per CPU); the selectors loaded next
    // point into it (0x08 code, 0x10 data, 0x18 the TSS of this CPU, whose
    // descriptor is not busy: it was never loaded before).
    unsafe {
        gdt.load_unsafe();
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss_selector);
    }
    Ok(())
}
