//! `crashkit triage PATH...`: many dumps at once, one row each, grouped by
//! crash signature ([`signature`]). PATHs are dump files, split dumps'
//! parts joined by commas, and directories (walked, sorted; the parts of a
//! makedumpfile `--split` set found in one directory become one dump).
//!
//! Each dump is read as `info` reads it (headers, notes, bitmaps; Linux's
//! log through VMCOREINFO), plus what its signature needs: the panicking
//! CPU's backtrace (a Linux dump's ORC tables, or a crashkit kernel's ELF
//! from `--kernel` or `--debug-dir`) and, for a crashkit kernel whose dump
//! has no record note (QEMU's), the crash record found by scanning memory.
//! A file that cannot be read is a row with its error; the run goes on.

pub mod html;
pub mod signature;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::open::{self, Files};
use crate::{bt, info, record};

/// How deep `triage` walks into directories.
pub const DEPTH: usize = 16;

/// Split parts in one directory that are compared pairwise to find their
/// sets; beyond this many, each is its own row (a hostile directory of
/// parts must not cost n² bitmap comparisons).
pub const MOST_SPLIT_PARTS: usize = 256;

/// What `triage` answers.
#[derive(Debug, Serialize)]
pub struct Triage {
    /// One row per dump, in the order found.
    pub rows: Vec<Row>,
    /// The signatures, most dumps first.
    pub groups: Vec<Group>,
    /// Rows that are errors.
    pub unreadable: usize,
}

/// One dump.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The dump: a file, or a split set's parts joined by commas.
    pub dump: String,
    /// Why it could not be read (the rest of the row is then empty).
    pub error: Option<String>,
    /// `elf`, `kdump-compressed`, ...
    pub format: Option<&'static str>,
    /// Who wrote it.
    pub producer: Option<&'static str>,
    /// OSRELEASE.
    pub release: Option<String>,
    /// The panic message.
    pub panic_message: Option<String>,
    /// The panicking CPU.
    pub panic_cpu: Option<u32>,
    /// When (seconds since 1970).
    pub crash_time: Option<u64>,
    /// The signature ([`signature`]).
    pub signature: Option<String>,
    /// Its id.
    pub signature_id: Option<String>,
    /// `complete`, `incomplete: why`, `unknown`.
    pub completeness: Option<String>,
    /// What opening found wrong (empty: nothing).
    pub damage: Vec<String>,
    /// With `--verify`: whether every page read back sound (`verify`);
    /// null without it.
    pub verified: Option<bool>,
    /// Why the signature has no frames, when it has none.
    pub frames_missing: Option<String>,
    /// What the frames could not be checked against (a kernel ELF used
    /// for a dump that names no build-id).
    pub warnings: Vec<String>,
    /// The per-dump report's file (with `--html`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// Dumps with one signature.
#[derive(Debug, Serialize)]
pub struct Group {
    /// The signature's id.
    pub signature_id: String,
    /// The signature.
    pub signature: String,
    /// How many dumps.
    pub count: usize,
    /// The earliest and latest crash time among them.
    pub oldest: Option<u64>,
    /// The latest.
    pub newest: Option<u64>,
    /// Their rows (indexes into `rows`).
    pub rows: Vec<usize>,
}

/// Where the kernels' ELFs are, for crashkit kernels' frames.
pub struct Kernels<'p> {
    /// `--kernel`, parsed once for every dump: used for the dumps whose
    /// build-id it has (or that name none, with a warning in the row).
    pub kernel: Option<(&'p Path, &'p bt::Kernel<'p>)>,
    /// `--debug-dir`.
    pub debug_dir: &'p Path,
    /// `--verify`: read every page of every dump.
    pub verify: bool,
}

/// Expand `paths` into the dumps to read: files as they are, directories
/// walked (sorted, at most [`DEPTH`] deep, symbolic links to directories
/// not followed), split parts in one directory joined into sets. A path
/// that does not exist is kept, to be a row with its error.
pub fn expand(paths: &[String]) -> Vec<String> {
    let mut dumps = Vec::new();
    for path in paths {
        let as_path = Path::new(path);
        if !path.contains(',') && as_path.is_dir() {
            walk(as_path, 0, &mut dumps);
        } else {
            dumps.push(path.clone());
        }
    }
    dumps
}

