//! `_headers` and `_redirects` conformance through the whole pipeline: each
//! case's rule file is built into a bundle next to the asset the request
//! needs, the build's warnings give the rejected lines, and the router plus
//! the header rules give the response.

mod common;

use std::fs;
use std::path::Path;

use common::build_router;
use serde_json::Value;
use sitepack::build::BuildReport;
use sitepack::config::{Config, HtmlHandling};
use sitepack::route::canonical;
use sitepack::route::{conditional, Outcome, RequestHead, Router, Scratch};

/// The corpus convention: requests go to https://example.com.
const HOST: &str = "example.com";
const ORIGIN: &str = "https://example.com";

fn cases(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name);
    fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn decoded(raw: &str) -> String {
    let mut s = canonical::Scratch::new();
    canonical::canonicalize(raw.as_bytes(), &mut s)
        .unwrap()
        .path
        .to_string()
}

fn build_site(
    dir: &Path,
    files: &[String],
    rule_file: (&str, &str),
    html: HtmlHandling,
) -> (Router<Vec<u8>>, BuildReport) {
    let root = dir.join("dist");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    for f in files {
        let p = root.join(f.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("content of {f}")).unwrap();
    }
    fs::write(root.join(rule_file.0), rule_file.1).unwrap();
    let out = dir.join("site.pack");
    let config = Config {
        html_handling: html,
        ..Config::default()
    };
    build_router(&root, &out, config)
}

fn invalid_lines(report: &BuildReport, file: &str) -> Vec<u64> {
    let mut v: Vec<u64> = report
        .warnings
        .iter()
        .filter(|w| w.file == file)
        .filter_map(|w| w.line.map(|l| l as u64))
        .collect();
    v.sort_unstable();
    v
}

fn expected_lines(c: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = c["expect_invalid_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn headers_rules() {
    let dir = tempfile::tempdir().unwrap();
    let all = cases("headers_rules.jsonl");
    let mut failures = Vec::new();
    for c in &all {
        let id = &c["id"];
        let target = c["request_path"].as_str().unwrap();
        let key = decoded(target);
        // The case assumes the path serves an asset with status 200.
        let (file, html) = if key.ends_with('/') {
            (format!("{key}index.html"), HtmlHandling::AutoTrailingSlash)
        } else {
            (key.clone(), HtmlHandling::None)
        };
        let (router, report) = build_site(
            dir.path(),
            &[file],
            ("_headers", c["headers_file"].as_str().unwrap()),
            html,
        );
        let mut scratch = Scratch::new();
        let req = RequestHead {
            method: "GET",
            target: target.as_bytes(),
            origin: Some(ORIGIN),
            ..RequestHead::default()
        };
        let Outcome::Asset {
            asset, status: 200, ..
        } = router.resolve(&req, false, &mut scratch)
        else {
            failures.push(format!("{id}: {target} did not serve an asset"));
            continue;
        };
        let mut h = http::HeaderMap::new();
        let etag = conditional::etag_value(&asset.etag);
        h.insert("etag", http::HeaderValue::from_bytes(&etag).unwrap());
        if let Some(ct) = asset.content_type {
            h.insert("content-type", http::HeaderValue::from_str(ct).unwrap());
        }
        h.insert(
            "cache-control",
            http::HeaderValue::from_static("public, max-age=0, must-revalidate"),
        );
        h.insert("cf-cache-status", http::HeaderValue::from_static("HIT"));
        router.apply_headers(Some(HOST), scratch.raw_path(), &mut h);
        let get = |n: &str| {
            let v: Vec<&str> = h.get_all(n).iter().map(|v| v.to_str().unwrap()).collect();
            (!v.is_empty()).then(|| v.join(", "))
        };
        for (name, want) in c["expect_headers"].as_object().unwrap() {
            if get(name).as_deref() != want.as_str() {
                failures.push(format!("{id}: {name}: got {:?}, want {want}", get(name)));
            }
        }
        for name in c["expect_absent"].as_array().unwrap() {
            if let Some(v) = get(name.as_str().unwrap()) {
                failures.push(format!("{id}: {name} should be absent, is {v:?}"));
            }
        }
        let (got, want) = (invalid_lines(&report, "_headers"), expected_lines(c));
        if got != want {
            failures.push(format!("{id}: rejected lines {got:?}, want {want:?}"));
        }
    }
    println!(
        "headers_rules.jsonl: {} passed, {} failed",
        all.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn redirects_rules() {
    let dir = tempfile::tempdir().unwrap();
    let all = cases("redirects_rules.jsonl");
    let mut failures = Vec::new();
    for c in &all {
        let id = &c["id"];
        let target = c["request_path"].as_str().unwrap();
        let e = &c["expect"];
        // A rewrite needs its target to exist; `/c` also exists so that a
        // chained rewrite (`/b /c 200`) would show.
        let mut files = vec!["/c".to_string()];
        if let Some(p) = e["proxy_to"].as_str() {
            files.push(decoded(p));
        }
        files.sort();
        files.dedup();
        let (router, report) = build_site(
            dir.path(),
            &files,
            ("_redirects", c["redirects_file"].as_str().unwrap()),
            HtmlHandling::AutoTrailingSlash,
        );
        let mut scratch = Scratch::new();
        let req = RequestHead {
            method: "GET",
            target: target.as_bytes(),
            origin: Some(ORIGIN),
            ..RequestHead::default()
        };
        let outcome = router.resolve(&req, false, &mut scratch);
        let ok = match (e["status"].as_u64(), outcome) {
            (Some(200), Outcome::Asset { asset, .. }) => {
                Some(asset.path) == e["proxy_to"].as_str().map(decoded).as_deref()
            }
            (Some(s), Outcome::Redirect { status }) if s != 200 => {
                u64::from(status) == s && Some(scratch.location()) == e["location"].as_str()
            }
            (None, Outcome::Redirect { .. }) => false,
            (None, _) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{id}: {target}: got {outcome:?} location {:?}, want {e}",
                scratch.location()
            ));
        }
        let (got, want) = (invalid_lines(&report, "_redirects"), expected_lines(c));
        if got != want {
            failures.push(format!("{id}: rejected lines {got:?}, want {want:?}"));
        }
    }
    println!(
        "redirects_rules.jsonl: {} passed, {} failed",
        all.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
