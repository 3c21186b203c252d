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
mod create;
mod hooks;
mod output;
mod progress;
mod restore;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use backups_core::{
    ArchiveSource, BackupId, Backups, CancellationToken, Error, Progress, Storage, StoreBackups,
    UploadOptions,
};
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
            Error::InvalidInput {
                what: backups_core::InputKind::StoreUrl,
                ..
            } => 6,
            Error::InvalidInput { .. } => 2,
            Error::Io { .. } => 7,
            Error::Database { .. } => 8,
            Error::Locked { .. } => 9,
            Error::RolledBack { .. } => 10,
            Error::LeaseLost { .. } => 9,
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
            "another restore, remove or gc is running; wait for it. A holder that crashed on this host is taken over at once; one from another host once its lease expires (or, if it is surely gone, `backups unlock --force`)",
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
        _ if message.contains("No space left on device") => Some(
            "that filesystem is full (df -h shows it): free space there and run the command again; a create left nothing behind, a restore's temporary file was removed",
        ),
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

/// A message on stderr unless --quiet.
fn say(quiet: bool, text: &str) {
    if !quiet {
        stderr_line!("{text}");
    }
}

fn parse_id(s: &str) -> Result<BackupId, Failure> {
    s.parse::<BackupId>().map_err(|e| Failure {
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

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
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
        .with_upload_options(UploadOptions::new(
            cli.part_size as usize * 1024 * 1024,
            cli.upload_concurrency as usize,
        ))
        .with_cancellation(cancel)
        .with_holder(format!("{} pid {}", host_name(), std::process::id()));
    let verbose = matches!(&cli.command, Command::Restore(r) if r.verbose);
    let progress: Arc<dyn Progress> = Arc::new(CliProgress::new(cli.progress, cli.quiet, verbose));
    let say = |text: String| say(cli.quiet, &text);

    match cli.command {
        Command::Create(a) => create::create(&backups, a, progress, cli.quiet).await?,
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
        Command::Unlock(a) => {
            let broken = backups.break_leases(a.force).await?;
            let kept: Vec<_> = backups.leases().await?;
            if a.json {
                let item = |l: &backups_core::LeaseInfo, removed: bool| {
                    serde_json::json!({
                        "Key": l.key, "Holder": l.holder, "Operation": l.operation,
                        "Since": l.since, "Expires": l.expires, "Stale": l.stale,
                        "Removed": removed,
                    })
                };
                let items: Vec<_> = broken
                    .iter()
                    .map(|l| item(l, true))
                    .chain(kept.iter().map(|l| item(l, false)))
                    .collect();
                out(&format!("{}\n", serde_json::Value::Array(items)))?;
            } else {
                if broken.is_empty() && kept.is_empty() {
                    out("No leases held.\n")?;
                }
                for l in &broken {
                    let what = if l.stale { "stale" } else { "live" };
                    out(&format!(
                        "Removed the {what} lease of {} ({}) since {}\n",
                        l.holder, l.operation, l.since
                    ))?;
                }
                for l in &kept {
                    out(&format!(
                        "Kept the live lease of {} ({}) since {}, expiring {}: pass --force if that process is gone\n",
                        l.holder, l.operation, l.since, l.expires
                    ))?;
                }
            }
        }
        Command::Restore(a) => restore::restore(&backups, a, progress, cli.quiet).await?,
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
