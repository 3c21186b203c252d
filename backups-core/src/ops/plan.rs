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

use crate::BackupId;
use crate::catalog::StoreBackups;
use crate::database::{DatabaseDumper, DatabaseLoader, OnlyNamespaces};
use crate::error::{Error, Result};
use crate::extract::ExtractOptions;
use crate::files::FileSet;
use crate::journal::RestoreJournal;
use crate::lease::{self, DEFAULT_LEASE_TTL, LeaseGuard};
use crate::progress::Progress;
use crate::request::{CreateRequest, Identity, RestoreReport, RestoreRequest, RestoreSource};
use crate::services::ServiceController;

use super::create;
use super::preflight::{Preflight, check_down, check_identity, check_space, free_space};
use super::restore::{self, Verified};

/// What the safety backup holds: the live state the restore will replace.
/// [`SafetyBackup::new`], then `with_*`.
#[derive(Clone)]
#[non_exhaustive]
pub struct SafetyBackup {
    /// Live files and directories (restored in place, at `/`, on rollback).
    pub files: FileSet,
    /// The live database, dumped into the safety backup.
    pub dumper: Option<Arc<dyn DatabaseDumper>>,
    /// Where to load it back on rollback.
    pub loader: Option<Arc<dyn DatabaseLoader>>,
    /// Identity recorded in the safety backup.
    pub identity: Identity,
    /// Also save what the restore will replace (on by default): the live
    /// paths under the target that the archive writes (each as itself, a
    /// symlink as a link) and, with a database, the namespaces the load
    /// replaces. `files` and the dumper's own choice come on top.
    pub replaced: bool,
}

impl SafetyBackup {
    /// A safety backup of the live `files` (no database), recorded under
    /// `identity`.
    pub fn new(files: FileSet, identity: Identity) -> Self {
        SafetyBackup {
            files,
            dumper: None,
            loader: None,
            identity,
            replaced: true,
        }
    }

    /// Saves (`true`, the default) or not what the restore will replace,
    /// on top of `files` (see [`SafetyBackup::replaced`]).
    pub fn with_replaced(mut self, replaced: bool) -> Self {
        self.replaced = replaced;
        self
    }

    /// Dumps the live database with `dumper` and, on rollback, loads it
    /// back with `loader`.
    pub fn with_database(
        mut self,
        dumper: Arc<dyn DatabaseDumper>,
        loader: Arc<dyn DatabaseLoader>,
    ) -> Self {
        self.dumper = Some(dumper);
        self.loader = Some(loader);
        self
    }
}

impl fmt::Debug for SafetyBackup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetyBackup")
            .field("files", &self.files)
            .field("database", &self.dumper.is_some())
            .field("identity", &self.identity)
            .finish()
    }
}

/// A full restore: [`RestorePlan::new`], then `with_*`.
#[non_exhaustive]
pub struct RestorePlan {
    /// What to restore and where.
    pub request: RestoreRequest,
    /// Services to stop and start around it.
    pub services: Option<Arc<dyn ServiceController>>,
    /// The safety backup (and rollback); `None` restores without one.
    pub safety: Option<SafetyBackup>,
    /// Skip the free-disk-space preflight check.
    pub ignore_free_space: bool,
    /// Identity and version checks against the target.
    pub preflight: Preflight,
    /// Where to keep the journal of the restore's file changes while it
    /// runs ([`journal_path`]): if the process is killed, restoring the
    /// safety backup with that journal takes them back first. `None` keeps
    /// it in memory only (a rollback still uses it).
    pub journal_dir: Option<PathBuf>,
}

impl RestorePlan {
    /// A plan for `request`: no services, no safety backup, the free-space
    /// check on, no identity checks, the journal in memory.
    pub fn new(request: RestoreRequest) -> Self {
        RestorePlan {
            request,
            services: None,
            safety: None,
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

    /// Takes this safety backup first (and rolls back to it on failure).
    pub fn with_safety(mut self, safety: SafetyBackup) -> Self {
        self.safety = Some(safety);
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

    /// Keeps the journal on disk in `dir` while the restore runs.
    pub fn with_journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }
}

impl fmt::Debug for RestorePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestorePlan")
            .field("request", &self.request)
            .field("services", &self.services.is_some())
            .field("safety", &self.safety)
            .field("ignore_free_space", &self.ignore_free_space)
            .field("preflight", &self.preflight)
            .field("journal_dir", &self.journal_dir)
            .finish()
    }
}

