//! The shipper: reads the oplog after the last committed slice and commits
//! a slice every `slice` interval (or [`MAX_SLICE_BYTES`]).
//!
//! Resuming is reading the store: the last committed slice's end is where
//! the next read starts, so a shipper killed mid-slice loses only its
//! uncommitted buffer, which the next run reads again from the oplog (no
//! gap, no duplicate). When the oplog no longer holds the entry the chain
//! ended at, the entries in between are lost: a [`Gap`] is recorded.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use tokio_util::sync::CancellationToken;

use super::{
    Gap, MAX_SLICE_BYTES, Position, ShipProgress, SliceRecord, catalog, set_dir, slice_stem,
    valid_replica_set,
};
use crate::crypt::{Encryption, Sealer};
use crate::error::{Error, Result};
use crate::storage::Storage;

/// One read of the oplog.
#[derive(Debug, Clone, Default)]
pub struct OplogRead {
    /// Entries after the position asked for, in oplog order: each its
    /// position and raw BSON.
    pub entries: Vec<(Position, Vec<u8>)>,
    /// Every entry of a second up to this one (epoch seconds) is in this
    /// read or came before it.
    pub complete_until: u32,
}

/// Where the oplog comes from (backups-mongo's `MongoOplogSource`).
#[async_trait]
pub trait OplogSource: Send + Sync {
    /// The replica set's name.
    async fn replica_set(&self) -> Result<String>;
    /// Up to `limit` entries after `after`, oldest first (none when there
    /// is nothing new; a source may wait a moment for news first).
    async fn read_after(&self, after: Position, limit: usize) -> Result<OplogRead>;
    /// How many entries are after `after` up to `last`, to check a slice
    /// before it is committed; `None` when the source cannot tell.
    async fn count_between(&self, after: Position, last: Position) -> Result<Option<u64>> {
        let _ = (after, last);
        Ok(None)
    }
    /// Every entry after `after` up to `last`, oldest first.
    async fn read_between(
        &self,
        after: Position,
        last: Position,
    ) -> Result<Vec<(Position, Vec<u8>)>>;
    /// The oldest entry the oplog still holds.
    async fn oldest(&self) -> Result<Option<Position>>;
    /// The newest entry.
    async fn newest(&self) -> Result<Option<Position>>;
}

/// How a shipper runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShipperOptions {
    /// A slice is committed this long after its first entry was read.
    pub slice: Duration,
    /// How often the oplog is read when it has nothing new.
    pub poll: Duration,
    /// A slice is committed once it holds this many bytes.
    pub max_bytes: usize,
    /// Encrypt slices to these recipients.
    pub encryption: Option<Encryption>,
    /// Where to start when the store holds no slice of this replica set
    /// (a base backup's consistent point); `None` starts at the newest entry.
    pub start: Option<Position>,
    /// How long a stop waits for the entries written before it to settle.
    pub stop_grace: Duration,
}

impl Default for ShipperOptions {
    fn default() -> Self {
        ShipperOptions {
            slice: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_bytes: MAX_SLICE_BYTES,
            encryption: None,
            start: None,
            stop_grace: Duration::from_secs(15),
        }
    }
}

impl ShipperOptions {
    /// Commit a slice this long after its first entry.
    pub fn with_slice(mut self, slice: Duration) -> Self {
        self.slice = slice;
        self
    }
    /// Read a quiet oplog this often.
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }
    /// Cut slices at this many bytes.
    pub fn with_max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max.max(1);
        self
    }
    /// Encrypt the slices.
    pub fn with_encryption(mut self, encryption: Option<Encryption>) -> Self {
        self.encryption = encryption;
        self
    }
    /// Wait this long at most, when stopped, for the last entries to settle.
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }
    /// Start here when the store holds no slice.
    pub fn with_start(mut self, start: Option<Position>) -> Self {
        self.start = start;
        self
    }
}

/// What the shipper has done, handed to its observer after each commit.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ShipperStatus {
    /// The replica set.
    pub replica_set: String,
    /// Everything up to this second is committed.
    pub complete_until: u32,
    /// The last committed entry.
    pub last: Position,
    /// Slices committed by this run.
    pub slices: u64,
    /// Entries committed by this run.
    pub entries: u64,
    /// Gaps recorded by this run.
    pub gaps: u64,
    /// Oplog reads made by this run.
    pub reads: u64,
    /// Slices whose range was read again (an entry had become visible
    /// after a later one).
    pub rereads: u64,
}

/// Ships one replica set's oplog into a store.
pub struct PitrShipper {
    storage: Storage,
    source: Arc<dyn OplogSource>,
    options: ShipperOptions,
}

impl std::fmt::Debug for PitrShipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PitrShipper")
            .field("store", &self.storage.url())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Entries read and not committed yet.
