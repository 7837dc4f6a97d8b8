//! `sitepack serve`: hyper over a mapped bundle.
//!
//! Per request: load the live bundle (`arc-swap`, no lock), resolve with a
//! thread-local scratch (no allocation), and answer with headers plus a body
//! that is a zero-copy slice of the mapping. Requests routed to the Worker go
//! to the [`Worker`] hook.

pub mod reload;
pub mod respond;
pub mod worker;

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::bundle_file::{BundleBytes, OpenError};
use crate::format::Bundle;
use crate::route::{Outcome, RequestHead, Router, Scratch};
pub use worker::{channel_body, Assets, BoxFuture, ClientAddr, Env, Upstream, Worker};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response (assets, redirects, worker responses).
pub type Body = BoxBody<Bytes, BoxError>;

/// One loaded bundle and the router over it.
pub struct Site {
    pub(crate) router: Router<BundleBytes>,
    /// Identity of the file it was loaded from, for change detection.
    pub(crate) source: Option<reload::FileId>,
}

impl Site {
    /// A site over an opened bundle (no `verify`: `resolve` reads a few
    /// records, it does not serve every blob).
    pub(crate) fn from_bundle(
        bundle: Bundle<BundleBytes>,
    ) -> Result<Site, crate::rules::worker_first::RulesError> {
        Ok(Site {
            router: Router::new(bundle)?,
            source: None,
        })
    }

    /// Loads and fully validates a bundle file (`open`, then `verify`).
    pub fn load(path: &Path, in_memory: bool) -> Result<Site, LoadError> {
        let source = reload::FileId::of(path).ok();
        let bytes = crate::bundle_file::load(path, in_memory)?;
        let bundle = Bundle::open(bytes).map_err(|e| OpenError::format(path, e))?;
        bundle.verify().map_err(|e| OpenError::format(path, e))?;
        let router = Router::new(bundle).map_err(|error| LoadError::Rules {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(Site { router, source })
    }
}

/// Why a bundle could not be served; names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Only a bundle not written by sitepack has an invalid list.
    #[error("{}: run_worker_first: {error}", path.display())]
    Rules {
        path: PathBuf,
        error: crate::rules::worker_first::RulesError,
    },
}

/// Access log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLog {
    Common,
    Json,
}

/// Everything the request handler shares.
pub struct State {
    pub(crate) site: ArcSwap<Site>,
    worker: Option<Arc<dyn Worker>>,
    access_log: Option<AccessLog>,
    /// The bundle file to watch, if serving from a file.
    pub(crate) path: Option<PathBuf>,
    pub(crate) in_memory: bool,
}

impl State {
    pub fn new(site: Site, worker: Option<Arc<dyn Worker>>) -> Arc<State> {
        Arc::new(State {
            site: ArcSwap::from_pointee(site),
            worker,
            access_log: None,
            path: None,
            in_memory: false,
        })
    }

    /// Like `new`, remembering the file so `reload` can swap it.
    pub fn from_file(
        path: &Path,
        in_memory: bool,
        worker: Option<Arc<dyn Worker>>,
        access_log: Option<AccessLog>,
    ) -> Result<Arc<State>, LoadError> {
        let site = Site::load(path, in_memory)?;
        Ok(Arc::new(State {
            site: ArcSwap::from_pointee(site),
            worker,
            access_log,
            path: Some(path.to_path_buf()),
            in_memory,
        }))
    }

