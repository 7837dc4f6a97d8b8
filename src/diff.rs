//! `diff`: what deploying bundle NEW over bundle OLD changes.
//!
//! Everything is read from the two validated indexes in place: no blob byte
//! is read and nothing is rebuilt. The work is linear in the number of
//! entries and the memory proportional to the changes:
//!
//! * assets: one merge walk over the two key-sorted asset tables, comparing
//!   each key's content by the BLAKE3 of its blob (not the ETag, which also
//!   covers the extension); sizes are blob record lengths;
//! * renames: a removed key whose content hash is that of an added key
//!   (same file name first, then key order; empty files are never paired);
//! * upload plan: the blobs of added/modified keys whose hash no OLD blob
//!   has (one pass over OLD's blob records, probing a set of those few);
//! * URL impact: every OLD route entry that serves 200 (each asset key and
//!   each html_handling alias), if OLD really answers it with 200, is asked
//!   of NEW. NEW's entry for the same path is found by walking NEW's
//!   path-sorted route table alongside OLD's (sequential reads; a table not
//!   sorted falls back to hash probes); when NEW has no `_redirects` rule and
//!   no `run_worker_first`, an entry serving 200 settles it, else NEW's
//!   [`Router`] answers (O(1), no allocation per request).
//!
//! The JSON document ([`Changes`]) is specified in docs/DIFF.md.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, NotFoundHandling, RunWorkerFirst};
use crate::format::layout::action;
use crate::format::{Bundle, Route};
use crate::route::canonical::{self, write_location};
use crate::route::{Outcome, RequestHead, Router, Scratch};

/// The version of the [`Changes`] document (`"format"`).
pub const FORMAT: u32 = 1;

/// Everything deploying NEW over OLD changes: the `diff --json` document.
/// Every list is sorted (by path, `from`, key or file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Always [`FORMAT`].
    pub format: u32,
    /// True when every list below is empty (then `upload` is zero too).
    pub identical: bool,
    pub added: Vec<PathSize>,
    pub removed: Vec<PathSize>,
    pub modified: Vec<Modified>,
    pub renamed: Vec<Renamed>,
    /// Keys present in both with the same content.
    pub unchanged: u64,
    pub config_changed: Vec<ConfigChange>,
    pub rules_changed: Vec<RulesChange>,
    /// Paths that answered 200 in OLD and do not in NEW.
    pub broken_urls: Vec<BrokenUrl>,
    /// Paths that answered 200 in OLD and now get an html_handling redirect
    /// to a URL that answers 200: links keep working (not broken).
    pub redirected_urls: Vec<RedirectedUrl>,
    pub upload: Upload,
}

/// An added or removed asset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathSize {
    pub path: String,
    pub size: u64,
}

/// A key whose content changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Modified {
    pub path: String,
    pub old_size: u64,
    pub new_size: u64,
}

/// A removed key whose content now sits at an added key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Renamed {
    pub from: String,
    pub to: String,
    pub size: u64,
}

/// One routing setting that differs. `old`/`new` are the values as
/// `inspect --json` prints them (strings, `run_worker_first` a boolean or a
/// list of patterns, `compatibility_flags` a list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    pub key: &'static str,
    pub old: Value,
    pub new: Value,
}

/// A rules file whose effective lines differ. See [`rule_lines`] for what a
/// line is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RulesChange {
    /// `_headers` or `_redirects`.
    pub file: &'static str,
    /// Lines of NEW not in OLD (as a multiset), in NEW's order.
    pub added: Vec<String>,
    /// Lines of OLD not in NEW, in OLD's order.
    pub removed: Vec<String>,
    /// The same lines in another order (first match wins in `_redirects`).
    pub reordered: bool,
}

/// What a broken path answers in NEW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Now {
    /// An HTTP status: a 3xx, 404 (also when the 404 page answers), ...
    Status(u16),
    /// NEW's `run_worker_first` hands the path to the Worker.
    Worker,
}

impl Serialize for Now {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Now::Status(code) => s.serialize_u16(*code),
            Now::Worker => s.serialize_str("worker"),
        }
    }
}

impl std::fmt::Display for Now {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Now::Status(code) => write!(f, "{code}"),
            Now::Worker => f.write_str("worker"),
        }
    }
}

/// A request path that answered 200 in OLD and does not in NEW.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenUrl {
    /// The decoded request path (a route key).
    pub path: String,
    /// Always 200.
    pub old: u16,
    pub new: Now,
    /// The `Location` when `new` is a redirect, else `None` (JSON `null`).
    pub location: Option<String>,
}