#[derive(Default)]
struct Buffer {
    entries: Vec<(Position, Vec<u8>)>,
    bytes: usize,
    opened: Option<Instant>,
    /// When an entry of each second was first read.
    first_read: std::collections::BTreeMap<u32, Instant>,
}

impl Buffer {
    /// Takes the entries of a second up to `settled`, in oplog order.
    fn take_settled(&mut self, settled: u32) -> Vec<(Position, Vec<u8>)> {
        self.entries.sort_by_key(|(p, _)| *p);
        let n = self.entries.partition_point(|(p, _)| p.seconds <= settled);
        let rest = self.entries.split_off(n);
        let taken = std::mem::replace(&mut self.entries, rest);
        self.bytes = self.entries.iter().map(|(_, r)| r.len()).sum();
        // What stays opens the next slice, as of when it was read (not
        // now: an entry left to settle would wait a whole slice more).
        self.first_read = self.first_read.split_off(&(settled.saturating_add(1)));
        self.opened = match self.entries.is_empty() {
            true => None,
            false => self
                .first_read
                .values()
                .min()
                .copied()
                .or(Some(Instant::now())),
        };
        taken
    }
}

/// Seconds an entry is left to settle before it is committed: a server
/// may make an entry visible after a later one (SecantusDB does, with
/// concurrent writers), and a slice must hold every entry of its range.
const SETTLE_SECONDS: u32 = 1;

/// Entries asked for per read.
const READ_LIMIT: usize = 10_000;

impl PitrShipper {
    /// A shipper of `source` into `storage`.
    pub fn new(storage: Storage, source: Arc<dyn OplogSource>, options: ShipperOptions) -> Self {
        PitrShipper {
            storage,
            source,
            options,
        }
    }

