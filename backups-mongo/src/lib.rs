//! MongoDB dump and load for backups-core, in mongodump's layout.
//!
//! [`MongoDumper`] writes `dump/<db>/<collection>.bson` (documents copied as
//! raw BSON straight from the cursor's batches: no decode/encode round trip)
//! and `<collection>.metadata.json` (options, indexes, uuid, name and type,
//! as canonical extended JSON like mongodump), plus `dump/oplog.bson` when
//! the server has an oplog. [`MongoLoader`] drops and re-creates each
//! collection with its options, inserts ordered batches with parallel
//! insertion workers (validation bypassed, as mongorestore does), creates
//! views, replays the oplog, then builds indexes. [`MongoComparer`]
//! compares a dump with a live database (documents by `_id`, indexes by
//! name) in bounded memory, changing nothing.
//!
//! # Consistency
//!
//! The strongest mode the server supports is used:
//! - **oplog** (replica sets): the newest oplog timestamp is read before the
//!   first collection (a change stream opened just before it watches every
//!   write after), every collection is dumped, then the oplog entries
//!   written meanwhile go to `dump/oplog.bson` — read with one range query,
//!   and only when the change stream saw a change in a dumped database
//!   (otherwise the file is empty). Loading replays them (as
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
//! # mongorestore fidelity
//!
//! A load does what `mongorestore --drop --oplogReplay` does with a
//! directory dump. Matched:
//! - collection names in file names decoded as mongodump escapes them (Go's
//!   `url.PathEscape`), `collectionName` in the metadata preferred (long
//!   names are truncated to 208 bytes + `%24` + a base64url SHA-1); the
//!   dump side writes names the same way;
//! - system collections never dropped; `admin.system.users`/`roles` only
//!   with [`LoadOptions::restore_users_and_roles`]; `admin.system.version`
//!   and other `system.*` collections not loaded;
//! - oplog: `n` (and record-id bookkeeping ops) skipped; `config.*`,
//!   `local.*`, `admin.system.*` skipped; `applyOps` expanded (nested too);
//!   transactions (`lsid` + `txnNumber`) buffered across `partialTxn`
//!   entries and applied on commit (a plain `applyOps` or
//!   `commitTransaction` after `prepare`), dropped on `abortTransaction`;
//!   `createIndexes`, `commitIndexBuild`, `dropIndexes`, `collMod` `index`
//!   changes recorded in an index catalog (`startIndexBuild`,
//!   `abortIndexBuild`, `dbCheck` ignored); `create`, `drop`,
//!   `dropDatabase`, `renameCollection`, other `collMod` options applied;
//!   unknown or unreplayable commands (`convertToCapped`, `emptycapped`...)
//!   fail the load; [`LoadOptions::oplog_limit`] is `--oplogLimit`
//!   (replay stops at the first entry at or after it);
//! - indexes built after the replay from the catalog; legacy key values
//!   converted like `--convertLegacyIndexes` (numbers to ±1, `""` and
//!   non-numbers to 1, unknown options removed) when
//!   [`LoadOptions::convert_legacy_indexes`], refused by name otherwise.
//!
//! Not matched: writes are ordinary idempotent writes, not `applyOps` (the
//! server may not have it; SecantusDB has not), so oplog `u` entries on a
//! missing document do nothing instead of failing; users and roles are
//! upserted into `admin.system.*` directly rather than merged with
//! `_mergeAuthzCollections` (with `--drop` mongorestore also removes users
//! missing from the dump; here they stay), and a server that forbids such
//! writes (SecantusDB does) fails the load; `system.js` is not restored;
//! every `config.*` entry is skipped (mongorestore keeps a few config
//! collections for sharded restores); `--gzip` dumps, archive-mode
//! (`--archive`) dumps and `--dumpDbUsersAndRoles`' `$admin.system.*` files
//! are refused; a truncated file name whose `.bson` comes before its
//! `.metadata.json` is refused (the real name is not known yet);
//! `--preserveUUID`, `--noIndexRestore`, `--stopOnError` (duplicate keys
//! always fail) have no equivalent.
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
mod compare;
mod dump;
mod indexes;
mod insert;
mod juju;
mod load;
mod metadata;
mod namespace;
mod oplog;
mod oplog_window;
pub mod pitr;
mod quiesce;
mod replay;
mod rewrite;
mod topology;
mod walk;

pub use client::{SYSTEM_DATABASES, redact_uri};
pub use compare::{CompareOptions, MongoComparer};
pub use dump::{DUMP_PARALLEL_COLLECTIONS, DumpOptions, MongoDumper};
pub use juju::JujuConnection;
pub use load::{LOAD_INSERTION_WORKERS, LOAD_PARALLEL_COLLECTIONS, LoadOptions, MongoLoader};
pub use replay::OplogTimestamp;
pub use topology::{ReadFrom, ReplicaSet, SetMember, check_restore_target};
