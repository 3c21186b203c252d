//! The restore plan: verify -> safety backup of the current state
//! (labelled `pre-restore`) -> stop services -> restore database and files ->
//! post-restore hook -> start services. A failure after services were
//! stopped restores the safety backup and starts services again, so a
//! restore cannot leave the controller worse than it found it.
//!
//! With [`RestoreRequest::rewrites`] the old machine's identity is
//! rewritten as the files are extracted and the documents loaded; the
//! dry run (and the check before a real run) counts the replacements,
//! and a rollback undoes rewritten files like every other (the safety
//! backup itself is restored as it was, never rewritten).
//!
//! A rollback first takes the file changes back exactly, from the journal
//! of the restore ([`crate::journal`]: what it created is deleted, what it
//! replaced gets its previous version back), and drops the database
//! collections the load added.
//!
//! A crash in the middle is recovered by restoring the `pre-restore` backup
//! (`backups list` shows it; the error names it) with the journal the plan
//! kept on disk ([`RestorePlan::journal_dir`], [`journal_path`]), which
//! deletes what the crashed restore added first.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::StoreBackups;
use crate::error::{Error, Result};
use crate::files::FileSet;
use crate::progress::Progress;
use crate::request::{Identity, RestoreReport, RestoreRequest, Safety, SafetyBackup};
use crate::services::ServiceController;

use super::execute::PreparedRestore;
use super::preflight::{Preflight, check_down, check_identity, check_space, free_space};
use super::restore::{self, Verified};

/// A full restore: [`RestorePlan::new`], then `with_*`.
#[non_exhaustive]
pub struct RestorePlan {
    /// What to restore and where (and whether a safety backup is taken
    /// first: [`RestoreRequest::with_safety_backup`], [`RestoreRequest::without_safety_backup`]).
    pub request: RestoreRequest,
    /// Services to stop and start around it.
    pub services: Option<Arc<dyn ServiceController>>,
    /// Skip the free-disk-space preflight check.
    pub ignore_free_space: bool,
    /// Identity and version checks against the target.
    pub preflight: Preflight,
    /// Where to keep the journal of the restore's file changes while it
    /// runs ([`crate::restore::journal_path`]): if the process is killed, restoring the
    /// safety backup with that journal takes them back first. `None` keeps
    /// it in memory only (a rollback still uses it).
    pub journal_dir: Option<PathBuf>,
}

impl RestorePlan {
    /// A plan for `request`: no services, the request's safety backup
    /// rule ([`Safety::Auto`] by default), the free-space check on, no
    /// identity checks, the journal in memory.
    pub fn new(request: RestoreRequest) -> Self {
        RestorePlan {
            request,
            services: None,
            ignore_free_space: false,
            preflight: Preflight::default(),
            journal_dir: None,
        }
    }

    /// Stops and starts `services` around the restore.
    pub fn with_services(mut self, services: Arc<dyn ServiceController>) -> Self {
        self.services = Some(services);
        self
    }

    /// Takes this safety backup first (and rolls back to it on failure),
    /// whatever the target: [`RestoreRequest::with_safety_backup`].
    pub fn with_safety(mut self, safety: SafetyBackup) -> Self {
        self.request.safety = Safety::Take(Box::new(safety));
        self
    }

    /// Skips (`true`) the free-disk-space check.
    pub fn with_ignore_free_space(mut self, ignore: bool) -> Self {
        self.ignore_free_space = ignore;
        self
    }

    /// Identity and version checks against the target.
    pub fn with_preflight(mut self, preflight: Preflight) -> Self {
        self.preflight = preflight;
        self
    }

    /// Keeps the journal on disk in `dir` while the restore runs (`None`:
    /// in memory).
    pub fn with_journal_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.journal_dir = dir;
        self
    }
}

impl fmt::Debug for RestorePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestorePlan")
            .field("request", &self.request)
            .field("services", &self.services.is_some())
            .field("ignore_free_space", &self.ignore_free_space)
            .field("preflight", &self.preflight)
            .field("journal_dir", &self.journal_dir)
            .finish()
    }
}

