//! The MongoDB side of point-in-time recovery: [`MongoOplogSource`] reads
//! `local.oplog.rs` for backups-core's `PitrShipper`, and
//! [`filter_oplog`] picks the entries of shipped slices a restore replays.
//!
//! The oplog is tailed: one `find` (`ts > last`, tailable, awaitData) and
//! then `getMore`s that wait up to a second for news. That matters on
//! SecantusDB, the server these tests run against: it answers a
//! `local.oplog.rs` query by decoding the whole oplog (about 20 s for
//! 100,000 entries on a busy machine), while a `getMore` on a tailable
//! cursor answers in milliseconds. The query runs again only when the
//! cursor is lost (server restart, failover, the shipper restarted).

use std::io::Seek;

use async_trait::async_trait;
use backups_core::pitr::{OplogRead, OplogSource, Position};
use backups_core::{Error, Result};
use mongodb::Client;
use mongodb::bson::{Document, Timestamp, doc};

use crate::client::{db_error, redact_uri};
use crate::topology::ReadFrom;

/// The oplog of the replica set a URI points at.
#[derive(Debug)]
pub struct MongoOplogSource {
    client: Client,
    uri_shown: String,
    /// The open tailable cursor and the last position it returned.
    tail: tokio::sync::Mutex<Option<(i64, Position)>>,
}

/// How long a `getMore` waits for news.
const AWAIT_MS: i64 = 1000;

fn ts(p: Position) -> Timestamp {
    Timestamp {
        time: p.seconds,
        increment: p.ordinal,
    }
}

fn pos(t: Timestamp) -> Position {
    Position::new(t.time, t.increment)
}

impl MongoOplogSource {
    /// Connects to `uri` (a replica set member: the oplog is read there).
    pub async fn connect(uri: &str) -> Result<Self> {
        Self::connect_read_from(uri, None).await
    }

    /// [`MongoOplogSource::connect`]; with `read_from`, the member it
    /// selects is found first and read alone, as a dump's is (without, the
    /// driver follows the primary through a failover, and the tail is
    /// opened again where it was).
    pub async fn connect_read_from(uri: &str, read_from: Option<ReadFrom>) -> Result<Self> {
        let mut client = crate::client::connect(uri).await?;
        if read_from.is_some() {
            let member = crate::topology::member(&client, read_from, &redact_uri(uri)).await?;
            if member.replica_set.is_some() {
                let address = mongodb::options::ServerAddress::parse(&member.address)
                    .map_err(|e| db_error(format!("connecting to member {}", member.address), e))?;
                client = crate::client::connect_with(uri, |o| {
                    o.hosts = vec![address];
                    o.direct_connection = Some(true);
                    o.repl_set_name = None;
                })
                .await?;
            }
        }
        Ok(MongoOplogSource {
            client,
            uri_shown: redact_uri(uri),
            tail: tokio::sync::Mutex::new(None),
        })
    }

    /// One batch: a `getMore` on the open cursor when it is at `after`,
    /// else a new tailable `find`. Returns the entries and the cursor id.
    async fn batch(&self, after: Position, limit: usize) -> Result<(Vec<Document>, i64)> {
        let local = self.client.database("local");
        let batch = i64::try_from(limit).unwrap_or(i64::MAX);
        let open = *self.tail.lock().await;
        if let Some((id, at)) = open
            && at == after
        {
            let more = local
                .run_command(doc! {"getMore": id, "collection": "oplog.rs", "batchSize": batch, "maxTimeMS": AWAIT_MS})
                .await;
            // A lost cursor (restart, failover) is opened again below.
            if let Ok(reply) = more {
                return cursor_reply(&reply, "nextBatch");
            }
        }
        let reply = local
            .run_command(doc! {
                "find": "oplog.rs",
                "filter": {"ts": {"$gt": ts(after)}},
                "tailable": true,
                "awaitData": true,
                "batchSize": batch,
            })
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?;
        cursor_reply(&reply, "firstBatch")
    }

    async fn hello(&self) -> Result<Document> {
        self.client
            .database("admin")
            .run_command(doc! {"hello": 1})
            .await
            .map_err(|e| db_error(format!("hello on {}", self.uri_shown), e))
    }

    async fn edge(&self, natural: i32) -> Result<Option<Position>> {
        let oplog = self
            .client
            .database("local")
            .collection::<Document>("oplog.rs");
        let got = oplog
            .find_one(doc! {})
            .sort(doc! {"$natural": natural})
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?;
        Ok(got.and_then(|d| d.get_timestamp("ts").ok()).map(pos))
    }
}

