//! The ELF vmcore: the ELF64 headers of a core file here (goblin's structs,
//! encoded and decoded by field), the writer ([`writer`], `write_elf_dump`)
//! and the reader (`reader`, `ElfDump`, feature `alloc`).
//!
//! goblin gives the `#[repr(C)]` structs and the constants; the bytes are
//! produced and read field by field in little-endian order here, so no
//! `unsafe` cast of a possibly misaligned file buffer is ever needed and
//! the result does not depend on the host's byte order.

pub use goblin::elf::header::{EI_CLASS, EI_DATA, EI_VERSION, ELFCLASS64, ELFDATA2LSB, ELFMAG};
pub use goblin::elf::header::{EM_386, EM_X86_64, ET_CORE, EV_CURRENT};
pub use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, PT_NULL};
pub use goblin::elf64::header::Header;
pub use goblin::elf64::program_header::ProgramHeader;
pub use goblin::elf64::section_header::SectionHeader;

mod layout;
#[cfg(feature = "alloc")]
pub mod reader;
pub mod writer;

use crate::bytes::{array_at, put, put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};

/// Size of the ELF64 header.
pub const HEADER_SIZE: usize = goblin::elf64::header::SIZEOF_EHDR;
/// Size of one ELF64 program header.
pub const PROGRAM_HEADER_SIZE: usize = goblin::elf64::program_header::SIZEOF_PHDR;
/// Size of one ELF64 section header.
pub const SECTION_HEADER_SIZE: usize = goblin::elf64::section_header::SIZEOF_SHDR;
/// `e_phnum` value meaning "the count is in section header 0's `sh_info`"
/// (the ELF gABI's extended numbering; goblin does not define it).
pub const PN_XNUM: u16 = 0xffff;
/// Offset of `e_flags` in the ELF64 header.
pub const E_FLAGS_OFFSET: usize = 48;
/// `e_flags` bit 0: the dump is incomplete (makedumpfile's convention for
/// ELF output that ran out of space; crashkit sets it until the dump is
/// complete).
pub const E_FLAGS_INCOMPLETE: u32 = 1;

/// An x86_64 core-file header with the given program header layout.
pub fn core_header(phoff: u64, phnum: u16, shoff: u64, shnum: u16, flags: u32) -> Header {
    let mut e_ident = [0u8; 16];
    e_ident[..4].copy_from_slice(ELFMAG);
    e_ident[EI_CLASS] = ELFCLASS64;
    e_ident[EI_DATA] = ELFDATA2LSB;
    e_ident[EI_VERSION] = EV_CURRENT;
    Header {
        e_ident,
        e_type: ET_CORE,
        e_machine: EM_X86_64,
        e_version: u32::from(EV_CURRENT),
        e_entry: 0,
        e_phoff: phoff,
        e_shoff: shoff,
        e_flags: flags,
        e_ehsize: HEADER_SIZE as u16,
        e_phentsize: PROGRAM_HEADER_SIZE as u16,
        e_phnum: phnum,
        e_shentsize: if shnum > 0 {
            SECTION_HEADER_SIZE as u16
        } else {
            0
        },
        e_shnum: shnum,
        e_shstrndx: 0,
    }
}

/// The 64 bytes of `header`.
pub fn encode_header(header: &Header) -> [u8; HEADER_SIZE] {
    let mut b = [0u8; HEADER_SIZE];
    put(&mut b, 0, &header.e_ident);
    put_u16(&mut b, 16, header.e_type);
    put_u16(&mut b, 18, header.e_machine);
    put_u32(&mut b, 20, header.e_version);
    put_u64(&mut b, 24, header.e_entry);
    put_u64(&mut b, 32, header.e_phoff);
    put_u64(&mut b, 40, header.e_shoff);
    put_u32(&mut b, E_FLAGS_OFFSET, header.e_flags);
    put_u16(&mut b, 52, header.e_ehsize);
    put_u16(&mut b, 54, header.e_phentsize);
    put_u16(&mut b, 56, header.e_phnum);
    put_u16(&mut b, 58, header.e_shentsize);
    put_u16(&mut b, 60, header.e_shnum);
    put_u16(&mut b, 62, header.e_shstrndx);
    b
}

