//! Garbage collection: what a store's gc finds and deletes.

use crate::download::DownloadTo;
use std::sync::Arc;

use object_store::{ObjectStoreExt, PutPayload};

use super::request;
use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::progress::NoProgress;
use crate::storage::Storage;
use crate::test_util::sample_tree;

/// gc finds orphan archives and sidecars without archives, never a
/// committed backup's archive, and deletes only what it listed.
pub async fn gc_finds_and_deletes_garbage(storage: Storage) {
    use crate::gc::GarbageKind;
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let b = StoreBackups::new(storage.clone());
    let kept = b
        .create(request(vec![tree.clone()]), Arc::new(NoProgress))
        .await
        .expect("create");
    let broken = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create");
    let broken_id = broken.id.clone().expect("id");
    let broken_archive = storage.archive_key(&broken_id, &broken);
    storage
        .object_store()
        .delete(&broken_archive)
        .await
        .expect("delete archive");
    let orphan = storage.key("20240101-000000.0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10.abc123.tar.gz");
    storage
        .object_store()
        .put(&orphan, PutPayload::from(vec![1u8; 100]))
        .await
        .expect("orphan");

    let young = b
        .find_garbage(std::time::Duration::from_secs(3600))
        .await
        .expect("gc");
    assert!(young.is_empty(), "fresh objects are left alone: {young:?}");
    let garbage = b.find_garbage(std::time::Duration::ZERO).await.expect("gc");
    let kinds: Vec<_> = garbage
        .iter()
        .map(|g| (g.kind.clone(), g.key.clone()))
        .collect();
    assert_eq!(
        kinds,
        {
            let mut want = vec![
                (GarbageKind::OrphanArchive, orphan.to_string()),
                (
                    GarbageKind::BrokenSidecar,
                    storage.sidecar_key(&broken_id).to_string(),
                ),
            ];
            want.sort_by(|a, b| a.1.cmp(&b.1));
            want
        },
        "exactly the orphan and the broken sidecar"
    );
    b.delete_garbage(&garbage).await.expect("delete");
    let listed: Vec<_> = b
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, vec![kept.id.clone()]);
    assert!(
        b.find_garbage(std::time::Duration::ZERO)
            .await
            .expect("gc")
            .is_empty()
    );
    b.download(
        kept.id.as_ref().expect("id"),
        DownloadTo::File(&tmp.path().join("k.tar.gz")),
        Arc::new(NoProgress),
    )
    .await
    .expect("the kept backup is intact");
}
