//! The run cursor: which notifier is running, kept in atomics so that a
//! panic path re-entered by a panicking notifier can find it.
//!
//! A notifier that panics never returns: the kernel's panic handler is
//! entered again on the panic owner. The only trace of where the run was
//! is this cursor, written by the runner before and after every body.
//!
//! # States
//!
//! | phase      | list | sequence              | also valid                          | meaning |
//! |------------|------|-----------------------|-------------------------------------|---------|
//! | `Idle`     | -    | -                     | -                                   | no list has run yet |
//! | `Running`  | L    | the notifier's number | `running` (the notifier), `started_ns` | its body is executing |
//! | `Between`  | L    | last one's number, 0 = none yet | `last_priority`           | the runner is choosing the next notifier of L |
//! | `Finished` | L    | -                     | -                                   | L is done |
//!
//! # Transitions (only by the one runner, on the panic owner)
//!
//! | from                 | to                     | by                                      |
//! |----------------------|------------------------|-----------------------------------------|
//! | `Idle`, `Finished`   | `Between(L, none)`     | `run_list(L)` claims the cursor (CAS)   |
//! | `Between(L, p)`      | `Running(L, n)`        | before calling `n`'s body (or its lock)  |
//! | `Running(L, n)`      | `Between(L, n)`        | after `n`'s body returned, before recording it |
//! | `Between(L, p)`      | `Finished(L)`          | no notifier of L is left                 |
//! | `Running(L, n)`      | `Between(L, n)`        | `resume`: `n` panicked                   |
//! | `Running`, `Between` | `Finished(L)`          | `resume` giving up (policy, or no progress) |
//!
//! # One word plus fields
//! The phase, list and sequence share one `AtomicU64` (bits 0-1 phase, 2-4
//! list code + 1 (0 = no list), 5-63 sequence), so a phase change is one store. The other
//! fields are each read only in phases where the runner does not write
//! them (`running` and `started_ns` in `Running`, written in `Between`;
//! `last_priority` in `Between`, written in `Running`), so a reader on the
//! runner's own CPU (the re-entered panic path: the runner is frozen) always
//! reads a consistent cursor. A reader on another CPU validates like a
//! sequence lock: word, fields, word again; every field store is Release and
//! every field load Acquire, so a field value newer than the first word read
//! forces a different second read (sequence numbers are unique).

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::static_ref::AtomicStaticRef;
use crate::{ListPosition, Notifier, NotifierList};

const PHASE_IDLE: u64 = 0;
const PHASE_RUNNING: u64 = 1;
const PHASE_BETWEEN: u64 = 2;
const PHASE_FINISHED: u64 = 3;
const PHASE_MASK: u64 = 0b11;
const LIST_SHIFT: u32 = 2;
const LIST_MASK: u64 = 0b111;
const SEQUENCE_SHIFT: u32 = 5;

/// Where the notifier run is, as read from the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// No list has been run.
    Idle,
    /// `notifier`'s body (or its lock attempt) is executing, or it panicked
    /// and the panic path has not resumed yet.
    Running {
        /// The list being run.
        list: NotifierList,
        /// The notifier.
        notifier: &'static Notifier,
        /// Its position.
        position: ListPosition,
        /// Platform nanoseconds when it was started.
        started_ns: u64,
    },
    /// The runner is between two notifiers of `list`.
    Between {
        /// The list being run.
        list: NotifierList,
        /// The last notifier done (`None`: none yet).
        after: Option<ListPosition>,
    },
    /// `list` was finished (the last list run).
    Finished {
        /// The list.
        list: NotifierList,
    },
    /// A runner on another CPU moved the cursor during every read (never
    /// seen by the runner's own CPU). Ask again.
    Moving,
}

impl Cursor {
    /// The list the cursor is in, if any.
    pub fn list(&self) -> Option<NotifierList> {
        match *self {
            Cursor::Running { list, .. }
            | Cursor::Between { list, .. }
            | Cursor::Finished { list } => Some(list),
            Cursor::Idle | Cursor::Moving => None,
        }
    }

