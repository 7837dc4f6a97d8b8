//! `_redirects` and `_headers` compiled into the bundle: what loaded rules
//! cost a request.
//!
//! One site of 1,000 pages (`/docs/page-NNNN.html`, routes from the real
//! html_handling compiler), bundled three times with `write_bundle`:
//!
//! * `plain`: no rule files (the baseline);
//! * `ruled`: 2,000 static redirects (`/old/page-N /docs/page-N 301`), 100
//!   dynamic redirects of four shapes (`/blog-N/:year/:slug`,
//!   `/v N/api/*`, `/shop/cat-N/:id`, `/files-N/*`; the shop rules all share
//!   the `/shop/` anchor) and 100 `_headers` rules (`/section-N/*` with a
//!   set and an unset; the last is `/reports/:year/*`, substituting `:year`);
//! * `root_anchored`: the same but every dynamic redirect starts with a
//!   placeholder (`/:lang/legacy-N`), so the rule index cannot set any aside:
//!   the worst case for a miss.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench rules`.

use std::io::Cursor;
use std::sync::OnceLock;

use divan::Bencher;
use sitepack::build::compile_routes;
use sitepack::config::Config;
use sitepack::format::write::{write_bundle, AssetSpec, BlobSpec, BundleSpec};
use sitepack::format::Bundle;
use sitepack::route::{Outcome, RequestHead, Router, Scratch};
use sitepack::rules::headers::HeaderSink;

const PAGES: u32 = 1_000;

fn redirects(root_anchored: bool) -> String {
    let mut r: String = (0..2000)
        .map(|i| format!("/old/page-{i} /docs/page-{:04} 301\n", i % PAGES))
        .collect();
    for i in 0..100 {
        r.push_str(&if root_anchored {
            format!("/:lang/legacy-{i} /:lang/docs/page-{i:04} 301\n")
        } else {
            match i % 4 {
                0 => format!("/blog-{i}/:year/:slug /posts/:year/:slug 301\n"),
                1 => format!("/v{i}/api/* /api/v{i}/:splat 302\n"),
                2 => format!("/files-{i}/* /docs/:splat 302\n"),
                _ => format!("/shop/cat-{i}/:id /store/{i}/:id 301\n"),
            }
        });
    }
    r
}

fn headers() -> String {
    let mut h: String = (0..99)
        .map(|i| format!("/section-{i}/*\n  X-Section: {i}\n  ! X-Powered-By\n"))
        .collect();
    h.push_str("/reports/:year/*\n  X-Report-Year: :year\n  Cache-Control: no-store\n");
    h
}

fn build(redirects: Option<String>, headers: Option<String>) -> Router<Vec<u8>> {
    let mut keys: Vec<String> = (0..PAGES)
        .map(|p| format!("/docs/page-{p:04}.html"))
        .chain(["/index.html".to_string(), "/404.html".to_string()])
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
        redirects_text: redirects,
        headers_text: headers,
        ..BundleSpec::default()
    };
    let mut out = Cursor::new(Vec::new());
    write_bundle(&spec, &mut out).expect("write");
    let bundle = Bundle::open(out.into_inner()).expect("open");
    eprintln!(
        "bundle: {} routes (table entries), {} static + {} dynamic redirects, {} header rules, max probes {}",
        bundle.route_count(),
        bundle.static_redirect_count(),
        bundle.dynamic_redirect_count(),
        bundle.header_rule_count(),
        bundle.max_probes()
    );
    Router::new(bundle).expect("router")
}

fn plain() -> &'static Router<Vec<u8>> {
    static R: OnceLock<Router<Vec<u8>>> = OnceLock::new();
    R.get_or_init(|| build(None, None))
}

fn ruled() -> &'static Router<Vec<u8>> {
    static R: OnceLock<Router<Vec<u8>>> = OnceLock::new();
    R.get_or_init(|| build(Some(redirects(false)), Some(headers())))
}

fn root_anchored() -> &'static Router<Vec<u8>> {
    static R: OnceLock<Router<Vec<u8>>> = OnceLock::new();
    R.get_or_init(|| build(Some(redirects(true)), Some(headers())))
}

