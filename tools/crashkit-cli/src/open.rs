//! Opening a dump: the files memory-mapped, the format found by content
//! (never by name), the format library's reader over the maps.
//!
//! A dump is one file, or the parts of a split kdump-compressed dump
//! (makedumpfile `--split`) named together as one argument joined by
//! commas: `vmcore.1,vmcore.2,vmcore.3`. A name that exists as a file is
//! taken whole, commas and all. With `--ram` (`record`, `cpus`, `rd -p`)
//! the file is a raw image of RAM instead ([`open_ram`]): QEMU's
//! file-backed guest memory, a `pmemsave`, byte N at physical address N.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use crashkit_dump_format::compressed::flat;
use crashkit_dump_format::compressed::header::{SIGNATURE_DISKDUMP, SIGNATURE_KDUMP};
use crashkit_dump_format::device::{self, DeviceDump};
use crashkit_dump_format::read::Completeness;
use crashkit_dump_format::{ElfDump, KdumpDump};
use memmap2::Mmap;

/// The input is unusable: which file, what, and where in it. Shown as
/// `crashkit: FILE: what, at offset N`; the process exits with 3.
#[derive(Debug)]
pub struct InputError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (already saying where, if the reader knows).
    pub what: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for InputError {}

fn input_error(path: &Path, what: impl fmt::Display) -> anyhow::Error {
    InputError {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
    .into()
}

/// The files of a dump argument, mapped.
pub struct Files {
    /// Each file's path and map, in the order named.
    pub parts: Vec<(PathBuf, Mmap)>,
}

impl Files {
    /// Map the files `argument` names (see the module docs).
    pub fn map(argument: &str) -> anyhow::Result<Self> {
        let names: Vec<PathBuf> = if Path::new(argument).exists() || !argument.contains(',') {
            vec![PathBuf::from(argument)]
        } else {
            argument.split(',').map(PathBuf::from).collect()
        };
        let mut parts = Vec::with_capacity(names.len());
        for path in names {
            let map = Self::map_plain(&path)?;
            parts.push((path, map));
        }
        Ok(Self { parts })
    }

    /// Map one file for reading (a dump's part, or the kernel's ELF).
    pub fn map_plain(path: &Path) -> anyhow::Result<Mmap> {
        let file = File::open(path).map_err(|e| input_error(path, e))?;
        let metadata = file.metadata().map_err(|e| input_error(path, e))?;
        // mmap of a directory fails with ENODEV, "No such device".
        if metadata.is_dir() {
            return Err(input_error(
                path,
                "a directory, not a dump file (name the file, or a split dump's parts joined by commas)",
            ));
        }
        let mut len = metadata.len();
        // A block device (a dump device) reports no length: seek its end.
        if len == 0 && std::os::unix::fs::FileTypeExt::is_block_device(&metadata.file_type()) {
            let mut file = &file;
            len = std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
                .map_err(|e| input_error(path, e))?;
        }
        if len == 0 {
            return Err(input_error(path, "empty file"));
        }
        let len = len_usize(path, len)?;
        let mut options = memmap2::MmapOptions::new();
        options.len(len);
        // SAFETY: the map is read only and lives as long as its owner
        // (`Files`, or the caller's binding), which outlives every reader
        // made from it; its length is the file's (or the block device's,
        // sought above). Another process truncating the file while it is
        // mapped would make reads fault (SIGBUS); dumps and kernels are not
        // written while they are analysed, and the readers never assume
        // more than the length seen here.
        unsafe { options.map(&file) }.map_err(|e| input_error(path, e))
    }
}

fn len_usize(path: &Path, len: u64) -> anyhow::Result<usize> {
    usize::try_from(len).map_err(|_| input_error(path, "larger than this machine can map"))
}

/// What a file is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ELF vmcore (`\x7fELF`).
    Elf,
    /// makedumpfile's kdump-compressed format (`KDUMP   ` or the legacy
    /// `DISKDUMP`), plain or flattened.
    Kdump,
}

/// The kind of the file in `data`, or why it is neither.
pub fn detect(data: &[u8]) -> Result<Kind, String> {
    if data.starts_with(b"\x7fELF") {
        Ok(Kind::Elf)
    } else if data.starts_with(SIGNATURE_KDUMP)
        || data.starts_with(SIGNATURE_DISKDUMP)
        || flat::is_flattened(data)
    {
        Ok(Kind::Kdump)
    } else {
        let head: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(format!(
            "not a dump: neither an ELF vmcore nor a kdump-compressed or flattened file \
             (first bytes {}), at offset 0",
            head.join(" ")
        ))
    }
}

