//! `backups restore`: a backup's files (and database) into a target,
//! plainly or, in place or with hooks, as a plan (see [`plan`]).

mod agent;
mod plan;
mod to_time;

use std::path::PathBuf;
use std::sync::Arc;

use backups_core::juju::JujuProfile;
use backups_core::restore::journal_path;
use backups_core::rewrite::{Rewrites, parse_rewrite_rule};
use backups_core::{
    DatabaseLoader, DiffReport, ExtractOptions, RestoreReport, RestoreRequest, RestoreSource,
};
use backups_mongo::{JujuConnection, LoadOptions, MongoLoader, OplogTimestamp};
use serde_json::json;

use crate::args::{MongoArgs, parse_duration, parse_id, parse_key_value};
use crate::context::Context;
use crate::failure::{CliResult, Failure};
use crate::host::TargetArgs;
use crate::keys::IdentityArgs;
use crate::output::{self, out};

/// Examples and notes after `backups restore --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups restore 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 --target / --dry-run
  backups restore --file ./juju-backup.tar.gz --target /tmp/restored --dry-run
  backups restore ID --target / --mongo-uri-file /etc/backups/mongo-uri --ns-exclude 'logs.*' --yes
  backups restore ID --target / --mongo-uri-file /etc/backups/mongo-uri \\
    --stop-cmd 'ssh node-1 systemctl stop jujud' --stop-cmd 'systemctl stop jujud' \\
    --start-cmd 'systemctl start jujud' --start-cmd 'ssh node-1 systemctl start jujud' --yes
  backups restore ID --target / --mongo-uri-file /etc/backups/mongo-uri \\
    --rewrite 10.77.116.68=10.0.9.9 --rewrite juju-ctl-0=juju-ctl-9 --dry-run
  backups restore ID --target / --juju --stop-cmd 'systemctl stop jujud-machine-0' \\
    --start-cmd 'systemctl start jujud-machine-0' --yes

With --juju the database is loaded as juju-restore does: logs.* and
juju.statuseshistory are left untouched (--include-status-history loads the
status history; logs.* stay out). Without --mongo-uri it connects as the
controller's machine agent (user = the tag, password = statepassword,
authSource=admin, TLS verified against agent.conf's cacert) at
--juju-mongo-address. Which agent.conf: the live one under --juju-data-dir
(default <target>/var/lib/juju), read before anything is restored, since it
holds the password and CA of the MongoDB that is running now; if there is
none, the backup's own (its files are first extracted to a scratch
directory, which is removed afterwards, to read it).

In place (--target /), with hooks or with --safety-path the restore runs as
a plan, confirmed first (--yes to skip; refused without a terminal), and
--dry-run prints its steps: verify everything -> preflight ->
safety backup of the live state (label pre-restore) -> stop -> load database
and extract files -> post-restore -> start. The safety backup is taken
without being asked: every live path the archive will replace, the
collections the load will replace (with --mongo-uri), and any --safety-path
or --safety-db on top; --no-safety-backup opts out, with a warning.
--stop-cmd and --start-cmd repeat, run in the order given (BOSH's order:
stop the data nodes, then the leader; start the leader, then the data
nodes). If anything fails after stop, the
restore is taken back (every replaced file gets its previous version back,
kept beside it until the restore settles; what it created is deleted), the
safety backup is restored in place and the services started again (exit
10). If backups itself is killed midway, `backups restore <pre-restore id>
--target / --yes` undoes it from the journal the restore kept in
$BACKUPS_STATE_DIR (default ~/.local/state/backups).

Hooks run with sh -c in their own process group, each for at most
--hook-timeout (then the group is killed and the hook has failed). Their
output is shown on stderr as '[stop] ...'; they see BACKUPS_HOOK,
BACKUPS_RESTORE_SOURCE (the id or file), BACKUPS_RESTORE_TARGET and, for the
start after a rollback, BACKUPS_ROLLED_BACK=1. With --no-safety-backup a
failure after stop leaves the services stopped (the state is half restored).

