//! End to end: `examples/auth_worker.rs` as a running server. Cargo builds
//! examples before it runs integration tests, next to `target/*/deps`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join("auth_worker")
}

fn get(addr: &str, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// Removes chunked framing when present.
fn dechunk(head: &str, body: &str) -> String {
    if !head.contains("transfer-encoding: chunked") {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

#[test]
fn auth_worker_example_end_to_end() {
    let bin = example_binary();
    assert!(bin.exists(), "{} not built", bin.display());
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();

    let (status, head, _) = get(&addr, "/", "");
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let (status, _, _) = get(&addr, "/", "Authorization: Bearer wrong\r\n");
    assert_eq!(status, 401);

    let auth = "Authorization: Bearer demo-token\r\nAccept-Encoding: br, gzip\r\n";
    let (status, head, body) = get(&addr, "/", auth);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        !head.contains("content-encoding"),
        "the worker asked for identity bytes: {head}"
    );
    let body = dechunk(&head, &body);
    assert!(
        body.contains(r#"<p id="user">"Ada Lovelace"</p>"#),
        "{body}"
    );
    assert!(
        body.contains("<h1>Hello from a bundle</h1>"),
        "the rest of the page is intact"
    );

    // Non-HTML assets pass through the binding untouched.
    let (status, head, body) = get(&addr, "/robots.txt", auth);
    assert_eq!(status, 200);
    assert_eq!(
        dechunk(&head, &body),
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/demo-site/robots.txt"
        ))
        .unwrap()
    );
    // html_handling applies through the binding too.
    let (status, head, _) = get(&addr, "/about.html", auth);
    assert_eq!(status, 307);
    assert!(head.contains("location: /about\r\n"), "{head}");
    drop(server);
}
