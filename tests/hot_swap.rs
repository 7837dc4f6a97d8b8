//! Hot swap under load: `sitepack serve P` while P is replaced 50 times by
//! rename (alternating bundles A and B, SIGHUP after each rename), with
//! several keep-alive clients hammering it. No request may fail, every body
//! must be A's or B's, and a body must come with the ETag of the same
//! bundle. A corrupt file renamed over P is refused and the old bundle keeps
//! serving.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use support::*;

const BIG: usize = 1 << 20;

struct Version {
    index: Vec<u8>,
    big: Vec<u8>,
}

fn version(tag: u8) -> Version {
    let index = format!(
        "<!doctype html><title>{0}</title><h1>bundle {0}</h1>\n{1}\n",
        tag as char,
        "lorem ipsum dolor sit amet ".repeat(40)
    )
    .into_bytes();
    let mut x: u32 = 0x9e37_79b9 ^ tag as u32;
    let big = (0..BIG)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    Version { index, big }
}

fn build_version(root: &Path, name: &str, v: &Version) -> PathBuf {
    let dir = root.join(format!("tree-{name}"));
    write_tree(
        &dir,
        &[
            ("index.html", &v.index),
            ("big.bin", &v.big),
            ("robots.txt", b"User-agent: *\n"),
        ],
    );
    let out = root.join(format!("{name}.pack"));
    build_bundle(&dir, &out, &[]);
    out
}

