//! Request → resolution over a bundle, in Cloudflare's order (spec §0, §2.4):
//! canonicalise, decide Worker or assets, then one table probe (plus a
//! depth-bounded walk for the 404 page). Nothing here allocates once a
//! [`Scratch`] exists.

use crate::config::{HtmlHandling, NotFoundHandling};
use crate::format::layout::action;
use crate::format::{Asset, Bundle};
use crate::route::canonical::{self, canonicalize, Target};
use crate::route::conditional;
use crate::rules::compiled::{CompiledHeaders, CompiledRedirects};
use crate::rules::headers::HeaderSink;
use crate::rules::redirects::RedirectOutcome;
use crate::rules::worker_first::{self, navigation_flag, Route as Way, WorkerFirst};

/// What the router needs from a request. The server fills it from the HTTP
/// head; `sitepack resolve` from its arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// The request target as sent on the wire (path and query).
    pub target: &'a [u8],
    pub if_none_match: Option<&'a [u8]>,
    pub sec_fetch_mode: Option<&'a [u8]>,
    pub has_authorization: bool,
    pub has_range: bool,
    /// `scheme://host[:port]` the request was sent to, if known: a
    /// `_redirects` target on this origin is answered with a relative
    /// Location (spec §6.2).
    pub origin: Option<&'a str>,
}

/// How a request is answered.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'b> {
    /// The target itself is refused (400, 404 or 414), empty body.
    Rejected { status: u16, reason: &'static str },
    /// Hand the request to the Worker.
    Worker { worker_first: bool },
    /// Serve an asset (200, or 404 for the 404 page), or 304.
    Asset {
        asset: Asset<'b>,
        status: u16,
        not_modified: bool,
        /// Send Cloudflare's default `Cache-Control` (not with
        /// `Authorization` or `Range`).
        cache_control: bool,
    },
    /// A redirect; its `Location` is [`Scratch::location`].
    Redirect { status: u16 },
    /// A method other than GET/HEAD on a path that resolves: 405.
    MethodNotAllowed,
    /// Nothing matched: an empty 404.
    NotFound,
}

impl Outcome<'_> {
    /// Whether `_headers` rules apply: every response asset serving makes
    /// (spec §0 step 9), not rejections of the target itself nor the Worker.
    pub fn takes_header_rules(&self) -> bool {
        !matches!(self, Outcome::Rejected { .. } | Outcome::Worker { .. })
    }
}

/// Reusable buffers for [`Router::resolve`]; one per connection or thread.
#[derive(Debug, Default)]
pub struct Scratch {
    canon: canonical::Scratch,
    /// For the path a `_redirects` 200 rule rewrites to.
    rewrite: canonical::Scratch,
    location: String,
    /// Keys of the 404-page walk and of the static `_redirects` probe (one
    /// byte + the raw pathname, which is at most 3 × MAX_TARGET_LEN).
    probe: String,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            canon: canonical::Scratch::new(),
            rewrite: canonical::Scratch::new(),
            location: String::with_capacity(3 * canonical::MAX_TARGET_LEN + 16),
            probe: String::with_capacity(3 * canonical::MAX_TARGET_LEN + 16),
        }
    }

    /// The `Location` of the last [`Outcome::Redirect`].
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The request's WHATWG pathname, which `_headers` rules match.
    pub fn raw_path(&self) -> &str {
        self.canon.raw_path()
    }
}

/// The html_handling + not_found_handling result for a decoded path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intent<'b> {
    Serve { asset: u32, status: u16 },
    Redirect { location: &'b str },
    Nothing,
}

/// The router over one bundle: everything per-bundle is computed here once.
pub struct Router<B> {
    bundle: Bundle<B>,
    html_handling: HtmlHandling,
    not_found: NotFoundHandling,
    worker_first: WorkerFirst,
    navigation: bool,
    /// The SPA fallback, looked up once.
    spa_index: Option<u32>,
}

