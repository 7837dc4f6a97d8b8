//! Cloudflare conformance through the whole pipeline: every case's files are
//! laid out in a temp dir with distinct contents, built into a real bundle,
//! and the request is resolved by the router over that bundle.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sitepack::build::{build, BuildOptions, Compression, WalkOptions};
use sitepack::config::{Config, RunWorkerFirst};
use sitepack::format::Bundle;
use sitepack::route::{Outcome, RequestHead, Router, Scratch};

fn cases(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect()
}

fn config_of(c: &Value) -> Config {
    let cfg = &c["config"];
    let s = |k: &str| cfg[k].as_str().map(str::to_string);
    Config {
        html_handling: s("html_handling").map_or(Default::default(), |v| v.parse().unwrap()),
        not_found_handling: s("not_found_handling")
            .map_or(Default::default(), |v| v.parse().unwrap()),
        run_worker_first: match &cfg["run_worker_first"] {
            Value::Bool(true) => RunWorkerFirst::On,
            Value::Array(a) => RunWorkerFirst::Patterns(
                a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            ),
            _ => RunWorkerFirst::Off,
        },
        compatibility_date: s("compatibility_date").unwrap_or_default(),
        compatibility_flags: cfg["compatibility_flags"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default(),
    }
}

/// Builds a bundle of `files` (each with distinct bytes) and returns its bytes.
fn build_files(dir: &Path, files: &[String], config: &Config) -> Result<Vec<u8>, String> {
    let root = dir.join("dist");
    let _ = fs::remove_dir_all(&root);
    for f in files {
        let p = root.join(f.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("<!-- {f} -->\ncontent of {f}\n")).unwrap();
    }
    fs::create_dir_all(&root).unwrap();
    let out = dir.join("site.pack");
    let opts = BuildOptions {
        root,
        output: out.clone(),
        config: config.clone(),
        compression: Compression::Fast,
        walk: WalkOptions::default(),
    };
    build(&opts, &()).map_err(|e| e.to_string())?;
    Ok(fs::read(out).unwrap())
}

fn header<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["request"]["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// `{etag:/file}` → that file's ETag token.
fn template(value: &str, bundle: &Bundle<Vec<u8>>) -> String {
    let mut out = value.to_string();
    while let Some(start) = out.find("{etag:") {
        let end = start + out[start..].find('}').unwrap();
        let key = &out[start + 6..end];
        let asset = bundle
            .find_asset(key)
            .unwrap_or_else(|| panic!("no asset {key}"));
        let hex: String = asset.etag.iter().map(|b| format!("{b:02x}")).collect();
        out.replace_range(start..=end, &hex);
    }
    out
}

struct Answer {
    status: Option<u16>,
    served: Option<String>,
    location: Option<String>,
    worker: bool,
    worker_first: bool,
}

fn ask(bundle_bytes: Vec<u8>, c: &Value, path: &str, has_worker: bool) -> Answer {
    let bundle = Bundle::open(bundle_bytes).unwrap();
    let inm = header(c, "If-None-Match").map(|v| template(v, &bundle));
    let router = Router::new(bundle).unwrap();
    let req = RequestHead {
        method: c["request"]["method"].as_str().unwrap_or("GET"),
        target: path.as_bytes(),
        if_none_match: inm.as_deref().map(str::as_bytes),
        sec_fetch_mode: header(c, "Sec-Fetch-Mode").map(str::as_bytes),
        has_authorization: header(c, "Authorization").is_some(),
        has_range: header(c, "Range").is_some(),
        origin: Some("https://example.com"),
    };
    let mut scratch = Scratch::new();
    let outcome = router.resolve(&req, has_worker, &mut scratch);
    let mut a = Answer {
        status: None,
        served: None,
        location: None,
        worker: false,
        worker_first: false,
    };
    match outcome {
        Outcome::Rejected { status, .. } => a.status = Some(status),
        Outcome::Worker { worker_first } => {
            a.worker = true;
            a.worker_first = worker_first;
        }
        Outcome::Asset {
            asset,
            status,
            not_modified,
            ..
        } => {
            a.status = Some(if not_modified { 304 } else { status });
            a.served = Some(asset.path.to_string());
        }
        Outcome::Redirect { status } => {
            a.status = Some(status);
            a.location = Some(scratch.location().to_string());
        }
        Outcome::MethodNotAllowed => a.status = Some(405),
        Outcome::NotFound => a.status = Some(404),
    }
    a
}

/// Builds each distinct (files, config) once.
struct Builds {
    dir: tempfile::TempDir,
    cache: HashMap<String, Result<Vec<u8>, String>>,
}

impl Builds {
    fn new() -> Self {
        Builds {
            dir: tempfile::tempdir().unwrap(),
            cache: HashMap::new(),
        }
    }
    fn get(&mut self, files: &[String], config: &Config) -> Result<Vec<u8>, String> {
        let key = format!("{files:?}{config:?}");
        let dir: PathBuf = self.dir.path().to_path_buf();
        self.cache
            .entry(key)
            .or_insert_with(|| build_files(&dir, files, config))
            .clone()
    }
}

fn files_of(c: &Value) -> Vec<String> {
    c["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn report(name: &str, failures: &[String], total: usize) {
    println!(
        "{name}: {} passed, {} failed",
        total - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

fn asset_cases(name: &str) {
    let mut builds = Builds::new();
    let all = cases(name);
    let mut failures = Vec::new();
    for c in &all {
        let bytes = builds.get(&files_of(c), &config_of(c)).unwrap();
        let path = c["request"]["path"].as_str().unwrap();
        let a = ask(bytes, c, path, false);
        let e = &c["expect"];
        let want = (
            e["status"].as_u64().map(|s| s as u16),
            e["served"].as_str().map(str::to_string),
            e["location"].as_str().map(str::to_string),
        );
        let got = (a.status, a.served, a.location);
        if got != want {
            failures.push(format!("{}: {path}: got {got:?}, want {want:?}", c["id"]));
        }
    }
    report(name, &failures, all.len());
}

#[test]
fn html_handling() {
    asset_cases("html_handling.jsonl");
}

#[test]
fn not_found() {
    asset_cases("not_found.jsonl");
}

#[test]
fn conditional() {
    asset_cases("conditional.jsonl");
}

#[test]
fn worker_fallback() {
    let mut builds = Builds::new();
    let all = cases("worker_fallback.jsonl");
    let mut failures = Vec::new();
    for c in &all {
        let bytes = builds.get(&files_of(c), &config_of(c)).unwrap();
        let has_worker = c["config"]["has_user_worker"].as_bool().unwrap_or(false);
        let path = c["request"]["path"].as_str().unwrap();
        let a = ask(bytes, c, path, has_worker);
        let want = c["expect"]["target"].as_str().unwrap();
        let got = if a.worker { "worker" } else { "assets" };
        if got != want {
            failures.push(format!("{}: {path}: got {got}, want {want}", c["id"]));
        }
    }
    report("worker_fallback.jsonl", &failures, all.len());
}

#[test]
fn run_worker_first() {
    let mut builds = Builds::new();
    let all = cases("run_worker_first.jsonl");
    let mut failures = Vec::new();
    for c in &all {
        let patterns: Vec<String> = c["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let config = Config {
            run_worker_first: RunWorkerFirst::Patterns(patterns),
            ..Config::default()
        };
        let built = builds.get(&["/index.html".to_string()], &config);
        let path = c["path"].as_str().unwrap();
        let id = &c["id"];
        match (built, c["config_error"].as_bool().unwrap()) {
            (Err(e), true) if e.contains("run_worker_first") => {}
            (Err(e), want_error) => failures.push(format!(
                "{id}: build failed ({e}), config_error={want_error}"
            )),
            (Ok(_), true) => failures.push(format!("{id}: bad pattern list was accepted")),
            (Ok(bytes), false) => {
                let a = ask(bytes, c, path, true);
                let want = c["expect_worker_first"].as_bool().unwrap();
                if a.worker_first != want {
                    failures.push(format!(
                        "{id}: {path}: worker_first {}, want {want}",
                        a.worker_first
                    ));
                }
            }
        }
    }
    report("run_worker_first.jsonl", &failures, all.len());
}
