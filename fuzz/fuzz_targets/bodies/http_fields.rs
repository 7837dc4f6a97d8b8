//! Request fields the server parses: Range (with a fuzzed length),
//! Accept-Encoding and If-None-Match. No panic; a partial range lies inside
//! the representation.
//!
//! Shared by the fuzz target and `tests/fuzz_replay.rs`, which replays
//! the committed inputs under `tests/fuzz-inputs/` in `cargo test`.
use sitepack::route::{conditional, negotiate};
use sitepack::serve::respond::{plan_range, RangePlan};

/// One input; panics on a violated property.
pub fn run(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    let field = &data[8..];
    if let RangePlan::Partial((start, end)) = plan_range(field, len) {
        assert!(start <= end && end < len, "{start}-{end}/{len}");
    }
    let _ = negotiate::choose(Some(field), [1u8, 2, 3].into_iter());
    let _ = conditional::if_none_match(field, b"\"0123456789abcdef0123456789abcdef\"");
}
