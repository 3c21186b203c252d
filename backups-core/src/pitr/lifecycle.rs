//! The slices' lifecycle beside the backups': which slices the kept base
//! backups no longer need ([`forget_plan`]), checking the committed ones
//! ([`verify_slices`]), and what a shipper killed mid-commit left
//! ([`uncommitted`], for `gc`).

use object_store::ObjectStoreExt;

use super::{Gap, Position, ReplicaSetChain, SliceRecord, base_end, read_slice, set_dir};
use crate::crypt::Identities;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::storage::Storage;

/// Where a base backup's replay starts: a second before it started (its
/// own oplog read may have missed an entry made visible late), else at
/// its consistent point.
pub fn replay_start(meta: &Metadata) -> Option<Position> {
    let end = base_end(meta)?;
    let started = meta
        .started
        .and_then(|t| u32::try_from(t.unix_timestamp()).ok())
        .unwrap_or(end.seconds);
    Some(Position::new(started.saturating_sub(1), 0).min(end))
}

/// One replica set's slices that the kept backups no longer need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SliceForget {
    /// The replica set.
    pub replica_set: String,
    /// The slices to remove, oldest first.
    pub remove: Vec<SliceRecord>,
    /// The recorded gaps before every kept backup, to remove with them.
    pub remove_gaps: Vec<Gap>,
    /// How many slices stay.
    pub kept: usize,
    /// Where the oldest kept backup's replay starts (`None`: no kept
    /// backup of this replica set has a consistent point, so nothing is
    /// removed).
    pub cutoff: Option<Position>,
}

/// Per replica set: the slices that end before the oldest `kept` base
/// backup's replay starts (none is ever needed by a kept backup: a slice
/// holding an entry after that point stays). A replica set no kept backup
/// has a consistent point in keeps every slice.
pub fn forget_plan(chains: &[ReplicaSetChain], kept: &[Metadata]) -> Vec<SliceForget> {
    chains
        .iter()
        .map(|chain| {
            let cutoff = kept
                .iter()
                .filter(|m| m.replica_set.as_deref().is_none_or(|rs| rs == chain.name))
                .filter_map(replay_start)
                .min();
            let (remove, keep): (Vec<_>, Vec<_>) = chain
                .slices
                .iter()
                .cloned()
                .partition(|s| cutoff.is_some_and(|c| s.last <= c));
            let remove_gaps = chain
                .recorded_gaps
                .iter()
                .filter(|g| cutoff.is_some_and(|c| g.to <= c))
                .cloned()
                .collect();
            SliceForget {
                replica_set: chain.name.clone(),
                remove,
                remove_gaps,
                kept: keep.len(),
                cutoff,
            }
        })
        .collect()
}

/// Removes what [`forget_plan`] chose: each slice's record first (the
/// commit point: a reader never sees a record without its object), then
/// its object. Returns the keys that could not be removed, with why.
pub async fn forget_slices(
    storage: &Storage,
    plan: &[SliceForget],
) -> Result<Vec<(String, Error)>> {
    if plan
        .iter()
        .all(|p| p.remove.is_empty() && p.remove_gaps.is_empty())
    {
        return Ok(Vec::new());
    }
    storage.check_may_delete("forget oplog slices")?;
    let mut failed = Vec::new();
    for set in plan {
        let dir = set_dir(storage, &set.replica_set);
        let mut keys = Vec::new();
        for s in &set.remove {
            keys.push(dir.clone().join(record_name(s)));
            keys.push(dir.clone().join(s.object.as_str()));
        }
        for g in &set.remove_gaps {
            keys.push(
                dir.clone()
                    .join("gaps")
                    .join(format!("{}.json", super::slice_stem(g.from, g.to))),
            );
        }
        for key in keys {
            if let Err(e) = storage.delete_if_exists(&key).await {
                failed.push((key.to_string(), e));
            }
        }
    }
    Ok(failed)
}

/// A slice record's name: the object's stem and `.json`.
fn record_name(s: &SliceRecord) -> String {
    format!("{}.json", super::slice_stem(s.first, s.last))
}

/// What [`verify_slices`] found wrong with one slice (or between two).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SliceProblem {
    /// The replica set.
    pub replica_set: String,
    /// The slice object (or the gap, `FROM-TO`).
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

/// The outcome of checking one replica set's slices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SliceCheck {
    /// The replica set.
    pub replica_set: String,
    /// Slices checked.
    pub slices: usize,
    /// Oplog entries counted in them (with `read_data`).
    pub entries: u64,
    /// What is wrong: checksums, framing, continuity.
    pub problems: Vec<SliceProblem>,
}

/// Checks every committed slice of `chain`: its stored size and SHA-256
/// against its record; with `read_data`, it is decrypted (`identities`),
/// decompressed, and it must hold `entries` BSON documents, each in the
/// slice's range. And continuity: each slice starts where the one
/// before ended, and the chain where the newest of `base_ends` (the base
/// backups' consistent points) before it is; every gap, recorded or
/// found, is a problem.
pub async fn verify_slices(
    storage: &Storage,
    chain: &ReplicaSetChain,
    base_ends: &[Position],
    read_data: bool,
    identities: &Identities,
) -> SliceCheck {
    let mut check = SliceCheck {
        replica_set: chain.name.clone(),
        slices: chain.slices.len(),
        ..Default::default()
    };
    let problem = |object: &str, what: String| SliceProblem {
        replica_set: chain.name.clone(),
        object: object.to_string(),
        problem: what,
    };
    for s in &chain.slices {
        let got = if read_data {
            read_slice(storage, s, identities).await.and_then(|plain| {
                let n = count_entries(&plain, s)?;
                Ok(n)
            })
        } else {
            stored_matches(storage, s).await.map(|()| 0)
        };
        match got {
            Ok(n) => check.entries += n,
            Err(e) => check.problems.push(problem(&s.object, e.to_string())),
        }
    }
    for g in chain.gaps_for(base_ends) {
        check.problems.push(problem(
            &super::slice_stem(g.from, g.to),
            format!(
                "gap {} .. {}: {}",
                g.from.rfc3339(),
                g.to.rfc3339(),
                g.reason
            ),
        ));
    }
    check
}

