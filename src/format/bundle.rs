//! `Bundle`: a validated view over bundle bytes, used in place.
//!
//! `open` costs O(index): it checks the header, the section table, the index
//! checksum and every record's references, and never touches blob bytes.
//! After that every accessor still uses checked slicing, so even a buffer that
//! changed after `open` yields errors, not panics. The library never maps
//! files itself; callers hand in any `AsRef<[u8]>` (a `Vec`, or an mmap).

use std::fmt;
use std::ops::Range;

use zerocopy::FromBytes;

use super::layout::*;
use crate::config::{Config, HtmlHandling, NotFoundHandling, RunWorkerFirst};
use crate::rules::headers::{self, HeaderOp};
use crate::rules::pattern::{PatternRef, TokenKind, MAX_CAPTURES};
use crate::rules::redirects;

/// Why a bundle was refused. Each names the field or record at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a sitepack bundle (bad magic)")]
    BadMagic,
    #[error("bundle format v{found}, this build reads v{VERSION}; rebuild the bundle or upgrade sitepack")]
    Version { found: u32 },
    #[error("bundle uses unknown feature flags {0:#x}; upgrade sitepack")]
    Flags(u32),
    #[error("bundle is truncated or padded: header says {expected} bytes, file has {actual}")]
    Length { expected: u64, actual: u64 },
    #[error("index checksum mismatch: the bundle is corrupt")]
    Checksum,
    #[error("corrupt bundle: {0}")]
    Corrupt(String),
}

fn corrupt(msg: impl Into<String>) -> FormatError {
    FormatError::Corrupt(msg.into())
}

#[derive(Clone, Debug, Default)]
struct Sections {
    config: Range<usize>,
    strings: Range<usize>,
    assets: Range<usize>,
    blobs: Range<usize>,
    variants: Range<usize>,
    routes: Range<usize>,
    table: Range<usize>,
    slots: Range<usize>,
    headers_text: Range<usize>,
    redirects_text: Range<usize>,
    worker_first: Range<usize>,
    rules: Range<usize>,
    tokens: Range<usize>,
    redirect_rules: Range<usize>,
    header_rules: Range<usize>,
    header_ops: Range<usize>,
    rule_masks: Range<usize>,
}

/// The rule counts and root masks of RULES, validated and kept at open.
#[derive(Clone, Copy, Debug, Default)]
struct RuleIndex {
    static_redirects: u32,
    dynamic_redirects: u32,
    header_rules: u32,
    redirect_depths: u64,
    header_depths: u64,
    redirect_root: u128,
    header_root: u128,
}

/// A validated bundle.
pub struct Bundle<B> {
    data: B,
    s: Sections,
    seed: u64,
    slot_mask: usize,
    max_probes: u32,
    /// Blob bytes live in `[HEADER_LEN, index_start)`.
    index_start: usize,
    rules: RuleIndex,
    /// The whole STRINGS section is UTF-8 (what our writer produces), so a
    /// string reference is valid iff it is in bounds and both its ends fall
    /// on character boundaries: `open` then checks 700,000 references
    /// without decoding each one. (Atomic only so that `validate` can take
    /// `&self` and run beside the checksum thread.)
    strings_utf8: std::sync::atomic::AtomicBool,
}

/// Reads and checks the section table at the start of the index: every
/// section in bounds, inside the index, not overlapping another, each known
/// kind at most once, every required kind present.
fn parse_sections(
    bytes: &[u8],
    index: &Range<usize>,
    count: usize,
) -> Result<Sections, FormatError> {
    let index_bytes = &bytes[index.clone()];
    let table_len = count
        .checked_mul(std::mem::size_of::<SectionEntry>())
        .filter(|l| *l <= index_bytes.len())
        .ok_or_else(|| corrupt(format!("section count {count} does not fit the index")))?;
    let entries = <[SectionEntry]>::ref_from_bytes(&index_bytes[..table_len])
        .map_err(|_| corrupt("section table"))?;
    let mut s = Sections::default();
    let mut seen = 0u32;
    let mut spans: Vec<(usize, usize, u32)> = Vec::with_capacity(entries.len());
    for e in entries {
        let r = range(e.offset.get(), e.len.get(), bytes.len(), "section")?;
        if r.start < index.start + table_len || r.end > index.end {
            return Err(corrupt(format!(
                "section {} lies outside the index",
                e.kind.get()
            )));
        }
        let kind = e.kind.get();
        spans.push((r.start, r.end, kind));
        let slot = match kind {
            section::CONFIG => &mut s.config,
            section::STRINGS => &mut s.strings,
            section::ASSETS => &mut s.assets,
            section::BLOBS => &mut s.blobs,
            section::VARIANTS => &mut s.variants,
            section::ROUTES => &mut s.routes,
            section::TABLE => &mut s.table,
            section::SLOTS => &mut s.slots,
            section::HEADERS_TEXT => &mut s.headers_text,
            section::REDIRECTS_TEXT => &mut s.redirects_text,
            section::WORKER_FIRST => &mut s.worker_first,
            section::RULES => &mut s.rules,
            section::TOKENS => &mut s.tokens,
            section::REDIRECT_RULES => &mut s.redirect_rules,
            section::HEADER_RULES => &mut s.header_rules,
            section::HEADER_OPS => &mut s.header_ops,
            section::RULE_MASKS => &mut s.rule_masks,
            _ => continue,
        };
        if seen & (1 << kind) != 0 {
            return Err(corrupt(format!("section {kind} appears twice")));
        }
        seen |= 1 << kind;
        *slot = r;
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(corrupt(format!(
                "sections {} and {} overlap",
                pair[0].2, pair[1].2
            )));
        }
    }
    for kind in 1..=section::LAST {
        if seen & (1 << kind) == 0 {
            return Err(corrupt(format!("required section {kind} is missing")));
        }
    }

    Ok(s)
}

/// From this index size up, `open` hashes on a second thread while it
/// validates (below it a thread costs more than it saves).
const PARALLEL_OPEN_BYTES: usize = 4 << 20;

