//! The command line: one file per verb. Each verb returns its exit code;
//! errors bubble up as `anyhow` and become exit 2 in `main`.

pub mod build;
pub mod diff;
pub mod extract;
pub mod inspect;
pub mod publish;
pub mod resolve;
pub mod serve;
pub mod verify;

use clap::{Parser, Subcommand};

/// Pack a static site into one bundle and serve it like Cloudflare does.
#[derive(Parser, Debug)]
#[command(name = "sitepack", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a bundle from an asset directory.
    Build(build::Args),
    /// Summarise a bundle (--json: every asset).
    Inspect(inspect::Args),
    /// Check every byte of a bundle; exit 1 on the first fault.
    Verify(verify::Args),
    /// Answer one request from a bundle, without a network, as JSON.
    Resolve(resolve::Args),
    /// Install a bundle at DEST atomically (verify, keep DEST.previous, rename).
    Publish(publish::Args),
    /// Serve a bundle (or a directory, built first) over HTTP.
    Serve(serve::Args),
    /// Write a bundle's files back into a directory, byte for byte.
    Extract(extract::Args),
    /// Compare two bundles: what a deploy changes.
    Diff(diff::Args),
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Build(a) => build::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Extract(a) => extract::run(a),
        Command::Resolve(a) => resolve::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Publish(a) => publish::run(a),
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
