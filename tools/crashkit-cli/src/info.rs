//! `crashkit info DUMP`: what the dump is and what it holds, from its
//! metadata alone (headers, notes, bitmaps, program headers; no page
//! data): format and producer, machine, completeness, OSRELEASE and the
//! rest of VMCOREINFO, crash time, CPUs, memory ranges, page counts, and
//! the panic message and phase from the crash record's note.

use serde::Serialize;

use crashkit_dump_format::read::{Machine, PageCounts};
use crashkit_dump_format::vmcoreinfo::VmcoreInfo;
use crashkit_dump_format::{PAGE_SIZE, PhysRange};

use crate::open::{Dump, Files, Opened};
use crate::record;

/// The JSON schema's version: bumped when a field changes meaning or goes.
pub const SCHEMA: u32 = 1;

/// Everything `info` reports (the JSON form; docs/cli.md).
#[derive(Debug, Serialize)]
pub struct Info {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The files read, in the order named.
    pub files: Vec<String>,
    /// `elf`, `kdump-compressed` or `kdump-compressed-flattened`.
    pub format: &'static str,
    /// Who wrote the file: `crashkit`, `qemu`, `linux` (/proc/vmcore),
    /// `makedumpfile`, `unknown` ([`crate::provenance`]).
    pub producer: &'static str,
    /// What the producer made it from, where its notes say (`crashkit`,
    /// `qemu`, `linux`); null for a file written from memory.
    pub made_from: Option<&'static str>,
    /// `x86_64` or `i386`.
    pub machine: String,
    /// `complete`, `incomplete: <why>` or `unknown` (no marker to tell).
    pub completeness: String,
    /// What the reader found wrong while opening, with file offsets.
    pub damage: Vec<String>,
    /// `OSRELEASE` from VMCOREINFO.
    pub osrelease: Option<String>,
    /// Seconds since 1970: crashkit's identity note, else the kdump
    /// header's timestamp, else VMCOREINFO's `CRASHTIME`.
    pub crash_time: Option<u64>,
    /// CPUs with a register note.
    pub cpus: usize,
    /// The panicking CPU, where the dump says.
    pub panic_cpu: Option<u32>,
    /// Size of the crash record the dump carries in a note (`crashkit
    /// record` decodes it, or scans memory for one when there is no note).
    pub crash_record_bytes: Option<usize>,
    /// A dump of Linux (VMCOREINFO names `init_uts_ns`).
    #[serde(skip)]
    pub linux: bool,
    /// A dump of a kernel that is not crashkit's: a VMCOREINFO without
    /// crashkit's `CRASHKIT_VERSION` (Linux's among them), and no crash
    /// record note. No crash record to look for, so no CRASH RECORD line.
    #[serde(skip)]
    pub other_kernel: bool,
    /// The panic message: from the crash record's note (lossy UTF-8), or
    /// in a Linux dump Linux's `Kernel panic - not syncing` line from its
    /// log.
    pub panic_message: Option<String>,
    /// How far the panic path got, from the crash record's note.
    pub panic_phase: Option<String>,
    /// The physical memory the dump describes.
    pub memory: Vec<Range>,
    /// Pages per state below the highest page described.
    pub pages: Pages,
    /// Every VMCOREINFO entry, in file order.
    pub vmcoreinfo: Vec<Entry>,
    /// Where that VMCOREINFO came from: the dump's note, or (without one,
    /// or with a note that contradicts memory) Linux's own text found by
    /// scanning memory.
    pub vmcoreinfo_source: crate::vmcoreinfo::Source,
    /// What says which CPU panicked, for a Linux dump (`panic_cpu`, the
    /// log's stack-dump header, and what disagrees).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_panic: Option<crate::linux::PanicCpu>,
    /// Each CPU's RIP and the symbol it is in, where symbols name it (a
    /// Linux dump's kallsyms, or --system-map).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rips: Vec<Rip>,
    /// When the file is a crashkit dump device (or its image): what its
    /// headers say. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
}

