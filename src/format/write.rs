//! Records + blobs → bundle bytes, and the atomic publish of those bytes.
//!
//! The writer streams blob bytes straight after the header, then appends the
//! index and finally patches the header (which carries the index checksum).
//! Nothing depends on timestamps, thread scheduling or hash-map order, so the
//! same spec always gives the same bytes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use super::layout::*;
use crate::config::Config;
use crate::rules::pattern::Pattern;

/// A route the bundle's table answers for (see `layout::RouteRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub path: String,
    pub action: u8,
    pub status: u16,
    pub asset: u32,
    /// Canonically encoded target for redirects, else empty.
    pub location: String,
    pub exact_asset: u32,
}

#[derive(Clone, Debug)]
pub struct AssetSpec {
    pub key: String,
    pub content_type: Option<String>,
    pub blob: u32,
    pub etag: [u8; 16],
}

#[derive(Clone, Debug)]
pub struct BlobSpec {
    pub data: Vec<u8>,
    pub hash: [u8; 32],
    /// `(encoding code, encoded bytes)`, in encoding-code order.
    pub variants: Vec<(u8, Vec<u8>)>,
}

/// Everything a bundle holds.
#[derive(Clone, Debug, Default)]
pub struct BundleSpec {
    pub config: Config,
    /// `ConfigRecord::compression`: the policy that made the variants, or 0.
    pub compression: u32,
    /// Sorted by key.
    pub assets: Vec<AssetSpec>,
    pub blobs: Vec<BlobSpec>,
    /// Any order; written sorted by path.
    pub routes: Vec<RouteSpec>,
    pub headers_text: Option<String>,
    pub redirects_text: Option<String>,
}

pub use super::layout::MAX_PROBES;

#[derive(Default)]
struct Strings {
    bytes: Vec<u8>,
    seen: HashMap<String, StrRef>,
}

impl Strings {
    /// Room for `n` distinct strings: a large site adds a few hundred
    /// thousand, and growing the map rehashes every one of them again.
    fn with_capacity(n: usize) -> Self {
        Strings {
            bytes: Vec::new(),
            seen: HashMap::with_capacity(n),
        }
    }

    fn add(&mut self, s: &str) -> io::Result<StrRef> {
        if s.is_empty() {
            return Ok(StrRef::default());
        }
        if let Some(r) = self.seen.get(s) {
            return Ok(*r);
        }
        let r = StrRef {
            offset: U32::new(u32_of(self.bytes.len())?),
            len: U32::new(u32_of(s.len())?),
        };
        self.bytes.extend_from_slice(s.as_bytes());
        self.seen.insert(s.to_string(), r);
        Ok(r)
    }
}

fn u32_of(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other("bundle too large: a count exceeds u32"))
}

/// Where a build's blobs go, one at a time in blob order: a
/// [`BundleWriter`] streams them to the output file; a `Vec<BlobSpec>` keeps
/// them (for [`write_bundle`] and tests).
pub trait BlobSink {
    /// Takes blob number N (its identity bytes, their BLAKE3 and the stored
    /// variants in encoding-code order) for the Nth call.
    fn blob(&mut self, data: &[u8], hash: &[u8; 32], variants: &[(u8, Vec<u8>)]) -> io::Result<()> {
        self.blob_hashed(data, hash, variants, &variant_hashes(variants))
    }

    /// [`blob`](Self::blob) with each variant's BLAKE3 already known
    /// (`variant_hashes[i]` of `variants[i]`): the build hashes variants on
    /// the worker that made or reused them, not on the one writer thread.
    fn blob_hashed(
        &mut self,
        data: &[u8],
        hash: &[u8; 32],
        variants: &[(u8, Vec<u8>)],
        variant_hashes: &[[u8; 32]],
    ) -> io::Result<()>;
}

/// The BLAKE3 of each variant, in order (what `VariantRecord::hash` holds).
pub fn variant_hashes(variants: &[(u8, Vec<u8>)]) -> Vec<[u8; 32]> {
    variants
        .iter()
        .map(|(_, bytes)| *blake3::hash(bytes).as_bytes())
        .collect()
}

