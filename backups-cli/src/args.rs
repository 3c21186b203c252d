//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  other error
  2  usage error (bad arguments)
  3  backup not found
  4  conflict: a different backup already exists under this id
  5  verification failed: checksum mismatch, invalid or unsafe archive, incompatible backup
  6  storage error (store unreachable, access denied, bad store URL)
  7  local file error (cannot read a source, cannot write a target)
  8  database error (MongoDB unreachable, authentication, dump or load failed)
  9  the store is locked by another restore, remove or gc
  10 restore failed and was rolled back to its pre-restore safety backup
  11 restore failed and so did the rollback (the message says what to run)
  12 a service hook failed before anything was changed
  130 interrupted (nothing was committed)

The store is --store, else $BACKUPS_STORE, else ~/.local/share/backups.
Cloud stores take credentials from the environment: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION... for s3://; AZURE_STORAGE_ACCOUNT_NAME,
AZURE_STORAGE_ACCOUNT_KEY... for az://; GOOGLE_SERVICE_ACCOUNT... for gs://.";

/// Back up and restore a cluster controller (its files, and later its
/// database) into an object store, in Juju's archive format.
#[derive(Debug, Parser)]
#[command(name = "backups", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where backups are kept: a directory, file:///path, memory://,
    /// s3://bucket/prefix, az://container/prefix or gs://bucket/prefix.
    #[arg(long, global = true, env = "BACKUPS_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// Endpoint of an S3-compatible or Azure store, e.g. http://127.0.0.1:9000.
    #[arg(long, global = true, env = "BACKUPS_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// Region of an S3 store (S3-compatible stores often want their own, e.g. "garage").
    #[arg(long, global = true, env = "BACKUPS_REGION")]
    pub region: Option<String>,

    /// Allow plain http:// endpoints (local test servers).
    #[arg(long, global = true, env = "BACKUPS_ALLOW_HTTP")]
    pub allow_http: bool,

    /// Any other object_store option as KEY=VALUE (repeatable), e.g.
    /// use_emulator=true, virtual_hosted_style_request=true.
    #[arg(long = "store-option", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub store_options: Vec<(String, String)>,

    /// Multipart upload part size in MiB (memory use is about part size x
    /// (concurrency + 1)); S3 needs at least 5.
    #[arg(long, global = true, default_value_t = 8, value_name = "MIB",
          value_parser = clap::value_parser!(u32).range(5..=5120))]
    pub part_size: u32,

    /// Parts uploaded at the same time.
    #[arg(long, global = true, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub upload_concurrency: u32,

    /// How to show progress on stderr: a bar on a terminal (auto), always a
    /// bar, plain lines, or nothing.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Print only results and errors (no progress, no warnings).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Archive compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionKind {
    /// gzip: Juju's format.
    Gzip,
    /// zstd: only this tool reads it.
    Zstd,
}

/// Progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// Always a bar.
    Bar,
    /// Plain text lines (for logs).
    Plain,
    /// Nothing.
    None,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up files and the MongoDB database into the store; prints the new id.
    #[command(after_help = "\
Examples:
  backups create --path /var/lib/juju --path /etc/juju --notes 'before upgrade'
  backups create --path /srv/app --exclude '*.log' --exclude /srv/app/cache --label scheduled
  backups create --path /var/lib/juju --download ./juju-backup.tar.gz
  BACKUPS_MONGO_URI='mongodb://admin:secret@127.0.0.1:37017/?authSource=admin' \\
    backups create --path /var/lib/juju --exclude-ns 'logs.*'

Exclude patterns containing '/' match the whole absolute path; others match
any file or directory name. Files are read once and streamed into the store;
a file that changes while it is read is reported as a warning.")]
    Create(CreateArgs),

    /// List the backups in the store, newest first.
    #[command(after_help = "\
Examples:
  backups list
  backups list --json | jq -r '.[].ID'")]
    List(ListArgs),

    /// Show everything recorded about one backup.
    #[command(after_help = "\
Examples:
  backups show 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97
  backups show 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 --json")]
    Show(ShowArgs),

    /// Download a backup's archive, verifying its size and checksum.
    #[command(after_help = "\
Examples:
  backups download 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97
  backups download 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 -o /tmp/b.tar.gz
  backups download 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 -o - | tar tzf -

The file appears only once its checksum is verified (it is written to a
temporary name first). With '-o -' the bytes go to stdout and a mismatch is
reported after they were written.")]
    Download(DownloadArgs),

    /// Add an existing archive (ours or Juju's) to the store.
    #[command(after_help = "\
Examples:
  backups upload juju-backup-20200225-041241.tar.gz

The archive is validated first (gzip, layout, metadata, every root.tar path);
its id comes from its metadata (start time and model UUID). Uploading the
same bytes again does nothing; different bytes under an existing id fail.")]
    Upload(UploadArgs),

    /// Remove backups by id, or all but the newest N.
    #[command(after_help = "\
Examples:
  backups remove 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97
  backups remove --keep-latest 5
  backups remove --keep-latest 5 --dry-run")]
    Remove(RemoveArgs),

    /// Find (and with --yes delete) what interrupted work left in the store.
    #[command(after_help = "\
Examples:
  backups gc                      # list garbage older than a day
  backups gc --older-than 1h --yes

Garbage is: archives no sidecar names (a create killed before its commit),
staging files of interrupted uploads in local stores, and sidecars whose
archive is missing. Objects younger than --older-than are left alone, since
they may belong to an upload still in progress. Incomplete S3 multipart
uploads cannot be listed through object_store: use a bucket lifecycle rule
(AbortIncompleteMultipartUpload), see the README.")]
    Gc(GcArgs),

    /// Show and break the store's lease (held by restore, remove and gc).
    #[command(after_help = "\
