//! Copies between two stores, and writes to a store whose every delete is
//! refused (append-only).

use crate::download::DownloadTo;
use std::sync::Arc;

use object_store::{ObjectStoreExt, PutPayload};

use super::{all_keys, archive_bytes, random_tree, request};
use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::error::Error;
use crate::fault::{FaultPlan, FaultStore};
use crate::ops::copy::{CopyRequest, CopySelection};
use crate::progress::NoProgress;
use crate::request::ArchiveSource;
use crate::storage::Storage;
use crate::test_util::sample_tree;

/// A copy lands byte for byte with its labels, notes and `CopiedFrom`; a
/// second copy skips it; a target holding other bytes under the id is
/// refused naming both checksums; a corrupt source is refused and leaves
/// no sidecar in the target.
pub async fn copy_verifies_skips_and_refuses(source: Storage, target: Storage) {
    let (source, target) = (StoreBackups::new(source), StoreBackups::new(target));
    let tmp = tempfile::tempdir().expect("tempdir");
    let meta = source
        .create(request(vec![sample_tree(tmp.path())]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    let all = CopyRequest::new(CopySelection::All);
    let report = source
        .copy_to(&target, &all, Arc::new(NoProgress))
        .await
        .expect("copy");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.copied.len(), 1);
    assert_eq!(report.copied[0].id, id);
    assert_eq!(report.copied[0].bytes, meta.size);
    let copied = target.metadata(&id).await.expect("copied sidecar");
    assert_eq!(copied.checksum, meta.checksum);
    assert_eq!((&copied.labels, &copied.notes), (&meta.labels, &meta.notes));
    let from = copied.copied_from.clone().expect("CopiedFrom");
    assert_eq!(from.store, source.storage().url());
    assert!(from.time.is_some());
    assert_eq!(
        archive_bytes(&target, &id).await,
        archive_bytes(&source, &id).await
    );

    let again = source
        .copy_to(&target, &all, Arc::new(NoProgress))
        .await
        .expect("copy again");
    assert!(again.copied.is_empty() && again.failed.is_empty());
    assert_eq!(again.skipped.len(), 1, "the second copy skips it");

    // The target's sidecar now records other bytes under the id.
    let mut other = copied.clone();
    other.checksum = "b3RoZXIgYnl0ZXM=".into();
    let sidecar = target.storage().sidecar_key(&id);
    target
        .storage()
        .object_store()
        .put(&sidecar, PutPayload::from(other.to_json()))
        .await
        .expect("rewrite sidecar");
    let conflict = source
        .copy_to(&target, &all, Arc::new(NoProgress))
        .await
        .expect("copy over a conflict");
    assert_eq!(conflict.failed.len(), 1);
    match &conflict.failed[0].error {
        Error::AlreadyExists { existing, new, .. } => {
            assert_eq!(existing, "b3RoZXIgYnl0ZXM=");
            assert_eq!(new, &meta.checksum);
        }
        e => panic!("expected a conflict, got {e}"),
    }

    corrupt_source_is_refused(&source, &meta).await;
}

/// A byte flipped in the source's archive: the copy fails with a checksum
/// mismatch and the (fresh) target holds no sidecar.
async fn corrupt_source_is_refused(source: &StoreBackups, meta: &crate::metadata::Metadata) {
    let id = meta.id.clone().expect("id");
    let key = source.storage().archive_key(&id, meta);
    let mut bytes = archive_bytes(source, &id).await.to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    source
        .storage()
        .object_store()
        .put(&key, PutPayload::from(bytes))
        .await
        .expect("flip a byte");
    let fresh = StoreBackups::new(Storage::new(
        source.storage().object_store().clone(),
        source.storage().prefix().clone().join("fresh-target"),
        format!("{}/fresh-target", source.storage().url()),
    ));
    let report = source
        .copy_to(
            &fresh,
            &CopyRequest::new(CopySelection::Ids(vec![id.clone()])),
            Arc::new(NoProgress),
        )
        .await
        .expect("copy of a corrupt backup");
    assert!(report.copied.is_empty());
    assert_eq!(report.failed.len(), 1);
    assert!(
        matches!(report.failed[0].error, Error::ChecksumMismatch { .. }),
        "{}",
        report.failed[0].error
    );
    assert!(fresh.list().await.expect("list").is_empty());
    let left: Vec<String> = all_keys(fresh.storage()).await;
    assert!(
        left.iter()
            .all(|k| !k.ends_with(".json") || k.contains(".lease")),
        "no sidecar in the target: {left:?}"
    );
}

/// With every delete refused by the store and `append_only` set, create,
/// upload (twice: the second a no-op), a multipart create and copy into
/// the store all succeed, and what deletes is refused with
/// [`Error::AppendOnly`].
pub async fn append_only_writes_when_deletes_are_refused(storage: Storage) {
    let refusing = FaultStore::new(
        storage.object_store().clone(),
        FaultPlan {
            refuse_deletes: true,
            ..Default::default()
        },
    );
    let b = StoreBackups::new(
        Storage::new(Arc::new(refusing), storage.prefix().clone(), storage.url())
            .with_append_only(true),
    )
    .with_upload_options(crate::upload::UploadOptions::new(5 * 1024 * 1024, 2));
    let tmp = tempfile::tempdir().expect("tempdir");
    let small = b
        .create(request(vec![sample_tree(tmp.path())]), Arc::new(NoProgress))
        .await
        .expect("create without deletes");
    let big = b
        .create(
            request(vec![random_tree(tmp.path(), 12)]),
            Arc::new(NoProgress),
        )
        .await
        .expect("multipart create without deletes");
    let small_id = small.id.clone().expect("id");
    let file = tmp.path().join("small.tar.gz");
    b.download(&small_id, DownloadTo::File(&file), Arc::new(NoProgress))
        .await
        .expect("download");
    let again = b
        .add(ArchiveSource::File(file), None, Arc::new(NoProgress))
        .await
        .expect("upload without deletes");
    assert!(again.already_present);
    let listed: Vec<_> = b.list().await.expect("list");
    assert_eq!(listed.len(), 2, "both backups listed");

    // Copy into a second append-only store that refuses deletes.
    let target = StoreBackups::new(
        Storage::new(
            Arc::new(FaultStore::new(
                storage.object_store().clone(),
                FaultPlan {
                    refuse_deletes: true,
                    ..Default::default()
                },
            )),
            storage.prefix().clone().join("copy"),
            format!("{}/copy", storage.url()),
        )
        .with_append_only(true),
    );
    let report = b
        .copy_to(
            &target,
            &CopyRequest::new(CopySelection::All),
            Arc::new(NoProgress),
        )
        .await
        .expect("copy into an append-only store");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.copied.len(), 2);
    let big_id = big.id.clone().expect("id");
    assert_eq!(
        target.metadata(&big_id).await.expect("copied").checksum,
        big.checksum
    );

    let err = b.remove(&small_id).await.unwrap_err();
    assert!(matches!(err, Error::AppendOnly { .. }), "{err}");
    assert!(b.metadata(&small_id).await.is_ok(), "still there");
}
