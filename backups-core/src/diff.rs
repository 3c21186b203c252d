//! Comparing a backup with the live state a restore would change
//! ([`crate::StoreBackups::diff`]): the report's parts.

pub use crate::database::CollectionDiff;
pub use crate::ops::diff::{FileCounts, FileDifference, FileKind, FileState, FilesDiff};
