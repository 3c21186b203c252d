//! Dumping: raw BSON from the cursor into spool files, then into the archive.

use std::io::{BufWriter, Seek, Write};

use async_trait::async_trait;
use backups_core::{DatabaseDumper, DumpEntry, DumpOrigin, DumpSink, DumpSummary, Error, Result};
use mongodb::bson::{Bson, Document, RawDocumentBuf, Timestamp, doc};
use mongodb::options::ServerAddress;
use mongodb::{Client, Database};

use crate::client::{db_error, redact_uri};
use crate::namespace::{Namespaces, escape_collection};
use crate::topology::{self, Member, ReadFrom};

/// Documents per cursor batch.
const FIND_BATCH: u32 = 2000;

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
}

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

    async fn dump_collection(&self, db: &Database, name: &str, sink: &DumpSink) -> Result<u64> {
        let ns = format!("{}.{name}", db.name());
        let coll = db.collection::<RawDocumentBuf>(name);
        // Bounded batches: memory is about FIND_BATCH x the average document,
        // even on servers that would send one huge batch.
        let mut cursor = coll
            .find(doc! {})
            .batch_size(FIND_BATCH)
            .await
            .map_err(|e| db_error(format!("reading {ns}"), e))?;
        let mut spool = BufWriter::with_capacity(1 << 20, tempfile::tempfile().map_err(spool_err)?);
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
        sink.add(DumpEntry {
            path: format!("{}/{}.bson", db.name(), escape_collection(name)),
            size,
            body: Box::new(file),
        })
        .await?;
        Ok(count)
    }

    async fn dump_oplog(&self, dbs: &[String], from: Timestamp, sink: &DumpSink) -> Result<u64> {
        let Some(to) = self.oplog_position().await? else {
            return Ok(0);
        };
        if to <= from {
            // Nothing was written during the dump: an empty oplog, no scan.
            sink.add(DumpEntry {
                path: "oplog.bson".into(),
                size: 0,
                body: Box::new(std::io::empty()),
            })
            .await?;
            return Ok(0);
        }
        let oplog = self
            .client
            .database("local")
            .collection::<RawDocumentBuf>("oplog.rs");
        let mut cursor = oplog
            .find(doc! {"ts": {"$gt": from, "$lte": to}})
            .sort(doc! {"$natural": 1})
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?;
        let mut spool = BufWriter::with_capacity(1 << 20, tempfile::tempfile().map_err(spool_err)?);
        let (mut count, mut size) = (0u64, 0u64);
        while cursor
            .advance()
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?
        {
            let entry = cursor.current();
            let ns = entry.get_str("ns").unwrap_or("");
            let db = ns.split('.').next().unwrap_or("");
            if !dbs.iter().any(|d| d == db) {
                continue;
            }
            spool.write_all(entry.as_bytes()).map_err(spool_err)?;
            size += entry.as_bytes().len() as u64;
            count += 1;
        }
        let mut file = spool.into_inner().map_err(|e| spool_err(e.into_error()))?;
        file.rewind().map_err(spool_err)?;
        sink.add(DumpEntry {
            path: "oplog.bson".into(),
            size,
            body: Box::new(file),
        })
        .await?;
        Ok(count)
    }
}

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
        let start = self.oplog_position().await?;
        summary.point_in_time = start.is_some();
        if start.is_none() {
            summary.warnings.push(format!(
                "{} has no oplog (not a replica set): the database dump is not point-in-time",
                self.uri_shown
            ));
        }
        let whole = &self.options.include_dbs;
        let dbs = match only {
            None => self.databases().await?,
            Some(only) => {
                let mut dbs: Vec<String> = only
                    .iter()
                    .filter_map(|ns| ns.split_once('.').map(|(db, _)| db.to_string()))
                    .chain(whole.iter().cloned())
                    .collect();
                dbs.sort();
                dbs.dedup();
                dbs
            }
        };
        let wanted = |ns: &str, db: &str| match only {
            None => true,
            Some(only) => whole.iter().any(|w| w == db) || only.iter().any(|o| o == ns),
        };
        for db_name in &dbs {
            let db = self.client.database(db_name);
            let specs = list_collections(&db).await?;
            for spec in &specs {
                let ns = format!("{db_name}.{}", spec.name);
                if self.namespaces.excluded(&ns) || !wanted(&ns, db_name) {
                    continue;
                }
                let mut meta = doc! {
                    "options": spec.options.clone(),
                    "indexes": if spec.kind == "view" { vec![] } else { list_indexes(&db, &spec.name).await? },
                };
                if let Some(uuid) = &spec.uuid {
                    meta.insert("uuid", uuid.clone());
                }
                meta.insert("collectionName", spec.name.clone());
                meta.insert("type", spec.kind.clone());
                let json = to_ext_json(meta);
                sink.add(DumpEntry {
                    path: format!("{db_name}/{}.metadata.json", escape_collection(&spec.name)),
                    size: json.len() as u64,
                    body: Box::new(std::io::Cursor::new(json)),
                })
                .await?;
                if spec.kind == "view" {
                    continue;
                }
                let count = self.dump_collection(&db, &spec.name, &sink).await?;
                summary.collections.insert(ns, count);
            }
            // A collection dropped while we dumped it: tell, unless the oplog replays the drop.
            if start.is_none() {
                let after = list_collections(&db).await?;
                for spec in &specs {
                    if !after.iter().any(|a| a.name == spec.name) {
                        summary.warnings.push(format!(
                            "collection {db_name}.{} was dropped during the dump; its documents may be incomplete",
                            spec.name
                        ));
                    }
                }
            }
        }
        if let Some(from) = start {
            let n = self.dump_oplog(&dbs, from, &sink).await?;
            summary
                .collections
                .insert("oplog.bson (replayed on restore)".into(), n);
        }
        Ok(summary)
    }
}
