//! Rewriting the old machine's identity on restore: `OLD=NEW` rules
//! (addresses, host names, instance ids) applied to whole tokens of the
//! restored text files and of the string values of the loaded documents.
//!
//! A match of OLD counts only where the characters on either side of it are
//! not token characters (ASCII letters and digits, `.`, `-`, `_`): so
//! `10.0.0.5` is replaced in `10.0.0.5:17070` and `"10.0.0.5"` but not in
//! `10.0.0.50` or `110.0.0.5`, and `host-a` not in `host-ab`. The text is
//! scanned once, left to right; where several rules match at one place the
//! longest OLD wins, and replaced text is never scanned again.
//!
//! Which files and documents: [`Rewrites::with_paths`] (globs on the
//! restored path, default every file) and [`Rewrites::with_namespaces`]
//! (globs on `db.collection` as named in the dump, default every loaded
//! collection). Files qualify when they are regular files of at most
//! [`MAX_REWRITE_FILE`] bytes holding valid UTF-8; anything else is
//! restored byte for byte.

mod bson;

use std::borrow::Cow;
use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, InputKind, Result};

/// Largest file (bytes) whose contents are rewritten; larger files are
/// restored unchanged.
pub const MAX_REWRITE_FILE: u64 = 4 * 1024 * 1024;

/// The `OLD=NEW` rules of a restore and where they apply.
#[derive(Debug, Clone)]
pub struct Rewrites {
    /// Longest OLD first.
    rules: Vec<(String, String)>,
    /// `first[b]`: some OLD starts with the byte `b`.
    first: [bool; 256],
    paths: Option<(Vec<String>, GlobSet)>,
    namespaces: Option<(Vec<String>, GlobSet)>,
    exclude_namespaces: GlobSet,
}

/// Whether `b` can be part of a token (an address, host name or id).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Parses one `OLD=NEW` rule (split at the first `=`): OLD must be
/// non-empty and differ from NEW. Refused: [`Error::InvalidInput`] of
/// [`InputKind::RewriteRule`], saying what is wrong.
pub fn parse_rewrite_rule(spec: &str) -> Result<(String, String)> {
    let (old, new) = spec
        .split_once('=')
        .ok_or_else(|| invalid_rule(spec, "expected OLD=NEW, e.g. 10.0.0.5=10.0.9.9"))?;
    check_rule(spec, old, new)?;
    Ok((old.to_string(), new.to_string()))
}

fn check_rule(spec: &str, old: &str, new: &str) -> Result<()> {
    if old.is_empty() {
        return Err(invalid_rule(spec, "the OLD side of OLD=NEW is empty"));
    }
    if old == new {
        return Err(invalid_rule(spec, "OLD and NEW are the same"));
    }
    Ok(())
}

fn invalid_rule(value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: InputKind::RewriteRule,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn glob_set(patterns: &[String], what: InputKind) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| Error::InvalidInput {
            what,
            value: p.clone(),
            reason: e.to_string(),
        })?);
    }
    b.build().map_err(|e| Error::InvalidInput {
        what,
        value: patterns.join(","),
        reason: e.to_string(),
    })
}

impl Rewrites {
    /// Rules from `OLD=NEW` strings (see [`parse_rewrite_rule`]), applying
    /// to every qualifying file and every loaded collection. The same OLD
    /// twice with different NEWs is refused.
    pub fn parse<I, S>(specs: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut pairs = Vec::new();
        for spec in specs {
            let spec = spec.as_ref();
            pairs.push(parse_rewrite_rule(spec)?);
        }
        Self::new(pairs)
    }

    /// Rules from `(OLD, NEW)` pairs, with the checks of [`Rewrites::parse`].
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self> {
        let mut by_old: BTreeMap<String, String> = BTreeMap::new();
        for (old, new) in pairs {
            let spec = format!("{old}={new}");
            check_rule(&spec, &old, &new)?;
            if let Some(other) = by_old.get(&old)
                && *other != new
            {
                return Err(invalid_rule(
                    &spec,
                    format!("{old:?} is also rewritten to {other:?}"),
                ));
            }
            by_old.insert(old, new);
        }
        let mut rules: Vec<(String, String)> = by_old.into_iter().collect();
        rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let mut first = [false; 256];
        for (old, _) in &rules {
            if let Some(&b) = old.as_bytes().first() {
                first[usize::from(b)] = true;
            }
        }
        Ok(Rewrites {
            rules,
            first,
            paths: None,
            namespaces: None,
            exclude_namespaces: GlobSet::empty(),
        })
    }

    /// Rewrites only files whose restored path (relative to the target,
    /// e.g. `var/lib/juju/agents/*/agent.conf`; a leading `/` is ignored;
    /// `*` matches `/` too) matches one of `globs`. Empty: every file.
    pub fn with_paths(mut self, globs: &[String]) -> Result<Self> {
        let globs: Vec<String> = globs
            .iter()
            .map(|g| g.trim_start_matches('/').to_string())
            .collect();
        self.paths = match globs.is_empty() {
            true => None,
            false => Some((globs.clone(), glob_set(&globs, InputKind::PathPattern)?)),
        };
        Ok(self)
    }

