//! The database part of a backup, implemented by embedders
//! (backups-mongo provides MongoDB). A files-only backup needs none.

use std::io::{self, Read};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::metadata::Metadata;
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
    /// The oplog position the dump is consistent at, `(seconds, ordinal)`,
    /// when it is point-in-time.
    pub oplog_end: Option<(u32, u32)>,
}

/// Dumps a database into the archive's `dump/` directory.
#[async_trait]
pub trait DatabaseDumper: Send + Sync {
    /// Sends every dump file to `sink`.
    async fn dump(&self, sink: DumpSink) -> Result<DumpSummary>;

    /// Dumps these namespaces (`db.collection`; those that do not exist
    /// are left out) on top of what the dumper was configured with: what
    /// a restore plan's safety backup needs of the database a restore will
    /// replace. The default dumps everything ([`DatabaseDumper::dump`]).
    async fn dump_namespaces(&self, sink: DumpSink, namespaces: &[String]) -> Result<DumpSummary> {
        let _ = namespaces;
        self.dump(sink).await
    }

    /// Where the dump reads from, recorded in the backup's metadata
    /// (`DumpedFrom`, `ReplicaSet`). The default says nothing.
    fn origin(&self) -> Option<DumpOrigin> {
        None
    }
}

/// The database member a dump reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOrigin {
    /// The member, e.g. `10.0.0.5:37017`.
    pub member: String,
    /// Its replica set's name, when it is in one.
    pub replica_set: Option<String>,
}

/// A dumper restricted to some namespaces ([`DatabaseDumper::dump_namespaces`]).
pub(crate) struct OnlyNamespaces {
    pub(crate) dumper: Arc<dyn DatabaseDumper>,
    pub(crate) namespaces: Vec<String>,
}

#[async_trait]
impl DatabaseDumper for OnlyNamespaces {
    async fn dump(&self, sink: DumpSink) -> Result<DumpSummary> {
        self.dumper.dump_namespaces(sink, &self.namespaces).await
    }

    fn origin(&self) -> Option<DumpOrigin> {
        self.dumper.origin()
    }
}

/// The namespaces of dump collection files (`juju/machines.bson` ->
/// `juju.machines`, mongodump's escapes decoded; a name that does not
/// decode is taken as it is). A loader that renames databases says
/// better: [`DatabaseLoader::replaced_namespaces`].
pub(crate) fn dump_namespaces(dump_files: &[String]) -> Vec<String> {
    dump_files
        .iter()
        .filter_map(|f| {
            dump_namespace(f).or_else(|| {
                let (db, coll) = f.strip_suffix(".bson")?.split_once('/')?;
                Some(format!("{db}.{coll}"))
            })
        })
        .collect()
}

/// `db.collection` of a dump collection file `db/<escaped name>.bson`
/// (mongodump's percent escapes decoded); `None` for anything else.
pub(crate) fn dump_namespace(path: &str) -> Option<String> {
    let (db, file) = path.split_once('/')?;
    let stem = file.strip_suffix(".bson")?;
    Some(format!("{db}.{}", unescape_dump_name(stem)?))
}

/// Decodes a collection name from a dump file name: mongodump writes it
/// with Go's `url.PathEscape`, so this is `url.PathUnescape` (`%2F` is
/// `/`); `None` for a bad escape or bytes that are not UTF-8. The one
/// decoder the library and database crates share.
pub fn unescape_dump_name(stem: &str) -> Option<String> {
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = stem.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
    /// The restore's `OLD=NEW` rules ([`crate::RestoreRequest::with_rewrites`]):
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
    /// Stops the writers; a failure stops the backup before it starts. A
    /// lock that fails part-way has undone what it did (unlock is not
    /// called after a failed lock).
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

    /// Checks, before anything is changed, that the database may be
    /// loaded with a backup described by `metadata` (e.g. the replica set
    /// it would load onto); returns warnings to show. The default accepts.
    async fn preflight(&self, metadata: &Metadata) -> Result<Vec<String>> {
        let _ = metadata;
        Ok(Vec::new())
    }

    /// The namespaces a load of these dump collection files
    /// (`db/coll.bson`) replaces, after the loader's renames and
    /// exclusions. The default takes the paths as they are.
    fn replaced_namespaces(&self, dump_files: &[String]) -> Vec<String> {
        dump_namespaces(dump_files)
    }

    /// The name the database server knows this loader's connections by
    /// (MongoDB's `appName`), unique to this loader. A restore plan records
    /// it in its journal before loading: a killed client's writes go on
    /// running at the server after it died, so undoing the killed restore
    /// first waits for them ([`DatabaseLoader::quiesce`]). The default has
    /// none (and so nothing to wait for).
    fn client_name(&self) -> Option<String> {
        None
    }

    /// Ends the operations the client `name` (another loader's
    /// [`DatabaseLoader::client_name`], of a restore that was killed) still
    /// has running at the server and returns once none remains, so that
    /// what is undone next cannot be redone by a late write; returns
    /// warnings to show. The default does nothing.
    async fn quiesce(&self, name: &str) -> Result<Vec<String>> {
        let _ = name;
        Ok(Vec::new())
    }
}

