//! `sitepack inspect`: what a bundle holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::format::bundle::RedirectRule;
use crate::format::layout::{action, encoding};
use crate::format::Bundle;
use crate::rules::compiled::{CompiledHeaders, CompiledRedirects};
use crate::rules::headers::HeaderOp;

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
    /// Bytes of each stored variant, by encoding (for per-file comparisons
    /// with tools that compress every file, duplicates included).
    encoded_sizes: BTreeMap<&'static str, u64>,
}

#[derive(Serialize, Default)]
struct EncodingJson {
    count: u64,
    bytes: u64,
    /// Bytes of identity the variants stand for.
    identity_bytes: u64,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let b = crate::bundle_file::open(&args.bundle)?;
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
            encoded_sizes: b
                .variants(a.blob)
                .filter_map(|v| Some((v.encoding.and_then(encoding::name)?, v.bytes.len() as u64)))
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
    // Static redirects and the rule index live in the route table too.
    let rule_entries = b
        .routes()
        .filter(|r| matches!(r.action, action::RULE_REDIRECT | action::RULE_ANCHOR))
        .count();

    if args.json {
        let doc = serde_json::json!({
            "format": 1,
            "bundle": args.bundle.display().to_string(),
            "bundle_bytes": bundle_bytes,
            "files": b.asset_count(),
            "blobs": b.blob_count(),
            "routes": b.route_count() - rule_entries,
            "rule_entries": rule_entries,
            "max_probes": b.max_probes(),
            "identity_bytes": blob_bytes,
            "encodings": encodings,
            "config": config,
            "rules": rules_json(&b),
            "assets": assets,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    eprintln!("{}: {} bytes", args.bundle.display(), bundle_bytes);
    eprintln!(
        "  {} assets, {} distinct contents ({} bytes), {} routes (+{} rule entries), lookups probe at most {} slots",
        b.asset_count(),
        b.blob_count(),
        blob_bytes,
        b.route_count() - rule_entries,
        rule_entries,
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
    print_rules(&b);
    Ok(0)
}

/// The compiled rules as `inspect --json` lists them under `rules`: static
/// redirects, dynamic redirects in evaluation order, header rules with their
/// unset and set ops, plus the raw files (`*_text`, null when absent).
fn rules_json<B: AsRef<[u8]>>(b: &Bundle<B>) -> serde_json::Value {
    let redirects = CompiledRedirects::new(b);
    let redirect = |r: RedirectRule<'_>| {
        let mut v = serde_json::json!({
            "from": r.from,
            "to": r.to,
            "status": r.status,
            "line": r.line,
        });
        if r.dynamic {
            let p = r.pattern;
            v["captures"] = serde_json::json!((0..p.capture_count())
                .filter_map(|i| p.capture_name(i))
                .collect::<Vec<_>>());
        }
        v
    };
    let headers: Vec<serde_json::Value> = CompiledHeaders::new(b)
        .rules()
        .map(|r| {
            let (mut unset, mut set) = (Vec::new(), Vec::new());
            for op in b.header_rule_ops(&r) {
                match op {
                    HeaderOp::Unset(n) => unset.push(serde_json::json!(n)),
                    HeaderOp::Set(n, v) => set.push(serde_json::json!({"name": n, "value": v})),
                }
            }
            serde_json::json!({
                "pattern": r.pattern.source(),
                "absolute": r.pattern.is_absolute(),
                "line": r.line,
                "unset": unset,
                "set": set,
            })
        })
        .collect();
    serde_json::json!({
        "static_redirects": redirects.static_rules().map(redirect).collect::<Vec<_>>(),
        "dynamic_redirects": redirects.dynamic_rules().map(redirect).collect::<Vec<_>>(),
        "headers": headers,
        "headers_text": b.headers_text(),
        "redirects_text": b.redirects_text(),
    })
}

fn print_rules<B: AsRef<[u8]>>(b: &Bundle<B>) {
    let redirects = CompiledRedirects::new(b);
    if b.redirects_text().is_some() {
        eprintln!(
            "  _redirects: {} static, {} dynamic rules",
            b.static_redirect_count(),
            b.dynamic_redirect_count()
        );
        for r in redirects.static_rules().chain(redirects.dynamic_rules()) {
            let kind = if r.dynamic { "dynamic" } else { "static " };
            eprintln!(
                "    {kind} {} -> {} {} (line {})",
                r.from, r.to, r.status, r.line
            );
        }
    }
    if b.headers_text().is_some() {
        eprintln!("  _headers: {} rules", b.header_rule_count());
        for r in CompiledHeaders::new(b).rules() {
            eprintln!("    {} (line {})", r.pattern.source(), r.line);
            for op in b.header_rule_ops(&r) {
                match op {
                    HeaderOp::Unset(n) => eprintln!("      ! {n}"),
                    HeaderOp::Set(n, v) => eprintln!("      {n}: {v}"),
                }
            }
        }
    }
}
