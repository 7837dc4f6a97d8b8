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

/// What one `Accept-Encoding` field says of the codings a bundle can hold,
/// read in one pass: for each, the q-value (in thousandths) of the first
/// member naming it, and the last `*` member's for codings not named.
#[derive(Default)]
struct Field {
    br: Option<u16>,
    zstd: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
}

impl Field {
    fn parse(field: &[u8]) -> Field {
        let mut f = Field::default();
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
            let slot = if name == b"*" {
                f.star = Some(q);
                continue;
            } else if name.eq_ignore_ascii_case(b"br") {
                &mut f.br
            } else if name.eq_ignore_ascii_case(b"zstd") {
                &mut f.zstd
            } else if name.eq_ignore_ascii_case(b"gzip") {
                &mut f.gzip
            } else if name.eq_ignore_ascii_case(b"identity") {
                &mut f.identity
            } else {
                continue;
            };
            slot.get_or_insert(q);
        }
        f
    }

    /// The q-value of a stored coding: its own member, else `*`.
    fn quality(&self, named: Option<u16>) -> Option<u16> {
        named.or(self.star)
    }
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
    let field = Field::parse(accept_encoding?);
    let mut best: Option<(u16, u8, u8)> = None; // (q, rank, code)
    for code in available {
        let (named, rank) = match code {
            encoding::BR => (field.br, 3),
            encoding::ZSTD => (field.zstd, 2),
            encoding::GZIP => (field.gzip, 1),
            _ => continue,
        };
        let q = field.quality(named).unwrap_or(0);
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
    // Only an `identity` member counts here, not `*`.
    match field.identity {
        Some(identity_q) if identity_q > q => None,
        _ => Some(code),
    }
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
        // The first member naming a coding counts; of several `*`, the last.
        assert_eq!(pick("br;q=0, br"), None);
        assert_eq!(pick("br, br;q=0"), Some(BR));
        assert_eq!(pick("*;q=0, *"), Some(BR));
        assert_eq!(pick("*, *;q=0"), None);
        assert_eq!(pick("identity;q=0.9, identity, br;q=0.95"), Some(BR));
        assert_eq!(pick(" gzip ;q=0.5 , Zstd;Q=0.4"), Some(GZIP));
        // `*` does not stand for identity.
        assert_eq!(pick("br;q=0.5, *;q=0.9"), Some(ZSTD));
    }
}
