//! The file set: which files of the asset directory become assets.
//!
//! A sorted, iterative walk (`walkdir`, never following links) classifies
//! every entry by `lstat` before anything is opened, so a FIFO cannot hang the
//! build and a link cannot smuggle bytes from outside the root. Every problem
//! found in one pass is reported together (capped), each naming its path.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use unicode_normalization::UnicodeNormalization;

use super::{escape_path, BuildError, Problem, Warning};

/// Cloudflare's per-file limit (spec §7.5): larger is refused, equal is fine.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 25 * 1024 * 1024;
/// Cloudflare's global asset ceiling (spec §7.5).
pub const DEFAULT_MAX_FILES: usize = 100_000;
/// Keys longer than this are refused (Cloudflare's URL limit, bad-trees BT-25).
pub const MAX_KEY_LEN: usize = 16 * 1024;
/// Keys longer than this get a warning.
pub const WARN_KEY_LEN: usize = 2 * 1024;
/// `_headers`, `_redirects` and `.assetsignore` larger than this are refused
/// before they are read: Cloudflare's own limits keep real ones far below.
pub const MAX_RULE_FILE: u64 = 4 * 1024 * 1024;
/// At most this many problems are listed in one error.
pub const MAX_PROBLEMS: usize = 100;

/// Patterns excluded before `.assetsignore` is applied. Its negations
/// (`!_headers`) can bring any of them back, as on Cloudflare (spec §7.2).
const RULE_FILES: &[&str] = &["/_headers", "/_redirects", "/.assetsignore", "/_worker.js"];
/// Version-control and secret droppings sitepack leaves out on purpose, with a
/// warning (spec §7.2, security.md row 27).
const DROPPINGS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".env",
    ".env.*",
    ".DS_Store",
    "Thumbs.db",
];

#[derive(Clone, Debug)]
pub struct WalkOptions {
    pub max_files: usize,
    pub max_file_size: u64,
    /// Follow symlinks to regular files whose target stays inside the root.
    pub follow_symlinks: bool,
    /// A file the walk must never take: the bundle being written, when the
    /// output sits inside the tree (bad-trees BT-55).
    pub output: Option<PathBuf>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_files: DEFAULT_MAX_FILES,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            follow_symlinks: false,
            output: None,
        }
    }
}

/// One file that becomes an asset.
#[derive(Clone, Debug)]
pub struct WalkedFile {
    /// Manifest key: `/` + relative path with `/` separators.
    pub key: String,
    /// The path to open (the link target when a followed link).
    pub path: PathBuf,
    pub len: u64,
    pub dev: u64,
    pub ino: u64,
    /// Modification time (seconds, nanoseconds) at the walk: a rewrite of
    /// the same size before the read changes only this (bad-trees BT-52).
    pub mtime: (i64, i64),
}

/// The result of the walk.
#[derive(Debug, Default)]
pub struct FileSet {
    /// Sorted by key (byte order).
    pub files: Vec<WalkedFile>,
    /// Text of the root `_headers`, if any.
    pub headers_text: Option<String>,
    /// Text of the root `_redirects`, if any.
    pub redirects_text: Option<String>,
    pub warnings: Vec<Warning>,
}

