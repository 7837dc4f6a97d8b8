//! The same tree always gives the same bundle bytes (bad-trees invariant 5).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use sitepack::format::Bundle;

use common::*;

/// The tree used by the determinism tests: nested directories, text that
/// compresses, binary that does not, an empty file and duplicate contents.
fn files() -> Vec<(String, Vec<u8>)> {
    let page = |t: &str| {
        format!(
            "<!doctype html><title>{t}</title>{}",
            "<p>lorem ipsum dolor</p>\n".repeat(40)
        )
    };
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("index.html".into(), page("home").into_bytes()),
        ("about.html".into(), page("about").into_bytes()),
        ("blog/index.html".into(), page("blog").into_bytes()),
        ("blog/first-post.html".into(), page("first").into_bytes()),
        ("blog/copy-of-first.html".into(), page("first").into_bytes()),
        (
            "assets/app.js".into(),
            "console.log('x');\n".repeat(60).into_bytes(),
        ),
        (
            "assets/app.copy.js".into(),
            "console.log('x');\n".repeat(60).into_bytes(),
        ),
        (
            "assets/style.css".into(),
            "body{margin:0}\n".repeat(50).into_bytes(),
        ),
        ("img/a.png".into(), noise("a.png", 3000)),
        ("img/b.png".into(), noise("b.png", 1200)),
        ("img/b-again.png".into(), noise("b.png", 1200)),
        ("empty.txt".into(), Vec::new()),
        ("also-empty.txt".into(), Vec::new()),
        ("[id]/index.html".into(), page("dyn").into_bytes()),
        (
            "deep/a/b/c/d/e/f.json".into(),
            b"{\"k\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}".repeat(8),
        ),
        ("_headers".into(), b"/*\n  X-Frame-Options: DENY\n".to_vec()),
        ("_redirects".into(), b"/old /new 301\n".to_vec()),
    ];
    for i in 0..24 {
        v.push((
            format!("many/f{i:02}.txt"),
            format!("file {} ", i % 7).repeat(30).into_bytes(),
        ));
    }
    v
}

fn write_forward(root: &Path) {
    for (rel, data) in files() {
        let p = root.join(&rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &data).unwrap();
    }
}

/// Same tree, created in reverse order, each file first written with other
/// bytes and then rewritten, so inode numbers, directory order and mtimes all
/// differ from `write_forward`.
fn write_reverse(root: &Path) {
    for (rel, data) in files().into_iter().rev() {
        let p = root.join(&rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"placeholder that is not the final content").unwrap();
        fs::write(&p, &data).unwrap();
    }
}

fn build_ok(root: &Path, out: &Path, threads: &str, extra: &[&str]) -> Vec<u8> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "build".into(),
        root.into(),
        "-o".into(),
        out.into(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let r = run_opts(
        &args,
        &Opts {
            env: vec![("RAYON_NUM_THREADS".into(), threads.into())],
            ..Opts::default()
        },
    );
    assert_eq!(r.code(), Some(0), "build failed: {}", r.stderr);
    let _ = r.json();
    fs::read(out).unwrap()
}

#[test]
fn same_tree_same_bytes_across_threads_order_and_location() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("site-a");
    let b = t.path().join("another/place/site-b");
    write_forward(&a);
    write_reverse(&b);
    let out = |n: &str| -> PathBuf { t.path().join(n) };

    let one = build_ok(&a, &out("one.pack"), "1", &["--compression", "fast"]);
    let two = build_ok(&a, &out("two.pack"), "2", &["--compression", "fast"]);
    let rev = build_ok(&b, &out("rev.pack"), "2", &["--compression", "fast"]);
    let rev1 = build_ok(&b, &out("rev1.pack"), "1", &["--compression", "fast"]);
    assert!(
        one == two,
        "RAYON_NUM_THREADS=1 and =2 gave different bundles"
    );
    assert!(
        one == rev,
        "a tree created in another order gave a different bundle"
    );
    assert!(one == rev1, "reverse tree, one thread: different bundle");

    // Rebuilding over an existing bundle gives the same bytes again.
    let again = build_ok(&a, &out("one.pack"), "2", &["--compression", "fast"]);
    assert!(one == again, "rebuild over the old bundle differs");

    // The bytes are a real bundle of this tree (guards against a trivially
    // constant output).
    let bundle = Bundle::open(one).unwrap();
    bundle.verify().unwrap();
    assert_eq!(bundle.asset_count(), files().len() - 2);
}

#[test]
fn identical_contents_are_stored_once() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("site");
    write_forward(&root);
    let out = t.path().join("o.pack");
    let mut args: Vec<std::ffi::OsString> = vec![
        "build".into(),
        root.clone().into(),
        "-o".into(),
        out.clone().into(),
        "--compression".into(),
        "fast".into(),
        "--json".into(),
    ];
    args.push("--quiet".into());
    let r = run(&args);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let j = r.json();

    let all = files();
    let assets: Vec<&(String, Vec<u8>)> = all
        .iter()
        .filter(|(k, _)| k != "_headers" && k != "_redirects")
        .collect();
    let mut distinct: Vec<&Vec<u8>> = assets.iter().map(|(_, d)| d).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(j["files"].as_u64(), Some(assets.len() as u64));
    assert_eq!(j["blobs"].as_u64(), Some(distinct.len() as u64));
    assert!(distinct.len() < assets.len());

    let bytes = fs::read(&out).unwrap();
    let b = Bundle::open(&bytes[..]).unwrap();
    assert_eq!(b.blob_count(), distinct.len());
    for (x, y) in [
        ("/blog/first-post.html", "/blog/copy-of-first.html"),
        ("/assets/app.js", "/assets/app.copy.js"),
        ("/img/b.png", "/img/b-again.png"),
        ("/empty.txt", "/also-empty.txt"),
    ] {
        let (ax, ay) = (b.find_asset(x).unwrap(), b.find_asset(y).unwrap());
        assert_eq!(ax.blob, ay.blob, "{x} and {y} do not share a blob");
        // ETags depend on the extension only, so same content + same
        // extension = same ETag.
        assert_eq!(ax.etag, ay.etag);
    }
    // The shared content's bytes occur once in the file.
    let png = noise("b.png", 1200);
    let hits = bytes.windows(png.len()).filter(|w| *w == &png[..]).count();
    assert_eq!(hits, 1, "duplicate content stored {hits} times");
}

#[test]
fn demo_site_builds_deterministically() {
    let t = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-site");
    let one = build_ok(&demo, &t.path().join("one.pack"), "1", &[]);
    let two = build_ok(&demo, &t.path().join("two.pack"), "2", &[]);
    assert!(
        one == two,
        "demo site: different bytes with 1 and 2 threads"
    );
    let b = Bundle::open(&one[..]).unwrap();
    b.verify().unwrap();
    assert!(
        b.asset_count() >= 10,
        "demo site has {} assets",
        b.asset_count()
    );
    assert!(b.find_asset("/index.html").is_some());
}
