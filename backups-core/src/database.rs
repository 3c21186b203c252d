//! The database part of a backup, implemented by embedders
//! (backups-mongo provides MongoDB). A files-only backup needs none.

use std::io::Read;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// One file of a database dump, placed under `juju-backup/dump/`.
pub struct DumpEntry {
    /// Path below `dump/`, e.g. `juju/machines.bson`.
    pub path: String,
    /// Exact size in bytes (a tar header needs it before the data).
    pub size: u64,
    /// The bytes, exactly `size` of them.
    pub body: Box<dyn Read + Send>,
}

/// Where a dumper sends its files; they are appended to the archive in order.
#[derive(Clone)]
pub struct DumpSink {
    tx: mpsc::Sender<DumpMessage>,
}

/// What travels from the dumper to the archive writer: files, then the
/// dumper's own result, so a failed dump can never end as a complete archive.
pub(crate) enum DumpMessage {
    Entry(DumpEntry),
    Done(Result<DumpSummary>),
}

impl DumpSink {
    pub(crate) fn new(tx: mpsc::Sender<DumpMessage>) -> Self {
        DumpSink { tx }
    }

    /// Appends one file to the dump; waits while the archive writer is busy.
    pub async fn add(&self, entry: DumpEntry) -> Result<()> {
        let path = entry.path.clone();
        self.tx
            .send(DumpMessage::Entry(entry))
            .await
            .map_err(|_| Error::Cancelled(format!("archive writer stopped before dump/{path}")))
    }
}

/// What a dump contained.
#[derive(Debug, Clone, Default)]
pub struct DumpSummary {
    /// Document count per `db.collection`.
    pub collections: std::collections::BTreeMap<String, u64>,
    /// Anything worth telling the user (e.g. "not point-in-time").
    pub warnings: Vec<String>,
}

/// Dumps a database into the archive's `dump/` directory.
#[async_trait]
pub trait DatabaseDumper: Send + Sync {
    /// Sends every dump file to `sink`.
    async fn dump(&self, sink: DumpSink) -> Result<DumpSummary>;
}
