//! Object locks on a store's backups: the writer that locks a new
//! backup's archive and commit record, the locks read back from the store
//! (never from what was meant to be written), and the rule that a backup
//! still under its lock is not removed.

use futures::StreamExt;
use time::OffsetDateTime;

use crate::catalog::{StoreBackups, Writer};
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::immutable::{ImmutableMode, ObjectLock};
use crate::metadata::Metadata;
use crate::storage::Backend;

/// Lock reads (HEAD requests) in flight at once for a listing.
const LOCK_CONCURRENCY: usize = 32;

impl StoreBackups {
    /// Where the next backup's write-once objects go: through a client
    /// that locks them when [`StoreBackups::with_immutability`] asks for
    /// it, once the bucket was found to have Object Lock. Called before
    /// anything of the backup is written.
    pub(crate) async fn writer(&self) -> Result<Writer> {
        let Some(immutable) = self.immutability() else {
            return Ok(Writer {
                store: self.store(),
                lock: None,
                checksummed: false,
            });
        };
        immutable.check()?;
        let storage = self.storage();
        let refuse = |reason: &str| Error::ImmutableUnsupported {
            store: storage.url().to_string(),
            reason: reason.to_string(),
        };
        let s3 = match storage.backend() {
            Backend::S3(s3) => s3,
            Backend::Local => {
                return Err(refuse(
                    "a local directory cannot lock its files; use an S3 bucket with Object Lock",
                ));
            }
            Backend::Memory => return Err(refuse("a memory store cannot lock anything")),
            Backend::Azure => {
                return Err(refuse(
                    "Azure Blob Storage immutability policies are not supported yet (only S3 Object Lock)",
                ));
            }
            Backend::Gcs => {
                return Err(refuse(
                    "Google Cloud Storage object retention is not supported yet (only S3 Object Lock)",
                ));
            }
            Backend::Other => {
                return Err(refuse(
                    "this store is not one this tool can lock objects in",
                ));
            }
        };
        s3.check_bucket().await?;
        let lock = immutable.lock_at(OffsetDateTime::now_utc())?;
        Ok(Writer {
            store: s3.write_store(Some(&lock))?,
            lock: Some(lock),
            checksummed: true,
        })
    }

    /// [`StoreBackups::writer`] for a copy: on S3 its writes always carry
    /// a SHA-256 checksum, so that the copy is checked by the checksum the
    /// store reports instead of being read back.
    pub(crate) async fn checksummed_writer(&self) -> Result<Writer> {
        match (self.immutability(), self.storage().backend()) {
            (None, Backend::S3(s3)) => Ok(Writer {
                store: s3.write_store(None)?,
                lock: None,
                checksummed: true,
            }),
            _ => self.writer().await,
        }
    }

    /// The lock that holds `meta`'s backup as the store reports it: the
    /// earlier-ending of its archive's and its commit record's, `None`
    /// when either has none. Read only for backups written with a lock
    /// ([`Metadata::lock_requested`]) and only on S3; `None` otherwise.
    pub async fn object_lock(&self, meta: &Metadata) -> Result<Option<ObjectLock>> {
        Ok(self.store_locks(meta).await?.map(|(lock, _)| lock))
    }

    /// [`StoreBackups::object_lock`] of each of `backups`, in order.
    pub async fn object_locks(&self, backups: &[Metadata]) -> Result<Vec<Option<ObjectLock>>> {
        // Boxed futures, so that this future is `Send` for any lifetime
        // (as a server's handler needs).
        type LockFuture<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Option<ObjectLock>>> + Send + 'a>,
        >;
        let futures: Vec<LockFuture<'_>> = backups
            .iter()
            .map(|m| Box::pin(self.object_lock(m)) as LockFuture<'_>)
            .collect();
        futures::stream::iter(futures)
            .buffered(LOCK_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// The lock (see [`StoreBackups::object_lock`]) and the versions of
    /// the commit record and the archive.
    async fn store_locks(
        &self,
        meta: &Metadata,
    ) -> Result<Option<(ObjectLock, [Option<String>; 2])>> {
        let (Some(id), Some(_), Backend::S3(s3)) =
            (&meta.id, &meta.lock_requested, self.storage().backend())
        else {
            return Ok(None);
        };
        let record = s3.head(&self.storage().sidecar_key(id)).await?;
        let archive = s3.head(&self.storage().archive_key(id, meta)).await?;
        let (Some(record), Some(archive)) = (record, archive) else {
            return Ok(None);
        };
        let lock = match (record.lock, archive.lock) {
            (Some(a), Some(b)) if a.retain_until <= b.retain_until => a,
            (Some(_), Some(b)) => b,
            _ => return Ok(None),
        };
        Ok(Some((lock, [record.version, archive.version])))
    }

    /// Before `id` is removed: `Ok(false)` when no lock holds it (remove
    /// it as any other), [`Error::Retained`] while one does, unless it is
    /// in governance mode and [`StoreBackups::with_bypass_governance`] was
    /// given: then its commit record and archive versions are deleted
    /// bypassing governance and `Ok(true)` is returned.
    pub(crate) async fn delete_locked(&self, id: &BackupId, meta: &Metadata) -> Result<bool> {
        let Some((lock, versions)) = self.store_locks(meta).await? else {
            return Ok(false);
        };
        if !lock.holds_at(OffsetDateTime::now_utc()) {
            return Ok(false);
        }
        let retained = |hint: &str| Error::Retained {
            id: id.clone(),
            until: lock.until_text(),
            hint: hint.to_string(),
        };
        match lock.mode {
            ImmutableMode::Compliance => {
                return Err(retained(
                    "compliance mode: nothing can remove it or shorten its lock before then",
                ));
            }
            _ if !self.bypass_governance() => {
                return Err(retained(
                    "governance mode: --bypass-governance to override, if the credentials allow",
                ));
            }
            _ => {}
        }
        let Backend::S3(s3) = self.storage().backend() else {
            return Ok(false);
        };
        let keys = [
            self.storage().sidecar_key(id),
            self.storage().archive_key(id, meta),
        ];
        for (key, version) in keys.iter().zip(versions) {
            match version {
                Some(v) => s3.delete_bypassing(key, &v).await?,
                None => self.storage().delete_if_exists(key).await?,
            }
        }
        Ok(true)
    }
}
