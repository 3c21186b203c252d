//! `backups`: the command-line front end of backups-core. Parsing, output
//! and progress live here; every decision about backups lives in the library.

/// Writes a line to stderr, ignoring failures (a closed stderr must not
/// turn into a panic halfway through an upload).
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod hooks;
mod output;
mod progress;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use backups_core::extract::ExtractOptions;
use backups_core::plan::{Preflight, RestorePlan, SafetyBackup, journal_path};
use backups_core::{
    ArchiveCompression, ArchiveSource, BackupId, Backups, CancellationToken, CreateRequest, Error,
    FileSet, Identity, Progress, RestoreRequest, RestoreSource, Storage, StoreBackups,
    UploadOptions,
};
use backups_mongo::{DumpOptions, LoadOptions, MongoDumper, MongoLoader};
use clap::Parser;

use crate::args::{Cli, Command};
use crate::progress::CliProgress;

/// A failure to report: the message (with its causes) and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotFound { .. } => 3,
            Error::AlreadyExists { .. } => 4,
            Error::ChecksumMismatch { .. }
            | Error::InvalidArchive { .. }
            | Error::UnsafePath { .. }
            | Error::Incompatible { .. } => 5,
            Error::Storage { .. } => 6,
            Error::InvalidInput { what, .. } if *what == "store URL" => 6,
            Error::InvalidInput { .. } => 2,
            Error::Io { .. } => 7,
            Error::Database { .. } => 8,
            Error::Locked { .. } => 9,
            Error::RolledBack { .. } => 10,
            Error::RollbackFailed { .. } => 11,
            Error::Hook { .. } => 12,
            Error::Cancelled(_) => 130,
            _ => 1,
        };
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(&format!("\n  caused by: {text}"));
            }
            source = cause.source();
        }
        if let Some(hint) = hint(&e, &message) {
            message.push_str(&format!("\n  hint: {hint}"));
        }
        Failure { message, code }
    }
}

/// What to do about common failures.
fn hint(e: &Error, message: &str) -> Option<&'static str> {
    match e {
        Error::NotFound { .. } => Some("run `backups list` to see the backups in this store"),
        Error::Locked { .. } => Some(
            "another restore, remove or gc is running; wait for it. A holder that crashed on this host is taken over at once; one from another host once its lease expires",
        ),
        Error::Storage { .. }
            if message.contains("169.254.169.254")
                || message.to_lowercase().contains("credential") =>
        {
            Some(
                "no usable credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AZURE_STORAGE_ACCOUNT_NAME/KEY)",
            )
        }
        Error::Storage { .. }
            if message.contains("NoSuchBucket") || message.contains("ContainerNotFound") =>
        {
            Some("the bucket or container does not exist: create it first")
        }
        Error::Storage { .. }
            if message.contains("403")
                || message.contains("AccessDenied")
                || message.contains("InvalidAccessKeyId") =>
        {
            Some("access denied: check the credentials (AWS_*, AZURE_* environment variables)")
        }
        Error::Storage { .. } if message.contains("Connect") || message.contains("dns error") => {
            Some("the store is unreachable: check the URL, --endpoint and the network")
        }
        _ => None,
    }
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure {
        message: format!("{what}: {e}"),
        code: 7,
    }
}

type CliResult = Result<(), Failure>;

fn default_store() -> Result<String, Failure> {
    let dir = dirs::data_dir().ok_or_else(|| Failure {
        message:
            "cannot find a data directory for the default store; pass --store or set BACKUPS_STORE"
                .into(),
        code: 2,
    })?;
    Ok(dir.join("backups").display().to_string())
}

/// Where restore journals go: `$BACKUPS_STATE_DIR`, else the user's state
/// directory (`~/.local/state/backups`).
fn journal_dir() -> Option<PathBuf> {
    std::env::var_os("BACKUPS_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            dirs::state_dir()
                .or_else(dirs::data_local_dir)
                .map(|d| d.join("backups"))
        })
}