/// A path that now gets an html_handling redirect to a URL still answering 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedirectedUrl {
    pub path: String,
    pub status: u16,
    pub location: String,
}

/// What a content-addressed upload of NEW sends, given OLD is deployed: the
/// blobs whose BLAKE3 no OLD blob has, each with its stored variants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Upload {
    pub blobs: u64,
    /// Precompressed variants of those blobs.
    pub variants: u64,
    /// Identity plus variant bytes.
    pub bytes: u64,
    /// Identity bytes alone.
    pub identity_bytes: u64,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_identical(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.modified.is_empty()
            && self.renamed.is_empty()
            && self.config_changed.is_empty()
            && self.rules_changed.is_empty()
            && self.broken_urls.is_empty()
            && self.redirected_urls.is_empty()
            && self.upload == Upload::default()
    }
}

/// Compares two bundles. Where the URL check needs a full router (rules,
/// `run_worker_first`, or a path no longer served directly), one is opened
/// over the bundle's bytes on first use; [`diff_routers`] avoids that.
pub fn diff<A: AsRef<[u8]>, B: AsRef<[u8]>>(old: &Bundle<A>, new: &Bundle<B>) -> Changes {
    compare(&Side::lazy(old), &Side::lazy(new))
}

/// [`diff`] over routers the caller already has (what `sitepack diff` uses).
pub fn diff_routers<A: AsRef<[u8]>, B: AsRef<[u8]>>(old: &Router<A>, new: &Router<B>) -> Changes {
    compare(&Side::given(old), &Side::given(new))
}

// ---------------------------------------------------------------------------
// Answering requests

/// A bundle plus the router that answers for it (given, or opened lazily).
struct Side<'a, X> {
    bundle: &'a Bundle<X>,
    given: Option<&'a Router<X>>,
    lazy: OnceCell<Option<Router<&'a [u8]>>>,
    config: Config,
    /// No `_redirects` rule and no `run_worker_first`: a route entry that
    /// serves 200 is answered 200, so the table alone decides.
    table_decides: bool,
}

impl<'a, X: AsRef<[u8]>> Side<'a, X> {
    fn lazy(bundle: &'a Bundle<X>) -> Self {
        let config = bundle.config();
        let rules = bundle.redirects_text().is_some_and(has_rule_lines);
        Side {
            table_decides: !rules && config.run_worker_first == RunWorkerFirst::Off,
            bundle,
            given: None,
            lazy: OnceCell::new(),
            config,
        }
    }

    fn given(router: &'a Router<X>) -> Self {
        let bundle = router.bundle();
        let config = bundle.config();
        Side {
            table_decides: router.redirect_rules().is_empty()
                && config.run_worker_first == RunWorkerFirst::Off,
            bundle,
            given: Some(router),
            lazy: OnceCell::new(),
            config,
        }
    }

    /// What a plain GET of `target` (an encoded request target) answers.
    fn answer<'s>(&'s self, target: &[u8], scratch: &'s mut Scratches) -> Answer<'s> {
        if let Some(r) = self.given {
            return answer_with(r, target, &mut scratch.router);
        }
        if self.table_decides {
            return self.table_answer(target, &mut scratch.canon);
        }
        let router = self.lazy.get_or_init(|| {
            Bundle::open(self.bundle.bytes())
                .ok()
                .and_then(|b| Router::new(b).ok())
        });
        match router {
            Some(r) => answer_with(r, target, &mut scratch.router),
            None => self.table_answer(target, &mut scratch.canon),
        }
    }

    /// The router's answer computed from the route table and
    /// not_found_handling alone: exact when `table_decides` (no rule and no
    /// Worker can intervene; `diff_routers` checks it against the router in
    /// the tests), which spares `diff` re-opening the bundle for a router.
    /// Otherwise only used if no router could be made (the bytes changed
    /// after `open`, or an invalid `run_worker_first` list).
    fn table_answer<'s>(&'s self, target: &[u8], canon: &mut canonical::Scratch) -> Answer<'s> {
        let t = match canonical::canonicalize(target, canon) {
            Ok(t) => t,
            Err(e) => return Answer::Status(e.status()),
        };
        match self.bundle.route(t.path) {
            Some(r) if r.action == action::SERVE => return Answer::Status(r.status),
            Some(r) if r.action == action::REDIRECT => return Answer::Redirect(307, r.location),
            _ => {}
        }
        match self.config.not_found_handling {
            // The 404 page or an empty 404: 404 either way.
            NotFoundHandling::None | NotFoundHandling::Page404 => Answer::Status(404),
            NotFoundHandling::SinglePageApplication => {
                let spa = self.bundle.route("/index.html").and_then(|r| r.exact_asset);
                Answer::Status(if spa.is_some() { 200 } else { 404 })
            }
        }
    }
}

