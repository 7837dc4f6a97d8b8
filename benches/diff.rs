//! `diff` of two synthetic 100,000-asset bundles that differ in 1 % of their
//! files (600 modified, 200 removed, 200 added; 2 of the removed are the
//! renamed ones' old keys).
//!
//! Both bundles are written once, in memory, with
//! `format::write::write_bundle` from a synthetic `BundleSpec`:
//!
//! * 100,000 assets `/docs/section-SSS/page-PPPP.html` (100 sections × 1,000
//!   pages), each with its own tiny blob and one tiny "gzip" variant;
//! * 200,000 routes: each key plus its extensionless alias, both SERVE 200,
//!   about what `auto-trailing-slash` gives a site of `.html` pages.
//!
//! Benches: `diff` over two opened bundles (the comparison alone), and
//! `open_and_diff` (validating both indexes first, as `sitepack diff` does).
//! The allocation profile (divan's `AllocProfiler`) shows the memory: it
//! follows the changes, not the 300,000 entries.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench diff`.
//! With `SITEPACK_DIFF_BENCH_DIR=DIR` the two bundles are also written to
//! `DIR/old.pack` and `DIR/new.pack`, for timing `sitepack diff` itself.

use std::io::Cursor;
use std::sync::OnceLock;

use divan::{AllocProfiler, Bencher};
use sitepack::diff::diff;
use sitepack::format::layout::{action, encoding, NO_ASSET};
use sitepack::format::write::{write_bundle, AssetSpec, BlobSpec, BundleSpec, RouteSpec};
use sitepack::format::Bundle;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

const SECTIONS: u32 = 100;
const PAGES: u32 = 1_000;

fn key(s: u32, p: u32) -> String {
    format!("/docs/section-{s:03}/page-{p:04}.html")
}

/// What happens to page `(s, p)` in NEW: every 100th page changes, in turn
/// modified (6 of 10), removed (2) or moved to `/moved/…` (2: one rename,
/// one removed + added with other bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Same,
    Modified,
    Removed,
    Renamed,
    Replaced,
}

fn fate(s: u32, p: u32) -> Fate {
    let i = s * PAGES + p;
    if i % 100 != 7 {
        return Fate::Same;
    }
    match (i / 100) % 10 {
        0..=5 => Fate::Modified,
        6 | 7 => Fate::Removed,
        8 => Fate::Renamed,
        _ => Fate::Replaced,
    }
}

fn spec(new: bool) -> BundleSpec {
    let mut pages: Vec<(String, String)> = Vec::with_capacity((SECTIONS * PAGES) as usize);
    for s in 0..SECTIONS {
        for p in 0..PAGES {
            let k = key(s, p);
            let body = format!("<p>{k}</p>\n");
            match (new, fate(s, p)) {
                (false, _) | (true, Fate::Same) => pages.push((k, body)),
                (true, Fate::Modified) => {
                    let v2 = format!("<p>{k} v2</p>\n");
                    pages.push((k, v2));
                }
                (true, Fate::Removed) => {}
                (true, Fate::Renamed) => pages.push((format!("/moved{k}"), body)),
                (true, Fate::Replaced) => pages.push((format!("/moved{k}"), format!("{body}!"))),
            }
        }
    }
    pages.sort();
    let mut spec = BundleSpec::default();
    spec.assets.reserve(pages.len());
    spec.blobs.reserve(pages.len());
    spec.routes.reserve(pages.len() * 2);
    for (i, (k, body)) in pages.into_iter().enumerate() {
        let data = body.into_bytes();
        let hash = *blake3::hash(&data).as_bytes();
        let mut etag = [0u8; 16];
        etag.copy_from_slice(&hash[..16]);
        // A stand-in "compressed" variant: the bundle only needs its bytes.
        let variant = data[..data.len() / 2].to_vec();
        spec.blobs.push(BlobSpec {
            data,
            hash,
            variants: vec![(encoding::GZIP, variant)],
        });
        let i = i as u32;
        spec.routes.push(RouteSpec {
            path: k.trim_end_matches(".html").to_string(),
            action: action::SERVE,
            status: 200,
            asset: i,
            location: String::new(),
            exact_asset: NO_ASSET,
        });
        spec.routes.push(RouteSpec {
            path: k.clone(),
            action: action::SERVE,
            status: 200,
            asset: i,
            location: String::new(),
            exact_asset: i,
        });
        spec.assets.push(AssetSpec {
            key: k,
            content_type: Some("text/html; charset=utf-8".into()),
            blob: i,
            etag,
        });
    }
    spec
}

fn bytes(new: bool) -> &'static [u8] {
    static OLD: OnceLock<Vec<u8>> = OnceLock::new();
    static NEW: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if new { &NEW } else { &OLD };
    cell.get_or_init(|| {
        let mut out = Cursor::new(Vec::new());
        write_bundle(&spec(new), &mut out).expect("write bundle");
        out.into_inner()
    })
}

fn bundles() -> (Bundle<&'static [u8]>, Bundle<&'static [u8]>) {
    (
        Bundle::open(bytes(false)).expect("old bundle"),
        Bundle::open(bytes(true)).expect("new bundle"),
    )
}

fn main() {
    // `SITEPACK_DIFF_BENCH_DIR=DIR` also writes `DIR/old.pack` and
    // `DIR/new.pack`, to time the command itself (`sitepack diff`).
    if let Some(dir) = std::env::var_os("SITEPACK_DIFF_BENCH_DIR") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("old.pack"), bytes(false)).expect("write old.pack");
        std::fs::write(dir.join("new.pack"), bytes(true)).expect("write new.pack");
    }
    let (old, new) = bundles();
    let c = diff(&old, &new);
    eprintln!(
        "old {} assets / {} routes, new {} assets; {} modified, {} removed, {} added, \
         {} renamed, {} unchanged, {} broken URLs, upload {} blobs ({} bytes)",
        old.asset_count(),
        old.route_count(),
        new.asset_count(),
        c.modified.len(),
        c.removed.len(),
        c.added.len(),
        c.renamed.len(),
        c.unchanged,
        c.broken_urls.len(),
        c.upload.blobs,
        c.upload.bytes
    );
    divan::main();
}

/// The comparison over two already opened bundles.
#[divan::bench(sample_count = 20)]
fn diff_100k_1pct(b: Bencher) {
    let (old, new) = bundles();
    b.bench_local(|| diff(divan::black_box(&old), divan::black_box(&new)));
}

/// Opening (validating) both bundles, then the comparison: the work of
/// `sitepack diff` minus mapping the files.
#[divan::bench(sample_count = 20)]
fn open_and_diff_100k_1pct(b: Bencher) {
    let (old, new) = (bytes(false), bytes(true));
    b.bench_local(|| {
        let (o, n) = (
            Bundle::open(divan::black_box(old)).expect("old"),
            Bundle::open(divan::black_box(new)).expect("new"),
        );
        diff(&o, &n)
    });
}
