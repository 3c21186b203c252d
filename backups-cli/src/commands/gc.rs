//! `backups gc`: what interrupted work left in the store, deleted with
//! --yes.

use crate::args::parse_duration;
use crate::context::Context;
use crate::failure::CliResult;
use crate::output::{self, out};

/// Examples and notes after `backups gc --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups gc                      # list garbage older than a day
  backups gc --older-than 1h --yes

Garbage is: archives no sidecar names (a create killed before its commit),
staging files of interrupted uploads in local stores, sidecars whose
archive is missing, and sidecars that cannot be read (unreadable-sidecar:
not JSON, empty, another id, fields missing; listed whatever their age).
Other objects younger than --older-than are left alone, since they may
belong to an upload still in progress. A restore journal that is pending
(a restore that did not finish) is reported with how to recover. Incomplete S3 multipart
uploads cannot be listed through object_store: use a bucket lifecycle rule
(AbortIncompleteMultipartUpload), see the README.";

/// `backups gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only objects at least this old: 30min, 24h, 7d, 0s.
    #[arg(long, default_value = "24h", value_parser = parse_duration, value_name = "AGE")]
    pub older_than: std::time::Duration,
    /// Delete what was found (otherwise only list it).
    #[arg(long)]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Lists the garbage (table or JSON) and, with --yes, deletes it.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let garbage = ctx.backups.find_garbage(args.older_than).await?;
    ctx.warn_pending_recoveries();
    let open = ctx.backups.storage().world_readable();
    if !open.is_empty() {
        let shown: Vec<String> = open
            .iter()
            .take(5)
            .map(|p| p.display().to_string())
            .collect();
        ctx.say(&format!(
            "warning: {} files of this store can be read by any user of this host ({}{}); backups hold the controller's keys: chmod 600 them (and 700 the store's directory)",
            open.len(),
            shown.join(", "),
            if open.len() > 5 { ", ..." } else { "" }
        ));
    }
    if args.json {
        out(&format!("{}\n", output::garbage_json(&garbage)))?;
    } else if garbage.is_empty() {
        out("No garbage found.\n")?;
    } else {
        out(&output::garbage_table(&garbage))?;
    }
    if garbage.is_empty() {
        return Ok(());
    }
    let total: u64 = garbage.iter().map(|g| g.size).sum();
    if args.yes {
        ctx.backups.delete_garbage(&garbage).await?;
        ctx.say(&format!(
            "Deleted {} objects ({}).",
            garbage.len(),
            output::human_size(total)
        ));
    } else {
        ctx.say(&format!(
            "{} objects ({}); run again with --yes to delete them.",
            garbage.len(),
            output::human_size(total)
        ));
    }
    Ok(())
}
