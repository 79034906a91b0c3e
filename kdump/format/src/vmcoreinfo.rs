//! `VMCOREINFO`: Linux's `KEY=VALUE` lines, written and read.
//!
//! The note (name `VMCOREINFO`, type 0) holds ASCII lines `KEY=VALUE\n`.
//! Linux mixes number formats by key, so parsing a value needs its key:
//! `SYMBOL(x)` and `KERNELOFFSET` are hex without `0x`; `NUMBER(x)`,
//! `SIZE(x)`, `OFFSET(x)`, `LENGTH(x)`, `PAGESIZE` and `CRASHTIME` are
//! decimal (`NUMBER` signed: `phys_base` can be negative), except values
//! written with a `0x` prefix (`NUMBER(VMALLOC_START)`). `BUILD-ID` is 40
//! hex characters. crashkit writes the same forms, plus its own keys
//! ([`VmcoreInfoWriter::crashkit`], `docs/dump-formats.md`).
//!
//! [`VmcoreInfoWriter`] fills a caller's buffer without allocating and
//! drops whole lines that do not fit (counted). [`VmcoreInfo`] reads any
//! bytes: lines without `=`, and non-UTF-8 lines, are skipped and counted.

use core::fmt::{self, Write};

/// Builds `VMCOREINFO` text in a fixed buffer.
#[derive(Debug)]
pub struct VmcoreInfoWriter<'a> {
    buffer: &'a mut [u8],
    len: usize,
    dropped_lines: u32,
}

/// Appends into the free part of a buffer, failing (rather than cutting)
/// when the text does not fit.
struct Cursor<'a, 'b> {
    buffer: &'b mut [u8],
    len: &'a mut usize,
}

impl Write for Cursor<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buffer.get_mut(*self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        *self.len = end;
        Ok(())
    }
}

impl<'a> VmcoreInfoWriter<'a> {
    /// Write into `buffer` (Linux gives the note one page).
    pub fn new(buffer: &'a mut [u8]) -> Self {
        Self {
            buffer,
            len: 0,
            dropped_lines: 0,
        }
    }

    /// Append `KEY=VALUE\n`; a line that does not fit whole is dropped and
    /// counted, as is a key containing `=` or a newline, or a value
    /// containing a newline.
    pub fn line(&mut self, key: fmt::Arguments<'_>, value: fmt::Arguments<'_>) -> &mut Self {
        let start = self.len;
        let mut len = self.len;
        let written = {
            let mut cursor = Cursor {
                buffer: self.buffer,
                len: &mut len,
            };
            cursor
                .write_fmt(key)
                .and_then(|()| cursor.write_str("="))
                .and_then(|()| cursor.write_fmt(value))
                .and_then(|()| cursor.write_str("\n"))
        };
        let line = self.buffer.get(start..len).unwrap_or(&[]);
        let key_len = line.iter().position(|&b| b == b'=').unwrap_or(0);
        let well_formed = key_len > 0
            && !line
                .get(..line.len().saturating_sub(1))
                .unwrap_or(&[])
                .contains(&b'\n');
        if written.is_ok() && well_formed {
            self.len = len;
        } else {
            if let Some(partial) = self.buffer.get_mut(start..len) {
                partial.fill(0);
            }
            self.dropped_lines = self.dropped_lines.saturating_add(1);
        }
        self
    }

    /// `OSRELEASE=release`.
    pub fn os_release(&mut self, release: &str) -> &mut Self {
        self.line(format_args!("OSRELEASE"), format_args!("{release}"))
    }

    /// `PAGESIZE=size` (decimal).
    pub fn page_size(&mut self, size: u64) -> &mut Self {
        self.line(format_args!("PAGESIZE"), format_args!("{size}"))
    }

    /// `CRASHTIME=seconds` (decimal, seconds since 1970).
    pub fn crash_time(&mut self, seconds: i64) -> &mut Self {
        self.line(format_args!("CRASHTIME"), format_args!("{seconds}"))
    }