/// Verifies the archive in full and runs every preflight check (identity,
/// version, free space, old controller down), then applies the safety
/// rule; changes nothing, takes no lease.
pub(crate) async fn prepare<'a>(
    backups: &'a StoreBackups,
    plan: RestorePlan,
    progress: Arc<dyn Progress>,
) -> Result<PreparedRestore<'a>> {
    let checked = check_plan(
        backups,
        &plan.request,
        &plan.preflight,
        plan.ignore_free_space,
        progress.clone(),
    )
    .await?;
    let safety = safety_for(&plan.request, &checked)?;
    if plan.request.dry_run {
        progress.finish();
    }
    Ok(PreparedRestore {
        backups,
        request: plan.request,
        services: plan.services,
        journal_dir: plan.journal_dir,
        safety,
        checked,
    })
}

/// Whether `target` is the filesystem root (a restore in place).
pub(crate) fn in_place(target: &Path) -> bool {
    std::fs::canonicalize(target).is_ok_and(|p| p == Path::new("/"))
}

/// The library's safety rule ([`Safety`]): the safety backup `request`
/// takes, given what its check found.
fn safety_for(request: &RestoreRequest, checked: &RestoreReport) -> Result<Option<SafetyBackup>> {
    match &request.safety {
        Safety::Off => Ok(None),
        Safety::Take(safety) => Ok(Some(safety.as_ref().clone())),
        Safety::Auto => {
            // Files decide: a database load into a new directory is not
            // protected by default (a caller wanting it names a safety
            // backup: Safety::Take).
            if !in_place(&request.target) && checked.existing.is_empty() {
                return Ok(None);
            }
            let identity = request
                .safety_identity
                .clone()
                .unwrap_or_else(|| Identity::safety_default(None));
            let mut safety = SafetyBackup::new(FileSet::new(Vec::new()), identity);
            match (&request.database, &request.safety_dumper) {
                (Some(loader), Some(dumper)) => {
                    safety = safety.with_database(dumper.clone(), loader.clone());
                }
                (Some(_), None) => {
                    return Err(Error::Incompatible {
                        subject: request.target.display().to_string(),
                        reason: "the restore replaces live files and loads a database, and there is no dumper for the database's safety backup: give one (RestoreRequest::with_safety_database) or opt out explicitly (without_safety_backup)".into(),
                    });
                }
                _ => {}
            }
            Ok(Some(safety))
        }
    }
}

/// Runs a [`RestorePlan`]: [`prepare`], then (unless a dry run) execute.
pub(crate) async fn run(
    backups: &StoreBackups,
    plan: RestorePlan,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    prepare(backups, plan, progress.clone())
        .await?
        .execute(progress)
        .await
}

/// Full verification of the archive (every entry, dump files included)
/// and the preflight checks: identity, version, free space.
async fn check_plan(
    backups: &StoreBackups,
    request: &RestoreRequest,
    preflight: &Preflight,
    ignore_free_space: bool,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    progress.phase("checking", None);
    check_down(&preflight.ensure_down).await?;
    // The database is kept (a dry run loads nothing) so that the check
    // counts the replacements in the documents that will be loaded.
    let mut check = request.clone();
    check.dry_run = true;
    let checked = restore::restore(backups, check, Verified::Nothing, progress.clone()).await?;
    // (The dry run ran the database's preflight too.)
    check_identity(&checked.metadata, preflight, progress.as_ref())?;
    // A safety backup holds live paths as they were (absolute): it goes
    // back in place, never nested under another target.
    if checked.metadata.labels.iter().any(|l| l == "pre-restore") && !in_place(&request.target) {
        return Err(Error::Incompatible {
            subject: request.source.subject(),
            reason: format!(
                "it is a pre-restore safety backup: its paths are where they were before the restore it undoes, so it is restored with --target / (under {} they would nest)",
                request.target.display()
            ),
        });
    }
    if !ignore_free_space {
        let space = free_space(&request.target)?;
        check_space(
            &request.target,
            checked.stats.bytes - checked.stats.hole_bytes,
            space,
        )?;
    }
    Ok(checked)
}