/// Walk `dir` into `dumps`.
fn walk(dir: &Path, depth: usize, dumps: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(read) => read.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => {
            dumps.push(dir.display().to_string());
            return;
        }
    };
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        let is_link = entry
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        if entry.is_dir() {
            if !is_link && depth < DEPTH {
                walk(&entry, depth + 1, dumps);
            }
        } else {
            files.push(entry);
        }
    }
    dumps.extend(join_split_sets(files));
}

/// The files of one directory, with the parts of each split set joined by
/// commas (in the directory's order). A part is a plain kdump-compressed
/// file whose sub-header says `split`; two parts are of one set when
/// [`check_set`](crashkit_dump_format::compressed::split::check_set) finds
/// neither foreign nor doubled.
///
/// Only the first 8 bytes of a file that is not plain kdump-compressed are
/// read, and one file is open at a time until the parts are known: a
/// flattened file's reader walks its whole stream, and a directory of them
/// held at once would cost their size in memory.
fn join_split_sets(files: Vec<PathBuf>) -> Vec<String> {
    use crashkit_dump_format::compressed::header::{SIGNATURE_DISKDUMP, SIGNATURE_KDUMP};
    use crashkit_dump_format::compressed::reader::KdumpDump;
    use crashkit_dump_format::compressed::split::{SetProblem, check_set};

    let is_part = |path: &Path| {
        let Ok(map) = open::Files::map_plain(path) else {
            return false;
        };
        let plain = map
            .get(..8)
            .is_some_and(|s| s == SIGNATURE_KDUMP || s == SIGNATURE_DISKDUMP);
        plain && KdumpDump::parse(&map).is_ok_and(|part| part.sub_header().split != 0)
    };
    let candidates: Vec<bool> = files.iter().map(|f| is_part(f)).collect();
    let maps: Vec<Option<memmap2::Mmap>> = files
        .iter()
        .zip(&candidates)
        .map(|(f, &part)| part.then(|| open::Files::map_plain(f).ok()).flatten())
        .collect();
    let mut parts: Vec<Option<KdumpDump<'_>>> = maps
        .iter()
        .map(|map| KdumpDump::parse(map.as_deref()?).ok())
        .collect();
    let split: Vec<usize> = (0..files.len()).filter(|&i| parts[i].is_some()).collect();
    let mut set_of: Vec<Option<usize>> = vec![None; files.len()];
    if split.len() <= MOST_SPLIT_PARTS {
        for (n, &i) in split.iter().enumerate() {
            if set_of[i].is_some() {
                continue;
            }
            set_of[i] = Some(i);
            for &j in &split[n + 1..] {
                if set_of[j].is_some() {
                    continue;
                }
                // Moved into a pair for the check, and back.
                let (Some(a), Some(b)) = (parts[i].take(), parts[j].take()) else {
                    continue;
                };
                let mut pair = vec![a, b];
                let same = check_set(&pair).iter().all(|p| {
                    !matches!(
                        p,
                        SetProblem::Foreign { .. }
                            | SetProblem::NotSplit { .. }
                            | SetProblem::Doubled { .. }
                    )
                });
                parts[j] = pair.pop();
                parts[i] = pair.pop();
                if same {
                    set_of[j] = Some(i);
                }
            }
        }
    }
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match set_of[i] {
            Some(first) if first == i => {
                let members: Vec<String> = (0..files.len())
                    .filter(|&j| set_of[j] == Some(i))
                    .map(|j| files[j].display().to_string())
                    .collect();
                out.push(members.join(","));
            }
            Some(_) => {}
            None => out.push(file.display().to_string()),
        }
    }
    out
}