impl BlobSink for Vec<BlobSpec> {
    fn blob_hashed(
        &mut self,
        data: &[u8],
        hash: &[u8; 32],
        variants: &[(u8, Vec<u8>)],
        _variant_hashes: &[[u8; 32]],
    ) -> io::Result<()> {
        self.push(BlobSpec {
            data: data.to_vec(),
            hash: *hash,
            variants: variants.to_vec(),
        });
        Ok(())
    }
}

/// Writes a bundle in one pass: blob bytes as they come (so a build holds
/// only the blobs in flight, not the site), then the index
/// ([`finish`](Self::finish)), then the header, which carries the index
/// checksum, patched at offset 0.
pub struct BundleWriter<W: Write + Seek> {
    w: BufWriter<W>,
    pos: u64,
    blob_records: Vec<BlobRecord>,
    variant_records: Vec<VariantRecord>,
}

impl<W: Write + Seek> BundleWriter<W> {
    /// Starts a bundle in `w`, which must be empty at offset 0.
    pub fn new(w: W) -> io::Result<Self> {
        let mut w = BufWriter::with_capacity(1 << 20, w);
        w.write_all(&[0u8; HEADER_LEN])?;
        Ok(BundleWriter {
            w,
            pos: HEADER_LEN as u64,
            blob_records: Vec::new(),
            variant_records: Vec::new(),
        })
    }

    /// Blobs written so far.
    pub fn blob_count(&self) -> usize {
        self.blob_records.len()
    }

    /// Writes the index for `spec` (everything but `spec.blobs`, which must
    /// be empty or the blobs already passed to [`BlobSink::blob`]) and the
    /// header.
    pub fn finish(self, spec: &BundleSpec) -> io::Result<()> {
        write_index(spec, self)
    }
}

impl<W: Write + Seek> BlobSink for BundleWriter<W> {
    fn blob_hashed(
        &mut self,
        data: &[u8],
        hash: &[u8; 32],
        variants: &[(u8, Vec<u8>)],
        variant_hashes: &[[u8; 32]],
    ) -> io::Result<()> {
        if variant_hashes.len() != variants.len() {
            return Err(io::Error::other("a variant hash for each variant"));
        }
        let offset = self.pos;
        self.w.write_all(data)?;
        self.pos += data.len() as u64;
        let first = u32_of(self.variant_records.len())?;
        for ((enc, bytes), vhash) in variants.iter().zip(variant_hashes) {
            self.variant_records.push(VariantRecord {
                encoding: *enc,
                reserved: [0; 7],
                offset: U64::new(self.pos),
                len: U64::new(bytes.len() as u64),
                hash: *vhash,
            });
            self.w.write_all(bytes)?;
            self.pos += bytes.len() as u64;
        }
        self.blob_records.push(BlobRecord {
            hash: *hash,
            offset: U64::new(offset),
            len: U64::new(data.len() as u64),
            variant_first: U32::new(first),
            variant_count: U32::new(u32_of(variants.len())?),
        });
        Ok(())
    }
}

/// Writes the bundle for `spec` to `w`, which must start empty at offset 0.
pub fn write_bundle<W: Write + Seek>(spec: &BundleSpec, w: W) -> io::Result<()> {
    let mut bw = BundleWriter::new(w)?;
    for blob in &spec.blobs {
        bw.blob(&blob.data, &blob.hash, &blob.variants)?;
    }
    bw.finish(spec)
}

