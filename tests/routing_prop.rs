//! Property: for random trees, modes and request paths, the compiled bundle
//! and router answer exactly what a direct, slow implementation of the spec's
//! decision procedure answers (`cloudflare-assets.md` §1.1 decoding and
//! canonical form, §1.3 safe redirects, §1.4 per-mode steps, §2
//! not_found_handling, §0 steps 4–6).
//!
//! The reference lives in the `reference` module below. It imports nothing
//! from the library: it works on a plain map from manifest key to a content
//! id (same id and same extension = same content hash, §8.2). Before it is
//! trusted as an oracle it is checked on its own against the conformance
//! corpus (`reference_matches_conformance_corpus`) and against the §1.5
//! tables and the worked examples of the spec (`reference_matches_spec_tables`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use common::build_router;
use proptest::prelude::*;
use serde_json::Value;
use sitepack::config::{Config, HtmlHandling, NotFoundHandling};
use sitepack::route::{Outcome, RequestHead, Router, Scratch};

/// A direct reading of the spec, deliberately naive: every step is
/// re-evaluated from scratch, nothing is precomputed or cached.
mod reference {
    use std::collections::BTreeMap;

    /// `html_handling` (§1.4).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Html {
        AutoTrailingSlash,
        ForceTrailingSlash,
        DropTrailingSlash,
        None,
    }

    /// `not_found_handling` (§2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum NotFound {
        None,
        Page404,
        SinglePageApplication,
    }

    impl Html {
        pub const ALL: [Html; 4] = [
            Html::AutoTrailingSlash,
            Html::ForceTrailingSlash,
            Html::DropTrailingSlash,
            Html::None,
        ];

        pub fn parse(s: &str) -> Option<Html> {
            Some(match s {
                "auto-trailing-slash" => Html::AutoTrailingSlash,
                "force-trailing-slash" => Html::ForceTrailingSlash,
                "drop-trailing-slash" => Html::DropTrailingSlash,
                "none" => Html::None,
                _ => return None,
            })
        }
    }

    impl NotFound {
        pub const ALL: [NotFound; 3] = [
            NotFound::None,
            NotFound::Page404,
            NotFound::SinglePageApplication,
        ];

        pub fn parse(s: &str) -> Option<NotFound> {
            Some(match s {
                "none" => NotFound::None,
                "404-page" => NotFound::Page404,
                "single-page-application" => NotFound::SinglePageApplication,
                _ => return None,
            })
        }
    }

    /// The manifest: key → content id. Two keys have the same content hash
    /// iff they have the same content id *and* the same extension (§8.2: the
    /// extension is part of the hashed text).
    pub struct Site {
        files: BTreeMap<String, u32>,
    }

    impl Site {
        pub fn new(files: impl IntoIterator<Item = (String, u32)>) -> Site {
            Site {
                files: files.into_iter().collect(),
            }
        }

        /// `has(k)`.
        pub fn has(&self, key: &str) -> bool {
            self.files.contains_key(key)
        }

        /// `hash(k)`.
        pub fn hash(&self, key: &str) -> Option<(u32, String)> {
            self.files
                .get(key)
                .map(|&content| (content, node_extname(key)))
        }
    }

    /// Node's `path.extname` without the dot: the text after the last `.` of
    /// the basename, except that a basename whose only dot is its first
    /// character (`.htaccess`, `.html`) and `..` have none.
    pub fn node_extname(key: &str) -> String {
        let base = key.rsplit('/').next().unwrap_or("");
        if base == ".." {
            return String::new();
        }
        match base.rfind('.') {
            None | Some(0) => String::new(),
            Some(i) => base[i + 1..].to_string(),
        }
    }

    /// What resolving a decoded path yields.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Intent {
        Serve { key: String, status: u16 },
        Redirect { to: String },
        Nothing,
    }

    /// One line of §1.4: "serve X (if it exists)" or "try F→D".
    enum Step {
        Serve(String),
        Try { file: String, dest: String },
    }

    fn serve(k: impl Into<String>) -> Step {
        Step::Serve(k.into())
    }

    fn try_(file: impl Into<String>, dest: impl Into<String>) -> Step {
        Step::Try {
            file: file.into(),
            dest: dest.into(),
        }
    }

    /// The §1.4 steps for `p`, top to bottom. The suffix cases (1–4) are
    /// exclusive; the "any remaining case" steps (5) come after them for
    /// every path (the spec: "the first one that returns wins", and table D
    /// of §1.5: `/foo.html` is served 200 in auto mode only through step 5).
    fn steps(mode: Html, p: &str) -> Vec<Step> {
        let mut s = Vec::new();
        match mode {
            Html::None => s.push(serve(p)),
            Html::AutoTrailingSlash => {
                if let Some(stem) = p.strip_suffix("/index") {
                    // P minus `index` keeps its slash; P minus `/index` does not.
                    s.push(serve(p));
                    s.push(try_(format!("{p}.html"), format!("{stem}/")));
                    s.push(try_(format!("{stem}.html"), stem));
                } else if let Some(stem) = p.strip_suffix("/index.html") {
                    s.push(try_(p, format!("{stem}/")));
                    s.push(try_(format!("{stem}.html"), stem));
                } else if let Some(stem) = p.strip_suffix('/') {
                    s.push(serve(format!("{p}index.html")));
                    s.push(try_(format!("{stem}.html"), stem));
                } else if let Some(stem) = p.strip_suffix(".html") {
                    s.push(try_(p, stem));
                    s.push(try_(format!("{stem}/index.html"), format!("{stem}/")));
                }
                s.push(serve(p));
                s.push(serve(format!("{p}.html")));
                s.push(try_(format!("{p}/index.html"), format!("{p}/")));
            }
            Html::ForceTrailingSlash => {
                if let Some(stem) = p.strip_suffix("/index") {
                    s.push(serve(p));
                    s.push(try_(format!("{p}.html"), format!("{stem}/")));
                    s.push(try_(format!("{stem}.html"), format!("{stem}/")));
                } else if let Some(stem) = p.strip_suffix("/index.html") {
                    s.push(try_(p, format!("{stem}/")));
                    s.push(try_(format!("{stem}.html"), format!("{stem}/")));
                } else if let Some(stem) = p.strip_suffix('/') {
                    s.push(serve(format!("{p}index.html")));
                    s.push(serve(format!("{stem}.html")));
                } else if let Some(stem) = p.strip_suffix(".html") {
                    s.push(try_(p, format!("{stem}/")));
                    s.push(serve(p));
                    s.push(try_(format!("{stem}/index.html"), format!("{stem}/")));
                }
                s.push(serve(p));
                s.push(try_(format!("{p}.html"), format!("{p}/")));
                s.push(try_(format!("{p}/index.html"), format!("{p}/")));
            }
            Html::DropTrailingSlash => {
                if let Some(stem) = p.strip_suffix("/index") {
                    s.push(serve(p));
                    if p == "/index" {
                        s.push(try_("/index.html", "/"));
                    } else {
                        s.push(try_(format!("{stem}.html"), stem));
                        s.push(try_(format!("{p}.html"), stem));
                    }
                } else if let Some(stem) = p.strip_suffix("/index.html") {
                    if p == "/index.html" {
                        s.push(try_(p, "/"));
                    } else {
                        s.push(try_(p, stem));
                        s.push(serve(p));
                        s.push(try_(format!("{stem}.html"), stem));
                    }
                } else if let Some(stem) = p.strip_suffix('/') {
                    if p == "/" {
                        // The root slash is never dropped.
                        s.push(serve("/index.html"));
                    } else {
                        s.push(try_(format!("{stem}.html"), stem));
                        s.push(try_(format!("{stem}/index.html"), stem));
                    }
                } else if let Some(stem) = p.strip_suffix(".html") {
                    s.push(try_(p, stem));
                    s.push(try_(format!("{stem}/index.html"), stem));
                }
                s.push(serve(p));
                s.push(serve(format!("{p}.html")));
                s.push(serve(format!("{p}/index.html")));
            }
        }
        s
    }

    /// html_handling alone. With `redirects == false` (the nested resolution
    /// of §1.3) every "try" step is skipped.
    fn html(site: &Site, mode: Html, nf: NotFound, p: &str, redirects: bool) -> Intent {
        for step in steps(mode, p) {
            match step {
                Step::Serve(key) => {
                    if site.has(&key) {
                        return Intent::Serve { key, status: 200 };
                    }
                }
                Step::Try { file, dest } => {
                    if redirects && safe_redirect(site, mode, nf, &file, &dest) {
                        return Intent::Redirect { to: dest };
                    }
                }
            }
        }
        Intent::Nothing
    }

    /// §1.3: F exists, D is not a key, and resolving D in the same mode with
    /// redirects off (fallback included) serves an asset whose content hash
    /// equals hash(F).
    fn safe_redirect(site: &Site, mode: Html, nf: NotFound, file: &str, dest: &str) -> bool {
        let Some(wanted) = site.hash(file) else {
            return false;
        };
        if site.has(dest) {
            return false;
        }
        match resolve_with(site, mode, nf, dest, false) {
            Intent::Serve { key, .. } => site.hash(&key) == Some(wanted),
            _ => false,
        }
    }

    /// §2: only when html_handling found nothing.
    fn not_found(site: &Site, nf: NotFound, p: &str) -> Intent {
        match nf {
            NotFound::None => Intent::Nothing,
            NotFound::SinglePageApplication => {
                if site.has("/index.html") {
                    Intent::Serve {
                        key: "/index.html".into(),
                        status: 200,
                    }
                } else {
                    Intent::Nothing
                }
            }
            NotFound::Page404 => {
                // Cut P at its last `/` again and again; after each cut probe
                // `<prefix>/404.html`, down to the empty prefix (`/404.html`).
                let segments: Vec<&str> = p.split('/').collect();
                for keep in (1..segments.len()).rev() {
                    let probe = format!("{}/404.html", segments[..keep].join("/"));
                    if site.has(&probe) {
                        return Intent::Serve {
                            key: probe,
                            status: 404,
                        };
                    }
                }
                Intent::Nothing
            }
        }
    }

    fn resolve_with(site: &Site, mode: Html, nf: NotFound, p: &str, redirects: bool) -> Intent {
        match html(site, mode, nf, p, redirects) {
            Intent::Nothing => not_found(site, nf, p),
            found => found,
        }
    }

    /// §0 step 3: html_handling, then the not-found fallback.
    pub fn resolve(site: &Site, mode: Html, nf: NotFound, p: &str) -> Intent {
        resolve_with(site, mode, nf, p, true)
    }

    /// §1.1 decoding: split on `/`, percent-decode each segment as UTF-8
    /// (keeping a segment that fails as it is), re-join, collapse `/` runs.
    pub fn decode(raw: &str) -> String {
        let joined: Vec<String> = raw.split('/').map(decode_segment).collect();
        let joined = joined.join("/");
        let mut out = String::with_capacity(joined.len());
        for c in joined.chars() {
            if c == '/' && out.ends_with('/') {
                continue;
            }
            out.push(c);
        }
        out
    }

    /// `decodeURIComponent`, or `None` where it would throw.
    fn decode_component(seg: &str) -> Option<String> {
        let b = seg.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hi = *b.get(i + 1)?;
                let lo = *b.get(i + 2)?;
                if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
                    return None;
                }
                let digits = [hi, lo];
                let text = std::str::from_utf8(&digits).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }

    fn decode_segment(seg: &str) -> String {
        decode_component(seg).unwrap_or_else(|| seg.to_string())
    }

    /// §1.1 canonical form: each segment through `encodeURIComponent`.
    pub fn canonical(decoded: &str) -> String {
        let segments: Vec<String> = decoded.split('/').map(encode_component).collect();
        segments.join("/")
    }

    fn encode_component(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// §1.1: `Location` is `canonical(target) + search`, and it "is always a
    /// path that starts with exactly one `/`". A decoded target can hold an
    /// empty segment (force mode, file `/x/.html`: `/x/` → try `/x/.html` →
    /// `/x//`), whose canonical form would start with, or contain, `//`. Runs
    /// of `/` are collapsed, which is the one reading that keeps that promise
    /// and names the same decoded path (decoding collapses runs anyway).
    fn location(target: &str, search: &str) -> String {
        let mut out = String::new();
        for c in canonical(target).chars() {
            if c == '/' && out.ends_with('/') {
                continue;
            }
            out.push(c);
        }
        out + search
    }

    /// The parts of a response the tests compare.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Response {
        pub status: u16,
        pub served: Option<String>,
        pub location: Option<String>,
    }

    impl Response {
        fn bare(status: u16) -> Response {
            Response {
                status,
                served: None,
                location: None,
            }
        }

        fn redirect(location: String) -> Response {
            Response {
                status: 307,
                served: None,
                location: Some(location),
            }
        }
    }

    /// Asset serving for one request (§0 steps 2–6 and 8, no `_redirects`,
    /// no conditional headers). `target` is the WHATWG-parsed path plus the
    /// optional `?query`.
    pub fn respond(site: &Site, mode: Html, nf: NotFound, method: &str, target: &str) -> Response {
        let (raw, search) = match target.find('?') {
            Some(i) => target.split_at(i),
            None => (target, ""),
        };
        let p = decode(raw);
        let intent = resolve(site, mode, nf, &p);
        if intent == Intent::Nothing {
            return Response::bare(404);
        }
        if method != "GET" && method != "HEAD" {
            return Response::bare(405);
        }
        match intent {
            Intent::Redirect { to } => Response::redirect(location(&to, search)),
            Intent::Serve { key, status } => {
                if canonical(&p) != raw {
                    Response::redirect(location(&p, search))
                } else {
                    Response {
                        status,
                        served: Some(key),
                        location: None,
                    }
                }
            }
            Intent::Nothing => Response::bare(404),
        }
    }
}

