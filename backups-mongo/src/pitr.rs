//! The MongoDB side of point-in-time recovery: [`MongoOplogSource`] reads
//! `local.oplog.rs` for backups-core's `PitrShipper`, and
//! [`filter_oplog`] picks the entries of shipped slices a restore replays.
//!
//! The oplog is polled (`ts > last`, in `$natural` order) rather than
//! tailed: SecantusDB, the server these tests run against, answers a
//! `local.oplog.rs` query by reading the whole oplog, and a tailable
//! cursor would save nothing there. The shipper's poll interval is the
//! price in latency (one read a second by default).

use async_trait::async_trait;
use backups_core::pitr::{OplogRead, OplogSource, Position};
use backups_core::{Error, Result};
use mongodb::Client;
use mongodb::bson::{Document, RawDocumentBuf, Timestamp, doc};

use crate::client::{db_error, redact_uri};

/// The oplog of the replica set a URI points at.
#[derive(Debug, Clone)]
pub struct MongoOplogSource {
    client: Client,
    uri_shown: String,
}

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
        let client = crate::client::connect(uri).await?;
        Ok(MongoOplogSource {
            client,
            uri_shown: redact_uri(uri),
        })
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
        let oplog = self
            .client
            .database("local")
            .collection::<RawDocumentBuf>("oplog.rs");
        let mut cursor = oplog
            .find(doc! {"ts": {"$gt": ts(after)}})
            .sort(doc! {"$natural": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?;
        let mut entries = Vec::new();
        while cursor
            .advance()
            .await
            .map_err(|e| db_error("reading local.oplog.rs", e))?
        {
            let raw = cursor.current();
            let Ok(t) = raw.get_timestamp("ts") else {
                return Err(Error::Database {
                    message: "an entry of local.oplog.rs has no ts".into(),
                    source: None,
                });
            };
            entries.push((pos(t), raw.as_bytes().to_vec()));
        }
        Ok(OplogRead {
            entries,
            server_seconds,
        })
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

/// Appends to `out` the entries of `slice` (concatenated raw oplog
/// entries) after `after` and in a second at or before `until`; returns
/// how many.
pub fn filter_oplog(
    slice: &[u8],
    after: Position,
    until: u32,
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
        if p > after && p.seconds <= until {
            out.write_all(&slice[at..end]).map_err(|e| Error::Io {
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
