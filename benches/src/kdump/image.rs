//! The benchmark's memory images: one Linux guest's real memory, its zero
//! pages filled by a recipe.
//!
//! The guest: Debian's Linux booted with 1 GiB of RAM under QEMU and
//! crashed with SysRq-c, as the Linux corpus does (the kernel package is
//! shared with it in `CACHE/corpus/linux`), dumped by QEMU once and kept
//! (`CACHE/kdump-bench/guest/qemu.elf`). Every page the guest wrote stays
//! as it is in every image: the running kernel's text and data, its page
//! tables, `mem_map`, slab, the unpacked initramfs, which is also what
//! makedumpfile needs to read to work at all. A recipe ([`Recipe`]) says
//! what share of the image stays zero and what fills the rest, page by
//! page (a page's class is drawn from a generator seeded by its frame
//! number, so an image is the same every time it is made from the same
//! guest). Each image is written as an ELF vmcore with every page in the
//! file and Linux's VMCOREINFO, the way /proc/vmcore presents memory to
//! makedumpfile, in `CACHE/kdump-bench/set-vN/NAME.elf`, with its making
//! described in `NAME.mix`.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use crashkit_corpus::linux;
use crashkit_dump_format::PAGE_SIZE;
use crashkit_dump_format::elf::reader::ElfDump;
use crashkit_qemu::rewrite;

use super::sources::{self, Keep};

const PAGE: usize = PAGE_SIZE as usize;

/// Guest RAM, and so every image's size.
pub const RAM_MIB: u32 = 1024;

/// Bump when a recipe or a source changes: cached images of another
/// version are not used (and `set-v{N-1}` can be deleted).
pub const SET_VERSION: u32 = 2;

/// Where the kernel's direct map starts on x86_64 without KASLR (for the
/// slab-like pages' pointers).
const DIRECT_MAP: u64 = 0xffff_8880_0000_0000;

/// What fills a page of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A page the guest wrote, as it wrote it.
    Guest,
    /// A zero page.
    Zero,
    /// Kernel code and data: consecutive pages of the guest kernel
    /// package's modules (`.ko`: text, data, rodata, symbols).
    Kernel,
    /// Executables and shared libraries of pinned Debian packages
    /// ([`sources::EXECUTABLES`]), as the page cache holds them.
    Executable,
    /// Slab-like: objects of one size (64 to 512 bytes) with list links
    /// pointing into the page, pointers into the direct map and kernel
    /// text, small integers, flags and reference counts; 15% free objects.
    Slab,
    /// Text files of pinned Debian packages ([`sources::TEXT`]): C++
    /// headers, Python, documentation, Tcl, JavaScript.
    Text,
    /// Random bytes (compressed or encrypted data).
    Random,
    /// Mostly zero: 1 to 16 random 8-byte words.
    Sparse,
}

impl Class {
    /// Every class, in the order the description lists them.
    pub const ALL: [Class; 8] = [
        Class::Guest,
        Class::Zero,
        Class::Kernel,
        Class::Executable,
        Class::Slab,
        Class::Text,
        Class::Random,
        Class::Sparse,
    ];

    /// How the description names the class.
    pub fn name(self) -> &'static str {
        match self {
            Class::Guest => "written by the Linux guest",
            Class::Zero => "zero",
            Class::Kernel => "kernel modules",
            Class::Executable => "executables and libraries",
            Class::Slab => "slab-like",
            Class::Text => "text",
            Class::Random => "random",
            Class::Sparse => "sparse",
        }
    }
}

/// One image of the set.
#[derive(Clone, Copy, Debug)]
pub struct Recipe {
    /// Its name (`--image` takes it; the file's name).
    pub name: &'static str,
    /// Share of the whole image left zero; `None`: the guest's memory as
    /// it is (nothing filled).
    pub zero: Option<f64>,
    /// What fills the guest's other zero pages: classes and weights.
    pub fill: &'static [(Class, u64)],
}

const fn one(name: &'static str, fill: &'static [(Class, u64)]) -> Recipe {
    Recipe {
        name,
        zero: Some(0.30),
        fill,
    }
}

/// The set: each kind on its own over the guest's memory (30% of every
/// image zero), the guest alone, and two mixes.
pub const SET: [Recipe; 9] = [
    Recipe {
        name: "guest",
        zero: None,
        fill: &[],
    },
    one("kernel", &[(Class::Kernel, 1)]),
    one("executables", &[(Class::Executable, 1)]),
    one("text", &[(Class::Text, 1)]),
    one("slab", &[(Class::Slab, 1)]),
    one("random", &[(Class::Random, 1)]),
    one("sparse", &[(Class::Sparse, 1)]),
    // Issue 11's image: kernel memory heavy.
    one(
        "mix-kernel",
        &[
            (Class::Kernel, 40),
            (Class::Slab, 20),
            (Class::Text, 12),
            (Class::Random, 12),
            (Class::Sparse, 16),
        ],
    ),
    // The codec calibration's proportions (35% zero, 25% executables,
    // 10% each of the rest): a machine running programs.
    Recipe {
        name: "mix-programs",
        zero: Some(0.35),
        fill: &[
            (Class::Executable, 384),
            (Class::Text, 154),
            (Class::Slab, 154),
            (Class::Random, 154),
            (Class::Sparse, 154),
        ],
    },
];

