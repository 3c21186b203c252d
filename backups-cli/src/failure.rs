//! What a failed command reports: its message (with the error's causes and
//! a hint on what to do) and its exit code.
//!
//! The exit codes are written once, in [`EXIT_CODES`]; `backups --help`
//! prints that table, and [`Failure::from`] maps each [`Error`] variant to
//! one of its codes.

use backups_core::{Error, InputKind};

/// Success.
pub const SUCCESS: u8 = 0;
/// Any other error, including bugs in backups ([`Error::Internal`]).
pub const OTHER: u8 = 1;
/// Bad arguments.
pub const USAGE: u8 = 2;
/// No backup with that id.
pub const NOT_FOUND: u8 = 3;
/// A different backup already exists under the id.
pub const CONFLICT: u8 = 4;
/// Checksum mismatch, invalid or unsafe archive, incompatible backup.
pub const VERIFICATION: u8 = 5;
/// The store failed, or its URL is bad.
pub const STORAGE: u8 = 6;
/// A local file could not be read or written.
pub const LOCAL_FILE: u8 = 7;
/// MongoDB failed.
pub const DATABASE: u8 = 8;
/// Another process holds the store's lease, or ours was lost.
pub const LOCKED: u8 = 9;
/// A restore failed and was rolled back.
pub const ROLLED_BACK: u8 = 10;
/// A restore failed and so did its rollback.
pub const ROLLBACK_FAILED: u8 = 11;
/// A service hook failed.
pub const HOOK: u8 = 12;
/// An encrypted backup could not be decrypted (no identity, a wrong one),
/// or a plain one was refused where encryption is required.
pub const ENCRYPTION: u8 = 13;
/// `diff --exit-code`: the backup and the live state differ.
pub const DIFFERENT: u8 = 14;
/// A backup still under an object lock was asked to be removed.
pub const RETAINED: u8 = 15;
/// A backups server (--remote) refused the request: no valid token, or
/// not permitted for this token's role.
pub const NOT_PERMITTED: u8 = 16;
/// Interrupted or cancelled.
pub const INTERRUPTED: u8 = 130;

/// Every exit code and what it means, as `backups --help` lists them.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (SUCCESS, "success"),
    (OTHER, "other error"),
    (USAGE, "usage error (bad arguments)"),
    (NOT_FOUND, "backup not found"),
    (
        CONFLICT,
        "conflict: a different backup already exists under this id",
    ),
    (
        VERIFICATION,
        "verification failed: checksum mismatch, invalid or unsafe archive, incompatible backup",
    ),
    (
        STORAGE,
        "storage error (store unreachable, access denied, bad store URL)",
    ),
    (
        LOCAL_FILE,
        "local file error (cannot read a source, cannot write a target)",
    ),
    (
        DATABASE,
        "database error (MongoDB unreachable, authentication, dump or load failed)",
    ),
    (
        LOCKED,
        "the store is locked by another restore, remove or gc",
    ),
    (
        ROLLED_BACK,
        "restore failed and was rolled back to its pre-restore safety backup",
    ),
    (
        ROLLBACK_FAILED,
        "restore failed and so did the rollback (the message says what to run)",
    ),
    (HOOK, "a service hook failed before anything was changed"),
    (
        ENCRYPTION,
        "cannot decrypt (no identity or a wrong one), or a plain backup where encryption is required",
    ),
    (
        DIFFERENT,
        "diff --exit-code: the backup and the live state differ",
    ),
    (
        RETAINED,
        "retained: immutable until T (remove of a backup under an object lock)",
    ),
    (
        NOT_PERMITTED,
        "not permitted for this token's role, or no valid token (--remote)",
    ),
    (INTERRUPTED, "interrupted (nothing was committed)"),
];

/// [`EXIT_CODES`] as help text, one indented line each.
pub fn exit_codes_help() -> String {
    EXIT_CODES
        .iter()
        .map(|(code, meaning)| format!("  {code:<2} {meaning}\n"))
        .collect()
}

/// The result of a command.
pub type CliResult = Result<(), Failure>;

/// A failure to report: the message (with its causes) and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What to print after `error: `.
    pub message: String,
    /// The process's exit code, one of [`EXIT_CODES`].
    pub code: u8,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A failure travels through the scheduler as a job's error.
impl std::error::Error for Failure {}

