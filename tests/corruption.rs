//! Damaged and hostile bundles (bad-trees section J): every one is refused
//! with an error, never a panic, and `verify` catches what `open` cannot.

mod common;

use std::fs;
use std::path::Path;

use sitepack::format::layout::{
    section, AssetRecord, BlobRecord, ConfigRecord, Header, RouteRecord, SectionEntry, SlotRecord,
    TableRecord, VariantRecord, HEADER_LEN,
};
use sitepack::format::{Bundle, FormatError};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use common::*;

/// A small bundle with variants, duplicates, an empty file and rule files.
fn sample() -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("site");
    let html = "<p>hello hello hello hello</p>\n".repeat(12);
    write_tree(
        &root,
        &[
            ("index.html", html.as_bytes()),
            ("copy.html", html.as_bytes()),
            ("a.bin", &noise("a.bin", 64)),
            ("style.css", "a{b:c}\n".repeat(20).as_bytes()),
            ("empty.txt", b""),
            (
                "sub/page.html",
                b"<h1>sub</h1><h1>sub</h1><h1>sub</h1><h1>sub</h1>",
            ),
            ("_headers", b"/*\n  X-A: b\n"),
            ("_redirects", b"/old /new 301\n"),
        ],
    );
    let out = t.path().join("s.pack");
    lib_build(&root, &out).unwrap();
    let b = fs::read(&out).unwrap();
    let bundle = Bundle::open(&b[..]).unwrap();
    bundle.verify().unwrap();
    assert!(bundle.blob_count() >= 4);
    assert!((0..bundle.blob_count() as u32).any(|i| bundle.variants(i).count() > 0));
    b
}

fn header(b: &[u8]) -> Header {
    Header::read_from_prefix(b).unwrap().0
}

fn index_start(b: &[u8]) -> usize {
    header(b).index_offset.get() as usize
}

/// Recomputes the index checksum, as a hostile writer would.
fn resign(b: &mut [u8]) {
    let mut h = header(b);
    let s = h.index_offset.get() as usize;
    let e = s.saturating_add(h.index_len.get() as usize);
    // An index range outside the file cannot be signed; leave it as it is.
    if let Some(index) = b.get(s..e) {
        h.index_checksum = *blake3::hash(index).as_bytes();
    }
    b[..HEADER_LEN].copy_from_slice(h.as_bytes());
}

/// File position of the section-table row of `kind`.
fn entry_pos(b: &[u8], kind: u32) -> usize {
    let h = header(b);
    let start = h.index_offset.get() as usize;
    let size = std::mem::size_of::<SectionEntry>();
    (0..h.section_count.get() as usize)
        .map(|i| start + i * size)
        .find(|&p| {
            SectionEntry::read_from_prefix(&b[p..])
                .unwrap()
                .0
                .kind
                .get()
                == kind
        })
        .unwrap_or_else(|| panic!("no section {kind}"))
}

fn sec(b: &[u8], kind: u32) -> (usize, usize) {
    let e = SectionEntry::read_from_prefix(&b[entry_pos(b, kind)..])
        .unwrap()
        .0;
    (e.offset.get() as usize, e.len.get() as usize)
}

/// Edits the `i`th record of type `T` in section `kind`.
fn edit<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
    b: &mut [u8],
    kind: u32,
    i: usize,
    f: impl FnOnce(&mut T),
) {
    let (off, len) = sec(b, kind);
    let size = std::mem::size_of::<T>();
    assert!((i + 1) * size <= len, "section {kind} has no record {i}");
    let p = off + i * size;
    let mut r = T::read_from_prefix(&b[p..]).unwrap().0;
    f(&mut r);
    b[p..p + size].copy_from_slice(r.as_bytes());
}

fn edit_header(b: &mut [u8], f: impl FnOnce(&mut Header)) {
    let mut h = header(b);
    f(&mut h);
    b[..HEADER_LEN].copy_from_slice(h.as_bytes());
}