/// The recipe called `name`.
pub fn recipe(name: &str) -> Option<&'static Recipe> {
    SET.iter().find(|r| r.name == name)
}

/// A small, fast, seedable generator (splitmix64).
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The image of `recipe`, made first if it is not cached; its path and
/// its description (one paragraph).
pub fn image(cache: &Path, recipe: &Recipe) -> Result<(PathBuf, String), String> {
    let work = cache.join("kdump-bench");
    let set = work.join(format!("set-v{SET_VERSION}"));
    let path = set.join(format!("{}.elf", recipe.name));
    let mix_path = set.join(format!("{}.mix", recipe.name));
    if path.is_file()
        && let Ok(mix) = std::fs::read_to_string(&mix_path)
    {
        return Ok((path, mix));
    }
    std::fs::create_dir_all(&set).map_err(|e| format!("{}: {e}", set.display()))?;
    let (guest, qemu_elf) = guest(cache)?;
    let bytes = std::fs::read(&qemu_elf).map_err(|e| format!("{}: {e}", qemu_elf.display()))?;
    let dump = ElfDump::parse(&bytes).map_err(|e| format!("QEMU's dump: {e}"))?;
    let limit = u64::from(RAM_MIB) << 20;

    // The guest's pages: how many it wrote decides how many of its zero
    // pages stay zero.
    let (mut total, mut written) = (0u64, 0u64);
    let mut page = vec![0u8; PAGE];
    for segment in dump.segments() {
        let end = (segment.paddr + segment.memsz).min(limit);
        for phys in (segment.paddr..end).step_by(PAGE) {
            dump.read_phys(phys, &mut page)
                .map_err(|e| format!("QEMU's dump: {e}"))?;
            total += 1;
            written += u64::from(page.iter().any(|&b| b != 0));
        }
    }
    let guest_zero = total - written;
    let zero_wanted = recipe
        .zero
        .map_or(guest_zero, |share| (total as f64 * share) as u64);
    if guest_zero < zero_wanted {
        return Err(format!(
            "the guest wrote {written} of {total} pages: fewer than {zero_wanted} zero pages are left"
        ));
    }
    // Per 2^32: the chance that a zero page of the guest stays zero.
    let keep_zero = ((zero_wanted as u128) << 32) / u128::from(guest_zero.max(1));

    let sources_dir = work.join("sources");
    let wants = |class: Class| recipe.fill.iter().any(|&(c, _)| c == class);
    let release = &guest.release;
    let kernel = if wants(Class::Kernel) {
        let modules = cache
            .join("corpus/linux/unpacked/lib/modules")
            .join(release);
        sources::modules(&modules, 400 << 20)?
    } else {
        Vec::new()
    };
    let executables = if wants(Class::Executable) {
        sources::gather(&sources_dir, &sources::EXECUTABLES, Keep::Elf)?
    } else {
        Vec::new()
    };
    let text = if wants(Class::Text) {
        sources::gather(&sources_dir, &sources::TEXT, Keep::Text)?
    } else {
        Vec::new()
    };
    let weight: u64 = recipe.fill.iter().map(|&(_, w)| w).sum();
    let counts: [Cell<u64>; Class::ALL.len()] = Default::default();
    let at: [Cell<usize>; 3] = Default::default();
    let fill = |phys: u64, page: &mut [u8; PAGE]| {
        let frame = phys / PAGE_SIZE;
        let mut rng = Rng(frame ^ 0x6b63_6b64_756d_7001);
        let class = if page.iter().any(|&b| b != 0) {
            Class::Guest
        } else if weight == 0 || u128::from(rng.next_u64() >> 32) < keep_zero {
            Class::Zero
        } else {
            let mut pick = rng.next_u64() % weight;
            let mut chosen = Class::Zero;
            for &(class, w) in recipe.fill {
                if pick < w {
                    chosen = class;
                    break;
                }
                pick -= w;
            }
            chosen
        };
        if let Some(count) = Class::ALL
            .iter()
            .position(|&c| c == class)
            .and_then(|i| counts.get(i))
        {
            count.set(count.get() + 1);
        }
        match class {
            Class::Guest | Class::Zero => {}
            Class::Kernel => copy_next(&kernel, &at[0], page),
            Class::Executable => copy_next(&executables, &at[1], page),
            Class::Text => copy_next(&text, &at[2], page),
            Class::Slab => slab_page(frame, &mut rng, page),
            Class::Random => page
                .chunks_exact_mut(8)
                .for_each(|word| word.copy_from_slice(&rng.next_u64().to_le_bytes())),
            Class::Sparse => {
                for _ in 0..rng.next_u64() % 16 + 1 {
                    let at = (rng.next_u64() % 512) as usize * 8;
                    page[at..at + 8].copy_from_slice(&(rng.next_u64() | 1).to_le_bytes());
                }
            }
        }
    };
    let vmcoreinfo = dump.vmcoreinfo().ok_or("QEMU's dump has no VMCOREINFO")?;
    let vmcoreinfo: Vec<u8> = vmcoreinfo
        .entries()
        .flat_map(|(key, value)| format!("{key}={value}\n").into_bytes())
        .collect();
    let direct_map = crashkit_corpus::oracle::page_offset(&dump)?;
    let partial = set.join(format!("{}.partial", recipe.name));
    println!("kdump bench: making image {}", path.display());
    rewrite::write(
        &dump,
        &rewrite::Rewrite {
            vmcoreinfo: &vmcoreinfo,
            direct_map: Some(direct_map),
            kernel_image: None,
            crash_record: &[],
            panic_cpu: None,
            crash_time: rewrite::now(),
            exclude_zero_pages: false,
            registers: &|_, live| live,
            below: Some(limit),
            fill: Some(&fill),
        },
        &partial,
    )?;
    let shares: Vec<String> = Class::ALL
        .iter()
        .zip(&counts)
        .filter(|(_, count)| count.get() > 0)
        .map(|(class, count)| {
            format!(
                "{} {:.1}% ({} pages)",
                class.name(),
                100.0 * count.get() as f64 / total as f64,
                count.get()
            )
        })
        .collect();
    let mut from = Vec::new();
    if wants(Class::Kernel) {
        from.push(format!("kernel modules of Debian's linux-image-{release}"));
    }
    if wants(Class::Executable) {
        from.push(format!(
            "executables and libraries of {}",
            sources::describe(&sources::EXECUTABLES)
        ));
    }
    if wants(Class::Text) {
        from.push(format!(
            "text files of {}",
            sources::describe(&sources::TEXT)
        ));
    }
    let mix = format!(
        "{}: {total} pages of 4 KiB ({} MiB) from Debian's Linux {release} booted with {RAM_MIB} \
         MiB and crashed by SysRq-c{}: {}.{}\n",
        recipe.name,
        total >> 8,
        if weight == 0 {
            ", as it is"
        } else {
            ", its zero pages filled"
        },
        shares.join(", "),
        if from.is_empty() {
            String::new()
        } else {
            format!(" Pages cut from: {}.", from.join("; "))
        }
    );
    std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&mix_path, &mix).map_err(|e| format!("{}: {e}", mix_path.display()))?;
    Ok((path, mix))
}

