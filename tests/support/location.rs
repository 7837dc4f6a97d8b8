//! Where a browser goes for a `Location` value: the one off-site checker
//! that the attack suites (`tests/attacks.rs` over a socket,
//! `tests/canonical_attacks.rs` at router level) judge redirects with.

/// The host every attack request is addressed to.
pub const SITE_HOST: &str = "site.test";

/// Percent-decodes `b`, leaving malformed escapes as they are.
pub fn pct_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// `location` resolved WHATWG-style against `http://site.test/…`: None when
/// the browser stays on `site.test`, else the host or scheme it would go to.
pub fn offsite(location: &[u8]) -> Option<String> {
    // Bytes as Latin-1, as a browser sees a header value. WHATWG strips
    // leading/trailing C0 and space, and all TAB/CR/LF.
    let s: String = location.iter().map(|&b| char::from(b)).collect();
    let s: String = s
        .trim_matches(|c: char| u32::from(c) <= 0x20)
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let mut rest = s.as_str();
    let scheme_end = s.find(':').filter(|&i| {
        i > 0
            && s.as_bytes()[0].is_ascii_alphabetic()
            && s[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    });
    if let Some(i) = scheme_end {
        let scheme = s[..i].to_ascii_lowercase();
        rest = &s[i + 1..];
        if !["http", "https", "ws", "wss", "ftp"].contains(&scheme.as_str()) {
            return Some(format!("scheme {scheme}"));
        }
        // A special scheme other than the base's always has an authority;
        // `http:` (the base's) has one only when two slashes follow, which
        // the check below sees (`http:/x` is the path `/x`).
        if scheme != "http" {
            return authority(rest.trim_start_matches(['/', '\\']));
        }
    }
    let b = rest.as_bytes();
    if b.len() >= 2 && matches!(b[0], b'/' | b'\\') && matches!(b[1], b'/' | b'\\') {
        return authority(rest.trim_start_matches(['/', '\\']));
    }
    None
}

fn authority(a: &str) -> Option<String> {
    let end = a.find(['/', '\\', '?', '#']).unwrap_or(a.len());
    let mut auth = &a[..end];
    if let Some(i) = auth.rfind('@') {
        auth = &auth[i + 1..];
    }
    let host = if auth.starts_with('[') {
        auth.to_string()
    } else {
        auth.split(':').next().unwrap_or("").to_string()
    };
    if host.is_empty() {
        return Some("empty host".into());
    }
    let decoded = String::from_utf8_lossy(&pct_decode(host.as_bytes())).to_ascii_lowercase();
    let decoded = decoded.trim_end_matches('.');
    if decoded == SITE_HOST {
        None
    } else {
        Some(format!("host {decoded}"))
    }
}

#[test]
fn offsite_checker_self_check() {
    for off in [
        "//google.com",
        "///evil.com/",
        "/\\evil.com",
        "\\\\evil.com",
        "http://evil.test/",
        "http:\\\\evil.test/",
        "https:evil.test",
        "http://site.test@evil.test/",
        "//evil.com%2f",
        "/\t/evil.com",
        "javascript:alert(1)",
    ] {
        assert!(offsite(off.as_bytes()).is_some(), "{off:?} not flagged");
    }
    for on in [
        "/",
        "/docs/",
        "/%2F%2Fgoogle.com",
        "http://site.test/x",
        "http:/x",
        "//site.test/x",
        "?q=1",
        "docs/",
        "/google.com/",
    ] {
        assert_eq!(offsite(on.as_bytes()), None, "{on:?} flagged");
    }
    assert_eq!(pct_decode(b"/%2e%2E/%zz/%"), b"/../%zz/%");
}