fn write_index<W: Write + Seek>(spec: &BundleSpec, bw: BundleWriter<W>) -> io::Result<()> {
    let BundleWriter {
        mut w,
        pos,
        blob_records,
        variant_records,
    } = bw;
    let mut strings = Strings::with_capacity(spec.assets.len() + spec.routes.len());
    let cfg = &spec.config;
    let config = ConfigRecord {
        html_handling: cfg.html_handling.code(),
        not_found_handling: cfg.not_found_handling.code(),
        run_worker_first: cfg.run_worker_first.code(),
        rule_files: spec.headers_text.is_some() as u8 | (spec.redirects_text.is_some() as u8) << 1,
        compression: U32::new(spec.compression),
        compatibility_date: strings.add(&cfg.compatibility_date)?,
        compatibility_flags: strings.add(&cfg.compatibility_flags.join("\n"))?,
    };
    let mut assets = Vec::with_capacity(spec.assets.len());
    for a in &spec.assets {
        assets.push(AssetRecord {
            path: strings.add(&a.key)?,
            content_type: strings.add(a.content_type.as_deref().unwrap_or(""))?,
            blob: U32::new(a.blob),
            reserved: U32::new(0),
            etag: a.etag,
        });
    }
    let compiled = compile_rules(spec, &mut strings)?;
    let mut sorted: Vec<&RouteSpec> = spec.routes.iter().chain(&compiled.routes).collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut routes = Vec::with_capacity(sorted.len());
    for r in &sorted {
        routes.push(RouteRecord {
            path: strings.add(&r.path)?,
            location: strings.add(&r.location)?,
            action: r.action,
            reserved: 0,
            status: U16::new(r.status),
            asset: U32::new(r.asset),
            exact_asset: U32::new(r.exact_asset),
        });
    }
    let (table, slots) = build_table(&sorted)?;
    let worker_first = match &cfg.run_worker_first {
        crate::config::RunWorkerFirst::Patterns(p) => p.join("\n"),
        _ => String::new(),
    };

    let mut sections: Vec<(u32, Vec<u8>)> = vec![
        (section::CONFIG, config.as_bytes().to_vec()),
        (section::ASSETS, assets.as_bytes().to_vec()),
        (section::BLOBS, blob_records.as_bytes().to_vec()),
        (section::VARIANTS, variant_records.as_bytes().to_vec()),
        (section::ROUTES, routes.as_bytes().to_vec()),
        (section::TABLE, table.as_bytes().to_vec()),
        (section::SLOTS, slots.as_bytes().to_vec()),
        (
            section::HEADERS_TEXT,
            spec.headers_text.clone().unwrap_or_default().into_bytes(),
        ),
        (
            section::REDIRECTS_TEXT,
            spec.redirects_text.clone().unwrap_or_default().into_bytes(),
        ),
        (section::WORKER_FIRST, worker_first.into_bytes()),
        (section::RULES, compiled.rules.as_bytes().to_vec()),
        (section::TOKENS, compiled.tokens.as_bytes().to_vec()),
        (
            section::REDIRECT_RULES,
            compiled.redirects.as_bytes().to_vec(),
        ),
        (section::HEADER_RULES, compiled.headers.as_bytes().to_vec()),
        (section::HEADER_OPS, compiled.ops.as_bytes().to_vec()),
        (section::RULE_MASKS, compiled.masks.as_bytes().to_vec()),
    ];
    sections.push((section::STRINGS, std::mem::take(&mut strings.bytes)));

    let index_offset = pos;
    let table_len = sections.len() * std::mem::size_of::<SectionEntry>();
    let mut index = Vec::new();
    let mut at = index_offset + table_len as u64;
    for (kind, bytes) in &sections {
        let entry = SectionEntry {
            kind: U32::new(*kind),
            reserved: U32::new(0),
            offset: U64::new(at),
            len: U64::new(bytes.len() as u64),
        };
        index.extend_from_slice(entry.as_bytes());
        at += bytes.len() as u64;
    }
    for (_, bytes) in &sections {
        index.extend_from_slice(bytes);
    }
    w.write_all(&index)?;
    let file_len = index_offset + index.len() as u64;

    let header = Header {
        magic: MAGIC,
        version: U32::new(VERSION),
        flags: U32::new(0),
        file_len: U64::new(file_len),
        index_offset: U64::new(index_offset),
        index_len: U64::new(index.len() as u64),
        section_count: U32::new(u32_of(sections.len())?),
        reserved: U32::new(0),
        index_checksum: *blake3::hash(&index).as_bytes(),
    };
    w.seek(SeekFrom::Start(0))?;
    w.write_all(header.as_bytes())?;
    w.flush()?;
    Ok(())
}

