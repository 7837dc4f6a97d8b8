//! A real browser against `sitepack serve`: headless Chromium loads the
//! demo site (module script with the right MIME type, redirects followed,
//! the 404 page) and an SPA build. Needs `/usr/bin/chromium`; without it the
//! test fails when `CI` is set and is skipped with a notice otherwise.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether to run; panics in CI when Chromium is missing.
fn chromium_available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{CHROMIUM} not found and CI is set: install it (apt-get install -y --no-install-recommends chromium)"
        );
    }
    eprintln!("browser tests SKIPPED: {CHROMIUM} is not installed (set CI to make this a failure)");
    false
}

/// `chromium --headless … --dump-dom URL`, with a 60 s limit.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start chromium");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium {url}: {status:?}\n{}",
        stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    dom
}

#[test]
fn chromium_renders_the_demo_site() {
    if !chromium_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(tmp.path(), "site.pack", &[]);
    let s = ServerProc::start(&bundle, &[]);
    let base = format!("http://127.0.0.1:{}", s.port);

    let dom = dump_dom(&format!("{base}/"));
    assert!(dom.contains("Hello from a bundle"), "{dom}");
    assert!(
        dom.contains("data-ran=\"yes\"") && dom.contains("The script ran."),
        "the module did not run (MIME type?):\n{dom}"
    );
    assert!(dom.contains("data-module=\"loaded\""), "{dom}");

    // /blog → 307 /blog/ → the blog index.
    let dom = dump_dom(&format!("{base}/blog"));
    assert!(dom.contains("<h1>Blog</h1>"), "{dom}");
    assert!(dom.contains("/blog/first-post"), "{dom}");

    // A missing path: the 404 page.
    let dom = dump_dom(&format!("{base}/no/such/page"));
    assert!(dom.contains("There is nothing at this address."), "{dom}");
    assert!(dom.contains("<h1>404</h1>"), "{dom}");

    // `_redirects` + html_handling chain: /docs → 302 → /docs/getting-started/.
    let dom = dump_dom(&format!("{base}/docs"));
    assert!(dom.contains("<h1>Getting started</h1>"), "{dom}");
}

#[test]
fn chromium_spa_fallback() {
    if !chromium_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(
        tmp.path(),
        "spa.pack",
        &["--not-found-handling", "single-page-application"],
    );
    let s = ServerProc::start(&bundle, &[]);
    let base = format!("http://127.0.0.1:{}", s.port);

    // A client-side route gets the root index.html (200), and its module runs.
    let r = get(s.port, "/app/some/route", &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, demo_file("index.html"));
    let dom = dump_dom(&format!("{base}/app/some/route"));
    assert!(dom.contains("Hello from a bundle"), "{dom}");
    assert!(dom.contains("data-module=\"loaded\""), "{dom}");
    assert!(!dom.contains("There is nothing at this address."), "{dom}");
    // A real file still wins over the fallback.
    let dom = dump_dom(&format!("{base}/about"));
    assert!(dom.contains("<h1>About</h1>"), "{dom}");
}