impl<B: AsRef<[u8]>> Router<B> {
    /// Prepares a router. Fails only if the bundle's `run_worker_first` list
    /// is invalid, which a bundle built by sitepack never is. The
    /// `_redirects` and `_headers` rules are used from the bundle's compiled
    /// records as they are: nothing is parsed or built here.
    pub fn new(bundle: Bundle<B>) -> Result<Self, worker_first::RulesError> {
        let cfg = bundle.config();
        let worker_first = WorkerFirst::from_config(&cfg.run_worker_first)?;
        let spa_index = bundle.route("/index.html").and_then(|r| r.exact_asset);
        Ok(Router {
            navigation: navigation_flag(&cfg.compatibility_date, &cfg.compatibility_flags),
            html_handling: cfg.html_handling,
            not_found: cfg.not_found_handling,
            worker_first,
            spa_index,
            bundle,
        })
    }

    pub fn bundle(&self) -> &Bundle<B> {
        &self.bundle
    }

    pub fn html_handling(&self) -> HtmlHandling {
        self.html_handling
    }

    /// The full decision: Worker or assets, then the asset answer.
    /// `has_worker` says whether the deployment has a Worker.
    pub fn resolve<'s>(
        &'s self,
        req: &RequestHead<'_>,
        has_worker: bool,
        scratch: &mut Scratch,
    ) -> Outcome<'s> {
        let Scratch {
            canon,
            rewrite,
            location,
            probe,
        } = scratch;
        let target = match canonicalize(req.target, canon) {
            Ok(t) => t,
            Err(e) => return rejected(e),
        };
        let decision = worker_first::decide(
            has_worker,
            &self.worker_first,
            target.raw_path,
            self.navigation,
            req.sec_fetch_mode,
            self.not_found,
            // `_redirects` rules (redirects and rewrites alike) count as "can
            // fetch": they take precedence over the Worker (spec §2.4).
            |nf| {
                self.has_redirect_rule(&target, probe)
                    || self.intent(target.path, nf, probe) != Intent::Nothing
            },
        );
        if decision.route == Way::Worker {
            return Outcome::Worker {
                worker_first: decision.worker_first,
            };
        }
        self.assets(req, &target, rewrite, location, probe)
    }

    fn has_redirect_rule(&self, target: &Target<'_>, key: &mut String) -> bool {
        self.redirect_rules().matches(target.raw_path, key)
    }

    fn redirect_rule(
        &self,
        target: &Target<'_>,
        origin: Option<&str>,
        key: &mut String,
    ) -> Option<RedirectOutcome> {
        let query = target.query.strip_prefix('?');
        self.redirect_rules()
            .evaluate(target.raw_path, query, origin, key)
    }

    /// Applies the `_headers` rules for the request whose pathname is
    /// `raw_path` (see [`Scratch::raw_path`]); `host` enables absolute rules.
    /// Allocates nothing unless a rule matches.
    pub fn apply_headers(&self, host: Option<&str>, raw_path: &str, sink: &mut impl HeaderSink) {
        self.header_rules().apply(host, raw_path, sink);
    }

    /// The compiled `_headers` rules, read in place from the bundle.
    pub fn header_rules(&self) -> CompiledHeaders<'_, B> {
        CompiledHeaders::new(&self.bundle)
    }

    /// The compiled `_redirects` rules, read in place from the bundle.
    pub fn redirect_rules(&self) -> CompiledRedirects<'_, B> {
        CompiledRedirects::new(&self.bundle)
    }

    /// Asset serving alone (the `ASSETS` binding's `fetch`): html_handling and
    /// not_found_handling apply, the Worker decision does not.
    pub fn fetch_asset<'s>(&'s self, req: &RequestHead<'_>, scratch: &mut Scratch) -> Outcome<'s> {
        let Scratch {
            canon,
            rewrite,
            location,
            probe,
        } = scratch;
        match canonicalize(req.target, canon) {
            Ok(target) => self.assets(req, &target, rewrite, location, probe),
            Err(e) => rejected(e),
        }
    }

    fn assets<'s>(
        &'s self,
        req: &RequestHead<'_>,
        original: &Target<'_>,
        rewrite: &mut canonical::Scratch,
        location: &mut String,
        probe: &mut String,
    ) -> Outcome<'s> {
        // Step 1: `_redirects`, on the raw pathname, whatever the method.
        let mut rewritten: Option<Target<'_>> = None;
        match self.redirect_rule(original, req.origin, probe) {
            None => {}
            Some(RedirectOutcome::Redirect {
                status,
                location: to,
            }) => {
                location.clear();
                location.push_str(&to);
                return Outcome::Redirect { status };
            }
            Some(RedirectOutcome::Rewrite { path }) => {
                // The new path is a URL path: canonicalise it like a request,
                // keeping the original query for any later redirect. A
                // rewrite that does not resolve is a plain 404.
                location.clear();
                location.push_str(&path);
                location.push_str(original.query);
                match canonicalize(location.as_bytes(), rewrite) {
                    Ok(t) => rewritten = Some(t),
                    Err(_) => return Outcome::NotFound,
                }
            }
        }
        let target = rewritten.as_ref().unwrap_or(original);
        let intent = self.intent(target.path, self.not_found, probe);
        if intent == Intent::Nothing {
            return Outcome::NotFound;
        }
        if req.method != "GET" && req.method != "HEAD" {
            return Outcome::MethodNotAllowed;
        }
        match intent {
            Intent::Nothing => Outcome::NotFound,
            Intent::Redirect { location: to } => {
                location.clear();
                location.push_str(to);
                location.push_str(target.query);
                Outcome::Redirect { status: 307 }
            }
            Intent::Serve { asset, status } => {
                if !target.is_canonical {
                    location.clear();
                    canonical::write_location(target.path, target.query, location);
                    // Re-encoding can lengthen a target near the limit; a
                    // redirect to a URL this server refuses helps nobody.
                    if location.len() > canonical::MAX_TARGET_LEN {
                        return rejected(canonical::Reject::UriTooLong);
                    }
                    return Outcome::Redirect { status: 307 };
                }
                let Some(asset) = self.bundle.asset(asset) else {
                    return Outcome::NotFound;
                };
                let not_modified = req.if_none_match.is_some_and(|v| {
                    conditional::if_none_match(v, &conditional::etag_value(&asset.etag))
                });
                Outcome::Asset {
                    asset,
                    status,
                    not_modified,
                    cache_control: !req.has_authorization && !req.has_range,
                }
            }
        }
    }

    /// html_handling via the compiled table, then not_found_handling `nf`.
    fn intent(&self, path: &str, nf: NotFoundHandling, probe: &mut String) -> Intent<'_> {
        if let Some(r) = self.bundle.route_entry(path) {
            match r.action {
                action::SERVE => {
                    if let Some(asset) = r.asset {
                        return Intent::Serve {
                            asset,
                            status: r.status,
                        };
                    }
                }
                action::REDIRECT => {
                    return Intent::Redirect {
                        location: self.bundle.route_location(r.index),
                    }
                }
                _ => {}
            }
        }
        match nf {
            NotFoundHandling::None => Intent::Nothing,
            NotFoundHandling::SinglePageApplication => match self.spa_index {
                Some(asset) => Intent::Serve { asset, status: 200 },
                None => Intent::Nothing,
            },
            NotFoundHandling::Page404 => {
                // Ancestors only, nearest first; the path is a directory only
                // when it ends in `/` (spec §2.1). At most depth probes.
                let mut prefix = path;
                while let Some(cut) = prefix.rfind('/') {
                    prefix = &prefix[..cut];
                    probe.clear();
                    probe.push_str(prefix);
                    probe.push_str("/404.html");
                    if let Some(asset) = self.bundle.route_entry(probe).and_then(|r| r.exact_asset)
                    {
                        return Intent::Serve { asset, status: 404 };
                    }
                }
                Intent::Nothing
            }
        }
    }
}

fn rejected(e: canonical::Reject) -> Outcome<'static> {
    let reason = match e {
        canonical::Reject::BadRequest(r) | canonical::Reject::NotFound(r) => r,
        canonical::Reject::UriTooLong => "request target too long",
    };
    Outcome::Rejected {
        status: e.status(),
        reason,
    }
}
