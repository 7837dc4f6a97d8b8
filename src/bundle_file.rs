//! Getting a bundle file's bytes: memory-mapped, or read into memory. The
//! one place that maps a file (`format::Bundle` only reads given bytes); the
//! server and the commands open bundles through it.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::format::{Bundle, FormatError};

/// Why a bundle file could not be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{}: cannot {what}: {error}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Format { path: PathBuf, error: FormatError },
}

impl OpenError {
    fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> OpenError + 'a {
        move |error| OpenError::Io {
            path: path.to_path_buf(),
            what,
            error,
        }
    }

    /// A format error (open or verify) about the bundle at `path`.
    pub fn format(path: &Path, error: FormatError) -> OpenError {
        OpenError::Format {
            path: path.to_path_buf(),
            error,
        }
    }
}

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
pub fn load(path: &Path, in_memory: bool) -> Result<BundleBytes, OpenError> {
    let file = File::open(path).map_err(OpenError::io(path, "open"))?;
    let len = file.metadata().map_err(OpenError::io(path, "stat"))?.len();
    if in_memory || len == 0 {
        let bytes = std::fs::read(path).map_err(OpenError::io(path, "read"))?;
        return Ok(BundleBytes::Owned(bytes));
    }
    // SAFETY: the map is read-only and sitepack only ever replaces bundles by
    // rename (build and publish write a temp file and rename it), so the
    // mapped inode is never modified while mapped. Truncating or overwriting a
    // served bundle in place is documented as unsupported (docs/SECURITY.md):
    // it is the one way to get SIGBUS, and `--no-mmap` avoids it entirely.
    let map = unsafe { Mmap::map(&file) }.map_err(OpenError::io(path, "map"))?;
    Ok(BundleBytes::Mapped(map))
}

/// Maps and opens (validates the index of) a bundle, naming the file in any
/// error.
pub fn open(path: &Path) -> Result<Bundle<BundleBytes>, OpenError> {
    let bytes = load(path, false)?;
    Bundle::open(bytes).map_err(|e| OpenError::format(path, e))
}
