//! `backups list`: the backups in the store, newest first.

use crate::context::Context;
use crate::failure::CliResult;
use crate::output::{self, out};

/// Examples after `backups list --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups list
  backups list --json | jq -r '.[].ID'";

/// `backups list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (an array of metadata objects; one a pending restore
    /// journal needs has "PendingRecovery": true). Sidecars that cannot be
    /// read are left out (a warning on stderr names each).
    #[arg(long)]
    pub json: bool,
}

/// Prints the store's backups as a table or JSON. A sidecar that cannot
/// be read is skipped with a warning naming it; a backup a pending restore
/// journal needs is marked.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let list = ctx.list().await?;
    // Read from the store (HEAD), for the backups written with a lock.
    let locks = ctx.backups.object_locks(&list).await?;
    let pending: Vec<_> = ctx.pending_recoveries();
    let needed = |m: &backups_core::Metadata| {
        m.id.as_ref()
            .is_some_and(|id| pending.iter().any(|(p, _)| p == id))
    };
    if args.json {
        let values: Vec<_> = list
            .iter()
            .zip(&locks)
            .map(|(m, lock)| {
                let mut v = output::json_value(m);
                v["Immutable"] = output::immutable_json(*lock);
                if needed(m) {
                    v["PendingRecovery"] = true.into();
                }
                v
            })
            .collect();
        out(&format!("{}\n", serde_json::Value::Array(values)))?;
    } else if list.is_empty() {
        out("No backups to display.\n")?;
    } else {
        let marked: Vec<bool> = list.iter().map(needed).collect();
        out(&output::table(
            &list,
            &marked,
            &locks,
            output::terminal_width(),
        ))?;
    }
    for (id, journal) in &pending {
        ctx.say(&crate::context::pending_recovery_warning(id, journal));
    }
    Ok(())
}
