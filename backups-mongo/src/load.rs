//! Loading: documents parsed from the archive stream into large ordered
//! batches; collections dropped and re-created with their options first,
//! indexes and views after the data, then the oplog replayed.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, Write};
use std::sync::Arc;

use crate::client::SYSTEM_DATABASES;
use async_trait::async_trait;
use backups_core::{DatabaseLoader, DumpFile, DumpSource, Error, LoadSummary, Result};
use futures::StreamExt;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use mongodb::{Client, Database};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::client::{db_error, redact_uri};
use crate::namespace::{Namespaces, split_dump_path};

/// Bytes per insert batch.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Documents per insert batch.
const BATCH_DOCS: usize = 10_000;
/// Collections whose indexes are built at the same time.
const INDEX_PARALLELISM: usize = 4;
/// Collections loaded at the same time (each holds up to two batches).
const LOAD_PARALLELISM: usize = 4;

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `db.collection` globs to leave untouched (Juju leaves `logs.*`).
    pub ns_exclude: Vec<String>,
    /// Load database `from` of the dump into database `to`.
    pub db_rename: Vec<(String, String)>,
}

/// Loads a dump into a MongoDB deployment.
pub struct MongoLoader {
    client: Client,
    uri_shown: String,
    namespaces: Namespaces,
}

/// What the metadata.json of a collection says.
#[derive(Debug, Clone, Default)]
struct CollectionMeta {
    options: Document,
    indexes: Vec<Document>,
    is_view: bool,
}

fn parse_metadata(path: &str, bytes: &[u8]) -> Result<CollectionMeta> {
    let bad = |reason: String| Error::InvalidArchive {
        subject: format!("dump/{path}"),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("unreadable JSON: {e}")))?;
    let doc = match Bson::try_from(json).map_err(|e| bad(format!("bad extended JSON: {e}")))? {
        Bson::Document(d) => d,
        _ => return Err(bad("not a JSON object".into())),
    };
    let indexes = doc
        .get_array("indexes")
        .map(|a| {
            a.iter()
                .filter_map(|i| i.as_document().cloned())
                .map(|mut i| {
                    i.remove("ns");
                    i
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CollectionMeta {
        options: doc.get_document("options").cloned().unwrap_or_default(),
        indexes,
        is_view: doc.get_str("type") == Ok("view"),
    })
}

/// Splits a stream of concatenated BSON documents.
#[derive(Default)]
pub(crate) struct BsonSplitter {
    buf: Vec<u8>,
}

impl BsonSplitter {
    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        path: &str,
        out: &mut Vec<RawDocumentBuf>,
    ) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        while self.buf.len() - at >= 4 {
            let len = i32::from_le_bytes([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ]);
            if len < 5 || len as u64 > backups_core::MAX_BSON_DOCUMENT {
                return Err(corrupt(path, format!("bad document length {len}")));
            }
            let len = len as usize;
            if self.buf.len() - at < len {
                break;
            }
            let doc = RawDocumentBuf::from_bytes(self.buf[at..at + len].to_vec())
                .map_err(|e| corrupt(path, e.to_string()))?;
            out.push(doc);
            at += len;
        }
        self.buf.drain(..at);
        Ok(())
    }

    pub(crate) fn finish(&self, path: &str) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(corrupt(
                path,
                format!(
                    "{} bytes of a truncated document at the end",
                    self.buf.len()
                ),
            ))
        }
    }
}

fn corrupt(path: &str, reason: String) -> Error {
    Error::InvalidArchive {
        subject: format!("dump/{path}"),
        reason: format!("corrupt BSON: {reason}"),
    }
}

