//! Finding and deleting what interrupted work leaves behind: archives no
//! sidecar names (a create killed between upload and commit, a writer that
//! lost a race), staging files of interrupted uploads in local stores,
//! sidecars whose archive is gone, and sidecars that cannot be read (which
//! every listing skips), and oplog slices never committed.
//!
//! Incomplete S3/Azure multipart uploads are invisible through object_store
//! (it cannot list them): a failed upload aborts its own, and for uploads cut
//! by a crash a bucket lifecycle rule (S3 `AbortIncompleteMultipartUpload`)
//! cleans up; the README shows one.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use time::OffsetDateTime;

use crate::catalog::Listing;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::storage::{Backend, Storage, strip_archive_suffix};

/// Why an object is garbage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GarbageKind {
    /// An archive that no sidecar names.
    OrphanArchive,
    /// A local staging file of an interrupted upload.
    StagingFile,
    /// A sidecar whose archive is missing (the backup cannot be restored).
    BrokenSidecar,
    /// A sidecar that cannot be read or does not describe a backup (see
    /// [`crate::catalog::UnreadableSidecar`]); listed whatever its age, since a
    /// sidecar is written in one put and is never half-written.
    UnreadableSidecar,
    /// An oplog slice object without its record (a shipper stopped between
    /// writing the slice and committing it).
    UncommittedSlice,
}

/// One object `gc` would delete.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Garbage {
    /// The object key (or local path for staging files).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Seconds since it was last modified.
    pub age_secs: u64,
    /// Why it is garbage.
    pub kind: GarbageKind,
}

/// Lists the garbage in `storage` older than `min_age` (younger objects may
/// belong to an upload in progress, between its archive and its commit);
/// `catalog` is the store's listing (every sidecar, readable or not).
pub(crate) async fn find(
    storage: &Storage,
    catalog: &Listing,
    min_age: Duration,
) -> Result<Vec<Garbage>> {
    let backups: &[Metadata] = &catalog.backups;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let age = |ts: i64| (now - ts).max(0) as u64;
    let listing: Vec<_> = storage
        .object_store()
        .list(Some(storage.prefix()))
        .try_collect()
        .await
        .map_err(|e| Error::storage(format!("{} (listing)", storage.url()), e))?;
    let mut referenced = HashSet::new();
    for meta in backups {
        if let Some(id) = &meta.id {
            referenced.insert(storage.archive_key(id, meta).to_string());
        }
    }
    let existing: HashSet<String> = listing.iter().map(|o| o.location.to_string()).collect();
    let mut out = Vec::new();
    for bad in &catalog.unreadable {
        if let Some(object) = listing.iter().find(|o| o.location.as_ref() == bad.key) {
            out.push(Garbage {
                key: bad.key.clone(),
                size: object.size,
                age_secs: age(object.last_modified.timestamp()),
                kind: GarbageKind::UnreadableSidecar,
            });
        }
    }
    for meta in backups {
        if let Some(id) = &meta.id {
            let archive = storage.archive_key(id, meta).to_string();
            if !existing.contains(&archive) {
                let sidecar = storage.sidecar_key(id);
                let head = storage
                    .object_store()
                    .head(&sidecar)
                    .await
                    .map_err(|e| Error::storage(&sidecar, e))?;
                out.push(Garbage {
                    key: sidecar.to_string(),
                    size: head.size,
                    age_secs: age(head.last_modified.timestamp()),
                    kind: GarbageKind::BrokenSidecar,
                });
            }
        }
    }
    for object in &listing {
        let key = object.location.to_string();
        let archive = strip_archive_suffix(&key).is_some();
        if archive && !referenced.contains(&key) {
            out.push(Garbage {
                key,
                size: object.size,
                age_secs: age(object.last_modified.timestamp()),
                kind: GarbageKind::OrphanArchive,
            });
        }
    }
    if let Some(dir) = storage.local_dir() {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let staged = name.split_once('#').is_some_and(|(base, n)| {
                strip_archive_suffix(base).is_some() && n.bytes().all(|c| c.is_ascii_digit())
            });
            if !staged {
                continue;
            }
            let Ok(m) = entry.metadata() else { continue };
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or(now);
            out.push(Garbage {
                key: entry.path().display().to_string(),
                size: m.len(),
                age_secs: age(modified),
                kind: GarbageKind::StagingFile,
            });
        }
    }
    out.extend(uncommitted_slices(storage).await?);
    out.retain(|g| g.kind == GarbageKind::UnreadableSidecar || g.age_secs >= min_age.as_secs());
    drop_locked(storage, &mut out).await?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The oplog slice objects no record commits.
async fn uncommitted_slices(storage: &Storage) -> Result<Vec<Garbage>> {
    let mut out = Vec::new();
    for chain in crate::pitr::catalog(storage).await? {
        for (key, size, age_secs) in crate::pitr::uncommitted(storage, &chain).await? {
            out.push(Garbage {
                key,
                size,
                age_secs,
                kind: GarbageKind::UncommittedSlice,
            });
        }
    }
    Ok(out)
}

/// Leaves out of `garbage` every object an S3 Object Lock still holds
/// (an archive a killed immutable create left): gc never touches one.
async fn drop_locked(storage: &Storage, garbage: &mut Vec<Garbage>) -> Result<()> {
    let Backend::S3(s3) = storage.backend() else {
        return Ok(());
    };
    let now = OffsetDateTime::now_utc();
    let mut kept = Vec::with_capacity(garbage.len());
    for g in garbage.drain(..) {
        let locked = match g.kind {
            GarbageKind::StagingFile => false,
            _ => s3
                .head(&object_store::path::Path::from(g.key.as_str()))
                .await?
                .and_then(|h| h.lock)
                .is_some_and(|l| l.holds_at(now)),
        };
        if !locked {
            kept.push(g);
        }
    }
    *garbage = kept;
    Ok(())
}

/// Deletes what [`find`] returned; the caller holds the store's lease.
pub(crate) async fn delete(storage: &Storage, garbage: &[Garbage]) -> Result<()> {
    storage.check_may_delete("delete garbage")?;
    for g in garbage {
        match g.kind {
            GarbageKind::StagingFile => {
                std::fs::remove_file(&g.key).map_err(|e| Error::io("deleting", &g.key, e))?
            }
            _ => {
                storage
                    .delete_if_exists(&object_store::path::Path::from(g.key.as_str()))
                    .await?
            }
        }
    }
    Ok(())
}
