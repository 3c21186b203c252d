//! A lease in the store held by restore, remove and gc, so two of them never
//! run at once. A lease past its expiry is taken over; a live one makes the
//! second caller fail with [`Error::Locked`] naming the holder and since when.
//!
//! The protocol needs no conditional writes (Garage has none), only that a
//! listing shows every write that finished before it began (S3, Azure, GCS,
//! Garage and local disks all give that):
//! 1. list `<prefix>/.lease/`; a live record of someone else -> locked;
//! 2. write our own record under a unique key `.lease/<token>.json`;
//! 3. list again: any other live record -> delete ours and back off.
//!
//! Two callers cannot both win: each lists after its own write finished, so
//! whichever listed last sees the other's record. Both may back off when they
//! race; they retry after a random pause, and a caller that still finds a
//! live record fails with [`Error::Locked`]. Expired records are deleted by
//! whoever finds them, and so are records left on this host (same host
//! name) by a process that no longer runs: after a crash the next command
//! goes ahead at once instead of waiting for the expiry.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::metadata::format_time;
use crate::storage::Storage;

/// How long a lease lasts without renewal; it is renewed every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(300);

/// Attempts to take a contended lease before reporting it locked.
const ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct LeaseRecord {
    holder: String,
    operation: String,
    token: String,
    #[serde(with = "crate::metadata::go_time")]
    acquired: Option<OffsetDateTime>,
    #[serde(with = "crate::metadata::go_time")]
    expires: Option<OffsetDateTime>,
    /// Host name of the holder's machine.
    #[serde(default)]
    host: String,
    /// The holder's process id on that host.
    #[serde(default)]
    pid: u32,
}

impl LeaseRecord {
    /// Past its expiry, or held by a process of this host that is gone.
    fn stale(&self, now: OffsetDateTime) -> bool {
        if self.expires.is_none_or(|e| e <= now) {
            return true;
        }
        let here = this_host();
        !here.is_empty() && self.host == here && self.pid != 0 && !process_alive(self.pid)
    }
}

/// This machine's host name (empty if unknown).
fn this_host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Whether a process with this id runs here (one we may not signal counts).
fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// A lease record as found in the store (see [`crate::StoreBackups::leases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Its object key.
    pub key: String,
    /// Who holds it (`host pid N` from the CLI).
    pub holder: String,
    /// What for (`restore`, `remove`, `gc`).
    pub operation: String,
    /// When it was taken (RFC 3339).
    pub since: String,
    /// When it expires unless renewed (RFC 3339).
    pub expires: String,
    /// Expired, or held by a process of this host that is gone.
    pub stale: bool,
}

/// A held lease; renewed in the background until [`crate::StoreBackups::release_lease`].
#[derive(Debug)]
pub struct LeaseGuard {
    key: ObjectPath,
    /// Our record as first written (what an append-only release expires).
    record: LeaseRecord,
    dir: &'static str,
    renewer: JoinHandle<()>,
    lost: Arc<Mutex<Option<String>>>,
}

