//! `sitepack diff`: bundles built from fixture trees written by each test,
//! compared through the library (`sitepack::diff::diff`) and the binary
//! (exit codes, JSON, text, markdown).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sitepack::build::{build, BuildOptions, Compression, WalkOptions};
use sitepack::config::{Config, HtmlHandling, NotFoundHandling, RunWorkerFirst};
use sitepack::diff::{diff, diff_routers, Changes, Now};
use sitepack::format::layout::{action, NO_ASSET};
use sitepack::format::write::{write_bundle, AssetSpec, BlobSpec, BundleSpec, RouteSpec};
use sitepack::format::Bundle;
use sitepack::route::Router;

const BIN: &str = env!("CARGO_BIN_EXE_sitepack");

// --- a peak-tracking allocator, for the "memory ∝ changes" test ----------

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Bytes live now, and the most live at once, since counting began.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    if COUNTING.with(Cell::get) {
        let live = LIVE.with(|l| {
            l.set(l.get() + delta);
            l.get()
        });
        PEAK.with(|p| p.set(p.get().max(live)));
    }
}

// SAFETY: forwards every call to the system allocator unchanged; the only
// extra work is updating thread-local counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The peak of heap bytes allocated (and not yet freed) on this thread while
/// `f` runs, the result included.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.with(|c| c.set(0));
    PEAK.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, PEAK.with(Cell::get).max(0) as usize)
}

// --- fixture trees ----------------------------------------------------------

/// A scratch directory holding trees and bundles.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `files` (path, content) as tree `name` and builds it into
    /// `name.pack`.
    fn pack(&self, name: &str, files: &[(&str, &str)], config: &Config) -> PathBuf {
        self.pack_with(name, files, config, Compression::Fast)
    }

    fn pack_with(
        &self,
        name: &str,
        files: &[(&str, &str)],
        config: &Config,
        compression: Compression,
    ) -> PathBuf {
        let root = self.dir.path().join(name);
        for (f, content) in files {
            let p = root.join(f.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
        }
        fs::create_dir_all(&root).unwrap();
        let out = self.dir.path().join(format!("{name}.pack"));
        let opts = BuildOptions {
            root,
            output: out.clone(),
            config: config.clone(),
            compression,
            walk: WalkOptions::default(),
        };
        build(&opts, &()).unwrap_or_else(|e| panic!("build {name}: {e}"));
        out
    }
}

fn open(path: &Path) -> Bundle<Vec<u8>> {
    Bundle::open(fs::read(path).unwrap()).unwrap()
}

fn changes(old: &Path, new: &Path) -> Changes {
    let c = diff(&open(old), &open(new));
    // `diff` answers from the route table where no rule or Worker can
    // intervene; `diff_routers` asks the router for every answer.
    let routers = diff_routers(
        &Router::new(open(old)).unwrap(),
        &Router::new(open(new)).unwrap(),
    );
    assert_eq!(c, routers);
    assert_eq!(c.format, 1);
    assert_eq!(c.identical, c.is_identical());
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], old: &Path, new: &Path) -> Run {
    let out = Command::new(BIN)
        .arg("diff")
        .arg(old)
        .arg(new)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn json_of(old: &Path, new: &Path) -> (i32, Value) {
    let r = run(&["--json"], old, new);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
    (r.code, v)
}

fn paths<T>(items: &[T], f: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(f).collect()
}

/// A small site used as the base of most tests.
const SITE: &[(&str, &str)] = &[
    ("/index.html", "<h1>home</h1>\n"),
    ("/about.html", "<h1>about</h1>\n"),
    ("/blog/index.html", "<h1>blog</h1>\n"),
    ("/blog/first.html", "<p>first post</p>\n"),
    ("/img/logo.png", "PNG logo bytes"),
    ("/robots.txt", "User-agent: *\n"),
];

fn with(
    base: &[(&'static str, &'static str)],
    drop: &[&str],
    add: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = base
        .iter()
        .copied()
        .filter(|(p, _)| !drop.contains(p))
        .collect();
    v.extend_from_slice(add);
    v
}

/// Asserts only the named parts of `c` are non-empty.
fn only(c: &Changes, parts: &[&str]) {
    let present = [
        ("added", !c.added.is_empty()),
        ("removed", !c.removed.is_empty()),
        ("modified", !c.modified.is_empty()),
        ("renamed", !c.renamed.is_empty()),
        ("config", !c.config_changed.is_empty()),
        ("rules", !c.rules_changed.is_empty()),
        ("broken", !c.broken_urls.is_empty()),
        ("redirected", !c.redirected_urls.is_empty()),
        ("upload", c.upload.blobs > 0),
    ];
    for (name, is) in present {
        assert_eq!(is, parts.contains(&name), "{name} in {c:#?}");
    }
}

// --- the tests --------------------------------------------------------------

#[test]
fn identical_bundles_exit_0_with_empty_lists() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack("b", SITE, &Config::default());
    let c = changes(&a, &b);
    assert!(c.identical);
    only(&c, &[]);
    assert_eq!(c.unchanged, SITE.len() as u64);

    let (code, v) = json_of(&a, &b);
    assert_eq!(code, 0);
    assert_eq!(v["format"], 1);
    for key in [
        "added",
        "removed",
        "modified",
        "renamed",
        "config_changed",
        "rules_changed",
        "broken_urls",
        "redirected_urls",
    ] {
        assert_eq!(v[key], json!([]), "{key}");
    }
    assert_eq!(v["unchanged"], SITE.len());
    assert_eq!(
        v["upload"],
        json!({"blobs": 0, "variants": 0, "bytes": 0, "identity_bytes": 0})
    );
    let r = run(&[], &a, &b);
    assert_eq!(r.code, 0);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.starts_with("identical: 6 assets unchanged"),
        "{}",
        r.stderr
    );
    // The same bundle against itself.
    assert_eq!(run(&[], &a, &a).code, 0);
}

