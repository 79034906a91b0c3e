//! `triage --html DIR`: an index page (the groups, then every dump with a
//! link to its report), self-contained like a report's page.

use std::fmt::Write as _;

use super::Triage;
use crate::info;
use crate::report::html::esc;

/// The index page; each row links to its `report` (a path relative to the
/// index) when it has one.
pub fn index(triage: &Triage) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>crashkit triage: {} dumps</title>\n<style>{}</style>\n</head>\n<body>\n\
         <h1>crashkit triage</h1>\n<p class=\"sub\">{} dumps, {} signatures, {} unreadable</p>\n",
        triage.rows.len(),
        STYLE,
        triage.rows.len(),
        triage.groups.len(),
        triage.unreadable
    );
    out.push_str("<h2>Signatures</h2>\n<table class=\"groups\">\n<tr><th>dumps</th><th>id</th><th>signature</th><th>oldest</th><th>newest</th></tr>\n");
    for group in &triage.groups {
        let _ = writeln!(
            out,
            "<tr id=\"sig-{}\"><td class=\"num\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&group.signature_id),
            group.count,
            esc(&group.signature_id),
            esc(&group.signature),
            group.oldest.map_or("-".into(), info::utc),
            group.newest.map_or("-".into(), info::utc),
        );
    }
    out.push_str("</table>\n<h2>Dumps</h2>\n<table class=\"rows\">\n<tr><th>dump</th><th>signature</th><th>producer, format</th><th>release</th><th>CPU</th><th>panic</th><th>state</th></tr>\n");
    for row in &triage.rows {
        let name = match &row.report {
            Some(link) => format!("<a href=\"{}\">{}</a>", esc(&percent(link)), esc(&row.dump)),
            None => esc(&row.dump),
        };
        if let Some(error) = &row.error {
            let _ = writeln!(
                out,
                "<tr class=\"error\"><td class=\"mono\">{name}</td><td colspan=\"6\" class=\"bad\">unreadable: {}</td></tr>",
                esc(error)
            );
            continue;
        }
        let mut state = match (&row.completeness, row.damage.is_empty()) {
            (Some(c), true) => esc(c),
            (Some(c), false) => format!("{} <span class=\"bad\">damaged</span>", esc(c)),
            (None, _) => "unknown".into(),
        };
        match row.verified {
            Some(true) => state.push_str(", verified"),
            Some(false) => state.push_str(", <span class=\"bad\">verify failed</span>"),
            None => {}
        }
        let _ = writeln!(
            out,
            "<tr><td class=\"mono\">{name}</td><td class=\"mono\"><a href=\"#sig-{id}\">{id}</a></td><td>{}, {}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{state}</td></tr>",
            row.producer.unwrap_or("?"),
            row.format.unwrap_or("?"),
            esc(row.release.as_deref().unwrap_or("?")),
            row.panic_cpu.map_or("?".into(), |c| c.to_string()),
            esc(row.panic_message.as_deref().unwrap_or("")),
            id = esc(row.signature_id.as_deref().unwrap_or("-")),
        );
    }
    let _ = write!(
        out,
        "</table>\n<footer>Written by crashkit {}: <code>crashkit --json triage</code> gives the same rows as data.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// A relative path as a URL path: bytes outside the unreserved set and `/`
/// percent-encoded.
fn percent(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The index's style.
const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2330; margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.sub { color: #5b6475; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #d8dce4; vertical-align: top; }
th { color: #5b6475; }
td.num { text-align: right; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; word-break: break-all; }
.bad { color: #b3261e; font-weight: 600; }
footer { margin-top: 32px; color: #5b6475; font-size: 12px; }
@media print { body { max-width: none; padding: 0; font-size: 11px; } tr { break-inside: avoid; } }
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn links_are_percent_encoded() {
        assert_eq!(
            super::percent("reports/0001 a&b.html"),
            "reports/0001%20a%26b.html"
        );
    }
}
