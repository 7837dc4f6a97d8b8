//! End-to-end tests of `sitepack serve` over the demo site: encoding
//! negotiation, validators, Range, HEAD, methods, html_handling, the 404
//! page, `_headers`, `_redirects`, HTTP/2 prior knowledge, the Worker hook
//! (library API) and the `--upstream` reverse proxy. Every request goes over
//! a real socket on 127.0.0.1; HTTP/1 requests are written byte for byte.

mod support;

use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use sitepack::serve::{Body, BoxFuture, Env, Worker};
use support::*;

fn demo_server(tmp: &tempfile::TempDir) -> ServerProc {
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    ServerProc::start(&bundle, &[])
}

fn brotli_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

fn gzip_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn is_strong_etag(v: &str) -> bool {
    v.len() >= 3 && v.starts_with('"') && v.ends_with('"') && !v[1..v.len() - 1].contains('"')
}

fn content_length(r: &Resp) -> usize {
    r.h("content-length")
        .parse()
        .expect("numeric Content-Length")
}

#[test]
fn encoding_negotiation() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    let index = demo_file("index.html");

    let br = get(s.port, "/", &[("Accept-Encoding", "br, gzip")]);
    assert_eq!(br.status, 200, "{}", br.describe());
    assert_eq!(br.h("content-encoding"), "br");
    assert_eq!(br.h("vary"), "Accept-Encoding");
    assert_eq!(br.h("content-type"), "text/html; charset=utf-8");
    assert_eq!(content_length(&br), br.body.len());
    assert_ne!(br.body, index, "br body must be compressed");
    assert_eq!(brotli_decode(&br.body), index);

    let gz = get(s.port, "/", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.h("content-encoding"), "gzip");
    assert_eq!(gz.h("vary"), "Accept-Encoding");
    assert_eq!(content_length(&gz), gz.body.len());
    assert_eq!(gzip_decode(&gz.body), index);

    let no_br = get(s.port, "/", &[("Accept-Encoding", "br;q=0, gzip")]);
    assert_eq!(no_br.h("content-encoding"), "gzip");
    assert_eq!(gzip_decode(&no_br.body), index);

    let upper = get(s.port, "/", &[("Accept-Encoding", "BR")]);
    assert_eq!(
        upper.h("content-encoding"),
        "br",
        "coding names are case-insensitive"
    );

    for ae in [None, Some("identity"), Some("*;q=0"), Some("compress")] {
        let hs: Vec<(&str, &str)> = ae.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let id = get(s.port, "/", &hs);
        assert_eq!(id.status, 200);
        assert!(!id.has("content-encoding"), "AE {ae:?}: {}", id.describe());
        assert_eq!(id.h("vary"), "Accept-Encoding", "Vary on identity too");
        assert_eq!(id.body, index);
        assert_eq!(content_length(&id), index.len());
        assert_eq!(id.h("accept-ranges"), "bytes");
    }

    // One strong ETag per representation.
    let id = get(s.port, "/", &[]);
    let tags = [id.h("etag"), br.h("etag"), gz.h("etag")];
    for t in tags {
        assert!(is_strong_etag(t), "{t}");
    }
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[0], tags[2]);
    assert_ne!(tags[1], tags[2]);
    assert_eq!(
        tags[0].len(),
        34,
        "identity ETag is the 32-hex content hash"
    );
    // Same representation, same tag.
    assert_eq!(
        get(s.port, "/", &[("Accept-Encoding", "br")]).h("etag"),
        tags[1]
    );

    // A file without variants never says Vary.
    let png = get(s.port, "/favicon.png", &[("Accept-Encoding", "br, gzip")]);
    assert_eq!(png.status, 200);
    assert!(
        !png.has("vary") && !png.has("content-encoding"),
        "{}",
        png.describe()
    );
    assert_eq!(png.body, demo_file("favicon.png"));
    assert_eq!(png.h("content-type"), "image/png");
}

