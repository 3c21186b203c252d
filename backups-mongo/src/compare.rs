//! Comparing a backup's dump with a live database, changing nothing:
//! documents matched by `_id`, indexes by name.
//!
//! Memory stays bounded whatever a collection's size: each side of a
//! collection becomes `(_id, SHA-256 of the document's bytes)` records,
//! sorted by an external merge sort ([`sort`]) on the `_id`'s canonical
//! BSON bytes — the same comparator on both sides, so the server's own
//! `_id` order does not matter — and the two sorted streams are merged.
//! A collection is compared as soon as its `.bson` file has streamed past
//! (one collection's records in memory at a time); its indexes once every
//! metadata file has been read.
//!
//! Documents differ when an `_id` is on both sides with different bytes
//! (a field reordered counts). Index specs are compared without `ns`, `v`
//! (the index version) and `background`, numbers by value (`1` and `1.0`
//! are the same key), the key pattern in order. The oplog a dump captured
//! is not applied: the backup side is the dumped documents. Views and
//! `system.*` collections are not compared. A live collection of a dumped
//! database that the dump lacks is listed with all its documents and
//! indexes only live (a restore leaves it as it is).

mod sort;

use std::collections::BTreeMap;

use async_trait::async_trait;
use backups_core::database::{CollectionDiff, DumpFile, DumpSource};
use backups_core::{DatabaseComparer, Error, Result};
use mongodb::Client;
use mongodb::bson::{Bson, Document, RawDocument, RawDocumentBuf, doc};
use sha2::{Digest, Sha256};

use crate::bson_stream::BsonSplitter;
use crate::client::{db_error, redact_uri};
use crate::metadata::CollectionMeta;
use crate::namespace::Namespaces;
use crate::walk::{DumpWalk, Walked, drain};
use sort::{DEFAULT_CHUNK_BYTES, ExternalSort, Sorted};

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// `db.collection` globs to leave out (as a restore with the same
    /// `--ns-exclude` would).
    pub ns_exclude: Vec<String>,
    /// Compare database `from` of the dump with live database `to`.
    pub db_rename: Vec<(String, String)>,
}

/// Compares a dump with a MongoDB deployment.
pub struct MongoComparer {
    client: Client,
    uri_shown: String,
    namespaces: Namespaces,
    renames: Vec<(String, String)>,
    chunk_bytes: usize,
}

impl std::fmt::Debug for MongoComparer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoComparer")
            .field("uri", &self.uri_shown)
            .field("namespaces", &self.namespaces)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish_non_exhaustive()
    }
}

/// One dumped collection, as far as it has been read.
#[derive(Debug, Default)]
struct Pending {
    meta: Option<CollectionMeta>,
    diff: Option<CollectionDiff>,
}

fn spool_err(e: std::io::Error) -> Error {
    Error::Io {
        action: "sorting the compared documents in",
        path: std::env::temp_dir(),
        source: e,
    }
}

impl MongoComparer {
    /// Connects to `uri` (checking the server answers).
    pub async fn connect(uri: &str, options: CompareOptions) -> Result<Self> {
        let client = crate::client::connect(uri).await?;
        let namespaces = Namespaces::new(&options.ns_exclude, &options.db_rename)?;
        Ok(MongoComparer {
            client,
            uri_shown: redact_uri(uri),
            namespaces,
            renames: options.db_rename,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        })
    }

