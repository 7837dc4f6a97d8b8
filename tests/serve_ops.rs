//! Operating `sitepack serve`: graceful shutdown on SIGTERM/SIGINT with a
//! response in flight, `--access-log common|json` (and silence without it),
//! `--max-connections`, and the header read timeout. Every check is on what
//! an operator sees: the exit status, the bytes on the socket, the lines on
//! stdout.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

// --------------------------------------------------------------- sockets

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

/// A connection whose receive buffer is pinned small (no autotuning), so a
/// client that stops reading stalls the server's write within a few MiB.
fn connect_slow_reader(port: u16) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor we own; it is handed to
    // `TcpStream` (which closes it) only once connected.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let size: libc::c_int = 16 * 1024;
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let err = std::io::Error::last_os_error();
        let s = TcpStream::from_raw_fd(fd);
        assert_eq!(r, 0, "connect: {err}");
        s.set_nodelay(true).unwrap();
        s
    }
}

/// What a read saw within a time limit.
#[derive(Debug, PartialEq)]
enum Seen {
    /// EOF, or a reset: the server closed the connection.
    Closed,
    Bytes(Vec<u8>),
    Nothing,
}

/// Reads once, waiting up to `timeout`.
fn read_some(s: &mut TcpStream, timeout: Duration) -> Seen {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = vec![0u8; 65536];
    match s.read(&mut buf) {
        Ok(0) => Seen::Closed,
        Ok(n) => Seen::Bytes(buf[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Seen::Nothing,
        Err(_) => Seen::Closed,
    }
}

/// Reads until one complete final response is in (the caller does not
/// pipeline, so nothing follows it), for at most `timeout`.
fn read_response(s: &mut TcpStream, method: &str, timeout: Duration) -> Resp {
    let end = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut eof = false;
    loop {
        let (resps, _) = parse_responses(&buf, method, eof);
        if let Some(r) = resps.iter().find(|r| r.complete && r.status >= 200) {
            return r.clone();
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !eof && !left.is_zero(),
            "no complete {method} response (eof {eof}, {} bytes: {:?})",
            buf.len(),
            String::from_utf8_lossy(&buf[..buf.len().min(300)])
        );
        match read_some(s, left.min(Duration::from_millis(250))) {
            Seen::Bytes(b) => buf.extend_from_slice(&b),
            Seen::Closed => eof = true,
            Seen::Nothing => {}
        }
    }
}

/// Whether the server closes `s` within `timeout` (any bytes first fail).
fn closes_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match read_some(s, left) {
            Seen::Closed => return true,
            Seen::Bytes(b) => panic!(
                "expected the connection to close, got {:?}",
                String::from_utf8_lossy(&b)
            ),
            Seen::Nothing => {}
        }
    }
}

fn get_req(target: &str, keep_alive: bool) -> Vec<u8> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {conn}\r\n\r\n").into_bytes()
}

// --------------------------------------------------------------- fixtures

const BIG_LEN: usize = 16 << 20;

/// Incompressible (xorshift) bytes: `.bin` is stored identity only.
fn big_bytes() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut v = Vec::with_capacity(BIG_LEN);
    while v.len() < BIG_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// A bundle with a 16 MiB asset: far more than the kernel buffers on both
/// ends (4 MiB send buffer at most, a 16 KiB receive buffer) hold, so a
/// client that stops reading leaves the server mid-response in user space.
fn big_site(tmp: &Path, big: &[u8]) -> PathBuf {
    let dir = tmp.join("big-site");
    write_tree(
        &dir,
        &[
            ("index.html", b"<!doctype html><title>big</title>\n"),
            ("robots.txt", b"User-agent: *\n"),
            ("big.bin", big),
        ],
    );
    let out = tmp.join("big.pack");
    build_bundle(&dir, &out, &[]);
    out
}

// --------------------------------------------------------------- shutdown

/// Reads `n` bytes of the response in small sips, then stops reading.
fn sip(s: &mut TcpStream, into: &mut Vec<u8>, n: usize) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut chunk = [0u8; 4096];
    while into.len() < n {
        let k = s.read(&mut chunk).expect("read while sipping");
        assert!(k > 0, "EOF after {} bytes", into.len());
        into.extend_from_slice(&chunk[..k]);
    }
}

