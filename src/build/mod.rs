//! The build pipeline: walk → encode (read, hash, compress in parallel,
//! streamed to the output in blob order) → routes → index, published
//! atomically.

pub mod encode;
pub mod routes;
pub mod stream;
pub mod walk;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::format::layout::{action, encoding, NO_ASSET};
pub use crate::format::write::temp_prefix;
use crate::format::write::{self, AssetSpec, BlobSpec, BundleSpec, BundleWriter, RouteSpec};
pub use encode::Compression;
pub use walk::WalkOptions;

/// A problem that makes the build fail, naming its path and the rule broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub rule: String,
}

/// A problem that does not stop the build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub file: String,
    /// 1-based line for rule files; `None` for tree warnings.
    pub line: Option<usize>,
    pub message: String,
}

impl Warning {
    pub fn path(key: &str, message: &str) -> Self {
        Warning {
            file: key.to_string(),
            line: None,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}", list(.0))]
    Tree(Vec<Problem>),
    // The cause is in the message, not chained as `source`: `{:#}` (anyhow)
    // would print it twice.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{0}")]
    Input(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Publish(#[from] write::PublishError),
}

fn list(problems: &[Problem]) -> String {
    let mut s = format!(
        "the asset tree has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str(&format!("\n  {}: {}", p.path, p.rule));
    }
    s
}

impl BuildError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        BuildError::Io {
            path: escape_path(path.as_os_str()),
            error: source,
        }
    }
}

/// A path made safe for terminals and CI logs: control bytes as `\xNN`, and
/// non-UTF-8 as lossy text followed by its hex bytes.
pub fn escape_path(p: &OsStr) -> String {
    let bytes = p.as_bytes();
    let mut out = String::new();
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            for c in s.chars() {
                if (c as u32) < 0x20 || c as u32 == 0x7f {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push(c);
                }
            }
        }
        Err(_) => {
            let lossy = String::from_utf8_lossy(bytes);
            out = escape_path(OsStr::new(lossy.as_ref()));
            out.push_str(" (bytes ");
            out.push_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
            out.push(')');
        }
    }
    out
}

/// `(encoding code, bytes)` of each stored variant of one content.
type Variants = Vec<(u8, Vec<u8>)>;

/// A blob's variants and the BLAKE3 of each, in the same order.
type HashedVariants = (Variants, Vec<[u8; 32]>);

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub root: PathBuf,
    pub output: PathBuf,
    pub config: Config,
    pub compression: Compression,
    pub walk: WalkOptions,
}

/// Bytes and count of one encoding.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct EncodingStats {
    pub count: u64,
    pub bytes: u64,
}

/// What a build did: the `build --json` document.
#[derive(Clone, Debug, Serialize)]
pub struct BuildReport {
    pub format: u32,
    pub bundle: String,
    pub files: u64,
    pub blobs: u64,
    pub routes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub encodings: std::collections::BTreeMap<String, EncodingStats>,
    /// What `--reuse` took from the old bundle (zeros without it).
    pub reused: Reused,
    pub warnings: Vec<Warning>,
}