Examples:
  backups unlock                  # remove stale leases, show live ones
  backups unlock --force          # also remove live ones (their holder is gone)

A lease names its holder (host and pid), operation and expiry. Stale ones
(expired, or left by a process of this host that no longer runs) are taken
over by the next command anyway; --force is for a holder on another host
that is known to be gone before its lease expires (5 minutes after its last
renewal). Never force a lease whose holder may still be running.")]
    Unlock(UnlockArgs),

    /// Restore a backup's files (and database) into a target.
    #[command(after_help = "\
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
temporary name and renamed into place.")]
    Restore(RestoreArgs),
}

/// Where the MongoDB database is. The URI may hold a password: prefer the
/// environment variable or a file to keep it off the command line.
#[derive(Debug, Args, Clone)]
pub struct MongoArgs {
    /// MongoDB connection string, e.g. mongodb://user:pass@host:27017/?authSource=admin.
    #[arg(
        long,
        env = "BACKUPS_MONGO_URI",
        hide_env_values = true,
        value_name = "URI"
    )]
    pub mongo_uri: Option<String>,
    /// Read the MongoDB connection string from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "mongo_uri")]
    pub mongo_uri_file: Option<PathBuf>,
}

/// `backups create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A file or directory to back up (repeatable).
    #[arg(long = "path", value_name = "PATH", required_unless_present_any = ["mongo_uri", "mongo_uri_file"])]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Dump only these databases (repeatable; default: all but admin, local, config).
    #[arg(long = "include-db", value_name = "DB")]
    pub include_dbs: Vec<String>,
    /// Leave out these namespaces (repeatable glob on db.collection, e.g. 'logs.*').
    #[arg(long = "exclude-ns", value_name = "GLOB")]
    pub exclude_ns: Vec<String>,
    /// Leave out matching files and directories (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Notes stored with the backup.
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Labels stored with the backup (repeatable).
    #[arg(long = "label", value_name = "LABEL", default_values_t = ["manual".to_string()])]
    pub labels: Vec<String>,
    /// Also download the new archive to this file.
    #[arg(long, value_name = "FILE")]
    pub download: Option<PathBuf>,
    /// Model UUID used in the backup id (default: derived from the host name).
    #[arg(long, env = "BACKUPS_MODEL_UUID", value_name = "UUID")]
    pub model_uuid: Option<String>,
    /// Controller UUID recorded in the metadata.
    #[arg(
        long,
        env = "BACKUPS_CONTROLLER_UUID",
        default_value = "",
        value_name = "UUID"
    )]
    pub controller_uuid: String,
    /// Machine id recorded in the metadata.
    #[arg(long, default_value = "0")]
    pub machine: String,
    /// Compression: gzip (Juju's format, readable by tar and Juju) or zstd
    /// (faster and smaller, but only this tool can read it).
    #[arg(long, value_enum, default_value_t = CompressionKind::Gzip)]
    pub compression: CompressionKind,
    /// Compression level: gzip 0 (none) to 9 (smallest), default 6; zstd 1
    /// to 19, default 3.
    #[arg(long, value_name = "N")]
    pub compression_level: Option<u32>,
    /// Compression threads (default: one per core).
    #[arg(long, default_value_t = 0, value_name = "N", hide_default_value = true)]
    pub compression_threads: usize,
}

/// `backups list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (an array of metadata objects).
    #[arg(long)]
    pub json: bool,
}

/// `backups show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The backup id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `backups download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The backup id.
    pub id: String,
    /// Output file, or '-' for stdout (default: juju-backup-<id>.tar.gz).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `backups upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The archive file (.tar.gz).
    pub file: PathBuf,
}

/// `backups remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Backup ids to remove.
    #[arg(
        required_unless_present = "keep_latest",
        conflicts_with = "keep_latest"
    )]
    pub ids: Vec<String>,
    /// Remove all backups except the newest N.
    #[arg(long, value_name = "N")]
    pub keep_latest: Option<usize>,
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// `backups unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Remove live leases too.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `backups gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only objects at least this old: 30m, 24h, 7d, 0s.
    #[arg(long, default_value = "24h", value_parser = parse_duration, value_name = "AGE")]
    pub older_than: std::time::Duration,
    /// Delete what was found (otherwise only list it).
    #[arg(long)]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected e.g. 30m, 24h or 7d, got {s:?}"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use s, m, h or d)")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// `backups restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
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
    /// Leave these namespaces untouched (repeatable glob on db.collection;
    /// Juju leaves 'logs.*' alone).
    #[arg(long = "ns-exclude", value_name = "GLOB")]
    pub ns_exclude: Vec<String>,
    /// Load database FROM of the backup into database TO (repeatable).
    #[arg(long = "db-rename", value_name = "FROM=TO", value_parser = parse_key_value)]
    pub db_rename: Vec<(String, String)>,
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
    /// The target controller's UUID: a backup of another controller is refused.
    #[arg(long, value_name = "UUID")]
    pub target_controller_uuid: Option<String>,
    /// The target's model UUID: a backup of another model is refused.
    #[arg(long, value_name = "UUID")]
    pub target_model_uuid: Option<String>,
    /// The target's software version: newer backups are refused, older ones
    /// need --allow-downgrade.
    #[arg(long, value_name = "VERSION")]
    pub target_version: Option<String>,
    /// The target's HA node count (a different count is warned about).
    #[arg(long, value_name = "N")]
    pub target_ha_nodes: Option<u64>,
    /// Restore a backup taken on another controller or model.
    #[arg(long)]
    pub allow_other_controller: bool,
    /// Restore a backup from an older version than the target's.
    #[arg(long)]
    pub allow_downgrade: bool,
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
