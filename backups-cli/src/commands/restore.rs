//! `backups restore`: a backup's files (and database) into a target,
//! plainly or, in place or with hooks, as a plan (see [`plan`]).

mod plan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backups_core::{
    Backups, DatabaseLoader, ExtractOptions, RestoreReport, RestoreRequest, RestoreSource,
    journal_path,
};
use backups_mongo::{LoadOptions, MongoLoader, OplogTimestamp};

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
    --safety-path /var/lib/juju --stop-cmd 'systemctl stop jujud' \\
    --start-cmd 'systemctl start jujud' --yes

In place (--target /), with hooks or with --safety-path the restore runs as
a plan, confirmed first (--yes to skip; refused without a terminal), and
--dry-run prints its steps: verify everything -> preflight ->
safety backup of the live state (label pre-restore) -> stop -> load database
and extract files -> post-restore -> start. If anything fails after stop, the
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

The whole archive is verified (size, SHA-1, manifest SHA-256 of every entry,
every path) before anything is written. Paths with '..', absolute paths,
hard links out of the target and writes through symlinks are always refused;
device nodes and FIFOs unless --allow-devices; setuid/setgid bits are
dropped (with a warning) unless --allow-setuid. Each file is written to a
temporary name and renamed into place.";

/// `backups restore`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup id to restore.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
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
    /// Collections loaded at the same time (mongorestore's
    /// --numParallelCollections).
    #[arg(long, default_value_t = backups_mongo::LOAD_PARALLEL_COLLECTIONS, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub parallel_collections: usize,
    /// Batches of one collection inserted at the same time (mongorestore's
    /// --numInsertionWorkersPerCollection).
    #[arg(long, default_value_t = backups_mongo::LOAD_INSERTION_WORKERS, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub insertion_workers: usize,
    /// Command that stops the controller's services before the restore.
    #[arg(long, value_name = "CMD")]
    pub stop_cmd: Option<String>,
    /// Command that starts them again afterwards (also after a rollback).
    #[arg(long, value_name = "CMD")]
    pub start_cmd: Option<String>,
    /// Command run after the restore, before start (rewrite addresses, config).
    #[arg(long, value_name = "CMD")]
    pub post_restore_cmd: Option<String>,
    /// How long each hook may run before its process group is killed and
    /// the hook counts as failed: 30s, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub hook_timeout: std::time::Duration,
    /// Live files and directories to save in a `pre-restore` safety backup
    /// first (repeatable); with --mongo-uri the database is saved too. Any
    /// failure after the services were stopped restores it in place.
    #[arg(long = "safety-path", value_name = "PATH")]
    pub safety_paths: Vec<PathBuf>,
    /// Databases to save in the safety backup (repeatable; default: all but
    /// admin, local, config — name the ones this restore replaces).
    #[arg(long = "safety-db", value_name = "DB")]
    pub safety_dbs: Vec<String>,
    /// Restore without a safety backup (no rollback possible).
    #[arg(long, conflicts_with = "safety_paths")]
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
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Verify the archive and print what would be restored; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print each restored path.
    #[arg(long, short)]
    pub verbose: bool,
}

impl Args {
    /// Whether the restore runs as a plan: in place (`--target /`, always
    /// checked in full and confirmed first), with a hook, a safety path or
    /// a named target.
    fn as_plan(&self) -> bool {
        let in_place = std::fs::canonicalize(&self.target).is_ok_and(|p| p == Path::new("/"));
        in_place
            || self.stop_cmd.is_some()
            || self.target_identity.names_target()
            || self.start_cmd.is_some()
            || self.post_restore_cmd.is_some()
            || !self.safety_paths.is_empty()
            || !self.ensure_down.is_empty()
    }
}

/// Restores a backup (by id or from a file) and prints what was restored.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let source = match (args.id.clone(), args.file.clone()) {
        (Some(id), _) => RestoreSource::Id(parse_id(&id)?),
        (None, Some(file)) => RestoreSource::File(file),
        (None, None) => return Err(Failure::usage("give a backup id or --file")),
    };
    let database: Option<Arc<dyn DatabaseLoader>> = match args.mongo.uri()? {
        Some(uri) => Some(Arc::new(
            MongoLoader::connect(
                &uri,
                LoadOptions {
                    ns_exclude: args.ns_exclude.clone(),
                    db_rename: args.db_rename.clone(),
                    restore_users_and_roles: args.restore_users_and_roles,
                    convert_legacy_indexes: args.convert_legacy_indexes,
                    oplog_limit: args.oplog_limit,
                    parallel_collections: args.parallel_collections,
                    insertion_workers: args.insertion_workers,
                },
            )
            .await?,
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
    let mut request = RestoreRequest::new(source, args.target.clone())
        .with_dry_run(args.dry_run)
        .with_options(options)
        .with_identities(args.keys.identities()?)
        .with_require_encryption(args.require_encryption);
    request.database = database.clone();
    request.undo_journal = undo_journal;
    let report = if args.as_plan() {
        plan::run(ctx, &args, request, database, journals).await?
    } else {
        ctx.backups.restore(request, ctx.progress()).await?
    };
    let collections = report.dump_collections;
    if report.dry_run && collections > 0 && args.mongo.uri()?.is_none() {
        ctx.say(&format!(
            "warning: the backup holds a database dump ({collections} collections) that this restore would not load: give --mongo-uri to load it"
        ));
    }
    print_report(&report, options)
}

/// Where restore journals go: `$BACKUPS_STATE_DIR`, else the user's state
/// directory (`~/.local/state/backups`).
fn journal_dir() -> Option<PathBuf> {
    crate::context::state_dir()
}

/// Prints what was (or, with --dry-run, would be) restored.
fn print_report(report: &RestoreReport, options: ExtractOptions) -> CliResult {
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
