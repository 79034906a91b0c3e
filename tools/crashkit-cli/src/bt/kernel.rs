//! A kernel ELF opened for backtraces: its DWARF (functions, inlined
//! frames, file:line; addr2line), its call-frame information
//! (`.debug_frame`, else `.eh_frame`; gimli), its executable sections and
//! function symbols, and its build-id.

use std::borrow::Cow;

use anyhow::Context as _;
use gimli::{
    BaseAddresses, DebugFrame, EhFrame, EndianSlice, LittleEndian, UnwindContext, UnwindExpression,
    UnwindSection, UnwindTableRow,
};
use serde::Serialize;

pub(super) type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// Which section a CFI row came from.
#[derive(Clone, Copy)]
pub(super) enum Source {
    Debug,
    Eh,
}

/// A kernel ELF opened for unwinding and symbols.
pub struct Kernel<'a> {
    symbols: addr2line::Context<Slice<'a>>,
    debug_frame: Option<DebugFrame<Slice<'a>>>,
    eh_frame: Option<(EhFrame<Slice<'a>>, BaseAddresses)>,
    /// The executable ranges (`[start, end)` of its `SHF_EXECINSTR` sections).
    text: Vec<(u64, u64)>,
    /// Its build-id, if it has one.
    pub build_id: Option<Vec<u8>>,
    /// Function symbols (`STT_FUNC`, with a size), by address: names for
    /// code without DWARF (assembly entry stubs).
    functions: Vec<(u64, u64, String)>,
}

