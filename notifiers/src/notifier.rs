//! A notifier: a named, prioritised callback in one list, with a time
//! budget, and optionally the lock its state lives behind.
//!
//! Notifiers are statics, registered by reference. Everything about a
//! notifier is fixed at construction (`const fn`), so the registry's
//! lock-free readers only ever have to read one pointer per notifier.

use crashkit_nmi::lock::QueueDomain;

use crate::{BodyResult, NotifierList, NotifierLock, PanicContext};

/// Default per-notifier budget: 10 ms.
///
/// Enough for a notifier that writes a few hundred bytes to a 115200-baud
/// serial console (about 11 bytes per millisecond) or a page to a
/// hypervisor; ten notifiers at their budget cost 100 ms, a tenth of the
/// shootdown's 1 s wait. Nothing preempts a notifier that overruns it: the
/// overrun is measured and recorded as
/// [`NotifierOutcome::OverBudget`](crate::NotifierOutcome::OverBudget).
pub const DEFAULT_BUDGET_NS: u64 = 10_000_000;

/// A plain notifier body.
pub type BodyFn = fn(&PanicContext<'_>) -> BodyResult;

/// A body that works on state behind a [`NotifierLock`], which the runner
/// holds for it.
pub type LockedBodyFn<T> = fn(&PanicContext<'_>, &mut T) -> BodyResult;

/// A notifier's body together with the lock it needs, so that the runner
/// (not the body) tries the lock.
///
/// Build it in the notifier's static initializer:
/// `Notifier::locked("name", list, 0, &LockedBody::new(&LOCK, body))`
/// (the reference to the temporary is promoted to `'static`).
pub struct LockedBody<D: QueueDomain, T: 'static> {
    lock: &'static NotifierLock<D, T>,
    body: LockedBodyFn<T>,
}

impl<D: QueueDomain, T: 'static> LockedBody<D, T> {
    /// `body`, to be called with the data behind `lock` when the runner got
    /// the lock.
    pub const fn new(lock: &'static NotifierLock<D, T>, body: LockedBodyFn<T>) -> Self {
        Self { lock, body }
    }
}

impl<D: QueueDomain, T: 'static> core::fmt::Debug for LockedBody<D, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LockedBody")
            .field("lock", self.lock)
            .finish_non_exhaustive()
    }
}

/// The type-erased call of a [`LockedBody`]: `None` when the lock was busy.
pub(crate) trait GuardedBody: Sync {
    fn call(&self, context: &PanicContext<'_>) -> Option<BodyResult>;
}

impl<D: QueueDomain, T: Send + 'static> GuardedBody for LockedBody<D, T> {
    fn call(&self, context: &PanicContext<'_>) -> Option<BodyResult> {
        let mut guard = self.lock.try_lock(context)?;
        Some((self.body)(context, &mut guard))
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Body {
    Plain(BodyFn),
    Locked(&'static dyn GuardedBody),
}

/// A panic notifier. Declare it as a static and register `&NOTIFIER`.
///
/// ```
/// use crashkit_notifiers::{BodyResult, Notifier, NotifierList, PanicContext};
///
/// fn tell_hypervisor(ctx: &PanicContext<'_>) -> BodyResult {
///     let _ = ctx.message(); // write it to the hypervisor's panic port
///     BodyResult::Complete
/// }
/// static PVPANIC: Notifier = Notifier::new("pvpanic", NotifierList::Hypervisor, 1, tell_hypervisor);
/// ```
pub struct Notifier {
    name: &'static str,
    list: NotifierList,
    priority: i32,
    budget_ns: u64,
    body: Body,
}

impl Notifier {
    /// A notifier called `name` in `list`; higher `priority` runs earlier
    /// in its list, equal priorities in registration order. Budget:
    /// [`DEFAULT_BUDGET_NS`].
    pub const fn new(name: &'static str, list: NotifierList, priority: i32, body: BodyFn) -> Self {
        Self {
            name,
            list,
            priority,
            budget_ns: DEFAULT_BUDGET_NS,
            body: Body::Plain(body),
        }
    }

    /// A notifier whose state lives behind a [`NotifierLock`]: the runner
    /// tries the lock, calls the body with the data if it got it, and
    /// records [`SkippedLockBusy`](crate::NotifierOutcome::SkippedLockBusy)
    /// without calling it otherwise.
    ///
    /// ```
    /// # use crashkit_nmi::{CpuIndex, lock::{CpuQueue, QueueDomain}};
    /// # static QUEUES: [CpuQueue; 1] = [const { CpuQueue::new() }; 1];
    /// # struct Kernel;
    /// # impl QueueDomain for Kernel {
    /// #     fn queues() -> &'static [CpuQueue] { &QUEUES }
    /// #     fn current_cpu() -> CpuIndex { CpuIndex(0) }
    /// #     fn now_ns() -> u64 { 0 }
    /// # }
    /// use crashkit_notifiers::{BodyResult, LockedBody, Notifier, NotifierList, NotifierLock, PanicContext};
    ///
    /// static LOG: NotifierLock<Kernel, [u8; 64]> = NotifierLock::new([0; 64]);
    /// fn flush(_: &PanicContext<'_>, log: &mut [u8; 64]) -> BodyResult {
    ///     log.fill(0); // flush it somewhere first
    ///     BodyResult::Complete
    /// }
    /// static FLUSH: Notifier =
    ///     Notifier::locked("log-flush", NotifierList::Informational, 0, &LockedBody::new(&LOG, flush));
    /// ```
    pub const fn locked<D: QueueDomain, T: Send + 'static>(
        name: &'static str,
        list: NotifierList,
        priority: i32,
        body: &'static LockedBody<D, T>,
    ) -> Self {
        Self {
            name,
            list,
            priority,
            budget_ns: DEFAULT_BUDGET_NS,
            body: Body::Locked(body),
        }
    }

    /// The same notifier with a budget of `budget_ns` nanoseconds.
    pub const fn with_budget(mut self, budget_ns: u64) -> Self {
        self.budget_ns = budget_ns;
        self
    }

    /// Its name (in reports and the crash record).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its list.
    pub fn list(&self) -> NotifierList {
        self.list
    }

    /// Its priority (higher runs earlier).
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// Its budget in nanoseconds.
    pub fn budget_ns(&self) -> u64 {
        self.budget_ns
    }

    /// Whether it declared a lock ([`Notifier::locked`]).
    pub fn is_locked(&self) -> bool {
        matches!(self.body, Body::Locked(_))
    }

    pub(crate) fn body(&self) -> Body {
        self.body
    }
}

impl core::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Notifier")
            .field("name", &self.name)
            .field("list", &self.list)
            .field("priority", &self.priority)
            .field("budget_ns", &self.budget_ns)
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Notifiers compare by identity: two notifiers are equal when they are the
/// same static (the registry keeps identities, not values).
impl PartialEq for Notifier {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self, other)
    }
}

impl Eq for Notifier {}