/// A CPU's RIP, named.
#[derive(Debug, Serialize)]
pub struct Rip {
    /// The CPU, as `cpus` numbers it.
    pub cpu: usize,
    /// Its RIP.
    pub rip: u64,
    /// `name+off/size`, when a symbol covers it.
    pub symbol: Option<String>,
}

/// A dump device's headers, as `info` reports them.
#[derive(Debug, Serialize)]
pub struct DeviceInfo {
    /// `whole`, `saved` (whole, copied out with `save --clear`) or `torn`.
    pub state: &'static str,
    /// Why a torn dump is torn.
    pub torn: Option<String>,
    /// The dump's id, in hex.
    pub dump_id: String,
    /// Bytes of the dump file on the device.
    pub data_bytes: u64,
    /// The device's length as its writer used it.
    pub device_bytes: u64,
    /// The dump did not fit (its file is cut).
    pub did_not_fit: bool,
}

fn device_info(data: &[u8]) -> Option<DeviceInfo> {
    use crashkit_dump_format::device::{DeviceDump, FLAG_DID_NOT_FIT};
    let (state, header, torn) = match crate::open::device(data)? {
        DeviceDump::Whole(h) => ("whole", h, None),
        DeviceDump::Saved(h) => ("saved", h, None),
        DeviceDump::Torn(h, why) => ("torn", h, Some(why.to_string())),
        DeviceDump::Empty | DeviceDump::Unreadable(_) => return None,
    };
    Some(DeviceInfo {
        state,
        torn,
        dump_id: header.dump_id.iter().map(|b| format!("{b:02x}")).collect(),
        data_bytes: header.data_len,
        device_bytes: header.device_len,
        did_not_fit: header.flags & FLAG_DID_NOT_FIT != 0,
    })
}

/// A physical range `[start, end)`.
#[derive(Debug, Serialize)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Pages per state.
#[derive(Debug, Serialize)]
pub struct Pages {
    /// In the file.
    pub present: u64,
    /// Known zero, not stored.
    pub zero: u64,
    /// Left out on purpose.
    pub excluded: u64,
    /// Not memory.
    pub hole: u64,
    /// Meant to be there, missing.
    pub lost: u64,
    /// In parts of a split dump that were not given.
    pub in_parts_not_given: u64,
}

/// One VMCOREINFO line.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The key (`SYMBOL(init_top_pgt)`, ...).
    pub key: String,
    /// The value as written.
    pub value: String,
}