use reference::{Html, NotFound, Response, Site};

// ---- the reference against the conformance corpus -------------------------

/// The WHATWG URL parser's part (§1.1 "Upstream URL normalisation") for the
/// corpus: dot segments (`.`, `..`, and their `%2e` spellings) are resolved
/// against the root. `None` for a path with bytes the parser would escape
/// (or `\\`, which it treats as `/`); the test skips those.
fn whatwg_pathname(raw_path: &str) -> Option<String> {
    if raw_path
        .bytes()
        .any(|b| !(0x21..0x7f).contains(&b) || b"\"<>`{}\\#^".contains(&b))
    {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = raw_path.strip_prefix('/')?.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match seg.to_ascii_lowercase().replace("%2e", ".").as_str() {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            _ => out.push(seg),
        }
    }
    Some(format!("/{}", out.join("/")))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn reference_matches_conformance_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let (mut passed, mut skipped, mut failed) = (0usize, Vec::new(), Vec::new());
    for name in ["html_handling.jsonl", "not_found.jsonl"] {
        let text = fs::read_to_string(dir.join(name)).expect("read corpus");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: Value = serde_json::from_str(line).expect("corpus line is JSON");
            let id = case["id"].as_str().unwrap_or("?").to_string();
            let req = &case["request"];
            let target = req["path"].as_str().expect("request.path");
            let (raw_path, search) = target.split_at(target.find('?').unwrap_or(target.len()));
            let has_headers = req["headers"].as_object().is_some_and(|h| !h.is_empty());
            let pathname = whatwg_pathname(raw_path);
            let Some(pathname) = pathname.filter(|_| !has_headers) else {
                skipped.push(id);
                continue;
            };
            let target = format!("{pathname}{search}");
            let mode = Html::parse(case["config"]["html_handling"].as_str().unwrap_or(""))
                .expect("html_handling");
            let nf = NotFound::parse(case["config"]["not_found_handling"].as_str().unwrap_or(""))
                .expect("not_found_handling");
            // Every corpus file has distinct bytes.
            let site = Site::new(str_list(&case["files"]).into_iter().zip(0u32..));
            let got = reference::respond(
                &site,
                mode,
                nf,
                req["method"].as_str().unwrap_or("GET"),
                &target,
            );
            let want = Response {
                status: case["expect"]["status"].as_u64().expect("status") as u16,
                served: case["expect"]["served"].as_str().map(String::from),
                location: case["expect"]["location"].as_str().map(String::from),
            };
            if got == want {
                passed += 1;
            } else {
                failed.push(format!("{name} {id}: got {got:?}, want {want:?}"));
            }
        }
    }
    println!(
        "reference vs conformance corpus: {passed} passed, {} skipped {:?}",
        skipped.len(),
        skipped
    );
    assert!(
        failed.is_empty(),
        "reference is wrong:\n{}",
        failed.join("\n")
    );
    assert!(
        passed >= 250 && skipped.len() <= 6,
        "{passed} passed, {} skipped",
        skipped.len()
    );
}

