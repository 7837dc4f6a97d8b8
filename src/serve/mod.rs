//! `sitepack serve`: hyper over a mapped bundle.
//!
//! Per request: load the live bundle (`arc-swap`, no lock), resolve with a
//! thread-local scratch (no allocation), and answer with headers plus a body
//! that is a zero-copy slice of the mapping. Requests routed to the Worker go
//! to the [`Worker`] hook.

pub mod balance;
pub mod fragment;
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
    pub(crate) content_types: respond::ContentTypes,
    /// Identity of the file it was loaded from, for change detection.
    pub(crate) source: Option<reload::FileId>,
}

impl Site {
    /// A site over an opened bundle (no `verify`: `resolve` reads a few
    /// records, it does not serve every blob).
    pub(crate) fn from_bundle(
        bundle: Bundle<BundleBytes>,
    ) -> Result<Site, crate::rules::worker_first::RulesError> {
        let router = Router::new(bundle)?;
        Ok(Site {
            content_types: respond::ContentTypes::of(router.bundle()),
            router,
            source: None,
        })
    }

    /// Loads and fully validates a bundle file (`open`, then `verify`).
    pub fn load(path: &Path, in_memory: bool) -> Result<Site, LoadError> {
        let source = reload::FileId::of(path).ok();
        let bytes = crate::bundle_file::load(path, in_memory)?;
        let bundle = Bundle::open(bytes).map_err(|e| OpenError::format(path, e))?;
        bundle.verify().map_err(|e| OpenError::format(path, e))?;
        let site = Site::from_bundle(bundle).map_err(|error| LoadError::Rules {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(Site { source, ..site })
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

/// The request fields the router and the response read, gathered in one
/// pass over the header map: a request carries a handful of fields, and one
/// walk comparing names is cheaper than a hashed lookup for each of the
/// eight the answer may need (and most of which are absent).
#[derive(Default)]
struct Fields<'a> {
    hosts: usize,
    host: Option<&'a http::HeaderValue>,
    /// How many `Sec-Fetch-Mode` lines, and the first.
    sec_fetch_modes: usize,
    sec_fetch_mode: Option<&'a [u8]>,
    if_none_matches: usize,
    if_none_match: Option<&'a [u8]>,
    authorization: bool,
    accept_encoding: Option<&'a [u8]>,
    range: Option<&'a [u8]>,
    if_range: Option<&'a [u8]>,
}

static SEC_FETCH_MODE: http::HeaderName = http::HeaderName::from_static("sec-fetch-mode");

impl<'a> Fields<'a> {
    fn of(headers: &'a http::HeaderMap) -> Fields<'a> {
        use http::header::*;
        let mut f = Fields::default();
        // Where a field may repeat, the first line counts, as `get` would.
        for (name, value) in headers {
            let v = value.as_bytes();
            if name == HOST {
                f.hosts += 1;
                f.host.get_or_insert(value);
            } else if name == ACCEPT_ENCODING {
                f.accept_encoding.get_or_insert(v);
            } else if name == IF_NONE_MATCH {
                f.if_none_matches += 1;
                f.if_none_match.get_or_insert(v);
            } else if name == SEC_FETCH_MODE {
                f.sec_fetch_modes += 1;
                f.sec_fetch_mode.get_or_insert(v);
            } else if name == RANGE {
                f.range.get_or_insert(v);
            } else if name == IF_RANGE {
                f.if_range.get_or_insert(v);
            } else if name == AUTHORIZATION {
                f.authorization = true;
            }
        }
        f
    }
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
    fields: &Fields<'_>,
    has_worker: bool,
    assets_only: bool,
) -> Result<Response<Body>, ()> {
    // A repeated Sec-Fetch-Mode never counts as a navigation.
    let sfm = fields
        .sec_fetch_mode
        .filter(|_| fields.sec_fetch_modes == 1);
    let joined_inm;
    let inm = if fields.if_none_matches > 1 {
        joined_inm = req
            .headers()
            .get_all(http::header::IF_NONE_MATCH)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        Some(joined_inm.as_bytes())
    } else {
        fields.if_none_match
    };
    // Only worth building when a `_redirects` rule could use it.
    let origin = (!site.router.redirect_rules().is_empty())
        .then(|| host_header(req, fields).map(|h| format!("http://{h}")))
        .flatten();
    let head = RequestHead {
        origin: origin.as_deref(),
        method: req.method().as_str(),
        target: target_of(req).as_bytes(),
        if_none_match: inm,
        sec_fetch_mode: sfm,
        has_authorization: fields.authorization,
        has_range: fields.range.is_some(),
    };
    let info = respond::RequestInfo {
        method: req.method(),
        accept_encoding: fields.accept_encoding,
        range: fields.range,
        if_range: fields.if_range,
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
                    site.router.apply_headers(
                        host_of(req, fields),
                        s.raw_path(),
                        resp.headers_mut(),
                    );
                }
                Ok(resp)
            }
        }
    })
}

