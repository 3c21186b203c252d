//! `backups serve`: the backups facade (backups-server) over the profile's
//! store, over TLS, for the holders of the tokens file's tokens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use backups_core::{
    BackupId, Backups, CancellationToken, Metadata, NoProgress, RestoreRequest, RestoreSource,
    StoreBackups,
};
use backups_server::{ApiError, BackupMaker, CreateOptions, Restorer, ServerState, Tokens};

use crate::commands::create;
use crate::context::Context;
use crate::failure::{CliResult, Failure, STORAGE, remote_kind};

/// Examples and notes after `backups serve --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups token generate --name controller-0 --role append   # on the server
  backups serve --listen 0.0.0.0:8443 --tls-cert /etc/backups/cert.pem \\
    --tls-key /etc/backups/key.pem --tokens-file /etc/backups/tokens --profile prod
  backups --remote https://backups.example:8443 --remote-token-file ~/.backups-token list

The store, and what `create` backs up (paths, database, labels,
encryption), come from the profile, as for every command: a caller names
neither. Plain HTTP is refused unless the address is loopback and
--insecure-loopback is given. Every request is logged on stderr in one line
(peer, method, path, token name, status, bytes, duration; never the token
nor the query). See README \"Remote use\".";

/// `backups serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on (port 0: any free one; the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The tokens file (`backups token generate` prints its lines).
    #[arg(long, value_name = "FILE")]
    pub tokens_file: PathBuf,
    /// Also require a client certificate signed by this CA (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Allow plain HTTP on a loopback address (tests, a local reverse proxy).
    #[arg(long)]
    pub insecure_loopback: bool,
    /// Let operator tokens restore backups' files into this directory
    /// (plan first, then the plan's token; the caller must name it as
    /// --target). Without it, restore is refused (501).
    #[arg(long, value_name = "DIR")]
    pub restore_target: Option<PathBuf>,
    /// The largest upload accepted (e.g. 64GiB, 500MiB, or bytes).
    #[arg(long, default_value = "64GiB", value_parser = parse_size, value_name = "SIZE")]
    pub max_upload: u64,
}

/// `64GiB`, `500MiB`, `10KiB`, `123` (bytes); `G`, `M`, `K` too.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected a size such as 64GiB or 500MiB, got {s:?}"))?;
    let shift = match unit {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use KiB, MiB, GiB or TiB)"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `create` as the profile says, with the caller's notes and labels.
struct ProfileMaker {
    backups: StoreBackups,
    args: create::Args,
}

#[async_trait]
impl BackupMaker for ProfileMaker {
    async fn create(&self, options: CreateOptions) -> Result<Metadata, ApiError> {
        let mut args = self.args.clone();
        args.notes = options.notes;
        if !options.labels.is_empty() {
            args.labels = options.labels;
        }
        args.download = None;
        let failure = |f: Failure| ApiError::new(remote_kind(f.code), f.message);
        let request = create::request(true, args).await.map_err(failure)?;
        Ok(self.backups.create(request, Arc::new(NoProgress)).await?)
    }
}

/// Restores files into `--restore-target`, by the library's rules (its
/// safety backup when live files are replaced; the undo journal).
struct TargetRestorer {
    backups: StoreBackups,
    target: PathBuf,
}

impl TargetRestorer {
    async fn run(&self, id: &BackupId, dry_run: bool) -> Result<serde_json::Value, ApiError> {
        let mut request =
            RestoreRequest::new(RestoreSource::Id(id.clone()), &self.target).with_dry_run(dry_run);
        if let Some(dir) = crate::context::state_dir() {
            request = request.with_undo_journal(backups_core::restore::journal_path(&dir, id));
        }
        let report = self.backups.restore(request, Arc::new(NoProgress)).await?;
        Ok(super::restore::report_json(&report, &[], None, None))
    }
}

#[async_trait]
impl Restorer for TargetRestorer {
    fn target(&self) -> PathBuf {
        self.target.clone()
    }

    async fn plan(&self, id: &BackupId) -> Result<serde_json::Value, ApiError> {
        self.run(id, true).await
    }

    async fn restore(&self, id: &BackupId) -> Result<serde_json::Value, ApiError> {
        self.run(id, false).await
    }
}

/// Serves until Ctrl-C.
pub async fn run(
    ctx: &Context,
    args: Args,
    create_args: create::Args,
    cancel: CancellationToken,
) -> CliResult {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            backups_server::tls_config(cert, key, args.client_ca.as_deref())
                .map_err(|e| Failure::usage(format!("TLS: {e}")))?,
        )),
        _ if args.insecure_loopback && args.listen.ip().is_loopback() => None,
        _ if args.insecure_loopback => {
            return Err(Failure::usage(format!(
                "refusing plain HTTP on {}: --insecure-loopback is for loopback addresses (127.0.0.1, ::1) only; give --tls-cert and --tls-key",
                args.listen
            )));
        }
        _ => {
            return Err(Failure::usage(
                "refusing to serve plain HTTP: give --tls-cert and --tls-key (or, on a loopback address only, --insecure-loopback)",
            ));
        }
    };
    let tokens = Tokens::load(&args.tokens_file).map_err(|e| Failure::usage(e.to_string()))?;
    if tokens.is_empty() {
        ctx.say(&format!(
            "warning: {} holds no token: every request will be refused",
            args.tokens_file.display()
        ));
    }
    let maker = ProfileMaker {
        backups: ctx.backups.clone(),
        args: create_args,
    };
    let mut state = ServerState::new(ctx.backups.clone(), tokens)
        .with_maker(Arc::new(maker))
        .with_max_upload(args.max_upload);
    if let Some(dir) = crate::context::state_dir() {
        state = state.with_state_dir(dir);
    }
    if let Some(target) = &args.restore_target {
        let target = std::fs::canonicalize(target).map_err(|e| {
            crate::failure::io_failure(&format!("--restore-target {}", target.display()), e)
        })?;
        state = state.with_restorer(Arc::new(TargetRestorer {
            backups: ctx.backups.clone(),
            target,
        }));
    }
    let sink: backups_server::LogSink = Arc::new(|r| stderr_line!("{r}"));
    let app = backups_server::with_request_log(backups_server::router(Arc::new(state)), sink);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure {
            message: format!("cannot listen on {}: {e}", args.listen),
            code: STORAGE,
        })?;
    let local = listener.local_addr().map_err(|e| Failure {
        message: format!("cannot listen on {}: {e}", args.listen),
        code: STORAGE,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Always printed (even with --quiet): a caller of --listen ADDR:0
    // learns the port from it.
    stderr_line!(
        "Serving {} on {scheme}://{local}",
        backups_core::secret::redact_uri(ctx.backups.storage().url())
    );
    backups_server::serve(app, listener, tls, cancel)
        .await
        .map_err(|e| Failure {
            message: format!("serving on {local}: {e}"),
            code: STORAGE,
        })
}
