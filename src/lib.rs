//! sitepack: pack a static site into one memory-mapped bundle and answer
//! requests from it with Cloudflare Workers static-assets semantics.
//!
//! Data flows one way: `build` (walk → encode → routes) writes `format`;
//! `format::Bundle` reads it in place; `route` turns requests into
//! resolutions over a bundle; `serve` puts resolutions on sockets.

pub mod build;
pub mod bundle_file;
pub mod cli;
pub mod config;
pub mod diff;
pub mod format;
pub mod route;
pub mod rules;
pub mod serve;