#[derive(Default)]
struct Scratches {
    router: Scratch,
    canon: canonical::Scratch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer<'s> {
    Status(u16),
    Redirect(u16, &'s str),
    Worker,
}

/// The router's answer to a GET with no headers. The deployment is assumed
/// to have a Worker only for `run_worker_first`: a path it claims is
/// `Worker`; a path the assets cannot answer gets the assets' answer (404,
/// the 404 page, the SPA index) rather than "Worker", since a bundle does
/// not say whether a Worker exists.
fn answer_with<'s, Y: AsRef<[u8]>>(
    router: &'s Router<Y>,
    target: &[u8],
    scratch: &'s mut Scratch,
) -> Answer<'s> {
    let req = RequestHead {
        method: "GET",
        target,
        ..RequestHead::default()
    };
    let mut outcome = router.resolve(&req, true, scratch);
    if let Outcome::Worker {
        worker_first: false,
    } = outcome
    {
        outcome = router.resolve(&req, false, scratch);
    }
    match outcome {
        Outcome::Worker { .. } => Answer::Worker,
        Outcome::Asset { status, .. } => Answer::Status(status),
        Outcome::Redirect { status } => Answer::Redirect(status, scratch.location()),
        Outcome::Rejected { status, .. } => Answer::Status(status),
        Outcome::MethodNotAllowed => Answer::Status(405),
        Outcome::NotFound => Answer::Status(404),
    }
}

// ---------------------------------------------------------------------------
// The comparison

struct Entry<'a> {
    path: &'a str,
    blob: u32,
    hash: &'a [u8; 32],
    size: u64,
}

fn entry<'a, X: AsRef<[u8]>>(b: &'a Bundle<X>, a: crate::format::Asset<'a>) -> Entry<'a> {
    const ZERO: [u8; 32] = [0; 32];
    Entry {
        path: a.path,
        blob: a.blob,
        hash: b.blob_hash(a.blob).unwrap_or(&ZERO),
        size: blob_len(b, a.blob),
    }
}

/// The identity length from the blob record (the slice is not read).
fn blob_len<X: AsRef<[u8]>>(b: &Bundle<X>, blob: u32) -> u64 {
    b.blob(blob).map_or(0, |d| d.len() as u64)
}

