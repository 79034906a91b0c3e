//! `crashkit report` and `triage --html` pages in a real browser: Debian's
//! headless Chromium, driven through the DevTools protocol
//! (`common/cdp.rs`). Each page must load from disk with no console
//! error or warning, no exception, no CSP violation and no request but its
//! own file; show the panic message as text (markup in it stays text, and
//! the page has no script); draw the timeline's SVG with one lane per CPU
//! the crash record knows, inside the SVG's box; and print (a PDF).
//!
//! `cargo xtask test` installs Chromium; run alone, this test fails (never
//! skips) without it.

#[path = "common/cdp.rs"]
mod cdp;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn crashkit(dir: &Path, args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_crashkit"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "crashkit {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The report of `dump` as JSON and as a page at `html`.
fn report(dir: &Path, dump: &str, extra: &[&str], html: &Path) -> Value {
    let mut args = vec!["report", dump, "-o", html.to_str().unwrap()];
    args.extend(extra);
    crashkit(dir, &args);
    let mut args = vec!["--json", "report", dump];
    args.extend(extra);
    let json: Value = serde_json::from_slice(&crashkit(dir, &args).stdout).unwrap();
    json["report"].clone()
}

/// What the page shows, measured in the browser.
const MEASURE: &str = r#"(() => {
  const svg = document.querySelector('svg.timeline');
  const box = svg ? svg.getBoundingClientRect() : null;
  const lanes = svg ? [...svg.querySelectorAll('g.lane')].map(g => {
    const r = g.getBoundingClientRect();
    return { cpu: Number(g.dataset.cpu), x: r.x, y: r.y, w: r.width, h: r.height,
             marks: g.querySelectorAll('.nmi, .stop, .phase, .notifier, .claim, .waiting').length };
  }) : [];
  const panic = document.querySelector('.panic');
  return {
    scripts: document.scripts.length,
    svg: box ? { x: box.x, y: box.y, w: box.width, h: box.height } : null,
    lanes,
    panic: panic ? panic.textContent : null,
    resources: performance.getEntriesByType('resource').length,
    title: document.title,
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    links: [...document.querySelectorAll('a[href^="reports/"]')].map(a => a.getAttribute('href')),
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  };
})()"#;

/// Load `page` and check what every page must hold; the measurements.
fn check_page(browser: &mut cdp::Browser, page: &Path) -> Value {
    let url = format!("file://{}", page.display());
    let events = browser.load(&url);
    let problems = cdp::problems(&events);
    assert!(
        problems.is_empty(),
        "{}: the browser reported {problems:#?}",
        page.display()
    );
    let requests = cdp::requests(&events);
    assert!(
        requests.iter().all(|r| *r == url),
        "{}: requests beyond the page itself: {requests:?}",
        page.display()
    );
    let measured = browser.evaluate(MEASURE);
    assert_eq!(measured["scripts"], 0, "{}", page.display());
    assert_eq!(measured["resources"], 0, "{}", page.display());
    assert!(
        measured["overflow"].as_f64().unwrap() <= 0.0,
        "{}: wider than the window: {measured}",
        page.display()
    );
    // A collapsed CPU section hides its backtrace and registers on the
    // screen, and shows them printed (`checkVisibility` is false inside
    // a closed `details`; geometry is not, it is laid out on demand).
    let hidden = "[...document.querySelectorAll('details:not([open]) pre')].filter(p => !p.checkVisibility()).length";
    let closed = browser.evaluate("document.querySelectorAll('details:not([open]) pre').length");
    assert_eq!(
        browser.evaluate(hidden),
        closed,
        "{}: on screen",
        page.display()
    );
    browser.call("Emulation.setEmulatedMedia", json!({"media": "print"}));
    let printed_hidden = browser.evaluate(hidden);
    browser.call("Emulation.setEmulatedMedia", json!({"media": ""}));
    assert_eq!(
        printed_hidden,
        0,
        "{}: closed sections print empty",
        page.display()
    );
    // It prints: Chromium's own PDF of it, one page or more.
    let pdf = browser.call("Page.printToPDF", json!({"printBackground": false}));
    let data = pdf["data"].as_str().unwrap();
    assert!(
        data.len() > 1000,
        "{}: a PDF of {} bytes",
        page.display(),
        data.len()
    );
    measured
}