/// What validation derives for lookups.
struct TableParams {
    rules: RuleIndex,
    seed: u64,
    slot_mask: usize,
    max_probes: u32,
}

/// Which indexed rule set a rule-index lookup is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleSet {
    /// Dynamic `_redirects` rules.
    Redirects,
    /// `_headers` rules.
    Headers,
}

/// A `_redirects` rule as stored, with its strings and tokens resolved.
#[derive(Clone, Copy, Debug)]
pub struct RedirectRule<'a> {
    /// Index in REDIRECT_RULES.
    pub index: u32,
    pub dynamic: bool,
    /// Static: the exact raw pathname; dynamic: the pattern.
    pub from: &'a str,
    pub to: &'a str,
    pub status: u16,
    pub line: u32,
    /// The compiled `from` (no tokens for a static rule).
    pub pattern: PatternRef<'a, TokenRecord>,
}

/// A `_headers` rule as stored.
#[derive(Clone, Copy, Debug)]
pub struct HeaderRule<'a> {
    pub index: u32,
    pub pattern: PatternRef<'a, TokenRecord>,
    pub line: u32,
    ops: &'a [HeaderOpRecord],
}

impl HeaderRule<'_> {
    /// Number of ops (unsets, then sets).
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }
}

/// One asset, with its strings resolved.
#[derive(Clone, Copy, Debug)]
pub struct Asset<'a> {
    pub index: u32,
    pub path: &'a str,
    /// `None` when the type is unknown (the header is then omitted).
    pub content_type: Option<&'a str>,
    pub etag: [u8; 16],
    pub blob: u32,
}

/// One stored representation of an asset's content.
#[derive(Clone, Copy, Debug)]
pub struct Variant<'a> {
    /// `None` for identity.
    pub encoding: Option<u8>,
    pub bytes: &'a [u8],
    pub hash: &'a [u8; 32],
}

/// A route record with its strings resolved. Besides request paths, the
/// table holds the rule entries (`action::RULE_REDIRECT`, `RULE_ANCHOR`,
/// keys starting with a byte below `/`); for those, `asset` is the index of
/// a redirect rule or a rule mask, not an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub path: &'a str,
    pub action: u8,
    pub status: u16,
    pub asset: Option<u32>,
    pub location: &'a str,
    pub exact_asset: Option<u32>,
}

/// [`Route`] without its strings; see [`Bundle::route_entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub index: usize,
    pub action: u8,
    pub status: u16,
    pub asset: Option<u32>,
    pub exact_asset: Option<u32>,
}

fn opt_asset(v: u32) -> Option<u32> {
    (v != NO_ASSET).then_some(v)
}

impl<B: AsRef<[u8]>> Bundle<B> {
    /// Validates `data` as a bundle. O(index size); blob bytes are not read.
    pub fn open(data: B) -> Result<Self, FormatError> {
        let bytes = data.as_ref();
        let (header, _) = Header::read_from_prefix(bytes).map_err(|_| {
            if bytes.len() >= 8 && bytes[..8] != MAGIC {
                FormatError::BadMagic
            } else {
                corrupt(format!(
                    "file is {} bytes, shorter than the header",
                    bytes.len()
                ))
            }
        })?;
        if header.magic != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if header.version.get() != VERSION {
            return Err(FormatError::Version {
                found: header.version.get(),
            });
        }
        if header.flags.get() & !KNOWN_FLAGS != 0 {
            return Err(FormatError::Flags(header.flags.get()));
        }
        // The header is not covered by the index checksum: every field of it
        // is checked on its own, and reserved bytes must be zero.
        if header.reserved.get() != 0 {
            return Err(corrupt("header: reserved field is not zero"));
        }
        if header.file_len.get() != bytes.len() as u64 {
            return Err(FormatError::Length {
                expected: header.file_len.get(),
                actual: bytes.len() as u64,
            });
        }
        let index = range(
            header.index_offset.get(),
            header.index_len.get(),
            bytes.len(),
            "index",
        )?;
        if index.start < HEADER_LEN {
            return Err(corrupt("index overlaps the header"));
        }
        let index_bytes = &bytes[index.clone()];
        let checksum = header.index_checksum;

        let s = match parse_sections(bytes, &index, header.section_count.get() as usize) {
            Ok(s) => s,
            // A damaged index is reported as such, whatever part it hit.
            Err(_) if blake3::hash(index_bytes).as_bytes() != &checksum => {
                return Err(FormatError::Checksum);
            }
            Err(e) => return Err(e),
        };

        let mut b = Bundle {
            data,
            s,
            seed: 0,
            slot_mask: 0,
            max_probes: 0,
            index_start: index.start,
            rules: RuleIndex::default(),
            strings_utf8: false.into(),
        };
        // The checksum and the record checks are two independent reads of
        // the index: on a large one they run side by side, and the hash
        // itself is split over the rayon pool (BLAKE3 is a tree; the result
        // is the same hash), so `open` costs less than a one-thread checksum
        // of the index. The records are checked before the checksum is
        // known, which is safe: validation never trusts what it reads. A
        // checksum mismatch wins over any other error.
        let (sum, checked) = if index.len() >= PARALLEL_OPEN_BYTES {
            std::thread::scope(|s| {
                let data: &[u8] = b.data.as_ref();
                let range = index.clone();
                let hasher = s.spawn(move || {
                    data.get(range)
                        .map(|d| blake3::Hasher::new().update_rayon(d).finalize())
                });
                let checked = b.validate();
                (hasher.join().ok().flatten(), checked)
            })
        } else {
            let sum = b.data.as_ref().get(index.clone()).map(blake3::hash);
            (sum, b.validate())
        };
        if sum.as_ref().map(blake3::Hash::as_bytes) != Some(&checksum) {
            return Err(FormatError::Checksum);
        }
        let t = checked?;
        b.rules = t.rules;
        b.seed = t.seed;
        b.slot_mask = t.slot_mask;
        b.max_probes = t.max_probes;
        Ok(b)
    }

