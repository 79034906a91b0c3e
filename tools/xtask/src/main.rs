//! crashkit's task runner (work in progress in this commit).
fn main() {}