/// The request's host name (lower-case, no port) for absolute `_headers`
/// rules: from the absolute-form target, else the `Host` field.
fn host_of<'a, B>(req: &'a Request<B>, fields: &Fields<'a>) -> Option<&'a str> {
    let host = match req.uri().host() {
        Some(h) => h,
        None => host_without_port(fields.host?.to_str().ok()?),
    };
    // Rules hold lower-case host names; an upper-case Host simply misses.
    Some(host)
}

/// `host[:port]` without the port: rules name hosts only.
pub(crate) fn host_without_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => authority,
    }
}

fn host_header<'a, B>(req: &'a Request<B>, fields: &Fields<'a>) -> Option<&'a str> {
    match req.uri().authority() {
        Some(a) => Some(a.as_str()),
        None => fields.host?.to_str().ok(),
    }
}

/// Asset serving only: the `ASSETS` binding.
pub(crate) fn answer_assets<B>(site: &Arc<Site>, req: &Request<B>) -> Response<Body> {
    let fields = Fields::of(req.headers());
    answer(site, req, &fields, false, true)
        .unwrap_or_else(|()| respond::empty(http::StatusCode::NOT_FOUND))
}

/// Handles one request end to end.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    let log = state.access_log.map(|fmt| {
        (
            fmt,
            std::time::SystemTime::now(),
            req.method().clone(),
            target_of(&req).to_string(),
            req.version(),
        )
    });
    let logged = |resp: Response<Body>| {
        if let Some((fmt, time, method, target, version)) = &log {
            access_log(*fmt, *time, peer, method, target, *version, &resp);
        }
        resp
    };
    // RFC 9112 §3.2: exactly one Host on HTTP/1.1 (HTTP/2 carries the
    // authority in the URI); anything else is a 400, not a guess.
    let fields = Fields::of(req.headers());
    if fields.hosts > 1
        || (fields.hosts == 0
            && req.version() == http::Version::HTTP_11
            && req.uri().authority().is_none())
    {
        return logged(respond::empty(http::StatusCode::BAD_REQUEST));
    }
    let site = state.site.load_full();
    let answered = answer(&site, &req, &fields, state.worker.is_some(), false);
    let resp = match answered {
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
    logged(resp)
}

/// Writes one access-log line to stdout. `time` is when the request arrived;
/// the byte count is the body's length (`-`, or JSON `null`, for a streamed
/// body of unknown length).
///
/// `common` is the Common Log Format,
/// `host ident authuser [dd/Mon/yyyy:HH:MM:SS +0000] "METHOD target HTTP/x.y" status bytes`,
/// with `"`, `\` and any byte outside printable ASCII escaped in the request
/// line (so a target cannot forge a line); `json` is one object a line with
/// `time` (RFC 3339, UTC) and `version` besides the same fields.
fn access_log(
    fmt: AccessLog,
    time: std::time::SystemTime,
    peer: Option<SocketAddr>,
    method: &http::Method,
    target: &str,
    version: http::Version,
    resp: &Response<Body>,
) {
    use std::io::Write as _;
    let line = access_line(fmt, time, peer, method, target, version, resp);
    // A closed or full stdout must not take the request down with it.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn access_line(
    fmt: AccessLog,
    time: std::time::SystemTime,
    peer: Option<SocketAddr>,
    method: &http::Method,
    target: &str,
    version: http::Version,
    resp: &Response<Body>,
) -> String {
    use http_body::Body as _;
    let ip = peer.map_or("-".to_string(), |p| p.ip().to_string());
    let size = resp.body().size_hint().exact();
    let status = resp.status().as_u16();
    let version = match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    };
    let when = log_time(time, fmt);
    match fmt {
        AccessLog::Common => format!(
            "{ip} - - [{}] \"{} {} {version}\" {status} {}",
            when,
            log_escape(method.as_str()),
            log_escape(target),
            size.map_or("-".to_string(), |n| n.to_string()),
        ),
        AccessLog::Json => serde_json::json!({
            "time": when,
            "remote": ip,
            "method": method.as_str(),
            "target": target,
            "version": version,
            "status": status,
            "bytes": size,
        })
        .to_string(),
    }
}

