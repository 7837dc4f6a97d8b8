//! User-written routing rules: Cloudflare URL patterns and the three files
//! that use them (`_headers`, `_redirects`, `run_worker_first`).

pub mod compiled;
pub mod headers;
pub mod pattern;
pub mod redirects;
pub mod worker_first;
