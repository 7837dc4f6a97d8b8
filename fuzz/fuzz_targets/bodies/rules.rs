//! `_headers` and `_redirects` parsers on arbitrary text, then matching an
//! arbitrary path: no panic, every produced Location is safe (no control
//! bytes, never protocol-relative unless the rule was written absolute), and
//! the rules compiled into a bundle answer exactly as the parsed ones do.
//!
//! Shared by the fuzz target and `tests/fuzz_replay.rs`, which replays
//! the committed inputs under `tests/fuzz-inputs/` in `cargo test`.
use std::io::Cursor;

use sitepack::config::{Config, HtmlHandling};
use sitepack::format::write::{write_bundle, BundleSpec};
use sitepack::format::Bundle;
use sitepack::rules::compiled::{CompiledHeaders, CompiledRedirects};
use sitepack::rules::headers::HeaderOps;
use sitepack::rules::redirects::RedirectOutcome;
use sitepack::rules::{headers, redirects};

/// One input; panics on a violated property.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The last line doubles as the request path.
    let path = text.lines().last().unwrap_or("/");
    let path = if path.starts_with('/') { path } else { "/x" };
    let html = HtmlHandling::AutoTrailingSlash;
    let (h, _) = headers::parse(text);
    let mut map = http::HeaderMap::new();
    h.apply(Some("example.com"), path, &mut map);
    let (r, _) = redirects::parse(text, html);
    let origin = Some("https://example.com");
    let want = r.evaluate(path, Some("q=1"), origin);
    if let Some(RedirectOutcome::Redirect { location, .. }) = &want {
        assert!(
            !location.bytes().any(|b| b < 0x20 || b == 0x7f),
            "{location:?}"
        );
        assert!(
            http::HeaderValue::from_str(location).is_ok(),
            "{location:?}"
        );
        if !location.contains("://") {
            assert!(location.starts_with('/'), "{location:?}");
            assert!(
                !location.starts_with("//") && !location.starts_with("/\\"),
                "{location:?}"
            );
        }
    }

    // Differential: the same text compiled into a bundle.
    let spec = BundleSpec {
        config: Config {
            html_handling: html,
            ..Config::default()
        },
        redirects_text: Some(text.to_string()),
        headers_text: Some(text.to_string()),
        ..BundleSpec::default()
    };
    let mut out = Cursor::new(Vec::new());
    if write_bundle(&spec, &mut out).is_err() {
        return;
    }
    let bytes = out.into_inner();
    let bundle = Bundle::open(&bytes[..]).expect("a bundle we just wrote opens");
    let mut key = String::new();
    let got = CompiledRedirects::new(&bundle).evaluate(path, Some("q=1"), origin, &mut key);
    assert_eq!(got, want, "compiled vs parsed _redirects for {path:?}");
    let (mut a, mut b) = (HeaderOps::default(), HeaderOps::default());
    h.apply(Some("example.com"), path, &mut a);
    CompiledHeaders::new(&bundle).apply(Some("example.com"), path, &mut b);
    assert_eq!(b, a, "compiled vs parsed _headers for {path:?}");
}