--dry-run also compares the backup with the live state it would replace and
prints the same summary as `backups diff` (--no-diff leaves it out; --json
puts it under the key diff).

The whole archive is verified (size, SHA-1, manifest SHA-256 of every entry,
every path) before anything is written. Paths with '..', absolute paths,
hard links out of the target and writes through symlinks are always refused;
device nodes and FIFOs unless --allow-devices; setuid/setgid bits are
dropped (with a warning) unless --allow-setuid. Each file is written to a
temporary name and renamed into place.

On a new machine, --rewrite OLD=NEW replaces the old machine's addresses,
host names and instance ids as whole tokens (a neighbour of a match may not
be a letter, digit, '.', '-' or '_': 10.0.0.5 leaves 10.0.0.50 alone and
turns 10.0.0.5:17070 into NEW:17070; the longest OLD wins where several
match). It applies to every restored UTF-8 text file of at most 4 MiB
(--rewrite-path GLOB to choose; the path is relative to the target, '*'
matches '/' too) and to the string values of the loaded documents
(--rewrite-ns GLOB on db.collection as in the dump; system collections,
upserted users and roles and the oplog replay are never rewritten).
Rewritten files take the same temporary name, rename and journal as every
file, so a rollback puts them back; --dry-run lists each file and
collection with its number of replacements.";

