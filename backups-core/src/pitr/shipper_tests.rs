//! The shipper against an oplog in memory: what a stop commits.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{OplogRead, OplogSource, PitrShipper, ShipperOptions};
use crate::error::Result;
use crate::pitr::{Position, catalog};
use crate::storage::Storage;

/// Entries, and the second up to which the server says they are complete
/// (one second later at each read when `ticking`: time passes).
struct Memory {
    entries: Mutex<Vec<Position>>,
    complete_until: AtomicU32,
    ticking: bool,
}

fn raw(p: Position) -> Vec<u8> {
    // A BSON document {"ts": Timestamp}: the shipper does not look inside.
    let mut d = 17i32.to_le_bytes().to_vec();
    d.push(0x11);
    d.extend(b"ts\0");
    d.extend(p.ordinal.to_le_bytes());
    d.extend(p.seconds.to_le_bytes());
    d.push(0);
    d
}

#[async_trait]
impl OplogSource for Memory {
    async fn replica_set(&self) -> Result<String> {
        Ok("rs0".into())
    }
    async fn read_after(&self, after: Position, limit: usize) -> Result<OplogRead> {
        let entries = self.entries.lock().expect("lock").clone();
        Ok(OplogRead {
            entries: entries
                .into_iter()
                .filter(|p| *p > after)
                .take(limit)
                .map(|p| (p, raw(p)))
                .collect(),
            complete_until: match self.ticking {
                true => self.complete_until.fetch_add(1, Ordering::SeqCst),
                false => self.complete_until.load(Ordering::SeqCst),
            },
        })
    }
    async fn read_between(
        &self,
        after: Position,
        last: Position,
    ) -> Result<Vec<(Position, Vec<u8>)>> {
        let entries = self.entries.lock().expect("lock").clone();
        Ok(entries
            .into_iter()
            .filter(|p| *p > after && *p <= last)
            .map(|p| (p, raw(p)))
            .collect())
    }
    async fn oldest(&self) -> Result<Option<Position>> {
        Ok(self.entries.lock().expect("lock").first().copied())
    }
    async fn newest(&self) -> Result<Option<Position>> {
        Ok(self.entries.lock().expect("lock").last().copied())
    }
}

async fn ship_until_stopped(
    complete_until: u32,
    ticking: bool,
    grace: Duration,
) -> Vec<(Position, Position)> {
    let storage = Storage::from_url("memory://", Vec::<(String, String)>::new()).expect("store");
    let source = Memory {
        entries: Mutex::new((100..=105).map(|s| Position::new(s, 1)).collect()),
        complete_until: AtomicU32::new(complete_until),
        ticking,
    };
    // A slice of an hour: only the stop commits.
    let options = ShipperOptions::default()
        .with_slice(Duration::from_secs(3600))
        .with_poll(Duration::from_millis(10))
        .with_stop_grace(grace)
        .with_start(Some(Position::new(99, 0)));
    let shipper = PitrShipper::new(storage.clone(), Arc::new(source), options);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let status = shipper.run(cancel, &mut |_| {}).await.expect("ships");
    assert_eq!(status.replica_set, "rs0");
    let chains = catalog(&storage).await.expect("catalog");
    chains
        .iter()
        .flat_map(|c| c.slices.iter().map(|s| (s.first, s.last)))
        .collect()
}

#[tokio::test]
async fn a_stop_commits_every_entry_written_before_it() {
    // At the stop the last two seconds are not settled yet: the shipper
    // reads on until they are, then commits them.
    let slices = ship_until_stopped(104, true, Duration::from_secs(60)).await;
    assert_eq!(slices, vec![(Position::new(100, 1), Position::new(105, 1))]);
}

#[tokio::test]
async fn a_stop_waits_no_longer_than_its_grace_for_entries_to_settle() {
    // The server never says second 105 is complete: after the grace only
    // the settled entries (up to 103, a second of settling) are committed.
    let slices = ship_until_stopped(104, false, Duration::ZERO).await;
    assert_eq!(slices, vec![(Position::new(100, 1), Position::new(103, 1))]);
}
