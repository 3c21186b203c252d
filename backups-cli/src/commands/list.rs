//! `backups list`: the backups in the store, newest first.

use backups_core::Backups;

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
    /// Print JSON (an array of metadata objects).
    #[arg(long)]
    pub json: bool,
}

/// Prints the store's backups as a table or JSON.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let list = ctx.backups.list().await?;
    if args.json {
        let values: Vec<_> = list.iter().map(output::json_value).collect();
        out(&format!("{}\n", serde_json::Value::Array(values)))
    } else if list.is_empty() {
        out("No backups to display.\n")
    } else {
        out(&output::table(&list, output::terminal_width()))
    }
}