    /// Whether a run of a list started and did not finish: either it is
    /// executing on some CPU, or a notifier panicked and
    /// [`Registry::resume`](crate::Registry::resume) must be called.
    pub fn is_in_list(&self) -> bool {
        matches!(self, Cursor::Running { .. } | Cursor::Between { .. })
    }
}

fn encode(phase: u64, list: Option<NotifierList>, sequence: u64) -> u64 {
    let list = list.map_or(0, |list| u64::from(list.code() + 1) & LIST_MASK);
    phase | (list << LIST_SHIFT) | (sequence << SEQUENCE_SHIFT)
}

fn phase_of(word: u64) -> u64 {
    word & PHASE_MASK
}

fn list_of(word: u64) -> Option<NotifierList> {
    // The mask keeps the value below 8, so the cast is lossless; 0 (no
    // list) wraps to a code no list has.
    NotifierList::from_code((((word >> LIST_SHIFT) & LIST_MASK) as u32).wrapping_sub(1))
}

fn sequence_of(word: u64) -> u64 {
    word >> SEQUENCE_SHIFT
}

/// How many times a reader on another CPU retries a cursor that moves.
const READ_TRIES: usize = 8;

/// The cursor's storage. One per registry.
pub(crate) struct RunCursor {
    word: AtomicU64,
    running: AtomicStaticRef<Notifier>,
    started_ns: AtomicU64,
    last_priority: AtomicI32,
}

impl RunCursor {
    pub(crate) const fn new() -> Self {
        Self {
            word: AtomicU64::new(PHASE_IDLE),
            running: AtomicStaticRef::none(),
            started_ns: AtomicU64::new(0),
            last_priority: AtomicI32::new(0),
        }
    }

    /// The raw word, for the resume's progress check.
    pub(crate) fn word(&self) -> u64 {
        // Acquire: pairs with the runner's Release word stores (the fields
        // written before them are visible to the reads that follow).
        self.word.load(Ordering::Acquire)
    }

    /// `Idle`/`Finished` -> `Between(list, none)`; the cursor as it was if
    /// it was in a list.
    pub(crate) fn claim(&self, list: NotifierList) -> Result<(), Cursor> {
        let current = self.word();
        if matches!(phase_of(current), PHASE_RUNNING | PHASE_BETWEEN) {
            return Err(self.read());
        }
        // AcqRel: the Acquire half pairs with the previous runner's Release
        // stores (a run on another CPU before this one); the Release half
        // orders this claim before the field stores that follow, for
        // validating readers. Acquire on failure: we read the cursor then.
        match self.word.compare_exchange(
            current,
            encode(PHASE_BETWEEN, Some(list), 0),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(_) => Err(self.read()),
        }
    }

    /// `Between` -> `Running(list, notifier)`.
    pub(crate) fn start(
        &self,
        list: NotifierList,
        notifier: &'static Notifier,
        sequence: u64,
        started_ns: u64,
    ) {
        // Release (both fields): a validating reader that loads these
        // values sees the word change that precedes them (see the module
        // docs). Written in `Between`, where no reader uses them.
        self.running.store(Some(notifier), Ordering::Release);
        self.started_ns.store(started_ns, Ordering::Release);
        // Release: publishes the two fields to readers that see `Running`
        // with Acquire: the re-entered panic path, `cursor()`.
        self.word.store(
            encode(PHASE_RUNNING, Some(list), sequence),
            Ordering::Release,
        );
    }

    /// `Running(list, n)` -> `Between(list, n)`.
    pub(crate) fn done_with(&self, list: NotifierList, position: ListPosition) {
        // Release: as in `start`. Written in `Running`, where no reader
        // uses it.
        self.last_priority
            .store(position.priority, Ordering::Release);
        // Release: publishes `last_priority` to Acquire readers of
        // `Between`.
        self.word.store(
            encode(PHASE_BETWEEN, Some(list), position.sequence),
            Ordering::Release,
        );
    }

