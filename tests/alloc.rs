//! The request path does not touch the heap: a counting global allocator
//! watches `Router::resolve` for hits, html_handling redirects, 404-page
//! fallbacks, worker decisions and rejections over the demo site, whose
//! `_headers` and `_redirects` rules are loaded (and match none of these).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the only
// extra work is bumping a thread-local counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, COUNT.with(Cell::get))
}

#[test]
fn resolve_does_not_allocate() {
    use sitepack::build::{build, BuildOptions, Compression, WalkOptions};
    use sitepack::config::{Config, NotFoundHandling, RunWorkerFirst};
    use sitepack::format::Bundle;
    use sitepack::route::{Outcome, RequestHead, Router, Scratch};

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo.pack");
    let opts = BuildOptions {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-site"),
        output: out.clone(),
        config: Config {
            not_found_handling: NotFoundHandling::Page404,
            run_worker_first: RunWorkerFirst::Patterns(vec!["/api/*".into()]),
            ..Config::default()
        },
        compression: Compression::Fast,
        walk: WalkOptions::default(),
    };
    build(&opts, &()).unwrap();
    let router = Router::new(Bundle::open(std::fs::read(&out).unwrap()).unwrap()).unwrap();
    let mut scratch = Scratch::new();

    let cases: &[(&str, &str)] = &[
        ("/", "asset"),
        ("/about", "asset"),
        ("/assets/app.3f9a1c.js?v=1", "asset"),
        ("/blog/first-post", "asset"),
        ("/about.html", "redirect"),
        ("/docs/getting-started?x=1", "redirect"),
        ("/%5Bid%5d", "redirect"),
        ("/no/such/page", "asset"),
        ("/api/users", "worker"),
        ("/%00", "rejected"),
    ];
    for (target, want) in cases {
        let req = RequestHead {
            method: "GET",
            target: target.as_bytes(),
            if_none_match: Some(b"\"0123\", W/\"abcd\""),
            sec_fetch_mode: Some(b"navigate"),
            has_authorization: false,
            has_range: false,
            origin: Some("http://example.com"),
        };
        let (kind, n) = allocations(|| match router.resolve(&req, true, &mut scratch) {
            Outcome::Asset { .. } => "asset",
            Outcome::Redirect { .. } => "redirect",
            Outcome::Worker { .. } => "worker",
            Outcome::Rejected { .. } => "rejected",
            _ => "other",
        });
        assert_eq!(kind, *want, "{target}");
        assert_eq!(n, 0, "{target}: {n} heap allocations on the request path");
    }
}