#[test]
fn conditional_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    let id = get(s.port, "/", &[]);
    let br = get(s.port, "/", &[("Accept-Encoding", "br")]);
    let (etag, br_etag) = (id.h("etag").to_string(), br.h("etag").to_string());
    let other = get(s.port, "/robots.txt", &[]).h("etag").to_string();

    let hit = |inm: &str, ae: Option<&str>| {
        let mut hs = vec![("If-None-Match", inm)];
        if let Some(a) = ae {
            hs.push(("Accept-Encoding", a));
        }
        get(s.port, "/", &hs)
    };
    for (inm, ae) in [
        (etag.clone(), None),
        (format!("W/{etag}"), None),
        (format!("\"nope\", {etag}"), None),
        (format!("\"a\",W/{br_etag} , \"b\""), None),
        ("*".to_string(), None),
        // The tag of another representation of the same asset.
        (br_etag.clone(), Some("gzip")),
        (br_etag.clone(), None),
        (etag.clone(), Some("br")),
    ] {
        let r = hit(&inm, ae);
        assert_eq!(r.status, 304, "INM {inm} AE {ae:?}: {}", r.describe());
        assert!(r.body.is_empty());
        assert!(is_strong_etag(r.h("etag")));
        assert_eq!(r.h("vary"), "Accept-Encoding", "Vary on 304");
        assert_eq!(r.h("cache-control"), "public, max-age=0, must-revalidate");
        assert_eq!(r.h("x-content-type-options"), "nosniff", "_headers on 304");
    }
    // 304 with br accepted carries the br representation's tag.
    assert_eq!(hit(&etag, Some("br")).h("etag"), br_etag);

    for inm in [
        other.as_str(),
        "\"nope\"",
        etag.trim_matches('"'),
        "W/\"x\"",
    ] {
        let r = hit(inm, None);
        assert_eq!(r.status, 200, "INM {inm}: {}", r.describe());
        assert_eq!(r.body, demo_file("index.html"));
    }
}