    /// Any -> `Finished(list)`.
    pub(crate) fn finish(&self, list: NotifierList) {
        // Release: orders the run's earlier stores before the end, for a
        // later runner's Acquire claim.
        self.word
            .store(encode(PHASE_FINISHED, Some(list), 0), Ordering::Release);
    }

    /// The cursor now: consistent on the runner's own CPU; on another CPU,
    /// validated (or `Moving`).
    pub(crate) fn read(&self) -> Cursor {
        for _ in 0..READ_TRIES {
            let word = self.word();
            let cursor = self.decode(word);
            // Relaxed: the field loads in `decode` are Acquire, so this load
            // is not performed before them, which is all the check needs.
            if self.word.load(Ordering::Relaxed) == word {
                return cursor;
            }
        }
        Cursor::Moving
    }

    fn decode(&self, word: u64) -> Cursor {
        let Some(list) = list_of(word) else {
            return Cursor::Idle;
        };
        let sequence = sequence_of(word);
        match phase_of(word) {
            PHASE_RUNNING => match self.running.load(Ordering::Acquire) {
                // Acquire loads (here and below): pair with the Release field
                // stores, see the module docs.
                Some(notifier) => Cursor::Running {
                    list,
                    notifier,
                    position: ListPosition {
                        priority: notifier.priority(),
                        sequence,
                    },
                    started_ns: self.started_ns.load(Ordering::Acquire),
                },
                // Never stored with `Running`; read as "between, at the
                // start" rather than trusting a torn cursor.
                None => Cursor::Between { list, after: None },
            },
            PHASE_BETWEEN => Cursor::Between {
                list,
                after: (sequence != 0).then(|| ListPosition {
                    priority: self.last_priority.load(Ordering::Acquire),
                    sequence,
                }),
            },
            PHASE_FINISHED => Cursor::Finished { list },
            _ => Cursor::Idle,
        }
    }
}

impl core::fmt::Debug for RunCursor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.read().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BodyResult, PanicContext};

    fn body(_: &PanicContext<'_>) -> BodyResult {
        BodyResult::Complete
    }
    static NOTIFIER: Notifier = Notifier::new("n", NotifierList::PreDump, -7, body);

    #[test]
    fn word_round_trips_every_list_and_large_sequences() {
        for list in NotifierList::ALL {
            for sequence in [0, 1, 12345, crate::MAX_SEQUENCE] {
                let word = encode(PHASE_BETWEEN, Some(list), sequence);
                assert_eq!(phase_of(word), PHASE_BETWEEN);
                assert_eq!(list_of(word), Some(list));
                assert_eq!(sequence_of(word), sequence);
            }
        }
    }

    #[test]
    fn transitions_read_back() {
        let cursor = RunCursor::new();
        assert_eq!(cursor.read(), Cursor::Idle);
        cursor.claim(NotifierList::PreDump).expect("idle cursor");
        assert_eq!(
            cursor.read(),
            Cursor::Between {
                list: NotifierList::PreDump,
                after: None
            }
        );
        cursor.start(NotifierList::PreDump, &NOTIFIER, 9, 100);
        let running = cursor.read();
        let position = ListPosition {
            priority: -7,
            sequence: 9,
        };
        assert!(matches!(
            running,
            Cursor::Running { list: NotifierList::PreDump, notifier, position: p, started_ns: 100 }
                if core::ptr::eq(notifier, &NOTIFIER) && p == position
        ));
        assert!(
            cursor.claim(NotifierList::Hypervisor).is_err(),
            "a cursor in a list cannot be claimed"
        );
        cursor.done_with(NotifierList::PreDump, position);
        assert_eq!(
            cursor.read(),
            Cursor::Between {
                list: NotifierList::PreDump,
                after: Some(position)
            }
        );
        cursor.finish(NotifierList::PreDump);
        assert_eq!(
            cursor.read(),
            Cursor::Finished {
                list: NotifierList::PreDump
            }
        );
        cursor
            .claim(NotifierList::PostDump)
            .expect("finished cursor");
    }
}
