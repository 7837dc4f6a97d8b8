//! `sitepack diff`: what deploying NEW over OLD changes (docs/DIFF.md).
//!
//! Exit 0 when identical, 1 when they differ (with `--fail-on-broken-urls`:
//! 1 only when a URL breaks), 2 on error. `text` goes to stderr like all
//! human output; `json` and `markdown` are documents and go to stdout.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

use crate::diff::{diff_routers, Changes};
use crate::route::Router;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle deployed now.
    pub old: PathBuf,
    /// The bundle about to be deployed.
    pub new: PathBuf,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// `text` (stderr), `json` or `markdown` (stdout).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Exit 1 only when a URL that answered 200 in OLD no longer does, else 0.
    #[arg(long)]
    pub fail_on_broken_urls: bool,
}

/// Lines of each list shown by `text` and `markdown`; `json` lists all.
const SHOWN: usize = 20;

pub fn run(args: Args) -> anyhow::Result<i32> {
    let open = |path: &PathBuf| -> anyhow::Result<_> {
        let bundle = crate::bundle_file::open(path)?;
        Router::new(bundle).with_context(|| format!("{}", path.display()))
    };
    let old = open(&args.old)?;
    let new = open(&args.new)?;
    let changes = diff_routers(&old, &new);
    let format = if args.json {
        Format::Json
    } else {
        args.format.unwrap_or(Format::Text)
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&changes)?),
        Format::Text => eprint!("{}", text(&changes)),
        Format::Markdown => print!("{}", markdown(&changes)),
    }
    Ok(if args.fail_on_broken_urls {
        i32::from(!changes.broken_urls.is_empty())
    } else {
        i32::from(!changes.identical)
    })
}

/// `1,234,567`.
fn n(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        n(count as u64),
        if count == 1 { one } else { many }
    )
}

/// The one-line summary both human formats open with.
pub fn summary(c: &Changes) -> String {
    if c.identical {
        return format!(
            "identical: {} unchanged",
            plural(c.unchanged as usize, "asset", "assets")
        );
    }
    let mut parts = vec![format!(
        "{} added, {} removed, {} modified, {} renamed, {} unchanged",
        n(c.added.len() as u64),
        n(c.removed.len() as u64),
        n(c.modified.len() as u64),
        n(c.renamed.len() as u64),
        n(c.unchanged)
    )];
    if !c.config_changed.is_empty() {
        parts.push(plural(
            c.config_changed.len(),
            "setting changed",
            "settings changed",
        ));
    }
    if !c.rules_changed.is_empty() {
        let files: Vec<&str> = c.rules_changed.iter().map(|r| r.file).collect();
        parts.push(format!("{} changed", files.join(" and ")));
    }
    parts.push(plural(c.broken_urls.len(), "broken URL", "broken URLs"));
    parts.push(format!(
        "upload {} ({} bytes)",
        plural(c.upload.blobs as usize, "blob", "blobs"),
        n(c.upload.bytes)
    ));
    parts.join("; ")
}

/// Pushes at most [`SHOWN`] lines of `items`, then a count of the rest.
fn capped<T>(out: &mut String, items: &[T], what: &str, line: impl Fn(&T) -> String) {
    for it in items.iter().take(SHOWN) {
        out.push_str(&line(it));
        out.push('\n');
    }
    if items.len() > SHOWN {
        let _ = writeln!(
            out,
            "  ... and {} more {what} (--json lists all)",
            n((items.len() - SHOWN) as u64)
        );
    }
}

/// The `text` format: the summary, then one line per change, grouped and
/// sorted, at most [`SHOWN`] per group.
pub fn text(c: &Changes) -> String {
    let mut out = summary(c);
    out.push('\n');
    capped(&mut out, &c.broken_urls, "broken URLs", |b| {
        let to = b
            .location
            .as_deref()
            .map(|l| format!(" {l}"))
            .unwrap_or_default();
        format!("  broken     {}  200 -> {}{to}", b.path, b.new)
    });
    capped(&mut out, &c.added, "added", |a| {
        format!("  added      {}  ({} bytes)", a.path, n(a.size))
    });
    capped(&mut out, &c.removed, "removed", |a| {
        format!("  removed    {}  ({} bytes)", a.path, n(a.size))
    });
    capped(&mut out, &c.modified, "modified", |m| {
        format!(
            "  modified   {}  ({} -> {} bytes)",
            m.path,
            n(m.old_size),
            n(m.new_size)
        )
    });
    capped(&mut out, &c.renamed, "renamed", |r| {
        format!("  renamed    {} -> {}", r.from, r.to)
    });
    for k in &c.config_changed {
        let _ = writeln!(out, "  config     {}: {} -> {}", k.key, k.old, k.new);
    }
    for r in &c.rules_changed {
        if r.reordered {
            let _ = writeln!(out, "  {}  same rules, new order", r.file);
        }
        capped(&mut out, &r.removed, "removed lines", |l| {
            format!("  {}  - {l}", r.file)
        });
        capped(&mut out, &r.added, "added lines", |l| {
            format!("  {}  + {l}", r.file)
        });
    }
    capped(&mut out, &c.redirected_urls, "redirected URLs", |r| {
        format!(
            "  redirected {}  200 -> {} {} (still 200 there)",
            r.path, r.status, r.location
        )
    });
    out
}

