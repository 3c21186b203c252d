//! Restore: verify the archive before touching anything, then load the
//! database and extract the files in one pass.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::BackupId;
use crate::archive::reader::RootVisitor;
use crate::backups::{ArchiveSource, Backups, StoreBackups, check_digests, scan};
use crate::database::{DatabaseLoader, DumpForwarder, LoadSummary, dump_channel};
use crate::digest::{Digests, Hasher};
use crate::error::{Error, Result};
use crate::extract::{ExtractOptions, ExtractStats, Extractor, RootCheck};
use crate::journal::RestoreJournal;
use crate::metadata::Metadata;
use crate::progress::{NoProgress, Progress};

/// Which archive a restore reads.
#[derive(Debug, Clone)]
pub enum RestoreSource {
    /// A backup in the store.
    Id(BackupId),
    /// A local archive file.
    File(PathBuf),
}

/// What to restore and where.
#[derive(Clone)]
pub struct RestoreRequest {
    /// The archive to restore.
    pub source: RestoreSource,
    /// Directory the files of `root.tar` are restored under.
    pub target: PathBuf,
    /// Only verify and report; change nothing.
    pub dry_run: bool,
    /// Where to load the archive's database dump, if anywhere.
    pub database: Option<Arc<dyn DatabaseLoader>>,
    /// Whether setuid bits and device nodes may be restored.
    pub options: ExtractOptions,
    /// Where to record the restore's file changes (what it creates, and the
    /// previous version of what it replaces), so they can be undone.
    pub journal: Option<RestoreJournal>,
    /// A journal left by an interrupted restore (see
    /// [`crate::plan::journal_path`]): once the archive is verified, its
    /// changes are taken back before extracting, and after a successful
    /// restore the journal file is removed. Missing file: nothing to undo.
    pub undo_journal: Option<PathBuf>,
}

impl RestoreRequest {
    /// Restores `source` under `target`: files only, nothing special allowed.
    pub fn new(source: RestoreSource, target: impl Into<PathBuf>) -> Self {
        RestoreRequest {
            source,
            target: target.into(),
            dry_run: false,
            database: None,
            options: ExtractOptions::default(),
            journal: None,
            undo_journal: None,
        }
    }
}

/// What a restore did (or, for a dry run, would do).
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The restored backup's metadata.
    pub metadata: Metadata,
    /// The target directory.
    pub target: PathBuf,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether the archive's manifest was present and verified.
    pub manifest_verified: bool,
    /// Files, directories, links and bytes restored.
    pub stats: ExtractStats,
    /// What was loaded into the database, when a loader was given.
    pub database: Option<LoadSummary>,
}

impl StoreBackups {
    async fn open_restore_source(
        &self,
        source: &RestoreSource,
        recorded: Option<&Metadata>,
    ) -> Result<Box<dyn Read + Send>> {
        match (source, recorded) {
            (RestoreSource::Id(id), Some(meta)) => self.archive_reader(id, meta).await,
            (RestoreSource::Id(id), None) => {
                let meta = self.metadata(id).await?;
                self.archive_reader(id, &meta).await
            }
            (RestoreSource::File(p), _) => ArchiveSource::File(p.clone()).open(),
        }
    }

