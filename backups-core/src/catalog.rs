//! The catalog: which backups a store holds. [`StoreBackups`] and every
//! read and write of sidecars — the metadata files whose presence *is* a
//! backup — including the commit protocol. Operations (create, add,
//! restore...) build on it; it knows none of them.

use std::io::Read;
use std::sync::Arc;

use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::lease;
use crate::metadata::{MAX_METADATA_BYTES, Metadata};
use crate::request::{ArchiveSource, RestoreSource};
use crate::storage::Storage;
use crate::upload::{UploadOptions, object_reader};

/// Sidecars fetched at once by `list`.
const LIST_CONCURRENCY: usize = 32;
/// How long a commit lease lasts unrenewed (a commit takes a few requests).
const COMMIT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a commit waits for the others in front of it.
const COMMIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);
/// Seconds after its own a new backup's id may move to.
const MAX_ID_STEPS: i64 = 600;

/// [`crate::Backups`] over any object store.
#[derive(Debug, Clone)]
pub struct StoreBackups {
    storage: Storage,
    upload: UploadOptions,
    cancel: CancellationToken,
    holder: String,
}

/// How a commit ended.
pub(crate) enum Commit {
    /// Our sidecar is the committed one.
    Written,
    /// Another writer committed the same bytes first; ours was discarded.
    SameContent(Box<Metadata>),
}

impl AsRef<Storage> for StoreBackups {
    fn as_ref(&self) -> &Storage {
        &self.storage
    }
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

    pub(crate) fn upload_options(&self) -> UploadOptions {
        self.upload
    }

    pub(crate) fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    pub(crate) fn store(&self) -> Arc<dyn ObjectStore> {
        self.storage.object_store().clone()
    }

    /// The committed metadata of `id`, or `None` when there is no sidecar.
    pub(crate) async fn sidecar(&self, id: &BackupId) -> Result<Option<Metadata>> {
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

    /// The metadata of a committed backup, or [`Error::NotFound`].
    pub(crate) async fn committed(&self, id: &BackupId) -> Result<Metadata> {
        let mut meta = self
            .sidecar(id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        meta.id.get_or_insert_with(|| id.clone());
        Ok(meta)
    }

    /// Every committed backup, newest first.
    pub(crate) async fn all_committed(&self) -> Result<Vec<Metadata>> {
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

    /// Writes the sidecar: the commit point. Create-only where the store
    /// supports it; then the sidecar is read back, because some stores
    /// (Garage) silently overwrite: whoever's archive the sidecar names has
    /// won, and a loser deletes its own archive. Either way the sidecar
    /// always names an intact archive.
    ///
    /// Commits are serialised by a short lease of their own (stores such as
    /// Garage have no create-only write, so two commits of one id could
    /// otherwise both believe they won). With `next_free`, a new backup
    /// whose id another backup took meanwhile takes the next free second
    /// (an uploaded archive keeps its id and its conflict rule).
    pub(crate) async fn commit(
        &self,
        meta: &mut Metadata,
        archive: &ObjectPath,
        next_free: bool,
    ) -> Result<Commit> {
        let guard = match lease::acquire_waiting(
            &self.storage,
            lease::COMMIT,
            &self.holder,
            "commit",
            (COMMIT_LEASE_TTL, COMMIT_PATIENCE),
        )
        .await
        {
            Ok(g) => g,
            Err(e) => {
                let _ = self.store().delete(archive).await;
                return Err(e);
            }
        };
        let result = async {
            if next_free && let Err(e) = self.take_free_id(meta).await {
                let _ = self.store().delete(archive).await;
                return Err(e);
            }
            self.commit_locked(meta, archive).await
        }
        .await;
        let released = lease::release(&self.storage, guard).await;
        let commit = result?;
        released?;
        Ok(commit)
    }

    /// Moves `meta` to the first second from its id's on whose id is free.
    async fn take_free_id(&self, meta: &mut Metadata) -> Result<()> {
        let Some(first) = meta.id.clone() else {
            return Err(Error::invalid("sidecar", "metadata without an id"));
        };
        let base = meta
            .started
            .ok_or_else(|| Error::invalid(first.to_string(), "no start time"))?;
        for step in 0..MAX_ID_STEPS {
            let id = BackupId::new(base + time::Duration::seconds(step), first.model_uuid())?;
            if self.sidecar(&id).await?.is_none() {
                meta.id = Some(id);
                return Ok(());
            }
        }
        Err(Error::internal(format!(
            "no free backup id within {MAX_ID_STEPS} seconds of {first}"
        )))
    }

    /// The commit itself, under the commit lease.
    async fn commit_locked(&self, meta: &Metadata, archive: &ObjectPath) -> Result<Commit> {
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
            .put_opts(&key, PutPayload::from(meta.for_sidecar().to_json()), opts)
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
                self.storage.make_private(&key);
                self.storage.make_private(archive);
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

    /// Replaces the sidecar of a committed backup with `meta` (one atomic
    /// put; the caller holds the lease). Refuses one whose sidecar is gone.
    pub(crate) async fn rewrite_sidecar(&self, meta: &Metadata) -> Result<()> {
        let id = meta
            .id
            .as_ref()
            .ok_or_else(|| Error::invalid("sidecar", "metadata without an id"))?;
        let key = self.storage.sidecar_key(id);
        self.store()
            .put(&key, PutPayload::from(meta.for_sidecar().to_json()))
            .await
            .map_err(|e| Error::storage(&key, e))?;
        self.storage.make_private(&key);
        Ok(())
    }

    /// Picks the id for a backup starting now, waiting for the next second
    /// if a backup with this second's id already exists.
    pub(crate) async fn fresh_id(&self, model_uuid: &str) -> Result<(OffsetDateTime, BackupId)> {
        for _ in 0..3 {
            let started = OffsetDateTime::now_utc();
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
    pub(crate) async fn get_archive(
        &self,
        id: &BackupId,
        meta: &Metadata,
    ) -> Result<(ObjectPath, GetResult)> {
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

    /// A blocking reader of a committed backup's archive bytes.
    pub(crate) async fn archive_reader(
        &self,
        id: &BackupId,
        meta: &Metadata,
    ) -> Result<Box<dyn Read + Send>> {
        let (_, result) = self.get_archive(id, meta).await?;
        Ok(object_reader(result))
    }

    /// A blocking reader of the archive a restore reads: a stored backup
    /// (its metadata looked up unless `recorded`) or a local file.
    pub(crate) async fn open_restore_source(
        &self,
        source: &RestoreSource,
        recorded: Option<&Metadata>,
    ) -> Result<Box<dyn Read + Send>> {
        match (source, recorded) {
            (RestoreSource::Id(id), Some(meta)) => self.archive_reader(id, meta).await,
            (RestoreSource::Id(id), None) => {
                let meta = self.committed(id).await?;
                self.archive_reader(id, &meta).await
            }
            (RestoreSource::File(p), _) => ArchiveSource::File(p.clone()).open(),
        }
    }

    /// Deletes a backup: its sidecar first (from then on it does not
    /// exist), then its archive. The caller holds the lease.
    pub(crate) async fn delete(&self, id: &BackupId) -> Result<()> {
        let meta = self.committed(id).await?;
        let sidecar = self.storage.sidecar_key(id);
        self.store()
            .delete(&sidecar)
            .await
            .map_err(|e| Error::storage(&sidecar, e))?;
        self.storage
            .delete_if_exists(&self.storage.archive_key(id, &meta))
            .await
    }
}
