//! The `Backups` contract, and the methods of [`StoreBackups`] that run
//! operations: one-line calls into [`crate::ops`], [`crate::gc`] and
//! [`crate::lease`]. The catalog itself is in [`crate::catalog`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};

use crate::catalog::StoreBackups;
use crate::crypt::{Encryption, Identities};
use crate::error::{Error, Result};
use crate::gc::{self, Garbage};
use crate::id::BackupId;
use crate::lease::{self, LeaseGuard, LeaseInfo};
use crate::metadata::{Metadata, Verification};
use crate::ops::copy::{CopyReport, CopyRequest};
use crate::ops::diff::{DiffReport, DiffRequest};
use crate::ops::download::DownloadTo;
use crate::ops::edit::Edit;
use crate::ops::execute::PreparedRestore;
use crate::ops::plan::RestorePlan;
use crate::ops::verify::VerifyRequest;
use crate::ops::{add, copy, create, diff, download, edit, execute, forget, plan, verify};
use crate::progress::Progress;
use crate::request::{
    AddOutcome, ArchiveSource, ArchiveStream, CreateRequest, RestoreReport, RestoreRequest,
};
use crate::retention::{ForgetReport, RetentionPolicy};
use crate::upload::object_stream;

/// The backup operations, independent of where backups are stored.
#[async_trait]
pub trait Backups: Send + Sync {
    /// Makes a new backup and commits it; returns its metadata.
    async fn create(&self, request: CreateRequest, progress: Arc<dyn Progress>)
    -> Result<Metadata>;
    /// Validates an existing archive and stores it under the id derived from
    /// its metadata. The same bytes twice is a no-op; other bytes under an
    /// existing id is [`Error::AlreadyExists`]. With `encryption`, the
    /// plain archive is stored encrypted (an already encrypted `.age` is
    /// refused by the validation).
    async fn add(
        &self,
        source: ArchiveSource,
        encryption: Option<Encryption>,
        progress: Arc<dyn Progress>,
    ) -> Result<AddOutcome>;
    /// The metadata of one backup.
    async fn metadata(&self, id: &BackupId) -> Result<Metadata>;
    /// The metadata and archive bytes of one backup.
    async fn get(&self, id: &BackupId) -> Result<(Metadata, ArchiveStream)>;
    /// All committed backups, newest first. A sidecar that cannot be read
    /// is left out (it never fails the listing; `StoreBackups::listing`
    /// names it).
    async fn list(&self) -> Result<Vec<Metadata>>;
    /// Deletes a backup (sidecar first, then archive). [`StoreBackups`]
    /// refuses one that a pending restore journal needs
    /// ([`Error::PendingRecovery`]; see [`StoreBackups::remove_forced`]).
    async fn remove(&self, id: &BackupId) -> Result<()>;
    /// Verifies an archive, then restores its files into the target.
    async fn restore(
        &self,
        request: RestoreRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport>;

    /// Writes a backup's archive where `to` says (a file appears only once
    /// size and checksum match; a writer is checked at the end), returning
    /// its metadata. An encrypted backup comes out as stored (`.age`); see
    /// [`StoreBackups::download_decrypted`] for the plain archive.
    async fn download(
        &self,
        id: &BackupId,
        to: DownloadTo<'_>,
        progress: Arc<dyn Progress>,
    ) -> Result<Metadata> {
        let (meta, stream) = self.get(id).await?;
        download::plain(&meta, stream, to, progress).await?;
        Ok(meta)
    }
}

#[async_trait]
impl Backups for StoreBackups {
    async fn create(
        &self,
        request: CreateRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<Metadata> {
        for label in &request.labels {
            crate::metadata::check_label(label)?;
        }
        create::create(self, request, progress).await
    }

    async fn add(
        &self,
        source: ArchiveSource,
        encryption: Option<Encryption>,
        progress: Arc<dyn Progress>,
    ) -> Result<AddOutcome> {
        add::add(self, source, encryption, progress).await
    }

    async fn metadata(&self, id: &BackupId) -> Result<Metadata> {
        self.committed(id).await
    }

    async fn get(&self, id: &BackupId) -> Result<(Metadata, ArchiveStream)> {
        let meta = self.committed(id).await?;
        let (key, result) = self.get_archive(id, &meta).await?;
        let stream = object_stream(result)
            .map_err(move |e| Error::storage(&key, e))
            .boxed();
        Ok((meta, stream))
    }

    async fn list(&self) -> Result<Vec<Metadata>> {
        self.all_committed().await
    }

    async fn remove(&self, id: &BackupId) -> Result<()> {
        if let Some((_, journal)) = self
            .pending_recoveries()?
            .into_iter()
            .find(|(p, _)| p == id)
        {
            return Err(Error::PendingRecovery {
                id: id.clone(),
                journal,
            });
        }
        self.with_lease("remove", async |_| self.delete(id).await)
            .await
    }

    async fn restore(
        &self,
        request: RestoreRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport> {
        plan::run(self, RestorePlan::new(request), progress).await
    }
}

impl StoreBackups {
    /// The backups that restores which did not finish need to be undone:
    /// each pending journal in [`StoreBackups::journal_dir`] (see
    /// [`crate::restore::pending_journals`]) with the pre-restore backup it names.
    /// Empty without a journal directory.
    pub fn pending_recoveries(&self) -> Result<Vec<(BackupId, std::path::PathBuf)>> {
        match self.journal_dir() {
            Some(dir) => execute::pending_journals(dir),
            None => Ok(Vec::new()),
        }
    }

    /// [`Backups::get`] from byte `offset` of the stored object on (a
    /// resumed download): the metadata and the bytes from there to the end.
    /// An offset past the end is [`Error::InvalidInput`].
    pub async fn get_from(&self, id: &BackupId, offset: u64) -> Result<(Metadata, ArchiveStream)> {
        if offset == 0 {
            return self.get(id).await;
        }
        let meta = self.committed(id).await?;
        if offset >= meta.stored_size() {
            return Err(Error::InvalidInput {
                what: crate::error::InputKind::ByteRange,
                value: offset.to_string(),
                reason: format!(
                    "backup {id} has {} bytes: a download cannot start at byte {offset}",
                    meta.stored_size()
                ),
            });
        }
        let key = self.storage().archive_key(id, &meta);
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        let result = self
            .store()
            .get_opts(&key, options)
            .await
            .map_err(|e| Error::storage(&key, e))?;
        let stream = object_stream(result)
            .map_err(move |e| Error::storage(&key, e))
            .boxed();
        Ok((meta, stream))
    }

    /// [`Backups::remove`] even of a backup a pending restore journal needs
    /// (which [`Backups::remove`] refuses with [`Error::PendingRecovery`]).
    pub async fn remove_forced(&self, id: &BackupId) -> Result<()> {
        self.with_lease("remove", async |_| self.delete(id).await)
            .await
    }

    /// Decrypts the encrypted backup `id` into the plain, Juju-readable
    /// `.tar.gz`, written where `to` says (a file through a temp file,
    /// renamed into place only once the stored bytes and the plaintext
    /// match their digests; a writer checked at the end).
    pub async fn download_decrypted(
        &self,
        id: &BackupId,
        identities: Identities,
        to: DownloadTo<'_>,
        progress: Arc<dyn Progress>,
    ) -> Result<Metadata> {
        download::decrypted_to(self, id, identities, to, progress).await
    }

    /// Changes a committed backup's labels, notes or verification record
    /// (under the store's lease, one atomic sidecar write); returns the new
    /// metadata.
    pub async fn edit(&self, id: &BackupId, change: &Edit) -> Result<Metadata> {
        edit::edit(self, id, change).await
    }

    /// Verifies `id` as `request` says and records the outcome in its
    /// sidecar (see [`VerifyRequest`]).
    pub async fn verify(
        &self,
        id: &BackupId,
        request: &VerifyRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<Verification> {
        verify::verify(self, id, request, progress).await
    }

    /// Copies the backups `request` selects into `target` (another store):
    /// each archive streamed, its bytes checked against this store's
    /// sidecar on the way and read back from the target (size and SHA-256)
    /// before its sidecar is committed there. A backup the target holds
    /// with the same checksum is skipped, one with another checksum fails
    /// ([`Error::AlreadyExists`]); nothing is
    /// deleted in the target. One backup's failure does not stop the others
    /// (see [`CopyReport`]).
    pub async fn copy_to(
        &self,
        target: &StoreBackups,
        request: &CopyRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<CopyReport> {
        copy::copy(self, target, request, progress).await
    }

    /// Compares a backup with the live state a restore would change: the
    /// files under the request's target and, with a comparer, the live
    /// database (see [`DiffRequest`]). Reads the archive once, changes
    /// nothing, takes no lease.
    pub async fn diff(
        &self,
        request: DiffRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<DiffReport> {
        diff::diff(self, request, progress).await
    }

    /// Applies a retention policy to the store: takes the lease once, lists,
    /// decides ([`RetentionPolicy::apply`]) and removes what the policy
    /// does not keep. [`RetentionPolicy::apply`] over [`Backups::list`]
    /// is the dry run. [`RetentionPolicy::with_only_label`] limits it to
    /// one label's backups (a schedule's own).
    pub async fn forget(&self, policy: &RetentionPolicy) -> Result<ForgetReport> {
        forget::forget(self, policy).await
    }

    /// Runs a [`RestorePlan`]: [`StoreBackups::prepare_restore`], then
    /// (unless a dry run) [`PreparedRestore::execute`].
    pub async fn run_restore_plan(
        &self,
        plan: RestorePlan,
        progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport> {
        plan::run(self, plan, progress).await
    }

    /// Checks a restore in full — every entry and digest of the archive,
    /// identity, version, free space, the old controller down — and
    /// applies the safety rule ([`crate::Safety`]), changing nothing and
    /// taking no lease. Inspect the [`PreparedRestore`], then execute it.
    pub async fn prepare_restore(
        &self,
        plan: RestorePlan,
        progress: Arc<dyn Progress>,
    ) -> Result<PreparedRestore<'_>> {
        plan::prepare(self, plan, progress).await
    }

    /// Lists garbage older than `min_age` (younger objects may belong to an
    /// upload in progress, between its archive and its commit), and every
    /// unreadable sidecar whatever its age.
    pub async fn find_garbage(&self, min_age: Duration) -> Result<Vec<Garbage>> {
        gc::find(self.storage(), &self.listing().await?, min_age).await
    }

    /// Deletes what [`StoreBackups::find_garbage`] returned (holding the
    /// store's lease).
    pub async fn delete_garbage(&self, garbage: &[Garbage]) -> Result<()> {
        self.with_lease("gc", async |_| gc::delete(self.storage(), garbage).await)
            .await
    }

    /// Every lease record in the store, oldest first (unreadable ones are
    /// reported with an empty holder and as stale).
    pub async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        lease::leases(self.storage()).await
    }

    /// Deletes lease records: the stale ones, or every one with
    /// `include_live` (for a holder known to be gone, on another host,
    /// before its lease expires). Returns what was deleted.
    pub async fn break_leases(&self, include_live: bool) -> Result<Vec<LeaseInfo>> {
        lease::break_leases(self.storage(), include_live).await
    }

    /// Takes the store's lease for `operation`, or fails with
    /// [`Error::Locked`] while someone else holds a live one.
    pub async fn acquire_lease(&self, operation: &str, ttl: Duration) -> Result<LeaseGuard> {
        lease::acquire(self.storage(), self.holder(), operation, ttl).await
    }

    /// Gives the lease back (deletes our record).
    pub async fn release_lease(&self, guard: LeaseGuard) -> Result<()> {
        lease::release(self.storage(), guard).await
    }

    /// Runs `work` while holding the store's lease for `operation`
    /// (`work` may [`LeaseGuard::check`] that it still holds it), releasing
    /// the lease afterwards whatever the outcome.
    pub async fn with_lease<T>(
        &self,
        operation: &str,
        work: impl AsyncFnOnce(&LeaseGuard) -> Result<T>,
    ) -> Result<T> {
        lease::with_lease(self.storage(), self.holder(), operation, work).await
    }
}