fn compare<A: AsRef<[u8]>, B: AsRef<[u8]>>(old: &Side<'_, A>, new: &Side<'_, B>) -> Changes {
    let (ob, nb) = (old.bundle, new.bundle);
    let mut c = Changes {
        format: FORMAT,
        ..Changes::default()
    };

    // Assets: one merge walk over the two sorted tables.
    let mut added: Vec<Entry<'_>> = Vec::new();
    let mut removed: Vec<Entry<'_>> = Vec::new();
    // NEW blobs whose content may be new to OLD: those of modified keys.
    let mut modified_blobs: Vec<u32> = Vec::new();
    let mut recompressed: std::collections::HashSet<u32> = Default::default();
    let mut variant_upload = Upload::default();
    let mut oi = ob.assets().peekable();
    let mut ni = nb.assets().peekable();
    loop {
        let ord = match (oi.peek(), ni.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(o), Some(n)) => o.path.as_bytes().cmp(n.path.as_bytes()),
        };
        match ord {
            std::cmp::Ordering::Less => {
                if let Some(o) = oi.next() {
                    removed.push(entry(ob, o));
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some(n) = ni.next() {
                    added.push(entry(nb, n));
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some(o), Some(n)) = (oi.next(), ni.next()) {
                    if ob.blob_hash(o.blob) == nb.blob_hash(n.blob) {
                        c.unchanged += 1;
                        // Same content, maybe compressed anew (another
                        // --compression): variants OLD lacks are uploaded.
                        let mut up = Upload::default();
                        new_variants(ob, o.blob, nb, n.blob, &mut up);
                        // A blob shared by several paths is sent once; the
                        // set holds only blobs with new variants.
                        if up.variants > 0 && recompressed.insert(n.blob) {
                            variant_upload.variants += up.variants;
                            variant_upload.bytes += up.bytes;
                        }
                    } else {
                        c.modified.push(Modified {
                            path: n.path.to_string(),
                            old_size: blob_len(ob, o.blob),
                            new_size: blob_len(nb, n.blob),
                        });
                        modified_blobs.push(n.blob);
                    }
                }
            }
        }
    }

    let (renames, added_paired, removed_paired) = pair_renames(&removed, &added);
    c.renamed = renames;
    c.renamed
        .sort_by(|a, b| a.from.as_bytes().cmp(b.from.as_bytes()));
    c.upload = upload_plan(
        ob,
        nb,
        added
            .iter()
            .zip(&added_paired)
            .filter(|(_, paired)| !**paired)
            .map(|(e, _)| e.blob)
            .chain(modified_blobs),
    );
    c.upload.variants += variant_upload.variants;
    c.upload.bytes += variant_upload.bytes;
    let sized = |e: &Entry<'_>| PathSize {
        path: e.path.to_string(),
        size: e.size,
    };
    c.added = added
        .iter()
        .zip(&added_paired)
        .filter(|(_, p)| !**p)
        .map(|(e, _)| sized(e))
        .collect();
    c.removed = removed
        .iter()
        .zip(&removed_paired)
        .filter(|(_, p)| !**p)
        .map(|(e, _)| sized(e))
        .collect();

    c.config_changed = config_changes(&old.config, &new.config);
    for (file, o, n) in [
        ("_headers", ob.headers_text(), nb.headers_text()),
        ("_redirects", ob.redirects_text(), nb.redirects_text()),
    ] {
        if let Some(change) = rules_change(file, o.unwrap_or(""), n.unwrap_or("")) {
            c.rules_changed.push(change);
        }
    }

    urls(old, new, &mut c);
    c.identical = c.is_identical();
    c
}

/// Pairs removed and added entries with the same content: same file name
/// first, then in key order. Linear: each candidate list is consumed once.
fn pair_renames(
    removed: &[Entry<'_>],
    added: &[Entry<'_>],
) -> (Vec<Renamed>, Vec<bool>, Vec<bool>) {
    let mut added_paired = vec![false; added.len()];
    let mut removed_paired = vec![false; removed.len()];
    let mut renames = Vec::new();
    if removed.is_empty() || added.is_empty() {
        return (renames, added_paired, removed_paired);
    }
    let mut by_name: HashMap<(&[u8; 32], &str), VecDeque<usize>> = HashMap::new();
    let mut by_hash: HashMap<&[u8; 32], VecDeque<usize>> = HashMap::new();
    for (i, a) in added.iter().enumerate().filter(|(_, a)| a.size > 0) {
        by_name
            .entry((a.hash, file_name(a.path)))
            .or_default()
            .push_back(i);
        by_hash.entry(a.hash).or_default().push_back(i);
    }
    for pass in 0..2 {
        for (r, e) in removed.iter().enumerate() {
            if removed_paired[r] || e.size == 0 {
                continue;
            }
            let list = if pass == 0 {
                by_name.get_mut(&(e.hash, file_name(e.path)))
            } else {
                by_hash.get_mut(e.hash)
            };
            if let Some(a) = take(list, &mut added_paired) {
                removed_paired[r] = true;
                renames.push(Renamed {
                    from: e.path.to_string(),
                    to: added[a].path.to_string(),
                    size: e.size,
                });
            }
        }
    }
    (renames, added_paired, removed_paired)
}

/// Pops the first unpaired index of `list` and marks it paired.
fn take(list: Option<&mut VecDeque<usize>>, paired: &mut [bool]) -> Option<usize> {
    let list = list?;
    while let Some(i) = list.pop_front() {
        if !paired[i] {
            paired[i] = true;
            return Some(i);
        }
    }
    None
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Adds to `up` the variants of NEW's `new_blob` whose bytes OLD's
/// `old_blob` (the same content) does not store.
fn new_variants<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    old: &Bundle<A>,
    old_blob: u32,
    new: &Bundle<B>,
    new_blob: u32,
    up: &mut Upload,
) {
    for v in new.variants(new_blob) {
        if !old.variants(old_blob).any(|o| o.hash == v.hash) {
            up.variants += 1;
            up.bytes += v.bytes.len() as u64;
        }
    }
}

/// The blobs among `candidates` (NEW blob indexes) whose hash no OLD blob
/// has: memory for the candidates only, one pass over OLD's blob records.
fn upload_plan<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    old: &Bundle<A>,
    new: &Bundle<B>,
    candidates: impl Iterator<Item = u32>,
) -> Upload {
    let mut pending: HashMap<&[u8; 32], u32> = HashMap::new();
    for blob in candidates {
        if let Some(h) = new.blob_hash(blob) {
            pending.entry(h).or_insert(blob);
        }
    }
    let mut i = 0u32;
    while !pending.is_empty() && (i as usize) < old.blob_count() {
        if let Some(h) = old.blob_hash(i) {
            pending.remove(h);
        }
        i += 1;
    }
    let mut up = Upload::default();
    for &blob in pending.values() {
        let len = blob_len(new, blob);
        up.blobs += 1;
        up.identity_bytes += len;
        up.bytes += len;
        for v in new.variants(blob) {
            up.variants += 1;
            up.bytes += v.bytes.len() as u64;
        }
    }
    up
}

/// `run_worker_first` as `inspect --json` prints it.
pub fn worker_first_json(w: &RunWorkerFirst) -> Value {
    match w {
        RunWorkerFirst::Off => Value::Bool(false),
        RunWorkerFirst::On => Value::Bool(true),
        RunWorkerFirst::Patterns(p) => Value::from(p.clone()),
    }
}

fn config_changes(o: &Config, n: &Config) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    let mut push = |key, old: Value, new: Value| {
        if old != new {
            out.push(ConfigChange { key, old, new });
        }
    };
    push(
        "html_handling",
        o.html_handling.as_str().into(),
        n.html_handling.as_str().into(),
    );
    push(
        "not_found_handling",
        o.not_found_handling.as_str().into(),
        n.not_found_handling.as_str().into(),
    );
    push(
        "run_worker_first",
        worker_first_json(&o.run_worker_first),
        worker_first_json(&n.run_worker_first),
    );
    push(
        "compatibility_date",
        o.compatibility_date.as_str().into(),
        n.compatibility_date.as_str().into(),
    );
    push(
        "compatibility_flags",
        o.compatibility_flags.clone().into(),
        n.compatibility_flags.clone().into(),
    );
    out
}

