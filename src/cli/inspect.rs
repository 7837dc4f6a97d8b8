//! `sitepack inspect`: what a bundle holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::format::layout::encoding;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub bundle: PathBuf,
    /// Print every asset as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct AssetJson<'a> {
    path: &'a str,
    size: u64,
    content_type: Option<&'a str>,
    hash: String,
    encodings: Vec<&'static str>,
}

#[derive(Serialize, Default)]
struct EncodingJson {
    count: u64,
    bytes: u64,
    /// Bytes of identity the variants stand for.
    identity_bytes: u64,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let b = super::map::open(&args.bundle)?;
    let cfg = b.config();
    let mut encodings: BTreeMap<&str, EncodingJson> = BTreeMap::new();
    let mut blob_bytes = 0u64;
    for i in 0..b.blob_count() as u32 {
        let len = b.blob(i).map_or(0, |d| d.len() as u64);
        blob_bytes += len;
        for v in b.variants(i) {
            let e = encodings
                .entry(v.encoding.and_then(encoding::name).unwrap_or("?"))
                .or_default();
            e.count += 1;
            e.bytes += v.bytes.len() as u64;
            e.identity_bytes += len;
        }
    }
    let assets: Vec<AssetJson> = b
        .assets()
        .map(|a| AssetJson {
            path: a.path,
            size: b.blob(a.blob).map_or(0, |d| d.len() as u64),
            content_type: a.content_type,
            hash: super::hex(&a.etag),
            encodings: b
                .variants(a.blob)
                .filter_map(|v| v.encoding.and_then(encoding::name))
                .collect(),
        })
        .collect();
    let run_worker_first = match &cfg.run_worker_first {
        crate::config::RunWorkerFirst::Off => serde_json::json!(false),
        crate::config::RunWorkerFirst::On => serde_json::json!(true),
        crate::config::RunWorkerFirst::Patterns(p) => serde_json::json!(p),
    };
    let config = serde_json::json!({
        "html_handling": cfg.html_handling.as_str(),
        "not_found_handling": cfg.not_found_handling.as_str(),
        "run_worker_first": run_worker_first,
        "compatibility_date": cfg.compatibility_date,
        "compatibility_flags": cfg.compatibility_flags,
    });
    let bundle_bytes = b.bytes().len();
    if args.json {
        let doc = serde_json::json!({
            "format": 1,
            "bundle": args.bundle.display().to_string(),
            "bundle_bytes": bundle_bytes,
            "files": b.asset_count(),
            "blobs": b.blob_count(),
            "routes": b.route_count(),
            "max_probes": b.max_probes(),
            "identity_bytes": blob_bytes,
            "encodings": encodings,
            "config": config,
            "rules": {
                "headers": b.headers_text(),
                "redirects": b.redirects_text(),
            },
            "assets": assets,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    eprintln!("{}: {} bytes", args.bundle.display(), bundle_bytes);
    eprintln!(
        "  {} assets, {} distinct contents ({} bytes), {} routes, lookups probe at most {} slots",
        b.asset_count(),
        b.blob_count(),
        blob_bytes,
        b.route_count(),
        b.max_probes()
    );
    for (name, e) in &encodings {
        let saved = 100.0 - 100.0 * e.bytes as f64 / e.identity_bytes.max(1) as f64;
        eprintln!(
            "  {name:5} {:6} variants, {:10} bytes ({saved:.1}% smaller than identity)",
            e.count, e.bytes
        );
    }
    eprintln!("  config: {config}");
    for (name, text) in [
        ("_headers", b.headers_text()),
        ("_redirects", b.redirects_text()),
    ] {
        if let Some(t) = text {
            eprintln!("  {name}: {} lines", t.lines().count());
        }
    }
    Ok(0)
}