/// Open must fail, and the message must mention `needle`.
fn refused(b: &[u8], needle: &str) -> FormatError {
    match Bundle::open(b) {
        Ok(_) => panic!("hostile bundle accepted (expected an error about {needle:?})"),
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.to_lowercase().contains(&needle.to_lowercase()),
                "error {m:?} does not mention {needle:?}"
            );
            e
        }
    }
}

#[test]
fn truncation_at_every_offset_is_refused() {
    let b = sample();
    for n in 0..b.len() {
        assert!(
            Bundle::open(&b[..n]).is_err(),
            "bundle truncated to {n} of {} bytes was accepted",
            b.len()
        );
    }
    let mut padded = b.clone();
    padded.push(0);
    assert!(matches!(
        Bundle::open(&padded[..]),
        Err(FormatError::Length { .. })
    ));
}

#[test]
fn every_index_byte_flip_fails_the_checksum_at_open() {
    let b = sample();
    let start = index_start(&b);
    assert!(start > HEADER_LEN && start < b.len());
    let mut m = b.clone();
    for i in start..b.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            m[i] ^= mask;
            match Bundle::open(&m[..]) {
                Err(FormatError::Checksum) => {}
                other => panic!(
                    "index byte {i} ^ {mask:#x}: expected a checksum error at open, got {:?}",
                    other.map(|_| "Ok")
                ),
            }
            m[i] ^= mask;
        }
    }
}

/// Header bytes other than the reserved word (see the next test).
#[test]
fn every_header_byte_flip_is_caught() {
    let b = sample();
    let mut m = b.clone();
    for i in (0..HEADER_LEN).filter(|i| !(44..48).contains(i)) {
        for mask in [0x01u8, 0x10, 0x80, 0xff] {
            m[i] ^= mask;
            if let Ok(bundle) = Bundle::open(&m[..]) {
                assert!(
                    bundle.verify().is_err(),
                    "header byte {i} ^ {mask:#x}: open and verify both accepted it"
                );
            }
            m[i] ^= mask;
        }
    }
}

#[test]
fn header_reserved_byte_flip_is_caught() {
    let b = sample();
    let mut m = b.clone();
    for i in 44..48 {
        for mask in [0x01u8, 0x80] {
            m[i] ^= mask;
            let caught = match Bundle::open(&m[..]) {
                Err(_) => true,
                Ok(bundle) => bundle.verify().is_err(),
            };
            assert!(
                caught,
                "header byte {i} ^ {mask:#x} (reserved) went unnoticed"
            );
            m[i] ^= mask;
        }
    }
}

#[test]
fn every_blob_region_flip_passes_open_but_fails_verify_and_verify_stored() {
    let b = sample();
    let end = index_start(&b);
    let mut m = b.clone();
    for i in HEADER_LEN..end {
        m[i] ^= 0x01;
        let bundle = Bundle::open(&m[..])
            .unwrap_or_else(|e| panic!("blob byte {i}: open should not read blobs, got {e}"));
        assert!(
            bundle.verify().is_err(),
            "blob byte {i} flip not caught by verify"
        );
        // The hashes-only check a build runs before publishing catches
        // every one of them too.
        assert!(
            bundle.verify_stored().is_err(),
            "blob byte {i} flip not caught by verify_stored"
        );
        m[i] ^= 0x01;
    }
}

