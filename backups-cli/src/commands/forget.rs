//! `backups forget`: remove the backups a retention policy (restic's
//! `--keep-*` flags) does not keep.

use backups_core::RetentionPolicy;
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
    /// Print JSON: {"Keep": [{"ID", "Reasons"}], "Remove": [{"ID"}]}.
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
    if args.json {
        out(&format!("{}\n", decision_json(&decision)))?;
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
    failed_removals(failed)
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
