//! The minimal kernel's scenarios, chosen with `scenario=NAME` on the
//! command line. None of them uses crashkit: they crash the kernel, and the
//! test suite reads what crashkit recorded.
//!
//! | name | CPUs | what happens | the record should say |
//! |------|------|--------------|-----------------------|
//! | `early-panic` | 1+ | the boot CPU panics before crashkit is told the TSC frequency or any CPU came online (the console was used before) | owner cpu 0, nothing to shoot down, the console notifier `Ran` |
//! | `panic-bsp` | 1+ | the APs idle; the boot CPU panics | owner cpu 0, the others stopped by NMI, `console` `Ran` |
//! | `panic-ap` | 2+ | cpu 1 panics once every CPU is online; the others idle | owner cpu 1, the others stopped by NMI |
//! | `panic-during-bring-up` | 2+ | cpu 1 panics as soon as it is online, while the boot CPU may still be starting the others | owner cpu 1, cpu 0 stopped by NMI, no CPU hit while it starts (no triple fault) |
//! | `notifier-lock` | 2+ | cpu 1 takes the console's lock and idles holding it; the boot CPU panics | `console` `SkippedLockBusy`, cpu 1 stopped by NMI |
//! | `unresponsive` | 2+ | cpu 1 hangs in an NMI handler of its own (NMIs blocked, interrupts off); the boot CPU panics | cpu 1 `Unresponsive` after the 1 s deadline |

use kernel_base::machine::{self, idle};
use kernel_base::time::poll_until;
use kernel_base::{Boot, fail};

use crate::CONSOLE;

/// A scenario's roles once every CPU is online.
#[derive(Debug)]
pub struct Scenario {
    /// The boot CPU's.
    pub bsp: fn() -> !,
    /// Each AP's, with its index.
    pub ap: fn(usize) -> !,
}

/// The scenario the command line names; `early-panic` panics here.
pub fn select(boot: &Boot) -> Scenario {
    match boot.option("scenario") {
        Some("early-panic") => panic!("early-panic: cpu 0 panics before bring-up"),
        Some("panic-bsp") => Scenario {
            bsp: || panic!("panic-bsp: cpu 0 panics on purpose"),
            ap: |_| idle(),
        },
        Some("panic-ap") => Scenario {
            bsp: || idle(),
            ap: |cpu| {
                if cpu == 1 {
                    wait_for(|| machine::online() == machine::expected(), "every CPU");
                    panic!("panic-ap: cpu 1 panics on purpose")
                }
                idle()
            },
        },
        Some("panic-during-bring-up") => Scenario {
            bsp: || idle(),
            ap: |cpu| match cpu {
                1 => panic!("panic-during-bring-up: cpu 1 panics at once"),
                _ => idle(),
            },
        },
        Some("notifier-lock") => Scenario {
            bsp: || {
                wait_for(|| CONSOLE.is_locked(), "cpu 1 to hold the console");
                panic!("notifier-lock: cpu 0 panics while cpu 1 holds the console")
            },
            ap: |cpu| {
                if cpu == 1 {
                    // Hold the console for good: the guard is never dropped.
                    core::mem::forget(CONSOLE.lock());
                }
                idle()
            },
        },
        Some("unresponsive") => Scenario {
            bsp: || {
                wait_for(machine::is_stuck, "cpu 1 to hang in its NMI handler");
                panic!("unresponsive: cpu 0 panics, cpu 1 cannot answer")
            },
            ap: |cpu| match cpu {
                1 => machine::stuck_in_nmi(),
                _ => idle(),
            },
        },
        other => fail(format_args!("unknown scenario {other:?}")),
    }
}

/// Wait (at most 5 s) until `done` holds, or fail saying `what`.
fn wait_for(done: fn() -> bool, what: &str) {
    if !poll_until(5_000_000, done) {
        fail(format_args!("timed out waiting for {what}"));
    }
}