/// The journal of a restore whose safety backup is `safety_backup`:
/// `<dir>/restore-<safety_backup>.journal`. Restoring that safety backup
/// with it (see [`RestoreRequest::undo_journal`]) takes its changes back.
pub fn journal_path(dir: &Path, safety_backup: &BackupId) -> PathBuf {
    dir.join(format!("restore-{safety_backup}.journal"))
}

/// What the safety backup saves: its own files and dumper and, unless
/// told not to, what the checked restore will replace.
fn saved_state(
    safety: &SafetyBackup,
    checked: &RestoreReport,
    loader: Option<&dyn DatabaseLoader>,
) -> (FileSet, Option<Arc<dyn DatabaseDumper>>) {
    if !safety.replaced {
        return (safety.files.clone(), safety.dumper.clone());
    }
    let mut files = safety.files.clone();
    files.single.extend(checked.existing.iter().cloned());
    let dumper = safety.dumper.clone().map(|dumper| {
        let namespaces = match loader {
            Some(l) => l.replaced_namespaces(&checked.dump_files),
            None => crate::database::dump_namespaces(&checked.dump_files),
        };
        Arc::new(OnlyNamespaces { dumper, namespaces }) as Arc<dyn DatabaseDumper>
    });
    (files, dumper)
}

/// What a plan did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlanReport {
    /// The restore itself.
    pub restore: RestoreReport,
    /// The safety backup taken first.
    pub safety_backup: Option<BackupId>,
}

