//! The database part of a backup, implemented by embedders
//! (backups-mongo provides MongoDB). A files-only backup needs none.

use std::io::{self, Read};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::rewrite::Rewrites;

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

impl std::fmt::Debug for DumpEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpEntry")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DumpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpSink").finish_non_exhaustive()
    }
}

/// What a dump contained.
#[derive(Debug, Clone, Default)]
pub struct DumpSummary {
    /// Document count per `db.collection`.
    pub collections: std::collections::BTreeMap<String, u64>,
    /// Anything worth telling the user (e.g. "not point-in-time").
    pub warnings: Vec<String>,
    /// The dump describes one instant (the oplog written meanwhile was
    /// captured and is replayed on load).
    pub point_in_time: bool,
}

/// Dumps a database into the archive's `dump/` directory.
#[async_trait]
pub trait DatabaseDumper: Send + Sync {
    /// Sends every dump file to `sink`.
    async fn dump(&self, sink: DumpSink) -> Result<DumpSummary>;
}

/// One file of a dump being loaded, read from the archive as it streams:
/// its bytes arrive in chunks (memory stays bounded whatever its size).
pub struct DumpFile {
    /// Path below `dump/`, e.g. `juju/machines.bson` or `oplog.bson`.
    pub path: String,
    /// Size in bytes, from the archive.
    pub size: u64,
    chunks: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
}

impl std::fmt::Debug for DumpFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DumpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpSource").finish_non_exhaustive()
    }
}

impl DumpFile {
    /// The next chunk of the file's bytes; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        match self.chunks.recv().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(Error::InvalidArchive {
                subject: format!("dump/{}", self.path),
                reason: format!("read failed: {e}"),
            }),
        }
    }
}

/// The dump files of an archive, in archive order.
pub struct DumpSource {
    rx: mpsc::Receiver<DumpFile>,
    rewrites: Option<Arc<Rewrites>>,
}

impl DumpSource {
    /// The restore's `OLD=NEW` rules ([`crate::RestoreRequest::rewrites`]):
    /// a loader applies them ([`Rewrites::rewrite_bson`]) to the documents
    /// of the collections they cover ([`Rewrites::applies_to_namespace`])
    /// and counts the replacements in [`LoadSummary::rewrites`].
    pub fn rewrites(&self) -> Option<&Arc<Rewrites>> {
        self.rewrites.as_ref()
    }

    /// The next file; `None` when the archive has no more dump files. Each
    /// file must be read to its end (or dropped) before the next one comes.
    pub async fn next_file(&mut self) -> Option<DumpFile> {
        self.rx.recv().await
    }
}

/// The sending half of a [`DumpSource`], fed from the archive reader's
/// blocking thread.
pub(crate) struct DumpForwarder {
    tx: mpsc::Sender<DumpFile>,
}

/// Creates a connected forwarder and source, the source carrying the
/// restore's rewrite rules.
pub(crate) fn dump_channel(rewrites: Option<Arc<Rewrites>>) -> (DumpForwarder, DumpSource) {
    let (tx, rx) = mpsc::channel(1);
    (DumpForwarder { tx }, DumpSource { rx, rewrites })
}

impl DumpForwarder {
    /// Streams one file to the loader (blocking; call from a blocking thread).
    pub(crate) fn forward(
        &self,
        path: &str,
        size: u64,
        body: &mut dyn std::io::Read,
    ) -> Result<()> {
        let (ctx, crx) = mpsc::channel(4);
        let file = DumpFile {
            path: path.to_string(),
            size,
            chunks: crx,
        };
        if self.tx.blocking_send(file).is_err() {
            // The loader stopped (it failed); its error is reported instead.
            return Ok(());
        }
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            match body.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    if ctx
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let msg = e.to_string();
                    let _ = ctx.blocking_send(Err(std::io::Error::new(e.kind(), msg)));
                    return Err(Error::InvalidArchive {
                        subject: format!("dump/{path}"),
                        reason: crate::archive::reader::describe_read_error(&e),
                    });
                }
            }
        }
    }
}

/// A read error inside the dump file `path`.
fn read_err(path: &str, e: io::Error) -> Error {
    Error::invalid(
        format!("dump/{path}"),
        crate::archive::reader::describe_read_error(&e),
    )
}

/// Largest BSON document accepted in a dump (MongoDB's 16 MiB + slack for
/// oplog entries); database loaders use the same limit.
pub const MAX_BSON_DOCUMENT: u64 = 16 * 1024 * 1024 + 16 * 1024;

