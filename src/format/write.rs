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
    /// Sorted by key.
    pub assets: Vec<AssetSpec>,
    pub blobs: Vec<BlobSpec>,
    /// Any order; written sorted by path.
    pub routes: Vec<RouteSpec>,
    pub headers_text: Option<String>,
    pub redirects_text: Option<String>,
}

/// Lookups stop after at most this many slots. The builder searches seeds,
/// then doubles the table, until every key sits within the bound.
pub const MAX_PROBES: u32 = 16;

#[derive(Default)]
struct Strings {
    bytes: Vec<u8>,
    seen: HashMap<String, StrRef>,
}

impl Strings {
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

/// Writes the bundle for `spec` to `w`, which must start empty at offset 0.
pub fn write_bundle<W: Write + Seek>(spec: &BundleSpec, w: W) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, w);
    w.write_all(&[0u8; HEADER_LEN])?;
    let mut pos = HEADER_LEN as u64;

    let mut blob_records = Vec::with_capacity(spec.blobs.len());
    let mut variant_records = Vec::new();
    for blob in &spec.blobs {
        let offset = pos;
        w.write_all(&blob.data)?;
        pos += blob.data.len() as u64;
        let first = u32_of(variant_records.len())?;
        for (enc, bytes) in &blob.variants {
            variant_records.push(VariantRecord {
                encoding: *enc,
                reserved: [0; 7],
                offset: U64::new(pos),
                len: U64::new(bytes.len() as u64),
                hash: *blake3::hash(bytes).as_bytes(),
            });
            w.write_all(bytes)?;
            pos += bytes.len() as u64;
        }
        blob_records.push(BlobRecord {
            hash: blob.hash,
            offset: U64::new(offset),
            len: U64::new(blob.data.len() as u64),
            variant_first: U32::new(first),
            variant_count: U32::new(u32_of(blob.variants.len())?),
        });
    }

    let mut strings = Strings::default();
    let cfg = &spec.config;
    let config = ConfigRecord {
        html_handling: cfg.html_handling.code(),
        not_found_handling: cfg.not_found_handling.code(),
        run_worker_first: cfg.run_worker_first.code(),
        rule_files: spec.headers_text.is_some() as u8 | (spec.redirects_text.is_some() as u8) << 1,
        reserved1: U32::new(0),
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
    let mut sorted: Vec<&RouteSpec> = spec.routes.iter().collect();
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

/// Writes `spec` to `out` atomically: temp file in the same directory, fsync,
/// `check` on the written file, rename over `out`, fsync the directory. On
/// any error the previous file at `out` is untouched and the temp file is
/// removed.
pub fn publish(
    spec: &BundleSpec,
    out: &Path,
    check: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), PublishError> {
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
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(&name))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&dir)
        .map_err(|e| PublishError::io(&dir, "cannot create a temp file in", e))?;
    write_bundle(spec, tmp.as_file_mut())
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| PublishError::io(tmp.path(), "cannot write", e))?;
    check(tmp.path()).map_err(|m| PublishError::new(tmp.path(), &m))?;
    tmp.persist(out)
        .map_err(|e| PublishError::io(out, "cannot rename the temp file to", e.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PublishError::io(&dir, "cannot fsync", e))?;
    Ok(())
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
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                let _ = fs::remove_file(e.path());
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
    fn io(path: &Path, what: &str, e: io::Error) -> Self {
        PublishError {
            path: path.display().to_string(),
            message: format!("{what}: {e}"),
        }
    }
}