#[test]
fn range_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    let index = demo_file("index.html");
    let len = index.len();
    let etag = get(s.port, "/", &[]).h("etag").to_string();
    let br_etag = get(s.port, "/", &[("Accept-Encoding", "br")])
        .h("etag")
        .to_string();

    // A range is served from the identity bytes, even when br is accepted.
    let r = get(
        s.port,
        "/",
        &[("Range", "bytes=0-9"), ("Accept-Encoding", "br, gzip")],
    );
    assert_eq!(r.status, 206, "{}", r.describe());
    assert_eq!(r.h("content-range"), format!("bytes 0-9/{len}"));
    assert_eq!(r.body, &index[..10]);
    assert_eq!(content_length(&r), 10);
    assert!(!r.has("content-encoding"));
    assert_eq!(r.h("etag"), etag);
    assert_eq!(r.h("vary"), "Accept-Encoding", "Vary on 206");
    assert!(
        !r.has("cache-control"),
        "no default Cache-Control with Range"
    );

    let r = get(s.port, "/", &[("Range", "bytes=-5")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.h("content-range"),
        format!("bytes {}-{}/{len}", len - 5, len - 1)
    );
    assert_eq!(r.body, &index[len - 5..]);

    let r = get(s.port, "/", &[("Range", "bytes=10-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &index[10..]);

    // End past the length is clamped.
    let r = get(s.port, "/", &[("Range", "bytes=5-99999999")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), format!("bytes 5-{}/{len}", len - 1));
    assert_eq!(r.body, &index[5..]);

    let r = get(s.port, "/", &[("Range", "bytes=1000000-")]);
    assert_eq!(r.status, 416, "{}", r.describe());
    assert_eq!(r.h("content-range"), format!("bytes */{len}"));
    assert!(r.body.is_empty());

    // Several ranges: the full representation, 200.
    let r = get(s.port, "/", &[("Range", "bytes=0-1,3-4")]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, index);
    assert!(!r.has("content-range"));

    // Unknown unit: ignored.
    let r = get(s.port, "/", &[("Range", "items=0-5")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, index);

    // If-Range: strong match with the identity tag → 206, anything else → 200.
    let r = get(s.port, "/", &[("Range", "bytes=0-9"), ("If-Range", &etag)]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &index[..10]);
    for other in [br_etag.clone(), format!("W/{etag}"), "\"x\"".to_string()] {
        let r = get(s.port, "/", &[("Range", "bytes=0-9"), ("If-Range", &other)]);
        assert_eq!(r.status, 200, "If-Range {other}: {}", r.describe());
        assert_eq!(r.body, index);
    }

    // A file with no variants.
    let robots = demo_file("robots.txt");
    let r = get(s.port, "/robots.txt", &[("Range", "bytes=0-0")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &robots[..1]);
    assert!(!r.has("vary"));
}

#[test]
fn head_is_get_without_body() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/", &[]),
        ("/", &[("Accept-Encoding", "br")]),
        ("/", &[("Accept-Encoding", "gzip")]),
        ("/", &[("Range", "bytes=0-9")]),
        ("/robots.txt", &[]),
        ("/assets/app.3f9a1c.js", &[("Accept-Encoding", "gzip")]),
        ("/nope", &[]),
        ("/blog", &[]),
        ("/home", &[]),
    ];
    for (path, hs) in cases {
        let g = get(s.port, path, hs);
        let h = request(s.port, "HEAD", path, hs);
        assert_eq!(h.status, g.status, "HEAD {path} {hs:?}");
        let strip = |r: &Resp| {
            let mut v: Vec<(String, String)> = r
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case(b"date"))
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).to_ascii_lowercase(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let (mut hh, mut gh) = (strip(&h), strip(&g));
        if g.body.is_empty() {
            // An empty GET body's `Content-Length: 0` is missing on HEAD: see
            // `head_of_empty_response_keeps_content_length` (ignored, bug).
            gh.retain(|(k, _)| k != "content-length");
            hh.retain(|(k, _)| k != "content-length");
        }
        assert_eq!(hh, gh, "HEAD {path} {hs:?} headers differ from GET");
        assert!(h.body.is_empty());
        if g.status == 200 || g.status == 206 {
            assert_eq!(
                content_length(&h),
                g.body.len(),
                "HEAD {path} Content-Length"
            );
        }
    }
    // No body bytes follow a HEAD response on the wire.
    let ex = exchange(
        s.port,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n",
        "HEAD",
        Duration::from_secs(5),
        Duration::from_secs(5),
    );
    assert!(ex.eof, "server closes after Connection: close");
    assert_eq!(ex.responses.len(), 1);
    assert!(ex.garbage.is_empty(), "body bytes after a HEAD response");
}

#[test]
fn methods() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    for path in ["/about", "/", "/assets/app.3f9a1c.js", "/about.html"] {
        for m in ["POST", "PUT", "DELETE"] {
            let r = request_body(s.port, m, path, &[], b"abc");
            assert_eq!(r.status, 405, "{m} {path}: {}", r.describe());
            assert_eq!(r.h("allow"), "GET, HEAD");
            assert!(r.body.is_empty());
        }
    }
    // `_redirects` fire whatever the method.
    let r = request_body(s.port, "POST", "/home", &[], b"x");
    assert_eq!(r.status, 301);
    assert_eq!(r.h("location"), "/");
}

#[test]
fn html_handling_and_404_page() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    for (from, to) in [
        ("/index.html", "/"),
        ("/about.html", "/about"),
        ("/about/", "/about"),
        ("/blog", "/blog/"),
        ("/blog/index.html", "/blog/"),
        ("/blog?x=1", "/blog/?x=1"),
        ("/blog/first-post.html", "/blog/first-post"),
        ("/docs/getting-started", "/docs/getting-started/"),
    ] {
        let r = get(s.port, from, &[]);
        assert_eq!(r.status, 307, "{from}: {}", r.describe());
        assert_eq!(r.h("location"), to, "{from}");
        assert!(r.body.is_empty());
    }
    for (path, file) in [
        ("/about", "about.html"),
        ("/blog/", "blog/index.html"),
        ("/blog/first-post", "blog/first-post.html"),
        ("/docs/getting-started/", "docs/getting-started/index.html"),
        ("/logo.svg", "logo.svg"),
        ("/.well-known/security.txt", ".well-known/security.txt"),
    ] {
        let r = get(s.port, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        assert_eq!(r.body, demo_file(file), "{path}");
    }
    assert_eq!(
        get(s.port, "/logo.svg", &[]).h("content-type"),
        "image/svg+xml"
    );

    // not_found_handling = 404-page (wrangler.jsonc): the nearest 404.html, status 404.
    let page = demo_file("404.html");
    for path in [
        "/nope",
        "/blog/missing",
        "/a/b/c/d",
        "/drafts/unfinished.html",
        "/drafts/unfinished",
        "/wrangler.jsonc",
        "/_headers",
        "/_redirects",
        "/.assetsignore",
    ] {
        let r = get(s.port, path, &[]);
        assert_eq!(r.status, 404, "{path}: {}", r.describe());
        assert_eq!(r.body, page, "{path}");
        assert_eq!(r.h("content-type"), "text/html; charset=utf-8");
        assert_eq!(r.h("x-content-type-options"), "nosniff");
    }
    let r = get(s.port, "/nope", &[("Accept-Encoding", "br")]);
    assert_eq!(r.status, 404);
    assert_eq!(brotli_decode(&r.body), page);
}

#[test]
fn headers_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    for path in ["/assets/app.3f9a1c.js", "/assets/style.8b2e4d.css"] {
        let r = get(s.port, path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.all("cache-control"),
            vec![&b"public, max-age=31536000, immutable"[..]],
            "{path}: {}",
            r.describe()
        );
        assert_eq!(r.h("x-content-type-options"), "nosniff");
    }
    assert_eq!(
        get(s.port, "/assets/app.3f9a1c.js", &[]).h("content-type"),
        "text/javascript; charset=utf-8"
    );
    // Every path gets the /* rule: 200, 404 page, html redirect, _redirects, 405.
    for (path, status) in [
        ("/", 200),
        ("/robots.txt", 200),
        ("/nope", 404),
        ("/blog", 307),
        ("/home", 301),
    ] {
        let r = get(s.port, path, &[]);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(
            r.h("referrer-policy"),
            "strict-origin-when-cross-origin",
            "{path}"
        );
    }
    let r = get(s.port, "/", &[]);
    assert_eq!(r.h("cache-control"), "public, max-age=0, must-revalidate");
}

#[test]
fn redirects_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    for (from, status, to) in [
        ("/home", 301, "/"),
        ("/posts/x", 301, "/blog/x"),
        ("/posts/first-post", 301, "/blog/first-post"),
        ("/docs", 302, "/docs/getting-started/"),
    ] {
        let r = get(s.port, from, &[]);
        assert_eq!(r.status, status, "{from}: {}", r.describe());
        assert_eq!(r.h("location"), to, "{from}");
        assert!(r.body.is_empty());
    }
}

