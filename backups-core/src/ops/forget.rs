//! `forget`: a retention policy applied to the store, the listing and
//! every removal under one lease.

use crate::catalog::StoreBackups;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::retention::{Decision, ForgetReport, Kept, RetentionPolicy};

/// Takes the store's lease once, lists the backups, applies `policy` and
/// removes what it decides to remove (each sidecar first, then archive),
/// then gives the lease back. A backup that cannot be removed does not
/// stop the others; once the lease is lost or the run is cancelled, the
/// rest are not touched and are reported as failed with that error.
/// Backups that pending restore journals need are always kept
/// ([`StoreBackups::pending_recoveries`]).
pub(crate) async fn forget(
    backups: &StoreBackups,
    policy: &RetentionPolicy,
) -> Result<ForgetReport> {
    backups.storage().check_may_delete("forget backups")?;
    backups
        .with_lease("forget", async |guard| {
            // A backup a pending restore journal needs is kept, whatever the policy.
            let pending = backups.pending_recoveries()?.into_iter().map(|(id, _)| id);
            let policy = policy.clone().with_pending_recovery(pending);
            let listing = backups.listing().await?;
            let mut decision = policy.apply(&listing.backups);
            keep_locked(backups, &listing.backups, &mut decision).await?;
            let mut failed = Vec::new();
            for id in &decision.remove {
                let outcome = match guard.check() {
                    Err(e) => Err(e),
                    Ok(()) if backups.cancellation().is_cancelled() => Err(Error::Cancelled(
                        format!("forget was cancelled before removing {id}"),
                    )),
                    Ok(()) => backups.delete(id).await,
                };
                if let Err(e) = outcome {
                    failed.push((id.clone(), e));
                }
            }
            Ok(ForgetReport {
                decision,
                failed,
                unreadable: listing.unreadable,
            })
        })
        .await
}

/// Moves the backups of `decision.remove` that an object lock still holds
/// to `decision.keep`, with the reason `immutable until T` (forget never
/// bypasses a lock).
async fn keep_locked(
    backups: &StoreBackups,
    candidates: &[Metadata],
    decision: &mut Decision,
) -> Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let mut still = Vec::new();
    for id in std::mem::take(&mut decision.remove) {
        let meta = candidates.iter().find(|m| m.id.as_ref() == Some(&id));
        let lock = match meta {
            Some(m) if m.lock_requested.is_some() => backups.object_lock(m).await?,
            _ => None,
        };
        match lock.filter(|l| l.holds_at(now)) {
            Some(l) => decision.keep.push(Kept {
                id,
                reasons: vec![format!("immutable until {}", l.until_text())],
            }),
            None => still.push(id),
        }
    }
    decision.remove = still;
    // Newest first, as the policy ordered them.
    let position =
        |id: &crate::id::BackupId| candidates.iter().position(|m| m.id.as_ref() == Some(id));
    decision.keep.sort_by_key(|k| position(&k.id));
    Ok(())
}
