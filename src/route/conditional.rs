//! Validators: the ETag of an asset and the `If-None-Match` comparison.

/// Writes `"<32 hex>"`, the strong ETag of a 16-byte content hash.
pub fn etag_value(hash: &[u8; 16]) -> [u8; 34] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 34];
    for (i, b) in hash.iter().enumerate() {
        out[1 + 2 * i] = HEX[(b >> 4) as usize];
        out[2 + 2 * i] = HEX[(b & 15) as usize];
    }
    out
}

/// Whether an `If-None-Match` field value matches the entity tag `etag`
/// (given with its quotes, e.g. `"abc"`), by weak comparison (RFC 9110
/// §13.1.2): the value is a comma-separated list, each member optionally
/// `W/`-prefixed, and `*` matches any current representation. An unquoted
/// token never matches. This deliberately goes beyond Cloudflare's
/// whole-string comparison (spec §4.3): a client holding several
/// representations must be able to revalidate.
pub fn if_none_match(field: &[u8], etag: &[u8]) -> bool {
    let field = trim(field);
    if field == b"*" {
        return true;
    }
    let mut rest = field;
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return false;
        }
        let tag_start = if rest.starts_with(b"W/") {
            &rest[2..]
        } else {
            rest
        };
        if tag_start.first() == Some(&b'"') {
            // A quoted entity tag: up to the closing quote.
            let Some(close) = tag_start[1..].iter().position(|&b| b == b'"') else {
                return false;
            };
            let tag = &tag_start[..close + 2];
            if tag == etag {
                return true;
            }
            rest = &tag_start[close + 2..];
        } else {
            // Not an entity tag; skip to the next member.
            match tag_start.iter().position(|&b| b == b',') {
                Some(i) => rest = &tag_start[i..],
                None => return false,
            }
        }
        rest = trim_start(rest);
        match rest.first() {
            Some(b',') => rest = &rest[1..],
            None => return false,
            Some(_) => return false,
        }
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
    &b[n..]
}

fn trim(b: &[u8]) -> &[u8] {
    let b = trim_start(b);
    let n = b
        .iter()
        .rev()
        .take_while(|c| **c == b' ' || **c == b'\t')
        .count();
    &b[..b.len() - n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_quoted_lower_hex() {
        let v = etag_value(&[0xab; 16]);
        assert_eq!(&v[..], format!("\"{}\"", "ab".repeat(16)).as_bytes());
    }

    #[test]
    fn if_none_match_lists_weak_and_star() {
        let e = b"\"abc\"";
        assert!(if_none_match(b"\"abc\"", e));
        assert!(if_none_match(b"W/\"abc\"", e));
        assert!(if_none_match(b" \"x\", W/\"abc\" ", e));
        assert!(if_none_match(b"*", e));
        assert!(!if_none_match(b"abc", e));
        assert!(!if_none_match(b"\"abcd\"", e));
        assert!(!if_none_match(b"\"x\", abc", e));
        assert!(!if_none_match(b"", e));
        assert!(!if_none_match(b"\"abc", e));
        assert!(if_none_match(b"junk, \"abc\"", e));
    }
}
