//! Sidecars that cannot be read: no single object blocks a listing, a
//! retention run or a new backup; gc collects them and remove deletes one.

use std::sync::Arc;
use std::time::Duration;

use object_store::{ObjectStoreExt, PutPayload};

use super::request;
use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::error::Error;
use crate::gc::GarbageKind;
use crate::id::BackupId;
use crate::progress::NoProgress;
use crate::retention::{KeepCount, RetentionPolicy};
use crate::storage::Storage;
use crate::test_util::{MODEL, sample_tree};

/// The bad sidecars put in the store: an id, its bytes, and why it is bad.
fn bad_sidecars() -> Vec<(BackupId, Vec<u8>, &'static str)> {
    let id = |stamp: &str| format!("{stamp}.{MODEL}").parse::<BackupId>().expect("id");
    let other = id("20200101-000000");
    vec![
        (
            id("20261001-000000"),
            b"{bad\n".to_vec(),
            "not valid metadata JSON",
        ),
        (id("20261002-000000"), Vec::new(), "empty"),
        (
            id("20261003-000000"),
            format!(
                r#"{{"ID":"{other}","Started":"2026-10-03T00:00:00Z","Checksum":"x","Size":10}}"#
            )
            .into_bytes(),
            "is not 20261003-000000",
        ),
        (
            id("20261004-000000"),
            format!(r#"{{"ID":"20261004-000000.{MODEL}"}}"#).into_bytes(),
            "no Started time",
        ),
    ]
}

/// A store holding one good backup and sidecars that cannot be read (not
/// JSON, zero bytes, another id, missing fields): list skips and names
/// them, retention and new backups go on, gc lists each (whatever its
/// age) and deletes them, remove deletes one, and show names the object.
pub async fn unreadable_sidecars_are_skipped_and_collected(storage: Storage) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let b = StoreBackups::new(storage.clone());
    let good = b
        .create(request(vec![tree.clone()]), Arc::new(NoProgress))
        .await
        .expect("create");
    let bad = bad_sidecars();
    for (id, bytes, _) in &bad {
        storage
            .object_store()
            .put(&storage.sidecar_key(id), PutPayload::from(bytes.clone()))
            .await
            .expect("put a bad sidecar");
    }

    assert_eq!(b.list().await.expect("list"), vec![good.clone()]);
    let listing = b.listing().await.expect("listing");
    assert_eq!(listing.backups, vec![good.clone()]);
    let named: Vec<String> = listing.unreadable.iter().map(|u| u.key.clone()).collect();
    let mut want: Vec<String> = bad
        .iter()
        .map(|(id, _, _)| storage.sidecar_key(id).to_string())
        .collect();
    want.sort();
    assert_eq!(named, want, "each bad sidecar named once");
    for (id, _, why) in &bad {
        let u = listing
            .unreadable
            .iter()
            .find(|u| &u.id == id)
            .expect("listed");
        assert!(u.reason.contains(why), "{id}: {} (want {why})", u.reason);
        match b.metadata(id).await {
            Err(e @ Error::UnreadableSidecar { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(&storage.sidecar_key(id).to_string())
                        && text.contains("sidecar")
                        && !text.contains("archive"),
                    "{text}"
                );
            }
            other => panic!("metadata of {id}: {other:?}"),
        }
    }

    // Retention counts only the readable backups and removes nothing else.
    let second = b
        .create(request(vec![tree]), Arc::new(NoProgress))
        .await
        .expect("a new backup beside unreadable sidecars");
    let report = b
        .forget(&RetentionPolicy::new().with_keep_last(KeepCount::Count(1)))
        .await
        .expect("forget");
    assert_eq!(report.decision.remove, vec![good.id.clone().expect("id")]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.unreadable.len(), bad.len());

    // gc lists every bad sidecar, even a fresh one.
    let garbage = b.find_garbage(Duration::from_secs(3600)).await.expect("gc");
    let kinds: Vec<_> = garbage
        .iter()
        .map(|g| (g.kind.clone(), g.key.clone()))
        .collect();
    let expected: Vec<_> = want
        .iter()
        .map(|k| (GarbageKind::UnreadableSidecar, k.clone()))
        .collect();
    assert_eq!(kinds, expected);

    // remove deletes one; gc deletes the rest.
    let (first_bad, _, _) = &bad[0];
    b.remove(first_bad)
        .await
        .expect("remove an unreadable sidecar");
    assert!(matches!(
        b.metadata(first_bad).await,
        Err(Error::NotFound { .. })
    ));
    let garbage = b.find_garbage(Duration::from_secs(3600)).await.expect("gc");
    assert_eq!(garbage.len(), bad.len() - 1);
    b.delete_garbage(&garbage).await.expect("delete garbage");
    let listing = b.listing().await.expect("listing");
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(listing.backups, vec![second]);
}
