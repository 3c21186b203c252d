//! `backups unlock`: who holds the store's lease; stale leases (and with
//! --force live ones) removed.

use crate::context::Context;
use crate::failure::CliResult;
use crate::output::{self, out};

/// Examples and notes after `backups unlock --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups unlock                  # remove stale leases, show live ones
  backups unlock --force          # also remove live ones (their holder is gone)

A lease names its holder (host and pid), operation and expiry. Stale ones
(expired, or left by a process of this host that no longer runs) are taken
over by the next command anyway; --force is for a holder on another host
that is known to be gone before its lease expires (5 minutes after its last
renewal). Never force a lease whose holder may still be running.";

/// `backups unlock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove live leases too.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Breaks the leases it may break and prints what was removed and kept.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let broken = ctx.backups.break_leases(args.force).await?;
    let kept = ctx.backups.leases().await?;
    if args.json {
        let items: Vec<_> = broken
            .iter()
            .map(|l| output::lease_json(l, true))
            .chain(kept.iter().map(|l| output::lease_json(l, false)))
            .collect();
        return out(&format!("{}\n", serde_json::Value::Array(items)));
    }
    if broken.is_empty() && kept.is_empty() {
        out("No leases held.\n")?;
    }
    for l in &broken {
        let what = if l.stale { "stale" } else { "live" };
        out(&format!(
            "Removed the {what} lease of {} ({}) since {}\n",
            l.holder, l.operation, l.since
        ))?;
    }
    for l in &kept {
        out(&format!(
            "Kept the live lease of {} ({}) since {}, expiring {}: pass --force if that process is gone\n",
            l.holder, l.operation, l.since, l.expires
        ))?;
    }
    Ok(())
}
