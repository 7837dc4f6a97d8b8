//! `_headers` and `_redirects` parsers on arbitrary text, then matching an
//! arbitrary path: no panic, every produced Location is safe (no control
//! bytes, never protocol-relative unless the rule was written absolute), and
//! the rules compiled into a bundle answer exactly as the parsed ones do.
#![no_main]

#[path = "bodies/rules.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
