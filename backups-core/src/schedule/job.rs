//! A schedule's backup job as the library runs it, for the CLI's
//! `schedule run` and for an embedding controller alike: create -> verify
//! -> retention, each run with the schedule's labels. What goes into the
//! backup (files, database dumper, identity) comes from the embedder's
//! [`BackupSource`], asked afresh at each run.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::crypt::Identities;
use crate::database::DatabaseLoader;
use crate::error::Error;
use crate::id::BackupId;
use crate::metadata::{Metadata, VerifyLevel};
use crate::ops::copy::{CopyRequest, CopySelection};
use crate::ops::verify::{DrillDatabase, VerifyRequest, drill_renames};
use crate::progress::NoProgress;
use crate::request::CreateRequest;
use crate::retention::RetentionPolicy;

use super::{CopyOutcome, Job, JobError, JobFuture, JobOutcome};

/// What a scheduled backup is made of, asked at each run (so that a
/// database connection or a file list is fresh).
#[async_trait]
pub trait BackupSource: Send + Sync {
    /// The request for this run's backup; [`BackupJob`] adds the
    /// schedule's labels and, when the request has none, its notes.
    async fn create_request(&self) -> Result<CreateRequest, JobError>;

    /// For a drill ([`VerifyLevel::Drill`]): a loader into the scratch
    /// databases `renames` names (dump database -> scratch database, from
    /// [`drill_renames`]); `None` (the default) drills the files only.
    async fn drill_loader(
        &self,
        renames: &[(String, String)],
    ) -> Result<Option<Arc<dyn DatabaseLoader>>, JobError> {
        let _ = renames;
        Ok(None)
    }
}

/// One schedule's job: [`BackupJob::new`], then `with_*`; add it to a
/// [`crate::schedule::Scheduler`] (it is a [`Job`]) or call [`BackupJob::run_once`].
#[derive(Clone)]
pub struct BackupJob {
    name: String,
    backups: StoreBackups,
    source: Arc<dyn BackupSource>,
    verify: Option<VerifyLevel>,
    scratch_dir: Option<PathBuf>,
    identities: Identities,
    retention: Option<RetentionPolicy>,
    copy_to: Vec<(String, StoreBackups)>,
}