#[test]
fn http2_prior_knowledge() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<Full<Bytes>>();
        let mut tasks = Vec::new();
        // Several concurrent streams on one connection.
        for (path, ae) in [
            ("/robots.txt", ""),
            ("/", "br"),
            ("/nope", ""),
            ("/blog", ""),
            ("/assets/app.3f9a1c.js", "gzip"),
        ] {
            let client = client.clone();
            let uri: http::Uri = format!("http://127.0.0.1:{}{path}", s.port)
                .parse()
                .unwrap();
            tasks.push(tokio::spawn(async move {
                let mut req = Request::get(uri);
                if !ae.is_empty() {
                    req = req.header("accept-encoding", ae);
                }
                let resp = tokio::time::timeout(
                    Duration::from_secs(10),
                    client.request(req.body(Full::new(Bytes::new())).unwrap()),
                )
                .await
                .expect("h2 request timed out")
                .expect("h2 request failed");
                let version = resp.version();
                let (parts, body) = resp.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                (path, version, parts, body)
            }));
        }
        for t in tasks {
            let (path, version, parts, body) = t.await.unwrap();
            assert_eq!(version, http::Version::HTTP_2, "{path}");
            match path {
                "/robots.txt" => {
                    assert_eq!(parts.status, 200);
                    assert_eq!(&body[..], &demo_file("robots.txt")[..]);
                }
                "/" => {
                    assert_eq!(parts.status, 200);
                    assert_eq!(parts.headers["content-encoding"], "br");
                    assert_eq!(brotli_decode(&body), demo_file("index.html"));
                }
                "/nope" => {
                    assert_eq!(parts.status, 404);
                    assert_eq!(&body[..], &demo_file("404.html")[..]);
                }
                "/blog" => {
                    assert_eq!(parts.status, 307);
                    assert_eq!(parts.headers["location"], "/blog/");
                }
                _ => {
                    assert_eq!(parts.status, 200);
                    assert_eq!(parts.headers["content-encoding"], "gzip");
                    assert_eq!(
                        parts.headers["cache-control"],
                        "public, max-age=31536000, immutable"
                    );
                    assert_eq!(gzip_decode(&body), demo_file("assets/app.3f9a1c.js"));
                }
            }
        }
    });
}

