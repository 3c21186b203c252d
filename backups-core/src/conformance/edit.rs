//! Sidecar rewrites (labels, notes, verification records) on every store:
//! concurrent edits of one backup lose neither the backup nor an edit, an
//! edit never brings back a removed backup, and verification at each level
//! records what it found.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::error::Error;
use crate::id::BackupId;
use crate::metadata::VerifyLevel;
use crate::ops::edit::Edit;
use crate::ops::verify::VerifyRequest;
use crate::progress::NoProgress;

use super::{archive_bytes, request};

/// Eight concurrent label edits of one backup: all eight labels end up in
/// its sidecar, which stays readable; notes replace notes.
pub async fn concurrent_edits_keep_the_backup_and_every_edit(b: &StoreBackups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = crate::test_util::sample_tree(tmp.path());
    let meta = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    let edits = (0..8).map(|i| {
        let id = id.clone();
        async move {
            b.edit(&id, &Edit::labels(vec![format!("l{i}")], vec![]))
                .await
                .expect("edit")
        }
    });
    futures::future::join_all(edits).await;
    let now = b.metadata(&id).await.expect("still there");
    for i in 0..8 {
        assert!(
            now.labels.contains(&format!("l{i}")),
            "label l{i} kept: {:?}",
            now.labels
        );
    }
    assert!(now.labels.contains(&"manual".to_string()));
    let now = b
        .edit(&id, &Edit::labels(vec![], vec!["l3".into()]))
        .await
        .expect("remove a label");
    assert!(!now.labels.contains(&"l3".to_string()));
    b.edit(&id, &Edit::notes("after the upgrade"))
        .await
        .expect("notes");
    assert_eq!(
        b.metadata(&id).await.expect("meta").notes,
        "after the upgrade"
    );
    assert_eq!(b.list().await.expect("list").len(), 1);

    // An edit of a removed (or never made) backup changes nothing.
    b.remove(&id).await.expect("remove");
    let err = b
        .edit(&id, &Edit::notes("too late"))
        .await
        .expect_err("removed");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(b.list().await.expect("list").is_empty(), "not brought back");
    let missing: BackupId = "20200101-000000.0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10"
        .parse()
        .expect("id");
    assert!(b.edit(&missing, &Edit::notes("x")).await.is_err());
}

/// Verification at every level passes on an intact backup and records it;
/// a damaged one fails and says so in its sidecar.
pub async fn verification_is_recorded_at_every_level(b: &StoreBackups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = crate::test_util::sample_tree(tmp.path());
    let meta = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    for level in [
        VerifyLevel::Stored,
        VerifyLevel::ReadData,
        VerifyLevel::Drill,
    ] {
        let request = VerifyRequest::new(level).with_scratch_dir(tmp.path());
        let record = b
            .verify(&id, &request, Arc::new(NoProgress))
            .await
            .expect("verify");
        assert!(record.ok, "{level:?}: {}", record.detail);
        let stored = b.metadata(&id).await.expect("meta").verification;
        assert_eq!(stored, Some(record), "{level:?} recorded");
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".backups-drill-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "the drill's scratch directory is gone"
    );

    // Damage the stored bytes: every level fails, and the sidecar says so.
    let stored = archive_bytes(b, &id).await;
    let mut bad = stored.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 0x20;
    b.storage()
        .object_store()
        .put(
            &b.storage().archive_key(&id, &meta),
            PutPayload::from(Bytes::from(bad)),
        )
        .await
        .expect("damage");
    for level in [
        VerifyLevel::Stored,
        VerifyLevel::ReadData,
        VerifyLevel::Drill,
    ] {
        let record = b
            .verify(
                &id,
                &VerifyRequest::new(level).with_scratch_dir(tmp.path()),
                Arc::new(NoProgress),
            )
            .await
            .expect("verify runs");
        assert!(!record.ok, "{level:?} finds the damage");
        let stored = b
            .metadata(&id)
            .await
            .expect("meta")
            .verification
            .expect("recorded");
        assert!(!stored.ok && stored.level == level, "{stored:?}");
    }
    b.remove(&id).await.expect("remove");
}