#[test]
fn wrong_magic_version_and_flags_are_clean_errors() {
    let b = sample();

    let mut m = b.clone();
    m[0] = b'X';
    assert_eq!(Bundle::open(&m[..]).err(), Some(FormatError::BadMagic));
    assert_eq!(
        Bundle::open(&b"NOTABUNDLE"[..]).err(),
        Some(FormatError::BadMagic)
    );

    let mut m = b.clone();
    edit_header(&mut m, |h| h.version.set(2));
    let e = Bundle::open(&m[..]).err();
    assert_eq!(e, Some(FormatError::Version { found: 2 }));
    assert!(e.unwrap().to_string().contains("v2"));

    let mut m = b.clone();
    edit_header(&mut m, |h| h.flags.set(1));
    assert_eq!(Bundle::open(&m[..]).err(), Some(FormatError::Flags(1)));
    let mut m = b.clone();
    edit_header(&mut m, |h| h.flags.set(0x8000_0000));
    assert_eq!(
        Bundle::open(&m[..]).err(),
        Some(FormatError::Flags(0x8000_0000))
    );
}

/// Hostile values behind a valid checksum (BT-67): each names its field.
#[test]
fn resigned_hostile_records_are_refused_naming_the_field() {
    let b = sample();
    let case = |f: &dyn Fn(&mut Vec<u8>), needle: &str| {
        let mut m = b.clone();
        f(&mut m);
        resign(&mut m);
        refused(&m, needle);
    };
    let file_len = b.len() as u64;

    case(
        &|m| edit::<AssetRecord>(m, section::ASSETS, 0, |a| a.blob.set(1_000_000_000)),
        "blob index",
    );
    case(
        &|m| edit::<AssetRecord>(m, section::ASSETS, 1, |a| a.path.len.set(u32::MAX)),
        "string out of bounds",
    );
    case(
        &|m| {
            edit::<AssetRecord>(m, section::ASSETS, 1, |a| {
                a.content_type.offset.set(u32::MAX)
            })
        },
        "string out of bounds",
    );
    case(
        &|m| edit::<BlobRecord>(m, section::BLOBS, 0, |r| r.offset.set(file_len + 10)),
        "blob 0",
    );
    case(
        &|m| edit::<BlobRecord>(m, section::BLOBS, 1, |r| r.len.set(1 << 40)),
        "blob 1",
    );
    case(
        &|m| edit::<BlobRecord>(m, section::BLOBS, 0, |r| r.offset.set(u64::MAX - 1)),
        "blob 0",
    );
    case(
        &|m| edit::<BlobRecord>(m, section::BLOBS, 0, |r| r.variant_count.set(u32::MAX)),
        "variant range",
    );
    case(
        &|m| edit::<BlobRecord>(m, section::BLOBS, 0, |r| r.variant_first.set(u32::MAX)),
        "variant range",
    );
    // A blob pointing into the index (inside the file, outside the blob area).
    case(
        &|m| {
            let s = index_start(m) as u64;
            edit::<BlobRecord>(m, section::BLOBS, 0, |r| r.offset.set(s))
        },
        "blob 0",
    );
    case(
        &|m| edit::<VariantRecord>(m, section::VARIANTS, 0, |v| v.offset.set(file_len)),
        "variant 0",
    );
    case(
        &|m| edit::<VariantRecord>(m, section::VARIANTS, 0, |v| v.encoding = 9),
        "variant 0",
    );
    case(
        &|m| edit::<RouteRecord>(m, section::ROUTES, 0, |r| r.asset.set(77_777)),
        "route 0",
    );
    case(
        &|m| edit::<RouteRecord>(m, section::ROUTES, 0, |r| r.action = 200),
        "route 0",
    );
    case(
        &|m| edit::<TableRecord>(m, section::TABLE, 0, |t| t.slot_count.set(3)),
        "slot count",
    );
    case(
        &|m| edit::<TableRecord>(m, section::TABLE, 0, |t| t.max_probes.set(0)),
        "probe",
    );
    // A probe bound past the format's 16 (even within the slot count) would
    // let a re-signed bundle turn every miss into a scan of the table.
    case(
        &|m| {
            edit::<TableRecord>(m, section::TABLE, 0, |t| {
                assert!(
                    t.slot_count.get() > 17,
                    "the test needs a table of > 17 slots"
                );
                t.max_probes.set(17)
            })
        },
        "probe",
    );
    case(
        &|m| edit::<SlotRecord>(m, section::SLOTS, 0, |s| s.route.set(1 << 30)),
        "slot",
    );
    case(
        &|m| edit::<ConfigRecord>(m, section::CONFIG, 0, |c| c.html_handling = 99),
        "html_handling",
    );
    case(
        &|m| edit::<ConfigRecord>(m, section::CONFIG, 0, |c| c.not_found_handling = 99),
        "not_found_handling",
    );
    case(
        &|m| edit::<ConfigRecord>(m, section::CONFIG, 0, |c| c.run_worker_first = 7),
        "run_worker_first",
    );

    // Unsorted and duplicate keys.
    case(
        &|m| {
            let size = std::mem::size_of::<AssetRecord>();
            let (off, _) = sec(m, section::ASSETS);
            let (a, rest) = m[off..].split_at_mut(size);
            a.swap_with_slice(&mut rest[..size]);
        },
        "not sorted",
    );
    case(
        &|m| {
            let size = std::mem::size_of::<AssetRecord>();
            let (off, _) = sec(m, section::ASSETS);
            m.copy_within(off..off + size, off + size);
        },
        "duplicated",
    );

    // Invalid UTF-8 in a key.
    case(
        &|m| {
            let (soff, _) = sec(m, section::STRINGS);
            let (aoff, _) = sec(m, section::ASSETS);
            let a = AssetRecord::read_from_prefix(&m[aoff..]).unwrap().0;
            m[soff + a.path.offset.get() as usize + 1] = 0xff;
        },
        "not UTF-8",
    );
    case(
        &|m| {
            let (off, len) = sec(m, section::HEADERS_TEXT);
            assert!(len > 0);
            m[off] = 0xc3;
            m[off + 1] = 0x28;
        },
        "_headers",
    );

    // Section table rows.
    case(
        &|m| {
            let p = entry_pos(m, section::ASSETS);
            let mut e = SectionEntry::read_from_prefix(&m[p..]).unwrap().0;
            e.len.set(1 << 40);
            m[p..p + 24].copy_from_slice(e.as_bytes());
        },
        "past the end",
    );
    case(
        &|m| {
            let p = entry_pos(m, section::BLOBS);
            let mut e = SectionEntry::read_from_prefix(&m[p..]).unwrap().0;
            e.offset.set(u64::MAX - 4);
            m[p..p + 24].copy_from_slice(e.as_bytes());
        },
        "past the end",
    );
    case(
        &|m| {
            // Inside the file but in the blob area, not the index.
            let p = entry_pos(m, section::ROUTES);
            let mut e = SectionEntry::read_from_prefix(&m[p..]).unwrap().0;
            e.offset.set(HEADER_LEN as u64);
            m[p..p + 24].copy_from_slice(e.as_bytes());
        },
        "outside the index",
    );
    case(
        &|m| {
            let p = entry_pos(m, section::ASSETS);
            let mut e = SectionEntry::read_from_prefix(&m[p..]).unwrap().0;
            e.len.set(e.len.get() - 1);
            m[p..p + 24].copy_from_slice(e.as_bytes());
        },
        "whole number of records",
    );
    case(
        &|m| {
            // Two rows of one kind.
            let p = entry_pos(m, section::ASSETS);
            let q = entry_pos(m, section::BLOBS);
            let row = m[p..p + 24].to_vec();
            m[q..q + 24].copy_from_slice(&row);
        },
        "appears twice",
    );
    case(
        &|m| {
            // A required section renamed to an unknown kind.
            let p = entry_pos(m, section::SLOTS);
            let mut e = SectionEntry::read_from_prefix(&m[p..]).unwrap().0;
            e.kind.set(1000);
            m[p..p + 24].copy_from_slice(e.as_bytes());
        },
        "missing",
    );

    // Header fields (not covered by the checksum, re-signed anyway).
    case(
        &|m| edit_header(m, |h| h.section_count.set(u32::MAX)),
        "section count",
    );
    case(&|m| edit_header(m, |h| h.section_count.set(0)), "missing");
    case(
        &|m| edit_header(m, |h| h.index_offset.set(8)),
        "overlaps the header",
    );
    case(
        &|m| edit_header(m, |h| h.index_len.set(1 << 40)),
        "past the end",
    );
    case(
        &|m| edit_header(m, |h| h.file_len.set(1 << 40)),
        "truncated",
    );
}

