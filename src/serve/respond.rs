//! Resolution → HTTP response: representation choice, validators, Range,
//! HEAD, and zero-copy bodies that slice the mapped bundle.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

use super::{Body, Site};
use crate::format::layout::encoding;
use crate::format::Asset;
use crate::route::{conditional, negotiate, Outcome};

/// The default `Cache-Control` of Cloudflare's asset worker (spec §4.1).
const DEFAULT_CACHE_CONTROL: &str = "public, max-age=0, must-revalidate";

/// A zero-copy body: a shared slice of the bundle's bytes (a reference
/// count, no allocation), which keeps the map alive after a hot swap for as
/// long as the body is in flight.
fn slice_of(site: &Site, bytes: &[u8]) -> Bytes {
    if bytes.is_empty() {
        return Bytes::new();
    }
    site.router
        .bundle()
        .data()
        .share(bytes)
        // Every body is cut from the bundle; a copy is only a fallback.
        .unwrap_or_else(|| Bytes::copy_from_slice(bytes))
}

/// Content-Type values made once per bundle. The writer stores each type
/// string once, so the assets refer to a few dozen distinct strings, keyed
/// here by where they lie in the map: a response clones a shared value
/// instead of validating and copying the text.
pub struct ContentTypes(Vec<((usize, usize), HeaderValue)>);

/// A bundle not written by sitepack need not share its strings; past this
/// many distinct ones the rest are made per response, as before.
const MAX_CACHED_TYPES: usize = 256;

impl ContentTypes {
    pub fn of<B: AsRef<[u8]>>(bundle: &crate::format::Bundle<B>) -> ContentTypes {
        let mut seen = std::collections::HashSet::new();
        let mut values = Vec::new();
        for ct in bundle.assets().filter_map(|a| a.content_type) {
            let key = (ct.as_ptr() as usize, ct.len());
            if seen.len() == MAX_CACHED_TYPES {
                break;
            }
            if seen.insert(key) {
                if let Ok(v) = HeaderValue::from_str(ct) {
                    values.push((key, v));
                }
            }
        }
        values.sort_unstable_by_key(|e| e.0);
        ContentTypes(values)
    }

    fn get(&self, ct: &str) -> Option<HeaderValue> {
        let key = (ct.as_ptr() as usize, ct.len());
        match self.0.binary_search_by_key(&key, |e| e.0) {
            Ok(i) => Some(self.0[i].1.clone()),
            Err(_) => HeaderValue::from_str(ct).ok(),
        }
    }
}

/// Room for every field an asset response carries (type, length, ETag,
/// cache, Vary, encoding, ranges), so the map is allocated once, not grown.
const RESPONSE_FIELDS: usize = 8;

fn with_status(body: Body, status: StatusCode) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = http::HeaderMap::with_capacity(RESPONSE_FIELDS);
    r
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = with_status(Empty::new().map_err(|never| match never {}).boxed(), status);
    // Stated explicitly so HEAD carries the same Content-Length as GET
    // (hyper only derives it from a body it sends); 304 and 204 carry none.
    if status != StatusCode::NOT_MODIFIED && status != StatusCode::NO_CONTENT {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

pub fn full(status: StatusCode, bytes: Bytes) -> Response<Body> {
    with_status(
        Full::new(bytes).map_err(|never| match never {}).boxed(),
        status,
    )
}

/// The parts of a request the response depends on.
pub struct RequestInfo<'a> {
    pub method: &'a Method,
    pub accept_encoding: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
}

