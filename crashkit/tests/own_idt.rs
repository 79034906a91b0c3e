//! A kernel with an IDT type of its own (raw 16-byte gates, not the
//! `x86_64` crate's table) installs crashkit's NMI, #DF and #MC entries
//! through the public API: `K::entry_stubs().gates(..)` and
//! `Gate::descriptor`. The gates are checked field by field against the
//! SDM's layout of a 64-bit IDT gate descriptor, written here from the
//! manual (vol. 3A, figure 6-8 "64-Bit IDT Gate Descriptors"; table 3-2,
//! type 1110b "64-bit Interrupt Gate"), and byte for byte against what
//! `K::install_entries` writes into the `x86_64` crate's table.

use crashkit::prelude::*;
use crashkit::x86_64::structures::idt::InterruptDescriptorTable;

fn reset() -> ! {
    std::process::abort()
}

crashkit::kernel! {
    /// A kernel whose IDT is its own type.
    pub struct Own;
    cpus: 2,
    notifiers: 1,
    // SAFETY: a test; no method that reaches the APIC is called.
    apic: unsafe { LocalApic::x2apic() },
    final_action: reboot(reset),
    external_nmi: ExternalNmi::All,
}

/// The kernel's own IDT: 256 raw gates.
#[repr(C, align(16))]
struct RawIdt([[u64; 2]; 256]);

impl RawIdt {
    /// What a kernel with its own table does at boot, before loading it.
    fn install_crashkit(&mut self, selector: u16, ist: &IstSlots) -> Result<(), String> {
        let gates = Own::entry_stubs()
            .gates(ist)
            .map_err(|e| format!("{e:?}"))?;
        for gate in gates {
            self.0[usize::from(gate.vector)] = gate.descriptor(selector);
        }
        Ok(())
    }
}

/// A gate's fields as figure 6-8 places them (decoded here, independently
/// of `Gate::descriptor`).
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    offset: u64,
    selector: u16,
    ist: u8,
    gate_type: u8,
    dpl: u8,
    present: bool,
}

fn decode(gate: [u64; 2]) -> Decoded {
    let bytes: Vec<u8> = gate.iter().flat_map(|word| word.to_le_bytes()).collect();
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    // Bytes 0-1 offset 15:0; 2-3 selector; byte 4 bits 0-2 IST; byte 5:
    // type in bits 0-3, DPL in 5-6, P in 7; bytes 6-7 offset 31:16; bytes
    // 8-11 offset 63:32; bytes 12-15 reserved.
    assert_eq!(u32_at(12), 0, "reserved dword");
    assert_eq!(bytes[4] & !0x7, 0, "byte 4 above the IST is zero");
    Decoded {
        offset: u64::from(u16_at(0)) | (u64::from(u16_at(6)) << 16) | (u64::from(u32_at(8)) << 32),
        selector: u16_at(2),
        ist: bytes[4] & 0x7,
        gate_type: bytes[5] & 0xF,
        dpl: (bytes[5] >> 5) & 0x3,
        present: bytes[5] & 0x80 != 0,
    }
}

fn current_cs() -> u16 {
    use crashkit::x86_64::instructions::segmentation::{CS, Segment};
    CS::get_reg().0
}

#[test]
fn a_kernel_with_its_own_idt_gets_the_three_gates() {
    let mut idt = Box::new(RawIdt([[0; 2]; 256]));
    let selector = 0x08;
    idt.install_crashkit(selector, &IstSlots::DEFAULT).unwrap();
    let stubs = Own::entry_stubs();
    let expected = [
        (2, stubs.nmi as usize as u64, 1),
        (8, stubs.double_fault as usize as u64, 2),
        (18, stubs.machine_check as usize as u64, 3),
    ];
    for (vector, handler, ist) in expected {
        assert_eq!(
            decode(idt.0[vector]),
            Decoded {
                offset: handler,
                selector,
                ist,
                gate_type: 0b1110,
                dpl: 0,
                present: true,
            },
            "vector {vector}"
        );
    }
    // Nothing else was written.
    let written = idt.0.iter().filter(|gate| **gate != [0, 0]).count();
    assert_eq!(written, 3);
}

#[test]
fn the_gates_are_what_install_entries_writes_in_the_x86_64_crates_table() {
    let ist = IstSlots {
        nmi: 4,
        double_fault: 5,
        machine_check: 6,
    };
    let mut theirs = Box::new(InterruptDescriptorTable::new());
    // SAFETY: a table nobody loads; only its bytes are compared.
    unsafe { Own::install_entries(&mut theirs, &ist) }.unwrap();
    let mut ours = Box::new(RawIdt([[0; 2]; 256]));
    // The x86_64 crate takes the selector from CS at the time of writing.
    ours.install_crashkit(current_cs(), &ist).unwrap();
    // SAFETY: `InterruptDescriptorTable` is `repr(C, align(16))`, 256
    // 16-byte entries after the 32 named ones as laid out by the CPU; read
    // as plain words, no reference outlives this block.
    let raw: [[u64; 2]; 256] = unsafe { core::ptr::read((&raw const *theirs).cast()) };
    // IstSlots count from 0, the gate's IST field from 1.
    for (vector, gate_ist) in [(2usize, 5), (8, 6), (18, 7)] {
        assert_eq!(ours.0[vector], raw[vector], "vector {vector}");
        assert_eq!(decode(ours.0[vector]).ist, gate_ist, "vector {vector}");
    }
}

#[test]
fn a_slot_past_the_tss_is_refused() {
    for ist in [
        IstSlots {
            nmi: 7,
            ..IstSlots::DEFAULT
        },
        IstSlots {
            machine_check: 9,
            ..IstSlots::DEFAULT
        },
    ] {
        let refused = Own::entry_stubs().gates(&ist);
        assert!(
            matches!(
                refused,
                Err(crashkit::nmi::arch::x86_64::entry::InstallError::IstIndexOutOfRange(7 | 9))
            ),
            "{refused:?}"
        );
    }
}

#[test]
fn cpu_numbers_are_usize_in_a_kernel() {
    let cpu: usize = 3;
    assert_eq!(CpuIndex::try_from(cpu), Ok(CpuIndex(3)));
    assert!(CpuIndex::try_from(usize::MAX).is_err());
}
