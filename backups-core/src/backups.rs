//! The `Backups` contract and its implementation over a [`Storage`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use time::OffsetDateTime;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::BackupId;
use crate::archive::ArchiveCompression;
use crate::archive::reader::{ArchiveSummary, RootVisitor, read_archive};
use crate::archive::root_tar::{RootTar, root_tar_size};
use crate::archive::writer::ArchiveWriter;
use crate::database::{
    DatabaseDumper, DatabaseLoader, DumpForwarder, DumpMessage, DumpSink, DumpSummary, LoadSummary,
    dump_channel,
};
use crate::digest::{Digests, Hasher, HashingWriter};
use crate::error::{Error, Result};
use crate::extract::{ExtractStats, Extractor, RootCheck, sanitize_entry_path};
use crate::files::FileSet;
use crate::metadata::{CHECKSUM_FORMAT, FORMAT_VERSION, MAX_METADATA_BYTES, Metadata};
use crate::progress::{NoProgress, Progress};
use crate::storage::Storage;
use crate::upload::{UploadOptions, object_reader, object_stream, upload_with};

/// The archive bytes of a backup, as they come from the store.
pub type ArchiveStream = BoxStream<'static, Result<Bytes>>;

/// Who and what a backup belongs to; recorded in its metadata.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// Model UUID: the second half of the backup id.
    pub model_uuid: String,
    /// Controller UUID.
    pub controller_uuid: String,
    /// Machine id.
    pub machine: String,
    /// Host name.
    pub hostname: String,
    /// Controller software version.
    pub version: String,
    /// OS series or base.
    pub series: String,
    /// Number of HA controller nodes.
    pub ha_nodes: u64,
    /// Controller machine id.
    pub controller_machine_id: String,
    /// Controller machine instance id.
    pub controller_machine_instance_id: String,
}

/// What to put in a new backup.
pub struct CreateRequest {
    /// Files and directories to include in `root.tar`.
    pub files: FileSet,
    /// The database to dump into `dump/`, if any.
    pub database: Option<Arc<dyn DatabaseDumper>>,
    /// Operator notes.
    pub notes: String,
    /// Labels (`manual`, `scheduled`, `pre-restore`...).
    pub labels: Vec<String>,
    /// Identity recorded in the metadata.
    pub identity: Identity,
    /// How the archive is compressed (gzip level 6 on every core by default).
    pub compression: ArchiveCompression,
}

/// An existing archive to add to the store; read twice (validate, then upload).
#[derive(Debug, Clone)]
pub enum ArchiveSource {
    /// A local `.tar.gz` file.
    File(PathBuf),
    /// Archive bytes in memory.
    Bytes(Bytes),
}

impl ArchiveSource {
    fn open(&self) -> Result<Box<dyn Read + Send>> {
        match self {
            ArchiveSource::File(p) => Ok(Box::new(
                File::open(p).map_err(|e| Error::io("opening", p, e))?,
            )),
            ArchiveSource::Bytes(b) => Ok(Box::new(std::io::Cursor::new(b.clone()))),
        }
    }

    fn subject(&self) -> String {
        match self {
            ArchiveSource::File(p) => p.display().to_string(),
            ArchiveSource::Bytes(_) => "(archive in memory)".to_string(),
        }
    }
}

/// The result of [`Backups::add`].
#[derive(Debug, Clone)]
pub struct AddOutcome {
    /// The stored backup's metadata.
    pub metadata: Metadata,
    /// True when the same bytes were already stored (nothing was written).
    pub already_present: bool,
}

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

