//! Getting a bundle file's bytes: memory-mapped, or read into memory.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use memmap2::Mmap;

use crate::format::Bundle;

/// The bytes of a bundle file.
pub enum BundleBytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for BundleBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            BundleBytes::Mapped(m) => m,
            BundleBytes::Owned(v) => v,
        }
    }
}

/// Maps `path` read-only (or reads it, when `in_memory` or the file is empty:
/// a zero-length map is an error on Linux).
pub fn load(path: &Path, in_memory: bool) -> anyhow::Result<BundleBytes> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("{}: cannot stat", path.display()))?
        .len();
    if in_memory || len == 0 {
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        return Ok(BundleBytes::Owned(bytes));
    }
    // SAFETY: the map is read-only and sitepack only ever replaces bundles by
    // rename (build and publish write a temp file and rename it), so the
    // mapped inode is never modified while mapped. Truncating or overwriting a
    // served bundle in place is documented as unsupported (docs/SECURITY.md):
    // it is the one way to get SIGBUS, and `--no-mmap` avoids it entirely.
    let map =
        unsafe { Mmap::map(&file) }.with_context(|| format!("{}: cannot map", path.display()))?;
    Ok(BundleBytes::Mapped(map))
}

/// Loads and validates a bundle, naming the file in any error.
pub fn open(path: &Path) -> anyhow::Result<Bundle<BundleBytes>> {
    let bytes = load(path, false)?;
    Bundle::open(bytes).with_context(|| format!("{}", path.display()))
}
