//! The one request-target canonicaliser (spec `cloudflare-assets.md` §1.1,
//! `security.md` §1b). Every other piece of the server works from its output:
//! asset lookup and html_handling use [`Target::path`], `_redirects` and
//! `run_worker_first` match [`Target::raw_path`], and every server-generated
//! `Location` is built by [`write_location`]. Nothing else reads the raw
//! request target.
//!
//! # Pipeline
//!
//! 1. **Form.** Origin-form (`/…`) is used as is. Absolute-form
//!    (`http://host/p?q`, `https://…`) keeps only `/p?q`; the authority is
//!    never looked at. Anything else (asterisk-form, authority-form, relative)
//!    is rejected.
//! 2. **WHATWG path parsing** (what the Workers runtime does before the asset
//!    worker sees the URL): dot segments `.` / `..` and their `%2e` spellings
//!    (any case) are resolved, clamped at the root; bytes outside the path-safe
//!    set (`"` `<` `>` `` ` `` `{` `}` `^` and non-ASCII) are percent-encoded.
//!    The result is [`Target::raw_path`], the `url.pathname` Cloudflare matches
//!    `_redirects` and `run_worker_first` against.
//! 3. **Decoding** (Cloudflare's `decodePath`): each segment is percent-decoded
//!    exactly once, a decoded `%2F` becomes a separator, then runs of `/` are
//!    collapsed. `%25` stays a literal `%` in the key.
//! 4. **Canonical check.** [`Target::is_canonical`] is true when encoding the
//!    decoded path per segment with the `encodeURIComponent` set (uppercase
//!    hex) gives back `raw_path` byte for byte. When false, a request that
//!    resolves to anything must be answered with a 307 to the canonical form.
//!
//! # Security decisions (where we are stricter than Cloudflare)
//!
//! Cloudflare keeps a segment that fails to decode as it is and looks it up.
//! We never look up an undecodable or ambiguous path:
//!
//! * Raw control bytes, DEL or space anywhere in the target (path or query),
//!   and `#` anywhere: [`Reject::BadRequest`]. WHATWG would strip TAB/CR/LF
//!   and leading/trailing spaces, which is exactly the ambiguity that turns
//!   `/<TAB>/evil.com` into `//evil.com` (security.md row 9); none of these
//!   bytes are legal in an HTTP/1 request-target anyway.
//! * Raw `\` in the path, or `%5C` decoded anywhere: `BadRequest` (row 4/7).
//!   WHATWG would turn a raw `\` into `/`. A `\` in the query is kept, as
//!   WHATWG does; it cannot change the authority of a path-absolute Location.
//! * A malformed escape (`%`, `%z1`, `%%32`, `%u002e`) in the path:
//!   `BadRequest` (row 2/6). Malformed escapes in the query are not our
//!   business and pass through untouched (`/?%` serves `/`).
//! * A decoded control byte or DEL (`%00`, `%09`, `%0d%0a`, `%7F`):
//!   `BadRequest` (row 5/9).
//! * A segment that equals `.` or `..` *after* decoding (only possible
//!   through an encoded `/`, e.g. `/a%2F..%2Fb`): `BadRequest` (row 1/2).
//!   Literal and `%2e` dot segments are clamped by step 2 instead, like
//!   Cloudflare; the result never climbs above the root.
//! * Escapes that decode to invalid UTF-8 (`%A0`, `%C0%AE`, raw `C0 AF`,
//!   overlongs, surrogates): [`Reject::NotFound`]. Cloudflare keeps such a
//!   segment literally, so `/%A0` would look up the key `/%A0`, a second
//!   spelling of the file reached by `/%25A0`; it would also feed the
//!   not-found fallback and the Worker. We answer the plain no-match 404
//!   without any lookup, fallback or Worker call. 404 (not 400) is the status
//!   Cloudflare produces for the sample case `malformed-a0`, and attack cases
//!   `TRV-014`/`TRV-023` accept it.
//! * Empty segments (`//a`, `/a%2F%2Fb`) are not an error: they are
//!   collapsed, `is_canonical` is false, and the router answers with a
//!   307 built from the collapsed path (Cloudflare's behaviour, spec §1.1).
//! * Targets longer than [`MAX_TARGET_LEN`] bytes: [`Reject::UriTooLong`].
//! * `^` is treated as outside the path-safe set (current WHATWG URL
//!   standard), so a raw `^` is canonical only in its `%5E` form; older URL
//!   parsers leave it raw and would issue a 307 `^` → `%5E` instead.
//!
//! # Allocation
//!
//! [`canonicalize`] writes into a caller-owned [`Scratch`] whose buffers are
//! reserved once by [`Scratch::new`] for the worst case (every byte of a
//! maximum-length target expanded to `%XX`), so the success path never
//! allocates. Reuse one `Scratch` per worker thread or connection.