/// An opened dump.
pub enum Dump<'a> {
    /// One ELF vmcore.
    Elf(Box<ElfDump<'a>>),
    /// A kdump-compressed dump: one file, or the parts of a split one.
    Kdump(Vec<KdumpDump<'a>>),
    /// A raw image of RAM: byte N is physical address N, from 0 to the
    /// file's end; no headers, no notes, no CPU state.
    Ram(&'a [u8]),
}

impl<'a> Dump<'a> {
    /// The VMCOREINFO of the dump's note, if it has one (every part of a
    /// split dump carries the same notes). The commands use
    /// [`Opened::vmcoreinfo`], which checks it and looks in memory when it
    /// is missing or wrong.
    pub fn noted_vmcoreinfo(&self) -> Option<crashkit_dump_format::vmcoreinfo::VmcoreInfo<'_>> {
        match self {
            Dump::Elf(elf) => elf.vmcoreinfo(),
            Dump::Kdump(parts) => parts[0].vmcoreinfo(),
            Dump::Ram(_) => None,
        }
    }

    /// The completeness the dump claims or shows and what is found wrong
    /// (every part's, for a split dump): [`elf_damage`].
    pub fn health(&self) -> (Completeness, Vec<String>) {
        match self {
            Dump::Elf(elf) => (elf.completeness(), elf_damage(elf)),
            Dump::Kdump(parts) => (parts[0].completeness(), kdump_damage(parts)),
            // Nothing in a raw image says whether it is whole.
            Dump::Ram(_) => (Completeness::Unknown, Vec::new()),
        }
    }

    /// For a kdump-compressed dump, the part that holds frame `frame`'s
    /// descriptor (the first part when none does: it then reports the
    /// frame's state from the bitmaps every part has).
    pub fn part_for(&self, frame: u64) -> Option<&KdumpDump<'a>> {
        match self {
            Dump::Elf(_) | Dump::Ram(_) => None,
            Dump::Kdump(parts) => parts
                .iter()
                .find(|p| (p.part().0..p.part().1).contains(&frame))
                .or(parts.first()),
        }
    }
}

/// What is wrong with an ELF dump: what opening found, and segments that
/// map the same memory with different bytes (a comparison of the
/// overlapping bytes, a kernel image's size in a Linux dump).
pub fn elf_damage(elf: &ElfDump<'_>) -> Vec<String> {
    elf.damage()
        .iter()
        .chain(&elf.overlap_damage())
        .map(ToString::to_string)
        .collect()
}

/// What is wrong with a kdump-compressed dump: each part's damage, then
/// what the parts of a split dump show together (a part foreign, doubled or
/// missing; "part N" is the N-th file given).
pub fn kdump_damage(parts: &[KdumpDump<'_>]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.damage().iter().map(ToString::to_string))
        .chain(
            crashkit_dump_format::compressed::split::check_set(parts)
                .iter()
                .map(|problem| format!("split dump: {problem}")),
        )
        .collect()
}

/// What a crashkit dump device (or an image of one) holds, if `data` is
/// one: the verdict on its headers.
pub fn device(data: &[u8]) -> Option<DeviceDump> {
    if !data.starts_with(&device::MAGIC) {
        return None;
    }
    let block = usize::try_from(device::BLOCK).ok()?;
    Some(DeviceDump::read(
        data.get(..block)?,
        data.len() as u64,
        |at| {
            let at = usize::try_from(at).ok()?;
            data.get(at..at.checked_add(block)?)
        },
    ))
}

/// The dump file's bytes in `data`: all of it, or on a crashkit dump
/// device the dump it holds (a torn one: everything up to the trailing
/// header's block, whose own completeness then says what is there).
fn payload<'a>(path: &Path, data: &'a [u8]) -> anyhow::Result<&'a [u8]> {
    let start = device::DATA_OFFSET as usize;
    let range = match device(data) {
        None => return Ok(data),
        Some(DeviceDump::Whole(h) | DeviceDump::Saved(h)) => {
            start..start.saturating_add(usize::try_from(h.data_len).unwrap_or(usize::MAX))
        }
        Some(DeviceDump::Torn(h, _)) => {
            let end = h.device_len.min(data.len() as u64);
            start..usize::try_from(end.saturating_sub(device::BLOCK)).unwrap_or(0)
        }
        Some(DeviceDump::Empty) => return Err(input_error(path, "an empty dump device")),
        Some(DeviceDump::Unreadable(problem)) => {
            return Err(input_error(
                path,
                format!("a crashkit dump device: {problem}, at offset 0"),
            ));
        }
    };
    data.get(range).filter(|d| !d.is_empty()).ok_or_else(|| {
        input_error(
            path,
            "a crashkit dump device with no dump data in it, at offset 0x1000",
        )
    })
}

/// An opened dump and what the commands learn of it once: which
/// VMCOREINFO describes it (chosen on first use, [`crate::vmcoreinfo`]).
/// It derefs to the [`Dump`] for everything else.
pub struct Opened<'a> {
    dump: Dump<'a>,
    vmcoreinfo: std::cell::OnceCell<crate::vmcoreinfo::Chosen>,
    kallsyms: std::cell::OnceCell<Result<crate::symbols::Table, String>>,
    linux_panic: std::cell::OnceCell<Option<crate::linux::PanicCpu>>,
}

impl<'a> std::ops::Deref for Opened<'a> {
    type Target = Dump<'a>;
    fn deref(&self) -> &Dump<'a> {
        &self.dump
    }
}

