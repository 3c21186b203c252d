//! Oplog writes as ordinary, idempotent writes (the server may have no
//! `applyOps`): inserts become upserting replacements, updates become
//! `$set`/`$unset`, deletes stay deletes. Which entries are applied, and
//! commands, are [`crate::replay`]'s.

use backups_core::Result;
use mongodb::Database;
use mongodb::bson::{Bson, Document, doc};

use crate::client::db_error;

/// An update expressed as `$set` and `$unset` paths plus array truncations.
#[derive(Default)]
struct Changes {
    set: Document,
    unset: Document,
    truncate: Vec<(String, i64)>,
}

impl Changes {
    fn into_updates(self) -> Vec<Document> {
        let mut first = Document::new();
        if !self.set.is_empty() {
            first.insert("$set", self.set);
        }
        if !self.unset.is_empty() {
            first.insert("$unset", self.unset);
        }
        let mut out = Vec::new();
        if !first.is_empty() {
            out.push(first);
        }
        for (field, size) in self.truncate {
            out.push(doc! {"$push": {field: {"$each": [], "$slice": size}}});
        }
        out
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// MongoDB's own v2 diff: `u`/`i` set, `d` unsets, `s<field>` nests,
/// `a: true` marks an array diff with `u<idx>`, `s<idx>` and `l` (length).
fn mongo_diff(diff: &Document, prefix: &str, out: &mut Changes) {
    let is_array = diff.get_bool("a").unwrap_or(false);
    for (key, value) in diff {
        match key.as_str() {
            "a" => {}
            "u" | "i" if !is_array => {
                if let Bson::Document(d) = value {
                    for (k, v) in d {
                        out.set.insert(join(prefix, k), v.clone());
                    }
                }
            }
            "d" if !is_array => {
                if let Bson::Document(d) = value {
                    for (k, _) in d {
                        out.unset.insert(join(prefix, k), "");
                    }
                }
            }
            "l" if is_array => {
                let size = match value {
                    Bson::Int32(n) => i64::from(*n),
                    Bson::Int64(n) => *n,
                    _ => continue,
                };
                out.truncate.push((prefix.to_string(), size));
            }
            k if is_array && k.starts_with('u') => {
                out.set.insert(join(prefix, &k[1..]), value.clone());
            }
            k if k.starts_with('s') => {
                if let Bson::Document(sub) = value {
                    mongo_diff(sub, &join(prefix, &k[1..]), out);
                }
            }
            _ => {}
        }
    }
}

/// SecantusDB's diff: `updatedFields`, `removedFields`, `truncatedArrays`.
fn secantus_diff(diff: &Document, out: &mut Changes) {
    if let Ok(set) = diff.get_document("updatedFields") {
        for (k, v) in set {
            out.set.insert(k.clone(), v.clone());
        }
    }
    if let Ok(removed) = diff.get_array("removedFields") {
        for f in removed.iter().filter_map(Bson::as_str) {
            out.unset.insert(f.to_string(), "");
        }
    }
    if let Ok(truncated) = diff.get_array("truncatedArrays") {
        for t in truncated.iter().filter_map(Bson::as_document) {
            let field = t.get_str("field").unwrap_or_default().to_string();
            let size = t
                .get_i64("newSize")
                .or_else(|_| t.get_i32("newSize").map(i64::from));
            if let (false, Ok(size)) = (field.is_empty(), size) {
                out.truncate.push((field, size));
            }
        }
    }
}

/// Applies one insert (`i`), update (`u`) or delete (`d`) to `coll` of `db`.
pub(crate) async fn apply_crud(
    db: &Database,
    coll: &str,
    op: &str,
    entry: &Document,
) -> Result<()> {
    let empty = Document::new();
    let o = entry.get_document("o").unwrap_or(&empty);
    let ns = format!("{}.{coll}", db.name());
    let ctx = |what: &str| format!("replaying oplog {what} on {ns}");
    match op {
        "i" => {
            let id = o.get("_id").cloned().unwrap_or(Bson::Null);
            db.collection::<Document>(coll)
                .replace_one(doc! {"_id": id}, o.clone())
                .upsert(true)
                .bypass_document_validation(true)
                .await
                .map_err(|e| db_error(ctx("insert"), e))?;
        }
        "d" => {
            db.collection::<Document>(coll)
                .delete_one(o.clone())
                .await
                .map_err(|e| db_error(ctx("delete"), e))?;
        }
        _ => {
            let filter = entry.get_document("o2").cloned().unwrap_or_default();
            let collection = db.collection::<Document>(coll);
            let diff = (o.get("$v").is_some())
                .then(|| o.get_document("diff").ok())
                .flatten();
            if let Some(diff) = diff {
                let mut changes = Changes::default();
                if diff.contains_key("updatedFields")
                    || diff.contains_key("removedFields")
                    || diff.contains_key("truncatedArrays")
                {
                    secantus_diff(diff, &mut changes);
                } else {
                    mongo_diff(diff, "", &mut changes);
                }
                for update in changes.into_updates() {
                    collection
                        .update_one(filter.clone(), update)
                        .bypass_document_validation(true)
                        .await
                        .map_err(|e| db_error(ctx("update"), e))?;
                }
            } else if o.keys().any(|k| k.starts_with('$')) {
                let mut update = o.clone();
                update.remove("$v");
                collection
                    .update_one(filter, update)
                    .bypass_document_validation(true)
                    .await
                    .map_err(|e| db_error(ctx("update"), e))?;
            } else {
                collection
                    .replace_one(filter, o.clone())
                    .upsert(true)
                    .bypass_document_validation(true)
                    .await
                    .map_err(|e| db_error(ctx("replace"), e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mongodb_v2_diff_becomes_set_and_unset() {
        let diff = doc! {
            "u": {"a": 1}, "i": {"b": 2}, "d": {"c": false},
            "sx": {"u": {"y": 3}},
            "sarr": {"a": true, "u1": "z", "l": 3},
        };
        let mut c = Changes::default();
        mongo_diff(&diff, "", &mut c);
        assert_eq!(c.set, doc! {"a": 1, "b": 2, "x.y": 3, "arr.1": "z"});
        assert_eq!(c.unset, doc! {"c": ""});
        assert_eq!(c.truncate, vec![("arr".to_string(), 3)]);
    }

    #[test]
    fn secantus_diff_becomes_set_and_unset() {
        let diff = doc! {"updatedFields": {"y": 2}, "removedFields": ["x"], "truncatedArrays": [{"field": "a", "newSize": 1}]};
        let mut c = Changes::default();
        secantus_diff(&diff, &mut c);
        let updates = c.into_updates();
        assert_eq!(updates[0], doc! {"$set": {"y": 2}, "$unset": {"x": ""}});
        assert_eq!(
            updates[1],
            doc! {"$push": {"a": {"$each": [], "$slice": 1i64}}}
        );
    }
}
