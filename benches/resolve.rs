//! Request resolution over a 100,000-asset bundle whose routes come from the
//! real html_handling compiler (auto-trailing-slash): canonicalisation,
//! worker decision, one table probe, conditional check. Zero allocations per
//! request (tests/alloc.rs proves it; here we measure time).
//!
//! Run: `cargo bench --bench resolve`. Results: benches/README.md.

use std::io::Cursor;
use std::sync::OnceLock;

use divan::Bencher;
use sitepack::build::compile_routes;
use sitepack::config::Config;
use sitepack::format::write::{write_bundle, AssetSpec, BlobSpec, BundleSpec};
use sitepack::format::Bundle;
use sitepack::route::{Outcome, RequestHead, Router, Scratch};

const SECTIONS: u32 = 100;
const PAGES: u32 = 1_000;

fn router() -> &'static Router<Vec<u8>> {
    static R: OnceLock<Router<Vec<u8>>> = OnceLock::new();
    R.get_or_init(|| {
        let mut keys: Vec<String> = (0..SECTIONS)
            .flat_map(|s| {
                (0..PAGES)
                    .map(move |p| format!("/docs/section-{s:03}/page-{p:04}.html"))
                    .chain(std::iter::once(format!("/docs/section-{s:03}/index.html")))
            })
            .collect();
        keys.sort();
        let mut assets = Vec::new();
        let mut blobs = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let data = format!("<p>{k}</p>\n").into_bytes();
            let hash = *blake3::hash(&data).as_bytes();
            assets.push(AssetSpec {
                key: k.clone(),
                content_type: Some("text/html; charset=utf-8".into()),
                blob: i as u32,
                etag: sitepack::build::encode::etag_hash(&data, k),
            });
            blobs.push(BlobSpec {
                data,
                hash,
                variants: Vec::new(),
            });
        }
        let config = Config::default();
        let routes = compile_routes(&assets, &config);
        let spec = BundleSpec {
            config,
            assets,
            blobs,
            routes,
            ..BundleSpec::default()
        };
        let mut out = Cursor::new(Vec::new());
        write_bundle(&spec, &mut out).expect("write");
        let bundle = Bundle::open(out.into_inner()).expect("open");
        eprintln!(
            "bundle: {} assets, {} routes, max probes {}",
            bundle.asset_count(),
            bundle.route_count(),
            bundle.max_probes()
        );
        Router::new(bundle).expect("router")
    })
}

fn resolve(bencher: Bencher, target: &'static str, want: fn(&Outcome<'_>) -> bool) {
    let r = router();
    let mut scratch = Scratch::new();
    let req = RequestHead {
        method: "GET",
        target: target.as_bytes(),
        ..RequestHead::default()
    };
    assert!(want(&r.resolve(&req, false, &mut scratch)), "{target}");
    bencher.bench_local(|| {
        let out = r.resolve(divan::black_box(&req), false, &mut scratch);
        divan::black_box(matches!(out, Outcome::Asset { .. }));
    });
}

/// An extensionless page URL served by its `.html` file.
#[divan::bench]
fn hit(b: Bencher) {
    resolve(b, "/docs/section-017/page-0423", |o| {
        matches!(o, Outcome::Asset { status: 200, .. })
    });
}

/// A directory URL served by its `index.html`.
#[divan::bench]
fn hit_index(b: Bencher) {
    resolve(b, "/docs/section-042/", |o| {
        matches!(o, Outcome::Asset { status: 200, .. })
    });
}

/// `/page.html` → 307 `/page` (a stored redirect route).
#[divan::bench]
fn alias_redirect(b: Bencher) {
    resolve(b, "/docs/section-017/page-0423.html?x=1", |o| {
        matches!(o, Outcome::Redirect { status: 307 })
    });
}

/// No such path: one probe, then the (empty) not-found handling.
#[divan::bench]
fn miss(b: Bencher) {
    resolve(b, "/docs/section-017/nothing-here", |o| {
        matches!(o, Outcome::NotFound)
    });
}

fn main() {
    divan::main();
}
