//! `Bundle`: a validated view over bundle bytes, used in place.
//!
//! `open` costs O(index): it checks the header, the section table, the index
//! checksum and every record's references, and never touches blob bytes.
//! After that every accessor still uses checked slicing, so even a buffer that
//! changed after `open` yields errors, not panics. The library never maps
//! files itself; callers hand in any `AsRef<[u8]>` (a `Vec`, or an mmap).

use std::ops::Range;

use zerocopy::FromBytes;

use super::layout::*;
use crate::config::{Config, HtmlHandling, NotFoundHandling, RunWorkerFirst};

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

/// A route record with its strings resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub path: &'a str,
    pub action: u8,
    pub status: u16,
    pub asset: Option<u32>,
    pub location: &'a str,
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
        if blake3::hash(index_bytes).as_bytes() != &header.index_checksum {
            return Err(FormatError::Checksum);
        }

        let count = header.section_count.get() as usize;
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
        for kind in 1..=11u32 {
            if seen & (1 << kind) == 0 {
                return Err(corrupt(format!("required section {kind} is missing")));
            }
        }

        let mut b = Bundle {
            data,
            s,
            seed: 0,
            slot_mask: 0,
            max_probes: 0,
            index_start: index.start,
        };
        b.validate()?;
        Ok(b)
    }

    /// Checks every record's references so lookups can trust them. O(index).
    fn validate(&mut self) -> Result<(), FormatError> {
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
            check_str(&a.path, &format!("asset {i}"))?;
            check_str(&a.content_type, &format!("asset {i}"))?;
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
        for (i, r) in routes.iter().enumerate() {
            check_str(&r.path, &format!("route {i}"))?;
            check_str(&r.location, &format!("route {i}"))?;
            for a in [r.asset.get(), r.exact_asset.get()] {
                if a != NO_ASSET && a >= n_assets {
                    return Err(corrupt(format!("route {i}: asset index out of bounds")));
                }
            }
            let ok = match r.action {
                action::NONE => true,
                action::SERVE => r.asset.get() != NO_ASSET,
                action::REDIRECT => r.location.len.get() > 0,
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
            || table.max_probes.get() > slot_count
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
        self.seed = table.seed.get();
        self.slot_mask = slot_count as usize - 1;
        self.max_probes = table.max_probes.get();
        Ok(())
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

    fn str_bytes(&self, r: &StrRef) -> &[u8] {
        let start = r.offset.get() as usize;
        self.section(&self.s.strings)
            .get(start..start.saturating_add(r.len.get() as usize))
            .unwrap_or(&[])
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

    /// The route for a decoded request path: one hash, at most `max_probes`
    /// slots, one path comparison per candidate whose tag matches. No
    /// allocation.
    #[inline]
    pub fn route(&self, path: &str) -> Option<Route<'_>> {
        let slots = self.slot_records().ok()?;
        let routes = self.route_records().ok()?;
        let hash = key_hash(path.as_bytes(), self.seed);
        let (home, tag) = split_hash(hash, (self.slot_mask + 1) as u32);
        for probe in 0..self.max_probes as usize {
            let slot = slots.get((home + probe) & self.slot_mask)?;
            let idx = slot.route.get();
            if idx == 0 {
                return None;
            }
            if slot.tag.get() == tag {
                let rec = routes.get(idx as usize - 1)?;
                if self.str_bytes(&rec.path) == path.as_bytes() {
                    return self.route_at(idx as usize - 1);
                }
            }
        }
        None
    }

    /// Re-hashes every blob and variant and checks that each variant decodes
    /// to its blob and each asset's ETag matches its bytes. O(bundle).
    pub fn verify(&self) -> Result<(), FormatError> {
        for i in 0..self.blob_count() as u32 {
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
                let code = v.encoding.unwrap_or(0);
                let decoded = crate::build::encode::decode(code, v.bytes, data.len())
                    .map_err(|e| corrupt(format!("blob {i}: {e}")))?;
                if decoded != data {
                    return Err(corrupt(format!(
                        "blob {i}: {} variant does not decode to the content",
                        encoding::name(code).unwrap_or("?")
                    )));
                }
            }
        }
        for a in self.assets() {
            let data = self.blob(a.blob).unwrap_or(&[]);
            if crate::build::encode::etag_hash(data, a.path) != a.etag {
                return Err(corrupt(format!(
                    "asset {}: ETag does not match its bytes",
                    a.path
                )));
            }
        }
        Ok(())
    }
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
