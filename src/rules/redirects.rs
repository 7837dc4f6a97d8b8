//! `_redirects`: redirects and 200 rewrites evaluated before asset lookup
//! (spec §6).
//!
//! [`parse`] follows Cloudflare's `parseRedirects`: `from to [status]` lines,
//! inline `#` comments from the third token on, statuses 200/301/302/303/
//! 307/308 (default 302), 2,000-char lines, 2,000 static plus 100 dynamic
//! rules with invalid lines using up the quotas once `from` is valid (§10
//! item 4), the html_handling-dependent infinite-loop check, duplicate
//! `from`s (first wins) and relative-only 200 targets. Static rules (no `*`
//! or `:name`, and no dynamic rule above them) are exposed as a list for an
//! exact-match table; dynamic rules are tried in order.
//!
//! Deviations from Cloudflare, chosen for safety (each one only rejects a
//! line with a warning, or escapes text that would otherwise be injected):
//! * A relative target whose normalised path starts with `//` (for example
//!   `//evil.com/:splat`, or `/..//evil.com`) is rejected, static or dynamic;
//!   upstream sends a static one off-site (spec §10 item 10, bad-trees BT-42).
//! * A relative target containing `\` is rejected: browsers read `/\host` as
//!   `//host` (BT-42, security.md row 7).
//! * An absolute target's host must be letters, digits, `-` and `.`, with an
//!   optional numeric port; a placeholder or `*` there is rejected (BT-43),
//!   as are userinfo and anything else that could move the authority.
//! * Lines holding a control character other than TAB (stray CR, NUL, DEL,
//!   C1) are rejected (BT-44); CRLF line ends and a leading BOM are fine.
//! * Statuses must be plain decimal digits (JavaScript's `Number` would also
//!   take `0x12D` or `3.01e2`).
//! * Static redirect cycles (`/a /b 301` + `/b /a 301`, or `/a /a?x 301`)
//!   and dynamic rules that redirect to a fixed path they match themselves
//!   (`/* /x 301`) are rejected at the line that closes the loop (BT-41).
//! * More than one `*`, `*` with `:splat`, or a repeated placeholder in
//!   `from` is a warning; upstream's regex compile throws and drops the rule
//!   silently. Such lines still use up the dynamic quota.
//! * Captured text is percent-encoded on substitution (controls, non-ASCII,
//!   space, `\`, `?`, `#`, and similar; see [`Escape::Location`]), the
//!   final `Location` never starts with `//` or `/\` unless the rule's target
//!   was written as `https://host/…`, and it never holds a control byte or a
//!   raw non-ASCII byte (security.md rows 8 and 9, workers-sdk PR#10402).

use std::collections::{HashMap, HashSet};

use crate::config::HtmlHandling;

use super::pattern::{
    find_control, has_placeholder, normalize_url, resolve_dot_segments, utf16_len_capped, Capture,
    Captures, Escape, Pattern, PatternRef, PatternToken, Warning, MAX_CAPTURES, MAX_LINE_LENGTH,
};

/// Most static rules Cloudflare keeps.
pub const MAX_STATIC_REDIRECTS: usize = 2000;
/// Most dynamic rules Cloudflare keeps; the 101st stops parsing.
pub const MAX_DYNAMIC_REDIRECTS: usize = 100;

const PERMITTED_STATUSES: [u16; 6] = [200, 301, 302, 303, 307, 308];

/// What a rule does once it matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// 200 (rewrite) or 301/302/303/307/308.
    pub status: u16,
    /// Normalised target: `/path[?query][#fragment]` or
    /// `https://host[:port]/path[?query][#fragment]`. Dynamic targets may
    /// hold `:name` placeholders.
    pub to: String,
    /// 1-based line in `_redirects`.
    pub line: usize,
}

/// A rule whose `from` has placeholders or a splat (or that follows one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicRedirect {
    pub pattern: Pattern,
    pub redirect: Redirect,
}

/// The result of a matching rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectOutcome {
    /// Answer with this status and `Location`, whatever the method.
    Redirect { status: u16, location: String },
    /// 200 rule: continue asset lookup at this raw (still percent-encoded)
    /// path; the request's own query is kept for any later redirect.
    Rewrite { path: String },
}

/// All rules of a `_redirects` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectRules {
    statics: Vec<(String, Redirect)>,
    static_index: HashMap<String, usize>,
    dynamics: Vec<DynamicRedirect>,
}

