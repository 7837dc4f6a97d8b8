//! `_redirects` and `_headers` compiled into the bundle answer exactly like
//! the rules parsed in memory (conformance corpora, hand-picked and random
//! rule sets); hostile rule records behind a valid checksum are refused at
//! open naming the field; loading builds nothing and a request that matches
//! no rule allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

use sitepack::config::{Config, HtmlHandling};
use sitepack::format::layout::{
    section, Header, HeaderOpRecord, HeaderRuleRecord, RedirectRuleRecord, RouteRecord, RuleMask,
    RulesRecord, SectionEntry, TokenRecord, HEADER_LEN,
};
use sitepack::format::write::{write_bundle, BundleSpec};
use sitepack::format::Bundle;
use sitepack::route::{canonical, Outcome, RequestHead, Router, Scratch};
use sitepack::rules::compiled::{CompiledHeaders, CompiledRedirects};
use sitepack::rules::headers::{self, HeaderOps, RecordedOp};
use sitepack::rules::pattern::normalize_url;
use sitepack::rules::redirects;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// --- allocation counting ----------------------------------------------------

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

// --- helpers ----------------------------------------------------------------

const ORIGIN: Option<&str> = Some("https://example.com");

fn pack(redirects: Option<&str>, headers: Option<&str>, html: HtmlHandling) -> Vec<u8> {
    let spec = BundleSpec {
        config: Config {
            html_handling: html,
            ..Config::default()
        },
        redirects_text: redirects.map(str::to_string),
        headers_text: headers.map(str::to_string),
        ..BundleSpec::default()
    };
    let mut out = Cursor::new(Vec::new());
    write_bundle(&spec, &mut out).unwrap();
    out.into_inner()
}

fn cases(name: &str) -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The raw pathname and query a request target gives the rules.
fn raw(target: &str) -> (String, Option<String>) {
    let u = normalize_url(target, true);
    (u.path, u.query)
}

/// Compares compiled and parsed `_redirects` for every path; returns how
/// many paths some rule answered.
fn same_redirects(text: &str, html: HtmlHandling, paths: &[String]) -> usize {
    let (parsed, _) = redirects::parse(text, html);
    let bytes = pack(Some(text), None, html);
    let bundle = Bundle::open(&bytes[..]).unwrap();
    let compiled = CompiledRedirects::new(&bundle);
    assert_eq!(compiled.is_empty(), parsed.is_empty(), "{text:?}");
    assert_eq!(bundle.static_redirect_count(), parsed.static_rules().len());
    assert_eq!(
        bundle.dynamic_redirect_count(),
        parsed.dynamic_rules().len()
    );
    for (r, (from, p)) in compiled.static_rules().zip(parsed.static_rules()) {
        assert_eq!(
            (r.from, r.to, r.status),
            (from.as_str(), p.to.as_str(), p.status)
        );
        assert_eq!(r.line as usize, p.line);
    }
    for (r, p) in compiled.dynamic_rules().zip(parsed.dynamic_rules()) {
        assert_eq!(r.from, p.pattern.source());
        assert_eq!(
            (r.to, r.status),
            (p.redirect.to.as_str(), p.redirect.status)
        );
    }
    let mut key = String::new();
    let mut answered = 0;
    for target in paths {
        let (path, query) = raw(target);
        for origin in [ORIGIN, None] {
            let want = parsed.evaluate(&path, query.as_deref(), origin);
            let got = compiled.evaluate(&path, query.as_deref(), origin, &mut key);
            assert_eq!(got, want, "rules {text:?}, request {target:?}");
            assert_eq!(compiled.matches(&path, &mut key), want.is_some());
            answered += usize::from(want.is_some() && origin.is_some());
        }
    }
    answered
}