    /// `BUILD-ID=hex` of the kernel's GNU build-id.
    pub fn build_id(&mut self, id: &[u8]) -> &mut Self {
        self.line(format_args!("BUILD-ID"), format_args!("{}", Hex(id)))
    }

    /// `KERNELOFFSET=hex`: where the kernel runs minus where it was linked
    /// (Linux's KASLR offset).
    pub fn kernel_offset(&mut self, offset: u64) -> &mut Self {
        self.line(format_args!("KERNELOFFSET"), format_args!("{offset:x}"))
    }

    /// `SYMBOL(name)=hex`.
    pub fn symbol(&mut self, name: &str, address: u64) -> &mut Self {
        self.line(format_args!("SYMBOL({name})"), format_args!("{address:x}"))
    }

    /// `NUMBER(name)=decimal`.
    pub fn number(&mut self, name: &str, value: i64) -> &mut Self {
        self.line(format_args!("NUMBER({name})"), format_args!("{value}"))
    }

    /// crashkit's own keys: `CRASHKIT_VERSION=version` (the crashkit
    /// release that wrote the dump), `SYMBOL(crashkit_record)=hex` (the
    /// crash record's virtual address) and `NUMBER(crashkit_record_size)=
    /// decimal`, so a tool finds the record in a dump of memory without
    /// scanning for it.
    pub fn crashkit(&mut self, version: &str, record_address: u64, record_size: u64) -> &mut Self {
        self.line(format_args!("CRASHKIT_VERSION"), format_args!("{version}"))
            .symbol("crashkit_record", record_address)
            .line(
                format_args!("NUMBER(crashkit_record_size)"),
                format_args!("{record_size}"),
            )
    }

    /// The text so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.get(..self.len).unwrap_or(&[])
    }

    /// Lines dropped because they did not fit or were malformed.
    pub fn dropped_lines(&self) -> u32 {
        self.dropped_lines
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Parsed view of `VMCOREINFO` text.
#[derive(Clone, Copy, Debug)]
pub struct VmcoreInfo<'a> {
    text: &'a [u8],
}

/// How a key's value is written, by Linux's conventions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueForm {
    /// `SYMBOL(..)`, `KERNELOFFSET`: hex without a prefix.
    Hex,
    /// Everything else that is a number: decimal, signed, or hex with `0x`.
    Decimal,
}

impl<'a> VmcoreInfo<'a> {
    /// View `text` (trailing NULs, as in a note padded to a page, are
    /// ignored).
    pub fn new(text: &'a [u8]) -> Self {
        let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Self {
            text: text.get(..end).unwrap_or(&[]),
        }
    }

    /// The text itself (trailing NULs left off).
    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    /// Every well-formed `(key, value)` line, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.text.split(|&b| b == b'\n').filter_map(parse_line)
    }

    /// Lines that are not empty and not `KEY=VALUE` in UTF-8.
    pub fn malformed_lines(&self) -> usize {
        self.text
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty() && parse_line(line).is_none())
            .count()
    }

    /// The value of `key` (the first line with it).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.entries().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of `key` as a number, read the way Linux writes that key
    /// ([`value_form`]); negative decimals come back as their two's
    /// complement (`NUMBER(phys_base)=-16777216`).
    pub fn number(&self, key: &str) -> Option<u64> {
        parse_number(key, self.get(key)?)
    }

    /// The value of `key` as a signed number.
    pub fn signed(&self, key: &str) -> Option<i64> {
        self.number(key).map(|v| v as i64)
    }

    /// `BUILD-ID` decoded from hex, up to 64 bytes.
    pub fn build_id(&self) -> Option<([u8; 64], usize)> {
        let text = self.get("BUILD-ID")?.as_bytes();
        if text.len() % 2 != 0 || text.len() > 128 || text.is_empty() {
            return None;
        }
        let mut out = [0u8; 64];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let pair = core::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some((out, text.len() / 2))
    }
}

