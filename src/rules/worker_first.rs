//! `run_worker_first` (spec `cloudflare-assets.md` §3) and the router's
//! assets-or-Worker decision (§2.4).
//!
//! * [`StaticRules::parse`] validates the array form at build time and
//!   reports every §3.2 error, each naming its rule.
//! * [`StaticRules::matches`] runs per request against the raw pathname
//!   (`route::canonical::Target::raw_path`): only `*` is special, anchored,
//!   case-sensitive, negative rules win. It neither allocates nor uses regex,
//!   and it is linear in pattern + path length (see [`glob_match`]), so a
//!   hostile path costs at most `rules × (pattern + path)`.
//! * [`decide`] is the router's order: static rules, `true`, then the
//!   "can fetch" probe, which the caller evaluates with the
//!   `not_found_handling` that [`decide`] hands it.
//!
//! The compiled form is the validated list of plain strings; a bundle can
//! store the original list and call [`StaticRules::parse`] again on load.

use std::collections::HashSet;

use crate::config::{NotFoundHandling, RunWorkerFirst};

/// Most rules allowed in one list (§3.2).
pub const MAX_RULES: usize = 100;
/// Longest rule allowed, counting the `!`, in JavaScript string length
/// (UTF-16 code units), as wrangler counts it (§3.2).
pub const MAX_RULE_LEN: usize = 100;

/// One §3.2 configuration error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("run_worker_first: the list of rules must not be empty")]
    Empty,
    #[error("run_worker_first: {count} rules given; at most {MAX_RULES} are allowed")]
    TooMany { count: usize },
    #[error("run_worker_first: rule {rule:?} must start with '/' (or '!/' for a negative rule)")]
    BadStart { rule: String },
    #[error("run_worker_first: negative rule {rule:?} must start with '!/'")]
    NegativeWithoutSlash { rule: String },
    #[error("run_worker_first: rule {rule:?} is {len} characters long; rules must be at most {MAX_RULE_LEN} characters")]
    TooLong { rule: String, len: usize },
    #[error("run_worker_first: rule {rule:?} is listed more than once")]
    Duplicate { rule: String },
    #[error("run_worker_first: rule {rule:?} is redundant: rule {by:?} already matches it")]
    Redundant { rule: String, by: String },
    #[error("run_worker_first: at least one positive rule (starting with '/') is required")]
    NoPositive,
}

/// Every error found in one rule list, in list order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_errors(.0))]
pub struct RulesError(pub Vec<RuleError>);

fn display_errors(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A validated `run_worker_first` array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRules {
    positive: Vec<String>,
    /// Stored without their `!`.
    negative: Vec<String>,
}

/// Which group of rules matched a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleMatch {
    /// A negative rule matched: assets, whatever they answer.
    Negative,
    /// A positive rule matched and no negative rule did: the Worker.
    Positive,
}

impl StaticRules {
    /// Validates a rule list (§3.2), reporting all errors at once.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<StaticRules, RulesError> {
        if rules.is_empty() {
            return Err(RulesError(vec![RuleError::Empty]));
        }
        let mut errors = Vec::new();
        if rules.len() > MAX_RULES {
            errors.push(RuleError::TooMany { count: rules.len() });
        }
        let (mut positive, mut negative) = (Vec::new(), Vec::new());
        for rule in rules.iter().map(AsRef::as_ref) {
            let len = rule.encode_utf16().count();
            if len > MAX_RULE_LEN {
                errors.push(RuleError::TooLong {
                    rule: rule.to_string(),
                    len,
                });
            }
            if let Some(body) = rule.strip_prefix('!') {
                if body.starts_with('/') {
                    negative.push(body.to_string());
                } else {
                    errors.push(RuleError::NegativeWithoutSlash {
                        rule: rule.to_string(),
                    });
                }
            } else if rule.starts_with('/') {
                positive.push(rule.to_string());
            } else {
                errors.push(RuleError::BadStart {
                    rule: rule.to_string(),
                });
            }
        }
        check_group(&positive, "", &mut errors);
        check_group(&negative, "!", &mut errors);
        if positive.is_empty() {
            errors.push(RuleError::NoPositive);
        }
        if errors.is_empty() {
            Ok(StaticRules { positive, negative })
        } else {
            Err(RulesError(errors))
        }
    }

    /// The positive rules, in list order.
    pub fn positive(&self) -> &[String] {
        &self.positive
    }

    /// The negative rules without their `!`, in list order.
    pub fn negative(&self) -> &[String] {
        &self.negative
    }

    /// Matches the raw (still percent-encoded, query-less) pathname.
    /// Negative rules win; list order does not matter.
    pub fn matches(&self, raw_pathname: &str) -> Option<RuleMatch> {
        if self.negative.iter().any(|p| glob_match(p, raw_pathname)) {
            Some(RuleMatch::Negative)
        } else if self.positive.iter().any(|p| glob_match(p, raw_pathname)) {
            Some(RuleMatch::Positive)
        } else {
            None
        }
    }
}

