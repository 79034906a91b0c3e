//! The signature rules of the module's docs, one at a time, on messages
//! and backtraces written here (the corpus checks real ones).

use super::*;
use crate::bt::{Frame, Function, Interrupted};

#[test]
fn numbers_and_addresses_become_placeholders() {
    for (message, normal) in [
        (
            "panicked at src/scenario.rs:281:5:\npanic-ap: cpu 1 panics on purpose",
            "panicked at src/scenario.rs:<n>:<n>: panic-ap: cpu <n> panics on purpose",
        ),
        (
            "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
            "Kernel panic - not syncing: Attempted to kill init! exitcode=<hex>",
        ),
        (
            "BUG: unable to handle page fault for address: ffff888003a1b000",
            "BUG: unable to handle page fault for address: <hex>",
        ),
        (
            "NMI received for unknown reason 30 on CPU 0.",
            "NMI received for unknown reason <n> on CPU <n>.",
        ),
        // Digits inside words stay: x86_64, ext4, sha256, a hex-looking
        // word without digits, short hex; 8+ hex digits with a digit go.
        (
            "x86_64 ext4 sha256 deadbeefcafe deadbeef0cafe facade 12ab",
            "x86_64 ext4 sha256 deadbeefcafe <hex> facade 12ab",
        ),
        (
            "CPU: 1 PID: 1234 Comm: swapper/0",
            "CPU: <n> PID: <n> Comm: swapper/<n>",
        ),
        ("  spaced\tout \n\n here ", "spaced out here"),
        ("0x", "0x"),
        ("", ""),
    ] {
        assert_eq!(normalise(message), normal, "{message:?}");
    }
}

#[test]
fn the_same_crash_with_other_numbers_has_one_id() {
    let a = of(Some("panicked at src/a.rs:10:5:\ncpu 1 panics"), None);
    let b = of(Some("panicked at src/a.rs:12:9:\ncpu 3 panics"), None);
    let c = of(Some("panicked at src/b.rs:10:5:\ncpu 1 panics"), None);
    assert_eq!(a, b);
    assert_ne!(a.id, c.id);
    assert_eq!(a.id.len(), 12);
    assert_eq!(of(None, None).text, "no panic message");
}

#[test]
fn fnv1a_matches_its_published_vectors() {
    // The FNV test suite's values for 64-bit FNV-1a.
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
}

fn frame(symbol: &str) -> Frame {
    Frame {
        pc: 0,
        sp: 0,
        symbol: Some(symbol.to_owned()),
        functions: Vec::new(),
        unwound_by: None,
        interrupted: None,
    }
}

fn regs(mut f: Frame, user: bool) -> Frame {
    f.interrupted = Some(Interrupted {
        at: 0,
        full: true,
        rip: 0,
        rsp: 0,
        user,
    });
    f
}

fn trace(frames: Vec<Frame>) -> Backtrace {
    Backtrace {
        cpu: 0,
        panicking: true,
        unwinder: String::new(),
        frames,
        complete: true,
        stopped: String::new(),
    }
}

#[test]
fn linux_frames_start_after_panic_without_offsets() {
    let t = trace(vec![
        frame("__crash_kexec+0x9c/0x100"),
        frame("panic+0x118/0x2f4"),
        frame("sysrq_handle_crash+0x16/0x20"),
        frame("__handle_sysrq.cold+0x44/0x11c"),
        frame("write_sysrq_trigger+0x24/0x40"),
        frame("proc_reg_write+0x56/0xa0"),
    ]);
    assert_eq!(
        top_frames(&t),
        [
            "sysrq_handle_crash",
            "__handle_sysrq.cold",
            "write_sysrq_trigger"
        ]
    );
    let signature = of(
        Some("Kernel panic - not syncing: sysrq triggered crash"),
        Some(&t),
    );
    assert_eq!(
        signature.text,
        "Kernel panic - not syncing: sysrq triggered crash @ sysrq_handle_crash < __handle_sysrq.cold < write_sysrq_trigger"
    );
}

