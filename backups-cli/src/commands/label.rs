//! `backups label` and `backups notes`: edit a backup's labels and notes.

use backups_core::Edit;

use crate::args::parse_id;
use crate::context::Context;
use crate::failure::{CliResult, Failure};
use crate::output::out;

/// Examples after `backups label --help`.
pub const LABEL_HELP: &str = "\
Examples:
  backups label 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 --add pinned
  backups label ID1 ID2 --add before-upgrade --remove scheduled

A backup labelled 'pinned' is never removed by `backups forget`. Each edit
rewrites the sidecar in one atomic write, under the store's lease.";

/// Examples after `backups notes --help`.
pub const NOTES_HELP: &str = "\
Examples:
  backups notes 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 'known good, before 2.9 upgrade'";

/// `backups label`.
#[derive(Debug, clap::Args)]
pub struct LabelArgs {
    /// The backups to label.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Add this label (repeatable).
    #[arg(long = "add", value_name = "LABEL", value_parser = crate::args::parse_label)]
    pub add: Vec<String>,
    /// Remove this label (repeatable).
    #[arg(long = "remove", value_name = "LABEL")]
    pub remove: Vec<String>,
}

/// `backups notes`.
#[derive(Debug, clap::Args)]
pub struct NotesArgs {
    /// The backup.
    pub id: String,
    /// The new notes (replacing the old).
    pub text: String,
}

/// Adds and removes labels; prints each backup's labels after.
pub async fn run_label(ctx: &Context, args: LabelArgs) -> CliResult {
    check(&args)?;
    let edit = Edit::labels(args.add, args.remove);
    for id in &args.ids {
        let id = parse_id(id)?;
        let meta = ctx.backups.edit(&id, &edit).await?;
        out(&format!("{id}: {}\n", meta.labels.join(",")))?;
    }
    Ok(())
}

/// Refuses an edit with no label, or one label both added and removed.
pub fn check(args: &LabelArgs) -> CliResult {
    if args.add.is_empty() && args.remove.is_empty() {
        return Err(Failure::usage("give --add LABEL or --remove LABEL"));
    }
    if let Some(both) = args.add.iter().find(|l| args.remove.contains(l)) {
        return Err(Failure::usage(format!(
            "label {both:?} is both added and removed: give it to --add or to --remove, not both"
        )));
    }
    Ok(())
}

/// Replaces the notes.
pub async fn run_notes(ctx: &Context, args: NotesArgs) -> CliResult {
    let id = parse_id(&args.id)?;
    ctx.backups.edit(&id, &Edit::notes(args.text)).await?;
    ctx.say(&format!("Updated the notes of {id}"));
    Ok(())
}
