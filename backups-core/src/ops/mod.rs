//! The operations, as modules of free functions over the catalog
//! ([`StoreBackups`]): each takes what it needs as arguments and returns
//! its result; [`crate::Backups`] and the `StoreBackups` methods in
//! `backups.rs` are one-line calls into them.

pub(crate) mod add;
pub(crate) mod create;
pub(crate) mod download;
pub(crate) mod plan;
pub(crate) mod preflight;
pub(crate) mod restore;

use std::io::Read;
use std::sync::Arc;

use crate::archive::reader::{ArchiveSummary, RootVisitor, read_archive};
use crate::catalog::StoreBackups;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Runs one pass over an archive on a blocking thread.
pub(crate) async fn scan<V>(
    reader: Box<dyn Read + Send>,
    subject: String,
    mut visitor: V,
    progress: Arc<dyn Progress>,
) -> Result<(ArchiveSummary, V)>
where
    V: RootVisitor + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let summary = read_archive(reader, &subject, Some(&mut visitor), progress)?;
        Ok((summary, visitor))
    })
    .await
    .map_err(|e| Error::task("the archive reader", e))?
}

/// Runs `work` while holding the store's lease for `operation`.
pub(crate) async fn locked<T>(
    backups: &StoreBackups,
    operation: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    crate::lease::with_lease(backups.storage(), backups.holder(), operation, work).await
}
