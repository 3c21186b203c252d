//! Add: validate an existing archive in full, then upload it unchanged
//! (hashing it again on the way) and commit it under the id its metadata
//! gives.

use std::io::Read;
use std::sync::Arc;

use crate::catalog::{Commit, StoreBackups, Writer};
use crate::crypt::{Encryption, Sealer, sniff_age};
use crate::digest::{Digests, HashingWriter};
use crate::error::{Error, Result};
use crate::extract::{ExtractOptions, RootCheck};
use crate::metadata::CHECKSUM_FORMAT;
use crate::progress::Progress;
use crate::request::{AddOutcome, ArchiveSource};
use crate::storage::Storage;
use crate::upload::{PartDigests, upload_hashing_parts};

use super::create::encryption_info;
use super::{Sealed, scan};

/// Validates an existing archive and stores it (see [`crate::Backups::add`]).
pub(crate) async fn add(
    backups: &StoreBackups,
    source: ArchiveSource,
    encryption: Option<Encryption>,
    progress: Arc<dyn Progress>,
) -> Result<AddOutcome> {
    let subject = source.subject();
    let (encrypted, _) =
        sniff_age(source.open()?).map_err(|e| Error::io("reading", &subject, e))?;
    if encrypted {
        return Err(Error::invalid(
            &subject,
            "the archive is encrypted (age): upload the plain archive (age -d) and give --encrypt-to to store it encrypted",
        ));
    }
    progress.phase("validating", None);
    let (summary, check) = scan(
        source.open()?,
        Sealed::Plain,
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
    meta.compression = sniff_compression(&source, &subject)?.to_string();
    let id = meta.derive_id(&subject)?;
    let digests = summary.digests;
    if let Some(existing) = backups.sidecar(&id).await? {
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
    let writer = backups.writer().await?;
    progress.phase("uploading", Some(digests.size));
    meta.archive = Storage::new_archive_name(&id, &meta.compression, encryption.is_some());
    let key = backups.storage().key(&meta.archive);
    let stored = upload_validated(
        backups,
        (&writer, &key),
        &source,
        digests.clone(),
        encryption.clone(),
        progress.clone(),
    )
    .await?;
    if let (Some(e), Some(stored)) = (&encryption, stored) {
        meta.encryption = Some(encryption_info(e, &stored));
    }
    meta.id = Some(id);
    meta.checksum = digests.sha1_base64;
    meta.checksum_format = CHECKSUM_FORMAT.to_string();
    meta.size = digests.size;
    meta.sha256 = digests.sha256_hex;
    meta.stored = Some(time::OffsetDateTime::now_utc());
    let s = &check.stats;
    if meta.file_count.is_none() && summary.has_root_tar {
        meta.file_count = Some(s.files + s.directories + s.symlinks + s.hard_links + s.devices);
    }
    meta.device_nodes = s.devices;
    if summary.has_root_tar {
        meta.file_bytes = Some(s.bytes);
    }
    let outcome = match backups.commit(&mut meta, &key, false, &writer).await? {
        Commit::Written => AddOutcome {
            metadata: meta.for_sidecar(),
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

/// Uploads the archive at `source` (sealed as `sealing` says), checking
/// that the bytes read are those validated (`expected`); the stored
/// object's digests when it is encrypted.
async fn upload_validated(
    backups: &StoreBackups,
    (writer, key): (&Writer, &object_store::path::Path),
    source: &ArchiveSource,
    expected: Digests,
    sealing: Option<Encryption>,
    progress: Arc<dyn Progress>,
) -> Result<Option<Digests>> {
    let subject = source.subject();
    let check_subject = subject.clone();
    let check = move |got: &Digests| {
        if *got != expected {
            return Err(Error::ChecksumMismatch {
                subject: check_subject,
                what: "SHA-1",
                expected: expected.sha1_base64,
                actual: got.sha1_base64.clone(),
            });
        }
        Ok(())
    };
    let upload = Upload {
        reader: source.open()?,
        subject,
        sealing,
    };
    let uploaded = upload_checked(backups, (writer, key), upload, check, progress).await?;
    Ok(uploaded.sealed)
}

/// What [`upload_checked`] uploads: the bytes of `reader` (named `subject`
/// in errors), sealed for `sealing`'s recipients when it is given.
pub(crate) struct Upload {
    /// The bytes.
    pub(crate) reader: Box<dyn Read + Send>,
    /// What they are, for errors.
    pub(crate) subject: String,
    /// Encrypt them on the way.
    pub(crate) sealing: Option<Encryption>,
}

/// What [`upload_checked`] stored.
pub(crate) struct Uploaded {
    /// The digests of the bytes read.
    pub(crate) read: Digests,
    /// When they were sealed, the digests of the stored object.
    pub(crate) sealed: Option<Digests>,
    /// Through a checksummed writer: the SHA-256 of each stored part.
    pub(crate) parts: Option<PartDigests>,
}

/// Streams `upload` into a (multipart) upload at `key`, hashing the bytes
/// read; the upload is completed only if `check` accepts their digests
/// (else it is aborted and nothing is stored). Returns the digests of the
/// bytes read and, when they were sealed, of the stored object.
pub(crate) async fn upload_checked(
    backups: &StoreBackups,
    (writer, key): (&Writer, &object_store::path::Path),
    upload: Upload,
    check: impl FnOnce(&Digests) -> Result<()> + Send + 'static,
    progress: Arc<dyn Progress>,
) -> Result<Uploaded> {
    let Upload {
        mut reader,
        subject,
        sealing,
    } = upload;
    let ((read, sealed), parts) = upload_hashing_parts(
        writer.store.clone(),
        key,
        backups.upload_options(),
        backups.cancellation(),
        writer.checksummed,
        move |out| {
            // The bytes are hashed as they are read; the sealer hashes
            // what is stored.
            let mut hashing = HashingWriter::new(Sealer::new(out, sealing.as_ref())?);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("reading", &subject, e)),
                };
                if n == 0 {
                    break;
                }
                std::io::Write::write_all(&mut hashing, &buf[..n])
                    .map_err(|e| Error::io("uploading", &subject, e))?;
                progress.advance(n as u64);
            }
            let (sealed, got) = hashing.finish();
            check(&got)?;
            let (_, stored) = sealed
                .finish()
                .map_err(|e| Error::io("encrypting", &subject, e))?;
            Ok((got, stored))
        },
    )
    .await?;
    Ok(Uploaded {
        read,
        sealed,
        parts,
    })
}

/// `zstd` or `gzip`, by the archive's first bytes (validated already).
fn sniff_compression(source: &ArchiveSource, subject: &str) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let mut reader = source.open()?;
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading", subject, e)),
        }
    }
    Ok(if head == [0x28, 0xb5, 0x2f, 0xfd] {
        "zstd"
    } else {
        "gzip"
    })
}
