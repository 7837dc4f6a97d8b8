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
    /// One `RulesRecord`: rule counts and the root masks of the rule index.
    pub const RULES: u32 = 12;
    /// `TokenRecord`s of every compiled pattern, rule after rule.
    pub const TOKENS: u32 = 13;
    /// `RedirectRuleRecord`s: static rules, then dynamic rules in order.
    pub const REDIRECT_RULES: u32 = 14;
    /// `HeaderRuleRecord`s in evaluation (file) order.
    pub const HEADER_RULES: u32 = 15;
    /// `HeaderOpRecord`s, rule after rule (unsets, then sets).
    pub const HEADER_OPS: u32 = 16;
    /// `RuleMask`es referenced by `action::RULE_ANCHOR` routes.
    pub const RULE_MASKS: u32 = 17;
    /// The highest kind this reader knows; kinds `1..=LAST` are required.
    pub const LAST: u32 = RULE_MASKS;
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
    /// A static `_redirects` rule: the key is `key_prefix::STATIC_REDIRECT`
    /// + the rule's pathname, `RouteRecord::asset` its REDIRECT_RULES index.
    pub const RULE_REDIRECT: u8 = 3;
    /// An entry of the rule index: the key is `key_prefix::REDIRECT_ANCHOR`
    /// or `HEADER_ANCHOR` + an anchor path, `RouteRecord::asset` a RULE_MASKS
    /// index.
    pub const RULE_ANCHOR: u8 = 4;
}

/// First byte of the route keys that are not request paths. Decoded request
/// paths always start with `/`, so no request can reach these keys.
pub mod key_prefix {
    pub const STATIC_REDIRECT: u8 = 1;
    pub const REDIRECT_ANCHOR: u8 = 2;
    pub const HEADER_ANCHOR: u8 = 3;
}

/// `TokenRecord::kind`.
pub mod token_kind {
    /// Literal text without separators.
    pub const LITERAL: u8 = 0;
    /// `/` in the path part, `.` in the host part.
    pub const SEPARATOR: u8 = 1;
    /// `:name`; the token's text is the name without the colon.
    pub const PLACEHOLDER: u8 = 2;
    /// `*`.
    pub const SPLAT: u8 = 3;
}

/// `HeaderOpRecord::op`.
pub mod header_op {
    /// `! Name`: delete every field line called `name`.
    pub const UNSET: u8 = 1;
    /// `Name: value`.
    pub const SET: u8 = 2;
}

/// `RedirectRuleRecord::kind`.
pub mod redirect_kind {
    pub const STATIC: u8 = 0;
    pub const DYNAMIC: u8 = 1;
}

/// Most rules of one indexed set (dynamic redirects, header rules): masks
/// are 128 bits. The parsers keep at most 100 and 101.
pub const MAX_INDEXED_RULES: usize = 128;
/// Longest anchor (without its key prefix byte); longer literal prefixes are
/// cut back to a `/` within this length.
pub const MAX_ANCHOR_LEN: usize = 127;
/// Deepest anchor, in `/`s: depths are bits of a `u64`.
pub const MAX_ANCHOR_DEPTH: u32 = 63;

/// Sentinel for "no asset" in `u32` asset references.
pub const NO_ASSET: u32 = u32::MAX;

/// Lookups stop after at most this many slots: the builder searches seeds,
/// then doubles the table, until every key sits within the bound, and a
/// reader refuses a table that claims more (a hostile bundle cannot turn a
/// lookup into a scan of the table).
pub const MAX_PROBES: u32 = 16;

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
    /// Which compression policy made the variants: `0` unknown (variants
    /// are never reused), else `POLICY << 8 | level` as
    /// `build::encode::Compression::policy_id` gives it. `build --reuse`
    /// takes an older bundle's variants only when this matches, so a reused
    /// build stays byte-identical to a cold one.
    pub compression: U32,
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

/// A set of rules of one indexed set, as a 128-bit little-endian bit mask:
/// bit `i` is rule `i` (dynamic redirect `i`, or header rule `i`).
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
pub struct RuleMask {
    pub lo: U64,
    pub hi: U64,
}

impl RuleMask {
    pub fn new(bits: u128) -> Self {
        RuleMask {
            lo: U64::new(bits as u64),
            hi: U64::new((bits >> 64) as u64),
        }
    }

    #[inline]
    pub fn get(&self) -> u128 {
        u128::from(self.lo.get()) | u128::from(self.hi.get()) << 64
    }
}

/// Counts of the compiled rules and the always-tried part of their index.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RulesRecord {
    /// REDIRECT_RULES `[0, static_redirects)` are static rules.
    pub static_redirects: U32,
    /// REDIRECT_RULES `[static_redirects, +dynamic_redirects)` are dynamic.
    pub dynamic_redirects: U32,
    pub header_rules: U32,
    pub reserved: U32,
    /// Bit `d` (2 ≤ d ≤ 63): some dynamic redirect has an anchor with `d`
    /// slashes, so the request path's prefix through its `d`th `/` is probed.
    pub redirect_depths: U64,
    pub header_depths: U64,
    /// Dynamic redirects anchored at `/`: tried for every request.
    pub redirect_root: RuleMask,
    /// Header rules anchored at `/`.
    pub header_root: RuleMask,
}

/// One token of a compiled pattern. `start..end` is a byte range of the
/// owning rule's pattern string (`from`, or the header rule's `pattern`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TokenRecord {
    /// `token_kind::*`.
    pub kind: u8,
    /// Capture slot of placeholders and the splat, else 0.
    pub slot: u8,
    pub reserved: U16,
    pub start: U32,
    pub end: U32,
}

/// One `_redirects` rule.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RedirectRuleRecord {
    /// Static: the exact raw pathname. Dynamic: the normalised pattern.
    pub from: StrRef,
    /// Normalised target; dynamic targets may hold `:name`s.
    pub to: StrRef,
    /// First token in TOKENS (dynamic rules; static rules have none).
    pub token_first: U32,
    pub token_count: U16,
    /// 200, 301, 302, 303, 307 or 308.
    pub status: U16,
    /// `redirect_kind::*`.
    pub kind: u8,
    /// Placeholders plus splat in `from`.
    pub capture_count: u8,
    pub reserved: U16,
    /// 1-based line in `_redirects`.
    pub line: U32,
}

/// One `_headers` block.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct HeaderRuleRecord {
    /// Normalised pattern: `/path` or `https://host/path`.
    pub pattern: StrRef,
    pub token_first: U32,
    pub token_count: U16,
    /// The first `host_tokens` tokens are the host part.
    pub host_tokens: U16,
    /// First op in HEADER_OPS.
    pub op_first: U32,
    pub op_count: U32,
    /// 1 when the pattern starts with `https://host`.
    pub absolute: u8,
    pub capture_count: u8,
    pub reserved: U16,
    /// 1-based line of the path line in `_headers`.
    pub line: U32,
}

/// One `! Name` or `Name: value` line of a `_headers` block.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct HeaderOpRecord {
    /// Lower-case field name.
    pub name: StrRef,
    /// Value (may hold `:name`s); empty for `UNSET`.
    pub value: StrRef,
    /// `header_op::*`.
    pub op: u8,
    pub reserved: [u8; 3],
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
