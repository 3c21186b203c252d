//! Editing a committed backup's sidecar: labels, notes and the record of
//! its last verification. Each edit is a read-modify-write of the sidecar
//! under the store's lease, so concurrent edits never lose one another and
//! never bring back a backup that a remove deleted meanwhile; the write
//! itself is one atomic put (the old sidecar or the new one, never none).

use std::time::Duration;

use crate::catalog::StoreBackups;
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::lease;
use crate::metadata::{Metadata, Verification};

/// How long an edit waits for a lease held by someone else.
const EDIT_PATIENCE: Duration = Duration::from_secs(60);

/// A change to a backup's sidecar.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Edit {
    /// Labels to add (kept once each, in order).
    pub add_labels: Vec<String>,
    /// Labels to remove.
    pub remove_labels: Vec<String>,
    /// New notes, replacing the old.
    pub notes: Option<String>,
    /// The last verification's record.
    pub verification: Option<Verification>,
}

impl Edit {
    /// Adds and removes labels.
    pub fn labels(add: Vec<String>, remove: Vec<String>) -> Self {
        Edit {
            add_labels: add,
            remove_labels: remove,
            ..Default::default()
        }
    }

    /// Replaces the notes.
    pub fn notes(notes: impl Into<String>) -> Self {
        Edit {
            notes: Some(notes.into()),
            ..Default::default()
        }
    }

    /// Records a verification.
    pub fn verification(record: Verification) -> Self {
        Edit {
            verification: Some(record),
            ..Default::default()
        }
    }

    fn apply(&self, meta: &mut Metadata) {
        for label in &self.add_labels {
            if !meta.labels.contains(label) {
                meta.labels.push(label.clone());
            }
        }
        meta.labels.retain(|l| !self.remove_labels.contains(l));
        if let Some(notes) = &self.notes {
            meta.notes.clone_from(notes);
        }
        if let Some(v) = &self.verification {
            meta.verification = Some(v.clone());
        }
    }
}

/// Applies `edit` to the sidecar of `id`; returns the new metadata.
pub(crate) async fn edit(backups: &StoreBackups, id: &BackupId, edit: &Edit) -> Result<Metadata> {
    // Labels of older versions that break the rule may still be removed.
    for label in &edit.add_labels {
        crate::metadata::check_label(label)?;
    }
    let storage = backups.storage();
    let guard = lease::acquire_waiting(
        storage,
        lease::MAIN,
        backups.holder(),
        "edit",
        (lease::DEFAULT_LEASE_TTL, EDIT_PATIENCE),
    )
    .await?;
    let result = async {
        let mut meta = backups.committed(id).await?;
        edit.apply(&mut meta);
        if meta.lock_requested.is_some() {
            // A locked commit record is never rewritten: a new annotation.
            crate::annotations::write(storage, id, &meta).await?;
        } else {
            backups.rewrite_sidecar(&meta).await?;
        }
        Ok::<_, Error>(meta)
    }
    .await;
    let released = lease::release(storage, guard).await;
    let meta = result?;
    released?;
    Ok(meta)
}