#[test]
fn resigned_overlapping_sections_are_refused() {
    let mut m = sample();
    let h = entry_pos(&m, section::HEADERS_TEXT);
    let r = entry_pos(&m, section::REDIRECTS_TEXT);
    let mut row = SectionEntry::read_from_prefix(&m[h..]).unwrap().0;
    row.kind.set(section::REDIRECTS_TEXT);
    m[r..r + 24].copy_from_slice(row.as_bytes());
    resign(&mut m);
    refused(&m, "overlap");
}

#[test]
fn resigned_bad_rule_files_names_the_field() {
    let mut m = sample();
    edit::<ConfigRecord>(&mut m, section::CONFIG, 0, |c| c.rule_files = 4);
    resign(&mut m);
    refused(&m, "rule_files");
}

fn verify_cli(path: &Path) -> Run {
    run(&["verify".as_ref(), path.as_os_str()] as &[&std::ffi::OsStr])
}

#[test]
fn verify_command_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let b = sample();
    let good = t.path().join("good.pack");
    fs::write(&good, &b).unwrap();
    let r = verify_cli(&good);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);

    // A blob byte: only verify can see it.
    let blob_bad = t.path().join("blob-bad.pack");
    let mut m = b.clone();
    m[HEADER_LEN + 3] ^= 0x20;
    fs::write(&blob_bad, &m).unwrap();
    let r = verify_cli(&blob_bad);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("blob-bad.pack") && r.stderr.contains("blob"),
        "{}",
        r.stderr
    );

    // An index byte: checksum.
    let idx_bad = t.path().join("index-bad.pack");
    let mut m = b.clone();
    let last = m.len() - 1;
    m[last] ^= 1;
    fs::write(&idx_bad, &m).unwrap();
    let r = verify_cli(&idx_bad);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("index-bad.pack") && r.stderr.contains("checksum"),
        "{}",
        r.stderr
    );

    // Truncated, and empty.
    let short = t.path().join("short.pack");
    fs::write(&short, &b[..b.len() / 2]).unwrap();
    let r = verify_cli(&short);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("short.pack") && r.stderr.contains("truncated"),
        "{}",
        r.stderr
    );
    let empty = t.path().join("empty.pack");
    fs::write(&empty, b"").unwrap();
    let r = verify_cli(&empty);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("empty.pack"), "{}", r.stderr);

    // Not there at all: a runtime error, not a failed check.
    let r = verify_cli(&t.path().join("missing.pack"));
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("missing.pack"), "{}", r.stderr);
}