/// Reads to EOF (or `timeout`), returning whether EOF was seen.
fn drain(s: &mut TcpStream, into: &mut Vec<u8>, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(k) => into.extend_from_slice(&chunk[..k]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) => panic!("read: {e} after {} bytes", into.len()),
        }
    }
}

/// The response in `raw` is a complete 200 whose body is exactly `big`.
fn assert_big_response(raw: &[u8], big: &[u8]) {
    let (resps, garbage) = parse_responses(raw, "GET", true);
    assert_eq!(resps.len(), 1, "one response expected");
    assert!(garbage.is_empty(), "{} stray bytes", garbage.len());
    let r = &resps[0];
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.complete, "truncated: {}", r.describe());
    assert_eq!(r.h("content-length"), big.len().to_string());
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big, "body bytes differ from the asset");
}

/// Whether a fresh connection to `port` is refused (polls for up to 3 s).
fn refuses_connections(port: u16) -> bool {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

fn assert_alive(s: &mut ServerProc, sig: &str) {
    if let Some(st) = s.wait_exit(Duration::ZERO) {
        panic!(
            "{sig}: exited ({st}) with a response in flight; stderr:\n{}",
            s.stderr()
        );
    }
}

fn assert_clean_exit(s: &mut ServerProc, sig: &str, since: Instant) {
    let st = s.wait_exit(Duration::from_secs(5));
    let code = st.and_then(|st| st.code());
    assert_eq!(
        code,
        Some(0),
        "{sig}: exit status {st:?} (None: still running 5 s after the response); stderr:\n{}",
        s.stderr()
    );
    assert!(
        since.elapsed() < Duration::from_secs(8),
        "{sig}: took {:?} to exit",
        since.elapsed()
    );
    let log = s.stderr();
    assert!(log.contains("serve: stopped"), "{sig}: stderr:\n{log}");
    assert!(!log.contains("gave up"), "{sig}: stderr:\n{log}");
}

/// SIGTERM while a slow reader is mid-way through a 16 MiB body: new
/// connections are refused at once, the body still arrives complete and
/// byte-exact, and the process exits 0.
#[test]
fn sigterm_finishes_in_flight_response_then_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let big = big_bytes();
    let mut s = ServerProc::start_with(&big_site(tmp.path(), &big), &[], Stdout::Capture);

    let mut slow = connect_slow_reader(s.port);
    slow.write_all(&get_req("/big.bin", false)).unwrap();
    let mut raw = Vec::new();
    sip(&mut slow, &mut raw, 256 * 1024);
    // Let the server fill every buffer and block in its write.
    std::thread::sleep(Duration::from_millis(300));

    let t0 = Instant::now();
    s.signal(libc::SIGTERM);
    assert!(
        refuses_connections(s.port),
        "a new connection was still accepted after SIGTERM; stderr:\n{}",
        s.stderr()
    );
    assert_alive(&mut s, "SIGTERM");
    // Still slow: the in-flight response outlives the signal.
    std::thread::sleep(Duration::from_millis(300));
    assert_alive(&mut s, "SIGTERM");

    assert!(drain(&mut slow, &mut raw, Duration::from_secs(8)), "no EOF");
    assert_big_response(&raw, &big);
    assert_clean_exit(&mut s, "SIGTERM", t0);
}