/// `backups restore`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup id to restore (with --to-time: the base backup to start from).
    #[arg(required_unless_present_any = ["file", "to_time"], conflicts_with = "file")]
    pub id: Option<String>,
    /// Restore from a local archive file instead of the store.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Directory the backed-up files are restored under ('/' for in place).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub keys: IdentityArgs,
    /// Refuse a backup that is not encrypted.
    #[arg(long)]
    pub require_encryption: bool,
    /// Leave these namespaces untouched (repeatable glob on db.collection;
    /// Juju leaves 'logs.*' alone).
    #[arg(long = "ns-exclude", value_name = "GLOB")]
    pub ns_exclude: Vec<String>,
    /// Load database FROM of the backup into database TO (repeatable).
    #[arg(long = "db-rename", value_name = "FROM=TO", value_parser = parse_key_value)]
    pub db_rename: Vec<(String, String)>,
    /// Replace OLD with NEW as whole tokens in the restored text files and
    /// the loaded documents' string values (repeatable): the old machine's
    /// addresses, host names, instance ids.
    #[arg(long = "rewrite", value_name = "OLD=NEW", value_parser = parse_rewrite_rule)]
    pub rewrite: Vec<(String, String)>,
    /// Rewrite only the restored files matching GLOB (repeatable; relative
    /// to the target, e.g. 'var/lib/juju/agents/*/agent.conf'; default
    /// every UTF-8 text file of at most 4 MiB).
    #[arg(long = "rewrite-path", value_name = "GLOB", requires = "rewrite")]
    pub rewrite_paths: Vec<String>,
    /// Rewrite only the documents of the namespaces matching GLOB
    /// (repeatable; db.collection as in the dump; default every loaded one).
    #[arg(long = "rewrite-ns", value_name = "GLOB", requires = "rewrite")]
    pub rewrite_ns: Vec<String>,
    /// Print the report as JSON (a dry run's plan under "Plan", its
    /// comparison with the live state under "Diff").
    #[arg(long)]
    pub json: bool,
    /// Restore admin.system.users and admin.system.roles from the dump
    /// (upserted; mongorestore's --restoreDbUsersAndRoles). Without it they
    /// are left out, with a warning.
    #[arg(long)]
    pub restore_users_and_roles: bool,
    /// Convert legacy index keys ({a: true}, {b: ""}, {c: 0}) as
    /// mongorestore --convertLegacyIndexes does; without it such an index
    /// is refused.
    #[arg(long)]
    pub convert_legacy_indexes: bool,
    /// Replay only the oplog entries before this timestamp (mongorestore's
    /// --oplogLimit).
    #[arg(long, value_name = "SECONDS[:ORDINAL]")]
    pub oplog_limit: Option<OplogTimestamp>,
    /// Restore the database to the end of this second (RFC 3339 or
    /// 'YYYY-MM-DD HH:MM:SS' UTC): the newest base backup at or before it,
    /// then the oplog slices `backups pitr run` shipped (see `pitr --help`).
    #[arg(long, value_name = "TIME", value_parser = to_time::parse_time, conflicts_with_all = ["file", "oplog_limit"])]
    pub to_time: Option<u32>,
    /// Load onto a replica set while more than one member is alive (on its
    /// primary, majority write concern). Without it such a restore is
    /// refused: restore only when every controller is lost, onto a replica
    /// set of one, then re-add members (juju enable-ha). Members that are
    /// not reachable or not PRIMARY/SECONDARY are refused either way.
    #[arg(long)]
    pub force_ha: bool,
    /// Collections loaded at the same time (mongorestore's
    /// --numParallelCollections).
    #[arg(long, default_value_t = backups_mongo::LOAD_PARALLEL_COLLECTIONS, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub parallel_collections: usize,
    /// Batches of one collection inserted at the same time (mongorestore's
    /// --numInsertionWorkersPerCollection).
    #[arg(long, default_value_t = backups_mongo::LOAD_INSERTION_WORKERS, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub insertion_workers: usize,
    /// Command that stops the controller's services before the restore
    /// (repeatable, run in the order given: the data nodes, then the
    /// leader). If one fails, what was stopped is started again.
    #[arg(long, value_name = "CMD")]
    pub stop_cmd: Vec<String>,
    /// Command that starts them again afterwards, also after a rollback
    /// (repeatable, in the order given: the leader, then the data nodes).
    /// Give one per --stop-cmd, in reverse order, and a stop failing
    /// part-way starts exactly what it stopped; else it runs them all.
    #[arg(long, value_name = "CMD")]
    pub start_cmd: Vec<String>,
    /// Command run after the restore, before start (rewrite addresses, config).
    #[arg(long, value_name = "CMD")]
    pub post_restore_cmd: Option<String>,
    /// How long each hook may run before its process group is killed and
    /// the hook counts as failed: 30s, 10min, 1h.
    #[arg(long, default_value = "10min", value_parser = parse_duration, value_name = "DURATION")]
    pub hook_timeout: std::time::Duration,
    /// More live files and directories to save in the `pre-restore`
    /// safety backup (repeatable). Without it the safety backup still
    /// holds every live path the restore will replace and, with
    /// --mongo-uri (or --juju), the collections the load will replace.
    #[arg(long = "safety-path", value_name = "PATH")]
    pub safety_paths: Vec<PathBuf>,
    /// Whole databases to save in the safety backup too (repeatable; by
    /// default only the collections the load replaces are saved).
    #[arg(long = "safety-db", value_name = "DB")]
    pub safety_dbs: Vec<String>,
    /// Restore without a safety backup: a failure cannot be rolled back
    /// (and leaves the services stopped).
    #[arg(long, conflicts_with_all = ["safety_paths", "safety_dbs"])]
    pub no_safety_backup: bool,
    /// Skip the free-space preflight check (the target's filesystem must
    /// hold the files plus the larger of 20% and min(5 GiB, 10% of the disk)).
    #[arg(long)]
    pub ignore_free_space: bool,
    #[command(flatten)]
    pub target_identity: TargetArgs,
    /// Restore a backup taken on another controller or model.
    #[arg(long)]
    pub allow_other_controller: bool,
    /// Restore a backup from an older version than the target's.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Refuse (changing nothing) while this address of the old controller
    /// accepts a TCP connection, e.g. its API 10.0.0.5:17070 and its MongoDB
    /// 10.0.0.5:37017 (repeatable). Makes the restore a plan.
    #[arg(long, value_name = "HOST:PORT")]
    pub ensure_down: Vec<String>,
    /// Keep setuid/setgid bits of restored files (dropped, with a warning,
    /// otherwise).
    #[arg(long)]
    pub allow_setuid: bool,
    /// Create the device nodes and FIFOs the backup holds (device nodes
    /// need root). Without it a backup holding any is refused before
    /// anything is written.
    #[arg(long)]
    pub allow_devices: bool,
    /// Restore a Juju controller's backup as juju-restore does (see below).
    #[arg(long, help_heading = "Juju")]
    pub juju: bool,
    /// The live controller's data dir, whose agent.conf gives the database
    /// connection (default: <target>/var/lib/juju).
    #[arg(long, value_name = "DIR", requires = "juju", help_heading = "Juju")]
    pub juju_data_dir: Option<PathBuf>,
    /// Where the controller's MongoDB listens.
    #[arg(long, value_name = "HOST:PORT", default_value = JujuProfile::DEFAULT_MONGO_ADDRESS, help_heading = "Juju")]
    pub juju_mongo_address: String,
    /// Also load juju.statuseshistory (logs.* stay out).
    #[arg(long, requires = "juju", help_heading = "Juju")]
    pub include_status_history: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Verify the archive and print what would be restored and what it
    /// would change (as `backups diff` does); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run, leave out the comparison with the live files (and
    /// database).
    #[arg(long, requires = "dry_run")]
    pub no_diff: bool,
    /// Print each restored path.
    #[arg(long, short)]
    pub verbose: bool,
}