/// One dump's row.
pub fn row(dump: &str, kernels: &Kernels<'_>) -> Row {
    let mut row = empty_row(dump);
    let files = match Files::map(dump) {
        Ok(files) => files,
        Err(e) => {
            row.error = Some(format!("{e:#}"));
            return row;
        }
    };
    let opened = match open::open(&files) {
        Ok(opened) => opened,
        Err(e) => {
            row.error = Some(format!("{e:#}"));
            return row;
        }
    };
    let info = info::gather(&files, &opened);
    row.format = Some(info.format);
    row.producer = Some(info.producer);
    row.release = info.osrelease.clone();
    row.crash_time = info.crash_time;
    row.completeness = Some(info.completeness.clone());
    row.damage = info.damage.clone();
    row.panic_message = info.panic_message.clone().filter(|m| !m.is_empty());
    row.panic_cpu = info.panic_cpu;
    if row.panic_message.is_none() && !info.other_kernel && !info.linux {
        // A crashkit kernel's record in memory (QEMU's dump of it).
        let found = record::for_states(&opened, true, &mut |_, _| {});
        if let Some(record) = found {
            row.panic_message = Some(record.panic.message).filter(|m| !m.is_empty());
            row.panic_cpu = row.panic_cpu.or(record.panic.owner_cpu);
        }
    }
    let (trace, missing) = panicking_trace(&opened, row.panic_cpu, kernels, &mut row.warnings);
    row.frames_missing = missing;
    if kernels.verify {
        row.verified = Some(crate::verify::verify(&opened, &mut |_, _| {}).ok);
    }
    let signature = signature::of(row.panic_message.as_deref(), trace.as_ref());
    row.signature = Some(signature.text);
    row.signature_id = Some(signature.id);
    row
}

/// The panicking CPU's backtrace, or why there is none.
fn panicking_trace(
    dump: &open::Opened<'_>,
    panic_cpu: Option<u32>,
    kernels: &Kernels<'_>,
    warnings: &mut Vec<String>,
) -> (Option<bt::Backtrace>, Option<String>) {
    let (list, _) = crate::cpus::cpus_of(dump);
    if list.is_empty() {
        return (None, Some("no CPU has saved registers".into()));
    }
    // The CPU as `cpus` numbers them: the panicking one when the dump
    // says, else `bt`'s default.
    let numbers = crate::cpus::numbers(list);
    let which = panic_cpu
        .map(|cpu| cpu as usize)
        .filter(|cpu| numbers.contains(cpu));
    // `--kernel` when its build-id is not another's (unchecked, with a
    // warning, when either has none); else the debug directory's ELF for
    // the dump's build-id, parsed for this dump.
    let given =
        kernels.kernel.and_then(
            |(path, elf)| match bt::build_id_unchecked(dump, elf, path) {
                Ok(warning) => {
                    warnings.extend(warning);
                    Some(elf)
                }
                Err(_) => None,
            },
        );
    let which = which.map(|c| vec![c]);
    let traces = match given {
        Some(elf) => bt::backtraces(dump, Some(elf), which),
        None => {
            let path = bt::kernel_file(dump, None, kernels.debug_dir).ok();
            let map = path.as_deref().and_then(|p| Files::map_plain(p).ok());
            let found = match (&path, &map) {
                (Some(path), Some(map)) => bt::Kernel::parse(map)
                    .ok()
                    .filter(|elf| bt::build_id_unchecked(dump, elf, path).is_ok()),
                _ => None,
            };
            bt::backtraces(dump, found.as_ref(), which)
        }
    };
    match traces {
        Ok(mut traces) if !traces.is_empty() => (Some(traces.swap_remove(0)), None),
        Ok(_) => (None, Some("no backtrace".into())),
        Err(e) => (None, Some(format!("{e:#}"))),
    }
}

