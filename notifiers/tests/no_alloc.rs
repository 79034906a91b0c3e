//! Nothing the panic path calls here allocates: a counting global allocator
//! watches this thread while it registers, runs lists (with a declared lock,
//! free and busy), resumes after a panicked notifier and reads the cursor.
//! (The crate has no `alloc` dependency at all; this checks the behaviour,
//! including the test's own recorder, which is allocation-free.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use common::{HostThreads, TestPlatform};
use crashkit_notifiers::{
    BodyResult, EscalationPolicy, LockedBody, Notifier, NotifierList, NotifierLock,
    NotifierRecorder, NotifierReport, PanicContext, PanicInputs, Registry,
};

struct Counting;

std::thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the thread-local counters are const-initialised
// `Cell`s, which need no allocation and no destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `body` on this thread.
fn allocations_in(body: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|count| count.set(0));
    WATCHING.with(|watching| watching.set(true));
    body();
    WATCHING.with(|watching| watching.set(false));
    ALLOCATIONS.with(Cell::get)
}

struct Count(u32);
impl NotifierRecorder for Count {
    fn record(&mut self, _: &NotifierReport) {
        self.0 += 1;
    }
}

fn complete(_: &PanicContext<'_>) -> BodyResult {
    BodyResult::Complete
}

#[test]
fn registering_running_and_resuming_do_not_allocate() {
    static STATE: NotifierLock<HostThreads, u64> = NotifierLock::new(0);
    fn add(_: &PanicContext<'_>, state: &mut u64) -> BodyResult {
        *state += 1;
        BodyResult::Complete
    }
    static ARMED: AtomicBool = AtomicBool::new(false);
    fn bad(_: &PanicContext<'_>) -> BodyResult {
        if ARMED.swap(false, SeqCst) {
            // `resume_unwind` skips the panic hook (whose message would
            // allocate); a kernel's panic does not unwind at all.
            std::panic::resume_unwind(Box::new(()));
        }
        BodyResult::Complete
    }
    static LOCKED: Notifier = Notifier::locked(
        "locked",
        NotifierList::Hypervisor,
        2,
        &LockedBody::new(&STATE, add),
    );
    static PLAIN: Notifier = Notifier::new("plain", NotifierList::Hypervisor, 1, complete);
    static BAD: Notifier = Notifier::new("bad", NotifierList::Hypervisor, 0, bad);
    static AFTER: Notifier = Notifier::new("after", NotifierList::Hypervisor, -1, complete);
    static REGISTRY: Registry<8> = Registry::new(EscalationPolicy::NextNotifier);
    let platform = TestPlatform::new();
    let inputs = PanicInputs::new(&platform, "no allocation");
    drop(STATE.lock()); // hand this thread its CPU index before watching
    let mut recorder = Count(0);
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8)))),
        1,
        "the harness sees allocations"
    );

    let allocations = allocations_in(|| {
        for notifier in [&LOCKED, &PLAIN, &BAD, &AFTER] {
            REGISTRY.register(notifier).unwrap();
        }
        REGISTRY
            .run_list(NotifierList::Hypervisor, &inputs, &mut recorder)
            .unwrap();
        let held = STATE.lock();
        REGISTRY
            .run_list(NotifierList::Hypervisor, &inputs, &mut recorder)
            .unwrap();
        drop(held);
        let _ = REGISTRY.cursor();
        REGISTRY.unregister(&PLAIN).unwrap();
    });
    assert_eq!(allocations, 0);
    assert_eq!(recorder.0, 8);

    // The panicking run: the unwinding machinery itself allocates (the
    // payload box, the exception object), so only the resume is watched.
    ARMED.store(true, SeqCst);
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _ = REGISTRY.run_list(NotifierList::Hypervisor, &inputs, &mut Count(0));
    }));
    assert!(unwound.is_err());
    let mut resumed = Count(0);
    let allocations = allocations_in(|| {
        let _ = REGISTRY.resume(&inputs, &mut resumed);
    });
    assert_eq!(allocations, 0);
    assert_eq!(resumed.0, 2, "bad (panicked) and after");
}