/// The steps a restore plan will take, for `--dry-run`.
fn plan_text(a: &args::RestoreArgs, uri: Option<&str>, safety: bool) -> String {
    let mut steps = vec![
        "verify the whole archive (size, SHA-1, SHA-256 of every entry, every path, dump files)"
            .to_string(),
        "preflight: format version, controller/model identity, version, HA nodes, free disk space"
            .to_string(),
    ];
    if safety {
        let mut what: Vec<String> = a
            .safety_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if let Some(u) = uri {
            what.push(format!("the database at {}", backups_mongo::redact_uri(u)));
        }
        steps.push(format!(
            "safety backup (label pre-restore) of {}",
            what.join(", ")
        ));
    } else {
        steps.push("no safety backup: a failure cannot be rolled back".to_string());
    }
    let hook = |name: &str, cmd: &Option<String>| match cmd {
        Some(c) => format!("{name}: `{c}`"),
        None => format!("{name}: (no command)"),
    };
    steps.push(hook("stop services", &a.stop_cmd));
    if let Some(u) = uri {
        steps.push(format!(
            "load the backup's database into {} (collections in the dump are replaced)",
            backups_mongo::redact_uri(u)
        ));
    }
    steps.push(format!(
        "extract the files into {} (each to a temporary name, then renamed)",
        a.target.display()
    ));
    steps.push(hook("post-restore", &a.post_restore_cmd));
    steps.push(hook("start services", &a.start_cmd));
    let mut text = String::from("Plan:\n");
    for (i, step) in steps.iter().enumerate() {
        text.push_str(&format!("  {}. {step}\n", i + 1));
    }
    text
}

fn parse_id(s: &str) -> Result<BackupId, Failure> {
    s.parse().map_err(|e: Error| Failure {
        message: e.to_string(),
        code: 2,
    })
}

/// Writes to stdout; a closed pipe (`backups list | head`) is not an error.
fn out(text: &str) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(io_failure("writing output", e))
        }
        _ => Ok(()),
    }
}

/// Asks on the terminal; without one, refuses (use --yes).
fn confirm(question: &str) -> Result<(), Failure> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            message: "refusing to restore without confirmation: pass --yes".into(),
            code: 2,
        });
    }
    stderr_line!("{question} [y/N]");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| io_failure("reading the answer", e))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure {
            message: "restore cancelled".into(),
            code: 130,
        })
    }
}

/// The MongoDB URI from --mongo-uri, $BACKUPS_MONGO_URI or --mongo-uri-file.
fn mongo_uri(args: &args::MongoArgs) -> Result<Option<String>, Failure> {
    if let Some(uri) = &args.mongo_uri {
        return Ok(Some(uri.clone()));
    }
    match &args.mongo_uri_file {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| io_failure(&format!("reading {}", path.display()), e))?;
            let uri = text.lines().next().unwrap_or("").trim().to_string();
            if uri.is_empty() {
                return Err(Failure {
                    message: format!("{} holds no MongoDB URI", path.display()),
                    code: 2,
                });
            }
            Ok(Some(uri))
        }
    }
}

fn compression(
    kind: args::CompressionKind,
    level: Option<u32>,
    threads: usize,
) -> Result<ArchiveCompression, Failure> {
    let bad = |max: u32| Failure {
        message: format!("--compression-level must be at most {max} for {kind:?}"),
        code: 2,
    };
    Ok(match kind {
        args::CompressionKind::Gzip => {
            let level = level.unwrap_or(6);
            if level > 9 {
                return Err(bad(9));
            }
            ArchiveCompression::Gzip { level, threads }
        }
        args::CompressionKind::Zstd => {
            let level = level.unwrap_or(3).max(1);
            if level > 19 {
                return Err(bad(19));
            }
            ArchiveCompression::Zstd {
                level: level as i32,
                threads,
            }
        }
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_series() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default()
}

/// A stable model UUID for hosts that have no controller model: UUIDv5 of the host name.
fn host_model_uuid() -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b0d_2d3e_5a1f_4e53_9b7e_1c2a_3f4d_5e6f);
    uuid::Uuid::new_v5(&NAMESPACE, host_name().as_bytes()).to_string()
}

