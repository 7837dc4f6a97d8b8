//! `html_handling` and `not_found_handling` as pure functions over an
//! abstract manifest (spec `cloudflare-assets.md` §1.3–§1.6, §2.1–§2.2).
//!
//! * [`resolve`] is the slow, direct reference: the §1.4 procedure with the
//!   §1.3 safe-redirect check, followed by the §2 fallback. It is what the
//!   compiled form is tested against.
//! * [`resolve_html`] is the html_handling part alone (no fallback for the
//!   request itself; the nested safe-redirect check still includes the
//!   fallback, as upstream does).
//! * [`not_found`] is the §2 fallback alone, which the server runs at request
//!   time.
//! * [`compile`] precomputes html_handling for every §1.6 candidate path so
//!   that the runtime is: table lookup, else exact key, else [`not_found`].
//!
//! Paths here are *decoded* paths (`route::canonical::Target::path`).
//! Redirect targets are decoded too; encode them with
//! `route::canonical::write_location`.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use crate::config::{HtmlHandling, NotFoundHandling};

/// Read access to the content hashes of manifest keys.
pub trait Manifest {
    /// The content hash of `key`, or `None` if `key` is not in the manifest.
    fn hash(&self, key: &str) -> Option<[u8; 16]>;

    /// Whether `key` is in the manifest.
    fn has(&self, key: &str) -> bool {
        self.hash(key).is_some()
    }
}

impl<S: BuildHasher> Manifest for HashMap<String, [u8; 16], S> {
    fn hash(&self, key: &str) -> Option<[u8; 16]> {
        self.get(key).copied()
    }
}

impl<S: BuildHasher> Manifest for HashMap<&str, [u8; 16], S> {
    fn hash(&self, key: &str) -> Option<[u8; 16]> {
        self.get(key).copied()
    }
}

impl Manifest for BTreeMap<String, [u8; 16]> {
    fn hash(&self, key: &str) -> Option<[u8; 16]> {
        self.get(key).copied()
    }
}

/// The outcome of resolving a decoded path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Intent {
    /// Serve manifest key `key` with `status` (200, or 404 for a `404-page`
    /// fallback).
    Serve { key: String, status: u16 },
    /// 307 to the decoded path `to` (not yet percent-encoded).
    Redirect { to: String },
    /// Nothing matched: the no-intent 404 (Worker fallback).
    Nothing,
}

/// The precomputed html_handling result for one request path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// Serve the key at this index of the slice given to [`compile`], with
    /// status 200.
    Serve(usize),
    /// 307 to this decoded path.
    Redirect(String),
}

/// Full resolution of a decoded path: html_handling (§1.4), then
/// not_found_handling (§2) if html_handling found nothing.
pub fn resolve(
    m: &impl Manifest,
    mode: HtmlHandling,
    nf: NotFoundHandling,
    decoded_path: &str,
) -> Intent {
    resolve_inner(m, mode, nf, decoded_path, true)
}

/// html_handling alone: `Serve` (always status 200), `Redirect` or
/// `Nothing`. `nf` only matters for the §1.3 nested check, whose resolution
/// includes the fallback.
pub fn resolve_html(
    m: &impl Manifest,
    mode: HtmlHandling,
    nf: NotFoundHandling,
    decoded_path: &str,
) -> Intent {
    html(m, mode, nf, decoded_path, true)
}

/// The not_found_handling fallback (§2.1, §2.2) for a path that html_handling
/// did not resolve.
pub fn not_found(m: &impl Manifest, nf: NotFoundHandling, decoded_path: &str) -> Intent {
    match nf {
        NotFoundHandling::None => Intent::Nothing,
        NotFoundHandling::SinglePageApplication => {
            if m.has("/index.html") {
                serve("/index.html", 200)
            } else {
                Intent::Nothing
            }
        }
        NotFoundHandling::Page404 => {
            // Only ancestors, starting with the request's own directory (the
            // path counts as a directory only when it ends in `/`).
            let mut prefix = decoded_path;
            while let Some(cut) = prefix.rfind('/') {
                prefix = &prefix[..cut];
                let probe = format!("{prefix}/404.html");
                if m.has(&probe) {
                    return Intent::Serve {
                        key: probe,
                        status: 404,
                    };
                }
            }
            Intent::Nothing
        }
    }
}

