//! The oplog written while a dump runs: its start position, a change
//! stream that tells whether anything in the dumped databases changed, and
//! the one range query that copies the entries when something did.
//!
//! Reading the oplog can be the most expensive step of a dump: SecantusDB
//! answers every `local.oplog.rs` query by decoding the whole oplog (about
//! 5 s for 100,000 entries, more than dumping 100,000 documents), and even
//! MongoDB has to walk the range. A change stream opened before the first
//! collection costs nothing on either (it starts at the oplog's tail), so
//! the range is queried only when the stream saw a change in a dumped
//! database (or could not say), once, at the end.

use std::io::{BufWriter, Seek, Write};
use std::time::Duration;

use backups_core::database::{DumpEntry, DumpSink};
use backups_core::{Error, Result};
use mongodb::Client;
use mongodb::bson::{Document, RawDocumentBuf, Timestamp, doc};
use mongodb::change_stream::ChangeStream;

use crate::client::db_error;

/// How long a change stream's `getMore` waits for news once it has
/// caught up (the server's default is a second per call).
const STREAM_AWAIT: Duration = Duration::from_millis(20);

fn spool_err(e: std::io::Error) -> Error {
    Error::Io {
        action: "spooling the oplog to",
        path: std::env::temp_dir(),
        source: e,
    }
}

/// The oplog window of one dump, opened before its first collection.
pub(crate) struct OplogWindow {
    /// The newest oplog position when the dump started.
    pub(crate) from: Timestamp,
    /// Every change after the start, or `None` when the server refused a
    /// change stream (then the range is always queried).
    stream: Option<ChangeStream<Document>>,
}

impl OplogWindow {
    /// Opens the change stream; call before reading the start position
    /// (then every write after it is in the stream). `None` when the
    /// server refuses one (MongoDB before 6.0 knows no expanded events).
    pub(crate) async fn watch(client: &Client) -> Option<ChangeStream<Document>> {
        let mut stream = client
            .watch()
            .show_expanded_events(true)
            .max_await_time(STREAM_AWAIT)
            .await
            .ok()?
            .with_type::<Document>();
        // The first call hands out the aggregate's own batch without asking
        // the server; from then on each call makes one getMore, so that at
        // the end an empty answer means the server has nothing more. A
        // first batch that already holds events is not inspected: the
        // range is then always queried.
        match stream.next_if_any().await {
            Ok(None) => Some(stream),
            _ => None,
        }
    }

    /// The window from `from`, watched by `stream` (opened before `from`
    /// was read).
    pub(crate) fn new(from: Timestamp, stream: Option<ChangeStream<Document>>) -> Self {
        OplogWindow { from, stream }
    }

    /// Whether the oplog since `from` may hold an entry of `dbs`: the
    /// stream is read to its end (or to the first such change); a stream
    /// that fails says "maybe".
    async fn changed(&mut self, dbs: &[String]) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
        loop {
            match stream.next_if_any().await {
                Ok(None) => return false,
                Ok(Some(event)) => {
                    let db = event
                        .get_document("ns")
                        .ok()
                        .and_then(|ns| ns.get_str("db").ok());
                    match db {
                        Some(db) if !dbs.iter().any(|d| d == db) => {}
                        _ => return true,
                    }
                }
                Err(_) => return true,
            }
        }
    }

    /// Sends `oplog.bson`: the entries of `dbs` after `from` up to `to`
    /// (one range query, only when the stream saw a change); returns how
    /// many.
    pub(crate) async fn dump(
        mut self,
        client: &Client,
        dbs: &[String],
        to: Option<Timestamp>,
        sink: &DumpSink,
    ) -> Result<u64> {
        let to = match to {
            Some(to) if to > self.from && self.changed(dbs).await => to,
            _ => {
                // Nothing of ours was written during the dump: an empty oplog, no scan.
                sink.add(DumpEntry {
                    path: "oplog.bson".into(),
                    size: 0,
                    body: Box::new(std::io::empty()),
                })
                .await?;
                return Ok(0);
            }
        };
        let oplog = client
            .database("local")
            .collection::<RawDocumentBuf>("oplog.rs");
        let mut cursor = oplog
            .find(doc! {"ts": {"$gt": self.from, "$lte": to}})
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