impl Failure {
    /// A usage error (exit 2): bad or missing arguments.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: USAGE,
        }
    }
}

/// After each failure of a batch was reported on stderr: the first one's
/// exit code with `summary` as its message, or success when none failed.
pub fn some_failed(first: Option<Failure>, summary: &str) -> CliResult {
    match first {
        Some(mut f) => {
            f.message = summary.into();
            Err(f)
        }
        None => Ok(()),
    }
}

/// A retention run's removals that failed: each named on stderr; the
/// first one's exit code (success when none failed).
pub fn failed_removals(failed: Vec<(backups_core::BackupId, Error)>) -> CliResult {
    let mut first_error = None;
    for (id, e) in failed {
        let f = Failure::from(e);
        stderr_line!("error: could not remove {id}: {}", f.message);
        first_error.get_or_insert(f);
    }
    some_failed(first_error, "some backups could not be removed (see above)")
}

/// A local I/O failure (exit 7) while doing `what`.
pub fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure {
        message: format!("{what}: {e}"),
        code: LOCAL_FILE,
    }
}

/// The exit code for an error.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::NotFound { .. } => NOT_FOUND,
        Error::AlreadyExists { .. } => CONFLICT,
        Error::ChecksumMismatch { .. }
        | Error::InvalidArchive { .. }
        | Error::UnreadableSidecar { .. }
        | Error::UnsafePath { .. }
        | Error::Incompatible { .. } => VERIFICATION,
        Error::Storage { .. }
        | Error::NoStore { .. }
        | Error::AppendOnly { .. }
        | Error::NoObjectLock { .. } => STORAGE,
        Error::ImmutableUnsupported { .. } => USAGE,
        Error::Retained { .. } => RETAINED,
        Error::PendingRecovery { .. } => USAGE,
        Error::InvalidInput {
            what: InputKind::StoreUrl,
            ..
        } => STORAGE,
        Error::InvalidInput { .. } => USAGE,
        Error::Io { .. } | Error::JujuConfig { .. } => LOCAL_FILE,
        Error::Database { .. } => DATABASE,
        Error::Locked { .. } | Error::LeaseLost { .. } => LOCKED,
        Error::RolledBack { .. } => ROLLED_BACK,
        Error::RollbackFailed { .. } => ROLLBACK_FAILED,
        Error::Hook { .. } => HOOK,
        Error::Encrypted { .. } | Error::NotEncrypted { .. } => ENCRYPTION,
        Error::VerificationFailed { .. } => VERIFICATION,
        Error::RetentionFailed { cause, .. } => exit_code(cause),
        Error::Cancelled(_) => INTERRUPTED,
        Error::Remote { kind, .. } => remote_exit_code(kind),
        Error::Internal { .. } => OTHER,
        _ => OTHER,
    }
}

/// The exit code for the kind of error a backups server reported
/// ([`backups_server::ErrorKind`]'s names; `unreachable` is the client's).
pub fn remote_exit_code(kind: &str) -> u8 {
    match kind {
        "unauthorized" | "forbidden" => NOT_PERMITTED,
        "usage" | "too-large" | "not-configured" => USAGE,
        "not-found" => NOT_FOUND,
        "conflict" => CONFLICT,
        "verification" => VERIFICATION,
        "storage" | "unreachable" => STORAGE,
        "local-file" => LOCAL_FILE,
        "database" => DATABASE,
        "locked" => LOCKED,
        "rolled-back" => ROLLED_BACK,
        "rollback-failed" => ROLLBACK_FAILED,
        "hook" => HOOK,
        "encryption" => ENCRYPTION,
        _ => OTHER,
    }
}

/// The server's kind of error for an exit code (the inverse of
/// [`remote_exit_code`]), for what `backups serve` runs through the CLI's
/// own code (create).
pub fn remote_kind(code: u8) -> backups_server::ErrorKind {
    use backups_server::ErrorKind as K;
    match code {
        USAGE => K::Usage,
        NOT_FOUND => K::NotFound,
        CONFLICT => K::Conflict,
        VERIFICATION => K::Verification,
        STORAGE => K::Storage,
        LOCAL_FILE => K::LocalFile,
        DATABASE => K::Database,
        LOCKED => K::Locked,
        HOOK => K::Hook,
        ENCRYPTION => K::Encryption,
        _ => K::Other,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = exit_code(&e);
        let mut message = e.to_string();
        if let Error::NoStore {
            not_a_directory: false,
            ..
        } = &e
        {
            message.push_str(" (create one with `backups create`)");
        }
        // A database error's message already says what the server said; its
        // source, the driver's error, would add a hex dump of the reply.
        let mut source = match &e {
            Error::Database { .. } => None,
            _ => std::error::Error::source(&e),
        };
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(&format!("\n  caused by: {text}"));
            }
            source = cause.source();
        }
        if let Some(hint) = hint(&e, &message) {
            message.push_str(&format!("\n  hint: {hint}"));
        }
        Failure { message, code }
    }
}

