//! Restore: verify the archive before touching anything, then load the
//! database and extract the files in one pass.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::archive::reader::{ArchiveSummary, RootVisitor};
use crate::catalog::StoreBackups;
use crate::database::{DumpForwarder, LoadSummary, drop_added_namespaces, dump_channel};
use crate::digest::{Digests, Hasher};
use crate::error::{Error, Result};
use crate::extract::{Extractor, RootCheck};
use crate::id::BackupId;
use crate::journal::RestoreJournal;
use crate::metadata::Metadata;
use crate::progress::{NoProgress, Progress};
use crate::request::{RestoreReport, RestoreRequest, RestoreSource};
use crate::rewrite::RewriteCounts;

use super::{Sealed, open_source, scan, scan_hashed};

/// What this process has already verified of the archive a restore reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verified {
    /// Nothing: the restore verifies before it changes anything.
    Nothing,
    /// Every entry and the digests, just now (a plan's check).
    InFull,
}

/// Restores without taking the lease (the caller holds it, or this is a
/// dry run). With [`Verified::InFull`] the stored backup's bytes are not
/// read an extra time before extracting (the digests are still checked at
/// the end of the extraction pass).
pub(crate) async fn restore(
    backups: &StoreBackups,
    request: RestoreRequest,
    verified: Verified,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    check_target(&request.target)?;
    let (subject, recorded, sealed) = open_source(
        backups,
        &request.source,
        &request.identities,
        request.require_encryption,
    )
    .await?;
    refuse_devices(&request, &subject, recorded.as_ref())?;
    let vouched = recorded
        .as_ref()
        .filter(|m| !m.checksum.is_empty() && m.size > 0 && !request.dry_run);
    let in_full = verified == Verified::InFull;
    if !(in_full && vouched.is_some()) {
        progress.phase("verifying", recorded.as_ref().map(|m| m.stored_size()));
    }
    let (summary, check) = verify_pass(
        backups,
        &request,
        vouched,
        in_full,
        (&subject, recorded.as_ref(), &sealed),
        progress.clone(),
    )
    .await?;
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
    // A plan ran the database's preflight in its own check.
    if let (Some(db), Verified::Nothing) = (&request.database, verified) {
        for w in db.preflight(&metadata).await? {
            progress.warn(&w);
        }
    }
    if request.dry_run {
        progress.finish();
        return dry_run_report(request, metadata, summary, check);
    }
    // An interrupted restore is taken back before this one starts.
    let interrupted = take_back_interrupted(&request, progress.as_ref()).await?;
    // Pass 2: load the database (as its files stream past) and extract.
    let total = check
        .as_ref()
        .map(|c| c.stats.bytes)
        .or(metadata.file_bytes);
    progress.phase("restoring", total);
    // Checked against the sidecar only (no pass-1 digests to match):
    // SHA-256 alone tells the bytes did not change since pass 1.
    let hasher = if summary.is_none() && !metadata.sha256.is_empty() {
        Hasher::sha256_only()
    } else {
        Hasher::default()
    };
    let (again, visitor, database) = extract_pass(
        backups,
        &request,
        recorded.as_ref(),
        (sealed, &subject),
        hasher,
        progress.clone(),
    )
    .await?;
    check_second_read(&subject, &metadata, summary.as_ref(), &again)?;
    if visitor.collections > 0 && database.is_none() {
        progress.warn(&format!(
            "the backup holds a database dump ({} collections) that was not loaded: only its files were restored (give a MongoDB URI to load it)",
            visitor.collections
        ));
    }
    // This restore stands: the interrupted one's journal is done with.
    if let Some(Err(e)) = interrupted.as_ref().map(RestoreJournal::settle) {
        progress.warn(&e.to_string());
    }
    progress.finish();
    Ok(extracted_report(
        request, metadata, &again, visitor, database,
    ))
}

