//! Refusing a `#fragment` in an HTTP/1 request-target (RFC 9112 §3.2: the
//! request-target has no fragment; CVE-2025-32395 class).
//!
//! hyper hands the target to `http::Uri`, which silently drops everything
//! from `#` on, so `/index.html#/../_redirects` would reach the router as
//! `/index.html`. This reader sits between the socket and hyper and follows
//! the HTTP/1 framing just enough to find each request line: in the target
//! it turns `#` into a byte the HTTP parser refuses, so hyper itself answers
//! 400. Whenever the framing is not certain (chunked or upgraded bodies, an
//! HTTP/2 preface, an oversized line) it stops looking for the rest of the
//! connection and passes bytes through untouched: it can miss a fragment,
//! but never alters a body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest header line that is followed; a longer one stops the filter
/// (hyper's own limits refuse such heads anyway).
const MAX_LINE: usize = 8 * 1024;

/// Where the next byte falls in the HTTP/1 stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Request line, before the first space (the method).
    Method { len: usize },
    /// Request line, inside the target.
    Target,
    /// Request line, after the target (the version).
    Version,
    /// A header line; `line` holds its start (for the framing fields).
    Header,
    /// `left` bytes of a Content-Length body.
    Body { left: u64 },
    /// Framing no longer followed: bytes pass untouched.
    Passthrough,
}

/// What this request's header lines said about the body.
#[derive(Debug, Default)]
struct Framing {
    content_length: Option<u64>,
    unknown: bool,
}

/// The byte a `#` in a request-target becomes: a control byte, which the
/// HTTP/1 parser refuses with 400.
const REFUSED: u8 = 0x01;

/// An HTTP/1 connection's read side with fragments made unparseable.
pub struct FragmentGuard<S> {
    inner: S,
    state: State,
    line: Vec<u8>,
    framing: Framing,
}

impl<S> FragmentGuard<S> {
    pub fn new(inner: S) -> Self {
        FragmentGuard {
            inner,
            state: State::Method { len: 0 },
            line: Vec::new(),
            framing: Framing::default(),
        }
    }

