//! Loading: documents parsed from the archive stream into ordered batches,
//! inserted by parallel workers; collections dropped and re-created with
//! their options first, views after the data, then the oplog replayed, then
//! the indexes built. The restore's rewrite rules
//! ([`backups_core::database::DumpSource::rewrites`]) apply to each document of a
//! loaded collection as it is parsed (not to the oplog replay, nor to
//! upserted users and roles).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, Write};
use std::sync::Arc;

use crate::client::SYSTEM_DATABASES;
use async_trait::async_trait;
use backups_core::database::{DumpFile, DumpSource, LoadSummary};
use backups_core::{DatabaseLoader, Error, Metadata, Result};
use mongodb::bson::{Document, RawDocumentBuf, doc};
use mongodb::{Client, Database};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::bson_stream::BsonSplitter;
use crate::client::{db_error, redact_uri};
use crate::indexes::IndexCatalog;
use crate::metadata::CollectionMeta;
use crate::namespace::Namespaces;
use crate::replay::{OplogTimestamp, Replay};
use crate::rewrite::DocumentRewriter;
use crate::walk::{DumpWalk, Walked};

/// Bytes per insert batch.
const BATCH_BYTES: usize = 1024 * 1024;
/// Documents per insert batch.
const BATCH_DOCS: usize = 10_000;
/// Collections loaded at the same time unless told otherwise
/// (mongorestore's `--numParallelCollections`).
pub const LOAD_PARALLEL_COLLECTIONS: usize = 4;
/// Insertion workers per collection unless told otherwise (mongorestore's
/// `--numInsertionWorkersPerCollection`).
pub const LOAD_INSERTION_WORKERS: usize = 2;

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `db.collection` globs to leave untouched (Juju leaves `logs.*`).
    pub ns_exclude: Vec<String>,
    /// Load database `from` of the dump into database `to`.
    pub db_rename: Vec<(String, String)>,
    /// Restore `admin.system.users` and `admin.system.roles` (upserted by
    /// `_id`, like mongorestore's `--restoreDbUsersAndRoles`); without it
    /// they are left out, with a warning.
    pub restore_users_and_roles: bool,
    /// Convert legacy index keys (`{a: true}`, `{b: ""}`, `{c: 0}`) as
    /// mongorestore's `--convertLegacyIndexes` does; without it such an
    /// index is refused, by name.
    pub convert_legacy_indexes: bool,
    /// Replay only the oplog entries before this timestamp (mongorestore's
    /// `--oplogLimit`).
    pub oplog_limit: Option<OplogTimestamp>,
    /// Load onto a replica set with more than one live member (refused
    /// otherwise: restore only when every controller is lost).
    pub force_ha: bool,
    /// Collections loaded at the same time (mongorestore's
    /// `--numParallelCollections`); 0 means [`LOAD_PARALLEL_COLLECTIONS`].
    pub parallel_collections: usize,
    /// Batches of one collection inserted at the same time (mongorestore's
    /// `--numInsertionWorkersPerCollection`); 0 means
    /// [`LOAD_INSERTION_WORKERS`]. Each holds one batch of up to 1 MiB.
    pub insertion_workers: usize,
    /// More oplog entries (concatenated raw BSON, e.g. point-in-time
    /// slices after the dump's end) replayed right after the dump's
    /// `oplog.bson`, by the same replay.
    pub extra_oplog: Option<std::path::PathBuf>,
}

/// `n`, or `default` for 0.
fn or_default(n: usize, default: usize) -> usize {
    if n == 0 { default } else { n }
}

/// What a load does with a dumped collection, by its name.
enum Disposition {
    Load,
    /// `admin.system.users` / `roles`, restored only when asked.
    Auth,
    /// Other system collections (`admin.system.version`...): never dropped
    /// nor loaded.
    Skip,
}

fn disposition(db: &str, coll: &str) -> Disposition {
    if !coll.starts_with("system.") {
        return Disposition::Load;
    }
    if db == "admin" && (coll == "system.users" || coll == "system.roles") {
        return Disposition::Auth;
    }
    Disposition::Skip
}

