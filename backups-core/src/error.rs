//! The one public error type.
//!
//! Policy: every failure a caller may want to react to differently is its own
//! variant (not found, conflict, integrity, unsafe input, storage, I/O...).
//! Each variant carries what a user needs to act on it: the backup id, the
//! object key or file path, and the expected and actual values. Lower-level
//! errors (object_store, std::io, serde_json) are kept as `source` so the
//! CLI can print the whole chain once. Nothing in this crate prints.

use std::path::PathBuf;

use crate::id::BackupId;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in backups-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No backup with this id exists in the store (no committed sidecar).
    #[error("backup {id} not found")]
    NotFound {
        /// The id that was looked up.
        id: BackupId,
    },
    /// A different backup already exists under this id.
    #[error(
        "backup {id} already exists with different content (stored checksum {existing}, new checksum {new})"
    )]
    AlreadyExists {
        /// The conflicting id.
        id: BackupId,
        /// SHA-1 (base64) of the stored archive.
        existing: String,
        /// SHA-1 (base64) of the archive that was refused.
        new: String,
    },
    /// The archive bytes do not match the recorded checksum or size.
    #[error("{what} mismatch for {subject}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// Which backup or entry was checked.
        subject: String,
        /// "SHA-1", "SHA-256" or "size".
        what: &'static str,
        /// Value recorded when the backup was made.
        expected: String,
        /// Value computed from the bytes read now.
        actual: String,
    },
    /// The archive is not a valid backup archive (not gzip, wrong layout,
    /// unreadable metadata, missing entry...).
    #[error("invalid archive {subject}: {reason}")]
    InvalidArchive {
        /// Backup id, file name or entry the problem was found in.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// A backup's sidecar (`<id>.json`) cannot be read or does not describe
    /// a backup (not JSON, empty, another id, required fields missing).
    /// Listings skip such a sidecar; `gc` lists it as garbage.
    #[error("unreadable sidecar {key}: {reason}")]
    UnreadableSidecar {
        /// The sidecar's object key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The backup is needed to undo a restore that did not finish: a
    /// pending restore journal names it as that restore's pre-restore
    /// backup. Removing it would make the recovery impossible.
    #[error(
        "refusing to remove backup {id}: it is the pre-restore backup a restore that did not finish needs (journal {}); undo that restore first by restoring {id}, or delete the journal to keep what it did",
        journal.display()
    )]
    PendingRecovery {
        /// The protected backup.
        id: BackupId,
        /// The journal that names it.
        journal: PathBuf,
    },
    /// An archive entry would write outside the target or is of a refused kind.
    #[error("refusing archive entry {entry:?}: {reason}")]
    UnsafePath {
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The backup cannot be used here (format too new, wrong kind...).
    #[error("incompatible backup {subject}: {reason}")]
    Incompatible {
        /// What was checked.
        subject: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A backup id, store URL, pattern or URI could not be parsed.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// Which kind of input it was.
        what: InputKind,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The object store failed.
    #[error("storage error on {key}: {source}")]
    Storage {
        /// The object key (or prefix) being accessed.
        key: String,
        /// The underlying object_store error.
        #[source]
        source: object_store::Error,
    },
    /// A local store's directory does not exist (and was not to be
    /// created: [`crate::Storage::from_url_existing`]), or its path is not
    /// a directory.
    #[error("no store at {}{}", path.display(), if *not_a_directory { ": it is not a directory" } else { "" })]
    NoStore {
        /// The store's directory.
        path: PathBuf,
        /// The path exists but is not a directory.
        not_a_directory: bool,
    },
    /// An operation that deletes was asked of an append-only store
    /// ([`crate::storage::APPEND_ONLY_OPTION`]).
    #[error(
        "refusing to {operation} in {store}: the store is append-only (append_only=true never deletes); run it with credentials that may delete, without append_only"
    )]
    AppendOnly {
        /// The store's URL.
        store: String,
        /// What was refused (`remove`, `forget`, `gc`, `unlock`).
        operation: String,
    },
    /// Object locks were asked of a store that cannot keep them (a local
    /// or memory store; Azure and GCS are not supported yet).
    #[error("cannot make immutable backups in {store}: {reason}")]
    ImmutableUnsupported {
        /// The store's URL.
        store: String,
        /// Why (the backend named).
        reason: String,
    },
    /// Object locks were asked of an S3 bucket that has no Object Lock
    /// configuration (it must be created with Object Lock enabled).
    #[error("bucket {bucket} has no Object Lock configuration")]
    NoObjectLock {
        /// The bucket.
        bucket: String,
    },
    /// A backup still under an object lock cannot be removed.
    #[error("{id}: retained until {until} ({hint})")]
    Retained {
        /// The backup.
        id: crate::id::BackupId,
        /// When its lock ends (RFC 3339).
        until: String,
        /// What may still be done (`governance mode: --bypass-governance
        /// to override, if the credentials allow`, or that compliance mode
        /// cannot be overridden).
        hint: String,
    },
    /// The database dumper or loader failed.
    #[error("database error: {message}")]
    Database {
        /// What failed, with the namespace where known.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A local file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "creating", ...).
        action: &'static str,
        /// The local path involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A Juju machine agent's `agent.conf` is missing, unreadable as YAML
    /// or lacks a key the Juju profile needs.
    #[error("Juju agent config {path}: {reason}")]
    JujuConfig {
        /// The agent.conf (or the pattern that matched none or several).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another restore, remove or gc holds the store's lease.
    #[error(
        "the store is locked by {holder} ({operation}) since {since}; the lease expires at {expires}"
    )]
    Locked {
        /// Who holds the lease (host and process).
        holder: String,
        /// What they are doing.
        operation: String,
        /// When they took it.
        since: String,
        /// When it expires unless renewed.
        expires: String,
    },
    /// The store's lease was lost while an operation held it (see
    /// [`crate::lease::LeaseGuard::check`]); the operation stopped before
    /// its next change.
    #[error("lost the store's lease {key}: {reason}; stopped before changing anything more")]
    LeaseLost {
        /// The lease record's key.
        key: String,
        /// Why it was lost.
        reason: String,
    },
    /// A new backup was committed but failed its verification (a
    /// schedule's run: retention was not applied, the older backups stay).
    #[error("backup {id} was made but failed verification: {detail}")]
    VerificationFailed {
        /// The backup.
        id: BackupId,
        /// What the verification found.
        detail: String,
    },
    /// A retention run could not remove a backup it decided to remove.
    #[error("retention: removing {id}: {cause}")]
    RetentionFailed {
        /// The backup.
        id: BackupId,
        /// Why it could not be removed.
        cause: Box<Error>,
    },
    /// A restore step failed after services were stopped; the safety backup
    /// was restored and services started again.
    #[error("restore failed and was rolled back to safety backup {safety_backup}: {cause}")]
    RolledBack {
        /// The `pre-restore` backup that was put back.
        safety_backup: BackupId,
        /// What failed.
        cause: Box<Error>,
    },
    /// A restore step failed and so did the rollback: restore the safety
    /// backup by hand (`backups restore <id> --target /`).
    #[error(
        "restore failed ({cause}) and rolling back to safety backup {safety_backup} failed too ({rollback_error}); restore it by hand: backups restore {safety_backup} --target / --yes"
    )]
    RollbackFailed {
        /// The `pre-restore` backup to restore.
        safety_backup: BackupId,
        /// What failed first.
        cause: Box<Error>,
        /// Why the rollback failed.
        rollback_error: Box<Error>,
    },
    /// A service hook (stop, start, post-restore) failed.
    #[error("{hook} hook `{command}` failed: {detail}")]
    Hook {
        /// stop, start or post-restore.
        hook: &'static str,
        /// The command that ran.
        command: String,
        /// Exit status and the end of its stderr.
        detail: String,
    },
    /// An encrypted backup cannot be read: no identity, none that fits, or
    /// not a readable age file — or a plain one where encryption is required.
    #[error("cannot decrypt {subject}: {reason}")]
    Encrypted {
        /// The backup id or file.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A plain backup where encryption is required (`--require-encryption`).
    #[error("refusing {subject}: it is not encrypted, and encryption is required")]
    NotEncrypted {
        /// The backup id or file.
        subject: String,
    },
    /// The operation was cancelled (Ctrl-C, a cancellation token) before it
    /// completed; nothing was committed.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A backups server (`backups serve`) refused or failed a request;
    /// `kind` is its error's kind (`not-found`, `forbidden`, `storage`...),
    /// `status` the HTTP status (0 when it could not be reached).
    #[error("{message} (server {url}: {})", if *status == 0 { "unreachable".to_string() } else { format!("HTTP {status}") })]
    Remote {
        /// The server's URL.
        url: String,
        /// The HTTP status, or 0 when no answer came.
        status: u16,
        /// The kind of error the server reported.
        kind: String,
        /// The server's message.
        message: String,
    },
    /// A fault inside backups itself: a worker task panicked or stopped, an
    /// invariant did not hold. Never caused by the input; report it.
    #[error("internal error: {message} (this is a bug in backups: please report it)")]
    Internal {
        /// What went wrong, and where.
        message: String,
    },
}

