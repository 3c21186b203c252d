//! Dumping: raw BSON from the cursor into spool files, then into the archive.

use std::io::{BufWriter, Seek, Write};
use std::sync::Arc;

use async_trait::async_trait;
use backups_core::database::{DumpEntry, DumpOrigin, DumpSink, DumpSummary};
use backups_core::{DatabaseDumper, Error, Result};
use mongodb::bson::{Bson, Document, RawDocumentBuf, Timestamp, doc};
use mongodb::options::ServerAddress;
use mongodb::{Client, Database};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::client::{db_error, redact_uri};
use crate::namespace::{Namespaces, escape_collection};
use crate::oplog_window::OplogWindow;
use crate::topology::{self, Member, ReadFrom};

/// Documents per cursor batch.
const FIND_BATCH: u32 = 1000;
/// Write buffer of each collection's spool file (one per collection dumped
/// at the same time, beside its cursor batch).
const SPOOL_BUFFER: usize = 256 * 1024;

/// What to dump.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// Databases to dump; empty means every database except admin, local
    /// and config.
    pub include_dbs: Vec<String>,
    /// `db.collection` globs to leave out (e.g. `logs.*`).
    pub exclude_ns: Vec<String>,
    /// Read from this member of a replica set (pinned for the whole dump,
    /// oplog included); `None` reads as the URI says (the primary).
    pub read_from: Option<ReadFrom>,
    /// Databases to leave out of "every database" besides admin, local and
    /// config (Juju leaves out `backups`); ignored when `include_dbs` names
    /// the databases.
    pub exclude_dbs: Vec<String>,
    /// Collections dumped at the same time (mongodump's `-j`); 0 means
    /// [`DUMP_PARALLEL_COLLECTIONS`]. Each holds one cursor batch and
    /// spools to its own temporary file; the archive still receives one
    /// collection after another.
    pub parallel_collections: usize,
}

/// Collections dumped at the same time unless told otherwise (mongodump's
/// default for `-j`).
pub const DUMP_PARALLEL_COLLECTIONS: usize = 4;

/// Dumps a MongoDB deployment into the archive's `dump/` directory.
pub struct MongoDumper {
    client: Client,
    uri_shown: String,
    options: DumpOptions,
    namespaces: Namespaces,
    origin: Member,
}

fn spool_err(e: std::io::Error) -> Error {
    Error::Io {
        action: "spooling dump data to",
        path: std::env::temp_dir(),
        source: e,
    }
}