/// Copies `src` to a temp file next to `dst` and renames it over `dst`.
fn publish(src: &Path, dst: &Path, n: usize) {
    let tmp = dst.with_extension(format!("tmp{n}"));
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

/// A representation: (body, ETag).
type Repr = (Vec<u8>, String);

#[derive(Default)]
struct Expect {
    /// (path, accept-encoding) → [(body, etag)] of A and B.
    known: HashMap<(&'static str, &'static str), Vec<Repr>>,
}

const PATHS: &[(&str, &str)] = &[
    ("/", ""),
    ("/", "br, gzip"),
    ("/", "gzip"),
    ("/big.bin", ""),
    ("/robots.txt", ""),
];

fn fetch_all(port: u16) -> Vec<Repr> {
    PATHS
        .iter()
        .map(|(p, ae)| {
            let hs: Vec<(&str, &str)> = if ae.is_empty() {
                vec![]
            } else {
                vec![("Accept-Encoding", *ae)]
            };
            let r = get(port, p, &hs);
            assert_eq!(r.status, 200, "{p}: {}", r.describe());
            (r.body.clone(), r.h("etag").to_string())
        })
        .collect()
}

fn wait_for_index(port: u16, want: &[u8], timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if get(port, "/", &[]).body == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

#[test]
fn hot_swap_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (va, vb) = (version(b'A'), version(b'B'));
    let a = build_version(tmp.path(), "A", &va);
    let b = build_version(tmp.path(), "B", &vb);
    let live_dir = tmp.path().join("live");
    std::fs::create_dir(&live_dir).unwrap();
    let p = live_dir.join("site.pack");
    publish(&a, &p, 0);

    let server = ServerProc::start(&p, &[]);
    let port = server.port;

    // The representations (body, ETag) of each version, learned over HTTP.
    let from_a = fetch_all(port);
    assert_eq!(from_a[0].0, va.index);
    assert_eq!(from_a[3].0, va.big);
    publish(&b, &p, 1);
    server.hup();
    assert!(
        wait_for_index(port, &vb.index, Duration::from_secs(5)),
        "B never went live"
    );
    let from_b = fetch_all(port);
    assert_eq!(from_b[3].0, vb.big);
    let mut expect = Expect::default();
    for (i, key) in PATHS.iter().enumerate() {
        expect
            .known
            .insert(*key, vec![from_a[i].clone(), from_b[i].clone()]);
        if key.0 != "/robots.txt" {
            assert_ne!(from_a[i].1, from_b[i].1, "{key:?}: A and B share an ETag");
        }
    }
    let expect = Arc::new(expect);

    // Load: 4 keep-alive connections, each request checked.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4usize {
        let (stop, done, expect, seen) = (stop.clone(), done.clone(), expect.clone(), seen.clone());
        tasks.push(rt.spawn(async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut errors: Vec<String> = Vec::new();
            let mut n = 0usize;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                // Mostly small pages; every 8th request is the 1 MiB file.
                let (path, ae) = if n % 8 == 7 {
                    PATHS[3]
                } else {
                    PATHS[[0, 1, 2, 4][(n + t) % 4]]
                };
                n += 1;
                let mut req = Request::get(path).header("host", "127.0.0.1");
                if !ae.is_empty() {
                    req = req.header("accept-encoding", ae);
                }
                let req = req.body(Empty::<Bytes>::new()).unwrap();
                if send.ready().await.is_err() {
                    errors.push(format!("connection {t} closed after {n} requests"));
                    break;
                }
                let resp =
                    match tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
                        .await
                    {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => {
                            errors.push(format!("{path}: {e}"));
                            break;
                        }
                        Err(_) => {
                            errors.push(format!("{path}: timed out"));
                            break;
                        }
                    };
                let status = resp.status();
                let etag = resp
                    .headers()
                    .get("etag")
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .unwrap_or_default();
                let body = match resp.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => {
                        errors.push(format!("{path}: body: {e}"));
                        break;
                    }
                };
                done.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    errors.push(format!("{path} {ae:?}: status {status}"));
                    continue;
                }
                let known = &expect.known[&(path, ae)];
                match known.iter().position(|(b, _)| b[..] == body[..]) {
                    None => errors.push(format!(
                        "{path} {ae:?}: body of {} bytes is neither A's nor B's",
                        body.len()
                    )),
                    Some(i) if known[i].1 != etag => errors.push(format!(
                        "{path} {ae:?}: body of bundle {} with ETag {etag} (want {})",
                        ["A", "B"][i],
                        known[i].1
                    )),
                    Some(i) => {
                        seen[i].fetch_add(1, Ordering::Relaxed);
                    }
                }
                if errors.len() > 20 {
                    break;
                }
            }
            errors
        }));
    }

    // 50 swaps by rename, alternating A and B (B is live now, so start with A).
    let t0 = Instant::now();
    let mut last = &b;
    for i in 0..50 {
        last = if i % 2 == 0 { &a } else { &b };
        publish(last, &p, i + 2);
        server.hup();
        std::thread::sleep(Duration::from_millis(if i % 10 == 9 { 600 } else { 40 }));
    }
    // Keep the load on until enough requests went through (bounded).
    while done.load(Ordering::Relaxed) < 2000 && t0.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(rt.block_on(t).unwrap());
    }
    let total = done.load(Ordering::Relaxed);
    let (from_a, from_b) = (
        seen[0].load(Ordering::Relaxed),
        seen[1].load(Ordering::Relaxed),
    );
    println!(
        "{total} requests during 50 swaps in {:?} ({from_a} from A, {from_b} from B)",
        t0.elapsed()
    );
    assert!(
        errors.is_empty(),
        "{} failures:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(total >= 2000, "only {total} requests completed");
    assert!(
        from_a > 0 && from_b > 0,
        "the load did not see both bundles"
    );

    // The last bundle published (A) ends up live.
    let want = if std::ptr::eq(last, &a) { &va } else { &vb };
    assert!(
        wait_for_index(port, &want.index, Duration::from_secs(5)),
        "the last bundle is not served"
    );
    assert_eq!(get(port, "/big.bin", &[]).body, want.big);
    let swaps = server.stderr().matches("swapped in the new bundle").count();
    assert!(
        swaps >= 10,
        "only {swaps} swaps logged:\n{}",
        server.stderr()
    );
    assert!(!server.stderr().contains("refused"), "{}", server.stderr());
}

