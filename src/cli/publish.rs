//! `sitepack publish BUNDLE DEST`: hand a bundle to a running server safely.
//!
//! `cp new.pack live.pack` truncates and rewrites the very inode a server has
//! mapped: its next read of a vanished page is SIGBUS, and a reader between
//! the two can see a torn file. Publishing instead copies into a temp file
//! next to DEST, fsyncs it, verifies every byte of the copy, keeps the old
//! bundle as `DEST.previous` (a hard link to the old inode), renames the copy
//! over DEST and fsyncs the directory. A server watching DEST sees a new
//! inode and swaps; the old mapping stays valid until its last request ends.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::format::Bundle;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub bundle: PathBuf,
    pub dest: PathBuf,
}

fn previous_of(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".previous");
    dest.with_file_name(name)
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let dir = match args.dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if fs::symlink_metadata(&args.dest).is_ok_and(|m| m.file_type().is_symlink() || m.is_dir()) {
        bail!(
            "{}: is a symlink or a directory; publish replaces a regular file",
            args.dest.display()
        );
    }
    let name = args
        .dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("bundle");
    let mut tmp = tempfile::Builder::new()
        .prefix(&crate::format::write::temp_prefix(name))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&dir)
        .with_context(|| format!("{}: cannot create a temp file", dir.display()))?;
    let mut src = File::open(&args.bundle)
        .with_context(|| format!("{}: cannot open", args.bundle.display()))?;
    io::copy(&mut src, tmp.as_file_mut())
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write", tmp.path().display()))?;

    // Verify the copy, not the source: this is the file that will be served.
    let bytes = fs::read(tmp.path())
        .with_context(|| format!("{}: cannot re-read", tmp.path().display()))?;
    let bundle =
        Bundle::open(bytes).with_context(|| format!("{}: refused", args.bundle.display()))?;
    bundle
        .verify()
        .with_context(|| format!("{}: refused", args.bundle.display()))?;

    if args.dest.exists() {
        let prev = previous_of(&args.dest);
        let _ = fs::remove_file(&prev);
        fs::hard_link(&args.dest, &prev)
            .with_context(|| format!("{}: cannot keep the previous bundle", prev.display()))?;
    }
    tmp.persist(&args.dest)
        .map_err(|e| e.error)
        .with_context(|| format!("{}: cannot rename into place", args.dest.display()))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: cannot fsync", dir.display()))?;
    eprintln!(
        "published {} as {} ({} assets)",
        args.bundle.display(),
        args.dest.display(),
        bundle.asset_count()
    );
    Ok(0)
}