/// Canonical extended JSON, as mongodump writes metadata.
pub(crate) fn to_ext_json(doc: Document) -> Vec<u8> {
    let value = Bson::Document(doc).into_canonical_extjson();
    // Invariant: a serde_json::Value always serialises.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A document as relaxed extended JSON, for messages.
pub(crate) fn to_ext_json_string(doc: Document) -> String {
    Bson::Document(doc).into_relaxed_extjson().to_string()
}

impl std::fmt::Debug for MongoDumper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI without its password; the client's options are not shown.
        f.debug_struct("MongoDumper")
            .field("uri", &self.uri_shown)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl MongoDumper {
    /// Connects to `uri` (checking the server answers).
    /// With [`DumpOptions::read_from`], the member it selects is found
    /// first and the dump connects to it alone.
    pub async fn connect(uri: &str, options: DumpOptions) -> Result<Self> {
        let uri_shown = redact_uri(uri);
        let mut client = crate::client::connect(uri).await?;
        let origin = topology::member(&client, options.read_from, &uri_shown).await?;
        if options.read_from.is_some() && origin.replica_set.is_some() {
            let address = ServerAddress::parse(&origin.address)
                .map_err(|e| db_error(format!("connecting to member {}", origin.address), e))?;
            client = crate::client::connect_with(uri, |o| {
                o.hosts = vec![address];
                o.direct_connection = Some(true);
                o.repl_set_name = None;
            })
            .await?;
        }
        let namespaces = Namespaces::new(&options.exclude_ns, &[])?;
        Ok(MongoDumper {
            client,
            uri_shown,
            options,
            namespaces,
            origin,
        })
    }

    async fn databases(&self) -> Result<Vec<String>> {
        if !self.options.include_dbs.is_empty() {
            return Ok(self.options.include_dbs.clone());
        }
        let mut names = crate::client::user_databases(&self.client, &self.uri_shown).await?;
        names.retain(|n| !self.options.exclude_dbs.contains(n));
        Ok(names)
    }

    /// The newest oplog timestamp, or `None` when there is no oplog.
    async fn oplog_position(&self) -> Result<Option<Timestamp>> {
        let hello = self
            .client
            .database("admin")
            .run_command(doc! {"hello": 1})
            .await
            .map_err(|e| db_error("hello", e))?;
        if hello.get_str("setName").is_err() {
            return Ok(None);
        }
        // The last write's optime: instant, where scanning the oplog may not be.
        if let Ok(ts) = hello
            .get_document("lastWrite")
            .and_then(|w| w.get_document("opTime"))
            .and_then(|o| o.get_timestamp("ts"))
        {
            return Ok(Some(ts));
        }
        let oplog = self
            .client
            .database("local")
            .collection::<Document>("oplog.rs");
        let last = oplog
            .find_one(doc! {})
            .sort(doc! {"$natural": -1})
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?;
        Ok(last.and_then(|d| d.get_timestamp("ts").ok()))
    }
}

/// Spools every document of `db.name` (raw BSON as the cursor returns
/// it) to a temporary file; returns it rewound, its size and the count.
async fn spool_collection(db: Database, name: String) -> Result<(std::fs::File, u64, u64)> {
    let ns = format!("{}.{name}", db.name());
    let coll = db.collection::<RawDocumentBuf>(&name);
    // Bounded batches: memory is about FIND_BATCH x the average document,
    // even on servers that would send one huge batch.
    let mut cursor = coll
        .find(doc! {})
        .batch_size(FIND_BATCH)
        .await
        .map_err(|e| db_error(format!("reading {ns}"), e))?;
    let mut spool =
        BufWriter::with_capacity(SPOOL_BUFFER, tempfile::tempfile().map_err(spool_err)?);
    let mut count = 0u64;
    let mut size = 0u64;
    while cursor
        .advance()
        .await
        .map_err(|e| db_error(format!("reading {ns}"), e))?
    {
        let bytes = cursor.current().as_bytes();
        spool.write_all(bytes).map_err(spool_err)?;
        size += bytes.len() as u64;
        count += 1;
    }
    let mut file = spool.into_inner().map_err(|e| spool_err(e.into_error()))?;
    file.rewind().map_err(spool_err)?;
    Ok((file, size, count))
}

/// One collection or view to dump, with its metadata file.
struct Planned {
    db: String,
    name: String,
    is_view: bool,
    metadata: Vec<u8>,
}

/// A planned collection once dumped: its spooled documents (none for a view).
type Dumped = (Planned, Option<(std::fs::File, u64, u64)>);

/// listCollections output for one collection or view.
struct CollectionSpec {
    name: String,
    kind: String,
    options: Document,
    uuid: Option<String>,
}

async fn list_collections(db: &Database) -> Result<Vec<CollectionSpec>> {
    use futures::TryStreamExt;
    let docs: Vec<Document> = db
        .run_cursor_command(doc! {"listCollections": 1})
        .await
        .map_err(|e| db_error(format!("listing collections of {}", db.name()), e))?
        .try_collect()
        .await
        .map_err(|e| db_error(format!("listing collections of {}", db.name()), e))?;
    let mut specs: Vec<CollectionSpec> = docs
        .into_iter()
        .filter_map(|d| {
            let name = d.get_str("name").ok()?.to_string();
            let kind = d.get_str("type").unwrap_or("collection").to_string();
            let options = d.get_document("options").cloned().unwrap_or_default();
            let uuid = d
                .get_document("info")
                .ok()
                .and_then(|i| match i.get("uuid") {
                    Some(Bson::Binary(b)) => {
                        Some(b.bytes.iter().map(|x| format!("{x:02x}")).collect())
                    }
                    _ => None,
                });
            Some(CollectionSpec {
                name,
                kind,
                options,
                uuid,
            })
        })
        .filter(|s| !s.name.starts_with("system."))
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(specs)
}

async fn list_indexes(db: &Database, name: &str) -> Result<Vec<Bson>> {
    use futures::TryStreamExt;
    let docs: Vec<Document> = db
        .run_cursor_command(doc! {"listIndexes": name})
        .await
        .map_err(|e| db_error(format!("listing indexes of {}.{name}", db.name()), e))?
        .try_collect()
        .await
        .map_err(|e| db_error(format!("listing indexes of {}.{name}", db.name()), e))?;
    Ok(docs.into_iter().map(Bson::Document).collect())
}

impl MongoDumper {
    /// Lists what to dump, with each collection's metadata file.
    async fn plan(&self, dbs: &[String], only: Option<&[String]>) -> Result<Vec<Planned>> {
        let whole = &self.options.include_dbs;
        let wanted = |ns: &str, db: &str| match only {
            None => true,
            Some(only) => whole.iter().any(|w| w == db) || only.iter().any(|o| o == ns),
        };
        let mut plan = Vec::new();
        for db_name in dbs {
            let db = self.client.database(db_name);
            for spec in list_collections(&db).await? {
                let ns = format!("{db_name}.{}", spec.name);
                if self.namespaces.excluded(&ns) || !wanted(&ns, db_name) {
                    continue;
                }
                let is_view = spec.kind == "view";
                let mut meta = doc! {
                    "options": spec.options,
                    "indexes": if is_view { vec![] } else { list_indexes(&db, &spec.name).await? },
                };
                if let Some(uuid) = spec.uuid {
                    meta.insert("uuid", uuid);
                }
                meta.insert("collectionName", spec.name.clone());
                meta.insert("type", spec.kind);
                plan.push(Planned {
                    db: db_name.clone(),
                    name: spec.name,
                    is_view,
                    metadata: to_ext_json(meta),
                });
            }
        }
        Ok(plan)
    }

    /// Dumps the planned collections, up to `parallel_collections` at a
    /// time, each into its own spool file; the sink receives each
    /// collection's metadata then its documents as soon as it is complete.
    /// At most twice `parallel_collections` spool files exist at once.
    async fn dump_collections(
        &self,
        plan: Vec<Planned>,
        sink: &DumpSink,
        summary: &mut DumpSummary,
    ) -> Result<()> {
        let parallel = match self.options.parallel_collections {
            0 => DUMP_PARALLEL_COLLECTIONS,
            n => n,
        };
        let permits = Arc::new(Semaphore::new(parallel));
        let (tx, mut rx) = mpsc::channel::<Result<Dumped>>(parallel);
        // Dropped on return (an error included): unfinished dumps stop.
        let mut tasks = JoinSet::new();
        let total = plan.len();
        for planned in plan {
            let (db, permits, tx) = (
                self.client.database(&planned.db),
                permits.clone(),
                tx.clone(),
            );
            tasks.spawn(async move {
                if planned.is_view {
                    let _ = tx.send(Ok((planned, None))).await;
                    return;
                }
                // The permit is held until the result is queued, so finished
                // spools waiting for the archive bound the running ones too.
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let result = spool_collection(db, planned.name.clone()).await;
                let _ = tx.send(result.map(|r| (planned, Some(r)))).await;
            });
        }
        drop(tx);
        for _ in 0..total {
            let Some(result) = rx.recv().await else {
                return Err(Error::internal(
                    "a collection dump stopped without a result",
                ));
            };
            let (planned, data) = result?;
            let stem = format!("{}/{}", planned.db, escape_collection(&planned.name));
            sink.add(DumpEntry {
                path: format!("{stem}.metadata.json"),
                size: planned.metadata.len() as u64,
                body: Box::new(std::io::Cursor::new(planned.metadata)),
            })
            .await?;
            if let Some((file, size, count)) = data {
                sink.add(DumpEntry {
                    path: format!("{stem}.bson"),
                    size,
                    body: Box::new(file),
                })
                .await?;
                summary
                    .collections
                    .insert(format!("{}.{}", planned.db, planned.name), count);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl DatabaseDumper for MongoDumper {
    fn origin(&self) -> Option<DumpOrigin> {
        Some(DumpOrigin {
            member: self.origin.address.clone(),
            replica_set: self.origin.replica_set.clone(),
        })
    }

    async fn dump(&self, sink: DumpSink) -> Result<DumpSummary> {
        self.dump_only(sink, None).await
    }

    /// Only these namespaces (those that exist), and the databases
    /// [`DumpOptions::include_dbs`] names whole.
    async fn dump_namespaces(&self, sink: DumpSink, namespaces: &[String]) -> Result<DumpSummary> {
        self.dump_only(sink, Some(namespaces)).await
    }
}

impl MongoDumper {
    /// The dump, of every collection or of `only` these namespaces.
    async fn dump_only(&self, sink: DumpSink, only: Option<&[String]>) -> Result<DumpSummary> {
        let mut summary = DumpSummary::default();
        // The stream first: every write after the start position is in it.
        let stream = OplogWindow::watch(&self.client).await;
        let window = self
            .oplog_position()
            .await?
            .map(|from| OplogWindow::new(from, stream));
        summary.point_in_time = window.is_some();
        if window.is_none() {
            summary.warnings.push(format!(
                "{} has no oplog (not a replica set): the database dump is not point-in-time",
                self.uri_shown
            ));
        }
        let dbs = match only {
            None => self.databases().await?,
            Some(only) => {
                let mut dbs: Vec<String> = only
                    .iter()
                    .filter_map(|ns| ns.split_once('.').map(|(db, _)| db.to_string()))
                    .chain(self.options.include_dbs.iter().cloned())
                    .collect();
                dbs.sort();
                dbs.dedup();
                dbs
            }
        };
        let plan = self.plan(&dbs, only).await?;
        let dumped: Vec<(String, String)> = plan
            .iter()
            .map(|p| (p.db.clone(), p.name.clone()))
            .collect();
        self.dump_collections(plan, &sink, &mut summary).await?;
        match window {
            Some(window) => {
                let to = self.oplog_position().await?;
                summary.oplog_end = to.or(Some(window.from)).map(|t| (t.time, t.increment));
                let n = window.dump(&self.client, &dbs, to, &sink).await?;
                summary
                    .collections
                    .insert("oplog.bson (replayed on restore)".into(), n);
            }
            // A collection dropped while we dumped it: tell, unless the oplog replays the drop.
            None => {
                for db_name in &dbs {
                    let after = list_collections(&self.client.database(db_name)).await?;
                    for (_, name) in dumped.iter().filter(|(db, _)| db == db_name) {
                        if !after.iter().any(|a| &a.name == name) {
                            summary.warnings.push(format!(
                                "collection {db_name}.{name} was dropped during the dump; its documents may be incomplete"
                            ));
                        }
                    }
                }
            }
        }
        Ok(summary)
    }
}