#[async_trait]
impl OplogSource for MongoOplogSource {
    async fn replica_set(&self) -> Result<String> {
        let hello = self.hello().await?;
        hello
            .get_str("setName")
            .map(str::to_string)
            .map_err(|_| Error::Database {
                message: format!(
                    "{} is not a replica set member: it has no oplog to ship",
                    self.uri_shown
                ),
                source: None,
            })
    }

    async fn read_after(&self, after: Position, limit: usize) -> Result<OplogRead> {
        let hello = self.hello().await?;
        let server_seconds = hello
            .get_datetime("localTime")
            .map(|t| (t.timestamp_millis() / 1000).clamp(0, i64::from(u32::MAX)) as u32)
            .unwrap_or(0);
        let last_write = hello
            .get_document("lastWrite")
            .and_then(|w| w.get_document("opTime"))
            .and_then(|o| o.get_timestamp("ts"))
            .ok()
            .map(pos)
            .filter(|w| *w > after);
        let (mut docs, mut id) = self.batch(after, limit).await?;
        if docs.is_empty() && last_write.is_some() {
            // The server wrote after `after` and the cursor has nothing:
            // it missed entries (SecantusDB's does when they were written
            // while its first query ran). Query again.
            *self.tail.lock().await = None;
            (docs, id) = self.batch(after, limit).await?;
        }
        let mut entries = Vec::with_capacity(docs.len());
        for d in docs {
            let t = d.get_timestamp("ts").map_err(|_| Error::Database {
                message: "an entry of local.oplog.rs has no ts".into(),
                source: None,
            })?;
            let raw = mongodb::bson::to_vec(&d).map_err(|e| Error::Database {
                message: format!("encoding an oplog entry: {e}"),
                source: None,
            })?;
            entries.push((pos(t), raw));
        }
        let last = entries
            .iter()
            .map(|(p, _)| *p)
            .max()
            .map_or(after, |p| p.max(after));
        *self.tail.lock().await = (id != 0).then_some((id, last));
        // An empty answer came after the server's clock was read: every
        // earlier second is in. Otherwise only the seconds before the last
        // entry's are known complete.
        let complete_until = match (entries.last(), last_write) {
            (None, None) => server_seconds.saturating_sub(1),
            // Written, not visible yet: complete only before it.
            (None, Some(w)) => w
                .seconds
                .saturating_sub(1)
                .min(server_seconds.saturating_sub(1)),
            (Some((p, _)), _) => p.seconds.saturating_sub(1),
        };
        Ok(OplogRead {
            entries,
            complete_until,
        })
    }

    async fn count_between(&self, after: Position, last: Position) -> Result<Option<u64>> {
        let oplog = self
            .client
            .database("local")
            .collection::<Document>("oplog.rs");
        let n = oplog
            .count_documents(doc! {"ts": {"$gt": ts(after), "$lte": ts(last)}})
            .await
            .map_err(|e| db_error("counting local.oplog.rs", e))?;
        Ok(Some(n))
    }

    async fn read_between(
        &self,
        after: Position,
        last: Position,
    ) -> Result<Vec<(Position, Vec<u8>)>> {
        let oplog = self
            .client
            .database("local")
            .collection::<mongodb::bson::RawDocumentBuf>("oplog.rs");
        let mut cursor = oplog
            .find(doc! {"ts": {"$gt": ts(after), "$lte": ts(last)}})
            .sort(doc! {"$natural": 1})
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?;
        let mut out = Vec::new();
        while cursor
            .advance()
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?
        {
            let raw = cursor.current();
            let t = raw.get_timestamp("ts").map_err(|_| Error::Database {
                message: "an entry of local.oplog.rs has no ts".into(),
                source: None,
            })?;
            out.push((pos(t), raw.as_bytes().to_vec()));
        }
        out.sort_by_key(|(p, _)| *p);
        Ok(out)
    }

    async fn oldest(&self) -> Result<Option<Position>> {
        self.edge(1).await
    }

    async fn newest(&self) -> Result<Option<Position>> {
        let hello = self.hello().await?;
        if let Ok(t) = hello
            .get_document("lastWrite")
            .and_then(|w| w.get_document("opTime"))
            .and_then(|o| o.get_timestamp("ts"))
        {
            return Ok(Some(pos(t)));
        }
        self.edge(-1).await
    }
}