    /// Checks every record's references so lookups can trust them. O(index).
    fn validate(&self) -> Result<TableParams, FormatError> {
        use std::sync::atomic::Ordering::Relaxed;
        let utf8 = std::str::from_utf8(self.section(&self.s.strings)).is_ok();
        self.strings_utf8.store(utf8, Relaxed);
        let bytes = self.data.as_ref();
        let strings_len = self.s.strings.len();
        let check_str = |r: &StrRef, what: &str| -> Result<(), FormatError> {
            let end = r.offset.get() as u64 + r.len.get() as u64;
            if end > strings_len as u64 {
                return Err(corrupt(format!("{what}: string out of bounds")));
            }
            let start = self.s.strings.start + r.offset.get() as usize;
            std::str::from_utf8(&bytes[start..start + r.len.get() as usize])
                .map_err(|_| corrupt(format!("{what}: string is not UTF-8")))?;
            Ok(())
        };

        let cfg = self.config_record()?;
        HtmlHandling::from_code(cfg.html_handling)
            .ok_or_else(|| corrupt("config: unknown html_handling"))?;
        NotFoundHandling::from_code(cfg.not_found_handling)
            .ok_or_else(|| corrupt("config: unknown not_found_handling"))?;
        if cfg.run_worker_first > 2 {
            return Err(corrupt("config: unknown run_worker_first"));
        }
        if cfg.rule_files > 3 {
            return Err(corrupt("config: unknown rule_files bits"));
        }
        check_str(&cfg.compatibility_date, "config")?;
        check_str(&cfg.compatibility_flags, "config")?;
        for (name, r) in [
            ("_headers", &self.s.headers_text),
            ("_redirects", &self.s.redirects_text),
            ("run_worker_first", &self.s.worker_first),
        ] {
            std::str::from_utf8(&bytes[r.clone()])
                .map_err(|_| corrupt(format!("{name} text is not UTF-8")))?;
        }

        let blobs = self.blob_records()?;
        let variants = self.variant_records()?;
        let blob_area = HEADER_LEN as u64..self.index_start as u64;
        let in_area = |off: u64, len: u64| {
            off.checked_add(len)
                .is_some_and(|end| off >= blob_area.start && end <= blob_area.end)
        };
        for (i, b) in blobs.iter().enumerate() {
            if !in_area(b.offset.get(), b.len.get()) {
                return Err(corrupt(format!("blob {i}: bytes out of bounds")));
            }
            let end = b.variant_first.get() as u64 + b.variant_count.get() as u64;
            if end > variants.len() as u64 {
                return Err(corrupt(format!("blob {i}: variant range out of bounds")));
            }
        }
        for (i, v) in variants.iter().enumerate() {
            if !in_area(v.offset.get(), v.len.get()) || encoding::name(v.encoding).is_none() {
                return Err(corrupt(format!("variant {i}: bad encoding or bounds")));
            }
        }

        let assets = self.asset_records()?;
        let mut prev: Option<&[u8]> = None;
        for (i, a) in assets.iter().enumerate() {
            if !self.str_ok(&a.path) || !self.str_ok(&a.content_type) {
                check_str(&a.path, &format!("asset {i}"))?;
                check_str(&a.content_type, &format!("asset {i}"))?;
            }
            if a.blob.get() as usize >= blobs.len() {
                return Err(corrupt(format!("asset {i}: blob index out of bounds")));
            }
            let p = self.str_bytes(&a.path);
            if prev.is_some_and(|q| q >= p) {
                return Err(corrupt(format!("asset {i}: keys not sorted or duplicated")));
            }
            prev = Some(p);
        }

        let routes = self.route_records()?;
        let n_assets = assets.len() as u32;
        let rule_index = self.validate_rules(&check_str)?;
        let masks = self.mask_records()?;
        for (i, r) in routes.iter().enumerate() {
            if !self.str_ok(&r.path) || !self.str_ok(&r.location) {
                check_str(&r.path, &format!("route {i}"))?;
                check_str(&r.location, &format!("route {i}"))?;
            }
            let rule_entry = matches!(r.action, action::RULE_REDIRECT | action::RULE_ANCHOR);
            let assets_of_route = if rule_entry {
                &[r.exact_asset.get()][..]
            } else {
                &[r.asset.get(), r.exact_asset.get()][..]
            };
            for &a in assets_of_route {
                if a != NO_ASSET && a >= n_assets {
                    return Err(corrupt(format!("route {i}: asset index out of bounds")));
                }
            }
            let first = self.str_bytes(&r.path).first().copied();
            let ok = match r.action {
                action::NONE => true,
                action::SERVE => r.asset.get() != NO_ASSET,
                action::REDIRECT => r.location.len.get() > 0,
                action::RULE_REDIRECT => {
                    if r.asset.get() >= rule_index.static_redirects {
                        return Err(corrupt(format!(
                            "route {i}: static redirect rule index out of bounds"
                        )));
                    }
                    first == Some(key_prefix::STATIC_REDIRECT) && r.exact_asset.get() == NO_ASSET
                }
                action::RULE_ANCHOR => {
                    let count = match first {
                        Some(key_prefix::REDIRECT_ANCHOR) => rule_index.dynamic_redirects,
                        Some(key_prefix::HEADER_ANCHOR) => rule_index.header_rules,
                        _ => return Err(corrupt(format!("route {i}: bad rule anchor key"))),
                    };
                    let mask = masks.get(r.asset.get() as usize).ok_or_else(|| {
                        corrupt(format!("route {i}: rule mask index out of bounds"))
                    })?;
                    if !mask_fits(mask.get(), count) {
                        return Err(corrupt(format!(
                            "route {i}: rule mask names a rule past the end"
                        )));
                    }
                    r.exact_asset.get() == NO_ASSET
                }
                _ => false,
            };
            if !ok {
                return Err(corrupt(format!("route {i}: bad action")));
            }
        }

        let (table, _) = TableRecord::read_from_prefix(&bytes[self.s.table.clone()])
            .map_err(|_| corrupt("route table header"))?;
        let slot_count = table.slot_count.get();
        if !slot_count.is_power_of_two()
            || table.max_probes.get() == 0
            || table.max_probes.get() > slot_count.min(MAX_PROBES)
        {
            return Err(corrupt("route table: bad slot count or probe bound"));
        }
        let slots = self.slot_records()?;
        if slots.len() != slot_count as usize {
            return Err(corrupt("route table: slot count does not match"));
        }
        for s in slots {
            if s.route.get() as usize > routes.len() {
                return Err(corrupt("route table: slot points past the routes"));
            }
        }
        Ok(TableParams {
            rules: rule_index,
            seed: table.seed.get(),
            slot_mask: slot_count as usize - 1,
            max_probes: table.max_probes.get(),
        })
    }

