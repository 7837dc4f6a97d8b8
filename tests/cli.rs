//! The command-line contract (`../shared/spec/cli.md`): flags, JSON keys and
//! exit codes that scripts rely on.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn sitepack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitepack"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn demo(dir: &Path, extra: &[&str]) -> String {
    let out = dir.join("demo.pack");
    let out_s = out.to_str().unwrap().to_string();
    let mut args = vec![
        "build",
        "fixtures/demo-site",
        "-o",
        &out_s,
        "--compression",
        "fast",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = sitepack(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json(&o);
    for key in [
        "format",
        "bundle",
        "files",
        "routes",
        "bytes_in",
        "bytes_out",
        "encodings",
        "warnings",
    ] {
        assert!(report.get(key).is_some(), "build --json lacks {key}");
    }
    assert_eq!(report["format"], 1);
    assert_eq!(
        report["files"], 13,
        "demo site: drafts/ and wrangler.jsonc are ignored"
    );
    assert!(report["encodings"]["br"]["count"].as_u64().unwrap() > 0);
    out_s
}

#[test]
fn build_reads_wrangler_config_and_resolve_answers() {
    let dir = tempfile::tempdir().unwrap();
    let b = demo(dir.path(), &[]);
    // wrangler.jsonc in the fixture sets not_found_handling = 404-page.
    let r = json(&sitepack(&["resolve", &b, "/missing/page"]));
    assert_eq!(r["status"], 404);
    assert_eq!(r["asset"], "/404.html");
    for key in [
        "status",
        "asset",
        "location",
        "encoding",
        "worker",
        "worker_first",
        "headers",
    ] {
        assert!(r.get(key).is_some(), "resolve lacks {key}");
    }
    let r = json(&sitepack(&["resolve", &b, "/about.html?x=1"]));
    assert_eq!(r["status"], 307);
    assert_eq!(r["location"], "/about?x=1");
    let r = json(&sitepack(&[
        "resolve",
        &b,
        "/about",
        "-H",
        "Accept-Encoding: gzip, br",
    ]));
    assert_eq!(r["status"], 200);
    assert_eq!(r["encoding"], "br");
    assert_eq!(r["headers"]["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        r["headers"]["cache-control"],
        "public, max-age=0, must-revalidate"
    );
    let etag = r["headers"]["etag"].as_str().unwrap().to_string();
    let r = json(&sitepack(&[
        "resolve",
        &b,
        "/about",
        "-H",
        &format!("If-None-Match: {etag}"),
    ]));
    assert_eq!(r["status"], 304);
    let r = json(&sitepack(&["resolve", &b, "/about", "-X", "POST"]));
    assert_eq!(r["status"], 405);
}

#[test]
fn flags_override_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let b = demo(
        dir.path(),
        &[
            "--not-found-handling",
            "single-page-application",
            "--html-handling",
            "none",
        ],
    );
    let r = json(&sitepack(&["resolve", &b, "/missing/page"]));
    assert_eq!(r["status"], 200);
    assert_eq!(r["asset"], "/index.html");
    let r = json(&sitepack(&["resolve", &b, "/about.html"]));
    assert_eq!(r["status"], 200, "html_handling none serves the exact file");
    let i = json(&sitepack(&["inspect", &b, "--json"]));
    assert_eq!(i["config"]["html_handling"], "none");
    assert_eq!(i["config"]["compatibility_date"], "2025-06-01");
}

#[test]
fn run_worker_first_patterns_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = demo(
        dir.path(),
        &[
            "--run-worker-first",
            "/api/*",
            "--run-worker-first",
            "!/api/public/*",
        ],
    );
    let r = json(&sitepack(&["resolve", &b, "/api/users", "--worker"]));
    assert_eq!(r["worker"], true);
    assert_eq!(r["worker_first"], true);
    assert_eq!(r["status"], Value::Null);
    let r = json(&sitepack(&["resolve", &b, "/api/public/x", "--worker"]));
    assert_eq!(r["worker"], false);
    // Assets first, nothing matches, a Worker exists: it gets the request.
    let r = json(&sitepack(&["resolve", &b, "/nothing-here.js", "--worker"]));
    assert_eq!(
        r["status"], 404,
        "404-page fallback answers before the worker with static routing"
    );

    let bad = dir.path().join("bad.pack");
    let o = sitepack(&[
        "build",
        "fixtures/demo-site",
        "-o",
        bad.to_str().unwrap(),
        "--run-worker-first",
        "/api/*",
        "--run-worker-first",
        "/api/x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("run_worker_first") && err.contains("/api/x"),
        "{err}"
    );
    assert!(!bad.exists(), "no bundle on a configuration error");
}

#[test]
fn inspect_lists_assets_and_verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let b = demo(dir.path(), &[]);
    let i = json(&sitepack(&["inspect", &b, "--json"]));
    let assets = i["assets"].as_array().unwrap();
    let about = assets.iter().find(|a| a["path"] == "/about.html").unwrap();
    assert_eq!(about["content_type"], "text/html; charset=utf-8");
    assert_eq!(about["hash"].as_str().unwrap().len(), 32);
    assert!(about["encodings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "br"));
    // One size per listed encoding, each smaller than identity.
    let sizes = about["encoded_sizes"].as_object().unwrap();
    assert_eq!(sizes.len(), about["encodings"].as_array().unwrap().len());
    for (enc, n) in sizes {
        let n = n.as_u64().unwrap();
        assert!(n > 0 && n < about["size"].as_u64().unwrap(), "{enc}: {n}");
    }
    let png = assets.iter().find(|a| a["path"] == "/favicon.png").unwrap();
    assert!(
        png["encodings"].as_array().unwrap().is_empty(),
        "PNG is stored as is"
    );
    assert!(png["encoded_sizes"].as_object().unwrap().is_empty());
    assert_eq!(sitepack(&["verify", &b]).status.code(), Some(0));
    let mut bytes = std::fs::read(&b).unwrap();
    let mid = 200;
    bytes[mid] ^= 0xff;
    std::fs::write(&b, bytes).unwrap();
    let o = sitepack(&["verify", &b]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("blob"));
    assert_eq!(
        sitepack(&["verify", "/no/such/file"]).status.code(),
        Some(2)
    );
}

/// `resolve` addresses its request to `--origin` (default
/// `https://example.com`, the conformance corpus's host): host-scoped
/// `_headers` rules and same-origin absolute `_redirects` targets follow it,
/// and a `Host` header replaces its host.
#[test]
fn resolve_origin_decides_host_rules_and_same_origin_redirects() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("page.html"), "<p>page</p>").unwrap();
    std::fs::write(
        dist.join("_headers"),
        "https://example.com/*\n  X-Host-Rule: 1\nhttps://:sub.test/*\n  X-Sub: :sub\n",
    )
    .unwrap();
    std::fs::write(dist.join("_redirects"), "/a https://example.com/b 301\n").unwrap();
    let b = tmp.path().join("s.pack");
    let (d, b) = (dist.to_str().unwrap(), b.to_str().unwrap());
    let o = sitepack(&["build", d, "-o", b, "--compression", "fast", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let r = json(&sitepack(&["resolve", b, "/page"]));
    assert_eq!(r["headers"]["x-host-rule"], "1", "{r}");
    assert!(r["headers"].get("x-sub").is_none(), "{r}");
    let r = json(&sitepack(&["resolve", b, "/a?z=9"]));
    assert_eq!(
        (r["status"].clone(), r["location"].clone()),
        (301.into(), "/b?z=9".into())
    );

    let r = json(&sitepack(&[
        "resolve",
        b,
        "/page",
        "--origin",
        "http://docs.test:8080",
    ]));
    assert!(r["headers"].get("x-host-rule").is_none(), "{r}");
    assert_eq!(r["headers"]["x-sub"], "docs", "{r}");
    let r = json(&sitepack(&[
        "resolve",
        b,
        "/a",
        "-H",
        "Host: other.example",
    ]));
    assert_eq!(r["location"], "https://example.com/b", "{r}");

    let o = sitepack(&["resolve", b, "/page", "--origin", "example.com/x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--origin"));
}

/// `resolve` prints the response `serve` builds: the chosen
/// representation's own ETag, 304 for a variant's validator, Range, and the
/// 405's `Allow`.
#[test]
fn resolve_answers_as_serve_does() {
    let tmp = tempfile::tempdir().unwrap();
    let b = demo(tmp.path(), &[]);
    let js = "/assets/app.3f9a1c.js";
    let r = json(&sitepack(&["resolve", &b, js, "-H", "Accept-Encoding: br"]));
    assert_eq!(r["encoding"], "br", "{r}");
    let br_etag = r["headers"]["etag"].as_str().unwrap().to_string();
    assert!(br_etag.ends_with("-br\""), "{br_etag}");
    assert_eq!(r["headers"]["content-encoding"], "br");
    assert_eq!(r["headers"]["vary"], "Accept-Encoding");
    assert_eq!(
        r["headers"]["cache-control"], "public, max-age=31536000, immutable",
        "_headers applies"
    );

    let inm = format!("If-None-Match: {br_etag}");
    let r = json(&sitepack(&["resolve", &b, js, "-H", &inm]));
    assert_eq!(r["status"], 304, "{r}");

    let r = json(&sitepack(&["resolve", &b, js, "-H", "Range: bytes=0-9"]));
    assert_eq!(r["status"], 206, "{r}");
    assert_eq!(r["encoding"], "identity");
    assert!(r["headers"]["content-range"]
        .as_str()
        .unwrap()
        .starts_with("bytes 0-9/"));
    assert_eq!(r["headers"]["content-length"], "10");
    let r = json(&sitepack(&[
        "resolve",
        &b,
        js,
        "-H",
        "Range: bytes=999999-",
    ]));
    assert_eq!(r["status"], 416, "{r}");

    let r = json(&sitepack(&["resolve", &b, "/about", "-X", "DELETE"]));
    assert_eq!(r["status"], 405, "{r}");
    assert_eq!(r["headers"]["allow"], "GET, HEAD");
    let o = sitepack(&["resolve", &b, "/about", "-X", "BAD METHOD"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A command piped into a reader that quits early (`| head`) ends by
/// SIGPIPE like a Unix tool, not with a Rust panic (exit 101).
#[test]
fn closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    for i in 0..600 {
        std::fs::write(dist.join(format!("page-{i:04}.txt")), format!("{i}")).unwrap();
    }
    let b = tmp.path().join("s.pack");
    let (d, bs) = (dist.to_str().unwrap(), b.to_str().unwrap());
    let o = sitepack(&["build", d, "-o", bs, "--compression", "fast", "--quiet"]);
    assert!(o.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sitepack"))
        .args(["inspect", b.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Found by fuzzing the canonicaliser: re-encoding can make a target near
/// the length limit longer than the limit. Such a request is answered 414,
/// not redirected to a URL the server itself refuses.
#[test]
fn canonical_redirect_never_exceeds_the_target_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let b = demo(
        tmp.path(),
        &["--not-found-handling", "single-page-application"],
    );
    // `:` is kept raw by URL parsing but encoded (%3A) in the canonical form.
    let short = format!("/{}", ":".repeat(100));
    let r = json(&sitepack(&["resolve", &b, &short]));
    assert_eq!(r["status"], 307, "{r}");
    assert_eq!(r["location"], format!("/{}", "%3A".repeat(100)));
    let long = format!("/{}", ":".repeat(9000));
    let r = json(&sitepack(&["resolve", &b, &long]));
    assert_eq!(r["status"], 414, "{r}");
    assert_eq!(r["location"], serde_json::Value::Null);
}