/// The same files compressed anew (another `--compression`): no asset
/// changed, but the variants OLD lacks are in the upload plan, so the
/// bundles are not identical.
#[test]
fn recompressed_variants_are_uploaded_without_changing_assets() {
    let w = Work::new();
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(400);
    let files = [("/a.html", text.as_str()), ("/copy.html", text.as_str())];
    let cfg = Config::default();
    let old = w.pack_with("old", &files, &cfg, Compression::Fast);
    let new = w.pack_with("new", &files, &cfg, Compression::Max);
    let c = changes(&old, &new);
    only(&c, &[]);
    assert_eq!(c.unchanged, 2);
    assert_eq!(c.upload.blobs, 0);
    assert_eq!(c.upload.identity_bytes, 0);
    let nb = open(&new);
    let blob = nb.asset(0).unwrap().blob;
    let stored: Vec<_> = nb.variants(blob).collect();
    let ob = open(&old);
    let fresh: Vec<_> = stored
        .iter()
        .filter(|v| {
            !ob.variants(ob.asset(0).unwrap().blob)
                .any(|o| o.hash == v.hash)
        })
        .collect();
    assert!(
        !fresh.is_empty(),
        "max must store some other variant than fast"
    );
    // Two paths share the blob: its new variants are counted once.
    assert_eq!(c.upload.variants, fresh.len() as u64);
    assert_eq!(
        c.upload.bytes,
        fresh.iter().map(|v| v.bytes.len() as u64).sum::<u64>()
    );
    assert!(!c.identical);
    assert_eq!(json_of(&old, &new).0, 1);
}

#[test]
fn an_added_file_alone() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack(
        "b",
        &with(SITE, &[], &[("/new.txt", "brand new\n")]),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["added", "upload"]);
    assert_eq!(paths(&c.added, |a| &a.path), ["/new.txt"]);
    assert_eq!(c.added[0].size, 10);
    assert_eq!(c.upload.blobs, 1);
    assert_eq!(c.upload.identity_bytes, 10);
    assert!(c.upload.bytes >= 10);
    assert_eq!(c.unchanged, SITE.len() as u64);
    let (code, v) = json_of(&a, &b);
    assert_eq!(code, 1);
    assert_eq!(v["added"], json!([{"path": "/new.txt", "size": 10}]));
}

#[test]
fn a_removed_file_alone_breaks_its_urls() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack(
        "b",
        &with(SITE, &["/robots.txt", "/blog/first.html"], &[]),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["removed", "broken"]);
    assert_eq!(
        paths(&c.removed, |a| &a.path),
        ["/blog/first.html", "/robots.txt"]
    );
    // auto-trailing-slash: `/blog/first.html` was a redirect to `/blog/first`,
    // so the 200 that broke is the alias.
    assert_eq!(
        paths(&c.broken_urls, |b| &b.path),
        ["/blog/first", "/robots.txt"]
    );
    for b in &c.broken_urls {
        assert_eq!(
            (b.old, b.new, b.location.as_deref()),
            (200, Now::Status(404), None)
        );
    }
    let (code, v) = json_of(&a, &b);
    assert_eq!(code, 1);
    assert_eq!(
        v["broken_urls"][1],
        json!({"path": "/robots.txt", "old": 200, "new": 404, "location": null})
    );
}