/// The §1.5 tables, the root table and the worked examples of §1.3 and §2,
/// transcribed from the spec. They pin down what the corpus leaves open, such
/// as the fall-through to step 5 (layout D, `/foo.html` → 200 in auto and
/// drop mode).
#[test]
fn reference_matches_spec_tables() {
    fn short(r: &Response) -> String {
        match (r.status, &r.served, &r.location) {
            (307, None, Some(to)) => format!("307 {to}"),
            (status, Some(key), None) => format!("{status} {key}"),
            (status, None, None) => status.to_string(),
            other => format!("{other:?}"),
        }
    }
    fn ask(files: &[&str], contents: &[u32], mode: Html, nf: NotFound, path: &str) -> String {
        let site = Site::new(
            files
                .iter()
                .map(|f| f.to_string())
                .zip(contents.iter().copied()),
        );
        short(&reference::respond(&site, mode, nf, "GET", path))
    }
    let distinct = [0, 1, 2, 3, 4, 5, 6, 7];
    let layouts: [&[&str]; 4] = [
        &["/foo.html"],
        &["/foo/index.html"],
        &["/foo.html", "/foo/index.html"],
        &["/foo", "/foo.html"],
    ];
    let requests = [
        "/foo",
        "/foo/",
        "/foo.html",
        "/foo/index",
        "/foo/index.html",
    ];
    // Rows are requests, columns layouts A–D.
    let tables: [(Html, [[&str; 4]; 5]); 4] = [
        (
            Html::AutoTrailingSlash,
            [
                ["200 /foo.html", "307 /foo/", "200 /foo.html", "200 /foo"],
                [
                    "307 /foo",
                    "200 /foo/index.html",
                    "200 /foo/index.html",
                    "404",
                ],
                ["307 /foo", "307 /foo/", "307 /foo", "200 /foo.html"],
                ["307 /foo", "307 /foo/", "307 /foo/", "404"],
                ["307 /foo", "307 /foo/", "307 /foo/", "404"],
            ],
        ),
        (
            Html::ForceTrailingSlash,
            [
                ["307 /foo/", "307 /foo/", "307 /foo/", "200 /foo"],
                [
                    "200 /foo.html",
                    "200 /foo/index.html",
                    "200 /foo/index.html",
                    "200 /foo.html",
                ],
                ["307 /foo/", "307 /foo/", "200 /foo.html", "307 /foo/"],
                ["307 /foo/", "307 /foo/", "307 /foo/", "307 /foo/"],
                ["307 /foo/", "307 /foo/", "307 /foo/", "307 /foo/"],
            ],
        ),
        (
            Html::DropTrailingSlash,
            [
                [
                    "200 /foo.html",
                    "200 /foo/index.html",
                    "200 /foo.html",
                    "200 /foo",
                ],
                ["307 /foo", "307 /foo", "307 /foo", "404"],
                ["307 /foo", "307 /foo", "307 /foo", "200 /foo.html"],
                ["307 /foo", "307 /foo", "307 /foo", "404"],
                ["307 /foo", "307 /foo", "200 /foo/index.html", "404"],
            ],
        ),
        (
            Html::None,
            [
                ["404", "404", "404", "200 /foo"],
                ["404", "404", "404", "404"],
                ["200 /foo.html", "404", "200 /foo.html", "200 /foo.html"],
                ["404", "404", "404", "404"],
                ["404", "200 /foo/index.html", "200 /foo/index.html", "404"],
            ],
        ),
    ];
    let mut checked = 0;
    // "The same results hold when `foo` is nested (`/docs/page`) and when
    // there is a query string, which is appended to the Location."
    for (prefix, query) in [("", ""), ("/docs", ""), ("/docs", "?q=1")] {
        for (mode, rows) in &tables {
            for (r, request) in requests.iter().enumerate() {
                for (c, layout) in layouts.iter().enumerate() {
                    let files: Vec<String> =
                        layout.iter().map(|f| format!("{prefix}{f}")).collect();
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    let got = ask(
                        &files,
                        &distinct,
                        *mode,
                        NotFound::None,
                        &format!("{prefix}{request}{query}"),
                    );
                    let want = match rows[r][c].split_once(' ') {
                        Some(("307", to)) => format!("307 {prefix}{to}{query}"),
                        Some((status, key)) => format!("{status} {prefix}{key}"),
                        None => rows[r][c].to_string(),
                    };
                    assert_eq!(got, want, "{mode:?} layout {c} {prefix}{request}{query}");
                    checked += 1;
                }
            }
        }
    }
    // Root, with `/index.html` present; columns auto, force, drop, none.
    let root = [
        (
            "/",
            [
                "200 /index.html",
                "200 /index.html",
                "200 /index.html",
                "404",
            ],
        ),
        ("/index", ["307 /", "307 /", "307 /", "404"]),
        (
            "/index.html",
            ["307 /", "307 /", "307 /", "200 /index.html"],
        ),
        (
            "/index/",
            ["307 /index", "200 /index.html", "307 /index", "404"],
        ),
    ];
    for (request, wants) in root {
        for (mode, want) in Html::ALL.into_iter().zip(wants) {
            let got = ask(&["/index.html"], &distinct, mode, NotFound::None, request);
            assert_eq!(got, want, "root {mode:?} {request}");
            checked += 1;
        }
    }
    // §1.3: identical bytes change the outcome; conflicting layouts refuse.
    let both = ["/both.html", "/both/index.html"];
    let drop = Html::DropTrailingSlash;
    let none = NotFound::None;
    assert_eq!(
        ask(&both, &[1, 2], drop, none, "/both/index.html"),
        "200 /both/index.html"
    );
    assert_eq!(
        ask(&both, &[1, 1], drop, none, "/both/index.html"),
        "307 /both"
    );
    let bin = ["/file-bin", "/file-bin.html"];
    let auto = Html::AutoTrailingSlash;
    assert_eq!(
        ask(&bin, &[1, 1], auto, none, "/file-bin.html"),
        "200 /file-bin.html"
    );
    // §2.1 / §2.2 examples.
    let site = [
        "/404.html",
        "/blog/404.html",
        "/blog/deep/nested/404.html",
        "/index.html",
    ];
    let p404 = NotFound::Page404;
    for (path, want) in [
        ("/blog/deep/nested/", "404 /blog/deep/nested/404.html"),
        ("/blog/deep/nested", "404 /blog/404.html"),
        ("/shop/x", "404 /404.html"),
        ("/404.html", "307 /404"),
        ("/404", "200 /404.html"),
    ] {
        assert_eq!(ask(&site, &distinct, auto, p404, path), want, "{path}");
    }
    let spa = NotFound::SinglePageApplication;
    assert_eq!(
        ask(&site, &distinct, auto, spa, "/assets/missing.js"),
        "200 /index.html"
    );
    assert_eq!(
        ask(&["/about.html"], &distinct, auto, spa, "/about.html"),
        "307 /about"
    );
    let app = ["/index.html", "/app/index.html"];
    assert_eq!(ask(&app, &distinct, auto, spa, "/app"), "307 /app/");
    assert_eq!(
        ask(&app, &distinct, auto, spa, "/app/missing"),
        "200 /index.html"
    );
    assert_eq!(ask(&["/a.html"], &distinct, auto, spa, "/x"), "404");
    assert_eq!(
        ask(&["/index.html"], &distinct, auto, spa, "/[slug]"),
        "307 /%5Bslug%5D"
    );
    println!("reference vs spec tables: {checked} table cells and the §1.3 / §2 examples passed");
}

