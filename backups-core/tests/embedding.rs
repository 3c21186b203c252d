//! The library as an embedding controller uses it, with default options:
//! the safety rules hold without the CLI.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use backups_core::{
    Backups, CreateRequest, FileSet, Identity, NoProgress, RestoreRequest, RestoreSource, Storage,
    StoreBackups,
};

const MODEL: &str = "e2a6a1e5-abea-4393-8593-5a45ae53ab97";

fn store(dir: &Path) -> StoreBackups {
    let url = format!("file://{}", dir.display());
    StoreBackups::new(Storage::from_url(&url, Vec::<(String, String)>::new()).unwrap())
}

async fn backup_of(backups: &StoreBackups, path: &Path) -> backups_core::BackupId {
    let meta = backups
        .create(
            CreateRequest::new(FileSet::new(vec![path.to_path_buf()]), Identity::new(MODEL)),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    meta.id.unwrap()
}

async fn pre_restore(backups: &StoreBackups) -> Vec<backups_core::Metadata> {
    backups
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.labels.iter().any(|l| l == "pre-restore"))
        .collect()
}

/// A restore in place (`/`, the archive's absolute paths written back
/// where they came from) over live files, with the request's defaults:
/// the library takes a `pre-restore` safety backup of what it replaces,
/// and restoring that backup puts the live state back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_restore_with_defaults_takes_a_safety_backup() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir_all(live.join("sub")).unwrap();
    std::fs::write(live.join("agent.conf"), "backed up\n").unwrap();
    std::fs::write(live.join("sub/key"), "old key\n").unwrap();
    let backups = store(&dir.path().join("store"));
    let id = backup_of(&backups, &live).await;

    // The live state moves on after the backup.
    std::fs::write(live.join("agent.conf"), "changed since\n").unwrap();
    std::fs::write(live.join("sub/key"), "new key\n").unwrap();

    let report = backups
        .restore(
            RestoreRequest::new(RestoreSource::Id(id.clone()), "/"),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(live.join("agent.conf")).unwrap(),
        "backed up\n"
    );
    let safety = pre_restore(&backups).await;
    assert_eq!(safety.len(), 1, "one pre-restore backup");
    let safety_id = safety[0].id.clone().unwrap();
    assert_eq!(report.safety_backup.as_ref(), Some(&safety_id));

    // A safety backup goes back in place only: under another target its
    // absolute paths would nest.
    let elsewhere = dir.path().join("elsewhere");
    let err = backups
        .restore(
            RestoreRequest::new(RestoreSource::Id(safety_id.clone()), &elsewhere),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, backups_core::Error::Incompatible { .. })
            && err.to_string().contains("--target /"),
        "{err}"
    );
    assert!(!elsewhere.exists(), "nothing written");

    // Undoing the restore: the safety backup, restored in place.
    backups
        .restore(
            RestoreRequest::new(RestoreSource::Id(safety_id), "/").without_safety_backup(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(live.join("agent.conf")).unwrap(),
        "changed since\n"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("sub/key")).unwrap(),
        "new key\n"
    );
}

/// A restore into a temp root that holds live files the archive replaces
/// is protected the same way; one into a new directory takes none; an
/// explicit opt-out takes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_over_live_files_takes_one_and_a_new_directory_none() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "backed up\n").unwrap();
    let backups = store(&dir.path().join("store"));
    let id = backup_of(&backups, &src).await;
    let source = || RestoreSource::Id(id.clone());

    let fresh = dir.path().join("fresh");
    let report = backups
        .restore(RestoreRequest::new(source(), &fresh), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.safety_backup, None);
    assert!(pre_restore(&backups).await.is_empty());

    // `fresh` now holds live files the archive replaces.
    let restored = fresh.join(src.strip_prefix("/").unwrap()).join("f");
    std::fs::write(&restored, "live\n").unwrap();
    let opted_out = backups
        .restore(
            RestoreRequest::new(source(), &fresh).without_safety_backup(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(opted_out.safety_backup, None);
    assert!(pre_restore(&backups).await.is_empty());

    std::fs::write(&restored, "live again\n").unwrap();
    let report = backups
        .restore(RestoreRequest::new(source(), &fresh), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&restored).unwrap(), "backed up\n");
    let safety = pre_restore(&backups).await;
    assert_eq!(safety.len(), 1);
    assert_eq!(report.safety_backup, safety[0].id);
}