#[test]
fn a_modified_file_alone() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack(
        "b",
        &with(
            SITE,
            &["/robots.txt"],
            &[("/robots.txt", "User-agent: *\nDisallow: /\n")],
        ),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["modified", "upload"]);
    assert_eq!(c.modified.len(), 1);
    let m = &c.modified[0];
    assert_eq!(
        (m.path.as_str(), m.old_size, m.new_size),
        ("/robots.txt", 14, 26)
    );
    assert_eq!(c.upload.blobs, 1);
    assert_eq!(c.unchanged, SITE.len() as u64 - 1);
    // --fail-on-broken-urls: different, but no URL broke.
    assert_eq!(run(&["--fail-on-broken-urls"], &a, &b).code, 0);
    assert_eq!(run(&[], &a, &b).code, 1);
}

#[test]
fn a_rename_is_detected_as_such() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack(
        "b",
        &with(
            SITE,
            &["/img/logo.png"],
            &[("/images/logo.png", "PNG logo bytes")],
        ),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["renamed", "broken"]);
    assert_eq!(c.renamed.len(), 1);
    assert_eq!(c.renamed[0].from, "/img/logo.png");
    assert_eq!(c.renamed[0].to, "/images/logo.png");
    assert_eq!(c.renamed[0].size, 14);
    // Nothing to upload: the content is already there.
    assert_eq!(c.upload.blobs, 0);
    // The old URL is gone all the same.
    assert_eq!(paths(&c.broken_urls, |b| &b.path), ["/img/logo.png"]);
    assert_eq!(run(&["--fail-on-broken-urls"], &a, &b).code, 1);
}

#[test]
fn renames_prefer_the_same_file_name_and_skip_empty_files() {
    let w = Work::new();
    let files = [("/a/x.css", "same"), ("/a/y.css", "same"), ("/e1.txt", "")];
    let moved = [("/b/y.css", "same"), ("/c/x.css", "same"), ("/e2.txt", "")];
    let a = w.pack("a", &files, &Config::default());
    let b = w.pack("b", &moved, &Config::default());
    let c = changes(&a, &b);
    let pairs: Vec<(&str, &str)> = c
        .renamed
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str()))
        .collect();
    assert_eq!(pairs, [("/a/x.css", "/c/x.css"), ("/a/y.css", "/b/y.css")]);
    assert_eq!(paths(&c.added, |a| &a.path), ["/e2.txt"]);
    assert_eq!(paths(&c.removed, |a| &a.path), ["/e1.txt"]);
}

fn about_move(html: HtmlHandling) -> Changes {
    let w = Work::new();
    let config = Config {
        html_handling: html,
        ..Config::default()
    };
    let a = w.pack("a", SITE, &config);
    let b = w.pack(
        "b",
        &with(
            SITE,
            &["/about.html"],
            &[("/about/index.html", "<h1>about</h1>\n")],
        ),
        &config,
    );
    let c = changes(&a, &b);
    assert_eq!(c.renamed.len(), 1, "{c:#?}");
    assert_eq!(
        (c.renamed[0].from.as_str(), c.renamed[0].to.as_str()),
        ("/about.html", "/about/index.html")
    );
    c
}

#[test]
fn about_html_to_about_index_is_url_compatible_under_auto_trailing_slash() {
    let c = about_move(HtmlHandling::AutoTrailingSlash);
    assert_eq!(c.broken_urls, []);
    // `/about` now 307s to `/about/`, which serves the same page.
    assert_eq!(paths(&c.redirected_urls, |r| &r.path), ["/about"]);
    assert_eq!(c.redirected_urls[0].status, 307);
    assert_eq!(c.redirected_urls[0].location, "/about/");
}

#[test]
fn about_html_to_about_index_is_flagged_under_none() {
    let c = about_move(HtmlHandling::None);
    assert_eq!(paths(&c.broken_urls, |b| &b.path), ["/about.html"]);
    assert_eq!(c.broken_urls[0].new, Now::Status(404));
    assert_eq!(c.redirected_urls, []);
}

