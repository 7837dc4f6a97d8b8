//! Shared helpers for the `serve` end-to-end tests: build bundles with the
//! CLI, run `sitepack serve` on an ephemeral 127.0.0.1 port (killed on drop),
//! run the library server in-process (for `Worker` hooks), and a raw HTTP/1
//! client over `TcpStream` that sends bytes exactly as given and parses every
//! response leniently (so the tests see what went on the wire).
#![allow(dead_code)]

pub mod location;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sitepack");

/// The demo site shipped in the repository.
pub fn demo_site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-site")
}

/// `sitepack build DIR -o OUT --compression fast --quiet EXTRA...`; panics
/// with the CLI's stderr on failure.
pub fn build_bundle(dir: &Path, out: &Path, extra: &[&str]) {
    let o = Command::new(BIN)
        .arg("build")
        .arg(dir)
        .arg("-o")
        .arg(out)
        .args(["--compression", "fast", "--quiet"])
        .args(extra)
        .current_dir(dir.parent().unwrap_or(dir))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run sitepack build");
    assert!(
        o.status.success(),
        "sitepack build {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Builds the demo site into `tmp/NAME` and returns the bundle path.
pub fn demo_bundle(tmp: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = tmp.join(name);
    build_bundle(&demo_site(), &out, extra);
    out
}

// --------------------------------------------------------------- the binary

/// A running `sitepack serve` child. Killed (by its pid) and reaped on drop.
pub struct ServerProc {
    child: Child,
    pub port: u16,
    stdout: Arc<Mutex<Vec<u8>>>,
    stdout_eof: Arc<AtomicBool>,
    stderr: Arc<Mutex<String>>,
}

/// Where a [`ServerProc`]'s stdout goes.
pub enum Stdout {
    /// Discarded.
    Null,
    /// A pipe read into [`ServerProc::stop_and_stdout`]'s result.
    Capture,
    /// A pipe whose read end is closed at once: every write is EPIPE.
    ClosedPipe,
    File(std::fs::File),
}

impl ServerProc {
    /// Runs `sitepack serve SOURCE --listen 127.0.0.1:0 EXTRA...` and waits
    /// (≤ 20 s) for the `serve: … on http://127.0.0.1:PORT` line.
    pub fn start(source: &Path, extra: &[&str]) -> ServerProc {
        ServerProc::start_with(source, extra, Stdout::Null)
    }

    /// [`start`](Self::start) with stdout going to `out`.
    pub fn start_with(source: &Path, extra: &[&str], out: Stdout) -> ServerProc {
        use std::os::unix::process::CommandExt;
        let capture = matches!(out, Stdout::Capture);
        let mut cmd = Command::new(BIN);
        // SAFETY: prctl is async-signal-safe; the child dies with the
        // spawning thread if the test process goes away without Drop.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .arg("serve")
            .arg(source)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(match out {
                Stdout::Null => Stdio::null(),
                Stdout::Capture | Stdout::ClosedPipe => Stdio::piped(),
                Stdout::File(f) => Stdio::from(f),
            })
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn sitepack serve");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_eof = Arc::new(AtomicBool::new(false));
        // `ClosedPipe`: the read end is dropped here, unread.
        if let Some(mut pipe) = child.stdout.take().filter(|_| capture) {
            let (out, eof) = (stdout.clone(), stdout_eof.clone());
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    out.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
                eof.store(true, Ordering::SeqCst);
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<u16>();
        let pipe = child.stderr.take().expect("stderr piped");
        let log = stderr.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = tx.as_ref() {
                    if let Some(port) = listening_port(&line) {
                        let _ = t.send(port);
                        tx = None;
                    }
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut server = ServerProc {
            child,
            port: 0,
            stdout,
            stdout_eof,
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => server.port = port,
            Err(_) => {
                let st = server.child.try_wait().ok().flatten();
                panic!(
                    "sitepack serve did not announce its port within 20 s (exit: {st:?}); stderr:\n{}",
                    server.stderr()
                );
            }
        }
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({sig}) failed");
    }

    /// Sends SIGHUP (forces a reload).
    pub fn hup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Waits until stderr contains `needle` (true) or `timeout` passes.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr().contains(needle)
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status, if the process ends within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then everything the process wrote to stdout (started with
    /// [`Stdout::Capture`]), asserting a clean exit: nothing per request may
    /// be lost on the way out.
    pub fn stop_and_stdout(mut self) -> String {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(Duration::from_secs(5));
        assert_eq!(
            st.and_then(|s| s.code()),
            Some(0),
            "exit after SIGTERM: {st:?}; stderr:\n{}",
            self.stderr()
        );
        let end = Instant::now() + Duration::from_secs(5);
        while !self.stdout_eof.load(Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            self.stdout_eof.load(Ordering::SeqCst),
            "stdout never closed"
        );
        let out = self.stdout.lock().unwrap().clone();
        String::from_utf8(out).expect("stdout is UTF-8")
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve: <bundle> on http://127.0.0.1:PORT` → PORT.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("serve: ")?;
    let (_, url) = rest.rsplit_once(" on http://")?;
    let (host, port) = url.trim().rsplit_once(':')?;
    (host == "127.0.0.1").then_some(())?;
    port.parse().ok()
}

// --------------------------------------------------------------- in-process

/// The library server (`sitepack::serve::serve`) on its own runtime, for
/// tests that plug in a Rust `Worker`. Shut down on drop.
pub struct LibServer {
    pub port: u16,
    pub state: Arc<sitepack::serve::State>,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LibServer {
    pub fn start(bundle: &Path, worker: Option<Arc<dyn sitepack::serve::Worker>>) -> LibServer {
        let site = sitepack::serve::Site::load(bundle, false).expect("Site::load");
        let state = sitepack::serve::State::new(site, worker);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        rt.spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            let _ =
                sitepack::serve::serve(listener, st, sitepack::serve::Limits::default(), shutdown)
                    .await;
        });
        LibServer {
            port,
            state,
            rt: Some(rt),
            stop: Some(tx),
        }
    }
}

impl Drop for LibServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

// --------------------------------------------------------------- raw client

/// One parsed HTTP/1 response, bytes as received.
#[derive(Clone, Debug, Default)]
pub struct Resp {
    pub status: u16,
    pub status_line: Vec<u8>,
    /// (name, value) with the value trimmed of SP/HTAB.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Header lines without a colon.
    pub bad_lines: Vec<Vec<u8>>,
    /// obs-fold continuation lines.
    pub folded: Vec<Vec<u8>>,
    pub body: Vec<u8>,
    pub complete: bool,
}

impl Resp {
    pub fn all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(k, _)| k.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.all(name).first().copied()
    }

    /// The header as text (panics if absent or not UTF-8: use in asserts).
    pub fn h(&self, name: &str) -> &str {
        let v = self
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {}", self.describe()));
        std::str::from_utf8(v).expect("header is UTF-8")
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status line and headers, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.status_line).into_owned();
        for (k, v) in &self.headers {
            s.push_str(&format!(
                "\n  {}: {}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            ));
        }
        s.push_str(&format!("\n  [{} body bytes]", self.body.len()));
        s
    }
}

/// Everything read from one connection.
#[derive(Debug, Default)]
pub struct Exchange {
    pub responses: Vec<Resp>,
    /// Bytes after the last response that do not start a response.
    pub garbage: Vec<u8>,
    pub raw: Vec<u8>,
    pub eof: bool,
    pub timed_out: bool,
    pub truncated: bool,
    pub connect_error: Option<String>,
}

impl Exchange {
    /// Final (non-1xx) responses.
    pub fn finals(&self) -> Vec<&Resp> {
        self.responses
            .iter()
            .filter(|r| r.status == 0 || r.status >= 200)
            .collect()
    }

    pub fn first(&self) -> Option<&Resp> {
        self.finals()
            .first()
            .copied()
            .or_else(|| self.responses.first())
    }

    pub fn has_complete_final(&self) -> bool {
        self.finals().iter().any(|r| r.complete)
    }
}

const MAX_READ: usize = 8 * 1024 * 1024;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// End of the head starting at `pos`: (start of the blank line, index after it).
fn head_end(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let mut i = pos;
    while let Some(nl) = find(buf, b"\n", i) {
        let after = nl + 1;
        if buf.get(after) == Some(&b'\n') {
            return Some((nl, after + 1));
        }
        if buf.get(after) == Some(&b'\r') && buf.get(after + 1) == Some(&b'\n') {
            return Some((nl, after + 2));
        }
        i = after;
    }
    None
}

fn parse_chunked(buf: &[u8], mut p: usize, eof: bool) -> (Vec<u8>, usize, bool) {
    let mut body = Vec::new();
    for _ in 0..200_000 {
        let Some(nl) = find(buf, b"\n", p) else {
            return (body, buf.len(), false);
        };
        let line = &buf[p..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let size_text = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        let size = match std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
        {
            Some(s) => s,
            None => {
                body.extend_from_slice(&buf[p..]);
                return (body, buf.len(), eof);
            }
        };
        p = nl + 1;
        if size == 0 {
            for _ in 0..1000 {
                let Some(nl) = find(buf, b"\n", p) else {
                    return (body, buf.len(), eof);
                };
                let l = &buf[p..nl];
                p = nl + 1;
                if l.strip_suffix(b"\r").unwrap_or(l).is_empty() {
                    return (body, p, true);
                }
            }
            return (body, p, true);
        }
        if p.saturating_add(size) > buf.len() {
            body.extend_from_slice(&buf[p..]);
            return (body, buf.len(), false);
        }
        body.extend_from_slice(&buf[p..p + size]);
        p += size;
        if buf[p..].starts_with(b"\r\n") {
            p += 2;
        } else if buf[p..].starts_with(b"\n") {
            p += 1;
        }
    }
    (body, p, true)
}

/// Lenient parse of every response in `buf` (the first answers `method`).
pub fn parse_responses(buf: &[u8], method: &str, eof: bool) -> (Vec<Resp>, Vec<u8>) {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut garbage = Vec::new();
    let mut method = method.to_string();
    for _ in 0..32 {
        while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
            pos += 1;
        }
        if pos >= buf.len() {
            break;
        }
        if !buf[pos..].starts_with(b"HTTP/") {
            garbage = buf[pos..].to_vec();
            break;
        }
        let mut r = Resp::default();
        let he = head_end(buf, pos);
        let head = match he {
            Some((s, _)) => &buf[pos..s],
            None => &buf[pos..],
        };
        let mut lines = head.split(|&b| b == b'\n');
        let sl = lines.next().unwrap_or(b"");
        r.status_line = sl.strip_suffix(b"\r").unwrap_or(sl).to_vec();
        r.status = std::str::from_utf8(&r.status_line)
            .ok()
            .and_then(|s| s.split_ascii_whitespace().nth(1))
            .filter(|c| c.len() == 3)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if (line.first() == Some(&b' ') || line.first() == Some(&b'\t'))
                && !r.headers.is_empty()
            {
                let last = r.headers.last_mut().unwrap();
                last.1.push(b' ');
                last.1.extend_from_slice(line.trim_ascii());
                r.folded.push(line.to_vec());
                continue;
            }
            match line.iter().position(|&b| b == b':') {
                None => r.bad_lines.push(line.to_vec()),
                Some(c) => {
                    let v = &line[c + 1..];
                    let v = trim_sp_tab(v);
                    r.headers.push((line[..c].to_vec(), v.to_vec()));
                }
            }
        }
        let Some((_, p)) = he else {
            out.push(r);
            pos = buf.len();
            break;
        };
        let te: Vec<u8> = r
            .all("transfer-encoding")
            .join(&b","[..])
            .to_ascii_lowercase();
        let cl = r.all("content-length").iter().find_map(|v| {
            std::str::from_utf8(v.trim_ascii())
                .ok()?
                .parse::<usize>()
                .ok()
        });
        let st = r.status;
        if method == "HEAD" || (100..200).contains(&st) || st == 204 || st == 304 {
            r.complete = true;
            pos = p;
        } else if te.split(|&b| b == b',').next_back().map(|s| s.trim_ascii()) == Some(b"chunked") {
            let (b, np, c) = parse_chunked(buf, p, eof);
            r.body = b;
            pos = np;
            r.complete = c;
        } else if let Some(cl) = cl {
            let end = p.saturating_add(cl).min(buf.len());
            r.body = buf[p..end].to_vec();
            pos = end;
            r.complete = r.body.len() == cl;
        } else {
            r.body = buf[p..].to_vec();
            pos = buf.len();
            r.complete = eof;
        }
        if !(100..200).contains(&st) {
            method = "GET".into();
        }
        let complete = r.complete;
        out.push(r);
        if !complete {
            break;
        }
    }
    let _ = pos;
    (out, garbage)
}

fn trim_sp_tab(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(s, |i| i + 1);
    &v[s..e.max(s)]
}

/// Sends `raw` on a fresh connection to 127.0.0.1:`port` (writing from a
/// second thread, so a server that answers early and closes is still read),
/// and reads until EOF, `timeout`, or `grace` after the first complete final
/// response.
pub fn exchange(
    port: u16,
    raw: &[u8],
    method: &str,
    timeout: Duration,
    grace: Duration,
) -> Exchange {
    let mut ex = Exchange::default();
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            ex.connect_error = Some(format!("connect: {e}"));
            return ex;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone().expect("clone stream");
    let data = raw.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.set_write_timeout(Some(Duration::from_secs(6)));
        let _ = w.write_all(&data);
    });
    let mut r = stream;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let mut grace_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(g) = grace_until {
            if now >= g {
                break;
            }
        }
        if now >= deadline {
            ex.timed_out = true;
            break;
        }
        let limit = grace_until.unwrap_or(deadline).min(deadline) - now;
        let _ = r.set_read_timeout(Some(
            limit.clamp(Duration::from_millis(1), Duration::from_millis(250)),
        ));
        match r.read(&mut chunk) {
            Ok(0) => {
                ex.eof = true;
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_READ {
                    ex.truncated = true;
                    break;
                }
                if grace_until.is_none() {
                    let (resps, _) = parse_responses(&buf, method, false);
                    if resps
                        .iter()
                        .any(|r| r.complete && (r.status == 0 || r.status >= 200))
                    {
                        grace_until = Some((Instant::now() + grace).min(deadline));
                    }
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                // Reset: keep what arrived.
                ex.eof = true;
                break;
            }
        }
    }
    let _ = r.shutdown(Shutdown::Both);
    let _ = writer.join();
    let (resps, garbage) = parse_responses(&buf, method, ex.eof || ex.truncated);
    ex.responses = resps;
    ex.garbage = garbage;
    ex.raw = buf;
    ex
}

/// A well-formed request with `Host: 127.0.0.1` and `Connection: close`
/// (unless given), returning the first final response. Panics on no answer.
pub fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    request_body(port, method, target, headers, b"")
}

pub fn request_body(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut raw = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        raw.extend_from_slice(b"Host: 127.0.0.1\r\n");
    }
    if !has("connection") {
        raw.extend_from_slice(b"Connection: close\r\n");
    }
    if !body.is_empty() && !has("content-length") {
        raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    for (k, v) in headers {
        raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    let ex = exchange(
        port,
        &raw,
        method,
        Duration::from_secs(10),
        Duration::from_millis(0),
    );
    match ex.first() {
        Some(r) if r.complete => r.clone(),
        _ => panic!(
            "{method} {target}: no complete response (timed out: {}, {} bytes: {:?})",
            ex.timed_out,
            ex.raw.len(),
            String::from_utf8_lossy(&ex.raw[..ex.raw.len().min(400)])
        ),
    }
}

pub fn get(port: u16, target: &str, headers: &[(&str, &str)]) -> Resp {
    request(port, "GET", target, headers)
}

/// Writes `files` (relative path → bytes) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, data) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
}

/// The bytes of a demo-site file.
pub fn demo_file(rel: &str) -> Vec<u8> {
    std::fs::read(demo_site().join(rel)).unwrap()
}