/// The strong ETag of one representation: the content hash token for
/// identity (Cloudflare's ETag), `-<coding>` appended for a variant, so
/// every representation has its own validator (RFC 9110 §8.8.3).
fn representation_etag(asset: &Asset<'_>, code: Option<u8>) -> HeaderValue {
    let base = conditional::etag_value(&asset.etag);
    // Built on the stack: the header value is the one copy made.
    let mut buf = [0u8; 48];
    let v = match code.and_then(encoding::name) {
        Some(name) if base.len() + name.len() < buf.len() => {
            let cut = base.len() - 1;
            buf[..cut].copy_from_slice(&base[..cut]);
            buf[cut] = b'-';
            buf[cut + 1..cut + 1 + name.len()].copy_from_slice(name.as_bytes());
            buf[cut + 1 + name.len()] = b'"';
            HeaderValue::from_bytes(&buf[..cut + 2 + name.len()])
        }
        _ => HeaderValue::from_bytes(&base),
    };
    v.unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Builds the response for every outcome but `Worker`.
pub fn respond(
    site: &Arc<Site>,
    outcome: Outcome<'_>,
    location: &str,
    req: &RequestInfo<'_>,
) -> Response<Body> {
    match outcome {
        Outcome::Rejected { status, .. } => {
            empty(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        }
        Outcome::Worker { .. } | Outcome::NotFound => empty(StatusCode::NOT_FOUND),
        Outcome::MethodNotAllowed => {
            let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Outcome::Redirect { status } => {
            let mut r =
                empty(StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT));
            // Locations come from the canonicaliser or from validated rules;
            // HeaderValue refuses CR/LF/NUL as a last line of defence.
            match HeaderValue::from_str(location) {
                Ok(v) => {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                Err(_) => return empty(StatusCode::NOT_FOUND),
            }
            r
        }
        Outcome::Asset {
            asset,
            status,
            not_modified,
            cache_control,
        } => asset_response(site, &asset, status, not_modified, cache_control, req),
    }
}

fn asset_response(
    site: &Arc<Site>,
    asset: &Asset<'_>,
    status: u16,
    identity_not_modified: bool,
    cache_control: bool,
    req: &RequestInfo<'_>,
) -> Response<Body> {
    let bundle = site.router.bundle();
    let Some(identity) = bundle.blob(asset.blob) else {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let has_variants = bundle.variants(asset.blob).next().is_some();
    let chosen_code = negotiate::choose(
        req.accept_encoding,
        bundle.variants(asset.blob).filter_map(|v| v.encoding),
    );

    // Range applies to the identity representation only; If-Range needs a
    // strong match with it, else the Range is ignored. Range applies to the
    // asset itself (200), never to the 404 page.
    let range = req.range.filter(|_| status == 200).filter(|_| {
        req.if_range
            .is_none_or(|v| v == representation_etag(asset, None).as_bytes())
    });
    let range_plan = range.map(|r| plan_range(r, identity.len() as u64));
    let use_identity = matches!(
        range_plan,
        Some(RangePlan::Partial(_) | RangePlan::Unsatisfiable)
    );
    let code = if use_identity { None } else { chosen_code };
    let bytes: &[u8] = match code {
        None => identity,
        Some(c) => bundle
            .variants(asset.blob)
            .find(|v| v.encoding == Some(c))
            .map_or(identity, |v| v.bytes),
    };
    let etag = if bytes.as_ptr() == identity.as_ptr() {
        representation_etag(asset, None)
    } else {
        representation_etag(asset, code)
    };

    // If-None-Match matches any representation the client may hold.
    let not_modified = identity_not_modified
        || req.if_none_match.is_some_and(|inm| {
            bundle.variants(asset.blob).any(|v| {
                conditional::if_none_match(inm, representation_etag(asset, v.encoding).as_bytes())
            })
        });

    let head_only = req.method == Method::HEAD;
    let mut resp = if not_modified {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        match range_plan {
            Some(RangePlan::Unsatisfiable) => {
                let mut r = empty(StatusCode::RANGE_NOT_SATISFIABLE);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", identity.len())) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                r
            }
            Some(RangePlan::Partial(r)) if status == 200 => {
                let part = &identity[r.0 as usize..=r.1 as usize];
                let mut resp = body(site, StatusCode::PARTIAL_CONTENT, part, head_only);
                if let Ok(v) =
                    HeaderValue::from_str(&format!("bytes {}-{}/{}", r.0, r.1, identity.len()))
                {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                resp
            }
            _ => body(
                site,
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                bytes,
                head_only,
            ),
        }
    };
    let h = resp.headers_mut();
    if let Some(ct) = asset.content_type.and_then(|c| site.content_types.get(c)) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(header::ETAG, etag);
    if cache_control {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(DEFAULT_CACHE_CONTROL),
        );
    }
    if has_variants {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Some(name) = code.and_then(encoding::name) {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
    }
    if status == 200 {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    resp
}

/// A body of bundle bytes; HEAD keeps the length but sends nothing. The
/// length is stated for GET too (hyper would derive it) so that `sitepack
/// resolve`, which prints this response, shows what the wire carries.
fn body(site: &Arc<Site>, status: StatusCode, bytes: &[u8], head_only: bool) -> Response<Body> {
    let mut r = if head_only {
        empty(status)
    } else {
        full(status, slice_of(site, bytes))
    };
    r.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes.len() as u64),
    );
    r
}

/// What to do with a `Range` field.
pub enum RangePlan {
    /// Serve the whole representation (syntax we ignore, several ranges).
    Ignore,
    Partial((u64, u64)),
    Unsatisfiable,
}

/// One range is served; several are answered with the full body (no
/// multipart, no amplification); a syntactically bad or unknown-unit Range
/// is ignored (RFC 9110 §14.2); an unsatisfiable one is 416.
pub fn plan_range(value: &[u8], len: u64) -> RangePlan {
    use http_range_header::RangeUnsatisfiableError as E;
    let Ok(text) = std::str::from_utf8(value) else {
        return RangePlan::Ignore;
    };
    let parsed = match http_range_header::parse_range_header(text) {
        Ok(p) => p,
        Err(E::Unsatisfiable) => return RangePlan::Unsatisfiable,
        Err(_) => return RangePlan::Ignore,
    };
    if parsed.len() != 1 {
        return RangePlan::Ignore;
    }
    match parsed.validate(len) {
        Ok(v) => match v.first() {
            Some(r) => RangePlan::Partial((*r.start(), *r.end())),
            None => RangePlan::Unsatisfiable,
        },
        Err(E::Unsatisfiable) => RangePlan::Unsatisfiable,
        Err(_) => RangePlan::Ignore,
    }
}

/// Drops the hop-by-hop fields of RFC 9110 §7.6.1 (and those `Connection`
/// names) before a message crosses the proxy.
pub fn strip_hop_by_hop(h: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        h.remove(n);
    }
}
