//! The `Backups` contract as reusable checks, run against every store
//! (memory and local disk here; S3 and Azure in the object-store tests).
//!
//! Each check takes a fresh, empty [`StoreBackups`] and panics with a
//! description when the contract is broken.

#![allow(clippy::unwrap_used)] // test support: a panic is how a check fails

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};

use crate::archive::writer::ArchiveWriter;
use crate::fault::{FaultPlan, FaultStore};
use crate::{
    ArchiveSource, BackupId, Backups, CreateRequest, DatabaseDumper, DumpEntry, DumpSink,
    DumpSummary, Error, FileSet, Identity, NoProgress, RestoreRequest, RestoreSource, Result,
    StoreBackups,
};
use crate::{Storage, UploadOptions};

/// The model UUID the checks use.
pub const MODEL: &str = "0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10";

/// Builds a small tree (nested dirs, an empty file, a 0600 file, a symlink)
/// under `root` and returns its path.
pub fn sample_tree(root: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("etc/app")).expect("mkdir");
    std::fs::write(tree.join("etc/app/config.yaml"), b"answer: 42\n").expect("write");
    std::fs::write(tree.join("etc/app/empty"), b"").expect("write");
    std::fs::write(tree.join("secret.pem"), vec![b'k'; 70_000]).expect("write");
    std::fs::set_permissions(
        tree.join("secret.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("etc/app/config.yaml", tree.join("current")).expect("symlink");
    tree.canonicalize().expect("canonicalize")
}

/// A create request backing up `paths`.
pub fn request(paths: Vec<std::path::PathBuf>) -> CreateRequest {
    CreateRequest {
        files: FileSet {
            paths,
            excludes: vec![],
        },
        database: None,
        notes: "conformance".into(),
        labels: vec!["manual".into()],
        identity: Identity {
            model_uuid: MODEL.into(),
            hostname: "test-host".into(),
            ..Default::default()
        },
        compression: Default::default(),
    }
}

/// Restores backup `id` (files only) into `target`.
async fn restore_to(
    b: &StoreBackups,
    id: &BackupId,
    target: &Path,
) -> Result<crate::RestoreReport> {
    b.restore(
        RestoreRequest::new(RestoreSource::Id(id.clone()), target.to_path_buf()),
        Arc::new(NoProgress),
    )
    .await
}

async fn archive_bytes(b: &StoreBackups, id: &BackupId) -> Bytes {
    let (_, stream) = b.get(id).await.expect("get");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("read archive");
    Bytes::from(chunks.concat())
}

/// Asserts that the file trees under `a` and `b` are equal (names, kinds,
/// contents, modes, link targets).
pub fn assert_same_tree(a: &Path, b: &Path) {
    fn walk(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
        use std::os::unix::fs::MetadataExt;
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(root).min_depth(1) {
            let e = e.expect("walk");
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("prefix")
                .display()
                .to_string();
            let m = e.path().symlink_metadata().expect("lstat");
            let (kind, data) = if m.is_symlink() {
                let t = std::fs::read_link(e.path()).expect("readlink");
                ("symlink", t.display().to_string().into_bytes())
            } else if m.is_dir() {
                ("dir", vec![])
            } else {
                ("file", std::fs::read(e.path()).expect("read"))
            };
            let mode = if m.is_symlink() { 0 } else { m.mode() & 0o7777 };
            out.insert(rel, (kind.to_string(), mode, data));
        }
        out
    }
    let (wa, wb) = (walk(a), walk(b));
    assert_eq!(
        wa.keys().collect::<Vec<_>>(),
        wb.keys().collect::<Vec<_>>(),
        "same entries"
    );
    for (k, va) in &wa {
        assert_eq!(va, &wb[k], "entry {k} differs");
    }
}

/// create -> list -> metadata -> get -> restore -> remove.
pub async fn create_list_restore_remove(b: &StoreBackups) {
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
pub async fn list_newest_first(b: &StoreBackups) {
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
pub async fn add_is_idempotent_and_refuses_conflicts(b: &StoreBackups) {
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
        .add(ArchiveSource::Bytes(bytes.clone()), Arc::new(NoProgress))
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
        .add(ArchiveSource::Bytes(bytes), Arc::new(NoProgress))
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
        .add(ArchiveSource::Bytes(other.into()), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(b.list().await.expect("list").len(), 1);
}

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
        .download(&id, &out, Arc::new(NoProgress))
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
pub async fn interrupted_create_leaves_nothing(b: &StoreBackups) {
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
        .add(ArchiveSource::Bytes(truncated), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(b.list().await.expect("list").is_empty());
}

/// `count` MiB of incompressible bytes in one file under `root`.
pub fn random_tree(root: &Path, mib: usize) -> std::path::PathBuf {
    let tree = root.join("random");
    std::fs::create_dir_all(&tree).expect("mkdir");
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ (mib as u64);
    let mut buf = vec![0u8; mib << 20];
    for chunk in buf.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    std::fs::write(tree.join("blob"), buf).expect("write");
    tree.canonicalize().expect("canonicalize")
}

async fn all_keys(storage: &Storage) -> Vec<String> {
    let listing: Vec<_> = storage
        .object_store()
        .list(Some(storage.prefix()))
        .try_collect()
        .await
        .expect("list objects");
    listing
        .into_iter()
        .map(|o| o.location.to_string())
        .collect()
}

fn with_faults(storage: &Storage, plan: FaultPlan) -> StoreBackups {
    let faulty = FaultStore::new(storage.object_store().clone(), plan);
    StoreBackups::new(Storage::new(
        Arc::new(faulty),
        storage.prefix().clone(),
        storage.url(),
    ))
}

/// Four writers add different archives under one id at the same time: the
/// store ends with one sidecar naming an intact archive that matches it.
pub async fn concurrent_adds_of_one_id_stay_consistent(storage: Storage) {
    let b = StoreBackups::new(storage.clone());
    let mut meta = crate::Metadata {
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
            .map(|a| b.add(ArchiveSource::Bytes(a.clone()), Arc::new(NoProgress))),
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
        .download(&id, &out, Arc::new(NoProgress))
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
    slow.download(&id, &out, Arc::new(NoProgress))
        .await
        .expect("slow download");
    assert_eq!(std::fs::metadata(&out).expect("out").len(), meta.size);
}

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
        &tmp.path().join("k.tar.gz"),
        Arc::new(NoProgress),
    )
    .await
    .expect("the kept backup is intact");
}

/// The store's lease: a live one refuses a second holder (naming the first),
/// a stale one is taken over, and restore/remove hold it.
pub async fn lease_excludes_a_second_holder(storage: Storage) {
    let a = StoreBackups::new(storage.clone()).with_holder("host-a pid 1");
    let b = StoreBackups::new(storage.clone()).with_holder("host-b pid 2");
    let ttl = std::time::Duration::from_secs(60);
    let held = a.acquire_lease("restore", ttl).await.expect("first holder");
    match b.acquire_lease("gc", ttl).await {
        Err(Error::Locked {
            holder, operation, ..
        }) => {
            assert_eq!(
                (holder.as_str(), operation.as_str()),
                ("host-a pid 1", "restore")
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // remove refuses while the lease is held, and works after release.
    let tmp = tempfile::tempdir().expect("tempdir");
    let meta = b
        .create(request(vec![sample_tree(tmp.path())]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    let err = b.remove(&id).await.unwrap_err();
    assert!(err.to_string().contains("locked by host-a pid 1"), "{err}");
    a.release_lease(held).await.expect("release");
    // A stale lease (expired) is taken over.
    crate::lease::plant_lease(&a, "host-gone pid 9", -5)
        .await
        .expect("plant");
    b.remove(&id).await.expect("stale lease taken over");
    crate::lease::plant_lease(&a, "host-live pid 7", 600)
        .await
        .expect("plant");
    let err = b.acquire_lease("restore", ttl).await.unwrap_err();
    assert!(err.to_string().contains("host-live pid 7"), "{err}");
    // Breaking: stale ones only by default, live ones on request.
    assert!(b.break_leases(false).await.expect("break").is_empty());
    let leases = b.leases().await.expect("leases");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(!leases[0].stale && leases[0].holder == "host-live pid 7");
    let broken = b.break_leases(true).await.expect("force");
    assert_eq!(broken.len(), 1);
    assert!(b.leases().await.expect("leases").is_empty());
    let guard = b
        .acquire_lease("restore", ttl)
        .await
        .expect("free once broken");
    b.release_lease(guard).await.expect("release");
}

/// Callers racing for the lease: at most one holds it at a time (on every
/// store, conditional writes or not), the others are told who has it, and
/// once released it can be taken again.
pub async fn racing_callers_never_share_the_lease(storage: Storage) {
    let ttl = std::time::Duration::from_secs(60);
    for round in 0..4 {
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let b =
                    StoreBackups::new(storage.clone()).with_holder(format!("racer {round}.{i}"));
                tokio::spawn(async move {
                    let got = b.acquire_lease("restore", ttl).await;
                    (b, got)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            let (b, got) = racer.await.expect("racer task");
            match got {
                Ok(guard) => winners.push((b, guard)),
                Err(Error::Locked { holder, .. }) => {
                    assert!(holder.starts_with("racer "), "{holder}")
                }
                Err(e) => panic!("expected Locked, got {e}"),
            }
        }
        assert!(
            winners.len() <= 1,
            "round {round}: {} callers hold the lease at once",
            winners.len()
        );
        for (b, guard) in winners {
            b.release_lease(guard).await.expect("release");
        }
    }
    let b = StoreBackups::new(storage).with_holder("after the race");
    let guard = b
        .acquire_lease("gc", ttl)
        .await
        .expect("free again once released");
    b.release_lease(guard).await.expect("release");
}

/// Runs every check, each on a fresh, empty store from `make`.
pub async fn run_all<F>(make: F)
where
    F: Fn() -> Storage,
{
    create_list_restore_remove(&StoreBackups::new(make())).await;
    list_newest_first(&StoreBackups::new(make())).await;
    add_is_idempotent_and_refuses_conflicts(&StoreBackups::new(make())).await;
    corrupt_archive_is_detected(&StoreBackups::new(make())).await;
    interrupted_create_leaves_nothing(&StoreBackups::new(make())).await;
    concurrent_adds_of_one_id_stay_consistent(make()).await;
    failed_part_leaves_nothing(make()).await;
    failed_commit_leaves_nothing(make()).await;
    truncated_reads_are_detected(make()).await;
    gc_finds_and_deletes_garbage(make()).await;
    lease_excludes_a_second_holder(make()).await;
    racing_callers_never_share_the_lease(make()).await;
}
