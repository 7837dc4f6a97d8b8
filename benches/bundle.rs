//! Reader benchmarks over a synthetic 100,000-asset bundle.
//!
//! The bundle is written once, in memory, with `format::write::write_bundle`
//! from a synthetic `BundleSpec` (building 100k real files through the whole
//! pipeline would take minutes and measure the compressors, not the reader):
//!
//! * 100,000 assets `/docs/section-SSS/page-PPPP.html` (100 sections × 1,000
//!   pages), each with its own tiny blob and three tiny "variants" (so the
//!   index has the BLOBS/VARIANTS rows a real text site has);
//! * 200,000 routes: each key, plus its extensionless alias
//!   (`/docs/section-017/page-0423`), both SERVE — about what
//!   `html_handling = auto-trailing-slash` adds for a site of `.html` pages.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench bundle`.
//! Results and the machine they were taken on: benches/README.md.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use divan::Bencher;
use sitepack::format::layout::{self, action, encoding};
use sitepack::format::write::{write_bundle, AssetSpec, BlobSpec, BundleSpec, RouteSpec};
use sitepack::format::Bundle;

const SECTIONS: u32 = 100;
const PAGES: u32 = 1_000;
/// How many distinct paths the lookup benches cycle through, so one hot path
/// in L1 does not stand for the whole table.
const SAMPLE: usize = 4_096;

fn key(s: u32, p: u32) -> String {
    format!("/docs/section-{s:03}/page-{p:04}.html")
}

/// A small deterministic PRNG (xorshift64*), so the sample is the same on
/// every run without a `rand` dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn spec() -> BundleSpec {
    let mut keys: Vec<String> = (0..SECTIONS)
        .flat_map(|s| (0..PAGES).map(move |p| key(s, p)))
        .collect();
    keys.sort();
    let mut assets = Vec::with_capacity(keys.len());
    let mut blobs = Vec::with_capacity(keys.len());
    let mut routes = Vec::with_capacity(keys.len() * 2);
    for (i, k) in keys.iter().enumerate() {
        let data = format!("<p>{k}</p>\n").into_bytes();
        let hash = *blake3::hash(&data).as_bytes();
        let mut etag = [0u8; 16];
        etag.copy_from_slice(&hash[..16]);
        let variants = [encoding::GZIP, encoding::BR, encoding::ZSTD]
            .into_iter()
            .map(|code| (code, data[..data.len() / 2].to_vec()))
            .collect();
        blobs.push(BlobSpec {
            data,
            hash,
            variants,
        });
        assets.push(AssetSpec {
            key: k.clone(),
            content_type: Some("text/html; charset=utf-8".into()),
            blob: i as u32,
            etag,
        });
        for path in [k.clone(), k.trim_end_matches(".html").to_string()] {
            routes.push(RouteSpec {
                path,
                action: action::SERVE,
                status: 200,
                asset: i as u32,
                location: String::new(),
                exact_asset: i as u32,
            });
        }
    }
    BundleSpec {
        assets,
        blobs,
        routes,
        ..Default::default()
    }
}

fn bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let t = std::time::Instant::now();
        let mut out = Cursor::new(Vec::new());
        write_bundle(&spec(), &mut out).expect("write synthetic bundle");
        let bytes = out.into_inner();
        let b = Bundle::open(&bytes[..]).expect("open synthetic bundle");
        let index_len = u64::from_le_bytes(bytes[32..40].try_into().unwrap());
        eprintln!(
            "synthetic bundle: {} bytes ({} index), {} assets, {} routes, max_probes {}, written in {:.2?}",
            bytes.len(),
            index_len,
            b.asset_count(),
            b.route_count(),
            b.max_probes(),
            t.elapsed()
        );
        eprintln!(
            "record sizes: Header {} SectionEntry {} StrRef {} Config {} Asset {} Blob {} Variant {} Route {} Table {} Slot {}",
            size_of::<layout::Header>(),
            size_of::<layout::SectionEntry>(),
            size_of::<layout::StrRef>(),
            size_of::<layout::ConfigRecord>(),
            size_of::<layout::AssetRecord>(),
            size_of::<layout::BlobRecord>(),
            size_of::<layout::VariantRecord>(),
            size_of::<layout::RouteRecord>(),
            size_of::<layout::TableRecord>(),
            size_of::<layout::SlotRecord>(),
        );
        if let Some(path) = std::env::var_os("SITEPACK_BENCH_DUMP") {
            std::fs::write(&path, &bytes).expect("write SITEPACK_BENCH_DUMP");
        }
        bytes
    })
}