    /// Checks RULES, TOKENS, REDIRECT_RULES, HEADER_RULES and HEADER_OPS:
    /// counts, contiguous token and op ranges, every token against its
    /// pattern, statuses, and every header op as the parser would accept it.
    /// O(size of those sections + the strings they name).
    fn validate_rules(
        &self,
        check_str: &dyn Fn(&StrRef, &str) -> Result<(), FormatError>,
    ) -> Result<RuleIndex, FormatError> {
        let rec = RulesRecord::read_from_bytes(self.section(&self.s.rules))
            .map_err(|_| corrupt("rules section size"))?;
        let redirects = self.redirect_records()?;
        let header_rules = self.header_records()?;
        let tokens = self.token_records()?;
        let ops = self.op_records()?;
        let idx = RuleIndex {
            static_redirects: rec.static_redirects.get(),
            dynamic_redirects: rec.dynamic_redirects.get(),
            header_rules: rec.header_rules.get(),
            redirect_depths: rec.redirect_depths.get(),
            header_depths: rec.header_depths.get(),
            redirect_root: rec.redirect_root.get(),
            header_root: rec.header_root.get(),
        };
        if u64::from(idx.static_redirects) + u64::from(idx.dynamic_redirects)
            != redirects.len() as u64
        {
            return Err(corrupt(format!(
                "rules: static_redirects {} + dynamic_redirects {} != {} redirect rules",
                idx.static_redirects,
                idx.dynamic_redirects,
                redirects.len()
            )));
        }
        if idx.header_rules as usize != header_rules.len() {
            return Err(corrupt(format!(
                "rules: header_rules {} != {} header rules",
                idx.header_rules,
                header_rules.len()
            )));
        }
        for (name, count, root, depths) in [
            (
                "redirect",
                idx.dynamic_redirects,
                idx.redirect_root,
                idx.redirect_depths,
            ),
            (
                "header",
                idx.header_rules,
                idx.header_root,
                idx.header_depths,
            ),
        ] {
            if count as usize > MAX_INDEXED_RULES {
                return Err(corrupt(format!(
                    "rules: {count} indexed {name} rules, at most {MAX_INDEXED_RULES}"
                )));
            }
            if !mask_fits(root, count) {
                return Err(corrupt(format!(
                    "rules: {name}_root names a rule past the end"
                )));
            }
            if depths & 0b11 != 0 {
                return Err(corrupt(format!("rules: {name}_depths has bit 0 or 1 set")));
            }
        }

        let mut next_token = 0u64;
        let mut take_tokens = |what: &dyn fmt::Display,
                               first: u32,
                               count: u16|
         -> Result<&[TokenRecord], FormatError> {
            if u64::from(first) != next_token {
                return Err(corrupt(format!(
                    "{what}: token_first {first}, expected {next_token}"
                )));
            }
            next_token += u64::from(count);
            tokens
                .get(first as usize..first as usize + count as usize)
                .ok_or_else(|| corrupt(format!("{what}: token range out of bounds")))
        };
        // Messages are only formatted for a rule at fault: open allocates
        // nothing per rule.
        for (i, r) in redirects.iter().enumerate() {
            let what = Lazy(|| format!("redirect rule {i}"));
            if !self.str_ok(&r.from) || !self.str_ok(&r.to) {
                check_str(&r.from, &what.get())?;
                check_str(&r.to, &what.get())?;
            }
            let dynamic = i >= idx.static_redirects as usize;
            let want = if dynamic {
                redirect_kind::DYNAMIC
            } else {
                redirect_kind::STATIC
            };
            if r.kind != want {
                return Err(corrupt(format!("{what}: kind {} out of place", r.kind)));
            }
            if !redirects::is_permitted_status(r.status.get()) {
                return Err(corrupt(format!(
                    "{what}: status {} is not a _redirects status",
                    r.status.get()
                )));
            }
            if r.to.len.get() == 0 || self.str_bytes(&r.from).first() != Some(&b'/') {
                return Err(corrupt(format!("{what}: empty target or bad from")));
            }
            let toks = take_tokens(&what, r.token_first.get(), r.token_count.get())?;
            if dynamic {
                check_pattern(&what, self.str(&r.from), toks, 0, r.capture_count)?;
            } else if !toks.is_empty() || r.capture_count != 0 {
                return Err(corrupt(format!("{what}: a static rule has tokens")));
            }
        }
        let mut next_op = 0u64;
        for (i, h) in header_rules.iter().enumerate() {
            let what = Lazy(|| format!("header rule {i}"));
            if !self.str_ok(&h.pattern) {
                check_str(&h.pattern, &what.get())?;
            }
            let toks = take_tokens(&what, h.token_first.get(), h.token_count.get())?;
            let host_tokens = h.host_tokens.get() as usize;
            let source = self.str(&h.pattern);
            let absolute = match h.absolute {
                0 => false,
                1 => true,
                _ => return Err(corrupt(format!("{what}: absolute is not 0 or 1"))),
            };
            if absolute != (host_tokens > 0) || absolute != source.starts_with("https://") {
                return Err(corrupt(format!(
                    "{what}: host_tokens and absolute disagree"
                )));
            }
            check_pattern(&what, source, toks, host_tokens, h.capture_count)?;
            if u64::from(h.op_first.get()) != next_op {
                return Err(corrupt(format!(
                    "{what}: op_first {}, expected {next_op}",
                    h.op_first.get()
                )));
            }
            next_op += u64::from(h.op_count.get());
            let rule_ops = ops
                .get(h.op_first.get() as usize..next_op as usize)
                .ok_or_else(|| corrupt(format!("{what}: op range out of bounds")))?;
            if rule_ops.is_empty() {
                return Err(corrupt(format!("{what}: no ops")));
            }
            for (j, o) in rule_ops.iter().enumerate() {
                let what = Lazy(|| format!("{} op {j}", what.get()));
                if !self.str_ok(&o.name) || !self.str_ok(&o.value) {
                    check_str(&o.name, &what.get())?;
                    check_str(&o.value, &what.get())?;
                }
                let op = op_of(o, self.str(&o.name), self.str(&o.value));
                // Unsets come first, as the parser keeps them apart.
                let in_order = j == 0 || o.op >= rule_ops[j - 1].op;
                let ok = in_order && op.is_some_and(headers::is_valid_op);
                if !ok {
                    return Err(corrupt(format!("{what}: bad op, header name or value")));
                }
            }
        }
        if next_token != tokens.len() as u64 {
            return Err(corrupt(format!(
                "tokens: {} records, the rules use {next_token}",
                tokens.len()
            )));
        }
        if next_op != ops.len() as u64 {
            return Err(corrupt(format!(
                "header ops: {} records, the rules use {next_op}",
                ops.len()
            )));
        }
        Ok(idx)
    }