impl RedirectRules {
    /// Static rules as `(from, redirect)`: `from` is the exact raw pathname
    /// to look up (no query). Each `from` occurs once.
    pub fn static_rules(&self) -> &[(String, Redirect)] {
        &self.statics
    }

    /// Dynamic rules, in evaluation order.
    pub fn dynamic_rules(&self) -> &[DynamicRedirect] {
        &self.dynamics
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.statics.is_empty() && self.dynamics.is_empty()
    }

    /// Evaluates the rules for one request (spec §6.2): static rules by exact
    /// pathname, then dynamic rules in order; the first match wins.
    ///
    /// `raw_path` is the pathname as the URL parser produced it (still
    /// percent-encoded, dot segments resolved, no query). `query` is the raw
    /// query without `?`. `origin` is the request's `scheme://host[:port]`
    /// (default port omitted); an absolute target with the same origin is
    /// answered with a relative `Location`. With `None`, absolute targets
    /// stay absolute.
    pub fn evaluate(
        &self,
        raw_path: &str,
        query: Option<&str>,
        origin: Option<&str>,
    ) -> Option<RedirectOutcome> {
        self.match_static(raw_path, query, origin)
            .or_else(|| self.match_dynamic(raw_path, query, origin))
    }

    /// The static rule for `raw_path`, if any.
    pub fn match_static(
        &self,
        raw_path: &str,
        query: Option<&str>,
        origin: Option<&str>,
    ) -> Option<RedirectOutcome> {
        let &i = self.static_index.get(raw_path)?;
        let (_, redirect) = self.statics.get(i)?;
        Some(redirect.outcome(query, origin))
    }

    /// The first dynamic rule matching `raw_path`, if any. Allocates nothing
    /// when no rule matches.
    pub fn match_dynamic(
        &self,
        raw_path: &str,
        query: Option<&str>,
        origin: Option<&str>,
    ) -> Option<RedirectOutcome> {
        let mut caps = [Capture::default(); MAX_CAPTURES];
        let rule = self
            .dynamics
            .iter()
            .find(|r| r.pattern.matches(None, raw_path, &mut caps))?;
        Some(dynamic_outcome(
            rule.pattern.view(),
            rule.redirect.status,
            &rule.redirect.to,
            raw_path,
            &caps,
            query,
            origin,
        ))
    }
}

/// The outcome of a dynamic rule whose `pattern` matched `raw_path` (leaving
/// `caps`): `to` with the captures substituted, slashes collapsed unless it
/// has a scheme, then resolved like a static target.
pub fn dynamic_outcome<T: PatternToken>(
    pattern: PatternRef<'_, T>,
    status: u16,
    to: &str,
    raw_path: &str,
    caps: &Captures,
    query: Option<&str>,
    origin: Option<&str>,
) -> RedirectOutcome {
    let mut target = String::with_capacity(to.len() + raw_path.len());
    pattern.substitute(to, None, raw_path, caps, Escape::Location, &mut target);
    if !has_scheme(&target) {
        target = collapse_slashes(&target);
    }
    build_outcome(status, &target, query, origin)
}

/// The outcome of a static rule: see [`Redirect::outcome`].
pub fn static_outcome(
    status: u16,
    to: &str,
    query: Option<&str>,
    origin: Option<&str>,
) -> RedirectOutcome {
    build_outcome(status, to, query, origin)
}

/// Whether `status` is one a `_redirects` rule may have.
pub fn is_permitted_status(status: u16) -> bool {
    PERMITTED_STATUSES.contains(&status)
}

impl Redirect {
    /// The outcome of this rule used as a static rule (no substitution, no
    /// slash collapsing). See [`RedirectRules::evaluate`] for the arguments.
    pub fn outcome(&self, query: Option<&str>, origin: Option<&str>) -> RedirectOutcome {
        build_outcome(self.status, &self.to, query, origin)
    }
}

/// Cloudflare's `/^(\w+:\/\/)/`.
fn has_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(k) => {
            k > 0
                && s.as_bytes()[..k]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

/// Cloudflare's `replace(/\/+/g, "/")` over the whole target.
fn collapse_slashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_slash = false;
    for c in s.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out
}

/// Splits `path?query#fragment`.
fn split_target(s: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, frag) = match s.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (s, None),
    };
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q), frag),
        None => (rest, None, frag),
    }
}

