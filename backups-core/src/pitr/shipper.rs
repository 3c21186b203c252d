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
use crate::storage::Storage;
use crate::{Error, Result};

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
}

impl Default for ShipperOptions {
    fn default() -> Self {
        ShipperOptions {
            slice: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_bytes: MAX_SLICE_BYTES,
            encryption: None,
            start: None,
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
    bytes: Vec<u8>,
    first: Option<Position>,
    last: Position,
    entries: u64,
    opened: Option<Instant>,
}

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

    /// Ships until `cancel` is cancelled (then what is buffered is
    /// committed); `observe` sees the status after every commit.
    pub async fn run(
        &self,
        cancel: CancellationToken,
        observe: &mut (dyn FnMut(&ShipperStatus) + Send),
    ) -> Result<ShipperStatus> {
        let mut status = self.resume().await?;
        observe(&status);
        let mut buf = Buffer::default();
        let mut last_note = Instant::now();
        loop {
            let stopping = cancel.is_cancelled();
            let read = self
                .source
                .read_after(buf_end(&buf, &status), READ_LIMIT)
                .await?;
            status.reads += 1;
            let more = !read.entries.is_empty();
            let until = read.complete_until;
            for (pos, raw) in read.entries {
                if buf.bytes.len() + raw.len() > self.options.max_bytes && buf.entries > 0 {
                    self.commit(&mut buf, &mut status, pos.seconds.saturating_sub(1))
                        .await?;
                    observe(&status);
                }
                buf.first.get_or_insert(pos);
                buf.opened.get_or_insert_with(Instant::now);
                buf.bytes.extend_from_slice(&raw);
                buf.last = pos;
                buf.entries += 1;
            }
            let due = buf
                .opened
                .is_some_and(|t| t.elapsed() >= self.options.slice);
            if buf.entries > 0 && (due || stopping) {
                self.commit(&mut buf, &mut status, until).await?;
                observe(&status);
                last_note = Instant::now();
            } else if buf.entries == 0
                && until > status.complete_until
                && last_note.elapsed() >= self.options.slice.min(Duration::from_secs(5))
            {
                self.note_progress(&mut status, until).await?;
                observe(&status);
                last_note = Instant::now();
            }
            if stopping {
                return Ok(status);
            }
            if !more {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(self.options.poll) => {}
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

    /// Writes the slice object, then its record (the commit point).
    async fn commit(&self, buf: &mut Buffer, status: &mut ShipperStatus, until: u32) -> Result<()> {
        let taken = std::mem::take(buf);
        let Some(first) = taken.first else {
            return Ok(());
        };
        let stem = slice_stem(first, taken.last);
        let encrypted = self.options.encryption.is_some();
        let object = format!("{stem}.bson.gz{}", if encrypted { ".age" } else { "" });
        let stored = seal(&taken.bytes, self.options.encryption.as_ref(), &object)?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored));
        let record = SliceRecord {
            replica_set: status.replica_set.clone(),
            object: object.clone(),
            after: status.last,
            first,
            last: taken.last,
            complete_until: until.max(status.complete_until).min(u32::MAX),
            entries: taken.entries,
            size: stored.len() as u64,
            sha256,
            encrypted,
        };
        self.put(&status.replica_set, &object, stored).await?;
        self.put_json(&status.replica_set, &format!("{stem}.json"), &record)
            .await?;
        status.last = taken.last;
        status.complete_until = record.complete_until;
        status.slices += 1;
        status.entries += taken.entries;
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
    if buf.entries > 0 {
        buf.last
    } else {
        status.last
    }
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
