//! Protection of the backups that pending restore journals need: forget
//! keeps them, remove refuses them, a forced remove takes them.

use std::sync::Arc;

use super::request;
use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::error::Error;
use crate::ops::execute::journal_path;
use crate::progress::NoProgress;
use crate::retention::{KeepCount, RetentionPolicy};
use crate::storage::Storage;
use crate::test_util::sample_tree;

/// With a journal directory holding `restore-<id>.journal`, backup `id`
/// is kept by `forget` (reason `pending-recovery`) and refused by
/// `remove` (naming the journal) until `remove_forced`; once the journal
/// is gone, forget removes it like any other.
pub async fn backups_pending_journals_need_are_protected(storage: Storage) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = sample_tree(tmp.path());
    let journals = tmp.path().join("state");
    let b = StoreBackups::new(storage).with_journal_dir(&journals);
    let create = || b.create(request(vec![tree.clone()]), Arc::new(NoProgress));
    let needed = create().await.expect("create").id.expect("id");
    let newest = create().await.expect("create").id.expect("id");
    assert!(b.pending_recoveries().expect("none yet").is_empty());
    std::fs::create_dir_all(&journals).expect("mkdir");
    let journal = journal_path(&journals, &needed);
    std::fs::write(&journal, b"").expect("journal");
    assert_eq!(
        b.pending_recoveries().expect("pending"),
        vec![(needed.clone(), journal.clone())]
    );

    let keep_one = RetentionPolicy::new().with_keep_last(KeepCount::Count(1));
    let report = b.forget(&keep_one).await.expect("forget");
    assert!(report.decision.remove.is_empty(), "{:?}", report.decision);
    let kept = report.decision.keep.iter().find(|k| k.id == needed);
    assert!(
        kept.is_some_and(|k| k.reasons.contains(&"pending-recovery".to_string())),
        "{:?}",
        report.decision
    );
    match b.remove(&needed).await {
        Err(e @ Error::PendingRecovery { .. }) => {
            assert!(
                e.to_string().contains(&journal.display().to_string()),
                "{e}"
            );
        }
        other => panic!("remove of a needed backup: {other:?}"),
    }
    assert_eq!(b.list().await.expect("list").len(), 2, "nothing removed");

    std::fs::remove_file(&journal).expect("settle");
    let report = b.forget(&keep_one).await.expect("forget");
    assert_eq!(report.decision.remove, vec![needed.clone()]);
    std::fs::write(journal_path(&journals, &newest), b"").expect("journal");
    assert!(matches!(
        b.remove(&newest).await,
        Err(Error::PendingRecovery { .. })
    ));
    b.remove_forced(&newest).await.expect("forced remove");
    assert!(b.list().await.expect("list").is_empty());
}
