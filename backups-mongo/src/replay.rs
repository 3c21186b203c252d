//! Replaying `dump/oplog.bson` as `mongorestore --oplogReplay` does: which
//! entries are skipped (no-ops, `config.*`, `local.*`, `admin.system.*`,
//! excluded namespaces, from `--oplog-limit` on), `applyOps` expanded (and
//! transactions buffered until they commit), commands applied, index
//! commands recorded in the [`IndexCatalog`]. A command that cannot be
//! applied is an error.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use backups_core::database::LoadSummary;
use backups_core::{Error, Result};
use mongodb::Client;
use mongodb::bson::{Bson, Document, RawDocumentBuf, Timestamp, doc};

use crate::client::db_error;
use crate::indexes::IndexCatalog;
use crate::namespace::Namespaces;

/// Oplog operations with nothing to replay: no-ops and the record-id
/// bookkeeping newer servers write.
const IGNORED_OPS: [&str; 5] = ["n", "cd", "ci", "cu", "km"];

/// Commands the replication system itself redoes.
const IGNORED_COMMANDS: [&str; 4] = [
    "startIndexBuild",
    "abortIndexBuild",
    "setMultikeyMetadata",
    "dbCheck",
];

/// Whether mongorestore leaves `ns` out of a replay.
fn ignored_ns(ns: &str) -> bool {
    ns.starts_with("config.")
        || ns.starts_with("local.")
        || ns.starts_with("admin.system.")
        || ns.starts_with("__mdb_internal")
}

/// An oplog timestamp, `seconds[:ordinal]` as mongorestore's
/// `--oplogLimit` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OplogTimestamp {
    /// Seconds since the Unix epoch.
    pub seconds: u32,
    /// The operation's ordinal within that second.
    pub ordinal: u32,
}

impl OplogTimestamp {
    pub(crate) fn to_bson(self) -> Timestamp {
        Timestamp {
            time: self.seconds,
            increment: self.ordinal,
        }
    }
}

impl std::str::FromStr for OplogTimestamp {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (seconds, ordinal) = s.split_once(':').unwrap_or((s, ""));
        let seconds = seconds
            .parse()
            .map_err(|e| format!("bad seconds in {s:?} (expected seconds[:ordinal]): {e}"))?;
        let ordinal = match ordinal {
            "" => 0,
            o => o
                .parse()
                .map_err(|e| format!("bad ordinal in {s:?} (expected seconds[:ordinal]): {e}"))?,
        };
        Ok(OplogTimestamp { seconds, ordinal })
    }
}

/// The state of one replay.
pub(crate) struct Replay<'a> {
    pub(crate) client: &'a Client,
    pub(crate) namespaces: &'a Namespaces,
    pub(crate) catalog: &'a mut IndexCatalog,
    pub(crate) summary: &'a mut LoadSummary,
    /// Entries at or after this timestamp are not replayed.
    pub(crate) limit: Option<Timestamp>,
    /// Operations of transactions not committed yet, by session and number.
    pub(crate) pending: HashMap<String, Vec<Document>>,
}

type Step<'b> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'b>>;

fn bad_entry(reason: String) -> Error {
    Error::InvalidArchive {
        subject: "dump/oplog.bson".into(),
        reason,
    }
}

fn refused(ns: &str, what: &str, why: &str) -> Error {
    Error::Database {
        message: format!("replaying oplog {what} on {ns}: {why}"),
        source: None,
    }
}