// ---- the compiled router against the reference ----------------------------

fn to_config(mode: Html, nf: NotFound) -> (HtmlHandling, NotFoundHandling) {
    let mode = match mode {
        Html::AutoTrailingSlash => HtmlHandling::AutoTrailingSlash,
        Html::ForceTrailingSlash => HtmlHandling::ForceTrailingSlash,
        Html::DropTrailingSlash => HtmlHandling::DropTrailingSlash,
        Html::None => HtmlHandling::None,
    };
    let nf = match nf {
        NotFound::None => NotFoundHandling::None,
        NotFound::Page404 => NotFoundHandling::Page404,
        NotFound::SinglePageApplication => NotFoundHandling::SinglePageApplication,
    };
    (mode, nf)
}

/// Random trees built to collide under html_handling. A tree is a few
/// *families* (one stem `S` with several of its aliases: `S`, `S.html`,
/// `S/index.html`, `S.html.html`, `S/index`, `S/404.html`, `S/.html`, ...)
/// plus files scattered over a few directories (`a` next to `a.html` and
/// `a/index.html`, `index` next to `index.html`, an `index` directory,
/// `404.html` at several depths). Content ids come from a small range, so
/// identical bytes, which change §1.3 outcomes, are common.
fn tree() -> impl Strategy<Value = BTreeMap<String, u32>> {
    let stems = prop::sample::select(vec!["", "/a", "/a/b", "/index", "/a/index", "/404"]);
    let variants = prop::sample::select(vec![
        "",
        ".html",
        ".html",
        "/index.html",
        "/index.html",
        ".html.html",
        "/index",
        "/404.html",
        "/.html",
        "/index.html.html",
        "/a.html",
        "/c.js",
        "/404",
    ]);
    let family =
        (stems, prop::collection::vec((variants, 0u32..3), 1..5)).prop_map(|(stem, vs)| {
            vs.into_iter()
                .map(|(v, c)| (format!("{stem}{v}"), c))
                .collect::<Vec<_>>()
        });
    let dirs = prop::sample::select(vec!["", "/a", "/a/b", "/index", "/b", "/404"]);
    let names = prop::sample::select(vec![
        "a",
        "a.html",
        "index.html",
        "index",
        "b.html",
        "b",
        "404.html",
        "404",
        "c.js",
        ".html",
        "a.html.html",
    ]);
    let scattered = prop::collection::vec((dirs, names, 0u32..3), 0..6);
    (prop::collection::vec(family, 1..4), scattered).prop_map(|(families, scattered)| {
        let mut files: BTreeMap<String, u32> = families
            .into_iter()
            .flatten()
            .chain(
                scattered
                    .into_iter()
                    .map(|(d, n, c)| (format!("{d}/{n}"), c)),
            )
            // Keys start with `/` (the empty stem's `""` and `".html"` are not keys).
            .filter(|(k, _)| k.len() > 1 && k.starts_with('/'))
            .collect();
        // A file and a directory of the same name cannot coexist on disk:
        // the directory wins.
        let keys: Vec<String> = files.keys().cloned().collect();
        files.retain(|k, _| !keys.iter().any(|o| o.starts_with(&format!("{k}/"))));
        if files.is_empty() {
            files.insert("/index.html".to_string(), 0);
        }
        files
    })
}

