//! Arbitrary bytes as a bundle: open, every accessor, lookups, verify and a
//! few requests through the router must return errors, never panic or read
//! out of bounds. The header's length and index checksum are re-signed
//! first, so mutations reach the record validation behind the checksum (a
//! hostile bundle can carry a valid checksum too); seed with real bundles.
//!
//! Shared by the fuzz target and `tests/fuzz_replay.rs`, which replays
//! the committed inputs under `tests/fuzz-inputs/` in `cargo test`.
use sitepack::format::Bundle;
use sitepack::route::{RequestHead, Router, Scratch};

/// Header offsets (docs/FORMAT.md): file_len, index_offset, index_len,
/// index_checksum.
const FILE_LEN: usize = 16;
const INDEX_OFFSET: usize = 24;
const INDEX_LEN: usize = 32;
const CHECKSUM: usize = 48;

fn resign(data: &mut [u8]) {
    if data.len() < CHECKSUM + 32 {
        return;
    }
    let len = data.len() as u64;
    data[FILE_LEN..FILE_LEN + 8].copy_from_slice(&len.to_le_bytes());
    let word = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap()) as usize;
    let (off, n) = (word(INDEX_OFFSET), word(INDEX_LEN));
    if let Some(index) = off.checked_add(n).and_then(|end| data.get(off..end)) {
        let sum = *blake3::hash(index).as_bytes();
        data[CHECKSUM..CHECKSUM + 32].copy_from_slice(&sum);
    }
}

/// One input; panics on a violated property.
pub fn run(input: &[u8]) {
    let mut owned = input.to_vec();
    resign(&mut owned);
    let data = &owned[..];
    let Ok(bundle) = Bundle::open(data) else {
        return;
    };
    let _ = bundle.config();
    for a in bundle.assets() {
        let _ = bundle.blob(a.blob);
        for v in bundle.variants(a.blob) {
            let _ = v.bytes.len();
        }
        let _ = bundle.find_asset(a.path);
    }
    let paths: Vec<String> = bundle.routes().map(|r| r.path.to_string()).collect();
    for p in &paths {
        let _ = bundle.route(p);
    }
    let _ = bundle.verify_stored();
    let _ = bundle.verify();
    let Ok(router) = Router::new(bundle) else {
        return;
    };
    let mut scratch = Scratch::new();
    for target in ["/", "/index.html", "/a/b/", "/missing", "/%5Bx%5D?q=1"] {
        for has_worker in [false, true] {
            let req = RequestHead {
                method: "GET",
                target: target.as_bytes(),
                ..RequestHead::default()
            };
            let _ = router.resolve(&req, has_worker, &mut scratch);
        }
    }
}
