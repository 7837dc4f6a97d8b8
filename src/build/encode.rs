//! Per-file work: read once, hash, type, and precompress.
//!
//! Each input is read exactly once through a descriptor opened with
//! `O_NOFOLLOW | O_NONBLOCK`; `fstat` before and after must agree with the
//! walk's `lstat`, so the bytes hashed, compressed and stored are one
//! consistent snapshot (bad-trees G).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use base64::Engine;

use super::walk::WalkedFile;
use crate::format::layout::encoding;

/// How hard to compress. See docs/COMPRESSION.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Previews: fast levels everywhere.
    Fast,
    /// Balanced: brotli 10 up to 1 MiB (no literal context modelling up to
    /// 8 KiB), 9 above, gzip 6 (docs/COMPRESSION.md).
    #[default]
    Default,
    /// brotli 11 everywhere: the smallest br, at a shell peer's time.
    Max,
}

impl Compression {
    /// Bumped whenever a level, window or threshold below changes what
    /// `compress` produces: variants made under another policy are never
    /// reused (`ConfigRecord::compression`).
    pub const POLICY: u32 = 9;

    /// The value stored in a bundle's `ConfigRecord::compression`.
    pub fn policy_id(self) -> u32 {
        let level = match self {
            Compression::Fast => 1,
            Compression::Default => 2,
            Compression::Max => 3,
        };
        Self::POLICY << 8 | level
    }
}

/// A variant is kept only when it is at least this many percent smaller than
/// identity: below that the saved bytes do not pay for the extra
/// representation (cache entries, negotiation, a second ETag).
pub const MIN_SAVING_PERCENT: usize = 10;

/// Reads a walked file, checking it is the same regular file the walk saw and
/// that it did not change while being read.
pub fn read_checked(f: &WalkedFile) -> Result<Vec<u8>, String> {
    let mut file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&f.path)
        .map_err(|e| format!("cannot be opened: {e}"))?;
    let before = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    if !before.is_file() || before.dev() != f.dev || before.ino() != f.ino {
        return Err("was replaced after the walk listed it".into());
    }
    let mut buf = Vec::with_capacity(before.len() as usize);
    // Read at most one byte past the listed size: growth is detected without
    // reading an unbounded file.
    (&mut file)
        .take(f.len + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let after = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    if buf.len() as u64 != f.len
        || (before.mtime(), before.mtime_nsec()) != f.mtime
        || after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Err("changed while being read; rebuild once the tree is stable".into());
    }
    Ok(buf)
}

/// The extension as Node's `path.extname` sees it, without the dot.
pub(crate) fn extension(key: &str) -> &str {
    let base = key.rsplit('/').next().unwrap_or(key);
    match base.rfind('.') {
        // Node's `path.extname`: from the last dot, unless that dot starts
        // the name (`.htaccess`) or the name is `..`; `..html` is `.html`.
        Some(i) if i > 0 && base != ".." => &base[i + 1..],
        _ => "",
    }
}

