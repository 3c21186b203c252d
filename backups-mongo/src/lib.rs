//! MongoDB dump and load for backups-core, in mongodump's layout.
//!
//! [`MongoDumper`] writes `dump/<db>/<collection>.bson` (documents copied as
//! raw BSON straight from the cursor's batches: no decode/encode round trip)
//! and `<collection>.metadata.json` (options, indexes, uuid, name and type,
//! as canonical extended JSON like mongodump), plus `dump/oplog.bson` when
//! the server has an oplog. [`MongoLoader`] drops and re-creates each
//! collection with its options, inserts in large ordered batches (validation
//! bypassed, as mongorestore does), builds indexes after the data, creates
//! views, and replays the oplog.
//!
//! # Consistency
//!
//! The strongest mode the server supports is used:
//! - **oplog** (replica sets): the newest oplog timestamp is read before the
//!   first collection, every collection is dumped, then the oplog entries
//!   written meanwhile go to `dump/oplog.bson`. Loading replays them (as
//!   idempotent upserts, `$set`/`$unset` and deletes), so the restored state
//!   is the source's state at the end of the dump — one instant.
//! - **none** (standalone servers): a plain dump; the metadata records that
//!   it is not point-in-time and `create` warns.
//!
//! Snapshot reads (`readConcern: snapshot` with `atClusterTime`) would avoid
//! the replay, but SecantusDB — the MongoDB-compatible server these tests
//! run against — accepts them and returns current data, so they are not
//! used. What SecantusDB 0.7 supports, as probed: sessions, transactions,
//! change streams and `local.oplog.rs` in replica-set mode (entries `i`,
//! `u`, `d`, `c` with `ts`/`ns`/`o`/`o2`); no `applyOps` (replay is done
//! with ordinary writes); its `u` entries use `{"$v": 2, "diff":
//! {"updatedFields", "removedFields", "truncatedArrays"}}`, which the
//! replay understands alongside MongoDB's own v2 diff format.
//!
//! ```no_run
//! use std::sync::Arc;
//! use backups_mongo::{DumpOptions, MongoDumper};
//!
//! # async fn run() -> backups_core::Result<()> {
//! let dumper = MongoDumper::connect("mongodb://127.0.0.1:27017/", DumpOptions::default()).await?;
//! // Pass `Some(Arc::new(dumper))` as `CreateRequest::database`.
//! # let _ = Arc::new(dumper);
//! # Ok(())
//! # }
//! ```

#![warn(missing_debug_implementations, unreachable_pub)]

mod bson_stream;
mod client;
mod dump;
mod indexes;
mod load;
mod metadata;
mod namespace;
mod oplog;
mod replay;

pub use client::{SYSTEM_DATABASES, redact_uri};
pub use dump::{DumpOptions, MongoDumper};
pub use load::{LoadOptions, MongoLoader};
pub use replay::OplogTimestamp;
