//! `sitepack resolve`: what `serve` would answer for one request, as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::json;

use crate::format::layout::encoding;
use crate::route::{conditional, negotiate, Outcome, RequestHead, Router, Scratch};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub bundle: PathBuf,
    /// The request target as sent on the wire (path and query).
    pub target: String,
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The deployment has a Worker (upstream or Rust callback).
    #[arg(long)]
    pub worker: bool,
    /// The origin the request is addressed to (scheme and host): it decides
    /// host-scoped `_headers` rules and which absolute `_redirects` targets
    /// are same-origin. A `-H "Host: ..."` header replaces its host.
    #[arg(long, default_value = "https://example.com", value_name = "URL")]
    pub origin: String,
}

/// Splits `scheme://host[:port]` into scheme and authority; anything else
/// is a usage error, named.
fn parse_origin(origin: &str) -> anyhow::Result<(&str, &str)> {
    let (scheme, authority) = origin
        .trim_end_matches('/')
        .split_once("://")
        .filter(|(s, a)| {
            matches!(*s, "http" | "https") && !a.is_empty() && !a.contains(['/', '?', '#', '@'])
        })
        .with_context(|| {
            format!("--origin {origin:?} is not an origin like https://example.com")
        })?;
    Ok((scheme, authority))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let bundle = super::map::open(&args.bundle)?;
    let router = Router::new(bundle).with_context(|| format!("{}", args.bundle.display()))?;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            bail!("header {h:?} is not `Name: value`");
        };
        headers
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_string());
    }
    let get = |n: &str| headers.get(n).map(|v| v.join(", "));
    let inm = get("if-none-match");
    let sfm = get("sec-fetch-mode");
    let ae = get("accept-encoding");
    let (scheme, default_host) = parse_origin(&args.origin)?;
    let host = get("host").unwrap_or_else(|| default_host.to_string());
    let origin = format!("{scheme}://{host}");
    let req = RequestHead {
        origin: Some(&origin),
        method: &args.method,
        target: args.target.as_bytes(),
        if_none_match: inm.as_deref().map(str::as_bytes),
        sec_fetch_mode: sfm.as_deref().map(str::as_bytes),
        has_authorization: headers.contains_key("authorization"),
        has_range: headers.contains_key("range"),
    };
    let mut scratch = Scratch::new();
    let outcome = router.resolve(&req, args.worker, &mut scratch);
    let outcome_takes_rules = outcome.takes_header_rules();
    let mut out_headers = serde_json::Map::new();
    let mut doc = json!({
        "status": null, "asset": null, "location": null, "encoding": "identity",
        "worker": false, "worker_first": false,
    });
    match outcome {
        Outcome::Rejected { status, reason } => {
            doc["status"] = json!(status);
            doc["reason"] = json!(reason);
        }
        Outcome::Worker { worker_first } => {
            doc["worker"] = json!(true);
            doc["worker_first"] = json!(worker_first);
        }
        Outcome::Redirect { status } => {
            doc["status"] = json!(status);
            doc["location"] = json!(scratch.location());
            out_headers.insert("location".into(), json!(scratch.location()));
        }
        Outcome::MethodNotAllowed => doc["status"] = json!(405),
        Outcome::NotFound => doc["status"] = json!(404),
        Outcome::Asset {
            asset,
            status,
            not_modified,
            cache_control,
        } => {
            let b = router.bundle();
            let codes: Vec<u8> = b.variants(asset.blob).filter_map(|v| v.encoding).collect();
            let chosen = negotiate::choose(ae.as_deref().map(str::as_bytes), codes.iter().copied());
            doc["status"] = json!(if not_modified { 304 } else { status });
            doc["asset"] = json!(asset.path);
            if let Some(code) = chosen {
                let name = encoding::name(code).unwrap_or("identity");
                doc["encoding"] = json!(name);
                out_headers.insert("content-encoding".into(), json!(name));
            }
            if !codes.is_empty() {
                out_headers.insert("vary".into(), json!("Accept-Encoding"));
            }
            if let Some(ct) = asset.content_type {
                out_headers.insert("content-type".into(), json!(ct));
            }
            let etag = conditional::etag_value(&asset.etag);
            out_headers.insert("etag".into(), json!(String::from_utf8_lossy(&etag)));
            if cache_control {
                out_headers.insert(
                    "cache-control".into(),
                    json!("public, max-age=0, must-revalidate"),
                );
            }
        }
    }
    if outcome_takes_rules {
        let mut map = http::HeaderMap::new();
        for (k, v) in &out_headers {
            if let (Ok(n), Some(v)) = (
                http::header::HeaderName::from_bytes(k.as_bytes()),
                v.as_str(),
            ) {
                if let Ok(v) = http::HeaderValue::from_str(v) {
                    map.insert(n, v);
                }
            }
        }
        // The port is not part of a rule's host, as in `serve`.
        let hostname = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        };
        router.apply_headers(Some(hostname), scratch.raw_path(), &mut map);
        out_headers.clear();
        for name in map.keys() {
            let joined: Vec<String> = map
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            out_headers.insert(name.as_str().to_string(), json!(joined.join(", ")));
        }
    }
    doc["headers"] = serde_json::Value::Object(out_headers);
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(0)
}