#[test]
fn an_oops_starts_at_the_code_it_interrupted() {
    let t = trace(vec![
        frame("panic+0x118/0x2f4"),
        frame("oops_end.cold+0x9/0x9"),
        frame("page_fault_oops+0x1a0/0x2c0"),
        frame("exc_page_fault+0x70/0x170"),
        regs(frame("asm_exc_page_fault+0x22/0x30"), false),
        frame("my_driver_write+0x11/0x40 [mydrv]"),
        frame("vfs_write+0xb4/0x3a0"),
        frame("ksys_write+0x5f/0xe0"),
        frame("do_syscall_64+0x55/0xb0"),
    ]);
    assert_eq!(
        top_frames(&t),
        ["my_driver_write [mydrv]", "vfs_write", "ksys_write"]
    );
}

#[test]
fn an_nmi_panic_keeps_its_handler_frames_not_what_it_interrupted() {
    let t = trace(vec![
        frame("panic+0x118/0x2f4"),
        frame("nmi_panic.cold+0xc/0xc"),
        frame("unknown_nmi_error.cold+0x3b/0x6e"),
        frame("exc_nmi+0x13f/0x160"),
        regs(frame("asm_exc_nmi+0xbf/0xff"), false),
        frame("native_safe_halt+0xb/0x10"),
    ]);
    assert_eq!(top_frames(&t), ["unknown_nmi_error.cold", "exc_nmi"]);
    // The same NMI taken while the CPU was on its NMI stack leaves through
    // `end_repeat_nmi`: the same frames.
    let t = trace(vec![
        frame("panic+0x2e9/0x2f4"),
        frame("nmi_panic.cold+0xc/0xc"),
        frame("unknown_nmi_error.cold+0x3b/0x49"),
        frame("exc_nmi+0x11e/0x150"),
        regs(frame("end_repeat_nmi+0x16/0x67"), false),
        frame("__sysvec_apic_timer_interrupt+0x2d/0x110"),
    ]);
    assert_eq!(top_frames(&t), ["unknown_nmi_error.cold", "exc_nmi"]);
}

#[test]
fn rust_frames_start_after_the_panic_entry_by_outermost_function() {
    let named = |names: &[&str]| Frame {
        pc: 0,
        sp: 0,
        symbol: None,
        functions: names
            .iter()
            .map(|n| Function {
                name: Some((*n).to_owned()),
                file: None,
                line: None,
            })
            .collect(),
        unwound_by: None,
        interrupted: None,
    };
    let t = trace(vec![
        named(&["x86_64::instructions::hlt", "<K as Kernel>::reboot"]),
        named(&["crashkit_panic_path::sequence::run_step"]),
        named(&[
            "crashkit_panic_path::entry::panic",
            "__rustc::rust_begin_unwind",
        ]),
        named(&["core::panicking::panic_fmt"]),
        named(&["crashkit_test_kernel::scenario::panic_ap"]),
        named(&["crashkit_test_kernel::ap_entry"]),
    ]);
    assert_eq!(
        top_frames(&t),
        [
            "crashkit_test_kernel::scenario::panic_ap",
            "crashkit_test_kernel::ap_entry"
        ]
    );
    // Entry stubs end the frames.
    let t = trace(vec![
        frame("panic+0x118/0x2f4"),
        frame("sysrq_handle_crash+0x16/0x20"),
        frame("entry_SYSCALL_64_after_hwframe+0x6e/0xd8"),
    ]);
    assert_eq!(top_frames(&t), ["sysrq_handle_crash"]);
    for stub in [
        "asm_exc_page_fault",
        "ret_from_fork_asm",
        "entry_INT80_compat",
        "nmi_restore",
    ] {
        assert!(is_entry_stub(stub), "{stub}");
    }
    for not_stub in ["exc_nmi", "do_syscall_64", "entry", "asm"] {
        assert!(!is_entry_stub(not_stub), "{not_stub}");
    }
    // Without machinery near the top, from the first frame.
    let t = trace(vec![
        frame("a+0x1/0x2"),
        frame("b+0x1/0x2"),
        frame("c"),
        frame("d"),
    ]);
    assert_eq!(top_frames(&t), ["a", "b", "c"]);
    assert!(top_frames(&trace(Vec::new())).is_empty());
}