use std::fmt;

/// The longest request-target (path plus query, in bytes) that is accepted.
pub const MAX_TARGET_LEN: usize = 16 * 1024;

/// Worst case growth of a buffer: every input byte becomes `%XX`.
const SCRATCH_CAPACITY: usize = 3 * MAX_TARGET_LEN;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Reusable buffers for [`canonicalize`].
pub struct Scratch {
    /// The WHATWG-normalised, still percent-encoded pathname. Always ASCII.
    raw_path: Vec<u8>,
    /// The decoded path (empty when it equals `raw_path`), immediately
    /// followed by the normalised query.
    decoded: Vec<u8>,
}

impl Scratch {
    /// Reserves enough room for any accepted target, so that later calls to
    /// [`canonicalize`] do not allocate.
    pub fn new() -> Self {
        Scratch {
            raw_path: Vec::with_capacity(SCRATCH_CAPACITY),
            decoded: Vec::with_capacity(SCRATCH_CAPACITY),
        }
    }
}

impl Scratch {
    /// The WHATWG pathname of the last successful [`canonicalize`] call
    /// (what `_headers` rules match), or empty.
    pub fn raw_path(&self) -> &str {
        std::str::from_utf8(&self.raw_path).unwrap_or("")
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

/// A canonicalised request target, borrowed from a [`Scratch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The decoded path: the manifest lookup key and the input of
    /// html_handling / not_found_handling. Starts with `/`, contains no `//`,
    /// no `.`/`..` segment, no `\`, no control byte.
    pub path: &'a str,
    /// The pathname after WHATWG parsing, still percent-encoded (Cloudflare's
    /// `url.pathname`). `_redirects` and `run_worker_first` match this.
    pub raw_path: &'a str,
    /// The query with its leading `?`, or empty (also for a bare `?`), in
    /// WHATWG-encoded form. Append it to generated `Location`s.
    pub query: &'a str,
    /// Whether `raw_path` already is the canonical encoding of `path`. When
    /// false, a request that resolves to something gets a 307 to
    /// `write_location(path, query)`.
    pub is_canonical: bool,
}

/// Why a request target was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// 400: malformed or hostile target. The message is safe to log.
    BadRequest(&'static str),
    /// 404 with no lookup, no not-found fallback and no Worker call: the path
    /// does not decode to UTF-8.
    NotFound(&'static str),
    /// 414: longer than [`MAX_TARGET_LEN`].
    UriTooLong,
}

impl Reject {
    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest(_) => 400,
            Reject::NotFound(_) => 404,
            Reject::UriTooLong => 414,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::BadRequest(why) => write!(f, "bad request target: {why}"),
            Reject::NotFound(why) => write!(f, "undecodable request target: {why}"),
            Reject::UriTooLong => write!(f, "request target longer than {MAX_TARGET_LEN} bytes"),
        }
    }
}

impl std::error::Error for Reject {}