impl LeaseGuard {
    /// Fails with [`Error::LeaseLost`] once the lease could not be kept:
    /// its record was deleted by another process (which judged it stale and
    /// may hold the lease now), or renewals failed until it expired. Long
    /// operations check before each step that changes something.
    pub fn check(&self) -> Result<()> {
        match self
            .lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            Some(reason) => Err(Error::LeaseLost {
                key: self.key.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn to_json(r: &LeaseRecord) -> Vec<u8> {
    // Invariant: strings and times always serialise.
    serde_json::to_vec_pretty(r).unwrap_or_default()
}

fn locked(r: LeaseRecord) -> Error {
    Error::Locked {
        holder: r.holder,
        operation: r.operation,
        since: format_time(r.acquired),
        expires: format_time(r.expires),
    }
}

/// Where the lease of restore, remove, gc and edits lives.
pub(crate) const MAIN: &str = ".lease";
/// Where the short lease that serialises commits lives (a separate one, so
/// a create inside a restore plan, which holds the main lease, can commit).
pub(crate) const COMMIT: &str = ".lease-commit";

fn lease_dir(storage: &Storage, dir: &str) -> ObjectPath {
    storage.key(dir)
}

/// A local store keeps directories: leave no empty lease directory behind
/// (fails harmlessly while another record is in it).
fn tidy_lease_dir(storage: &Storage, dir: &str) {
    if let Some(local) = storage.local_dir() {
        let _ = std::fs::remove_dir(local.join(dir));
    }
}

fn lease_key(storage: &Storage, dir: &str, token: &str) -> ObjectPath {
    lease_dir(storage, dir).join(format!("{token}.json"))
}

/// Every lease record in the store with its key; `None` for one that
/// cannot be read as a record.
async fn lease_records(
    storage: &Storage,
    dir: &str,
) -> Result<Vec<(ObjectPath, Option<LeaseRecord>)>> {
    let store = storage.object_store();
    let dir = lease_dir(storage, dir);
    let listing: Vec<_> = store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&dir, e))?;
    let mut out = Vec::new();
    for object in listing {
        let record = match store.get(&object.location).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| Error::storage(&object.location, e))?;
                serde_json::from_slice::<LeaseRecord>(&bytes).ok()
            }
            // Released between the listing and the read.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(Error::storage(&object.location, e)),
        };
        out.push((object.location, record));
    }
    Ok(out)
}

/// Live lease records other than `ours`, oldest first; expired ones are
/// deleted on the way (unreadable ones count as expired).
async fn other_leases(
    storage: &Storage,
    dir: &str,
    ours: Option<&ObjectPath>,
) -> Result<Vec<LeaseRecord>> {
    let now = OffsetDateTime::now_utc();
    let mut live = Vec::new();
    for (location, record) in lease_records(storage, dir).await? {
        if Some(&location) == ours {
            continue;
        }
        match record {
            Some(r) if !r.stale(now) => live.push(r),
            // Stale (or garbage): whoever finds it removes it, unless the
            // store is append-only (it stays, expired, for `gc`).
            _ if storage.append_only() => {}
            _ => storage.delete_if_exists(&location).await?,
        }
    }
    live.sort_by_key(|r| r.acquired);
    Ok(live)
}

/// Every lease record in the store, oldest first (unreadable ones are
/// reported with an empty holder and as stale).
pub(crate) async fn leases(storage: &Storage) -> Result<Vec<LeaseInfo>> {
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for (location, record) in lease_records(storage, MAIN).await? {
        let key = location.to_string();
        out.push(match record {
            Some(r) => LeaseInfo {
                key,
                stale: r.stale(now),
                holder: r.holder,
                operation: r.operation,
                since: format_time(r.acquired),
                expires: format_time(r.expires),
            },
            None => LeaseInfo {
                key,
                holder: String::new(),
                operation: String::new(),
                since: String::new(),
                expires: String::new(),
                stale: true,
            },
        });
    }
    out.sort_by(|a, b| a.since.cmp(&b.since));
    Ok(out)
}

/// Deletes lease records: the stale ones, or every one with
/// `include_live` (for a holder known to be gone, on another host,
/// before its lease expires). Returns what was deleted.
pub(crate) async fn break_leases(storage: &Storage, include_live: bool) -> Result<Vec<LeaseInfo>> {
    storage.check_may_delete("break leases")?;
    let mut broken = Vec::new();
    for lease in leases(storage).await? {
        if !(lease.stale || include_live) {
            continue;
        }
        storage
            .delete_if_exists(&ObjectPath::from(lease.key.as_str()))
            .await?;
        broken.push(lease);
    }
    tidy_lease_dir(storage, MAIN);
    Ok(broken)
}

/// Takes the store's lease for `operation`, or fails with
/// [`Error::Locked`] while someone else holds a live one.
pub(crate) async fn acquire(
    storage: &Storage,
    holder: &str,
    operation: &str,
    ttl: Duration,
) -> Result<LeaseGuard> {
    acquire_in(storage, MAIN, holder, operation, ttl).await
}