/// Progress callbacks, so the CLI can draw a bar without the library knowing.
pub trait Progress: Sync {
    fn start(&self, _files: u64, _bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

impl Progress for () {}

/// The whole pipeline. On error nothing is written at `opts.output`.
pub fn build(opts: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport, BuildError> {
    build_reusing(opts, None, progress)
}

/// [`build`], taking the precompressed variants of every content that the
/// bundle at `reuse` already holds under the same compression policy
/// (`--reuse`). The output is byte-identical to a cold build. A `reuse`
/// bundle that is missing, unreadable, corrupt or made under another policy
/// only costs the reuse: a warning says why, and the build runs cold.
pub fn build_reusing(
    opts: &BuildOptions,
    reuse: Option<&Path>,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let out_dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    crate::rules::worker_first::WorkerFirst::from_config(&opts.config.run_worker_first)
        .map_err(|e| BuildError::Config(format!("run_worker_first: {e}")))?;
    write::preflight(&opts.output, &out_dir)?;
    let mut walk_opts = opts.walk.clone();
    walk_opts.output = Some(opts.output.clone());
    let mut set = walk::walk(&opts.root, &walk_opts)?;
    rule_warnings(&mut set, opts.config.html_handling);
    alias_warnings(&mut set, opts.config.html_handling);
    let old = reuse.and_then(|path| match Reuse::open(path, opts.compression) {
        Ok(r) => Some(r),
        Err(why) => {
            set.warnings.push(Warning::path(
                &escape_path(path.as_os_str()),
                &format!("--reuse: {why}; building without it"),
            ));
            None
        }
    });
    let (spec, encoded) = write::publish_with(
        &opts.output,
        |file, tmp| {
            let io = |e| BuildError::io(tmp, e);
            let mut bw = BundleWriter::new(file).map_err(io)?;
            let enc = stream::encode_files(
                &set,
                opts.compression,
                old.as_ref(),
                progress,
                &mut bw,
                tmp,
                stream::MIN_IN_FLIGHT,
            )?;
            let spec = index_spec(&set, &opts.config, opts.compression, &enc);
            bw.finish(&spec).map_err(io)?;
            Ok::<_, BuildError>((spec, enc))
        },
        check_written,
    )?;
    progress.finish();
    Ok(report(&spec, &encoded, &opts.output, set.warnings))
}

/// The variants of an older bundle, by content hash, for `--reuse`.
pub struct Reuse {
    bundle: crate::format::Bundle<crate::bundle_file::BundleBytes>,
    /// Content hash → blob, for blobs that the old build compressed (some
    /// asset of theirs had a compressible type).
    blobs: HashMap<[u8; 32], u32>,
    /// Content hash → (extension, ETag hash) of the old assets: Cloudflare's
    /// ETag is a function of the bytes and the extension only, and costs a
    /// base64 pass and a hash of 4/3 the content to make again.
    etags: HashMap<[u8; 32], Vec<(String, [u8; 16])>>,
}

impl Reuse {
    /// Opens `path` for reuse by a build at `level`, or says why not.
    pub fn open(path: &Path, level: Compression) -> Result<Reuse, String> {
        let bundle = crate::bundle_file::open(path).map_err(|e| e.to_string())?;
        let policy = bundle.compression_policy();
        if policy != level.policy_id() {
            return Err(format!(
                "its variants were made under compression policy {policy:#x}, this build uses {:#x}",
                level.policy_id()
            ));
        }
        let mut blobs = HashMap::new();
        let mut etags: HashMap<[u8; 32], Vec<(String, [u8; 16])>> = HashMap::new();
        for a in bundle.assets() {
            let Some(h) = bundle.blob_hash(a.blob) else {
                continue;
            };
            if encode::precompressible(a.path, a.content_type) {
                blobs.insert(*h, a.blob);
            }
            let ext = encode::extension(a.path);
            let known = etags.entry(*h).or_default();
            if !known.iter().any(|(e, _)| e == ext) {
                known.push((ext.to_string(), a.etag));
            }
        }
        Ok(Reuse {
            bundle,
            blobs,
            etags,
        })
    }

    /// The ETag hash the old bundle gave the content hashed `hash` under
    /// `key`'s extension, if it had an asset of both.
    fn etag(&self, hash: &[u8; 32], key: &str) -> Option<[u8; 16]> {
        let ext = encode::extension(key);
        self.etags
            .get(hash)?
            .iter()
            .find(|(e, _)| e == ext)
            .map(|(_, etag)| *etag)
    }

    /// The stored variants of the content hashed `hash`, if the old build
    /// compressed it and every variant's bytes still match its hash.
    fn variants(&self, hash: &[u8; 32]) -> Option<HashedVariants> {
        let blob = *self.blobs.get(hash)?;
        let mut stored: Vec<_> = self.bundle.variants(blob).collect();
        stored.sort_by_key(|v| v.encoding);
        let (mut variants, mut hashes) = (Vec::new(), Vec::new());
        for v in stored {
            if blake3::hash(v.bytes).as_bytes() != v.hash {
                return None;
            }
            variants.push((v.encoding?, v.bytes.to_vec()));
            hashes.push(*v.hash);
        }
        Some((variants, hashes))
    }
}

/// Work `--reuse` saved: blobs whose variants came from the old bundle, and
/// their identity bytes (what was not compressed again).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Reused {
    pub blobs: u64,
    pub bytes_in: u64,
}

/// Parses the rule files once at build so every rejected line is reported
/// (file, 1-based line, reason); the lines are ignored, the build goes on.
fn rule_warnings(set: &mut walk::FileSet, html: crate::config::HtmlHandling) {
    use crate::rules::{headers, redirects};
    let mut found = Vec::new();
    if let Some(text) = &set.headers_text {
        found.extend(headers::parse(text).1.into_iter().map(|w| ("_headers", w)));
    }
    if let Some(text) = &set.redirects_text {
        found.extend(
            redirects::parse(text, html)
                .1
                .into_iter()
                .map(|w| ("_redirects", w)),
        );
    }
    for (file, w) in found {
        // A rule-count limit is about the file, not one line (spec §5.1, §6.1).
        let line = (w.kind == crate::rules::pattern::WarningKind::Line).then_some(w.line);
        set.warnings.push(Warning {
            file: file.to_string(),
            line,
            message: w.message,
        });
    }
}

/// bad-trees BT-29/30: files that html_handling makes answer the same URL
/// (`about`, `about.html`, `about/index.html`). The build goes on with the
/// spec's precedence (docs/ROUTING.md); the warning names every file
/// involved, once per URL, in key order.
fn alias_warnings(set: &mut walk::FileSet, html: crate::config::HtmlHandling) {
    if html == crate::config::HtmlHandling::None {
        return;
    }
    let keys: std::collections::HashSet<&str> = set.files.iter().map(|f| f.key.as_str()).collect();
    let stems: std::collections::BTreeSet<&str> = set
        .files
        .iter()
        .filter_map(|f| {
            f.key
                .strip_suffix("/index.html")
                .or_else(|| f.key.strip_suffix(".html"))
        })
        .filter(|stem| !stem.is_empty() && !stem.ends_with('/'))
        .collect();
    let mut found = Vec::new();
    for stem in stems {
        let members: Vec<String> = [
            stem.to_string(),
            format!("{stem}.html"),
            format!("{stem}/index.html"),
        ]
        .into_iter()
        .filter(|k| keys.contains(k.as_str()))
        .collect();
        if members.len() > 1 {
            found.push(Warning::path(
                &members[0],
                &format!(
                    "{} answer the same URLs ({stem}, {stem}/) under html_handling {}: \
                     each is served by one of them, by Cloudflare's precedence \
                     (docs/ROUTING.md, \"Alias collisions\"; `sitepack resolve` shows which)",
                    members.join(", "),
                    html.as_str()
                ),
            ));
        }
    }
    set.warnings.extend(found);
}

/// Re-opens the written temp file and fully verifies it before it may replace
/// the previous bundle.
fn check_written(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot re-read: {e}"))?;
    if file
        .metadata()
        .map_err(|e| format!("cannot re-read: {e}"))?
        .len()
        == 0
    {
        return Err("written bundle is empty".into());
    }
    // SAFETY: the temp file was created by this process with a random name
    // and is not yet visible under the output path; nothing else writes it
    // while this read-only map is alive. Mapping instead of reading keeps
    // the build's peak memory from doubling at the end.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map: {e}"))?;
    let b = crate::format::bundle::Bundle::open(&map[..]).map_err(|e| e.to_string())?;
    b.verify_stored().map_err(|e| e.to_string())
}

/// Reads, hashes and compresses the file set into an in-memory bundle spec
/// (the pipeline of [`stream`], its blobs kept instead of written).
pub fn assemble(
    set: &walk::FileSet,
    config: &Config,
    level: Compression,
    progress: &dyn Progress,
) -> Result<BundleSpec, BuildError> {
    assemble_reusing(set, config, level, None, progress).map(|(spec, _)| spec)
}

/// [`assemble`], taking variants from `reuse` where it has them.
pub fn assemble_reusing(
    set: &walk::FileSet,
    config: &Config,
    level: Compression,
    reuse: Option<&Reuse>,
    progress: &dyn Progress,
) -> Result<(BundleSpec, Reused), BuildError> {
    let mut blobs: Vec<BlobSpec> = Vec::new();
    let enc = stream::encode_files(
        set,
        level,
        reuse,
        progress,
        &mut blobs,
        Path::new("memory"),
        stream::MIN_IN_FLIGHT,
    )?;
    let mut spec = index_spec(set, config, level, &enc);
    spec.blobs = blobs;
    Ok((spec, enc.reused))
}

/// Everything of the bundle but its blobs: assets in key order, routes and
/// rule texts.
fn index_spec(
    set: &walk::FileSet,
    config: &Config,
    level: Compression,
    enc: &stream::Encoded,
) -> BundleSpec {
    let assets: Vec<AssetSpec> = set
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| AssetSpec {
            key: f.key.clone(),
            content_type: encode::content_type(&f.key),
            blob: enc.blob_of_file[i],
            etag: enc.etag_of_file[i],
        })
        .collect();
    let routes = compile_routes(&assets, config);
    BundleSpec {
        config: config.clone(),
        compression: level.policy_id(),
        assets,
        blobs: Vec::new(),
        routes,
        headers_text: set.headers_text.clone(),
        redirects_text: set.redirects_text.clone(),
    }
}

/// The route table: every asset's own key, plus every request path that
/// html_handling maps to an asset or a redirect (precomputed by
/// `routes::compile` with the real content hashes).
pub fn compile_routes(assets: &[AssetSpec], config: &Config) -> Vec<RouteSpec> {
    use rayon::prelude::*;
    let keys: Vec<(String, [u8; 16])> = assets.iter().map(|a| (a.key.clone(), a.etag)).collect();
    // Both lists are sorted by path, so they merge in one pass; a path of
    // both is the html_handling route with the asset's own index as
    // `exact_asset`. A large site has a few hundred thousand of them: the
    // records are made on the rayon pool.
    let mut own: Vec<(&str, u32)> = assets
        .iter()
        .enumerate()
        .map(|(i, a)| (a.key.as_str(), i as u32))
        .collect();
    own.sort_by(|a, b| a.0.cmp(b.0));
    // The last asset of a key wins, as a map built from the list would keep.
    own.reverse();
    own.dedup_by(|a, b| a.0 == b.0);
    own.reverse();
    let html: Vec<RouteSpec> =
        routes::compile(&keys, config.html_handling, config.not_found_handling)
            .into_par_iter()
            .map(|(path, target)| match target {
                routes::RouteTarget::Serve(i) => RouteSpec {
                    path,
                    action: action::SERVE,
                    status: 200,
                    asset: i as u32,
                    location: String::new(),
                    exact_asset: NO_ASSET,
                },
                routes::RouteTarget::Redirect(to) => {
                    let mut location = String::new();
                    crate::route::canonical::write_location(&to, "", &mut location);
                    RouteSpec {
                        path,
                        action: action::REDIRECT,
                        status: 307,
                        asset: NO_ASSET,
                        location,
                        exact_asset: NO_ASSET,
                    }
                }
            })
            .collect();
    let serve_own = |(key, i): (&str, u32)| RouteSpec {
        path: key.to_string(),
        action: action::SERVE,
        status: 200,
        asset: i,
        location: String::new(),
        exact_asset: i,
    };
    let mut table = Vec::with_capacity(own.len() + html.len());
    let mut own = own.into_iter().peekable();
    for mut r in html {
        while let Some(&(key, i)) = own.peek() {
            match key.cmp(r.path.as_str()) {
                std::cmp::Ordering::Less => table.push(serve_own((key, i))),
                std::cmp::Ordering::Equal => r.exact_asset = i,
                std::cmp::Ordering::Greater => break,
            }
            own.next();
        }
        table.push(r);
    }
    table.extend(own.map(serve_own));
    table
}

fn report(
    spec: &BundleSpec,
    enc: &stream::Encoded,
    out: &Path,
    warnings: Vec<Warning>,
) -> BuildReport {
    let mut encodings = std::collections::BTreeMap::new();
    for code in [encoding::BR, encoding::GZIP, encoding::ZSTD] {
        let (count, bytes) = enc.variants.get(&code).copied().unwrap_or_default();
        encodings.insert(
            encoding::name(code).unwrap_or("?").to_string(),
            EncodingStats { count, bytes },
        );
    }
    let bytes_in = spec
        .assets
        .iter()
        .map(|a| enc.blob_lens[a.blob as usize])
        .sum();
    BuildReport {
        format: 1,
        bundle: out.display().to_string(),
        files: spec.assets.len() as u64,
        blobs: enc.blob_lens.len() as u64,
        routes: spec.routes.len() as u64,
        bytes_in,
        bytes_out: enc.bytes_out,
        encodings,
        reused: enc.reused.clone(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HtmlHandling;

    /// The merged table holds exactly: one route per asset key (its own
    /// index as `exact_asset`), and every route `routes::compile` makes,
    /// with its target; sorted, each path once.
    #[test]
    fn compile_routes_merges_assets_and_html_routes() {
        let keys = [
            "/about.html",
            "/app.js",
            "/blog/index.html",
            "/blog/post.html",
            "/index.html",
            "/z/index.html",
        ];
        let assets: Vec<AssetSpec> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| AssetSpec {
                key: k.to_string(),
                content_type: None,
                blob: i as u32,
                etag: [i as u8; 16],
            })
            .collect();
        for mode in [
            HtmlHandling::AutoTrailingSlash,
            HtmlHandling::ForceTrailingSlash,
            HtmlHandling::DropTrailingSlash,
            HtmlHandling::None,
        ] {
            let config = Config {
                html_handling: mode,
                ..Config::default()
            };
            let table = compile_routes(&assets, &config);
            assert!(table.windows(2).all(|w| w[0].path < w[1].path), "{mode:?}");
            let with_hashes: Vec<(String, [u8; 16])> =
                assets.iter().map(|a| (a.key.clone(), a.etag)).collect();
            let html = routes::compile(&with_hashes, mode, config.not_found_handling);
            let mut expected = keys.len() + html.len();
            for (path, target) in &html {
                let r = table.iter().find(|r| &r.path == path).unwrap();
                match target {
                    routes::RouteTarget::Serve(i) => {
                        assert_eq!(
                            (r.action, r.status, r.asset),
                            (action::SERVE, 200, *i as u32)
                        );
                    }
                    routes::RouteTarget::Redirect(_) => {
                        assert_eq!(
                            (r.action, r.status, r.asset),
                            (action::REDIRECT, 307, NO_ASSET)
                        );
                        assert!(!r.location.is_empty());
                    }
                }
                if keys.contains(&path.as_str()) {
                    expected -= 1;
                }
            }
            for (i, k) in keys.iter().enumerate() {
                let r = table.iter().find(|r| r.path == *k).unwrap();
                assert_eq!(r.exact_asset, i as u32, "{mode:?} {k}");
                if !html.iter().any(|(p, _)| p == k) {
                    assert_eq!((r.action, r.asset), (action::SERVE, i as u32), "{k}");
                }
            }
            assert_eq!(table.len(), expected, "{mode:?}");
        }
    }
}