/// Canonicalises the raw request-target bytes as they appeared on the wire.
/// See the module documentation for the exact rules. Never panics and, once
/// `scratch` was created with [`Scratch::new`], never allocates.
pub fn canonicalize<'a>(raw_target: &[u8], scratch: &'a mut Scratch) -> Result<Target<'a>, Reject> {
    if raw_target.len() > MAX_TARGET_LEN {
        return Err(Reject::UriTooLong);
    }
    let scan = scan(raw_target)?;
    let (path, query, plain) = if raw_target.first() == Some(&b'/') {
        // Origin-form, nearly every request: the scan already split it.
        match scan.query_at {
            Some(i) => {
                let (path, query) = raw_target.split_at_checked(i).unwrap_or((raw_target, &[]));
                (path, query.get(1..).unwrap_or_default(), scan.plain)
            }
            None => (raw_target, &[][..], scan.plain),
        }
    } else {
        let target = strip_absolute_form(raw_target)?;
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(i) => {
                let (path, query) = target.split_at_checked(i).unwrap_or((target, &[]));
                (path, query.get(1..).unwrap_or_default())
            }
            None => (target, &[][..]),
        };
        // Absolute-form without a path (`http://host?q`) means the root.
        let path: &[u8] = if path.is_empty() { b"/" } else { path };
        (path, query, false)
    };
    if path.first() != Some(&b'/') {
        return Err(Reject::BadRequest("request target must start with '/'"));
    }

    scratch.raw_path.clear();
    scratch.decoded.clear();
    if plain {
        // What the general steps below produce for such a path, byte for
        // byte (the unit test `plain_fast_path_equals_general_steps` checks
        // it): nothing to normalise, escape or decode, so the decoded path
        // is the raw one (not copied twice).
        scratch.raw_path.extend_from_slice(path);
    } else {
        whatwg_path(path, &mut scratch.raw_path)?;
        decode_path(&scratch.raw_path, &mut scratch.decoded)?;
    }
    let path_len = scratch.decoded.len();
    push_query(query, &mut scratch.decoded);

    let scratch: &'a Scratch = scratch;
    let raw_path = std::str::from_utf8(&scratch.raw_path)
        .map_err(|_| Reject::BadRequest("non-ASCII byte left in normalised path"))?;
    let (decoded, query) = scratch
        .decoded
        .split_at_checked(path_len)
        .unwrap_or((&[], &[]));
    let path = if plain {
        raw_path
    } else {
        std::str::from_utf8(decoded)
            .map_err(|_| Reject::NotFound("path is not UTF-8 after decoding"))?
    };
    let query = match query {
        [] => "",
        q => std::str::from_utf8(q)
            .map_err(|_| Reject::BadRequest("non-ASCII byte left in query"))?,
    };
    Ok(Target {
        path,
        raw_path,
        query,
        is_canonical: plain || is_canonical_encoding(path, raw_path),
    })
}

/// What [`scan`] learns in its one pass over a request target.
struct Scan {
    /// Offset of the first `?`.
    query_at: Option<usize>,
    /// The part before the query starts with `/` and is already in
    /// canonical form: only `/` and `encodeURIComponent`-unreserved bytes,
    /// no empty segment inside (`//`) and no dot segment. Most request paths
    /// are; they skip the per-byte normalise-and-decode passes.
    plain: bool,
}

/// Byte classes for [`scan`].
const UNRESERVED: u8 = 1;
/// Control bytes, space, DEL and `#`: refused anywhere in a target.
const FORBIDDEN: u8 = 2;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b <= b' ' || b == 0x7f || b == b'#' {
            FORBIDDEN
        } else if is_uri_component_unreserved(b) {
            UNRESERVED
        } else {
            0
        };
        i += 1;
    }
    t
};

/// One pass over the raw target: refuses control bytes, spaces and `#`
/// anywhere (the first one found decides the message), finds the query and
/// classifies the path part (see [`Scan::plain`]). On the hit path this
/// replaced four passes (measured: canonicalisation was ~35 % of a resolve).
fn scan(target: &[u8]) -> Result<Scan, Reject> {
    let mut query_at = None;
    let mut plain = target.first() == Some(&b'/');
    let mut segment_start = 0;
    for (i, &b) in target.iter().enumerate() {
        let class = CLASS[b as usize];
        if class & FORBIDDEN != 0 {
            return Err(Reject::BadRequest(if b == b'#' {
                "fragment in request target"
            } else {
                "control byte or space in request target"
            }));
        }
        if query_at.is_some() {
            continue;
        }
        if b == b'?' {
            query_at = Some(i);
            let last = target.get(segment_start..i).unwrap_or_default();
            plain &= !matches!(last, b"." | b"..");
        } else if b == b'/' {
            if i > 0 && is_dot_or_empty(target.get(segment_start..i).unwrap_or_default()) {
                plain = false;
            }
            segment_start = i + 1;
        } else if class & UNRESERVED == 0 {
            plain = false;
        }
    }
    if query_at.is_none() {
        let last = target.get(segment_start..).unwrap_or_default();
        plain &= !matches!(last, b"." | b"..");
    }
    Ok(Scan { query_at, plain })
}

