//! `backups create`: a new backup of files and (with a MongoDB URI) the
//! database.

use std::path::PathBuf;
use std::sync::Arc;

use backups_core::download::DownloadTo;
use backups_core::juju::{JUJU_DATA_DIR, JujuProfile};
use backups_core::{
    ArchiveCompression, Backups, CompressionKind, CreateRequest, DatabaseDumper, FileSet, Identity,
    Metadata,
};
use backups_mongo::{DumpOptions, JujuConnection, MongoDumper, ReadFrom};

use crate::args::{MongoArgs, parse_duration};
use crate::context::Context;
use crate::failure::{CliResult, Failure, OTHER};
use crate::hooks::{Hooks, shell_lock};
use crate::keys::EncryptArgs;
use crate::output::{self, out};

/// Examples and notes after `backups create --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups create --path /var/lib/juju --path /etc/juju --notes 'before upgrade'
  backups create --path /srv/app --exclude '*.log' --exclude /srv/app/cache --label scheduled
  backups create --path /var/lib/juju --download ./juju-backup.tar.gz
  backups create --path /var/lib/juju --lock-cmd 'systemctl stop jujud-machine-0' \\
    --unlock-cmd 'systemctl start jujud-machine-0'       # a clean backup: see list's CLEAN
  backups create --path /var/lib/juju --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
  BACKUPS_MONGO_URI='mongodb://admin:secret@127.0.0.1:37017/?authSource=admin' \\
    backups create --path /var/lib/juju --exclude-ns 'logs.*'
  backups create --juju                   # on a Juju controller, as root: what juju create-backup takes
  backups create --juju --juju-data-dir /srv/c/var/lib/juju --juju-mongo-address 10.0.0.5:37017

With --juju the backup holds what Juju's create-backup takes, under the data
dir: tools/, system-identity, server.pem, shared-secret, agents/machine-*,
init/*, nonce.txt (when present), and <root>/home/ubuntu/.ssh/authorized_keys
(when present; the root is what a data dir ending in var/lib/juju is under,
else /), plus any --path. The identity comes from the machine agent's
agent.conf (exactly one agents/machine-*/agent.conf): tag -> machine,
controller and model -> UUIDs, upgradedToVersion -> version; the series from
the agent's tools link (tools/machine-N -> <version>-<series>-<arch>), else
this host's. --model-uuid, --controller-uuid and --machine override them.
The database is reached as Juju's own backups do: user = the tag, password =
statepassword, authSource=admin, TLS with the server certificate verified
against agent.conf's cacert (host name checked: Juju's certificates name
localhost, 127.0.0.1, juju-mongodb and the controller's addresses), at
--juju-mongo-address; every database but admin, local, config and backups is
dumped. An explicit --mongo-uri (or $BACKUPS_MONGO_URI) is used instead.

Exclude patterns containing '/' match the whole absolute path; others match
any file or directory name. Files are read once and streamed into the store;
a file that changes while it is read is reported as a warning.";

