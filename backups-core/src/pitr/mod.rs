//! Point-in-time recovery: the oplog shipped to the store in slices.
//!
//! A [`PitrShipper`] follows a replica set's oplog through an
//! [`OplogSource`] (backups-mongo has the MongoDB one) and commits it to
//! the store as slices, `pitr/<replset>/<first>-<last>.bson.gz[.age]`
//! (concatenated raw oplog entries, gzip'd, optionally age-encrypted),
//! each followed by its record `pitr/<replset>/<first>-<last>.json`
//! ([`SliceRecord`]: size, SHA-256, the position it continues from). The
//! record is the commit point: a slice without one does not exist for
//! [`catalog`] and is garbage. Gaps (the oplog rolled over before it was
//! read) are recorded as `pitr/<replset>/gaps/<from>-<to>.json`; a slice
//! that does not continue where the one before ended is a gap too
//! ("missing slice"). Nothing is papered over: a restore to a time in a
//! gap is refused.
//!
//! A restore to a time picks a base backup whose [`Metadata::oplog_end`]
//! is at or before it, then replays the slices after that position
//! ([`ReplicaSetChain::plan`], [`read_slice`]) through the same replay as
//! the dump's own `oplog.bson`.

mod chain;
mod lifecycle;
mod shipper;

use std::fmt;
use std::io::Read;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::crypt::Identities;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::storage::Storage;

pub use chain::{Covered, MISSING_SLICE, NotCovered, ReplicaSetChain};
pub use lifecycle::{
    SliceCheck, SliceForget, SliceProblem, forget_plan, forget_slices, replay_start, uncommitted,
    verify_slices,
};
pub use shipper::{OplogRead, OplogSource, PitrShipper, ShipperOptions, ShipperStatus};

/// The top-level directory of the slices in a store.
pub const PITR_DIR: &str = "pitr";
/// The largest slice (uncompressed oplog bytes) before it is cut.
pub const MAX_SLICE_BYTES: usize = 16 * 1024 * 1024;

/// An oplog position: a BSON timestamp's seconds and ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Seconds since the Unix epoch.
    pub seconds: u32,
    /// The operation's ordinal within that second.
    pub ordinal: u32,
}

impl Position {
    /// The position `seconds:ordinal`.
    pub fn new(seconds: u32, ordinal: u32) -> Self {
        Position { seconds, ordinal }
    }

    /// The position just before this one (so that a read of what comes
    /// after it starts with this one).
    pub fn just_before(self) -> Self {
        match self.ordinal {
            0 => Position::new(self.seconds.saturating_sub(1), u32::MAX),
            n => Position::new(self.seconds, n - 1),
        }
    }

    /// The form used in object names: sortable as text.
    fn key(self) -> String {
        format!("{:010}.{:010}", self.seconds, self.ordinal)
    }

    #[cfg(test)]
    fn parse_key(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('.')?;
        Some(Position::new(a.parse().ok()?, b.parse().ok()?))
    }

    /// The second as RFC 3339 UTC.
    pub fn rfc3339(self) -> String {
        seconds_rfc3339(self.seconds)
    }
}