impl Replay<'_> {
    /// Replays one top-level entry; `false` once `--oplog-limit` is reached
    /// (the oplog is in timestamp order: nothing after it is replayed).
    pub(crate) async fn entry(&mut self, raw: &RawDocumentBuf) -> Result<bool> {
        let entry = raw
            .to_document()
            .map_err(|e| bad_entry(format!("corrupt oplog entry: {e}")))?;
        let op = entry.get_str("op").unwrap_or("n");
        if ignored_ns(entry.get_str("ns").unwrap_or("")) || IGNORED_OPS.contains(&op) {
            return Ok(true);
        }
        if let (Some(limit), Ok(ts)) = (self.limit, entry.get_timestamp("ts"))
            && (ts.time, ts.increment) >= (limit.time, limit.increment)
        {
            return Ok(false);
        }
        let empty = Document::new();
        let o = entry.get_document("o").unwrap_or(&empty);
        let txn = match (entry.get_document("lsid"), entry.get("txnNumber")) {
            (Ok(lsid), Some(n)) if op == "c" => Some(format!("{lsid}/{n}")),
            _ => None,
        };
        if let Some(key) = txn {
            if let Ok(ops) = o.get_array("applyOps") {
                let ops: Vec<Document> = ops
                    .iter()
                    .filter_map(|d| d.as_document().cloned())
                    .collect();
                let open = o.get_bool("partialTxn").unwrap_or(false)
                    || o.get_bool("prepare").unwrap_or(false);
                self.pending.entry(key.clone()).or_default().extend(ops);
                if !open {
                    return self.commit(&key).await.map(|_| true);
                }
                return Ok(true);
            }
            if o.contains_key("commitTransaction") {
                return self.commit(&key).await.map(|_| true);
            }
            if o.contains_key("abortTransaction") {
                self.pending.remove(&key);
                return Ok(true);
            }
        }
        self.op(entry).await?;
        Ok(true)
    }

    /// Applies the buffered operations of a committed transaction.
    async fn commit(&mut self, key: &str) -> Result<()> {
        for op in self.pending.remove(key).unwrap_or_default() {
            self.op(op).await?;
        }
        Ok(())
    }

    /// Applies one operation (nested `applyOps` recursively).
    fn op(&mut self, entry: Document) -> Step<'_> {
        Box::pin(async move {
            let op = entry.get_str("op").unwrap_or("n").to_string();
            let ns = entry.get_str("ns").unwrap_or("").to_string();
            if ignored_ns(&ns) || IGNORED_OPS.contains(&op.as_str()) {
                return Ok(());
            }
            let Some((src_db, coll)) = ns.split_once('.') else {
                return Err(bad_entry(format!(
                    "oplog entry without a namespace: {entry}"
                )));
            };
            match op.as_str() {
                "c" => self.command(src_db, &entry).await,
                "i" | "u" | "d" => {
                    if self.namespaces.excluded(&ns) {
                        return Ok(());
                    }
                    let db = self.client.database(&self.namespaces.target_db(src_db));
                    crate::oplog::apply_crud(&db, coll, &op, &entry).await?;
                    self.summary.oplog_entries += 1;
                    Ok(())
                }
                other => Err(bad_entry(format!(
                    "unknown oplog operation {other:?} on {ns}"
                ))),
            }
        })
    }

    /// `applyOps`: each inner entry, in order.
    async fn apply_ops(&mut self, src_db: &str, ops: Bson) -> Result<()> {
        let Bson::Array(ops) = ops else {
            return Err(bad_entry(format!(
                "applyOps that is not an array on {src_db}"
            )));
        };
        for inner in ops {
            let Bson::Document(inner) = inner else {
                return Err(bad_entry(format!(
                    "applyOps entry that is not a document on {src_db}"
                )));
            };
            self.op(inner).await?;
        }
        Ok(())
    }

    /// `collMod`: an index change goes to the catalog (built at the end),
    /// the rest to the server.
    async fn coll_mod(
        &mut self,
        db: &mongodb::Database,
        db_name: &str,
        coll: &str,
        mut o: Document,
    ) -> Result<()> {
        let ns = format!("{db_name}.{coll}");
        o.remove("noPadding");
        o.remove("usePowerOf2Sizes");
        if let Some(index) = o.remove("index") {
            let Bson::Document(index) = index else {
                return Err(bad_entry(format!(
                    "collMod index that is not a document on {ns}"
                )));
            };
            self.catalog.coll_mod(db_name, coll, &index)?;
        }
        if o.len() > 1 {
            db.run_command(o)
                .await
                .map_err(|e| db_error(format!("replaying oplog collMod on {ns}"), e))?;
        }
        Ok(())
    }

    /// Applies one command entry of database `src_db`.
    async fn command(&mut self, src_db: &str, entry: &Document) -> Result<()> {
        let empty = Document::new();
        let mut o = entry.get_document("o").unwrap_or(&empty).clone();
        let Some((name, first)) = o.iter().next().map(|(k, v)| (k.clone(), v.clone())) else {
            return Err(bad_entry(format!(
                "oplog command without a body on {src_db}"
            )));
        };
        if name == "applyOps" {
            return self.apply_ops(src_db, first).await;
        }
        if IGNORED_COMMANDS.contains(&name.as_str()) {
            return Ok(());
        }
        let coll = first.as_str().unwrap_or("").to_string();
        let src_ns = format!("{src_db}.{coll}");
        if name != "dropDatabase" && name != "renameCollection" {
            if coll.is_empty() {
                return Err(bad_entry(format!(
                    "oplog {name} without a collection on {src_db}"
                )));
            }
            if ignored_ns(&src_ns) || self.namespaces.excluded(&src_ns) {
                return Ok(());
            }
        }
        let db_name = self.namespaces.target_db(src_db);
        let db = self.client.database(&db_name);
        let ns = format!("{db_name}.{coll}");
        match name.as_str() {
            "createIndexes" => {
                o.remove("createIndexes");
                self.catalog.add(&db_name, &coll, [o]);
            }
            "commitIndexBuild" => {
                let specs = o
                    .get_array("indexes")
                    .map_err(|_| bad_entry(format!("commitIndexBuild without indexes on {ns}")))?;
                let specs = specs.iter().filter_map(|s| s.as_document().cloned());
                self.catalog.add(&db_name, &coll, specs);
            }
            "dropIndexes" | "dropIndex" | "deleteIndexes" | "deleteIndex" => {
                self.catalog.drop_indexes(&db_name, &coll, o.get("index"));
            }
            "collMod" => self.coll_mod(&db, &db_name, &coll, o).await?,
            "create" => {
                o.remove("idIndex");
                if let Some(p) = o.remove("viewPipeline") {
                    o.insert("pipeline", p);
                }
                match db.run_command(o).await {
                    Ok(_) => {}
                    // Created during the dump, and so in the dump already.
                    Err(e) if is_namespace_exists(&e) => {}
                    Err(e) => return Err(db_error(format!("replaying oplog create on {ns}"), e)),
                }
            }
            "drop" => {
                self.catalog.drop_collection(&db_name, &coll);
                db.collection::<Document>(&coll)
                    .drop()
                    .await
                    .map_err(|e| db_error(format!("replaying oplog drop on {ns}"), e))?;
            }
            "dropDatabase" => self.drop_database(src_db, &db_name).await?,
            "renameCollection" => self.rename(&o).await?,
            other => {
                return Err(refused(
                    &ns,
                    other,
                    "this command cannot be replayed (mongorestore applies it with applyOps, which this server may not have)",
                ));
            }
        }
        self.summary.oplog_entries += 1;
        Ok(())
    }

    /// `dropDatabase`: every collection but the excluded ones (which are
    /// left untouched, as everywhere else).
    async fn drop_database(&mut self, src_db: &str, db_name: &str) -> Result<()> {
        // Excluded collections are never in the catalog.
        self.catalog.drop_database(db_name);
        let db = self.client.database(db_name);
        let names = db
            .list_collection_names()
            .await
            .map_err(|e| db_error(format!("replaying oplog dropDatabase on {db_name}"), e))?;
        for name in names {
            if name.starts_with("system.") || self.namespaces.excluded(&format!("{src_db}.{name}"))
            {
                continue;
            }
            db.collection::<Document>(&name)
                .drop()
                .await
                .map_err(|e| db_error(format!("replaying oplog dropDatabase on {db_name}"), e))?;
        }
        Ok(())
    }

    /// `renameCollection` (`o: {renameCollection: "db.a", to: "db.b",
    /// dropTarget}`), with the databases renamed as the load renames them.
    async fn rename(&mut self, o: &Document) -> Result<()> {
        let from = o.get_str("renameCollection").unwrap_or("");
        let to = o.get_str("to").unwrap_or("");
        let (Some((from_db, from_coll)), Some((to_db, to_coll))) =
            (from.split_once('.'), to.split_once('.'))
        else {
            return Err(bad_entry(format!(
                "renameCollection without from and to: {o}"
            )));
        };
        let excluded = |ns: &str| ignored_ns(ns) || self.namespaces.excluded(ns);
        match (excluded(from), excluded(to)) {
            (true, true) => return Ok(()),
            (false, false) => {}
            _ => {
                return Err(refused(
                    from,
                    "renameCollection",
                    &format!(
                        "one of {from} and {to} is excluded from the restore: the rename cannot be replayed"
                    ),
                ));
            }
        }
        let (from_db, to_db) = (
            self.namespaces.target_db(from_db),
            self.namespaces.target_db(to_db),
        );
        let drop_target = !matches!(o.get("dropTarget"), None | Some(Bson::Boolean(false)));
        let (from_ns, to_ns) = (
            format!("{from_db}.{from_coll}"),
            format!("{to_db}.{to_coll}"),
        );
        self.client
            .database("admin")
            .run_command(
                doc! {"renameCollection": &from_ns, "to": &to_ns, "dropTarget": drop_target},
            )
            .await
            .map_err(|e| {
                db_error(
                    format!("replaying oplog renameCollection {from_ns} to {to_ns}"),
                    e,
                )
            })?;
        self.catalog
            .rename((&from_db, from_coll), (&to_db, to_coll));
        Ok(())
    }
}

fn is_namespace_exists(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => c.code == 48 || c.code_name == "NamespaceExists",
        _ => e.to_string().contains("already exists"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oplog_limits_parse_like_mongorestore() {
        let ts = |seconds, ordinal| OplogTimestamp { seconds, ordinal };
        assert_eq!("1700000000:3".parse(), Ok(ts(1_700_000_000, 3)));
        assert_eq!("17".parse(), Ok(ts(17, 0)));
        assert_eq!("17:".parse(), Ok(ts(17, 0)));
        assert!("x:1".parse::<OplogTimestamp>().is_err());
        assert!("1:2:3".parse::<OplogTimestamp>().is_err());
    }

    #[test]
    fn system_namespaces_are_left_out() {
        for ns in [
            "config.system.sessions",
            "config.cache.x",
            "local.oplog.rs",
            "admin.system.version",
        ] {
            assert!(ignored_ns(ns), "{ns}");
        }
        for ns in ["admin.$cmd", "juju.machines", "admin.users", "configs.x"] {
            assert!(!ignored_ns(ns), "{ns}");
        }
    }
}
