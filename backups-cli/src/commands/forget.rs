//! `backups forget`: remove the backups a retention policy (restic's
//! `--keep-*` flags) does not keep.

use backups_core::RetentionPolicy;
use backups_core::pitr;
use backups_core::retention::{Decision, PINNED_LABEL, RetentionOptions};
use serde_json::json;

use crate::context::Context;
use crate::failure::{CliResult, Failure, failed_removals};
use crate::output::out;

/// Examples and notes after `backups forget --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  backups forget --keep-last 3 --keep-within 14d
  backups forget --keep-within-daily 1m --keep-monthly unlimited --json
  backups forget --keep-label release --keep-yearly 5 --group-by none

The policy is restic's: backups are sorted newest first; a --keep-hourly,
-daily, -weekly (ISO weeks), -monthly or -yearly N keeps the newest backup of
each of the N most recent hours, days... that have backups (in UTC), and the
oldest backup too while some of N is left; --keep-within DUR keeps every
backup less than DUR (1y5m7d2h) older than the newest; --keep-within-daily DUR
(and hourly, weekly, monthly, yearly) keeps the newest of each day within DUR.
A backup any rule keeps is kept. Each model's backups are a group of their
own unless --group-by none.

Whatever the policy, forget never removes the newest backup of a group, the
newest backup of a group that passed verification, a backup labelled
`pinned`, nor one that a pending restore journal in the state directory
needs to undo a restore that did not finish (reason `pending-recovery`).
Oplog slices (`backups pitr run`) that end before the oldest kept base
backup's replay start are removed with the backups (a replica set no kept
backup has a consistent point in keeps all of its slices); --json lists them
under \"Slices\" (only for a store that holds slices).
Without any --keep-* option it refuses to run, and a count of 0 is refused
(it keeps nothing). Sidecars that cannot be read are skipped with a
warning. It holds the store's lease while it lists and removes.";

/// `backups forget`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `--keep-*` and `--group-by` flags (the library's own).
    #[command(flatten)]
    pub policy: RetentionOptions,
    /// Only print what would be kept and removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON: {"Keep": [{"ID", "Reasons"}], "Remove": [{"ID"}]}, and "Slices": [{"ReplicaSet", "Remove", "Kept"}] when the store holds oplog slices.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The policy the options describe.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy::from(self.policy.clone())
    }
}

/// Applies the policy; prints the decision (table or JSON) and, unless
/// --dry-run, removes what it does not keep under the store's lease. A
/// backup that cannot be removed is reported and the rest are still
/// removed (the exit code is the first failure's).
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let policy = args.policy();
    if policy.is_empty() {
        return Err(Failure::usage(format!(
            "refusing to forget without a policy: give at least one --keep-* option \
             (--keep-last, --keep-daily, --keep-within, --keep-label...); the newest, \
             the newest verified and `{PINNED_LABEL}` backups are kept in any case"
        )));
    }
    let (decision, failed) = if args.dry_run {
        let pending = ctx.pending_recoveries().into_iter().map(|(id, _)| id);
        let list = ctx.list().await?;
        (
            policy.with_pending_recovery(pending).apply(&list),
            Vec::new(),
        )
    } else {
        let report = ctx.backups.forget(&policy).await?;
        ctx.warn_unreadable(&report.unreadable);
        (report.decision, report.failed)
    };
    let slices = slices_plan(ctx, &decision).await?;
    if args.json {
        let mut j = decision_json(&decision);
        // Only for a store with slices: the shape stays as it was otherwise.
        if !slices.is_empty() {
            j["Slices"] = slices_json(&slices);
        }
        out(&format!("{j}\n"))?;
    } else if decision.keep.is_empty() && decision.remove.is_empty() {
        out("No backups to display.\n")?;
    } else {
        out(&table(&decision))?;
    }
    let removed = decision.remove.len() - failed.len();
    ctx.say(&match args.dry_run {
        true => format!(
            "Would keep {} and remove {} backups (dry run: nothing was changed).",
            decision.keep.len(),
            decision.remove.len()
        ),
        false => format!(
            "Kept {} and removed {removed} backups.",
            decision.keep.len()
        ),
    });
    let slices_failed = match args.dry_run {
        true => Vec::new(),
        false => pitr::forget_slices(ctx.backups.as_ref(), &slices).await?,
    };
    for set in slices.iter().filter(|s| !s.remove.is_empty()) {
        let verb = if args.dry_run {
            "Would remove"
        } else {
            "Removed"
        };
        ctx.say(&format!(
            "{verb} {} oplog slices of replica set {} (every entry before {}, where the oldest kept backup's replay starts); {} kept.",
            set.remove.len(),
            set.replica_set,
            set.cutoff.map(|c| c.rfc3339()).unwrap_or_default(),
            set.kept
        ));
    }
    let first = slices_failed.into_iter().fold(None, |first, (key, e)| {
        let f = Failure::from(e);
        stderr_line!("error: could not remove oplog slice {key}: {}", f.message);
        first.or(Some(f))
    });
    failed_removals(failed)?;
    first.map_or(Ok(()), Err)
}