fn spool_err(action: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Io {
        action,
        path: std::env::temp_dir(),
        source: e,
    }
}

/// Loads a dump into a MongoDB deployment.
pub struct MongoLoader {
    client: Client,
    /// The `appName` of this loader's connections, unique to it.
    app_name: String,
    uri_shown: String,
    namespaces: Namespaces,
    options: LoadOptions,
}

/// Drops `name` if it exists.
async fn drop_collection(db: &Database, name: &str) -> Result<()> {
    db.collection::<Document>(name)
        .drop()
        .await
        .map_err(|e| db_error(format!("dropping {}.{name}", db.name()), e))
}

impl std::fmt::Debug for MongoLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI without its password; the client's options are not shown.
        f.debug_struct("MongoLoader")
            .field("uri", &self.uri_shown)
            .field("app_name", &self.app_name)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl MongoLoader {
    /// Connects to `uri` (checking the server answers), as an application
    /// name unique to this loader ([`DatabaseLoader::client_name`]).
    pub async fn connect(uri: &str, options: LoadOptions) -> Result<Self> {
        let app_name = crate::quiesce::unique_app_name();
        let client = crate::topology::connect_for_load(uri, &app_name).await?;
        let namespaces = Namespaces::new(&options.ns_exclude, &options.db_rename)?;
        Ok(MongoLoader {
            client,
            app_name,
            uri_shown: redact_uri(uri),
            namespaces,
            options,
        })
    }

    /// Drops and re-creates a collection with its options (once per load).
    async fn prepare(
        &self,
        db: &Database,
        coll: &str,
        meta: Option<&CollectionMeta>,
    ) -> Result<()> {
        drop_collection(db, coll).await?;
        if meta.is_some_and(|m| m.is_view) {
            return Ok(()); // views are created after the data
        }
        // Created explicitly, so empty collections and options survive.
        let mut cmd = doc! {"create": coll};
        if let Some(m) = meta {
            cmd.extend(m.options.clone());
        }
        db.run_command(cmd)
            .await
            .map_err(|e| db_error(format!("creating {}.{coll}", db.name()), e))?;
        Ok(())
    }

    /// Parses one `.bson` file into batches and hands them to a writer task,
    /// whose insertion workers insert them while this side goes on reading;
    /// up to `parallel_collections` collections load at the same time.
    async fn load_bson(
        &self,
        file: &mut DumpFile,
        db: &Database,
        coll: &str,
        permits: &Arc<Semaphore>,
        rewriter: &mut DocumentRewriter,
    ) -> Result<(u64, JoinHandle<Result<()>>)> {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled("loader stopped".into()))?;
        let workers = or_default(self.options.insertion_workers, LOAD_INSERTION_WORKERS);
        let (tx, rx) = mpsc::channel::<Vec<RawDocumentBuf>>(workers);
        let writer = tokio::spawn(insert_batches(
            db.collection::<RawDocumentBuf>(coll),
            format!("{}.{coll}", db.name()),
            rx,
            workers,
            permit,
        ));
        let mut splitter = BsonSplitter::default();
        let mut docs = Vec::new();
        let mut batch: Vec<RawDocumentBuf> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut count = 0u64;
        let mut send_failed = false;
        'read: while let Some(chunk) = file.chunk().await? {
            splitter.push(&chunk, &file.path, &mut docs)?;
            for doc in docs.drain(..) {
                let doc = rewriter.apply(doc, &file.path)?;
                batch_bytes += doc.as_bytes().len();
                batch.push(doc);
                count += 1;
                if batch.len() >= BATCH_DOCS || batch_bytes >= BATCH_BYTES {
                    batch_bytes = 0;
                    if tx.send(std::mem::take(&mut batch)).await.is_err() {
                        send_failed = true; // the writer failed: its error is reported
                        break 'read;
                    }
                }
            }
        }
        if !send_failed {
            splitter.finish(&file.path)?;
            if !batch.is_empty() {
                let _ = tx.send(batch).await;
            }
        }
        drop(tx);
        if send_failed {
            return match writer.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(Error::internal(format!(
                    "the writer of {}.{coll} stopped without an error",
                    db.name()
                ))),
                Err(e) => Err(Error::task(&format!("loading {}.{coll}", db.name()), e)),
            };
        }
        Ok((count, writer))
    }
}