// ------------------------------------------------------------------ worker

fn text_response(status: u16, text: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("x-worker", "1")
        .body(
            Full::new(Bytes::from(text))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .unwrap()
}

/// Answers 200 "from worker <target>"; `/api/asset` goes through the
/// `ASSETS` binding for `/robots.txt`, `/api/page` for `/blog` (html_handling
/// applies through the binding).
struct TestWorker;

impl Worker for TestWorker {
    fn fetch(&self, req: Request<Body>, env: Env) -> BoxFuture<Response<Body>> {
        Box::pin(async move {
            let target = req
                .uri()
                .path_and_query()
                .map_or("", |p| p.as_str())
                .to_string();
            let via = match req.uri().path() {
                "/api/asset" => Some("/robots.txt"),
                "/api/page" => Some("/blog"),
                "/api/missing" => Some("/no/such/file"),
                _ => None,
            };
            if let Some(p) = via {
                let sub = Request::get(p)
                    .header("host", "127.0.0.1")
                    .body(())
                    .unwrap();
                let mut resp = env.assets.fetch(&sub).await;
                resp.headers_mut()
                    .insert("x-via", http::HeaderValue::from_static("assets"));
                return resp;
            }
            text_response(200, format!("from worker {target}"))
        })
    }
}

fn worker_server(tmp: &tempfile::TempDir, extra: &[&str]) -> LibServer {
    let bundle = demo_bundle(tmp.path(), "w.pack", extra);
    LibServer::start(&bundle, Some(Arc::new(TestWorker)))
}

#[test]
fn worker_fallback_for_missing_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let s = worker_server(&tmp, &["--not-found-handling", "none"]);
    let r = get(s.port, "/no/such/thing?q=1", &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "from worker /no/such/thing?q=1");
    assert_eq!(r.h("x-worker"), "1");
    assert!(
        !r.has("x-content-type-options"),
        "_headers do not apply to the Worker"
    );
    // Assets still win.
    let r = get(s.port, "/robots.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, demo_file("robots.txt"));
    assert!(!r.has("x-worker"));
    let r = get(s.port, "/blog", &[]);
    assert_eq!(r.status, 307);
    // POST to a missing path reaches the worker too.
    let r = request_body(s.port, "POST", "/submit", &[], b"data");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "from worker /submit");
}

#[test]
fn worker_first_patterns_and_assets_binding() {
    let tmp = tempfile::tempdir().unwrap();
    let s = worker_server(&tmp, &["--run-worker-first", "/api/*"]);
    let r = get(s.port, "/api/x", &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "from worker /api/x");
    // Outside the pattern: assets, and the 404 page for a missing path.
    let r = get(s.port, "/about", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, demo_file("about.html"));
    let r = get(s.port, "/nope", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.body, demo_file("404.html"));

    // env.assets.fetch answers from the bundle.
    let r = get(s.port, "/api/asset", &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.h("x-via"), "assets");
    assert_eq!(r.body, demo_file("robots.txt"));
    assert!(is_strong_etag(r.h("etag")));
    let r = get(s.port, "/api/page", &[]);
    assert_eq!(r.status, 307);
    assert_eq!(r.h("location"), "/blog/");
    let r = get(s.port, "/api/missing", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.body, demo_file("404.html"));
}

// ------------------------------------------------------------------ upstream

/// A hyper HTTP/1 origin on its own runtime that echoes what it received.
struct Upstream {
    port: u16,
    rt: Option<tokio::runtime::Runtime>,
}

impl Upstream {
    fn start() -> Upstream {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: Request<hyper::body::Incoming>| async move {
                            let mut headers = serde_json::Map::new();
                            for (k, v) in req.headers() {
                                headers.insert(
                                    k.as_str().to_string(),
                                    serde_json::Value::String(
                                        String::from_utf8_lossy(v.as_bytes()).into(),
                                    ),
                                );
                            }
                            let method = req.method().to_string();
                            let target = req.uri().to_string();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let doc = serde_json::json!({
                                "method": method,
                                "target": target,
                                "headers": headers,
                                "body": String::from_utf8_lossy(&body),
                            });
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(201)
                                    .header("content-type", "application/json")
                                    .header("x-upstream", "yes")
                                    .header("connection", "x-up-hop")
                                    .header("x-up-hop", "secret")
                                    .body(Full::new(Bytes::from(doc.to_string())))
                                    .unwrap(),
                            )
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { port, rt: Some(rt) }
    }