/// [`acquire`] of the lease kept in `dir` ([`MAIN`] or [`COMMIT`]).
async fn acquire_in(
    storage: &Storage,
    dir: &'static str,
    holder: &str,
    operation: &str,
    ttl: Duration,
) -> Result<LeaseGuard> {
    let store = storage.object_store().clone();
    let mut attempt = 0;
    let (key, record) = loop {
        attempt += 1;
        if let Some(current) = other_leases(storage, dir, None).await?.into_iter().next() {
            return Err(locked(current));
        }
        let now = OffsetDateTime::now_utc();
        let record = LeaseRecord {
            holder: holder.to_string(),
            operation: operation.to_string(),
            token: uuid::Uuid::new_v4().simple().to_string(),
            acquired: Some(now),
            expires: Some(now + ttl),
            host: this_host(),
            pid: std::process::id(),
        };
        let key = lease_key(storage, dir, &record.token);
        store
            .put(&key, PutPayload::from(to_json(&record)))
            .await
            .map_err(|e| Error::storage(&key, e))?;
        storage.make_private(&key);
        let others = match other_leases(storage, dir, Some(&key)).await {
            Ok(others) => others,
            Err(e) => {
                let _ = give_back(storage, &key, &record).await;
                return Err(e);
            }
        };
        let Some(first) = others.into_iter().next() else {
            break (key, record);
        };
        // Someone else wrote a record too: back off.
        give_back(storage, &key, &record).await?;
        if attempt >= ATTEMPTS {
            return Err(locked(first));
        }
        // A random pause so that two callers who backed off together
        // do not collide again.
        let jitter = (uuid::Uuid::new_v4().as_u128() % 200) as u64;
        tokio::time::sleep(Duration::from_millis(50 + jitter * u64::from(attempt))).await;
    };
    let lost = Arc::new(Mutex::new(None));
    let renewer = tokio::spawn(renew(
        storage.clone(),
        key.clone(),
        record.clone(),
        ttl,
        lost.clone(),
    ));
    Ok(LeaseGuard {
        key,
        record,
        dir,
        renewer,
        lost,
    })
}

/// [`acquire`] of the lease in `dir`, waiting (with a random pause between
/// tries) while someone else holds a live one, for at most `patience`.
pub(crate) async fn acquire_waiting(
    storage: &Storage,
    dir: &'static str,
    holder: &str,
    operation: &str,
    (ttl, patience): (Duration, Duration),
) -> Result<LeaseGuard> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match acquire_in(storage, dir, holder, operation, ttl).await {
            Err(Error::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                let jitter = (uuid::Uuid::new_v4().as_u128() % 200) as u64;
                tokio::time::sleep(Duration::from_millis(50 + jitter)).await;
            }
            other => return other,
        }
    }
}

/// Gives the lease back (deletes our record; on an append-only store,
/// rewrites it as expired).
pub(crate) async fn release(storage: &Storage, guard: LeaseGuard) -> Result<()> {
    guard.renewer.abort();
    let record = guard.record.clone();
    give_back(storage, &guard.key, &record).await?;
    tidy_lease_dir(storage, guard.dir);
    Ok(())
}

/// Withdraws our `record` at `key`: deletes it, or on an append-only store
/// (which never deletes) overwrites it with one that expired already, which
/// every reader takes as stale and `gc` elsewhere deletes.
async fn give_back(storage: &Storage, key: &ObjectPath, record: &LeaseRecord) -> Result<()> {
    if !storage.append_only() {
        return storage.delete_if_exists(key).await;
    }
    let mut expired = record.clone();
    expired.expires = expired.acquired.or(Some(OffsetDateTime::UNIX_EPOCH));
    storage
        .object_store()
        .put(key, PutPayload::from(to_json(&expired)))
        .await
        .map_err(|e| Error::storage(key, e))?;
    Ok(())
}

/// Runs `work` while holding the lease, releasing it afterwards whatever
/// the outcome: the one acquire -> work -> release of the crate.
pub(crate) async fn with_lease<T>(
    storage: &Storage,
    holder: &str,
    operation: &str,
    work: impl AsyncFnOnce(&LeaseGuard) -> Result<T>,
) -> Result<T> {
    let guard = acquire(storage, holder, operation, DEFAULT_LEASE_TTL).await?;
    let result = work(&guard).await;
    let released = release(storage, guard).await;
    let value = result?;
    released?;
    Ok(value)
}