#[test]
fn corrupt_bundle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (va, vb) = (version(b'A'), version(b'B'));
    let a = build_version(tmp.path(), "A", &va);
    let b = build_version(tmp.path(), "B", &vb);
    let p = tmp.path().join("site.pack");
    publish(&a, &p, 0);
    let server = ServerProc::start(&p, &[]);
    let port = server.port;
    assert_eq!(get(port, "/", &[]).body, va.index);

    // B with one byte flipped in the middle of the 1 MiB file's bytes.
    let mut bad = std::fs::read(&b).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let bad_path = tmp.path().join("bad.pack");
    std::fs::write(&bad_path, &bad).unwrap();
    publish(&bad_path, &p, 1);
    // The poller (500 ms) must notice by itself.
    assert!(
        server.wait_stderr("refused", Duration::from_secs(5)),
        "no refusal logged:\n{}",
        server.stderr()
    );
    assert_eq!(get(port, "/", &[]).body, va.index);
    assert_eq!(get(port, "/big.bin", &[]).body, va.big);

    // A SIGHUP retries and refuses again; A keeps serving.
    let before = server.stderr().matches("refused").count();
    server.hup();
    let end = Instant::now() + Duration::from_secs(5);
    while server.stderr().matches("refused").count() == before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.stderr().matches("refused").count() > before);
    assert_eq!(get(port, "/big.bin", &[]).body, va.big);

    // A truncated file and a non-bundle are refused too.
    let trunc_path = tmp.path().join("trunc.pack");
    std::fs::write(&trunc_path, &bad[..bad.len() / 3]).unwrap();
    for (i, src) in [&trunc_path, &tmp.path().join("garbage")]
        .into_iter()
        .enumerate()
    {
        if i == 1 {
            std::fs::write(src, b"this is not a bundle").unwrap();
        }
        let n = server.stderr().matches("refused").count();
        publish(src, &p, 2 + i);
        server.hup();
        let end = Instant::now() + Duration::from_secs(5);
        while server.stderr().matches("refused").count() == n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            server.stderr().matches("refused").count() > n,
            "{}",
            server.stderr()
        );
        assert_eq!(get(port, "/", &[]).body, va.index);
    }
    assert!(
        !server.stderr().contains("swapped in"),
        "{}",
        server.stderr()
    );

    // A good bundle afterwards is taken.
    publish(&b, &p, 9);
    assert!(wait_for_index(port, &vb.index, Duration::from_secs(5)));
    assert_eq!(get(port, "/big.bin", &[]).body, vb.big);
}

#[test]
fn sighup_right_after_ready_does_not_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    for i in 0..10 {
        let mut s = ServerProc::start(&bundle, &[]);
        s.hup();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            s.is_alive(),
            "attempt {i}: SIGHUP right after the ready line killed the server"
        );
        assert_eq!(get(s.port, "/robots.txt", &[]).status, 200);
    }
}

/// bad-trees BT-60: `build -o` onto the bundle a running `serve` has mapped
/// publishes by rename. The mapped inode is never written (a descriptor
/// opened on it beforehand still reads the old bytes, and the file is
/// unlinked rather than truncated); the server swaps to the new bundle and
/// keeps answering.
#[test]
fn build_over_a_served_bundle_never_writes_the_mapped_inode() {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let (va, vb) = (version(b'A'), version(b'B'));
    let a = build_version(tmp.path(), "A", &va);
    build_version(tmp.path(), "B", &vb); // makes tree-B
    let live_dir = tmp.path().join("live");
    std::fs::create_dir(&live_dir).unwrap();
    let p = live_dir.join("site.pack");
    publish(&a, &p, 0);
    let old_bytes = std::fs::read(&p).unwrap();
    let mut held = std::fs::File::open(&p).unwrap();
    let mut server = ServerProc::start(&p, &[]);
    assert_eq!(get(server.port, "/", &[]).body, va.index);

    build_bundle(&tmp.path().join("tree-B"), &p, &[]);
    let m = held.metadata().unwrap();
    assert_eq!(
        m.nlink(),
        0,
        "the old inode is still linked: written in place?"
    );
    assert_eq!(
        m.len(),
        old_bytes.len() as u64,
        "the old inode was truncated"
    );
    let mut seen = Vec::new();
    held.read_to_end(&mut seen).unwrap();
    assert!(seen == old_bytes, "the mapped inode's bytes changed");
    assert_ne!(std::fs::metadata(&p).unwrap().ino(), m.ino());

    // The poller (500 ms) notices the rename by itself.
    assert!(
        wait_for_index(server.port, &vb.index, Duration::from_secs(5)),
        "{}",
        server.stderr()
    );
    assert!(server.stderr().contains("swapped in the new bundle"));
    assert_eq!(get(server.port, "/big.bin", &[]).body, vb.big);
    assert!(server.is_alive());
}