/// Compares compiled and parsed `_headers` for every path and host.
fn same_headers(text: &str, paths: &[String]) -> usize {
    let (parsed, _) = headers::parse(text);
    let bytes = pack(None, Some(text), HtmlHandling::default());
    let bundle = Bundle::open(&bytes[..]).unwrap();
    let compiled = CompiledHeaders::new(&bundle);
    assert_eq!(compiled.len(), parsed.rules().len(), "{text:?}");
    for (r, p) in compiled.rules().zip(parsed.rules()) {
        assert_eq!(r.pattern.source(), p.pattern.source());
        assert_eq!(r.line as usize, p.line);
        assert_eq!(r.pattern.is_absolute(), p.pattern.is_absolute());
    }
    let mut touched = 0;
    for target in paths {
        let (path, _) = raw(target);
        for host in [Some("example.com"), Some("a.example.com"), None] {
            let (mut want, mut got) = (HeaderOps::default(), HeaderOps::default());
            parsed.apply(host, &path, &mut want);
            compiled.apply(host, &path, &mut got);
            assert_eq!(
                got, want,
                "rules {text:?}, request {target:?}, host {host:?}"
            );
            touched += usize::from(!want.0.is_empty());
        }
    }
    touched
}

/// Request paths that exercise a rule file: every `from`/path token as
/// written, with its placeholders and splat filled in a few ways, plus
/// prefixes, extensions and unrelated paths.
fn probe_paths(text: &str, extra: &str) -> Vec<String> {
    let mut out: Vec<String> = ["/", "/c", "/nothing/here", "/a/b/c/d", "/%2F%2F", "/é"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    out.push(extra.to_string());
    for line in text.lines() {
        let Some(tok) = line.split_whitespace().next() else {
            continue;
        };
        let tok = tok
            .strip_prefix("https://")
            .map(|r| &r[r.find('/').unwrap_or(r.len())..])
            .unwrap_or(tok);
        if !tok.starts_with('/') {
            continue;
        }
        for fill in ["x", "1/2", "", "a.b", "%20"] {
            let mut p = String::new();
            let mut chars = tok.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '*' => p.push_str(fill),
                    ':' if chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) => {
                        while chars
                            .peek()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                        {
                            chars.next();
                        }
                        p.push_str(if fill.is_empty() { "v" } else { fill });
                    }
                    c => p.push(c),
                }
            }
            for q in ["", "/", "/more", ".html", "?q=1"] {
                out.push(format!("{p}{q}"));
            }
        }
        out.push(tok.to_string());
    }
    out.sort();
    out.dedup();
    out
}

// --- round trips --------------------------------------------------------------

#[test]
fn conformance_corpora_answer_alike() {
    let mut answered = 0;
    for c in cases("redirects_rules.jsonl") {
        let text = c["redirects_file"].as_str().unwrap();
        let request = c["request_path"].as_str().unwrap();
        for html in [HtmlHandling::AutoTrailingSlash, HtmlHandling::None] {
            answered += same_redirects(text, html, &probe_paths(text, request));
        }
    }
    assert!(answered > 100, "only {answered} requests matched a rule");
    let mut touched = 0;
    for c in cases("headers_rules.jsonl") {
        let text = c["headers_file"].as_str().unwrap();
        let request = c["request_path"].as_str().unwrap();
        touched += same_headers(text, &probe_paths(text, request));
    }
    assert!(touched > 50, "only {touched} requests got headers");
}

