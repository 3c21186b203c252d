//! Indexes, as mongorestore handles them: the metadata files' specs and the
//! oplog's index commands (`createIndexes`, `commitIndexBuild`,
//! `dropIndexes`, `collMod`, drops and renames) collected in one catalog,
//! built once the oplog is replayed — so a unique index that only holds
//! after the replay builds. Legacy key values (`{a: true}`, `{b: ""}`,
//! `{c: 0}`) are refused, naming the index, unless converted as
//! `mongorestore --convertLegacyIndexes` does.

use std::collections::BTreeMap;

use backups_core::{Error, Result};
use futures::StreamExt;
use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};

use crate::client::db_error;

/// Collections whose indexes are built at the same time.
const INDEX_PARALLELISM: usize = 4;

/// Index options mongorestore `--convertLegacyIndexes` keeps; the others
/// are removed.
const KEPT_OPTIONS: [&str; 24] = [
    "2dsphereIndexVersion",
    "background",
    "bits",
    "bucketSize",
    "coarsestIndexedLevel",
    "collation",
    "default_language",
    "expireAfterSeconds",
    "finestIndexedLevel",
    "hidden",
    "key",
    "language_override",
    "max",
    "min",
    "name",
    "ns",
    "partialFilterExpression",
    "sparse",
    "storageEngine",
    "textIndexVersion",
    "unique",
    "v",
    "weights",
    "wildcardProjection",
];

/// The indexes to build, per target `(db, collection)`, in the order they
/// were first seen.
#[derive(Debug, Default)]
pub(crate) struct IndexCatalog {
    by_collection: BTreeMap<(String, String), Vec<Document>>,
}

impl IndexCatalog {
    /// Adds (or replaces, by name) indexes of `db.coll`.
    pub(crate) fn add(&mut self, db: &str, coll: &str, specs: impl IntoIterator<Item = Document>) {
        let list = self
            .by_collection
            .entry((db.to_string(), coll.to_string()))
            .or_default();
        for mut spec in specs {
            spec.remove("ns");
            let name = spec.get_str("name").unwrap_or_default().to_string();
            match list.iter_mut().find(|i| i.get_str("name") == Ok(&name)) {
                Some(existing) => *existing = spec,
                None => list.push(spec),
            }
        }
    }

    /// `dropIndexes`' `index`: a name, `"*"` (all but `_id_`), a list of
    /// names or a key pattern.
    pub(crate) fn drop_indexes(&mut self, db: &str, coll: &str, which: Option<&Bson>) {
        let Some(list) = self
            .by_collection
            .get_mut(&(db.to_string(), coll.to_string()))
        else {
            return;
        };
        match which {
            None => {}
            Some(Bson::String(s)) if s == "*" => list.retain(|i| i.get_str("name") == Ok("_id_")),
            Some(Bson::String(name)) => list.retain(|i| i.get_str("name") != Ok(name)),
            Some(Bson::Array(names)) => list.retain(|i| {
                !names
                    .iter()
                    .any(|n| n.as_str().is_some() && n.as_str() == i.get_str("name").ok())
            }),
            Some(Bson::Document(key)) => list.retain(|i| i.get_document("key") != Ok(key)),
            Some(_) => {}
        }
    }

    /// `collMod`'s `index`: changes `expireAfterSeconds` or `hidden` of the
    /// index named by `name` or `keyPattern`.
    pub(crate) fn coll_mod(&mut self, db: &str, coll: &str, change: &Document) -> Result<()> {
        let ns = format!("{db}.{coll}");
        let list = self
            .by_collection
            .get_mut(&(db.to_string(), coll.to_string()));
        let found = list.and_then(|l| {
            l.iter_mut().find(|i| {
                match (change.get_str("name"), change.get_document("keyPattern")) {
                    (Ok(name), _) => i.get_str("name") == Ok(name),
                    (_, Ok(key)) => i.get_document("key") == Ok(key),
                    _ => false,
                }
            })
        });
        let Some(index) = found else {
            return Err(Error::Database {
                message: format!(
                    "replaying oplog collMod on {ns}: no such index {}",
                    crate::dump::to_ext_json_string(change.clone())
                ),
                source: None,
            });
        };
        for field in ["expireAfterSeconds", "hidden", "unique", "prepareUnique"] {
            if let Some(v) = change.get(field) {
                index.insert(field, v.clone());
            }
        }
        Ok(())
    }

    /// Forgets the indexes of a dropped collection.
    pub(crate) fn drop_collection(&mut self, db: &str, coll: &str) {
        self.by_collection
            .remove(&(db.to_string(), coll.to_string()));
    }

    /// Forgets the indexes of every collection of a dropped database.
    pub(crate) fn drop_database(&mut self, db: &str) {
        self.by_collection.retain(|(d, _), _| d != db);
    }

    /// Moves the indexes of a renamed collection (those of a replaced
    /// target are dropped).
    pub(crate) fn rename(&mut self, from: (&str, &str), to: (&str, &str)) {
        let to = (to.0.to_string(), to.1.to_string());
        self.by_collection.remove(&to);
        if let Some(list) = self
            .by_collection
            .remove(&(from.0.to_string(), from.1.to_string()))
        {
            self.by_collection.insert(to, list);
        }
    }