/// The `_headers` and `_redirects` rules as bundle records (docs/FORMAT.md,
/// "Compiled rules"), plus the route-table entries that index them.
struct CompiledRules {
    rules: RulesRecord,
    tokens: Vec<TokenRecord>,
    redirects: Vec<RedirectRuleRecord>,
    headers: Vec<HeaderRuleRecord>,
    ops: Vec<HeaderOpRecord>,
    masks: Vec<RuleMask>,
    routes: Vec<RouteSpec>,
}

/// Parses the rule files of `spec` (exactly as the build's warnings and the
/// in-memory evaluators do) and lays the result out as records.
fn compile_rules(spec: &BundleSpec, strings: &mut Strings) -> io::Result<CompiledRules> {
    use crate::rules::{headers, redirects};
    let (redirect_rules, _) = redirects::parse(
        spec.redirects_text.as_deref().unwrap_or(""),
        spec.config.html_handling,
    );
    let (header_rules, _) = headers::parse(spec.headers_text.as_deref().unwrap_or(""));
    let statics = redirect_rules.static_rules();
    let dynamics = redirect_rules.dynamic_rules();
    let hrules = header_rules.rules();
    if dynamics.len() > MAX_INDEXED_RULES || hrules.len() > MAX_INDEXED_RULES {
        return Err(io::Error::other(format!(
            "more than {MAX_INDEXED_RULES} dynamic redirects or header rules"
        )));
    }

    let mut out = CompiledRules {
        rules: RulesRecord {
            static_redirects: U32::new(u32_of(statics.len())?),
            dynamic_redirects: U32::new(u32_of(dynamics.len())?),
            header_rules: U32::new(u32_of(hrules.len())?),
            reserved: U32::new(0),
            redirect_depths: U64::new(0),
            header_depths: U64::new(0),
            redirect_root: RuleMask::default(),
            header_root: RuleMask::default(),
        },
        tokens: Vec::new(),
        redirects: Vec::with_capacity(statics.len() + dynamics.len()),
        headers: Vec::with_capacity(hrules.len()),
        ops: Vec::new(),
        masks: Vec::new(),
        routes: Vec::with_capacity(statics.len()),
    };
    let push_tokens = |tokens: &mut Vec<TokenRecord>, p: &Pattern| -> io::Result<(U32, U16)> {
        let first = U32::new(u32_of(tokens.len())?);
        let count = u16::try_from(p.tokens().len())
            .map_err(|_| io::Error::other("a rule pattern has more than 65535 tokens"))?;
        tokens.extend(p.tokens().iter().map(|t| TokenRecord {
            kind: t.kind.code(),
            slot: t.slot,
            reserved: U16::new(0),
            start: U32::new(t.start),
            end: U32::new(t.end),
        }));
        Ok((first, U16::new(count)))
    };

    for (i, (from, r)) in statics.iter().enumerate() {
        out.redirects.push(RedirectRuleRecord {
            from: strings.add(from)?,
            to: strings.add(&r.to)?,
            token_first: U32::new(u32_of(out.tokens.len())?),
            token_count: U16::new(0),
            status: U16::new(r.status),
            kind: redirect_kind::STATIC,
            capture_count: 0,
            reserved: U16::new(0),
            line: U32::new(u32_of(r.line)?),
        });
        let mut key = String::with_capacity(from.len() + 1);
        key.push(char::from(key_prefix::STATIC_REDIRECT));
        key.push_str(from);
        out.routes.push(RouteSpec {
            path: key,
            action: action::RULE_REDIRECT,
            status: 0,
            asset: u32_of(i)?,
            location: String::new(),
            exact_asset: NO_ASSET,
        });
    }
    // (key prefix, anchor) -> rules; BTreeMap keeps the mask order stable.
    let mut anchors: std::collections::BTreeMap<(u8, String), u128> = Default::default();
    let mut index_rule = |set: u8, root: &mut u128, depths: &mut u64, i: usize, p: &Pattern| {
        let (anchor, depth) = anchor_of(p.view().path_literal_prefix());
        if depth <= 1 {
            *root |= 1u128 << i;
        } else {
            *depths |= 1u64 << depth;
            *anchors.entry((set, anchor.to_string())).or_default() |= 1u128 << i;
        }
    };
    let (mut redirect_root, mut redirect_depths) = (0u128, 0u64);
    for (i, d) in dynamics.iter().enumerate() {
        let (token_first, token_count) = push_tokens(&mut out.tokens, &d.pattern)?;
        out.redirects.push(RedirectRuleRecord {
            from: strings.add(d.pattern.source())?,
            to: strings.add(&d.redirect.to)?,
            token_first,
            token_count,
            status: U16::new(d.redirect.status),
            kind: redirect_kind::DYNAMIC,
            capture_count: d.pattern.capture_count() as u8,
            reserved: U16::new(0),
            line: U32::new(u32_of(d.redirect.line)?),
        });
        index_rule(
            key_prefix::REDIRECT_ANCHOR,
            &mut redirect_root,
            &mut redirect_depths,
            i,
            &d.pattern,
        );
    }
    let (mut header_root, mut header_depths) = (0u128, 0u64);
    for (i, h) in hrules.iter().enumerate() {
        let (token_first, token_count) = push_tokens(&mut out.tokens, &h.pattern)?;
        let op_first = U32::new(u32_of(out.ops.len())?);
        for name in &h.unset {
            out.ops.push(HeaderOpRecord {
                name: strings.add(name)?,
                value: StrRef::default(),
                op: header_op::UNSET,
                reserved: [0; 3],
            });
        }
        for (name, value) in &h.set {
            out.ops.push(HeaderOpRecord {
                name: strings.add(name)?,
                value: strings.add(value)?,
                op: header_op::SET,
                reserved: [0; 3],
            });
        }
        out.headers.push(HeaderRuleRecord {
            pattern: strings.add(h.pattern.source())?,
            token_first,
            token_count,
            host_tokens: U16::new(
                u16::try_from(h.pattern.host_token_count())
                    .map_err(|_| io::Error::other("a rule host has more than 65535 tokens"))?,
            ),
            op_first,
            op_count: U32::new(u32_of(out.ops.len())? - op_first.get()),
            absolute: h.pattern.is_absolute() as u8,
            capture_count: h.pattern.capture_count() as u8,
            reserved: U16::new(0),
            line: U32::new(u32_of(h.line)?),
        });
        index_rule(
            key_prefix::HEADER_ANCHOR,
            &mut header_root,
            &mut header_depths,
            i,
            &h.pattern,
        );
    }
    out.rules.redirect_root = RuleMask::new(redirect_root);
    out.rules.redirect_depths = U64::new(redirect_depths);
    out.rules.header_root = RuleMask::new(header_root);
    out.rules.header_depths = U64::new(header_depths);
    for ((set, anchor), mask) in anchors {
        let mut key = String::with_capacity(anchor.len() + 1);
        key.push(char::from(set));
        key.push_str(&anchor);
        out.routes.push(RouteSpec {
            path: key,
            action: action::RULE_ANCHOR,
            status: 0,
            asset: u32_of(out.masks.len())?,
            location: String::new(),
            exact_asset: NO_ASSET,
        });
        out.masks.push(RuleMask::new(mask));
    }
    Ok(out)
}

