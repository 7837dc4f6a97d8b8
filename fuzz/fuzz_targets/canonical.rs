//! The canonicaliser on arbitrary request targets. Properties: the key never
//! leaves the root, and any Location built from it is path-absolute, never
//! protocol-relative, free of control bytes, and canonicalises back to the
//! same key.
#![no_main]

#[path = "bodies/canonical.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