/// The backup operations, independent of where backups are stored.
#[async_trait]
pub trait Backups: Send + Sync {
    /// Makes a new backup and commits it; returns its metadata.
    async fn create(&self, request: CreateRequest, progress: Arc<dyn Progress>)
    -> Result<Metadata>;
    /// Validates an existing archive and stores it under the id derived from
    /// its metadata. The same bytes twice is a no-op; other bytes under an
    /// existing id is [`Error::AlreadyExists`].
    async fn add(&self, source: ArchiveSource, progress: Arc<dyn Progress>) -> Result<AddOutcome>;
    /// The metadata of one backup.
    async fn metadata(&self, id: &BackupId) -> Result<Metadata>;
    /// The metadata and archive bytes of one backup.
    async fn get(&self, id: &BackupId) -> Result<(Metadata, ArchiveStream)>;
    /// All committed backups, newest first.
    async fn list(&self) -> Result<Vec<Metadata>>;
    /// Deletes a backup (sidecar first, then archive).
    async fn remove(&self, id: &BackupId) -> Result<()>;
    /// Verifies an archive, then restores its files into the target.
    async fn restore(
        &self,
        request: RestoreRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport>;

    /// Writes a backup's archive to `dest` through a temp file in the same
    /// directory, renamed into place only once size and checksum match.
    async fn download(
        &self,
        id: &BackupId,
        dest: &Path,
        progress: Arc<dyn Progress>,
    ) -> Result<Metadata> {
        let (meta, stream) = self.get(id).await?;
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".backups-download-")
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating temp file in", dir, e))?;
        let (file, tmp_path) = tmp.into_parts();
        let mut out = tokio::fs::File::from_std(file);
        copy_verified(&meta, stream, &mut out, dest, progress).await?;
        out.sync_all()
            .await
            .map_err(|e| Error::io("syncing", dest, e))?;
        tmp_path
            .persist(dest)
            .map_err(|e| Error::io("renaming into", dest, e.error))?;
        Ok(meta)
    }

    /// Streams a backup's archive into `out`, checking size and checksum at
    /// the end (the bytes are already written when a mismatch is found).
    async fn download_to(
        &self,
        id: &BackupId,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        progress: Arc<dyn Progress>,
    ) -> Result<Metadata> {
        let (meta, stream) = self.get(id).await?;
        copy_verified(&meta, stream, out, Path::new("-"), progress).await?;
        out.flush()
            .await
            .map_err(|e| Error::io("writing", "-", e))?;
        Ok(meta)
    }
}

async fn copy_verified(
    meta: &Metadata,
    mut stream: ArchiveStream,
    out: &mut (dyn AsyncWrite + Unpin + Send),
    dest: &Path,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    progress.phase("downloading", Some(meta.size));
    let mut hasher = Hasher::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::io("writing", dest, e))?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let id = meta
        .id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    check_digests(&id, meta, &hasher.finish())
}