pub fn walk(root: &Path, opts: &WalkOptions) -> Result<FileSet, BuildError> {
    let meta = fs::metadata(root).map_err(|e| BuildError::io(root, e))?;
    if !meta.is_dir() {
        return Err(BuildError::Input(format!(
            "{} is not a directory",
            escape_path(root.as_os_str())
        )));
    }
    let canon_root = root.canonicalize().map_err(|e| BuildError::io(root, e))?;
    let ignore = ignore_matcher(root)?;
    let output = opts.output.as_ref().and_then(|p| output_identity(p));

    let mut set = FileSet::default();
    let mut problems: Vec<Problem> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    let push = |problems: &mut Vec<Problem>, path: String, rule: String| {
        problems.push(Problem { path, rule });
    };

    let mut it = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = it.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = err
                    .path()
                    .map(|p| escape_path(p.as_os_str()))
                    .unwrap_or_else(|| escape_path(root.as_os_str()));
                push(&mut problems, path, format!("cannot be read: {err}"));
                continue;
            }
        };
        let full = entry.path();
        let rel = match full.strip_prefix(root) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let shown = escape_path(rel.as_os_str());
        let ft = entry.file_type();

        // Non-UTF-8 names are refused even when ignored; other hostile bytes
        // in an ignored name only ever reach a log escaped (`shown`).
        let Some(rel_str) = rel.to_str() else {
            push(
                &mut problems,
                shown,
                "file name is not valid UTF-8 (keys must be exact UTF-8; rename the file)".into(),
            );
            if ft.is_dir() {
                it.skip_current_dir();
            }
            continue;
        };
        let key = format!("/{}", rel_str.replace(std::path::MAIN_SEPARATOR, "/"));

        if is_output(&output, full) {
            continue;
        }
        match ignore.matched_path_or_any_parents(rel, ft.is_dir()) {
            Match::Ignore(glob) => {
                if DROPPINGS.contains(&glob.original()) {
                    // Shown escaped: an ignored name was never checked.
                    dropped.push(format!("/{shown}"));
                }
                if ft.is_dir() {
                    it.skip_current_dir();
                }
                continue;
            }
            Match::None | Match::Whitelist(_) => {}
        }
        if let Some(rule) = bad_name(entry.file_name().to_str().unwrap_or("")) {
            push(&mut problems, shown, rule);
            if ft.is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        if key.len() > MAX_KEY_LEN {
            push(
                &mut problems,
                shown,
                format!(
                    "path is {} bytes, over the {MAX_KEY_LEN}-byte limit",
                    key.len()
                ),
            );
            if ft.is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        if ft.is_dir() {
            continue;
        }

        let (path, meta) = if ft.is_symlink() {
            match follow(full, &canon_root, opts.follow_symlinks, &ignore) {
                Ok(target) => target,
                Err(rule) => {
                    push(&mut problems, shown, rule);
                    continue;
                }
            }
        } else {
            match entry.metadata() {
                Ok(m) => (full.to_path_buf(), m),
                Err(e) => {
                    push(&mut problems, shown, format!("cannot be read: {e}"));
                    continue;
                }
            }
        };
        let ft = meta.file_type();
        if !ft.is_file() {
            let what = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_char_device() || ft.is_block_device() {
                "a device"
            } else {
                "not a regular file"
            };
            push(
                &mut problems,
                shown,
                format!("is {what}; only regular files can be assets"),
            );
            continue;
        }
        if meta.len() > opts.max_file_size {
            push(
                &mut problems,
                shown,
                format!(
                    "is {} bytes, over the per-file limit of {} bytes (--max-file-size)",
                    meta.len(),
                    opts.max_file_size
                ),
            );
            continue;
        }

        name_warnings(&key, &mut set.warnings);
        if meta.nlink() > 1 {
            set.warnings.push(Warning::path(
                &key,
                "has other hard links; its bytes are taken as they are",
            ));
        }
        set.files.push(WalkedFile {
            key,
            path,
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        });
    }

    if set.files.len() > opts.max_files {
        problems.push(Problem {
            path: escape_path(root.as_os_str()),
            rule: format!(
                "holds {} files, over the limit of {} (--max-files)",
                set.files.len(),
                opts.max_files
            ),
        });
    }
    collisions(&set.files, &mut set.warnings);
    if !dropped.is_empty() {
        set.warnings.push(Warning {
            file: dropped.join(", "),
            line: None,
            message: "left out by default (version control or secrets); \
                      add a `!name` line to .assetsignore to keep it"
                .into(),
        });
    }
    set.headers_text = rule_file(root, "_headers", &mut problems)?;
    set.redirects_text = rule_file(root, "_redirects", &mut problems)?;

    if !problems.is_empty() {
        problems.truncate(MAX_PROBLEMS);
        return Err(BuildError::Tree(problems));
    }
    set.files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(set)
}