/// SIGINT with a keep-alive connection mid-exchange (one response done, a
/// 16 MiB one half read), an idle keep-alive connection and a connection
/// that has sent nothing yet: the idle ones are closed at once, the
/// in-flight response completes and its connection is then closed (no
/// further keep-alive), and the process exits 0.
#[test]
fn sigint_drains_keep_alive_connection_then_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let big = big_bytes();
    let mut s = ServerProc::start_with(&big_site(tmp.path(), &big), &[], Stdout::Capture);

    let mut idle = connect(s.port);
    idle.write_all(&get_req("/robots.txt", true)).unwrap();
    let r = read_response(&mut idle, "GET", Duration::from_secs(10));
    assert_eq!((r.status, r.text().as_str()), (200, "User-agent: *\n"));
    let mut silent = connect(s.port);

    let mut busy = connect_slow_reader(s.port);
    busy.write_all(&get_req("/", true)).unwrap();
    let first = read_response(&mut busy, "GET", Duration::from_secs(10));
    assert_eq!(first.status, 200, "{}", first.describe());
    busy.write_all(&get_req("/big.bin", true)).unwrap();
    let mut raw = Vec::new();
    sip(&mut busy, &mut raw, 256 * 1024);
    std::thread::sleep(Duration::from_millis(300));

    let t0 = Instant::now();
    s.signal(libc::SIGINT);
    assert!(
        closes_within(&mut idle, Duration::from_secs(2)),
        "idle keep-alive connection not closed after SIGINT"
    );
    assert!(
        closes_within(&mut silent, Duration::from_secs(2)),
        "connection that sent nothing not closed after SIGINT"
    );
    assert_alive(&mut s, "SIGINT");

    assert!(
        drain(&mut busy, &mut raw, Duration::from_secs(8)),
        "keep-alive connection not closed after its in-flight response"
    );
    assert_big_response(&raw, &big);
    assert_clean_exit(&mut s, "SIGINT", t0);
}

// --------------------------------------------------------------- access log

/// One request the log must show.
#[derive(Debug)]
struct Logged {
    method: &'static str,
    /// As the log writes it (CLF-escaped).
    target: String,
    version: &'static str,
    status: u16,
    bytes: usize,
}

/// Sends a fixed mix of requests (each on its own connection unless noted)
/// and returns what each got on the wire, in order.
fn drive_requests(port: u16) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut one = |raw: &str, method: &'static str, target: &str, version: &'static str| {
        let ex = exchange(
            port,
            raw.as_bytes(),
            method,
            Duration::from_secs(10),
            Duration::ZERO,
        );
        let r = ex
            .first()
            .filter(|r| r.complete)
            .unwrap_or_else(|| panic!("{raw:?}: no response"));
        out.push(Logged {
            method,
            target: target.to_string(),
            version,
            status: r.status,
            bytes: r.body.len(),
        });
        r.clone()
    };
    let index = one(
        "GET /?a=1&b=%22 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET",
        "/?a=1&b=%22",
        "HTTP/1.1",
    );
    assert_eq!(index.status, 200);
    assert_eq!(index.body, demo_file("index.html"));
    let head = one(
        "HEAD /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "HEAD",
        "/robots.txt",
        "HTTP/1.1",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let old = one(
        "GET /robots.txt HTTP/1.0\r\n\r\n",
        "GET",
        "/robots.txt",
        "HTTP/1.0",
    );
    assert_eq!(old.status, 200);
    assert!(old.status_line.starts_with(b"HTTP/1."));
    let missing = one(
        "GET /no/such/page HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET",
        "/no/such/page",
        "HTTP/1.1",
    );
    assert_eq!(missing.status, 404);
    assert!(!missing.body.is_empty(), "the demo site has a 404 page");
    let post = one(
        "POST /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "POST",
        "/robots.txt",
        "HTTP/1.1",
    );
    assert_eq!(post.status, 405);
    // A quote in the target must not end the quoted request line.
    let quote = one(
        "GET /x\"y HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET",
        "/x\\\"y",
        "HTTP/1.1",
    );
    assert_eq!(quote.status, 404);
    // No Host on HTTP/1.1: refused by the handler, and still logged.
    let no_host = one(
        "GET /robots.txt HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET",
        "/robots.txt",
        "HTTP/1.1",
    );
    assert_eq!(no_host.status, 400);

    // Two requests pipelined on one keep-alive connection: two lines.
    let mut raw = get_req("/robots.txt", true);
    raw.extend_from_slice(&get_req("/", false));
    let ex = exchange(
        port,
        &raw,
        "GET",
        Duration::from_secs(10),
        Duration::from_millis(300),
    );
    let finals = ex.finals();
    assert_eq!(finals.len(), 2, "{:?}", String::from_utf8_lossy(&ex.raw));
    for (r, target) in finals.iter().zip(["/robots.txt", "/"]) {
        assert!(r.complete);
        out.push(Logged {
            method: "GET",
            target: target.into(),
            version: "HTTP/1.1",
            status: r.status,
            bytes: r.body.len(),
        });
    }

    // HTTP/2 (prior knowledge).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        use http_body_util::BodyExt;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let uri: http::Uri = format!("http://127.0.0.1:{port}/robots.txt")
            .parse()
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
            .await
            .expect("h2 request timed out")
            .expect("h2 request failed");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    });
    assert_eq!(status, 200);
    out.push(Logged {
        method: "GET",
        target: "/robots.txt".into(),
        version: "HTTP/2.0",
        status,
        bytes: body.len(),
    });
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of the
/// server's conversion, written independently to cross-check it).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, len: usize) -> i64 {
    assert!(
        s.len() == len && s.bytes().all(|b| b.is_ascii_digit()),
        "{s:?} is not {len} digits"
    );
    s.parse().unwrap()
}