impl<'a> Opened<'a> {
    /// Wrap an opened dump.
    pub fn new(dump: Dump<'a>) -> Self {
        Self {
            dump,
            vmcoreinfo: std::cell::OnceCell::new(),
            kallsyms: std::cell::OnceCell::new(),
            linux_panic: std::cell::OnceCell::new(),
        }
    }

    fn chosen(&self) -> &crate::vmcoreinfo::Chosen {
        self.vmcoreinfo.get_or_init(|| {
            // A copy (a few KiB): a kdump file's notes are parsed anew
            // on each call, so the text borrows the reader, not the map.
            let note = self
                .dump
                .noted_vmcoreinfo()
                .map(|info| info.text().to_vec());
            let chosen = crate::vmcoreinfo::choose(&self.dump, note);
            if let Some(problem) = &chosen.source.note_problem {
                eprintln!(
                    "crashkit: warning: {problem}: {}",
                    match chosen.source.address {
                        Some(at) => format!("using Linux's own text found in memory at {at:#x}"),
                        None => "not used, and none found in memory".to_owned(),
                    }
                );
            }
            chosen
        })
    }

    /// The VMCOREINFO that describes the dump: its note's when that is
    /// sound, else Linux's own text found in memory (the first call may
    /// read every page).
    pub fn vmcoreinfo(&self) -> Option<crashkit_dump_format::vmcoreinfo::VmcoreInfo<'_>> {
        self.chosen()
            .text
            .as_deref()
            .map(crashkit_dump_format::vmcoreinfo::VmcoreInfo::new)
    }

    /// Where [`Self::vmcoreinfo`]'s text came from.
    pub fn vmcoreinfo_source(&self) -> &crate::vmcoreinfo::Source {
        &self.chosen().source
    }

    /// The kernel's own symbol table, decoded from the kallsyms tables its
    /// VMCOREINFO locates (once; [`crate::symbols::kallsyms`]), or why
    /// there is none.
    pub fn kallsyms(&self) -> Result<&crate::symbols::Table, &str> {
        self.kallsyms
            .get_or_init(|| crate::symbols::from_dump(self))
            .as_ref()
            .map_err(String::as_str)
    }

    /// Which CPU a Linux dump's kernel panicked on, and what says so
    /// (once; [`crate::linux::panic_cpu`]).
    pub fn linux_panic(&self) -> Option<&crate::linux::PanicCpu> {
        self.linux_panic
            .get_or_init(|| crate::linux::panic_cpu(self))
            .as_ref()
    }

    /// Whether this is a dump of Linux: its VMCOREINFO names `init_uts_ns`
    /// (Linux's own utsname), which no crashkit kernel exports. A Linux
    /// dump has no crash record, so nothing suggests looking for one.
    pub fn is_linux(&self) -> bool {
        self.vmcoreinfo()
            .is_some_and(|info| info.get("SYMBOL(init_uts_ns)").is_some())
    }
}

/// Open the mapped `files` as one dump.
pub fn open(files: &Files) -> anyhow::Result<Opened<'_>> {
    open_dump(files).map(Opened::new)
}

fn open_dump(files: &Files) -> anyhow::Result<Dump<'_>> {
    let mut kinds = Vec::new();
    let mut datas = Vec::new();
    for (path, map) in &files.parts {
        let data = payload(path, map)?;
        kinds.push(detect(data).map_err(|what| input_error(path, what))?);
        datas.push(data);
    }
    match kinds.as_slice() {
        [Kind::Elf] => {
            let path = &files.parts[0].0;
            let elf = ElfDump::parse(datas[0]).map_err(|e| input_error(path, e))?;
            Ok(Dump::Elf(Box::new(elf)))
        }
        kinds if kinds.iter().all(|&k| k == Kind::Kdump) => {
            let mut parts = Vec::new();
            for ((path, _), data) in files.parts.iter().zip(&datas) {
                parts.push(KdumpDump::parse(data).map_err(|e| input_error(path, e))?);
            }
            parts.sort_by_key(|p| p.part().0);
            Ok(Dump::Kdump(parts))
        }
        _ => Err(input_error(
            &files.parts[0].0,
            "the parts of a split dump must all be kdump-compressed files",
        )),
    }
}

/// Open the mapped `files` as a raw RAM image (`--ram`): one file, taken
/// as physical memory from address 0. A file that is a dump is refused:
/// read as RAM its headers would be taken for memory at address 0.
pub fn open_ram(files: &Files) -> anyhow::Result<Opened<'_>> {
    let [(path, map)] = files.parts.as_slice() else {
        return Err(input_error(
            &files.parts[0].0,
            "--ram takes one file (a raw RAM image), not the parts of a split dump",
        ));
    };
    if let Ok(kind) = detect(map) {
        let what = match kind {
            Kind::Elf => "an ELF file",
            Kind::Kdump => "a kdump-compressed file",
        };
        return Err(input_error(
            path,
            format!("this is {what}, not a raw RAM image: drop --ram, at offset 0"),
        ));
    }
    Ok(Opened::new(Dump::Ram(&map[..])))
}