/// The dump's spooled oplog with the entries of `extra` after it.
pub(crate) fn append_oplog(
    oplog: Option<std::fs::File>,
    extra: &std::path::Path,
) -> Result<std::fs::File> {
    let mut from = std::fs::File::open(extra).map_err(|e| Error::Io {
        action: "reading the oplog to replay from",
        path: extra.to_path_buf(),
        source: e,
    })?;
    let mut spool = match oplog {
        Some(f) => f,
        None => tempfile::tempfile().map_err(spool_failed)?,
    };
    spool
        .seek(std::io::SeekFrom::End(0))
        .map_err(spool_failed)?;
    std::io::copy(&mut from, &mut spool).map_err(spool_failed)?;
    Ok(spool)
}

fn spool_failed(e: std::io::Error) -> Error {
    Error::Io {
        action: "spooling the oplog to",
        path: std::env::temp_dir(),
        source: e,
    }
}

/// The batch and cursor id of a `find`/`getMore` reply.
fn cursor_reply(reply: &Document, batch: &str) -> Result<(Vec<Document>, i64)> {
    let bad = || Error::Database {
        message: format!("local.oplog.rs: a cursor reply without cursor.{batch}"),
        source: None,
    };
    let cursor = reply.get_document("cursor").map_err(|_| bad())?;
    let docs = cursor
        .get_array(batch)
        .map_err(|_| bad())?
        .iter()
        .filter_map(|b| b.as_document().cloned())
        .collect();
    Ok((docs, cursor.get_i64("id").unwrap_or(0)))
}

/// Appends to `out` the entries of `slice` (concatenated raw oplog
/// entries) after `after` and in a second at or before `until`, of the
/// databases `dbs` (none when empty); returns how many. Of the `admin`
/// commands, a transaction's (its `applyOps`, with only the operations on
/// `dbs` left in, and its commit or abort) and a `renameCollection` from
/// one of `dbs` are kept: the oplog holds every database's writes, and a
/// restore must never replay into a database it does not restore.
pub fn filter_oplog(
    slice: &[u8],
    after: Position,
    until: u32,
    dbs: &[String],
    out: &mut impl std::io::Write,
) -> Result<u64> {
    let mut at = 0usize;
    let mut n = 0;
    while at < slice.len() {
        let bad = |why: &str| Error::InvalidArchive {
            subject: "oplog slice".into(),
            reason: format!("{why} at byte {at}"),
        };
        let len = slice
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_le_bytes)
            .ok_or_else(|| bad("truncated entry"))?;
        let end = usize::try_from(len)
            .ok()
            .filter(|l| *l >= 5)
            .map(|l| at + l)
            .filter(|e| *e <= slice.len())
            .ok_or_else(|| bad("bad entry length"))?;
        let raw = mongodb::bson::RawDocument::from_bytes(&slice[at..end])
            .map_err(|e| bad(&format!("corrupt entry ({e})")))?;
        let t = raw
            .get_timestamp("ts")
            .map_err(|_| bad("entry without ts"))?;
        let p = pos(t);
        let db = raw
            .get_str("ns")
            .ok()
            .and_then(|ns| ns.split('.').next())
            .unwrap_or("");
        let ours = |db: &str| dbs.iter().any(|d| d == db);
        let kept: Option<std::borrow::Cow<'_, [u8]>> = if !(p > after && p.seconds <= until) {
            None
        } else if db == "admin" {
            admin_entry(raw, &ours).map_err(|e| bad(&e))?
        } else {
            ours(db).then_some(std::borrow::Cow::Borrowed(&slice[at..end]))
        };
        if let Some(bytes) = kept {
            out.write_all(&bytes).map_err(|e| Error::Io {
                action: "writing the oplog to replay to",
                path: std::env::temp_dir(),
                source: e,
            })?;
            n += 1;
        }
        at = end;
    }
    Ok(n)
}