/// Compares digests with what the metadata recorded (v2 may record none).
fn check_digests(subject: &str, meta: &Metadata, got: &Digests) -> Result<()> {
    let size = (meta.size != 0).then(|| (meta.size.to_string(), got.size.to_string()));
    let checks = [
        ("size", size),
        (
            "SHA-1",
            Some((meta.checksum.clone(), got.sha1_base64.clone())),
        ),
        (
            "SHA-256",
            Some((meta.sha256.clone(), got.sha256_hex.clone())),
        ),
    ];
    for (what, pair) in checks {
        if let Some((expected, actual)) = pair
            && !expected.is_empty()
            && expected != actual
        {
            return Err(Error::ChecksumMismatch {
                subject: subject.to_string(),
                what,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

/// Sidecars fetched at once by `list`.
const LIST_CONCURRENCY: usize = 32;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// [`Backups`] over any object store.
#[derive(Debug, Clone)]
pub struct StoreBackups {
    storage: Storage,
    upload: UploadOptions,
    cancel: CancellationToken,
    holder: String,
}

impl StoreBackups {
    /// Backups kept in `storage`.
    pub fn new(storage: Storage) -> Self {
        StoreBackups {
            storage,
            upload: UploadOptions::default(),
            cancel: CancellationToken::new(),
            holder: format!("process {}", std::process::id()),
        }
    }

    /// Names this process in the store's lease (e.g. `host-1 pid 4242`).
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// The name this process uses in the store's lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Cancels uploads when `token` is cancelled: the multipart upload in
    /// flight is aborted and the operation fails with [`Error::Cancelled`],
    /// committing nothing.
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Overrides multipart part size and concurrency.
    pub fn with_upload_options(mut self, upload: UploadOptions) -> Self {
        self.upload = upload;
        self
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.storage.object_store().clone()
    }

    /// The committed metadata of `id`, or `None` when there is no sidecar.
    async fn sidecar(&self, id: &BackupId) -> Result<Option<Metadata>> {
        let key = self.storage.sidecar_key(id);
        let result = match self.store().get(&key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::storage(&key, e)),
        };
        if result.meta.size > MAX_METADATA_BYTES {
            return Err(Error::invalid(key.to_string(), "sidecar is too large"));
        }
        let bytes = result.bytes().await.map_err(|e| Error::storage(&key, e))?;
        Metadata::from_json(&bytes, key.as_ref()).map(Some)
    }

    /// Writes the sidecar: the commit point. Create-only where the store
    /// supports it; then the sidecar is read back, because some stores
    /// (Garage) silently overwrite: whoever's archive the sidecar names has
    /// won, and a loser deletes its own archive. Either way the sidecar
    /// always names an intact archive.
    async fn commit(&self, meta: &Metadata, archive: &ObjectPath) -> Result<Commit> {
        let id = meta
            .id
            .as_ref()
            .ok_or_else(|| Error::invalid("sidecar", "metadata without an id"))?;
        let key = self.storage.sidecar_key(id);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store()
            .put_opts(&key, PutPayload::from(meta.to_json()), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => {
                let _ = self.store().delete(archive).await;
                return Err(Error::storage(&key, e));
            }
        }
        let current = match self.sidecar(id).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.store().delete(archive).await;
                return Err(e);
            }
        };
        match current {
            Some(c) if c.archive == meta.archive && c.checksum == meta.checksum => {
                Ok(Commit::Written)
            }
            other => {
                let _ = self.store().delete(archive).await;
                match other {
                    Some(c) if c.checksum == meta.checksum => Ok(Commit::SameContent(Box::new(c))),
                    Some(c) => Err(Error::AlreadyExists {
                        id: id.clone(),
                        existing: c.checksum,
                        new: meta.checksum.clone(),
                    }),
                    None => Err(Error::Cancelled(format!(
                        "backup {id} was removed while it was being committed"
                    ))),
                }
            }
        }
    }

    /// Picks the id for a backup starting now, waiting for the next second
    /// if a backup with this second's id already exists.
    async fn fresh_id(&self, model_uuid: &str) -> Result<(OffsetDateTime, BackupId)> {
        for _ in 0..3 {
            let started = now();
            let id = BackupId::new(started, model_uuid)?;
            if self.sidecar(&id).await?.is_none() {
                return Ok((started, id));
            }
            let wait = 1_000_000_000 - started.nanosecond() as u64;
            tokio::time::sleep(std::time::Duration::from_nanos(wait)).await;
        }
        Err(Error::Cancelled(format!(
            "could not find a free backup id for model {model_uuid}"
        )))
    }

    /// Opens a committed backup's archive object.
    async fn get_archive(&self, id: &BackupId, meta: &Metadata) -> Result<(ObjectPath, GetResult)> {
        let key = self.storage.archive_key(id, meta);
        let result = self.store().get(&key).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::invalid(
                id.to_string(),
                format!("archive {key} is missing although its sidecar exists"),
            ),
            e => Error::storage(&key, e),
        })?;
        Ok((key, result))
    }

    async fn archive_reader(&self, id: &BackupId, meta: &Metadata) -> Result<Box<dyn Read + Send>> {
        let (_, result) = self.get_archive(id, meta).await?;
        Ok(object_reader(result))
    }

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
}