/// A segment that is empty (inside a path) or a dot segment.
fn is_dot_or_empty(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

/// [`Scan::plain`] for a path without a query.
#[cfg(test)]
fn is_plain_path(path: &[u8]) -> bool {
    scan(path).is_ok_and(|s| s.plain && s.query_at.is_none())
}

/// Appends the `Location` value for a redirect to `decoded_target` (a decoded
/// path such as [`Target::path`] or an html_handling redirect target) plus
/// `query` (normally [`Target::query`]).
///
/// The path is re-encoded per segment with the `encodeURIComponent` set
/// (uppercase hex), runs of `/` are collapsed and a leading `/` is forced, so
/// the value always starts with exactly one `/` followed by neither `/` nor
/// `\`, and never contains a control byte. A query without its `?` gets one;
/// bytes that the WHATWG special-query set encodes (and any control byte,
/// space or `#`) are percent-encoded, which leaves a query from
/// [`canonicalize`] unchanged.
pub fn write_location(decoded_target: &str, query: &str, out: &mut String) {
    out.push('/');
    for &b in decoded_target.as_bytes() {
        if b == b'/' {
            if !out.ends_with('/') {
                out.push('/');
            }
        } else if is_uri_component_unreserved(b) {
            out.push(char::from(b));
        } else {
            push_escape_str(b, out);
        }
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    if !query.is_empty() {
        out.push('?');
        for &b in query.as_bytes() {
            if b <= b' ' || b == 0x7f || b == b'#' || needs_query_escape(b) {
                push_escape_str(b, out);
            } else {
                out.push(char::from(b));
            }
        }
    }
}

/// Whether `raw_path` equals the canonical encoding of `decoded_path`
/// (segments encoded with the `encodeURIComponent` set, uppercase hex),
/// computed without building the encoding.
pub fn is_canonical_encoding(decoded_path: &str, raw_path: &str) -> bool {
    let mut raw = raw_path.bytes();
    for b in decoded_path.bytes() {
        if b == b'/' || is_uri_component_unreserved(b) {
            if raw.next() != Some(b) {
                return false;
            }
        } else {
            let [hi, lo] = hex_pair(b);
            if raw.next() != Some(b'%') || raw.next() != Some(hi) || raw.next() != Some(lo) {
                return false;
            }
        }
    }
    raw.next().is_none()
}

/// Keeps the path and query of an absolute-form target, ignoring the
/// authority entirely (it must never reach a `Location`).
fn strip_absolute_form(target: &[u8]) -> Result<&[u8], Reject> {
    if target.first() == Some(&b'/') {
        return Ok(target);
    }
    let after_scheme = strip_prefix_ignore_case(target, b"http://")
        .or_else(|| strip_prefix_ignore_case(target, b"https://"))
        .ok_or(Reject::BadRequest(
            "request target is not origin-form or http(s) absolute-form",
        ))?;
    let path_start = after_scheme
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after_scheme.len());
    Ok(after_scheme.get(path_start..).unwrap_or_default())
}

fn strip_prefix_ignore_case<'t>(s: &'t [u8], prefix: &[u8]) -> Option<&'t [u8]> {
    let (head, tail) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

/// WHATWG "path state" for a special scheme, fed a path that starts with `/`.
/// Writes `/seg` per path item; dot segments pop (clamped at the root).
fn whatwg_path(path: &[u8], out: &mut Vec<u8>) -> Result<(), Reject> {
    let body = path.get(1..).unwrap_or_default();
    let mut segments = body.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if is_double_dot(segment) {
            if let Some(i) = out.iter().rposition(|&b| b == b'/') {
                out.truncate(i);
            }
            if last {
                out.push(b'/');
            }
        } else if is_single_dot(segment) {
            if last {
                out.push(b'/');
            }
        } else {
            out.push(b'/');
            for &b in segment {
                if b == b'\\' {
                    return Err(Reject::BadRequest("backslash in path"));
                }
                if needs_path_escape(b) {
                    push_escape(b, out);
                } else {
                    out.push(b);
                }
            }
        }
    }
    Ok(())
}

fn is_single_dot(s: &[u8]) -> bool {
    s == b"." || s.eq_ignore_ascii_case(b"%2e")
}

fn is_double_dot(s: &[u8]) -> bool {
    match s.len() {
        2 => s == b"..",
        4 => s.eq_ignore_ascii_case(b".%2e") || s.eq_ignore_ascii_case(b"%2e."),
        6 => s.eq_ignore_ascii_case(b"%2e%2e"),
        _ => false,
    }
}