/// `"` and `\` backslash-escaped, bytes outside printable ASCII as `\xhh`
/// (as Apache logs a request line).
fn log_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// `time` in UTC as Common Log Format (`10/Oct/2000:20:55:36 +0000`) or
/// RFC 3339 (`2000-10-10T20:55:36Z`) for JSON, cut from `httpdate`'s fixed-width
/// IMF-fixdate (`Tue, 10 Oct 2000 20:55:36 GMT`). Times before 1970 are
/// clamped to the epoch (httpdate's range starts there).
fn log_time(time: std::time::SystemTime, fmt: AccessLog) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = httpdate::fmt_http_date(time.max(std::time::UNIX_EPOCH));
    let part = |r: std::ops::Range<usize>| d.get(r).unwrap_or("?");
    let (day, mon, year, hms) = (part(5..7), part(8..11), part(12..16), part(17..25));
    let month = MONTHS.iter().position(|m| *m == mon).map_or(0, |i| i + 1);
    match fmt {
        AccessLog::Common => format!("{day}/{mon}/{year}:{hms} +0000"),
        AccessLog::Json => format!("{year}-{month:02}-{day}T{hms}Z"),
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

/// Whether the client sends enough to tell its protocol (any byte that is not
/// the start of the HTTP/2 preface, or the whole preface) within `limit`;
/// `false` for silence, a stalled preface, EOF or an error.
async fn protocol_bytes_within(stream: &tokio::net::TcpStream, limit: Duration) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let wait = async {
        let mut buf = [0u8; PREFACE.len()];
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            let seen = buf.get(..n)?;
            if n == 0 {
                return None;
            }
            if n == PREFACE.len() || !PREFACE.starts_with(seen) {
                return Some(());
            }
            // A partial preface: peek returns at once while those bytes sit
            // in the buffer, so poll for the rest (this path is rare).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    matches!(tokio::time::timeout(limit, wait).await, Ok(Some(())))
}

/// Accepts connections until `shutdown` resolves, then stops accepting and
/// waits (up to 10 s) for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    serve_with(listener, state, limits, permits, None, shutdown).await
}