/// The §1.6 candidate request paths of manifest key `key`: the only decoded
/// paths whose html_handling result can differ from `none` because of `key`.
pub fn candidates(key: &str) -> Vec<String> {
    let mut out = vec![key.to_string()];
    if let Some(b) = key.strip_suffix(".html") {
        push_family(b, &mut out);
        if let Some(d) = b.strip_suffix("/index") {
            push_family(d, &mut out);
        }
    }
    // A root `D` is empty: `D`, `D.html` are not request paths.
    out.retain(|c| c.starts_with('/'));
    out.sort_unstable();
    out.dedup();
    out
}

fn push_family(base: &str, out: &mut Vec<String>) {
    for suffix in ["", "/", ".html", "/index", "/index.html"] {
        out.push(format!("{base}{suffix}"));
    }
}

/// Precomputes html_handling: every candidate path (§1.6) of every key whose
/// result is not trivial, sorted by request path. "Trivial" means `Nothing`
/// or serving the request path itself, which the runtime gets from its
/// exact-key lookup. At runtime: look the decoded path up here, else serve the
/// exact key, else run [`not_found`].
///
/// `nf` is needed because the §1.3 nested check includes the fallback.
/// Content hashes must be the real ones: identical bytes change results.
pub fn compile(
    keys_with_hashes: &[(String, [u8; 16])],
    mode: HtmlHandling,
    nf: NotFoundHandling,
) -> Vec<(String, RouteTarget)> {
    if mode == HtmlHandling::None {
        // `none` never serves anything but the exact key and never redirects.
        return Vec::new();
    }
    let manifest: HashMap<&str, [u8; 16]> = keys_with_hashes
        .iter()
        .map(|(k, h)| (k.as_str(), *h))
        .collect();
    let index: HashMap<&str, usize> = keys_with_hashes
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();
    // Every candidate resolves on its own: the work is spread over the
    // rayon pool (a third of an incremental build's wall on a large site
    // when it ran on one thread), and collecting keeps the sorted order.
    use rayon::prelude::*;
    let mut all: Vec<String> = keys_with_hashes
        .par_iter()
        .flat_map_iter(|(k, _)| candidates(k))
        .collect();
    all.par_sort_unstable();
    all.dedup();
    all.into_par_iter()
        .filter_map(|path| match html(&manifest, mode, nf, &path, true) {
            Intent::Serve { key, .. } if key != path => index
                .get(key.as_str())
                .map(|&i| (path, RouteTarget::Serve(i))),
            Intent::Redirect { to } => Some((path, RouteTarget::Redirect(to))),
            Intent::Serve { .. } | Intent::Nothing => None,
        })
        .collect()
}

/// The runtime half of [`compile`]: table lookup, else exact key, else the
/// not-found walk. Equals [`resolve`] for every decoded path.
pub fn resolve_compiled(
    table: &[(String, RouteTarget)],
    keys_with_hashes: &[(String, [u8; 16])],
    m: &impl Manifest,
    nf: NotFoundHandling,
    decoded_path: &str,
) -> Intent {
    if let Ok(i) = table.binary_search_by(|(p, _)| p.as_str().cmp(decoded_path)) {
        match table.get(i).map(|(_, t)| t) {
            Some(RouteTarget::Serve(k)) => {
                if let Some((key, _)) = keys_with_hashes.get(*k) {
                    return serve(key, 200);
                }
            }
            Some(RouteTarget::Redirect(to)) => return Intent::Redirect { to: to.clone() },
            None => {}
        }
    }
    if m.has(decoded_path) {
        return serve(decoded_path, 200);
    }
    not_found(m, nf, decoded_path)
}

fn serve(key: &str, status: u16) -> Intent {
    Intent::Serve {
        key: key.to_string(),
        status,
    }
}

fn resolve_inner(
    m: &impl Manifest,
    mode: HtmlHandling,
    nf: NotFoundHandling,
    p: &str,
    redirects: bool,
) -> Intent {
    match html(m, mode, nf, p, redirects) {
        Intent::Nothing => not_found(m, nf, p),
        found => found,
    }
}