/// The anchor of a pattern whose path part starts with `literal` (its
/// literal prefix): the longest prefix of it that ends in `/`, is at most
/// `MAX_ANCHOR_LEN` bytes and holds at most `MAX_ANCHOR_DEPTH` slashes; and
/// its depth (number of slashes). Any path the pattern matches starts with
/// the anchor.
pub fn anchor_of(literal: &str) -> (&str, u32) {
    let (mut end, mut depth) = (0, 0);
    for (i, b) in literal.bytes().enumerate().take(MAX_ANCHOR_LEN) {
        if b == b'/' {
            if depth == MAX_ANCHOR_DEPTH {
                break;
            }
            depth += 1;
            end = i + 1;
        }
    }
    (literal.get(..end).unwrap_or(""), depth)
}

/// Builds the open-addressing table: linear probing, load factor ≤ 1/2, and a
/// seed search so the longest probe sequence stays within `MAX_PROBES`.
fn build_table(routes: &[&RouteSpec]) -> io::Result<(TableRecord, Vec<SlotRecord>)> {
    let n = routes.len().max(1);
    let mut slot_count = (n * 2).next_power_of_two().max(8);
    loop {
        for seed in 0..16u64 {
            if let Some((slots, max)) = try_table(routes, slot_count, seed)? {
                let table = TableRecord {
                    seed: U64::new(seed),
                    slot_count: U32::new(u32_of(slot_count)?),
                    max_probes: U32::new(max),
                };
                return Ok((table, slots));
            }
        }
        slot_count = slot_count
            .checked_mul(2)
            .filter(|s| *s <= u32::MAX as usize / 2)
            .ok_or_else(|| io::Error::other("route table cannot be built within bounds"))?;
    }
}