/// What is wrong with `VMCOREINFO` text, as Linux writes it: one
/// `KEY=VALUE\n` line per entry, ASCII, each number in its key's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextProblem {
    /// A line that is not `KEY=VALUE` in UTF-8 (no `=`, an empty key).
    NotKeyValue,
    /// A NUL byte inside the text (only trailing NULs, a note's padding,
    /// are legal).
    NulByte,
    /// Text after the last newline: the note is cut, or its size is wrong.
    Unterminated,
    /// No `OSRELEASE` line (Linux writes it first).
    NoOsRelease,
    /// No `PAGESIZE` line.
    NoPageSize,
    /// `PAGESIZE` is not 4096, the x86 page.
    PageSize,
    /// A value not in the form Linux writes for its key: hex without `0x`
    /// for `SYMBOL()` and `KERNELOFFSET`; signed decimal for `NUMBER()`
    /// and `CRASHTIME`; unsigned decimal for `OFFSET()`, `SIZE()`,
    /// `LENGTH()` and `PAGESIZE`; an even count of hex digits for
    /// `BUILD-ID`.
    ValueForm,
}

/// One [`TextProblem`] and where: the byte offset in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmcoreInfoProblem {
    /// Offset of the line (or byte) in the note's descriptor.
    pub at: u64,
    /// What is wrong.
    pub problem: TextProblem,
}

impl fmt::Display for TextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotKeyValue => "a line that is not KEY=VALUE",
            Self::NulByte => "a NUL byte inside the text",
            Self::Unterminated => "text after the last newline",
            Self::NoOsRelease => "no OSRELEASE line",
            Self::NoPageSize => "no PAGESIZE line",
            Self::PageSize => "PAGESIZE is not 4096",
            Self::ValueForm => "a value not in the form Linux writes for its key",
        })
    }
}

impl VmcoreInfo<'_> {
    /// Check the text against the form Linux writes, calling `report` for
    /// each problem in text order (then the missing keys). Values of the
    /// right form are not judged: nothing in the note can tell whether an
    /// address is right.
    pub fn check(&self, mut report: impl FnMut(VmcoreInfoProblem)) {
        let text = self.text;
        if let Some(at) = text.iter().position(|&b| b == 0) {
            report(VmcoreInfoProblem {
                at: at as u64,
                problem: TextProblem::NulByte,
            });
        }
        let mut at = 0usize;
        let (mut os_release, mut page_size) = (false, false);
        for line in text.split(|&b| b == b'\n') {
            let here = at as u64;
            at = at.saturating_add(line.len() + 1);
            if at > text.len() {
                // The piece after the last newline.
                if !line.is_empty() {
                    report(VmcoreInfoProblem {
                        at: here,
                        problem: TextProblem::Unterminated,
                    });
                }
                break;
            }
            let Some((key, value)) = parse_line(line) else {
                report(VmcoreInfoProblem {
                    at: here,
                    problem: TextProblem::NotKeyValue,
                });
                continue;
            };
            os_release |= key == "OSRELEASE";
            if key == "PAGESIZE" {
                page_size = true;
                if value_is_in_form(key, value) && value != "4096" {
                    report(VmcoreInfoProblem {
                        at: here,
                        problem: TextProblem::PageSize,
                    });
                }
            }
            if !value_is_in_form(key, value) {
                report(VmcoreInfoProblem {
                    at: here,
                    problem: TextProblem::ValueForm,
                });
            }
        }
        let end = text.len() as u64;
        if !os_release {
            report(VmcoreInfoProblem {
                at: end,
                problem: TextProblem::NoOsRelease,
            });
        }
        if !page_size {
            report(VmcoreInfoProblem {
                at: end,
                problem: TextProblem::NoPageSize,
            });
        }
    }
}