impl Args {
    /// The live controller's data dir (--juju): --juju-data-dir, else
    /// `<target>/var/lib/juju`.
    fn juju_data_dir(&self) -> PathBuf {
        self.juju_data_dir
            .clone()
            .unwrap_or_else(|| self.target.join("var/lib/juju"))
    }

    /// Whether the restore runs with hooks: a stop/start/post-restore
    /// command, a safety path, a named target or an old controller that
    /// must be down (then it is confirmed first and always takes a safety
    /// backup). Whether any other restore takes one is the library's rule
    /// (in place, or replacing live files: see `backups_core::Safety`).
    fn as_plan(&self) -> bool {
        !self.stop_cmd.is_empty()
            || self.target_identity.names_target()
            || !self.start_cmd.is_empty()
            || self.post_restore_cmd.is_some()
            || !self.safety_paths.is_empty()
            || !self.ensure_down.is_empty()
    }
}

/// How the database is loaded, from the flags.
fn load_options(
    args: &Args,
    ns_exclude: Vec<String>,
    pit: Option<&to_time::PointInTime>,
) -> LoadOptions {
    LoadOptions {
        ns_exclude,
        db_rename: args.db_rename.clone(),
        restore_users_and_roles: args.restore_users_and_roles,
        convert_legacy_indexes: args.convert_legacy_indexes,
        oplog_limit: args.oplog_limit,
        force_ha: args.force_ha,
        parallel_collections: args.parallel_collections,
        insertion_workers: args.insertion_workers,
        extra_oplog: pit.map(|p| p.oplog.path().to_path_buf()),
    }
}

