//! What every route shares: backup ids from the path and backups in the
//! CLI's `show --json` shape.

use backups_core::{BackupId, Metadata};
use serde_json::Value;

use crate::error::ApiError;

/// A backup id from the path; a malformed one (`..%2f...`) is a 400.
pub(crate) fn parse_id(id: &str) -> Result<BackupId, ApiError> {
    id.parse::<BackupId>()
        .map_err(|e| ApiError::usage(e.to_string()))
}

/// A backup as `show --json` prints it.
pub(crate) fn metadata_json(meta: &Metadata, pending: bool) -> Value {
    let mut v = serde_json::to_value(meta.for_sidecar()).unwrap_or_default();
    if pending {
        v["PendingRecovery"] = true.into();
    }
    v
}