    /// Ships until `cancel` is cancelled; `observe` sees the status after
    /// every commit. A stop closes the current slice: the shipper goes on
    /// reading until every entry written before the stop has settled (at
    /// most [`ShipperOptions::stop_grace`]), commits them and returns.
    pub async fn run(
        &self,
        cancel: CancellationToken,
        observe: &mut (dyn FnMut(&ShipperStatus) + Send),
    ) -> Result<ShipperStatus> {
        let mut status = self.resume().await?;
        observe(&status);
        let mut buf = Buffer::default();
        let mut last_note = Instant::now();
        // When the stop was asked, and the newest entry written by then.
        let mut stop: Option<(Instant, Position)> = None;
        loop {
            if stop.is_none() && cancel.is_cancelled() {
                let newest = self.source.newest().await?.unwrap_or_default();
                stop = Some((Instant::now(), newest.max(buf_end(&buf, &status))));
            }
            let read = self
                .source
                .read_after(buf_end(&buf, &status), READ_LIMIT)
                .await?;
            status.reads += 1;
            let more = !read.entries.is_empty();
            let until = read.complete_until;
            // An entry at or before the last commit was in its count (or
            // re-read): never twice.
            for (pos, raw) in read.entries.into_iter().filter(|(p, _)| *p > status.last) {
                buf.opened.get_or_insert_with(Instant::now);
                buf.first_read
                    .entry(pos.seconds)
                    .or_insert_with(Instant::now);
                buf.bytes += raw.len();
                buf.entries.push((pos, raw));
            }
            let due = buf
                .opened
                .is_some_and(|t| t.elapsed() >= self.options.slice)
                || buf.bytes >= self.options.max_bytes;
            let settled = until.saturating_sub(SETTLE_SECONDS);
            let finish = stop.is_some_and(|(at, newest)| {
                newest <= status.last
                    || (settled >= newest.seconds && buf_end(&buf, &status) >= newest)
                    || at.elapsed() >= self.options.stop_grace
            });
            if !buf.entries.is_empty() && (due || finish) {
                let entries = buf.take_settled(settled);
                if !entries.is_empty() {
                    self.commit(entries, &mut status, settled).await?;
                    observe(&status);
                    last_note = Instant::now();
                }
            } else if buf.entries.is_empty()
                && settled > status.complete_until
                && (finish || last_note.elapsed() >= self.options.slice.min(Duration::from_secs(5)))
            {
                self.note_progress(&mut status, settled).await?;
                observe(&status);
                last_note = Instant::now();
            }
            if finish {
                return Ok(status);
            }
            if !more {
                if stop.is_some() {
                    tokio::time::sleep(self.options.poll).await;
                } else {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(self.options.poll) => {}
                    }
                }
            }
        }
    }

    /// Where to go on from: the last committed slice (a gap recorded when
    /// the oplog no longer reaches back to it), else the start position.
    async fn resume(&self) -> Result<ShipperStatus> {
        let rs = self.source.replica_set().await?;
        if !valid_replica_set(&rs) {
            return Err(Error::Database {
                message: format!("replica set name {rs:?} cannot name a store directory"),
                source: None,
            });
        }
        let chain = catalog(&self.storage)
            .await?
            .into_iter()
            .find(|c| c.name == rs)
            .unwrap_or_default();
        let mut status = ShipperStatus {
            replica_set: rs,
            ..Default::default()
        };
        let last = match chain.last() {
            Some(s) => {
                status.complete_until = s.complete_until;
                if let Some(p) = chain.progress.as_ref().filter(|p| p.last == s.last) {
                    status.complete_until = status.complete_until.max(p.complete_until);
                }
                s.last
            }
            None => match self.options.start {
                Some(p) => p,
                None => self.source.newest().await?.unwrap_or_default(),
            },
        };
        status.last = last;
        if let Some(oldest) = self.source.oldest().await?
            && oldest > last
        {
            // The entry the chain ended at is gone: what came between it
            // and the oldest entry left is lost.
            let gap = Gap {
                from: last,
                to: oldest,
                reason: "oplog rolled over before it was read".into(),
            };
            self.put_json(
                &status.replica_set,
                &format!("gaps/{}.json", slice_stem(last, oldest)),
                &gap,
            )
            .await?;
            status.gaps += 1;
            status.last = oldest.just_before();
        }
        Ok(status)
    }

    /// Writes the slice object, then its record (the commit point). The
    /// range is counted at the server first: when the reads missed an
    /// entry (one made visible late), the range is read again whole.
    async fn commit(
        &self,
        mut entries: Vec<(Position, Vec<u8>)>,
        status: &mut ShipperStatus,
        until: u32,
    ) -> Result<()> {
        let Some(&(last, _)) = entries.last() else {
            return Ok(());
        };
        let after = status.last;
        if let Some(n) = self.source.count_between(after, last).await?
            && n != entries.len() as u64
        {
            entries = self.source.read_between(after, last).await?;
            status.rereads += 1;
        }
        let (Some(&(first, _)), Some(&(last, _))) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let stem = slice_stem(first, last);
        let encrypted = self.options.encryption.is_some();
        let object = format!("{stem}.bson.gz{}", if encrypted { ".age" } else { "" });
        let plain: Vec<u8> = entries
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        let stored = seal(&plain, self.options.encryption.as_ref(), &object)?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored));
        let record = SliceRecord {
            replica_set: status.replica_set.clone(),
            object: object.clone(),
            after,
            first,
            last,
            complete_until: until.max(status.complete_until),
            entries: entries.len() as u64,
            size: stored.len() as u64,
            sha256,
            encrypted,
        };
        self.put(&status.replica_set, &object, stored).await?;
        self.put_json(&status.replica_set, &format!("{stem}.json"), &record)
            .await?;
        status.last = last;
        status.complete_until = record.complete_until;
        status.slices += 1;
        status.entries += record.entries;
        Ok(())
    }

    /// Records that a quiet oplog is complete up to `until`.
    async fn note_progress(&self, status: &mut ShipperStatus, until: u32) -> Result<()> {
        let note = ShipProgress {
            last: status.last,
            complete_until: until,
        };
        self.put_json(&status.replica_set, "progress.json", &note)
            .await?;
        status.complete_until = until;
        Ok(())
    }

    fn key(&self, rs: &str, name: &str) -> ObjectPath {
        let mut key = set_dir(&self.storage, rs);
        for part in name.split('/') {
            key = key.join(part);
        }
        key
    }

    async fn put(&self, rs: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
        let key = self.key(rs, name);
        self.storage
            .object_store()
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| Error::storage(key.to_string(), e))?;
        self.storage.make_private(&key);
        Ok(())
    }

    async fn put_json<T: serde::Serialize + Sync>(
        &self,
        rs: &str,
        name: &str,
        value: &T,
    ) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::internal(format!("encoding {name}: {e}")))?;
        self.put(rs, name, bytes).await
    }
}

/// Where the next read starts: after the buffer, else after the chain.
fn buf_end(buf: &Buffer, status: &ShipperStatus) -> Position {
    buf.entries
        .iter()
        .map(|(p, _)| *p)
        .max()
        .map_or(status.last, |p| p.max(status.last))
}

/// gzip, then age when asked.
fn seal(plain: &[u8], encryption: Option<&Encryption>, name: &str) -> Result<Vec<u8>> {
    let fail = |e: std::io::Error| Error::internal(format!("compressing slice {name}: {e}"));
    let sealer = Sealer::new(Vec::new(), encryption)?;
    let mut gz = flate2::write::GzEncoder::new(sealer, flate2::Compression::fast());
    gz.write_all(plain).map_err(fail)?;
    let sealer = gz.finish().map_err(fail)?;
    let (out, _) = sealer.finish().map_err(fail)?;
    Ok(out)
}

#[cfg(test)]
#[path = "shipper_tests.rs"]
mod tests;