/// The lanes check: one per CPU the record knows (not absent), in CPU
/// order, each inside the SVG, with something drawn in it.
fn check_lanes(measured: &Value, report: &Value, what: &str) {
    let expected: Vec<u64> = report["record"]["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] != "Absent")
        .map(|c| c["cpu"].as_u64().unwrap())
        .collect();
    assert!(!expected.is_empty(), "{what}: the record has CPUs");
    let svg = &measured["svg"];
    assert!(svg.is_object(), "{what}: no timeline SVG");
    let lanes = measured["lanes"].as_array().unwrap();
    let cpus: Vec<u64> = lanes.iter().map(|l| l["cpu"].as_u64().unwrap()).collect();
    assert_eq!(cpus, expected, "{what}: one lane per CPU");
    let (sx, sy, sw, sh) = (
        svg["x"].as_f64().unwrap(),
        svg["y"].as_f64().unwrap(),
        svg["w"].as_f64().unwrap(),
        svg["h"].as_f64().unwrap(),
    );
    assert!(sw > 600.0 && sh > 60.0, "{what}: the SVG is {sw}x{sh}");
    let mut previous_y = f64::MIN;
    for lane in lanes {
        let (x, y, w, h) = (
            lane["x"].as_f64().unwrap(),
            lane["y"].as_f64().unwrap(),
            lane["w"].as_f64().unwrap(),
            lane["h"].as_f64().unwrap(),
        );
        assert!(
            x >= sx - 0.5 && y >= sy - 0.5 && x + w <= sx + sw + 0.5 && y + h <= sy + sh + 0.5,
            "{what}: lane {lane} outside the SVG {svg}"
        );
        assert!(y > previous_y, "{what}: lanes overlap or are out of order");
        previous_y = y;
        assert!(
            lane["marks"].as_u64().unwrap() > 0,
            "{what}: lane {lane} shows nothing"
        );
    }
}

#[test]
fn reports_and_the_triage_index_load_cleanly_in_chromium() {
    let generated = common::file("browser-dump.elf", &common::elf())
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = generated.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dump.elf"), common::elf()).unwrap();
    std::fs::write(
        dir.join("eventful.elf"),
        common::elf_with_record(&common::eventful_record()),
    )
    .unwrap();
    std::fs::write(dir.join("linux.elf"), common::linux::elf()).unwrap();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let qemu = corpus.join("qemu-test-kernel-panic-ap.kdump-zlib.flat");
    let kernel = corpus.join("test-kernel.elf");
    let nowhere = ["--debug-dir", "nowhere"];

    let mut browser = cdp::Browser::start(&generated);

    // The eventful record: three lanes (CPU 3 is absent), the owner's
    // phases and notifiers, an NMI never answered; its markup as text.
    let page = dir.join("eventful.html");
    let eventful = report(&dir, "eventful.elf", &nowhere, &page);
    let measured = check_page(&mut browser, &page);
    check_lanes(&measured, &eventful, "eventful");
    assert_eq!(measured["lanes"].as_array().unwrap().len(), 3);
    assert_eq!(measured["panic"], eventful["summary"]["panic_message"]);
    assert!(
        measured["panic"]
            .as_str()
            .unwrap()
            .contains("<script>alert('x')</script>")
    );

    // crashkit's own dump and QEMU's dump of the test kernel (with its
    // ELF: backtraces), two lanes each.
    for (name, dump, extra) in [
        ("dump", dir.join("dump.elf"), nowhere.to_vec()),
        (
            "qemu",
            qemu.clone(),
            vec!["--kernel", kernel.to_str().unwrap()],
        ),
    ] {
        let page = dir.join(format!("{name}.html"));
        let answer = report(&dir, dump.to_str().unwrap(), &extra, &page);
        let measured = check_page(&mut browser, &page);
        check_lanes(&measured, &answer, name);
        assert_eq!(measured["panic"], answer["summary"]["panic_message"]);
    }

    // A Linux dump: no crash record, so no SVG, and the page says why.
    let page = dir.join("linux.html");
    let linux = report(&dir, "linux.elf", &nowhere, &page);
    let measured = check_page(&mut browser, &page);
    assert!(measured["svg"].is_null());
    assert!(linux["timeline"].is_null());
    assert_eq!(measured["panic"], "Kernel panic - not syncing: synthetic");

    // The triage index links every readable dump's report; each loads.
    let out = dir.join("triage");
    let _ = std::fs::remove_dir_all(&out);
    crashkit(
        &dir,
        &[
            "triage",
            "dump.elf",
            "eventful.elf",
            "linux.elf",
            "../golden.rs-not-here",
            "--html",
            out.to_str().unwrap(),
            "--debug-dir",
            "nowhere",
        ],
    );
    let measured = check_page(&mut browser, &out.join("index.html"));
    let links = measured["links"].as_array().unwrap();
    assert_eq!(links.len(), 3, "{measured}");
    for link in links {
        let linked = out.join(link.as_str().unwrap());
        check_page(&mut browser, &linked);
    }
}

/// The checks can fail: a page that breaks each rule is caught.
#[test]
fn the_browser_check_sees_console_errors_blocked_scripts_and_requests() {
    let generated = common::file("browser-bad-dump.elf", &common::elf())
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = generated.join("browser-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let mut browser = cdp::Browser::start(&generated);
    // An error logged by a script, and a request for an image.
    let page = dir.join("logs.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><title>t</title></head><body>\
         <img src=\"http://127.0.0.1:9/x.png\"><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let events = browser.load(&format!("file://{}", page.display()));
    let problems = cdp::problems(&events);
    assert!(problems.iter().any(|p| p.contains("boom")), "{problems:#?}");
    assert!(
        cdp::requests(&events)
            .iter()
            .any(|r| r.starts_with("http://127.0.0.1:9/")),
        "{events:#?}"
    );
    // The report's policy blocks an inline script, and says so.
    let page = dir.join("csp.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'\"><title>t</title></head><body>\
         <script>document.title = 'ran'</script></body></html>",
    )
    .unwrap();
    let events = browser.load(&format!("file://{}", page.display()));
    assert!(!cdp::problems(&events).is_empty(), "{events:#?}");
    assert_eq!(browser.evaluate("document.title"), "t");
}
