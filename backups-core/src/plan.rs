//! The restore plan: verify -> safety backup of the current state
//! (labelled `pre-restore`) -> stop services -> restore database and files ->
//! post-restore hook -> start services. A failure after services were
//! stopped restores the safety backup and starts services again, so a
//! restore cannot leave the controller worse than it found it.
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::backups::{Backups, CreateRequest, Identity};
use crate::database::{DatabaseDumper, DatabaseLoader};
use crate::error::{Error, Result};
use crate::extract::ExtractOptions;
use crate::files::FileSet;
use crate::journal::RestoreJournal;
use crate::lease::{DEFAULT_LEASE_TTL, LeaseGuard};
use crate::progress::Progress;
use crate::restore::{RestoreReport, RestoreRequest, RestoreSource};
use crate::{BackupId, StoreBackups};

/// The embedding controller's services, stopped around a restore.
#[async_trait]
pub trait ServiceController: Send + Sync {
    /// Stops what uses the database and files.
    async fn stop(&self) -> Result<()>;
    /// Rewrites addresses/configuration after the restore (before start).
    async fn post_restore(&self) -> Result<()>;
    /// Starts the services again.
    async fn start(&self) -> Result<()>;
    /// Starts the services after a rollback put the pre-restore state back
    /// (by default the same as [`ServiceController::start`]).
    async fn start_after_rollback(&self) -> Result<()> {
        self.start().await
    }
}

/// What the safety backup holds: the live state the restore will replace.
pub struct SafetyBackup {
    /// Live files and directories (restored in place, at `/`, on rollback).
    pub files: FileSet,
    /// The live database, dumped into the safety backup.
    pub dumper: Option<Arc<dyn DatabaseDumper>>,
    /// Where to load it back on rollback.
    pub loader: Option<Arc<dyn DatabaseLoader>>,
    /// Identity recorded in the safety backup.
    pub identity: Identity,
}

/// A full restore.
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

/// The journal of a restore whose safety backup is `safety_backup`:
/// `<dir>/restore-<safety_backup>.journal`. Restoring that safety backup
/// with it (see [`RestoreRequest::undo_journal`]) takes its changes back.
pub fn journal_path(dir: &Path, safety_backup: &BackupId) -> PathBuf {
    dir.join(format!("restore-{safety_backup}.journal"))
}

/// What the restore target is, for the identity and version checks. Empty
/// fields are not checked.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    /// The target controller's identity and version.
    pub target: Identity,
    /// Restore a backup of another controller or model.
    pub allow_other_controller: bool,
    /// Restore a backup older than the target's version.
    pub allow_downgrade: bool,
}

/// Drops the namespaces that exist now but did not in `before`.
async fn drop_added_namespaces(db: &dyn DatabaseLoader, before: &[String]) -> Result<()> {
    let before: std::collections::HashSet<&String> = before.iter().collect();
    let added: Vec<String> = db
        .namespaces()
        .await?
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    db.drop_namespaces(&added).await
}

