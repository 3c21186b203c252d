//! `backups copy`: backups streamed from the store into a second one,
//! verified on the way and checked there before they are committed.

use backups_core::copy::{CopyReport, CopyRequest, CopySelection};
use serde_json::json;

use crate::args::{GlobalArgs, parse_id, parse_key_value};
use crate::config::{Config, apply};
use crate::context::Context;
use crate::failure::{CliResult, Failure, some_failed};
use crate::keys::EncryptArgs;
use crate::output::{escape, out};

/// Examples and notes after `backups copy --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups copy --latest --to s3://offsite-bucket/controller --to-store-option region=eu-west-1
  backups copy --all --label pinned --to-profile offsite
  backups --store /var/backups copy ID --to az://backups/ctl --to-store-option use_emulator=true
  backups copy --all --to-profile offsite --dry-run --json

Each archive is streamed from the store (--store, the profile) into the
target (--to URL with --to-store-option KEY=VALUE, or the store of the
config file's --to-profile NAME); its bytes are checked against the sidecar
while they stream (size, SHA-1, SHA-256), the stored copy is checked (size
and SHA-256), and only then is its sidecar written in the target, as create
commits. A corrupt source is refused (exit 5) and leaves nothing in the
target. A backup the target holds with the same checksum is skipped; one
with another checksum is refused (exit 4). Nothing is deleted in the target:
re-running a copy that was interrupted copies the rest. Encrypted backups
are copied as they are; --encrypt-to / --recipients-file encrypt plain
ones for the target. Labels and notes travel; the copy records CopiedFrom
(the source store's URL, credentials redacted, and the time).";

/// `backups copy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backups to copy.
    #[arg(required_unless_present_any = ["all", "latest"])]
    pub ids: Vec<String>,
    /// Copy every backup in the store.
    #[arg(long, conflicts_with_all = ["ids", "latest"])]
    pub all: bool,
    /// Copy the newest backup.
    #[arg(long, conflicts_with = "ids")]
    pub latest: bool,
    /// With --all or --latest: only backups with this label.
    #[arg(long, value_name = "LABEL", conflicts_with = "ids")]
    pub label: Option<String>,
    /// The target store's URL (as --store).
    #[arg(long, value_name = "URL", required_unless_present = "to_profile")]
    pub to: Option<String>,
    /// The config file's profile whose store is the target.
    #[arg(long, value_name = "NAME", conflicts_with = "to")]
    pub to_profile: Option<String>,
    /// An option of the target store as KEY=VALUE (repeatable; as
    /// --store-option: endpoint, region, allow_http, use_emulator...).
    #[arg(long = "to-store-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub to_store_options: Vec<(String, String)>,
    #[command(flatten)]
    pub encrypt: EncryptArgs,
    #[command(flatten)]
    pub immutable: crate::immutable::ImmutableArgs,
    /// Say what would be copied and skipped; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON: {"Copied":[{"ID","Bytes"}],"Skipped":[{"ID","Reason"}],"Failed":[{"ID","Error"}]}.
    #[arg(long)]
    pub json: bool,
}

/// The global options the target store is opened with: its URL and
/// options from --to and --to-store-option, or from the --to-profile
/// profile (the flags' options added to its own). Nothing of the source's
/// endpoint, region or options carries over.
pub fn target_global(
    global: &GlobalArgs,
    args: &Args,
    config: &Config,
) -> Result<GlobalArgs, Failure> {
    let mut target = global.clone();
    target.store.clone_from(&args.to);
    target.store_options.clone_from(&args.to_store_options);
    target.endpoint = None;
    target.region = None;
    target.allow_http = false;
    if let Some(name) = &args.to_profile {
        let (_, profile) = config.profile(Some(name))?;
        apply::global(&mut target, &profile);
        if target.store.is_none() {
            return Err(Failure::usage(format!(
                "profile {name:?} of {} names no store",
                config.describe()
            )));
        }
    }
    Ok(target)
}

/// Copies the chosen backups into `target`; one line (or JSON) per backup.
pub async fn run(ctx: &Context, target: &Context, args: Args) -> CliResult {
    let selection = if args.all {
        CopySelection::All
    } else if args.latest {
        CopySelection::Latest
    } else {
        CopySelection::Ids(
            args.ids
                .iter()
                .map(|s| parse_id(s))
                .collect::<Result<_, _>>()?,
        )
    };
    let mut request = CopyRequest::new(selection).with_dry_run(args.dry_run);
    if let Some(label) = &args.label {
        request = request.with_label(label);
    }
    if let Some(e) = args.encrypt.encryption()? {
        request = request.with_encryption(e);
    }
    let mut report = ctx
        .backups
        .copy_to(&target.backups, &request, ctx.progress())
        .await?;
    let failures: Vec<(String, Failure)> = std::mem::take(&mut report.failed)
        .into_iter()
        .map(|f| (f.id.to_string(), Failure::from(f.error)))
        .collect();
    if args.json {
        out(&format!("{}\n", report_json(&report, &failures)))?;
    } else {
        print_report(&report, failures.is_empty())?;
        for (id, f) in &failures {
            stderr_line!("error: could not copy {id}: {}", f.message);
        }
    }
    let first = failures.into_iter().next().map(|(_, f)| f);
    some_failed(first, "some backups could not be copied (see above)")
}

/// The report as `--json` prints it.
fn report_json(report: &CopyReport, failures: &[(String, Failure)]) -> serde_json::Value {
    let mut value = json!({
        "Copied": report.copied.iter()
            .map(|c| json!({"ID": c.id.to_string(), "Bytes": c.bytes}))
            .collect::<Vec<_>>(),
        "Skipped": report.skipped.iter()
            .map(|s| json!({"ID": s.id.to_string(), "Reason": s.reason}))
            .collect::<Vec<_>>(),
        "Failed": failures.iter()
            .map(|(id, f)| json!({"ID": id, "Error": f.message}))
            .collect::<Vec<_>>(),
    });
    if report.dry_run {
        value["DryRun"] = json!(true);
    }
    value
}

/// One line per backup copied and skipped (failures go to stderr).
fn print_report(report: &CopyReport, none_failed: bool) -> CliResult {
    let verb = if report.dry_run {
        "Would copy"
    } else {
        "Copied"
    };
    let mut text = String::new();
    for c in &report.copied {
        text.push_str(&format!("{verb} {} ({} bytes)\n", c.id, c.bytes));
    }
    for s in &report.skipped {
        text.push_str(&format!("Skipped {}: {}\n", s.id, escape(&s.reason)));
    }
    if report.copied.is_empty() && report.skipped.is_empty() && none_failed {
        text.push_str("No backups to copy.\n");
    }
    out(&text)
}
