//! What the facade's source-reading tests share: the repository's root and
//! reading a file of it.

use std::path::{Path, PathBuf};

/// The repository's root (the facade is one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the facade is one level below the repository root")
        .to_path_buf()
}

/// The text of `path`, or a panic naming it.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