fn ignore_matcher(root: &Path) -> Result<Gitignore, BuildError> {
    let mut b = GitignoreBuilder::new(root);
    for pat in RULE_FILES.iter().chain(DROPPINGS) {
        b.add_line(None, pat)
            .map_err(|e| BuildError::Input(format!("built-in ignore pattern {pat}: {e}")))?;
    }
    let file = root.join(".assetsignore");
    match fs::symlink_metadata(&file) {
        Ok(m) if m.is_file() && m.len() > MAX_RULE_FILE => {
            return Err(BuildError::Tree(vec![Problem {
                path: ".assetsignore".into(),
                rule: format!("is {} bytes, over the {MAX_RULE_FILE}-byte limit", m.len()),
            }]))
        }
        Ok(m) if m.is_file() => {
            let text = fs::read(&file).map_err(|e| BuildError::io(&file, e))?;
            let text = String::from_utf8(text)
                .map_err(|_| BuildError::Input(".assetsignore: not valid UTF-8".to_string()))?;
            for (n, line) in text.split('\n').enumerate() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                b.add_line(None, line)
                    .map_err(|e| BuildError::Input(format!(".assetsignore:{}: {e}", n + 1)))?;
            }
        }
        Ok(_) => {
            return Err(BuildError::Tree(vec![Problem {
                path: ".assetsignore".into(),
                rule: "must be a regular file".into(),
            }]))
        }
        Err(_) => {}
    }
    b.build()
        .map_err(|e| BuildError::Input(format!(".assetsignore: {e}")))
}

/// Reads a root rule file. It must be a regular UTF-8 file (BT-28, BT-46).
fn rule_file(
    root: &Path,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Result<Option<String>, BuildError> {
    let path = root.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !meta.is_file() {
        problems.push(Problem {
            path: name.into(),
            rule: "must be a regular file (not a directory, link or special file)".into(),
        });
        return Ok(None);
    }
    if meta.len() > MAX_RULE_FILE {
        problems.push(Problem {
            path: name.into(),
            rule: format!(
                "is {} bytes, over the {MAX_RULE_FILE}-byte limit",
                meta.len()
            ),
        });
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(&path)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_RULE_FILE + 1), &mut bytes)
        })
        .map_err(|e| BuildError::io(&path, e))?;
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(Some(text))
        }
        Err(e) => {
            problems.push(Problem {
                path: name.into(),
                rule: format!(
                    "is not valid UTF-8 (first bad byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            });
            Ok(None)
        }
    }
}

/// Resolves a symlink under the opt-in policy: the target must be a regular
/// file inside the root. Directory links are never descended (security row 16).
fn follow(
    link: &Path,
    canon_root: &Path,
    allowed: bool,
    ignore: &Gitignore,
) -> Result<(PathBuf, fs::Metadata), String> {
    if !allowed {
        return Err(
            "is a symlink, which is not allowed (use --follow-symlinks to follow links \
             to files inside the root)"
                .into(),
        );
    }
    let target = link
        .canonicalize()
        .map_err(|e| format!("is a symlink that cannot be resolved (dangling or a loop): {e}"))?;
    if !target.starts_with(canon_root) {
        return Err(format!(
            "is a symlink to {}, outside the root",
            escape_path(target.as_os_str())
        ));
    }
    let meta = fs::metadata(&target).map_err(|e| format!("symlink target unreadable: {e}"))?;
    if meta.is_dir() {
        return Err("is a symlink to a directory; directory links are never followed".into());
    }
    // A link must not publish what the walk leaves out (`.env`, ignored files).
    if let Ok(rel) = target.strip_prefix(canon_root) {
        if ignore.matched_path_or_any_parents(rel, false).is_ignore() {
            return Err(format!(
                "is a symlink to {}, which is excluded from the assets",
                escape_path(rel.as_os_str())
            ));
        }
    }
    Ok((target, meta))
}

/// A name that cannot be a key (bad-trees BT-15..BT-17, BT-21).
fn bad_name(name: &str) -> Option<String> {
    if let Some(b) = name.bytes().find(|b| *b < 0x20 || *b == 0x7f) {
        return Some(format!(
            "file name contains the control byte \\x{b:02x}, which is unsafe in URLs, headers and logs"
        ));
    }
    if name.contains('\\') {
        return Some(
            "file name contains a backslash, a separator on Windows and a redirect hazard".into(),
        );
    }
    None
}

/// Legal but confusing names: warn (BT-22, BT-24, BT-25, BT-26).
fn name_warnings(key: &str, warnings: &mut Vec<Warning>) {
    if key.len() > WARN_KEY_LEN {
        warnings.push(Warning::path(key, "path is longer than 2 KiB"));
    }
    for seg in key.split('/').skip(1) {
        if seg.starts_with(' ') || seg.ends_with(' ') {
            warnings.push(Warning::path(key, "name has leading or trailing spaces"));
        }
        let lower = seg.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%2e") {
            warnings.push(Warning::path(
                key,
                "name contains an encoded `/`, `\\` or `.`; it is a literal key, reached with %25",
            ));
        }
        let stem = lower.split('.').next().unwrap_or("");
        let reserved = matches!(stem, "con" | "prn" | "aux" | "nul")
            || ((stem.starts_with("com") || stem.starts_with("lpt"))
                && stem.len() > 3
                && stem[3..]
                    .chars()
                    .all(|c| c.is_ascii_digit() || "¹²³".contains(c)));
        if reserved || seg.ends_with('.') || seg.contains(':') {
            warnings.push(Warning::path(
                key,
                "name is reserved or aliased on Windows; the bundle cannot be extracted there",
            ));
        }
    }
}