#[test]
fn hand_picked_rule_sets_answer_alike() {
    let redirects = [
        "/home / 301\n/posts/:slug /blog/:slug 301\n/docs /docs/getting-started/ 302\n",
        "/a /b\n/c/* /d/:splat 301\n/e /f 308\n/a /dup\n",
        "/x/*/y/:z /r/:z/:splat\n/x/:a/:b /s/:b/:a 302\n/x/* /t 307\n/* /fallback 200\n",
        "/deep/a/b/c/d/* /1\n/deep/a/b/* /2\n/deep/* /3\n/deep/a/:x/c /4\n/:lang/deep/* /5/:lang\n",
        "/img-:name.png /i/:name 301\n/v:ver/api/* /api/:ver/:splat\n/:a-:b /:b/:a 302\n",
        "/go/* https://example.org/:splat 302\n/abs https://example.com/b 301\n/q /r?x=1#f 301\n",
        "/foo/* /:splat 301\n/old/* /:splat 301\n/bar/:x /:x/ok 302\n",
        "\u{feff}/bom /ok 301\r\n/crlf/* /c/:splat\r\n",
    ];
    for text in redirects {
        assert!(
            same_redirects(
                text,
                HtmlHandling::AutoTrailingSlash,
                &probe_paths(text, "/")
            ) > 0
        );
    }
    // Anchors longer than the index keeps, and deeper than 63 slashes.
    let long = format!("/{}/*", "l".repeat(300));
    let deep = format!("{}*", "/d".repeat(70));
    let text = format!("{long} /long\n{deep} /deep\n");
    let paths = vec![
        format!("/{}/x", "l".repeat(300)),
        format!("/{}/x", "l".repeat(299)),
        format!("{}x", "/d".repeat(70)),
        format!("{}x", "/d".repeat(69)),
    ];
    assert_eq!(same_redirects(&text, HtmlHandling::None, &paths), 2);

    let headers = [
        "/assets/*\n  Cache-Control: public, max-age=31536000, immutable\n\n/*\n  X-Content-Type-Options: nosniff\n",
        "/a\n  X: 1\n/*\n  X: 2\n/a\n  Y: 3\n",
        "/*\n  X: 1\n/a\n  ! X\n/a/:p\n  X: v=:p\n  Set-Cookie: a=1\n  Set-Cookie: b=2\n  Vary: Origin\n",
        "https://:sub.example.com/*\n  X-Sub: :sub\nhttps://example.com/p/:id\n  X-Id: :id\n  X-Splat: :splat\n",
        "https://*.example.com/x/*\n  X-S: :splat\n/x/*/y\n  X-T: :splat\n",
        "/deep/a/b/c/*\n  A: 1\n/deep/a/*\n  B: 2\n/deep/:x/b/*\n  C: :x\n/:l/deep\n  D: 4\n",
    ];
    for text in headers {
        assert!(same_headers(text, &probe_paths(text, "/")) > 0);
    }
}

/// Random rule files over a small vocabulary (so rules share prefixes and
/// paths hit them), random requests: compiled and parsed agree.
#[test]
fn random_rule_sets_answer_alike() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, FileFailurePersistence, TestRunner};
    let seg = prop::sample::select(vec![
        "a",
        "b",
        "ab",
        "x-1",
        ":p",
        ":q",
        "*",
        "a*",
        "v:n",
        "img-:k.png",
        "",
        "%20",
    ]);
    let pattern = prop::collection::vec(seg.clone(), 1..5).prop_map(|s| {
        let mut p = String::new();
        let mut splat = false;
        let mut names = 0;
        for part in s {
            p.push('/');
            // At most one splat and distinct placeholder names, mostly.
            let part = part.replace(':', &format!(":{}", ["", "", "m"][names % 3]));
            if part.contains('*') {
                if splat {
                    continue;
                }
                splat = true;
            }
            if part.contains(':') {
                names += 1;
            }
            p.push_str(&part);
        }
        p
    });
    let target = prop::sample::select(vec!["/t/:p", "/:q/u", "/s/:splat", "/fixed", "/r/:n"]);
    let status = prop::sample::select(vec!["", "301", "302", "200", "307"]);
    let rules = prop::collection::vec((pattern.clone(), target, status), 0..12);
    let path = prop::collection::vec(seg, 0..5).prop_map(|s| {
        let mut p: String = s.iter().map(|x| format!("/{x}")).collect();
        p = p.replace(['*', ':'], "z");
        if p.is_empty() {
            p.push('/');
        }
        p
    });
    let mut runner = TestRunner::new(PtConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..PtConfig::default()
    });
    let (answered, touched) = (Cell::new(0), Cell::new(0));
    runner
        .run(
            &(rules, prop::collection::vec(path, 1..20)),
            |(rules, paths)| {
                let text: String = rules
                    .iter()
                    .map(|(f, t, s)| format!("{f} {t} {s}\n"))
                    .collect();
                let n = same_redirects(&text, HtmlHandling::AutoTrailingSlash, &paths);
                answered.set(answered.get() + n);
                let htext: String = rules
                    .iter()
                    .enumerate()
                    .map(|(i, (f, _, _))| format!("{f}\n  X-{}: v:p\n  X-All: {i}\n", i % 3))
                    .collect();
                touched.set(touched.get() + same_headers(&htext, &paths));
                Ok(())
            },
        )
        .unwrap();
    println!(
        "{} redirects, {} header sets",
        answered.get(),
        touched.get()
    );
    assert!(answered.get() > 20 && touched.get() > 20);
}