    /// Rewrites only documents of the namespaces (`db.collection` as in
    /// the dump, before any database rename) matching `include` (empty:
    /// every one) and none of `exclude` (those a load leaves out).
    pub fn with_namespaces(mut self, include: &[String], exclude: &[String]) -> Result<Self> {
        self.namespaces = match include.is_empty() {
            true => None,
            false => Some((
                include.to_vec(),
                glob_set(include, InputKind::NamespacePattern)?,
            )),
        };
        self.exclude_namespaces = glob_set(exclude, InputKind::NamespacePattern)?;
        Ok(self)
    }

    /// The rules, longest OLD first.
    pub fn rules(&self) -> &[(String, String)] {
        &self.rules
    }

    /// The `--rewrite-path` globs, if any were given.
    pub fn path_globs(&self) -> &[String] {
        self.paths.as_ref().map_or(&[], |(g, _)| g)
    }

    /// The `--rewrite-ns` globs, if any were given.
    pub fn namespace_globs(&self) -> &[String] {
        self.namespaces.as_ref().map_or(&[], |(g, _)| g)
    }

    /// Whether the restored file at `path` (relative to the target) is
    /// in scope (its size and contents are checked separately).
    pub fn applies_to_path(&self, path: &str) -> bool {
        match &self.paths {
            None => true,
            Some((_, set)) => set.is_match(path.trim_start_matches('/')),
        }
    }

    /// [`Rewrites::applies_to_path`] for a relative path whose name need
    /// not be UTF-8 (matched on its bytes).
    pub(crate) fn applies_to_rel_path(&self, path: &std::path::Path) -> bool {
        match &self.paths {
            None => true,
            Some((_, set)) => set.is_match(path),
        }
    }

    /// Whether documents of the dump's namespace `ns` are rewritten.
    /// System collections (`db.system.*`) never are.
    pub fn applies_to_namespace(&self, ns: &str) -> bool {
        let system = ns
            .split_once('.')
            .is_some_and(|(_, coll)| coll.starts_with("system."));
        !system
            && !self.exclude_namespaces.is_match(ns)
            && self.namespaces.as_ref().is_none_or(|(_, s)| s.is_match(ns))
    }

    /// `text` with every whole-token OLD replaced, and how many were.
    pub fn rewrite_str<'a>(&self, text: &'a str) -> (Cow<'a, str>, u64) {
        let mut out = Vec::new();
        let n = self.scan(text.as_bytes(), Some(&mut out));
        if n == 0 {
            return (Cow::Borrowed(text), 0);
        }
        // Whole UTF-8 sequences were copied and inserted: valid UTF-8.
        match String::from_utf8(out) {
            Ok(s) => (Cow::Owned(s), n),
            Err(e) => (
                Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                n,
            ),
        }
    }

    /// How many replacements [`Rewrites::rewrite_str`] would make.
    pub fn count(&self, text: &str) -> u64 {
        self.scan(text.as_bytes(), None)
    }

    /// Rewrites the string values (in sub-documents and arrays too; keys,
    /// and every other value, untouched) of one raw BSON document.
    /// `Ok(None)`: nothing matched (keep the original bytes). The error
    /// says where the document is malformed.
    pub fn rewrite_bson(&self, doc: &[u8]) -> std::result::Result<Option<(Vec<u8>, u64)>, String> {
        let n = bson::walk(self, doc, None, 0)?;
        if n == 0 {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(doc.len() + 64);
        bson::walk(self, doc, Some(&mut out), 0)?;
        Ok(Some((out, n)))
    }

    /// How many replacements [`Rewrites::rewrite_bson`] would make.
    pub fn count_bson(&self, doc: &[u8]) -> std::result::Result<u64, String> {
        bson::walk(self, doc, None, 0)
    }

    /// One pass over `text` (valid UTF-8); with `out`, writes the result.
    fn scan(&self, text: &[u8], mut out: Option<&mut Vec<u8>>) -> u64 {
        let mut n = 0;
        let mut copied = 0;
        let mut i = 0;
        while i < text.len() {
            let starts_token = i == 0 || !is_token(text[i - 1]);
            if starts_token && self.first[usize::from(text[i])] {
                let rest = &text[i..];
                let hit = self.rules.iter().find(|(old, _)| {
                    rest.starts_with(old.as_bytes())
                        && rest.get(old.len()).is_none_or(|&b| !is_token(b))
                });
                if let Some((old, new)) = hit {
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&text[copied..i]);
                        out.extend_from_slice(new.as_bytes());
                    }
                    n += 1;
                    i += old.len();
                    copied = i;
                    continue;
                }
            }
            i += 1;
        }
        if let Some(out) = out
            && n > 0
        {
            out.extend_from_slice(&text[copied..]);
        }
        n
    }
}

/// How many replacements a restore made (or, for a dry run, would make).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewriteCounts {
    /// Per restored file (path relative to the target), when above zero.
    pub files: BTreeMap<String, u64>,
    /// Per collection (`db.collection` as in the dump), when above zero.
    pub collections: BTreeMap<String, u64>,
}

impl RewriteCounts {
    /// Replacements in files and documents together.
    pub fn total(&self) -> u64 {
        self.files.values().chain(self.collections.values()).sum()
    }
}

#[cfg(test)]
mod tests;