/// Resolves `target` against the request as a browser would, then renders
/// the `Location` (or the rewrite path) per spec §6.2.
fn build_outcome(
    status: u16,
    target: &str,
    query: Option<&str>,
    origin: Option<&str>,
) -> RedirectOutcome {
    let (authority, tail) = match target.strip_prefix("https://") {
        Some(rest) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (host, tail) = rest.split_at(end);
            (Some(host), tail)
        }
        None => (None, target),
    };
    let (path, t_query, t_frag) = split_target(tail);
    let mut path = if path.is_empty() {
        "/".to_string()
    } else {
        resolve_dot_segments(path)
    };
    let same_origin = match (authority, origin) {
        (None, _) => true,
        (Some(host), Some(origin)) => origin_matches(host, origin),
        (Some(_), None) => false,
    };
    if same_origin {
        // A relative Location must stay path-absolute: `//x` or `/\x` would
        // leave the site.
        let trimmed = path.trim_start_matches(['/', '\\']);
        if trimmed.len() + 1 != path.len() {
            path = format!("/{trimmed}");
        }
    }
    if status == 200 {
        return RedirectOutcome::Rewrite {
            path: sanitize(&path),
        };
    }
    let mut location = String::with_capacity(target.len() + query.map_or(0, str::len) + 2);
    if let (Some(host), false) = (authority, same_origin) {
        location.push_str("https://");
        location.push_str(host);
    }
    location.push_str(&path);
    match (
        t_query.filter(|q| !q.is_empty()),
        query.filter(|q| !q.is_empty()),
    ) {
        (Some(q), _) | (None, Some(q)) => {
            location.push('?');
            location.push_str(q);
        }
        (None, None) => {}
    }
    if let Some(f) = t_frag.filter(|f| !f.is_empty()) {
        location.push('#');
        location.push_str(f);
    }
    RedirectOutcome::Redirect {
        status,
        location: sanitize(&location),
    }
}