fn has_rule_lines(text: &str) -> bool {
    text.split('\n')
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The effective lines of a rules file, as compared and reported: blank and
/// `#` comment lines dropped, each line trimmed and its whitespace runs
/// collapsed to one space. In `_headers` a header line is prefixed with the
/// path pattern it belongs to and two spaces (`/secure/*  X-Frame-Options:
/// DENY`), so a header moved to another pattern is a change.
pub fn rule_lines<'t>(file: &str, text: &'t str) -> Vec<Cow<'t, str>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let headers = file == "_headers";
    let mut pattern: Option<Cow<'t, str>> = None;
    let mut out = Vec::new();
    for raw in text.split('\n') {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = collapse(line);
        if headers && !is_path_line(&line) {
            match &pattern {
                Some(p) => out.push(Cow::Owned(format!("{p}  {line}"))),
                None => out.push(line),
            }
            continue;
        }
        if headers {
            pattern = Some(line.clone());
        }
        out.push(line);
    }
    out
}

fn collapse(line: &str) -> Cow<'_, str> {
    let needs = line
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace())
        || line.bytes().any(|b| b.is_ascii_whitespace() && b != b' ');
    if needs {
        Cow::Owned(line.split_whitespace().collect::<Vec<_>>().join(" "))
    } else {
        Cow::Borrowed(line)
    }
}

/// `_headers` path lines (same test as `rules::headers`).
fn is_path_line(line: &str) -> bool {
    if line.starts_with('/') {
        return true;
    }
    let run = line.split(char::is_whitespace).next().unwrap_or("");
    run.match_indices("://").any(|(k, _)| k > 0)
}

fn rules_change(file: &'static str, old: &str, new: &str) -> Option<RulesChange> {
    if old == new {
        return None;
    }
    let o = rule_lines(file, old);
    let n = rule_lines(file, new);
    if o == n {
        return None;
    }
    let mut counts: HashMap<&str, isize> = HashMap::new();
    for l in &o {
        *counts.entry(l).or_default() += 1;
    }
    let mut added = Vec::new();
    for l in &n {
        match counts.get_mut(l.as_ref()) {
            Some(k) if *k > 0 => *k -= 1,
            _ => added.push(l.to_string()),
        }
    }
    let mut removed = Vec::new();
    for l in &o {
        if let Some(k) = counts.get_mut(l.as_ref()) {
            if *k > 0 {
                *k -= 1;
                removed.push(l.to_string());
            }
        }
    }
    Some(RulesChange {
        file,
        reordered: added.is_empty() && removed.is_empty(),
        added,
        removed,
    })
}

