//! Getting a bundle file's bytes: memory-mapped, or read into memory. The
//! one place that maps a file (`format::Bundle` only reads given bytes); the
//! server and the commands open bundles through it.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;
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

/// The bytes of a bundle file: the map (or the read buffer) behind a
/// reference-counted [`Bytes`], so a response body is a slice of it that
/// costs a reference count, not an allocation, and keeps the map alive
/// after a hot swap for as long as the body is in flight.
pub struct BundleBytes(Bytes);

impl BundleBytes {
    fn mapped(map: Mmap) -> BundleBytes {
        BundleBytes(Bytes::from_owner(map))
    }

    fn owned(bytes: Vec<u8>) -> BundleBytes {
        BundleBytes(Bytes::from(bytes))
    }

    /// `part` as a shared slice of the bundle, without copying; `None` when
    /// `part` does not lie inside these bytes.
    pub fn share(&self, part: &[u8]) -> Option<Bytes> {
        let whole = self.0.as_ptr_range();
        let range = part.as_ptr_range();
        let inside = whole.start <= range.start && range.end <= whole.end;
        // `slice_ref` panics outside the buffer; checked first.
        inside.then(|| self.0.slice_ref(part))
    }
}

impl AsRef<[u8]> for BundleBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Maps `path` read-only (or reads it, when `in_memory` or the file is empty:
/// a zero-length map is an error on Linux).
pub fn load(path: &Path, in_memory: bool) -> Result<BundleBytes, OpenError> {
    let file = File::open(path).map_err(OpenError::io(path, "open"))?;
    let len = file.metadata().map_err(OpenError::io(path, "stat"))?.len();
    if in_memory || len == 0 {
        let bytes = std::fs::read(path).map_err(OpenError::io(path, "read"))?;
        return Ok(BundleBytes::owned(bytes));
    }
    // SAFETY: the map is read-only and sitepack only ever replaces bundles by
    // rename (build and publish write a temp file and rename it), so the
    // mapped inode is never modified while mapped. Truncating or overwriting a
    // served bundle in place is documented as unsupported (docs/SECURITY.md):
    // it is the one way to get SIGBUS, and `--no-mmap` avoids it entirely.
    let map = unsafe { Mmap::map(&file) }.map_err(OpenError::io(path, "map"))?;
    Ok(BundleBytes::mapped(map))
}

/// Maps and opens (validates the index of) a bundle, naming the file in any
/// error.
pub fn open(path: &Path) -> Result<Bundle<BundleBytes>, OpenError> {
    let bytes = load(path, false)?;
    Bundle::open(bytes).map_err(|e| OpenError::format(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_part_is_the_same_memory_and_an_outside_one_is_refused() {
        let bytes = BundleBytes::owned(b"header|blob bytes|index".to_vec());
        let whole = bytes.as_ref();
        let part = &whole[7..17];
        let shared = bytes.share(part).expect("inside the bundle");
        assert_eq!(&shared[..], b"blob bytes");
        assert_eq!(shared.as_ptr(), part.as_ptr(), "a slice, not a copy");
        // The slice outlives the handle it was cut from (a hot swap drops
        // the old site while its bodies are still being written).
        drop(bytes);
        assert_eq!(&shared[..], b"blob bytes");

        let bytes = BundleBytes::owned(b"abc".to_vec());
        let elsewhere = b"abc".to_vec();
        assert!(bytes.share(&elsewhere).is_none());
        let whole = bytes.as_ref();
        assert_eq!(&bytes.share(whole).unwrap()[..], b"abc");
    }
}