fn resolve(
    bencher: Bencher,
    r: &'static Router<Vec<u8>>,
    target: &'static str,
    want: fn(&Outcome<'_>) -> bool,
) {
    let mut scratch = Scratch::new();
    let req = RequestHead {
        method: "GET",
        target: target.as_bytes(),
        origin: Some("https://example.com"),
        ..RequestHead::default()
    };
    let out = r.resolve(&req, false, &mut scratch);
    assert!(want(&out), "{target}: {out:?}");
    bencher.bench_local(|| {
        let out = r.resolve(divan::black_box(&req), false, &mut scratch);
        divan::black_box(matches!(out, Outcome::Asset { .. }));
    });
}

fn is_hit(o: &Outcome<'_>) -> bool {
    matches!(o, Outcome::Asset { status: 200, .. })
}

const HIT: &str = "/docs/page-0423";

/// Baseline: a page served with no rule files at all.
#[divan::bench]
fn hit_without_rules(b: Bencher) {
    resolve(b, plain(), HIT, is_hit);
}

/// The same page with 2,000 + 100 redirects loaded, none matching: the
/// static probe plus the rule index (no pattern runs for this path).
#[divan::bench]
fn hit_no_rule_matches(b: Bencher) {
    resolve(b, ruled(), HIT, is_hit);
}

/// A path under the shared `/shop/` anchor that no shop rule matches: the
/// 25 shop patterns run and fail.
#[divan::bench]
fn hit_shared_anchor_no_match(b: Bencher) {
    resolve(b, ruled(), "/shop/other/x", |o| {
        matches!(o, Outcome::NotFound)
    });
}

/// Worst case: all 100 dynamic rules start with `/:lang/`, so every pattern
/// runs for every request.
#[divan::bench]
fn hit_no_match_root_anchored_rules(b: Bencher) {
    resolve(b, root_anchored(), HIT, is_hit);
}

/// The last static rule: one probe, then the Location is built.
#[divan::bench]
fn static_redirect(b: Bencher) {
    resolve(b, ruled(), "/old/page-1999", |o| {
        matches!(o, Outcome::Redirect { status: 301 })
    });
}

/// The last dynamic rule (`/shop/cat-99/:id`): 25 candidates under
/// `/shop/`, the last one matches, the Location is substituted.
#[divan::bench]
fn last_dynamic_rule(b: Bencher) {
    resolve(b, ruled(), "/shop/cat-99/1234", |o| {
        matches!(o, Outcome::Redirect { status: 301 })
    });
}

/// The last dynamic rule when all are anchored at `/`.
#[divan::bench]
fn last_dynamic_rule_root_anchored(b: Bencher) {
    resolve(b, root_anchored(), "/en/legacy-99", |o| {
        matches!(o, Outcome::Redirect { status: 301 })
    });
}

/// A sink that only counts, so the bench measures the rules, not a map.
struct Count(usize);

impl HeaderSink for Count {
    fn remove(&mut self, _: &str) {
        self.0 += 1;
    }
    fn set(&mut self, _: &str, v: &str) {
        self.0 += v.len();
    }
    fn append(&mut self, _: &str, v: &str) {
        self.0 += v.len();
    }
}

fn headers_bench(b: Bencher, path: &'static str, want_ops: bool) {
    let r = ruled();
    let mut sink = Count(0);
    r.apply_headers(Some("example.com"), path, &mut sink);
    assert_eq!(sink.0 > 0, want_ops, "{path}");
    b.bench_local(|| {
        let mut sink = Count(0);
        r.apply_headers(Some("example.com"), divan::black_box(path), &mut sink);
        divan::black_box(sink.0);
    });
}

/// `_headers` with 100 rules loaded, a path matching none.
#[divan::bench]
fn headers_no_rule_matches(b: Bencher) {
    headers_bench(b, HIT, false);
}

/// `_headers`: the last rule (`/reports/:year/*`, two sets, one substituted).
#[divan::bench]
fn headers_last_rule(b: Bencher) {
    headers_bench(b, "/reports/2024/q1.pdf", true);
}

fn main() {
    divan::main();
}