/// Renews `record` every third of `ttl` until aborted; records in `lost`
/// why it stopped being ours.
async fn renew(
    storage: Storage,
    key: ObjectPath,
    mut record: LeaseRecord,
    ttl: Duration,
    lost: Arc<Mutex<Option<String>>>,
) {
    let store = storage.object_store().clone();
    let give_up = |reason: String| {
        *lost.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    };
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let failure = match store.head(&key).await {
            Err(object_store::Error::NotFound { .. }) => {
                return give_up(
                    "its record was deleted by another process, which judged it stale".into(),
                );
            }
            Err(e) => Some(e.to_string()),
            Ok(_) => {
                let mut next = record.clone();
                next.expires = Some(OffsetDateTime::now_utc() + ttl);
                match store.put(&key, PutPayload::from(to_json(&next))).await {
                    Ok(_) => {
                        storage.make_private(&key);
                        record = next;
                        renewed = tokio::time::Instant::now();
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
        };
        if let Some(e) = failure
            && renewed.elapsed() >= ttl
        {
            return give_up(format!("it could not be renewed before it expired ({e})"));
        }
    }
}

/// Writes a lease record as another holder would (for tests of contention).
#[cfg(feature = "test-util")]
pub(crate) async fn plant_lease(
    store: &impl AsRef<Storage>,
    holder: &str,
    expires_in_secs: i64,
) -> Result<()> {
    let storage = store.as_ref();
    let now = OffsetDateTime::now_utc();
    let record = LeaseRecord {
        holder: holder.into(),
        operation: "restore".into(),
        token: "planted".into(),
        acquired: Some(now - time::Duration::minutes(1)),
        expires: Some(now + time::Duration::seconds(expires_in_secs)),
        host: String::new(),
        pid: 0,
    };
    let key = lease_key(
        storage,
        MAIN,
        &format!("planted-{}", uuid::Uuid::new_v4().simple()),
    );
    storage
        .object_store()
        .put(&key, PutPayload::from(to_json(&record)))
        .await
        .map(|_| ())
        .map_err(|e| Error::storage(&key, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: String, pid: u32, expires_in: i64) -> LeaseRecord {
        let now = OffsetDateTime::now_utc();
        LeaseRecord {
            holder: "h".into(),
            operation: "restore".into(),
            token: "t".into(),
            acquired: Some(now),
            expires: Some(now + time::Duration::seconds(expires_in)),
            host,
            pid,
        }
    }

    /// Time is tokio's (paused: it jumps ahead when every task waits), so
    /// the renewals run without waiting for real.
    #[tokio::test(start_paused = true)]
    async fn a_lease_whose_record_is_deleted_is_reported_lost() {
        let b = Storage::from_url("memory://", Vec::<(String, String)>::new()).unwrap();
        let ttl = Duration::from_secs(30);
        let guard = acquire(&b, "test", "restore", ttl).await.unwrap();
        tokio::time::sleep(ttl * 3).await;
        assert!(guard.check().is_ok(), "renewed while nobody interferes");
        // Another process judges it stale and deletes it.
        break_leases(&b, true).await.unwrap();
        tokio::time::sleep(ttl / 2).await;
        let err = guard.check().unwrap_err();
        assert!(
            matches!(err, Error::LeaseLost { .. })
                && err.to_string().contains("deleted by another process"),
            "{err}"
        );
        release(&b, guard).await.unwrap();
    }

    #[test]
    fn a_lease_of_a_gone_process_on_this_host_is_stale() {
        let now = OffsetDateTime::now_utc();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        assert!(record(this_host(), gone, 600).stale(now));
        assert!(!record(this_host(), std::process::id(), 600).stale(now));
        assert!(
            !record("another-host".into(), gone, 600).stale(now),
            "another host's processes cannot be checked: only expiry counts"
        );
        assert!(record("another-host".into(), gone, -1).stale(now));
        assert!(!record(String::new(), 0, 600).stale(now), "older records");
    }
}
