//! `sitepack serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::build::RoutingArgs;
use crate::build::{self, BuildOptions, Compression, WalkOptions};
use crate::config::Config;
use crate::serve::{self, AccessLog, Limits, State, Upstream, Worker};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A bundle file, or an asset directory (built first, cached by content).
    pub source: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Proxy requests routed to the Worker to this HTTP origin.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Read the bundle into memory instead of mapping it (network file
    /// systems, untrusted bundles).
    #[arg(long)]
    pub no_mmap: bool,
    #[arg(long, value_enum)]
    pub access_log: Option<AccessLog>,
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Threads serving connections, each with its own event loop (default:
    /// the number of CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Routing settings, used when SOURCE is a directory.
    #[command(flatten)]
    pub routing: RoutingArgs,
}

/// Builds DIR into a cache file named after everything that affects the
/// bundle (the config, sitepack's version and compression policy, and every
/// file's path, size, inode and mtime), so an unchanged tree is served at
/// once and a changed one, or one last built under another policy, is
/// rebuilt.
fn cached_build(dir: &Path, config: &Config) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let set = build::walk::walk(dir, &WalkOptions::default())?;
    let mut h = blake3::Hasher::new();
    let canonical = dir.canonicalize()?;
    h.update(canonical.as_os_str().as_encoded_bytes());
    h.update(
        format!(
            "{config:?}{}{:#x}",
            env!("CARGO_PKG_VERSION"),
            Compression::Default.policy_id()
        )
        .as_bytes(),
    );
    h.update(set.headers_text.as_deref().unwrap_or("").as_bytes());
    h.update(set.redirects_text.as_deref().unwrap_or("").as_bytes());
    for f in &set.files {
        let m = std::fs::metadata(&f.path)?;
        h.update(
            format!(
                "{}\0{}\0{}\0{}\0{}\n",
                f.key,
                f.len,
                f.ino,
                m.mtime(),
                m.mtime_nsec()
            )
            .as_bytes(),
        );
    }
    let cache = std::env::temp_dir().join("sitepack-cache");
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("{}: cannot create", cache.display()))?;
    let out = cache.join(format!("{}.pack", &h.finalize().to_hex()[..24]));
    // The last bundle built for this directory: its variants are reused, so
    // an edit recompresses only the files it changed.
    let dir_key = blake3::hash(canonical.as_os_str().as_encoded_bytes());
    let last_file = cache.join(format!("{}.last", &dir_key.to_hex()[..24]));
    let last = std::fs::read_to_string(&last_file)
        .ok()
        .map(|p| PathBuf::from(p.trim_end()))
        .filter(|p| p.is_file() && p != &out);
    if out.is_file() {
        eprintln!(
            "serve: {} unchanged, using {}",
            dir.display(),
            out.display()
        );
        return Ok(out);
    }
    eprintln!("serve: building {} into {}", dir.display(), out.display());
    let opts = BuildOptions {
        root: dir.to_path_buf(),
        output: out.clone(),
        config: config.clone(),
        compression: Compression::Default,
        walk: WalkOptions::default(),
    };
    let report = build::build_reusing(&opts, last.as_deref(), &())?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if last.is_some() {
        eprintln!(
            "serve: reused the variants of {} unchanged contents",
            report.reused.blobs
        );
    }
    // Only the newest build per directory is kept (a server still mapping
    // the old file keeps its pages: unlinking does not unmap).
    if let Some(old) = &last {
        let _ = std::fs::remove_file(old);
    }
    let _ = std::fs::write(&last_file, out.as_os_str().as_encoded_bytes());
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let bundle_path = if args.source.is_dir() {
        let (dir, config) = args.routing.resolve(Some(args.source.clone()))?;
        cached_build(&dir, &config).with_context(|| format!("build of {} failed", dir.display()))?
    } else {
        args.source.clone()
    };
    let worker: Option<Arc<dyn Worker>> = match &args.upstream {
        Some(u) => Some(Arc::new(Upstream::new(u).map_err(anyhow::Error::msg)?)),
        None => None,
    };
    let state = State::from_file(&bundle_path, args.no_mmap, worker, args.access_log)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // This thread's runtime only watches signals and the bundle file; the
    // connections run on the worker threads' own runtimes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let workers = rt.block_on(async move {
        let hup = serve::reload::hangup_signal();
        // Installed before the ready line, so a SIGTERM right after it is
        // already a graceful stop.
        let shutdown = shutdown_signal()?;
        let listener = std::net::TcpListener::bind(args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        let limits = Limits {
            max_connections: args.max_connections,
            ..Limits::default()
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = serve::spawn_workers(listener, threads, state.clone(), limits, stopped)
            .context("cannot start the server threads")?;
        eprintln!("serve: {} on http://{addr}", bundle_path.display());
        tokio::spawn(serve::reload::watch(state, Duration::from_millis(500), hup));
        shutdown.await;
        let _ = stop.send(true);
        anyhow::Ok(workers)
    })?;
    for w in workers {
        match w.join() {
            Ok(r) => r.context("server thread failed")?,
            Err(_) => anyhow::bail!("a server thread panicked"),
        }
    }
    eprintln!("serve: stopped");
    Ok(0)
}

/// Resolves on the first SIGINT or SIGTERM; both handlers are registered
/// when this returns.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