fn unix_of(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    assert!(
        (1..=12).contains(&mo) && (1..=31).contains(&d),
        "{y}-{mo}-{d}"
    );
    assert!(h < 24 && mi < 60 && s < 60, "{h}:{mi}:{s}");
    days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
}

/// `dd/Mon/yyyy:HH:MM:SS +0000` → Unix seconds.
fn parse_clf_time(t: &str) -> i64 {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (stamp, zone) = t.split_once(' ').expect("a zone");
    assert_eq!(zone, "+0000", "{t}");
    let (date, time) = stamp.split_once(':').expect("date:time");
    let d: Vec<&str> = date.split('/').collect();
    let hms: Vec<&str> = time.split(':').collect();
    assert!(d.len() == 3 && hms.len() == 3, "{t}");
    let mo = MONTHS
        .iter()
        .position(|m| *m == d[1])
        .unwrap_or_else(|| panic!("month {:?}", d[1])) as i64
        + 1;
    unix_of(
        num(d[2], 4),
        mo,
        num(d[0], 2),
        num(hms[0], 2),
        num(hms[1], 2),
        num(hms[2], 2),
    )
}

/// `yyyy-mm-ddTHH:MM:SSZ` → Unix seconds.
fn parse_rfc3339(t: &str) -> i64 {
    let (date, time) = t.split_once('T').expect("a T");
    let time = time.strip_suffix('Z').expect("UTC (Z)");
    let d: Vec<&str> = date.split('-').collect();
    let hms: Vec<&str> = time.split(':').collect();
    assert!(d.len() == 3 && hms.len() == 3, "{t}");
    unix_of(
        num(d[0], 4),
        num(d[1], 2),
        num(d[2], 2),
        num(hms[0], 2),
        num(hms[1], 2),
        num(hms[2], 2),
    )
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assert_recent(t: i64, since: i64, line: &str) {
    assert!(
        since - 1 <= t && t <= now_unix() + 1,
        "time {t} not within the test run [{since}, now]: {line}"
    );
}

#[test]
fn access_log_common() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let s = ServerProc::start_with(&bundle, &["--access-log", "common"], Stdout::Capture);
    let since = now_unix();
    let sent = drive_requests(s.port);
    let out = s.stop_and_stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        sent.len(),
        "one line per request, nothing else:\n{out}"
    );
    for (line, want) in lines.iter().zip(&sent) {
        // host ident authuser [date] "request line" status bytes
        let (host, rest) = line.split_once(' ').expect("host");
        assert_eq!(host, "127.0.0.1", "{line}");
        let rest = rest.strip_prefix("- - [").expect("ident authuser [");
        let (date, rest) = rest.split_once("] \"").expect("] \"");
        assert_recent(parse_clf_time(date), since, line);
        let (request, tail) = rest.rsplit_once("\" ").expect("closing quote");
        assert_eq!(
            request,
            format!("{} {} {}", want.method, want.target, want.version),
            "{line}"
        );
        assert_eq!(
            tail,
            format!("{} {}", want.status, want.bytes),
            "status and bytes: {line}"
        );
    }
}