    fn section(&self, r: &Range<usize>) -> &[u8] {
        self.data.as_ref().get(r.clone()).unwrap_or(&[])
    }

    fn records<T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
        &self,
        r: &Range<usize>,
        what: &str,
    ) -> Result<&[T], FormatError> {
        <[T]>::ref_from_bytes(self.section(r)).map_err(|_| {
            corrupt(format!(
                "{what} section size is not a whole number of records"
            ))
        })
    }

    fn config_record(&self) -> Result<ConfigRecord, FormatError> {
        ConfigRecord::read_from_bytes(self.section(&self.s.config))
            .map_err(|_| corrupt("config section size"))
    }
    fn asset_records(&self) -> Result<&[AssetRecord], FormatError> {
        self.records(&self.s.assets, "assets")
    }
    fn blob_records(&self) -> Result<&[BlobRecord], FormatError> {
        self.records(&self.s.blobs, "blobs")
    }
    fn variant_records(&self) -> Result<&[VariantRecord], FormatError> {
        self.records(&self.s.variants, "variants")
    }
    fn route_records(&self) -> Result<&[RouteRecord], FormatError> {
        self.records(&self.s.routes, "routes")
    }
    fn slot_records(&self) -> Result<&[SlotRecord], FormatError> {
        self.records(&self.s.slots, "slots")
    }
    fn token_records(&self) -> Result<&[TokenRecord], FormatError> {
        self.records(&self.s.tokens, "tokens")
    }
    fn redirect_records(&self) -> Result<&[RedirectRuleRecord], FormatError> {
        self.records(&self.s.redirect_rules, "redirect rules")
    }
    fn header_records(&self) -> Result<&[HeaderRuleRecord], FormatError> {
        self.records(&self.s.header_rules, "header rules")
    }
    fn op_records(&self) -> Result<&[HeaderOpRecord], FormatError> {
        self.records(&self.s.header_ops, "header ops")
    }
    fn mask_records(&self) -> Result<&[RuleMask], FormatError> {
        self.records(&self.s.rule_masks, "rule masks")
    }

    fn str_bytes(&self, r: &StrRef) -> &[u8] {
        let start = r.offset.get() as usize;
        self.section(&self.s.strings)
            .get(start..start.saturating_add(r.len.get() as usize))
            .unwrap_or(&[])
    }

    /// Whether `r` is in bounds and UTF-8 (what `check_str` tests, without
    /// a message).
    fn str_ok(&self, r: &StrRef) -> bool {
        let sec = self.section(&self.s.strings);
        let start = r.offset.get() as usize;
        let Some(end) = start.checked_add(r.len.get() as usize) else {
            return false;
        };
        if self.strings_utf8.load(std::sync::atomic::Ordering::Relaxed) {
            // A UTF-8 continuation byte is 0b10xx_xxxx, i.e. < -0x40 as i8.
            let boundary =
                |i: usize| i == sec.len() || sec.get(i).is_some_and(|&b| (b as i8) >= -0x40);
            end <= sec.len() && boundary(start) && boundary(end)
        } else {
            sec.get(start..end)
                .is_some_and(|b| std::str::from_utf8(b).is_ok())
        }
    }

    fn str(&self, r: &StrRef) -> &str {
        std::str::from_utf8(self.str_bytes(r)).unwrap_or("")
    }

    fn text(&self, r: &Range<usize>) -> Option<&str> {
        std::str::from_utf8(self.section(r)).ok()
    }

    fn rule_files(&self) -> u8 {
        self.config_record().map_or(0, |c| c.rule_files)
    }

    /// The bytes the bundle was opened over.
    pub fn bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// The store the bytes came from (the server slices its bodies out of
    /// it).
    pub fn data(&self) -> &B {
        &self.data
    }

    /// The compression policy id that made the variants (0: unknown).
    pub fn compression_policy(&self) -> u32 {
        self.config_record().map_or(0, |c| c.compression.get())
    }

    pub fn config(&self) -> Config {
        let c = self.config_record().ok();
        let flags = c.map(|c| self.str(&c.compatibility_flags)).unwrap_or("");
        Config {
            html_handling: c
                .and_then(|c| HtmlHandling::from_code(c.html_handling))
                .unwrap_or_default(),
            not_found_handling: c
                .and_then(|c| NotFoundHandling::from_code(c.not_found_handling))
                .unwrap_or_default(),
            run_worker_first: match c.map(|c| c.run_worker_first) {
                Some(1) => RunWorkerFirst::On,
                Some(2) => RunWorkerFirst::Patterns(
                    self.worker_first_patterns().map(str::to_string).collect(),
                ),
                _ => RunWorkerFirst::Off,
            },
            compatibility_date: c
                .map(|c| self.str(&c.compatibility_date).to_string())
                .unwrap_or_default(),
            compatibility_flags: flags
                .split('\n')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// `run_worker_first` patterns, in the order written.
    pub fn worker_first_patterns(&self) -> impl Iterator<Item = &str> {
        self.text(&self.s.worker_first)
            .unwrap_or("")
            .split('\n')
            .filter(|p| !p.is_empty())
    }

    /// The root `_headers` file as built, if the tree had one.
    pub fn headers_text(&self) -> Option<&str> {
        self.text(&self.s.headers_text)
            .filter(|_| self.rule_files() & 1 != 0)
    }

    /// The root `_redirects` file as built, if the tree had one.
    pub fn redirects_text(&self) -> Option<&str> {
        self.text(&self.s.redirects_text)
            .filter(|_| self.rule_files() & 2 != 0)
    }

    pub fn asset_count(&self) -> usize {
        self.asset_records().map(|a| a.len()).unwrap_or(0)
    }

    pub fn blob_count(&self) -> usize {
        self.blob_records().map(|a| a.len()).unwrap_or(0)
    }

    pub fn route_count(&self) -> usize {
        self.route_records().map(|a| a.len()).unwrap_or(0)
    }

    /// The longest probe sequence any lookup can take.
    pub fn max_probes(&self) -> u32 {
        self.max_probes
    }

    pub fn asset(&self, index: u32) -> Option<Asset<'_>> {
        let a = self.asset_records().ok()?.get(index as usize)?;
        let ct = self.str(&a.content_type);
        Some(Asset {
            index,
            path: self.str(&a.path),
            content_type: (!ct.is_empty()).then_some(ct),
            etag: a.etag,
            blob: a.blob.get(),
        })
    }

    pub fn assets(&self) -> impl Iterator<Item = Asset<'_>> {
        (0..self.asset_count() as u32).filter_map(|i| self.asset(i))
    }

    /// The asset whose manifest key is exactly `key`. Binary search, used by
    /// tools; the request path uses `route`.
    pub fn find_asset(&self, key: &str) -> Option<Asset<'_>> {
        let recs = self.asset_records().ok()?;
        let i = recs
            .binary_search_by(|a| self.str_bytes(&a.path).cmp(key.as_bytes()))
            .ok()?;
        self.asset(i as u32)
    }

    /// BLAKE3 of the identity bytes of a blob.
    pub fn blob_hash(&self, blob: u32) -> Option<&[u8; 32]> {
        Some(&self.blob_records().ok()?.get(blob as usize)?.hash)
    }

    /// The identity bytes of a blob.
    pub fn blob(&self, blob: u32) -> Option<&[u8]> {
        let b = self.blob_records().ok()?.get(blob as usize)?;
        self.slice(b.offset.get(), b.len.get())
    }

    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.as_ref().get(start..end)
    }

    /// The precompressed variants of a blob, in encoding-code order.
    pub fn variants(&self, blob: u32) -> impl Iterator<Item = Variant<'_>> {
        let recs: &[VariantRecord] = self
            .blob_records()
            .ok()
            .and_then(|b| b.get(blob as usize))
            .and_then(|b| {
                let first = b.variant_first.get() as usize;
                let end = first.checked_add(b.variant_count.get() as usize)?;
                self.variant_records().ok()?.get(first..end)
            })
            .unwrap_or(&[]);
        recs.iter().filter_map(|v| {
            Some(Variant {
                encoding: Some(v.encoding),
                bytes: self.slice(v.offset.get(), v.len.get())?,
                hash: &v.hash,
            })
        })
    }

    pub fn route_at(&self, index: usize) -> Option<Route<'_>> {
        let r = self.route_records().ok()?.get(index)?;
        Some(Route {
            path: self.str(&r.path),
            action: r.action,
            status: r.status.get(),
            asset: opt_asset(r.asset.get()),
            location: self.str(&r.location),
            exact_asset: opt_asset(r.exact_asset.get()),
        })
    }

    pub fn routes(&self) -> impl Iterator<Item = Route<'_>> {
        (0..self.route_count()).filter_map(|i| self.route_at(i))
    }

    /// A route's fixed fields, its strings left unread: what the request
    /// path needs (the location only for a redirect, via
    /// [`Bundle::route_location`]).
    #[inline]
    pub fn route_entry(&self, path: &str) -> Option<RouteEntry> {
        let (index, r) = self.route_key(path.as_bytes())?;
        Some(RouteEntry {
            index,
            action: r.action,
            status: r.status.get(),
            asset: opt_asset(r.asset.get()),
            exact_asset: opt_asset(r.exact_asset.get()),
        })
    }

    /// The stored `Location` of route `index` (empty if none).
    pub fn route_location(&self, index: usize) -> &str {
        self.route_records()
            .ok()
            .and_then(|r| r.get(index))
            .map_or("", |r| self.str(&r.location))
    }

    /// The route for a decoded request path: one hash, at most `max_probes`
    /// slots, one path comparison per candidate whose tag matches. No
    /// allocation.
    #[inline]
    pub fn route(&self, path: &str) -> Option<Route<'_>> {
        let (i, _) = self.route_key(path.as_bytes())?;
        self.route_at(i)
    }

    /// The route record keyed by exactly `key`, with its index.
    #[inline]
    fn route_key(&self, key: &[u8]) -> Option<(usize, &RouteRecord)> {
        let slots = self.slot_records().ok()?;
        let routes = self.route_records().ok()?;
        let hash = key_hash(key, self.seed);
        let (home, tag) = split_hash(hash, (self.slot_mask + 1) as u32);
        for probe in 0..self.max_probes as usize {
            let slot = slots.get((home + probe) & self.slot_mask)?;
            let idx = slot.route.get();
            if idx == 0 {
                return None;
            }
            if slot.tag.get() == tag {
                let rec = routes.get(idx as usize - 1)?;
                if self.str_bytes(&rec.path) == key {
                    return Some((idx as usize - 1, rec));
                }
            }
        }
        None
    }

    /// Number of static `_redirects` rules (REDIRECT_RULES `[0, n)`).
    pub fn static_redirect_count(&self) -> usize {
        self.rules.static_redirects as usize
    }

    /// Number of dynamic `_redirects` rules, after the static ones.
    pub fn dynamic_redirect_count(&self) -> usize {
        self.rules.dynamic_redirects as usize
    }

    /// Number of `_headers` rules.
    pub fn header_rule_count(&self) -> usize {
        self.rules.header_rules as usize
    }

    /// Redirect rule `index` of REDIRECT_RULES (statics first).
    pub fn redirect_rule(&self, index: usize) -> Option<RedirectRule<'_>> {
        let r = self.redirect_records().ok()?.get(index)?;
        let from = self.str(&r.from);
        let first = r.token_first.get() as usize;
        let tokens = self
            .token_records()
            .ok()?
            .get(first..first.checked_add(r.token_count.get() as usize)?)?;
        Some(RedirectRule {
            index: index as u32,
            dynamic: r.kind == redirect_kind::DYNAMIC,
            from,
            to: self.str(&r.to),
            status: r.status.get(),
            line: r.line.get(),
            pattern: PatternRef::new(from, tokens, 0, false, usize::from(r.capture_count)),
        })
    }

    /// The compiled `from` of redirect rule `index` alone (what the
    /// candidate loop matches; the rest is read only for the rule that
    /// matched).
    #[inline]
    pub fn redirect_pattern(&self, index: usize) -> Option<PatternRef<'_, TokenRecord>> {
        let r = self.redirect_records().ok()?.get(index)?;
        let first = r.token_first.get() as usize;
        let tokens = self
            .token_records()
            .ok()?
            .get(first..first.checked_add(r.token_count.get() as usize)?)?;
        Some(PatternRef::new(
            self.str(&r.from),
            tokens,
            0,
            false,
            usize::from(r.capture_count),
        ))
    }

    /// Header rule `index`, in evaluation order.
    pub fn header_rule(&self, index: usize) -> Option<HeaderRule<'_>> {
        let h = self.header_records().ok()?.get(index)?;
        let first = h.token_first.get() as usize;
        let tokens = self
            .token_records()
            .ok()?
            .get(first..first.checked_add(h.token_count.get() as usize)?)?;
        let op_first = h.op_first.get() as usize;
        let ops = self
            .op_records()
            .ok()?
            .get(op_first..op_first.checked_add(h.op_count.get() as usize)?)?;
        Some(HeaderRule {
            index: index as u32,
            pattern: PatternRef::new(
                self.str(&h.pattern),
                tokens,
                h.host_tokens.get() as usize,
                h.absolute == 1,
                usize::from(h.capture_count),
            ),
            line: h.line.get(),
            ops,
        })
    }

    /// The ops of a header rule of this bundle, in order (unsets first).
    pub fn header_rule_ops<'a>(
        &'a self,
        rule: &HeaderRule<'a>,
    ) -> impl Iterator<Item = HeaderOp<'a>> + 'a {
        rule.ops
            .iter()
            .filter_map(move |o| op_of(o, self.str(&o.name), self.str(&o.value)))
    }

    /// The static `_redirects` rule whose pathname is exactly `raw_path`: one
    /// probe of the route table for `\x01` + `raw_path`, built in `key`
    /// (which does not allocate once it holds `raw_path.len() + 1` bytes).
    /// No probe when the bundle has no static rule.
    #[inline]
    pub fn static_redirect(&self, raw_path: &str, key: &mut String) -> Option<u32> {
        if self.rules.static_redirects == 0 {
            return None;
        }
        key.clear();
        key.push(char::from(key_prefix::STATIC_REDIRECT));
        key.push_str(raw_path);
        let (_, r) = self.route_key(key.as_bytes())?;
        (r.action == action::RULE_REDIRECT).then(|| r.asset.get())
    }

    /// The rules of `set` that `raw_path` could match: those anchored at `/`,
    /// plus, for every anchor depth `d` the set uses, those whose anchor is
    /// `raw_path` up to its `d`th `/` (one table probe each). Every rule that
    /// matches is in the mask (its literal prefix, hence its anchor, starts
    /// the path); most that cannot are not. No allocation.
    #[inline]
    pub fn rule_candidates(&self, set: RuleSet, raw_path: &str) -> u128 {
        let (mut mask, depths, prefix) = match set {
            RuleSet::Redirects => (
                self.rules.redirect_root,
                self.rules.redirect_depths,
                key_prefix::REDIRECT_ANCHOR,
            ),
            RuleSet::Headers => (
                self.rules.header_root,
                self.rules.header_depths,
                key_prefix::HEADER_ANCHOR,
            ),
        };
        if depths == 0 {
            return mask;
        }
        let max_depth = 63 - depths.leading_zeros();
        let path = raw_path.as_bytes();
        let path = path.get(..MAX_ANCHOR_LEN).unwrap_or(path);
        let mut key = [0u8; 1 + MAX_ANCHOR_LEN];
        let mut copied = false;
        let mut depth = 0u32;
        for (i, &b) in path.iter().enumerate() {
            if b != b'/' {
                continue;
            }
            depth += 1;
            if depth > max_depth {
                break;
            }
            if depths & (1u64 << depth) == 0 {
                continue;
            }
            if !copied {
                key[0] = prefix;
                key[1..=path.len()].copy_from_slice(path);
                copied = true;
            }
            if let Some((_, r)) = self.route_key(&key[..i + 2]) {
                if r.action == action::RULE_ANCHOR {
                    let m = self
                        .mask_records()
                        .ok()
                        .and_then(|m| m.get(r.asset.get() as usize));
                    mask |= m.map_or(0, RuleMask::get);
                }
            }
        }
        mask
    }

    /// Re-hashes every blob and variant and checks that each variant decodes
    /// to its blob and each asset's ETag matches its bytes. O(bundle).
    pub fn verify(&self) -> Result<(), FormatError>
    where
        B: Sync,
    {
        self.check_blobs(true)?;
        self.check_etags()
    }

    /// Re-hashes every blob and variant against the hashes the index
    /// records: proof that the blob area holds the bytes the index was
    /// written for, at hashing speed (about a tenth of [`Bundle::verify`],
    /// which also decodes every variant). `build` runs this on the file it
    /// wrote before publishing it; the variants it compressed were decoded
    /// and compared as they were made (`encode::compress`), and those it
    /// took from `--reuse` are byte-identical (same hash) to ones the older
    /// build had decoded.
    pub fn verify_stored(&self) -> Result<(), FormatError>
    where
        B: Sync,
    {
        self.check_blobs(false)
    }

    fn check_blobs(&self, decode: bool) -> Result<(), FormatError>
    where
        B: Sync,
    {
        use rayon::prelude::*;
        // Blobs are checked in parallel on the rayon pool (a full verify
        // decodes every variant: seconds for a large site); the fault
        // reported is the first in index order, as a sequential pass would
        // find it.
        let blob = |i: u32| -> Result<(), FormatError> {
            let data = self
                .blob(i)
                .ok_or_else(|| corrupt(format!("blob {i}: out of bounds")))?;
            if Some(blake3::hash(data).as_bytes()) != self.blob_hash(i) {
                return Err(corrupt(format!("blob {i}: content hash mismatch")));
            }
            for v in self.variants(i) {
                if blake3::hash(v.bytes).as_bytes() != v.hash {
                    return Err(corrupt(format!("blob {i}: variant hash mismatch")));
                }
                if !decode {
                    continue;
                }
                crate::build::encode::check_decodes(v.encoding.unwrap_or(0), v.bytes, data)
                    .map_err(|e| corrupt(format!("blob {i}: {e}")))?;
            }
            Ok(())
        };
        (0..self.blob_count() as u32)
            .into_par_iter()
            .with_max_len(1)
            .map(blob)
            .find_first(Result::is_err)
            .unwrap_or(Ok(()))
    }

    fn check_etags(&self) -> Result<(), FormatError>
    where
        B: Sync,
    {
        use rayon::prelude::*;
        let asset = |i: u32| -> Result<(), FormatError> {
            let Some(a) = self.asset(i) else {
                return Ok(());
            };
            let data = self.blob(a.blob).unwrap_or(&[]);
            if crate::build::encode::etag_hash(data, a.path) != a.etag {
                return Err(corrupt(format!(
                    "asset {}: ETag does not match its bytes",
                    a.path
                )));
            }
            Ok(())
        };
        (0..self.asset_count() as u32)
            .into_par_iter()
            .map(asset)
            .find_first(Result::is_err)
            .unwrap_or(Ok(()))
    }
}