// --- loading and allocation ---------------------------------------------------

fn big_rules() -> (String, String) {
    let mut r: String = (0..2000).map(|i| format!("/s/{i} /t/{i} 301\n")).collect();
    r.extend((0..100).map(|i| format!("/d{i}/:id/* /e{i}/:id/:splat 302\n")));
    let h: String = (0..100)
        .map(|i| format!("/h{i}/*\n  X-H: {i}\n  ! X-Old\n"))
        .collect();
    (r, h)
}

#[test]
fn loading_builds_nothing_and_misses_allocate_nothing() {
    let (r, h) = big_rules();
    let bytes = pack(Some(&r), Some(&h), HtmlHandling::AutoTrailingSlash);
    let bundle = Bundle::open(&bytes[..]).unwrap();
    assert_eq!(bundle.static_redirect_count(), 2000);
    assert_eq!(bundle.dynamic_redirect_count(), 100);
    assert_eq!(bundle.header_rule_count(), 100);
    // Opening and Router::new cost the same allocations with or without
    // rules: nothing is parsed or built.
    let empty = pack(None, None, HtmlHandling::AutoTrailingSlash);
    let (b0, open0) = allocations(|| Bundle::open(&empty[..]).unwrap());
    let (b1, open1) = allocations(|| Bundle::open(&bytes[..]).unwrap());
    assert_eq!(open1, open0, "Bundle::open allocates per rule");
    let (_, base) = allocations(|| Router::new(b0).unwrap());
    let (router, with_rules) = allocations(|| Router::new(b1).unwrap());
    assert_eq!(with_rules, base, "Router::new allocates per rule");

    let mut scratch = Scratch::new();
    let mut log = HeaderOps::default();
    for (target, want) in [
        ("/nothing", None),
        ("/s/2000", None),
        ("/d99", None),
        ("/d100/x/y", None),
        ("/s/1999", Some(301)),
        ("/d99/x/y", Some(302)),
        ("/d0/x/", Some(302)),
    ] {
        let req = RequestHead {
            method: "GET",
            target: target.as_bytes(),
            origin: ORIGIN,
            ..RequestHead::default()
        };
        let (status, n) = allocations(|| match router.resolve(&req, false, &mut scratch) {
            Outcome::Redirect { status } => Some(status),
            _ => None,
        });
        assert_eq!(status, want, "{target}");
        if want.is_none() {
            assert_eq!(n, 0, "{target}: {n} allocations with no rule matching");
        }
        let (_, n) = allocations(|| router.apply_headers(Some("example.com"), target, &mut log));
        assert_eq!(n, 0, "{target}: apply_headers allocated");
    }
    assert!(log.0.is_empty());
    assert_eq!(scratch.location(), "/e0/x/");
    router.apply_headers(None, "/h99/x", &mut log);
    assert_eq!(
        log.0,
        vec![
            RecordedOp::Remove("x-old".into()),
            RecordedOp::Set("x-h".into(), "99".into())
        ]
    );
    let mut c = canonical::Scratch::new();
    assert!(canonical::canonicalize(b"/h99/x", &mut c).is_ok());
}

// --- hostile records ----------------------------------------------------------

fn header(b: &[u8]) -> Header {
    Header::read_from_prefix(b).unwrap().0
}

fn resign(b: &mut [u8]) {
    let mut h = header(b);
    let s = h.index_offset.get() as usize;
    let e = s + h.index_len.get() as usize;
    h.index_checksum = *blake3::hash(&b[s..e]).as_bytes();
    b[..HEADER_LEN].copy_from_slice(h.as_bytes());
}

fn sec(b: &[u8], kind: u32) -> (usize, usize) {
    let h = header(b);
    let start = h.index_offset.get() as usize;
    (0..h.section_count.get() as usize)
        .map(|i| {
            SectionEntry::read_from_prefix(&b[start + i * 24..])
                .unwrap()
                .0
        })
        .find(|e| e.kind.get() == kind)
        .map(|e| (e.offset.get() as usize, e.len.get() as usize))
        .unwrap_or_else(|| panic!("no section {kind}"))
}