/// Cloudflare's production content hash (spec §8.2):
/// `BLAKE3(base64(bytes) + extension)[..16]`. Using it gives the same ETags as
/// Cloudflare for the same files.
pub fn etag_hash(data: &[u8], key: &str) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    // Encode in chunks of a multiple of 3 bytes so the base64 text is the
    // same as encoding the whole file at once, without holding it all.
    let mut buf = String::with_capacity(64 * 1024);
    for chunk in data.chunks(48 * 1024) {
        buf.clear();
        base64::engine::general_purpose::STANDARD.encode_string(chunk, &mut buf);
        h.update(buf.as_bytes());
    }
    h.update(extension(key).as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Content-Type as Cloudflare records it at upload (spec §4.2): the `mime`
/// 4.x table with a few corrections, `; charset=utf-8` on `text/*`, and no
/// type at all for unknown extensions.
pub fn content_type(key: &str) -> Option<String> {
    let ext = extension(key).to_ascii_lowercase();
    let known: Option<&str> = match ext.as_str() {
        "" | "br" | "zst" | "tsx" => return None,
        "html" | "htm" | "shtml" => Some("text/html"),
        "js" | "mjs" => Some("text/javascript"),
        "css" => Some("text/css"),
        "txt" | "text" | "conf" | "log" | "ini" | "in" => Some("text/plain"),
        "md" | "markdown" => Some("text/markdown"),
        "csv" => Some("text/csv"),
        "yaml" | "yml" => Some("text/yaml"),
        "json" | "map" => Some("application/json"),
        "webmanifest" => Some("application/manifest+json"),
        "xml" => Some("application/xml"),
        "svg" | "svgz" => Some("image/svg+xml"),
        "ico" => Some("image/vnd.microsoft.icon"),
        "wasm" => Some("application/wasm"),
        "woff2" => Some("font/woff2"),
        "woff" => Some("font/woff"),
        "ttf" => Some("font/ttf"),
        "otf" => Some("font/otf"),
        "gz" => Some("application/gzip"),
        "bin" => Some("application/octet-stream"),
        "ts" => Some("video/mp2t"),
        "toml" => Some("application/toml"),
        "cjs" => Some("application/node"),
        "avif" => Some("image/avif"),
        "webp" => Some("image/webp"),
        _ => None,
    };
    let ty = match known {
        Some(t) => t.to_string(),
        None => mime_guess::from_ext(&ext).first_raw()?.to_string(),
    };
    if ty.starts_with("text/") && !ty.contains("charset") {
        Some(format!("{ty}; charset=utf-8"))
    } else {
        Some(ty)
    }
}

/// Whether precompressing this type can pay: text-like formats and the few
/// binary ones (wasm, uncompressed fonts, icons) that are not already
/// compressed.
pub fn compressible(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let ty = ct.split(';').next().unwrap_or("").trim();
    ty.starts_with("text/")
        || ty.ends_with("+json")
        || ty.ends_with("+xml")
        || matches!(
            ty,
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/wasm"
                | "application/toml"
                | "application/node"
                | "application/x-sh"
                | "application/rtf"
                | "application/vnd.ms-fontobject"
                | "font/ttf"
                | "font/otf"
                | "image/bmp"
                | "image/vnd.microsoft.icon"
                | "image/x-icon"
        )
}

/// Whether the build precompresses the asset `key` of type `content_type`:
/// a compressible type, unless the name says the bytes are compressed
/// already (`.svgz` is gzipped SVG, typed `image/svg+xml` as on Cloudflare;
/// compressing it again only spends CPU, BT-64).
pub fn precompressible(key: &str, content_type: Option<&str>) -> bool {
    compressible(content_type) && !extension(key).eq_ignore_ascii_case("svgz")
}

/// The variants worth storing for `data`: each of gzip, br and zstd that is
/// at least `MIN_SAVING_PERCENT` smaller than identity, in encoding-code order.
/// Each kept variant is decoded (by an independent decoder for brotli) and
/// compared with `data` before it is returned: an encoder bug fails the build
/// here, naming the file, instead of reaching a client.
pub fn compress(data: &[u8], level: Compression) -> io::Result<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    if data.is_empty() {
        return Ok(out);
    }
    for code in [encoding::GZIP, encoding::BR, encoding::ZSTD] {
        let enc = encode(code, data, level)?;
        if enc.len() * 100 <= data.len() * (100 - MIN_SAVING_PERCENT) {
            check_decodes(code, &enc, data)?;
            out.push((code, enc));
        }
    }
    Ok(out)
}

/// Fails unless the variant `enc` (encoded with `code`) decodes to exactly
/// `data`: the build's check of what it just compressed, and `verify`'s of
/// what a bundle stores.
pub fn check_decodes(code: u8, enc: &[u8], data: &[u8]) -> io::Result<()> {
    let name = encoding::name(code).unwrap_or("?");
    let decoded = decode(code, enc, data.len())
        .map_err(|e| io::Error::other(format!("{name} variant does not decode: {e}")))?;
    if decoded != data {
        return Err(io::Error::other(format!(
            "{name} variant decodes to other bytes than its content"
        )));
    }
    Ok(())
}

/// Files up to this size are brotli-compressed without literal context
/// modelling at qualities 10 and 11.
pub const NO_LITERAL_CONTEXT_MAX: usize = 8 << 10;

/// HTML documents larger than this get brotli quality 9 by default, not 10.
pub const HTML_Q9_ABOVE: usize = 160 << 10;