/// A Markdown code span that survives any backtick and table pipe in `s`.
fn code(s: &str) -> String {
    let mut ticks = 1;
    while s.contains(&"`".repeat(ticks)) {
        ticks += 1;
    }
    let fence = "`".repeat(ticks);
    let s = s.replace('|', "\\|");
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

fn md_capped<T>(out: &mut String, items: &[T], cols: usize, line: impl Fn(&T) -> String) {
    for it in items.iter().take(SHOWN) {
        out.push_str(&line(it));
        out.push('\n');
    }
    if items.len() > SHOWN {
        let _ = writeln!(
            out,
            "| … {} more{} |",
            n((items.len() - SHOWN) as u64),
            " |".repeat(cols - 1)
        );
    }
}

/// The `markdown` format, for a pull-request comment: a bold summary, then
/// tables (broken URLs first), at most [`SHOWN`] rows each.
pub fn markdown(c: &Changes) -> String {
    let mut out = String::from("### sitepack diff\n\n");
    let mark = if c.broken_urls.is_empty() {
        ""
    } else {
        "⚠️ "
    };
    let _ = writeln!(out, "{mark}**{}**\n", summary(c));
    if !c.broken_urls.is_empty() {
        out.push_str("#### ⚠️ Broken URLs\n\n| Path | Before | Now |\n|---|---|---|\n");
        md_capped(&mut out, &c.broken_urls, 3, |b| {
            let to = b
                .location
                .as_deref()
                .map(|l| format!(" → {}", code(l)))
                .unwrap_or_default();
            format!("| {} | 200 | {}{to} |", code(&b.path), b.new)
        });
        out.push('\n');
    }
    let assets = c.added.len() + c.removed.len() + c.modified.len() + c.renamed.len();
    if assets > 0 {
        out.push_str("#### Assets\n\n| Change | Path | Bytes |\n|---|---|---|\n");
        md_capped(&mut out, &c.added, 3, |a| {
            format!("| added | {} | {} |", code(&a.path), n(a.size))
        });
        md_capped(&mut out, &c.removed, 3, |a| {
            format!("| removed | {} | {} |", code(&a.path), n(a.size))
        });
        md_capped(&mut out, &c.modified, 3, |m| {
            format!(
                "| modified | {} | {} → {} |",
                code(&m.path),
                n(m.old_size),
                n(m.new_size)
            )
        });
        md_capped(&mut out, &c.renamed, 3, |r| {
            format!(
                "| renamed | {} → {} | {} |",
                code(&r.from),
                code(&r.to),
                n(r.size)
            )
        });
        out.push('\n');
    }
    if !c.config_changed.is_empty() {
        out.push_str("#### Configuration\n\n| Setting | Before | Now |\n|---|---|---|\n");
        for k in &c.config_changed {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                k.key,
                code(&k.old.to_string()),
                code(&k.new.to_string())
            );
        }
        out.push('\n');
    }
    for r in &c.rules_changed {
        let _ = writeln!(out, "#### `{}`\n", r.file);
        if r.reordered {
            out.push_str("Same rules in a new order.\n\n");
            continue;
        }
        // A fence longer than any backtick run in the lines.
        let mut fence = String::from("```");
        while r.added.iter().chain(&r.removed).any(|l| l.contains(&fence)) {
            fence.push('`');
        }
        let _ = writeln!(out, "{fence}diff");
        for l in r.removed.iter().take(SHOWN) {
            let _ = writeln!(out, "- {l}");
        }
        for l in r.added.iter().take(SHOWN) {
            let _ = writeln!(out, "+ {l}");
        }
        let hidden = r.removed.len().saturating_sub(SHOWN) + r.added.len().saturating_sub(SHOWN);
        if hidden > 0 {
            let _ = writeln!(out, "# … {} more lines", n(hidden as u64));
        }
        let _ = writeln!(out, "{fence}\n");
    }
    if !c.redirected_urls.is_empty() {
        let _ = writeln!(
            out,
            "{} now redirected by html_handling to a URL that still answers 200.\n",
            plural(c.redirected_urls.len(), "URL", "URLs")
        );
    }
    if c.upload.blobs > 0 {
        let _ = writeln!(
            out,
            "Upload: {} ({} variants), {} bytes.",
            plural(c.upload.blobs as usize, "new blob", "new blobs"),
            n(c.upload.variants),
            n(c.upload.bytes)
        );
    }
    out
}
