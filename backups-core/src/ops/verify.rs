//! Verify: check a stored backup at one of three levels and record the
//! outcome in its sidecar.
//!
//! - [`VerifyLevel::Stored`]: the stored object against the sidecar (size
//!   and digests), no decompression, no key needed;
//! - [`VerifyLevel::ReadData`]: every entry read (manifest digests, paths,
//!   BSON framing) and the plain archive's digests, nothing written;
//! - [`VerifyLevel::Drill`]: restored into a scratch directory (and, with a
//!   loader, scratch databases), the file count and bytes and the document
//!   count of every collection compared with what the sidecar recorded; the
//!   scratch data is removed whatever happens.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::catalog::StoreBackups;
use crate::crypt::Identities;
use crate::database::DatabaseLoader;
use crate::error::{Error, Result};
use crate::extract::ExtractOptions;
use crate::id::BackupId;
use crate::metadata::{Metadata, Verification, VerifyLevel};
use crate::progress::Progress;
use crate::request::{RestoreReport, RestoreRequest, RestoreSource};

use super::edit::{Edit, edit};
use super::restore::{Verified, check_stored, restore};

/// Scratch databases for a drill: the loader, and which scratch database
/// each database of the dump is loaded into (every one it loads must be
/// in the map: they are dropped afterwards).
#[derive(Clone)]
pub struct DrillDatabase {
    /// Loads into the scratch databases.
    pub loader: Arc<dyn DatabaseLoader>,
    /// Dump database -> scratch database.
    pub renames: Vec<(String, String)>,
}

impl fmt::Debug for DrillDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrillDatabase")
            .field("renames", &self.renames)
            .finish_non_exhaustive()
    }
}

/// The scratch databases a drill of the backup `meta` loads into: one per
/// database of its dump, `backups_drill_<db>_<8 random hex digits>`
/// (dump database -> scratch database; every one is dropped afterwards).
pub fn drill_renames(meta: &Metadata) -> Vec<(String, String)> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let mut dbs: Vec<String> = meta
        .databases
        .keys()
        .filter(|ns| !ns.starts_with("oplog"))
        .filter_map(|ns| ns.split_once('.').map(|(d, _)| d.to_string()))
        .collect();
    dbs.sort();
    dbs.dedup();
    dbs.into_iter()
        .map(|d| {
            let scratch = format!("backups_drill_{d}_{}", &suffix[..8]);
            (d, scratch)
        })
        .collect()
}

/// What to verify, how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyRequest {
    /// How thoroughly.
    pub level: VerifyLevel,
    /// Keys for encrypted backups (read-data and drill).
    pub identities: Identities,
    /// Where a drill makes its scratch directory (default: the system's
    /// temp directory).
    pub scratch_dir: Option<PathBuf>,
    /// Scratch databases for a drill; `None` drills the files only.
    pub database: Option<DrillDatabase>,
}

impl VerifyRequest {
    /// Verifies at `level`.
    pub fn new(level: VerifyLevel) -> Self {
        VerifyRequest {
            level,
            identities: Identities::none(),
            scratch_dir: None,
            database: None,
        }
    }

    /// Keys for encrypted backups.
    pub fn with_identities(mut self, identities: Identities) -> Self {
        self.identities = identities;
        self
    }

    /// Drills into scratch directories under `dir`.
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch_dir = Some(dir.into());
        self
    }

    /// Drills the database into these scratch databases.
    pub fn with_database(mut self, database: DrillDatabase) -> Self {
        self.database = Some(database);
        self
    }
}

/// For a backup written with a lock: the lock the store holds must be
/// there and last at least as long as the one asked for (a second's
/// slack); `Ok(Err(problem))` otherwise, `Ok(Ok(what holds))` when it is.
async fn check_lock(
    backups: &StoreBackups,
    meta: &Metadata,
) -> Result<std::result::Result<Option<String>, String>> {
    let Some(asked) = meta.lock_requested else {
        return Ok(Ok(None));
    };
    Ok(match backups.object_lock(meta).await? {
        None => Err(format!(
            "its object lock is missing in the store (it was written with {} until {})",
            asked.mode,
            asked.until_text()
        )),
        Some(held) if held.retain_until + time::Duration::seconds(1) < asked.retain_until => {
            Err(format!(
                "its object lock ends {}, before the {} asked for",
                held.until_text(),
                asked.until_text()
            ))
        }
        Some(held) => Ok(Some(format!(
            "locked ({}) until {}",
            held.mode,
            held.until_text()
        ))),
    })
}

/// Verifies `id` and records the outcome in its sidecar. A failed check is
/// an outcome (`ok: false`), not an error; errors are what prevented the
/// check (the backup is gone, the store unreachable, no key).
pub(crate) async fn verify(
    backups: &StoreBackups,
    id: &BackupId,
    request: &VerifyRequest,
    progress: Arc<dyn Progress>,
) -> Result<Verification> {
    let meta = backups.committed(id).await?;
    let outcome = match request.level {
        VerifyLevel::Stored => check_stored(backups, id, &meta, progress)
            .await
            .map(|()| format!("{} stored bytes match the sidecar", meta.stored_size())),
        VerifyLevel::ReadData => read_data(backups, id, request, progress).await,
        VerifyLevel::Drill => drill(backups, id, &meta, request, progress).await,
    };
    let record = match outcome {
        Ok(detail) => match check_lock(backups, &meta).await? {
            Ok(Some(lock)) => Verification::now(request.level, true, format!("{detail}; {lock}")),
            Ok(None) => Verification::now(request.level, true, detail),
            Err(problem) => Verification::now(request.level, false, problem),
        },
        Err(e) if is_verdict(&e) => Verification::now(request.level, false, e.to_string()),
        Err(e) => return Err(e),
    };
    edit(backups, id, &Edit::verification(record.clone())).await?;
    Ok(record)
}