fn entries(info: Option<VmcoreInfo<'_>>) -> Vec<Entry> {
    info.map(|info| {
        info.entries()
            .map(|(key, value)| Entry {
                key: key.to_owned(),
                value: value.to_owned(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn ranges(ranges: impl IntoIterator<Item = PhysRange>) -> Vec<Range> {
    let mut merged: Vec<Range> = Vec::new();
    let mut sorted: Vec<PhysRange> = ranges.into_iter().collect();
    sorted.sort_by_key(|r| r.start);
    for range in sorted {
        let end = range.start.saturating_add(range.len);
        match merged.last_mut() {
            Some(last) if last.end >= range.start => last.end = last.end.max(end),
            _ => merged.push(Range {
                start: range.start,
                end,
            }),
        }
    }
    merged
}

fn pages(counts: PageCounts) -> Pages {
    Pages {
        present: counts.present,
        zero: counts.zero,
        excluded: counts.excluded,
        hole: counts.hole,
        lost: counts.lost,
        in_parts_not_given: counts.in_other_parts,
    }
}

/// Gather [`Info`] from an opened dump.
pub fn gather(files: &Files, dump: &Opened<'_>) -> Info {
    let mut info = gather_metadata(files, dump);
    info.device = files.parts.first().and_then(|(_, map)| device_info(map));
    // The VMCOREINFO the commands use: the note's when sound, else found
    // in memory.
    let vmcoreinfo = dump.vmcoreinfo();
    info.vmcoreinfo = entries(vmcoreinfo);
    info.osrelease = vmcoreinfo.and_then(|v| v.get("OSRELEASE").map(str::to_owned));
    info.vmcoreinfo_source = dump.vmcoreinfo_source().clone();
    info.linux = dump.is_linux();
    if info.linux {
        info.linux_panic = dump.linux_panic().cloned();
        if info.panic_cpu.is_none() {
            info.panic_cpu = info.linux_panic.as_ref().map(|p| p.cpu);
        }
        if let Ok(table) = dump.kallsyms() {
            let list = crate::cpus::notes(dump);
            info.rips = (0..list.len())
                .map(|place| Rip {
                    cpu: crate::cpus::number(list, place),
                    rip: list[place].rip(),
                    symbol: table.name_of(list[place].rip()).map(|n| n.to_string()),
                })
                .collect();
        }
    }
    info.other_kernel = info.crash_record_bytes.is_none()
        && info.producer != "crashkit"
        && info.made_from != Some("crashkit")
        && dump
            .vmcoreinfo()
            .is_some_and(|v| v.get("CRASHKIT_VERSION").is_none());
    if info.linux {
        // Linux's own panic line, from its log (a bounded read of the
        // printk ring, not of every page); a log that cannot be read
        // leaves it out.
        info.panic_message = crate::log::read(dump)
            .ok()
            .and_then(|log| log.panic_line().map(str::to_owned));
    }
    if let Some(view) = record::noted(dump) {
        let panic = view.panic();
        info.panic_message = Some(String::from_utf8_lossy(panic.message().as_bytes()).into_owned());
        info.panic_phase = Some(record::name(panic.phase()));
        info.panic_cpu = info.panic_cpu.or(panic.owner_cpu());
    }
    info
}

/// [`Info`] from the dump's headers and notes, without the record's facts.
fn gather_metadata(files: &Files, dump: &Dump<'_>) -> Info {
    let provenance = crate::provenance::of(dump);
    let names = files
        .parts
        .iter()
        .map(|(path, _)| path.display().to_string())
        .collect();
    match dump {
        Dump::Elf(elf) => {
            let vmcoreinfo = elf.vmcoreinfo();
            let crashkit = elf.crashkit();
            Info {
                schema: SCHEMA,
                files: names,
                format: "elf",
                producer: provenance.producer,
                made_from: provenance.made_from,
                machine: match elf.machine() {
                    Machine::X86_64 => "x86_64",
                    Machine::I386 => "i386",
                }
                .into(),
                completeness: elf.completeness().to_string(),
                damage: crate::open::elf_damage(elf),
                osrelease: vmcoreinfo.and_then(|v| v.get("OSRELEASE").map(str::to_owned)),
                crash_time: crashkit
                    .map(|c| c.identity.crash_time)
                    .filter(|&t| t > 0)
                    .or_else(|| vmcoreinfo.and_then(|v| v.number("CRASHTIME"))),
                cpus: elf.cpus().len(),
                panic_cpu: crashkit.and_then(|c| c.identity.panic_cpu),
                crash_record_bytes: crashkit.and_then(|c| c.crash_record.map(<[u8]>::len)),
                linux: false,
                other_kernel: false,
                panic_message: None,
                panic_phase: None,
                // crashkit's memory map names the memory the dump covers,
                // pages left out included (as a kdump file's first bitmap
                // does); other producers' segments are all there is.
                memory: match crashkit {
                    Some(c) if !c.memory_map.is_empty() => ranges(c.memory_map.iter().copied()),
                    _ => ranges(
                        elf.segments()
                            .iter()
                            .map(|s| PhysRange::new(s.paddr, s.memsz)),
                    ),
                },
                pages: pages(elf.page_counts()),
                vmcoreinfo: entries(vmcoreinfo),
                vmcoreinfo_source: crate::vmcoreinfo::Source::default(),
                linux_panic: None,
                rips: Vec::new(),
                device: None,
            }
        }
        Dump::Kdump(parts) => {
            // Every part has the whole header, notes and bitmaps; only the
            // descriptors differ. Counts: holes and exclusions once, the
            // dumpable frames from the part that holds each.
            let first = &parts[0];
            let mut counts = first.page_counts();
            // Each part counts the dumpable frames it does not hold as in
            // other parts: what no part given holds is in parts not given.
            let dumpable = counts.present + counts.lost + counts.in_other_parts;
            if parts.len() > 1 {
                let (mut present, mut lost) = (0u64, 0u64);
                for part in parts {
                    let own = part.page_counts();
                    present += own.present;
                    lost += own.lost;
                }
                counts.present = present.min(dumpable);
                counts.lost = lost.min(dumpable - counts.present);
                counts.in_other_parts = dumpable - counts.present - counts.lost;
            }
            let crashkit = first.crashkit();
            let machine = String::from_utf8_lossy(&first.header().utsname[4])
                .trim_end_matches('\0')
                .to_owned();
            let timestamp = u64::try_from(first.header().timestamp.0)
                .ok()
                .filter(|&t| t > 0);
            let vmcoreinfo = first.vmcoreinfo();
            Info {
                schema: SCHEMA,
                files: names,
                format: if first.is_flattened() {
                    "kdump-compressed-flattened"
                } else {
                    "kdump-compressed"
                },
                producer: provenance.producer,
                made_from: provenance.made_from,
                machine,
                completeness: first.completeness().to_string(),
                damage: crate::open::kdump_damage(parts),
                osrelease: vmcoreinfo
                    .as_ref()
                    .and_then(|v| v.get("OSRELEASE").map(str::to_owned)),
                crash_time: crashkit
                    .as_ref()
                    .map(|c| c.identity.crash_time)
                    .filter(|&t| t > 0)
                    .or(timestamp),
                cpus: first.cpus().len(),
                panic_cpu: crashkit.as_ref().and_then(|c| c.identity.panic_cpu),
                crash_record_bytes: crashkit
                    .as_ref()
                    .and_then(|c| c.crash_record.map(<[u8]>::len)),
                linux: false,
                other_kernel: false,
                panic_message: None,
                panic_phase: None,
                memory: ranges(first.memory_runs()),
                pages: pages(counts),
                vmcoreinfo: entries(vmcoreinfo),
                vmcoreinfo_source: crate::vmcoreinfo::Source::default(),
                linux_panic: None,
                rips: Vec::new(),
                device: None,
            }
        }
        // A raw image of RAM: memory from 0 to its end, nothing else known.
        Dump::Ram(bytes) => Info {
            schema: SCHEMA,
            files: names,
            format: "raw-ram",
            producer: "unknown",
            made_from: None,
            machine: "unknown".into(),
            completeness: crashkit_dump_format::read::Completeness::Unknown.to_string(),
            damage: Vec::new(),
            osrelease: None,
            crash_time: None,
            cpus: 0,
            panic_cpu: None,
            crash_record_bytes: None,
            linux: false,
            other_kernel: false,
            panic_message: None,
            panic_phase: None,
            memory: ranges([PhysRange::new(0, bytes.len() as u64)]),
            pages: pages(PageCounts {
                present: (bytes.len() as u64).div_ceil(PAGE_SIZE),
                ..PageCounts::default()
            }),
            vmcoreinfo: Vec::new(),
            vmcoreinfo_source: crate::vmcoreinfo::Source::default(),
            linux_panic: None,
            rips: Vec::new(),
            device: None,
        },
    }
}

/// `seconds` since 1970 as `YYYY-MM-DD HH:MM:SS UTC` (proleptic
/// Gregorian; days to a date by the usual era arithmetic).
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `bytes` in MiB, or in KiB below 1 MiB (a small dump is not "0 MiB").
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes.div_ceil(1 << 10))
    }
}

/// The text form: one `LABEL: value` line per fact, then VMCOREINFO.
pub fn render(info: &Info) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:>12}: {value}\n"));
    };
    line("FILES", info.files.join(", "));
    if let Some(device) = &info.device {
        line(
            "DEVICE",
            format!(
                "crashkit dump device of {}: {} dump {}, {} bytes{}{}",
                size(device.device_bytes),
                device.state,
                device.dump_id,
                device.data_bytes,
                if device.did_not_fit {
                    " (it did not fit)"
                } else {
                    ""
                },
                device
                    .torn
                    .as_ref()
                    .map_or(String::new(), |why| format!(": {why}"))
            ),
        );
    }
    let provenance = crate::provenance::Provenance {
        producer: info.producer,
        made_from: info.made_from,
    };
    line(
        "FORMAT",
        format!(
            "{} ({}), {}",
            info.format,
            provenance.describe(),
            info.machine
        ),
    );
    line("COMPLETE", info.completeness.clone());
    for damage in &info.damage {
        line("DAMAGE", damage.clone());
    }
    line(
        "OSRELEASE",
        info.osrelease.clone().unwrap_or_else(|| "(none)".into()),
    );
    line(
        "CRASH TIME",
        info.crash_time
            .map_or_else(|| "(not recorded)".into(), |t| format!("{} ({t})", utc(t))),
    );
    line(
        "CPUS",
        match info.panic_cpu {
            Some(cpu) => format!("{} (panicking: {cpu})", info.cpus),
            None => info.cpus.to_string(),
        },
    );
    if let Some(linux) = &info.linux_panic {
        let mut said = match (linux.panic_cpu, &linux.log_header) {
            (Some(_), Some((cpu, pid, comm))) if *cpu == linux.cpu => format!(
                "CPU {} (panic_cpu; the log's header agrees: PID {pid} {comm})",
                linux.cpu
            ),
            (Some(_), _) => format!("CPU {} (panic_cpu)", linux.cpu),
            (None, Some((_, pid, comm))) => {
                format!("CPU {} (the log's header: PID {pid} {comm})", linux.cpu)
            }
            (None, None) => format!("CPU {}", linux.cpu),
        };
        for disagreement in &linux.disagreements {
            said.push_str(&format!("; but {disagreement}"));
        }
        line("PANICKING", said);
    }
    for rip in &info.rips {
        line(
            "RIP",
            format!(
                "CPU {}: {:#018x}{}",
                rip.cpu,
                rip.rip,
                rip.symbol
                    .as_ref()
                    .map_or(String::new(), |s| format!(" {s}"))
            ),
        );
    }
    match info.crash_record_bytes {
        Some(bytes) => line("CRASH RECORD", format!("{bytes} bytes (crashkit record)")),
        None if info.linux || info.other_kernel => {}
        None => line(
            "CRASH RECORD",
            "not in a note (if the kernel is crashkit's, `crashkit record` scans memory for one)"
                .into(),
        ),
    }
    if let Some(message) = &info.panic_message {
        line("PANIC", format!("{message:?}"));
    }
    if let Some(phase) = &info.panic_phase {
        line("PANIC PHASE", phase.clone());
    }
    let total: u64 = info.memory.iter().map(|r| r.end - r.start).sum();
    let ranges: Vec<String> = info
        .memory
        .iter()
        .map(|r| format!("{:#x}-{:#x}", r.start, r.end.saturating_sub(1)))
        .collect();
    line(
        "MEMORY",
        format!(
            "{} in {} range{}: {}",
            size(total),
            ranges.len(),
            if ranges.len() == 1 { "" } else { "s" },
            ranges.join(", ")
        ),
    );
    let p = &info.pages;
    line(
        "PAGES",
        format!(
            "{} present, {} zero, {} excluded, {} hole, {} lost{} (of {} KiB each)",
            p.present,
            p.zero,
            p.excluded,
            p.hole,
            p.lost,
            if p.in_parts_not_given > 0 {
                format!(", {} in parts not given", p.in_parts_not_given)
            } else {
                String::new()
            },
            PAGE_SIZE >> 10
        ),
    );
    line(
        "VMCOREINFO",
        match info.vmcoreinfo_source.found_by {
            "note" | "" => format!("{} entries", info.vmcoreinfo.len()),
            "none" => crate::vmcoreinfo::describe(&info.vmcoreinfo_source),
            _ => format!(
                "{} entries, {}",
                info.vmcoreinfo.len(),
                crate::vmcoreinfo::describe(&info.vmcoreinfo_source)
            ),
        },
    );
    for entry in &info.vmcoreinfo {
        out.push_str(&format!("              {}={}\n", entry.key, entry.value));
    }
    out
}
