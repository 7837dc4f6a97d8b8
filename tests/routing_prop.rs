//! Property: for random trees, modes and request paths, the compiled bundle
//! and router answer exactly what a direct implementation of the spec's
//! decision procedure (§1.3, §1.4, §2) answers.

use std::collections::HashMap;
use std::fs;

use proptest::prelude::*;
use sitepack::build::routes::{resolve, Intent};
use sitepack::build::{build, encode, BuildOptions, Compression, WalkOptions};
use sitepack::config::{Config, HtmlHandling, NotFoundHandling};
use sitepack::format::Bundle;
use sitepack::route::canonical::write_location;
use sitepack::route::{Outcome, RequestHead, Router, Scratch};

/// Names chosen to collide under html_handling: `x`, `x.html`, `x/index.html`,
/// `index`, `404.html` at several depths.
fn tree() -> impl Strategy<Value = Vec<(String, u8)>> {
    let dirs = prop::sample::select(vec!["", "/a", "/a/b", "/index", "/b"]);
    let names = prop::sample::select(vec![
        "a",
        "a.html",
        "index.html",
        "index",
        "b.html",
        "404.html",
        "c.js",
        "b",
    ]);
    // The content byte lets two files share bytes (same hash, §1.3).
    prop::collection::vec((dirs, names, 0u8..4), 1..10).prop_map(|v| {
        let mut seen = HashMap::new();
        for (d, n, c) in v {
            seen.insert(format!("{d}/{n}"), c);
        }
        seen.into_iter().collect()
    })
}

fn request() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "a",
        "b",
        "index",
        "index.html",
        "a.html",
        "404",
        "c.js",
        "x",
    ]);
    (prop::collection::vec(seg, 0..4), any::<bool>()).prop_map(|(segs, slash)| {
        let mut p = format!("/{}", segs.join("/"));
        if slash && !p.ends_with('/') {
            p.push('/');
        }
        p
    })
}

fn modes() -> impl Strategy<Value = (HtmlHandling, NotFoundHandling)> {
    (
        prop::sample::select(HtmlHandling::ALL.to_vec()),
        prop::sample::select(NotFoundHandling::ALL.to_vec()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn compiled_equals_reference(files in tree(), (mode, nf) in modes(), paths in prop::collection::vec(request(), 1..24)) {
        // A file and a directory of the same name cannot coexist on disk.
        let keys: Vec<&String> = files.iter().map(|(k, _)| k).collect();
        let clash = keys.iter().any(|k| keys.iter().any(|o| o.starts_with(&format!("{k}/"))));
        prop_assume!(!clash);

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dist");
        fs::create_dir_all(&root).unwrap();
        let mut manifest: HashMap<String, [u8; 16]> = HashMap::new();
        for (key, c) in &files {
            let p = root.join(key.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let bytes = format!("content {c}");
            fs::write(&p, &bytes).unwrap();
            manifest.insert(key.clone(), encode::etag_hash(bytes.as_bytes(), key));
        }
        let out = dir.path().join("b.pack");
        let config = Config { html_handling: mode, not_found_handling: nf, ..Config::default() };
        build(&BuildOptions { root, output: out.clone(), config, compression: Compression::Fast, walk: WalkOptions::default() }, &()).unwrap();
        let router = Router::new(Bundle::open(fs::read(&out).unwrap()).unwrap()).unwrap();
        let mut scratch = Scratch::new();
        for path in &paths {
            let req = RequestHead { method: "GET", target: path.as_bytes(), ..RequestHead::default() };
            let got = match router.resolve(&req, false, &mut scratch) {
                Outcome::Asset { asset, status, .. } => Intent::Serve { key: asset.path.to_string(), status },
                Outcome::Redirect { .. } => Intent::Redirect { to: scratch.location().to_string() },
                Outcome::NotFound => Intent::Nothing,
                other => panic!("{path}: unexpected {other:?}"),
            };
            let want = match resolve(&manifest, mode, nf, path) {
                Intent::Redirect { to } => {
                    let mut loc = String::new();
                    write_location(&to, "", &mut loc);
                    Intent::Redirect { to: loc }
                }
                i => i,
            };
            prop_assert_eq!(got, want, "{} in {:?} {:?} over {:?}", path, mode, nf, files);
        }
    }
}
