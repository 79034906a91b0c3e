//! A crash's signature: what stays the same when the same crash happens
//! again, so that `triage` can group dumps (docs/cli.md, "Crash
//! signatures", is the user's statement of these rules).
//!
//! 1. The panic message, its whitespace runs made one space, then:
//!    - `0x` and hex digits become `<hex>`;
//!    - a run of 8 or more hex digits with at least one decimal digit,
//!      standing alone (not inside a word), becomes `<hex>` (addresses
//!      printed without `0x`);
//!    - a run of decimal digits standing alone (not after a letter or `_`,
//!      and not before a letter or `_`) becomes `<n>`: CPU numbers, PIDs,
//!      line and column numbers (`x86_64`, `ext4` and `sha256` keep theirs).
//! 2. The top frames of the panicking CPU's backtrace, at most
//!    [`FRAMES`], by function name without offsets: after the panic's own
//!    machinery (the last of [`LINUX_MACHINERY`] or a Rust panic's entry
//!    in the first [`LOOK`] frames; a Linux name counts without GCC's
//!    clone suffixes, so `oops_end.cold` is `oops_end`). When that machinery is an oops's or
//!    a bug's ([`EXCEPTION_MACHINERY`]: `oops_end`, `__warn`, ...) the
//!    frames start at the code the exception interrupted (the frame after
//!    the first kernel-mode `pt_regs` below it). A frame is named by its outermost
//!    function (the one its code belongs to), else by its symbol.
//! 3. The signature is `MESSAGE`, or `MESSAGE @ f1 < f2 < f3` with frames;
//!    its id is the first 12 hex digits of its 64-bit FNV-1a hash.

use crate::bt::Backtrace;

/// Frames a signature keeps.
pub const FRAMES: usize = 3;

/// How deep in a backtrace the panic's machinery is looked for.
pub const LOOK: usize = 24;

/// Linux functions of the panic and oops path: a signature's frames start
/// after the last of these near the top of the stack.
pub const LINUX_MACHINERY: &[&str] = &[
    "panic",
    "vpanic",
    "nmi_panic",
    "oops_end",
    "die",
    "die_addr",
    "__die",
    "__die_body",
    "crash_kexec",
    "__crash_kexec",
    "machine_crash_shutdown",
    "native_machine_crash_shutdown",
    "crash_save_cpu",
    "dump_stack",
    "dump_stack_lvl",
    "show_stack",
    "__warn",
    "report_bug",
    "handle_bug",
];

/// Linux functions that mean the panic came from an exception (an oops,
/// a `BUG()`, a warning with `panic_on_warn`): the frames that matter are
/// the code the exception interrupted.
pub const EXCEPTION_MACHINERY: &[&str] = &[
    "oops_end",
    "die",
    "die_addr",
    "__die",
    "__die_body",
    "__warn",
    "report_bug",
    "handle_bug",
];

/// A signature and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// `MESSAGE` or `MESSAGE @ f1 < f2 < f3`.
    pub text: String,
    /// 12 hex digits of its FNV-1a hash.
    pub id: String,
    /// The frames it kept.
    pub frames: Vec<String>,
}

