//! The worker hook: a Rust trait that plays the role of a Cloudflare Worker,
//! with an `ASSETS` binding to call back into the bundle, and the upstream
//! reverse proxy that stands in for it when the user does not write Rust.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::respond::{empty, strip_hop_by_hop};
use super::{Body, State};

/// A boxed, sendable future, as the trait returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a worker can reach: the `ASSETS` binding.
#[derive(Clone)]
pub struct Env {
    pub assets: Assets,
}

/// The `ASSETS` binding: asset serving with html_handling and
/// not_found_handling, but no worker decision (spec §2.4, "Assets are
/// reachable only through the binding").
#[derive(Clone)]
pub struct Assets {
    pub(super) state: Arc<State>,
}

impl Assets {
    /// Answers `req` from the bundle that is live now. Only the method, the
    /// target and the headers of `req` are used.
    pub async fn fetch<B>(&self, req: &Request<B>) -> Response<Body> {
        let site = self.state.site.load_full();
        super::answer_assets(&site, req)
    }
}

/// A request handler that runs when routing sends a request to the Worker:
/// `run_worker_first` matched, or no asset answered and a worker exists.
pub trait Worker: Send + Sync + 'static {
    fn fetch(&self, req: Request<Body>, env: Env) -> BoxFuture<Response<Body>>;
}

/// A response body fed from a channel, for workers that stream a
/// transformed body (e.g. HTML rewriting) while they produce it.
pub fn channel_body(capacity: usize) -> (tokio::sync::mpsc::Sender<bytes::Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (tx, ChannelBody { rx }.boxed())
}

struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// `--upstream URL`: every worker request is proxied to an HTTP origin,
/// streaming both ways.
pub struct Upstream {
    base: Uri,
    client: Client<HttpConnector, Body>,
}

impl Upstream {
    /// `base` is `http://host[:port][/prefix]`.
    pub fn new(base: &str) -> Result<Self, String> {
        let base: Uri = base
            .parse()
            .map_err(|e| format!("--upstream {base:?}: {e}"))?;
        if base.scheme_str() != Some("http") || base.authority().is_none() {
            return Err(format!(
                "--upstream {base}: must be an http://host[:port] URL (TLS upstreams are not supported)"
            ));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Upstream { base, client })
    }

    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let prefix = self.base.path().trim_end_matches('/');
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        Uri::builder()
            .scheme("http")
            .authority(self.base.authority().map_or("", |a| a.as_str()))
            .path_and_query(format!("{prefix}{pq}"))
            .build()
    }
}

/// The client address, for `X-Forwarded-For`; set by the server per request.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

impl Worker for Upstream {
    fn fetch(&self, mut req: Request<Body>, _env: Env) -> BoxFuture<Response<Body>> {
        let target = match self.target(req.uri()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "upstream: cannot build the upstream URL for {}: {e}",
                    req.uri()
                );
                return Box::pin(async { empty(StatusCode::BAD_GATEWAY) });
            }
        };
        let host = req.headers().get(header::HOST).cloned();
        let client_ip = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
        *req.uri_mut() = target.clone();
        let h = req.headers_mut();
        strip_hop_by_hop(h);
        if let Some(ip) = client_ip {
            let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                h.insert("x-forwarded-for", v);
            }
        }
        if let Some(host) = host {
            h.insert("x-forwarded-host", host);
        }
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        if let Some(auth) = target
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            h.insert(header::HOST, auth);
        }
        let client = self.client.clone();
        Box::pin(async move {
            match client.request(req).await {
                Ok(resp) => {
                    let (mut parts, body) = resp.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Response::from_parts(parts, body.map_err(Into::into).boxed())
                }
                Err(e) => {
                    eprintln!("upstream: {target}: {e} (answering 502)");
                    empty(StatusCode::BAD_GATEWAY)
                }
            }
        })
    }
}
