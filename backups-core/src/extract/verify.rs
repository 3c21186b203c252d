//! The verify pass: every entry of `root.tar` and every dump file checked,
//! nothing written.

use std::io::Read;

use crate::archive::reader::RootVisitor;
use crate::archive::{HeaderGuard, SparseSlot};
use crate::database::check_bson_framing;
use crate::error::{Error, Result};

use super::path::sanitize_entry_path;
use super::policy::{ExtractOptions, ExtractStats, Policy, count, read_err};

/// Validates every entry of `root.tar` without writing anything.
#[derive(Debug, Default)]
pub struct RootCheck {
    policy: Policy,
    /// What was found.
    pub stats: ExtractStats,
    /// Collections (`.bson` files, the oplog aside) in the dump.
    pub dump_collections: u64,
}

impl RootCheck {
    /// Checks with what a restore under `options` would accept.
    pub fn new(options: ExtractOptions) -> Self {
        RootCheck {
            policy: Policy::new(options.allow_devices),
            stats: ExtractStats::default(),
            dump_collections: 0,
        }
    }
}

impl RootVisitor for RootCheck {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        let sparse = SparseSlot::default();
        let guard = HeaderGuard::new(root).with_sparse_maps(sparse.clone());
        let mut archive = tar::Archive::new(guard);
        let entries = archive.entries().map_err(|e| read_err("(start)", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_err("(header)", e))?;
            let (_, _, kind) = self.policy.check(&entry, sparse.take())?;
            count(&mut self.stats, &kind);
            if entry.header().mode().is_ok_and(|m| m & 0o6000 != 0) {
                self.stats.setuid += 1;
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
        }
        if path.ends_with(".metadata.json") {
            if size > crate::metadata::MAX_METADATA_BYTES {
                return Err(bad("metadata file is too large".into()));
            }
            let mut buf = Vec::new();
            body.read_to_end(&mut buf).map_err(|e| read_err(path, e))?;
            serde_json::from_slice::<serde_json::Value>(&buf)
                .map_err(|e| bad(format!("unreadable JSON: {e}")))?;
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