/// `backups create`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A file or directory to back up (repeatable; default: the profile's
    /// paths). A MongoDB URI alone backs up only the database.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub immutable: crate::immutable::ImmutableArgs,
    /// Dump only these databases (repeatable; default: all but admin, local, config).
    #[arg(long = "include-db", value_name = "DB")]
    pub include_dbs: Vec<String>,
    /// Leave out these namespaces (repeatable glob on db.collection, e.g. 'logs.*').
    #[arg(long = "exclude-ns", value_name = "GLOB")]
    pub exclude_ns: Vec<String>,
    /// Dump from this member of the replica set: primary, secondary (any
    /// healthy one; fails when there is none) or nearest. The member is
    /// pinned for the whole dump and recorded (DumpedFrom, ReplicaSet).
    #[arg(long, value_name = "MEMBER")]
    pub read_from: Option<ReadFrom>,
    /// Collections dumped at the same time (mongodump's -j), each spooled
    /// to its own temporary file.
    #[arg(long, default_value_t = backups_mongo::DUMP_PARALLEL_COLLECTIONS, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub parallel_collections: usize,
    /// Leave out matching files and directories (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Notes stored with the backup.
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Labels stored with the backup (repeatable; default: the profile's,
    /// else manual).
    #[arg(long = "label", value_name = "LABEL", value_parser = crate::args::parse_label)]
    pub labels: Vec<String>,
    /// Also download the new archive to this file.
    #[arg(long, value_name = "FILE")]
    pub download: Option<PathBuf>,
    /// Model UUID used in the backup id (default: with --juju agent.conf's,
    /// else derived from the host name).
    #[arg(long, env = backups_core::host::MODEL_UUID_ENV, value_name = "UUID")]
    pub model_uuid: Option<String>,
    /// Controller UUID recorded in the metadata (default: with --juju
    /// agent.conf's, else none).
    #[arg(long, env = "BACKUPS_CONTROLLER_UUID", value_name = "UUID")]
    pub controller_uuid: Option<String>,
    /// Machine id recorded in the metadata (default: with --juju the
    /// agent's, else 0).
    #[arg(long, value_name = "ID")]
    pub machine: Option<String>,
    /// Back up a Juju controller as Juju's create-backup does: its files,
    /// identity and database from its data dir (see below).
    #[arg(long, help_heading = "Juju")]
    pub juju: bool,
    /// The Juju controller's data dir (default: /var/lib/juju).
    #[arg(long, value_name = "DIR", help_heading = "Juju")]
    pub juju_data_dir: Option<PathBuf>,
    /// Where the controller's MongoDB listens (default: localhost:37017).
    #[arg(long, value_name = "HOST:PORT", help_heading = "Juju")]
    pub juju_mongo_address: Option<String>,
    /// Compression: gzip (Juju's format, readable by tar and Juju) or zstd
    /// (faster and smaller, but only this tool can read it). Default: the
    /// profile's, else gzip.
    #[arg(long, value_enum)]
    pub compression: Option<CompressionKind>,
    /// Compression level: gzip 0 (none) to 9 (smallest), default 6; zstd 1
    /// to 19, default 3.
    #[arg(long, value_name = "N")]
    pub compression_level: Option<u32>,
    /// Compression threads (default: one per core).
    #[arg(long, default_value_t = 0, value_name = "N", hide_default_value = true)]
    pub compression_threads: usize,
    #[command(flatten)]
    pub encrypt: EncryptArgs,
    /// Refuse to make the backup unencrypted (give --encrypt-to,
    /// --recipients-file or --passphrase-file).
    #[arg(long)]
    pub require_encryption: bool,
    /// Run this (sh -c) before reading anything, to quiesce the
    /// controller's writers (BOSH's pre-backup-lock). Repeatable, run in
    /// the order given (lock every node, then back up): one failing stops
    /// the backup and unlocks what was locked.
    #[arg(long, value_name = "CMD", help_heading = "Lock hooks")]
    pub lock_cmd: Vec<String>,
    /// Run this after the backup, whatever happened (even after Ctrl-C);
    /// it sees BACKUPS_BACKUP_OK=1 or 0. Repeatable, run in the order
    /// given: give one per --lock-cmd, in reverse order, and a lock failing
    /// part-way unlocks exactly what it locked.
    #[arg(long, value_name = "CMD", help_heading = "Lock hooks")]
    pub unlock_cmd: Vec<String>,
    /// How long a lock hook may run before its process group is killed.
    #[arg(long, default_value = "10min", value_parser = parse_duration, value_name = "DURATION", help_heading = "Lock hooks")]
    pub hook_timeout: std::time::Duration,
}

/// `backups create` with no flags: its defaults and its `BACKUPS_*`
/// variables (what a schedule starts from before its profile).
pub fn from_env() -> Result<Args, Failure> {
    #[derive(clap::Parser)]
    #[command(no_binary_name = true)]
    struct Standalone {
        #[command(flatten)]
        args: Args,
    }
    <Standalone as clap::Parser>::try_parse_from(std::iter::empty::<String>())
        .map(|s| s.args)
        .map_err(|e| Failure::usage(e.to_string()))
}

impl Args {
    /// --juju-data-dir, else /var/lib/juju.
    pub fn juju_data_dir(&self) -> PathBuf {
        self.juju_data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(JUJU_DATA_DIR))
    }

    /// --juju-mongo-address, else localhost:37017.
    pub fn juju_mongo_address(&self) -> &str {
        self.juju_mongo_address
            .as_deref()
            .unwrap_or(JujuProfile::DEFAULT_MONGO_ADDRESS)
    }
}

/// Makes the backup, prints its id on stdout (a summary on stderr) and,
/// with --download, downloads it.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let download = args.download.clone();
    let meta = make(ctx, args).await?;
    let id = meta.id.clone().ok_or_else(|| Failure {
        message: "created backup has no id".into(),
        code: OTHER,
    })?;
    let collections = || {
        meta.databases
            .iter()
            .filter(|(k, _)| !k.starts_with("oplog"))
    };
    let docs: u64 = collections().map(|(_, n)| n).sum();
    ctx.say(&format!(
        "Created backup {id}: {} files, {} documents in {} collections, {} ({} bytes)",
        meta.file_count.unwrap_or(0),
        docs,
        collections().count(),
        output::human_size(meta.size),
        meta.size
    ));
    out(&format!("{id}\n"))?;
    if let Some(path) = download {
        ctx.backups
            .download(&id, DownloadTo::File(&path), ctx.progress())
            .await?;
        ctx.say(&format!("Downloaded to {}", path.display()));
    }
    Ok(())
}

