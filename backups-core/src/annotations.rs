//! Annotations: what changes about a backup after it is made (labels,
//! notes, the last verification), written beside a commit record that is
//! locked and so cannot be rewritten.
//!
//! Each edit writes a new object `<prefix>/<id>.annotations/<seq>.json`
//! (`seq` one more than the newest, 20 digits, under the store's lease)
//! holding the whole annotated state; the newest one that can be read
//! wins, one that cannot is skipped (the next older one, or the commit
//! record's own labels and notes, is used). Older annotations are then
//! deleted, except on an append-only store. A backup whose commit record
//! is not locked keeps being edited in place (its sidecar is rewritten),
//! so older tools and Juju's sidecars read as they always did.

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::metadata::{MAX_METADATA_BYTES, Metadata, Verification};
use crate::storage::Storage;

/// What an annotation object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Annotation {
    /// The backup it annotates.
    #[serde(rename = "ID")]
    id: String,
    /// Its labels.
    #[serde(default)]
    labels: Vec<String>,
    /// Its notes.
    #[serde(default)]
    notes: String,
    /// Its last verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verification: Option<Verification>,
    /// When this annotation was written.
    #[serde(with = "time::serde::rfc3339")]
    written: OffsetDateTime,
}

/// The folder of `id`'s annotations.
fn folder(storage: &Storage, id: &BackupId) -> ObjectPath {
    storage.key(&format!("{id}.annotations"))
}

/// The id and sequence number of an annotation key directly under the
/// store's prefix (`<id>.annotations/<seq>.json`).
pub(crate) fn parse_key(storage: &Storage, key: &ObjectPath) -> Option<(BackupId, u64)> {
    let parts: Vec<_> = key.prefix_match(storage.prefix())?.collect();
    let [dir, file] = parts.as_slice() else {
        return None;
    };
    let id = dir.as_ref().strip_suffix(".annotations")?.parse().ok()?;
    let seq = file.as_ref().strip_suffix(".json")?.parse().ok()?;
    Some((id, seq))
}

/// The annotation keys of `id`, by sequence number.
pub(crate) async fn keys_of(storage: &Storage, id: &BackupId) -> Result<Vec<(u64, ObjectPath)>> {
    let dir = folder(storage, id);
    let objects: Vec<_> = storage
        .object_store()
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&dir, e))?;
    let mut keys: Vec<_> = objects
        .into_iter()
        .filter_map(|o| parse_key(storage, &o.location).map(|(_, seq)| (seq, o.location)))
        .collect();
    keys.sort();
    Ok(keys)
}

/// Applies the newest readable annotation of `keys` to `meta`; returns
/// the annotations skipped because they could not be read (key, why).
pub(crate) async fn apply_newest(
    storage: &Storage,
    id: &BackupId,
    mut keys: Vec<(u64, ObjectPath)>,
    meta: &mut Metadata,
) -> Result<Vec<(String, String)>> {
    keys.sort();
    let mut skipped = Vec::new();
    for (_, key) in keys.into_iter().rev() {
        match read(storage, id, &key).await? {
            Ok(Some(a)) => {
                meta.labels = a.labels;
                meta.notes = a.notes;
                meta.verification = a.verification;
                break;
            }
            Ok(None) => {}
            Err(reason) => skipped.push((key.to_string(), reason)),
        }
    }
    Ok(skipped)
}

/// One annotation: `Ok(None)` when it is gone, `Err(reason)` when it
/// cannot be read or is not `id`'s.
async fn read(
    storage: &Storage,
    id: &BackupId,
    key: &ObjectPath,
) -> Result<std::result::Result<Option<Annotation>, String>> {
    let result = match storage.object_store().get(key).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(Ok(None)),
        Err(e) => return Err(Error::storage(key, e)),
    };
    if result.meta.size > MAX_METADATA_BYTES {
        return Ok(Err(format!(
            "annotation larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    let bytes = match result.bytes().await {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(Ok(None)),
        Err(e) => return Err(Error::storage(key, e)),
    };
    Ok(match serde_json::from_slice::<Annotation>(&bytes) {
        Ok(a) if a.id == id.to_string() => Ok(Some(a)),
        Ok(a) => Err(format!("annotation of {}, not of {id}", a.id)),
        Err(e) => Err(format!("not a valid annotation: {e}")),
    })
}

/// Writes `meta`'s labels, notes and verification as `id`'s newest
/// annotation (the caller holds the store's lease), then deletes the
/// older ones (not on an append-only store).
pub(crate) async fn write(storage: &Storage, id: &BackupId, meta: &Metadata) -> Result<()> {
    let older = keys_of(storage, id).await?;
    let seq = older.last().map_or(1, |(s, _)| s + 1);
    let key = folder(storage, id).join(format!("{seq:020}.json"));
    let annotation = Annotation {
        id: id.to_string(),
        labels: meta.labels.clone(),
        notes: meta.notes.clone(),
        verification: meta.verification.clone(),
        written: OffsetDateTime::now_utc(),
    };
    let body = serde_json::to_vec_pretty(&annotation)
        .map_err(|e| Error::internal(format!("annotation of {id}: {e}")))?;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    storage
        .object_store()
        .put_opts(&key, PutPayload::from(body), opts)
        .await
        .map_err(|e| Error::storage(&key, e))?;
    storage.make_private(&key);
    for (_, old) in older {
        storage.discard(&old).await;
    }
    Ok(())
}

/// Deletes every annotation of `id` (after its backup was removed).
pub(crate) async fn delete_all(storage: &Storage, id: &BackupId) -> Result<()> {
    for (_, key) in keys_of(storage, id).await? {
        storage.delete_if_exists(&key).await?;
    }
    Ok(())
}
