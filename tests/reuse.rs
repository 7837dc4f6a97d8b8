//! `build --reuse OLD`: variants of unchanged contents come from OLD, and the
//! bundle is byte-identical to a cold build of the same tree whatever OLD is
//! (same policy, another policy, missing, corrupt, tampered).

mod common;
mod support;

use std::fs;
use std::path::Path;

use common::*;

fn text(seed: &str) -> Vec<u8> {
    format!("<!doctype html><p>{seed}</p>\n")
        .repeat(60)
        .into_bytes()
}

fn site(root: &Path) {
    write_tree(
        root,
        &[
            ("index.html", &text("home")),
            ("a.html", &text("a")),
            ("b/index.html", &text("b")),
            ("app.js", &text("console.log(1)")),
            ("style.css", &text("body{}")),
            (
                "logo.png",
                b"\x89PNG not really compressible but stored as is",
            ),
        ],
    );
}

/// Builds with `--json` and the extra flags; returns (report, bundle bytes).
fn build_json(root: &Path, out: &Path, extra: &[&str]) -> (serde_json::Value, Vec<u8>) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let r = cli_build(root, out, &args);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    (r.json(), fs::read(out).unwrap())
}

fn warnings(report: &serde_json::Value) -> String {
    report["warnings"].to_string()
}

#[test]
fn reuse_takes_unchanged_variants_and_matches_a_cold_build() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("dist");
    site(&root);
    let old = t.path().join("old.pack");
    let (r0, _) = build_json(&root, &old, &[]);
    assert_eq!(r0["reused"]["blobs"], 0);

    fs::write(root.join("a.html"), text("a, edited")).unwrap();
    fs::write(root.join("new.txt"), text("brand new")).unwrap();
    let cold = t.path().join("cold.pack");
    let (_, cold_bytes) = build_json(&root, &cold, &[]);
    let warm = t.path().join("warm.pack");
    let old_s = old.to_str().unwrap();
    let (r, warm_bytes) = build_json(&root, &warm, &["--reuse", old_s]);
    assert!(
        warm_bytes == cold_bytes,
        "reused build differs from a cold one"
    );
    // index, b/index, app.js, style.css: compressible and unchanged.
    assert_eq!(r["reused"]["blobs"], 4, "{r}");
    assert_eq!(
        r["reused"]["bytes_in"].as_u64().unwrap(),
        ["home", "b", "console.log(1)", "body{}"]
            .iter()
            .map(|s| text(s).len() as u64)
            .sum::<u64>()
    );
    assert_eq!(warnings(&r), "[]");
}

#[test]
fn another_policy_missing_or_corrupt_old_bundles_only_warn() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("dist");
    site(&root);
    let cold = t.path().join("cold.pack");
    let (_, cold_bytes) = build_json(&root, &cold, &[]);

    // Built with --compression max: other variants, not reusable here.
    let max = t.path().join("max.pack");
    let r = run(&[
        "build".as_ref(),
        root.as_os_str(),
        "-o".as_ref(),
        max.as_os_str(),
        "--compression".as_ref(),
        "max".as_ref(),
        "--quiet".as_ref(),
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);

    let corrupt = t.path().join("corrupt.pack");
    let mut bytes = fs::read(&cold).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    fs::write(&corrupt, bytes).unwrap();

    for (old, says) in [
        (max, "compression policy"),
        (t.path().join("missing.pack"), "cannot open"),
        (corrupt, "checksum"),
    ] {
        let out = t.path().join("out.pack");
        let (r, got) = build_json(&root, &out, &["--reuse", old.to_str().unwrap()]);
        assert!(
            got == cold_bytes,
            "{old:?}: output differs from a cold build"
        );
        assert_eq!(r["reused"]["blobs"], 0);
        let w = warnings(&r);
        assert!(w.contains("--reuse") && w.contains(says), "{old:?}: {w}");
    }
}

