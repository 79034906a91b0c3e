//! The legacy 8259 PIC pair and the PIT's channel 0: remapped off the CPU
//! exception vectors at boot and masked, and, for a kernel that wants a
//! legacy timer, unmasked one line at a time.
//!
//! Firmware leaves the PICs on vectors 8-15 and 0x70-0x77 (IRQ 0, the PIT,
//! lands on vector 8, the double-fault vector) and routes their output to
//! the boot CPU's LVT LINT0 as ExtINT ("virtual wire" mode): the PIC then
//! supplies the vector itself in the interrupt-acknowledge cycle. The boot
//! remaps them to [`MASTER_VECTOR`] and [`SLAVE_VECTOR`] and masks every
//! line, so nothing arrives unless a kernel unmasks it ([`unmask`]) and
//! has handlers for the 16 vectors (each ending in [`end_of_interrupt`]).
//!
//! Ports and initialisation words (Intel 8259A data sheet; the PC/AT
//! wiring: master at 0x20/0x21, slave at 0xA0/0xA1 on the master's IRQ 2):
//! ICW1 0x11 (edge, cascade, ICW4 follows), ICW2 the vector base, ICW3 4
//! (master: a slave on IR2) and 2 (slave: its cascade identity), ICW4 0x01
//! (8086 mode, normal EOI); OCW1 is the mask register; OCW2 0x20 is a
//! non-specific EOI. PIT (Intel 8254): control word 0x34 at 0x43 (channel
//! 0, low then high byte, mode 2 rate generator, binary), the divisor at
//! 0x40, input clock 1,193,182 Hz.

use core::sync::atomic::{AtomicU8, Ordering};

use x86_64::instructions::port::Port;

/// The vector of IRQ 0 after the remap (IRQs 0-7: 0x20-0x27).
pub const MASTER_VECTOR: u8 = 0x20;
/// The vector of IRQ 8 after the remap (IRQs 8-15: 0x28-0x2F).
pub const SLAVE_VECTOR: u8 = 0x28;
/// The PIT's input clock, Hz.
const PIT_HZ: u32 = 1_193_182;

/// The masks last written (bit set: masked), master then slave: the boot
/// CPU writes them; [`unmask`] changes one bit.
static MASKS: [AtomicU8; 2] = [AtomicU8::new(0xFF), AtomicU8::new(0xFF)];

/// Remap both PICs to 0x20-0x2F and mask every line. Boot CPU, interrupts
/// off, before any other CPU runs (called by the base's boot).
pub(crate) fn remap_and_mask() {
    let mut master_command: Port<u8> = Port::new(0x20);
    let mut master_data: Port<u8> = Port::new(0x21);
    let mut slave_command: Port<u8> = Port::new(0xA0);
    let mut slave_data: Port<u8> = Port::new(0xA1);
    // SAFETY: the PICs' ports, used by nothing else in this kernel; the
    // initialisation sequence is ICW1-ICW4 in order on each chip, then the
    // masks (OCW1). Interrupts are off (boot stub), so no IRQ is taken
    // mid-sequence.
    unsafe {
        master_command.write(0x11);
        slave_command.write(0x11);
        master_data.write(MASTER_VECTOR);
        slave_data.write(SLAVE_VECTOR);
        master_data.write(4);
        slave_data.write(2);
        master_data.write(0x01);
        slave_data.write(0x01);
        master_data.write(0xFF);
        slave_data.write(0xFF);
    }
}

/// Unmask IRQ `irq` (0-15; IRQ 2, the cascade, with any slave line). Boot
/// CPU, before interrupts are enabled.
pub fn unmask(irq: u8) {
    let (chip, bit) = if irq < 8 { (0, irq) } else { (1, irq - 8) };
    let Some(mask) = MASKS.get(chip) else { return };
    // Relaxed: written only by the boot CPU at set-up.
    let value = mask.load(Ordering::Relaxed) & !(1 << (bit & 7));
    mask.store(value, Ordering::Relaxed);
    let mut data: Port<u8> = Port::new(if chip == 0 { 0x21 } else { 0xA1 });
    // SAFETY: the mask register of the chip; nothing else writes it.
    unsafe { data.write(value) };
    if chip == 1 {
        unmask(2);
    }
}

/// End of interrupt for IRQ `irq`: a non-specific EOI to the master, and
/// to the slave first for IRQs 8-15. From the IRQ's handler, interrupts
/// off.
pub fn end_of_interrupt(irq: u8) {
    let mut master: Port<u8> = Port::new(0x20);
    let mut slave: Port<u8> = Port::new(0xA0);
    // SAFETY: OCW2 0x20 (non-specific EOI) to the command ports; only
    // handlers of the PICs' vectors write them, one at a time (interrupt
    // gates run with interrupts off).
    unsafe {
        if irq >= 8 {
            slave.write(0x20);
        }
        master.write(0x20);
    }
}

/// Start the PIT's channel 0 as a rate generator at about `hz` (IRQ 0,
/// still masked until [`unmask`]`(0)`). Boot CPU.
pub fn start_timer(hz: u32) {
    let divisor = (PIT_HZ / hz.max(19)).clamp(1, 0xFFFF) as u16;
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel0: Port<u8> = Port::new(0x40);
    // SAFETY: the PIT's control and channel-0 ports; `time::calibrate`
    // uses channel 2 only and ran before.
    unsafe {
        command.write(0x34);
        channel0.write((divisor & 0xFF) as u8);
        channel0.write((divisor >> 8) as u8);
    }
}
