//! Arbitrary bytes as a bundle: open, every accessor, lookups, verify and a
//! few requests through the router must return errors, never panic or read
//! out of bounds. The header's length and index checksum are re-signed
//! first, so mutations reach the record validation behind the checksum (a
//! hostile bundle can carry a valid checksum too); seed with real bundles.
#![no_main]

#[path = "bodies/bundle.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