/// URL impact: every OLD route entry serving 200 that OLD answers 200 and
/// NEW does not.
fn urls<A: AsRef<[u8]>, B: AsRef<[u8]>>(old: &Side<'_, A>, new: &Side<'_, B>, c: &mut Changes) {
    if url_pass(old, new, c, true).is_err() {
        // Not written by sitepack (whose route tables are sorted): probe
        // NEW's hash table for each path instead.
        c.broken_urls.clear();
        c.redirected_urls.clear();
        let _ = url_pass(old, new, c, false);
    }
    c.broken_urls
        .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    c.redirected_urls
        .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
}

/// A route table that is not sorted by path.
struct Unsorted;

/// One walk over OLD's routes. With `merge`, NEW's route entry for each
/// path is found by walking NEW's (path-sorted) routes alongside, which
/// reads both tables sequentially instead of probing NEW's hash table at
/// random; it fails if either table turns out not to be strictly sorted.
fn url_pass<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    old: &Side<'_, A>,
    new: &Side<'_, B>,
    c: &mut Changes,
    merge: bool,
) -> Result<(), Unsorted> {
    let mut scratch: Option<Box<Scratches>> = None;
    let mut target = String::new();
    let mut news = new.bundle.routes().peekable();
    let mut last_new: Option<&str> = None;
    let mut last_old: Option<&str> = None;
    // Consumes NEW routes below `upto` (all, for `None`), checking their
    // order, and returns the first one not consumed.
    let mut advance = |upto: Option<&str>| -> Result<Option<Route<'_>>, Unsorted> {
        while let Some(n) = news.peek() {
            if upto.is_some_and(|p| n.path.as_bytes() >= p.as_bytes()) {
                break;
            }
            if last_new.is_some_and(|l| l.as_bytes() >= n.path.as_bytes()) {
                return Err(Unsorted);
            }
            last_new = Some(n.path);
            news.next();
        }
        Ok(news.peek().copied())
    };
    for r in old.bundle.routes() {
        if merge {
            if last_old.is_some_and(|l| l.as_bytes() >= r.path.as_bytes()) {
                return Err(Unsorted);
            }
            last_old = Some(r.path);
        }
        if r.action != action::SERVE || r.status != 200 {
            continue;
        }
        let new_route = if merge {
            advance(Some(r.path))?.filter(|n| n.path == r.path)
        } else {
            new.bundle.route(r.path)
        };
        target.clear();
        if new.table_decides
            && new_route.is_some_and(|n| n.action == action::SERVE && n.status == 200)
        {
            // The router agrees (checked in debug builds: the tests).
            #[cfg(debug_assertions)]
            {
                write_location(r.path, "", &mut target);
                let s = scratch.get_or_insert_with(Box::default);
                debug_assert_eq!(new.answer(target.as_bytes(), s), Answer::Status(200));
            }
            continue;
        }
        write_location(r.path, "", &mut target);
        let s = scratch.get_or_insert_with(Box::default);
        if !old.table_decides && old.answer(target.as_bytes(), s) != Answer::Status(200) {
            continue;
        }
        let (now, location) = match new.answer(target.as_bytes(), s) {
            Answer::Status(200) => continue,
            Answer::Status(code) => (Now::Status(code), None),
            Answer::Worker => (Now::Worker, None),
            Answer::Redirect(status, loc) => {
                let loc = loc.to_string();
                let by_table = status == 307
                    && new_route.is_some_and(|n| n.action == action::REDIRECT && n.location == loc);
                if by_table && new.answer(loc.as_bytes(), s) == Answer::Status(200) {
                    c.redirected_urls.push(RedirectedUrl {
                        path: r.path.to_string(),
                        status,
                        location: loc,
                    });
                    continue;
                }
                (Now::Status(status), Some(loc))
            }
        };
        c.broken_urls.push(BrokenUrl {
            path: r.path.to_string(),
            old: 200,
            new: now,
            location,
        });
    }
    if merge {
        advance(None)?;
    }
    Ok(())
}
