//! Hot swap: a new bundle at the served path (renamed over it, as `build`
//! and `publish` do) or a SIGHUP swaps in the new bundle after full
//! validation. In-flight requests keep their `Arc<Site>` and finish on the
//! old mapping; a bad bundle is refused with a log line and the old one
//! keeps serving.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Site, State};

/// What identifies one version of a file: a rename gives a new inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    pub fn of(path: &Path) -> std::io::Result<FileId> {
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }
}

/// Loads the bundle at the state's path and swaps it in if it is valid.
/// Returns whether a swap happened.
pub async fn reload(state: &Arc<State>) -> bool {
    let Some(path) = state.path.clone() else {
        return false;
    };
    let in_memory = state.in_memory;
    let loaded = tokio::task::spawn_blocking(move || Site::load(&path, in_memory)).await;
    match loaded {
        Ok(Ok(site)) => {
            state.site.store(Arc::new(site));
            eprintln!("serve: swapped in the new bundle");
            true
        }
        Ok(Err(e)) => {
            eprintln!("serve: new bundle refused, still serving the previous one: {e:#}");
            false
        }
        Err(e) => {
            eprintln!("serve: reload task failed: {e}");
            false
        }
    }
}

/// The SIGHUP stream (replacing the default action, which ends the process).
pub fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

/// Polls the bundle path and reloads on change or SIGHUP, until the process
/// ends. Polling (every `interval`) needs no platform watcher and sees
/// renames on any file system.
///
/// `hup` is the SIGHUP stream; create it (`hangup_signal`) before telling
/// anyone the server is ready, or an early SIGHUP kills the process.
pub async fn watch(
    state: Arc<State>,
    interval: Duration,
    mut hup: Option<tokio::signal::unix::Signal>,
) {
    let Some(path) = state.path.clone() else {
        return;
    };
    let mut refused: Option<FileId> = None;
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => true,
        };
        let now = FileId::of(&path).ok();
        let current = state.site.load().source;
        let changed = now.is_some() && now != current && now != refused;
        if forced || changed {
            if reload(&state).await {
                refused = None;
            } else {
                refused = now;
            }
        }
    }
}