    /// Keeps about `bytes` of records in memory per side of a collection
    /// before sorting them to a temp file (64 MiB by default).
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes;
        self
    }

    /// Compares the documents of a dumped `.bson` file with `db.coll`.
    async fn compare_documents(
        &self,
        file: Option<&mut DumpFile>,
        db: &str,
        coll: &str,
    ) -> Result<CollectionDiff> {
        let ns = format!("{db}.{coll}");
        let mut backup = ExternalSort::new(self.chunk_bytes);
        if let Some(file) = file {
            let mut splitter = BsonSplitter::default();
            let mut docs = Vec::new();
            while let Some(chunk) = file.chunk().await? {
                splitter.push(&chunk, &file.path, &mut docs)?;
                for doc in docs.drain(..) {
                    let (key, hash) = record(&doc, &format!("dump/{}", file.path))?;
                    backup.push(key, hash).map_err(spool_err)?;
                }
            }
            splitter.finish(&file.path)?;
        }
        let mut live = ExternalSort::new(self.chunk_bytes);
        let mut cursor = self
            .client
            .database(db)
            .collection::<RawDocumentBuf>(coll)
            .find(doc! {})
            .await
            .map_err(|e| db_error(format!("reading {ns}"), e))?;
        while cursor
            .advance()
            .await
            .map_err(|e| db_error(format!("reading {ns}"), e))?
        {
            let (key, hash) = record(cursor.current(), &ns)?;
            live.push(key, hash).map_err(spool_err)?;
        }
        let mut diff = CollectionDiff::new(&ns);
        diff.backup_documents = backup.len();
        diff.live_documents = live.len();
        // Merging runs from disk is long blocking work: off the runtime.
        tokio::task::spawn_blocking(move || {
            merge(backup.finish()?, live.finish()?, &mut diff)?;
            Ok(diff)
        })
        .await
        .map_err(|e| Error::task(&format!("comparing {ns}"), e))?
        .map_err(spool_err)
    }

    /// The collections of the live database `db` (views and `system.*`
    /// left out).
    async fn live_collections(&self, db: &str) -> Result<Vec<String>> {
        use futures::TryStreamExt;
        let what = || format!("listing the collections of {db}");
        let specs: Vec<Document> = self
            .client
            .database(db)
            .run_cursor_command(doc! {"listCollections": 1})
            .await
            .map_err(|e| db_error(what(), e))?
            .try_collect()
            .await
            .map_err(|e| db_error(what(), e))?;
        Ok(specs
            .iter()
            .filter(|s| s.get_str("type").unwrap_or("collection") == "collection")
            .filter_map(|s| s.get_str("name").ok())
            .filter(|n| !n.starts_with("system."))
            .map(str::to_string)
            .collect())
    }

    /// A live collection of a dumped database that the dump lacks: all
    /// its documents and indexes are only live.
    async fn only_live(&self, db: &str, coll: &str) -> Result<CollectionDiff> {
        let mut diff = CollectionDiff::new(format!("{db}.{coll}"));
        diff.live_documents = self
            .client
            .database(db)
            .collection::<Document>(coll)
            .count_documents(doc! {})
            .await
            .map_err(|e| db_error(format!("counting the documents of {db}.{coll}"), e))?;
        diff.only_live = diff.live_documents;
        compare_indexes(&[], &self.live_indexes(db, coll).await?, &mut diff);
        Ok(diff)
    }

    /// The dump's name of the live database `db` (before a rename).
    fn source_db<'a>(&'a self, db: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(_, to)| to == db)
            .map_or(db, |(from, _)| from.as_str())
    }

    /// The live index specs of `db.coll` (none when it does not exist).
    async fn live_indexes(&self, db: &str, coll: &str) -> Result<Vec<Document>> {
        let reply = self
            .client
            .database(db)
            .run_command(doc! {"listIndexes": coll})
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) if is_namespace_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(db_error(format!("listing the indexes of {db}.{coll}"), e)),
        };
        // Small: a collection has at most 64 indexes, in the first batch.
        let batch = reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map(|b| b.iter().filter_map(|i| i.as_document().cloned()).collect())
            .unwrap_or_default();
        Ok(batch)
    }
}

/// The `_id`'s canonical bytes (a one-field document `{"": _id}`) and the
/// SHA-256 of the whole document. A document without `_id` is keyed by
/// its own hash.
fn record(doc: &RawDocument, subject: &str) -> Result<(Vec<u8>, [u8; 32])> {
    let hash: [u8; 32] = Sha256::digest(doc.as_bytes()).into();
    let id = doc.get("_id").map_err(|e| Error::InvalidArchive {
        subject: subject.to_string(),
        reason: format!("corrupt BSON: {e}"),
    })?;
    let key = match id {
        Some(id) => {
            let mut key = RawDocumentBuf::new();
            key.append_ref("", id);
            key.into_bytes()
        }
        None => [&[0xff][..], &hash[..]].concat(),
    };
    Ok((key, hash))
}