/// Makes the backup `args` describe (after the profile was applied);
/// returns its metadata.
pub async fn make(ctx: &Context, args: Args) -> Result<Metadata, Failure> {
    let request = request(ctx.quiet, args).await?;
    Ok(ctx.backups.create(request, ctx.progress()).await?)
}

/// The library's request for the backup `args` describe: the Juju
/// profile's files and identity, the database dumper (connected), the
/// labels, compression, encryption and lock hooks. `quiet` silences the
/// hooks' output.
pub async fn request(quiet: bool, mut args: Args) -> Result<CreateRequest, Failure> {
    if !args.juju && (args.juju_data_dir.is_some() || args.juju_mongo_address.is_some()) {
        return Err(Failure::usage(
            "--juju-data-dir and --juju-mongo-address need --juju (or juju = true in the profile)",
        ));
    }
    let mut uri = args.mongo.uri()?;
    // The MongoDB client reads the connection's CA file when it connects
    // (below): the connection may go with this function.
    let (identity, exclude_dbs, _juju_connection) = juju_profile(&mut args, &mut uri)?;
    if args.paths.is_empty() && uri.is_none() {
        return Err(Failure::usage(
            "nothing to back up: give --path (or a MongoDB URI), or set paths in the config profile",
        ));
    }
    let labels = if args.labels.is_empty() {
        vec!["manual".to_string()]
    } else {
        args.labels
    };
    let database: Option<Arc<dyn DatabaseDumper>> = match uri {
        Some(uri) => Some(Arc::new(
            MongoDumper::connect(
                &uri,
                DumpOptions {
                    include_dbs: args.include_dbs,
                    exclude_ns: args.exclude_ns,
                    read_from: args.read_from,
                    exclude_dbs,
                    parallel_collections: args.parallel_collections,
                },
            )
            .await?,
        )),
        None => None,
    };
    let identity = match identity {
        // Explicit identity flags override agent.conf.
        Some(mut identity) => {
            identity.model_uuid = args.model_uuid.unwrap_or(identity.model_uuid);
            identity.controller_uuid = args.controller_uuid.unwrap_or(identity.controller_uuid);
            identity.machine = args.machine.unwrap_or(identity.machine);
            identity
        }
        None => {
            let mut identity = Identity::this_host(args.model_uuid);
            identity.controller_uuid = args.controller_uuid.unwrap_or_default();
            if let Some(machine) = args.machine {
                identity.machine = machine;
            }
            identity
        }
    };
    let mut request = CreateRequest::new(
        FileSet::new(args.paths).with_excludes(args.excludes),
        identity,
    )
    .with_notes(args.notes)
    .with_labels(labels)
    // The library refuses a level out of range: a usage error.
    .with_compression(ArchiveCompression::new(
        args.compression.unwrap_or_default(),
        args.compression_level,
        args.compression_threads,
    )?);
    if let Some(database) = database {
        request = request.with_database(database);
    }
    if let Some(encryption) = args.encrypt.encryption()? {
        request = request.with_encryption(encryption);
    }
    if args.require_encryption && request.encryption().is_none() {
        return Err(Failure {
            message: "refusing to make an unencrypted backup (--require-encryption): give --encrypt-to, --recipients-file or --passphrase-file".into(),
            code: crate::failure::ENCRYPTION,
        });
    }
    if !args.lock_cmd.is_empty() || !args.unlock_cmd.is_empty() {
        let hooks = Hooks {
            timeout: args.hook_timeout,
            env: Vec::new(),
            quiet,
        };
        request = request.with_lock(Arc::new(shell_lock(
            hooks,
            &args.lock_cmd,
            &args.unlock_cmd,
        )));
    }
    Ok(request)
}

/// With --juju: the profile's files before --path's, its identity and
/// excluded databases, and (without a URI) the connection agent.conf gives.
#[allow(clippy::type_complexity)]
fn juju_profile(
    args: &mut Args,
    uri: &mut Option<String>,
) -> Result<(Option<Identity>, Vec<String>, Option<JujuConnection>), Failure> {
    if !args.juju {
        return Ok((None, Vec::new(), None));
    }
    let profile = JujuProfile::load(args.juju_data_dir())?;
    let mut paths = profile.files()?;
    paths.append(&mut args.paths);
    args.paths = paths;
    let mut connection = None;
    if uri.is_none() {
        let c = JujuConnection::new(&profile.agent, args.juju_mongo_address())?;
        *uri = Some(c.uri().to_string());
        connection = Some(c);
    }
    Ok((
        Some(profile.backup_identity()),
        JujuProfile::excluded_dbs(),
        connection,
    ))
}