#[test]
fn a_config_change_alone() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let config = Config {
        not_found_handling: NotFoundHandling::SinglePageApplication,
        compatibility_date: "2025-06-01".into(),
        compatibility_flags: vec!["nodejs_compat".into()],
        ..Config::default()
    };
    let b = w.pack("b", SITE, &config);
    let c = changes(&a, &b);
    only(&c, &["config"]);
    let keys: Vec<&str> = c.config_changed.iter().map(|k| k.key).collect();
    assert_eq!(
        keys,
        [
            "not_found_handling",
            "compatibility_date",
            "compatibility_flags"
        ]
    );
    let (code, v) = json_of(&a, &b);
    assert_eq!(code, 1);
    assert_eq!(
        v["config_changed"][0],
        json!({"key": "not_found_handling", "old": "none", "new": "single-page-application"})
    );
    assert_eq!(v["config_changed"][2]["new"], json!(["nodejs_compat"]));
}

#[test]
fn html_handling_change_breaks_the_aliases_it_drops() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let none = Config {
        html_handling: HtmlHandling::None,
        ..Config::default()
    };
    let b = w.pack("b", SITE, &none);
    let c = changes(&a, &b);
    assert_eq!(c.config_changed[0].key, "html_handling");
    assert_eq!(c.config_changed[0].old, json!("auto-trailing-slash"));
    assert_eq!(c.config_changed[0].new, json!("none"));
    // `/about`, `/blog/first`, `/blog/` and `/` answered 200 through aliases.
    let broken = paths(&c.broken_urls, |b| &b.path);
    assert_eq!(broken, ["/", "/about", "/blog/", "/blog/first"], "{c:#?}");
    assert!(c.broken_urls.iter().all(|b| b.new == Now::Status(404)));
}

#[test]
fn run_worker_first_sends_urls_to_the_worker() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let config = Config {
        run_worker_first: RunWorkerFirst::Patterns(vec!["/blog/*".into()]),
        ..Config::default()
    };
    let b = w.pack("b", SITE, &config);
    let c = changes(&a, &b);
    only(&c, &["config", "broken"]);
    assert_eq!(c.config_changed[0].new, json!(["/blog/*"]));
    assert_eq!(
        paths(&c.broken_urls, |b| &b.path),
        ["/blog/", "/blog/first"]
    );
    assert!(c.broken_urls.iter().all(|b| b.new == Now::Worker));
    let (_, v) = json_of(&a, &b);
    assert_eq!(v["broken_urls"][0]["new"], "worker");
}

#[test]
fn the_404_page_answering_counts_as_broken() {
    let w = Work::new();
    let config = Config {
        not_found_handling: NotFoundHandling::Page404,
        ..Config::default()
    };
    let site = with(SITE, &[], &[("/404.html", "not here")]);
    let a = w.pack("a", &site, &config);
    let b = w.pack("b", &with(&site, &["/robots.txt"], &[]), &config);
    let c = changes(&a, &b);
    assert_eq!(paths(&c.broken_urls, |b| &b.path), ["/robots.txt"]);
    assert_eq!(c.broken_urls[0].new, Now::Status(404));
}

#[test]
fn a_single_page_application_fallback_still_answers_200() {
    // Documented: the SPA index answering is a 200, so not a broken URL.
    let w = Work::new();
    let config = Config {
        not_found_handling: NotFoundHandling::SinglePageApplication,
        ..Config::default()
    };
    let a = w.pack("a", SITE, &config);
    let b = w.pack("b", &with(SITE, &["/robots.txt"], &[]), &config);
    let c = changes(&a, &b);
    only(&c, &["removed"]);
}

#[test]
fn a_headers_change_alone() {
    let w = Work::new();
    let h1 = "/assets/*\n  Cache-Control: max-age=60\n/*\n  X-Frame-Options: DENY\n";
    let h2 =
        "# comment\n/assets/*\n  Cache-Control: max-age=3600\n/*\n    X-Frame-Options:   DENY\n";
    let a = w.pack(
        "a",
        &with(SITE, &[], &[("/_headers", h1)]),
        &Config::default(),
    );
    let b = w.pack(
        "b",
        &with(SITE, &[], &[("/_headers", h2)]),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["rules"]);
    assert_eq!(c.rules_changed.len(), 1);
    let r = &c.rules_changed[0];
    assert_eq!(r.file, "_headers");
    // Lines carry their pattern; comments and spacing are not changes.
    assert_eq!(r.added, ["/assets/*  Cache-Control: max-age=3600"]);
    assert_eq!(r.removed, ["/assets/*  Cache-Control: max-age=60"]);
    assert!(!r.reordered);
}

