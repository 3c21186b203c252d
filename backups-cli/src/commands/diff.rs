//! `backups diff`: what a restore of a backup would change — files only in
//! the backup, only live, or different; per collection, documents and
//! indexes — without changing anything. `restore --dry-run` prints the
//! same summary ([`summary`]).

use std::path::PathBuf;
use std::sync::Arc;

use backups_core::diff::{FileDifference, FileState};
use backups_core::{DatabaseComparer, DiffReport, DiffRequest, RestoreSource};
use backups_mongo::{CompareOptions, MongoComparer};

use crate::args::{MongoArgs, parse_id, parse_key_value};
use crate::context::Context;
use crate::failure::{CliResult, DIFFERENT, Failure};
use crate::keys::IdentityArgs;
use crate::output::out;

/// Examples and notes after `backups diff --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups diff 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 --target /
  backups diff ID --target / --mongo-uri-file /etc/backups/mongo-uri --json
  backups diff --file ./juju-backup.tar.gz --target /tmp/restored --verbose

Compares a backup with what a restore into --target would replace, changing
nothing. Files: each path of the backup against the same path under the
target (type, permission bits, size, then the SHA-256 of files of equal
size, symlink targets). Live paths the backup lacks are listed from the
directories the backup covers, one level deep (a live directory once, with
a trailing /), never from their parents: a diff against / does not walk
the disk. With a MongoDB URI, each dumped collection against the live one:
documents matched by _id (different = same _id, other bytes), indexes by
name (key and options); memory stays bounded whatever the size (the _ids
are sorted in temp files). A live collection of a dumped database that the
backup lacks is listed with everything in it only live (a restore leaves
it). The oplog captured during the dump is not applied; views and system.*
collections are not compared. The archive is
read once and its digests checked; --identity for an encrypted backup.

Exit status 0 whether or not anything differs (like git diff); with
--exit-code, 14 when something differs.";

/// Paths shown per group without --verbose.
pub const SHOWN: usize = 10;

/// `backups diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup id to compare.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub id: Option<String>,
    /// Compare a local archive file instead of a stored backup.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The directory a restore would write under ('/' for in place).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub keys: IdentityArgs,
    /// Leave these namespaces out (repeatable glob on db.collection), as a
    /// restore with the same --ns-exclude would.
    #[arg(long = "ns-exclude", value_name = "GLOB")]
    pub ns_exclude: Vec<String>,
    /// Compare database FROM of the backup with live database TO (repeatable).
    #[arg(long = "db-rename", value_name = "FROM=TO", value_parser = parse_key_value)]
    pub db_rename: Vec<(String, String)>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// List every path (by default the first 10 of each group).
    #[arg(long, short)]
    pub verbose: bool,
    /// Exit with status 14 when anything differs.
    #[arg(long)]
    pub exit_code: bool,
}

/// Compares and prints the report.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let source = match (&args.id, &args.file) {
        (Some(id), _) => RestoreSource::Id(parse_id(id)?),
        (None, Some(file)) => RestoreSource::File(file.clone()),
        (None, None) => return Err(Failure::usage("give a backup id or --file")),
    };
    let comparer = comparer(&args.mongo, &args.ns_exclude, &args.db_rename).await?;
    let report = compare(ctx, source, args.target.clone(), &args.keys, comparer).await?;
    for w in &report.warnings {
        ctx.say(&format!("warning: {w}"));
    }
    if args.json {
        out(&format!("{}\n", json(&report)))?;
    } else {
        out(&summary(&report, args.verbose))?;
    }
    if args.exit_code && report.has_differences() {
        return Err(Failure {
            message: "the backup and the live state differ".into(),
            code: DIFFERENT,
        });
    }
    Ok(())
}

/// The live database to compare with, when a MongoDB URI is given.
pub async fn comparer(
    mongo: &MongoArgs,
    ns_exclude: &[String],
    db_rename: &[(String, String)],
) -> Result<Option<Arc<dyn DatabaseComparer>>, Failure> {
    let Some(uri) = mongo.uri()? else {
        return Ok(None);
    };
    let options = CompareOptions {
        ns_exclude: ns_exclude.to_vec(),
        db_rename: db_rename.to_vec(),
    };
    Ok(Some(Arc::new(MongoComparer::connect(&uri, options).await?)))
}

