//! `Accept-Encoding` → which stored representation to send.
//!
//! Preference among acceptable codings: br, then zstd, then gzip (smallest
//! first for typical text). q-values are honoured: `q=0` forbids a coding,
//! `*` covers codings not listed, and `identity;q=0` (or `*;q=0` without an
//! identity entry) means identity is not acceptable — we still send identity
//! when no variant is acceptable, which RFC 9110 §12.5.3 allows instead of 406
//! (a 406 for a static file helps no client; nginx and tower-http do the
//! same). An `identity` entry with a higher q than every stored coding gets
//! identity; without one, compression is preferred.

use crate::format::layout::encoding;

/// The q-value (in thousandths) the field gives `coding`, or `None` if the
/// field does not mention it (nor `*`).
fn quality(field: &[u8], coding: &[u8]) -> Option<u16> {
    let mut star = None;
    for member in field.split(|&b| b == b',') {
        let mut parts = member.split(|&b| b == b';');
        let name = trim(parts.next().unwrap_or_default());
        let mut q = 1000u16;
        for p in parts {
            let p = trim(p);
            if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                q = parse_q(&p[2..]).unwrap_or(0);
            }
        }
        if name.eq_ignore_ascii_case(coding) {
            return Some(q);
        }
        if name == b"*" {
            star = Some(q);
        }
    }
    star
}

fn parse_q(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?;
    let f: f32 = s.parse().ok()?;
    (0.0..=1.0)
        .contains(&f)
        .then(|| (f * 1000.0).round() as u16)
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |i| i + 1);
    &b[s..e.max(s)]
}

/// Picks the encoding code (`None` = identity) among `available` codes.
pub fn choose(accept_encoding: Option<&[u8]>, available: impl Iterator<Item = u8>) -> Option<u8> {
    let field = accept_encoding?;
    let mut best: Option<(u16, u8, u8)> = None; // (q, rank, code)
    for code in available {
        let (name, rank) = match code {
            encoding::BR => ("br", 3),
            encoding::ZSTD => ("zstd", 2),
            encoding::GZIP => ("gzip", 1),
            _ => continue,
        };
        let q = quality(field, name.as_bytes()).unwrap_or(0);
        if q == 0 {
            continue;
        }
        if best.is_none_or(|(bq, br, _)| (q, rank) > (bq, br)) {
            best = Some((q, rank, code));
        }
    }
    let (q, _, code) = best?;
    // A client that ranks identity above every stored coding gets identity;
    // one that does not mention it prefers compression (RFC 9110 §12.5.3).
    match quality_named(field, b"identity") {
        Some(identity_q) if identity_q > q => None,
        _ => Some(code),
    }
}

/// The q-value the field gives `coding` by name (not through `*`).
fn quality_named(field: &[u8], coding: &[u8]) -> Option<u16> {
    field.split(|&b| b == b',').find_map(|member| {
        let name = trim(member.split(|&b| b == b';').next().unwrap_or_default());
        name.eq_ignore_ascii_case(coding)
            .then(|| quality(member, coding))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::layout::encoding::{BR, GZIP, ZSTD};

    fn pick(ae: &str) -> Option<u8> {
        choose(Some(ae.as_bytes()), [GZIP, BR, ZSTD].into_iter())
    }

    #[test]
    fn preference_and_q_values() {
        assert_eq!(choose(None, [GZIP, BR].into_iter()), None);
        assert_eq!(pick("gzip, br"), Some(BR));
        assert_eq!(pick("gzip, zstd"), Some(ZSTD));
        assert_eq!(pick("gzip"), Some(GZIP));
        assert_eq!(pick("BR"), Some(BR));
        assert_eq!(pick("br;q=0, gzip"), Some(GZIP));
        assert_eq!(pick("br;q=0.5, gzip;q=0.9"), Some(GZIP));
        assert_eq!(pick("*"), Some(BR));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("gzip;q=0, br;q=0, zstd;q=0"), None);
        assert_eq!(pick(""), None);
        assert_eq!(choose(Some(b"br"), [GZIP].into_iter()), None);
        // identity ranked above every stored coding wins; equal or unranked
        // identity leaves the compressed variant.
        assert_eq!(pick("br;q=0.5, identity"), None);
        assert_eq!(pick("gzip;q=0.4, identity;q=0.5"), None);
        assert_eq!(pick("br, identity"), Some(BR));
        assert_eq!(pick("br;q=0.5, identity;q=0.5"), Some(BR));
        assert_eq!(pick("br;q=0.5, *;q=1"), Some(ZSTD));
        assert_eq!(pick("br, identity;q=0"), Some(BR));
    }
}