/// Cloudflare's `decodePath`, made strict: decode every escape once, split on
/// decoded `/`, collapse `/` runs, and refuse anything ambiguous.
fn decode_path(raw_path: &[u8], out: &mut Vec<u8>) -> Result<(), Reject> {
    out.push(b'/');
    let mut segment_start = out.len();
    let mut bytes = raw_path.iter().skip(1);
    while let Some(&b) = bytes.next() {
        let decoded = if b == b'%' {
            let hi = bytes.next().and_then(|&h| hex_value(h));
            let lo = bytes.next().and_then(|&l| hex_value(l));
            match (hi, lo) {
                (Some(hi), Some(lo)) => (hi << 4) | lo,
                _ => return Err(Reject::BadRequest("malformed percent-escape")),
            }
        } else {
            b
        };
        if decoded == b'/' {
            check_segment(out.get(segment_start..).unwrap_or_default())?;
            if out.last() != Some(&b'/') {
                out.push(b'/');
            }
            segment_start = out.len();
        } else if decoded < b' ' || decoded == 0x7f {
            return Err(Reject::BadRequest("control byte in decoded path"));
        } else if decoded == b'\\' {
            return Err(Reject::BadRequest("backslash in decoded path"));
        } else {
            out.push(decoded);
        }
    }
    check_segment(out.get(segment_start..).unwrap_or_default())
}

fn check_segment(segment: &[u8]) -> Result<(), Reject> {
    if segment == b"." || segment == b".." {
        Err(Reject::BadRequest("dot segment after decoding"))
    } else {
        Ok(())
    }
}

/// Appends `?query` in WHATWG special-query encoding, or nothing for an empty
/// query (WHATWG `url.search` is empty for a bare `?`).
fn push_query(query: &[u8], out: &mut Vec<u8>) {
    if query.is_empty() {
        return;
    }
    out.push(b'?');
    for &b in query {
        if needs_query_escape(b) {
            push_escape(b, out);
        } else {
            out.push(b);
        }
    }
}

/// Bytes the WHATWG path percent-encode set covers, apart from the ones the
/// caller already rejected (controls, space, `#`) or that end the path (`?`).
fn needs_path_escape(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'^') || b >= 0x80
}

/// The WHATWG special-query percent-encode set, minus the bytes rejected
/// earlier.
fn needs_query_escape(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b'>' | b'\'') || b >= 0x80
}

/// `encodeURIComponent` leaves exactly these unescaped.
const fn is_uri_component_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn hex_pair(b: u8) -> [u8; 2] {
    [
        HEX_UPPER[usize::from(b >> 4)],
        HEX_UPPER[usize::from(b & 0x0f)],
    ]
}

fn push_escape(b: u8, out: &mut Vec<u8>) {
    let [hi, lo] = hex_pair(b);
    out.extend_from_slice(&[b'%', hi, lo]);
}

