//! A lease in the store (`<prefix>/.lease.json`: holder, operation, expiry)
//! held by restore, remove and gc, so two of them never run at once. A
//! lease past its expiry is taken over; a live one makes the second caller
//! fail with [`Error::Locked`] naming the holder and since when.
//!
//! Where the store honours create-only puts (local disk, memory, S3, Azure)
//! taking the lease is atomic. Where it does not (Garage), the lease is read
//! back after writing and the last writer wins; a narrow race remains there.

use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::StoreBackups;
use crate::error::{Error, Result};
use crate::metadata::format_time;

/// How long a lease lasts without renewal; it is renewed every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(300);

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
}

impl LeaseRecord {
    fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_none_or(|e| e <= now)
    }
}

/// A held lease; renewed in the background until [`StoreBackups::release_lease`].
#[derive(Debug)]
pub struct LeaseGuard {
    key: ObjectPath,
    token: String,
    renewer: JoinHandle<()>,
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

impl StoreBackups {
    fn lease_key(&self) -> ObjectPath {
        self.storage().key(".lease.json")
    }

    async fn read_lease(&self, key: &ObjectPath) -> Result<Option<LeaseRecord>> {
        match self.storage().object_store().get(key).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| Error::storage(key, e))?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(key, e)),
        }
    }

    /// Takes the store's lease for `operation`, or fails with
    /// [`Error::Locked`] while someone else holds a live one.
    pub async fn acquire_lease(&self, operation: &str, ttl: Duration) -> Result<LeaseGuard> {
        let key = self.lease_key();
        let store = self.storage().object_store().clone();
        let now = OffsetDateTime::now_utc();
        let record = LeaseRecord {
            holder: self.holder().to_string(),
            operation: operation.to_string(),
            token: uuid::Uuid::new_v4().simple().to_string(),
            acquired: Some(now),
            expires: Some(now + ttl),
        };
        let locked = |r: LeaseRecord| Error::Locked {
            holder: r.holder,
            operation: r.operation,
            since: format_time(r.acquired),
            expires: format_time(r.expires),
        };
        if let Some(current) = self.read_lease(&key).await? {
            if !current.expired(now) {
                return Err(locked(current));
            }
            // Stale: whoever deletes and re-creates first takes it over.
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::storage(&key, e)),
            }
        }
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match store
            .put_opts(&key, PutPayload::from(to_json(&record)), create)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(Error::storage(&key, e)),
        }
        // Read back: on stores that ignore create-only puts the last writer wins.
        match self.read_lease(&key).await? {
            Some(current) if current.token == record.token => {}
            Some(current) => return Err(locked(current)),
            None => {
                return Err(Error::Cancelled(format!(
                    "the lease {key} vanished while it was being taken"
                )));
            }
        }
        let renewer = {
            let store = store.clone();
            let key = key.clone();
            let mut record = record.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let now = OffsetDateTime::now_utc();
                    record.expires = Some(now + ttl);
                    let _ = store.put(&key, PutPayload::from(to_json(&record))).await;
                }
            })
        };
        Ok(LeaseGuard {
            key,
            token: record.token,
            renewer,
        })
    }

    /// Gives the lease back (deleting it if it is still ours).
    pub async fn release_lease(&self, guard: LeaseGuard) -> Result<()> {
        guard.renewer.abort();
        if let Some(current) = self.read_lease(&guard.key).await?
            && current.token == guard.token
        {
            match self.storage().object_store().delete(&guard.key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::storage(&guard.key, e)),
            }
        }
        Ok(())
    }

    /// Runs `work` while holding the lease, releasing it afterwards whatever
    /// the outcome.
    pub async fn with_lease<T, F>(&self, operation: &str, work: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let guard = self.acquire_lease(operation, DEFAULT_LEASE_TTL).await?;
        let result = work.await;
        let released = self.release_lease(guard).await;
        let value = result?;
        released?;
        Ok(value)
    }
}

/// Writes a lease record as another holder would (for tests of contention).
#[cfg(feature = "test-util")]
pub async fn plant_lease(b: &StoreBackups, holder: &str, expires_in_secs: i64) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let record = LeaseRecord {
        holder: holder.into(),
        operation: "restore".into(),
        token: "planted".into(),
        acquired: Some(now - time::Duration::minutes(1)),
        expires: Some(now + time::Duration::seconds(expires_in_secs)),
    };
    let key = b.lease_key();
    b.storage()
        .object_store()
        .put(&key, PutPayload::from(to_json(&record)))
        .await
        .map(|_| ())
        .map_err(|e| Error::storage(&key, e))
}