/// The §1.4 procedure. `redirects == false` is the nested resolution of the
/// §1.3 check, where every "try" step is skipped.
fn html(
    m: &impl Manifest,
    mode: HtmlHandling,
    nf: NotFoundHandling,
    p: &str,
    redirects: bool,
) -> Intent {
    let r = Resolver {
        m,
        mode,
        nf,
        redirects,
    };
    let found = match mode {
        HtmlHandling::AutoTrailingSlash => r.auto(p),
        HtmlHandling::ForceTrailingSlash => r.force(p),
        HtmlHandling::DropTrailingSlash => r.drop_slash(p),
        HtmlHandling::None => r.serve_if(p),
    };
    found.unwrap_or(Intent::Nothing)
}

struct Resolver<'m, M> {
    m: &'m M,
    mode: HtmlHandling,
    nf: NotFoundHandling,
    redirects: bool,
}

impl<M: Manifest> Resolver<'_, M> {
    fn serve_if(&self, key: &str) -> Option<Intent> {
        self.m.has(key).then(|| serve(key, 200))
    }

    /// "try F→D" (§1.3): redirect to `d` only if `f` exists, `d` is not a
    /// key, and resolving `d` without redirects (fallback included) serves
    /// an asset with `f`'s content hash.
    fn try_redirect(&self, f: &str, d: &str) -> Option<Intent> {
        if !self.redirects {
            return None;
        }
        let wanted = self.m.hash(f)?;
        if self.m.has(d) {
            return None;
        }
        match resolve_inner(self.m, self.mode, self.nf, d, false) {
            Intent::Serve { key, .. } if self.m.hash(&key) == Some(wanted) => {
                Some(Intent::Redirect { to: d.to_string() })
            }
            _ => None,
        }
    }

    /// The last steps of every mode; upstream falls through to them from
    /// every suffix branch that did not return (needed e.g. for auto mode,
    /// layout D, `/foo.html` → 200).
    fn exact_then_html(&self, p: &str) -> Option<Intent> {
        self.serve_if(p)
            .or_else(|| self.serve_if(&format!("{p}.html")))
    }

    fn auto(&self, p: &str) -> Option<Intent> {
        let suffix_step = if let Some(base) = p.strip_suffix("/index") {
            self.serve_if(p)
                .or_else(|| self.try_redirect(&format!("{p}.html"), &format!("{base}/")))
                .or_else(|| self.try_redirect(&format!("{base}.html"), base))
        } else if let Some(base) = p.strip_suffix("/index.html") {
            self.try_redirect(p, &format!("{base}/"))
                .or_else(|| self.try_redirect(&format!("{base}.html"), base))
        } else if let Some(base) = p.strip_suffix('/') {
            self.serve_if(&format!("{p}index.html"))
                .or_else(|| self.try_redirect(&format!("{base}.html"), base))
        } else if let Some(base) = p.strip_suffix(".html") {
            self.try_redirect(p, base)
                .or_else(|| self.try_redirect(&format!("{base}/index.html"), &format!("{base}/")))
        } else {
            None
        };
        suffix_step
            .or_else(|| self.exact_then_html(p))
            .or_else(|| self.try_redirect(&format!("{p}/index.html"), &format!("{p}/")))
    }

    fn force(&self, p: &str) -> Option<Intent> {
        let suffix_step = if let Some(base) = p.strip_suffix("/index") {
            self.serve_if(p)
                .or_else(|| self.try_redirect(&format!("{p}.html"), &format!("{base}/")))
                .or_else(|| self.try_redirect(&format!("{base}.html"), &format!("{base}/")))
        } else if let Some(base) = p.strip_suffix("/index.html") {
            self.try_redirect(p, &format!("{base}/"))
                .or_else(|| self.try_redirect(&format!("{base}.html"), &format!("{base}/")))
        } else if let Some(base) = p.strip_suffix('/') {
            self.serve_if(&format!("{p}index.html"))
                .or_else(|| self.serve_if(&format!("{base}.html")))
        } else if let Some(base) = p.strip_suffix(".html") {
            self.try_redirect(p, &format!("{base}/"))
                .or_else(|| self.serve_if(p))
                .or_else(|| self.try_redirect(&format!("{base}/index.html"), &format!("{base}/")))
        } else {
            None
        };
        suffix_step
            .or_else(|| self.serve_if(p))
            .or_else(|| self.try_redirect(&format!("{p}.html"), &format!("{p}/")))
            .or_else(|| self.try_redirect(&format!("{p}/index.html"), &format!("{p}/")))
    }

    fn drop_slash(&self, p: &str) -> Option<Intent> {
        let suffix_step = if let Some(base) = p.strip_suffix("/index") {
            self.serve_if(p).or_else(|| {
                if p == "/index" {
                    self.try_redirect("/index.html", "/")
                } else {
                    self.try_redirect(&format!("{base}.html"), base)
                        .or_else(|| self.try_redirect(&format!("{p}.html"), base))
                }
            })
        } else if let Some(base) = p.strip_suffix("/index.html") {
            if p == "/index.html" {
                self.try_redirect(p, "/")
            } else {
                self.try_redirect(p, base)
                    .or_else(|| self.serve_if(p))
                    .or_else(|| self.try_redirect(&format!("{base}.html"), base))
            }
        } else if let Some(base) = p.strip_suffix('/') {
            if p == "/" {
                // The root slash is never dropped.
                self.serve_if("/index.html")
            } else {
                self.try_redirect(&format!("{base}.html"), base)
                    .or_else(|| self.try_redirect(&format!("{base}/index.html"), base))
            }
        } else if let Some(base) = p.strip_suffix(".html") {
            self.try_redirect(p, base)
                .or_else(|| self.try_redirect(&format!("{base}/index.html"), base))
        } else {
            None
        };
        suffix_step
            .or_else(|| self.exact_then_html(p))
            .or_else(|| self.serve_if(&format!("{p}/index.html")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::canonical::{canonicalize, write_location, Scratch};
    use proptest::prelude::*;
    use serde_json::Value;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    const MODES: [HtmlHandling; 4] = HtmlHandling::ALL;

    /// Distinct bytes per file, as the conformance README requires.
    fn content_hash(key: &str) -> [u8; 16] {
        let mut h = [0u8; 16];
        h.copy_from_slice(&blake3::hash(key.as_bytes()).as_bytes()[..16]);
        h
    }

    fn hex(h: &[u8; 16]) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn keyed(files: &[&str]) -> Vec<(String, [u8; 16])> {
        files
            .iter()
            .map(|f| (f.to_string(), content_hash(f)))
            .collect()
    }

    fn short(i: &Intent) -> String {
        match i {
            Intent::Serve { key, status } => format!("{status} {key}"),
            Intent::Redirect { to } => format!("307 {to}"),
            Intent::Nothing => "404".to_string(),
        }
    }

    /// Reference and compiled resolution, asserted equal.
    fn both(
        keys: &[(String, [u8; 16])],
        mode: HtmlHandling,
        nf: NotFoundHandling,
        p: &str,
    ) -> Intent {
        let m: HashMap<String, [u8; 16]> = keys.iter().cloned().collect();
        let table = compile(keys, mode, nf);
        let reference = resolve(&m, mode, nf, p);
        let compiled = resolve_compiled(&table, keys, &m, nf, p);
        assert_eq!(compiled, reference, "{mode} {nf} {p} over {keys:?}");
        reference
    }

    #[test]
    fn section_1_5_layout_tables() {
        // Rows: /foo, /foo/, /foo.html, /foo/index, /foo/index.html.
        // Columns: A, B, C, D.
        let tables: [(HtmlHandling, [[&str; 4]; 5]); 4] = [
            (
                HtmlHandling::AutoTrailingSlash,
                [
                    ["200 /foo.html", "307 /foo/", "200 /foo.html", "200 /foo"],
                    [
                        "307 /foo",
                        "200 /foo/index.html",
                        "200 /foo/index.html",
                        "404",
                    ],
                    ["307 /foo", "307 /foo/", "307 /foo", "200 /foo.html"],
                    ["307 /foo", "307 /foo/", "307 /foo/", "404"],
                    ["307 /foo", "307 /foo/", "307 /foo/", "404"],
                ],
            ),
            (
                HtmlHandling::ForceTrailingSlash,
                [
                    ["307 /foo/", "307 /foo/", "307 /foo/", "200 /foo"],
                    [
                        "200 /foo.html",
                        "200 /foo/index.html",
                        "200 /foo/index.html",
                        "200 /foo.html",
                    ],
                    ["307 /foo/", "307 /foo/", "200 /foo.html", "307 /foo/"],
                    ["307 /foo/", "307 /foo/", "307 /foo/", "307 /foo/"],
                    ["307 /foo/", "307 /foo/", "307 /foo/", "307 /foo/"],
                ],
            ),
            (
                HtmlHandling::DropTrailingSlash,
                [
                    [
                        "200 /foo.html",
                        "200 /foo/index.html",
                        "200 /foo.html",
                        "200 /foo",
                    ],
                    ["307 /foo", "307 /foo", "307 /foo", "404"],
                    ["307 /foo", "307 /foo", "307 /foo", "200 /foo.html"],
                    ["307 /foo", "307 /foo", "307 /foo", "404"],
                    ["307 /foo", "307 /foo", "200 /foo/index.html", "404"],
                ],
            ),
            (
                HtmlHandling::None,
                [
                    ["404", "404", "404", "200 /foo"],
                    ["404", "404", "404", "404"],
                    ["200 /foo.html", "404", "200 /foo.html", "200 /foo.html"],
                    ["404", "404", "404", "404"],
                    ["404", "200 /foo/index.html", "200 /foo/index.html", "404"],
                ],
            ),
        ];
        let layouts: [&[&str]; 4] = [
            &["/foo.html"],
            &["/foo/index.html"],
            &["/foo.html", "/foo/index.html"],
            &["/foo", "/foo.html"],
        ];
        let requests = [
            "/foo",
            "/foo/",
            "/foo.html",
            "/foo/index",
            "/foo/index.html",
        ];
        // The same results hold one level down (spec §1.5).
        for prefix in ["", "/docs"] {
            for (mode, rows) in &tables {
                for (r, request) in requests.iter().enumerate() {
                    for (c, layout) in layouts.iter().enumerate() {
                        let files: Vec<String> =
                            layout.iter().map(|f| format!("{prefix}{f}")).collect();
                        let files: Vec<&str> = files.iter().map(String::as_str).collect();
                        let got = short(&both(
                            &keyed(&files),
                            *mode,
                            NotFoundHandling::None,
                            &format!("{prefix}{request}"),
                        ));
                        let want = match rows[r][c].split_once(' ') {
                            Some((status, path)) => format!("{status} {prefix}{path}"),
                            None => rows[r][c].to_string(),
                        };
                        assert_eq!(got, want, "{mode} layout {c} request {prefix}{request}");
                    }
                }
            }
        }
    }

    #[test]
    fn section_1_5_root_table() {
        let rows = [
            (
                "/",
                [
                    "200 /index.html",
                    "200 /index.html",
                    "200 /index.html",
                    "404",
                ],
            ),
            ("/index", ["307 /", "307 /", "307 /", "404"]),
            (
                "/index.html",
                ["307 /", "307 /", "307 /", "200 /index.html"],
            ),
            (
                "/index/",
                ["307 /index", "200 /index.html", "307 /index", "404"],
            ),
        ];
        let keys = keyed(&["/index.html"]);
        for (request, want) in rows {
            for (mode, want) in MODES.iter().zip(want) {
                assert_eq!(
                    short(&both(&keys, *mode, NotFoundHandling::None, request)),
                    want,
                    "{mode} {request}"
                );
            }
        }
    }

    #[test]
    fn section_1_3_identical_bytes_change_the_outcome() {
        let mode = HtmlHandling::DropTrailingSlash;
        let distinct = keyed(&["/both.html", "/both/index.html"]);
        assert_eq!(
            short(&both(
                &distinct,
                mode,
                NotFoundHandling::None,
                "/both/index.html"
            )),
            "200 /both/index.html"
        );
        let same = vec![
            ("/both.html".to_string(), [7; 16]),
            ("/both/index.html".to_string(), [7; 16]),
        ];
        assert_eq!(
            short(&both(
                &same,
                mode,
                NotFoundHandling::None,
                "/both/index.html"
            )),
            "307 /both"
        );
        // Conflicting layouts refuse to redirect.
        let bin = keyed(&["/file-bin", "/file-bin.html"]);
        assert_eq!(
            short(&both(
                &bin,
                HtmlHandling::AutoTrailingSlash,
                NotFoundHandling::None,
                "/file-bin.html"
            )),
            "200 /file-bin.html"
        );
    }

    #[test]
    fn not_found_walk_and_spa() {
        let keys = keyed(&[
            "/404.html",
            "/blog/404.html",
            "/blog/deep/nested/404.html",
            "/index.html",
        ]);
        let nf = NotFoundHandling::Page404;
        let mode = HtmlHandling::AutoTrailingSlash;
        for (p, want) in [
            ("/blog/deep/nested/", "404 /blog/deep/nested/404.html"),
            ("/blog/deep/nested", "404 /blog/404.html"),
            ("/shop/x", "404 /404.html"),
            ("/404", "200 /404.html"),
        ] {
            assert_eq!(short(&both(&keys, mode, nf, p)), want, "{p}");
        }
        let spa = NotFoundHandling::SinglePageApplication;
        assert_eq!(
            short(&both(&keys, mode, spa, "/app/missing.js")),
            "200 /index.html"
        );
        assert_eq!(short(&both(&keyed(&["/a.html"]), mode, spa, "/x")), "404");
    }

    #[test]
    fn candidates_of_nested_index() {
        let c: BTreeSet<String> = candidates("/index.html").into_iter().collect();
        let want: BTreeSet<String> = [
            "/",
            "/index",
            "/index.html",
            "/index/",
            "/index/index",
            "/index/index.html",
            "/index.html",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(c, want);
        assert_eq!(candidates("/app.js"), vec!["/app.js".to_string()]);
    }

    #[test]
    fn compile_is_sorted_and_scales() {
        let keys: Vec<(String, [u8; 16])> = (0..100_000)
            .map(|i| {
                let k = match i % 4 {
                    0 => format!("/d{}/p{i}.html", i % 97),
                    1 => format!("/d{}/p{i}/index.html", i % 89),
                    2 => format!("/assets/a{i}.js"),
                    _ => format!("/p{i}.html"),
                };
                (k.clone(), content_hash(&k))
            })
            .collect();
        let started = std::time::Instant::now();
        let table = compile(
            &keys,
            HtmlHandling::AutoTrailingSlash,
            NotFoundHandling::Page404,
        );
        let elapsed = started.elapsed();
        assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
        // Generous: debug builds on a shared 2-core machine.
        assert!(elapsed.as_secs() < 60, "compile took {elapsed:?}");
        assert!(table.len() > 300_000);
    }

    // ---- conformance corpus -------------------------------------------------

    fn conformance_dir() -> PathBuf {
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
        if local.is_dir() {
            local
        } else {
            PathBuf::from("/work/main/tests/conformance")
        }
    }

    fn load(name: &str) -> Vec<Value> {
        let path = conformance_dir().join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect()
    }

    #[derive(Debug, PartialEq)]
    struct Outcome {
        status: u16,
        served: Option<String>,
        location: Option<String>,
    }

    fn if_none_match_hits(
        headers: &Value,
        hashes: &HashMap<String, [u8; 16]>,
        served: &str,
    ) -> bool {
        let Some(obj) = headers.as_object() else {
            return false;
        };
        let Some(value) = obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("if-none-match"))
            .and_then(|(_, v)| v.as_str())
        else {
            return false;
        };
        // Substitute `{etag:/key}` tokens with the key's hash.
        let mut expanded = value.to_string();
        while let Some(start) = expanded.find("{etag:") {
            let Some(len) = expanded[start..].find('}') else {
                break;
            };
            let key = &expanded[start + 6..start + len];
            let tag = hashes.get(key).map(hex).unwrap_or_default();
            expanded.replace_range(start..=start + len, &tag);
        }
        let want = hashes.get(served).map(hex);
        expanded.split(',').map(str::trim).any(|t| {
            let t = t.strip_prefix("W/").unwrap_or(t);
            t == "*"
                || (t.len() >= 2
                    && t.starts_with('"')
                    && t.ends_with('"')
                    && Some(&t[1..t.len() - 1]) == want.as_deref())
        })
    }

    /// The asset-serving stage (§0 steps 2–8) over the compiled table.
    fn respond(case: &Value) -> Outcome {
        let files: Vec<String> = case["files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mode: HtmlHandling = case["config"]["html_handling"]
            .as_str()
            .unwrap_or("")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let nf: NotFoundHandling = case["config"]["not_found_handling"]
            .as_str()
            .unwrap_or("")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let method = case["request"]["method"].as_str().unwrap_or("GET");
        let target = case["request"]["path"].as_str().unwrap_or("");
        let keys: Vec<(String, [u8; 16])> =
            files.iter().map(|f| (f.clone(), content_hash(f))).collect();
        let m: HashMap<String, [u8; 16]> = keys.iter().cloned().collect();
        let table = compile(&keys, mode, nf);

        let nothing = |status| Outcome {
            status,
            served: None,
            location: None,
        };
        let mut scratch = Scratch::new();
        let t = match canonicalize(target.as_bytes(), &mut scratch) {
            Ok(t) => t,
            Err(reject) => return nothing(reject.status()),
        };
        let intent = resolve_compiled(&table, &keys, &m, nf, t.path);
        assert_eq!(
            intent,
            resolve(&m, mode, nf, t.path),
            "compiled vs reference"
        );
        if intent == Intent::Nothing {
            return nothing(404);
        }
        if method != "GET" && method != "HEAD" {
            return nothing(405);
        }
        let redirect = |to: &str| {
            let mut location = String::new();
            write_location(to, t.query, &mut location);
            Outcome {
                status: 307,
                served: None,
                location: Some(location),
            }
        };
        match intent {
            Intent::Redirect { to } => redirect(&to),
            Intent::Serve { .. } if !t.is_canonical => redirect(t.path),
            Intent::Serve { key, status } => {
                let status = if if_none_match_hits(&case["request"]["headers"], &m, &key) {
                    304
                } else {
                    status
                };
                Outcome {
                    status,
                    served: Some(key),
                    location: None,
                }
            }
            Intent::Nothing => nothing(404),
        }
    }

    fn run_corpus(name: &str) {
        let (mut passed, mut failed) = (0, Vec::new());
        for case in load(name) {
            let want = Outcome {
                status: case["expect"]["status"]
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(0),
                served: case["expect"]["served"].as_str().map(String::from),
                location: case["expect"]["location"].as_str().map(String::from),
            };
            let got = respond(&case);
            if got == want {
                passed += 1;
            } else {
                failed.push(format!("{}: got {got:?}, want {want:?}", case["id"]));
            }
        }
        println!("{name}: {passed} passed, {} failed", failed.len());
        assert!(failed.is_empty(), "{name}:\n{}", failed.join("\n"));
    }

    #[test]
    fn conformance_html_handling() {
        run_corpus("html_handling.jsonl");
    }

    #[test]
    fn conformance_not_found() {
        run_corpus("not_found.jsonl");
    }

    #[test]
    fn conformance_conditional() {
        run_corpus("conditional.jsonl");
    }

    // ---- compiled form == reference ----------------------------------------

    fn tree() -> impl Strategy<Value = Vec<(String, [u8; 16])>> {
        let dir = prop_oneof![
            Just(""),
            Just("/a"),
            Just("/index"),
            Just("/a/b"),
            Just("/b/index"),
            Just("/404")
        ];
        let leaf = prop_oneof![
            Just("a.html"),
            Just("a"),
            Just("index.html"),
            Just("index"),
            Just("404.html"),
            Just("b.html"),
            Just("a.js"),
            Just(".html"),
            Just("index.html.html"),
        ];
        // Few distinct hashes, so identical-bytes cases show up.
        proptest::collection::btree_map(
            (dir, leaf).prop_map(|(d, l)| format!("{d}/{l}")),
            0u8..4,
            0..8,
        )
        .prop_map(|m| m.into_iter().map(|(k, h)| (k, [h; 16])).collect())
    }

    fn request() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            Just("a"),
            Just("b"),
            Just("index"),
            Just("index.html"),
            Just("a.html"),
            Just("404"),
            Just("x")
        ];
        (proptest::collection::vec(seg, 0..4), any::<bool>()).prop_map(|(segs, slash)| {
            let mut p = String::new();
            for s in segs {
                p.push('/');
                p.push_str(s);
            }
            if slash || p.is_empty() {
                p.push('/');
            }
            p
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]
        #[test]
        fn compiled_equals_reference(keys in tree(), extra in proptest::collection::vec(request(), 0..16)) {
            let m: HashMap<String, [u8; 16]> = keys.iter().cloned().collect();
            let mut paths: BTreeSet<String> = extra.into_iter().collect();
            for (k, _) in &keys {
                paths.extend(candidates(k));
                paths.insert(format!("{k}/"));
            }
            for mode in MODES {
                for nf in NotFoundHandling::ALL {
                    let table = compile(&keys, mode, nf);
                    for p in &paths {
                        let reference = resolve(&m, mode, nf, p);
                        let compiled = resolve_compiled(&table, &keys, &m, nf, p);
                        prop_assert_eq!(&compiled, &reference, "{} {} {}", mode, nf, p);
                        // Redirect targets never point at themselves.
                        if let Intent::Redirect { to } = &reference {
                            prop_assert_ne!(to, p);
                        }
                    }
                }
            }
        }
    }
}