impl std::fmt::Debug for BackupJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupJob")
            .field("name", &self.name)
            .field("verify", &self.verify)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl BackupJob {
    /// Schedule `name`'s job: backups of `source` into `backups`, not
    /// verified, no retention.
    pub fn new(
        name: impl Into<String>,
        backups: StoreBackups,
        source: Arc<dyn BackupSource>,
    ) -> Self {
        BackupJob {
            name: name.into(),
            backups,
            source,
            verify: None,
            scratch_dir: None,
            identities: Identities::none(),
            retention: None,
            copy_to: Vec::new(),
        }
    }

    /// Verifies each new backup at `level` (`None`: not at all); a backup
    /// that fails fails the run, and retention is not applied.
    pub fn with_verify(mut self, level: Option<VerifyLevel>) -> Self {
        self.verify = level;
        self
    }

    /// Where a drill makes its scratch directory (`None`: the system's).
    pub fn with_scratch_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.scratch_dir = dir;
        self
    }

    /// Keys to read an encrypted backup back with (read-data, drill).
    pub fn with_identities(mut self, identities: Identities) -> Self {
        self.identities = identities;
        self
    }

    /// Applies `policy` to this schedule's own backups (label
    /// `schedule:<name>`) after each verified run (`None`: keep all).
    pub fn with_retention(mut self, policy: Option<RetentionPolicy>) -> Self {
        self.retention = policy;
        self
    }

    /// Copies each new backup, once it is verified, into `target` (named
    /// `name` in the status and metrics; the CLI's profile names) with
    /// [`StoreBackups::copy_to`]. A failed copy is recorded in the run's
    /// [`JobOutcome::copies`] and does not fail the run.
    pub fn with_copy_to(mut self, name: impl Into<String>, target: StoreBackups) -> Self {
        self.copy_to.push((name.into(), target));
        self
    }

    /// The labels a schedule's backups get: `scheduled` and
    /// `schedule:<name>` (retention counts only the latter's).
    pub fn labels(name: &str) -> [String; 2] {
        ["scheduled".to_string(), format!("schedule:{name}")]
    }

    /// One run: create (cancelled with `cancel`), verify, retention.
    pub async fn run_once(&self, cancel: CancellationToken) -> Result<JobOutcome, JobError> {
        let backups = self.backups.clone().with_cancellation(cancel);
        let mut request = self.source.create_request().await?;
        for label in Self::labels(&self.name) {
            if !request.labels.contains(&label) {
                request.labels.push(label);
            }
        }
        if request.notes.is_empty() {
            request.notes = format!("scheduled backup ({})", self.name);
        }
        let meta = backups.create(request, Arc::new(NoProgress)).await?;
        let id = meta
            .id
            .clone()
            .ok_or_else(|| Error::internal("a created backup has no id"))?;
        let mut outcome = JobOutcome::backup(id.to_string(), meta.size);
        if let Some(level) = self.verify {
            let verified = self.verify(&backups, &meta, level).await?;
            outcome = outcome.with_verified(verified);
        }
        for (name, target) in &self.copy_to {
            let target = target
                .clone()
                .with_cancellation(backups.cancellation().clone());
            outcome
                .copies
                .push(copy_new(&backups, &target, name, &id).await?);
        }
        if let Some(policy) = &self.retention {
            outcome = outcome.with_detail(self.retention(&backups, policy).await?);
        }
        Ok(outcome)
    }

    /// Verifies the new backup; a failed verification is an error.
    async fn verify(
        &self,
        backups: &StoreBackups,
        meta: &Metadata,
        level: VerifyLevel,
    ) -> Result<OffsetDateTime, JobError> {
        let id = meta
            .id
            .clone()
            .ok_or_else(|| Error::internal("a created backup has no id"))?;
        let mut request = VerifyRequest::new(level).with_identities(self.identities.clone());
        if let Some(dir) = &self.scratch_dir {
            request = request.with_scratch_dir(dir);
        }
        if level == VerifyLevel::Drill {
            let renames = drill_renames(meta);
            if let Some(loader) = self.source.drill_loader(&renames).await? {
                request = request.with_database(DrillDatabase { loader, renames });
            }
        }
        let record = backups.verify(&id, &request, Arc::new(NoProgress)).await?;
        if !record.ok {
            return Err(Box::new(Error::VerificationFailed {
                id,
                detail: record.detail,
            }));
        }
        Ok(record.time.unwrap_or_else(OffsetDateTime::now_utc))
    }

    /// Applies the retention policy to this schedule's backups; what it
    /// did, for the log. A backup that could not be removed fails the run.
    async fn retention(
        &self,
        backups: &StoreBackups,
        policy: &RetentionPolicy,
    ) -> Result<String, JobError> {
        let policy = policy
            .clone()
            .with_only_label(format!("schedule:{}", self.name));
        let report = backups.forget(&policy).await?;
        if let Some((id, e)) = report.failed.into_iter().next() {
            return Err(Box::new(Error::RetentionFailed {
                id,
                cause: Box::new(e),
            }));
        }
        let removed = &report.decision.remove;
        // Unreadable sidecars fail nothing; the log names them.
        let skipped = match report.unreadable.len() {
            0 => String::new(),
            n => format!(
                "; skipped {n} unreadable sidecar(s) (`backups gc` lists them): {}",
                report
                    .unreadable
                    .iter()
                    .map(|u| u.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let summary = match removed.len() {
            0 => format!("retention kept all {}", report.decision.keep.len()),
            n => format!(
                "retention kept {} and removed {n}: {}",
                report.decision.keep.len(),
                removed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Ok(summary + &skipped)
    }
}

/// Copies the run's backup `id` into `target` (named `name`); a
/// cancellation stops the run, any other failure is the outcome's.
async fn copy_new(
    backups: &StoreBackups,
    target: &StoreBackups,
    name: &str,
    id: &BackupId,
) -> Result<CopyOutcome, JobError> {
    let request = CopyRequest::new(CopySelection::Ids(vec![id.clone()]));
    let error = match backups
        .copy_to(target, &request, Arc::new(NoProgress))
        .await
    {
        Ok(report) => report
            .failed
            .into_iter()
            .next()
            .map(|f| f.error.to_string()),
        Err(e @ Error::Cancelled(_)) => return Err(Box::new(e)),
        Err(e) => Some(e.to_string()),
    };
    Ok(CopyOutcome {
        target: name.to_string(),
        time: OffsetDateTime::now_utc(),
        error,
    })
}

impl Job for BackupJob {
    fn run(&self, cancel: CancellationToken) -> JobFuture {
        let me = self.clone();
        Box::pin(async move { me.run_once(cancel).await })
    }
}