/// An `admin` entry as the replay of `ours` databases should see it: a
/// transaction's `applyOps` with only their operations (kept even when
/// none is left: it may be the one that commits), a commit or abort as it
/// is, a `renameCollection` from one of them; anything else left out.
fn admin_entry<'a>(
    raw: &'a mongodb::bson::RawDocument,
    ours: &dyn Fn(&str) -> bool,
) -> std::result::Result<Option<std::borrow::Cow<'a, [u8]>>, String> {
    use std::borrow::Cow;
    let db_of = |ns: &str| ns.split('.').next().unwrap_or("").to_string();
    let Ok(o) = raw.get_document("o") else {
        return Ok(None);
    };
    if o.get_array("applyOps").is_err() {
        let from = o.get_str("renameCollection").ok().map(db_of);
        let txn = o.get("commitTransaction").ok().flatten().is_some()
            || o.get("abortTransaction").ok().flatten().is_some();
        let keep = txn || from.is_some_and(|db| ours(&db));
        return Ok(keep.then_some(Cow::Borrowed(raw.as_bytes())));
    }
    let mut entry =
        mongodb::bson::Document::try_from(raw).map_err(|e| format!("corrupt entry ({e})"))?;
    let Some(mongodb::bson::Bson::Document(o)) = entry.get_mut("o") else {
        return Ok(None);
    };
    let Ok(ops) = o.get_array("applyOps") else {
        return Ok(None);
    };
    let kept: Vec<mongodb::bson::Bson> = ops
        .iter()
        .filter(|op| {
            op.as_document()
                .and_then(|d| d.get_str("ns").ok())
                .is_some_and(|ns| ours(&db_of(ns)))
        })
        .cloned()
        .collect();
    if kept.len() == ops.len() {
        return Ok(Some(Cow::Borrowed(raw.as_bytes())));
    }
    o.insert("applyOps", kept);
    mongodb::bson::to_vec(&entry)
        .map(|b| Some(Cow::Owned(b)))
        .map_err(|e| format!("re-encoding a filtered applyOps ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{Bson, Document, doc};

    fn entry(ts: u32, ns: &str, o: Document) -> Vec<u8> {
        let d = doc! {"ts": Timestamp { time: ts, increment: 1 }, "op": "c", "ns": ns, "o": o};
        mongodb::bson::to_vec(&d).expect("encodes")
    }

    fn kept(slice: &[u8], dbs: &[&str]) -> Vec<Document> {
        let dbs: Vec<String> = dbs.iter().map(|d| d.to_string()).collect();
        let mut out = Vec::new();
        filter_oplog(slice, Position::new(0, 0), u32::MAX, &dbs, &mut out).expect("filters");
        let mut docs = Vec::new();
        let mut at = 0;
        while at < out.len() {
            let len = i32::from_le_bytes(out[at..at + 4].try_into().unwrap()) as usize;
            docs.push(Document::from_reader(&out[at..at + len]).unwrap());
            at += len;
        }
        docs
    }

    /// The oplog is the whole server's: another database's writes,
    /// transactions and renames are never replayed.
    #[test]
    fn only_the_restored_databases_are_replayed() {
        let op = |ns: &str| Bson::Document(doc! {"op": "i", "ns": ns, "o": {"_id": 1}});
        let mut slice = Vec::new();
        slice.extend(entry(1, "mine.docs", doc! {"create": "docs"}));
        slice.extend(entry(2, "theirs.docs", doc! {"create": "docs"}));
        slice.extend(entry(
            3,
            "admin.$cmd",
            doc! {"applyOps": [op("mine.a"), op("theirs.a")]},
        ));
        slice.extend(entry(4, "admin.$cmd", doc! {"applyOps": [op("theirs.b")]}));
        slice.extend(entry(5, "admin.$cmd", doc! {"commitTransaction": 1}));
        slice.extend(entry(
            6,
            "admin.$cmd",
            doc! {"renameCollection": "theirs.a", "to": "theirs.b"},
        ));
        slice.extend(entry(
            7,
            "admin.$cmd",
            doc! {"renameCollection": "mine.a", "to": "mine.b"},
        ));
        slice.extend(entry(8, "admin.$cmd", doc! {"create": "users"}));
        let docs = kept(&slice, &["mine"]);
        let ts: Vec<u32> = docs
            .iter()
            .map(|d| d.get_timestamp("ts").unwrap().time)
            .collect();
        assert_eq!(ts, vec![1, 3, 4, 5, 7]);
        let ns_of = |d: &Document| -> Vec<String> {
            d.get_document("o")
                .unwrap()
                .get_array("applyOps")
                .unwrap()
                .iter()
                .map(|o| o.as_document().unwrap().get_str("ns").unwrap().to_string())
                .collect()
        };
        assert_eq!(ns_of(&docs[1]), vec!["mine.a"]);
        assert!(ns_of(&docs[2]).is_empty());
        // No database: nothing but the transactions' bare frames.
        assert_eq!(kept(&slice, &[]).len(), 3);
    }
}