    /// Follows (and edits) freshly read bytes.
    fn scan(&mut self, bytes: &mut [u8]) {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                State::Passthrough => return,
                State::Body { left } => {
                    let take = left.min((bytes.len() - i) as u64);
                    i += take as usize;
                    let left = left - take;
                    self.state = if left == 0 {
                        State::Method { len: 0 }
                    } else {
                        State::Body { left }
                    };
                    continue;
                }
                State::Method { len } => match b {
                    // Blank lines before a request line are allowed.
                    b'\r' | b'\n' if len == 0 => {}
                    b' ' if len > 0 => self.state = State::Target,
                    // The HTTP/2 preface (`PRI * HTTP/2.0␍␊␍␊SM␍␊`) falls
                    // through to here at `␍` after `SM`: from then on, h2
                    // frames pass untouched.
                    _ if b.is_ascii_uppercase() && len < 32 => {
                        self.state = State::Method { len: len + 1 }
                    }
                    _ => self.state = State::Passthrough,
                },
                // The target, version and header lines are skipped a run
                // at a time (`memchr`), not byte by byte: this scan sees
                // every request the server answers.
                State::Target => match memchr::memchr3(b'#', b' ', b'\n', &bytes[i..]) {
                    None => return,
                    Some(k) => {
                        i += k;
                        match bytes[i] {
                            b'#' => bytes[i] = REFUSED,
                            b' ' => self.state = State::Version,
                            _ => self.state = State::Passthrough,
                        }
                    }
                },
                State::Version => match memchr::memchr(b'\n', &bytes[i..]) {
                    None => return,
                    Some(k) => {
                        i += k;
                        self.state = State::Header;
                        self.line.clear();
                        self.framing = Framing::default();
                    }
                },
                State::Header => {
                    let rest = &bytes[i..];
                    let end = memchr::memchr(b'\n', rest);
                    let part = &rest[..end.unwrap_or(rest.len())];
                    if self.line.len() + part.len() > MAX_LINE {
                        self.state = State::Passthrough;
                        return;
                    }
                    let Some(k) = end else {
                        self.line.extend_from_slice(part);
                        return;
                    };
                    // A line inside one read is looked at where it lies; only
                    // one split across reads is gathered in `line`.
                    let gathered;
                    let line = if self.line.is_empty() {
                        part
                    } else {
                        self.line.extend_from_slice(part);
                        gathered = std::mem::take(&mut self.line);
                        &gathered[..]
                    };
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.is_empty() {
                        self.state = self.after_head();
                    } else {
                        self.header_line(line);
                    }
                    i += k;
                }
            }
            i += 1;
        }
    }

    fn header_line(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            self.framing.unknown = true;
            return;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            match (n, self.framing.content_length) {
                (Some(n), None) => self.framing.content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => self.framing.unknown = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"connection")
                && value
                    .to_ascii_lowercase()
                    .windows(7)
                    .any(|w| w == b"upgrade")
        {
            self.framing.unknown = true;
        }
    }

    fn after_head(&mut self) -> State {
        match self.framing {
            Framing { unknown: true, .. } => State::Passthrough,
            Framing {
                content_length: Some(n),
                ..
            } if n > 0 => State::Body { left: n },
            _ => State::Method { len: 0 },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FragmentGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && self.state != State::Passthrough {
            let fresh = &mut buf.filled_mut()[before..];
            self.scan(fresh);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FragmentGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `step` bytes; returns what hyper would see.
    fn run(input: &[u8], step: usize) -> Vec<u8> {
        run_reads(input, &[step])
    }

    /// Feeds `input` in reads of the sizes in `reads`, taken in turn.
    fn run_reads(input: &[u8], reads: &[usize]) -> Vec<u8> {
        let mut g = FragmentGuard::new(());
        let mut out = input.to_vec();
        let (mut at, mut sizes) = (0, reads.iter().cycle());
        while at < out.len() {
            let n = (*sizes.next().unwrap()).min(out.len() - at);
            g.scan(&mut out[at..at + n]);
            at += n;
        }
        out
    }

    #[test]
    fn fragments_in_targets_are_refused_bodies_untouched() {
        let input = b"GET /index.html#/../_redirects HTTP/1.1\r\nHost: a\r\n\r\n\
POST /w#x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\nbody#GET /#x\
GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /b?q=1#f HTTP/1.1\r\n\r\n";
        for step in [1, 3, 7, input.len()] {
            let out = run(input, step);
            let text = String::from_utf8_lossy(&out).into_owned();
            assert!(
                text.contains("GET /index.html\u{1}/../_redirects HTTP/1.1"),
                "{step}: {text}"
            );
            assert!(text.contains("POST /w\u{1}x"), "{step}");
            assert!(
                text.contains("\r\n\r\nbody#GET /#x"),
                "{step}: the body is untouched"
            );
            assert!(text.contains("GET /b?q=1\u{1}f HTTP"), "{step}");
            assert_eq!(out.iter().filter(|&&b| b == REFUSED).count(), 3, "{step}");
        }
    }

    #[test]
    fn uncertain_framing_passes_everything_through() {
        for input in [
            &b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab#cd\r\n0\r\n\r\nGET /#x HTTP/1.1\r\n\r\n"[..],
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n#####",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n#",
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nab#dGET /#x HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(run(input, 5), input, "{}", String::from_utf8_lossy(input));
        }
    }

    /// The scan skips runs with `memchr` and gathers a header line only
    /// when a read splits it, so every byte where a read may end is a place
    /// for it to go wrong: whatever the reads, hyper must see the same
    /// bytes, and the only edit is a `#` made unparseable.
    #[test]
    fn any_split_of_the_stream_gives_the_same_bytes() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
        // Requests with fragments in their targets and `#` in their
        // bodies, framed by Content-Length (or by something the filter
        // gives up on), now and then with noise between them.
        let eol = prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..])];
        let header = prop_oneof![
            Just(&b"Host: a"[..]),
            Just(&b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]),
            Just(&b"Transfer-Encoding: chunked"[..]),
            Just(&b"Connection: Upgrade"[..]),
            Just(&b"no colon"[..]),
        ];
        let request = (
            prop_oneof![Just(&b"GET"[..]), Just(&b"POST"[..])],
            "[/a-z?#]{1,12}",
            prop::collection::vec((header, eol.clone()), 0..4),
            "[a-z# ]{0,12}",
            any::<bool>(),
            eol,
        )
            .prop_map(|(method, target, headers, body, framed, eol)| {
                let mut r = [method, b" ", target.as_bytes(), b" HTTP/1.1", eol].concat();
                for (h, e) in headers {
                    r.extend_from_slice(&[h, e].concat());
                }
                if framed && !body.is_empty() {
                    r.extend_from_slice(format!("Content-Length: {}", body.len()).as_bytes());
                    r.extend_from_slice(eol);
                }
                r.extend_from_slice(eol);
                if framed {
                    r.extend_from_slice(body.as_bytes());
                }
                r
            });
        let noise = prop::collection::vec(any::<u8>(), 0..6);
        let stream = prop::collection::vec(prop_oneof![8 => request, 1 => noise], 0..12);
        let reads = prop::collection::vec(1usize..40, 1..12);
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
            ..Config::default()
        });
        runner
            .run(&(stream, reads), |(pieces, reads)| {
                let input = pieces.concat();
                let whole = run(&input, input.len().max(1));
                let split = run_reads(&input, &reads);
                prop_assert_eq!(&split, &whole, "reads of {:?}", reads);
                for (was, is) in input.iter().zip(&whole) {
                    if was != is {
                        prop_assert_eq!((*was, *is), (b'#', REFUSED));
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn header_lines_up_to_the_cap_are_followed_longer_ones_stop_the_filter() {
        let at_cap = format!("X-A: {}", "a".repeat(MAX_LINE - 6));
        let over = format!("X-A: {}", "a".repeat(MAX_LINE - 4));
        for (line, followed) in [(at_cap, true), (over, false)] {
            let input = format!("GET /a HTTP/1.1\r\n{line}\r\n\r\nGET /b#c HTTP/1.1\r\n\r\n");
            for step in [1, 100, input.len()] {
                let out = run(input.as_bytes(), step);
                let refused = out.iter().filter(|&&b| b == REFUSED).count();
                assert_eq!(refused, usize::from(followed), "{} {step}", line.len());
            }
        }
    }
}