impl StoreBackups {
    async fn remove_unlocked(&self, id: &BackupId) -> Result<()> {
        let meta = self.metadata(id).await?;
        let sidecar = self.storage.sidecar_key(id);
        self.store()
            .delete(&sidecar)
            .await
            .map_err(|e| Error::storage(&sidecar, e))?;
        let archive = self.storage.archive_key(id, &meta);
        match self.store().delete(&archive).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(&archive, e)),
        }
    }

    pub(crate) async fn restore_unlocked(
        &self,
        request: RestoreRequest,
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
        progress.phase("verifying", recorded.as_ref().map(|m| m.size));
        let reader = self
            .open_restore_source(&request.source, recorded.as_ref())
            .await?;
        let vouched = recorded
            .as_ref()
            .filter(|m| !m.checksum.is_empty() && m.size > 0 && !request.dry_run);
        let (summary, check) = match vouched {
            Some(meta) => {
                let prog = progress.clone();
                let digests = tokio::task::spawn_blocking(move || raw_digests(reader, prog))
                    .await
                    .map_err(|e| Error::Cancelled(format!("archive reader failed: {e}")))?
                    .map_err(|e| Error::io("reading archive", &subject, e))?;
                check_digests(&subject, meta, &digests)?;
                (None, None)
            }
            None => {
                let (summary, check) = scan(
                    reader,
                    subject.clone(),
                    RootCheck::default(),
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
                .ok_or_else(|| Error::Cancelled("dry run without a full verification".into()))?;
            return Ok(RestoreReport {
                metadata,
                target: request.target,
                dry_run: true,
                manifest_verified: summary.manifest_verified,
                stats: check.stats,
                database: None,
            });
        }
        // Pass 2: load the database (as its files stream past) and extract.
        progress.phase("restoring", check.as_ref().map(|c| c.stats.bytes));
        let extractor = Extractor::new(&request.target, progress.clone())?;
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
            Some(task) => Some(task.await.map_err(|e| Error::Database {
                message: format!("database loader stopped: {e}"),
                source: None,
            })??),
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

/// Runs one pass over an archive on a blocking thread.
async fn scan<V>(
    reader: Box<dyn Read + Send>,
    subject: String,
    mut visitor: V,
    progress: Arc<dyn Progress>,
) -> Result<(ArchiveSummary, V)>
where
    V: RootVisitor + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let summary = read_archive(reader, &subject, Some(&mut visitor), progress)?;
        Ok((summary, visitor))
    })
    .await
    .map_err(|e| Error::Cancelled(format!("archive reader failed: {e}")))?
}

/// How a commit ended.
enum Commit {
    /// Our sidecar is the committed one.
    Written,
    /// Another writer committed the same bytes first; ours was discarded.
    SameContent(Box<Metadata>),
}

struct Produced {
    digests: Digests,
    dump: Option<DumpSummary>,
}