const HINT_REMOTE_TOKEN: &str = "give the token `backups token generate` printed, in a file: --remote-token-file FILE (or $BACKUPS_REMOTE_TOKEN_FILE); its line must be in the server's --tokens-file";
const HINT_REMOTE_ROLE: &str = "read tokens may list, show and download; append tokens also create, upload, verify, label and edit notes; only operator tokens remove, forget and restore";
const HINT_LIST: &str = "run `backups list` to see the backups in this store";
const HINT_UNREADABLE_SIDECAR: &str = "`backups list` skips this sidecar; `backups gc` lists it and `backups gc --yes` (or `backups remove ID`) deletes it";
const HINT_PENDING_RECOVERY: &str = "to undo the unfinished restore: `backups restore ID --target / --yes` with this id (and the restore's --mongo-uri and hooks); `remove --force` removes it anyway";
const HINT_LOCKED: &str = "another restore, remove or gc is running; wait for it. A holder that crashed on this host is taken over at once; one from another host once its lease expires (or, if it is surely gone, `backups unlock --force`)";
const HINT_NO_CREDENTIALS: &str = "no usable credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AZURE_STORAGE_ACCOUNT_NAME/KEY)";
const HINT_NO_BUCKET: &str = "the bucket or container does not exist: create it first";
const HINT_DELETE_DENIED: &str = "these credentials may not delete: open the store with --store-option append_only=true (create, upload and copy then never delete; run remove, forget and gc with credentials that may)";
const HINT_ACCESS_DENIED: &str =
    "access denied: check the credentials (AWS_*, AZURE_* environment variables)";
const HINT_DISK_FULL: &str = "that filesystem is full (df -h shows it): free space there and run the command again; a create left nothing behind, a restore's temporary file was removed";
const HINT_ENCRYPTED: &str = "give the identity the backup was encrypted to: --identity FILE (or $BACKUPS_IDENTITY_FILE); `backups show ID` lists its recipients";
const HINT_PASSPHRASE: &str = "give the passphrase the backup was encrypted with: --passphrase-file FILE (its first line); `backups show ID` says whether a passphrase or recipients were used";
const HINT_NOT_ENCRYPTED: &str = "the backup was stored unencrypted: restore it without --require-encryption, or make encrypted ones (--encrypt-to)";
const HINT_ALLOW_HTTP: &str = "an http:// endpoint needs --allow-http (or AWS_ALLOW_HTTP=true)";
const HINT_UNREACHABLE: &str =
    "the store is unreachable: check the URL, --endpoint and the network";

/// What to do about common failures. `message` is the error with its
/// causes, for the cases the error's type does not tell apart.
fn hint(e: &Error, message: &str) -> Option<&'static str> {
    match e {
        Error::NotFound { .. } => Some(HINT_LIST),
        Error::Remote { kind, .. } if kind == "unauthorized" => Some(HINT_REMOTE_TOKEN),
        Error::Remote { kind, .. } if kind == "forbidden" => Some(HINT_REMOTE_ROLE),
        Error::UnreadableSidecar { .. } => Some(HINT_UNREADABLE_SIDECAR),
        Error::PendingRecovery { .. } => Some(HINT_PENDING_RECOVERY),
        Error::Locked { .. } => Some(HINT_LOCKED),
        Error::Encrypted { reason, .. } if reason.contains("passphrase") => Some(HINT_PASSPHRASE),
        Error::Encrypted { .. } => Some(HINT_ENCRYPTED),
        Error::NotEncrypted { .. } => Some(HINT_NOT_ENCRYPTED),
        Error::InvalidInput {
            what: InputKind::StoreUrl,
            reason,
            ..
        } if reason.contains("URL scheme is not allowed") => Some(HINT_ALLOW_HTTP),
        // object_store refuses the request itself (its client allows https only).
        Error::Storage { .. } if message.contains("URL scheme is not allowed") => {
            Some(HINT_ALLOW_HTTP)
        }
        Error::Storage { source, .. } => storage_hint(source, message),
        _ => disk_full(message).then_some(HINT_DISK_FULL),
    }
}