/// A re-signed bundle whose key climbs out of the target directory:
/// `extract` refuses it and writes nothing outside.
#[test]
fn extract_refuses_escaping_keys() {
    let t = tempfile::tempdir().unwrap();
    let mut m = sample();
    // The first asset key (sorted) is "/a.bin"; "/../ev" keeps its length
    // and sorts first too.
    let (soff, _) = sec(&m, section::STRINGS);
    let (aoff, _) = sec(&m, section::ASSETS);
    let a = AssetRecord::read_from_prefix(&m[aoff..]).unwrap().0;
    let p = soff + a.path.offset.get() as usize;
    assert_eq!(&m[p..p + a.path.len.get() as usize], b"/a.bin");
    m[p..p + 6].copy_from_slice(b"/../ev");
    resign(&mut m);
    let hostile = t.path().join("hostile.pack");
    fs::write(&hostile, &m).unwrap();
    let target = t.path().join("x/out");
    fs::create_dir_all(&target).unwrap();
    let r =
        run(&["extract".as_ref(), hostile.as_os_str(), target.as_os_str()] as &[&std::ffi::OsStr]);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("unsafe key"), "{}", r.stderr);
    assert!(
        !t.path().join("x/ev").exists(),
        "extract wrote outside its directory"
    );
}

/// Random edits to the index, re-signed: `open` may accept or refuse, but
/// never panics, and whatever it accepts can be read in full without a panic.
#[test]
fn random_resigned_index_edits_never_panic() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
    let b = sample();
    let start = index_start(&b);
    let len = b.len();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    });
    let edits = prop::collection::vec((start..len, any::<u8>()), 1..6);
    runner
        .run(&edits, |edits| {
            let mut m = b.clone();
            for (i, v) in &edits {
                m[*i] = *v;
            }
            resign(&mut m);
            if let Ok(bundle) = Bundle::open(&m[..]) {
                let _ = bundle.config();
                let _ = (bundle.headers_text(), bundle.redirects_text());
                let _ = bundle.worker_first_patterns().count();
                for a in bundle.assets() {
                    let _ = bundle.blob(a.blob);
                    let _ = bundle.variants(a.blob).count();
                    let _ = bundle.find_asset(a.path);
                    let _ = bundle.route(a.path);
                }
                for r in bundle.routes() {
                    let _ = bundle.route(r.path);
                }
                let _ = bundle.route("/no/such/path");
                let _ = bundle.verify();
            }
            Ok(())
        })
        .unwrap();
}

