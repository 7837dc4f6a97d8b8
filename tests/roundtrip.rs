//! Random legal trees survive build → open → verify → extract byte for byte.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, FileFailurePersistence};
use sitepack::build::encode::{decode, etag_hash};
use sitepack::format::Bundle;

use common::*;

/// Names the walker must accept and keep: odd but legal UTF-8.
fn name() -> impl Strategy<Value = String> {
    let curated = prop::sample::select(vec![
        "index.html",
        "INDEX.html",
        "[id].html",
        "%5Bid%5D.html",
        "%2e%2e.html",
        "a%2fb.html",
        "100%.txt",
        "q?.html",
        "h#.html",
        "with space.txt",
        " lead.txt",
        "trail .txt",
        "日本語.html",
        "café.css",
        "emoji-🦀.js",
        "Ünïcödé",
        "a.b.c.tar.gz",
        "..dots",
        ".htaccess",
        ".well-known",
        "~tilde",
        "semi;colon=1&x.html",
        "+plus+.css",
        "@scope",
        "(parens)",
    ])
    .prop_map(str::to_string);
    let random = (
        "[a-zA-Z0-9 %?#\\[\\]éüßñ語_~!$&'()+,;=@{}-]{1,10}",
        prop::sample::select(vec![
            "", ".html", ".txt", ".css", ".js", ".json", ".bin", ".png", ".svg", ".wasm", ".md",
        ]),
    )
        .prop_map(|(a, b)| format!("{a}{b}"));
    prop_oneof![curated, random].prop_filter("name the walker refuses or excludes", |n| {
        let excluded = [".git", ".hg", ".svn", ".env", ".DS_Store", "Thumbs.db"];
        n != "." && n != ".." && !excluded.iter().any(|e| n.starts_with(e))
    })
}

#[derive(Clone, Debug)]
enum Content {
    Empty,
    Binary(Vec<u8>),
    Text(String, usize),
    /// One of the shared contents: duplicates across files.
    Shared(usize),
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        1 => Just(Content::Empty),
        3 => prop::collection::vec(any::<u8>(), 1..600).prop_map(Content::Binary),
        3 => ("[a-z <>/=\"]{1,24}", 1usize..150).prop_map(|(s, n)| Content::Text(s, n)),
        2 => (0usize..3).prop_map(Content::Shared),
    ]
}

fn bytes_of(c: &Content, shared: &[Vec<u8>]) -> Vec<u8> {
    match c {
        Content::Empty => Vec::new(),
        Content::Binary(b) => b.clone(),
        Content::Text(s, n) => s.repeat(*n).into_bytes(),
        Content::Shared(i) => shared[*i].clone(),
    }
}

#[derive(Clone, Debug)]
struct Tree {
    files: Vec<(Vec<String>, String, Content)>,
    shared: Vec<Vec<u8>>,
    headers: Option<String>,
    redirects: Option<String>,
}

fn tree() -> impl Strategy<Value = Tree> {
    let dirs = prop_oneof![
        4 => prop::collection::vec(name(), 0..3),
        1 => prop::collection::vec("[a-z%# ]{1,3}", 5..9),
    ];
    (
        prop::collection::vec((dirs, name(), content()), 1..12),
        prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                "[a-z<>]{1,8}".prop_map(|s| s.repeat(40).into_bytes()),
            ],
            3,
        ),
        prop::option::of(Just(
            "/*\n  X-Test: 1\n/a/*\n  Cache-Control: no-store\n".to_string(),
        )),
        prop::option::of(Just("/old /new 301\n/x/* /y/:splat 302\n".to_string())),
    )
        .prop_map(|(files, shared, headers, redirects)| Tree {
            files,
            shared,
            headers,
            redirects,
        })
}

/// Writes the tree; entries that clash with an earlier one (a file where a
/// directory is wanted, or a repeat) are skipped. Returns the files written,
/// keyed by relative path.
fn materialise(root: &Path, t: &Tree) -> BTreeMap<String, Vec<u8>> {
    fs::create_dir_all(root).unwrap();
    let mut written = BTreeMap::new();
    for (dirs, file, c) in &t.files {
        // Root rule files are generated on purpose below, never by accident.
        if dirs.is_empty()
            && ["_headers", "_redirects", ".assetsignore", "_worker.js"].contains(&file.as_str())
        {
            continue;
        }
        let mut dir = root.to_path_buf();
        for d in dirs {
            dir.push(d);
        }
        if fs::create_dir_all(&dir).is_err() {
            continue;
        }
        let p = dir.join(file);
        if fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        let data = bytes_of(c, &t.shared);
        fs::write(&p, &data).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
        written.insert(rel, data);
    }
    if let Some(h) = &t.headers {
        fs::write(root.join("_headers"), h).unwrap();
    }
    if let Some(r) = &t.redirects {
        fs::write(root.join("_redirects"), r).unwrap();
    }
    written
}