fn try_table(
    routes: &[&RouteSpec],
    slot_count: usize,
    seed: u64,
) -> io::Result<Option<(Vec<SlotRecord>, u32)>> {
    let empty = SlotRecord {
        tag: U32::new(0),
        route: U32::new(0),
    };
    let mut slots = vec![empty; slot_count];
    let mut max = 1u32;
    for (i, r) in routes.iter().enumerate() {
        let (home, tag) = split_hash(key_hash(r.path.as_bytes(), seed), slot_count as u32);
        let mut probe = 0u32;
        loop {
            let s = &mut slots[(home + probe as usize) & (slot_count - 1)];
            if s.route.get() == 0 {
                s.tag = U32::new(tag);
                s.route = U32::new(u32_of(i + 1)?);
                break;
            }
            probe += 1;
            if probe >= MAX_PROBES {
                return Ok(None);
            }
        }
        max = max.max(probe + 1);
    }
    Ok(Some((slots, max)))
}

/// The prefix of temp files written next to `name` (and removed when stale).
pub fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Writes `spec` to `out` atomically (see [`publish_with`]).
pub fn publish(
    spec: &BundleSpec,
    out: &Path,
    check: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), PublishError> {
    publish_with(
        out,
        |file, path| {
            write_bundle(spec, file).map_err(|e| PublishError::io(path, "cannot write", e))
        },
        check,
    )
}

/// Publishes what `write` puts in a fresh temp file in `out`'s directory:
/// fsync and `check` on the written file (side by side), rename over
/// `out`, fsync the directory. On any error, `write`'s included, the
/// previous file at `out` is untouched and the temp file is removed.
pub fn publish_with<T, E: From<PublishError>>(
    out: &Path,
    write: impl FnOnce(&mut File, &Path) -> Result<T, E>,
    check: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<T, E> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| PublishError::new(out, "output path has no UTF-8 file name"))?
        .to_string();
    preflight(out, &dir)?;
    remove_stale_temps(&dir, &name);

    // 0666 less the umask, like any file a build tool writes: a server
    // running as another user must be able to read the bundle.
    let mut tmp = loop {
        let tmp = tempfile::Builder::new()
            .prefix(&temp_prefix(&name))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&dir)
            .map_err(|e| PublishError::io(&dir, "cannot create a temp file in", e))?;
        tmp.as_file()
            .lock()
            .map_err(|e| PublishError::io(tmp.path(), "cannot lock", e))?;
        // Another build's sweep of stale temp files may have taken ours in
        // the instant before the lock: then it is gone from the directory,
        // and a fresh one is made.
        if same_inode(tmp.path(), tmp.as_file()) {
            break tmp;
        }
    };
    let tmp_path = tmp.path().to_path_buf();
    let value = write(tmp.as_file_mut(), &tmp_path)?;
    // The check reads the written bytes back from the page cache while the
    // kernel writes them to disk: neither needs the other, and both must
    // succeed before the rename (on a large site each is a sixth of an
    // incremental build).
    let file = tmp.as_file();
    let (synced, checked) = std::thread::scope(|s| {
        let sync = s.spawn(|| file.sync_all());
        let checked = check(&tmp_path);
        let synced = sync
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (synced, checked)
    });
    synced.map_err(|e| PublishError::io(&tmp_path, "cannot write", e))?;
    checked.map_err(|m| PublishError::new(&tmp_path, &m))?;
    tmp.persist(out)
        .map_err(|e| PublishError::io(out, "cannot rename the temp file to", e.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PublishError::io(&dir, "cannot fsync", e))?;
    Ok(value)
}

