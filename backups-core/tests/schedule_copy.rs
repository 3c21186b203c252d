//! A schedule's job copies each new backup, once verified, to its second
//! stores; a copy that fails is the outcome's, not the run's.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use backups_core::fault::{FaultPlan, FaultStore};
use backups_core::schedule::{BackupJob, BackupSource, JobError};
use backups_core::{
    Backups, CancellationToken, CreateRequest, FileSet, Identity, Storage, StoreBackups,
    VerifyLevel,
};

const MODEL: &str = "e2a6a1e5-abea-4393-8593-5a45ae53ab97";

struct Tree(std::path::PathBuf);

#[async_trait]
impl BackupSource for Tree {
    async fn create_request(&self) -> Result<CreateRequest, JobError> {
        Ok(CreateRequest::new(
            FileSet::new(vec![self.0.clone()]),
            Identity::new(MODEL),
        ))
    }
}

fn memory() -> Storage {
    Storage::from_url("memory://", Vec::<(String, String)>::new()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_backup_is_copied_after_verification_and_a_failed_copy_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let tree = backups_core::test_util::sample_tree(dir.path());
    let source = StoreBackups::new(memory());
    let offsite = StoreBackups::new(memory());
    // Its commits (sidecar puts) fail: the copy fails, nothing committed.
    let broken = StoreBackups::new(Storage::new(
        Arc::new(FaultStore::new(
            memory().object_store().clone(),
            FaultPlan {
                fail_put_suffix: Some(".json".into()),
                ..Default::default()
            },
        )),
        Default::default(),
        "memory://broken",
    ));
    let job = BackupJob::new("nightly", source.clone(), Arc::new(Tree(tree)))
        .with_verify(Some(VerifyLevel::Stored))
        .with_copy_to("offsite", offsite.clone())
        .with_copy_to("broken", broken.clone());
    let outcome = job.run_once(CancellationToken::new()).await.unwrap();
    assert!(outcome.verified.is_some());
    let id = outcome.backup.clone().unwrap();
    let copies: Vec<(&str, bool)> = outcome
        .copies
        .iter()
        .map(|c| (c.target.as_str(), c.error.is_none()))
        .collect();
    assert_eq!(copies, [("offsite", true), ("broken", false)]);
    let copied = offsite.list().await.unwrap();
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0].id.as_ref().unwrap().to_string(), id);
    assert!(copied[0].copied_from.is_some());
    assert!(copied[0].labels.iter().any(|l| l == "schedule:nightly"));
    assert!(broken.list().await.unwrap().is_empty());
    let error = outcome.copies[1].error.as_deref().unwrap();
    assert!(error.contains(".json"), "{error}");
}
