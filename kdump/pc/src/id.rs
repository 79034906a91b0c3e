//! A dump id: what names one dump, so a torn new dump is never taken for
//! an old one (the device layout repeats it in both headers and the
//! completion marker).

/// A dump id: RDRAND where CPUID.01H:ECX bit 30 says it exists (retried as
/// the SDM advises), mixed with the TSC and the crashed kernel's boot id.
pub fn dump_id(boot_id: u64) -> [u8; 16] {
    let has_rdrand = core::arch::x86_64::__cpuid(1).ecx & (1 << 30) != 0;
    let mut words = [0u64; 2];
    for word in &mut words {
        let mut value = 0u64;
        if has_rdrand {
            for _ in 0..10 {
                let ok: u8;
                // SAFETY: RDRAND exists (CPUID above); it writes only the
                // output register and CF.
                unsafe {
                    core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack));
                }
                if ok != 0 {
                    break;
                }
            }
        }
        // SAFETY: RDTSC reads the time-stamp counter, no side effect.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        *word = value ^ tsc.rotate_left(17) ^ boot_id.rotate_left(41);
        core::hint::spin_loop();
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&words[0].to_le_bytes());
    id[8..].copy_from_slice(&words[1].to_le_bytes());
    id
}
