//! `crashkit bt -a` on a Linux guest's dump, with no vmlinux (the ORC
//! tables and kallsyms in the dump), checked against what the guest's
//! kernel printed on its console (issue 29):
//! - every CPU's stack is walked to its start (exit 0, each `complete`);
//! - the panicking CPU is the one the console's header names, and the
//!   reliable frames of its Call Trace (those without `?`), from `panic`
//!   (or the faulting function) outward, are in its backtrace in order:
//!   the first by name (the trace was printed from another call in it),
//!   the rest exactly as Linux printed them (`name+0xoff/0xsize`);
//! - the other CPUs: where no capture kernel was loaded, each stopped in
//!   `stop_this_cpu` (or, had an NMI reached it after another CPU's NMI
//!   panic, waits in `nmi_panic_self_stop`), entered through an interrupt
//!   or NMI (a
//!   `pt_regs` crossing) from what it was running; where one was (the console's
//!   header says `Kdump: loaded`), Linux's crash NMI saved the registers it
//!   interrupted, so the stack starts in that context, not in NMI code.

use std::path::Path;

use serde_json::Value;

use crate::cli_check;
use crate::kallsyms::Truth;

/// A frame's function name: its symbol before `+`.
fn name(symbol: &str) -> &str {
    symbol.split('+').next().unwrap_or(symbol)
}

/// Check `bt -a` on the dump `arg` against the guest's `truth`; a summary.
pub fn check(crashkit: &Path, arg: &str, truth: &Truth) -> Result<String, String> {
    let fail = |what: String| format!("crashkit bt -a {arg}: {what}");
    let output = cli_check::run(crashkit, &["--json", "bt", "-a", arg])?;
    let value: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        fail(format!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    })?;
    let traces = value["bt"].as_array().cloned().unwrap_or_default();
    if output.status.code() != Some(0) || traces.len() < 2 {
        return Err(fail(format!(
            "exit {:?}, {} CPUs: {}",
            output.status.code(),
            traces.len(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let symbols = |trace: &Value| -> Vec<String> {
        trace["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["symbol"].as_str().unwrap_or("??").to_owned())
            .collect()
    };
    let mut frames = 0;
    for trace in &traces {
        let cpu = trace["cpu"].as_u64().unwrap_or(u64::MAX);
        let list = symbols(trace);
        frames += list.len();
        if trace["complete"] != true {
            return Err(fail(format!(
                "CPU {cpu} stopped early ({}): {list:?}",
                trace["stopped"]
            )));
        }
        if trace["unwinder"]
            .as_str()
            .is_none_or(|u| !u.starts_with("orc"))
        {
            return Err(fail(format!("CPU {cpu} unwound by {}", trace["unwinder"])));
        }
        let panicking = trace["panicking"] == true;
        if panicking != (cpu == truth.panic_cpu) {
            return Err(fail(format!(
                "CPU {cpu} panicking is {panicking}; the console's header says CPU {}",
                truth.panic_cpu
            )));
        }
        if panicking {
            // The reliable frames from `panic` (or the faulting function).
            let start = truth
                .reliable
                .iter()
                .position(|f| name(f) == "panic")
                .unwrap_or(0);
            let wanted = &truth.reliable[start..];
            let mut at = 0;
            for (index, want) in wanted.iter().enumerate() {
                let found = list[at..].iter().position(|have| {
                    if index == 0 {
                        name(have) == name(want)
                    } else {
                        have == want
                    }
                });
                match found {
                    Some(offset) => at += offset + 1,
                    None => {
                        return Err(fail(format!(
                            "the panicking CPU's frames {list:?} miss {want} (in order) of the console's {wanted:?}"
                        )));
                    }
                }
            }
            if wanted.len() < 4 {
                return Err(fail(format!(
                    "only {} reliable frames on the console",
                    wanted.len()
                )));
            }
            continue;
        }
        let crossed = trace["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["interrupted"].is_object());
        if truth.kdump_loaded {
            // Linux's crash NMI saved what it interrupted.
            if list.iter().any(|s| {
                let n = name(s);
                n.contains("nmi") || n.starts_with("crash_")
            }) {
                return Err(fail(format!(
                    "CPU {cpu} starts in the crash NMI's code, not in what it interrupted: {list:?}"
                )));
            }
        } else if !list
            .iter()
            .any(|s| ["stop_this_cpu", "nmi_panic_self_stop"].contains(&name(s)))
            || !crossed
        {
            return Err(fail(format!(
                "CPU {cpu} is not stopped (stop_this_cpu, or nmi_panic_self_stop after another \
                 CPU's NMI panic) through an interrupt: {list:?}"
            )));
        }
    }
    Ok(format!(
        "bt -a without a vmlinux: {} CPUs complete, {frames} frames, the console's {} reliable frames in order",
        traces.len(),
        truth
            .reliable
            .iter()
            .skip_while(|f| name(f) != "panic")
            .count()
    ))
}