/// `k` in Unicode NFC. Nearly every key is ASCII, so already NFC (and
/// folded by ASCII lowercasing): only the others pay for the passes.
fn nfc_of(k: &str) -> std::borrow::Cow<'_, str> {
    if unicode_normalization::is_nfc(k) {
        k.into()
    } else {
        k.nfc().collect::<String>().into()
    }
}

/// Names equal after Unicode NFC or after case folding are a warning each
/// (BT-19, BT-20; issue #2 asks for a warning for both, and the spec's
/// BT-20 error is overruled by it): both files are kept as distinct keys.
fn collisions(files: &[WalkedFile], warnings: &mut Vec<Warning>) {
    let mut nfc: BTreeMap<std::borrow::Cow<'_, str>, Vec<&str>> = BTreeMap::new();
    for f in files {
        nfc.entry(nfc_of(&f.key)).or_default().push(&f.key);
    }
    let mut folded: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (n, group) in &nfc {
        let lower = if n.is_ascii() {
            n.to_ascii_lowercase()
        } else {
            n.to_lowercase()
        };
        folded.entry(lower).or_default().extend(group);
    }
    for group in nfc.values().filter(|g| g.len() > 1) {
        warnings.push(Warning {
            file: group.join(", "),
            line: None,
            message: "names are equal after Unicode NFC normalisation: they look the same in \
                      a URL and collide on file systems that normalise (macOS); both are kept"
                .into(),
        });
    }
    // Only groups that differ by more than normalisation (said above).
    for group in folded.values().filter(|g| {
        g.len() > 1
            && g.iter()
                .map(|k| nfc_of(k))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
    }) {
        warnings.push(Warning {
            file: group.join(", "),
            line: None,
            message: "names differ only by case; they collide on case-insensitive file systems"
                .into(),
        });
    }
}

/// The output file and the temp files it is written through, if the output
/// directory exists.
fn output_identity(out: &Path) -> Option<(PathBuf, String)> {
    let name = out.file_name()?.to_str()?.to_string();
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some((dir.canonicalize().ok()?, name))
}

fn is_output(output: &Option<(PathBuf, String)>, path: &Path) -> bool {
    let Some((dir, name)) = output else {
        return false;
    };
    let (Some(parent), Some(file)) = (path.parent(), path.file_name().and_then(|f| f.to_str()))
    else {
        return false;
    };
    (file == name || file.starts_with(&super::temp_prefix(name)))
        && parent.canonicalize().ok().as_deref() == Some(dir.as_path())
}
