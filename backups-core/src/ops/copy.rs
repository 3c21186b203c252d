//! Copy: committed backups streamed from one store into another, each
//! verified on the way (the bytes read against the source's sidecar) and
//! checked in the target (size and SHA-256: the checksum an S3 store
//! reports for what it received, else the object read back) before it is committed
//! there with the commit protocol of every write (sidecar last). Nothing
//! is ever deleted in the target; a backup it already holds is skipped.

use std::sync::Arc;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use time::OffsetDateTime;

use crate::catalog::{Commit, StoreBackups, Writer};
use crate::crypt::Encryption;
use crate::digest::{Digests, Hasher};
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::metadata::{CopiedFrom, Metadata};
use crate::progress::Progress;
use crate::storage::{Backend, Storage};
use crate::upload::object_reader;

use super::add::{Upload, upload_checked};
use super::create::encryption_info;

/// Which backups of the source a copy takes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopySelection {
    /// These ids (one that the source lacks is a failure of its own).
    Ids(Vec<BackupId>),
    /// The newest backup (of those with the label, when one is given).
    Latest,
    /// Every backup (with the label, when one is given).
    All,
}

/// What to copy, and how ([`StoreBackups::copy_to`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CopyRequest {
    /// Which backups.
    pub selection: CopySelection,
    /// Only backups carrying this label (with [`CopySelection::Latest`]
    /// and [`CopySelection::All`]).
    pub label: Option<String>,
    /// Check what would be copied or skipped; write nothing.
    pub dry_run: bool,
    /// Encrypt plain backups for these recipients in the target (an
    /// encrypted backup is copied as it is: no key is needed).
    pub encryption: Option<Encryption>,
}

impl CopyRequest {
    /// A copy of `selection`.
    pub fn new(selection: CopySelection) -> Self {
        CopyRequest {
            selection,
            label: None,
            dry_run: false,
            encryption: None,
        }
    }

    /// Only backups labelled `label`.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Writes nothing; the report says what would be copied.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Re-encrypts plain backups for the target.
    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }
}

/// A backup the copy wrote into the target (or would write, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopiedBackup {
    /// Its id.
    pub id: BackupId,
    /// The bytes stored in the target.
    pub bytes: u64,
}

/// A backup the target already held (same id, same checksum).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedBackup {
    /// Its id.
    pub id: BackupId,
    /// Why it was skipped.
    pub reason: String,
}

/// A backup that could not be copied; nothing of it is committed in the
/// target.
#[derive(Debug)]
#[non_exhaustive]
pub struct FailedCopy {
    /// Its id.
    pub id: BackupId,
    /// Why: [`Error::ChecksumMismatch`] for a corrupt source,
    /// [`Error::AlreadyExists`] when the target holds other bytes under
    /// the id, [`Error::NotFound`] for an id the source lacks...
    pub error: Error,
}

/// What a copy did, backup by backup, oldest first.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CopyReport {
    /// Copied (and committed) in the target.
    pub copied: Vec<CopiedBackup>,
    /// Already in the target.
    pub skipped: Vec<SkippedBackup>,
    /// Not copied.
    pub failed: Vec<FailedCopy>,
    /// Nothing was written ([`CopyRequest::dry_run`]).
    pub dry_run: bool,
}

/// How one backup's copy ended.
enum Outcome {
    Copied(u64),
    Skipped(String),
}

/// Copies what `request` selects from `source` into `target` (see
/// [`StoreBackups::copy_to`]).
pub(crate) async fn copy(
    source: &StoreBackups,
    target: &StoreBackups,
    request: &CopyRequest,
    progress: Arc<dyn Progress>,
) -> Result<CopyReport> {
    let mut report = CopyReport {
        dry_run: request.dry_run,
        ..Default::default()
    };
    for chosen in select(source, request).await? {
        let (id, meta) = match chosen {
            Chosen::Found(id, meta) => (id, *meta),
            Chosen::Unreadable(id, error) => {
                report.failed.push(FailedCopy { id, error });
                continue;
            }
        };
        match copy_one(source, target, &id, &meta, request, progress.clone()).await {
            Ok(Outcome::Copied(bytes)) => report.copied.push(CopiedBackup { id, bytes }),
            Ok(Outcome::Skipped(reason)) => report.skipped.push(SkippedBackup { id, reason }),
            // Ctrl-C stops the whole copy, not just this backup.
            Err(e @ Error::Cancelled(_)) => return Err(e),
            Err(error) => report.failed.push(FailedCopy { id, error }),
        }
    }
    Ok(report)
}

