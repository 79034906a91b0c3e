//! x86_64 support (work in progress in this commit).