/// Group `rows` by signature, most dumps first (then by id).
pub fn group(rows: &[Row]) -> Vec<Group> {
    let mut by_id: BTreeMap<&str, Group> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        let (Some(id), Some(text)) = (&row.signature_id, &row.signature) else {
            continue;
        };
        let group = by_id.entry(id).or_insert_with(|| Group {
            signature_id: id.clone(),
            signature: text.clone(),
            count: 0,
            oldest: None,
            newest: None,
            rows: Vec::new(),
        });
        group.count += 1;
        group.rows.push(index);
        if let Some(time) = row.crash_time {
            group.oldest = Some(group.oldest.map_or(time, |t| t.min(time)));
            group.newest = Some(group.newest.map_or(time, |t| t.max(time)));
        }
    }
    let mut groups: Vec<Group> = by_id.into_values().collect();
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.signature_id.cmp(&b.signature_id))
    });
    groups
}

/// Triage every dump of `dumps`, calling `progress(done, total)` after
/// each.
pub fn triage(
    dumps: &[String],
    kernels: &Kernels<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Triage {
    let total = dumps.len() as u64;
    let mut rows = Vec::with_capacity(dumps.len());
    for (done, dump) in dumps.iter().enumerate() {
        // A bug of ours on one file must not lose the others' rows.
        let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| row(dump, kernels)));
        rows.push(one.unwrap_or_else(|_| Row {
            error: Some("crashkit failed on this file (a bug: please report it)".into()),
            ..empty_row(dump)
        }));
        progress(done as u64 + 1, total);
    }
    let groups = group(&rows);
    let unreadable = rows.iter().filter(|r| r.error.is_some()).count();
    Triage {
        rows,
        groups,
        unreadable,
    }
}

/// A row for `dump` with nothing in it yet.
fn empty_row(dump: &str) -> Row {
    Row {
        dump: dump.to_owned(),
        error: None,
        format: None,
        producer: None,
        release: None,
        panic_message: None,
        panic_cpu: None,
        crash_time: None,
        signature: None,
        signature_id: None,
        completeness: None,
        damage: Vec::new(),
        verified: None,
        frames_missing: None,
        warnings: Vec::new(),
        report: None,
    }
}

/// The text answer: the groups, then one line per dump.
pub fn render(triage: &Triage) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} dumps, {} signatures, {} unreadable\n",
        triage.rows.len(),
        triage.groups.len(),
        triage.unreadable
    ));
    let unchecked = triage
        .rows
        .iter()
        .filter(|r| !r.warnings.is_empty())
        .count();
    if unchecked > 0 {
        out.push_str(&format!(
            "({unchecked} dumps' frames are from a kernel ELF their build-id could not check: see `warnings` in --json)\n"
        ));
    }
    out.push('\n');
    for group in &triage.groups {
        let span = match (group.oldest, group.newest) {
            (Some(old), Some(new)) if old != new => {
                format!(", {} .. {}", info::utc(old), info::utc(new))
            }
            (Some(old), _) => format!(", {}", info::utc(old)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:>5}  {}  {}{span}\n",
            group.count, group.signature_id, group.signature
        ));
    }
    out.push('\n');
    for row in &triage.rows {
        match &row.error {
            Some(error) => out.push_str(&format!(
                "{:12}  unreadable: {error}\n  {}\n",
                "-", row.dump
            )),
            None => {
                let completeness = row.completeness.as_deref().unwrap_or("unknown");
                let mut state = completeness
                    .split([' ', ':'])
                    .next()
                    .unwrap_or(completeness)
                    .to_owned();
                if !row.damage.is_empty() {
                    state.push_str(", damaged");
                }
                match row.verified {
                    Some(true) => state.push_str(", verified"),
                    Some(false) => state.push_str(", verify failed"),
                    None => {}
                }
                out.push_str(&format!(
                    "{:12}  {}/{}, {}, cpu {}, {state}\n  {}\n",
                    row.signature_id.as_deref().unwrap_or("-"),
                    row.producer.unwrap_or("?"),
                    row.format.unwrap_or("?"),
                    row.release.as_deref().unwrap_or("release unknown"),
                    row.panic_cpu.map_or("?".into(), |c| c.to_string()),
                    row.dump,
                ));
            }
        }
    }
    out
}