/// The guest's QEMU dump, booted and crashed first if it is not cached.
fn guest(cache: &Path) -> Result<(linux::Guest, PathBuf), String> {
    let guest = linux::prepare(&cache.join("corpus/linux"))?;
    let guest_dir = cache.join("kdump-bench/guest");
    let qemu_elf = guest_dir.join("qemu.elf");
    if !qemu_elf.is_file() {
        println!("kdump bench: booting and crashing Linux with {RAM_MIB} MiB (a minute or two)");
        let outcome = linux::crash_and_dump(&guest, false, RAM_MIB, &guest_dir, &qemu_elf, None)?;
        let _ = std::fs::remove_file(&outcome.ram);
    }
    Ok((guest, qemu_elf))
}

/// The next page of `source` (wrapping), at `*at`.
fn copy_next(source: &[u8], at: &Cell<usize>, page: &mut [u8; PAGE]) {
    let pages = source.len() / PAGE;
    let index = at.get() % pages.max(1);
    let start = index * PAGE;
    if let Some(bytes) = source.get(start..start + PAGE) {
        page.copy_from_slice(bytes);
    }
    at.set(at.get() + 1);
}

/// A page of slab objects (see [`Class::Slab`]).
fn slab_page(frame: u64, rng: &mut Rng, page: &mut [u8; PAGE]) {
    const SIZES: [usize; 6] = [64, 96, 128, 192, 256, 512];
    let size = SIZES[(rng.next_u64() % SIZES.len() as u64) as usize];
    let page_va = DIRECT_MAP + frame * PAGE_SIZE;
    for (index, object) in page.chunks_mut(size).enumerate() {
        let object_va = page_va + (index * size) as u64;
        if rng.next_u64() % 100 < 15 {
            // Free: the free-list pointer to the next object, the rest
            // zero.
            object.fill(0);
            if let Some(word) = object.get_mut(..8) {
                word.copy_from_slice(&(object_va + size as u64).to_le_bytes());
            }
            continue;
        }
        for (slot, word) in object.chunks_exact_mut(8).enumerate() {
            let value = match slot % 8 {
                // A list head linking to a neighbour in the same page.
                0 | 1 => page_va + (rng.next_u64() % (PAGE_SIZE / 64)) * 64 + 8 * (slot as u64 % 2),
                // A pointer to another object somewhere in RAM.
                2 => DIRECT_MAP + ((rng.next_u64() % (1 << 30)) & !63),
                3 => rng.next_u64() % 4096,
                4 => rng.next_u64() & 0xff,
                5 => 0,
                // A function pointer into kernel text.
                6 => 0xffff_ffff_8100_0000 + (rng.next_u64() % (16 << 20)),
                _ => 1 + rng.next_u64() % 2,
            };
            word.copy_from_slice(&value.to_le_bytes());
        }
    }
}