fn edit<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
    b: &mut [u8],
    kind: u32,
    i: usize,
    f: impl FnOnce(&mut T),
) {
    let (off, len) = sec(b, kind);
    let size = std::mem::size_of::<T>();
    assert!((i + 1) * size <= len, "section {kind} has no record {i}");
    let p = off + i * size;
    let mut r = T::read_from_prefix(&b[p..]).unwrap().0;
    f(&mut r);
    b[p..p + size].copy_from_slice(r.as_bytes());
}

fn refused(b: &[u8], needle: &str) {
    match Bundle::open(b) {
        Ok(_) => panic!("hostile bundle accepted (expected an error about {needle:?})"),
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains(needle),
                "error {m:?} does not mention {needle:?}"
            );
        }
    }
}

fn sample() -> Vec<u8> {
    pack(
        Some("/home / 301\n/posts/:slug /blog/:slug 301\n/x/* /y/:splat\n"),
        Some("https://:sub.example.com/a/*\n  X-Sub: :sub\n/*\n  ! X-Powered-By\n  X-A: b\n"),
        HtmlHandling::AutoTrailingSlash,
    )
}

#[test]
fn resigned_hostile_rule_records_are_refused_naming_the_field() {
    let b = sample();
    Bundle::open(&b[..]).unwrap();
    let case = |f: &dyn Fn(&mut Vec<u8>), needle: &str| {
        let mut m = b.clone();
        f(&mut m);
        resign(&mut m);
        refused(&m, needle);
    };
    // Token offsets outside the pattern, reversed, or off a char boundary.
    case(
        &|m| edit::<TokenRecord>(m, section::TOKENS, 0, |t| t.end.set(10_000)),
        "redirect rule 1: token 0: offsets 0..10000 are not within the pattern",
    );
    case(
        &|m| edit::<TokenRecord>(m, section::TOKENS, 1, |t| t.start.set(u32::MAX)),
        "token 1: offsets",
    );
    case(
        &|m| {
            edit::<TokenRecord>(m, section::TOKENS, 1, |t| {
                let e = t.end.get();
                t.end.set(t.start.get());
                t.start.set(e);
            })
        },
        "token 1: offsets",
    );
    case(
        &|m| edit::<TokenRecord>(m, section::TOKENS, 0, |t| t.kind = 9),
        "token 0: unknown kind",
    );
    case(
        &|m| edit::<TokenRecord>(m, section::TOKENS, 0, |t| t.kind = 0),
        "token 0: text \"/\" does not fit its kind",
    );
    case(
        &|m| {
            let n = sec(m, section::TOKENS).1 / std::mem::size_of::<TokenRecord>();
            let placeholder = (0..n)
                .find(|&i| {
                    let (off, _) = sec(m, section::TOKENS);
                    TokenRecord::read_from_prefix(&m[off + i * 12..])
                        .unwrap()
                        .0
                        .kind
                        == 2
                })
                .unwrap();
            edit::<TokenRecord>(m, section::TOKENS, placeholder, |t| t.slot = 5)
        },
        "capture slot 5",
    );
    // Rule records.
    case(
        &|m| edit::<RedirectRuleRecord>(m, section::REDIRECT_RULES, 0, |r| r.status.set(418)),
        "redirect rule 0: status 418",
    );
    case(
        &|m| {
            edit::<RedirectRuleRecord>(m, section::REDIRECT_RULES, 2, |r| {
                r.token_count.set(r.token_count.get() + 1)
            })
        },
        "token",
    );
    case(
        &|m| edit::<RedirectRuleRecord>(m, section::REDIRECT_RULES, 1, |r| r.token_first.set(3)),
        "redirect rule 1: token_first 3, expected 0",
    );
    case(
        &|m| edit::<RedirectRuleRecord>(m, section::REDIRECT_RULES, 1, |r| r.capture_count = 3),
        "capture_count",
    );
    case(
        &|m| edit::<RedirectRuleRecord>(m, section::REDIRECT_RULES, 0, |r| r.kind = 1),
        "redirect rule 0: kind",
    );
    case(
        &|m| edit::<HeaderRuleRecord>(m, section::HEADER_RULES, 0, |r| r.host_tokens.set(0)),
        "header rule 0: host_tokens",
    );
    case(
        &|m| edit::<HeaderRuleRecord>(m, section::HEADER_RULES, 1, |r| r.op_count.set(9)),
        "header rule 1: op range",
    );
    case(
        &|m| edit::<HeaderOpRecord>(m, section::HEADER_OPS, 1, |o| o.op = 2),
        "header rule 1 op 0: bad op",
    );
    case(
        &|m| {
            // A value with a CR in it: the op is refused, not passed on.
            let (soff, _) = sec(m, section::STRINGS);
            let (ooff, _) = sec(m, section::HEADER_OPS);
            let o = HeaderOpRecord::read_from_prefix(&m[ooff + 2 * 20..])
                .unwrap()
                .0;
            m[soff + o.value.offset.get() as usize] = b'\r';
        },
        "header rule 1 op 1: bad op, header name or value",
    );
    case(
        &|m| {
            edit::<RulesRecord>(m, section::RULES, 0, |r| {
                r.static_redirects.set(r.static_redirects.get() + 1)
            })
        },
        "rules: static_redirects",
    );
    case(
        &|m| {
            edit::<RulesRecord>(m, section::RULES, 0, |r| {
                r.header_root = RuleMask::new(1 << 100)
            })
        },
        "header_root",
    );
    case(
        &|m| edit::<RuleMask>(m, section::RULE_MASKS, 0, |r| *r = RuleMask::new(1 << 90)),
        "rule mask",
    );
    case(
        &|m| {
            // The static rule's route entry pointing past the static rules.
            let (off, len) = sec(m, section::ROUTES);
            let i = (0..len / 28)
                .find(|&i| {
                    RouteRecord::read_from_prefix(&m[off + i * 28..])
                        .unwrap()
                        .0
                        .action
                        == 3
                })
                .unwrap();
            edit::<RouteRecord>(m, section::ROUTES, i, |r| r.asset.set(1))
        },
        "static redirect rule index",
    );
}