fn push_escape_str(b: u8, out: &mut String) {
    let [hi, lo] = hex_pair(b);
    out.push('%');
    out.push(char::from(hi));
    out.push(char::from(lo));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general normalise-and-decode steps, without the fast path.
    fn general(path: &[u8]) -> Option<(Vec<u8>, Vec<u8>, bool)> {
        let (mut raw, mut decoded) = (Vec::new(), Vec::new());
        whatwg_path(path, &mut raw).ok()?;
        decode_path(&raw, &mut decoded).ok()?;
        let canonical = is_canonical_encoding(
            std::str::from_utf8(&decoded).ok()?,
            std::str::from_utf8(&raw).ok()?,
        );
        Some((raw, decoded, canonical))
    }

    proptest::proptest! {
        #[test]
        fn plain_fast_path_equals_general_steps(
            path in "/[a/.%~()2eE-]{0,12}"
        ) {
            let p = path.as_bytes();
            if is_plain_path(p) {
                proptest::prop_assert_eq!(general(p), Some((p.to_vec(), p.to_vec(), true)));
            }
        }
    }

    #[test]
    fn plain_path_classification() {
        for p in ["/", "/a", "/a/", "/a.b/c-d_e~f", "/.well-known/x", "/a/..b"] {
            assert!(is_plain_path(p.as_bytes()), "{p}");
        }
        for (t, plain) in [
            ("/a/?q", true),
            ("/a/.?q", false),
            ("/a//?q", false),
            ("/a?b/../c", true),
        ] {
            assert_eq!(scan(t.as_bytes()).unwrap().plain, plain, "{t}");
        }
        for p in [
            "//", "/a//b", "/.", "/..", "/a/./b", "/a/../", "/%41", "/a:b", "/é",
        ] {
            assert!(!is_plain_path(p.as_bytes()), "{p}");
        }
    }

    fn canon(raw: &str) -> Result<(String, String, String, bool), Reject> {
        let mut scratch = Scratch::new();
        canonicalize(raw.as_bytes(), &mut scratch).map(|t| {
            (
                t.path.to_string(),
                t.raw_path.to_string(),
                t.query.to_string(),
                t.is_canonical,
            )
        })
    }

    fn path(raw: &str) -> String {
        match canon(raw) {
            Ok((p, ..)) => p,
            Err(e) => panic!("{raw:?} rejected: {e}"),
        }
    }

    fn location(target: &str, query: &str) -> String {
        let mut out = String::new();
        write_location(target, query, &mut out);
        out
    }

    #[test]
    fn decodes_and_collapses_like_cloudflare() {
        assert_eq!(path("/bin%2F"), "/bin/");
        assert_eq!(path("/bin%252F"), "/bin%2F");
        assert_eq!(path("//blog/x"), "/blog/x");
        assert_eq!(path("/%2fexample.com/"), "/example.com/");
        assert_eq!(path("/caf%C3%A9"), "/café");
        assert_eq!(path("/a+b"), "/a+b");
        assert_eq!(path("/beep%3Fboop"), "/beep?boop");
        assert_eq!(path("http://evil.com"), "/");
        assert_eq!(path("HTTPS://evil.com/x?y"), "/x");
    }

    #[test]
    fn resolves_dot_segments_like_whatwg() {
        assert_eq!(path("/blog/../test"), "/test");
        assert_eq!(path("/blog/%2E%2E/test"), "/test");
        assert_eq!(path("/blog/.%2e/test"), "/test");
        assert_eq!(path("/a/b/.."), "/a/");
        assert_eq!(path("/a/."), "/a/");
        assert_eq!(path("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(path("/./././index.html"), "/index.html");
        assert_eq!(path("/..;/x"), "/..;/x");
        assert_eq!(path("/..."), "/...");
    }

    #[test]
    fn canonical_flag() {
        let cases = [
            ("/a%40b.png", true),
            ("/a@b.png", false),
            ("/%5bx%5d.txt", false),
            ("/%5Bx%5D.txt", true),
            ("/caf%C3%A9", true),
            ("/caf%c3%a9", false),
            ("//missing", false),
            ("/blog/../test", true),
            ("/awesome/file%2ebin", false),
            ("/my%20file.txt", true),
            ("/é", true),
            ("/^", true),
            ("/|", false),
            ("/~user/(x).txt", true),
        ];
        for (raw, want) in cases {
            let got = canon(raw).map(|c| c.3);
            assert_eq!(got, Ok(want), "{raw}");
        }
    }

    #[test]
    fn query_is_normalised() {
        assert_eq!(canon("/a?x=1&y=two").map(|c| c.2), Ok("?x=1&y=two".into()));
        assert_eq!(canon("/a?").map(|c| c.2), Ok(String::new()));
        assert_eq!(canon("/?%").map(|c| c.2), Ok("?%".into()));
        assert_eq!(
            canon("/?a='<é>'").map(|c| c.2),
            Ok("?a=%27%3C%C3%A9%3E%27".into())
        );
    }

    #[test]
    fn rejections() {
        let bad = [
            "/%",
            "/%zz",
            "/docs/%zz/index.html",
            "/.%%32%65/x",
            "/%u002e/_headers",
            "/%00",
            "/.%00/_redirects",
            "/index.html%00.png",
            "/old/%0d%0aSet-Cookie:%20x=1",
            "/old/%09/evil.com",
            "/a\tb",
            "/a b",
            "/\\evil.com",
            "/%5cevil.com",
            "/%5C..%5C",
            "/a%2F..%2Fb",
            "/hidden%2f..%2f..%2fetc%2fpasswd",
            "//google.com%2f..",
            "/docs/..%2F%5cgoogle.com%2F%3f%2F..%2F..",
            "/x%2F.%2Fy",
            "/index.html#/../_redirects",
            "*",
            "example.com/x",
            "",
            "/a?b\r\nX: y",
        ];
        for raw in bad {
            assert!(
                matches!(canon(raw), Err(Reject::BadRequest(_))),
                "{raw:?} -> {:?}",
                canon(raw)
            );
        }
        for raw in ["/%A0", "/%c0%ae%c0%ae/x", "/docs/%ff%fe.html", "/%ED%A0%80"] {
            assert!(matches!(canon(raw), Err(Reject::NotFound(_))), "{raw:?}");
        }
        let mut scratch = Scratch::new();
        assert!(matches!(
            canonicalize(b"/\xc0\xaf", &mut scratch),
            Err(Reject::NotFound(_))
        ));
        let long = format!("/{}", "a".repeat(MAX_TARGET_LEN));
        assert_eq!(canon(&long), Err(Reject::UriTooLong));
    }

    #[test]
    fn location_is_path_absolute_and_encoded() {
        assert_eq!(location("/[id]", "?a=b"), "/%5Bid%5D?a=b");
        assert_eq!(location("/c++.txt", ""), "/c%2B%2B.txt");
        assert_eq!(location("/café", ""), "/caf%C3%A9");
        assert_eq!(location("//evil.com", ""), "/evil.com");
        assert_eq!(location("", ""), "/");
        assert_eq!(location("\\evil.com/", "x"), "/%5Cevil.com/?x");
        assert_eq!(location("/a\r\nb", "?q=\r\n#"), "/a%0D%0Ab?q=%0D%0A%23");
        assert_eq!(location("/", "?"), "/");
        assert_eq!(location("/docs/", "?x=%zz"), "/docs/?x=%zz");
    }

    #[test]
    fn scratch_is_reused_without_growth() {
        let mut scratch = Scratch::new();
        let caps = (scratch.raw_path.capacity(), scratch.decoded.capacity());
        let worst = format!(
            "/{}?{}",
            "é".repeat(MAX_TARGET_LEN / 4),
            "é".repeat(MAX_TARGET_LEN / 4 - 1)
        );
        assert!(worst.len() <= MAX_TARGET_LEN);
        for raw in [worst.as_str(), "/a/b", "/%5B%5D"] {
            let _ = canonicalize(raw.as_bytes(), &mut scratch);
        }
        assert_eq!(
            caps,
            (scratch.raw_path.capacity(), scratch.decoded.capacity())
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_output_is_safe(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut scratch = Scratch::new();
            if let Ok(t) = canonicalize(&raw, &mut scratch) {
                proptest::prop_assert!(t.path.starts_with('/'));
                proptest::prop_assert!(!t.path.contains("//"));
                proptest::prop_assert!(!t.path.bytes().any(|b| b < b' ' || b == 0x7f || b == b'\\'));
                proptest::prop_assert!(t.path.split('/').all(|s| s != "." && s != ".."));
                let mut loc = String::new();
                write_location(t.path, t.query, &mut loc);
                let b = loc.as_bytes();
                proptest::prop_assert!(b.first() == Some(&b'/'));
                proptest::prop_assert!(!matches!(b.get(1), Some(b'/') | Some(b'\\')));
                proptest::prop_assert!(!b.iter().any(|&c| c < b' ' || c == 0x7f));
                // The Location re-canonicalises to the same decoded path.
                let mut again = Scratch::new();
                let t2 = canonicalize(b, &mut again);
                proptest::prop_assert!(t2.is_ok());
                if let Ok(t2) = t2 {
                    proptest::prop_assert_eq!(t2.path, t.path);
                    proptest::prop_assert!(t2.is_canonical);
                }
            }
        }

        #[test]
        fn dotted_paths_never_escape(segs in proptest::collection::vec(
            proptest::prop_oneof!["\\.\\.", "\\.", "%2[eE]%2[eE]", "a", "%2[fF]", "", "\\.\\.%2[fF]"], 0..12)) {
            let raw = format!("/{}", segs.join("/"));
            let mut scratch = Scratch::new();
            if let Ok(t) = canonicalize(raw.as_bytes(), &mut scratch) {
                proptest::prop_assert!(t.path.split('/').all(|s| s != ".." && s != "."));
            }
        }
    }
}
