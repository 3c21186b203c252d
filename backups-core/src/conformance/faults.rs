//! Checks that need a [`StoreBackups`] and its storage: bytes changed in
//! the store, concurrent writers, and faults injected with
//! [`FaultStore`](crate::fault::FaultStore).

use crate::download::DownloadTo;
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use super::{all_keys, archive_bytes, random_tree, request, restore_to, with_faults};
use crate::archive::writer::ArchiveWriter;
use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::error::Error;
use crate::fault::FaultPlan;
use crate::progress::NoProgress;
use crate::request::ArchiveSource;
use crate::storage::Storage;
use crate::test_util::{MODEL, sample_tree};
use crate::upload::UploadOptions;

/// A tampered archive is refused by restore and download, and download
/// leaves no output file behind.
pub async fn corrupt_archive_is_detected(b: &StoreBackups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let meta = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    let mut bytes = archive_bytes(b, &id).await.to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let key = b.storage().archive_key(&id, &meta);
    b.storage()
        .object_store()
        .put(&key, PutPayload::from(bytes))
        .await
        .expect("overwrite");

    let target = tmp.path().join("target");
    let err = restore_to(b, &id, &target).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ChecksumMismatch { .. } | Error::InvalidArchive { .. }
        ),
        "{err}"
    );
    assert!(!target.exists(), "nothing restored from a corrupt archive");

    let out = tmp.path().join("download.tar.gz");
    let err = b
        .download(&id, DownloadTo::File(&out), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(!out.exists(), "no output file after a failed download");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("readdir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".backups-download")
        })
        .collect();
    assert!(leftovers.is_empty(), "temp file removed");
}

/// Four writers add different archives under one id at the same time: the
/// store ends with one sidecar naming an intact archive that matches it.
pub async fn concurrent_adds_of_one_id_stay_consistent(storage: Storage) {
    let b = StoreBackups::new(storage.clone());
    let mut meta = crate::metadata::Metadata {
        format_version: 1,
        started: Some(time::macros::datetime!(2024-05-06 07:08:09 UTC)),
        model_uuid: MODEL.into(),
        ..Default::default()
    };
    let json = meta.to_json();
    let archives: Vec<Bytes> = (0..4u8)
        .map(|i| {
            let mut w = ArchiveWriter::new(Vec::new(), 6, 0).expect("writer");
            w.add_file("metadata.json", json.len() as u64, 0o600, &json[..])
                .expect("metadata");
            let body = vec![i; 1000 + usize::from(i)];
            w.add_file("dump/x.bin", body.len() as u64, 0o600, &body[..])
                .expect("body");
            Bytes::from(w.finish().expect("finish").0)
        })
        .collect();
    let results = futures::future::join_all(
        archives
            .iter()
            .map(|a| b.add(ArchiveSource::Bytes(a.clone()), None, Arc::new(NoProgress))),
    )
    .await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert!(winners >= 1, "someone commits: {results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, Error::AlreadyExists { .. }),
                "losers see a conflict: {e}"
            );
        }
    }
    let listed = b.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    meta = listed[0].clone();
    let id = meta.id.clone().expect("id");
    let bytes = archive_bytes(&b, &id).await;
    let mut h = crate::digest::Hasher::default();
    h.update(&bytes);
    assert_eq!(
        h.finish().sha1_base64,
        meta.checksum,
        "the sidecar describes the stored archive"
    );
    assert!(
        archives.contains(&bytes),
        "the archive is one writer's, intact"
    );
}

/// A multipart part that fails aborts the upload: nothing listed, no object left.
pub async fn failed_part_leaves_nothing(storage: Storage) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = random_tree(tmp.path(), 20);
    let b = with_faults(
        &storage,
        FaultPlan {
            fail_parts_after: Some(1),
            ..Default::default()
        },
    )
    .with_upload_options(UploadOptions {
        part_size: 5 * 1024 * 1024,
        max_concurrency: 2,
    });
    let err = b
        .create(request(vec![tree.clone()]), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert!(b.list().await.expect("list").is_empty());
    assert!(
        all_keys(&storage).await.is_empty(),
        "multipart upload aborted"
    );
    let ok = StoreBackups::new(storage.clone());
    ok.create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("a later create works");
}

/// A failed sidecar write (the commit) leaves neither sidecar nor archive.
pub async fn failed_commit_leaves_nothing(storage: Storage) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let b = with_faults(
        &storage,
        FaultPlan {
            fail_put_suffix: Some(".json".into()),
            ..Default::default()
        },
    );
    let err = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err}");
    assert!(
        all_keys(&storage).await.is_empty(),
        "archive deleted: {:?}",
        all_keys(&storage).await
    );
}

/// A read cut short is detected by download (no output file) and restore
/// (nothing written); slow reads still succeed.
pub async fn truncated_reads_are_detected(storage: Storage) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let meta = StoreBackups::new(storage.clone())
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    let b = with_faults(
        &storage,
        FaultPlan {
            truncate_archive_reads_at: Some(meta.size / 2),
            ..Default::default()
        },
    );
    let out = tmp.path().join("out.tar.gz");
    let err = b
        .download(&id, DownloadTo::File(&out), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { what: "size", .. }),
        "{err}"
    );
    assert!(!out.exists());
    let target = tmp.path().join("target");
    let err = restore_to(&b, &id, &target).await.unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { what: "size", .. })
            || err.to_string().contains("truncated"),
        "{err}"
    );
    assert!(!target.exists());
    let slow = with_faults(
        &storage,
        FaultPlan {
            read_delay: Some(std::time::Duration::from_millis(50)),
            ..Default::default()
        },
    );
    slow.download(&id, DownloadTo::File(&out), Arc::new(NoProgress))
        .await
        .expect("slow download");
    assert_eq!(std::fs::metadata(&out).expect("out").len(), meta.size);
}
