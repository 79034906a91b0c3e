//! The four notifier lists.
//!
//! Their codes are stored in the crash record, so the enum is defined in
//! the record's format crate (`crashkit-record-format`, pure data the
//! offline tool links) and re-exported here: one contract, written once.

pub use crashkit_record_format::NotifierList;
