//! Helpers shared by the integration tests: trees on disk, running the CLI
//! under a timeout, and checking that a failed build left the old bundle
//! alone.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sitepack::build::{self, BuildOptions, BuildReport, Compression, WalkOptions};
use sitepack::config::Config;

pub const BIN: &str = env!("CARGO_BIN_EXE_sitepack");

/// The result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&self.stdout),
                self.stderr
            )
        })
    }
}

/// How to run the binary.
#[derive(Default, Clone)]
pub struct Opts {
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Run as uid/gid 65534 (used when the tests run as root, for the
    /// permission cases).
    pub as_nobody: bool,
    /// RLIMIT_AS for the child, in bytes.
    pub mem_limit: Option<u64>,
    /// RLIMIT_FSIZE for the child, in bytes, with SIGXFSZ ignored: a write
    /// past it fails with EFBIG, as on a full disk (bad-trees BT-57).
    pub file_size_limit: Option<u64>,
    pub timeout: Option<Duration>,
}

/// Runs `sitepack ARGS` with a timeout (default 20 s); panics if it hangs.
pub fn run_with(args: &[&std::ffi::OsStr], opts: &Opts) -> Run {
    let mut cmd = if opts.as_nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RAYON_NUM_THREADS");
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    // Never pick up a wrangler file from the crate directory.
    cmd.current_dir(opts.cwd.clone().unwrap_or_else(std::env::temp_dir));
    let (mem, fsize) = (opts.mem_limit, opts.file_size_limit);
    if mem.is_some() || fsize.is_some() {
        // SAFETY: setrlimit and signal are async-signal-safe; an ignored
        // disposition survives exec.
        unsafe {
            cmd.pre_exec(move || {
                let limits = [(libc::RLIMIT_AS, mem), (libc::RLIMIT_FSIZE, fsize)];
                for (resource, limit) in limits {
                    let Some(limit) = limit else { continue };
                    let r = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if fsize.is_some() {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                }
                Ok(())
            });
        }
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn sitepack");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(20));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sitepack {args:?} did not finish within {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    Run {
        status,
        stdout: t_out.join().unwrap(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        elapsed,
    }
}

pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let a: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_ref()).collect();
    run_with(&a, &Opts::default())
}

pub fn run_opts<S: AsRef<std::ffi::OsStr>>(args: &[S], opts: &Opts) -> Run {
    let a: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_ref()).collect();
    run_with(&a, opts)
}

/// `sitepack build ROOT -o OUT --compression fast --quiet EXTRA...`
pub fn cli_build(root: &Path, out: &Path, extra: &[&str]) -> Run {
    cli_build_opts(root, out, extra, &Opts::default())
}

pub fn cli_build_opts(root: &Path, out: &Path, extra: &[&str], opts: &Opts) -> Run {
    let mut args: Vec<OsString> = vec![
        "build".into(),
        root.into(),
        "-o".into(),
        out.into(),
        "--compression".into(),
        "fast".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    run_opts(&args, opts)
}

/// Writes files (relative paths, `/`-separated) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, data) in files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }
}

/// Every regular file under `root` (links not followed), keyed by its
/// relative path bytes.
pub fn read_tree(root: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
                out.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Library build with fast compression and default settings.
pub fn lib_build(root: &Path, out: &Path) -> Result<BuildReport, build::BuildError> {
    lib_build_with(root, out, &())
}

/// [`lib_build`], reporting to `progress`.
pub fn lib_build_with(
    root: &Path,
    out: &Path,
    progress: &dyn build::Progress,
) -> Result<BuildReport, build::BuildError> {
    lib_build_config(root, out, Config::default(), progress)
}

/// [`lib_build`] with `config`, reporting to `progress`.
pub fn lib_build_config(
    root: &Path,
    out: &Path,
    config: Config,
    progress: &dyn build::Progress,
) -> Result<BuildReport, build::BuildError> {
    let opts = BuildOptions {
        root: root.to_path_buf(),
        output: out.to_path_buf(),
        config,
        compression: Compression::Fast,
        walk: WalkOptions::default(),
    };
    build::build(&opts, progress)
}

/// Builds `root` into `out` with `config` and opens a router over it.
pub fn build_router(
    root: &Path,
    out: &Path,
    config: Config,
) -> (sitepack::route::Router<Vec<u8>>, BuildReport) {
    let report = lib_build_config(root, out, config, &()).unwrap();
    let bundle = sitepack::format::Bundle::open(fs::read(out).unwrap()).unwrap();
    (sitepack::route::Router::new(bundle).unwrap(), report)
}

/// A small valid bundle's bytes (built once per call from a scratch tree).
pub fn small_bundle_bytes() -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("site");
    write_tree(
        &root,
        &[
            (
                "index.html",
                b"<!doctype html><p>old bundle old bundle old bundle old bundle</p>",
            ),
            ("a.bin", b"\x00\x01\x02old"),
        ],
    );
    let out = t.path().join("old.pack");
    lib_build(&root, &out).unwrap();
    fs::read(&out).unwrap()
}

/// A bundle already at an output path, which a failed build must leave alone.
pub struct OldBundle {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub ino: u64,
}

impl OldBundle {
    pub fn place(path: &Path) -> OldBundle {
        let bytes = small_bundle_bytes();
        fs::write(path, &bytes).unwrap();
        OldBundle {
            path: path.to_path_buf(),
            bytes,
            ino: fs::metadata(path).unwrap().ino(),
        }
    }

    /// Same bytes, same inode, and no temp file next to it.
    pub fn assert_untouched(&self) {
        let m = fs::symlink_metadata(&self.path).expect("old bundle is gone");
        assert!(
            m.is_file(),
            "{} is no longer a regular file",
            self.path.display()
        );
        assert_eq!(m.ino(), self.ino, "old bundle was replaced (inode changed)");
        assert!(
            fs::read(&self.path).unwrap() == self.bytes,
            "old bundle bytes changed"
        );
        assert_no_temps(&self.path);
    }
}

/// No `.<name>.tmp-*` file next to `out`.
pub fn assert_no_temps(out: &Path) {
    let name = out.file_name().unwrap().to_str().unwrap();
    let prefix = format!(".{name}.tmp-");
    let dir = out.parent().unwrap();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name();
            assert!(
                !n.to_string_lossy().starts_with(&prefix),
                "temp file left behind: {}",
                e.path().display()
            );
        }
    }
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Deterministic pseudo-random bytes.
pub fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}
