//! `sitepack build`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::build::{self, BuildOptions, Compression, Progress, WalkOptions};
use crate::config::{self, Config, HtmlHandling, NotFoundHandling, RunWorkerFirst};

/// Routing settings shared by `build` and `serve`; each overrides the config file.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RoutingArgs {
    /// wrangler.json, wrangler.jsonc or wrangler.toml (default: found next to
    /// DIR, else upward from the working directory).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, value_name = "MODE")]
    pub html_handling: Option<HtmlHandling>,
    #[arg(long, value_name = "MODE")]
    pub not_found_handling: Option<NotFoundHandling>,
    /// `true`, `false`, or a route pattern (repeat for a list; `!/path` excludes).
    #[arg(long, value_name = "true|false|PATTERN")]
    pub run_worker_first: Vec<String>,
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub compatibility_date: Option<String>,
    #[arg(long = "compatibility-flag", value_name = "NAME")]
    pub compatibility_flags: Vec<String>,
}

impl RoutingArgs {
    /// The asset directory (flag, else config file, else `./dist`) and the
    /// merged configuration: flags over file over Cloudflare's defaults.
    pub fn resolve(&self, dir: Option<PathBuf>) -> anyhow::Result<(PathBuf, Config)> {
        let file_path = match &self.config {
            Some(p) => Some(p.clone()),
            None => config::discover(dir.as_deref()),
        };
        let file = match &file_path {
            Some(p) => config::load_file(p)?,
            None => config::FileConfig::default(),
        };
        let dir = dir
            .or(file.directory.clone())
            .unwrap_or_else(|| PathBuf::from("dist"));
        let run_worker_first = match self.run_worker_first.as_slice() {
            [] => file.run_worker_first.clone().unwrap_or_default(),
            [one] if one == "true" => RunWorkerFirst::On,
            [one] if one == "false" => RunWorkerFirst::Off,
            list => RunWorkerFirst::Patterns(list.to_vec()),
        };
        let cfg = Config {
            html_handling: self
                .html_handling
                .or(file.html_handling)
                .unwrap_or_default(),
            not_found_handling: self
                .not_found_handling
                .or(file.not_found_handling)
                .unwrap_or_default(),
            run_worker_first,
            compatibility_date: self
                .compatibility_date
                .clone()
                .or(file.compatibility_date.clone())
                .unwrap_or_default(),
            compatibility_flags: if self.compatibility_flags.is_empty() {
                file.compatibility_flags.clone().unwrap_or_default()
            } else {
                self.compatibility_flags.clone()
            },
        };
        Ok((dir, cfg))
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The asset directory (default: the config's assets.directory, else ./dist).
    pub dir: Option<PathBuf>,
    /// Where to write the bundle (replaced atomically).
    #[arg(short, long, value_name = "BUNDLE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub routing: RoutingArgs,
    #[arg(long, value_enum, default_value_t = Compression::Default)]
    pub compression: Compression,
    /// Take the precompressed variants of unchanged contents from this
    /// older bundle (same --compression); the output is byte-identical to a
    /// cold build. A missing or unusable OLD_BUNDLE is a warning.
    #[arg(long, value_name = "OLD_BUNDLE")]
    pub reuse: Option<PathBuf>,
    /// Follow symlinks to regular files that stay inside DIR.
    #[arg(long)]
    pub follow_symlinks: bool,
    #[arg(long, default_value_t = build::walk::DEFAULT_MAX_FILES)]
    pub max_files: usize,
    /// Bytes; larger files are refused.
    #[arg(long, default_value_t = build::walk::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
    /// Print the build report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, _files: u64, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let (dir, config) = args.routing.resolve(args.dir.clone())?;
    let opts = BuildOptions {
        root: dir.clone(),
        output: args.output.clone(),
        config,
        compression: args.compression,
        walk: WalkOptions {
            max_files: args.max_files,
            max_file_size: args.max_file_size,
            follow_symlinks: args.follow_symlinks,
            output: None,
        },
    };
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} compressing {bytes}/{total_bytes} {wide_bar} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let report = build::build_reusing(&opts, args.reuse.as_deref(), &Bar(bar))
        .with_context(|| format!("build of {} failed", dir.display()))?;
    if !args.quiet {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !args.quiet {
        eprintln!(
            "built {}: {} files ({} distinct), {} routes, {} bytes in, {} bytes in the bundle",
            report.bundle,
            report.files,
            report.blobs,
            report.routes,
            report.bytes_in,
            report.bytes_out
        );
        if args.reuse.is_some() {
            eprintln!(
                "reused the variants of {} contents ({} bytes) from the old bundle",
                report.reused.blobs, report.reused.bytes_in
            );
        }
    }
    Ok(0)
}
