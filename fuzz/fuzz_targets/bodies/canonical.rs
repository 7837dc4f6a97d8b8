//! The canonicaliser on arbitrary request targets. Properties: the key never
//! leaves the root, and any Location built from it is path-absolute, never
//! protocol-relative, free of control bytes, and canonicalises back to the
//! same key.
//!
//! Shared by the fuzz target and `tests/fuzz_replay.rs`, which replays
//! the committed inputs under `tests/fuzz-inputs/` in `cargo test`.
use sitepack::route::canonical::{canonicalize, write_location, Scratch, MAX_TARGET_LEN};

/// One input; panics on a violated property.
pub fn run(data: &[u8]) {
    let mut scratch = Scratch::new();
    let Ok(t) = canonicalize(data, &mut scratch) else {
        return;
    };
    let path = t.path.to_string();
    assert!(path.starts_with('/'), "{path:?}");
    assert!(!path.contains("//"), "{path:?}");
    assert!(!path.contains('\\'), "{path:?}");
    assert!(!path.bytes().any(|b| b < 0x20 || b == 0x7f), "{path:?}");
    assert!(path.split('/').all(|s| s != ".." && s != "."), "{path:?}");
    let mut loc = String::new();
    write_location(&path, t.query, &mut loc);
    let b = loc.as_bytes();
    assert_eq!(b[0], b'/');
    assert!(
        b.get(1) != Some(&b'/') && b.get(1) != Some(&b'\\'),
        "{loc:?}"
    );
    assert!(!loc.bytes().any(|c| c <= b' ' || c == 0x7f), "{loc:?}");
    if loc.len() > MAX_TARGET_LEN {
        // Re-encoding lengthened a target near the limit: the router answers
        // 414 instead of redirecting (a fuzz finding).
        return;
    }
    let mut again = Scratch::new();
    let t2 =
        canonicalize(loc.as_bytes(), &mut again).expect("a Location we built must canonicalise");
    assert_eq!(t2.path, path);
    assert!(t2.is_canonical, "{loc:?}");
}
