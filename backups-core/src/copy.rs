//! Copying backups to a second store ([`crate::StoreBackups::copy_to`]):
//! what to copy, and the report of what was copied, skipped and why a
//! backup failed.

pub use crate::ops::copy::{
    CopiedBackup, CopyReport, CopyRequest, CopySelection, FailedCopy, SkippedBackup,
};