/// Serves `listener` on `threads` threads, each running its own
/// single-threaded runtime that accepts on a clone of the listening socket
/// and serves its connections start to finish, as nginx's workers do: no
/// request hops between threads and an idle thread sleeps in its own epoll.
/// `--max-connections` is shared, and a thread accepts only while it holds
/// no more connections than the others (`balance`). Each thread stops accepting when `stop`
/// turns true and drains its connections; returns their join handles.
pub fn spawn_workers(
    listener: std::net::TcpListener,
    threads: usize,
    state: Arc<State>,
    limits: Limits,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<std::io::Result<()>>>> {
    listener.set_nonblocking(true)?;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let balance = balance::Balance::new(threads);
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let listener = listener.try_clone()?;
        let (state, limits, permits) = (state.clone(), limits.clone(), permits.clone());
        let balance = Some((balance.clone(), i));
        let mut stop = stop.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = std::thread::Builder::new()
            .name(format!("sitepack-serve-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    serve_with(listener, state, limits, permits, balance, stopped).await
                })
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

async fn serve_with(
    listener: TcpListener,
    state: Arc<State>,
    limits: Limits,
    permits: Arc<Semaphore>,
    balance: Option<(Arc<balance::Balance>, usize)>,
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
    let stopping = tokio::sync::watch::Sender::new(false);
    tokio::pin!(shutdown);
    loop {
        if let Some((b, me)) = &balance {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = b.turn(*me) => {}
            }
        }
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
        let seat = balance.as_ref().map(|(b, me)| b.seat(*me));
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(state, req, Some(peer)).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_bytes = limits.header_read_timeout;
        let mut stopping = stopping.subscribe();
        tokio::spawn(async move {
            // hyper's header timeout starts only once the protocol is known,
            // i.e. after the first bytes (up to the 24-byte HTTP/2 preface):
            // a client sending nothing would hold its connection slot forever.
            // Shutdown does not wait for such a connection either.
            let ready = tokio::select! {
                ok = protocol_bytes_within(&stream, first_bytes) => ok,
                _ = stopping.changed() => false,
            };
            if !ready {
                // Consume what was peeked so the close is a FIN, not a reset.
                let mut sink = [0u8; 64];
                for _ in 0..16 {
                    if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                        break;
                    }
                }
                drop(permit);
                return;
            }
            let conn = builder
                .serve_connection(TokioIo::new(fragment::FragmentGuard::new(stream)), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
            drop((permit, seat));
        });
    }
    // Stop listening now, not when the drain ends: a client connecting
    // during the drain is refused at once instead of queueing unserved.
    drop(listener);
    let _ = stopping.send(true);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            eprintln!("serve: gave up waiting for open connections");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> (String, String) {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        (log_time(t, AccessLog::Common), log_time(t, AccessLog::Json))
    }

    #[test]
    fn log_time_formats() {
        // The CLF example from the Apache docs: 10/Oct/2000:13:55:36 -0700.
        assert_eq!(
            at(971_211_336),
            (
                "10/Oct/2000:20:55:36 +0000".to_string(),
                "2000-10-10T20:55:36Z".to_string()
            )
        );
        assert_eq!(at(0).0, "01/Jan/1970:00:00:00 +0000");
        assert_eq!(at(0).1, "1970-01-01T00:00:00Z");
        // Leap days: 2000 (divisible by 400) and 2024; 2100 is not one.
        assert_eq!(at(951_782_400).1, "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199).0, "29/Feb/2024:23:59:59 +0000");
        assert_eq!(at(1_709_251_200).0, "01/Mar/2024:00:00:00 +0000");
        assert_eq!(at(4_107_542_400).1, "2100-03-01T00:00:00Z");
        assert_eq!(at(1_735_689_599).1, "2024-12-31T23:59:59Z");
        assert_eq!(at(1_735_689_600).1, "2025-01-01T00:00:00Z");
        assert_eq!(at(253_402_300_799).1, "9999-12-31T23:59:59Z");
        // Before the epoch: clamped.
        assert_eq!(
            log_time(UNIX_EPOCH - Duration::from_secs(1), AccessLog::Json),
            "1970-01-01T00:00:00Z"
        );
    }

    fn resp(status: u16, body: &'static [u8]) -> Response<Body> {
        respond::full(
            http::StatusCode::from_u16(status).unwrap(),
            Bytes::from_static(body),
        )
    }

    #[test]
    fn common_log_line() {
        let t = UNIX_EPOCH + Duration::from_secs(971_211_336);
        let peer: SocketAddr = "192.0.2.7:4711".parse().unwrap();
        let line = access_line(
            AccessLog::Common,
            t,
            Some(peer),
            &http::Method::GET,
            "/apache_pb.gif?a=1",
            http::Version::HTTP_10,
            &resp(200, b"0123456789"),
        );
        assert_eq!(
            line,
            "192.0.2.7 - - [10/Oct/2000:20:55:36 +0000] \"GET /apache_pb.gif?a=1 HTTP/1.0\" 200 10"
        );
        let line = access_line(
            AccessLog::Common,
            t,
            None,
            &http::Method::HEAD,
            "/a\"b\\c\r\n1.2.3.4 - - [x] \"GET / HTTP/1.1\" 200 1\u{e9}",
            http::Version::HTTP_2,
            &resp(404, b""),
        );
        assert_eq!(
            line,
            "- - - [10/Oct/2000:20:55:36 +0000] \"HEAD /a\\\"b\\\\c\\x0d\\x0a1.2.3.4 - - [x] \\\"GET / HTTP/1.1\\\" 200 1\\xc3\\xa9 HTTP/2.0\" 404 0"
        );
        assert!(!line.contains('\n') && !line.contains('\r'));
        // A streamed body of unknown length.
        let (_tx, body) = channel_body(1);
        let streamed = Response::new(body);
        let line = access_line(
            AccessLog::Common,
            t,
            None,
            &http::Method::GET,
            "/w",
            http::Version::HTTP_11,
            &streamed,
        );
        assert!(line.ends_with("\"GET /w HTTP/1.1\" 200 -"), "{line}");
    }

    #[test]
    fn json_log_line() {
        let t = UNIX_EPOCH + Duration::from_secs(971_211_336);
        let peer: SocketAddr = "[::1]:80".parse().unwrap();
        let line = access_line(
            AccessLog::Json,
            t,
            Some(peer),
            &http::Method::POST,
            "/x\"\n",
            http::Version::HTTP_11,
            &resp(405, b"nope"),
        );
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2000-10-10T20:55:36Z",
                "remote": "::1",
                "method": "POST",
                "target": "/x\"\n",
                "version": "HTTP/1.1",
                "status": 405,
                "bytes": 4,
            })
        );
    }
}