/// The signature of a crash with `message` (none: `no panic message`)
/// and the panicking CPU's `trace`.
pub fn of(message: Option<&str>, trace: Option<&Backtrace>) -> Signature {
    let message = message.map_or_else(|| "no panic message".to_owned(), normalise);
    let frames = trace.map(top_frames).unwrap_or_default();
    let text = if frames.is_empty() {
        message
    } else {
        format!("{message} @ {}", frames.join(" < "))
    };
    let id = format!("{:016x}", fnv1a(text.as_bytes()))[..12].to_owned();
    Signature { text, id, frames }
}

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Whether `c` makes a number part of a word next to it.
fn wordish(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// The message with whitespace made single spaces and numbers replaced
/// (rule 1).
pub fn normalise(message: &str) -> String {
    let spaced = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = spaced.chars().collect();
    let mut out = String::with_capacity(spaced.len());
    let mut i = 0;
    while i < chars.len() {
        let before = i.checked_sub(1).map(|p| chars[p]);
        let standalone = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        // `0x` and hex digits.
        if standalone
            && chars[i] == '0'
            && chars.get(i + 1).is_some_and(|&c| c == 'x' || c == 'X')
            && chars.get(i + 2).is_some_and(char::is_ascii_hexdigit)
        {
            let mut end = i + 2;
            while chars.get(end).is_some_and(char::is_ascii_hexdigit) {
                end += 1;
            }
            out.push_str("<hex>");
            i = end;
            continue;
        }
        if standalone && chars[i].is_ascii_hexdigit() {
            let mut end = i;
            while chars.get(end).is_some_and(char::is_ascii_hexdigit) {
                end += 1;
            }
            let after_ok = !chars
                .get(end)
                .is_some_and(|&c| wordish(c) || c.is_ascii_digit());
            let run = &chars[i..end];
            let has_digit = run.iter().any(char::is_ascii_digit);
            let all_digits = run.iter().all(char::is_ascii_digit);
            if after_ok && run.len() >= 8 && has_digit && !all_digits {
                out.push_str("<hex>");
                i = end;
                continue;
            }
            if after_ok && all_digits {
                out.push_str("<n>");
                i = end;
                continue;
            }
        }
        // Not a number: copy up to the end of this word or character.
        if chars[i].is_ascii_alphanumeric() || chars[i] == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                out.push(chars[i]);
                i += 1;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// A frame's name for a signature: its outermost function, else its
/// symbol without `+offset/size`.
fn frame_name(frame: &crate::bt::Frame) -> Option<String> {
    if let Some(name) = frame.functions.iter().rev().find_map(|f| f.name.clone()) {
        return Some(name);
    }
    let symbol = frame.symbol.as_deref()?;
    let bare = symbol.split('+').next().unwrap_or(symbol);
    // `name [module]`: keep the module.
    let module = symbol
        .find(" [")
        .map_or("", |at| symbol.get(at..).unwrap_or(""));
    Some(format!("{}{module}", bare.trim()))
}

/// A Linux function's name without GCC's clone suffixes (`.cold`,
/// `.part.0`, `.isra.0`, `.constprop.0`): `oops_end.cold` is `oops_end`.
fn base_name(name: &str) -> &str {
    let name = name.trim();
    name.split('.').next().unwrap_or(name)
}

/// Whether any function of `frame` is the panic's machinery.
fn machinery(frame: &crate::bt::Frame) -> bool {
    let rust = |name: &str| {
        name.starts_with("core::panicking::")
            || name.starts_with("std::panicking::")
            || name.ends_with("rust_begin_unwind")
    };
    let names = frame
        .functions
        .iter()
        .filter_map(|f| f.name.as_deref())
        .chain(
            frame
                .symbol
                .as_deref()
                .map(|s| s.split('+').next().unwrap_or(s)),
        );
    names
        .into_iter()
        .any(|name| rust(name.trim()) || LINUX_MACHINERY.contains(&base_name(name)))
}

/// Whether `name` is one of Linux's entry stubs (assembly the CPU enters
/// through, whose choice depends on the path in, not on the crash).
pub fn is_entry_stub(name: &str) -> bool {
    let name = base_name(name);
    name.starts_with("asm_")
        || name.starts_with("entry_")
        || name.starts_with("ret_from_fork")
        || matches!(
            name,
            "end_repeat_nmi" | "repeat_nmi" | "first_nmi" | "nested_nmi" | "nmi_restore"
        )
}

/// The top frames (rule 2).
pub fn top_frames(trace: &Backtrace) -> Vec<String> {
    let frames = &trace.frames;
    let look = frames.len().min(LOOK);
    let mut start = frames[..look]
        .iter()
        .rposition(machinery)
        .map_or(0, |last| last + 1);
    let oops = frames[..start].iter().any(|f| {
        f.symbol
            .as_deref()
            .and_then(|s| s.split('+').next())
            .is_some_and(|name| EXCEPTION_MACHINERY.contains(&base_name(name)))
    });
    if oops
        && let Some(at) = frames[start..]
            .iter()
            .position(|f| f.interrupted.as_ref().is_some_and(|i| !i.user))
    {
        start += at + 1;
    }
    frames[start.min(frames.len())..]
        .iter()
        .filter_map(frame_name)
        .take_while(|name| !is_entry_stub(name))
        .take(FRAMES)
        .collect()
}

#[cfg(test)]
mod tests;
