//! Executing a prepared restore ([`PreparedRestore::execute`]) under the
//! store's lease: safety backup -> stop services -> note the live
//! namespaces and open the journal -> load and extract -> post-restore
//! hook -> start; a failure after the stop rolls back to the safety
//! backup. Each step is one function.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::StoreBackups;
use crate::database::{
    DatabaseDumper, DatabaseLoader, OnlyNamespaces, drop_added_namespaces, namespaces_before,
};
use crate::error::{Error, Result};
use crate::extract::ExtractOptions;
use crate::files::FileSet;
use crate::id::BackupId;
use crate::journal::RestoreJournal;
use crate::lease::LeaseGuard;
use crate::metadata::Metadata;
use crate::progress::Progress;
use crate::request::{CreateRequest, RestoreReport, RestoreRequest, RestoreSource, SafetyBackup};
use crate::services::ServiceController;

use super::create;
use super::restore::{self, Verified};

/// The safety backup taken, and how to load its database back.
struct Rollback {
    id: BackupId,
    loader: Option<Arc<dyn DatabaseLoader>>,
}

/// What the restore records before it changes anything, to undo it.
struct Undo {
    namespaces_before: Option<Vec<String>>,
    journal: Option<RestoreJournal>,
}

/// The journal of a restore whose safety backup is `safety_backup`:
/// `<dir>/restore-<safety_backup>.journal`. Restoring that safety backup
/// with it (see [`RestoreRequest::with_undo_journal`]) takes its changes back.
pub fn journal_path(dir: &Path, safety_backup: &BackupId) -> PathBuf {
    dir.join(format!("restore-{safety_backup}.journal"))
}

/// A restore that has been checked and has changed nothing yet:
/// [`StoreBackups::prepare_restore`]. Look at what it will do
/// ([`PreparedRestore::check`], [`PreparedRestore::safety_backup`]),
/// then [`PreparedRestore::execute`] it (or drop it).
pub struct PreparedRestore<'a> {
    pub(super) backups: &'a StoreBackups,
    pub(super) request: RestoreRequest,
    pub(super) services: Option<Arc<dyn ServiceController>>,
    pub(super) journal_dir: Option<PathBuf>,
    pub(super) safety: Option<SafetyBackup>,
    pub(super) checked: RestoreReport,
}

impl fmt::Debug for PreparedRestore<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRestore")
            .field("request", &self.request)
            .field("services", &self.services.is_some())
            .field("journal_dir", &self.journal_dir)
            .field("safety", &self.safety)
            .field("checked", &self.checked)
            .finish()
    }
}

impl PreparedRestore<'_> {
    /// The check's report: what would be restored (files, bytes, the dump),
    /// the live paths it replaces ([`RestoreReport::existing`]) and the
    /// replacements the rewrite rules would make.
    pub fn check(&self) -> &RestoreReport {
        &self.checked
    }

    /// The safety backup the restore takes first (the library's rule for
    /// [`crate::Safety::Auto`] already applied), or `None`.
    pub fn safety_backup(&self) -> Option<&SafetyBackup> {
        self.safety.as_ref()
    }

    /// The live paths the safety backup saves (those the restore replaces
    /// and the safety backup's own), empty without one.
    pub fn saved_paths(&self) -> Vec<PathBuf> {
        match &self.safety {
            Some(s) => {
                let files = saved_state(s, &self.checked, None).0;
                files.paths.into_iter().chain(files.single).collect()
            }
            None => Vec::new(),
        }
    }

    /// Runs the restore while holding the store's lease: the safety
    /// backup, stop, load and extract (journaled), post-restore hook,
    /// start; a failure rolls back to the safety backup. A dry run's
    /// preparation is returned as it is.
    pub async fn execute(self, progress: Arc<dyn Progress>) -> Result<RestoreReport> {
        if self.request.dry_run {
            return Ok(self.checked);
        }
        execute(self, progress).await
    }
}