/// A selected backup: its committed metadata, or why it cannot be copied.
enum Chosen {
    Found(BackupId, Box<Metadata>),
    Unreadable(BackupId, Error),
}

/// The backups `request` names, oldest first.
async fn select(source: &StoreBackups, request: &CopyRequest) -> Result<Vec<Chosen>> {
    if let CopySelection::Ids(ids) = &request.selection {
        let mut out = Vec::new();
        for id in ids {
            out.push(match source.committed(id).await {
                Ok(meta) => Chosen::Found(id.clone(), Box::new(meta)),
                Err(e) => Chosen::Unreadable(id.clone(), e),
            });
        }
        return Ok(out);
    }
    let mut all: Vec<Metadata> = source.all_committed().await?;
    if let Some(label) = &request.label {
        all.retain(|m| m.labels.iter().any(|l| l == label));
    }
    if request.selection == CopySelection::Latest {
        all.truncate(1);
    }
    all.reverse();
    Ok(all
        .into_iter()
        .filter_map(|m| m.id.clone().map(|id| Chosen::Found(id, Box::new(m))))
        .collect())
}

/// Copies one backup, unless the target holds it already.
async fn copy_one(
    source: &StoreBackups,
    target: &StoreBackups,
    id: &BackupId,
    meta: &Metadata,
    request: &CopyRequest,
    progress: Arc<dyn Progress>,
) -> Result<Outcome> {
    if let Some(held) = target.sidecar(id).await? {
        if held.checksum == meta.checksum {
            return Ok(Outcome::Skipped(format!(
                "{} already holds it with the same checksum ({})",
                target.storage().url(),
                meta.checksum
            )));
        }
        return Err(Error::AlreadyExists {
            id: id.clone(),
            existing: held.checksum,
            new: meta.checksum.clone(),
        });
    }
    // An encrypted backup travels as it is; a plain one may be sealed.
    let sealing = request
        .encryption
        .clone()
        .filter(|_| meta.encryption.is_none());
    if request.dry_run {
        return Ok(Outcome::Copied(meta.stored_size()));
    }
    // Refuses a lock the target cannot keep before anything is written.
    let writer = target.checksummed_writer().await?;
    let encrypted = meta.encryption.is_some() || sealing.is_some();
    let mut copy = meta.clone();
    copy.archive = Storage::new_archive_name(id, &meta.compression, encrypted);
    let key = target.storage().key(&copy.archive);
    let to = (&writer, &key);
    let stored = transfer(source, target, id, meta, to, sealing.as_ref(), progress).await?;
    if let (Some(e), Some(digests)) = (&sealing, &stored.sealed) {
        copy.encryption = Some(encryption_info(e, digests));
        if copy.sha256.is_empty() {
            copy.sha256 = stored.read.sha256_hex.clone();
        }
    }
    let bytes = stored.sealed.as_ref().unwrap_or(&stored.read).size;
    copy.copied_from = Some(CopiedFrom {
        store: crate::secret::redact_uri(source.storage().url()),
        time: Some(OffsetDateTime::now_utc()),
    });
    match target.commit(&mut copy, &key, false, &writer).await? {
        Commit::Written => Ok(Outcome::Copied(bytes)),
        Commit::SameContent(_) => Ok(Outcome::Skipped(format!(
            "another writer committed it in {} meanwhile, with the same checksum",
            target.storage().url()
        ))),
    }
}

/// The digests of a transfer: of the bytes read from the source, and of
/// those stored when they were sealed on the way.
struct Transferred {
    read: Digests,
    sealed: Option<Digests>,
}