/// Runs the comparison.
pub async fn compare(
    ctx: &Context,
    source: RestoreSource,
    target: PathBuf,
    keys: &IdentityArgs,
    database: Option<Arc<dyn DatabaseComparer>>,
) -> Result<DiffReport, Failure> {
    let mut request = DiffRequest::new(source, target).with_identities(keys.identities()?);
    if let Some(database) = database {
        request = request.with_database(database);
    }
    Ok(ctx.backups.diff(request, ctx.progress()).await?)
}

/// The report as JSON.
pub fn json(report: &DiffReport) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or_default()
}

/// The report for people: counts, then the first paths of each group
/// (all of them when `verbose`), then the collections.
pub fn summary(report: &DiffReport, verbose: bool) -> String {
    let f = &report.files;
    let c = &f.counts;
    let mut text = format!(
        "Files under {}: {} only in the backup, {} only live, {} different, {} the same\n",
        report.target.display(),
        c.only_in_backup,
        c.only_live,
        c.different,
        c.same
    );
    let different: Vec<String> = f.different.iter().map(describe).collect();
    for (title, paths) in [
        (
            "only in the backup (a restore creates them)",
            &f.only_in_backup,
        ),
        ("only live (a restore leaves them)", &f.only_live),
        ("different (a restore replaces them)", &different),
    ] {
        if paths.is_empty() {
            continue;
        }
        text.push_str(&format!("  {title}:\n"));
        let limit = if verbose { paths.len() } else { SHOWN };
        for p in paths.iter().take(limit) {
            text.push_str(&format!("    {p}\n"));
        }
        if paths.len() > limit {
            text.push_str(&format!(
                "    ... and {} more (--verbose lists them all)\n",
                paths.len() - limit
            ));
        }
    }
    if !report.database_compared {
        if report.dump_collections > 0 {
            text.push_str(&format!(
                "Database: not compared ({} collections in the dump; give --mongo-uri to compare them)\n",
                report.dump_collections
            ));
        }
    } else if report.collections.is_empty() {
        text.push_str("Database: the backup's dump holds no collection to compare\n");
    } else {
        text.push_str("Database:\n");
        for coll in &report.collections {
            let docs = format!(
                "{} documents in the backup, {} live",
                coll.backup_documents, coll.live_documents
            );
            if coll.is_same() {
                text.push_str(&format!("  {}: the same ({docs})\n", coll.ns));
                continue;
            }
            text.push_str(&format!(
                "  {}: {docs}; {} only in the backup, {} only live, {} different\n",
                coll.ns, coll.only_in_backup, coll.only_live, coll.different
            ));
            let mut indexes = Vec::new();
            for (what, names) in [
                ("only in the backup", &coll.indexes_only_in_backup),
                ("only live", &coll.indexes_only_live),
                ("different", &coll.indexes_different),
            ] {
                if !names.is_empty() {
                    indexes.push(format!("{what}: {}", names.join(", ")));
                }
            }
            if !indexes.is_empty() {
                text.push_str(&format!("    indexes {}\n", indexes.join("; ")));
            }
        }
    }
    if !report.has_differences() {
        text.push_str("No differences.\n");
    }
    text
}

/// `path: what differs` with both sides' values.
fn describe(d: &FileDifference) -> String {
    let both = |what: &str, b: &str, l: &str| format!("{what} {b} in the backup, {l} live");
    let reasons: Vec<String> = d
        .reasons
        .iter()
        .map(|r| match *r {
            "type" => both("type", &kind(&d.backup), &kind(&d.live)),
            "size" => both(
                "size",
                &d.backup.size.unwrap_or_default().to_string(),
                &d.live.size.unwrap_or_default().to_string(),
            ),
            "mode" => both(
                "mode",
                d.backup.mode.as_deref().unwrap_or("-"),
                d.live.mode.as_deref().unwrap_or("-"),
            ),
            "target" => both(
                "symlink target",
                d.backup.target.as_deref().unwrap_or("-"),
                d.live.target.as_deref().unwrap_or("-"),
            ),
            "sha256" => "contents (SHA-256)".to_string(),
            other => other.to_string(),
        })
        .collect();
    format!("{}: {}", d.path, reasons.join("; "))
}

fn kind(state: &FileState) -> String {
    serde_json::to_value(state.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