/// Duplicates and `X*` redundancy within one group (§3.2). `bang` restores
/// the `!` in messages about negative rules.
fn check_group(group: &[String], bang: &str, errors: &mut Vec<RuleError>) {
    let mut seen = HashSet::new();
    for rule in group {
        if !seen.insert(rule.as_str()) {
            errors.push(RuleError::Duplicate {
                rule: format!("{bang}{rule}"),
            });
        }
    }
    // Quadratic, so only on lists that are otherwise within the limit.
    if group.len() > MAX_RULES {
        return;
    }
    for glob in group {
        let Some(prefix) = glob.strip_suffix('*') else {
            continue;
        };
        for other in group {
            if other != glob && other.starts_with(prefix) {
                errors.push(RuleError::Redundant {
                    rule: format!("{bang}{other}"),
                    by: format!("{bang}{glob}"),
                });
            }
        }
    }
}

/// Anchored glob match where only `*` is special (any run of bytes,
/// including `/` and the empty run).
///
/// Linear time without backtracking: the literal text before the first `*`
/// must be a prefix, the text after the last `*` a suffix, and each literal
/// chunk in between is found leftmost-first in what remains. Leftmost-first is
/// optimal for `*`-only globs, and `str::find` uses the linear-time Two-Way
/// algorithm, so the cost is O(pattern + path) with no allocation.
pub fn glob_match(pattern: &str, subject: &str) -> bool {
    let (Some(first), Some(last)) = (pattern.find('*'), pattern.rfind('*')) else {
        return pattern == subject;
    };
    let prefix = pattern.get(..first).unwrap_or_default();
    let suffix = pattern.get(last + 1..).unwrap_or_default();
    let middle = pattern.get(first + 1..last).unwrap_or_default();
    if subject.len() < prefix.len() + suffix.len()
        || !subject.starts_with(prefix)
        || !subject.ends_with(suffix)
    {
        return false;
    }
    let Some(mut rest) = subject.get(prefix.len()..subject.len() - suffix.len()) else {
        return false;
    };
    for chunk in middle.split('*').filter(|c| !c.is_empty()) {
        match rest.find(chunk) {
            Some(at) => rest = rest.get(at + chunk.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

/// `run_worker_first`, ready for [`decide`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WorkerFirst {
    /// `false` or absent: assets first (§2.4).
    #[default]
    Off,
    /// `true`: every request goes to the Worker.
    On,
    /// The array form.
    Rules(StaticRules),
}

impl WorkerFirst {
    /// Validates the configuration value.
    pub fn from_config(config: &RunWorkerFirst) -> Result<WorkerFirst, RulesError> {
        Ok(match config {
            RunWorkerFirst::Off => WorkerFirst::Off,
            RunWorkerFirst::On => WorkerFirst::On,
            RunWorkerFirst::Patterns(rules) => WorkerFirst::Rules(StaticRules::parse(rules)?),
        })
    }
}

/// The first compatibility date on which navigation requests prefer assets.
pub const NAVIGATION_DATE: &str = "2025-04-01";
const NAVIGATION_ON_FLAG: &str = "assets_navigation_prefers_asset_serving";
const NAVIGATION_OFF_FLAG: &str = "assets_navigation_has_no_effect";

/// The navigation flag of §2.4: on with `assets_navigation_prefers_asset_serving`
/// (which wins over its opposite), or from `2025-04-01` (a `YYYY-MM-DD`
/// date, compared as text) unless `assets_navigation_has_no_effect` is set.
pub fn navigation_flag<S: AsRef<str>>(compatibility_date: &str, compatibility_flags: &[S]) -> bool {
    let has = |flag: &str| compatibility_flags.iter().any(|f| f.as_ref() == flag);
    has(NAVIGATION_ON_FLAG) || (compatibility_date >= NAVIGATION_DATE && !has(NAVIGATION_OFF_FLAG))
}

/// Where the router sends a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The user Worker.
    Worker,
    /// Asset serving; its answer is final (even the no-intent 404), the
    /// Worker is not consulted afterwards.
    Assets,
}

/// The router's decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub route: Route,
    /// The Worker was chosen before any asset lookup (`true` or a positive
    /// rule), as opposed to after the probe said no.
    pub worker_first: bool,
}

/// The router's order (§2.4, §3.4).
///
/// * `raw_pathname`: the WHATWG pathname without query
///   (`Target::raw_path`).
/// * `navigation_flag`: from [`navigation_flag`].
/// * `sec_fetch_mode`: the combined `Sec-Fetch-Mode` field value, if any;
///   only exactly `navigate` counts (a repeated header never does).
/// * `can_fetch(nf)`: the probe, i.e. §0 steps 1–4 of asset serving with
///   `not_found_handling` replaced by `nf`, ignoring the method; true unless
///   the result is the no-intent 404. Called at most once, and only when
///   needed.
pub fn decide(
    has_worker: bool,
    worker_first: &WorkerFirst,
    raw_pathname: &str,
    navigation_flag: bool,
    sec_fetch_mode: Option<&[u8]>,
    not_found_handling: NotFoundHandling,
    can_fetch: impl FnOnce(NotFoundHandling) -> bool,
) -> Decision {
    let assets = Decision {
        route: Route::Assets,
        worker_first: false,
    };
    if !has_worker {
        return assets;
    }
    let static_routing = match worker_first {
        WorkerFirst::Rules(rules) => match rules.matches(raw_pathname) {
            Some(RuleMatch::Negative) => return assets,
            Some(RuleMatch::Positive) => {
                return Decision {
                    route: Route::Worker,
                    worker_first: true,
                }
            }
            None => true,
        },
        WorkerFirst::On => {
            return Decision {
                route: Route::Worker,
                worker_first: true,
            }
        }
        WorkerFirst::Off => false,
    };
    let navigation = navigation_flag && sec_fetch_mode == Some(b"navigate".as_slice());
    let probe_nf = if static_routing || navigation {
        not_found_handling
    } else {
        NotFoundHandling::None
    };
    if can_fetch(probe_nf) {
        assets
    } else {
        Decision {
            route: Route::Worker,
            worker_first: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::routes::{resolve, Intent};
    use crate::config::HtmlHandling;
    use crate::route::canonical::{canonicalize, Scratch};
    use serde_json::Value;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

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

    fn strings(v: &Value) -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn report(name: &str, passed: usize, failed: &[String]) {
        println!("{name}: {passed} passed, {} failed", failed.len());
        assert!(failed.is_empty(), "{name}:\n{}", failed.join("\n"));
    }

    #[test]
    fn glob_semantics() {
        let cases = [
            ("/", "/", true),
            ("/", "/x", false),
            ("/foo*", "/foo", true),
            ("/foo*", "/foo/", true),
            ("/foo*", "/foobar", true),
            ("/foo*", "/fo", false),
            ("/*.html", "/a/b.html", true),
            ("/*.html", "/a/b.htm", false),
            ("/a*b*c", "/abc", true),
            ("/a*b*c", "/aXbYc", true),
            ("/a*b*c", "/acb", false),
            ("/a*a", "/a", false),
            ("/*", "/", true),
            ("/**", "/x", true),
            ("/a.b", "/aXb", false),
            ("/API/*", "/api/x", false),
            ("/api/*", "/%61pi/x", false),
            ("/é*", "/é", true),
        ];
        for (pattern, subject, want) in cases {
            assert_eq!(glob_match(pattern, subject), want, "{pattern} vs {subject}");
        }
        // No backtracking blow-up on a hostile subject.
        let pattern = format!("/{}b", "*a".repeat(40));
        let subject = format!("/{}", "a".repeat(16 * 1024));
        let started = std::time::Instant::now();
        assert!(!glob_match(&pattern, &subject));
        assert!(started.elapsed().as_millis() < 500);
    }

    #[test]
    fn validation_messages_name_the_rule() {
        let err = |rules: &[&str]| {
            StaticRules::parse(rules)
                .err()
                .map(|e| e.0)
                .unwrap_or_default()
        };
        assert_eq!(err(&[]), vec![RuleError::Empty]);
        assert_eq!(err(&["!/a"]), vec![RuleError::NoPositive]);
        assert_eq!(
            err(&["/a", "!a"]),
            vec![RuleError::NegativeWithoutSlash { rule: "!a".into() }]
        );
        assert_eq!(
            err(&["/a", "a"]),
            vec![RuleError::BadStart { rule: "a".into() }]
        );
        assert_eq!(
            err(&["/a", "/a"]),
            vec![RuleError::Duplicate { rule: "/a".into() }]
        );
        assert_eq!(
            err(&["/a", "!/x/*", "!/x/y"]),
            vec![RuleError::Redundant {
                rule: "!/x/y".into(),
                by: "!/x/*".into()
            }]
        );
        // Across groups nothing is checked.
        assert!(StaticRules::parse(&["/a", "!/a", "/b/*", "!/b/c"]).is_ok());
        let exactly_100 = format!("/{}", "a".repeat(99));
        assert!(StaticRules::parse(&[exactly_100.as_str()]).is_ok());
        let too_long = format!("!/{}", "a".repeat(99));
        assert!(err(&["/a", &too_long]).contains(&RuleError::TooLong {
            rule: too_long.clone(),
            len: 101
        }));
        let many: Vec<String> = (0..101).map(|i| format!("/r/{i}")).collect();
        assert_eq!(
            StaticRules::parse(&many).err().map(|e| e.0),
            Some(vec![RuleError::TooMany { count: 101 }])
        );
        let message = StaticRules::parse(&["/api/*", "/api/x"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("\"/api/x\"") && message.contains("\"/api/*\""),
            "{message}"
        );
    }

    #[test]
    fn navigation_flag_dates_and_flags() {
        let none: [&str; 0] = [];
        assert!(!navigation_flag("2025-03-31", &none));
        assert!(navigation_flag("2025-04-01", &none));
        assert!(!navigation_flag("2025-06-01", &[NAVIGATION_OFF_FLAG]));
        assert!(navigation_flag("2024-01-01", &[NAVIGATION_ON_FLAG]));
        assert!(navigation_flag(
            "2025-06-01",
            &[NAVIGATION_OFF_FLAG, NAVIGATION_ON_FLAG]
        ));
        assert!(!navigation_flag("", &none));
    }

    #[test]
    fn conformance_run_worker_first() {
        let (mut passed, mut failed) = (0, Vec::new());
        for case in load("run_worker_first.jsonl") {
            let patterns = strings(&case["patterns"]);
            let want_error = case["config_error"].as_bool().unwrap_or(false);
            let want_worker = case["expect_worker_first"].as_bool();
            let got = match StaticRules::parse(&patterns) {
                Err(_) => (true, None),
                Ok(rules) => {
                    let mut scratch = Scratch::new();
                    let target = case["path"].as_str().unwrap_or("");
                    let hit = canonicalize(target.as_bytes(), &mut scratch)
                        .ok()
                        .map(|t| rules.matches(t.raw_path) == Some(RuleMatch::Positive));
                    (false, hit)
                }
            };
            if got == (want_error, want_worker) {
                passed += 1;
            } else {
                failed.push(format!("{}: got {got:?}", case["id"]));
            }
        }
        report("run_worker_first.jsonl", passed, &failed);
    }

    #[test]
    fn conformance_worker_fallback() {
        let (mut passed, mut failed) = (0, Vec::new());
        for case in load("worker_fallback.jsonl") {
            let config = &case["config"];
            let mode: HtmlHandling = config["html_handling"]
                .as_str()
                .unwrap_or("")
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            let nf: NotFoundHandling = config["not_found_handling"]
                .as_str()
                .unwrap_or("")
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            let worker_first = match &config["run_worker_first"] {
                Value::Bool(true) => RunWorkerFirst::On,
                Value::Array(_) => RunWorkerFirst::Patterns(strings(&config["run_worker_first"])),
                _ => RunWorkerFirst::Off,
            };
            let worker_first =
                WorkerFirst::from_config(&worker_first).unwrap_or_else(|e| panic!("{e}"));
            let nav = navigation_flag(
                config["compatibility_date"].as_str().unwrap_or(""),
                &strings(&config["compatibility_flags"]),
            );
            let m: HashMap<String, [u8; 16]> = strings(&case["files"])
                .into_iter()
                .map(|f| {
                    let mut h = [0u8; 16];
                    h.copy_from_slice(&blake3::hash(f.as_bytes()).as_bytes()[..16]);
                    (f, h)
                })
                .collect();
            let headers = case["request"]["headers"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let sec_fetch_mode = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("sec-fetch-mode"))
                .and_then(|(_, v)| v.as_str());
            let mut scratch = Scratch::new();
            let target = case["request"]["path"].as_str().unwrap_or("");
            let Ok(t) = canonicalize(target.as_bytes(), &mut scratch) else {
                failed.push(format!("{}: rejected", case["id"]));
                continue;
            };
            let decision = decide(
                config["has_user_worker"].as_bool().unwrap_or(false),
                &worker_first,
                t.raw_path,
                nav,
                sec_fetch_mode.map(str::as_bytes),
                nf,
                |probe_nf| resolve(&m, mode, probe_nf, t.path) != Intent::Nothing,
            );
            let got = match decision.route {
                Route::Worker => "worker",
                Route::Assets => "assets",
            };
            if Some(got) == case["expect"]["target"].as_str() {
                passed += 1;
            } else {
                failed.push(format!("{}: got {got}", case["id"]));
            }
        }
        report("worker_fallback.jsonl", passed, &failed);
    }

    #[test]
    fn decide_order() {
        let rules = WorkerFirst::Rules(
            StaticRules::parse(&["/api/*", "!/api/public/*"]).unwrap_or_else(|e| panic!("{e}")),
        );
        let never = |_| -> bool { panic!("probe must not run") };
        let d = decide(
            true,
            &rules,
            "/api/x",
            false,
            None,
            NotFoundHandling::None,
            never,
        );
        assert_eq!(
            d,
            Decision {
                route: Route::Worker,
                worker_first: true
            }
        );
        let d = decide(
            true,
            &rules,
            "/api/public/x",
            false,
            None,
            NotFoundHandling::None,
            never,
        );
        assert_eq!(d.route, Route::Assets);
        let d = decide(
            false,
            &WorkerFirst::On,
            "/x",
            false,
            None,
            NotFoundHandling::None,
            never,
        );
        assert_eq!(d.route, Route::Assets);
        // Static routing keeps the configured fallback for the probe.
        let d = decide(
            true,
            &rules,
            "/page",
            false,
            None,
            NotFoundHandling::SinglePageApplication,
            |nf| nf == NotFoundHandling::SinglePageApplication,
        );
        assert_eq!(d.route, Route::Assets);
        // Without rules or navigation the probe runs with `none`.
        let d = decide(
            true,
            &WorkerFirst::Off,
            "/page",
            true,
            Some(b"cors"),
            NotFoundHandling::SinglePageApplication,
            |nf| nf != NotFoundHandling::None,
        );
        assert_eq!(
            d,
            Decision {
                route: Route::Worker,
                worker_first: false
            }
        );
    }
}
