//! The checks of the `Backups` contract: they use only the trait, so they
//! run against any implementation.

use std::sync::Arc;

use async_trait::async_trait;

use super::{archive_bytes, assert_same_tree, request, restore_to};
use crate::archive::writer::ArchiveWriter;
use crate::backups::Backups;
use crate::database::{DatabaseDumper, DumpEntry, DumpSink, DumpSummary};
use crate::error::{Error, Result};
use crate::progress::NoProgress;
use crate::request::ArchiveSource;
use crate::test_util::{MODEL, sample_tree};

/// create -> list -> metadata -> get -> restore -> remove.
pub async fn create_list_restore_remove(b: &dyn Backups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let meta = b
        .create(request(vec![tree.clone()]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    assert_eq!(id.model_uuid(), MODEL);
    assert!(meta.size > 0 && !meta.checksum.is_empty() && !meta.sha256.is_empty());

    let listed = b.list().await.expect("list");
    assert_eq!(listed.len(), 1, "one backup listed");
    assert_eq!(listed[0], meta, "list returns the committed metadata");
    assert_eq!(b.metadata(&id).await.expect("metadata"), meta);

    let bytes = archive_bytes(b, &id).await;
    let mut h = crate::digest::Hasher::default();
    h.update(&bytes);
    let d = h.finish();
    assert_eq!(d.sha1_base64, meta.checksum);
    assert_eq!(d.size, meta.size);

    let target = tmp.path().join("restored");
    let report = restore_to(b, &id, &target).await.expect("restore");
    assert!(report.manifest_verified);
    assert_eq!(report.stats.symlinks, 1);
    let inside = target.join(tree.strip_prefix("/").expect("absolute"));
    assert_same_tree(&tree, &inside);

    b.remove(&id).await.expect("remove");
    assert!(b.list().await.expect("list").is_empty());
    assert!(matches!(b.metadata(&id).await, Err(Error::NotFound { .. })));
    assert!(matches!(b.remove(&id).await, Err(Error::NotFound { .. })));
}

/// Two creates list newest first.
pub async fn list_newest_first(b: &dyn Backups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let first = b
        .create(request(vec![tree.clone()]), Arc::new(NoProgress))
        .await
        .expect("create 1");
    let second = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create 2");
    assert_ne!(first.id, second.id);
    let ids: Vec<_> = b
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![second.id, first.id]);
}

/// Adding the same archive twice is a no-op; other bytes under the same id conflict.
pub async fn add_is_idempotent_and_refuses_conflicts(b: &dyn Backups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let meta = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    let bytes = archive_bytes(b, &id).await;
    b.remove(&id).await.expect("remove");

    let added = b
        .add(
            ArchiveSource::Bytes(bytes.clone()),
            None,
            Arc::new(NoProgress),
        )
        .await
        .expect("add");
    assert!(!added.already_present);
    assert_eq!(
        added.metadata.id,
        Some(id.clone()),
        "id derived from metadata"
    );
    assert_eq!(added.metadata.checksum, meta.checksum);
    let again = b
        .add(ArchiveSource::Bytes(bytes), None, Arc::new(NoProgress))
        .await
        .expect("add again");
    assert!(again.already_present);

    // Same metadata.json (so the same id), different content.
    let mut in_archive = meta.clone();
    in_archive.id = None;
    in_archive.checksum.clear();
    in_archive.size = 0;
    let json = in_archive.to_json();
    let mut w = ArchiveWriter::new(Vec::new(), 6, 0).expect("writer");
    w.add_file("metadata.json", json.len() as u64, 0o600, &json[..])
        .expect("metadata");
    let (other, _) = w.finish().expect("finish");
    let err = b
        .add(
            ArchiveSource::Bytes(other.into()),
            None,
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(b.list().await.expect("list").len(), 1);
}

/// A dumper that sends one file, then fails.
struct FailingDumper;

#[async_trait]
impl DatabaseDumper for FailingDumper {
    async fn dump(&self, sink: DumpSink) -> Result<DumpSummary> {
        let body = vec![0u8; 3 * 1024 * 1024];
        sink.add(DumpEntry {
            path: "juju/machines.bson".into(),
            size: body.len() as u64,
            body: Box::new(std::io::Cursor::new(body)),
        })
        .await?;
        Err(Error::Database {
            message: "connection reset while reading juju.units".into(),
            source: None,
        })
    }
}

/// A create whose dump fails mid-way, or an upload of a truncated archive,
/// leaves nothing visible; the next create succeeds.
pub async fn interrupted_create_leaves_nothing(b: &dyn Backups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let mut req = request(vec![tree.clone()]);
    req.database = Some(Arc::new(FailingDumper));
    let err = b.create(req, Arc::new(NoProgress)).await.unwrap_err();
    assert!(err.to_string().contains("juju.units"), "{err}");
    assert!(b.list().await.expect("list").is_empty());

    let ok = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("create");
    let bytes = archive_bytes(b, ok.id.as_ref().expect("id")).await;
    b.remove(ok.id.as_ref().expect("id")).await.expect("remove");
    let truncated = bytes.slice(..bytes.len() / 2);
    let err = b
        .add(ArchiveSource::Bytes(truncated), None, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(b.list().await.expect("list").is_empty());
}

/// Eight creates of one model started at once all commit: each takes the
/// next free second when its id was taken (Juju's ids have one-second
/// resolution), and all eight are listed with their own archives.
pub async fn concurrent_creates_all_commit(b: &dyn Backups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = crate::test_util::sample_tree(tmp.path());
    let creates = (0..8).map(|i| {
        let tree = tree.clone();
        async move {
            b.create(
                request(vec![tree]).with_notes(format!("concurrent {i}")),
                Arc::new(NoProgress),
            )
            .await
            .expect("every create commits")
        }
    });
    let made = futures::future::join_all(creates).await;
    let mut ids: Vec<String> = made
        .iter()
        .map(|m| m.id.as_ref().expect("id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "eight distinct ids: {ids:?}");
    let listed = b.list().await.expect("list");
    assert_eq!(listed.len(), 8, "eight listed");
    for m in &made {
        let id = m.id.as_ref().expect("id");
        let meta = b.metadata(id).await.expect("metadata");
        let size = archive_bytes(b, id).await.len();
        assert_eq!(size as u64, meta.size, "{id}: its own archive");
        assert_eq!(meta.notes, m.notes);
        b.remove(id).await.expect("remove");
    }
}