/// Random edits to the rule sections, re-signed: `open` may refuse, and
/// whatever it accepts answers requests without a panic.
#[test]
fn random_resigned_rule_edits_never_panic() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, FileFailurePersistence, TestRunner};
    let b = sample();
    let mut spans = Vec::new();
    for kind in [
        section::RULES,
        section::TOKENS,
        section::REDIRECT_RULES,
        section::HEADER_RULES,
        section::HEADER_OPS,
        section::RULE_MASKS,
    ] {
        let (off, len) = sec(&b, kind);
        spans.extend(off..off + len);
    }
    let mut runner = TestRunner::new(PtConfig {
        cases: 300,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..PtConfig::default()
    });
    let edits = prop::collection::vec((prop::sample::select(spans), any::<u8>()), 1..4);
    let accepted = Cell::new(0);
    runner
        .run(&edits, |edits| {
            let mut m = b.clone();
            for (i, v) in &edits {
                m[*i] = *v;
            }
            resign(&mut m);
            if let Ok(bundle) = Bundle::open(&m[..]) {
                accepted.set(accepted.get() + 1);
                let router = Router::new(bundle).unwrap();
                let mut scratch = Scratch::new();
                let mut log = HeaderOps::default();
                for t in ["/home", "/posts/x", "/x/a/b", "/a/b", "/"] {
                    let req = RequestHead {
                        method: "GET",
                        target: t.as_bytes(),
                        ..RequestHead::default()
                    };
                    let _ = router.resolve(&req, false, &mut scratch);
                    router.apply_headers(Some("w.example.com"), t, &mut log);
                }
                let _ = router.redirect_rules().static_rules().count();
                let _ = router.redirect_rules().dynamic_rules().count();
                let _ = router.header_rules().rules().count();
            }
            Ok(())
        })
        .unwrap();
    println!("{} of 300 edited bundles opened", accepted.get());
}