/// The stored object's size and SHA-256 against the record, without
/// decrypting it.
async fn stored_matches(storage: &Storage, s: &SliceRecord) -> Result<()> {
    let key = set_dir(storage, &s.replica_set).join(s.object.as_str());
    let got = storage
        .object_store()
        .get(&key)
        .await
        .map_err(|e| Error::storage(key.to_string(), e))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| Error::storage(key.to_string(), e))?;
    let subject = key.to_string();
    if bytes.len() as u64 != s.size {
        return Err(Error::ChecksumMismatch {
            subject,
            what: "size",
            expected: s.size.to_string(),
            actual: bytes.len().to_string(),
        });
    }
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    if sha != s.sha256 {
        return Err(Error::ChecksumMismatch {
            subject,
            what: "SHA-256",
            expected: s.sha256.clone(),
            actual: sha,
        });
    }
    Ok(())
}

/// The BSON documents of a slice: as many as its record says, each within
/// the slice's range. (Their order is the oplog's, which a server may
/// not keep by timestamp.)
pub(super) fn count_entries(plain: &[u8], s: &SliceRecord) -> Result<u64> {
    let bad = |why: String| Error::invalid(s.object.clone(), why);
    let mut at = 0usize;
    let mut n = 0u64;
    while at < plain.len() {
        let len = plain
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_le_bytes)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l >= 5 && at + l <= plain.len())
            .ok_or_else(|| bad(format!("a truncated oplog entry at byte {at}")))?;
        let ts = timestamp(&plain[at..at + len])
            .ok_or_else(|| bad(format!("an oplog entry without ts at byte {at}")))?;
        if ts <= s.after || ts > s.last {
            return Err(bad(format!(
                "entry {ts} is outside the slice's range ({} .. {})",
                s.after, s.last
            )));
        }
        n += 1;
        at += len;
    }
    if n != s.entries {
        return Err(bad(format!(
            "{n} oplog entries, its record says {}",
            s.entries
        )));
    }
    Ok(n)
}

/// The `ts` field (BSON type 0x11) of one document, scanned at the top
/// level without a BSON library.
fn timestamp(doc: &[u8]) -> Option<Position> {
    let mut at = 4;
    while at < doc.len().saturating_sub(1) {
        let kind = doc[at];
        let name_end = at + 1 + doc.get(at + 1..)?.iter().position(|b| *b == 0)?;
        let name = &doc[at + 1..name_end];
        let value = name_end + 1;
        if kind == 0x11 && name == b"ts" {
            let raw = doc.get(value..value + 8)?;
            let ordinal = u32::from_le_bytes(raw[0..4].try_into().ok()?);
            let seconds = u32::from_le_bytes(raw[4..8].try_into().ok()?);
            return Some(Position::new(seconds, ordinal));
        }
        at = value + value_len(kind, doc.get(value..)?)?;
    }
    None
}

/// The length of a BSON value of type `kind` at the start of `v`.
fn value_len(kind: u8, v: &[u8]) -> Option<usize> {
    let i32_at = |o: usize| -> Option<usize> {
        usize::try_from(i32::from_le_bytes(v.get(o..o + 4)?.try_into().ok()?)).ok()
    };
    Some(match kind {
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x02 | 0x0D | 0x0E => 4 + i32_at(0)?,
        0x03 | 0x04 | 0x0F => i32_at(0)?,
        0x05 => 5 + i32_at(0)?,
        0x06 | 0x0A | 0x7F | 0xFF => 0,
        0x07 => 12,
        0x08 => 1,
        0x0B => {
            let a = v.iter().position(|b| *b == 0)? + 1;
            a + v.get(a..)?.iter().position(|b| *b == 0)? + 1
        }
        0x0C => 4 + i32_at(0)? + 12,
        0x10 => 4,
        0x13 => 16,
        _ => return None,
    })
}

/// The slice objects of `chain` no record names (a shipper stopped
/// between writing a slice and committing it): `(key, size, age in
/// seconds)`.
pub async fn uncommitted(
    storage: &Storage,
    chain: &ReplicaSetChain,
) -> Result<Vec<(String, u64, u64)>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let dir = set_dir(storage, &chain.name);
    let mut out = Vec::new();
    for name in chain.stray.iter().filter(|n| !n.ends_with(".json")) {
        let key = dir.clone().join(name.as_str());
        let head = storage
            .object_store()
            .head(&key)
            .await
            .map_err(|e| Error::storage(key.to_string(), e))?;
        let age = (now - head.last_modified.timestamp()).max(0) as u64;
        out.push((key.to_string(), head.size, age));
    }
    Ok(out)
}