/// The slices no kept backup needs: before the oldest kept base backup's
/// replay start (a replica set with no kept base keeps all its slices).
async fn slices_plan(ctx: &Context, d: &Decision) -> Result<Vec<pitr::SliceForget>, Failure> {
    let chains = pitr::catalog(ctx.backups.as_ref()).await?;
    if chains.is_empty() {
        return Ok(Vec::new());
    }
    let kept: Vec<_> = ctx
        .list()
        .await?
        .into_iter()
        .filter(|m| {
            m.id.as_ref()
                .is_some_and(|id| d.keep.iter().any(|k| &k.id == id))
        })
        .collect();
    Ok(pitr::forget_plan(&chains, &kept))
}

/// `"Slices": [{"ReplicaSet", "Remove": [objects], "Kept": N}]`.
fn slices_json(plan: &[pitr::SliceForget]) -> serde_json::Value {
    plan.iter()
        .map(|s| {
            let remove: Vec<&str> = s.remove.iter().map(|r| r.object.as_str()).collect();
            json!({"ReplicaSet": s.replica_set, "Remove": remove, "Kept": s.kept})
        })
        .collect()
}

/// `{"Keep": [{"ID": ..., "Reasons": [...]}], "Remove": [{"ID": ...}]}`.
fn decision_json(d: &Decision) -> serde_json::Value {
    let keep: Vec<_> = d
        .keep
        .iter()
        .map(|k| json!({"ID": k.id.as_str(), "Reasons": k.reasons}))
        .collect();
    let remove: Vec<_> = d
        .remove
        .iter()
        .map(|id| json!({"ID": id.as_str()}))
        .collect();
    json!({"Keep": keep, "Remove": remove})
}

/// Every backup newest first (by id): ID, KEEP or REMOVE, the reasons.
fn table(d: &Decision) -> String {
    let keep: Vec<(String, Vec<String>)> = d
        .keep
        .iter()
        .map(|k| (k.id.to_string(), k.reasons.clone()))
        .collect();
    let remove: Vec<String> = d.remove.iter().map(|id| id.to_string()).collect();
    table_of(&keep, &remove)
}

/// [`table`] of ids and reasons (a server's answer).
pub fn table_of(keep: &[(String, Vec<String>)], remove: &[String]) -> String {
    let mut rows: Vec<[String; 3]> = keep
        .iter()
        .map(|(id, reasons)| [id.clone(), "KEEP".into(), reasons.join(", ")])
        .chain(
            remove
                .iter()
                .map(|id| [id.clone(), "REMOVE".into(), String::new()]),
        )
        .collect();
    rows.sort_by(|a, b| b[0].cmp(&a[0]));
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(2);
    let mut text = format!("{:<width$}  {:<6}  REASONS\n", "ID", "ACTION");
    for [id, action, reasons] in rows {
        let line = format!("{id:<width$}  {action:<6}  {reasons}");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
