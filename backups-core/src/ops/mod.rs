//! The operations, as modules of free functions over the catalog
//! ([`StoreBackups`]): each takes what it needs as arguments and returns
//! its result; [`crate::Backups`] and the `StoreBackups` methods in
//! `backups.rs` are one-line calls into them.

pub(crate) mod add;
pub(crate) mod copy;
pub(crate) mod create;
pub(crate) mod diff;
pub(crate) mod download;
pub(crate) mod edit;
pub(crate) mod execute;
pub(crate) mod forget;
pub(crate) mod plan;
pub(crate) mod preflight;
pub(crate) mod restore;
pub(crate) mod verify;

use std::io::Read;
use std::sync::Arc;

use crate::archive::reader::{ArchiveSummary, RootVisitor, read_archive_hashed};
use crate::catalog::StoreBackups;
use crate::crypt::{Identities, sniff_age};
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::progress::Progress;
use crate::request::RestoreSource;

/// How a pass over an archive gets at the plain `.tar.gz`.
#[derive(Debug, Clone)]
pub(crate) enum Sealed {
    /// The bytes are the plain archive.
    Plain,
    /// The bytes are age-encrypted: decrypt them with these keys.
    Encrypted(Identities),
    /// Either (a local file): look at its first bytes. With `require`, a
    /// plain archive is refused.
    Unknown {
        /// Keys for an encrypted one.
        identities: Identities,
        /// Refuse a plain one.
        require: bool,
    },
}

impl Sealed {
    /// The plain archive read from `reader` (blocking: call it on a
    /// blocking thread).
    fn open(self, reader: Box<dyn Read + Send>, subject: &str) -> Result<Box<dyn Read + Send>> {
        match self {
            Sealed::Plain => Ok(reader),
            Sealed::Encrypted(identities) => identities.open(reader, subject),
            Sealed::Unknown {
                identities,
                require,
            } => {
                let (age, reader) =
                    sniff_age(reader).map_err(|e| Error::io("reading", subject, e))?;
                match (age, require) {
                    (true, _) => identities.open(reader, subject),
                    (false, true) => Err(not_encrypted(subject)),
                    (false, false) => Ok(reader),
                }
            }
        }
    }
}

/// The error for a plain backup where encryption is required.
/// What a pass over a restore source starts from: the name to show, the
/// stored backup's committed metadata (none for a local file) and how its
/// bytes are sealed. An encrypted stored backup without identities is
/// refused here, and with `require_encryption` a plain one.
pub(crate) async fn open_source(
    backups: &StoreBackups,
    source: &RestoreSource,
    identities: &Identities,
    require_encryption: bool,
) -> Result<(String, Option<Metadata>, Sealed)> {
    let (subject, recorded) = match source {
        RestoreSource::Id(id) => (id.to_string(), Some(backups.committed(id).await?)),
        RestoreSource::File(p) => (p.display().to_string(), None),
    };
    let sealed = match &recorded {
        Some(meta) if meta.encryption.is_some() => {
            if identities.is_empty() {
                let with_passphrase = meta.encryption.as_ref().is_some_and(|e| e.passphrase);
                return Err(Error::Encrypted {
                    subject,
                    reason: if with_passphrase {
                        "the backup is encrypted with a passphrase and none was given (--passphrase-file FILE)"
                    } else {
                        "the backup is encrypted and no identity was given (--identity FILE)"
                    }
                    .into(),
                });
            }
            Sealed::Encrypted(identities.clone())
        }
        Some(_) if require_encryption => return Err(not_encrypted(&subject)),
        Some(_) => Sealed::Plain,
        None => Sealed::Unknown {
            identities: identities.clone(),
            require: require_encryption,
        },
    };
    Ok((subject, recorded, sealed))
}

pub(crate) fn not_encrypted(subject: &str) -> Error {
    Error::NotEncrypted {
        subject: subject.to_string(),
    }
}

/// Runs one pass over an archive on a blocking thread.
pub(crate) async fn scan<V>(
    reader: Box<dyn Read + Send>,
    sealed: Sealed,
    subject: String,
    visitor: V,
    progress: Arc<dyn Progress>,
) -> Result<(ArchiveSummary, V)>
where
    V: RootVisitor + Send + 'static,
{
    scan_hashed(
        reader,
        sealed,
        subject,
        visitor,
        progress,
        Hasher::default(),
    )
    .await
}

/// [`scan`], computing only the archive digests `hasher` computes.
pub(crate) async fn scan_hashed<V>(
    reader: Box<dyn Read + Send>,
    sealed: Sealed,
    subject: String,
    mut visitor: V,
    progress: Arc<dyn Progress>,
    hasher: Hasher,
) -> Result<(ArchiveSummary, V)>
where
    V: RootVisitor + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let reader = sealed.open(reader, &subject)?;
        let summary = read_archive_hashed(reader, &subject, Some(&mut visitor), progress, hasher)?;
        Ok((summary, visitor))
    })
    .await
    .map_err(|e| Error::task("the archive reader", e))?
}