/// Numeric parts of a version (`2.8-beta1.1` -> [2, 8, 1, 1]).
fn version_parts(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Identity and version checks; HA node count differences are warnings.
pub fn check_identity(
    backup: &crate::Metadata,
    pre: &Preflight,
    progress: &dyn Progress,
) -> Result<()> {
    let subject = backup
        .id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let t = &pre.target;
    let refuse = |reason: String| Error::Incompatible {
        subject: subject.clone(),
        reason,
    };
    for (what, theirs, ours) in [
        ("controller", &backup.controller_uuid, &t.controller_uuid),
        ("model", &backup.model_uuid, &t.model_uuid),
    ] {
        if !theirs.is_empty() && !ours.is_empty() && theirs != ours && !pre.allow_other_controller {
            return Err(refuse(format!(
                "the backup is of {what} {theirs}, the target is {what} {ours} (use --allow-other-controller to restore it anyway)"
            )));
        }
    }
    if !backup.version.is_empty() && !t.version.is_empty() {
        let (b, tv) = (version_parts(&backup.version), version_parts(&t.version));
        if b > tv {
            return Err(refuse(format!(
                "the backup is from version {}, newer than the target's {}: upgrade the target first",
                backup.version, t.version
            )));
        }
        if b < tv && !pre.allow_downgrade {
            return Err(refuse(format!(
                "the backup is from version {}, older than the target's {} (use --allow-downgrade)",
                backup.version, t.version
            )));
        }
    }
    if backup.ha_nodes != 0 && t.ha_nodes != 0 && backup.ha_nodes != t.ha_nodes {
        progress.warn(&format!(
            "the backup was taken with {} HA controller nodes, the target has {}",
            backup.ha_nodes, t.ha_nodes
        ));
    }
    Ok(())
}

/// What a plan did.
#[derive(Debug, Clone)]
pub struct PlanReport {
    /// The restore itself.
    pub restore: RestoreReport,
    /// The safety backup taken first.
    pub safety_backup: Option<BackupId>,
}

/// Free and total bytes of the filesystem holding `path` (or its nearest
/// existing ancestor).
pub fn free_space(path: &Path) -> Result<(u64, u64)> {
    let absolute = std::path::absolute(path).map_err(|e| Error::Io {
        action: "resolving",
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut at = absolute.as_path();
    loop {
        if at.exists() {
            break;
        }
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    let st = rustix::fs::statvfs(at).map_err(|e| Error::Io {
        action: "measuring free space of",
        path: at.to_path_buf(),
        source: e.into(),
    })?;
    Ok((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}

/// The margin kept free beyond the restore's estimate: the larger of 20% of
/// the estimate and min(5 GiB, 10% of the disk).
pub fn space_margin(needed: u64, total: u64) -> u64 {
    (needed / 5).max((5u64 << 30).min(total / 10))
}

/// Refuses a restore the target filesystem cannot hold with the margin.
pub fn check_space(target: &Path, needed: u64, (free, total): (u64, u64)) -> Result<()> {
    let margin = space_margin(needed, total);
    if free < needed.saturating_add(margin) {
        return Err(Error::Incompatible {
            subject: target.display().to_string(),
            reason: format!(
                "not enough free disk space: the restore needs {needed} bytes plus a margin of {margin}, but only {free} are free"
            ),
        });
    }
    Ok(())
}

impl StoreBackups {
    /// Runs a [`RestorePlan`] while holding the store's lease.
    pub async fn run_restore_plan(
        &self,
        plan: RestorePlan,
        progress: Arc<dyn Progress>,
    ) -> Result<PlanReport> {
        if plan.request.dry_run {
            // Every check, nothing changed (and so no lease needed).
            let restore = self
                .check_plan(
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
        let guard = self.acquire_lease("restore", DEFAULT_LEASE_TTL).await?;
        let result = self.run_plan_locked(plan, &guard, progress).await;
        let released = self.release_lease(guard).await;
        let report = result?;
        released?;
        Ok(report)
    }

    /// Full verification of the archive (every entry, dump files included)
    /// and the preflight checks: identity, version, free space.
    async fn check_plan(
        &self,
        request: &RestoreRequest,
        preflight: &Preflight,
        ignore_free_space: bool,
        progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport> {
        progress.phase("checking", None);
        let mut check = request.clone();
        check.dry_run = true;
        check.database = None;
        let checked = self
            .restore_unlocked(check, false, progress.clone())
            .await?;
        check_identity(&checked.metadata, preflight, progress.as_ref())?;
        if !ignore_free_space {
            let space = free_space(&request.target)?;
            check_space(&request.target, checked.stats.bytes, space)?;
        }
        Ok(checked)
    }

    async fn run_plan_locked(
        &self,
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
        self.check_plan(&request, &preflight, ignore_free_space, progress.clone())
            .await?;

        // 2. Safety backup of the live state.
        let restoring = match &request.source {
            RestoreSource::Id(id) => id.to_string(),
            RestoreSource::File(p) => p.display().to_string(),
        };
        let mut rollback = None;
        if let Some(safety) = safety {
            let meta = self
                .create(
                    CreateRequest {
                        files: safety.files.clone(),
                        database: safety.dumper.clone(),
                        notes: format!("safety backup taken before restoring {restoring}"),
                        labels: vec!["pre-restore".into()],
                        identity: safety.identity.clone(),
                        compression: Default::default(),
                    },
                    progress.clone(),
                )
                .await?;
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
        let prepared = async {
            if let Some(s) = &services {
                s.stop().await?;
            }
            let namespaces = match (&request.database, &rollback) {
                (Some(db), Some(_)) => Some(db.namespaces().await?),
                _ => None,
            };
            let journal = match (&journal_dir, &safety_id) {
                (Some(dir), Some(id)) => Some(RestoreJournal::persisted(&journal_path(dir, id))?),
                (None, Some(_)) => Some(RestoreJournal::default()),
                _ => None,
            };
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
            let report = self
                .restore_unlocked(request, true, progress.clone())
                .await?;
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
                    (Some(db), Some(before)) => drop_added_namespaces(db.as_ref(), before).await,
                    _ => Ok(()),
                };
                let restored = self
                    .restore_unlocked(
                        RestoreRequest {
                            database: loader,
                            // The safety backup is the live state as it was:
                            // its setuid bits are the operator's own.
                            options: ExtractOptions {
                                allow_setuid: true,
                                allow_devices: false,
                            },
                            ..RestoreRequest::new(RestoreSource::Id(id.clone()), PathBuf::from("/"))
                        },
                        // Its digests are checked first all the same.
                        false,
                        progress.clone(),
                    )
                    .await;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_the_larger_of_a_fifth_and_a_capped_tenth_of_the_disk() {
        const GIB: u64 = 1 << 30;
        assert_eq!(space_margin(10 * GIB, 100 * GIB), 5 * GIB);
        assert_eq!(space_margin(100 * GIB, 1000 * GIB), 20 * GIB);
        assert_eq!(space_margin(GIB, 20 * GIB), 2 * GIB);
        assert!(check_space(Path::new("/t"), GIB, (3 * GIB, 20 * GIB)).is_ok());
        let err = check_space(Path::new("/t"), GIB, (2 * GIB, 20 * GIB)).unwrap_err();
        assert!(
            err.to_string().contains("not enough free disk space"),
            "{err}"
        );
        assert!(err.to_string().contains("/t"), "{err}");
    }

    #[test]
    fn identity_and_version_checks() {
        let backup = crate::Metadata {
            controller_uuid: "c1".into(),
            model_uuid: "m1".into(),
            version: "2.8-beta1.1".into(),
            ..Default::default()
        };
        let np = crate::NoProgress;
        let mut pre = Preflight::default();
        assert!(
            check_identity(&backup, &pre, &np).is_ok(),
            "nothing known, nothing checked"
        );
        pre.target.controller_uuid = "c2".into();
        let err = check_identity(&backup, &pre, &np).unwrap_err();
        assert!(
            err.to_string().contains("--allow-other-controller"),
            "{err}"
        );
        pre.allow_other_controller = true;
        pre.target.version = "2.8.0".into();
        let err = check_identity(&backup, &pre, &np).unwrap_err();
        assert!(err.to_string().contains("newer than the target"), "{err}");
        pre.target.version = "2.9.1".into();
        let err = check_identity(&backup, &pre, &np).unwrap_err();
        assert!(err.to_string().contains("--allow-downgrade"), "{err}");
        pre.allow_downgrade = true;
        assert!(check_identity(&backup, &pre, &np).is_ok());
        pre.target.version = "2.8-beta1.1".into();
        pre.allow_downgrade = false;
        assert!(check_identity(&backup, &pre, &np).is_ok(), "same version");
    }

    #[test]
    fn free_space_of_a_missing_path_uses_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = free_space(&dir.path().join("not/yet")).unwrap();
        assert!(total > 0 && free <= total);
        let (_, total) = free_space(Path::new("relative/not/there")).unwrap();
        assert!(
            total > 0,
            "a relative target is measured from the current directory"
        );
    }
}
