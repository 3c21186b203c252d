//! `forget`: a retention policy applied to the store, the listing and
//! every removal under one lease.

use crate::catalog::StoreBackups;
use crate::error::{Error, Result};
use crate::retention::{ForgetReport, RetentionPolicy};

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
            let decision = policy.apply(&listing.backups);
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