/// A request: method and origin-form target. Segments include escaped
/// spellings (`%61` is `a`) so that the canonical 307 is exercised too.
fn request() -> impl Strategy<Value = (&'static str, String)> {
    let seg = prop::sample::select(vec![
        "a",
        "a",
        "b",
        "index",
        "index",
        "index.html",
        "a.html",
        "a.html",
        "b.html",
        "404",
        "404.html",
        "c.js",
        "x",
        ".html",
        "a.HTML",
        "%61",
        "a%2Ehtml",
        "%69ndex",
        "a%2Fb",
        "",
    ]);
    let method = prop::sample::select(vec!["GET", "GET", "GET", "HEAD", "POST"]);
    (
        method,
        prop::collection::vec(seg, 0..4),
        any::<bool>(),
        prop::sample::select(vec!["", "", "", "?q=1"]),
    )
        .prop_map(|(method, segs, slash, query)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash && !p.ends_with('/') {
                p.push('/');
            }
            (method, format!("{p}{query}"))
        })
}

/// Requests derived from the tree: every key with and without `.html`,
/// `/index`, `/index.html` and a trailing slash, its directory and a missing
/// sibling, so that the interesting paths are always asked.
fn derived_requests(files: &BTreeMap<String, u32>) -> BTreeSet<(&'static str, String)> {
    let mut out: BTreeSet<String> = ["/", "/index", "/index.html", "/index/", "/404", "/nope"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let family = |base: &str, out: &mut BTreeSet<String>| {
        for suffix in ["", "/", ".html", "/index", "/index.html", "/index/"] {
            out.insert(format!("{base}{suffix}"));
        }
    };
    for key in files.keys() {
        family(key, &mut out);
        let mut base = key.as_str();
        while let Some(b) = base
            .strip_suffix(".html")
            .or_else(|| base.strip_suffix("/index"))
        {
            family(b, &mut out);
            base = b;
        }
        let dir = &key[..key.rfind('/').unwrap_or(0)];
        out.insert(format!("{dir}/"));
        out.insert(format!("{dir}/missing"));
        out.insert(format!("{dir}/missing/"));
    }
    out.into_iter()
        .filter(|p| p.starts_with('/'))
        .map(|p| ("GET", p))
        .collect()
}

/// Writes the tree to disk and builds and opens its bundle.
fn compile(files: &BTreeMap<String, u32>, mode: Html, nf: NotFound) -> Router<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dist");
    fs::create_dir_all(&root).unwrap();
    for (key, content) in files {
        let p = root.join(key.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("content {content}")).unwrap();
    }
    let out = dir.path().join("b.pack");
    let (html_handling, not_found_handling) = to_config(mode, nf);
    let config = Config {
        html_handling,
        not_found_handling,
        ..Config::default()
    };
    build_router(&root, &out, config).0
}