/// Whether `value` is written as Linux writes `key`'s values (keys Linux
/// writes free text for, such as `OSRELEASE`, take anything).
fn value_is_in_form(key: &str, value: &str) -> bool {
    let hex = |v: &str| !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_hexdigit());
    let unsigned = |v: &str| {
        !v.is_empty()
            && v.len() <= 20
            && v.bytes().all(|b| b.is_ascii_digit())
            && v.parse::<u64>().is_ok()
    };
    let signed = |v: &str| {
        let magnitude = v.strip_prefix('-').unwrap_or(v);
        unsigned(magnitude) && v.parse::<i64>().is_ok()
    };
    if key.starts_with("SYMBOL(") || key == "KERNELOFFSET" {
        hex(value)
    } else if key.starts_with("NUMBER(") {
        // Some architectures write a NUMBER in hex with `0x` (RISC-V's
        // `NUMBER(VMALLOC_START)`, arm64's `NUMBER(KERNELPACMASK)`): legal.
        signed(value) || value.strip_prefix("0x").is_some_and(hex)
    } else if key == "CRASHTIME" {
        signed(value)
    } else if key.starts_with("OFFSET(")
        || key.starts_with("SIZE(")
        || key.starts_with("LENGTH(")
        || key == "PAGESIZE"
    {
        unsigned(value)
    } else if key == "BUILD-ID" {
        value.len().is_multiple_of(2)
            && !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_hexdigit())
    } else {
        true
    }
}

fn parse_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = core::str::from_utf8(line).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    (!key.is_empty()).then_some((key, value))
}

/// How `key`'s value is written.
pub fn value_form(key: &str) -> ValueForm {
    if key.starts_with("SYMBOL(") || key == "KERNELOFFSET" {
        ValueForm::Hex
    } else {
        ValueForm::Decimal
    }
}