/// Restores a backup (by id or from a file) and prints what was restored.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let pit = to_time::for_args(ctx, &args).await?;
    let source = match (&pit, args.id.clone(), args.file.clone()) {
        (Some(p), _, _) => RestoreSource::Id(p.base.clone()),
        (None, Some(id), _) => RestoreSource::Id(parse_id(&id)?),
        (None, None, Some(file)) => RestoreSource::File(file),
        (None, None, None) => return Err(Failure::usage("give a backup id or --file")),
    };
    let mut uri = args.mongo.uri()?;
    let mut ns_exclude = args.ns_exclude.clone();
    // Kept until the restore is done: its CA file is the connection's.
    let mut _juju_connection = None;
    if args.juju {
        ns_exclude.extend(JujuProfile::restore_ns_excludes(
            args.include_status_history,
        ));
        if uri.is_none() {
            let agent = agent::juju_agent(ctx, &args, &source).await?;
            let connection = JujuConnection::new(&agent, &args.juju_mongo_address)?;
            uri = Some(connection.uri().to_string());
            _juju_connection = Some(connection);
        }
    }
    let database: Option<Arc<dyn DatabaseLoader>> = match &uri {
        Some(uri) => Some(Arc::new(
            MongoLoader::connect(uri, load_options(&args, ns_exclude, pit.as_ref())).await?,
        )),
        None => None,
    };
    let options = ExtractOptions::default()
        .with_setuid(args.allow_setuid)
        .with_devices(args.allow_devices);
    let journals = journal_dir();
    let undo_journal = match (&source, &journals) {
        (RestoreSource::Id(id), Some(dir)) => Some(journal_path(dir, id)),
        _ => None,
    };
    let mut request = RestoreRequest::new(source.clone(), args.target.clone())
        .with_dry_run(args.dry_run)
        .with_options(options)
        .with_identities(args.keys.identities()?)
        .with_require_encryption(args.require_encryption);
    if let Some(database) = database.clone() {
        request = request.with_database(database);
    }
    if let Some(journal) = undo_journal {
        request = request.with_undo_journal(journal);
    }
    if !args.rewrite.is_empty() {
        request = request.with_rewrites(
            Rewrites::new(args.rewrite.clone())?
                .with_paths(&args.rewrite_paths)?
                .with_namespaces(&args.rewrite_ns, &args.ns_exclude)?,
        );
    }
    if args.dry_run {
        ctx.warn_pending_recoveries();
    }
    let (report, steps) =
        plan::run(ctx, &args, uri.as_deref(), request, database, journals).await?;
    let collections = report.dump_collections;
    if report.dry_run && collections > 0 && uri.is_none() {
        ctx.say(&format!(
            "warning: the backup holds a database dump ({collections} collections) that this restore would not load: give --mongo-uri to load it"
        ));
    }
    let diff = if report.dry_run && !args.no_diff {
        let comparer =
            super::diff::comparer(&args.mongo, &args.ns_exclude, &args.db_rename).await?;
        let diff =
            super::diff::compare(ctx, source, args.target.clone(), &args.keys, comparer).await?;
        for w in &diff.warnings {
            ctx.say(&format!("warning: {w}"));
        }
        Some(diff)
    } else {
        None
    };
    if args.json {
        return out(&format!(
            "{:#}\n",
            report_json(&report, &args.rewrite, steps, diff.as_ref())
        ));
    }
    let loads = uri.is_some();
    print_report(&report, options, &args.rewrite, (loads, args.verbose))?;
    match &diff {
        Some(diff) => out(&super::diff::summary(diff, args.verbose)),
        None => Ok(()),
    }
}

/// The report as JSON for --json: a dry run's plan under `Plan` and its
/// comparison with the live state under `Diff`.
pub fn report_json(
    report: &RestoreReport,
    rules: &[(String, String)],
    steps: Option<Vec<String>>,
    diff: Option<&DiffReport>,
) -> serde_json::Value {
    let s = &report.stats;
    let database = report.database.as_ref().map(|db| {
        json!({
            "Collections": db.collections, "Indexes": db.indexes,
            "OplogEntries": db.oplog_entries, "Skipped": db.skipped,
            "Warnings": db.warnings,
        })
    });
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|(old, new)| json!({"Old": old, "New": new}))
        .collect();
    let mut value = json!({
        "ID": report.metadata.id.as_ref().map(ToString::to_string),
        "Target": report.target.display().to_string(),
        "DryRun": report.dry_run,
        "ManifestVerified": report.manifest_verified,
        "Files": s.files, "Directories": s.directories, "Symlinks": s.symlinks,
        "HardLinks": s.hard_links, "Devices": s.devices, "Setuid": s.setuid,
        "Bytes": s.bytes, "Warnings": s.warnings,
        "Database": database,
        "DumpCollections": report.dump_collections,
        "Rewrites": {
            "Rules": rules, "Total": report.rewrites.total(),
            "Files": report.rewrites.files, "Collections": report.rewrites.collections,
        },
    });
    if let Some(steps) = steps {
        value["Plan"] = steps.into();
    }
    if let Some(diff) = diff {
        value["Diff"] = super::diff::json(diff);
    }
    value
}