/// An index large enough (≥ 4 MiB) that `open` hashes it on the rayon pool
/// beside validation: the same checks hold on that path.
#[test]
fn large_index_is_checked_on_the_parallel_path() {
    use sitepack::format::layout::action;
    use sitepack::format::write::{write_bundle, AssetSpec, BlobSpec, BundleSpec, RouteSpec};
    // 40,000 pages, each its own blob, asset and extensionless route.
    let mut keys: Vec<String> = (0..40_000u32)
        .map(|i| format!("/section-{:02}/page-{i:06}.html", i % 50))
        .collect();
    keys.sort();
    let spec = BundleSpec {
        blobs: keys
            .iter()
            .map(|k| BlobSpec {
                data: k.clone().into_bytes(),
                hash: *blake3::hash(k.as_bytes()).as_bytes(),
                variants: Vec::new(),
            })
            .collect(),
        routes: (0..keys.len() as u32)
            .map(|i| RouteSpec {
                path: keys[i as usize].trim_end_matches(".html").to_string(),
                action: action::SERVE,
                status: 200,
                asset: i,
                location: String::new(),
                exact_asset: i,
            })
            .collect(),
        assets: (0..keys.len() as u32)
            .map(|i| AssetSpec {
                key: keys[i as usize].clone(),
                content_type: None,
                blob: i,
                etag: [0; 16],
            })
            .collect(),
        ..BundleSpec::default()
    };
    let mut out = std::io::Cursor::new(Vec::new());
    write_bundle(&spec, &mut out).unwrap();
    let b = out.into_inner();
    let start = index_start(&b);
    assert!(
        b.len() - start >= 4 << 20,
        "index is only {} bytes",
        b.len() - start
    );
    let bundle = Bundle::open(&b[..]).unwrap();
    assert_eq!(bundle.asset_count(), 40_000);
    for at in [start, start + (b.len() - start) / 2, b.len() - 1] {
        let mut m = b.clone();
        m[at] ^= 0x20;
        assert!(
            matches!(Bundle::open(&m[..]), Err(FormatError::Checksum)),
            "flip at {at}"
        );
    }
    let mut m = b.clone();
    edit::<AssetRecord>(&mut m, section::ASSETS, 39_999, |a| a.blob.set(40_000));
    resign(&mut m);
    refused(&m, "asset 39999: blob index");
}