/// Merges the two sorted sides into `diff`'s counts.
fn merge(mut backup: Sorted, mut live: Sorted, diff: &mut CollectionDiff) -> std::io::Result<()> {
    let mut b = backup.next()?;
    let mut l = live.next()?;
    loop {
        match (&b, &l) {
            (None, None) => return Ok(()),
            (Some(_), None) => {
                diff.only_in_backup += 1;
                b = backup.next()?;
            }
            (None, Some(_)) => {
                diff.only_live += 1;
                l = live.next()?;
            }
            (Some(x), Some(y)) => match x.key.cmp(&y.key) {
                std::cmp::Ordering::Less => {
                    diff.only_in_backup += 1;
                    b = backup.next()?;
                }
                std::cmp::Ordering::Greater => {
                    diff.only_live += 1;
                    l = live.next()?;
                }
                std::cmp::Ordering::Equal => {
                    if x.hash != y.hash {
                        diff.different += 1;
                    }
                    b = backup.next()?;
                    l = live.next()?;
                }
            },
        }
    }
}

fn is_namespace_not_found(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 26)
}

/// Index spec fields that are not compared.
const IGNORED_INDEX_FIELDS: [&str; 4] = ["name", "ns", "v", "background"];

/// Sorts the index names of both sides into the diff's lists.
fn compare_indexes(backup: &[Document], live: &[Document], diff: &mut CollectionDiff) {
    let by_name = |specs: &[Document]| -> BTreeMap<String, Document> {
        specs
            .iter()
            .filter_map(|s| Some((s.get_str("name").ok()?.to_string(), s.clone())))
            .collect()
    };
    let (backup, live) = (by_name(backup), by_name(live));
    for (name, spec) in &backup {
        match live.get(name) {
            None => diff.indexes_only_in_backup.push(name.clone()),
            Some(other) if !same_spec(spec, other) => diff.indexes_different.push(name.clone()),
            Some(_) => {}
        }
    }
    diff.indexes_only_live = live
        .keys()
        .filter(|n| !backup.contains_key(*n))
        .cloned()
        .collect();
}

/// Whether two index specs are the same, their fields in any order.
fn same_spec(a: &Document, b: &Document) -> bool {
    let fields = |d: &Document| -> BTreeMap<String, Bson> {
        d.iter()
            .filter(|(k, _)| !IGNORED_INDEX_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (a, b) = (fields(a), fields(b));
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| same_value(v, w)))
}

/// Equal values, numbers by value; documents in order (a key pattern's
/// order matters).
fn same_value(a: &Bson, b: &Bson) -> bool {
    let number = |v: &Bson| match v {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    };
    match (a, b) {
        (Bson::Document(x), Bson::Document(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k, v), (l, w))| k == l && same_value(v, w))
        }
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_value(v, w))
        }
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