fn bundle() -> &'static Bundle<&'static [u8]> {
    static B: OnceLock<Bundle<&'static [u8]>> = OnceLock::new();
    B.get_or_init(|| Bundle::open(bytes()).expect("open"))
}

fn sample(f: impl Fn(u32, u32) -> String) -> Vec<String> {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    (0..SAMPLE)
        .map(|_| {
            let r = rng.next();
            f(
                (r % SECTIONS as u64) as u32,
                ((r >> 32) % PAGES as u64) as u32,
            )
        })
        .collect()
}

/// A `Fn + Sync` input generator for divan: the next path of `paths`, round robin.
fn cycle(paths: &'static [String]) -> impl Fn() -> &'static str + Sync {
    let i = AtomicUsize::new(0);
    move || paths[i.fetch_add(1, Ordering::Relaxed) % paths.len()].as_str()
}

fn hits() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| sample(key))
}

fn all_keys() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        let mut keys: Vec<String> = (0..SECTIONS)
            .flat_map(|s| (0..PAGES).map(move |p| key(s, p)))
            .collect();
        let mut rng = Rng(0xC0FF_EE00_1234_5678);
        for i in (1..keys.len()).rev() {
            keys.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        keys
    })
}

fn misses() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    // Same shape and length as real keys, absent from the bundle.
    S.get_or_init(|| sample(|s, p| format!("/docs/section-{s:03}/page-{p:04}.htmx")))
}

fn main() {
    bytes();
    divan::main();
}

/// Validate the whole bundle: header, section table, BLAKE3 of the index,
/// every record's references.
#[divan::bench(sample_count = 50, sample_size = 1)]
fn open() -> Bundle<&'static [u8]> {
    Bundle::open(divan::black_box(bytes())).unwrap()
}

/// The part of `open` that is the index checksum alone.
#[divan::bench(sample_count = 50, sample_size = 1)]
fn open_checksum_only() -> blake3::Hash {
    let b = bytes();
    let off = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
    blake3::hash(divan::black_box(&b[off..off + len]))
}

/// `Bundle::route` for an existing path (4,096 random keys, cycled: the
/// table, records and strings they touch stay in L2/L3).
#[divan::bench(sample_count = 1000, sample_size = 64)]
fn route_hit(bencher: Bencher) {
    let b = bundle();
    let next = cycle(hits());
    bencher
        .with_inputs(&next)
        .bench_values(|p| b.route(p).expect("hit").asset);
}

/// `Bundle::route` for an existing path drawn from all 100,000 keys in a
/// shuffled order: mostly cache-cold, like random traffic over a large site.
#[divan::bench(sample_count = 1000, sample_size = 64)]
fn route_hit_all_keys(bencher: Bencher) {
    let b = bundle();
    let next = cycle(all_keys());
    bencher
        .with_inputs(&next)
        .bench_values(|p| b.route(p).expect("hit").asset);
}

/// `Bundle::route` for one existing path, always the same (hot in cache).
#[divan::bench]
fn route_hit_same_path(bencher: Bencher) {
    let b = bundle();
    bencher.bench(|| {
        b.route(divan::black_box("/docs/section-017/page-0423.html"))
            .expect("hit")
            .asset
    });
}

/// `Bundle::route` for an absent path (4,096 random misses, cycled).
#[divan::bench(sample_count = 1000, sample_size = 64)]
fn route_miss(bencher: Bencher) {
    let b = bundle();
    let next = cycle(misses());
    bencher
        .with_inputs(&next)
        .bench_values(|p| b.route(p).is_none());
}

/// `Bundle::find_asset` (binary search over 100k sorted keys), existing path.
#[divan::bench(sample_count = 1000, sample_size = 64)]
fn find_asset_hit(bencher: Bencher) {
    let b = bundle();
    let next = cycle(hits());
    bencher
        .with_inputs(&next)
        .bench_values(|p| b.find_asset(p).expect("hit").blob);
}

/// `Bundle::find_asset` for an absent path.
#[divan::bench(sample_count = 1000, sample_size = 64)]
fn find_asset_miss(bencher: Bencher) {
    let b = bundle();
    let next = cycle(misses());
    bencher
        .with_inputs(&next)
        .bench_values(|p| b.find_asset(p).is_none());
}