/// Runs a [`RestorePlan`] while holding the store's lease.
pub(crate) async fn run(
    backups: &StoreBackups,
    plan: RestorePlan,
    progress: Arc<dyn Progress>,
) -> Result<PlanReport> {
    if plan.request.dry_run {
        // Every check, nothing changed (and so no lease needed).
        let restore = check_plan(
            backups,
            &plan.request,
            &plan.preflight,
            plan.ignore_free_space,
            progress.clone(),
        )
        .await?;
        progress.finish();
        return Ok(PlanReport {
            restore,
            safety_backup: None,
        });
    }
    let storage = backups.storage();
    let guard = lease::acquire(storage, backups.holder(), "restore", DEFAULT_LEASE_TTL).await?;
    let result = run_locked(backups, plan, &guard, progress).await;
    let released = lease::release(storage, guard).await;
    let report = result?;
    released?;
    Ok(report)
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

async fn run_locked(
    backups: &StoreBackups,
    plan: RestorePlan,
    lease: &LeaseGuard,
    progress: Arc<dyn Progress>,
) -> Result<PlanReport> {
    let RestorePlan {
        request,
        services,
        safety,
        ignore_free_space,
        preflight,
        journal_dir,
    } = plan;
    // 1. Verify everything (and run the preflight checks) first.
    let checked = check_plan(
        backups,
        &request,
        &preflight,
        ignore_free_space,
        progress.clone(),
    )
    .await?;

    // 2. Safety backup of the live state.
    let restoring = request.source.subject();
    let mut rollback = None;
    if let Some(safety) = safety {
        let (files, dumper) = saved_state(&safety, &checked, request.database.as_deref());
        let mut create = CreateRequest::new(files, safety.identity.clone())
            .with_notes(format!("safety backup taken before restoring {restoring}"))
            .with_labels(vec!["pre-restore".into()]);
        create.database = dumper;
        let meta = create::create(backups, create, progress.clone()).await?;
        let id = meta
            .id
            .ok_or_else(|| Error::invalid("safety backup", "created without an id"))?;
        rollback = Some((id, safety.loader));
    }
    let safety_id = rollback.as_ref().map(|(id, _)| id.clone());

    // Verifying and the safety backup take long: still ours?
    lease.check()?;

    // 3. Stop services, then note the collections that exist (so that a
    // rollback can take away what the load adds) and open the journal
    // that makes the file changes undoable: on disk when a journal
    // directory is given (a killed restore is undone by the next restore
    // of the safety backup), else in memory; without a safety backup
    // there is no rollback and no journal. If any of this fails, start
    // the services again: nothing was changed.
    // A stop that fails has started again what it stopped.
    if let Some(s) = &services {
        s.stop().await?;
    }
    let prepared = async {
        let namespaces = match (&request.database, &rollback) {
            (Some(db), Some(_)) => {
                Some(crate::database::namespaces_before(db.as_ref(), &checked.dump_files).await?)
            }
            _ => None,
        };
        let journal = match (&journal_dir, &safety_id) {
            (Some(dir), Some(id)) => Some(RestoreJournal::persisted(&journal_path(dir, id))?),
            (None, Some(_)) => Some(RestoreJournal::default()),
            _ => None,
        };
        // So that undoing a killed restore drops what its load added too,
        // once the load's writes still running at the server are done.
        if let (Some(j), Some(before)) = (&journal, &namespaces) {
            if let Some(name) = request.database.as_ref().and_then(|db| db.client_name()) {
                j.database_client(&name)?;
            }
            j.database_before(before)?;
        }
        Ok::<_, Error>((namespaces, journal))
    };
    let (namespaces_before, journal) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => {
            if let Some(s) = &services {
                let _ = s.start().await;
            }
            return Err(e);
        }
    };

    // 4-6. Restore, post-restore hook, start.
    let settle = |journal: &Option<RestoreJournal>| {
        if let Some(Err(e)) = journal.as_ref().map(RestoreJournal::settle) {
            progress.warn(&e.to_string());
        }
    };
    let steps = async {
        let mut request = request.clone();
        request.journal = journal.clone();
        // Verified in full in step 1: no extra read of the archive.
        let report = restore::restore(backups, request, Verified::InFull, progress.clone()).await?;
        if let Some(s) = &services {
            s.post_restore().await?;
            s.start().await?;
        }
        Ok::<_, Error>(report)
    };
    match steps.await {
        Ok(restore) => {
            settle(&journal);
            Ok(PlanReport {
                restore,
                safety_backup: safety_id,
            })
        }
        Err(cause) => {
            let Some((id, loader)) = rollback else {
                // Without a safety backup the state is half restored:
                // starting on it could make things worse.
                if services.is_some() {
                    progress.warn(
                        "the services were left stopped: the restore failed after they were stopped and there is no safety backup to go back to; fix the cause and restore again",
                    );
                }
                return Err(cause);
            };
            progress.warn(&format!(
                "restore failed ({cause}); rolling back to safety backup {id}"
            ));
            // The file changes are taken back exactly (what was added is
            // deleted, what was replaced gets its previous version back);
            // then the safety backup is restored over them all the same.
            let undone = match &journal {
                Some(j) => j.undo().map(|_| ()),
                None => Ok(()),
            };
            let dropped = match (&request.database, &namespaces_before) {
                (Some(db), Some(before)) => {
                    crate::database::drop_added_namespaces(db.as_ref(), before).await
                }
                _ => Ok(()),
            };
            let mut back = RestoreRequest::new(RestoreSource::Id(id.clone()), "/")
                // The safety backup is the live state as it was: its
                // setuid bits are the operator's own.
                .with_options(ExtractOptions {
                    allow_setuid: true,
                    allow_devices: false,
                });
            back.database = loader;
            // Its digests are checked first all the same.
            let restored =
                restore::restore(backups, back, Verified::Nothing, progress.clone()).await;
            let started = match &services {
                Some(s) => s.start_after_rollback().await,
                None => Ok(()),
            };
            match undone.and(dropped).and(restored).and(started) {
                Ok(()) => {
                    settle(&journal);
                    Err(Error::RolledBack {
                        safety_backup: id,
                        cause: Box::new(cause),
                    })
                }
                Err(rollback_error) => Err(Error::RollbackFailed {
                    safety_backup: id,
                    cause: Box::new(cause),
                    rollback_error: Box::new(rollback_error),
                }),
            }
        }
    }
}
