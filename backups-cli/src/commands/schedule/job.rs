//! One schedule's job: make a backup with the schedule's profile and
//! labels, verify it at the schedule's level, then apply its retention
//! policy to the schedule's own backups.

use std::path::PathBuf;
use std::sync::Arc;

use backups_core::{
    CancellationToken, CronSchedule, Job, JobError, JobFuture, JobOutcome, RetentionPolicy,
    VerifyLevel, VerifyRequest,
};
use time::OffsetDateTime;

use crate::args::{GlobalArgs, ProgressMode};
use crate::commands::{create, verify};
use crate::config::{Config, ScheduleEntry, VerifyChoice, apply};
use crate::context::Context;
use crate::failure::{Failure, OTHER, VERIFICATION};

/// What a scheduled backup is made with, resolved when the service starts.
#[derive(Debug, Clone)]
pub struct ScheduledBackup {
    name: String,
    global: GlobalArgs,
    create: create::Args,
    verify: VerifyChoice,
    scratch_dir: Option<PathBuf>,
    retention: Option<RetentionPolicy>,
}

/// The labels a schedule's backups get: its own, then `scheduled` and
/// `schedule:<name>` (the profile's come first, added in `build`).
pub fn labels_of(entry: &ScheduleEntry) -> Vec<String> {
    let mut labels = entry.labels.clone();
    for l in ["scheduled".to_string(), format!("schedule:{}", entry.name)] {
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels
}

impl ScheduledBackup {
    /// The schedule's cron expression and job: the global flags, then the
    /// schedule's profile (else the selected one), then the defaults.
    pub fn build(
        global: &GlobalArgs,
        config: &Config,
        entry: &ScheduleEntry,
    ) -> Result<(CronSchedule, Arc<dyn Job>), Failure> {
        let cron = CronSchedule::parse(&entry.cron).map_err(|e| {
            Failure::usage(format!(
                "schedule {} in {}: {e}",
                entry.name,
                config.describe()
            ))
        })?;
        let wanted = entry.profile.as_deref().or(global.profile.as_deref());
        let (_, profile) = config.profile(wanted)?;
        let mut global = global.clone();
        apply::global(&mut global, &profile);
        global.progress = ProgressMode::None;
        global.quiet = true;
        let mut create = create::from_env()?;
        apply::create(&mut create, &profile);
        let mut labels = create.labels.clone();
        for l in labels_of(entry) {
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        create.labels = labels;
        if create.notes.is_empty() {
            create.notes = format!("scheduled backup ({})", entry.name);
        }
        let job = ScheduledBackup {
            name: entry.name.clone(),
            global,
            create,
            verify: entry.verify,
            scratch_dir: entry.scratch_dir.clone(),
            retention: entry
                .retention
                .as_ref()
                .map(|r| super::retention::policy(&entry.name, r))
                .transpose()?,
        };
        Ok((cron, Arc::new(job)))
    }

    async fn once(self, cancel: CancellationToken) -> Result<JobOutcome, Failure> {
        let ctx = Context::new(&self.global, false, cancel)?;
        let meta = create::make(&ctx, self.create.clone()).await?;
        let id = meta.id.clone().ok_or_else(|| Failure {
            message: "created backup has no id".into(),
            code: OTHER,
        })?;
        let mut outcome = JobOutcome::backup(id.to_string(), meta.size);
        if let Some(level) = level(self.verify) {
            let mut request = VerifyRequest::new(level);
            if let Some(dir) = &self.scratch_dir {
                request = request.with_scratch_dir(dir);
            }
            if level == VerifyLevel::Drill
                && let Some(uri) = self.create.mongo.uri()?
            {
                request = request.with_database(verify::scratch_databases(&uri, &meta).await?);
            }
            let record = ctx.backups.verify(&id, &request, ctx.progress()).await?;
            if !record.ok {
                // Retention is not applied: the older backups stay.
                return Err(Failure {
                    message: format!(
                        "backup {id} was made but failed verification: {}",
                        record.detail
                    ),
                    code: VERIFICATION,
                });
            }
            outcome = outcome.with_verified(record.time.unwrap_or_else(OffsetDateTime::now_utc));
        }
        if let Some(retention) = &self.retention {
            let detail = super::retention::apply(&ctx, &self.name, retention).await?;
            outcome = outcome.with_detail(detail);
        }
        Ok(outcome)
    }
}

impl Job for ScheduledBackup {
    fn run(&self, cancel: CancellationToken) -> JobFuture {
        let me = self.clone();
        Box::pin(async move { me.once(cancel).await.map_err(|f| Box::new(f) as JobError) })
    }
}

fn level(choice: VerifyChoice) -> Option<VerifyLevel> {
    match choice {
        VerifyChoice::None => None,
        VerifyChoice::Stored => Some(VerifyLevel::Stored),
        VerifyChoice::ReadData => Some(VerifyLevel::ReadData),
        VerifyChoice::Drill => Some(VerifyLevel::Drill),
    }
}
