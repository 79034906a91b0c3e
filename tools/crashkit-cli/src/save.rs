//! `crashkit save DEVICE OUT [--force] [--clear]`, as FreeBSD's savecore:
//! find the dump a capture kernel wrote on a dump device (or an image file
//! of one), check both headers (`crashkit_dump_format::device`), copy the
//! dump file out, check that the copy opens as a dump, and with `--clear`
//! mark the device's dump as saved.
//!
//! A torn dump (the headers say it was never finished, or disagree) and a
//! dump saved before are refused unless `--force`; a torn one is then
//! copied whole from the data offset to the trailing header's block, and
//! the file's own completeness says what is in it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;

use crashkit_dump_format::device::{
    BLOCK, DATA_OFFSET, DeviceDump, DeviceHeader, FLAG_DID_NOT_FIT, Format, State,
};

use crate::open;

/// What `save` did (the JSON form).
#[derive(Debug, Serialize)]
pub struct Saved {
    /// The device read.
    pub device: String,
    /// The file written.
    pub out: String,
    /// `whole`, `torn` (with `--force`) or `saved` (with `--force`).
    pub state: &'static str,
    /// Why a torn dump is torn.
    pub torn: Option<String>,
    /// The dump's id, in hex.
    pub dump_id: String,
    /// Seconds since 1970 at the crash, as the device header says.
    pub crash_time: u64,
    /// `elf` or `kdump-compressed`.
    pub format: &'static str,
    /// Bytes copied.
    pub bytes: u64,
    /// The dump did not fit on the device (its file is cut).
    pub did_not_fit: bool,
    /// The copy's completeness as the reader judges it.
    pub completeness: String,
    /// The device's dump was marked saved (`--clear`).
    pub cleared: bool,
}

/// Save the dump on `device` into `out`.
pub fn save(device: &Path, out: &Path, force: bool, clear: bool) -> anyhow::Result<Saved> {
    // Mapped as every command maps a dump (a block device's length
    // sought), and judged by the same reader `info` uses.
    let map = open::Files::map_plain(device)?;
    let len = map.len() as u64;
    let verdict = open::device(&map).unwrap_or(DeviceDump::Empty);
    let (header, state, torn, copy_len) = match verdict {
        DeviceDump::Empty => {
            return Err(input(
                device,
                "no crashkit dump on it (no dump device header in its first block), at offset 0",
            ));
        }
        DeviceDump::Unreadable(problem) => {
            return Err(input(device, format!("{problem}, at offset 0")));
        }
        DeviceDump::Whole(header) => (header, "whole", None, header.data_len),
        DeviceDump::Saved(header) if force => (header, "saved", None, header.data_len),
        DeviceDump::Saved(header) => bail!(
            "{}: its dump {} was saved already (`crashkit save --clear`); --force copies it again",
            device.display(),
            hex(&header.dump_id)
        ),
        DeviceDump::Torn(header, why) if force => {
            // Everything that can be data: up to the trailing block.
            let end = header.device_len.min(len).saturating_sub(BLOCK);
            (
                header,
                "torn",
                Some(why.to_string()),
                end.saturating_sub(DATA_OFFSET),
            )
        }
        DeviceDump::Torn(header, why) => bail!(
            "{}: the dump {} is torn: {why}; --force copies what is there",
            device.display(),
            hex(&header.dump_id)
        ),
    };
    let data = usize::try_from(DATA_OFFSET)
        .ok()
        .zip(usize::try_from(copy_len).ok())
        .and_then(|(at, n)| map.get(at..at.checked_add(n)?))
        .ok_or_else(|| input(device, "the dump runs past the device's end"))?;
    copy(data, out)?;
    let completeness = check_copy(out)?;
    let cleared = clear && state == "whole";
    if cleared {
        let file = File::options()
            .write(true)
            .open(device)
            .map_err(|e| input(device, e))?;
        mark_saved(&file, &header)
            .with_context(|| format!("marking {} saved", device.display()))?;
    }
    Ok(Saved {
        device: device.display().to_string(),
        out: out.display().to_string(),
        state,
        torn,
        dump_id: hex(&header.dump_id),
        crash_time: header.crash_time,
        format: match header.format {
            Format::Elf => "elf",
            Format::Kdump => "kdump-compressed",
        },
        bytes: copy_len,
        did_not_fit: header.flags & FLAG_DID_NOT_FIT != 0,
        completeness,
        cleared,
    })
}

fn input(path: &Path, what: impl std::fmt::Display) -> anyhow::Error {
    open::InputError {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
    .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `data` (the dump file's bytes on the device) to the new file `out`.
fn copy(data: &[u8], out: &Path) -> anyhow::Result<()> {
    let mut to = File::options()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    to.write_all(data)
        .and_then(|()| to.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// The copy must open as a dump; its completeness.
fn check_copy(out: &Path) -> anyhow::Result<String> {
    let files = open::Files::map(&out.display().to_string())?;
    let dump = open::open(&files).with_context(|| {
        format!(
            "the copy {} does not open as a dump (kept for inspection)",
            out.display()
        )
    })?;
    Ok(dump.health().0.to_string())
}

/// Mark the dump saved: the trailing header, then the leading one, each
/// synced (a cut between leaves the headers disagreeing: torn, never
/// saved twice as whole).
fn mark_saved(file: &File, header: &DeviceHeader) -> std::io::Result<()> {
    let saved = DeviceHeader {
        state: State::Saved,
        ..*header
    }
    .encode();
    file.write_all_at(&saved, header.device_len - BLOCK)?;
    file.sync_data()?;
    file.write_all_at(&saved, 0)?;
    file.sync_data()
}

/// The text summary.
pub fn render(saved: &Saved) -> String {
    let mut out = format!(
        "saved {} from {} ({} dump {}, {} bytes{}): {}\n",
        saved.out,
        saved.device,
        saved.state,
        saved.dump_id,
        saved.bytes,
        if saved.did_not_fit {
            "; it did not fit on the device"
        } else {
            ""
        },
        saved.completeness
    );
    if let Some(why) = &saved.torn {
        out.push_str(&format!("torn: {why}\n"));
    }
    if saved.cleared {
        out.push_str("the device's dump is marked saved\n");
    }
    out
}