#[async_trait]
impl DatabaseComparer for MongoComparer {
    async fn compare(&self, mut source: DumpSource) -> Result<Vec<CollectionDiff>> {
        // Keyed by live (db, collection).
        let mut pending: BTreeMap<(String, String), Pending> = BTreeMap::new();
        let mut walk = DumpWalk::default();
        while let Some(walked) = walk.next(&mut source, &self.namespaces).await? {
            let mut c = match walked {
                Walked::Oplog(mut file) => {
                    drain(&mut file).await?;
                    continue;
                }
                Walked::Collection(c) => c,
            };
            if c.excluded || c.coll.starts_with("system.") {
                c.skip().await?;
                continue;
            }
            let entry = pending.entry((c.db.clone(), c.coll.clone())).or_default();
            match c.meta.take() {
                Some(meta) => entry.meta = Some(meta),
                None => {
                    let diff = self
                        .compare_documents(Some(&mut c.file), &c.db, &c.coll)
                        .await?;
                    entry.diff = Some(diff);
                }
            }
        }
        let mut out = Vec::new();
        // The dumped databases' live collections the dump lacks (a
        // restore leaves them).
        let databases: std::collections::BTreeSet<&String> =
            pending.keys().map(|(db, _)| db).collect();
        for db in databases {
            for coll in self.live_collections(db).await? {
                let src = format!("{}.{coll}", self.source_db(db));
                if !pending.contains_key(&(db.clone(), coll.clone()))
                    && !self.namespaces.excluded(&src)
                {
                    out.push(self.only_live(db, &coll).await?);
                }
            }
        }
        for ((db, coll), p) in pending {
            if p.meta.as_ref().is_some_and(|m| m.is_view) {
                continue;
            }
            let mut diff = match p.diff {
                Some(diff) => diff,
                // Only a metadata file: an empty collection in the backup.
                None => self.compare_documents(None, &db, &coll).await?,
            };
            let backup_indexes = p.meta.map(|m| m.indexes).unwrap_or_default();
            let live_indexes = self.live_indexes(&db, &coll).await?;
            compare_indexes(&backup_indexes, &live_indexes, &mut diff);
            out.push(diff);
        }
        out.sort_by(|a, b| a.ns.cmp(&b.ns));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_keyed_by_their_bytes_and_documents_by_their_hash() {
        let a = RawDocumentBuf::from_document(&doc! {"_id": 1, "x": 1}).unwrap();
        let b = RawDocumentBuf::from_document(&doc! {"x": 1, "_id": 1}).unwrap();
        let c = RawDocumentBuf::from_document(&doc! {"_id": 1_i64, "x": 1}).unwrap();
        let (ka, ha) = record(&a, "t").unwrap();
        let (kb, hb) = record(&b, "t").unwrap();
        let (kc, _) = record(&c, "t").unwrap();
        assert_eq!(ka, kb, "the same _id, wherever it is");
        assert_ne!(ha, hb, "field order is a difference");
        assert_ne!(ka, kc, "an int64 _id is another _id");
    }

    #[test]
    fn merge_counts_each_side_through_the_external_sort() {
        let docs = |ids: &[(i32, &str)]| -> Vec<RawDocumentBuf> {
            ids.iter()
                .map(|(i, v)| RawDocumentBuf::from_document(&doc! {"_id": *i, "v": *v}).unwrap())
                .collect()
        };
        // Backup 0..300; live: 0..250 with 10..20 changed, plus 400..430.
        let backup_docs = docs(&(0..300).map(|i| (i, "b")).collect::<Vec<_>>());
        let mut live_pairs: Vec<(i32, &str)> = (0..250)
            .map(|i| {
                (
                    i,
                    if (10..20).contains(&i) {
                        "changed"
                    } else {
                        "b"
                    },
                )
            })
            .collect();
        live_pairs.extend((400..430).map(|i| (i, "new")));
        live_pairs.reverse(); // any server order
        let live_docs = docs(&live_pairs);
        // 512-byte chunks: several runs a side, merged from disk.
        let sorted = |docs: &[RawDocumentBuf]| {
            let mut sort = ExternalSort::new(512);
            for d in docs {
                let (k, h) = record(d, "t").unwrap();
                sort.push(k, h).unwrap();
            }
            sort.finish().unwrap()
        };
        let (backup, live) = (sorted(&backup_docs), sorted(&live_docs));
        assert!(matches!(backup, Sorted::Merge(_)));
        let mut diff = CollectionDiff::new("db.c");
        merge(backup, live, &mut diff).unwrap();
        assert_eq!(
            (diff.only_in_backup, diff.only_live, diff.different),
            (50, 30, 10)
        );
    }

    #[test]
    fn index_specs_compare_by_name_key_and_options() {
        let backup = vec![
            doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            doc! {"v": 2, "key": {"a": 1, "b": -1}, "name": "a_b", "unique": true},
            doc! {"v": 2, "key": {"c": 1}, "name": "c_1"},
            doc! {"v": 1, "key": {"d": 1.0}, "name": "d_1", "background": true},
        ];
        let live = vec![
            doc! {"key": {"_id": 1_i64}, "name": "_id_", "v": 2},
            doc! {"v": 2, "key": {"b": -1, "a": 1}, "name": "a_b", "unique": true},
            doc! {"v": 2, "key": {"d": 1}, "name": "d_1"},
            doc! {"v": 2, "key": {"e": 1}, "name": "e_1"},
        ];
        let mut diff = CollectionDiff::new("db.c");
        compare_indexes(&backup, &live, &mut diff);
        assert_eq!(diff.indexes_only_in_backup, vec!["c_1"]);
        assert_eq!(diff.indexes_only_live, vec!["e_1"]);
        assert_eq!(diff.indexes_different, vec!["a_b"], "key order matters");
        let mut unique = live.clone();
        unique[2].insert("unique", true);
        let mut diff = CollectionDiff::new("db.c");
        compare_indexes(&backup, &unique, &mut diff);
        assert_eq!(diff.indexes_different, vec!["a_b", "d_1"]);
    }
}