/// Hints for the object store's errors: by variant where object_store has
/// one, by the server's words where it does not (a list request's failures
/// and credential look-ups are all `Generic`; a missing bucket and a missing
/// object are both `NotFound`).
fn storage_hint(e: &object_store::Error, message: &str) -> Option<&'static str> {
    match e {
        // 403: the credentials were accepted but may not do this.
        object_store::Error::PermissionDenied { .. } => Some(HINT_ACCESS_DENIED),
        // 401: no credentials, or ones the store does not know.
        object_store::Error::Unauthenticated { .. } => Some(HINT_NO_CREDENTIALS),
        object_store::Error::NotFound { .. } if bucket_missing(message) => Some(HINT_NO_BUCKET),
        object_store::Error::Generic { .. } => {
            if message.contains("DeleteObjects request failed") && message.contains("AccessDenied")
            {
                Some(HINT_DELETE_DENIED)
            } else if message.contains("169.254.169.254")
                || message.to_lowercase().contains("credential")
            {
                Some(HINT_NO_CREDENTIALS)
            } else if bucket_missing(message) {
                Some(HINT_NO_BUCKET)
            } else if message.contains("403")
                || message.contains("AccessDenied")
                || message.contains("InvalidAccessKeyId")
            {
                Some(HINT_ACCESS_DENIED)
            } else if disk_full(message) {
                Some(HINT_DISK_FULL)
            } else if message.contains("Connect") || message.contains("dns error") {
                Some(HINT_UNREACHABLE)
            } else {
                None
            }
        }
        _ => disk_full(message).then_some(HINT_DISK_FULL),
    }
}

/// The S3 or Azure error code for a missing bucket or container.
fn bucket_missing(message: &str) -> bool {
    message.contains("NoSuchBucket") || message.contains("ContainerNotFound")
}

/// ENOSPC, in whatever error carried it.
fn disk_full(message: &str) -> bool {
    message.contains("No space left on device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_code_once_in_order() {
        let help = exit_codes_help();
        assert!(help.starts_with("  0  success\n"), "{help}");
        assert!(
            help.contains("\n  10 restore failed and was rolled back"),
            "{help}"
        );
        assert!(
            help.ends_with("  130 interrupted (nothing was committed)\n"),
            "{help}"
        );
        let codes: Vec<u8> = EXIT_CODES.iter().map(|(c, _)| *c).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
    }

    #[test]
    fn bugs_and_cancellation_have_their_own_codes() {
        assert_eq!(Failure::from(Error::internal("broken")).code, OTHER);
        assert_eq!(
            Failure::from(Error::Cancelled("upload".into())).code,
            INTERRUPTED
        );
    }

    #[test]
    fn storage_hints_follow_object_store_variants() {
        let storage = |source| Error::Storage {
            key: "k".into(),
            source,
        };
        let denied = Failure::from(storage(object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "forbidden".into(),
        }));
        assert_eq!(denied.code, STORAGE);
        assert!(
            denied.message.ends_with(HINT_ACCESS_DENIED),
            "{}",
            denied.message
        );
        let unknown = Failure::from(storage(object_store::Error::Unauthenticated {
            path: "k".into(),
            source: "401".into(),
        }));
        assert!(
            unknown.message.ends_with(HINT_NO_CREDENTIALS),
            "{}",
            unknown.message
        );
        let no_bucket = Failure::from(storage(object_store::Error::Generic {
            store: "S3",
            source: "<Code>NoSuchBucket</Code>".into(),
        }));
        assert!(
            no_bucket.message.ends_with(HINT_NO_BUCKET),
            "{}",
            no_bucket.message
        );
        let missing_object = Failure::from(storage(object_store::Error::NotFound {
            path: "k".into(),
            source: "no such key".into(),
        }));
        assert!(
            !missing_object.message.contains("hint:"),
            "{}",
            missing_object.message
        );
    }
}
