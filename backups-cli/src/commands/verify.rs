//! `backups verify`: check backups at one of three levels and record the
//! outcome in each one's sidecar.

use std::path::PathBuf;

use backups_core::pitr;
use backups_core::verify::DrillDatabase;
use backups_core::{BackupId, Backups, DatabaseLoader, Metadata, VerifyLevel, VerifyRequest};
use backups_mongo::{LoadOptions, MongoLoader};

use crate::args::{MongoArgs, parse_id};
use crate::context::Context;
use crate::failure::{CliResult, Failure, VERIFICATION};
use crate::keys::IdentityArgs;
use crate::output::{format_verification, out};

/// Examples and notes after `backups verify --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups verify --latest                      # stored bytes against the sidecar
  backups verify --all --read-data             # every entry of every backup
  backups verify ID --drill --mongo-uri-file /etc/backups/scratch-uri

Levels: by default the stored object is checked against its sidecar (size,
SHA-1, SHA-256; nothing decompressed, no key needed). --read-data reads every
entry (manifest SHA-256, paths, BSON framing; --identity for encrypted
backups). --drill restores into a scratch directory (--scratch-dir) and, with
a MongoDB URI, into scratch databases named backups_drill_<db>_<random>,
compares file count, bytes and per-collection document counts with the
sidecar, and removes the scratch data whatever happens. The outcome is
recorded in the sidecar (list and show display it). --slices checks the
oplog slices too (alone: only them): each one's size and SHA-256 against its
record (--read-data: decrypted, decompressed, its entries counted and in its
range) and the chain's continuity (every gap is a failure); with --json it
prints {\"Backups\": [...], \"ReplicaSets\": [{\"ReplicaSet\", \"Slices\", \"Entries\",
\"Ok\", \"Problems\": [{\"Object\", \"Problem\"}]}]}. Exit status 5 when any backup
or replica set fails.";

/// `backups verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The backups to verify.
    #[arg(required_unless_present_any = ["all", "latest", "slices"])]
    pub ids: Vec<String>,
    /// Verify every backup in the store.
    #[arg(long, conflicts_with_all = ["ids", "latest"])]
    pub all: bool,
    /// Verify the newest backup.
    #[arg(long, conflicts_with = "ids")]
    pub latest: bool,
    /// Read every entry (manifest digests, paths, BSON framing).
    #[arg(long, conflicts_with = "drill")]
    pub read_data: bool,
    /// Check the oplog slices (`backups pitr run`) too: size and SHA-256
    /// (with --read-data: decrypted, decompressed, entries counted) and
    /// continuity. Alone, only the slices are checked.
    #[arg(long)]
    pub slices: bool,
    /// Restore into scratch space and compare with what was recorded.
    #[arg(long)]
    pub drill: bool,
    /// Where the drill makes its scratch directory (default: the temp directory).
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub keys: IdentityArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Verifies each backup; prints one line (or JSON object) a backup.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let ids = chosen(ctx, &args).await?;
    let slices_only = args.slices && ids.is_empty() && !args.all && !args.latest;
    if args.slices {
        return with_slices(ctx, &args, ids, slices_only).await;
    }
    if ids.is_empty() {
        // --latest or --all on an empty store: say so, and succeed.
        if args.json {
            ctx.say("No backups to verify.");
            return out("[]\n");
        }
        return out("No backups to verify.\n");
    }
    let (results, failed) = verify_backups(ctx, &args, ids).await?;
    if args.json {
        out(&format!("{}\n", serde_json::Value::Array(results)))?;
    }
    if failed > 0 {
        return Err(Failure {
            message: format!("{failed} backups failed verification (see above)"),
            code: VERIFICATION,
        });
    }
    Ok(())
}

/// Verifies each backup, printing a line each (without --json); returns
/// the JSON objects and how many failed.
async fn verify_backups(
    ctx: &Context,
    args: &Args,
    ids: Vec<BackupId>,
) -> Result<(Vec<serde_json::Value>, usize), Failure> {
    let level = if args.drill {
        VerifyLevel::Drill
    } else if args.read_data {
        VerifyLevel::ReadData
    } else {
        VerifyLevel::Stored
    };
    let mut failed = 0;
    let mut results = Vec::new();
    for id in ids {
        let mut request = VerifyRequest::new(level).with_identities(args.keys.identities()?);
        if let Some(dir) = &args.scratch_dir {
            request = request.with_scratch_dir(dir);
        }
        if args.drill
            && let Some(uri) = args.mongo.uri()?
        {
            let meta = ctx.backups.metadata(&id).await?;
            request = request.with_database(scratch_databases(&uri, &meta).await?);
        }
        let record = ctx.backups.verify(&id, &request, ctx.progress()).await?;
        if !record.ok {
            failed += 1;
        }
        if args.json {
            results.push(serde_json::json!({
                "ID": id.to_string(),
                "Level": record.level,
                "Ok": record.ok,
                "Detail": record.detail,
            }));
        } else {
            out(&format!("{id}: {}\n", format_verification(&record)))?;
        }
    }
    Ok((results, failed))
}