    /// Stops accepting and drops every open connection.
    fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn upstream_proxy_and_502() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "u.pack", &["--run-worker-first", "/api/*"]);
    let mut up = Upstream::start();
    let url = format!("http://127.0.0.1:{}", up.port);
    let s = ServerProc::start(&bundle, &["--upstream", url.as_str()]);

    let r = request_body(
        s.port,
        "POST",
        "/api/echo?q=1",
        &[
            ("Host", "site.test"),
            ("Connection", "close, x-foo"),
            ("X-Foo", "must-not-cross"),
            ("Keep-Alive", "timeout=5"),
            ("X-Kept", "yes"),
        ],
        b"payload",
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    assert_eq!(r.h("x-upstream"), "yes");
    assert!(
        !r.has("x-up-hop"),
        "hop-by-hop response field crossed: {}",
        r.describe()
    );
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("echo JSON");
    assert_eq!(doc["method"], "POST");
    assert_eq!(doc["target"], "/api/echo?q=1");
    assert_eq!(doc["body"], "payload");
    let h = &doc["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{doc}");
    assert_eq!(h["x-forwarded-host"], "site.test");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["host"], format!("127.0.0.1:{}", up.port));
    assert_eq!(h["x-kept"], "yes");
    assert!(
        h.get("x-foo").is_none(),
        "Connection-named field crossed: {doc}"
    );
    assert!(h.get("keep-alive").is_none(), "Keep-Alive crossed: {doc}");
    let conn = h.get("connection").and_then(|v| v.as_str()).unwrap_or("");
    assert!(!conn.contains("x-foo"), "Connection crossed: {doc}");

    // An existing X-Forwarded-For is appended to.
    let r = get(s.port, "/api/x", &[("X-Forwarded-For", "203.0.113.9")]);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(doc["method"], "GET");

    // Assets outside the pattern are not proxied.
    let r = get(s.port, "/robots.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, demo_file("robots.txt"));

    up.stop();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        let r = get(s.port, "/api/echo?q=1", &[]);
        assert_eq!(r.status, 502, "{}", r.describe());
    }
    // Assets keep working.
    assert_eq!(get(s.port, "/about", &[]).status, 200);
}

// ------------------------------------------------------------------ bugs

#[test]
fn range_does_not_turn_404_page_into_416() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    let r = get(s.port, "/nope", &[("Range", "bytes=1000000-")]);
    assert_eq!(r.status, 404, "{}", r.describe());
    assert_eq!(r.body, demo_file("404.html"));
    assert!(!r.has("content-range"));
}

#[test]
fn bad_host_fields_are_400() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    let two = exchange(
        s.port,
        b"GET /robots.txt HTTP/1.1\r\nHost: site.test\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
        "GET",
        Duration::from_secs(5),
        Duration::from_millis(200),
    );
    assert_eq!(two.first().map(|r| r.status), Some(400), "two Host fields");
    let none = exchange(
        s.port,
        b"GET /robots.txt HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET",
        Duration::from_secs(5),
        Duration::from_millis(200),
    );
    assert_eq!(none.first().map(|r| r.status), Some(400), "no Host field");
}

#[test]
fn head_of_empty_response_keeps_content_length() {
    let tmp = tempfile::tempdir().unwrap();
    let s = demo_server(&tmp);
    for (m, path, hs) in [
        ("GET", "/blog", vec![]),
        ("GET", "/home", vec![]),
        ("GET", "/", vec![("Range", "bytes=999999-")]),
    ] {
        let g = request(s.port, m, path, &hs);
        let h = request(s.port, "HEAD", path, &hs);
        assert_eq!(g.status, h.status);
        assert_eq!(g.get("content-length"), Some(&b"0"[..]), "GET {path}");
        assert_eq!(
            h.get("content-length"),
            g.get("content-length"),
            "HEAD {path}: {}",
            h.describe()
        );
    }
}