/// Brotli quality for `data` under `level`, and whether the encoder models
/// literal contexts. On small files context modelling (64 literal
/// histograms, then clustering them) is most of the time at qualities
/// 10–11, and what it signals can outweigh what it saves: up to 1 KiB the
/// stream is *smaller* without it, up to 8 KiB about as small, for half the
/// time or less. Above 1 MiB the files are few, heavy and repetitive enough
/// that quality 9 loses ~2 % there; so are HTML documents above 160 KiB
/// (5–7 % more on the std docs' pages of that size, for a thirteenth of
/// the time). docs/COMPRESSION.md.
fn brotli_params(data: &[u8], level: Compression) -> (i32, bool) {
    let len = data.len();
    let context = len > NO_LITERAL_CONTEXT_MAX;
    match level {
        Compression::Fast => (5, true),
        Compression::Max => (11, context),
        Compression::Default if len > 1 << 20 => (9, true),
        Compression::Default if len > HTML_Q9_ABOVE && is_html_document(data) => (9, true),
        Compression::Default => (10, context),
    }
}

/// Whether `data` starts like an HTML document (`<!DOCTYPE html` or
/// `<html`, any case, after a BOM and white space). The policy looks at the
/// bytes, not the file name: a content is compressed once for every name it
/// has, and `--reuse` takes its variants by content hash alone.
pub fn is_html_document(data: &[u8]) -> bool {
    let rest = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let start = rest
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let head = &rest[start..rest.len().min(start + 14)];
    let starts = |p: &[u8]| head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p);
    starts(b"<!doctype html") || starts(b"<html")
}

/// The brotli window for `len` bytes at `quality`: it holds the whole file
/// (at most 24 bits). Qualities 10 and 11 use a binary-tree match finder
/// whose tables the `brotli` crate sizes by the window, not the input, so
/// the window fits the file (at least 10 bits, the format's minimum); below
/// quality 10 it is never under brotli's default 22 bits (4 MiB), because
/// there a small window makes small files *slower* with this crate (1.4 ms
/// instead of 61 µs for a 567-byte SVG at quality 5) and no smaller, and a
/// decoder sizes its ring buffer by the stream, not the window, for a file
/// that small. Measurements in docs/COMPRESSION.md.
pub fn brotli_window(len: usize, quality: i32) -> i32 {
    let fit = len.max(1).next_power_of_two().trailing_zeros() as i32;
    if quality >= 10 {
        fit.clamp(10, 24)
    } else {
        fit.clamp(22, 24)
    }
}

/// Brotli-compresses `data` at `quality` with [`brotli_window`], with
/// `mbrotli` (a safe-Rust port of Google's encoder: 1.3–1.45× faster than
/// the `brotli` crate at qualities 10–11 on the same files, for the same
/// bytes; docs/COMPRESSION.md). Its streams are decoded by the independent
/// `brotli` crate before any bundle is published (`verify`).
pub fn brotli(data: &[u8], quality: i32) -> io::Result<Vec<u8>> {
    brotli_with(data, quality, true)
}

/// [`brotli`], with literal context modelling on or off (`false` is C
/// brotli's `BROTLI_PARAM_DISABLE_LITERAL_CONTEXT_MODELING`).
pub fn brotli_with(data: &[u8], quality: i32, literal_context: bool) -> io::Result<Vec<u8>> {
    let bad = |e: mbrotli::ConfigError| io::Error::other(e.to_string());
    let q = u8::try_from(quality).map_err(|_| io::Error::other("brotli quality out of range"))?;
    let window = u8::try_from(brotli_window(data.len(), quality))
        .map_err(|_| io::Error::other("brotli window out of range"))?;
    let config = mbrotli::EncoderConfig::default()
        .with_quality(mbrotli::Quality::try_from(q).map_err(bad)?)
        .with_window(mbrotli::Window::standard(window).map_err(bad)?)
        .with_literal_context(if literal_context {
            mbrotli::LiteralContextMode::Auto
        } else {
            mbrotli::LiteralContextMode::Disabled
        });
    let mut c = mbrotli::Compressor::new(config).map_err(bad)?;
    c.compress(data)
        .map_err(|e| io::Error::other(e.to_string()))
}

