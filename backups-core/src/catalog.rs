//! The catalog: which backups a store holds. [`StoreBackups`] and every
//! read and write of sidecars — the metadata files whose presence *is* a
//! backup — including the commit protocol. Operations (create, add,
//! restore...) build on it; it knows none of them.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::annotations;
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::immutable::{Immutability, ObjectLock};
use crate::lease;
pub use crate::metadata::UnreadableSidecar;
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
    journal_dir: Option<std::path::PathBuf>,
    immutable: Option<Immutability>,
    bypass_governance: bool,
}

/// Where a backup's write-once objects go: the store, or a client of it
/// whose every write carries `lock` (see [`StoreBackups::with_immutability`]).
pub(crate) struct Writer {
    /// The store to write the archive and commit record through.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The lock each write carries.
    pub(crate) lock: Option<ObjectLock>,
    /// Each write carries a SHA-256 checksum the store reports back.
    pub(crate) checksummed: bool,
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
            journal_dir: None,
            immutable: None,
            bypass_governance: false,
        }
    }

    /// Writes every new backup's archive and commit record (`create`,
    /// `add`, and copies into this store) under an object lock of
    /// `immutable` from when it is written (S3 Object Lock; other stores
    /// refuse with [`Error::ImmutableUnsupported`], a bucket without Object
    /// Lock with [`Error::NoObjectLock`], before anything is written).
    pub fn with_immutability(mut self, immutable: Option<Immutability>) -> Self {
        self.immutable = immutable;
        self
    }

    /// The lock new backups are written under.
    pub fn immutability(&self) -> Option<Immutability> {
        self.immutable
    }

    /// Lets `remove` delete a backup under a governance-mode lock (with
    /// `x-amz-bypass-governance-retention`, which needs
    /// `s3:BypassGovernanceRetention`); compliance mode is never bypassed,
    /// and `forget` always keeps locked backups.
    pub fn with_bypass_governance(mut self, bypass: bool) -> Self {
        self.bypass_governance = bypass;
        self
    }

    /// Whether [`StoreBackups::with_bypass_governance`] was given.
    pub(crate) fn bypass_governance(&self) -> bool {
        self.bypass_governance
    }

    /// Where restore plans keep their journals on this host
    /// ([`crate::RestorePlan::journal_dir`]): a backup that a journal there
    /// names ([`crate::restore::pending_journals`]) is needed to undo a restore that
    /// did not finish, so `forget` keeps it (reason `pending-recovery`)
    /// and `remove` refuses it ([`Error::PendingRecovery`]).
    pub fn with_journal_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// The directory given to [`StoreBackups::with_journal_dir`].
    pub fn journal_dir(&self) -> Option<&std::path::Path> {
        self.journal_dir.as_deref()
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
    /// A sidecar that cannot be read, or that fails its checks
    /// ([`check_sidecar`]), is [`Error::UnreadableSidecar`].
    pub(crate) async fn sidecar(&self, id: &BackupId) -> Result<Option<Metadata>> {
        let Some(mut meta) = self.commit_record(id).await? else {
            return Ok(None);
        };
        if meta.lock_requested.is_some() {
            let keys = annotations::keys_of(&self.storage, id).await?;
            annotations::apply_newest(&self.storage, id, keys, &mut meta).await?;
        }
        Ok(Some(meta))
    }

    /// The commit record of `id` as written (without its annotations).
    async fn commit_record(&self, id: &BackupId) -> Result<Option<Metadata>> {
        let key = self.storage.sidecar_key(id);
        let result = match self.store().get(&key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::storage(&key, e)),
        };
        let unreadable = |reason: String| Error::UnreadableSidecar {
            key: key.to_string(),
            reason,
        };
        if result.meta.size > MAX_METADATA_BYTES {
            return Err(unreadable(format!(
                "it is larger than {MAX_METADATA_BYTES} bytes"
            )));
        }
        let bytes = match result.bytes().await {
            Ok(b) => b,
            // Deleted between the listing and the read: no backup.
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::storage(&key, e)),
        };
        if bytes.is_empty() {
            return Err(unreadable("it is empty (0 bytes)".into()));
        }
        let meta: Metadata = serde_json::from_slice(&bytes)
            .map_err(|e| unreadable(format!("it is not valid metadata JSON: {e}")))?;
        check_sidecar(&meta, id).map_err(unreadable)?;
        Ok(Some(meta))
    }

    /// Whether a sidecar of `id` exists, readable or not (an id whose
    /// sidecar is unreadable is not free for a new backup).
    async fn id_taken(&self, id: &BackupId) -> Result<bool> {
        match self.commit_record(id).await {
            Ok(found) => Ok(found.is_some()),
            Err(Error::UnreadableSidecar { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The metadata of a committed backup, or [`Error::NotFound`].
    pub(crate) async fn committed(&self, id: &BackupId) -> Result<Metadata> {
        self.sidecar(id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    /// Every committed backup, newest first.
    pub(crate) async fn all_committed(&self) -> Result<Vec<Metadata>> {
        Ok(self.listing().await?.backups)
    }

    /// Every committed backup, newest first, and the sidecars that could
    /// not be read (skipped: one such object never blocks a listing).
    pub async fn listing(&self) -> Result<Listing> {
        let prefix = self.storage.prefix().clone();
        let objects: Vec<_> = self
            .store()
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::storage(format!("{} (listing)", self.storage.url()), e))?;
        let ids: Vec<BackupId> = objects
            .iter()
            .filter_map(|o| self.storage.id_of_sidecar(&o.location))
            .collect();
        let mut notes: HashMap<BackupId, Vec<(u64, ObjectPath)>> = HashMap::new();
        for o in &objects {
            if let Some((id, seq)) = annotations::parse_key(&self.storage, &o.location) {
                notes.entry(id).or_default().push((seq, o.location.clone()));
            }
        }
        let notes = &notes;
        let fetched: Vec<(BackupId, Result<Annotated>)> = futures::stream::iter(ids)
            .map(|id| async move {
                let found = self.annotated(&id, notes.get(&id).cloned()).await;
                (id, found)
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut listing = Listing::default();
        for (id, found) in fetched {
            match found {
                Ok((Some(meta), skipped)) => {
                    listing.backups.push(meta);
                    listing.unreadable.extend(skipped);
                }
                Ok((None, _)) => {}
                Err(Error::UnreadableSidecar { key, reason }) => listing
                    .unreadable
                    .push(UnreadableSidecar { id, key, reason }),
                Err(e) => return Err(e),
            }
        }
        listing
            .backups
            .sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.id.cmp(&a.id)));
        listing.unreadable.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listing)
    }

    /// The commit record of `id` with the newest of its annotations
    /// `keys` applied when it is locked, and the annotations skipped.
    async fn annotated(
        &self,
        id: &BackupId,
        keys: Option<Vec<(u64, ObjectPath)>>,
    ) -> Result<Annotated> {
        let Some(mut meta) = self.commit_record(id).await? else {
            return Ok((None, Vec::new()));
        };
        let skipped = match keys {
            Some(keys) if meta.lock_requested.is_some() => {
                annotations::apply_newest(&self.storage, id, keys, &mut meta)
                    .await?
                    .into_iter()
                    .map(|(key, reason)| UnreadableSidecar {
                        id: id.clone(),
                        key,
                        reason,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok((Some(meta), skipped))
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
        writer: &Writer,
    ) -> Result<Commit> {
        meta.lock_requested = writer.lock;
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
                self.storage.discard(archive).await;
                return Err(e);
            }
        };
        let result = async {
            if next_free && let Err(e) = self.take_free_id(meta).await {
                self.storage.discard(archive).await;
                return Err(e);
            }
            self.commit_locked(meta, archive, writer).await
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
            if !self.id_taken(&id).await? {
                meta.id = Some(id);
                return Ok(());
            }
        }
        Err(Error::internal(format!(
            "no free backup id within {MAX_ID_STEPS} seconds of {first}"
        )))
    }

    /// The commit itself, under the commit lease.
    async fn commit_locked(
        &self,
        meta: &Metadata,
        archive: &ObjectPath,
        writer: &Writer,
    ) -> Result<Commit> {
        let id = meta
            .id
            .as_ref()
            .ok_or_else(|| Error::invalid("sidecar", "metadata without an id"))?;
        let key = self.storage.sidecar_key(id);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match writer
            .store
            .put_opts(&key, PutPayload::from(meta.for_sidecar().to_json()), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => {
                self.storage.discard(archive).await;
                return Err(Error::storage(&key, e));
            }
        }
        let current = match self.commit_record(id).await {
            Ok(c) => c,
            Err(e) => {
                self.storage.discard(archive).await;
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
                self.storage.discard(archive).await;
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
            if !self.id_taken(&id).await? {
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
    /// exist), then its archive. The caller holds the lease. A sidecar that
    /// cannot be read is deleted all the same, with the archive its id
    /// would have without one (`<id>.tar.gz`); an archive it may have named
    /// under a nonce is then an orphan that `gc` finds.
    pub(crate) async fn delete(&self, id: &BackupId) -> Result<()> {
        self.storage.check_may_delete("remove a backup")?;
        let archive = match self.committed(id).await {
            Ok(meta) if meta.lock_requested.is_some() => {
                if self.delete_locked(id, &meta).await? {
                    return annotations::delete_all(&self.storage, id).await;
                }
                self.storage.archive_key(id, &meta)
            }
            Ok(meta) => self.storage.archive_key(id, &meta),
            Err(Error::UnreadableSidecar { .. }) => self.storage.key(&format!("{id}.tar.gz")),
            Err(e) => return Err(e),
        };
        let sidecar = self.storage.sidecar_key(id);
        self.store()
            .delete(&sidecar)
            .await
            .map_err(|e| Error::storage(&sidecar, e))?;
        self.storage.delete_if_exists(&archive).await?;
        annotations::delete_all(&self.storage, id).await
    }
}

/// A backup's metadata with its annotations applied, and the annotations
/// skipped as unreadable.
type Annotated = (Option<Metadata>, Vec<UnreadableSidecar>);

/// What a sidecar must hold to describe a backup: the id its name gives,
/// a start time, a checksum and a size. `Err` says what is wrong.
fn check_sidecar(meta: &Metadata, id: &BackupId) -> std::result::Result<(), String> {
    match &meta.id {
        None => return Err("it has no ID".into()),
        Some(own) if own != id => {
            return Err(format!("its ID {own} is not {id}, the id its name gives"));
        }
        Some(_) => {}
    }
    if meta.started.is_none() {
        return Err("it has no Started time".into());
    }
    if meta.checksum.is_empty() {
        return Err("it has no Checksum".into());
    }
    if meta.size == 0 {
        return Err("its Size is 0".into());
    }
    Ok(())
}

/// What a store's listing found ([`StoreBackups::listing`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Listing {
    /// The committed backups, newest first.
    pub backups: Vec<Metadata>,
    /// The sidecars skipped because they cannot be read or fail their
    /// checks, by key. `gc` lists them as garbage; `remove ID` deletes one.
    pub unreadable: Vec<UnreadableSidecar>,
}