#[test]
fn a_changed_redirects_rule() {
    let w = Work::new();
    let r1 = "/home / 301\n/old /blog/ 301\n";
    let r2 = "/home / 301\n/old /blog/first 308\n/robots.txt /about 302\n";
    let a = w.pack(
        "a",
        &with(SITE, &[], &[("/_redirects", r1)]),
        &Config::default(),
    );
    let b = w.pack(
        "b",
        &with(SITE, &[], &[("/_redirects", r2)]),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["rules", "broken"]);
    let r = &c.rules_changed[0];
    assert_eq!(r.file, "_redirects");
    assert_eq!(r.added, ["/old /blog/first 308", "/robots.txt /about 302"]);
    assert_eq!(r.removed, ["/old /blog/ 301"]);
    // `/old` never answered 200; `/robots.txt` did and now redirects.
    assert_eq!(c.broken_urls.len(), 1);
    let b0 = &c.broken_urls[0];
    assert_eq!(
        (b0.path.as_str(), b0.new, b0.location.as_deref()),
        ("/robots.txt", Now::Status(302), Some("/about"))
    );
    let (code, v) = json_of(&a, &b);
    assert_eq!(code, 1);
    assert_eq!(
        v["rules_changed"][0],
        json!({"file": "_redirects", "added": ["/old /blog/first 308", "/robots.txt /about 302"],
               "removed": ["/old /blog/ 301"], "reordered": false})
    );
    assert_eq!(v["broken_urls"][0]["new"], 302);
}

#[test]
fn reordered_redirects_are_a_change() {
    let w = Work::new();
    let a = w.pack(
        "a",
        &with(SITE, &[], &[("/_redirects", "/a /b 301\n/c /d 301\n")]),
        &Config::default(),
    );
    let b = w.pack(
        "b",
        &with(SITE, &[], &[("/_redirects", "/c /d 301\n/a /b 301\n")]),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["rules"]);
    assert!(c.rules_changed[0].reordered);
    assert!(c.rules_changed[0].added.is_empty() && c.rules_changed[0].removed.is_empty());
}

#[test]
fn a_rule_removed_from_old_makes_its_path_count() {
    // OLD redirected `/robots.txt` (so it never answered 200 there): removing
    // the file in NEW breaks nothing.
    let w = Work::new();
    let a = w.pack(
        "a",
        &with(SITE, &[], &[("/_redirects", "/robots.txt / 301\n")]),
        &Config::default(),
    );
    let b = w.pack(
        "b",
        &with(
            SITE,
            &["/robots.txt"],
            &[("/_redirects", "/robots.txt / 301\n")],
        ),
        &Config::default(),
    );
    let c = changes(&a, &b);
    only(&c, &["removed"]);
}

fn corrupt_index(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let index_offset = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
    bytes[index_offset + 40] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupted_index_is_exit_2_with_a_message() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack("b", SITE, &Config::default());
    corrupt_index(&b);
    for (old, new) in [(&a, &b), (&b, &a)] {
        for args in [&[][..], &["--json"], &["--fail-on-broken-urls"]] {
            let r = run(args, old, new);
            assert_eq!(r.code, 2, "{}", r.stderr);
            assert!(r.stdout.is_empty());
            assert!(
                r.stderr.contains("error:")
                    && r.stderr.contains(&*b.display().to_string())
                    && r.stderr.contains("checksum"),
                "{}",
                r.stderr
            );
        }
    }
    let missing = w.dir.path().join("missing.pack");
    let r = run(&[], &a, &missing);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.pack"), "{}", r.stderr);
    // Usage errors are exit 2 too.
    assert_eq!(run(&["--json", "--format", "text"], &a, &a).code, 2);
}