async fn read_small(file: &mut DumpFile) -> Result<Vec<u8>> {
    if file.size > backups_core::MAX_METADATA_BYTES {
        return Err(Error::InvalidArchive {
            subject: format!("dump/{}", file.path),
            reason: "metadata file is too large".into(),
        });
    }
    let mut out = Vec::with_capacity(file.size as usize);
    while let Some(chunk) = file.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Builds a collection's indexes (all but `_id_`) in one createIndexes.
async fn build_indexes(db: Database, coll: String, indexes: Vec<Document>) -> Result<u64> {
    let specs: Vec<Document> = indexes
        .into_iter()
        .filter(|i| i.get_str("name") != Ok("_id_"))
        .collect();
    if specs.is_empty() {
        return Ok(0);
    }
    let n = specs.len() as u64;
    db.run_command(doc! {"createIndexes": coll.as_str(), "indexes": specs})
        .await
        .map_err(|e| db_error(format!("building indexes of {}.{coll}", db.name()), e))?;
    Ok(n)
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
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl MongoLoader {
    /// Connects to `uri` (checking the server answers).
    pub async fn connect(uri: &str, options: LoadOptions) -> Result<Self> {
        let client = crate::client::connect(uri).await?;
        let namespaces = Namespaces::new(&options.ns_exclude, &options.db_rename)?;
        Ok(MongoLoader {
            client,
            uri_shown: redact_uri(uri),
            namespaces,
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
    /// which inserts them in order while this side goes on reading; up to
    /// [`LOAD_PARALLELISM`] collections load at the same time.
    async fn load_bson(
        &self,
        file: &mut DumpFile,
        db: &Database,
        coll: &str,
        permits: &Arc<Semaphore>,
    ) -> Result<(u64, JoinHandle<Result<()>>)> {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled("loader stopped".into()))?;
        let (tx, rx) = mpsc::channel::<Vec<RawDocumentBuf>>(1);
        let writer = tokio::spawn(insert_batches(
            db.collection::<RawDocumentBuf>(coll),
            format!("{}.{coll}", db.name()),
            rx,
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

/// Inserts batches in order into one collection (ordered, validation
/// bypassed, as mongorestore does).
async fn insert_batches(
    coll: mongodb::Collection<RawDocumentBuf>,
    ns: String,
    mut rx: mpsc::Receiver<Vec<RawDocumentBuf>>,
    _permit: OwnedSemaphorePermit,
) -> Result<()> {
    while let Some(batch) = rx.recv().await {
        coll.insert_many(batch)
            .ordered(true)
            .bypass_document_validation(true)
            .await
            .map_err(|e| db_error(format!("loading {ns}"), e))?;
    }
    Ok(())
}

#[async_trait]
impl DatabaseLoader for MongoLoader {
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
        let mut prepared: HashMap<String, bool> = HashMap::new();
        let mut oplog: Option<std::fs::File> = None;
        let permits = Arc::new(Semaphore::new(LOAD_PARALLELISM));
        let mut writers: Vec<(String, JoinHandle<Result<()>>)> = Vec::new();
        while let Some(mut file) = source.next_file().await {
            let path = file.path.clone();
            if path == "oplog.bson" {
                let mut spool = tempfile::tempfile().map_err(|e| Error::Io {
                    action: "spooling the oplog to",
                    path: std::env::temp_dir(),
                    source: e,
                })?;
                while let Some(chunk) = file.chunk().await? {
                    spool.write_all(&chunk).map_err(|e| Error::Io {
                        action: "spooling the oplog to",
                        path: std::env::temp_dir(),
                        source: e,
                    })?;
                }
                oplog = Some(spool);
                continue;
            }
            if let Some((src_db, coll)) = split_dump_path(&path, ".metadata.json") {
                let bytes = read_small(&mut file).await?;
                let meta = parse_metadata(&path, &bytes)?;
                let db_name = self.namespaces.target_db(src_db);
                let ns = format!("{db_name}.{coll}");
                if self.namespaces.excluded(&format!("{src_db}.{coll}")) {
                    continue;
                }
                if !prepared.contains_key(&ns) {
                    let db = self.client.database(&db_name);
                    self.prepare(&db, coll, Some(&meta)).await?;
                    prepared.insert(ns.clone(), true);
                } else if meta.options.contains_key("validator") {
                    summary.warnings.push(format!(
                        "{ns}: metadata came after the data; its creation options other than the validator were not applied"
                    ));
                }
                metas.insert(ns, (db_name, coll.to_string(), meta));
                continue;
            }
            if let Some((src_db, coll)) = split_dump_path(&path, ".bson") {
                let db_name = self.namespaces.target_db(src_db);
                let ns = format!("{db_name}.{coll}");
                if self.namespaces.excluded(&format!("{src_db}.{coll}")) {
                    summary.skipped.push(format!("{src_db}.{coll}"));
                    while file.chunk().await?.is_some() {}
                    continue;
                }
                let db = self.client.database(&db_name);
                if !prepared.contains_key(&ns) {
                    self.prepare(&db, coll, None).await?;
                    prepared.insert(ns.clone(), true);
                }
                let (n, writer) = self.load_bson(&mut file, &db, coll, &permits).await?;
                *summary.collections.entry(ns.clone()).or_default() += n;
                writers.push((ns, writer));
                continue;
            }
            // Anything else (directories' placeholders, unknown files) is skipped.
            while file.chunk().await?.is_some() {}
        }

        // Every collection's data is in before views and indexes.
        for (ns, writer) in writers {
            writer
                .await
                .map_err(|e| Error::task(&format!("loading {ns}"), e))??;
        }

        // Views, validators that arrived late, then indexes (in parallel).
        for (ns, (db_name, coll, meta)) in &metas {
            let db = self.client.database(db_name);
            if meta.is_view {
                let mut cmd = doc! {"create": coll.as_str()};
                cmd.extend(meta.options.clone());
                db.run_command(cmd)
                    .await
                    .map_err(|e| db_error(format!("creating view {ns}"), e))?;
            }
        }
        let jobs: Vec<(Database, String, Vec<Document>)> = metas
            .values()
            .filter(|(_, _, m)| !m.is_view)
            .map(|(db_name, coll, m)| {
                (
                    self.client.database(db_name),
                    coll.clone(),
                    m.indexes.clone(),
                )
            })
            .collect();
        let built: Vec<Result<u64>> = futures::stream::iter(jobs)
            .map(|(db, coll, indexes)| build_indexes(db, coll, indexes))
            .buffer_unordered(INDEX_PARALLELISM)
            .collect()
            .await;
        for b in built {
            summary.indexes += b?;
        }

        if let Some(mut spool) = oplog {
            spool.rewind().map_err(|e| Error::Io {
                action: "reading the spooled oplog from",
                path: std::env::temp_dir(),
                source: e,
            })?;
            let mut splitter = BsonSplitter::default();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = spool.read(&mut buf).map_err(|e| Error::Io {
                    action: "reading the spooled oplog from",
                    path: std::env::temp_dir(),
                    source: e,
                })?;
                if n == 0 {
                    break;
                }
                let mut docs = Vec::new();
                splitter.push(&buf[..n], "oplog.bson", &mut docs)?;
                for entry in docs {
                    if crate::oplog::apply(&self.client, &self.namespaces, &entry, &mut summary)
                        .await?
                    {
                        summary.oplog_entries += 1;
                    }
                }
            }
            splitter.finish("oplog.bson")?;
        }
        if summary.collections.is_empty() && metas.is_empty() {
            summary.warnings.push(format!(
                "the archive has no database dump; nothing was loaded into {}",
                self.uri_shown
            ));
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_handles_documents_across_chunks() {
        let a = mongodb::bson::to_vec(&doc! {"_id": 1, "s": "x".repeat(100)}).unwrap();
        let b = mongodb::bson::to_vec(&doc! {"_id": 2}).unwrap();
        let all = [a.clone(), b.clone()].concat();
        let mut s = BsonSplitter::default();
        let mut out = Vec::new();
        for chunk in all.chunks(7) {
            s.push(chunk, "x.bson", &mut out).unwrap();
        }
        s.finish("x.bson").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_bytes(), &a[..]);
        let mut t = BsonSplitter::default();
        t.push(&all[..all.len() - 3], "x.bson", &mut Vec::new())
            .unwrap();
        assert!(
            t.finish("x.bson")
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        let err = BsonSplitter::default()
            .push(&[1, 0, 0, 0, 0], "y.bson", &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("dump/y.bson"), "{err}");
    }
}