/// A stored backup whose sidecar counts device nodes or FIFOs is refused
/// at once unless they are allowed.
fn refuse_devices(
    request: &RestoreRequest,
    subject: &str,
    recorded: Option<&Metadata>,
) -> Result<()> {
    match recorded {
        Some(meta) if meta.device_nodes > 0 && !request.options.allow_devices => {
            Err(Error::unsafe_path(
                subject,
                format!(
                    "the backup holds {} device nodes or FIFOs, which are not restored unless allowed (--allow-devices)",
                    meta.device_nodes
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// What a restore did.
fn extracted_report(
    request: RestoreRequest,
    metadata: Metadata,
    again: &ArchiveSummary,
    visitor: RestoreVisitor,
    database: Option<LoadSummary>,
) -> RestoreReport {
    let rewrites = RewriteCounts {
        files: visitor.extractor.rewritten,
        collections: database
            .as_ref()
            .map(|db| db.rewrites.clone())
            .unwrap_or_default(),
    };
    RestoreReport {
        metadata,
        target: request.target,
        dry_run: false,
        manifest_verified: again.manifest_verified,
        stats: visitor.extractor.stats,
        database,
        dump_collections: visitor.collections,
        existing: Vec::new(),
        dump_files: Vec::new(),
        rewrites,
        safety_backup: None,
    }
}

/// A dry run's report: what the full verification found.
fn dry_run_report(
    request: RestoreRequest,
    metadata: Metadata,
    summary: Option<ArchiveSummary>,
    check: Option<RootCheck>,
) -> Result<RestoreReport> {
    let (summary, mut check) = summary
        .zip(check)
        .ok_or_else(|| Error::internal("a dry run without a full verification"))?;
    if request.database.is_none() {
        check.rewritten.collections.clear(); // nothing would be loaded
    }
    Ok(RestoreReport {
        metadata,
        target: request.target,
        dry_run: true,
        manifest_verified: summary.manifest_verified,
        stats: check.stats,
        database: None,
        dump_collections: check.dump_collections,
        existing: check.existing,
        dump_files: check.dump_files,
        rewrites: check.rewritten,
        safety_backup: None,
    })
}

/// The extraction's read of the archive against pass 1's digests, else
/// against the sidecar's.
fn check_second_read(
    subject: &str,
    metadata: &Metadata,
    first: Option<&ArchiveSummary>,
    again: &ArchiveSummary,
) -> Result<()> {
    if !again.has_root_tar {
        return Err(missing_root(subject));
    }
    match first {
        Some(first) if again.digests != first.digests => Err(Error::ChecksumMismatch {
            subject: subject.to_string(),
            what: "SHA-1",
            expected: first.digests.sha1_base64.clone(),
            actual: again.digests.sha1_base64.clone(),
        }),
        Some(_) => Ok(()),
        None => metadata.check_digests(subject, &again.digests),
    }
}

/// Pass 2: the files to the extractor (through the journal and the
/// rewrites) and the dump to the loader, on one read of the archive; what
/// the read found, the extractor's counts and what was loaded.
async fn extract_pass(
    backups: &StoreBackups,
    request: &RestoreRequest,
    recorded: Option<&Metadata>,
    (sealed, subject): (Sealed, &str),
    hasher: Hasher,
    progress: Arc<dyn Progress>,
) -> Result<(ArchiveSummary, RestoreVisitor, Option<LoadSummary>)> {
    let mut extractor =
        Extractor::new(&request.target, progress.clone())?.with_options(request.options);
    if let Some(journal) = &request.journal {
        extractor = extractor.with_journal(journal.clone());
    }
    if let Some(rewrites) = &request.rewrites {
        extractor = extractor.with_rewrites(rewrites.clone());
    }
    // Opened first: a loader spawned before a failure here would go on
    // writing while the caller rolls back.
    let reader = backups
        .open_restore_source(&request.source, recorded)
        .await?;
    let (forwarder, loader) = match &request.database {
        Some(db) => {
            let (forwarder, source) = dump_channel(request.rewrites.clone());
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
        collections: 0,
    };
    let scanned = scan_hashed(
        reader,
        sealed,
        subject.to_string(),
        visitor,
        Arc::new(NoProgress),
        hasher,
    )
    .await;
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
        Some(task) => Some(
            task.await
                .map_err(|e| Error::task("the database loader", e))??,
        ),
        None => None,
    };
    Ok((again, visitor, database))
}

/// The interrupted restore whose journal [`RestoreRequest::undo_journal`]
/// names, taken back (its loader's writes still running at the server
/// waited for first); its journal, to settle once this restore stands.
async fn take_back_interrupted(
    request: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<Option<RestoreJournal>> {
    Ok(match &request.undo_journal {
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
            let before = journal.namespaces_before();
            // The killed restore's writes may still be running at the
            // server: none may land after what it did is undone.
            if let (Some(db), Some(name)) = (&request.database, journal.database_client_name()) {
                for w in db.quiesce(&name).await? {
                    progress.warn(&w);
                }
            }
            let undone = journal.undo()?;
            if let (Some(db), Some(before)) = (&request.database, &before) {
                drop_added_namespaces(db.as_ref(), before).await?;
            }
            progress.warn(&format!(
                "took back the interrupted restore: removed {} paths it had added, put back {} it had replaced (journal {})",
                undone.removed,
                undone.restored,
                path.display()
            ));
            Some(journal)
        }
        _ => None,
    })
}

/// Pass 1: nothing to read when the sidecar vouches for the archive
/// (`vouched`) and it was verified in full just now (`in_full`); the stored
/// bytes against the sidecar when it vouches for them; else every entry
/// read and checked (a dry run also notes what it would replace under the
/// target).
async fn verify_pass(
    backups: &StoreBackups,
    request: &RestoreRequest,
    vouched: Option<&Metadata>,
    in_full: bool,
    (subject, recorded, sealed): (&str, Option<&Metadata>, &Sealed),
    progress: Arc<dyn Progress>,
) -> Result<(Option<ArchiveSummary>, Option<RootCheck>)> {
    Ok(match vouched {
        Some(_) if in_full => (None, None),
        Some(meta) => {
            let RestoreSource::Id(id) = &request.source else {
                return Err(Error::internal("a recorded backup restored from a file"));
            };
            check_stored(backups, id, meta, progress.clone()).await?;
            (None, None)
        }
        None => {
            let reader = backups
                .open_restore_source(&request.source, recorded)
                .await?;
            // A dry run counts the replacements the rewrite rules would make.
            let rewrites = request.rewrites.clone().filter(|_| request.dry_run);
            let mut checker = RootCheck::new(request.options).with_rewrites(rewrites);
            if request.dry_run {
                // What the restore would replace (nothing exists under a
                // target that does not exist yet).
                if let Ok(target) = std::fs::canonicalize(&request.target) {
                    checker = checker.with_target(target);
                }
            }
            let scanned = scan(
                reader,
                sealed.clone(),
                subject.to_string(),
                checker,
                progress.clone(),
            )
            .await;
            let (summary, check) = match (scanned, &request.source, recorded) {
                (Ok(scanned), _, _) => scanned,
                // A stored backup that cannot be read (a flipped byte breaks
                // decryption or inflation first): the sidecar's digests say
                // whether the stored bytes changed, the clearer error.
                (Err(e), RestoreSource::Id(id), Some(meta)) if meta.size > 0 => {
                    check_stored(backups, id, meta, Arc::new(NoProgress)).await?;
                    return Err(e);
                }
                (Err(e), _, _) => return Err(e),
            };
            if let Some(meta) = recorded {
                meta.check_digests(subject, &summary.digests)?;
            }
            (Some(summary), Some(check))
        }
    })
}

/// Checks a stored backup's bytes against its sidecar's size and digests,
/// without decompressing (or decrypting) them.
pub(crate) async fn check_stored(
    backups: &StoreBackups,
    id: &BackupId,
    meta: &Metadata,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    let reader = backups.archive_reader(id, meta).await?;
    // SHA-256 alone where it is recorded (an encrypted object's record is
    // its size and SHA-256).
    let hasher = meta.stored_hasher();
    let subject = id.to_string();
    let digests = tokio::task::spawn_blocking(move || raw_digests(reader, hasher, progress))
        .await
        .map_err(|e| Error::task("the archive reader", e))?
        .map_err(|e| Error::io("reading archive", &subject, e))?;
    meta.check_stored_digests(&subject, &digests)
}

/// The digests of an archive's bytes, without decompressing them.
fn raw_digests(
    mut reader: Box<dyn Read + Send>,
    mut hasher: Hasher,
    progress: Arc<dyn Progress>,
) -> std::io::Result<Digests> {
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

/// A target that exists must be a directory (one that does not is made).
fn check_target(target: &std::path::Path) -> Result<()> {
    match std::fs::metadata(target) {
        Ok(m) if !m.is_dir() => Err(Error::io(
            "restoring into",
            target,
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "the target is a file, not a directory: give a directory as --target (a missing one is created)",
            ),
        )),
        _ => Ok(()),
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
    /// Collection files of the dump seen (loaded only with a loader).
    collections: u64,
}

impl RootVisitor for RestoreVisitor {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        self.extractor.visit(root)
    }

    fn visit_dump(&mut self, path: &str, size: u64, body: &mut dyn Read) -> Result<()> {
        if crate::extract::is_collection_file(path) {
            self.collections += 1;
        }
        match &self.dump {
            Some(forwarder) => forwarder.forward(path, size, body),
            None => Ok(()),
        }
    }
}

/// Whether `target` is the filesystem root.
fn at_root(target: &Path) -> bool {
    std::fs::canonicalize(target).is_ok_and(|p| p == Path::new("/"))
}
