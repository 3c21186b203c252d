//! The verify pass: every entry of `root.tar` and every dump file checked,
//! nothing written.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::archive::reader::RootVisitor;
use crate::archive::{HeaderGuard, SparseSlot};
use crate::database::dump_namespace;
use crate::database::{check_bson_framing, walk_bson};
use crate::error::{Error, Result};
use crate::rewrite::{RewriteCounts, Rewrites};

use super::path::sanitize_entry_path;
use super::policy::{CheckedKind, ExtractOptions, ExtractStats, Policy, count, read_err};
use super::rewrite::{qualifies, rewrite_entry};

/// Validates every entry of `root.tar` without writing anything.
#[derive(Debug, Default)]
pub struct RootCheck {
    policy: Policy,
    /// What was found.
    pub stats: ExtractStats,
    /// Collections (`.bson` files, the oplog aside) in the dump.
    pub dump_collections: u64,
    /// Where a restore would write (see [`RootCheck::with_target`]).
    target: Option<PathBuf>,
    /// The paths under the target that exist now and that an entry other
    /// than a directory would replace (with a target only).
    pub existing: Vec<PathBuf>,
    /// The dump's collection files (`db/coll.bson`), in archive order.
    pub dump_files: Vec<String>,
    rewrites: Option<Arc<Rewrites>>,
    /// With [`RootCheck::with_rewrites`]: the replacements a restore
    /// would make in each file and in each dumped collection.
    pub rewritten: RewriteCounts,
}

impl RootCheck {
    /// Checks with what a restore under `options` would accept.
    pub fn new(options: ExtractOptions) -> Self {
        RootCheck {
            policy: Policy::new(options.allow_devices),
            stats: ExtractStats::default(),
            dump_collections: 0,
            target: None,
            existing: Vec::new(),
            dump_files: Vec::new(),
            rewrites: None,
            rewritten: RewriteCounts::default(),
        }
    }

    /// Also lists what a restore into `target` (an absolute path) would
    /// replace there ([`RootCheck::existing`]).
    pub fn with_target(mut self, target: PathBuf) -> Self {
        self.target = Some(target);
        self
    }

    /// Also counts the replacements `rewrites` would make in the files
    /// and in the documents of the dump (nothing is written).
    pub fn with_rewrites(mut self, rewrites: Option<Arc<Rewrites>>) -> Self {
        self.rewrites = rewrites;
        self
    }
}

impl RootVisitor for RootCheck {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        let sparse = SparseSlot::default();
        let guard = HeaderGuard::new(root).with_sparse_maps(sparse.clone());
        let mut archive = tar::Archive::new(guard);
        let entries = archive.entries().map_err(|e| read_err("(start)", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| read_err("(header)", e))?;
            let (name, rel, kind) = self.policy.check(&entry, sparse.take())?;
            count(&mut self.stats, &kind);
            if let Some(target) = &self.target
                && !matches!(kind, CheckedKind::Directory)
            {
                let live = target.join(&rel);
                if let Ok(m) = std::fs::symlink_metadata(&live) {
                    // The extractor never replaces a directory with anything else.
                    if m.is_dir() {
                        return Err(Error::unsafe_path(
                            &name,
                            format!("a directory exists at {} in the target", live.display()),
                        ));
                    }
                    self.existing.push(live);
                }
            }
            if entry.header().mode().is_ok_and(|m| m & 0o6000 != 0) {
                self.stats.setuid += 1;
            }
            if let (CheckedKind::File(size), Some(rw)) = (&kind, &self.rewrites)
                && let Some(key) = qualifies(Some(rw), &rel, *size)
            {
                let n = rewrite_entry(&name, &mut entry, rw)?.replacements;
                if n > 0 {
                    self.rewritten.files.insert(key, n);
                }
            }
        }
        Ok(())
    }

    /// Dump files are checked too, so a corrupt dump is refused before
    /// anything is restored: `.bson` framing (each document's length within
    /// MongoDB's limit, ending in a NUL byte, nothing cut short) and
    /// `.metadata.json` being JSON.
    fn visit_dump(&mut self, path: &str, size: u64, body: &mut dyn Read) -> Result<()> {
        let bad = |reason: String| Error::invalid(format!("dump/{path}"), reason);
        sanitize_entry_path(path.as_bytes())
            .map_err(|r| Error::unsafe_path(format!("dump/{path}"), r))?;
        if is_collection_file(path) {
            self.dump_collections += 1;
            self.dump_files.push(path.to_string());
        }
        if path.ends_with(".metadata.json") {
            if size > crate::metadata::MAX_METADATA_BYTES {
                return Err(bad("metadata file is too large".into()));
            }
            let mut buf = Vec::new();
            body.read_to_end(&mut buf).map_err(|e| read_err(path, e))?;
            serde_json::from_slice::<serde_json::Value>(&buf)
                .map_err(|e| bad(format!("unreadable JSON: {e}")))?;
        } else if let Some((rw, ns)) = self.rewrites.as_ref().and_then(|rw| {
            dump_namespace(path)
                .filter(|ns| is_collection_file(path) && rw.applies_to_namespace(ns))
                .map(|ns| (rw.clone(), ns))
        }) {
            let mut n = 0;
            walk_bson(body, path, &mut |doc| {
                n += rw.count_bson(doc).map_err(|r| Error::invalid("", r))?;
                Ok(())
            })?;
            if n > 0 {
                *self.rewritten.collections.entry(ns).or_default() += n;
            }
        } else if path.ends_with(".bson") {
            check_bson_framing(body, path)?;
        }
        Ok(())
    }
}

/// Whether a dump path is a collection's data (`db/coll.bson`), not the oplog.
pub(crate) fn is_collection_file(path: &str) -> bool {
    path.ends_with(".bson") && path != "oplog.bson"
}