#[test]
fn access_log_json() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let s = ServerProc::start_with(&bundle, &["--access-log", "json"], Stdout::Capture);
    let since = now_unix();
    let sent = drive_requests(s.port);
    let out = s.stop_and_stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        sent.len(),
        "one line per request, nothing else:\n{out}"
    );
    for (line, want) in lines.iter().zip(&sent) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = v.as_object().expect("an object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["bytes", "method", "remote", "status", "target", "time", "version"],
            "{line}"
        );
        assert_eq!(v["remote"], "127.0.0.1", "{line}");
        assert_eq!(v["method"], want.method, "{line}");
        // JSON carries the target unescaped.
        assert_eq!(v["target"], want.target.replace("\\\"", "\""), "{line}");
        assert_eq!(v["version"], want.version, "{line}");
        assert_eq!(v["status"], want.status, "{line}");
        assert_eq!(v["bytes"], want.bytes, "{line}");
        assert_recent(
            parse_rfc3339(v["time"].as_str().expect("time")),
            since,
            line,
        );
    }
}

#[test]
fn no_access_log_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let s = ServerProc::start_with(&bundle, &[], Stdout::Capture);
    let sent = drive_requests(s.port);
    assert!(!sent.is_empty());
    let out = s.stop_and_stdout();
    assert_eq!(out, "", "stdout without --access-log");
}

/// A log reader that goes away (a closed pipe) or a full disk must not
/// break serving: every request is still answered, and SIGTERM still ends
/// the process cleanly.
#[test]
fn access_log_to_unwritable_stdout_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let dev_full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    for (what, out) in [
        ("closed pipe", Stdout::ClosedPipe),
        ("/dev/full", Stdout::File(dev_full())),
    ] {
        let mut s = ServerProc::start_with(&bundle, &["--access-log", "json"], out);
        for _ in 0..3 {
            let ex = exchange(
                s.port,
                &get_req("/robots.txt", false),
                "GET",
                Duration::from_secs(10),
                Duration::ZERO,
            );
            let r = ex.first().filter(|r| r.complete).unwrap_or_else(|| {
                panic!(
                    "{what}: no response ({} bytes); stderr:\n{}",
                    ex.raw.len(),
                    s.stderr()
                )
            });
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(r.body, demo_file("robots.txt"), "{what}");
        }
        assert!(s.is_alive(), "{what}");
        assert!(!s.stderr().contains("panicked"), "{what}: {}", s.stderr());
        s.signal(libc::SIGTERM);
        let st = s.wait_exit(Duration::from_secs(5));
        assert_eq!(st.and_then(|s| s.code()), Some(0), "{what}: {st:?}");
    }
}

// --------------------------------------------------------------- limits

/// `--max-connections 2`: with two idle connections open (one keep-alive
/// after a response, one that has sent nothing), a third is held unserved
/// (not refused, not reset, no 5xx); once one closes it is served.
#[test]
fn max_connections_holds_the_extra_connection_until_one_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let mut s = ServerProc::start_with(&bundle, &["--max-connections", "2"], Stdout::Capture);

    let mut keep = connect(s.port);
    keep.write_all(&get_req("/robots.txt", true)).unwrap();
    let r = read_response(&mut keep, "GET", Duration::from_secs(10));
    assert_eq!(r.status, 200);
    let silent = connect(s.port);
    std::thread::sleep(Duration::from_millis(200));

    // The kernel completes the handshake (backlog); the server must not.
    let mut extra = connect(s.port);
    extra.write_all(&get_req("/robots.txt", false)).unwrap();
    assert_eq!(
        read_some(&mut extra, Duration::from_millis(1500)),
        Seen::Nothing,
        "a third connection was served (or closed) with 2 allowed"
    );
    // The admitted connections still work.
    keep.write_all(&get_req("/", true)).unwrap();
    let r = read_response(&mut keep, "GET", Duration::from_secs(10));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        read_some(&mut extra, Duration::from_millis(100)),
        Seen::Nothing
    );

    drop(silent);
    let r = read_response(&mut extra, "GET", Duration::from_secs(5));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, demo_file("robots.txt"));
    // `extra` was Connection: close, so a slot is free again.
    drop(extra);
    let r = get(s.port, "/robots.txt", &[]);
    assert_eq!(r.status, 200);
    assert!(s.is_alive());
}

