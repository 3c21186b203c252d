//! The store's lease: one holder at a time, stale leases taken over.

use std::sync::Arc;

use super::request;
use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::error::Error;
use crate::progress::NoProgress;
use crate::storage::Storage;
use crate::test_util::sample_tree;

/// The store's lease: a live one refuses a second holder (naming the first),
/// a stale one is taken over, and restore/remove hold it.
pub async fn lease_excludes_a_second_holder(storage: Storage) {
    let a = StoreBackups::new(storage.clone()).with_holder("host-a pid 1");
    let b = StoreBackups::new(storage.clone()).with_holder("host-b pid 2");
    let ttl = std::time::Duration::from_secs(60);
    let held = a.acquire_lease("restore", ttl).await.expect("first holder");
    match b.acquire_lease("gc", ttl).await {
        Err(Error::Locked {
            holder, operation, ..
        }) => {
            assert_eq!(
                (holder.as_str(), operation.as_str()),
                ("host-a pid 1", "restore")
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // remove refuses while the lease is held, and works after release.
    let tmp = tempfile::tempdir().expect("tempdir");
    let meta = b
        .create(request(vec![sample_tree(tmp.path())]), Arc::new(NoProgress))
        .await
        .expect("create");
    let id = meta.id.clone().expect("id");
    let err = b.remove(&id).await.unwrap_err();
    assert!(err.to_string().contains("locked by host-a pid 1"), "{err}");
    a.release_lease(held).await.expect("release");
    // A stale lease (expired) is taken over.
    crate::lease::plant_lease(&a, "host-gone pid 9", -5)
        .await
        .expect("plant");
    b.remove(&id).await.expect("stale lease taken over");
    crate::lease::plant_lease(&a, "host-live pid 7", 600)
        .await
        .expect("plant");
    let err = b.acquire_lease("restore", ttl).await.unwrap_err();
    assert!(err.to_string().contains("host-live pid 7"), "{err}");
    // Breaking: stale ones only by default, live ones on request.
    assert!(b.break_leases(false).await.expect("break").is_empty());
    let leases = b.leases().await.expect("leases");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(!leases[0].stale && leases[0].holder == "host-live pid 7");
    let broken = b.break_leases(true).await.expect("force");
    assert_eq!(broken.len(), 1);
    assert!(b.leases().await.expect("leases").is_empty());
    let guard = b
        .acquire_lease("restore", ttl)
        .await
        .expect("free once broken");
    b.release_lease(guard).await.expect("release");
}

/// Callers racing for the lease: at most one holds it at a time (on every
/// store, conditional writes or not), the others are told who has it, and
/// once released it can be taken again.
pub async fn racing_callers_never_share_the_lease(storage: Storage) {
    let ttl = std::time::Duration::from_secs(60);
    for round in 0..4 {
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let b =
                    StoreBackups::new(storage.clone()).with_holder(format!("racer {round}.{i}"));
                tokio::spawn(async move {
                    let got = b.acquire_lease("restore", ttl).await;
                    (b, got)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            let (b, got) = racer.await.expect("racer task");
            match got {
                Ok(guard) => winners.push((b, guard)),
                Err(Error::Locked { holder, .. }) => {
                    assert!(holder.starts_with("racer "), "{holder}")
                }
                Err(e) => panic!("expected Locked, got {e}"),
            }
        }
        assert!(
            winners.len() <= 1,
            "round {round}: {} callers hold the lease at once",
            winners.len()
        );
        for (b, guard) in winners {
            b.release_lease(guard).await.expect("release");
        }
    }
    let b = StoreBackups::new(storage).with_holder("after the race");
    let guard = b
        .acquire_lease("gc", ttl)
        .await
        .expect("free again once released");
    b.release_lease(guard).await.expect("release");
}