    /// The `ASSETS` binding over this state.
    pub fn assets(self: &Arc<Self>) -> Assets {
        Assets {
            state: self.clone(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

fn header<B>(req: &Request<B>, name: http::header::HeaderName) -> Option<&[u8]> {
    req.headers().get(name).map(|v| v.as_bytes())
}

/// The request target as sent: path and query (the authority of an
/// absolute-form target is never used).
fn target_of<B>(req: &Request<B>) -> &str {
    req.uri().path_and_query().map_or("*", |p| p.as_str())
}

/// Resolves and answers `req`; `Err(())` means "hand it to the Worker".
fn answer<B>(
    site: &Arc<Site>,
    req: &Request<B>,
    has_worker: bool,
    assets_only: bool,
) -> Result<Response<Body>, ()> {
    use http::header::*;
    // A repeated Sec-Fetch-Mode never counts as a navigation.
    let sfm = {
        let mut all = req.headers().get_all("sec-fetch-mode").iter();
        match (all.next(), all.next()) {
            (Some(v), None) => Some(v.as_bytes()),
            _ => None,
        }
    };
    let joined_inm;
    let inm = {
        let mut all = req.headers().get_all(IF_NONE_MATCH).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => Some(v.as_bytes()),
            (None, _) => None,
            (Some(_), Some(_)) => {
                joined_inm = req
                    .headers()
                    .get_all(IF_NONE_MATCH)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(joined_inm.as_bytes())
            }
        }
    };
    // Only worth building when a `_redirects` rule could use it.
    let origin = (!site.router.redirect_rules().is_empty())
        .then(|| host_header(req).map(|h| format!("http://{h}")))
        .flatten();
    let head = RequestHead {
        origin: origin.as_deref(),
        method: req.method().as_str(),
        target: target_of(req).as_bytes(),
        if_none_match: inm,
        sec_fetch_mode: sfm,
        has_authorization: req.headers().contains_key(AUTHORIZATION),
        has_range: req.headers().contains_key(RANGE),
    };
    let info = respond::RequestInfo {
        method: req.method(),
        accept_encoding: header(req, ACCEPT_ENCODING),
        range: header(req, RANGE),
        if_range: header(req, IF_RANGE),
        if_none_match: inm,
    };
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let outcome = if assets_only {
            site.router.fetch_asset(&head, &mut s)
        } else {
            site.router.resolve(&head, has_worker, &mut s)
        };
        match outcome {
            Outcome::Worker { .. } => Err(()),
            o => {
                let rules = o.takes_header_rules();
                let mut resp = respond::respond(site, o, s.location(), &info);
                if rules {
                    site.router
                        .apply_headers(host_of(req), s.raw_path(), resp.headers_mut());
                }
                Ok(resp)
            }
        }
    })
}

/// The request's host name (lower-case, no port) for absolute `_headers`
/// rules: from the absolute-form target, else the `Host` field.
fn host_of<B>(req: &Request<B>) -> Option<&str> {
    let host = match req.uri().host() {
        Some(h) => h,
        None => {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            match h.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => h,
            }
        }
    };
    // Rules hold lower-case host names; an upper-case Host simply misses.
    Some(host)
}

fn host_header<B>(req: &Request<B>) -> Option<&str> {
    match req.uri().authority() {
        Some(a) => Some(a.as_str()),
        None => req.headers().get(http::header::HOST)?.to_str().ok(),
    }
}

/// Asset serving only: the `ASSETS` binding.
pub(crate) fn answer_assets<B>(site: &Arc<Site>, req: &Request<B>) -> Response<Body> {
    answer(site, req, false, true).unwrap_or_else(|()| respond::empty(http::StatusCode::NOT_FOUND))
}

/// Handles one request end to end.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    // RFC 9112 §3.2: exactly one Host on HTTP/1.1 (HTTP/2 carries the
    // authority in the URI); anything else is a 400, not a guess.
    let hosts = req.headers().get_all(http::header::HOST).iter().count();
    if hosts > 1
        || (hosts == 0
            && req.version() == http::Version::HTTP_11
            && req.uri().authority().is_none())
    {
        return respond::empty(http::StatusCode::BAD_REQUEST);
    }
    let site = state.site.load_full();
    let log = state
        .access_log
        .map(|fmt| (fmt, req.method().clone(), target_of(&req).to_string()));
    let resp = match answer(&site, &req, state.worker.is_some(), false) {
        Ok(r) => r,
        Err(()) => match &state.worker {
            Some(w) => {
                let mut req = req.map(|b| b.map_err(BoxError::from).boxed());
                if let Some(p) = peer {
                    req.extensions_mut().insert(ClientAddr(p));
                }
                w.fetch(
                    req,
                    Env {
                        assets: state.assets(),
                    },
                )
                .await
            }
            None => respond::empty(http::StatusCode::NOT_FOUND),
        },
    };
    if let Some((fmt, method, target)) = log {
        access_log(fmt, peer, &method, &target, &resp);
    }
    resp
}

fn access_log(
    fmt: AccessLog,
    peer: Option<SocketAddr>,
    method: &http::Method,
    target: &str,
    resp: &Response<Body>,
) {
    use http_body::Body as _;
    let ip = peer.map_or("-".to_string(), |p| p.ip().to_string());
    let size = resp.body().size_hint().exact().unwrap_or(0);
    let status = resp.status().as_u16();
    match fmt {
        AccessLog::Common => println!(
            "{ip} - - \"{method} {} HTTP/1.1\" {status} {size}",
            target.escape_debug()
        ),
        AccessLog::Json => println!(
            "{}",
            serde_json::json!({"remote": ip, "method": method.as_str(), "target": target, "status": status, "bytes": size})
        ),
    }
}

/// Connection limits. A slow or hostile client cannot pin the server: the
/// header read is timed, header size is capped, and connections are counted.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            h2_max_concurrent_streams: 128,
        }
    }
}

/// Accepts connections until `shutdown` resolves, then stops accepting and
/// waits (up to 10 s) for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(state, req, Some(peer)).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            eprintln!("serve: gave up waiting for open connections");
        }
    }
    Ok(())
}