/// The compiled router's answer, in the reference's terms.
fn ask(router: &Router<Vec<u8>>, method: &str, target: &str, scratch: &mut Scratch) -> Response {
    let req = RequestHead {
        method,
        target: target.as_bytes(),
        ..RequestHead::default()
    };
    let bare = |status| Response {
        status,
        served: None,
        location: None,
    };
    match router.resolve(&req, false, scratch) {
        Outcome::Asset { asset, status, .. } => Response {
            status,
            served: Some(asset.path.to_string()),
            location: None,
        },
        Outcome::Redirect { status } => Response {
            status,
            served: None,
            location: Some(scratch.location().to_string()),
        },
        Outcome::MethodNotAllowed => bare(405),
        Outcome::NotFound => bare(404),
        other => panic!("{method} {target}: unexpected {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        // Report the minimal case; write no regression file into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn compiled_equals_reference(
        files in tree(),
        mode in prop::sample::select(Html::ALL.to_vec()),
        nf in prop::sample::select(NotFound::ALL.to_vec()),
        extra in prop::collection::vec(request(), 0..24),
    ) {
        let site = Site::new(files.iter().map(|(k, c)| (k.clone(), *c)));
        let router = compile(&files, mode, nf);
        let mut scratch = Scratch::new();
        let mut requests = derived_requests(&files);
        requests.extend(extra);
        for (method, target) in &requests {
            let got = ask(&router, method, target, &mut scratch);
            let want = reference::respond(&site, mode, nf, method, target);
            prop_assert_eq!(
                &got,
                &want,
                "{} {} in {:?} / {:?} over {:?}",
                method,
                target,
                mode,
                nf,
                files
            );
        }
    }
}