/// `seconds` since the epoch as RFC 3339 UTC (`1970-...` when out of range).
pub fn seconds_rfc3339(seconds: u32) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::from(seconds))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seconds, self.ordinal)
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s.split_once(':').unwrap_or((s, "0"));
        match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) => Ok(Position::new(a, b)),
            _ => Err(format!(
                "bad oplog position {s:?} (expected seconds:ordinal)"
            )),
        }
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The record of one committed slice (`<first>-<last>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SliceRecord {
    /// The replica set the entries come from.
    pub replica_set: String,
    /// The slice object's name in the replica set's directory.
    pub object: String,
    /// The position this slice continues from: every entry after it, up
    /// to `last`, is in the slice.
    pub after: Position,
    /// The first entry's position.
    pub first: Position,
    /// The last entry's position.
    pub last: Position,
    /// Every entry of a second up to this one (epoch seconds) is in this
    /// slice or an earlier one.
    pub complete_until: u32,
    /// Oplog entries in the slice.
    pub entries: u64,
    /// Size of the stored object.
    pub size: u64,
    /// SHA-256 (hex) of the stored object.
    #[serde(rename = "SHA256")]
    pub sha256: String,
    /// The object is age-encrypted.
    #[serde(default)]
    pub encrypted: bool,
}

/// A stretch of the oplog that no slice holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Gap {
    /// The last position before the gap that is shipped.
    pub from: Position,
    /// The first position after the gap that is shipped.
    pub to: Position,
    /// Why: `oplog rolled over before it was read`, `missing slice`.
    pub reason: String,
}

/// The shipper's note of how far a quiet oplog is known to be complete
/// (`progress.json`): valid while `last` is the last committed slice's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShipProgress {
    /// The last committed slice's last position when this was written.
    pub last: Position,
    /// Every entry of a second up to this one is committed.
    pub complete_until: u32,
}

/// Whether `name` can be a replica set's directory.
pub fn valid_replica_set(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

pub(crate) fn set_dir(storage: &Storage, rs: &str) -> ObjectPath {
    storage.prefix().clone().join(PITR_DIR).join(rs)
}

/// The name stem of a slice: `<first>-<last>`.
pub(crate) fn slice_stem(first: Position, last: Position) -> String {
    format!("{}-{}", first.key(), last.key())
}

/// Every replica set's chain in the store, by name.
pub async fn catalog(storage: &Storage) -> Result<Vec<ReplicaSetChain>> {
    use futures::TryStreamExt;
    let root = storage.prefix().clone().join(PITR_DIR);
    let objects: Vec<_> = storage
        .object_store()
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| Error::storage(root.to_string(), e))?;
    let mut sets: std::collections::BTreeMap<String, ReplicaSetChain> = Default::default();
    let mut objects_by_set: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for meta in &objects {
        let Some(rest) = meta.location.prefix_match(&root) else {
            continue;
        };
        let parts: Vec<String> = rest.map(|p| p.as_ref().to_string()).collect();
        let Some(rs) = parts.first().cloned() else {
            continue;
        };
        let chain = sets.entry(rs.clone()).or_insert_with(|| ReplicaSetChain {
            name: rs.clone(),
            ..Default::default()
        });
        let rel = parts[1..].join("/");
        if rel.ends_with(".json") {
            let bytes = get_bytes(storage, &meta.location).await?;
            if rel == "progress.json" {
                chain.progress = serde_json::from_slice(&bytes).ok();
            } else if rel.starts_with("gaps/") {
                match serde_json::from_slice::<Gap>(&bytes) {
                    Ok(g) => chain.recorded_gaps.push(g),
                    Err(_) => chain.stray.push(rel),
                }
            } else {
                match serde_json::from_slice::<SliceRecord>(&bytes) {
                    Ok(s) if s.replica_set == rs => chain.slices.push(s),
                    _ => chain.stray.push(rel),
                }
            }
        } else {
            objects_by_set.entry(rs).or_default().push(rel);
        }
    }
    for (rs, names) in objects_by_set {
        if let Some(chain) = sets.get_mut(&rs) {
            for name in names {
                if !chain.slices.iter().any(|s| s.object == name) {
                    chain.stray.push(name);
                }
            }
        }
    }
    let mut out: Vec<ReplicaSetChain> = sets.into_values().collect();
    for chain in &mut out {
        chain.slices.sort_by_key(|s| (s.first, s.last));
        chain.recorded_gaps.sort_by_key(|g| g.from);
    }
    Ok(out)
}

async fn get_bytes(storage: &Storage, key: &ObjectPath) -> Result<bytes::Bytes> {
    let got = storage
        .object_store()
        .get(key)
        .await
        .map_err(|e| Error::storage(key.to_string(), e))?;
    got.bytes()
        .await
        .map_err(|e| Error::storage(key.to_string(), e))
}

/// The oplog entries of a committed slice (concatenated raw BSON), its
/// size and SHA-256 checked against its record, decrypted with
/// `identities` when it is encrypted.
pub async fn read_slice(
    storage: &Storage,
    slice: &SliceRecord,
    identities: &Identities,
) -> Result<Vec<u8>> {
    let key = set_dir(storage, &slice.replica_set).join(slice.object.as_str());
    let subject = key.to_string();
    let stored = get_bytes(storage, &key).await?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored));
    if stored.len() as u64 != slice.size {
        return Err(Error::ChecksumMismatch {
            subject,
            what: "size",
            expected: slice.size.to_string(),
            actual: stored.len().to_string(),
        });
    }
    if sha != slice.sha256 {
        return Err(Error::ChecksumMismatch {
            subject,
            what: "SHA-256",
            expected: slice.sha256.clone(),
            actual: sha,
        });
    }
    let plain: Box<dyn Read + Send> = if slice.encrypted {
        identities.open(std::io::Cursor::new(stored.to_vec()), &subject)?
    } else {
        Box::new(std::io::Cursor::new(stored.to_vec()))
    };
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(plain)
        .read_to_end(&mut out)
        .map_err(|e| Error::invalid(subject, format!("not a readable gzip'd slice: {e}")))?;
    Ok(out)
}

/// A base backup's consistent point: [`Metadata::oplog_end`], if recorded.
/// `None` for a restore's safety backup (label `pre-restore`): it holds
/// only what that restore replaced, never a whole database.
pub fn base_end(meta: &Metadata) -> Option<Position> {
    if meta.labels.iter().any(|l| l == "pre-restore") {
        return None;
    }
    meta.oplog_end.as_deref().and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests;