/// Which kind of input an [`Error::InvalidInput`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputKind {
    /// A backup id (`YYYYMMDD-HHMMSS.<model-uuid>`).
    BackupId,
    /// The start time a backup id is made from.
    BackupTime,
    /// A store URL (`s3://`, `az://`, `gs://`, `file://`, a directory).
    StoreUrl,
    /// A file exclude pattern (glob).
    ExcludePattern,
    /// A database namespace pattern (`db.collection` glob).
    NamespacePattern,
    /// A MongoDB connection string.
    MongoUri,
    /// A MongoDB server address (`HOST:PORT`).
    MongoAddress,
    /// An encryption recipient (age `age1...`, `ssh-ed25519`, `ssh-rsa`).
    Recipient,
    /// An identity (private key) file or passphrase file.
    Identity,
    /// A cron expression (5 fields, or 6 with seconds).
    CronExpression,
    /// A scheduled job's name.
    JobName,
    /// A restore's `OLD=NEW` rewrite rule.
    RewriteRule,
    /// A restored-file path pattern (glob).
    PathPattern,
    /// A compression level.
    CompressionLevel,
    /// A byte range of a stored object (a resumed download's start).
    ByteRange,
    /// A backup's label (`[A-Za-z0-9._:/-]{1,64}`).
    Label,
    /// A schedule's notify URL (`http://` or `https://`).
    NotifyUrl,
    /// An immutable backup's lock (`--immutable-for`, `--immutable-mode`).
    Immutability,
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputKind::BackupId => "backup id",
            InputKind::Immutability => "object lock",
            InputKind::BackupTime => "backup start time",
            InputKind::StoreUrl => "store URL",
            InputKind::ExcludePattern => "exclude pattern",
            InputKind::NamespacePattern => "namespace pattern",
            InputKind::MongoUri => "MongoDB URI",
            InputKind::Recipient => "recipient",
            InputKind::Identity => "identity",
            InputKind::CronExpression => "cron expression",
            InputKind::JobName => "job name",
            InputKind::MongoAddress => "MongoDB address",
            InputKind::RewriteRule => "rewrite rule",
            InputKind::PathPattern => "path pattern",
            InputKind::CompressionLevel => "compression level",
            InputKind::Label => "label",
            InputKind::NotifyUrl => "notify URL",
            InputKind::ByteRange => "byte range",
        })
    }
}

impl From<crate::id::InvalidId> for Error {
    fn from(e: crate::id::InvalidId) -> Self {
        Error::InvalidInput {
            what: if e.start_time {
                InputKind::BackupTime
            } else {
                InputKind::BackupId
            },
            value: e.value,
            reason: e.reason,
        }
    }
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn storage(key: impl ToString, source: object_store::Error) -> Self {
        Error::Storage {
            key: key.to_string(),
            source,
        }
    }

    pub(crate) fn invalid(subject: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArchive {
            subject: subject.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Internal`] with this message.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
        }
    }

    /// A worker task that did not finish: [`Error::Cancelled`] when it was
    /// cancelled, else (it panicked) [`Error::Internal`].
    pub fn task(what: &str, e: tokio::task::JoinError) -> Self {
        if e.is_cancelled() {
            Error::Cancelled(format!("{what} was cancelled"))
        } else {
            Error::internal(format!("{what} failed: {e}"))
        }
    }

    pub(crate) fn unsafe_path(entry: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::UnsafePath {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}