    /// Builds every collection's indexes but `_id_`, [`INDEX_PARALLELISM`]
    /// collections at a time; returns how many were built.
    pub(crate) async fn build(self, client: &Client, convert_legacy: bool) -> Result<u64> {
        let mut jobs = Vec::new();
        for ((db, coll), specs) in self.by_collection {
            let mut kept = Vec::new();
            for spec in specs {
                if spec.get_str("name") == Ok("_id_") {
                    continue;
                }
                kept.push(legacy_checked(
                    spec,
                    &format!("{db}.{coll}"),
                    convert_legacy,
                )?);
            }
            if !kept.is_empty() {
                jobs.push((client.database(&db), coll, kept));
            }
        }
        let built: Vec<Result<u64>> = futures::stream::iter(jobs)
            .map(|(db, coll, specs)| async move {
                let n = specs.len() as u64;
                let names: Vec<&str> = specs
                    .iter()
                    .map(|s| s.get_str("name").unwrap_or("?"))
                    .collect();
                let context = format!(
                    "building indexes {} of {}.{coll}",
                    names.join(", "),
                    db.name()
                );
                db.run_command(doc! {"createIndexes": coll.as_str(), "indexes": &specs})
                    .await
                    .map_err(|e| db_error(context, e))?;
                Ok(n)
            })
            .buffer_unordered(INDEX_PARALLELISM)
            .collect()
            .await;
        built.into_iter().sum()
    }
}

/// Whether an index key value is one servers since 3.4 refuse: zero, an
/// empty string, or neither a number nor a string.
fn is_legacy_value(v: &Bson) -> bool {
    match v {
        Bson::Int32(n) => *n == 0,
        Bson::Int64(n) => *n == 0,
        Bson::Double(n) => *n == 0.0,
        Bson::Decimal128(d) => d.to_string() == "0",
        Bson::String(s) => s.is_empty(),
        _ => true,
    }
}

/// The spec as it can be built: unchanged, converted (`convert`), or
/// refused naming the index.
fn legacy_checked(spec: Document, ns: &str, convert: bool) -> Result<Document> {
    let key = spec.get_document("key").cloned().unwrap_or_default();
    if !key.values().any(is_legacy_value) {
        return Ok(spec);
    }
    if !convert {
        return Err(Error::Database {
            message: format!(
                "index {} of {ns} has a legacy key {} that servers since 3.4 refuse; restore with --convert-legacy-indexes to convert it as mongorestore --convertLegacyIndexes does",
                spec.get_str("name").unwrap_or("?"),
                crate::dump::to_ext_json_string(key)
            ),
            source: None,
        });
    }
    Ok(convert_legacy(spec))
}

/// mongorestore's `--convertLegacyIndexes`: every numeric key value becomes
/// 1 or -1 by its sign, an empty string or any other type 1, other strings
/// (`"2dsphere"`, `"text"`...) stay; options it does not know are removed.
fn convert_legacy(spec: Document) -> Document {
    let mut out = Document::new();
    for (k, v) in spec {
        if k == "key" {
            let Bson::Document(key) = v else { continue };
            let mut converted = Document::new();
            for (field, value) in key {
                let sign = match &value {
                    Bson::Int32(n) => Some(*n < 0),
                    Bson::Int64(n) => Some(*n < 0),
                    Bson::Double(n) => Some(*n < 0.0),
                    Bson::Decimal128(d) => Some(d.to_string().starts_with('-')),
                    Bson::String(s) if !s.is_empty() => None,
                    _ => Some(false),
                };
                match sign {
                    Some(true) => converted.insert(field, -1),
                    Some(false) => converted.insert(field, 1),
                    None => converted.insert(field, value),
                };
            }
            out.insert("key", converted);
        } else if KEPT_OPTIONS.contains(&k.as_str()) {
            out.insert(k, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_keys_are_refused_or_converted() {
        let spec = doc! {"v": 1, "key": {"a": true, "b": "", "c": 0, "d": -2.5, "e": "2dsphere"}, "name": "legacy", "safe": true};
        let err = legacy_checked(spec.clone(), "db.c", false).unwrap_err();
        assert!(err.to_string().contains("index legacy of db.c"), "{err}");
        let converted = legacy_checked(spec, "db.c", true).unwrap();
        assert_eq!(
            converted,
            doc! {"v": 1, "key": {"a": 1, "b": 1, "c": 1, "d": -1, "e": "2dsphere"}, "name": "legacy"}
        );
        let modern = doc! {"key": {"a": 1, "b": -1}, "name": "ab"};
        assert_eq!(
            legacy_checked(modern.clone(), "db.c", false).unwrap(),
            modern
        );
    }

    #[test]
    fn catalog_follows_the_oplog() {
        let mut c = IndexCatalog::default();
        c.add(
            "d",
            "c",
            [
                doc! {"key": {"a": 1}, "name": "a_1"},
                doc! {"key": {"b": 1}, "name": "b_1"},
            ],
        );
        c.drop_indexes("d", "c", Some(&Bson::String("a_1".into())));
        c.coll_mod("d", "c", &doc! {"name": "b_1", "expireAfterSeconds": 5})
            .unwrap();
        assert!(
            c.coll_mod("d", "c", &doc! {"name": "zz", "hidden": true})
                .is_err()
        );
        c.rename(("d", "c"), ("d", "e"));
        assert_eq!(
            c.by_collection.get(&("d".to_string(), "e".to_string())),
            Some(&vec![
                doc! {"key": {"b": 1}, "name": "b_1", "expireAfterSeconds": 5}
            ])
        );
        c.drop_database("d");
        assert!(c.by_collection.is_empty());
    }
}