fn encode(code: u8, data: &[u8], level: Compression) -> io::Result<Vec<u8>> {
    match code {
        encoding::GZIP => {
            // gzip serves only clients without br or zstd; 9 is 0.45 %
            // smaller than 6 for 1.8× its time (docs/COMPRESSION.md).
            let lvl = match level {
                Compression::Fast | Compression::Default => 6,
                Compression::Max => 9,
            };
            let mut e = flate2::GzBuilder::new().write(
                Vec::with_capacity(data.len() / 3),
                flate2::Compression::new(lvl),
            );
            e.write_all(data)?;
            e.finish()
        }
        encoding::BR => {
            let (quality, context) = brotli_params(data, level);
            brotli_with(data, quality, context)
        }
        encoding::ZSTD => {
            let lvl = match level {
                Compression::Fast => 3,
                Compression::Default => 9,
                // Not 19: zstd is only served to clients without br
                // (docs/COMPRESSION.md), and 19 costs a third of a q11
                // build on large text sites.
                Compression::Max => 12,
            };
            zstd::bulk::compress(data, lvl)
        }
        _ => Err(io::Error::other("unknown encoding")),
    }
}

/// Decodes a stored variant, refusing to produce more than `expected_len`
/// bytes (a corrupt or hostile bundle cannot make verify allocate without
/// bound).
pub fn decode(code: u8, bytes: &[u8], expected_len: usize) -> io::Result<Vec<u8>> {
    let cap = expected_len as u64 + 1;
    let mut out = Vec::with_capacity(expected_len.min(1 << 26));
    match code {
        encoding::GZIP => {
            flate2::read::GzDecoder::new(bytes)
                .take(cap)
                .read_to_end(&mut out)?;
        }
        encoding::BR => {
            brotli::Decompressor::new(bytes, 4096)
                .take(cap)
                .read_to_end(&mut out)?;
        }
        encoding::ZSTD => {
            // One decompression context per thread: creating one per
            // variant was 4 % of a verify (`ZSTD_createDCtx`). A frame
            // that would exceed `cap` is an error, like any corrupt one.
            thread_local! {
                static ZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                    const { std::cell::RefCell::new(None) };
            }
            return ZSTD.with(|cell| {
                let mut slot = cell.borrow_mut();
                let d = match &mut *slot {
                    Some(d) => d,
                    None => slot.insert(zstd::bulk::Decompressor::new()?),
                };
                d.decompress(bytes, cap as usize)
            });
        }
        _ => return Err(io::Error::other("unknown encoding")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn etag_matches_cloudflare_vectors() {
        // spec §8.2 test vectors.
        assert_eq!(
            hex(&etag_hash(b"Content of file-1", "/a.txt")),
            "0de3dd5df907418e9730fd2bd747bd5e"
        );
        assert_eq!(
            hex(&etag_hash(b"<html></html>", "/x/index.html")),
            "4752155c2c0c0320b40bca1d83e8380a"
        );
        assert_eq!(
            hex(&etag_hash(b"", "/e.html")),
            "bc88d1b19523ba52d6a2959dd93cf9c8"
        );
        assert_eq!(
            hex(&etag_hash(b"", "/Makefile")),
            "af1349b9f5f9a1a6a0404dea36dcc949"
        );
        assert_eq!(
            hex(&etag_hash(b"hello", "/h.txt")),
            "f0b3413d4cabb000327fad369003d6a5"
        );
        let big = vec![7u8; 200_000];
        let mut h = blake3::Hasher::new();
        h.update(
            base64::engine::general_purpose::STANDARD
                .encode(&big)
                .as_bytes(),
        );
        h.update(b"bin");
        assert_eq!(
            etag_hash(&big, "/big.bin")[..],
            h.finalize().as_bytes()[..16]
        );
    }

    /// The encoder self-check refuses output that does not decode, or
    /// decodes to other bytes, for each encoding.
    #[test]
    fn check_decodes_refuses_wrong_or_broken_output() {
        let data = b"<p>hello hello hello hello hello</p>\n".repeat(50);
        let other = b"<p>other other other other other</p>\n".repeat(50);
        for code in [encoding::GZIP, encoding::BR, encoding::ZSTD] {
            let good = encode(code, &data, Compression::Fast).unwrap();
            check_decodes(code, &good, &data).unwrap();
            let wrong = encode(code, &other, Compression::Fast).unwrap();
            let e = check_decodes(code, &wrong, &data).unwrap_err().to_string();
            assert!(e.contains("decodes to other bytes"), "{code}: {e}");
            let mut broken = good.clone();
            broken.truncate(good.len() / 2);
            let e = check_decodes(code, &broken, &data).unwrap_err().to_string();
            assert!(e.contains("does not decode"), "{code}: {e}");
        }
    }

    #[test]
    fn extension_follows_node() {
        assert_eq!(extension("/a.tar.gz"), "gz");
        assert_eq!(extension("/.htaccess"), "");
        assert_eq!(extension("/Makefile"), "");
        assert_eq!(extension("/dir.d/file"), "");
        assert_eq!(extension("/..html"), "html");
        assert_eq!(extension("/...x"), "x");
        assert_eq!(extension("/..."), "");
        assert_eq!(extension("/a."), "");
        assert_eq!(extension("/.."), "");
    }

    #[test]
    fn content_types_follow_cloudflare_table() {
        assert_eq!(
            content_type("/a.html").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            content_type("/a.JS").as_deref(),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("/a.json").as_deref(), Some("application/json"));
        assert_eq!(content_type("/a.png").as_deref(), Some("image/png"));
        assert_eq!(content_type("/a.ts").as_deref(), Some("video/mp2t"));
        assert_eq!(content_type("/a.br"), None);
        assert_eq!(content_type("/Makefile"), None);
        assert_eq!(content_type("/a.unknownext"), None);
    }

    #[test]
    fn svgz_is_not_compressed_again() {
        let svg = content_type("/a.svg");
        assert!(precompressible("/a.svg", svg.as_deref()));
        let svgz = content_type("/a.SVGZ");
        assert_eq!(svgz.as_deref(), Some("image/svg+xml"));
        assert!(!precompressible("/a.SVGZ", svgz.as_deref()));
    }

    #[test]
    fn variants_round_trip_and_skip_incompressible() {
        let text = b"<p>hello hello hello hello hello hello hello</p>\n".repeat(50);
        for level in [Compression::Fast, Compression::Default] {
            let v = compress(&text, level).unwrap();
            assert_eq!(v.len(), 3);
            for (code, bytes) in v {
                assert_eq!(decode(code, &bytes, text.len()).unwrap(), text);
            }
        }
        let mut noise = vec![0u8; 4096];
        blake3::Hasher::new()
            .update(b"seed")
            .finalize_xof()
            .fill(&mut noise);
        assert!(compress(&noise, Compression::Fast).unwrap().is_empty());
        assert!(compress(b"", Compression::Fast).unwrap().is_empty());
    }

    #[test]
    fn html_documents_are_recognised_by_their_bytes() {
        for yes in [
            &b"<!DOCTYPE html><p>"[..],
            b"<!doctype HTML>",
            b"\xEF\xBB\xBF\n  <html lang=en>",
            b"<HTML>",
        ] {
            assert!(is_html_document(yes), "{:?}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b""[..],
            b"<!DOCTYPE",
            b"<?xml version=\"1.0\"?><svg>",
            b"x<html>",
            b"function f() {}",
        ] {
            assert!(!is_html_document(no), "{:?}", String::from_utf8_lossy(no));
        }
    }

    /// Default brotli: quality 9 for HTML documents above 160 KiB, 10 for
    /// other text of that size and for smaller documents.
    #[test]
    fn default_brotli_quality_follows_size_and_kind() {
        let body: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("<a href=\"p{}\">w{}</a>\n", i % 997, i % 89).into_bytes())
            .collect();
        let doc = |n: usize| {
            let mut d = b"<!DOCTYPE html>\n".to_vec();
            d.extend_from_slice(&body[..n - d.len()]);
            d
        };
        let big = doc(HTML_Q9_ABOVE + 1);
        let small = doc(HTML_Q9_ABOVE);
        let text = &body[..HTML_Q9_ABOVE + 1];
        assert_eq!(brotli_params(&big, Compression::Default), (9, true));
        assert_eq!(brotli_params(&small, Compression::Default), (10, true));
        assert_eq!(brotli_params(text, Compression::Default), (10, true));
        assert_eq!(brotli_params(&big, Compression::Max), (11, true));
        // `compress` makes its br variant with those parameters.
        let v = compress(&big, Compression::Default).unwrap();
        let br = v.into_iter().find(|(c, _)| *c == encoding::BR).unwrap().1;
        assert_eq!(br, brotli_with(&big, 9, true).unwrap());
    }

    #[test]
    fn decode_is_capped() {
        let text = vec![b'a'; 100_000];
        let gz = encode(encoding::GZIP, &text, Compression::Fast).unwrap();
        let out = decode(encoding::GZIP, &gz, 10).unwrap();
        assert_eq!(out.len(), 11);
    }
}