#[test]
fn tampered_or_differently_typed_contents_are_compressed_again() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("dist");
    site(&root);
    // Content stored only under a type that is not compressed: OLD has no
    // variants for it, though NEW stores the same bytes as text.
    write_tree(&root, &[("data.png", &text("shared"))]);
    let old = t.path().join("old.pack");
    build_json(&root, &old, &[]);

    // Tamper with one stored variant in OLD's blob area (not covered by the
    // index checksum): the variant hash no longer matches, so it is not
    // taken. Find the brotli bytes of index.html through the library.
    let bytes = fs::read(&old).unwrap();
    let b = sitepack::format::Bundle::open(&bytes[..]).unwrap();
    let asset = b.assets().find(|a| a.path == "/index.html").unwrap();
    let v = b
        .variants(asset.blob)
        .next()
        .expect("index.html has variants");
    let off = v.bytes.as_ptr() as usize - bytes.as_ptr() as usize;
    let mut tampered = bytes.clone();
    tampered[off] ^= 0x55;
    fs::write(&old, &tampered).unwrap();

    fs::remove_file(root.join("data.png")).unwrap();
    write_tree(&root, &[("data.txt", &text("shared"))]);
    let cold = t.path().join("cold.pack");
    let (_, cold_bytes) = build_json(&root, &cold, &[]);
    let warm = t.path().join("warm.pack");
    let (r, warm_bytes) = build_json(&root, &warm, &["--reuse", old.to_str().unwrap()]);
    assert!(warm_bytes == cold_bytes, "output differs from a cold build");
    // a, b/index, app.js, style.css reused; index.html (tampered) and
    // data.txt (never compressed in OLD) compressed again.
    assert_eq!(r["reused"]["blobs"], 4, "{r}");
}

/// ETags are taken from OLD per (content, extension): a content OLD held
/// under `.html` only gets a fresh ETag under `.txt` and `.HTML` (the
/// extension is hashed as written), and the output still equals a cold build.
#[test]
fn etags_are_reused_only_for_the_same_extension() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("dist");
    site(&root);
    let old = t.path().join("old.pack");
    build_json(&root, &old, &[]);

    write_tree(
        &root,
        &[
            ("copy.html", &text("home")),
            ("copy.txt", &text("home")),
            ("COPY.HTML", &text("home")),
        ],
    );
    let cold = t.path().join("cold.pack");
    let (_, cold_bytes) = build_json(&root, &cold, &[]);
    let warm = t.path().join("warm.pack");
    let (r, warm_bytes) = build_json(&root, &warm, &["--reuse", old.to_str().unwrap()]);
    assert!(warm_bytes == cold_bytes, "output differs from a cold build");
    assert_eq!(r["reused"]["blobs"], 5, "{r}");
    let b = sitepack::format::Bundle::open(&warm_bytes[..]).unwrap();
    let etag = |p: &str| b.assets().find(|a| a.path == p).unwrap().etag;
    assert_eq!(etag("/copy.html"), etag("/index.html"));
    assert_ne!(etag("/copy.txt"), etag("/index.html"));
    assert_ne!(etag("/COPY.HTML"), etag("/index.html"));
}

/// `serve DIR` rebuilds an edited tree reusing its previous cache file: only
/// the edited content is compressed again.
#[test]
fn serve_dir_rebuild_reuses_the_previous_cache() {
    use support::{get, ServerProc};

    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("dist");
    site(&root);
    let first = ServerProc::start(&root, &[]);
    assert_eq!(get(first.port, "/a", &[]).body, text("a"));
    drop(first);

    fs::write(root.join("a.html"), text("a, edited")).unwrap();
    let second = ServerProc::start(&root, &[]);
    assert_eq!(get(second.port, "/a", &[]).body, text("a, edited"));
    let log = second.stderr();
    assert!(
        log.contains("reused the variants of 4 unchanged contents"),
        "{log}"
    );
}