/// Streams the archive of `id` from `source` into `key` of `target`,
/// checking the bytes read against the source's sidecar (the upload is
/// aborted on a mismatch), then reads the stored object back and checks
/// its size and SHA-256 (a mismatch discards it).
async fn transfer(
    source: &StoreBackups,
    target: &StoreBackups,
    id: &BackupId,
    meta: &Metadata,
    (writer, key): (&Writer, &object_store::path::Path),
    sealing: Option<&Encryption>,
    progress: Arc<dyn Progress>,
) -> Result<Transferred> {
    let (_, result) = source.get_archive(id, meta).await?;
    progress.phase(&format!("copying {id}"), Some(meta.stored_size()));
    let subject = format!("{id} in {}", source.storage().url());
    let recorded = meta.clone();
    let check_subject = subject.clone();
    let check = move |got: &Digests| recorded.check_stored_digests(&check_subject, got);
    let upload = Upload {
        reader: object_reader(result),
        subject,
        sealing: sealing.cloned(),
    };
    let uploaded = upload_checked(target, (writer, key), upload, check, progress.clone()).await?;
    progress.finish();
    let (read, sealed) = (uploaded.read, uploaded.sealed);
    let expected = sealed.as_ref().unwrap_or(&read);
    let reported = match &uploaded.parts {
        Some(parts) => store_checksum_matches(target, key, expected, parts).await?,
        None => false,
    };
    if !reported && let Err(e) = read_back(target, key, expected, id).await {
        target.storage().discard(key).await;
        return Err(e);
    }
    Ok(Transferred { read, sealed })
}

/// Whether the store reports, for the object at `key`, the size and the
/// SHA-256 checksum of the bytes that were sent (`parts`, whose digests
/// must be `expected`'s): it checked every part on receipt, so the
/// object need not be read back. `false` (then it is read back) when the
/// store reports no checksum, or one that differs.
async fn store_checksum_matches(
    target: &StoreBackups,
    key: &object_store::path::Path,
    expected: &Digests,
    parts: &crate::upload::PartDigests,
) -> Result<bool> {
    let Backend::S3(s3) = target.storage().backend() else {
        return Ok(false);
    };
    if parts.size != expected.size {
        return Ok(false);
    }
    let Some(want) = parts.s3_checksum(&expected.sha256_hex) else {
        return Ok(false);
    };
    let Some((size, got)) = s3.head_checksum(key).await? else {
        return Ok(false);
    };
    // Some stores (moto) leave out a composite checksum's `-N`.
    let bare = want.split_once('-').map_or(want.as_str(), |(b, _)| b);
    Ok(size == expected.size && (got == want || got == bare))
}

/// Reads the object at `key` back from `target`: its size and SHA-256
/// must be `expected`'s. The object is fetched in ranges of the target's
/// part size, as many at once as its upload concurrency (a single stream
/// from a cloud store is slower than the upload was), hashed in order.
async fn read_back(
    target: &StoreBackups,
    key: &object_store::path::Path,
    expected: &Digests,
    id: &BackupId,
) -> Result<()> {
    let store = target.store();
    let subject = format!("the copy of {id} read back from {key}");
    let size = store
        .head(key)
        .await
        .map_err(|e| Error::storage(key, e))?
        .size;
    if size != expected.size {
        return Err(Error::ChecksumMismatch {
            subject,
            what: "size",
            expected: expected.size.to_string(),
            actual: size.to_string(),
        });
    }
    let options = target.upload_options();
    let part = options.part_size.max(1 << 20) as u64;
    let ranges = (0..size.div_ceil(part)).map(|i| i * part..((i + 1) * part).min(size));
    let mut parts = futures::stream::iter(ranges)
        .map(|range| {
            let store = store.clone();
            async move { store.get_range(key, range).await }
        })
        .buffered(options.max_concurrency.max(1));
    let mut hasher = Hasher::sha256_only();
    while let Some(bytes) = parts.next().await {
        hasher.update(&bytes.map_err(|e| Error::storage(key, e))?);
    }
    let got = hasher.finish();
    let recorded = Metadata {
        size: expected.size,
        sha256: expected.sha256_hex.clone(),
        ..Default::default()
    };
    recorded.check_digests(&subject, &got)
}