/// The header at the start of `bytes`, if 64 bytes are there. The fields
/// are read as little-endian; the caller checks `e_ident`.
pub fn decode_header(bytes: &[u8]) -> Option<Header> {
    Some(Header {
        e_ident: array_at(bytes, 0)?,
        e_type: u16_at(bytes, 16)?,
        e_machine: u16_at(bytes, 18)?,
        e_version: u32_at(bytes, 20)?,
        e_entry: u64_at(bytes, 24)?,
        e_phoff: u64_at(bytes, 32)?,
        e_shoff: u64_at(bytes, 40)?,
        e_flags: u32_at(bytes, E_FLAGS_OFFSET)?,
        e_ehsize: u16_at(bytes, 52)?,
        e_phentsize: u16_at(bytes, 54)?,
        e_phnum: u16_at(bytes, 56)?,
        e_shentsize: u16_at(bytes, 58)?,
        e_shnum: u16_at(bytes, 60)?,
        e_shstrndx: u16_at(bytes, 62)?,
    })
}

/// The 56 bytes of a program header.
pub fn encode_program_header(ph: &ProgramHeader) -> [u8; PROGRAM_HEADER_SIZE] {
    let mut b = [0u8; PROGRAM_HEADER_SIZE];
    put_u32(&mut b, 0, ph.p_type);
    put_u32(&mut b, 4, ph.p_flags);
    put_u64(&mut b, 8, ph.p_offset);
    put_u64(&mut b, 16, ph.p_vaddr);
    put_u64(&mut b, 24, ph.p_paddr);
    put_u64(&mut b, 32, ph.p_filesz);
    put_u64(&mut b, 40, ph.p_memsz);
    put_u64(&mut b, 48, ph.p_align);
    b
}

/// The program header at `offset` of `bytes`, if it is all there.
pub fn decode_program_header(bytes: &[u8], offset: usize) -> Option<ProgramHeader> {
    let b = bytes.get(offset..offset.checked_add(PROGRAM_HEADER_SIZE)?)?;
    Some(ProgramHeader {
        p_type: u32_at(b, 0)?,
        p_flags: u32_at(b, 4)?,
        p_offset: u64_at(b, 8)?,
        p_vaddr: u64_at(b, 16)?,
        p_paddr: u64_at(b, 24)?,
        p_filesz: u64_at(b, 32)?,
        p_memsz: u64_at(b, 40)?,
        p_align: u64_at(b, 48)?,
    })
}

/// The 64 bytes of the extended-numbering section header 0: `sh_info`
/// holds the real program header count.
pub fn encode_xnum_section_header(phnum: u32) -> [u8; SECTION_HEADER_SIZE] {
    let mut b = [0u8; SECTION_HEADER_SIZE];
    // sh_name, sh_type (SHT_NULL), sh_flags, sh_addr, sh_offset, sh_size,
    // sh_link all zero; sh_info at 44.
    put_u32(&mut b, 44, phnum);
    b
}

/// `sh_info` of the section header at `offset`, if it is all there.
pub fn xnum_from_section_header(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(SECTION_HEADER_SIZE)?;
    let b = bytes.get(offset..end)?;
    u32_at(b, 44)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_program_header_round_trip() {
        let header = core_header(64, 3, 0, 0, E_FLAGS_INCOMPLETE);
        let bytes = encode_header(&header);
        assert_eq!(&bytes[..4], b"\x7fELF");
        assert_eq!(u16_at(&bytes, 16), Some(4), "ET_CORE");
        assert_eq!(u16_at(&bytes, 18), Some(62), "EM_X86_64");
        assert_eq!(decode_header(&bytes), Some(header));
        let ph = ProgramHeader {
            p_type: PT_LOAD,
            p_flags: PF_R | PF_W | PF_X,
            p_offset: 0x2000,
            p_vaddr: 0xffff_8000_0010_0000,
            p_paddr: 0x10_0000,
            p_filesz: 0x1000,
            p_memsz: 0x3000,
            p_align: 4096,
        };
        let ph_bytes = encode_program_header(&ph);
        let mut file = vec![0u8; 10];
        file.extend_from_slice(&ph_bytes);
        assert_eq!(decode_program_header(&file, 10), Some(ph));
        assert_eq!(decode_program_header(&file, 11), None);
        let sh = encode_xnum_section_header(70_000);
        assert_eq!(xnum_from_section_header(&sh, 0), Some(70_000));
    }
}
