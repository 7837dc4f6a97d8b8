//! The on-disk records of bundle format v1: `docs/FORMAT.md` in code.
//!
//! Every record is a little-endian, unaligned `zerocopy` struct, so a slice of
//! a mapped file is reinterpreted in place with no copy and no alignment
//! requirement. Offsets inside a section are relative to that section; blob
//! offsets are absolute file offsets.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const MAGIC: [u8; 8] = *b"SITEPACK";
pub const VERSION: u32 = 1;
/// Bits of `Header::flags` this reader understands; any other bit set means a
/// newer writer relied on a feature we lack, so the bundle is refused.
pub const KNOWN_FLAGS: u32 = 0;

/// Section kinds. A reader refuses a bundle that lacks a required section and
/// ignores kinds it does not know (they are covered by the checksum anyway).
pub mod section {
    pub const CONFIG: u32 = 1;
    pub const STRINGS: u32 = 2;
    pub const ASSETS: u32 = 3;
    pub const BLOBS: u32 = 4;
    pub const VARIANTS: u32 = 5;
    pub const ROUTES: u32 = 6;
    pub const TABLE: u32 = 7;
    pub const SLOTS: u32 = 8;
    pub const HEADERS_TEXT: u32 = 9;
    pub const REDIRECTS_TEXT: u32 = 10;
    pub const WORKER_FIRST: u32 = 11;
}

/// Content codings of stored variants. Identity is the blob itself.
pub mod encoding {
    pub const GZIP: u8 = 1;
    pub const BR: u8 = 2;
    pub const ZSTD: u8 = 3;

    pub fn name(code: u8) -> Option<&'static str> {
        match code {
            GZIP => Some("gzip"),
            BR => Some("br"),
            ZSTD => Some("zstd"),
            _ => None,
        }
    }
}

/// What a route entry does with a request whose decoded path equals its key.
pub mod action {
    /// html_handling resolves nothing here; the entry exists only because an
    /// asset sits at exactly this key (used by the 404-page walk).
    pub const NONE: u8 = 0;
    /// Serve `RouteRecord::asset` with `RouteRecord::status`.
    pub const SERVE: u8 = 1;
    /// 307 to `RouteRecord::location` (canonically encoded, no query).
    pub const REDIRECT: u8 = 2;
}

/// Sentinel for "no asset" in `u32` asset references.
pub const NO_ASSET: u32 = u32::MAX;

/// The first bytes of every bundle.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: U32,
    pub flags: U32,
    /// Total file length; a truncated copy is caught before anything else.
    pub file_len: U64,
    /// Where the index (section table + every section but blob bytes) starts.
    pub index_offset: U64,
    pub index_len: U64,
    pub section_count: U32,
    pub reserved: U32,
    /// BLAKE3 of the index bytes `[index_offset, index_offset + index_len)`.
    pub index_checksum: [u8; 32],
}

pub const HEADER_LEN: usize = core::mem::size_of::<Header>();

/// One row of the section table, which opens the index.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SectionEntry {
    pub kind: U32,
    pub reserved: U32,
    /// Absolute file offset.
    pub offset: U64,
    pub len: U64,
}

/// A byte range of the STRINGS section.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct StrRef {
    pub offset: U32,
    pub len: U32,
}

/// The routing configuration the bundle was built with.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ConfigRecord {
    pub html_handling: u8,
    pub not_found_handling: u8,
    /// 0 false, 1 true, 2 pattern list (section WORKER_FIRST).
    pub run_worker_first: u8,
    /// Bit 0: the tree had a root `_headers`; bit 1: a root `_redirects`
    /// (so an empty file is told apart from no file).
    pub rule_files: u8,
    pub reserved1: U32,
    /// `YYYY-MM-DD`, or empty.
    pub compatibility_date: StrRef,
    /// Compatibility flags joined with `\n`, or empty.
    pub compatibility_flags: StrRef,
}

/// One served file.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct AssetRecord {
    /// Manifest key: `/` + relative path, raw UTF-8. Assets are sorted by it.
    pub path: StrRef,
    /// Empty when the extension has no known type (Cloudflare omits the header).
    pub content_type: StrRef,
    pub blob: U32,
    pub reserved: U32,
    /// Cloudflare's production content hash (spec §8.2): the ETag token.
    pub etag: [u8; 16],
}

/// One distinct content, stored once however many assets share it.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BlobRecord {
    /// BLAKE3 of the identity bytes.
    pub hash: [u8; 32],
    pub offset: U64,
    pub len: U64,
    /// Index of this blob's first row in VARIANTS.
    pub variant_first: U32,
    pub variant_count: U32,
}

/// A precompressed representation of a blob.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct VariantRecord {
    pub encoding: u8,
    pub reserved: [u8; 7],
    pub offset: U64,
    pub len: U64,
    /// BLAKE3 of the encoded bytes: the per-representation validator.
    pub hash: [u8; 32],
}

/// One request path the router knows, keyed in the hash table.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RouteRecord {
    /// Decoded request path.
    pub path: StrRef,
    /// Redirect target, canonically percent-encoded, without query.
    pub location: StrRef,
    pub action: u8,
    pub reserved: u8,
    pub status: U16,
    /// Asset to serve for `action::SERVE`, else `NO_ASSET`.
    pub asset: U32,
    /// Asset whose manifest key is exactly `path`, else `NO_ASSET`.
    pub exact_asset: U32,
}

/// Parameters of the open-addressing table over ROUTES.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TableRecord {
    pub seed: U64,
    /// A power of two.
    pub slot_count: U32,
    /// No key sits more than `max_probes - 1` slots past its home slot, so a
    /// lookup stops after this many slots whatever the request.
    pub max_probes: U32,
}

/// A slot of the route hash table. `route == 0` marks an empty slot.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SlotRecord {
    /// High 32 bits of the key's hash: most misses end without touching the
    /// route record or its path bytes.
    pub tag: U32,
    /// Route index + 1.
    pub route: U32,
}

/// The hash of a table key. xxh3 is stable across versions and platforms,
/// which the format requires since the table is built once and probed forever.
#[inline]
pub fn key_hash(key: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, seed)
}

/// Home slot and tag of a hash.
#[inline]
pub fn split_hash(hash: u64, slot_count: u32) -> (usize, u32) {
    let home = (hash as usize) & (slot_count as usize - 1);
    (home, (hash >> 32) as u32)
}
