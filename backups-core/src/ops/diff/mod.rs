//! Diff: what a restore of a backup would change, without changing
//! anything. One pass over the archive: each entry of `root.tar` is hashed
//! as it streams and compared with the live file under the target
//! ([`files`]); the dump files go to a [`DatabaseComparer`], which compares
//! each dumped collection with the live database.

mod files;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::archive::reader::RootVisitor;
use crate::catalog::StoreBackups;
use crate::crypt::Identities;
use crate::database::{CollectionDiff, DatabaseComparer, DumpForwarder, dump_channel};
use crate::error::{Error, Result};
use crate::extract::{is_collection_file, sanitize_entry_path};
use crate::progress::Progress;
use crate::request::RestoreSource;

use super::{open_source, scan};

pub use files::{FileCounts, FileDifference, FileKind, FileState, FilesDiff};

/// What to compare: [`DiffRequest::new`], then `with_*`.
#[derive(Clone)]
#[non_exhaustive]
pub struct DiffRequest {
    /// The backup (or local archive) to compare.
    pub(crate) source: RestoreSource,
    /// The directory a restore would write the backup's files under (`/`
    /// for in place): the live files compared are below it.
    pub(crate) target: PathBuf,
    /// Keys for an encrypted backup.
    pub(crate) identities: Identities,
    /// The live database to compare the dump with; `None` compares the
    /// files only.
    pub(crate) database: Option<Arc<dyn DatabaseComparer>>,
}

impl DiffRequest {
    /// Compares `source`'s files with those under `target`; no database.
    pub fn new(source: RestoreSource, target: impl Into<PathBuf>) -> Self {
        DiffRequest {
            source,
            target: target.into(),
            identities: Identities::none(),
            database: None,
        }
    }

    /// Decrypts an encrypted backup with these keys.
    pub fn with_identities(mut self, identities: Identities) -> Self {
        self.identities = identities;
        self
    }

    /// Compares the backup's database dump with this live database too.
    pub fn with_database(mut self, database: Arc<dyn DatabaseComparer>) -> Self {
        self.database = Some(database);
        self
    }
}

impl fmt::Debug for DiffRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiffRequest")
            .field("source", &self.source)
            .field("target", &self.target)
            .field("identities", &self.identities)
            .field("database", &self.database.is_some())
            .finish()
    }
}

/// How a backup and the live state differ (`backups diff --json` prints
/// it as it is).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct DiffReport {
    /// The backup id or archive file compared.
    pub source: String,
    /// The target directory the live files are under.
    pub target: PathBuf,
    /// Files, directories and links.
    pub files: FilesDiff,
    /// Whether the dump was compared with a live database.
    pub database_compared: bool,
    /// Collections (`.bson` files, the oplog aside) in the backup's dump.
    pub dump_collections: u64,
    /// Each dumped collection against the live one (empty when the
    /// database was not compared).
    pub collections: Vec<CollectionDiff>,
    /// What could not be compared (an unreadable live file...).
    pub warnings: Vec<String>,
}

impl DiffReport {
    /// Whether anything differs: a file or a collection.
    pub fn has_differences(&self) -> bool {
        !self.files.is_same() || self.collections.iter().any(|c| !c.is_same())
    }
}

/// Compares a backup with the live state under `request.target` (and the
/// live database, with a comparer). Reads the archive once; changes
/// nothing. A stored backup's digests are checked against its sidecar at
/// the end of the pass.
pub(crate) async fn diff(
    backups: &StoreBackups,
    request: DiffRequest,
    progress: Arc<dyn Progress>,
) -> Result<DiffReport> {
    let (subject, recorded, sealed) =
        open_source(backups, &request.source, &request.identities, false).await?;
    progress.phase("comparing", recorded.as_ref().map(|m| m.stored_size()));
    let (forwarder, comparer) = match &request.database {
        Some(db) => {
            let (forwarder, source) = dump_channel(None);
            let db = db.clone();
            (
                Some(forwarder),
                Some(tokio::spawn(async move { db.compare(source).await })),
            )
        }
        None => (None, None),
    };
    let visitor = DiffVisitor {
        files: files::FileDiffer::new(request.target.clone()),
        dump: forwarder,
        dump_collections: 0,
        warnings: Vec::new(),
    };
    let reader = backups
        .open_restore_source(&request.source, recorded.as_ref())
        .await?;
    let scanned = scan(reader, sealed, subject.clone(), visitor, progress.clone()).await;
    let (summary, visitor) = match scanned {
        Ok((summary, mut visitor)) => {
            visitor.dump = None; // the end of the dump for the comparer
            (summary, visitor)
        }
        Err(e) => {
            if let Some(task) = comparer {
                let _ = task.await;
            }
            return Err(e);
        }
    };
    let collections = match comparer {
        Some(task) => task
            .await
            .map_err(|e| Error::task("the database comparison", e))??,
        None => Vec::new(),
    };
    if let Some(meta) = &recorded {
        meta.check_digests(&subject, &summary.digests)?;
    }
    summary.metadata.check_format(&subject)?;
    if !summary.has_root_tar {
        return Err(Error::invalid(
            &subject,
            "missing entry juju-backup/root.tar: the archive holds no files to compare",
        ));
    }
    progress.finish();
    let (files, mut warnings) = visitor.files.finish();
    warnings.extend(visitor.warnings);
    Ok(DiffReport {
        source: subject,
        target: request.target,
        files,
        database_compared: request.database.is_some(),
        dump_collections: visitor.dump_collections,
        collections,
        warnings,
    })
}

/// The pass: `root.tar` to the file comparison, dump files to the
/// database comparer.
struct DiffVisitor {
    files: files::FileDiffer,
    dump: Option<DumpForwarder>,
    dump_collections: u64,
    warnings: Vec<String>,
}

impl RootVisitor for DiffVisitor {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        self.files.visit_root(root)
    }

    fn visit_dump(&mut self, path: &str, size: u64, body: &mut dyn Read) -> Result<()> {
        sanitize_entry_path(path.as_bytes())
            .map_err(|r| Error::unsafe_path(format!("dump/{path}"), r))?;
        if is_collection_file(path) {
            self.dump_collections += 1;
        }
        if path == "oplog.bson" && size > 0 && self.dump.is_some() {
            self.warnings.push(format!(
                "the dump's oplog ({size} bytes, the writes made while it ran) is not applied: documents written during the dump may show as different"
            ));
        }
        match &self.dump {
            Some(forwarder) => forwarder.forward(path, size, body),
            None => Ok(()),
        }
    }
}