#[test]
fn text_and_markdown_open_with_the_summary() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack(
        "b",
        &with(
            SITE,
            &["/robots.txt", "/img/logo.png"],
            &[
                ("/new.txt", "n"),
                ("/images/logo.png", "PNG logo bytes"),
                ("/_redirects", "/x /y\n"),
            ],
        ),
        &Config::default(),
    );
    let summary = "1 added, 1 removed, 0 modified, 1 renamed, 4 unchanged; _redirects changed; \
                   2 broken URLs; upload 1 blob (";
    let r = run(&[], &a, &b);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(lines[0].starts_with(summary), "{}", r.stderr);
    assert!(
        lines.contains(&"  broken     /img/logo.png  200 -> 404"),
        "{}",
        r.stderr
    );
    assert!(lines.contains(&"  renamed    /img/logo.png -> /images/logo.png"));
    assert!(lines.contains(&"  _redirects  + /x /y"));
    let broken: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("  broken "))
        .collect();
    assert_eq!(broken.len(), 2);
    assert!(broken.windows(2).all(|w| w[0] < w[1]), "sorted");

    let r = run(&["--format", "markdown"], &a, &b);
    assert_eq!(r.code, 1);
    assert!(r.stderr.is_empty());
    assert!(
        r.stdout.starts_with("### sitepack diff\n\n⚠️ **"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(summary));
    assert!(
        r.stdout.contains("| `/robots.txt` | 200 | 404 |"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("```diff\n+ /x /y\n```"), "{}", r.stdout);

    let r = run(&["--format", "json"], &a, &b);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["renamed"],
        json!([{"from": "/img/logo.png", "to": "/images/logo.png", "size": 14}])
    );
}

#[test]
fn library_and_cli_agree() {
    let w = Work::new();
    let a = w.pack("a", SITE, &Config::default());
    let b = w.pack(
        "b",
        &with(
            SITE,
            &["/about.html"],
            &[
                ("/about/index.html", "changed"),
                ("/_redirects", "/blog/ /x 301\n"),
            ],
        ),
        &Config::default(),
    );
    let lib = serde_json::to_value(changes(&a, &b)).unwrap();
    let (_, cli) = json_of(&a, &b);
    assert_eq!(lib, cli);
}

// --- memory: proportional to the changes, not to the bundles ---------------

/// `n` pages with an alias route each; pages in `changed` get other bytes,
/// pages in `gone` are left out, and `extra` pages are added.
fn synthetic(n: u32, changed: &[u32], gone: &[u32], extra: u32) -> Vec<u8> {
    let mut keys: Vec<(String, String)> = (0..n)
        .filter(|i| !gone.contains(i))
        .map(|i| {
            let body = if changed.contains(&i) {
                format!("<p>{i} v2</p>")
            } else {
                format!("<p>{i}</p>")
            };
            (format!("/p/{i:06}.html"), body)
        })
        .chain((0..extra).map(|i| (format!("/q/{i:06}.html"), format!("<p>new {i}</p>"))))
        .collect();
    keys.sort();
    let mut spec = BundleSpec::default();
    for (i, (key, body)) in keys.into_iter().enumerate() {
        let data = body.into_bytes();
        let hash = *blake3::hash(&data).as_bytes();
        spec.blobs.push(BlobSpec {
            data,
            hash,
            variants: vec![],
        });
        let i = i as u32;
        spec.routes.push(RouteSpec {
            path: key.trim_end_matches(".html").to_string(),
            action: action::SERVE,
            status: 200,
            asset: i,
            location: String::new(),
            exact_asset: NO_ASSET,
        });
        spec.routes.push(RouteSpec {
            path: key.clone(),
            action: action::SERVE,
            status: 200,
            asset: i,
            location: String::new(),
            exact_asset: i,
        });
        spec.assets.push(AssetSpec {
            key,
            content_type: Some("text/html".into()),
            blob: i,
            etag: hash[..16].try_into().unwrap(),
        });
    }
    let mut out = Cursor::new(Vec::new());
    write_bundle(&spec, &mut out).unwrap();
    out.into_inner()
}

#[test]
fn memory_grows_with_the_changes_not_the_bundles() {
    let measure = |n: u32| {
        let changed: Vec<u32> = (0..10).map(|k| k * 97 + 5).collect();
        let gone: Vec<u32> = (0..10).map(|k| k * 89 + 3).collect();
        let old = Bundle::open(synthetic(n, &[], &[], 0)).unwrap();
        let new = Bundle::open(synthetic(n, &changed, &gone, 10)).unwrap();
        let (c, bytes) = peak_heap(|| diff(&old, &new));
        assert_eq!(
            (c.modified.len(), c.removed.len(), c.added.len()),
            (10, 10, 10)
        );
        assert_eq!(c.broken_urls.len(), 20);
        assert_eq!(c.upload.blobs, 20);
        assert_eq!(c.unchanged, u64::from(n) - 20);
        bytes
    };
    let small = measure(2_000);
    let large = measure(40_000);
    // 20x the entries, the same changes: no more memory at its peak (the
    // lazily opened router's scratch is a constant).
    assert!(
        large <= small + small / 4,
        "diff of 2,000 entries peaked at {small} heap bytes, of 40,000 at {large}"
    );
}
