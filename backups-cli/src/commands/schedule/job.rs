//! One schedule's job: the library's [`BackupJob`] (create -> verify ->
//! retention) over the backups this schedule's profile describes.

use std::sync::Arc;

use async_trait::async_trait;
use backups_core::schedule::{BackupJob, BackupSource, CronSchedule, Job, JobError};
use backups_core::{CancellationToken, CreateRequest, DatabaseLoader, RetentionPolicy};

use crate::args::{GlobalArgs, ProgressMode};
use crate::commands::{create, verify};
use crate::config::{Config, ScheduleEntry, apply};
use crate::context::Context;
use crate::failure::Failure;

/// What a scheduled backup is made with, resolved when the service starts:
/// the `create` flags the profile gives.
#[derive(Debug, Clone)]
struct ProfileSource {
    create: create::Args,
}

#[async_trait]
impl BackupSource for ProfileSource {
    async fn create_request(&self) -> Result<CreateRequest, JobError> {
        Ok(create::request(true, self.create.clone()).await?)
    }

    async fn drill_loader(
        &self,
        renames: &[(String, String)],
    ) -> Result<Option<Arc<dyn DatabaseLoader>>, JobError> {
        match self.create.mongo.uri()? {
            Some(uri) => Ok(Some(verify::scratch_loader(&uri, renames).await?)),
            None => Ok(None),
        }
    }
}

/// The labels a schedule's backups get: its own, then `scheduled` and
/// `schedule:<name>` (the profile's come first, added in `build`).
pub fn labels_of(entry: &ScheduleEntry) -> Vec<String> {
    let mut labels = entry.labels.clone();
    for l in BackupJob::labels(&entry.name) {
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels
}

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
    for l in labels_of(entry) {
        if !create.labels.contains(&l) {
            create.labels.push(l);
        }
    }
    // Bad values were refused when the config file was read; an empty
    // table is refused here (it would read as "keep everything").
    let retention = entry.retention.clone();
    let mut ctx = Context::new(&global, false, CancellationToken::new())?;
    ctx.lock_writes(&create.immutable, Some((&entry.name, retention.as_ref())))?;
    let backups = ctx.backups;
    if retention.as_ref().is_some_and(RetentionPolicy::is_empty) {
        return Err(Failure::usage(format!(
            "schedule {}: the retention table has no keep_* rule (remove it to keep everything)",
            entry.name
        )));
    }
    let mut job = BackupJob::new(
        entry.name.clone(),
        backups,
        Arc::new(ProfileSource { create }),
    )
    .with_verify(entry.verify)
    .with_scratch_dir(entry.scratch_dir.clone())
    .with_retention(retention);
    for name in &entry.copy_to {
        job = job.with_copy_to(name, copy_target(&global, config, entry, name)?);
    }
    Ok((cron, Arc::new(job)))
}

/// The store of profile `name`, a schedule's `copy_to` target: its own
/// store and options only (nothing of the schedule's store carries over).
fn copy_target(
    global: &GlobalArgs,
    config: &Config,
    entry: &ScheduleEntry,
    name: &str,
) -> Result<backups_core::StoreBackups, Failure> {
    let (_, profile) = config.profile(Some(name))?;
    if profile.store.is_none() {
        return Err(Failure::usage(format!(
            "schedule {}: copy_to profile {name:?} of {} names no store",
            entry.name,
            config.describe()
        )));
    }
    let mut target = global.clone();
    target.store = None;
    target.endpoint = None;
    target.region = None;
    target.allow_http = false;
    target.store_options.clear();
    apply::global(&mut target, &profile);
    let mut immutable = crate::immutable::ImmutableArgs::default();
    immutable.fill_from(&profile);
    let mut ctx = Context::new(&target, false, CancellationToken::new())?;
    ctx.lock_writes(&immutable, None)?;
    Ok(ctx.backups)
}