/// `--threads 3` keeps connection counts level across its threads (a thread
/// accepts only while it holds no more than the others): 30 connections
/// opened at once are all accepted and answered, also in the reverse order
/// of opening, and after most of them close new ones are still accepted.
#[test]
fn balanced_threads_accept_and_answer_every_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let s = ServerProc::start_with(&bundle, &["--threads", "3"], Stdout::Capture);
    let mut conns: Vec<TcpStream> = (0..30).map(|_| connect(s.port)).collect();
    for c in conns.iter_mut().rev() {
        c.write_all(&get_req("/robots.txt", true)).unwrap();
        let r = read_response(c, "GET", Duration::from_secs(10));
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.body, demo_file("robots.txt"));
    }
    conns.truncate(2);
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..10 {
        let r = get(s.port, "/robots.txt", &[]);
        assert_eq!(r.status, 200);
    }
    for c in &mut conns {
        c.write_all(&get_req("/", true)).unwrap();
        let r = read_response(c, "GET", Duration::from_secs(10));
        assert_eq!(r.status, 200, "{}", r.describe());
    }
}

/// A client that sends part of a request head and stalls is disconnected
/// after the 10 s header read timeout (EOF, or a 408 then EOF), while other
/// clients are answered throughout.
#[test]
fn header_read_timeout_closes_a_stalled_head() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let mut s = ServerProc::start_with(&bundle, &[], Stdout::Capture);

    let mut stalled = connect(s.port);
    stalled
        .write_all(b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    let t0 = Instant::now();
    let closed_after = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let closed = drain(&mut stalled, &mut raw, Duration::from_secs(14));
        (closed.then(|| t0.elapsed()), raw)
    });
    // Meanwhile everyone else is served.
    let mut served = 0;
    while !closed_after.is_finished() && t0.elapsed() < Duration::from_secs(14) {
        let r = get(s.port, "/robots.txt", &[]);
        assert_eq!(r.status, 200, "{}", r.describe());
        served += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    let (closed, raw) = closed_after.join().unwrap();
    let elapsed = closed.unwrap_or_else(|| panic!("stalled head still open after 14 s"));
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(13)).contains(&elapsed),
        "closed after {elapsed:?}, expected about 10 s"
    );
    if !raw.is_empty() {
        let (resps, _) = parse_responses(&raw, "GET", true);
        assert_eq!(
            resps.first().map(|r| r.status),
            Some(408),
            "only a 408 may precede the close: {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    assert!(served >= 20, "only {served} requests answered meanwhile");
    assert!(s.is_alive());
    let r = get(s.port, "/", &[]);
    assert_eq!(r.status, 200);
}

/// The header read timeout should also cover a connection that has sent
/// nothing, or only a prefix of the HTTP/2 preface: otherwise
/// `--max-connections` such clients lock everyone else out for good.
#[test]
fn header_read_timeout_covers_silent_and_partial_preface_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let mut s = ServerProc::start_with(&bundle, &["--max-connections", "2"], Stdout::Capture);
    let silent = connect(s.port);
    let mut preface = connect(s.port);
    preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let t0 = Instant::now();
    let watch = |mut c: TcpStream| {
        std::thread::spawn(move || {
            let mut raw = Vec::new();
            drain(&mut c, &mut raw, Duration::from_secs(13)).then(|| t0.elapsed())
        })
    };
    let (silent, preface) = (watch(silent), watch(preface));
    let silent = silent.join().unwrap();
    let preface = preface.join().unwrap();
    assert!(
        silent.is_some() && preface.is_some(),
        "still open after 13 s: silent connection closed at {silent:?}, partial preface at {preface:?}"
    );
    // Both slots are free again.
    let r = get(s.port, "/robots.txt", &[]);
    assert_eq!(r.status, 200);
    assert!(s.is_alive());
}