impl<'a> Kernel<'a> {
    /// Parse `bytes`, an ELF with DWARF.
    pub fn parse(bytes: &'a [u8]) -> anyhow::Result<Self> {
        let elf = goblin::elf::Elf::parse(bytes).context("not an ELF file")?;
        let section = |name: &str| -> Option<(&'a [u8], u64)> {
            let header = elf
                .section_headers
                .iter()
                .find(|h| elf.shdr_strtab.get_at(h.sh_name) == Some(name))?;
            let range = header.file_range()?;
            Some((bytes.get(range)?, header.sh_addr))
        };
        let load = |id: gimli::SectionId| -> Result<Slice<'a>, gimli::Error> {
            Ok(EndianSlice::new(
                section(id.name()).map_or(&[][..], |(data, _)| data),
                LittleEndian,
            ))
        };
        let dwarf = gimli::Dwarf::load(load).context("reading its DWARF")?;
        let symbols =
            addr2line::Context::from_dwarf(dwarf).context("reading its DWARF line tables")?;
        let debug_frame = section(".debug_frame").map(|(data, _)| {
            let mut frame = DebugFrame::new(data, LittleEndian);
            frame.set_address_size(8);
            frame
        });
        let eh_frame = section(".eh_frame").map(|(data, addr)| {
            let mut bases = BaseAddresses::default().set_eh_frame(addr);
            if let Some((_, text)) = section(".text") {
                bases = bases.set_text(text);
            }
            (EhFrame::new(data, LittleEndian), bases)
        });
        let text = elf
            .section_headers
            .iter()
            .filter(|h| h.is_executable() && h.sh_addr != 0)
            .map(|h| (h.sh_addr, h.sh_addr.saturating_add(h.sh_size)))
            .collect();
        // GNU's build-id note (type 3, name `GNU`): in `.note.gnu.build-id`
        // for most ELFs, in `.notes` beside Xen's for a vmlinux, and in
        // the program headers' notes of a file without sections.
        let is_build_id = |note: &goblin::elf::note::Note<'_>| {
            note.n_type == 3 && note.name.trim_end_matches('\0') == "GNU"
        };
        let build_id = elf
            .iter_note_sections(bytes, None)
            .and_then(|mut notes| {
                notes.find_map(|note| note.ok().filter(is_build_id).map(|n| n.desc.to_vec()))
            })
            .or_else(|| {
                elf.iter_note_headers(bytes).and_then(|mut notes| {
                    notes.find_map(|note| note.ok().filter(is_build_id).map(|n| n.desc.to_vec()))
                })
            });
        let mut functions: Vec<(u64, u64, String)> = elf
            .syms
            .iter()
            .filter(|sym| sym.is_function() || sym.st_type() == goblin::elf::sym::STT_NOTYPE)
            .filter(|sym| sym.st_value != 0)
            .filter_map(|sym| {
                let name = elf.strtab.get_at(sym.st_name)?;
                (!name.is_empty() && !name.starts_with('.'))
                    .then(|| (sym.st_value, sym.st_size, name.to_owned()))
            })
            .collect();
        functions.sort_by_key(|&(addr, _, _)| addr);
        Ok(Self {
            symbols,
            debug_frame,
            eh_frame,
            text,
            build_id,
            functions,
        })
    }

    pub(super) fn in_text(&self, addr: u64) -> bool {
        self.text
            .iter()
            .any(|&(start, end)| (start..end).contains(&addr))
    }

    /// The functions at `pc`, innermost (inlined) first, with file:line.
    pub fn symbolise(&self, pc: u64) -> Vec<Function> {
        let mut out = Vec::new();
        if let Ok(mut frames) = self.symbols.find_frames(pc).skip_all_loads() {
            while let Ok(Some(frame)) = frames.next() {
                let name = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map(Cow::into_owned);
                let (file, line) = frame
                    .location
                    .map_or((None, None), |l| (l.file.map(str::to_owned), l.line));
                out.push(Function { name, file, line });
                if out.len() >= 16 {
                    break;
                }
            }
        }
        if out.iter().all(|f| f.name.is_none()) {
            // No DWARF here: the symbol table's nearest function symbol at
            // or below `pc`, with the offset into it.
            let at = self.functions.partition_point(|&(addr, _, _)| addr <= pc);
            if let Some((addr, size, name)) = at.checked_sub(1).and_then(|i| self.functions.get(i))
                && (*size == 0 || pc < addr + size)
                && self.in_text(*addr)
            {
                out = vec![Function {
                    name: Some(format!("{}+{:#x}", demangle(name), pc - addr)),
                    file: None,
                    line: None,
                }];
            }
        }
        out
    }

    /// The name of the function `pc` is in: the innermost one, with the
    /// function it is inlined into, if any.
    pub fn function_name(&self, pc: u64) -> Option<String> {
        let functions = self.symbolise(pc);
        let inner = functions.first()?.name.clone()?;
        Some(match functions.last().and_then(|f| f.name.as_deref()) {
            Some(outer) if functions.len() > 1 => format!("{inner} (inlined into {outer})"),
            _ => inner,
        })
    }

    /// The CFI row for `pc` and the section it came from.
    pub(super) fn row(&self, pc: u64) -> Option<(UnwindTableRow<usize>, Source)> {
        let mut context = UnwindContext::new();
        if let Some(frame) = &self.debug_frame
            && let Ok(row) = frame.unwind_info_for_address(
                &BaseAddresses::default(),
                &mut context,
                pc,
                DebugFrame::cie_from_offset,
            )
        {
            return Some((row.clone(), Source::Debug));
        }
        if let Some((frame, bases)) = &self.eh_frame
            && let Ok(row) =
                frame.unwind_info_for_address(bases, &mut context, pc, EhFrame::cie_from_offset)
        {
            return Some((row.clone(), Source::Eh));
        }
        None
    }

    /// A DWARF expression of a CFI rule, from the section it is in.
    pub(super) fn expression(
        &self,
        source: Source,
        expression: &UnwindExpression<usize>,
    ) -> Option<gimli::Expression<Slice<'a>>> {
        match source {
            Source::Debug => expression.get(self.debug_frame.as_ref()?).ok(),
            Source::Eh => expression.get(&self.eh_frame.as_ref()?.0).ok(),
        }
    }
}

/// A symbol's name, demangled when it is a Rust one.
fn demangle(name: &str) -> String {
    addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned()
}

/// A function at an address.
#[derive(Debug, Serialize)]
pub struct Function {
    /// Its demangled name, if the DWARF names it.
    pub name: Option<String>,
    /// Its source file.
    pub file: Option<String>,
    /// Its line.
    pub line: Option<u32>,
}
