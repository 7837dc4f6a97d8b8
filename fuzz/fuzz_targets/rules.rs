//! `_headers` and `_redirects` parsers on arbitrary text, then matching an
//! arbitrary path: no panic, and every produced Location is safe (no control
//! bytes, never protocol-relative unless the rule was written absolute).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sitepack::config::HtmlHandling;
use sitepack::rules::redirects::RedirectOutcome;
use sitepack::rules::{headers, redirects};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The last line doubles as the request path.
    let path = text.lines().last().unwrap_or("/");
    let path = if path.starts_with('/') { path } else { "/x" };
    let (h, _) = headers::parse(text);
    let mut map = http::HeaderMap::new();
    h.apply(Some("example.com"), path, &mut map);
    let (r, _) = redirects::parse(text, HtmlHandling::AutoTrailingSlash);
    if let Some(RedirectOutcome::Redirect { location, .. }) = r.evaluate(path, Some("q=1"), Some("https://example.com")) {
        assert!(!location.bytes().any(|b| b < 0x20 || b == 0x7f), "{location:?}");
        assert!(http::HeaderValue::from_str(&location).is_ok(), "{location:?}");
        if !location.contains("://") {
            assert!(location.starts_with('/'), "{location:?}");
            assert!(!location.starts_with("//") && !location.starts_with("/\\"), "{location:?}");
        }
    }
});
