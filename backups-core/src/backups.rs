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
use crate::database::{DatabaseDumper, DumpMessage, DumpSink, DumpSummary};
use crate::digest::{Digests, Hasher, HashingWriter};
use crate::error::{Error, Result};
use crate::extract::{ExtractOptions, RootCheck, sanitize_entry_path};
use crate::files::FileSet;
use crate::metadata::{CHECKSUM_FORMAT, FORMAT_VERSION, MAX_METADATA_BYTES, Metadata};
use crate::progress::Progress;
use crate::restore::{RestoreReport, RestoreRequest};
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
    pub(crate) fn open(&self) -> Result<Box<dyn Read + Send>> {
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
pub(crate) fn check_digests(subject: &str, meta: &Metadata, got: &Digests) -> Result<()> {
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
                    None => Err(Error::internal(format!(
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
        Err(Error::internal(format!(
            "could not find a free backup id for model {model_uuid} in three seconds"
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

    pub(crate) async fn archive_reader(
        &self,
        id: &BackupId,
        meta: &Metadata,
    ) -> Result<Box<dyn Read + Send>> {
        let (_, result) = self.get_archive(id, meta).await?;
        Ok(object_reader(result))
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
}

/// Runs one pass over an archive on a blocking thread.
pub(crate) async fn scan<V>(
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
    .map_err(|e| Error::task("the archive reader", e))?
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
            .map_err(|e| Error::task("the file scan", e))??;
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
            file_bytes: Some(
                scanned
                    .entries
                    .iter()
                    .map(|e| match e.kind {
                        crate::files::EntryKind::File { size } => size,
                        _ => 0,
                    })
                    .sum(),
            ),
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
            // Stored archives may hold anything a restore could be allowed
            // to create; restores decide (the count is kept in the sidecar).
            RootCheck::new(ExtractOptions {
                allow_setuid: true,
                allow_devices: true,
            }),
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
        let s = &check.stats;
        if meta.file_count.is_none() && summary.has_root_tar {
            meta.file_count = Some(s.files + s.directories + s.symlinks + s.hard_links + s.devices);
        }
        meta.device_nodes = s.devices;
        if summary.has_root_tar {
            meta.file_bytes = Some(s.bytes);
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
            return self.restore_unlocked(request, false, progress).await;
        }
        self.with_lease("restore", self.restore_unlocked(request, false, progress))
            .await
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
                return Err(Error::internal(
                    "the database dump stopped without reporting a result",
                ));
            }
        }
    }
}