    /// Restores without taking the lease. `verified`: this process has just
    /// verified the stored backup in full (a plan's check), so its bytes are
    /// not read an extra time before extracting (the digests are still
    /// checked at the end of the extraction pass).
    pub(crate) async fn restore_unlocked(
        &self,
        request: RestoreRequest,
        verified: bool,
        progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport> {
        let (subject, recorded) = match &request.source {
            RestoreSource::Id(id) => (id.to_string(), Some(self.metadata(id).await?)),
            RestoreSource::File(p) => (p.display().to_string(), None),
        };
        // Pass 1: verify before touching the target. A stored backup was
        // fully validated (layout, metadata, every root.tar path, manifest)
        // when it was created or uploaded, and its sidecar holds the digests
        // of those bytes: checking them needs no decompression. Anything
        // else (a local file, a sidecar without digests) is validated in full.
        if let Some(meta) = &recorded
            && meta.device_nodes > 0
            && !request.options.allow_devices
        {
            return Err(Error::unsafe_path(
                &subject,
                format!(
                    "the backup holds {} device nodes or FIFOs, which are not restored unless allowed (--allow-devices)",
                    meta.device_nodes
                ),
            ));
        }
        let vouched = recorded
            .as_ref()
            .filter(|m| !m.checksum.is_empty() && m.size > 0 && !request.dry_run);
        if !(verified && vouched.is_some()) {
            progress.phase("verifying", recorded.as_ref().map(|m| m.size));
        }
        let (summary, check) = match vouched {
            Some(_) if verified => (None, None),
            Some(meta) => {
                let reader = self
                    .open_restore_source(&request.source, Some(meta))
                    .await?;
                let prog = progress.clone();
                let digests = tokio::task::spawn_blocking(move || raw_digests(reader, prog))
                    .await
                    .map_err(|e| Error::task("the archive reader", e))?
                    .map_err(|e| Error::io("reading archive", &subject, e))?;
                check_digests(&subject, meta, &digests)?;
                (None, None)
            }
            None => {
                let reader = self
                    .open_restore_source(&request.source, recorded.as_ref())
                    .await?;
                let (summary, check) = scan(
                    reader,
                    subject.clone(),
                    RootCheck::new(request.options),
                    progress.clone(),
                )
                .await?;
                if let Some(meta) = &recorded {
                    check_digests(&subject, meta, &summary.digests)?;
                }
                (Some(summary), Some(check))
            }
        };
        let metadata = match recorded
            .clone()
            .or_else(|| summary.as_ref().map(|s| s.metadata.clone()))
        {
            Some(m) => m,
            None => return Err(Error::invalid(&subject, "no metadata was read")),
        };
        metadata.check_format(&subject)?;
        if summary.as_ref().is_some_and(|s| !s.has_root_tar) {
            return Err(missing_root(&subject));
        }
        if request.dry_run {
            progress.finish();
            let (summary, check) = summary
                .zip(check)
                .ok_or_else(|| Error::internal("a dry run without a full verification"))?;
            return Ok(RestoreReport {
                metadata,
                target: request.target,
                dry_run: true,
                manifest_verified: summary.manifest_verified,
                stats: check.stats,
                database: None,
            });
        }
        // An interrupted restore is taken back before this one starts.
        let interrupted = match &request.undo_journal {
            // Journal paths are absolute: they belong to a restore at `/`.
            Some(path) if path.exists() && !at_root(&request.target) => {
                progress.warn(&format!(
                    "journal {} of an interrupted restore is left alone: it applies to restores at /",
                    path.display()
                ));
                None
            }
            Some(path) if path.exists() => {
                let journal = RestoreJournal::load(path)?;
                let undone = journal.undo()?;
                progress.warn(&format!(
                    "took back the interrupted restore: removed {} paths it had added, put back {} it had replaced (journal {})",
                    undone.removed,
                    undone.restored,
                    path.display()
                ));
                Some(journal)
            }
            _ => None,
        };
        // Pass 2: load the database (as its files stream past) and extract.
        let total = check
            .as_ref()
            .map(|c| c.stats.bytes)
            .or(metadata.file_bytes);
        progress.phase("restoring", total);
        let mut extractor =
            Extractor::new(&request.target, progress.clone())?.with_options(request.options);
        if let Some(journal) = &request.journal {
            extractor = extractor.with_journal(journal.clone());
        }
        let (forwarder, loader) = match &request.database {
            Some(db) => {
                let (forwarder, source) = dump_channel();
                let db = db.clone();
                (
                    Some(forwarder),
                    Some(tokio::spawn(async move { db.load(source).await })),
                )
            }
            None => (None, None),
        };
        let visitor = RestoreVisitor {
            extractor,
            dump: forwarder,
        };
        let reader = self
            .open_restore_source(&request.source, recorded.as_ref())
            .await?;
        let scanned = scan(reader, subject.clone(), visitor, Arc::new(NoProgress)).await;
        let (again, visitor) = match scanned {
            Ok((again, mut visitor)) => {
                visitor.dump = None; // end of the dump for the loader
                (again, visitor)
            }
            Err(e) => {
                if let Some(loader) = loader {
                    let _ = loader.await;
                }
                return Err(e);
            }
        };
        let database = match loader {
            Some(task) => Some(task.await.map_err(|e| Error::task("the database loader", e))??),
            None => None,
        };
        if !again.has_root_tar {
            return Err(missing_root(&subject));
        }
        let expected = summary.as_ref().map(|s| &s.digests);
        if let Some(expected) = expected
            && again.digests != *expected
        {
            return Err(Error::ChecksumMismatch {
                subject,
                what: "SHA-1",
                expected: expected.sha1_base64.clone(),
                actual: again.digests.sha1_base64,
            });
        }
        if summary.is_none() {
            check_digests(&subject, &metadata, &again.digests)?;
        }
        // This restore stands: the interrupted one's journal is done with.
        if let Some(Err(e)) = interrupted.as_ref().map(RestoreJournal::settle) {
            progress.warn(&e.to_string());
        }
        progress.finish();
        Ok(RestoreReport {
            metadata,
            target: request.target,
            dry_run: false,
            manifest_verified: again.manifest_verified,
            stats: visitor.extractor.stats,
            database,
        })
    }
}

/// The digests of an archive's bytes, without decompressing them.
fn raw_digests(
    mut reader: Box<dyn Read + Send>,
    progress: Arc<dyn Progress>,
) -> std::io::Result<Digests> {
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
}

fn missing_root(subject: &str) -> Error {
    Error::invalid(
        subject,
        "missing entry juju-backup/root.tar: the archive holds no files to restore",
    )
}

/// Pass 2 of a restore: files to the extractor, dump files to the loader.
struct RestoreVisitor {
    extractor: Extractor,
    dump: Option<DumpForwarder>,
}

impl RootVisitor for RestoreVisitor {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        self.extractor.visit(root)
    }

    fn visit_dump(&mut self, path: &str, size: u64, body: &mut dyn Read) -> Result<()> {
        match &self.dump {
            Some(forwarder) => forwarder.forward(path, size, body),
            None => Ok(()),
        }
    }
}

/// Whether `target` is the filesystem root.
fn at_root(target: &std::path::Path) -> bool {
    std::fs::canonicalize(target).is_ok_and(|p| p == std::path::Path::new("/"))
}