fn same_inode(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Fails before any work when the output cannot be published (BT-56, BT-61).
pub fn preflight(out: &Path, dir: &Path) -> Result<(), PublishError> {
    let meta = fs::metadata(dir).map_err(|e| PublishError::io(dir, "output directory", e))?;
    if !meta.is_dir() {
        return Err(PublishError::new(
            dir,
            "output directory is not a directory",
        ));
    }
    // Probe with a real (immediately removed) temp file: the only check that
    // holds for ACLs, read-only mounts and root alike.
    tempfile::Builder::new()
        .prefix(".sitepack-probe.tmp-")
        .tempfile_in(dir)
        .map_err(|e| PublishError::io(dir, "output directory is not writable", e))?;
    if let Ok(m) = fs::symlink_metadata(out) {
        if m.file_type().is_symlink() {
            return Err(PublishError::new(
                out,
                "output path is a symlink; a rename would replace the link, not its target",
            ));
        }
        if m.is_dir() {
            return Err(PublishError::new(out, "output path is a directory"));
        }
    }
    Ok(())
}

/// Temp files of an earlier run that was killed (BT-58). Best effort: a
/// concurrent build's temp file may also go, and that build then fails
/// cleanly at its rename.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if !e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                continue;
            }
            // A live build holds the lock on its temp file until it is
            // renamed (`publish_with`); the kernel drops the lock of a
            // killed one. Only an unlocked temp file is stale (BT-59: two
            // builds to one output must not delete each other's).
            if let Ok(f) = File::open(e.path()) {
                if f.try_lock().is_ok() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PublishError {
    pub path: String,
    pub message: String,
}

impl PublishError {
    fn new(path: &Path, message: &str) -> Self {
        PublishError {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
    pub fn io(path: &Path, what: &str, e: io::Error) -> Self {
        PublishError {
            path: path.display().to_string(),
            message: format!("{what}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer records the variant hashes it is given, one per variant,
    /// and refuses a call whose counts differ.
    #[test]
    fn blob_hashed_takes_one_hash_per_variant() {
        let mut w = BundleWriter::new(io::Cursor::new(Vec::new())).unwrap();
        let data = b"hello hello hello";
        let hash = *blake3::hash(data).as_bytes();
        let variants = vec![(1u8, b"v1".to_vec()), (2u8, b"v2".to_vec())];
        let e = w
            .blob_hashed(data, &hash, &variants, &[[7; 32]])
            .unwrap_err();
        assert!(e.to_string().contains("variant hash"), "{e}");
        w.blob_hashed(data, &hash, &variants, &[[7; 32], [9; 32]])
            .unwrap();
        let hashes: Vec<[u8; 32]> = w.variant_records.iter().map(|v| v.hash).collect();
        assert_eq!(hashes, vec![[7; 32], [9; 32]]);
        // The default `blob` hashes the bytes itself.
        w.blob(data, &hash, &variants).unwrap();
        assert_eq!(w.variant_records[2].hash, *blake3::hash(b"v1").as_bytes());
    }
}
