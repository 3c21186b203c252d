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

/// Prints one backup's metadata, as fields or JSON.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let meta = ctx.backups.metadata(&parse_id(&args.id)?).await?;
    if args.json {
        let v = output::json_value(&meta);
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ))
    } else {
        out(&output::details(&meta))
    }
}
