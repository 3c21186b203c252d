//! `backups remove`: backups by id, or all but the newest N.

use backups_core::retention::{GroupBy, KeepCount};
use backups_core::{BackupId, Backups, RetentionPolicy};

use crate::args::parse_id;
use crate::context::Context;
use crate::failure::{CliResult, Failure, failed_removals, some_failed};
use crate::output::out;

/// Examples after `backups remove --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups remove 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97
  backups remove --keep-latest 5
  backups remove --keep-latest 5 --dry-run

A backup that a pending restore journal needs (the pre-restore backup of a
restore that did not finish) is refused unless --force. A sidecar that
cannot be read is removed like a backup.";

/// `backups remove`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup ids to remove.
    #[arg(
        required_unless_present = "keep_latest",
        conflicts_with = "keep_latest"
    )]
    pub ids: Vec<String>,
    /// Remove all backups except the newest N: a retention policy
    /// (`forget --keep-last N --group-by none`), so the newest verified
    /// backup and `pinned` ones are kept too.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_latest: Option<u32>,
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove even a backup that a pending restore journal needs to undo
    /// a restore that did not finish (with a warning).
    #[arg(long)]
    pub force: bool,
    /// Remove a backup still under a governance-mode object lock (needs
    /// s3:BypassGovernanceRetention; compliance mode cannot be bypassed).
    #[arg(long)]
    pub bypass_governance: bool,
}

/// Removes each backup; one that cannot be removed is reported and the
/// rest are still tried (the exit code is the first failure's).
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    if let Some(n) = args.keep_latest {
        return keep_latest(ctx, n, args.dry_run).await;
    }
    let ids: Vec<BackupId> = args
        .ids
        .iter()
        .map(|s| parse_id(s))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        out("Nothing to remove.\n")?;
    }
    let backups = ctx
        .backups
        .clone()
        .with_bypass_governance(args.bypass_governance);
    let mut first_error = None;
    for id in ids {
        if args.dry_run {
            out(&format!("Would remove backup {id}\n"))?;
            continue;
        }
        let removed = if args.force {
            if let Some((_, journal)) = ctx.pending_recoveries().into_iter().find(|(p, _)| *p == id)
            {
                stderr_line!(
                    "warning: removing {id} although the pending restore journal {} needs it (--force): that restore can no longer be undone from it",
                    journal.display()
                );
            }
            backups.remove_forced(&id).await
        } else {
            backups.remove(&id).await
        };
        match removed {
            Ok(()) => out(&format!("Removed backup {id}\n"))?,
            Err(e) => {
                let f = Failure::from(e);
                stderr_line!("error: {}", f.message);
                first_error.get_or_insert(f);
            }
        }
    }
    some_failed(first_error, "some backups could not be removed (see above)")
}

/// `--keep-latest N`: the library's retention run (one lease, forget's
/// protections), printing what it removed and what it kept beyond the N.
async fn keep_latest(ctx: &Context, n: u32, dry_run: bool) -> CliResult {
    let policy = RetentionPolicy::new()
        .with_keep_last(KeepCount::Count(n))
        .with_group_by(GroupBy::None);
    let (decision, failed) = if dry_run {
        (policy.apply(&ctx.list().await?), Vec::new())
    } else {
        let report = ctx.backups.forget(&policy).await?;
        ctx.warn_unreadable(&report.unreadable);
        (report.decision, report.failed)
    };
    if decision.remove.is_empty() {
        out("Nothing to remove.\n")?;
    }
    for kept in &decision.keep {
        let protected: Vec<&str> = kept
            .reasons
            .iter()
            .map(String::as_str)
            .filter(|r| *r != "last backup" && *r != "newest backup")
            .collect();
        if !protected.is_empty() {
            out(&format!(
                "Kept backup {} ({})\n",
                kept.id,
                protected.join(", ")
            ))?;
        }
    }
    let verb = if dry_run { "Would remove" } else { "Removed" };
    for id in &decision.remove {
        if !failed.iter().any(|(f, _)| f == id) {
            out(&format!("{verb} backup {id}\n"))?;
        }
    }
    failed_removals(failed)
}