/// Whether `e` says the backup is bad (rather than that it could not be
/// checked).
fn is_verdict(e: &Error) -> bool {
    matches!(
        e,
        Error::ChecksumMismatch { .. }
            | Error::InvalidArchive { .. }
            | Error::UnsafePath { .. }
            | Error::Database { .. }
    )
}

/// A restore request that may create whatever the archive holds.
fn permissive(id: &BackupId, target: PathBuf, identities: &Identities) -> RestoreRequest {
    RestoreRequest::new(RestoreSource::Id(id.clone()), target)
        .with_options(
            ExtractOptions::default()
                .with_setuid(true)
                .with_devices(true),
        )
        .with_identities(identities.clone())
}

async fn read_data(
    backups: &StoreBackups,
    id: &BackupId,
    request: &VerifyRequest,
    progress: Arc<dyn Progress>,
) -> Result<String> {
    // A dry run reads and checks every entry and writes nothing.
    let check =
        permissive(id, PathBuf::from("/nonexistent"), &request.identities).with_dry_run(true);
    let report = restore(backups, check, Verified::Nothing, progress).await?;
    let s = &report.stats;
    Ok(format!(
        "read every entry: {} files, {} directories, {} links, {} bytes{}",
        s.files,
        s.directories,
        s.symlinks + s.hard_links,
        s.bytes,
        if report.manifest_verified {
            ", manifest verified"
        } else {
            ""
        }
    ))
}

async fn drill(
    backups: &StoreBackups,
    id: &BackupId,
    meta: &Metadata,
    request: &VerifyRequest,
    progress: Arc<dyn Progress>,
) -> Result<String> {
    let parent = request
        .scratch_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)
        .map_err(|e| Error::io("creating the scratch directory", &parent, e))?;
    let scratch = tempfile::Builder::new()
        .prefix(".backups-drill-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io("creating a scratch directory in", &parent, e))?;
    let mut restore_request = permissive(id, scratch.path().join("root"), &request.identities);
    if let Some(db) = &request.database {
        restore_request.database = Some(db.loader.clone());
    }
    let restored = backups
        .with_lease("verify", async |_| {
            restore(backups, restore_request, Verified::Nothing, progress).await
        })
        .await;
    // The scratch data goes, whatever happened.
    let dropped = match &request.database {
        Some(db) => drop_scratch(db).await,
        None => Ok(()),
    };
    let closed = scratch
        .close()
        .map_err(|e| Error::io("removing the scratch directory", &parent, e));
    let report = restored?;
    dropped?;
    closed?;
    compare(meta, &report, request.database.as_ref())
}

/// Drops every namespace of the scratch databases.
async fn drop_scratch(db: &DrillDatabase) -> Result<()> {
    let scratch: Vec<&str> = db.renames.iter().map(|(_, to)| to.as_str()).collect();
    let namespaces: Vec<String> = db
        .loader
        .namespaces()
        .await?
        .into_iter()
        .filter(|ns| {
            ns.split_once('.')
                .is_some_and(|(d, _)| scratch.contains(&d))
        })
        .collect();
    db.loader.drop_namespaces(&namespaces).await
}

/// Compares a drill's restore with what the sidecar recorded.
fn compare(meta: &Metadata, report: &RestoreReport, db: Option<&DrillDatabase>) -> Result<String> {
    let mismatch = |what: &'static str, expected: String, actual: String| {
        Err(Error::ChecksumMismatch {
            subject: format!(
                "drill of {}",
                meta.id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            what,
            expected,
            actual,
        })
    };
    let s = &report.stats;
    let entries = s.files + s.directories + s.symlinks + s.hard_links + s.devices;
    if let Some(n) = meta.file_count
        && n != entries
    {
        return mismatch("file count", n.to_string(), entries.to_string());
    }
    if let Some(n) = meta.file_bytes
        && n != s.bytes
    {
        return mismatch("file bytes", n.to_string(), s.bytes.to_string());
    }
    let mut collections = 0;
    if let (Some(db), Some(loaded)) = (db, &report.database) {
        let target = |ns: &str| -> String {
            let Some((d, c)) = ns.split_once('.') else {
                return ns.to_string();
            };
            let d = db
                .renames
                .iter()
                .find(|(from, _)| from == d)
                .map_or(d, |(_, to)| to.as_str());
            format!("{d}.{c}")
        };
        let recorded: BTreeMap<String, u64> = meta
            .databases
            .iter()
            .filter(|(ns, _)| !ns.starts_with("oplog"))
            .map(|(ns, n)| (target(ns), *n))
            .collect();
        for (ns, n) in &recorded {
            let got = loaded.collections.get(ns).copied().unwrap_or(0);
            if got != *n {
                return mismatch(
                    "document count",
                    format!("{ns}: {n}"),
                    format!("{ns}: {got}"),
                );
            }
        }
        collections = recorded.len();
    }
    let unchecked = if db.is_none() && report.dump_collections > 0 {
        format!(
            "; its database dump ({} collections) was not drilled (no scratch database given)",
            report.dump_collections
        )
    } else {
        String::new()
    };
    Ok(format!(
        "restored into scratch space: {entries} entries, {} bytes{} as recorded{unchecked}",
        s.bytes,
        if collections > 0 {
            format!(", {collections} collections")
        } else {
            String::new()
        }
    ))
}