/// The journals in `dir` that restores which did not finish (killed, or
/// whose rollback failed) left behind, each with the pre-restore backup
/// that undoes it, by id. A missing `dir` holds none.
pub fn pending_journals(dir: &Path) -> Result<Vec<(BackupId, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing restore journals in", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing restore journals in", dir, e))?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_prefix("restore-"))
            .and_then(|n| n.strip_suffix(".journal"))
            .and_then(|n| n.parse::<BackupId>().ok());
        if let Some(id) = id {
            found.push((id, entry.path()));
        }
    }
    found.sort();
    Ok(found)
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

/// [`PreparedRestore::execute`] for a real run: takes the lease, runs, and
/// gives the lease back whatever the outcome.
async fn execute(
    prepared: PreparedRestore<'_>,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    let backups = prepared.backups;
    backups
        .with_lease("restore", async |lease| {
            run_locked(prepared, lease, progress).await
        })
        .await
}

async fn run_locked(
    prepared: PreparedRestore<'_>,
    lease: &LeaseGuard,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    let PreparedRestore {
        backups,
        request,
        services,
        journal_dir,
        safety,
        checked,
    } = prepared;
    unchanged(backups, &request.source, &checked.metadata).await?;
    let rollback = match &safety {
        Some(s) => {
            Some(take_safety_backup(backups, s, &request, &checked, progress.clone()).await?)
        }
        None => None,
    };
    // Verifying and the safety backup take long: still ours?
    lease.check()?;
    // A stop that fails has started again what it stopped.
    if let Some(s) = &services {
        s.stop().await?;
    }
    let undo = match open_undo(
        &request,
        &checked,
        rollback.as_ref(),
        journal_dir.as_deref(),
    )
    .await
    {
        Ok(undo) => undo,
        Err(e) => {
            // Nothing was changed: start the services again.
            if let Some(s) = &services {
                let _ = s.start().await;
            }
            return Err(e);
        }
    };
    let applied = apply(
        backups,
        &request,
        &undo,
        services.as_deref(),
        progress.clone(),
    )
    .await;
    match applied {
        Ok(mut report) => {
            settle(&undo.journal, progress.as_ref());
            report.safety_backup = rollback.map(|r| r.id);
            Ok(report)
        }
        Err(cause) => match rollback {
            Some(rollback) => {
                roll_back(
                    backups,
                    &request,
                    undo,
                    rollback,
                    services.as_deref(),
                    cause,
                    progress,
                )
                .await
            }
            None => {
                take_back(&undo, services.is_some(), progress.as_ref());
                Err(cause)
            }
        },
    }
}

/// What was checked is what is restored: the stored backup's sidecar did
/// not change since (under the lease now).
async fn unchanged(
    backups: &StoreBackups,
    source: &RestoreSource,
    checked: &Metadata,
) -> Result<()> {
    if let RestoreSource::Id(id) = source {
        let now = backups.committed(id).await?;
        if now.sha256 != checked.sha256 || now.checksum != checked.checksum {
            return Err(Error::Incompatible {
                subject: id.to_string(),
                reason:
                    "the backup changed in the store after it was checked: run the restore again"
                        .into(),
            });
        }
    }
    Ok(())
}

/// A restore without a safety backup failed: what it wrote is taken back
/// (what it added is removed, what it replaced put back), so that a full
/// disk or a bad entry leaves the target as it was; the database is left
/// as the load left it, and stopped services stay stopped.
fn take_back(undo: &Undo, stopped: bool, progress: &dyn Progress) {
    if let Some(journal) = &undo.journal {
        match journal.undo() {
            Ok(undone) => progress.warn(&format!(
                "took back what the failed restore wrote: removed {} paths, put back {}",
                undone.removed, undone.restored
            )),
            Err(e) => progress.warn(&format!(
                "could not take back what the failed restore wrote: {e}"
            )),
        }
    }
    // Without a safety backup the state is half restored: starting on it
    // could make things worse.
    if stopped {
        progress.warn(
            "the services were left stopped: the restore failed after they were stopped and there is no safety backup to go back to; fix the cause and restore again",
        );
    }
}