async fn run(cli: Cli, cancel: CancellationToken) -> CliResult {
    let store_url = match cli.store.clone() {
        Some(s) => s,
        None => default_store()?,
    };
    let mut options = cli.store_options.clone();
    if let Some(e) = &cli.endpoint {
        options.push(("endpoint".into(), e.clone()));
    }
    if let Some(r) = &cli.region {
        options.push(("region".into(), r.clone()));
    }
    if cli.allow_http {
        options.push(("allow_http".into(), "true".into()));
    }
    let storage = Storage::from_url(&store_url, options)?;
    let backups = StoreBackups::new(storage)
        .with_upload_options(UploadOptions {
            part_size: cli.part_size as usize * 1024 * 1024,
            max_concurrency: cli.upload_concurrency as usize,
        })
        .with_cancellation(cancel)
        .with_holder(format!("{} pid {}", host_name(), std::process::id()));
    let verbose = matches!(&cli.command, Command::Restore(r) if r.verbose);
    let progress: Arc<dyn Progress> = Arc::new(CliProgress::new(cli.progress, cli.quiet, verbose));
    let say = |text: String| {
        if !cli.quiet {
            stderr_line!("{text}");
        }
    };

    match cli.command {
        Command::Create(a) => {
            let model_uuid = a.model_uuid.unwrap_or_else(host_model_uuid);
            let database: Option<Arc<dyn backups_core::DatabaseDumper>> = match mongo_uri(&a.mongo)?
            {
                Some(uri) => Some(Arc::new(
                    MongoDumper::connect(
                        &uri,
                        DumpOptions {
                            include_dbs: a.include_dbs,
                            exclude_ns: a.exclude_ns,
                        },
                    )
                    .await?,
                )),
                None => None,
            };
            let request = CreateRequest {
                files: FileSet {
                    paths: a.paths,
                    excludes: a.excludes,
                },
                database,
                notes: a.notes,
                labels: a.labels,
                identity: Identity {
                    model_uuid,
                    controller_uuid: a.controller_uuid,
                    machine: a.machine,
                    hostname: host_name(),
                    series: os_series(),
                    version: format!("backups-{}", env!("CARGO_PKG_VERSION")),
                    ..Default::default()
                },
                compression: compression(
                    a.compression,
                    a.compression_level,
                    a.compression_threads,
                )?,
            };
            let meta = backups.create(request, progress.clone()).await?;
            let id = meta.id.clone().ok_or_else(|| Failure {
                message: "created backup has no id".into(),
                code: 1,
            })?;
            let docs: u64 = meta
                .databases
                .iter()
                .filter(|(k, _)| !k.starts_with("oplog"))
                .map(|(_, n)| n)
                .sum();
            say(format!(
                "Created backup {id}: {} files, {} documents in {} collections, {} ({} bytes)",
                meta.file_count.unwrap_or(0),
                docs,
                meta.databases
                    .keys()
                    .filter(|k| !k.starts_with("oplog"))
                    .count(),
                output::human_size(meta.size),
                meta.size
            ));
            out(&format!("{id}\n"))?;
            if let Some(path) = a.download {
                backups.download(&id, &path, progress).await?;
                say(format!("Downloaded to {}", path.display()));
            }
        }
        Command::List(a) => {
            let list = backups.list().await?;
            if a.json {
                let values: Vec<_> = list.iter().map(output::json_value).collect();
                out(&format!("{}\n", serde_json::Value::Array(values)))?;
            } else if list.is_empty() {
                out("No backups to display.\n")?;
            } else {
                out(&output::table(&list))?;
            }
        }
        Command::Show(a) => {
            let meta = backups.metadata(&parse_id(&a.id)?).await?;
            if a.json {
                let v = output::json_value(&meta);
                out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                ))?;
            } else {
                out(&output::details(&meta))?;
            }
        }
        Command::Download(a) => {
            let id = parse_id(&a.id)?;
            match a.output {
                Some(p) if p.as_os_str() == "-" => {
                    let mut stdout = tokio::io::stdout();
                    backups.download_to(&id, &mut stdout, progress).await?;
                }
                other => {
                    let path =
                        other.unwrap_or_else(|| PathBuf::from(format!("juju-backup-{id}.tar.gz")));
                    let meta = backups.download(&id, &path, progress).await?;
                    say(format!(
                        "Downloaded {id} to {} ({} bytes, checksum verified)",
                        path.display(),
                        meta.size
                    ));
                }
            }
        }
        Command::Upload(a) => {
            let outcome = backups
                .add(ArchiveSource::File(a.file.clone()), progress)
                .await?;
            let id = outcome
                .metadata
                .id
                .map(|i| i.to_string())
                .unwrap_or_default();
            if outcome.already_present {
                out(&format!(
                    "Backup file already uploaded as backup ID {id} (same checksum); nothing to do\n"
                ))?;
            } else {
                out(&format!("Uploaded backup file, creating backup ID {id}\n"))?;
            }
        }
        Command::Remove(a) => {
            let ids: Vec<BackupId> = match a.keep_latest {
                Some(n) => backups
                    .list()
                    .await?
                    .into_iter()
                    .skip(n)
                    .filter_map(|m| m.id)
                    .collect(),
                None => a
                    .ids
                    .iter()
                    .map(|s| parse_id(s))
                    .collect::<Result<_, _>>()?,
            };
            if ids.is_empty() {
                out("Nothing to remove.\n")?;
            }
            let mut first_error = None;
            for id in ids {
                if a.dry_run {
                    out(&format!("Would remove backup {id}\n"))?;
                    continue;
                }
                match backups.remove(&id).await {
                    Ok(()) => out(&format!("Removed backup {id}\n"))?,
                    Err(e) => {
                        let f = Failure::from(e);
                        stderr_line!("error: {}", f.message);
                        first_error.get_or_insert(f);
                    }
                }
            }
            if let Some(mut f) = first_error {
                f.message = "some backups could not be removed (see above)".into();
                return Err(f);
            }
        }
        Command::Gc(a) => {
            let garbage = backups.find_garbage(a.older_than).await?;
            if a.json {
                let items: Vec<_> = garbage
                    .iter()
                    .map(|g| {
                        serde_json::json!({
                            "Key": g.key, "Size": g.size, "AgeSeconds": g.age_secs,
                            "Kind": output::garbage_kind(&g.kind),
                        })
                    })
                    .collect();
                out(&format!("{}\n", serde_json::Value::Array(items)))?;
            } else if garbage.is_empty() {
                out("No garbage found.\n")?;
            } else {
                out(&output::garbage_table(&garbage))?;
            }
            if !garbage.is_empty() {
                let total: u64 = garbage.iter().map(|g| g.size).sum();
                if a.yes {
                    backups.delete_garbage(&garbage).await?;
                    say(format!(
                        "Deleted {} objects ({}).",
                        garbage.len(),
                        output::human_size(total)
                    ));
                } else {
                    say(format!(
                        "{} objects ({}); run again with --yes to delete them.",
                        garbage.len(),
                        output::human_size(total)
                    ));
                }
            }
        }
        Command::Restore(a) => {
            let source = match (a.id.clone(), a.file.clone()) {
                (Some(id), _) => RestoreSource::Id(parse_id(&id)?),
                (None, Some(file)) => RestoreSource::File(file),
                (None, None) => {
                    return Err(Failure {
                        message: "give a backup id or --file".into(),
                        code: 2,
                    });
                }
            };
            let database: Option<Arc<dyn backups_core::DatabaseLoader>> = match mongo_uri(&a.mongo)?
            {
                Some(uri) => Some(Arc::new(
                    MongoLoader::connect(
                        &uri,
                        LoadOptions {
                            ns_exclude: a.ns_exclude.clone(),
                            db_rename: a.db_rename.clone(),
                        },
                    )
                    .await?,
                )),
                None => None,
            };
            let uri = mongo_uri(&a.mongo)?;
            let options = ExtractOptions {
                allow_setuid: a.allow_setuid,
                allow_devices: a.allow_devices,
            };
            let undo_journal = match (&source, journal_dir()) {
                (RestoreSource::Id(id), Some(dir)) => Some(journal_path(&dir, id)),
                _ => None,
            };
            let request = RestoreRequest {
                dry_run: a.dry_run,
                database: database.clone(),
                options,
                undo_journal,
                ..RestoreRequest::new(source, a.target.clone())
            };
            // In place (`--target /`) is always a plan: checked in full and
            // confirmed first.
            let in_place =
                std::fs::canonicalize(&a.target).is_ok_and(|p| p == std::path::Path::new("/"));
            let as_plan = in_place
                || a.stop_cmd.is_some()
                || a.target_controller_uuid.is_some()
                || a.target_model_uuid.is_some()
                || a.target_version.is_some()
                || a.start_cmd.is_some()
                || a.post_restore_cmd.is_some()
                || !a.safety_paths.is_empty();
            let report = if as_plan {
                if !a.dry_run && !a.yes {
                    confirm(&format!(
                        "Restore into {} (services will be stopped)?",
                        a.target.display()
                    ))?;
                }
                let safety = if a.no_safety_backup || (a.safety_paths.is_empty() && uri.is_none()) {
                    say("warning: no safety backup (give --safety-path and --mongo-uri to be able to roll back)".into());
                    None
                } else {
                    let dumper: Option<Arc<dyn backups_core::DatabaseDumper>> = match &uri {
                        Some(u) => Some(Arc::new(
                            MongoDumper::connect(u, DumpOptions::default()).await?,
                        )),
                        None => None,
                    };
                    Some(SafetyBackup {
                        files: FileSet {
                            paths: a.safety_paths.clone(),
                            excludes: vec![],
                        },
                        dumper,
                        loader: database,
                        identity: Identity {
                            model_uuid: host_model_uuid(),
                            hostname: host_name(),
                            ..Default::default()
                        },
                    })
                };
                let services = hooks::ShellServices {
                    stop: a.stop_cmd.clone(),
                    start: a.start_cmd.clone(),
                    post_restore: a.post_restore_cmd.clone(),
                };
                let plan = RestorePlan {
                    request,
                    services: Some(Arc::new(services)),
                    safety,
                    ignore_free_space: a.ignore_free_space,
                    preflight: Preflight {
                        target: Identity {
                            controller_uuid: a.target_controller_uuid.clone().unwrap_or_default(),
                            model_uuid: a.target_model_uuid.clone().unwrap_or_default(),
                            version: a.target_version.clone().unwrap_or_default(),
                            ha_nodes: a.target_ha_nodes.unwrap_or(0),
                            ..Default::default()
                        },
                        allow_other_controller: a.allow_other_controller,
                        allow_downgrade: a.allow_downgrade,
                    },
                    journal_dir: journal_dir(),
                };
                if a.dry_run {
                    out(&plan_text(&a, uri.as_deref(), plan.safety.is_some()))?;
                }
                let done = backups.run_restore_plan(plan, progress).await?;
                if let Some(id) = &done.safety_backup {
                    say(format!(
                        "Safety backup {id} (label pre-restore) holds the state before this restore"
                    ));
                }
                done.restore
            } else {
                backups.restore(request, progress).await?
            };
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
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            stderr_line!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        let work = run(cli, cancel.clone());
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            _ = tokio::signal::ctrl_c() => {
                stderr_line!("interrupted: aborting the upload (Ctrl-C again to quit at once)");
                cancel.cancel();
                tokio::select! {
                    r = &mut work => r,
                    _ = tokio::signal::ctrl_c() => Err(Failure {
                        message: "interrupted; nothing was committed".into(),
                        code: 130,
                    }),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            stderr_line!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
