//! `_redirects` and `_headers` evaluated over the records of a bundle
//! (docs/FORMAT.md, "Compiled rules"), with the same answers as
//! [`RedirectRules::evaluate`](super::redirects::RedirectRules::evaluate) and
//! [`HeaderRules::apply`](super::headers::HeaderRules::apply) give over the
//! parsed files, which the writer compiled them from.
//!
//! Nothing is built at load: a static rule is one probe of the route table,
//! and the rule index (also in the route table) narrows the dynamic and
//! header rules to those whose anchor starts the path before any pattern
//! runs. Matching reads the token records in place and allocates nothing;
//! only a match allocates, for its `Location` or a substituted header value.

use crate::format::bundle::{HeaderRule, RedirectRule, RuleSet};
use crate::format::Bundle;

use super::headers::{ApplyState, HeaderSink};
use super::pattern::{Capture, Captures, MAX_CAPTURES};
use super::redirects::{dynamic_outcome, static_outcome, RedirectOutcome};

/// The `_redirects` rules of a bundle.
pub struct CompiledRedirects<'a, B> {
    bundle: &'a Bundle<B>,
}

impl<B> Clone for CompiledRedirects<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for CompiledRedirects<'_, B> {}

impl<'a, B: AsRef<[u8]>> CompiledRedirects<'a, B> {
    pub fn new(bundle: &'a Bundle<B>) -> Self {
        CompiledRedirects { bundle }
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Static plus dynamic rules.
    pub fn len(&self) -> usize {
        self.bundle.static_redirect_count() + self.bundle.dynamic_redirect_count()
    }

    /// Static rules, in file order.
    pub fn static_rules(&self) -> impl Iterator<Item = RedirectRule<'a>> + 'a {
        let b = self.bundle;
        (0..b.static_redirect_count()).filter_map(move |i| b.redirect_rule(i))
    }

    /// Dynamic rules, in evaluation order.
    pub fn dynamic_rules(&self) -> impl Iterator<Item = RedirectRule<'a>> + 'a {
        let b = self.bundle;
        let first = b.static_redirect_count();
        (first..first + b.dynamic_redirect_count()).filter_map(move |i| b.redirect_rule(i))
    }

    /// The rule that answers `raw_path`: the static rule for exactly it, else
    /// the first dynamic rule that matches (its captures left in `caps`).
    /// `key` is scratch for the static probe's key. No allocation once `key`
    /// can hold `raw_path` plus one byte.
    #[inline]
    pub fn find(
        &self,
        raw_path: &str,
        key: &mut String,
        caps: &mut Captures,
    ) -> Option<RedirectRule<'a>> {
        let b = self.bundle;
        if let Some(i) = b.static_redirect(raw_path, key) {
            return b.redirect_rule(i as usize);
        }
        if b.dynamic_redirect_count() == 0 {
            return None;
        }
        let first = b.static_redirect_count();
        let mut mask = b.rule_candidates(RuleSet::Redirects, raw_path);
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let hit = b
                .redirect_pattern(first + i)
                .is_some_and(|p| p.matches(None, raw_path, caps));
            if hit {
                return b.redirect_rule(first + i);
            }
        }
        None
    }

    /// Whether some rule answers `raw_path`. No allocation.
    pub fn matches(&self, raw_path: &str, key: &mut String) -> bool {
        if self.is_empty() {
            return false;
        }
        let mut caps = [Capture::default(); MAX_CAPTURES];
        self.find(raw_path, key, &mut caps).is_some()
    }

    /// See [`RedirectRules::evaluate`](super::redirects::RedirectRules::evaluate);
    /// `key` as in [`CompiledRedirects::find`].
    pub fn evaluate(
        &self,
        raw_path: &str,
        query: Option<&str>,
        origin: Option<&str>,
        key: &mut String,
    ) -> Option<RedirectOutcome> {
        // Most sites have no `_redirects`: skip even the capture buffer.
        if self.is_empty() {
            return None;
        }
        let mut caps = [Capture::default(); MAX_CAPTURES];
        let rule = self.find(raw_path, key, &mut caps)?;
        Some(if rule.dynamic {
            dynamic_outcome(
                rule.pattern,
                rule.status,
                rule.to,
                raw_path,
                &caps,
                query,
                origin,
            )
        } else {
            static_outcome(rule.status, rule.to, query, origin)
        })
    }
}

/// The `_headers` rules of a bundle.
pub struct CompiledHeaders<'a, B> {
    bundle: &'a Bundle<B>,
}

impl<B> Clone for CompiledHeaders<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for CompiledHeaders<'_, B> {}

impl<'a, B: AsRef<[u8]>> CompiledHeaders<'a, B> {
    pub fn new(bundle: &'a Bundle<B>) -> Self {
        CompiledHeaders { bundle }
    }

    /// Whether the file had no usable rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.bundle.header_rule_count()
    }

    /// The rules in evaluation (file) order.
    pub fn rules(&self) -> impl Iterator<Item = HeaderRule<'a>> + 'a {
        let b = self.bundle;
        (0..b.header_rule_count()).filter_map(move |i| b.header_rule(i))
    }

    /// See [`HeaderRules::apply`](super::headers::HeaderRules::apply). Only
    /// the rules the index leaves for `raw_path` are matched; allocates
    /// nothing when none of them matches.
    pub fn apply(&self, host: Option<&str>, raw_path: &str, sink: &mut impl HeaderSink) {
        let b = self.bundle;
        if b.header_rule_count() == 0 {
            return;
        }
        let mut mask = b.rule_candidates(RuleSet::Headers, raw_path);
        if mask == 0 {
            return;
        }
        let mut caps = [Capture::default(); MAX_CAPTURES];
        let mut state = ApplyState::new();
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let Some(rule) = b.header_rule(i) else {
                continue;
            };
            if rule.pattern.matches(host, raw_path, &mut caps) {
                let ops = b.header_rule_ops(&rule);
                state.apply_rule(rule.pattern, ops, host, raw_path, &caps, sink);
            }
        }
    }
}
