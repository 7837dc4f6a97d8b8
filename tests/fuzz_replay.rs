//! The fuzz targets' own checks (`fuzz/fuzz_targets/bodies/`), run in
//! `cargo test` without cargo-fuzz: over the inputs committed under
//! `tests/fuzz-inputs/<target>/` (minimised corpus entries and every finding,
//! so a fixed crash stays fixed) and over inputs made here from the
//! fixtures.

#[path = "../fuzz/fuzz_targets/bodies/bundle.rs"]
mod bundle;
#[path = "../fuzz/fuzz_targets/bodies/canonical.rs"]
mod canonical;
#[path = "../fuzz/fuzz_targets/bodies/http_fields.rs"]
mod http_fields;
#[path = "../fuzz/fuzz_targets/bodies/rules.rs"]
mod rules;

mod common;

use std::path::Path;

/// Runs `check` on every committed input of `target`; returns the count.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-inputs")
        .join(target);
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).unwrap();
            let name = p.display().to_string();
            std::panic::catch_unwind(|| check(&data))
                .unwrap_or_else(|_| panic!("fuzz input {name} fails"));
            n += 1;
        }
    }
    n
}

#[test]
fn bundle_target() {
    replay("bundle", bundle::run);
    // Real bundles and systematic damage to them (the fuzz seeds).
    let good = common::small_bundle_bytes();
    bundle::run(&good);
    for i in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[i] ^= 0xa5;
        bundle::run(&b);
        bundle::run(&good[..i]);
    }
}

#[test]
fn canonical_target() {
    let n = replay("canonical", canonical::run);
    assert!(n > 0, "no committed canonicaliser inputs");
}

#[test]
fn rules_target() {
    let n = replay("rules", rules::run);
    assert!(n > 0, "no committed rules inputs");
    for f in ["_headers", "_redirects"] {
        let text = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/demo-site")
                .join(f),
        )
        .unwrap();
        rules::run(&text);
    }
}

#[test]
fn http_fields_target() {
    let n = replay("http_fields", http_fields::run);
    assert!(n > 0, "no committed HTTP field inputs");
}
