//! The `Backups` contract as reusable checks, run against every store
//! (memory and local disk here; S3 and Azure in the object-store tests),
//! like object_store's own integration suite.
//!
//! The checks of the contract itself ([`contract`]) take any
//! [`&dyn Backups`](Backups); those that need a [`StoreBackups`] or its
//! [`Storage`] — fault injection, storage internals, gc, leases — take the
//! store. Each panics with a description when the contract is broken.

#![allow(clippy::unwrap_used)] // test support: a panic is how a check fails

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;

use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::error::Result;
use crate::fault::{FaultPlan, FaultStore};
use crate::files::FileSet;
use crate::id::BackupId;
use crate::progress::NoProgress;
use crate::request::{CreateRequest, Identity, RestoreRequest, RestoreSource};
use crate::storage::Storage;
use crate::test_util::{MODEL, noise};

pub mod contract;
pub mod copy;
pub mod crypt;
pub mod edit;
pub mod faults;
pub mod gc;
pub mod lease;
pub mod recovery;
pub mod sidecars;

pub use contract::{
    add_is_idempotent_and_refuses_conflicts, concurrent_creates_all_commit,
    create_list_restore_remove, interrupted_create_leaves_nothing, list_newest_first,
};
pub use copy::{append_only_writes_when_deletes_are_refused, copy_verifies_skips_and_refuses};
pub use crypt::encrypted_backups_round_trip_and_refuse_tampering;
pub use edit::{
    concurrent_edits_keep_the_backup_and_every_edit, verification_is_recorded_at_every_level,
};
pub use faults::{
    concurrent_adds_of_one_id_stay_consistent, corrupt_archive_is_detected,
    failed_commit_leaves_nothing, failed_part_leaves_nothing, truncated_reads_are_detected,
};
pub use gc::gc_finds_and_deletes_garbage;
pub use lease::{lease_excludes_a_second_holder, racing_callers_never_share_the_lease};
pub use recovery::backups_pending_journals_need_are_protected;
pub use sidecars::unreadable_sidecars_are_skipped_and_collected;

/// A create request backing up `paths`.
pub fn request(paths: Vec<PathBuf>) -> CreateRequest {
    let mut identity = Identity::new(MODEL);
    identity.hostname = "test-host".into();
    CreateRequest::new(FileSet::new(paths), identity)
        .with_notes("conformance")
        .with_labels(vec!["manual".into()])
}

/// Restores backup `id` (files only) into `target`.
async fn restore_to(
    b: &dyn Backups,
    id: &BackupId,
    target: &Path,
) -> Result<crate::request::RestoreReport> {
    b.restore(
        RestoreRequest::new(RestoreSource::Id(id.clone()), target.to_path_buf()),
        Arc::new(NoProgress),
    )
    .await
}

async fn archive_bytes(b: &dyn Backups, id: &BackupId) -> Bytes {
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

/// `mib` MiB of incompressible bytes in one file under `root`.
pub fn random_tree(root: &Path, mib: usize) -> PathBuf {
    let tree = root.join("random");
    std::fs::create_dir_all(&tree).expect("mkdir");
    let bytes = noise(mib << 20, 0x2545_f491_4f6c_dd1d ^ (mib as u64));
    std::fs::write(tree.join("blob"), bytes).expect("write");
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
    unreadable_sidecars_are_skipped_and_collected(make()).await;
    backups_pending_journals_need_are_protected(make()).await;
    lease_excludes_a_second_holder(make()).await;
    racing_callers_never_share_the_lease(make()).await;
    encrypted_backups_round_trip_and_refuse_tampering(&StoreBackups::new(make())).await;
    concurrent_edits_keep_the_backup_and_every_edit(&StoreBackups::new(make())).await;
    verification_is_recorded_at_every_level(&StoreBackups::new(make())).await;
    concurrent_creates_all_commit(&StoreBackups::new(make())).await;
    copy_verifies_skips_and_refuses(make(), make()).await;
    append_only_writes_when_deletes_are_refused(make()).await;
}