/// Inserts the batches into one collection with `workers` parallel
/// insertion workers (each batch ordered, validation bypassed, as
/// mongorestore does, and sent again while its outcome is unknown:
/// [`crate::insert`]); the first failure stops the others once their
/// batch in flight is done, so that when this returns none of its writes
/// is still running at the server (a rollback comes next).
async fn insert_batches(
    coll: mongodb::Collection<RawDocumentBuf>,
    ns: String,
    rx: mpsc::Receiver<Vec<RawDocumentBuf>>,
    workers: usize,
    _permit: OwnedSemaphorePermit,
) -> Result<()> {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut set = tokio::task::JoinSet::<Result<()>>::new();
    for _ in 0..workers.max(1) {
        let (coll, ns, rx, stop) = (coll.clone(), ns.clone(), rx.clone(), stop.clone());
        let mut stopped = stopped.clone();
        set.spawn(async move {
            loop {
                let batch = {
                    let mut rx = rx.lock().await;
                    tokio::select! {
                        batch = rx.recv() => batch,
                        _ = stopped.wait_for(|s| *s) => None,
                    }
                };
                let Some(batch) = batch else {
                    return Ok(());
                };
                if let Err(e) = crate::insert::insert_batch(&coll, &ns, &batch).await {
                    let _ = stop.send(true);
                    return Err(e);
                }
            }
        });
    }
    let mut first = None;
    while let Some(done) = set.join_next().await {
        if let Err(e) = done.map_err(|e| Error::task(&format!("loading {ns}"), e))? {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[async_trait]
impl DatabaseLoader for MongoLoader {
    async fn preflight(&self, metadata: &Metadata) -> Result<Vec<String>> {
        let (ha, force) = (metadata.ha_nodes, self.options.force_ha);
        crate::topology::preflight_load(&self.client, ha, force, &self.uri_shown).await
    }

    fn replaced_namespaces(&self, dump_files: &[String]) -> Vec<String> {
        self.namespaces.replaced(dump_files)
    }

    fn client_name(&self) -> Option<String> {
        Some(self.app_name.clone())
    }

    async fn quiesce(&self, name: &str) -> Result<Vec<String>> {
        crate::quiesce::quiesce(&self.client, name, &self.uri_shown).await
    }

    async fn namespaces(&self) -> Result<Vec<String>> {
        let names = crate::client::user_databases(&self.client, &self.uri_shown).await?;
        let mut out = Vec::new();
        for db_name in names {
            let collections = self
                .client
                .database(&db_name)
                .list_collection_names()
                .await
                .map_err(|e| db_error(format!("listing collections of {db_name}"), e))?;
            out.extend(
                collections
                    .into_iter()
                    .filter(|c| !c.starts_with("system."))
                    .map(|c| format!("{db_name}.{c}")),
            );
        }
        out.sort();
        Ok(out)
    }

    async fn drop_namespaces(&self, namespaces: &[String]) -> Result<()> {
        for ns in namespaces {
            let Some((db, coll)) = ns.split_once('.') else {
                continue;
            };
            if SYSTEM_DATABASES.contains(&db) {
                continue;
            }
            drop_collection(&self.client.database(db), coll).await?;
        }
        Ok(())
    }

    async fn load(&self, mut source: DumpSource) -> Result<LoadSummary> {
        let mut summary = LoadSummary::default();
        // Keyed by target namespace.
        let mut metas: BTreeMap<String, (String, String, CollectionMeta)> = BTreeMap::new();
        let mut catalog = IndexCatalog::default();
        let mut prepared: HashMap<String, bool> = HashMap::new();
        let mut oplog: Option<std::fs::File> = None;
        let permits = Arc::new(Semaphore::new(or_default(
            self.options.parallel_collections,
            LOAD_PARALLEL_COLLECTIONS,
        )));
        let mut writers: Vec<(String, JoinHandle<Result<()>>)> = Vec::new();
        let read = async {
            let mut walk = DumpWalk::default();
            while let Some(walked) = walk.next(&mut source, &self.namespaces).await? {
                let mut c = match walked {
                    Walked::Oplog(mut file) => {
                        oplog = Some(spool(&mut file).await?);
                        continue;
                    }
                    Walked::Collection(c) => c,
                };
                let (src_ns, ns, is_meta) = (c.src_ns(), c.ns(), c.meta.is_some());
                let (db_name, coll, excluded) = (c.db.clone(), c.coll.clone(), c.excluded);
                match disposition(&c.src_db, &coll) {
                    Disposition::Load if !excluded => {}
                    Disposition::Auth if !excluded && self.options.restore_users_and_roles => {
                        if !is_meta {
                            let n = self.upsert_all(&mut c.file, &db_name, &coll).await?;
                            *summary.collections.entry(ns).or_default() += n;
                        }
                        continue;
                    }
                    disposition => {
                        if !is_meta {
                            summary.skipped.push(src_ns.clone());
                            if matches!(disposition, Disposition::Auth) && !excluded {
                                summary.warnings.push(format!(
                                    "{src_ns} was not restored: users and roles are restored only with --restore-users-and-roles"
                                ));
                            }
                        }
                        c.skip().await?;
                        continue;
                    }
                }
                let db = self.client.database(&db_name);
                if let Some(meta) = c.meta.take() {
                    if !prepared.contains_key(&ns) {
                        self.prepare(&db, &coll, Some(&meta)).await?;
                        prepared.insert(ns.clone(), true);
                    } else if meta.options.contains_key("validator") {
                        summary.warnings.push(format!(
                            "{ns}: metadata came after the data; its creation options other than the validator were not applied"
                        ));
                    }
                    if !meta.is_view {
                        catalog.add(&db_name, &coll, meta.indexes.clone());
                    }
                    metas.insert(ns, (db_name, coll, meta));
                    continue;
                }
                if !prepared.contains_key(&ns) {
                    self.prepare(&db, &coll, None).await?;
                    prepared.insert(ns.clone(), true);
                }
                let mut rewriter = DocumentRewriter::new(source.rewrites(), &src_ns);
                let (n, writer) = self
                    .load_bson(&mut c.file, &db, &coll, &permits, &mut rewriter)
                    .await?;
                *summary.collections.entry(ns.clone()).or_default() += n;
                if rewriter.replacements > 0 {
                    *summary.rewrites.entry(src_ns).or_default() += rewriter.replacements;
                }
                writers.push((ns, writer));
            }
            Ok::<_, Error>(())
        }
        .await;

        // Every collection's data is in before views, the oplog and indexes.
        wait_for_writers(writers, read.err()).await?;
        self.finish(&metas, oplog, catalog, summary).await
    }
}

/// Waits for every collection's writer, whatever happened (none may go on
/// writing while the caller rolls back); the first failure, the read's
/// (`failed`) first.
async fn wait_for_writers(
    writers: Vec<(String, JoinHandle<Result<()>>)>,
    mut failed: Option<Error>,
) -> Result<()> {
    for (ns, writer) in writers {
        let done = writer
            .await
            .map_err(|e| Error::task(&format!("loading {ns}"), e))
            .and_then(|r| r);
        if let Err(e) = done {
            failed.get_or_insert(e);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl MongoLoader {
    /// After every collection's data: the views, the oplog replay, then the
    /// indexes (a unique index may only hold after the replay, as
    /// mongorestore builds them).
    async fn finish(
        &self,
        metas: &BTreeMap<String, (String, String, CollectionMeta)>,
        oplog: Option<std::fs::File>,
        mut catalog: IndexCatalog,
        mut summary: LoadSummary,
    ) -> Result<LoadSummary> {
        for (ns, (db_name, coll, meta)) in metas {
            let db = self.client.database(db_name);
            if meta.is_view {
                let mut cmd = doc! {"create": coll.as_str()};
                cmd.extend(meta.options.clone());
                db.run_command(cmd)
                    .await
                    .map_err(|e| db_error(format!("creating view {ns}"), e))?;
            }
        }
        let oplog = match (oplog, &self.options.extra_oplog) {
            (oplog, None) => oplog,
            (oplog, Some(extra)) => Some(crate::pitr::append_oplog(oplog, extra)?),
        };
        if let Some(spool) = oplog {
            self.replay(spool, &mut catalog, &mut summary).await?;
        }
        summary.indexes += catalog
            .build(&self.client, self.options.convert_legacy_indexes)
            .await?;
        if summary.collections.is_empty() && metas.is_empty() {
            summary.warnings.push(format!(
                "the archive has no database dump; nothing was loaded into {}",
                self.uri_shown
            ));
        }
        Ok(summary)
    }
}

/// Spools the oplog to a temp file: it is replayed after all the data.
async fn spool(file: &mut DumpFile) -> Result<std::fs::File> {
    let mut spool = tempfile::tempfile().map_err(spool_err("spooling the oplog to"))?;
    while let Some(chunk) = file.chunk().await? {
        spool
            .write_all(&chunk)
            .map_err(spool_err("spooling the oplog to"))?;
    }
    Ok(spool)
}

impl MongoLoader {
    /// Replays the spooled oplog.
    async fn replay(
        &self,
        mut spool: std::fs::File,
        catalog: &mut IndexCatalog,
        summary: &mut LoadSummary,
    ) -> Result<()> {
        let read_err = spool_err("reading the spooled oplog from");
        spool.rewind().map_err(&read_err)?;
        let mut replay = Replay {
            client: &self.client,
            namespaces: &self.namespaces,
            catalog,
            summary,
            limit: self.options.oplog_limit.map(OplogTimestamp::to_bson),
            pending: HashMap::new(),
        };
        let mut splitter = BsonSplitter::default();
        let mut buf = vec![0u8; 1 << 20];
        let mut stopped = false;
        'read: loop {
            let n = spool.read(&mut buf).map_err(&read_err)?;
            if n == 0 {
                break;
            }
            let mut docs = Vec::new();
            splitter.push(&buf[..n], "oplog.bson", &mut docs)?;
            for entry in docs {
                if !replay.entry(&entry).await? {
                    stopped = true;
                    break 'read;
                }
            }
        }
        if !stopped {
            splitter.finish("oplog.bson")?;
        }
        Ok(())
    }

    /// Upserts every document of `file` into `db.coll` by `_id` (users and
    /// roles: merged, never dropped).
    async fn upsert_all(&self, file: &mut DumpFile, db: &str, coll: &str) -> Result<u64> {
        let collection = self.client.database(db).collection::<Document>(coll);
        let mut splitter = BsonSplitter::default();
        let mut count = 0;
        while let Some(chunk) = file.chunk().await? {
            let mut docs = Vec::new();
            splitter.push(&chunk, &file.path, &mut docs)?;
            for raw in docs {
                let doc = raw.to_document().map_err(|e| Error::InvalidArchive {
                    subject: format!("dump/{}", file.path),
                    reason: format!("corrupt BSON: {e}"),
                })?;
                let id = doc.get("_id").cloned().unwrap_or(mongodb::bson::Bson::Null);
                collection
                    .replace_one(doc! {"_id": id}, doc)
                    .upsert(true)
                    .await
                    .map_err(|e| db_error(format!("restoring {db}.{coll}"), e))?;
                count += 1;
            }
        }
        splitter.finish(&file.path)?;
        Ok(count)
    }
}
