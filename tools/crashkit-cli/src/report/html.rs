//! A report as one self-contained HTML page: inline CSS, an inline SVG
//! timeline, no script, no font or image from anywhere, so that it opens
//! from disk in any browser, works offline and prints. Every string that
//! comes from the dump (messages, names, log lines) is escaped ([`esc`]):
//! a dump is hostile input, and a panic message of `<script>` must read as
//! text.

use std::fmt::Write as _;

use super::timeline::{Timeline, ms};
use super::{NotShown, Report};

/// The page's style: readable on screen, black on white when printed.
const STYLE: &str = r#"
:root { --fg: #1d2330; --muted: #5b6475; --line: #d8dce4; --bg: #fff; --band: #f4f6f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; max-width: 1080px; padding: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 4px; }
.sub { color: var(--muted); margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
table.summary th { width: 150px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono, pre, code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--band); padding: 8px 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; margin: 4px 0; }
.panic { font-weight: 600; white-space: pre-wrap; }
.ok { color: #1b7a3a; font-weight: 600; }
.bad { color: #b3261e; font-weight: 600; }
.warn { color: #946200; font-weight: 600; }
details { margin: 6px 0; }
summary { cursor: pointer; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg .axis line, svg .grid { stroke: var(--line); }
svg .lane-bg { fill: var(--band); }
.legend span { display: inline-block; margin-right: 14px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  pre { background: none; border: 1px solid var(--line); }
  h2 { break-after: avoid; }
  section, details, tr { break-inside: avoid; }
  details::details-content { content-visibility: visible; display: block; height: auto; }
}
"#;

/// The colour of a notifier outcome's bar.
fn outcome_colour(outcome: &str) -> &'static str {
    match outcome {
        "Ran" => "#3f8f4f",
        "Degraded" => "#d49a1a",
        "SkippedLockBusy" => "#8a6fd1",
        "OverBudget" => "#e0662c",
        "Panicked" => "#c62828",
        "NotRun" => "#9aa1ad",
        _ => "#555b66",
    }
}

/// The colour of an owner phase's bar.
fn phase_colour(phase: &str) -> &'static str {
    match phase {
        "shootdown" => "#4a7bd0",
        "notifiers" => "#9cc3a4",
        "dump hand-over" => "#c58bd6",
        _ => "#9aa1ad",
    }
}

/// `text` made safe for HTML and SVG text and attributes: the five
/// markup characters as entities, control characters (but newline and
/// tab) as U+FFFD.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn page(report: &Report) -> String {
    let mut out = String::new();
    let title = match &report.summary.panic_message {
        Some(message) => format!(
            "crash: {}",
            message.lines().last().unwrap_or(message).trim()
        ),
        None => format!("crash dump {}", report.summary.dump),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = write!(
        out,
        "<h1>crashkit report</h1>\n<p class=\"sub mono\">{}</p>\n",
        esc(&report.summary.dump)
    );
    summary(&mut out, report);
    out.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    match &report.timeline {
        Some(timeline) => {
            out.push_str(&svg(timeline));
            legend(&mut out, timeline);
        }
        None => out.push_str("<p>No crash record timeline (see <a href=\"#not-shown\">what could not be shown</a>).</p>\n"),
    }
    out.push_str("</section>\n");
    cpus(&mut out, report);
    notifiers(&mut out, report);
    log(&mut out, report);
    verification(&mut out, report);
    not_shown(&mut out, &report.not_shown);
    let _ = write!(
        out,
        "<footer>Written by crashkit {} (JSON schema {}): <code>crashkit --json report</code> gives the same content as data.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        crate::info::SCHEMA
    );
    out
}

/// The summary table.
fn summary(out: &mut String, report: &Report) {
    let s = &report.summary;
    out.push_str("<section id=\"summary\">\n<table class=\"summary\">\n");
    let mut row = |label: &str, html: String| {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{html}</td></tr>");
    };
    row("What crashed", esc(&s.kernel));
    row(
        "Why",
        match &s.panic_message {
            Some(message) => format!("<span class=\"panic\">{}</span>", esc(message)),
            None => "<span class=\"warn\">no panic message found</span>".into(),
        },
    );
    row(
        "Panicking CPU",
        s.panic_cpu
            .map_or("unknown".into(), |cpu| format!("CPU {cpu}")),
    );
    row(
        "When",
        esc(s
            .crash_time_utc
            .as_deref()
            .unwrap_or("the dump does not say")),
    );
    row("Dump taken by", esc(&s.taken_by));
    let complete = if s.completeness == "complete" {
        "<span class=\"ok\">complete</span>".to_owned()
    } else if s.completeness.starts_with("incomplete") {
        format!("<span class=\"bad\">{}</span>", esc(&s.completeness))
    } else {
        format!("<span class=\"warn\">{}</span>", esc(&s.completeness))
    };
    row("Completeness", complete);
    row(
        "Verified",
        match (s.verified, &report.verify) {
            (Some(true), Some(v)) => format!(
                "<span class=\"ok\">every page sound</span> ({} pages checked)",
                v.pages_checked
            ),
            (Some(false), Some(v)) => format!(
                "<span class=\"bad\">problems found</span>: {} corrupt, {} lost of {} pages; {} problem(s) listed below",
                v.pages_corrupt,
                v.pages_lost,
                v.pages_checked,
                v.problems.len() as u64 + v.problems_not_listed
            ),
            _ => "<span class=\"warn\">not verified</span>".into(),
        },
    );
    if let Some(path) = &s.panic_path {
        row("Panic path", esc(path));
    }
    if !report.info.damage.is_empty() {
        row(
            "Damage",
            format!(
                "<span class=\"bad\">{}</span>",
                report
                    .info
                    .damage
                    .iter()
                    .map(|d| esc(d))
                    .collect::<Vec<_>>()
                    .join("<br>")
            ),
        );
    }
    out.push_str("</table>\n</section>\n");
}

/// The SVG's geometry.
const WIDTH: f64 = 1000.0;
const LABEL: f64 = 190.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 34.0;
const LANE: f64 = 34.0;
const OWNER_LANE: f64 = 62.0;
const BOTTOM: f64 = 22.0;

/// A round step for about eight ticks over `span` nanoseconds.
fn tick_step(span: u64) -> u64 {
    let rough = (span / 8).max(1);
    let mut step = 1u64;
    while step.saturating_mul(10) <= rough {
        step = step.saturating_mul(10);
    }
    for factor in [1, 2, 5, 10] {
        if step.saturating_mul(factor) >= rough {
            return step.saturating_mul(factor);
        }
    }
    step.saturating_mul(10)
}

/// A tick's label: milliseconds with as many decimals as the step needs.
fn tick_label(ns: u64, step: u64) -> String {
    let decimals = match step {
        s if s >= 1_000_000 => 0,
        s if s >= 100_000 => 1,
        s if s >= 10_000 => 2,
        _ => 3,
    };
    format!("{:.*}", decimals, ns as f64 / 1e6)
}

/// The timeline as an SVG: a time axis (milliseconds after the panic
/// entry), one `<g class="lane">` per CPU, escalations and the final
/// action as lines across every lane.
pub fn svg(t: &Timeline) -> String {
    let end = t.end_ns.max(1) as f64;
    let plot = WIDTH - LABEL - RIGHT;
    let x = |ns: u64| LABEL + (ns as f64 / end) * plot;
    let height: f64 = TOP
        + t.lanes
            .iter()
            .map(|l| if l.owner { OWNER_LANE } else { LANE })
            .sum::<f64>()
        + BOTTOM;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"the crash's timeline: one lane per CPU\">"
    );
    // The axis and its grid.
    let step = tick_step(t.end_ns);
    s.push_str("<g class=\"axis\">\n");
    let mut tick = 0u64;
    while tick <= t.end_ns {
        let px = x(tick);
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP - 6.0,
            height - BOTTOM,
            TOP - 12.0,
            tick_label(tick, step)
        );
        match tick.checked_add(step) {
            Some(next) => tick = next,
            None => break,
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"8\" y=\"{:.1}\">ms after {}</text>\n</g>",
        TOP - 12.0,
        if t.origin == "PanicEntry" {
            "the panic entry"
        } else {
            "the first stamp"
        }
    );

    let mut y = TOP;
    for lane in &t.lanes {
        let h = if lane.owner { OWNER_LANE } else { LANE };
        let _ = writeln!(
            s,
            "<g class=\"lane\" data-cpu=\"{}\" data-state=\"{}\">",
            lane.cpu,
            esc(&lane.state)
        );
        let _ = writeln!(
            s,
            "<rect class=\"lane-bg\" x=\"0\" y=\"{:.1}\" width=\"{WIDTH}\" height=\"{:.1}\"/>",
            y + 1.0,
            h - 2.0
        );
        let _ = writeln!(
            s,
            "<text x=\"8\" y=\"{:.1}\" font-weight=\"600\">CPU {}</text><text x=\"8\" y=\"{:.1}\" fill=\"#5b6475\">{}</text>",
            y + 14.0,
            lane.cpu,
            y + 27.0,
            esc(&truncate(&lane.summary, 30))
        );
        if lane.owner {
            owner_lane(&mut s, t, y, &x);
        } else {
            other_lane(&mut s, lane, y, &x, t.end_ns);
        }
        s.push_str("</g>\n");
        y += h;
    }
    for e in &t.escalations {
        let px = x(e.at_ns);
        let _ = writeln!(
            s,
            "<g class=\"escalation\"><line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#c62828\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c62828\">escalation</text><title>escalation at {}: a panic in phase {}, skipping {}</title></g>",
            height - BOTTOM,
            px + 3.0,
            height - 6.0,
            ms(e.at_ns),
            esc(&e.phase),
            esc(&e.skipped.join(", "))
        );
    }
    if let Some(action) = &t.final_action {
        let px = x(action.at_ns);
        let _ = writeln!(
            s,
            "<g class=\"final-action\"><line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#1d2330\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">final action: {}</text><title>final action {} at {}</title></g>",
            height - BOTTOM,
            px - 3.0,
            height - 6.0,
            esc(&action.what),
            esc(&action.what),
            ms(action.at_ns)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The owner's lane: its phases above, its notifiers below.
fn owner_lane(s: &mut String, t: &Timeline, y: f64, x: &dyn Fn(u64) -> f64) {
    for phase in &t.phases {
        let x0 = x(phase.start_ns);
        let x1 = x(phase.end_ns.unwrap_or(t.end_ns)).max(x0 + 2.0);
        // A phase without an end stamp runs to the edge, dashed: the dump
        // was taken while it ran (or the record lost the stamp).
        let (open, outline) = if phase.end_ns.is_none() {
            (
                " (no end stamp: the dump was taken during it)",
                " stroke=\"#1d2330\" stroke-dasharray=\"3 2\"",
            )
        } else {
            ("", "")
        };
        let took = phase
            .end_ns
            .map_or("unfinished".into(), |end| ms(end - phase.start_ns));
        let _ = write!(
            s,
            "<g class=\"phase\"><rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"18\" rx=\"2\" fill=\"{}\"{outline}/><title>{}{open}: {} to {} ({took})</title>",
            y + 5.0,
            x1 - x0,
            phase_colour(phase.name),
            phase.name,
            ms(phase.start_ns),
            phase.end_ns.map_or("?".into(), ms),
        );
        if x1 - x0 > 7.0 * phase.name.len() as f64 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\">{}</text>",
                x0 + 4.0,
                y + 18.0,
                phase.name
            );
        }
        s.push_str("</g>\n");
    }
    // Bars with a duration first, then those without (a skipped
    // notifier's turn is the failed try-lock only) on top as ticks, so
    // that none hides under the next one's bar.
    let (timed, instant): (Vec<_>, Vec<_>) = t.notifiers.iter().partition(|b| b.duration_ns > 0);
    for bar in timed.into_iter().chain(instant) {
        let x0 = x(bar.start_ns);
        let x1 = x(bar.start_ns.saturating_add(bar.duration_ns)).max(x0 + 3.0);
        let _ = writeln!(
            s,
            "<g class=\"notifier\"><rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"/><title>{} notifier {}: {} in {} (placed from its duration)</title></g>",
            y + 30.0,
            x1 - x0,
            outcome_colour(&bar.outcome),
            esc(&bar.list),
            esc(&bar.name),
            esc(&bar.outcome),
            ms(bar.duration_ns)
        );
        if x1 - x0 > 6.5 * bar.name.chars().count() as f64 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\">{}</text>",
                x0 + 3.0,
                y + 41.0,
                esc(&bar.name)
            );
        }
    }
    if let Some(lane) = t.lanes.iter().find(|l| l.owner)
        && let Some(at) = lane.stopped_ns
    {
        let _ = writeln!(
            s,
            "<g class=\"claim\"><circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1d2330\"/><title>CPU {} claimed the panic at {}</title></g>",
            x(at),
            y + 14.0,
            lane.cpu,
            ms(at)
        );
    }
}

/// Another CPU's lane: the first stop NMI sent to it, its stop or that it
/// never answered.
fn other_lane(
    s: &mut String,
    lane: &super::timeline::Lane,
    y: f64,
    x: &dyn Fn(u64) -> f64,
    end: u64,
) {
    let mid = y + LANE / 2.0;
    if let Some(sent) = lane.first_nmi_ns {
        let px = x(sent);
        let stop = match (lane.state.as_str(), lane.stopped_ns) {
            (_, Some(at)) => Some((at, "#4a7bd0")),
            ("Unresponsive" | "NmiSent", None) => Some((end, "#c62828")),
            _ => None,
        };
        if let Some((until, colour)) = stop {
            let dash = if lane.stopped_ns.is_none() {
                " stroke-dasharray=\"5 3\""
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "<line class=\"waiting\" x1=\"{px:.1}\" y1=\"{mid:.1}\" x2=\"{:.1}\" y2=\"{mid:.1}\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/>",
                x(until)
            );
        }
        let resent = if lane.nmis_sent > 1 {
            format!(
                ", {} NMIs in all (resends are counted, not timed)",
                lane.nmis_sent
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "<g class=\"nmi\"><path d=\"M{:.1} {:.1} L{:.1} {:.1} L{:.1} {:.1} Z\" fill=\"#4a7bd0\"/><title>first stop NMI sent at {}{resent}</title></g>",
            px - 5.0,
            mid - 9.0,
            px + 5.0,
            mid - 9.0,
            px,
            mid - 1.0,
            ms(sent)
        );
        if lane.nmis_sent > 1 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">×{}</text>",
                px + 7.0,
                mid - 3.0,
                lane.nmis_sent
            );
        }
    }
    if let Some(at) = lane.stopped_ns {
        let _ = writeln!(
            s,
            "<g class=\"stop\"><circle cx=\"{:.1}\" cy=\"{mid:.1}\" r=\"5\" fill=\"#1d2330\"/><title>CPU {} stopped ({}) at {}</title></g>",
            x(at),
            lane.cpu,
            esc(&lane.stop_path),
            ms(at)
        );
    } else {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"bad\" fill=\"#b3261e\">{}</text>",
            LABEL + 6.0,
            mid + 14.0,
            esc(&lane.summary)
        );
    }
}

