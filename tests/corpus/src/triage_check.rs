//! `crashkit triage` over a corpus's directories: one run over every file
//! the corpus made (dumps, RAM images, serial logs, disk images, kernels),
//! which must exit 0 with every file in exactly one row; every dump of a
//! crash readable; the dumps of one crash (one scenario in every format
//! and producer, or one Linux trigger across boots, KASLR offsets and
//! producers) one signature, and different crashes different ones
//! (docs/cli.md, "Crash signatures").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One crash and the dumps the corpus made of it.
#[derive(Debug)]
pub struct Crash {
    /// What it is (for messages).
    pub name: String,
    /// Its dumps: a file, or a split set's parts (joined by commas as
    /// `triage` joins them).
    pub dumps: Vec<PathBuf>,
}

/// Every regular file under `path` (itself when it is a file).
fn files_under(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let read = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in read {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            files_under(&entry.path(), out)?;
        }
    } else if meta.is_file() {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Run `crashkit --json triage` over `paths` (with `kernel` for a crashkit
/// kernel's frames) and check it against `crashes`; a summary line.
pub fn check(
    crashkit: &Path,
    paths: &[PathBuf],
    kernel: Option<&Path>,
    crashes: &[Crash],
) -> Result<String, String> {
    let mut command = Command::new(crashkit);
    command.args(["--json", "triage"]).args(paths);
    if let Some(kernel) = kernel {
        command.arg("--kernel").arg(kernel);
    }
    command.args(["--debug-dir", "/nonexistent"]);
    let started = std::time::Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("crashkit triage: {e}"))?;
    let took = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "crashkit triage: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("crashkit triage: not JSON: {e}"))?;
    let rows = answer["triage"]["rows"]
        .as_array()
        .ok_or("crashkit triage: no rows")?;

    // Every file in exactly one row.
    let mut listed = Vec::new();
    for path in paths {
        files_under(path, &mut listed)?;
    }
    listed.sort();
    let mut seen: Vec<PathBuf> = rows
        .iter()
        .filter_map(|r| r["dump"].as_str())
        .flat_map(|d| d.split(',').map(PathBuf::from).collect::<Vec<_>>())
        .collect();
    seen.sort();
    if seen != listed {
        let missing: Vec<_> = listed.iter().filter(|f| !seen.contains(f)).collect();
        let extra: Vec<_> = seen.iter().filter(|f| !listed.contains(f)).collect();
        return Err(format!(
            "triage's rows are not the files: missing {missing:?}, extra or doubled {extra:?}"
        ));
    }

    // The row of each dump: the one whose first file is it.
    let by_first: BTreeMap<PathBuf, &serde_json::Value> = rows
        .iter()
        .filter_map(|r| {
            let first = r["dump"].as_str()?.split(',').next()?;
            Some((PathBuf::from(first), r))
        })
        .collect();
    let mut ids: BTreeMap<String, &str> = BTreeMap::new();
    let mut said = Vec::new();
    for crash in crashes {
        if crash.dumps.is_empty() {
            return Err(format!("{}: the corpus made no dump of it", crash.name));
        }
        let mut id = None;
        for dump in &crash.dumps {
            let row = by_first
                .get(dump)
                .ok_or_else(|| format!("{}: no row for {}", crash.name, dump.display()))?;
            if let Some(error) = row["error"].as_str() {
                return Err(format!("{}: {}: {error}", crash.name, dump.display()));
            }
            let this = row["signature_id"].as_str().unwrap_or("");
            match id {
                None => id = Some((this, row["signature"].as_str().unwrap_or(""))),
                Some((first, text)) if first != this => {
                    return Err(format!(
                        "{}: {} has signature {this} ({}), {} has {first} ({text})",
                        crash.name,
                        dump.display(),
                        row["signature"],
                        crash.dumps[0].display()
                    ));
                }
                Some(_) => {}
            }
        }
        let (id, text) = id.unwrap_or_default();
        if let Some(other) = ids.insert(id.to_owned(), &crash.name) {
            return Err(format!(
                "{} and {other} have one signature, {id} ({text})",
                crash.name
            ));
        }
        said.push(format!(
            "{}: {} dumps, {id} ({text})",
            crash.name,
            crash.dumps.len()
        ));
    }
    let unreadable = answer["triage"]["unreadable"].as_u64().unwrap_or(0);
    Ok(format!(
        "triage: {} files in {} rows ({unreadable} not dumps) in {:.2} s; {}",
        listed.len(),
        rows.len(),
        took.as_secs_f64(),
        said.join("; ")
    ))
}
