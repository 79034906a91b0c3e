//! Whether a return address follows a call instruction: the bytes just
//! before it read as one of x86_64's near call forms (Intel SDM vol. 2,
//! CALL): `E8 rel32`; `FF /2` with a register (`FF D0`-`FF D7`, with or
//! without a REX prefix), with `[reg+disp8]`, or with `[rip+disp32]`
//! (`FF 15`). Used where an unwinder needs evidence that a word on the
//! stack is a return address, not a stray value.

/// A call instruction that ends where a return address points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `E8 rel32`, to `target`.
    Direct { target: u64 },
    /// `FF /2`: through a register or memory.
    Indirect,
}

/// The call that ends at `ra`, given `code`, the 8 bytes before it.
pub fn before(ra: u64, code: [u8; 8]) -> Option<Call> {
    let [_, _, b2, b3, b4, b5, b6, b7] = code;
    if b3 == 0xe8 {
        let rel = i32::from_le_bytes([b4, b5, b6, b7]);
        return Some(Call::Direct {
            target: ra.wrapping_add_signed(i64::from(rel)),
        });
    }
    // ModRM: mod (bits 7-6), reg (5-3) = 2 for CALL, rm (2-0).
    let is_call = |modrm: u8, wanted_mod: u8| modrm >> 6 == wanted_mod && (modrm >> 3) & 7 == 2;
    // `FF /2`, mod 11: `call reg` (2 bytes).
    if b6 == 0xff && is_call(b7, 0b11) {
        return Some(Call::Indirect);
    }
    // `FF /2`, mod 01, no SIB: `call [reg+disp8]` (3 bytes).
    if b5 == 0xff && is_call(b6, 0b01) && b6 & 7 != 4 {
        return Some(Call::Indirect);
    }
    // `FF 15 disp32`: `call [rip+disp32]` (6 bytes).
    if b2 == 0xff && b3 == 0x15 {
        return Some(Call::Indirect);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bytes` (an instruction) placed to end at `ra`, after filler.
    fn ending(bytes: &[u8]) -> [u8; 8] {
        let mut code = [0x90u8; 8];
        code[8 - bytes.len()..].copy_from_slice(bytes);
        code
    }

    #[test]
    fn each_call_form_is_read_and_other_code_is_not() {
        let ra = 0xffff_ffff_8100_1005;
        // call rel32 -0x1005 from ra: to 0xffffffff81000000.
        assert_eq!(
            before(ra, ending(&[0xe8, 0xfb, 0xef, 0xff, 0xff])),
            Some(Call::Direct {
                target: 0xffff_ffff_8100_0000
            })
        );
        for call in [
            &[0xff, 0xd0][..],            // call rax
            &[0x41, 0xff, 0xd3],          // call r11
            &[0xff, 0x50, 0x08],          // call [rax+8]
            &[0xff, 0x15, 0, 0x10, 0, 0], // call [rip+0x1000]
        ] {
            assert_eq!(before(ra, ending(call)), Some(Call::Indirect), "{call:x?}");
        }
        for other in [
            &[0xff, 0xe0][..],   // jmp rax (FF /4)
            &[0xff, 0xc0],       // inc eax (FF /0)
            &[0x48, 0x89, 0xe5], // mov rbp, rsp
            &[0xcc, 0xcc, 0xcc], // int3 padding
            &[0xff, 0x54, 0x24], // call [rsp+disp8] needs a SIB: 4 bytes, not 3
        ] {
            assert_eq!(before(ra, ending(other)), None, "{other:x?}");
        }
    }
}
