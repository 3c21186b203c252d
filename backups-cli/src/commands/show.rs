//! `backups show`: everything recorded about one backup.

use backups_core::Backups;

use crate::args::parse_id;
use crate::context::Context;
use crate::failure::CliResult;
use crate::output::{self, out};

/// Examples after `backups show --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups show 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97
  backups show 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 --json";

/// `backups show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints one backup's metadata, as fields or JSON; one that a pending
/// restore journal needs is marked (`pending recovery:`, and
/// `"PendingRecovery": true`).
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let id = parse_id(&args.id)?;
    let meta = ctx.backups.metadata(&id).await?;
    let lock = ctx.backups.object_lock(&meta).await?;
    let pending = ctx
        .pending_recoveries()
        .into_iter()
        .find(|(p, _)| *p == id)
        .map(|(_, journal)| journal);
    if args.json {
        let mut v = output::json_value(&meta);
        v["Immutable"] = output::immutable_json(lock);
        if pending.is_some() {
            v["PendingRecovery"] = true.into();
        }
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ))
    } else {
        let mut text = output::details(&meta);
        text.push_str(&output::immutable_line(&meta, lock));
        if let Some(journal) = pending {
            text.push_str(&format!(
                "pending recovery: yes: the restore journal {} needs it to undo a restore that did not finish (`backups restore {id} --target / --yes`); forget keeps it and remove refuses it\n",
                journal.display()
            ));
        }
        out(&text)
    }
}