/// At most `most` characters of `text`, with an ellipsis when cut.
fn truncate(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(most.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The legend under the timeline, with what is derived.
fn legend(out: &mut String, t: &Timeline) {
    out.push_str("<p class=\"legend\">");
    for phase in ["shootdown", "notifiers", "dump hand-over"] {
        let _ = write!(
            out,
            "<span><i class=\"swatch\" style=\"background:{}\"></i>{phase}</span>",
            phase_colour(phase)
        );
    }
    let mut outcomes: Vec<&str> = t.notifiers.iter().map(|n| n.outcome.as_str()).collect();
    outcomes.sort_unstable();
    outcomes.dedup();
    for outcome in outcomes {
        let _ = write!(
            out,
            "<span><i class=\"swatch\" style=\"background:{}\"></i>notifier {}</span>",
            outcome_colour(outcome),
            esc(outcome)
        );
    }
    out.push_str("<span>▼ first stop NMI</span><span>● stopped</span></p>\n");
    let _ = writeln!(
        out,
        "<p class=\"sub\">{} stop NMI(s) sent, {} resent, {} send error(s). Notifier bars are placed from their durations in run order (the record keeps durations, not start times); a resent NMI is counted, not timed.</p>",
        t.nmis_sent, t.nmis_resent, t.send_errors
    );
}

/// The CPUs: one row each, then registers and backtrace per CPU.
fn cpus(out: &mut String, report: &Report) {
    out.push_str("<section id=\"cpus\">\n<h2>CPUs</h2>\n<table>\n<tr><th>CPU</th><th>state</th><th>RIP</th><th>RSP</th><th>mode</th><th>function</th></tr>\n");
    for line in &report.cpus {
        let _ = writeln!(
            out,
            "<tr><td>{}{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            line.cpu.map_or("?".into(), |c| c.to_string()),
            if line.panicking {
                " <b>(panicking)</b>"
            } else {
                ""
            },
            esc(line.state.as_deref().unwrap_or("-")),
            line.rip.map_or("-".into(), |r| format!("{r:#018x}")),
            line.rsp.map_or("-".into(), |r| format!("{r:#018x}")),
            line.mode.unwrap_or("-"),
            esc(line.function.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</table>\n");
    for regs in &report.regs {
        let trace = report
            .bt
            .as_ref()
            .and_then(|traces| traces.iter().find(|t| t.cpu == regs.cpu));
        let _ = writeln!(
            out,
            "<details class=\"cpu\" data-cpu=\"{}\"{}><summary>CPU {}{}: backtrace and registers</summary>",
            regs.cpu,
            if regs.panicking { " open" } else { "" },
            regs.cpu,
            if regs.panicking { " (panicking)" } else { "" }
        );
        match trace {
            Some(trace) => {
                let _ = writeln!(
                    out,
                    "<h3>Backtrace ({}{})</h3>\n<pre>{}</pre>",
                    esc(&trace.unwinder),
                    if trace.complete {
                        ""
                    } else {
                        ", <span class=\"bad\">stopped early</span>"
                    },
                    esc(&crate::bt::render(std::slice::from_ref(trace)))
                );
            }
            None => out.push_str("<p>No backtrace (see below).</p>\n"),
        }
        let _ = writeln!(
            out,
            "<h3>Registers</h3>\n<pre>{}</pre>\n</details>",
            esc(&crate::cpus::render_regs(regs))
        );
    }
    out.push_str("</section>\n");
}

/// The notifier table.
fn notifiers(out: &mut String, report: &Report) {
    let Some(record) = &report.record else {
        return;
    };
    out.push_str("<section id=\"notifiers\">\n<h2>Panic notifiers</h2>\n");
    if record.notifiers.is_empty() {
        out.push_str("<p>No notifier outcome recorded.</p>\n");
    } else {
        out.push_str("<table>\n<tr><th>list</th><th>name</th><th>priority</th><th>outcome</th><th>took</th></tr>\n");
        for n in &record.notifiers {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td><i class=\"swatch\" style=\"background:{}\"></i>{}</td><td class=\"num\">{}</td></tr>",
                esc(&n.list),
                esc(&n.name),
                n.priority,
                outcome_colour(&n.outcome),
                esc(&n.outcome),
                ms(n.duration_ns)
            );
        }
        out.push_str("</table>\n");
    }
    let c = &record.panic.counters;
    let _ = writeln!(
        out,
        "<p class=\"sub\">{} recorded, {} dropped (slots full). {} escalation(s){}; {} second panicker(s), {} re-entr(ies), {} lock fallback(s), {} panic lock break(s).</p>\n</section>",
        c.notifiers_recorded,
        c.notifiers_dropped,
        record.panic.escalations,
        if record.panic.skipped.is_empty() {
            String::new()
        } else {
            format!(", skipping {}", esc(&record.panic.skipped.join(", ")))
        },
        c.second_panickers,
        c.reentries,
        c.qspinlock_fallbacks,
        c.panic_lock_breaks
    );
}

/// The log's last lines.
fn log(out: &mut String, report: &Report) {
    out.push_str("<section id=\"log\">\n");
    if let Some(log) = &report.crash_log {
        let _ = writeln!(
            out,
            "<h2>Crash log (last {} lines)</h2>\n<pre>{}</pre>",
            super::LOG_LINES,
            esc(&crate::crashlog::render(log))
        );
    } else if let Some(log) = &report.log {
        let _ = writeln!(
            out,
            "<h2>Kernel log (last {} lines)</h2>\n<pre>{}</pre>",
            super::LOG_LINES,
            esc(&crate::log::render(log))
        );
    } else {
        out.push_str("<h2>Log</h2>\n<p>No log (see below).</p>\n");
    }
    out.push_str("</section>\n");
}

/// `verify`'s answer.
fn verification(out: &mut String, report: &Report) {
    out.push_str("<section id=\"verify\">\n<h2>Verification</h2>\n");
    match &report.verify {
        Some(verdict) => {
            let _ = writeln!(out, "<pre>{}</pre>", esc(&crate::verify::render(verdict)));
        }
        None => out.push_str("<p>Not verified.</p>\n"),
    }
    out.push_str("</section>\n");
}

/// What could not be shown.
fn not_shown(out: &mut String, missing: &[NotShown]) {
    out.push_str("<section id=\"not-shown\">\n<h2>What could not be shown</h2>\n");
    if missing.is_empty() {
        out.push_str("<p>Nothing: every part is above.</p>\n");
    } else {
        out.push_str("<ul>\n");
        for m in missing {
            let _ = writeln!(out, "<li><b>{}</b>: {}</li>", esc(m.what), esc(&m.why));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_dump_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("a\u{1b}[31mb\nc"), "a\u{fffd}[31mb\nc");
    }

    #[test]
    fn ticks_are_round_and_about_eight() {
        for (span, step) in [
            (1u64, 1u64),
            (9, 1),
            (2_914_000, 500_000),
            (10_000_000, 2_000_000),
            (u64::MAX, 5 * 10u64.pow(18)),
        ] {
            assert_eq!(tick_step(span), step, "span {span}");
        }
        assert_eq!(tick_label(1_500_000, 500_000), "1.5");
        assert_eq!(tick_label(2_000_000, 1_000_000), "2");
    }
}
