//! What a refused or failed request answers: an HTTP status and a JSON
//! body `{"Error": MESSAGE, "Kind": KIND}`. The kind is what a client maps
//! back to its own error (the CLI: to its exit code).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backups_core::{Error, InputKind};

/// The kinds of error a server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No valid token (401).
    Unauthorized,
    /// The token's role does not permit it (403).
    Forbidden,
    /// A bad request: a malformed id, body or argument (400).
    Usage,
    /// No such backup (404).
    NotFound,
    /// A different backup exists under the id (409).
    Conflict,
    /// Checksum mismatch, invalid, unsafe or incompatible archive (422).
    Verification,
    /// An upload above the server's limit (413).
    TooLarge,
    /// The store failed (502).
    Storage,
    /// A local file on the server failed (500).
    LocalFile,
    /// The database failed (502).
    Database,
    /// The store's lease is held (423).
    Locked,
    /// Cannot decrypt, or encryption required (422).
    Encryption,
    /// A restore failed and was rolled back (500).
    RolledBack,
    /// A restore failed and so did its rollback (500).
    RollbackFailed,
    /// A service hook failed (500).
    Hook,
    /// The server is not configured for this (501).
    NotConfigured,
    /// Anything else (500).
    Other,
}

impl ErrorKind {
    /// The kind's name in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Usage => "usage",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Verification => "verification",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::Storage => "storage",
            ErrorKind::LocalFile => "local-file",
            ErrorKind::Database => "database",
            ErrorKind::Locked => "locked",
            ErrorKind::Encryption => "encryption",
            ErrorKind::RolledBack => "rolled-back",
            ErrorKind::RollbackFailed => "rollback-failed",
            ErrorKind::Hook => "hook",
            ErrorKind::NotConfigured => "not-configured",
            ErrorKind::Other => "other",
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Usage => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Verification | ErrorKind::Encryption => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Storage | ErrorKind::Database => StatusCode::BAD_GATEWAY,
            ErrorKind::Locked => StatusCode::LOCKED,
            ErrorKind::NotConfigured => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A request's failure: its kind and message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What failed, naming the id or path.
    pub message: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// A bad request (400).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// The kind of a library error (the same grouping as the CLI's exit codes).
pub fn kind_of(e: &Error) -> ErrorKind {
    match e {
        Error::NotFound { .. } => ErrorKind::NotFound,
        Error::AlreadyExists { .. } => ErrorKind::Conflict,
        Error::ChecksumMismatch { .. }
        | Error::InvalidArchive { .. }
        | Error::UnreadableSidecar { .. }
        | Error::UnsafePath { .. }
        | Error::Incompatible { .. }
        | Error::VerificationFailed { .. } => ErrorKind::Verification,
        Error::Storage { .. } | Error::NoStore { .. } | Error::AppendOnly { .. } => {
            ErrorKind::Storage
        }
        Error::InvalidInput {
            what: InputKind::StoreUrl,
            ..
        } => ErrorKind::Storage,
        Error::PendingRecovery { .. } | Error::InvalidInput { .. } => ErrorKind::Usage,
        Error::Io { .. } | Error::JujuConfig { .. } => ErrorKind::LocalFile,
        Error::Database { .. } => ErrorKind::Database,
        Error::Locked { .. } | Error::LeaseLost { .. } => ErrorKind::Locked,
        Error::RolledBack { .. } => ErrorKind::RolledBack,
        Error::RollbackFailed { .. } => ErrorKind::RollbackFailed,
        Error::Hook { .. } => ErrorKind::Hook,
        Error::Encrypted { .. } | Error::NotEncrypted { .. } => ErrorKind::Encryption,
        Error::RetentionFailed { cause, .. } => kind_of(cause),
        _ => ErrorKind::Other,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let kind = kind_of(&e);
        let mut message = e.to_string();
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
        ApiError { kind, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"Error": self.message, "Kind": self.kind.as_str()});
        (self.kind.status(), axum::Json(body)).into_response()
    }
}
