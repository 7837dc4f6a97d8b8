//! Request fields the server parses: Range (with a fuzzed length),
//! Accept-Encoding and If-None-Match. No panic; a partial range lies inside
//! the representation.
#![no_main]

#[path = "bodies/http_fields.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