fn check_tree(t: &Tree) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site");
    let files = materialise(&root, t);
    let out = tmp.path().join("out.pack");

    let report = lib_build(&root, &out).map_err(|e| TestCaseError::fail(format!("build: {e}")))?;
    prop_assert_eq!(report.files as usize, files.len());

    let bundle = Bundle::open(fs::read(&out).unwrap())
        .map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
    prop_assert_eq!(bundle.asset_count(), files.len());
    let distinct: BTreeSet<&Vec<u8>> = files.values().collect();
    prop_assert_eq!(bundle.blob_count(), distinct.len());
    for (rel, data) in &files {
        let key = format!("/{rel}");
        let a = bundle
            .find_asset(&key)
            .ok_or_else(|| TestCaseError::fail(format!("{key:?} missing from the bundle")))?;
        prop_assert_eq!(a.path, key.as_str());
        let blob = bundle.blob(a.blob).unwrap();
        prop_assert!(blob == &data[..], "{:?}: stored bytes differ", key);
        prop_assert_eq!(a.etag, etag_hash(data, &key));
        for v in bundle.variants(a.blob) {
            let code = v.encoding.unwrap();
            let dec = decode(code, v.bytes, data.len())
                .map_err(|e| TestCaseError::fail(format!("{key:?} variant {code}: {e}")))?;
            prop_assert!(
                dec == *data,
                "{:?}: variant {} decodes to other bytes",
                key,
                code
            );
            prop_assert!(v.bytes.len() < data.len(), "{:?}: variant not smaller", key);
        }
    }
    prop_assert_eq!(bundle.headers_text(), t.headers.as_deref());
    prop_assert_eq!(bundle.redirects_text(), t.redirects.as_deref());
    bundle
        .verify()
        .map_err(|e| TestCaseError::fail(format!("verify: {e}")))?;

    let back = tmp.path().join("back");
    let r = run(&["extract".as_ref(), out.as_os_str(), back.as_os_str()] as &[&std::ffi::OsStr]);
    prop_assert_eq!(r.code(), Some(0), "extract failed: {}", r.stderr);
    let want = read_tree(&root);
    let got = read_tree(&back);
    let names = |m: &BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<String> {
        m.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    prop_assert_eq!(names(&got), names(&want));
    prop_assert!(got == want, "extracted bytes differ");
    Ok(())
}

proptest! {
    #![proptest_config(PropConfig {
        cases: 32,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..PropConfig::default()
    })]

    #[test]
    fn random_trees_round_trip(t in tree()) {
        check_tree(&t)?;
    }
}

/// Named edge cases, always run (the random ones may miss them).
#[test]
fn fixed_odd_tree_round_trips() {
    let t = Tree {
        files: vec![
            (
                vec![],
                "index.html".into(),
                Content::Text("<p>hi</p>".into(), 100),
            ),
            (vec![], "empty.txt".into(), Content::Empty),
            (vec!["[id]".into()], "index.html".into(), Content::Shared(0)),
            (
                vec!["a b".into(), "%2e%2e".into()],
                "q?#.html".into(),
                Content::Shared(0),
            ),
            (
                vec!["sub".into()],
                "_headers".into(),
                Content::Text("not a rule file".into(), 3),
            ),
            (vec!["sub".into()], "_redirects".into(), Content::Empty),
            (
                vec!["sub".into()],
                "_worker.js".into(),
                Content::Binary(vec![0, 1, 2]),
            ),
            (
                ["d"; 24].iter().map(|s| s.to_string()).collect(),
                "deep.css".into(),
                Content::Text("a{b:c}".into(), 30),
            ),
            (
                vec![],
                "日本語.html".into(),
                Content::Binary(vec![0xff; 300]),
            ),
        ],
        shared: vec![b"<html>shared</html>".repeat(20)],
        headers: Some("/*\n  X-A: b\n".into()),
        redirects: Some(String::new()),
    };
    check_tree(&t).unwrap();
}

#[test]
fn empty_tree_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site");
    fs::create_dir(&root).unwrap();
    let out = tmp.path().join("out.pack");
    let report = lib_build(&root, &out).unwrap();
    assert_eq!(report.files, 0);
    let b = Bundle::open(fs::read(&out).unwrap()).unwrap();
    assert_eq!(b.asset_count(), 0);
    assert!(b.headers_text().is_none() && b.redirects_text().is_none());
    b.verify().unwrap();
    let back = tmp.path().join("back");
    let r = run(&["extract".as_ref(), out.as_os_str(), back.as_os_str()] as &[&std::ffi::OsStr]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(fs::read_dir(&back).unwrap().next().is_none());
}