#[async_trait]
impl Backups for StoreBackups {
    async fn create(
        &self,
        request: CreateRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<Metadata> {
        let (started, id) = self.fresh_id(&request.identity.model_uuid).await?;
        progress.phase("scanning", None);
        let files = request.files.clone();
        let scanned = tokio::task::spawn_blocking(move || files.scan())
            .await
            .map_err(|e| Error::Cancelled(format!("scan failed: {e}")))??;
        for w in &scanned.warnings {
            progress.warn(w);
        }
        let root_size =
            root_tar_size(&scanned.entries).map_err(|e| Error::io("sizing", "root.tar", e))?;
        let ident = &request.identity;
        let mut meta = Metadata {
            format_version: FORMAT_VERSION,
            started: Some(started),
            notes: request.notes.clone(),
            model_uuid: ident.model_uuid.clone(),
            machine: ident.machine.clone(),
            hostname: ident.hostname.clone(),
            version: ident.version.clone(),
            series: ident.series.clone(),
            controller_uuid: ident.controller_uuid.clone(),
            ha_nodes: ident.ha_nodes,
            controller_machine_id: ident.controller_machine_id.clone(),
            controller_machine_instance_id: ident.controller_machine_instance_id.clone(),
            labels: request.labels.clone(),
            file_count: Some(scanned.entries.len() as u64),
            tool_version: format!("backups {}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let in_archive = meta.to_json();
        let warnings: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(scanned.warnings.clone()));

        // The database dumper runs on the runtime and hands files to the
        // archive thread; its final result travels on the same channel.
        let dump_rx = request.database.clone().map(|db| {
            let (tx, rx) = mpsc::channel::<DumpMessage>(2);
            tokio::spawn(async move {
                let result = db.dump(DumpSink::new(tx.clone())).await;
                let _ = tx.send(DumpMessage::Done(result)).await;
            });
            rx
        });

        let compression = request.compression;
        let mtime = started.unix_timestamp().max(0) as u64;
        let entries = scanned.entries;
        let (warn_sink, prog) = (warnings.clone(), progress.clone());
        progress.phase("archiving", Some(root_size));
        meta.archive = Storage::new_archive_name(&id);
        let key = self.storage.key(&meta.archive);
        let produced = upload_with(self.store(), &key, self.upload, &self.cancel, move |out| {
            let mut archive = ArchiveWriter::with_compression(out, compression, mtime)?;
            archive.add_file(
                "metadata.json",
                in_archive.len() as u64,
                0o600,
                &in_archive[..],
            )?;
            archive.add_file(
                "root.tar",
                root_size,
                0o600,
                RootTar::new(entries, warn_sink, prog),
            )?;
            archive.add_dir("dump/")?;
            let dump = match dump_rx {
                None => None,
                Some(mut rx) => Some(write_dump(&mut archive, &mut rx)?),
            };
            let (_, digests) = archive.finish()?;
            Ok(Produced { digests, dump })
        })
        .await;
        let produced = match produced {
            Ok(p) => p,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        // The object must be exactly what we hashed before it is committed.
        let stored = self
            .store()
            .head(&key)
            .await
            .map_err(|e| Error::storage(&key, e))?;
        if stored.size != produced.digests.size {
            let _ = self.store().delete(&key).await;
            return Err(Error::ChecksumMismatch {
                subject: key.to_string(),
                what: "size",
                expected: produced.digests.size.to_string(),
                actual: stored.size.to_string(),
            });
        }
        let finished = now();
        meta.id = Some(id);
        meta.checksum = produced.digests.sha1_base64;
        meta.checksum_format = CHECKSUM_FORMAT.to_string();
        meta.sha256 = produced.digests.sha256_hex;
        meta.size = produced.digests.size;
        meta.finished = Some(finished);
        meta.stored = Some(finished);
        meta.warnings = warnings.lock().map(|w| w.clone()).unwrap_or_default();
        if let Some(dump) = produced.dump {
            for w in &dump.warnings {
                progress.warn(w);
            }
            meta.databases = dump.collections;
            meta.warnings.extend(dump.warnings);
        }
        self.commit(&meta, &key).await?;
        progress.finish();
        Ok(meta)
    }

    async fn add(&self, source: ArchiveSource, progress: Arc<dyn Progress>) -> Result<AddOutcome> {
        let subject = source.subject();
        progress.phase("validating", None);
        let (summary, check) = scan(
            source.open()?,
            subject.clone(),
            RootCheck::default(),
            progress.clone(),
        )
        .await?;
        let mut meta = summary.metadata;
        meta.check_format(&subject)?;
        let id = meta.derive_id(&subject)?;
        let digests = summary.digests;
        if let Some(existing) = self.sidecar(&id).await? {
            if existing.checksum == digests.sha1_base64 {
                progress.finish();
                return Ok(AddOutcome {
                    metadata: existing,
                    already_present: true,
                });
            }
            return Err(Error::AlreadyExists {
                id,
                existing: existing.checksum,
                new: digests.sha1_base64,
            });
        }
        progress.phase("uploading", Some(digests.size));
        meta.archive = Storage::new_archive_name(&id);
        let key = self.storage.key(&meta.archive);
        let expected = digests.clone();
        let reader = source.open()?;
        let prog = progress.clone();
        let subject2 = subject.clone();
        upload_with(self.store(), &key, self.upload, &self.cancel, move |out| {
            let mut hashing = HashingWriter::new(out);
            let mut reader = reader;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| Error::io("reading", &subject2, e))?;
                if n == 0 {
                    break;
                }
                std::io::Write::write_all(&mut hashing, &buf[..n])
                    .map_err(|e| Error::io("uploading", &subject2, e))?;
                prog.advance(n as u64);
            }
            let (_, got) = hashing.finish();
            if got != expected {
                return Err(Error::ChecksumMismatch {
                    subject: subject2,
                    what: "SHA-1",
                    expected: expected.sha1_base64,
                    actual: got.sha1_base64,
                });
            }
            Ok(())
        })
        .await?;
        let stored = now();
        meta.id = Some(id);
        meta.checksum = digests.sha1_base64;
        meta.checksum_format = CHECKSUM_FORMAT.to_string();
        meta.size = digests.size;
        meta.sha256 = digests.sha256_hex;
        meta.stored = Some(stored);
        if meta.file_count.is_none() && summary.has_root_tar {
            let s = &check.stats;
            meta.file_count = Some(s.files + s.directories + s.symlinks + s.hard_links);
        }
        let outcome = match self.commit(&meta, &key).await? {
            Commit::Written => AddOutcome {
                metadata: meta,
                already_present: false,
            },
            Commit::SameContent(existing) => AddOutcome {
                metadata: *existing,
                already_present: true,
            },
        };
        progress.finish();
        Ok(outcome)
    }

    async fn metadata(&self, id: &BackupId) -> Result<Metadata> {
        let mut meta = self
            .sidecar(id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        meta.id.get_or_insert_with(|| id.clone());
        Ok(meta)
    }

    async fn get(&self, id: &BackupId) -> Result<(Metadata, ArchiveStream)> {
        let meta = self.metadata(id).await?;
        let (key, result) = self.get_archive(id, &meta).await?;
        let stream = object_stream(result)
            .map_err(move |e| Error::storage(&key, e))
            .boxed();
        Ok((meta, stream))
    }

    async fn list(&self) -> Result<Vec<Metadata>> {
        let prefix = self.storage.prefix().clone();
        let listing: Vec<_> = self
            .store()
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::storage(format!("{} (listing)", self.storage.url()), e))?;
        let ids: Vec<BackupId> = listing
            .iter()
            .filter_map(|o| self.storage.id_of_sidecar(&o.location))
            .collect();
        let mut all: Vec<Metadata> = futures::stream::iter(ids)
            .map(|id| async move { self.sidecar(&id).await.map(|m| (id, m)) })
            .buffer_unordered(LIST_CONCURRENCY)
            .try_filter_map(|(id, m)| async move {
                Ok(m.map(|mut m| {
                    m.id.get_or_insert(id);
                    m
                }))
            })
            .try_collect()
            .await?;
        all.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.id.cmp(&a.id)));
        Ok(all)
    }

    async fn remove(&self, id: &BackupId) -> Result<()> {
        self.with_lease("remove", self.remove_unlocked(id)).await
    }

    async fn restore(
        &self,
        request: RestoreRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport> {
        if request.dry_run {
            return self.restore_unlocked(request, progress).await;
        }
        self.with_lease("restore", self.restore_unlocked(request, progress))
            .await
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

/// Appends the dumper's files under `dump/` until it reports its result.
fn write_dump<W: std::io::Write>(
    archive: &mut ArchiveWriter<W>,
    rx: &mut mpsc::Receiver<DumpMessage>,
) -> Result<DumpSummary> {
    loop {
        match rx.blocking_recv() {
            Some(DumpMessage::Entry(entry)) => {
                sanitize_entry_path(entry.path.as_bytes())
                    .map_err(|r| Error::unsafe_path(format!("dump/{}", entry.path), r))?;
                archive.add_file(
                    &format!("dump/{}", entry.path),
                    entry.size,
                    0o600,
                    entry.body,
                )?;
            }
            Some(DumpMessage::Done(result)) => return result,
            None => {
                return Err(Error::Database {
                    message: "the database dump stopped without reporting a result".into(),
                    source: None,
                });
            }
        }
    }
}