/// Where restore journals go: `$BACKUPS_STATE_DIR`, else the user's state
/// directory (`~/.local/state/backups`).
fn journal_dir() -> Option<PathBuf> {
    crate::context::state_dir()
}

/// Prints what was (or, with --dry-run, would be) restored.
fn print_report(
    report: &RestoreReport,
    options: ExtractOptions,
    rules: &[(String, String)],
    (loads, verbose): (bool, bool),
) -> CliResult {
    let s = &report.stats;
    let from = report
        .metadata
        .id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "archive".into());
    let verb = if report.dry_run {
        "Would restore"
    } else {
        "Restored"
    };
    out(&format!(
        "{verb} {} files, {} directories, {} symlinks, {} hard links ({}) from {from} into {}\n",
        s.files,
        s.directories,
        s.symlinks,
        s.hard_links,
        output::human_size(s.bytes),
        report.target.display()
    ))?;
    if s.devices > 0 || s.setuid > 0 {
        out(&format!(
            "Special entries: {} device nodes or FIFOs, {} with setuid/setgid bits{}\n",
            s.devices,
            s.setuid,
            if report.dry_run {
                ""
            } else if options.allow_setuid {
                " (kept)"
            } else {
                " (bits dropped)"
            }
        ))?;
    }
    if !rules.is_empty() {
        out(&rewrites_text(report, rules, loads, verbose))?;
    }
    if let Some(db) = &report.database {
        let docs: u64 = db.collections.values().sum();
        out(&format!(
            "Loaded {docs} documents into {} collections, built {} indexes, replayed {} oplog entries\n",
            db.collections.len(),
            db.indexes,
            db.oplog_entries
        ))?;
        for w in &db.warnings {
            stderr_line!("warning: {w}");
        }
    }
    if report.dry_run {
        out(&format!(
            "Archive verified: size and SHA-1{}, every path checked. Nothing was changed.\n",
            if report.manifest_verified {
                ", SHA-256 of every entry"
            } else {
                " (no manifest: a Juju archive)"
            }
        ))?;
    }
    Ok(())
}

/// `OLD -> NEW, ...`.
fn rules_text(rules: &[(String, String)]) -> String {
    rules
        .iter()
        .map(|(old, new)| format!("{old} -> {new}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The replacements --rewrite made (would make): a total, then one line
/// per file and per collection (`loads`: the dump is loaded).
fn rewrites_text(
    report: &RestoreReport,
    rules: &[(String, String)],
    loads: bool,
    verbose: bool,
) -> String {
    let r = &report.rewrites;
    let verb = if report.dry_run {
        "Would replace"
    } else {
        "Replaced"
    };
    let total = r.total();
    if total == 0 {
        return format!(
            "{verb} no tokens ({}): no restored file{} holds OLD as a whole token\n",
            rules_text(rules),
            if loads { " or loaded document" } else { "" }
        );
    }
    let mut text = format!(
        "{verb} {total} whole tokens ({}) in {} files and {} collections:\n",
        rules_text(rules),
        r.files.len(),
        r.collections.len()
    );
    // Like diff: the first files only, unless --verbose.
    let shown = if verbose {
        r.files.len()
    } else {
        super::diff::SHOWN
    };
    for (path, n) in r.files.iter().take(shown) {
        text.push_str(&format!("  {n:>6}  file {}\n", crate::output::escape(path)));
    }
    if r.files.len() > shown {
        text.push_str(&format!(
            "    ... and {} more files (--verbose lists them all)\n",
            r.files.len() - shown
        ));
    }
    for (ns, n) in &r.collections {
        text.push_str(&format!("  {n:>6}  collection {ns}\n"));
    }
    text
}