/// `--slices`: the backups (unless only the slices are asked for), then
/// each replica set's slices; exit 5 when any of either fails. With
/// --json: `{"Backups": [...], "ReplicaSets": [...]}`.
async fn with_slices(ctx: &Context, args: &Args, ids: Vec<BackupId>, only: bool) -> CliResult {
    let (backups, backups_failed) = match only {
        true => (Vec::new(), 0),
        false => verify_backups(ctx, args, ids).await?,
    };
    let chains = pitr::catalog(ctx.backups.as_ref()).await?;
    let bases = ctx.list().await?;
    let identities = args.keys.identities()?;
    let mut failed = 0;
    let mut results = Vec::new();
    for chain in &chains {
        let ends: Vec<_> = bases
            .iter()
            .filter(|b| b.replica_set.as_deref().is_none_or(|rs| rs == chain.name))
            .filter_map(pitr::base_end)
            .collect();
        let check = pitr::verify_slices(
            ctx.backups.as_ref(),
            chain,
            &ends,
            args.read_data || args.drill,
            &identities,
        )
        .await;
        let ok = check.problems.is_empty();
        failed += usize::from(!ok);
        let problems: Vec<_> = check
            .problems
            .iter()
            .map(|p| serde_json::json!({"Object": p.object, "Problem": p.problem}))
            .collect();
        if args.json {
            results.push(serde_json::json!({
                "ReplicaSet": check.replica_set,
                "Slices": check.slices,
                "Entries": check.entries,
                "Ok": ok,
                "Problems": problems,
            }));
        } else {
            let mut text = format!(
                "oplog slices of {}: {} ({} slices{})\n",
                check.replica_set,
                if ok { "ok" } else { "FAILED" },
                check.slices,
                if args.read_data || args.drill {
                    format!(", {} entries", check.entries)
                } else {
                    String::new()
                }
            );
            for p in &check.problems {
                text.push_str(&format!(
                    "  {}: {}\n",
                    p.object,
                    crate::output::escape_lines(&p.problem)
                ));
            }
            out(&text)?;
        }
    }
    if args.json {
        out(&format!(
            "{}\n",
            serde_json::json!({"Backups": backups, "ReplicaSets": results})
        ))?;
    } else if chains.is_empty() {
        out("No oplog slices to verify.\n")?;
    }
    if failed + backups_failed > 0 {
        return Err(Failure {
            message: format!(
                "{backups_failed} backups and the oplog slices of {failed} replica sets failed verification (see above)"
            ),
            code: VERIFICATION,
        });
    }
    Ok(())
}

/// The ids named, or every one (--all), or the newest (--latest).
async fn chosen(ctx: &Context, args: &Args) -> Result<Vec<BackupId>, Failure> {
    if !(args.all || args.latest) {
        return args.ids.iter().map(|s| parse_id(s)).collect();
    }
    let list = ctx.list().await?;
    let ids = list.into_iter().filter_map(|m| m.id);
    Ok(if args.latest {
        ids.take(1).collect()
    } else {
        ids.collect()
    })
}

/// A loader into fresh scratch databases, one per database of the dump
/// (named by the library: [`backups_core::verify::drill_renames`]).
pub async fn scratch_databases(uri: &str, meta: &Metadata) -> Result<DrillDatabase, Failure> {
    let renames = backups_core::verify::drill_renames(meta);
    let loader = scratch_loader(uri, &renames).await?;
    Ok(DrillDatabase { loader, renames })
}

/// A loader that loads each dump database into its scratch database.
pub async fn scratch_loader(
    uri: &str,
    renames: &[(String, String)],
) -> Result<std::sync::Arc<dyn DatabaseLoader>, Failure> {
    let loader = MongoLoader::connect(
        uri,
        LoadOptions {
            db_rename: renames.to_vec(),
            ..Default::default()
        },
    )
    .await?;
    Ok(std::sync::Arc::new(loader))
}