/// What a rollback needs to drop what a load added: the namespaces that
/// exist now in the databases the load writes (`dump_files` mapped by the
/// loader), and those databases as `db.` entries. Other databases are
/// never looked at, so a rollback cannot drop what another program
/// created meanwhile.
pub(crate) async fn namespaces_before(
    db: &dyn DatabaseLoader,
    dump_files: &[String],
) -> Result<Vec<String>> {
    let scope: std::collections::BTreeSet<String> = db
        .replaced_namespaces(dump_files)
        .iter()
        .filter_map(|ns| ns.split_once('.').map(|(d, _)| format!("{d}.")))
        .collect();
    let mut before: Vec<String> = db
        .namespaces()
        .await?
        .into_iter()
        .filter(|ns| in_scope(&scope, ns))
        .collect();
    before.extend(scope);
    Ok(before)
}

fn in_scope(scope: &std::collections::BTreeSet<String>, ns: &str) -> bool {
    ns.split_once('.')
        .is_some_and(|(d, _)| scope.contains(&format!("{d}.")))
}

/// Drops the namespaces of the databases in `before` (its `db.` entries,
/// see [`namespaces_before`]) that exist now but are not in `before`.
pub(crate) async fn drop_added_namespaces(
    db: &dyn DatabaseLoader,
    before: &[String],
) -> Result<()> {
    let scope: std::collections::BTreeSet<String> = before
        .iter()
        .filter(|n| n.ends_with('.'))
        .cloned()
        .collect();
    let before: std::collections::HashSet<&String> = before.iter().collect();
    let added: Vec<String> = db
        .namespaces()
        .await?
        .into_iter()
        .filter(|n| in_scope(&scope, n) && !before.contains(n))
        .collect();
    db.drop_namespaces(&added).await
}

/// How one collection of a backup's dump compares with the live database:
/// documents matched by `_id`, indexes by name. [`CollectionDiff::new`],
/// then set the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CollectionDiff {
    /// `db.collection` (the live name, after any database rename).
    #[serde(rename = "Namespace")]
    pub ns: String,
    /// Documents in the backup's dump.
    pub backup_documents: u64,
    /// Documents in the live collection.
    pub live_documents: u64,
    /// `_id`s only the backup has.
    pub only_in_backup: u64,
    /// `_id`s only the live collection has.
    pub only_live: u64,
    /// `_id`s on both sides whose documents differ (in any byte).
    pub different: u64,
    /// Names of the indexes only the backup has.
    pub indexes_only_in_backup: Vec<String>,
    /// Names of the indexes only the live collection has.
    pub indexes_only_live: Vec<String>,
    /// Names of the indexes on both sides whose key or options differ.
    pub indexes_different: Vec<String>,
}

impl CollectionDiff {
    /// No documents and no indexes yet, for `ns`.
    pub fn new(ns: impl Into<String>) -> Self {
        CollectionDiff {
            ns: ns.into(),
            ..Default::default()
        }
    }

    /// Whether the backup and the live collection hold the same documents
    /// and indexes.
    pub fn is_same(&self) -> bool {
        self.only_in_backup == 0
            && self.only_live == 0
            && self.different == 0
            && self.indexes_only_in_backup.is_empty()
            && self.indexes_only_live.is_empty()
            && self.indexes_different.is_empty()
    }
}

/// Compares a backup's database dump (the archive's `dump/`) with a live
/// database, changing nothing; for `diff` and a restore's dry run.
/// Implementations keep memory bounded whatever a collection's size.
#[async_trait]
pub trait DatabaseComparer: Send + Sync {
    /// Reads every file from `source` and compares each dumped collection
    /// with its live counterpart, in namespace order.
    async fn compare(&self, source: DumpSource) -> Result<Vec<CollectionDiff>>;
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
