//! `sitepack extract`: the original files, byte for byte.

use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub bundle: PathBuf,
    /// Target directory; must not exist or be empty.
    pub dir: PathBuf,
}

/// The relative path a key maps to, refusing anything that could leave the
/// target directory (a hostile bundle may hold any key).
fn safe_relative(key: &str) -> Option<PathBuf> {
    let rel = key.strip_prefix('/')?;
    if rel.is_empty() || rel.contains('\\') || rel.contains('\0') {
        return None;
    }
    let p = Path::new(rel);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let bundle = crate::bundle_file::open(&args.bundle)?;
    if args.dir.exists() {
        let mut rd = fs::read_dir(&args.dir)
            .with_context(|| format!("{}: cannot read", args.dir.display()))?;
        if rd.next().is_some() {
            bail!("{}: directory is not empty", args.dir.display());
        }
    }
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("{}: cannot create", args.dir.display()))?;
    let mut n = 0;
    for asset in bundle.assets() {
        let Some(rel) = safe_relative(asset.path) else {
            bail!(
                "{}: unsafe key {:?} in bundle",
                args.bundle.display(),
                asset.path
            );
        };
        let target = args.dir.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        let data = bundle.blob(asset.blob).with_context(|| {
            format!("{}: blob of {} missing", args.bundle.display(), asset.path)
        })?;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .and_then(|mut f| std::io::Write::write_all(&mut f, data))
            .with_context(|| format!("{}: cannot write", target.display()))?;
        n += 1;
    }
    // The rule files are kept as text, not assets; put them back too.
    for (name, text) in [
        ("_headers", bundle.headers_text()),
        ("_redirects", bundle.redirects_text()),
    ] {
        let target = args.dir.join(name);
        if let (Some(text), false) = (text, target.exists()) {
            fs::write(&target, text)
                .with_context(|| format!("{}: cannot write", target.display()))?;
            n += 1;
        }
    }
    eprintln!("extracted {n} files into {}", args.dir.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn refuses_escaping_keys() {
        assert!(safe_relative("/a/b.html").is_some());
        for bad in [
            "/../x",
            "/a/../../x",
            "//etc/passwd",
            "/a\\b",
            "x",
            "/",
            "/./a",
        ] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }
}