/// Step 2: the safety backup of the live state (labelled `pre-restore`).
async fn take_safety_backup(
    backups: &StoreBackups,
    safety: &SafetyBackup,
    request: &RestoreRequest,
    checked: &RestoreReport,
    progress: Arc<dyn Progress>,
) -> Result<Rollback> {
    let (files, dumper) = saved_state(safety, checked, request.database.as_deref());
    let mut create = CreateRequest::new(files, safety.identity.clone())
        .with_notes(format!(
            "safety backup taken before restoring {}",
            request.source.subject()
        ))
        .with_labels(vec!["pre-restore".into()]);
    create.database = dumper;
    let meta = create::create(backups, create, progress).await?;
    let id = meta
        .id
        .ok_or_else(|| Error::invalid("safety backup", "created without an id"))?;
    Ok(Rollback {
        id,
        loader: safety.loader.clone(),
    })
}

/// Step 3: the collections that exist (so that a rollback can take away
/// what the load adds) and the journal that makes the file changes
/// undoable: on disk when there is a safety backup and a journal directory
/// (a killed restore is undone by the next restore of the safety backup),
/// else in memory (a failed restore takes back what it wrote).
async fn open_undo(
    request: &RestoreRequest,
    checked: &RestoreReport,
    rollback: Option<&Rollback>,
    journal_dir: Option<&Path>,
) -> Result<Undo> {
    let namespaces = match (&request.database, rollback) {
        (Some(db), Some(_)) => Some(namespaces_before(db.as_ref(), &checked.dump_files).await?),
        _ => None,
    };
    let journal = match (journal_dir, rollback) {
        (Some(dir), Some(rollback)) => RestoreJournal::persisted(&journal_path(dir, &rollback.id))?,
        _ => RestoreJournal::default(),
    };
    // So that undoing a killed restore drops what its load added too,
    // once the load's writes still running at the server are done.
    if let Some(before) = &namespaces {
        if let Some(name) = request.database.as_ref().and_then(|db| db.client_name()) {
            journal.database_client(&name)?;
        }
        journal.database_before(before)?;
    }
    Ok(Undo {
        namespaces_before: namespaces,
        journal: Some(journal),
    })
}

/// Steps 4-6: restore (verified in full by the preparation: no extra read
/// of the archive), post-restore hook, start.
async fn apply(
    backups: &StoreBackups,
    request: &RestoreRequest,
    undo: &Undo,
    services: Option<&dyn ServiceController>,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    let mut request = request.clone();
    request.journal = undo.journal.clone();
    let report = restore::restore(backups, request, Verified::InFull, progress).await?;
    if let Some(s) = services {
        s.post_restore().await?;
        s.start().await?;
    }
    Ok(report)
}

/// A journal that is done with is removed (a failure to is a warning).
fn settle(journal: &Option<RestoreJournal>, progress: &dyn Progress) {
    if let Some(Err(e)) = journal.as_ref().map(RestoreJournal::settle) {
        progress.warn(&e.to_string());
    }
}

/// The rollback after a failed step: the file changes are taken back
/// exactly (what was added is deleted, what was replaced gets its previous
/// version back), what the load added is dropped, then the safety backup is
/// restored over it all the same and the services started.
async fn roll_back(
    backups: &StoreBackups,
    request: &RestoreRequest,
    undo: Undo,
    rollback: Rollback,
    services: Option<&dyn ServiceController>,
    cause: Error,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    let id = rollback.id;
    progress.warn(&format!(
        "restore failed ({cause}); rolling back to safety backup {id}"
    ));
    let undone = match &undo.journal {
        Some(j) => j.undo().map(|_| ()),
        None => Ok(()),
    };
    let dropped = match (&request.database, &undo.namespaces_before) {
        (Some(db), Some(before)) => drop_added_namespaces(db.as_ref(), before).await,
        _ => Ok(()),
    };
    let mut back = RestoreRequest::new(RestoreSource::Id(id.clone()), "/")
        // The safety backup is the live state as it was: its setuid bits
        // are the operator's own.
        .with_options(ExtractOptions {
            allow_setuid: true,
            allow_devices: false,
        })
        .without_safety_backup();
    back.database = rollback.loader;
    // Its digests are checked first all the same.
    let restored = restore::restore(backups, back, Verified::Nothing, progress.clone())
        .await
        .map(|_| ());
    let started = match services {
        Some(s) => s.start_after_rollback().await,
        None => Ok(()),
    };
    match undone.and(dropped).and(restored).and(started) {
        Ok(()) => {
            settle(&undo.journal, progress.as_ref());
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