/// Parse `value` as `key`'s number; `None` if it is not one.
pub fn parse_number(key: &str, value: &str) -> Option<u64> {
    let value = value.trim();
    if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        return u64::from_str_radix(hex, 16).ok();
    }
    match value_form(key) {
        ValueForm::Hex => u64::from_str_radix(value, 16).ok(),
        ValueForm::Decimal => {
            if let Some(negative) = value.strip_prefix('-') {
                let magnitude: u64 = negative.parse().ok()?;
                (magnitude <= 1 << 63).then(|| magnitude.wrapping_neg())
            } else {
                value.parse().ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_linux_forms_and_reads_them_back() {
        let mut buffer = [0u8; 512];
        let mut writer = VmcoreInfoWriter::new(&mut buffer);
        writer
            .os_release("6.1.0-crashkit")
            .page_size(4096)
            .crash_time(1_733_000_000)
            .build_id(&[0xde, 0xad, 0xbe, 0xef])
            .kernel_offset(0x3a00_0000)
            .symbol("init_top_pgt", 0xffff_ffff_82a0_a000)
            .number("phys_base", -0x100_0000)
            .crashkit("0.1.0", 0xffff_ffff_8011_9000, 4096);
        let text = writer.as_bytes();
        assert!(text.starts_with(b"OSRELEASE=6.1.0-crashkit\nPAGESIZE=4096\n"));
        let info = VmcoreInfo::new(text);
        assert_eq!(info.get("OSRELEASE"), Some("6.1.0-crashkit"));
        assert_eq!(info.number("PAGESIZE"), Some(4096));
        assert_eq!(info.number("KERNELOFFSET"), Some(0x3a00_0000));
        assert_eq!(
            info.number("SYMBOL(init_top_pgt)"),
            Some(0xffff_ffff_82a0_a000)
        );
        assert_eq!(info.signed("NUMBER(phys_base)"), Some(-0x100_0000));
        assert_eq!(info.get("CRASHKIT_VERSION"), Some("0.1.0"));
        assert_eq!(
            info.number("SYMBOL(crashkit_record)"),
            Some(0xffff_ffff_8011_9000)
        );
        assert_eq!(info.number("NUMBER(crashkit_record_size)"), Some(4096));
        let (id, len) = info.build_id().unwrap();
        assert_eq!(&id[..len], &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn reads_linux_text_with_its_quirks() {
        let text = b"OSRELEASE=6.1.0-26-amd64\nSYMBOL(_stext)=ffffffff81000000\n\
NUMBER(VMALLOC_START)=0xffffc90000000000\nSIZE(page)=64\ngarbage\n\xff=1\n\
NUMBER(phys_base)=-1\nKERNELOFFSET=0\n\0\0\0";
        let info = VmcoreInfo::new(text);
        assert_eq!(info.number("SYMBOL(_stext)"), Some(0xffff_ffff_8100_0000));
        assert_eq!(
            info.number("NUMBER(VMALLOC_START)"),
            Some(0xffff_c900_0000_0000)
        );
        assert_eq!(info.number("SIZE(page)"), Some(64));
        assert_eq!(info.signed("NUMBER(phys_base)"), Some(-1));
        assert_eq!(info.number("OSRELEASE"), None);
        assert_eq!(info.malformed_lines(), 2);
        assert_eq!(info.entries().count(), 6);
    }

    fn problems(text: &[u8]) -> Vec<(u64, TextProblem)> {
        let mut found = Vec::new();
        VmcoreInfo::new(text).check(|p| found.push((p.at, p.problem)));
        found
    }

    #[test]
    fn linux_forms_pass_the_check() {
        // Lines as Debian's 6.1 kernel writes them (from a genuine
        // /proc/vmcore), with the forms each key takes.
        let text = b"OSRELEASE=6.1.0-26-amd64\nBUILD-ID=5e3b8f0a7d5c\nPAGESIZE=4096\n\
SYMBOL(init_uts_ns)=ffffffff9b813420\nOFFSET(page.flags)=0\nSIZE(page)=64\n\
LENGTH(zone.free_area)=11\nNUMBER(phys_base)=-1073741824\nNUMBER(PG_lru)=4\n\
NUMBER(VMALLOC_START)=0xffffc90000000000\nKERNELOFFSET=1a000000\nCRASHTIME=1733000000\n\0\0";
        assert_eq!(problems(text), vec![]);
    }

    #[test]
    fn each_problem_is_found_where_it_is() {
        let ok = b"OSRELEASE=6.1\nPAGESIZE=4096\n";
        assert_eq!(problems(ok), vec![]);
        let cases: [(&[u8], u64, TextProblem); 12] = [
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\ngarbage\n",
                28,
                TextProblem::NotKeyValue,
            ),
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\n=1\n",
                28,
                TextProblem::NotKeyValue,
            ),
            (
                b"OSRELEASE=6\x001\nPAGESIZE=4096\n",
                11,
                TextProblem::NulByte,
            ),
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\nSIZE(pa",
                28,
                TextProblem::Unterminated,
            ),
            (b"PAGESIZE=4096\n", 14, TextProblem::NoOsRelease),
            (b"OSRELEASE=6.1\n", 14, TextProblem::NoPageSize),
            (b"OSRELEASE=6.1\nPAGESIZE=8192\n", 14, TextProblem::PageSize),
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\nSYMBOL(x)=0xffff\n",
                28,
                TextProblem::ValueForm,
            ),
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\nKERNELOFFSET=12g4\n",
                28,
                TextProblem::ValueForm,
            ),
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\nNUMBER(x)=12a\n",
                28,
                TextProblem::ValueForm,
            ),
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\nOFFSET(x.y)=-8\n",
                28,
                TextProblem::ValueForm,
            ),
            (
                b"OSRELEASE=6.1\nPAGESIZE=4096\nBUILD-ID=abc\n",
                28,
                TextProblem::ValueForm,
            ),
        ];
        for (text, at, problem) in cases {
            assert_eq!(
                problems(text),
                vec![(at, problem)],
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn lines_that_do_not_fit_are_dropped_whole() {
        let mut buffer = [0u8; 24];
        let mut writer = VmcoreInfoWriter::new(&mut buffer);
        writer
            .page_size(4096)
            .os_release("a-very-long-release-string");
        writer.line(format_args!("BAD"), format_args!("two\nlines"));
        assert_eq!(writer.as_bytes(), b"PAGESIZE=4096\n");
        assert_eq!(writer.dropped_lines(), 2);
        assert!(buffer[14..].iter().all(|&b| b == 0));
    }
}