/// A message prefix formatted only when an error needs it.
struct Lazy<F>(F);

impl<F: Fn() -> String> Lazy<F> {
    fn get(&self) -> String {
        (self.0)()
    }
}

impl<F: Fn() -> String> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// Whether every bit of `mask` names one of `count` rules.
fn mask_fits(mask: u128, count: u32) -> bool {
    count >= 128 || mask >> count == 0
}

fn op_of<'a>(o: &HeaderOpRecord, name: &'a str, value: &'a str) -> Option<HeaderOp<'a>> {
    match o.op {
        header_op::UNSET if value.is_empty() => Some(HeaderOp::Unset(name)),
        header_op::SET => Some(HeaderOp::Set(name, value)),
        _ => None,
    }
}

/// Checks the tokens of one stored pattern against its source: known kinds,
/// offsets inside the source on character boundaries, each token's text
/// what its kind says, capture slots numbered in order, one splat at most.
fn check_pattern(
    what: &dyn fmt::Display,
    source: &str,
    toks: &[TokenRecord],
    host_tokens: usize,
    capture_count: u8,
) -> Result<(), FormatError> {
    if host_tokens > toks.len() {
        return Err(corrupt(format!("{what}: host_tokens past the tokens")));
    }
    let (mut captures, mut splats) = (0usize, 0usize);
    for (j, t) in toks.iter().enumerate() {
        let kind = TokenKind::from_code(t.kind)
            .ok_or_else(|| corrupt(format!("{what}: token {j}: unknown kind {}", t.kind)))?;
        let (s, e) = (t.start.get() as usize, t.end.get() as usize);
        let text = source.get(s..e).ok_or_else(|| {
            corrupt(format!(
                "{what}: token {j}: offsets {s}..{e} are not within the pattern ({} bytes)",
                source.len()
            ))
        })?;
        let sep = if j < host_tokens { '.' } else { '/' };
        let ok = match kind {
            TokenKind::Literal => !text.is_empty() && !text.contains(sep) && !text.contains('*'),
            TokenKind::Separator => text.len() == 1 && text.starts_with(sep),
            TokenKind::Placeholder => {
                let b = text.as_bytes();
                b.first().is_some_and(u8::is_ascii_alphabetic)
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    && s > 0
                    && source.as_bytes().get(s - 1) == Some(&b':')
            }
            TokenKind::Splat => {
                splats += 1;
                text == "*"
            }
        };
        if !ok {
            return Err(corrupt(format!(
                "{what}: token {j}: text {text:?} does not fit its kind"
            )));
        }
        if matches!(kind, TokenKind::Placeholder | TokenKind::Splat) {
            if usize::from(t.slot) != captures {
                return Err(corrupt(format!(
                    "{what}: token {j}: capture slot {}, expected {captures}",
                    t.slot
                )));
            }
            captures += 1;
        }
    }
    if splats > 1 {
        return Err(corrupt(format!("{what}: more than one splat")));
    }
    if toks.get(host_tokens).map(|t| t.kind) != Some(token_kind::SEPARATOR) {
        return Err(corrupt(format!(
            "{what}: the path part does not start with a separator token"
        )));
    }
    if captures > MAX_CAPTURES || captures != usize::from(capture_count) {
        return Err(corrupt(format!(
            "{what}: capture_count {capture_count}, the tokens have {captures}"
        )));
    }
    Ok(())
}

fn range(offset: u64, len: u64, total: usize, what: &str) -> Result<Range<usize>, FormatError> {
    let end = offset
        .checked_add(len)
        .filter(|e| *e <= total as u64)
        .ok_or_else(|| {
            corrupt(format!(
                "{what} at {offset}+{len} runs past the end of the file"
            ))
        })?;
    Ok(offset as usize..end as usize)
}