/// Whether `https://host` is the request's origin.
fn origin_matches(host: &str, origin: &str) -> bool {
    let host = host.strip_suffix(":443").unwrap_or(host);
    let origin = origin.trim_end_matches('/');
    let origin = origin.strip_suffix(":443").unwrap_or(origin);
    match origin.get(..8) {
        Some(scheme) if scheme.eq_ignore_ascii_case("https://") => origin
            .get(8..)
            .is_some_and(|h| h.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// Last line of defence for header text: percent-encodes controls, space,
/// `\`, DEL and non-ASCII bytes. Everything we build is already clean, so
/// this only matters for an unexpected raw query or path from the caller.
fn sanitize(s: &str) -> String {
    if s.bytes().all(|b| b > 0x20 && b < 0x7f && b != b'\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if b > 0x20 && b < 0x7f && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cloudflare's `URL_REGEX` (`^https:\/\/+[^/]+`): an absolute URL with a
/// non-empty host.
fn split_https(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("https://")?.trim_start_matches('/');
    let end = rest.find('/').unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    (!host.is_empty()).then_some((host, path))
}

fn not_a_url() -> String {
    "URLs should either be relative (e.g. begin with a forward-slash), or use HTTPS (e.g. begin with \"https://\").".into()
}

/// Validates and normalises a `to` token. Returns the target and whether it
/// is absolute.
fn parse_target(token: &str) -> Result<(String, bool), String> {
    if let Some((host, path)) = split_https(token) {
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (n, Some(p)),
            _ => (host, None),
        };
        if has_placeholder(host) || host.contains('*') {
            return Err(format!(
                "Placeholders and splats cannot be used in the host of a target ({token})."
            ));
        }
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid_name || port.is_some_and(|p| p.len() > 5) {
            return Err(format!("Invalid host in target URL {token}."));
        }
        let path = path.strip_prefix('/').unwrap_or(path);
        let parts = normalize_url(&format!("/{path}"), false);
        let mut out = format!("https://{}", host.to_ascii_lowercase());
        push_parts(
            &mut out,
            &parts.path,
            parts.query.as_deref(),
            parts.fragment.as_deref(),
        );
        return Ok((out, true));
    }
    if !token.starts_with('/') {
        return Err(not_a_url());
    }
    let parts = normalize_url(token, false);
    if parts.path.starts_with("//") {
        return Err(format!(
            "Target {token} would be read as a protocol-relative URL (another host)."
        ));
    }
    if parts.path.contains('\\') {
        return Err(format!(
            "Target {token} contains a backslash, which browsers read as `/`; write %5C."
        ));
    }
    let mut out = String::with_capacity(token.len());
    push_parts(
        &mut out,
        &parts.path,
        parts.query.as_deref(),
        parts.fragment.as_deref(),
    );
    Ok((out, false))
}

fn push_parts(out: &mut String, path: &str, query: Option<&str>, fragment: Option<&str>) {
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
}

/// Cloudflare's `/\/index(.html)?$/` (the `.` is unescaped upstream, so it
/// matches any character).
fn ends_with_index(to: &str) -> bool {
    if to.ends_with("/index") {
        return true;
    }
    to.strip_suffix("html")
        .and_then(|s| {
            let mut chars = s.chars();
            chars.next_back()?;
            Some(chars.as_str().ends_with("/index"))
        })
        .unwrap_or(false)
}

fn parse_status(token: &str) -> Option<u16> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = token.trim_start_matches('0');
    let n: u16 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    PERMITTED_STATUSES.contains(&n).then_some(n)
}

/// Parses a `_redirects` file. Never fails: bad lines come back as warnings
/// with their line numbers and are ignored. `html_handling` only affects the
/// infinite-loop check (`/ /index.html` is fine with `none`).
pub fn parse(text: &str, html_handling: HtmlHandling) -> (RedirectRules, Vec<Warning>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut warnings = Vec::new();
    let mut statics: Vec<(String, Redirect)> = Vec::new();
    let mut dynamics: Vec<DynamicRedirect> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let (mut n_static, mut n_dynamic) = (0usize, 0usize);
    let mut static_allowed = true;
    // First line over the static quota; one summary warning instead of
    // thousands of identical ones.
    let mut excess_static: Option<usize> = None;

    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if utf16_len_capped(line, MAX_LINE_LENGTH) > MAX_LINE_LENGTH {
            warnings.push(Warning::line(
                n,
                format!(
                    "Ignoring line as it exceeds the maximum allowed length of {MAX_LINE_LENGTH}."
                ),
            ));
            continue;
        }
        if let Some(c) = find_control(line) {
            warnings.push(Warning::line(
                n,
                format!("Control character {c:?} is not allowed in a rule."),
            ));
            continue;
        }
        let mut tokens: Vec<&str> = line.split_whitespace().collect();
        if let Some(k) = tokens.iter().skip(2).position(|t| t.starts_with('#')) {
            tokens.truncate(k + 2);
        }
        let (from_tok, to_tok, status_tok) = match tokens.as_slice() {
            [f, t] => (*f, *t, "302"),
            [f, t, s] => (*f, *t, *s),
            other => {
                warnings.push(Warning::line(
                    n,
                    format!(
                        "Expected exactly 2 or 3 whitespace-separated tokens. Got {}.",
                        other.len()
                    ),
                ));
                continue;
            }
        };

        if split_https(from_tok).is_some() {
            warnings.push(Warning::line(
                n,
                format!("Only relative URLs are allowed. Skipping absolute URL {from_tok}."),
            ));
            continue;
        }
        // Percent-encoding never creates `*` or `:name`, so a token without
        // them is static; over the static quota it can be dropped before the
        // (allocating) normalisation, which keeps huge files cheap.
        let maybe_dynamic = from_tok.contains('*') || has_placeholder(from_tok);
        if static_allowed && !maybe_dynamic && n_static >= MAX_STATIC_REDIRECTS {
            n_static += 1;
            excess_static.get_or_insert(n);
            continue;
        }
        let from = if from_tok.starts_with('/') {
            normalize_url(from_tok, false).path
        } else {
            normalize_url(&format!("/{from_tok}"), false).path
        };

        let dynamic = !static_allowed || from.contains('*') || has_placeholder(&from);
        if dynamic {
            static_allowed = false;
            n_dynamic += 1;
            if n_dynamic > MAX_DYNAMIC_REDIRECTS {
                warnings.push(Warning::limit(
                    n,
                    format!(
                        "Maximum number of dynamic rules supported is {MAX_DYNAMIC_REDIRECTS}. Skipping the rest of the file."
                    ),
                ));
                break;
            }
        } else {
            n_static += 1;
            if n_static > MAX_STATIC_REDIRECTS {
                excess_static.get_or_insert(n);
                continue;
            }
        }

        // From here on, rejected lines have used up their quota (§10 item 4).
        let (to, absolute) = match parse_target(to_tok) {
            Ok(t) => t,
            Err(msg) => {
                warnings.push(Warning::line(n, msg));
                continue;
            }
        };
        let Some(status) = parse_status(status_tok) else {
            warnings.push(Warning::line(
                n,
                format!(
                    "Valid status codes are 200, 301, 302 (default), 303, 307, or 308. Got {status_tok}."
                ),
            ));
            continue;
        };
        if !absolute {
            let wildcard_to_index = from.ends_with("/*") && ends_with_index(&to);
            let root_to_index = from.ends_with('/') && ends_with_index(&to);
            if wildcard_to_index || (root_to_index && html_handling != HtmlHandling::None) {
                warnings.push(Warning::line(
                    n,
                    "Infinite loop detected in this rule and has been ignored. This will cause a redirect to strip `.html` or `/index` and end up triggering this rule again.",
                ));
                continue;
            }
        }
        if !seen.insert(from.clone()) {
            warnings.push(Warning::line(
                n,
                format!("Ignoring duplicate rule for path {from}."),
            ));
            continue;
        }
        if status == 200 && absolute {
            warnings.push(Warning::line(
                n,
                format!("Proxy (200) redirects can only point to relative paths. Got {to}"),
            ));
            continue;
        }
        let redirect = Redirect {
            status,
            to,
            line: n,
        };
        if dynamic {
            match Pattern::compile(&from, false) {
                Ok(pattern) => dynamics.push(DynamicRedirect { pattern, redirect }),
                Err(e) => warnings.push(Warning::line(n, format!("Invalid path {from}: {e}"))),
            }
        } else {
            statics.push((from, redirect));
        }
    }

    if let Some(first) = excess_static {
        warnings.push(Warning::limit(
            first,
            format!(
                "Maximum number of static rules supported is {MAX_STATIC_REDIRECTS}; {} more were ignored, starting at this line.",
                n_static.saturating_sub(MAX_STATIC_REDIRECTS)
            ),
        ));
    }
    remove_static_cycles(&mut statics, &mut warnings);
    let static_index: HashMap<String, usize> = statics
        .iter()
        .enumerate()
        .map(|(i, (from, _))| (from.clone(), i))
        .collect();
    remove_dynamic_self_loops(&mut dynamics, &static_index, &mut warnings);
    warnings.sort_by_key(|w| w.line);
    (
        RedirectRules {
            statics,
            static_index,
            dynamics,
        },
        warnings,
    )
}

/// The path a relative, non-rewrite target sends the client to.
fn redirect_path(r: &Redirect) -> Option<&str> {
    if r.status == 200 || r.to.starts_with("https://") {
        return None;
    }
    Some(split_target(&r.to).0)
}

/// Drops one rule (the latest line) from every cycle of static redirects.
/// Each static rule has at most one successor, so this is a linear walk.
fn remove_static_cycles(statics: &mut Vec<(String, Redirect)>, warnings: &mut Vec<Warning>) {
    let index: HashMap<&str, usize> = statics
        .iter()
        .enumerate()
        .map(|(i, (f, _))| (f.as_str(), i))
        .collect();
    let next: Vec<Option<usize>> = statics
        .iter()
        .map(|(_, r)| redirect_path(r).and_then(|p| index.get(p).copied()))
        .collect();
    // 0 = unvisited, 1 = on the current walk, 2 = done.
    let mut state = vec![0u8; statics.len()];
    let mut drop = vec![false; statics.len()];
    let mut walk = Vec::new();
    for start in 0..statics.len() {
        walk.clear();
        let mut cur = Some(start);
        while let Some(c) = cur {
            match state.get(c) {
                Some(0) => {
                    state[c] = 1;
                    walk.push(c);
                    cur = next.get(c).copied().flatten();
                }
                Some(1) => {
                    let from = walk.iter().position(|&w| w == c).unwrap_or(0);
                    let cycle = walk.get(from..).unwrap_or(&[]);
                    if let Some(&last) = cycle.iter().max_by_key(|&&w| statics[w].1.line) {
                        drop[last] = true;
                    }
                    break;
                }
                _ => break,
            }
        }
        for &w in &walk {
            state[w] = 2;
        }
    }
    let mut i = 0;
    statics.retain(|(from, r)| {
        let keep = !drop.get(i).copied().unwrap_or(false);
        i += 1;
        if !keep {
            warnings.push(Warning::line(
                r.line,
                format!("Redirect loop: {from} eventually redirects back to itself; rule ignored."),
            ));
        }
        keep
    });
}

/// Drops dynamic redirects whose fixed target is matched by the rule itself
/// (and by no static or earlier dynamic rule), e.g. `/* /x 301`.
fn remove_dynamic_self_loops(
    dynamics: &mut Vec<DynamicRedirect>,
    statics: &HashMap<String, usize>,
    warnings: &mut Vec<Warning>,
) {
    let mut caps = [Capture::default(); MAX_CAPTURES];
    let mut looping = vec![false; dynamics.len()];
    for (i, rule) in dynamics.iter().enumerate() {
        let Some(path) = redirect_path(&rule.redirect) else {
            continue;
        };
        if has_placeholder(&rule.redirect.to) || statics.contains_key(path) {
            continue;
        }
        let first = dynamics[..i]
            .iter()
            .zip(&looping)
            .filter(|(_, &l)| !l)
            .any(|(r, _)| r.pattern.matches(None, path, &mut caps));
        if !first && rule.pattern.matches(None, path, &mut caps) {
            looping[i] = true;
        }
    }
    let mut i = 0;
    dynamics.retain(|r| {
        let keep = !looping.get(i).copied().unwrap_or(false);
        i += 1;
        if !keep {
            warnings.push(Warning::line(
                r.redirect.line,
                format!(
                    "Redirect loop: {} redirects to {}, which it matches itself; rule ignored.",
                    r.pattern.source(),
                    r.redirect.to
                ),
            ));
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::super::pattern::WarningKind;
    use super::*;
    use std::time::Instant;

    /// Parsing must be linear: `budget_ms` in an optimised build, with
    /// headroom for unoptimised test builds on a shared machine.
    fn assert_fast(start: Instant, budget_ms: u128) {
        let took = start.elapsed();
        println!("parsed in {took:?}");
        let budget = if cfg!(debug_assertions) {
            budget_ms * 5
        } else {
            budget_ms
        };
        assert!(took.as_millis() < budget, "took {took:?}");
    }

    const ORIGIN: Option<&str> = Some("https://example.com");

    fn conformance_file(name: &str) -> String {
        let local = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/");
        std::fs::read_to_string(format!("{local}{name}"))
            .or_else(|_| std::fs::read_to_string(format!("/work/main/tests/conformance/{name}")))
            .unwrap_or_else(|e| panic!("cannot read conformance file {name}: {e}"))
    }

    fn line_warnings(w: &[Warning]) -> Vec<usize> {
        let mut v: Vec<usize> = w
            .iter()
            .filter(|w| w.kind == WarningKind::Line)
            .map(|w| w.line)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Evaluates a request target the way the router would: WHATWG-parsed
    /// path, raw query.
    fn eval(rules: &RedirectRules, target: &str) -> Option<RedirectOutcome> {
        let u = normalize_url(target, true);
        rules.evaluate(&u.path, u.query.as_deref(), ORIGIN)
    }

    fn run_case(case: &serde_json::Value) -> Result<(), String> {
        let text = case["redirects_file"].as_str().ok_or("no redirects_file")?;
        let request = case["request_path"].as_str().ok_or("no request_path")?;
        let (rules, warnings) = parse(text, HtmlHandling::AutoTrailingSlash);
        let got = eval(&rules, request);
        let expect = &case["expect"];
        let mut errors = Vec::new();
        let ok = match (expect["status"].as_u64(), &got) {
            (None, None) => true,
            (Some(200), Some(RedirectOutcome::Rewrite { path })) => {
                expect["proxy_to"].as_str() == Some(path.as_str())
            }
            (Some(s), Some(RedirectOutcome::Redirect { status, location })) => {
                u64::from(*status) == s && expect["location"].as_str() == Some(location.as_str())
            }
            _ => false,
        };
        if !ok {
            errors.push(format!("expected {expect}, got {got:?}"));
        }
        let want: Vec<usize> = case["expect_invalid_lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
            .collect();
        let got_lines = line_warnings(&warnings);
        if got_lines != want {
            errors.push(format!(
                "invalid lines: expected {want:?}, got {got_lines:?} ({warnings:?})"
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    #[test]
    fn conformance_redirects_rules() {
        let text = conformance_file("redirects_rules.jsonl");
        let (mut passed, mut failed) = (0, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
            match run_case(&case) {
                Ok(()) => passed += 1,
                Err(e) => {
                    failed += 1;
                    println!("FAIL {}: {e}", case["id"]);
                }
            }
        }
        println!("redirects_rules.jsonl: {passed} passed, {failed} failed");
        assert_eq!(failed, 0);
        assert!(passed > 0);
    }

    fn redirect(rules: &RedirectRules, target: &str) -> Option<(u16, String)> {
        match eval(rules, target)? {
            RedirectOutcome::Redirect { status, location } => Some((status, location)),
            RedirectOutcome::Rewrite { .. } => None,
        }
    }

    fn rules(text: &str) -> (RedirectRules, Vec<usize>) {
        let (r, w) = parse(text, HtmlHandling::AutoTrailingSlash);
        (r, line_warnings(&w))
    }

    #[test]
    fn hostile_long_line() {
        let text = format!("/a /b 301\n/x {} 301\n/c /d", "/y".repeat(1 << 19));
        let start = Instant::now();
        let (r, lines) = rules(&text);
        assert_fast(start, 500);
        assert_eq!(lines, vec![2]);
        assert_eq!(r.static_rules().len(), 2);
    }

    #[test]
    fn hostile_many_lines() {
        let mut text: String = (0..100_000)
            .map(|i| format!("/s/{i} /t/{i} 301\n"))
            .collect();
        text.push_str(
            &(0..200)
                .map(|i| format!("/d/{i}/* /e/:splat\n"))
                .collect::<String>(),
        );
        let start = Instant::now();
        let (r, w) = parse(&text, HtmlHandling::AutoTrailingSlash);
        assert_fast(start, 1000);
        assert_eq!(r.static_rules().len(), MAX_STATIC_REDIRECTS);
        assert_eq!(r.dynamic_rules().len(), MAX_DYNAMIC_REDIRECTS);
        assert!(line_warnings(&w).is_empty());
        assert_eq!(redirect(&r, "/s/1999"), Some((301, "/t/1999".into())));
        assert_eq!(redirect(&r, "/s/2000"), None);
        assert_eq!(redirect(&r, "/d/99/q"), Some((302, "/e/q".into())));
        assert_eq!(redirect(&r, "/d/100/q"), None);
        // Invalid lines use up the quota.
        let mut bad: String = (0..2000).map(|i| format!("/s/{i} /t 999\n")).collect();
        bad.push_str("/ok /fine 301\n");
        let (r, lines) = rules(&bad);
        assert_eq!(lines.len(), 2000);
        assert!(r.static_rules().is_empty());
    }

    #[test]
    fn loops() {
        let (r, lines) = rules("/a /b 301\n/b /a 301\n/c /c?x=1 302\n/* /index.html 301\n");
        assert_eq!(lines, vec![2, 3, 4]);
        assert_eq!(redirect(&r, "/a"), Some((301, "/b".into())));
        assert_eq!(redirect(&r, "/b"), None);
        let (_, lines) = rules("/x /y 301\n/y /z 301\n/z /x 301\n/q /x 301\n");
        assert_eq!(lines, vec![3]);
        // `/ /index.html` only loops when html_handling strips index.html.
        let (r, w) = parse("/ /index.html 301", HtmlHandling::None);
        assert!(w.is_empty());
        assert_eq!(redirect(&r, "/"), Some((301, "/index.html".into())));
        // A dynamic rule sending everything to one page it also matches.
        let (_, lines) = rules("/* /maintenance 302\n");
        assert_eq!(lines, vec![1]);
        let (r, lines) = rules("/maintenance /maintenance.html 200\n/* /maintenance 302\n");
        assert!(lines.is_empty());
        assert_eq!(redirect(&r, "/x"), Some((302, "/maintenance".into())));
        // Rewrites never chain, so they never loop.
        let (_, lines) = rules("/* /foo 200\n");
        assert!(lines.is_empty());
    }

    #[test]
    fn control_characters() {
        let (r, lines) =
            rules("/a /b\r\n/c\r/d /e\n/f /g\u{0}h\n/i\t/j\t301\n/k /l\u{85}m\n/m /n\u{7f}\n");
        assert_eq!(lines, vec![2, 3, 5, 6]);
        assert_eq!(redirect(&r, "/a"), Some((302, "/b".into())));
        assert_eq!(redirect(&r, "/i"), Some((301, "/j".into())));
        let (r, lines) = rules("\u{feff}/a /b 301");
        assert!(lines.is_empty());
        assert_eq!(redirect(&r, "/a"), Some((301, "/b".into())));
    }

    #[test]
    fn dangerous_targets() {
        let text = "/a //evil.com/:splat\n/b /\\evil.com\n/c javascript:alert(1)\n/d data:text/html,x\n/go/* https://:splat.example.org/\n/go2/* https://example.org:splat\n/e http://evil.com\n/f https://user@evil.com/\n/g /..//evil.com\n/h /x\\y\n/i 999\n/j /k abc\n/l /m 200!\n/n https://ok.example:8443/p 301\n";
        let (r, lines) = rules(text);
        assert_eq!(lines, (1..=13).collect::<Vec<_>>());
        assert_eq!(
            redirect(&r, "/n?x=1"),
            Some((301, "https://ok.example:8443/p?x=1".into()))
        );
    }

    #[test]
    fn splat_cannot_leave_the_site() {
        let (r, _) = rules("/foo/* /:splat 301\n/old/* /:splat 301\n/bar/:x /:x/ok 302\n");
        for target in [
            "/foo//evil.example",
            "/foo///evil.example",
            "/foo/%2F%2Fevil.example",
            "/foo/%5Cevil.example",
            "/foo/%09/evil.example",
            "/foo/\\evil.example",
        ] {
            let (_, loc) = redirect(&r, target).unwrap_or_else(|| panic!("{target} matches"));
            assert!(loc.starts_with('/'), "{target} -> {loc}");
            assert!(
                !loc.starts_with("//") && !loc.starts_with("/\\"),
                "{target} -> {loc}"
            );
        }
        assert_eq!(
            redirect(&r, "/foo//evil.example"),
            Some((301, "/evil.example".into()))
        );
        // Raw bytes handed over by a lax caller are escaped, not passed on.
        let out = r.evaluate("/foo/\\\\evil.example", None, ORIGIN);
        assert_eq!(
            out,
            Some(RedirectOutcome::Redirect {
                status: 301,
                location: "/%5C%5Cevil.example".into()
            })
        );
        let out = r.evaluate("/bar/a\r\nSet-Cookie:x", Some("q=\r\n"), ORIGIN);
        let Some(RedirectOutcome::Redirect { location, .. }) = out else {
            panic!("expected a redirect")
        };
        assert_eq!(location, "/a%0D%0ASet-Cookie:x/ok?q=%0D%0A");
        assert!(http::HeaderValue::from_str(&location).is_ok());
    }

    #[test]
    fn encoded_crlf_stays_encoded() {
        let (r, _) = rules("/old/* /:splat 301\n");
        let (_, loc) = redirect(&r, "/old/%0d%0aSet-Cookie:%20injected=1").expect("matches");
        assert_eq!(loc, "/%0d%0aSet-Cookie:%20injected=1");
        assert!(loc.bytes().all(|b| b > 0x20 && b < 0x7f));
        let (_, loc) = redirect(&r, "/old/%E2%80%A8%0d%0a%0d%0a%3Cscript%3E").expect("matches");
        assert!(loc.bytes().all(|b| b > 0x20 && b < 0x7f));
    }

    #[test]
    fn absolute_targets_keep_their_host() {
        let (r, _) = rules("/go/* https://example.org/:splat 302\n");
        assert_eq!(
            redirect(&r, "/go//evil.com"),
            Some((302, "https://example.org//evil.com".into()))
        );
        assert_eq!(
            redirect(&r, "/go/a?b=1"),
            Some((302, "https://example.org/a?b=1".into()))
        );
        // Without a known origin, a same-host target stays absolute.
        let (r, _) = rules("/a https://example.com/b 301\n");
        assert_eq!(
            r.evaluate("/a", None, None),
            Some(RedirectOutcome::Redirect {
                status: 301,
                location: "https://example.com/b".into()
            })
        );
    }

    #[test]
    fn statics_and_dynamics() {
        let (r, lines) = rules("/a /b\n/c/* /d/:splat 301\n/e /f 308\n/a /dup\n");
        assert_eq!(lines, vec![4]);
        // `/e` follows a dynamic rule, so it is dynamic too.
        assert_eq!(r.static_rules().len(), 1);
        assert_eq!(r.dynamic_rules().len(), 2);
        assert_eq!(redirect(&r, "/e"), Some((308, "/f".into())));
        let (from, red) = &r.static_rules()[0];
        assert_eq!(from, "/a");
        assert_eq!(
            red.outcome(Some("q=1"), ORIGIN),
            RedirectOutcome::Redirect {
                status: 302,
                location: "/b?q=1".into()
            }
        );
        assert_eq!(
            eval(&r, "/c/x/../y"),
            Some(RedirectOutcome::Redirect {
                status: 301,
                location: "/d/y".into()
            })
        );
    }
}