/// Walks concatenated BSON documents by their length prefixes.
pub(crate) fn check_bson_framing(body: &mut dyn Read, path: &str) -> Result<()> {
    walk_bson(body, path, &mut |_| Ok(()))
}

/// Walks concatenated BSON documents by their length prefixes, checking
/// each one's framing, and hands each whole document to `visit`.
pub(crate) fn walk_bson(
    body: &mut dyn Read,
    path: &str,
    visit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let bad = |at: u64, reason: String| {
        Error::invalid(
            format!("dump/{path}"),
            format!("corrupt BSON at byte {at}: {reason}"),
        )
    };
    let mut at = 0u64;
    let mut doc = Vec::new();
    loop {
        let mut len_buf = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match body.read(&mut len_buf[got..]) {
                Ok(0) if got == 0 => return Ok(()),
                Ok(0) => return Err(bad(at, "truncated length prefix".into())),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(path, e)),
            }
        }
        let len = i32::from_le_bytes(len_buf);
        if len < 5 || len as u64 > MAX_BSON_DOCUMENT {
            return Err(bad(at, format!("document length {len}")));
        }
        doc.clear();
        doc.extend_from_slice(&len_buf);
        let copied = (&mut *body)
            .take(len as u64 - 4)
            .read_to_end(&mut doc)
            .map_err(|e| read_err(path, e))?;
        if copied as u64 != len as u64 - 4 {
            return Err(bad(at, "document cut short".into()));
        }
        if doc.last() != Some(&0) {
            return Err(bad(at, "document does not end with a NUL byte".into()));
        }
        visit(&doc).map_err(|e| match e {
            Error::InvalidArchive { reason, .. } => bad(at, reason),
            other => other,
        })?;
        at += len as u64;
    }
}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    /// Documents inserted per `db.collection` (after renames).
    pub collections: std::collections::BTreeMap<String, u64>,
    /// Indexes built.
    pub indexes: u64,
    /// Oplog entries replayed.
    pub oplog_entries: u64,
    /// Namespaces skipped by the exclude filter.
    pub skipped: Vec<String>,
    /// Replacements made by [`DumpSource::rewrites`] per collection
    /// (`db.collection` as in the dump), when above zero.
    pub rewrites: std::collections::BTreeMap<String, u64>,
    /// Anything worth telling the user.
    pub warnings: Vec<String>,
}

/// Quiesces the controller's writers around a backup (BOSH's
/// pre-backup-lock and post-backup-unlock): [`BackupLock::lock`] runs
/// before anything is read, [`BackupLock::unlock`] after the backup
/// whatever its outcome, so that files and database describe one moment.
#[async_trait]
pub trait BackupLock: Send + Sync {
    /// Stops the writers; a failure stops the backup before it starts.
    async fn lock(&self) -> Result<()>;
    /// Lets them go on; `ok` says whether the backup was committed.
    async fn unlock(&self, ok: bool) -> Result<()>;
}

/// Loads a database dump (the archive's `dump/`) into a live database.
#[async_trait]
pub trait DatabaseLoader: Send + Sync {
    /// Reads every file from `source` and loads it.
    async fn load(&self, source: DumpSource) -> Result<LoadSummary>;

    /// The user namespaces (`db.collection`, views included) that exist now.
    /// A restore plan lists them before loading so that a rollback can drop
    /// what the failed load added. The default knows of none.
    async fn namespaces(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Drops these namespaces (those a failed load added).
    async fn drop_namespaces(&self, namespaces: &[String]) -> Result<()> {
        let _ = namespaces;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bson_framing_is_checked() {
        let doc = |n: u8| {
            let mut d = vec![12, 0, 0, 0, 0x10, b'a', 0, n, 0, 0, 0, 0];
            d[11] = 0;
            d
        };
        let good = [doc(1), doc(2)].concat();
        assert!(check_bson_framing(&mut &good[..], "x.bson").is_ok());
        let cut = &good[..good.len() - 3];
        let err = check_bson_framing(&mut &cut[..], "x.bson").unwrap_err();
        assert!(
            err.to_string().contains("dump/x.bson") && err.to_string().contains("at byte 12"),
            "{err}"
        );
        let mut no_nul = good.clone();
        no_nul[11] = 7;
        assert!(check_bson_framing(&mut &no_nul[..], "x.bson").is_err());
        let huge = [0xff, 0xff, 0xff, 0x7f, 0];
        assert!(
            check_bson_framing(&mut &huge[..], "x.bson")
                .unwrap_err()
                .to_string()
                .contains("length")
        );
    }
}
