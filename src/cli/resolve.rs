//! `sitepack resolve`: what `serve` would answer for one request, as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::json;

use crate::route::{Outcome, RequestHead, Scratch};
use crate::serve::{respond, Site};

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
    let bundle = crate::bundle_file::open(&args.bundle)?;
    let site = Site::from_bundle(bundle).with_context(|| format!("{}", args.bundle.display()))?;
    let site = std::sync::Arc::new(site);
    let router = &site.router;
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
    let (ae, range, if_range) = (get("accept-encoding"), get("range"), get("if-range"));
    let (scheme, default_host) = parse_origin(&args.origin)?;
    let host = get("host").unwrap_or_else(|| default_host.to_string());
    let origin = format!("{scheme}://{host}");
    let method = http::Method::from_bytes(args.method.as_bytes())
        .with_context(|| format!("-X {:?} is not an HTTP method", args.method))?;
    let req = RequestHead {
        origin: Some(&origin),
        method: method.as_str(),
        target: args.target.as_bytes(),
        if_none_match: inm.as_deref().map(str::as_bytes),
        sec_fetch_mode: sfm.as_deref().map(str::as_bytes),
        has_authorization: headers.contains_key("authorization"),
        has_range: headers.contains_key("range"),
    };
    let mut scratch = Scratch::new();
    let outcome = router.resolve(&req, args.worker, &mut scratch);
    let mut doc = json!({
        "status": null, "asset": null, "location": null, "encoding": "identity",
        "worker": false, "worker_first": false,
    });
    match outcome {
        Outcome::Worker { worker_first } => {
            doc["worker"] = json!(true);
            doc["worker_first"] = json!(worker_first);
            doc["headers"] = json!({});
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(0);
        }
        Outcome::Rejected { reason, .. } => doc["reason"] = json!(reason),
        Outcome::Redirect { .. } => doc["location"] = json!(scratch.location()),
        Outcome::Asset { asset, .. } => doc["asset"] = json!(asset.path),
        Outcome::MethodNotAllowed | Outcome::NotFound => {}
    }
    // The response itself is built by the server's code, so what this
    // prints is what `serve` sends (representation, validators, Range).
    let info = respond::RequestInfo {
        method: &method,
        accept_encoding: ae.as_deref().map(str::as_bytes),
        range: range.as_deref().map(str::as_bytes),
        if_range: if_range.as_deref().map(str::as_bytes),
        if_none_match: inm.as_deref().map(str::as_bytes),
    };
    let takes_rules = outcome.takes_header_rules();
    let mut resp = respond::respond(&site, outcome, scratch.location(), &info);
    if takes_rules {
        let hostname = crate::serve::host_without_port(&host);
        router.apply_headers(Some(hostname), scratch.raw_path(), resp.headers_mut());
    }
    doc["status"] = json!(resp.status().as_u16());
    let map = resp.headers();
    if let Some(enc) = map.get(http::header::CONTENT_ENCODING) {
        doc["encoding"] = json!(String::from_utf8_lossy(enc.as_bytes()));
    }
    let mut out_headers = serde_json::Map::new();
    for name in map.keys() {
        let joined: Vec<String> = map
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out_headers.insert(name.as_str().to_string(), json!(joined.join(", ")));
    }
    doc["headers"] = serde_json::Value::Object(out_headers);
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(0)
}
